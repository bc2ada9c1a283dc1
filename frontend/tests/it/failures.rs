//! Every back-end failure becomes a diagnosis with its own code, never a bare 502.

use std::time::{Duration, Instant};

use crate::helpers::*;
use test_support::{closed_addr, spawn_full_queue};

async fn items_via(front: Front) -> (u16, serde_json::Value) {
    let fe = front.spawn().await;
    get_json(&format!("{}/api/items", fe.url())).await
}

#[tokio::test]
async fn back_end_down_is_connect_refused() {
    let port = closed_addr();
    let (status, body) = items_via(Front::to(format!("http://{port}"))).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "connect_refused");
    assert!(body["error"]["hint"].as_str().unwrap().contains("listens"));
}

#[tokio::test]
async fn a_silent_back_end_is_a_connect_timeout() {
    let silent = spawn_full_queue().await;
    let mut front = Front::to(format!("http://{}", silent.addr));
    front.timeout = Duration::from_millis(700);
    let started = Instant::now();
    let (status, body) = items_via(front).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "connect_timeout");
    assert!(body["error"]["hint"].as_str().unwrap().contains("NSG"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_back_end_that_never_answers_is_a_backend_timeout() {
    let (addr, _task) = mute_server().await;
    let mut front = Front::to(format!("http://{addr}"));
    front.timeout = Duration::from_millis(500);
    let (status, body) = items_via(front).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"]["code"], "backend_timeout");
}

#[tokio::test]
async fn app_service_403_pages_are_recognised_by_their_body() {
    let pages = [
        (
            diag::appservice::ACCESS_RESTRICTED_PAGE,
            "access_restricted",
        ),
        (diag::appservice::APP_STOPPED_PAGE, "app_stopped"),
    ];
    for (page, code) in pages {
        let fake = spawn_fake(403, page, "text/html").await;
        let (status, body) = items_via(Front::to(fake.url())).await;
        assert_eq!(status, 502, "{code}");
        assert_eq!(body["error"]["code"], code);
        assert!(!body["error"]["hint"].as_str().unwrap().is_empty());
    }
}

/// Status, reason phrase, headers, page, and the code the front end must give.
type PlatformCase = (
    u16,
    Option<&'static str>,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
);

/// App Service's answers as captured: the status line's reason, `x-ms-forbidden-ip`, the
/// `Server` header, a custom page or none at all.
#[tokio::test]
async fn app_service_answers_are_recognised_the_way_the_platform_sends_them() {
    const CUSTOM: &str = "<html><body>Contoso: not here</body></html>";
    let cases: [PlatformCase; 6] = [
        // A denial with its page, with a custom page, and with no body at all.
        (
            403,
            Some("Ip Forbidden"),
            &[("x-ms-forbidden-ip", "203.0.113.7")],
            diag::appservice::ACCESS_RESTRICTED_PAGE,
            "access_restricted",
        ),
        (
            403,
            Some("Ip Forbidden"),
            &[("x-ms-forbidden-ip", "203.0.113.7")],
            CUSTOM,
            "access_restricted",
        ),
        (
            403,
            Some("Ip Forbidden"),
            &[("x-ms-forbidden-ip", "203.0.113.7")],
            "",
            "access_restricted",
        ),
        (403, Some("Site Disabled"), &[], CUSTOM, "app_stopped"),
        (
            503,
            None,
            &[("server", "nginx"), ("retry-after", "10")],
            diag::appservice::APP_ERROR_PAGE,
            "app_unavailable",
        ),
        (
            403,
            None,
            &[("server", "Microsoft-Azure-Application-Gateway/v2")],
            "<html><head><title>403 Forbidden</title></head></html>",
            "gateway_refused",
        ),
    ];
    for (status, reason, headers, page, code) in cases {
        let fake = spawn_platform(status, reason, headers, page).await;
        let (answered, body) = items_via(Front::to(fake.url())).await;
        assert_eq!(answered, 502, "{code}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        if code == "access_restricted" {
            assert!(
                message.contains("App Service saw this call as coming from 203.0.113.7"),
                "{message}"
            );
            assert!(message.contains("403 Ip Forbidden"), "{message}");
        }
        if code == "gateway_refused" {
            assert!(
                !message.contains("access restriction"),
                "a gateway's 403 is never the lockdown: {message}"
            );
        }
    }
}

#[tokio::test]
async fn an_unknown_403_and_a_5xx_are_still_explained() {
    let fake = spawn_fake(403, "<html>WAF says no</html>", "text/html").await;
    let (status, body) = items_via(Front::to(fake.url())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("backend_forbidden"))
    );
    let fake = spawn_fake(500, "boom", "text/plain").await;
    let (status, body) = items_via(Front::to(fake.url())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("backend_error"))
    );
    assert!(
        !body.to_string().contains("boom"),
        "5xx bodies are not echoed"
    );
}

#[tokio::test]
async fn a_dns_failure_is_diagnosed() {
    // A DNS server that reads queries and never answers.
    let dns = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dns_addr = dns.local_addr().unwrap();
    let _keep = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while dns.recv_from(&mut buf).await.is_ok() {}
    });
    let mut front = Front::to("http://app-be.lockdown.test:8081".into());
    front.dns = Some(dns_addr);
    let (status, body) = items_via(front).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "dns_failure");
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("privatelink")
    );
}

#[tokio::test]
async fn a_tls_failure_is_diagnosed() {
    // https to a server that speaks plain HTTP: the handshake fails.
    let fake = spawn_fake(200, "{}", "application/json").await;
    let (status, body) = items_via(Front::to(format!("https://{}", fake.addr))).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "tls_failure", "{body}");
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("azurewebsites.net")
    );
}

/// What App Service said about the refused caller reaches the path report and the page.
#[tokio::test]
async fn the_path_panel_shows_whom_app_service_refused() {
    let fake = spawn_platform(
        403,
        Some("Ip Forbidden"),
        &[("x-ms-forbidden-ip", "fde4:8dba:2300:5457:6f23:200:a00:104")],
        "",
    )
    .await;
    let fe = Front::to(fake.url()).spawn().await;
    let (status, path) = get_json(&format!("{}/api/path", fe.url())).await;
    assert_eq!(status, 200, "{path}");
    assert_eq!(path["diagnosis"]["code"], "access_restricted", "{path}");
    assert_eq!(
        path["diagnosis"]["forbidden_ip"],
        "fde4:8dba:2300:5457:6f23:200:a00:104"
    );
    let message = path["diagnosis"]["message"].as_str().unwrap();
    assert!(
        message.contains("the service-endpoint form of 10.0.1.4"),
        "{message}"
    );
    let page = reqwest::get(fe.url()).await.unwrap().text().await.unwrap();
    assert!(page.contains("App Service saw"), "{page}");
    assert!(page.contains("fde4:8dba:2300:5457:6f23:200:a00:104"));
}
