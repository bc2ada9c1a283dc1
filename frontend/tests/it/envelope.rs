//! The front end's own rejections come in the shared envelope, like everything else: a body over
//! the limit (413), a path that does not parse (400), a method a route does not answer (405).

use crate::helpers::*;

async fn error_of(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

#[tokio::test]
async fn the_front_ends_own_rejections_are_in_the_envelope() {
    let backend = spawn_backend(&[]).await;
    let fe = Front::to(backend.url()).spawn().await;

    let big = client()
        .post(format!("{}/api/items", fe.url()))
        .header("content-type", "application/json")
        .body("x".repeat(frontend::MAX_BODY_BYTES + 1))
        .send()
        .await
        .unwrap();
    let (status, json) = error_of(big).await;
    assert_eq!(status, 413);
    assert_eq!(json["error"]["code"], "payload_too_large", "{json}");

    let bad_path = client()
        .get(format!("{}/api/items/%FF%FE", fe.url()))
        .send()
        .await
        .unwrap();
    let (status, json) = error_of(bad_path).await;
    assert_eq!(status, 400);
    assert_eq!(json["error"]["code"], "bad_request", "{json}");

    let wrong_method = client()
        .put(format!("{}/api/items", fe.url()))
        .send()
        .await
        .unwrap();
    assert!(wrong_method.headers().contains_key("allow"));
    let (status, json) = error_of(wrong_method).await;
    assert_eq!(status, 405);
    assert_eq!(json["error"]["code"], "method_not_allowed", "{json}");
}
