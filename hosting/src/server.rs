//! Serving a router the way App Service expects: request ids, one trace span per request, a
//! bounded request time, `/healthz`, and a graceful drain on SIGTERM bounded by a timeout.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Version, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::error::{error_response, not_found};
use crate::repeat::{FailureKind, RepeatedFailures};

/// The header that carries the request id from the browser through the front end to the back end.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// What one server allows its clients; see [`serve_with_limits`]. Built from `HostArgs` by
/// [`crate::HostArgs::server_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// How long a client has to send a whole request head (`HEADER_READ_TIMEOUT_MS`).
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight (`IDLE_TIMEOUT_MS`).
    pub idle_timeout: Duration,
    /// Connections served at once; past it a new one is answered 503 (`MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// How long in-flight requests may drain after SIGTERM (`SHUTDOWN_TIMEOUT_MS`).
    pub drain_timeout: Duration,
}

/// `HEADER_READ_TIMEOUT_MS`'s default.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `IDLE_TIMEOUT_MS`'s default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// `MAX_CONNECTIONS`'s ceiling when it is derived from the open-file limit.
pub const MAX_CONNECTIONS_CEILING: usize = 10_000;

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: default_max_connections(),
            drain_timeout: Duration::from_secs(4),
        }
    }
}

/// Half the process's open-file limit (the other half is for outbound connections, the store
/// and logs), between 16 and [`MAX_CONNECTIONS_CEILING`]; the ceiling when the limit is unknown.
pub fn default_max_connections() -> usize {
    open_file_limit().map_or(MAX_CONNECTIONS_CEILING, |limit| {
        usize::try_from(limit / 2)
            .unwrap_or(usize::MAX)
            .clamp(16, MAX_CONNECTIONS_CEILING)
    })
}

/// The soft open-file limit (`ulimit -n`), read from `/proc/self/limits` (no `unsafe` here for
/// `getrlimit`); `None` off Linux or when unlimited.
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

/// `GET /healthz`: 200 `{"status":"ok"}`, no downstream calls (App Service's health check evicts
/// an instance that fails it, so it must not fail because a dependency is down).
pub async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Adds what every service needs around its routes: `/healthz`, a 404 envelope for unknown
/// routes, a request id (kept when the caller sent one, else a fresh UUID), a trace span per
/// request with the matched route and the id, and a time limit answered 503 `request_timeout`.
pub fn with_http_layers(app: Router, request_timeout: Duration) -> Router {
    let repeated = RepeatedFailures::new(crate::repeat::DEFAULT_WINDOW);
    app.route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        // The failure log below names the code; tower-http's generic ERROR per
                        // 5xx said nothing more and doubled every line.
                        .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
                )
                .layer(middleware::from_fn_with_state(
                    repeated,
                    envelope_then_log_failure,
                ))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
                .layer(HandleErrorLayer::new(timeout_response))
                .timeout(request_timeout),
        )
}

