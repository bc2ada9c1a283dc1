//! `/diag/backend/{action}`: a front end's `/diag` forwarding to its own back end's `/diag`
//! only, with the back end's token held server-side; every failure diagnosed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use diag::forward::BackendDiag;
use test_support::{DiagConfig, TestDiag, closed_port, spawn_diag, spawn_dns};

const BACKEND_TOKEN: &str = "backend-diag-token-9876543210";

fn resolver(dns: std::net::SocketAddr) -> diag::DnsResolver {
    diag::DnsResolver::with_servers(vec![dns], Duration::from_millis(500)).unwrap()
}

/// A back end's `/diag` (token [`BACKEND_TOKEN`], instance `be-7`) behind a counter of every
/// request it received.
async fn spawn_backend_diag(
    dns: std::net::SocketAddr,
) -> (test_support::TestServer, Arc<AtomicUsize>) {
    let mut config = DiagConfig::new(resolver(dns), Some("127.0.0.0/8"));
    config.token = Some(BACKEND_TOKEN.to_owned());
    config
        .env
        .insert("WEBSITE_INSTANCE_ID".into(), "be-7".into());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = hosting::with_http_layers(diag::api::router(config.state()), Duration::from_secs(30))
        .layer(axum::middleware::from_fn(
            move |request: Request, next: axum::middleware::Next| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    next.run(request).await
                }
            },
        ));
    (test_support::serve(app).await, seen)
}

async fn spawn_front(dns: std::net::SocketAddr, backend: Option<(&str, &str)>) -> TestDiag {
    let mut config = DiagConfig::new(resolver(dns), Some("127.0.0.0/8"));
    config.backend_diag =
        backend.map(|(url, token)| BackendDiag::new(url.parse().unwrap(), token).unwrap());
    spawn_diag(config).await
}

#[tokio::test]
async fn a_diagnostic_runs_in_the_back_end_and_says_so() {
    let dns = spawn_dns().await;
    let (backend, seen) = spawn_backend_diag(dns.addr).await;
    let front = spawn_front(dns.addr, Some((&backend.url(), BACKEND_TOKEN))).await;

    let response = front
        .get("/diag/backend/resolve?host=app-be.privatelink.azurewebsites.net")
        .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-diag-ran-in"], "backend");
    assert_eq!(headers["x-diag-backend-instance"], "be-7");
    let text = response.text().await.unwrap();
    assert!(
        !text.contains(BACKEND_TOKEN),
        "the back end's token never comes back"
    );
    for (_, value) in &headers {
        assert!(
            !value
                .as_bytes()
                .windows(BACKEND_TOKEN.len())
                .any(|w| w == BACKEND_TOKEN.as_bytes())
        );
    }
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        report["query"]["host"], "app-be.privatelink.azurewebsites.net",
        "{report}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    // The pin reaches the back end as its ARRAffinity cookie; a malformed one goes nowhere.
    let (status, body) = front
        .get_json("/diag/backend/env?backend_instance=be%3Bx%3D1")
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input");
    assert_eq!(seen.load(Ordering::SeqCst), 1, "nothing was forwarded");
    let response = front.get("/diag/backend/env?backend_instance=be-7").await;
    assert_eq!(response.status(), 200);

    // The handshake check runs in the back end too (its dependencies are the back end's).
    let (status, report) = front
        .get_json(&format!(
            "/diag/backend/tls?host=127.0.0.1&port={}&sni=a.lockdown.test",
            closed_port()
        ))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["code"], "connect_refused", "{report}");
}

#[tokio::test]
async fn only_the_configured_back_end_and_only_diag_actions_are_reached() {
    let dns = spawn_dns().await;
    let (backend, seen) = spawn_backend_diag(dns.addr).await;
    let front = spawn_front(dns.addr, Some((&backend.url(), BACKEND_TOKEN))).await;

    // No way to name another path: unknown actions, encoded slashes and dots are unknown routes.
    for path in [
        "/diag/backend/items",
        "/diag/backend/..%2F..%2Fapi%2Fitems",
        "/diag/backend/backend",
        "/diag/backend/",
    ] {
        let response = front.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    // A query naming another base changes nothing: it is the back end's own parameter.
    let response = front
        .get("/diag/backend/http?url=http%3A%2F%2F127.0.0.1%3A9%2F&base=http%3A%2F%2Fevil.example")
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-diag-ran-in"], "backend");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "only the one real action was forwarded"
    );

    // Without the front end's own token nothing is forwarded.
    let response = front
        .get_with_token("/diag/backend/env", BACKEND_TOKEN)
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn every_failure_to_reach_the_back_end_is_a_diagnosis() {
    let dns = spawn_dns().await;
    let (backend, _) = spawn_backend_diag(dns.addr).await;

    // Not configured: 404 in the envelope, saying what to set.
    let front = spawn_front(dns.addr, None).await;
    let (status, body) = front.get_json("/diag/backend/env").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "backend_diag_not_configured");
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("BACKEND_DIAG_TOKEN")
    );

    // The wrong token for the back end.
    let front = spawn_front(dns.addr, Some((&backend.url(), "not-the-backend-token"))).await;
    let (status, body) = front.get_json("/diag/backend/env").await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "diag_unauthorized", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("BACKEND_DIAG_TOKEN")
    );

    // Nothing listens.
    let url = format!("http://127.0.0.1:{}", closed_port());
    let front = spawn_front(dns.addr, Some((&url, BACKEND_TOKEN))).await;
    let (status, body) = front.get_json("/diag/backend/env").await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "connect_refused", "{body}");

    // A name that does not resolve in the test zone.
    let url = format!("http://nowhere.lockdown.test:{}", closed_port());
    let front = spawn_front(dns.addr, Some((&url, BACKEND_TOKEN))).await;
    let (status, body) = front.get_json("/diag/backend/env").await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "dns_failure", "{body}");

    // App Service's own refusal, recognised as such.
    let platform = test_support::serve(Router::new().fallback(|| async {
        let mut response = axum::response::Response::new(axum::body::Body::from(
            diag::appservice::ACCESS_RESTRICTED_PAGE,
        ));
        *response.status_mut() = axum::http::StatusCode::FORBIDDEN;
        response.headers_mut().insert(
            "x-ms-forbidden-ip",
            axum::http::HeaderValue::from_static("10.20.1.4"),
        );
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(b"Ip Forbidden"));
        response
    }))
    .await;
    let front = spawn_front(dns.addr, Some((&platform.url(), BACKEND_TOKEN))).await;
    let (status, body) = front.get_json("/diag/backend/env").await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "access_restricted", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10.20.1.4")
    );
}

#[test]
fn a_back_end_token_must_be_a_header_value() {
    let url: url::Url = "https://app-be.azurewebsites.net".parse().unwrap();
    assert!(BackendDiag::new(url.clone(), "").is_err());
    assert!(BackendDiag::new(url.clone(), "two words").is_err());
    assert!(BackendDiag::new(url.clone(), "caf\u{e9}").is_err());
    assert!(BackendDiag::new("ftp://x".parse().unwrap(), "t").is_err());
    let ok = BackendDiag::new(url, " s3cr3t-value ").unwrap();
    assert!(
        !format!("{ok:?}").contains("s3cr3t"),
        "Debug never shows the token: {ok:?}"
    );
}
