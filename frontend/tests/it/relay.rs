//! The BFF relay against the real back end: items, the path report, gates, CSRF, headers.

use crate::helpers::*;

#[tokio::test]
async fn relays_items_and_reports_a_locked_path() {
    let backend = spawn_backend(&["127.0.0.2/32"]).await;
    let mut front = Front::to(backend.url());
    front.source = Some("127.0.0.2");
    front.integration_subnet = Some("127.0.0.2/32");
    let fe = front.spawn().await;

    let created = client()
        .post(format!("{}/api/items", fe.url()))
        .header("content-type", "application/json")
        .body(r#"{"name":"through the BFF"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let item: serde_json::Value = created.json().await.unwrap();

    let (status, list) = get_json(&format!("{}/api/items", fe.url())).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["id"], item["id"]);

    let (status, one) = get_json(&format!(
        "{}/api/items/{}",
        fe.url(),
        item["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["name"], "through the BFF");

    let (status, path) = get_json(&format!("{}/api/path", fe.url())).await;
    assert_eq!(status, 200);
    assert_eq!(path["verdict"], "locked", "{path:#}");
    assert_eq!(path["caller"]["client_ip"], "127.0.0.2");
    assert_eq!(path["caller_in_subnet"], true);
    assert_eq!(path["backend_instance"]["id"], "be-1");
    assert_eq!(path["frontend_instance"]["id"], "fe-1");

    let (status, ready) = get_json(&format!("{}/readyz", fe.url())).await;
    assert_eq!(status, 200);
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn client_mistakes_are_relayed_as_the_back_end_said() {
    let backend = spawn_backend(&[]).await;
    let fe = Front::to(backend.url()).spawn().await;
    let bad = client()
        .post(format!("{}/api/items", fe.url()))
        .header("content-type", "application/json")
        .body(r#"{"name":""}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_item");

    let (status, body) = get_json(&format!(
        "{}/api/items/00000000-0000-0000-0000-000000000000",
        fe.url()
    ))
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "item_not_found");

    // Only item ids are relayed: no way to reach other back-end paths through the relay.
    let (status, body) = get_json(&format!("{}/api/items/..%2Fcaller", fe.url())).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_id");
}

#[tokio::test]
async fn wrong_and_missing_keys_are_diagnosed() {
    let backend = spawn_backend(&[]).await;
    for key in [Some("not-the-key"), None] {
        let mut front = Front::to(backend.url());
        front.api_key = key;
        let fe = front.spawn().await;
        let (status, body) = get_json(&format!("{}/api/items", fe.url())).await;
        assert_eq!(status, 502, "{key:?}");
        assert_eq!(body["error"]["code"], "backend_unauthorized");
        assert!(body["error"]["hint"].as_str().unwrap().contains("API_KEYS"));
    }
}

#[tokio::test]
async fn a_front_end_outside_allowed_callers_is_diagnosed() {
    let backend = spawn_backend(&["127.0.0.2/32"]).await;
    let mut front = Front::to(backend.url());
    front.source = Some("127.0.0.1");
    front.integration_subnet = Some("127.0.0.2/32");
    let fe = front.spawn().await;

    let (status, body) = get_json(&format!("{}/api/items", fe.url())).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "caller_not_allowed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1")
    );

    let (_, path) = get_json(&format!("{}/api/path", fe.url())).await;
    assert_eq!(path["verdict"], "broken");
    assert_eq!(path["diagnosis"]["code"], "caller_not_allowed");

    let (status, ready) = get_json(&format!("{}/readyz", fe.url())).await;
    assert_eq!(status, 503);
    assert_eq!(ready["error"]["code"], "caller_not_allowed");
}

#[tokio::test]
async fn a_caller_outside_the_integration_subnet_breaks_the_path() {
    // The back end does not check, but the front end knows where its calls should come from.
    let backend = spawn_backend(&[]).await;
    let mut front = Front::to(backend.url());
    front.source = Some("127.0.0.1");
    front.integration_subnet = Some("127.0.2.0/24");
    let fe = front.spawn().await;
    let (_, path) = get_json(&format!("{}/api/path", fe.url())).await;
    assert_eq!(path["verdict"], "broken");
    assert_eq!(path["caller_in_subnet"], false);
    let check = path["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "caller_in_subnet")
        .unwrap();
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("outside 127.0.2.0/24")
    );
}

#[tokio::test]
async fn cross_site_writes_are_refused_and_change_nothing() {
    let backend = spawn_backend(&[]).await;
    let fe = Front::to(backend.url()).spawn().await;
    let url = format!("{}/api/items", fe.url());
    let evil = client()
        .post(&url)
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .body(r#"{"name":"forged"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    let body: serde_json::Value = evil.json().await.unwrap();
    assert_eq!(body["error"]["code"], "cross_site_request");

    let form_like = client()
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"name":"forged"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(form_like.status(), 415);

    let (_, list) = get_json(&url).await;
    assert_eq!(list["items"], serde_json::json!([]));
}

#[tokio::test]
async fn the_request_id_travels_to_the_back_end() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(None::<String>));
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let record = record.clone();
        async move {
            *record.lock().unwrap() = headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            axum::Json(serde_json::json!({"items": []}))
        }
    });
    let fake = serve_on("127.0.0.1", app).await;
    let fe = Front::to(fake.url()).spawn().await;
    let response = client()
        .get(format!("{}/api/items", fe.url()))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    assert_eq!(seen.lock().unwrap().as_deref(), Some("trace-me-42"));
}