/// Puts a bare error answer into the envelope ([`crate::error::envelope_bare`]), then logs a
/// request answered 429, 502, 503 or 504 once, with the envelope's code; repeats of the same
/// code on the same route within a window are counted into one summary line. (A 500 is logged
/// where it happens, with the detail the envelope hides.) One layer for both: each layer costs
/// every request a boxed future and a clone of the routes.
async fn envelope_then_log_failure(
    State(repeated): State<Arc<RepeatedFailures>>,
    request: Request,
    next: Next,
) -> Response {
    // A shared string: nothing is copied for the requests that succeed.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let response = crate::error::envelope_bare(next.run(request).await).await;
    let status = response.status();
    if !matches!(status.as_u16(), 429 | 502 | 503 | 504) {
        return response;
    }
    let code = response
        .extensions()
        .get::<crate::error::ErrorCode>()
        .map_or("unknown", |code| code.0.as_str());
    let kind = FailureKind {
        code: code.to_owned(),
        status: status.as_u16(),
        route: route
            .as_ref()
            .map_or("unmatched", MatchedPath::as_str)
            .to_owned(),
    };
    if repeated.first_in_window(&kind) {
        tracing::warn!(
            error.code = code,
            http.status = status.as_u16(),
            http.route = %kind.route,
            duration_ms = started.elapsed().as_millis() as u64,
            "request failed: {code}"
        );
    }
    response
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

/// Serves `app` on `listener` until `shutdown` resolves, then drains for at most
/// `drain_timeout`, with the default [`ServerLimits`] otherwise. Peer addresses reach handlers
/// as `ConnectInfo<SocketAddr>`.
pub async fn serve<F>(
    listener: TcpListener,
    app: Router,
    shutdown: F,
    drain_timeout: Duration,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let limits = ServerLimits {
        drain_timeout,
        ..ServerLimits::default()
    };
    serve_with_limits(listener, app, shutdown, &limits).await
}

/// Serves `app` on `listener` within `limits` (HTTP/1.1 only) until `shutdown` resolves.
///
/// - A connection must deliver each request head within `header_read_timeout`, and one with no
///   request in flight is closed after `idle_timeout` (hyper also times the wait for the next
///   head, so the smaller of the two bounds an idle connection).
/// - Past `max_connections`, a new connection is answered 503 `too_many_connections` at once
///   and closed: nothing queues.
/// - An HTTP/1.1 request without `Host` is answered 400 `missing_host`.
/// - On shutdown it stops accepting, lets in-flight requests finish, answers those still running
///   shortly before `drain_timeout` with 503 `shutting_down` (a response rather than a cut
///   connection), then closes what is left. A half-sent request head cannot hold the drain
///   longer than `header_read_timeout`.
pub async fn serve_with_limits<F>(
    listener: TcpListener,
    app: Router,
    shutdown: F,
    limits: &ServerLimits,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let limits = *limits;
    let drain_ending = CancellationToken::new();
    let app = app.layer(middleware::from_fn_with_state(
        drain_ending.clone(),
        require_host_until_drain_ends,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_CONCURRENT_REFUSALS));
    let refused_log = RepeatedFailures::new(crate::repeat::DEFAULT_WINDOW);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                accept_failed(&error, &refused_log).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse_over_capacity(stream, &refusals, &refused_log, limits.max_connections);
            continue;
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            app.clone(),
            limits,
            stop_rx.clone(),
            slot,
        ));
    }
    drop(listener);
    tracing::info!(
        drain_timeout_ms = limits.drain_timeout.as_millis() as u64,
        connections = connections.len(),
        "shutting down: draining in-flight requests"
    );
    let _ = stop_tx.send(true);
    // The last moments of the drain are kept to write the 503s of requests still running.
    let flush = (limits.drain_timeout / 4).min(DRAIN_FLUSH_TIME);
    let all_closed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.drain_timeout - flush, all_closed)
        .await
        .is_ok()
    {
        return Ok(());
    }
    drain_ending.cancel();
    let all_closed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(flush, all_closed).await.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "drain timeout reached: closing the remaining connections"
        );
    }
    // Dropping the set aborts what is left.
    Ok(())
}

/// Refusals over the connection cap are written by small tasks; past this many at once the
/// socket is closed without an answer, so a flood cannot grow them without bound.
const MAX_CONCURRENT_REFUSALS: usize = 256;

