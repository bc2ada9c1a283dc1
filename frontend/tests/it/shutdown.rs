//! SIGTERM lets a request in flight finish: the real `frontend` binary, a slow fake back end.

use std::process::Stdio;
use std::time::Duration;

use crate::helpers::*;
use test_support::closed_addr;

#[tokio::test]
async fn a_request_in_flight_finishes_across_sigterm() {
    let slow = axum::Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        axum::Json(serde_json::json!({"items": [{"id": "x", "name": "late", "created_at": ""}]}))
    });
    let backend = serve_on("127.0.0.1", slow).await;
    let port = closed_addr().port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_frontend"))
        .env_clear()
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("BACKEND_URL", backend.url())
        .env("DNS_SERVERS", "127.0.0.1:9")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if client().get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the front end did not start");

    let in_flight = tokio::spawn(client().get(format!("{base}/api/items")).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request was cut");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["items"][0]["name"], "late");
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    // New connections are refused once it has stopped.
    assert!(
        client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );
}
