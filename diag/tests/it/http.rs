//! The HTTP check against a loopback fixture that answers like App Service: the three 403 pages,
//! cookies, redirects (not followed), plus refused and TLS failures.

use diag::failure::FailureKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use diag::appservice::{ACCESS_RESTRICTED_PAGE, APP_ERROR_PAGE, APP_STOPPED_PAGE};
use diag::httpcheck::{HttpCheckRequest, http_check, tls_client_config};
use diag::policy::Policy;

use test_support::{DiagConfig, closed_port, spawn_diag, spawn_dns};

struct Fixture {
    base: String,
    followed: Arc<AtomicUsize>,
    _server: test_support::TestServer,
}

/// An answer as App Service's front end sends it: its own reason phrase, headers and page.
fn platform(
    status: u16,
    reason: &'static str,
    headers: &[(&'static str, &'static str)],
    body: &'static str,
) -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_static(name),
            axum::http::HeaderValue::from_static(value),
        );
    }
    response
        .extensions_mut()
        .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
    response
}

async fn spawn_fixture() -> Fixture {
    let followed = Arc::new(AtomicUsize::new(0));
    let counter = followed.clone();
    let forbidden = |page: &'static str| {
        move || async move {
            (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/html")],
                page,
            )
        }
    };
    let app = Router::new()
        .route("/restricted", get(forbidden(ACCESS_RESTRICTED_PAGE)))
        .route("/stopped", get(forbidden(APP_STOPPED_PAGE)))
        // As App Service answers a denied caller, and the public address of an app whose public
        // access is disabled: the same status line, header and page.
        .route(
            "/private-only",
            get(|| async {
                platform(403, "Ip Forbidden", &[("x-ms-forbidden-ip", "203.0.113.7")], ACCESS_RESTRICTED_PAGE)
            }),
        )
        .route(
            "/denied-custom",
            get(|| async {
                platform(403, "Ip Forbidden", &[("x-ms-forbidden-ip", "10.0.1.4")], "<html>Contoso</html>")
            }),
        )
        .route(
            "/site-disabled",
            get(|| async { platform(403, "Site Disabled", &[], "<html>custom</html>") }),
        )
        .route(
            "/no-instance",
            get(|| async { platform(503, "Service Unavailable", &[("server", "nginx"), ("retry-after", "30")], APP_ERROR_PAGE) }),
        )
        .route(
            "/gateway",
            get(|| async {
                platform(403, "Forbidden", &[("server", "Microsoft-Azure-Application-Gateway/v2")], "<html><head><title>403 Forbidden</title></head></html>")
            }),
        )
        .route(
            "/app-403",
            get(|| async {
                (
                    StatusCode::FORBIDDEN,
                    r#"{"error":{"code":"caller_not_allowed"}}"#,
                )
            }),
        )
        .route(
            "/app-401",
            get(|| async {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"error":{"code":"missing_token","message":"no bearer token was sent","hint":"a body that is never returned"}}"#,
                )
            }),
        )
        .route(
            "/platform-401",
            get(|| async { (StatusCode::UNAUTHORIZED, "You do not have permission.") }),
        )
        .route(
            "/ok",
            get(|| async {
                (
                    [
                        (header::SERVER, "Kestrel"),
                        (
                            header::SET_COOKIE,
                            "ARRAffinity=instance-secret-value; Path=/; HttpOnly",
                        ),
                        (header::HeaderName::from_static("x-ms-request-id"), "req-1"),
                        (
                            header::HeaderName::from_static("x-internal-secret"),
                            "do-not-show",
                        ),
                    ],
                    "body-that-is-never-returned",
                )
                    .into_response()
            }),
        )
        .route(
            "/redirect",
            get(|| async {
                (StatusCode::FOUND, [(header::LOCATION, "/followed")]).into_response()
            }),
        )
        .route(
            "/followed",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "followed" }
            }),
        );
    let server = test_support::serve(app).await;
    Fixture {
        base: server.url(),
        followed,
        _server: server,
    }
}

async fn check(url: &str) -> diag::httpcheck::HttpCheckReport {
    let dns = spawn_dns().await;
    let request = HttpCheckRequest::parse(url, Some("3000")).unwrap();
    let policy = Policy::parse("127.0.0.0/8").unwrap();
    http_check(
        &dns.resolver(),
        &tls_client_config().unwrap(),
        &request,
        None,
        Some(&policy),
    )
    .await
}

#[tokio::test]
async fn only_the_error_code_of_an_envelope_is_reported() {
    let fixture = spawn_fixture().await;
    let report = check(&format!("{}/app-401", fixture.base)).await;
    assert_eq!(report.status, Some(401));
    assert_eq!(report.error_code.as_deref(), Some("missing_token"));
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("never returned"), "{json}");
    assert!(!json.contains("no bearer token"), "{json}");
    assert!(report.to_text().contains("Error code:  missing_token"));
    let platform = check(&format!("{}/platform-401", fixture.base)).await;
    assert_eq!(platform.status, Some(401));
    assert_eq!(platform.error_code, None);
    let ok = check(&format!("{}/ok", fixture.base)).await;
    assert_eq!(ok.error_code, None);
    assert!(!serde_json::to_string(&ok).unwrap().contains("error_code"));
}

