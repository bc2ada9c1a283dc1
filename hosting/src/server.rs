//! Serving a router the way App Service expects: request ids, one trace span per request, a
//! bounded request time, `/healthz`, and a graceful drain on SIGTERM bounded by a timeout.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::{error_response, not_found};

/// The header that carries the request id from the browser through the front end to the back end.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// `GET /healthz`: 200 `{"status":"ok"}`, no downstream calls (App Service's health check evicts
/// an instance that fails it, so it must not fail because a dependency is down).
pub async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Adds what every service needs around its routes: `/healthz`, a 404 envelope for unknown
/// routes, a request id (kept when the caller sent one, else a fresh UUID), a trace span per
/// request with the matched route and the id, and a time limit answered 503 `request_timeout`.
pub fn with_http_layers(app: Router, request_timeout: Duration) -> Router {
    app.route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(request_span))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
                .layer(HandleErrorLayer::new(timeout_response))
                .timeout(request_timeout),
        )
}

fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", http.method = %request.method(), http.route = route, request_id)
}

async fn timeout_response(_: tower::BoxError) -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "request_timeout",
        "the request took longer than this service allows",
        Some("retry; if it keeps happening, look at what the service waits on"),
    )
}

/// Resolves on SIGTERM (what App Service sends to stop a container) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish for at most `drain_timeout`. Peer addresses reach handlers as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve<F>(
    listener: TcpListener,
    app: Router,
    shutdown: F,
    drain_timeout: Duration,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let draining = Arc::new(Notify::new());
    let signal_draining = draining.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!(
            drain_timeout_ms = drain_timeout.as_millis() as u64,
            "shutting down: draining in-flight requests"
        );
        signal_draining.notify_one();
    });
    tokio::select! {
        result = server => result,
        () = async {
            draining.notified().await;
            tokio::time::sleep(drain_timeout).await;
        } => {
            tracing::warn!("drain timeout reached: closing the remaining connections");
            Ok(())
        }
    }
}

/// The tail of every service's `main`: binds the address `host` names and serves `app` until
/// SIGTERM or Ctrl-C, then drains for `host.shutdown_timeout()`.
pub async fn run(host: &crate::HostArgs, role: &str, app: Router) -> io::Result<()> {
    let addr = host.listen_addr();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
    tracing::info!(role, addr = %listener.local_addr()?, "listening");
    serve(listener, app, shutdown_signal(), host.shutdown_timeout()).await
}
