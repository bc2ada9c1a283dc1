//! The two gates: API keys and ALLOWED_CALLERS, over real sockets from distinct loopback sources.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::helpers::*;
use backend::ClientIpSource;

#[tokio::test]
async fn missing_and_wrong_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(&Setup::default(), dir.path(), "127.0.0.1:4000");
    let (status, json) = call(
        &app,
        Request::get("/api/items").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "unauthorized");
    assert_eq!(json["error"]["message"], "no API key was sent");

    let wrong = Request::get("/api/items")
        .header("x-api-key", "test-key-2")
        .body(Body::empty())
        .unwrap();
    let (status, json) = call(&app, wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["message"], "the API key is not valid");
}

#[tokio::test]
async fn rotation_accepts_every_configured_key() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        keys: vec!["old", "new"],
        ..Setup::default()
    };
    let app = in_process(&setup, dir.path(), "127.0.0.1:4000");
    for key in ["old", "new"] {
        let request = Request::get("/api/items")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&app, request).await.0, StatusCode::OK, "{key}");
    }
}

#[tokio::test]
async fn allowed_callers_accepts_the_integration_subnet_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        allowed: vec!["127.0.0.2/32"],
        ..Setup::default()
    };
    let server = spawn(&setup, dir.path()).await;
    let url = format!("http://{}/api/caller", server.addr);

    let seen: serde_json::Value = client_from("127.0.0.2")
        .get(&url)
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["client_ip"], "127.0.0.2");
    assert_eq!(seen["source"], "peer");
    assert_eq!(seen["class"], "loopback");
    assert_eq!(seen["allowed"], true);
    assert_eq!(seen["instance"]["id"], "instance-a");
    assert!(seen["peer"].as_str().unwrap().starts_with("127.0.0.2:"));

    let refused = client_from("127.0.0.1")
        .get(&url)
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "caller_not_allowed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn spoofed_forwarded_for_is_ignored_under_peer() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        allowed: vec!["127.0.0.2/32"],
        source: ClientIpSource::Peer,
        ..Setup::default()
    };
    let server = spawn(&setup, dir.path()).await;
    let response = client_from("127.0.0.1")
        .get(format!("http://{}/api/items", server.addr))
        .header("x-api-key", KEY)
        .header("x-forwarded-for", "127.0.0.2")
        .header("x-client-ip", "127.0.0.2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    server.shutdown().await;
}

#[tokio::test]
async fn header_sources_take_the_platform_headers() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        allowed: vec!["10.20.1.0/24"],
        source: ClientIpSource::XForwardedFor,
        ..Setup::default()
    };
    let app = in_process(&setup, dir.path(), "127.0.0.1:4000");
    // The client claims 10.20.1.9 on the left; the platform appended the real address on the right.
    // Header text only: the app runs in-process (no sockets), so these addresses are only parsed.
    const SPOOFED: &str = "10.20.1.9, 203.0.113.5:5555"; // parsed, never connected to
    const REAL: &str = "10.20.1.4:5555"; // parsed, never connected to
    let spoof = Request::get("/api/caller")
        .header("x-api-key", KEY)
        .header("x-forwarded-for", SPOOFED)
        .body(Body::empty())
        .unwrap();
    let (status, json) = call(&app, spoof).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");

    let real = Request::get("/api/caller")
        .header("x-api-key", KEY)
        .header("x-forwarded-for", REAL)
        .body(Body::empty())
        .unwrap();
    let (status, json) = call(&app, real).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["client_ip"], "10.20.1.4");
    assert_eq!(json["source"], "x-forwarded-for");
    assert_eq!(json["class"], "private");
    assert_eq!(json["forwarded_for"][0]["port"], 5555);
}