#[tokio::test]
async fn diag_is_mounted_and_reaches_the_back_end_from_inside() {
    let backend = spawn_backend(&[]).await;
    let mut front = Front::to(backend.url());
    front.source = Some("127.0.0.2");
    front.diag_token = Some("fe-diag-token");
    let fe = front.spawn().await;
    let url = format!(
        "{}/diag/tcpping?host=127.0.0.1&port={}&count=1",
        fe.url(),
        backend.addr.port()
    );
    let denied = client().get(&url).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let ping: serde_json::Value = client()
        .get(&url)
        .bearer_auth("fe-diag-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ping["summary"]["ok"], 1, "{ping:#}");
    // The probe uses the app's own outbound path: the source is the app's OUTBOUND_SOURCE_ADDR.
    assert!(
        ping["attempts"][0]["local_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.2:")
    );
    // Without DIAG_TOKEN the same route does not exist.
    let off = Front::to(backend.url()).spawn().await;
    let status = client()
        .get(format!("{}/diag/env", off.url()))
        .bearer_auth("x")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
}

/// What a back end behind a service endpoint answers on `/api/caller`: the caller in App
/// Service's IPv6 form (header text the fake echoes; never an address anything connects to).
fn caller_body(client_ip: &str) -> &'static str {
    let body = serde_json::json!({
        "client_ip": client_ip,
        "source": "x-client-ip",
        "peer": "127.0.0.1:50000",
        "forwarded_for": [],
        "class": "unique_local",
        "allowed": true,
        "allow_list_enforced": false,
        "auth": {"mode": "api-key"},
        "instance": {"site": "app-be", "id": "be-1"},
    });
    Box::leak(body.to_string().into_boxed_str())
}

/// The path report (and the page's panel) of a front end whose back end saw `client_ip`.
async fn path_with_caller(client_ip: &str, subnet: &'static str) -> (serde_json::Value, String) {
    let backend = spawn_fake(200, caller_body(client_ip), "application/json").await;
    let mut front = Front::to(backend.url());
    front.integration_subnet = Some(subnet);
    let fe = front.spawn().await;
    let (status, path) = get_json(&format!("{}/api/path", fe.url())).await;
    assert_eq!(status, 200);
    let page = client()
        .get(fe.url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (path, page)
}

fn subnet_check(path: &serde_json::Value) -> &serde_json::Value {
    path["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "caller_in_subnet")
        .unwrap()
}

#[tokio::test]
async fn a_service_endpoint_caller_is_judged_by_its_vnet_address() {
    let (path, page) =
        path_with_caller("fde4:8dba:2300:5457:6f23:200:a00:104", "10.0.1.0/24").await;
    assert_eq!(path["verdict"], "locked", "{path:#}");
    assert!(
        page.contains("the service-endpoint form of <code>10.0.1.4</code>"),
        "{page}"
    );
    assert_eq!(path["caller_in_subnet"], true);
    assert_eq!(path["caller_vnet_ip"], "10.0.1.4");
    assert_eq!(
        subnet_check(&path)["detail"],
        "the back end saw fde4:8dba:2300:5457:6f23:200:a00:104, the service-endpoint form of 10.0.1.4 — inside 10.0.1.0/24"
    );

    let (path, _) = path_with_caller("fde4:8dba:2300:5457:6f23:200:a09:909", "10.0.1.0/24").await;
    assert_eq!(path["verdict"], "broken", "{path:#}");
    assert_eq!(path["caller_in_subnet"], false);
    assert!(
        subnet_check(&path)["detail"]
            .as_str()
            .unwrap()
            .contains("the service-endpoint form of 10.9.9.9 (unique_local) — outside 10.0.1.0/24")
    );
}

#[tokio::test]
async fn an_undecodable_ipv6_caller_is_said_not_compared() {
    let (path, _) = path_with_caller("fd00:1:2:3::a00:104", "10.0.1.0/24").await;
    assert_eq!(path["verdict"], "unverified", "{path:#}");
    assert_eq!(path["caller_in_subnet"], serde_json::Value::Null);
    assert_eq!(path["caller_vnet_ip"], serde_json::Value::Null);
    let check = subnet_check(&path);
    assert_eq!(check["ok"], serde_json::Value::Null);
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("an IPv6 caller that is not in App Service's service-endpoint form: it cannot be compared with IPv4 ranges"),
        "{check}"
    );
    assert!(
        path["summary"]
            .as_str()
            .unwrap()
            .contains("cannot be compared with INTEGRATION_SUBNET")
    );
}