#[tokio::test]
async fn app_service_403_pages_are_classified() {
    let fixture = spawn_fixture().await;
    for (path, code) in [
        ("/restricted", Some("access_restricted")),
        ("/stopped", Some("app_stopped")),
        // Called by address: no privatelink name, so a denial is an access restriction.
        ("/private-only", Some("access_restricted")),
        ("/denied-custom", Some("access_restricted")),
        ("/site-disabled", Some("app_stopped")),
        ("/gateway", Some("gateway_refused")),
        ("/app-403", None),
    ] {
        let report = check(&format!("{}{path}", fixture.base)).await;
        assert!(report.ok, "{report:?}");
        assert_eq!(report.status, Some(403));
        if path == "/denied-custom" {
            let finding = report.app_service.as_ref().unwrap();
            assert_eq!(finding.forbidden_ip.as_deref(), Some("10.0.1.4"));
            assert_eq!(report.reason.as_deref(), Some("Ip Forbidden"));
            assert!(
                report.to_text().contains("-> 403 Ip Forbidden"),
                "{}",
                report.to_text()
            );
            assert!(
                finding
                    .message
                    .contains("App Service saw this call as coming from 10.0.1.4")
            );
        }
        assert_eq!(
            report.app_service.as_ref().map(|f| f.code.as_str()),
            code,
            "{path}"
        );
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            !json.contains("blocked your access") && !json.contains("This web app is stopped"),
            "the body leaked: {json}"
        );
    }
    let report = check(&format!("{}/restricted", fixture.base)).await;
    assert!(report.hint.unwrap().contains("route-all"));
}

#[tokio::test]
async fn headers_are_selected_and_cookie_values_never_shown() {
    let fixture = spawn_fixture().await;
    let report = check(&format!("{}/ok", fixture.base)).await;
    assert_eq!(report.status, Some(200));
    assert_eq!(report.set_cookie_names, ["ARRAffinity"]);
    assert_eq!(
        report.headers.get("server").map(String::as_str),
        Some("Kestrel")
    );
    assert_eq!(
        report.headers.get("x-ms-request-id").map(String::as_str),
        Some("req-1")
    );
    assert!(report.headers.contains_key("content-length"));
    let json = serde_json::to_string(&report).unwrap();
    for secret in [
        "instance-secret-value",
        "do-not-show",
        "body-that-is-never-returned",
    ] {
        assert!(!json.contains(secret), "{secret} leaked: {json}");
    }
    let t = &report.timings_ms;
    assert!(t.dns.is_some());
    assert!(t.connect.is_some() && t.first_byte.is_some());
    assert_eq!(t.tls, None);
    assert!(t.total >= t.first_byte.unwrap());
    assert!(report.target.local_addr.unwrap().ip().is_loopback());
    assert!(report.hint.is_none());
}

#[tokio::test]
async fn redirects_are_reported_not_followed() {
    let fixture = spawn_fixture().await;
    let report = check(&format!("{}/redirect", fixture.base)).await;
    assert_eq!(report.status, Some(302));
    assert_eq!(
        report.headers.get("location").map(String::as_str),
        Some("/followed")
    );
    assert!(report.hint.unwrap().contains("not followed"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fixture.followed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn connection_failures_are_told_apart() {
    let report = check(&format!("http://127.0.0.1:{}/", closed_port())).await;
    assert!(!report.ok);
    assert_eq!(report.error.unwrap().kind, FailureKind::Refused);

    // https to a port that speaks plain HTTP: the TLS handshake fails.
    let fixture = spawn_fixture().await;
    let https = fixture.base.replace("http://", "https://");
    let report = check(&format!("{https}/ok")).await;
    assert_eq!(
        report.error.as_ref().unwrap().kind,
        FailureKind::Tls,
        "{report:?}"
    );
    assert!(report.timings_ms.connect.is_some());

    let report = check("http://nosuch.lockdown.test/").await;
    assert_eq!(report.error.unwrap().kind, FailureKind::Dns);
}

#[tokio::test]
async fn through_the_diag_endpoint() {
    let dns = spawn_dns().await;
    let fixture = spawn_fixture().await;
    let diag = spawn_diag(DiagConfig::new(dns.resolver(), Some("127.0.0.0/8"))).await;
    // The name goes through privatelink, yet the caller reached the public address, which
    // refused it: public access disabled next to a private endpoint, whose next step is the DNS.
    let port = fixture.base.rsplit(':').next().unwrap();
    let (status, body) = diag
        .get_json(&format!(
            "/diag/http?url=http://app-pe-public.azurewebsites.net:{port}/private-only"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 403);
    assert_eq!(body["reason"], "Ip Forbidden");
    assert_eq!(
        body["app_service"]["code"], "public_access_disabled",
        "{body}"
    );
    assert_eq!(body["app_service"]["forbidden_ip"], "203.0.113.7");
    assert_eq!(body["app_service"]["signal"], "status_line");
    assert_eq!(body["headers"]["x-ms-forbidden-ip"], "203.0.113.7");
    let (_, by_address) = diag
        .get_json(&format!("/diag/http?url={}/private-only", fixture.base))
        .await;
    assert_eq!(by_address["app_service"]["code"], "access_restricted");
    let (_, unavailable) = diag
        .get_json(&format!("/diag/http?url={}/no-instance", fixture.base))
        .await;
    assert_eq!(
        unavailable["app_service"]["code"], "app_unavailable",
        "{unavailable}"
    );
    assert!(
        body["app_service"]["hint"]
            .as_str()
            .unwrap()
            .contains("privatelink")
    );
    for key in ["dns", "connect", "tls", "first_byte", "total"] {
        assert!(
            body["timings_ms"].get(key).is_some(),
            "missing timings_ms.{key}"
        );
    }
    let text = diag
        .get(&format!(
            "/diag/http?url={}/restricted&format=text",
            fixture.base
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.starts_with(&format!("GET {}/restricted -> 403\n", fixture.base)),
        "{text}"
    );
    assert!(text.contains("App Service: access_restricted"), "{text}");
}
