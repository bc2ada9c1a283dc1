//! The items resource: shapes, validation, persistence.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::helpers::*;

#[tokio::test]
async fn create_get_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(&Setup::default(), dir.path(), "127.0.0.1:4000");

    let (status, created) = call(
        &app,
        post_json("/api/items", r#"{"name":" milk ","note":"2 l"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["name"], "milk");
    assert_eq!(created["note"], "2 l");
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, got) = call(&app, get(&format!("/api/items/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, created);

    let (status, list) = call(&app, get("/api/items")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let delete = Request::delete(format!("/api/items/{id}"))
        .header("x-api-key", KEY)
        .body(Body::empty())
        .unwrap();
    let (status, _) = call(&app, delete).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&app, get(&format!("/api/items/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "item_not_found");
}

#[tokio::test]
async fn bad_input_gets_the_envelope_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(&Setup::default(), dir.path(), "127.0.0.1:4000");
    let cases = [
        (r#"{"name":""}"#, StatusCode::BAD_REQUEST, "invalid_item"),
        (
            r#"{"name":"x","extra":1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_json",
        ),
        (r#"{"name":"#, StatusCode::BAD_REQUEST, "invalid_json"),
        (
            r#"{"note":"no name"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_json",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let (status, json) = call(&app, post_json("/api/items", body)).await;
        assert_eq!(status, want_status, "{body}");
        assert_eq!(json["error"]["code"], want_code, "{body}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let no_type = Request::post("/api/items")
        .header("x-api-key", KEY)
        .body(Body::from(r#"{"name":"x"}"#))
        .unwrap();
    let (status, json) = call(&app, no_type).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(json["error"]["code"], "unsupported_media_type");

    let huge = format!(r#"{{"name":"x","note":"{}"}}"#, "a".repeat(20_000));
    let (status, json) = call(&app, post_json("/api/items", &huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["error"]["code"], "payload_too_large");

    let (status, json) = call(&app, get("/api/items/not-a-uuid")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"]["code"], "invalid_id");

    let (_, list) = call(&app, get("/api/items")).await;
    assert_eq!(list["items"], serde_json::json!([]));
}

#[tokio::test]
async fn unknown_routes_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(&Setup::default(), dir.path(), "127.0.0.1:4000");
    let (status, json) = call(&app, Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "not_found");
    // No key needed: App Service's health check carries none.
    let (status, json) = call(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn data_survives_a_restart_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::default();
    let first = spawn(&setup, dir.path()).await;
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("http://{}/api/items", first.addr))
        .header("x-api-key", KEY)
        .json(&serde_json::json!({"name": "survivor"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    first.shutdown().await;

    let second = spawn(&setup, dir.path()).await;
    let list: serde_json::Value = client
        .get(format!("http://{}/api/items", second.addr))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["id"], created["id"]);
    assert_eq!(list["items"][0]["name"], "survivor");
    second.shutdown().await;
}
