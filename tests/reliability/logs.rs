//! Logs that say why, once: a run of identical failures is one line with its code (and a count
//! later), not one generic line per request.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use diag::api::DiagLimits;
use tracing_subscriber::fmt::MakeWriter;

/// Everything logged on this thread while the guard lives (the tests run on a current-thread
/// runtime, so the server's tasks log here too).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    fn lines_with(&self, needle: &str) -> usize {
        self.text().lines().filter(|l| l.contains(needle)).count()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn fifty_identical_relay_failures_are_one_line_naming_the_code() {
    let (logs, _guard) = capture();
    let app = Router::new().route(
        "/api/items",
        get(|| async {
            hosting::error_response(
                StatusCode::BAD_GATEWAY,
                "connect_refused",
                "nothing listens",
                None,
            )
        }),
    );
    let server =
        test_support::server::serve(hosting::with_http_layers(app, Duration::from_secs(5))).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..50 {
        let response = client
            .get(format!("{}/api/items", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502);
    }
    let text = logs.text();
    assert_eq!(logs.lines_with("connect_refused"), 1, "{text}");
    assert!(text.contains("request failed: connect_refused"), "{text}");
    // tower-http's generic line per 5xx is gone.
    assert_eq!(logs.lines_with("ERROR"), 0, "{text}");
}

#[tokio::test]
async fn a_rate_limited_diag_flood_is_one_line_not_one_per_call() {
    let (logs, _guard) = capture();
    let dns = test_support::spawn_dns().await;
    let mut config = test_support::DiagConfig::new(dns.resolver(), Some("127.0.0.0/8"));
    config.limits = DiagLimits {
        burst: 1,
        per_second: 0.001,
        ..DiagLimits::default()
    };
    let diag = test_support::spawn_diag(config).await;
    let mut limited = 0;
    for _ in 0..100 {
        if diag.get("/diag/env").await.status() == 429 {
            limited += 1;
        }
    }
    assert_eq!(limited, 99);
    let text = logs.text();
    assert_eq!(logs.lines_with("rate_limited"), 1, "{text}");
    assert_eq!(logs.lines_with("WARN"), 1, "{text}");
}
