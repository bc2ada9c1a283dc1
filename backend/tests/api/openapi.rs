//! Pins the public contract: the generated OpenAPI document must match the committed one.
//! After a deliberate API change, regenerate with `UPDATE_GOLDEN=1 cargo test -p backend openapi`.

use std::path::PathBuf;

#[test]
fn openapi_matches_the_committed_document() {
    let generated = serde_json::to_string_pretty(&backend::openapi()).unwrap() + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path)
        .expect("backend/openapi.json is missing: run with UPDATE_GOLDEN=1 once");
    assert_eq!(
        committed, generated,
        "the API changed: review it, then UPDATE_GOLDEN=1"
    );
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let dir = tempfile::tempdir().unwrap();
    let app =
        crate::helpers::in_process(&crate::helpers::Setup::default(), dir.path(), "127.0.0.1:1");
    let request = axum::http::Request::get("/api/openapi.json")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, json) = crate::helpers::call(&app, request).await;
    assert_eq!(status, 200);
    assert_eq!(json, serde_json::to_value(backend::openapi()).unwrap());
    let paths: Vec<_> = json["paths"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(paths, ["/api/caller", "/api/items", "/api/items/{id}"]);
}

/// Every error a route really answers (401, 403, 400, 413, 415, 422) is in the document for
/// that path and method, and comes in the envelope.
#[tokio::test]
async fn every_error_a_route_answers_is_documented_and_in_the_envelope() {
    use axum::body::Body;
    use axum::http::Request;

    use crate::helpers::{KEY, Setup, call, in_process};

    let doc = serde_json::to_value(backend::openapi()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let open = in_process(&Setup::default(), dir.path(), "127.0.0.1:1");
    let fenced = in_process(
        &Setup {
            allowed: vec!["10.0.0.0/8"],
            ..Setup::default()
        },
        dir.path().join("fenced").as_path(),
        "127.0.0.1:1",
    );
    let id = "/api/items/0190f5a8-7c4e-7000-8000-000000000000";
    let request = |method: &str, uri: &str, key: bool, content_type: Option<&str>, body: String| {
        let mut builder = Request::builder().method(method).uri(uri);
        if key {
            builder = builder.header("x-api-key", KEY);
        }
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        builder.body(Body::from(body)).unwrap()
    };
    let json = Some("application/json");
    let cases = [
        (
            "get",
            "/api/items",
            "/api/items",
            false,
            None,
            String::new(),
            401,
            &open,
        ),
        (
            "post",
            "/api/items",
            "/api/items",
            false,
            json,
            "{}".into(),
            401,
            &open,
        ),
        (
            "get",
            id,
            "/api/items/{id}",
            false,
            None,
            String::new(),
            401,
            &open,
        ),
        (
            "delete",
            id,
            "/api/items/{id}",
            false,
            None,
            String::new(),
            401,
            &open,
        ),
        (
            "get",
            "/api/caller",
            "/api/caller",
            false,
            None,
            String::new(),
            401,
            &open,
        ),
        (
            "get",
            "/api/items",
            "/api/items",
            true,
            None,
            String::new(),
            403,
            &fenced,
        ),
        (
            "get",
            id,
            "/api/items/{id}",
            true,
            None,
            String::new(),
            403,
            &fenced,
        ),
        (
            "delete",
            id,
            "/api/items/{id}",
            true,
            None,
            String::new(),
            403,
            &fenced,
        ),
        (
            "get",
            "/api/items/nope",
            "/api/items/{id}",
            true,
            None,
            String::new(),
            400,
            &open,
        ),
        (
            "post",
            "/api/items",
            "/api/items",
            true,
            json,
            "x".repeat(20_000),
            413,
            &open,
        ),
        (
            "post",
            "/api/items",
            "/api/items",
            true,
            None,
            "{}".into(),
            415,
            &open,
        ),
        (
            "post",
            "/api/items",
            "/api/items",
            true,
            json,
            r#"{"name":5}"#.into(),
            422,
            &open,
        ),
    ];
    for (method, uri, path, key, content_type, body, expected, app) in cases {
        let sent = request(&method.to_uppercase(), uri, key, content_type, body);
        let (status, json) = call(app, sent).await;
        assert_eq!(status.as_u16(), expected, "{method} {uri}: {json}");
        assert!(json["error"]["code"].is_string(), "{method} {uri}: {json}");
        let documented = &doc["paths"][path][method]["responses"][expected.to_string()];
        assert!(
            documented.is_object(),
            "{method} {path} answers {expected} ({}) but the document does not say so",
            json["error"]["code"]
        );
    }
}

/// A method a route does not answer is 405 in the envelope, with `Allow`.
#[tokio::test]
async fn a_wrong_method_on_api_is_405_in_the_envelope() {
    use axum::body::Body;
    use axum::http::Request;

    let dir = tempfile::tempdir().unwrap();
    let app =
        crate::helpers::in_process(&crate::helpers::Setup::default(), dir.path(), "127.0.0.1:1");
    let request = Request::put("/api/items")
        .header("x-api-key", crate::helpers::KEY)
        .body(Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app, request).await.unwrap();
    assert_eq!(response.status(), 405);
    assert!(response.headers().contains_key("allow"));
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["error"]["code"], "method_not_allowed");
}

/// A chunked body that breaks on the wire is 400 `invalid_body`, not `payload_too_large`.
#[tokio::test]
async fn a_malformed_chunked_body_is_400_invalid_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let server = crate::helpers::spawn(&crate::helpers::Setup::default(), dir.path()).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/items HTTP/1.1\r\nHost: test\r\nx-api-key: {}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nZZ\r\n{{}}\r\n0\r\n\r\n",
        crate::helpers::KEY
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0_u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains(r#""code":"invalid_body""#), "{answer}");
}