/// The longest a refusal may take to write and close.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// The part of the drain kept for writing `shutting_down` answers to requests still running.
const DRAIN_FLUSH_TIME: Duration = Duration::from_millis(500);

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            let busy = activity.begin();
            let response = app.clone().call(request);
            async move {
                let response = response.await;
                drop(busy);
                response
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let mut closing = *stop.borrow();
    if closing {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        let idle_check = activity.next_idle_check(limits.idle_timeout);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep_until(idle_check), if !closing => {
                if activity.idle_for(limits.idle_timeout) {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Requests in flight on one connection and when the last one ended, for the idle timeout.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    idle_since: std::sync::Mutex<Instant>,
}

/// Held while a request is being answered.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self
                .0
                .idle_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        }
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since: std::sync::Mutex::new(Instant::now()),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    fn idle_since(&self) -> Instant {
        *self
            .idle_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When to look again: the end of the idle time, or a full period on when busy.
    fn next_idle_check(&self, idle_timeout: Duration) -> tokio::time::Instant {
        let from = if self.in_flight.load(Ordering::Acquire) > 0 {
            Instant::now()
        } else {
            self.idle_since()
        };
        (from + idle_timeout).into()
    }

    fn idle_for(&self, idle_timeout: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.idle_since().elapsed() >= idle_timeout
    }
}

/// Over the cap: a fixed 503 in the envelope, written without reading the request, then the
/// socket is closed. Logged once per window, not once per connection.
fn refuse_over_capacity(
    mut stream: TcpStream,
    refusals: &Arc<Semaphore>,
    log: &Arc<RepeatedFailures>,
    max_connections: usize,
) {
    let kind = FailureKind {
        code: "too_many_connections".into(),
        status: 503,
        route: "unmatched".into(),
    };
    if log.first_in_window(&kind) {
        tracing::warn!(
            error.code = "too_many_connections",
            max_connections,
            "connection refused: the connection cap is reached (MAX_CONNECTIONS)"
        );
    }
    let Ok(refusal) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _refusal = refusal;
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            stream
                .write_all(over_capacity_response().as_bytes())
                .await?;
            stream.shutdown().await?;
            // Read what the client sent before closing: closing with unread bytes would turn
            // the answer into a reset on the client's side.
            let mut sink = [0_u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
    });
}

fn over_capacity_response() -> String {
    let body = serde_json::to_string(&crate::ErrorEnvelope::new(
        "too_many_connections",
        "this instance has as many connections open as it allows",
        Some("retry shortly; if it persists, scale out or raise MAX_CONNECTIONS".to_owned()),
    ))
    .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// `accept` fails when the process is out of file descriptors (EMFILE) or the system is
/// (ENFILE): say so once per window and back off, rather than spin.
async fn accept_failed(error: &io::Error, log: &Arc<RepeatedFailures>) {
    let code = if is_resource_exhausted(error) {
        "local_resource_exhausted"
    } else {
        "accept_failed"
    };
    let kind = FailureKind {
        code: code.into(),
        status: 0,
        route: "accept".into(),
    };
    if log.first_in_window(&kind) {
        tracing::error!(
            error.code = code,
            %error,
            "cannot accept a connection; look at the open-file limit (ulimit -n) and MAX_CONNECTIONS"
        );
    }
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// How long to wait after a failed `accept` before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// EMFILE (24), ENFILE (23), ENOBUFS (105) and ENOMEM (12): this process or machine ran out of
/// something, which no network change will fix.
pub fn is_resource_exhausted(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(12 | 23 | 24 | 105))
        || error.kind() == io::ErrorKind::OutOfMemory
}

/// HTTP/1.1 requires `Host` (RFC 9112 §3.2), which hyper does not check; and at the end of the
/// drain, requests still running get an answer rather than a cut connection. (One layer for
/// both: each layer costs every request a boxed future and a clone of the routes.)
async fn require_host_until_drain_ends(
    State(drain_ending): State<CancellationToken>,
    request: Request,
    next: Next,
) -> Response {
    if request.version() == Version::HTTP_11 && !request.headers().contains_key(header::HOST) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "missing_host",
            "an HTTP/1.1 request must carry a Host header",
            Some("send the Host header (RFC 9112, section 3.2)"),
        );
    }
    tokio::select! {
        response = next.run(request) => response,
        () = drain_ending.cancelled() => {
            let mut response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "this instance is shutting down and could not finish the request in time",
                Some("retry: another instance, or this one once restarted, will answer"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
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
    let limits = host.server_limits();
    tracing::info!(
        header_read_timeout_ms = limits.header_read_timeout.as_millis() as u64,
        idle_timeout_ms = limits.idle_timeout.as_millis() as u64,
        max_connections = limits.max_connections,
        "server limits"
    );
    serve_with_limits(listener, app, shutdown_signal(), &limits).await
}
