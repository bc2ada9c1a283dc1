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
