//! `/diag` mounted in the back end: off without DIAG_TOKEN, guarded with it.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::helpers::*;

fn diag_env(token: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/diag/env");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn diag_is_off_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process(&Setup::default(), dir.path(), "127.0.0.1:4000");
    let (status, json) = call(&app, diag_env(Some("anything"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "not_found");
}

#[tokio::test]
async fn diag_answers_with_the_token_and_refuses_without() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        diag_token: Some(DIAG_TOKEN),
        ..Setup::default()
    };
    let app = in_process(&setup, dir.path(), "127.0.0.1:4000");
    let (status, json) = call(&app, diag_env(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    let (status, json) = call(&app, diag_env(Some("wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    let (status, json) = call(&app, diag_env(Some(DIAG_TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(json.is_object());
    // No API key is needed for /diag, and /diag never echoes secrets it was not allowed to see.
    assert!(!json.to_string().contains(KEY));
}
