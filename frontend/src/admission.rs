//! Admission control for the routes that call the back end: at most `RELAY_MAX_IN_FLIGHT`
//! requests at once; one more waits at most `RELAY_QUEUE_TIMEOUT_MS` for a place, then is shed
//! with 503 `frontend_busy` and `Retry-After`, so a flood of clients gets fast refusals instead
//! of a queue (and back-end connections) without bound. `/healthz` and `/diag` are not behind it
//! (`/diag` has its own bounds; App Service's health check must not be shed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;

/// The bound and its queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Admission {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    permits: Semaphore,
    max_in_flight: usize,
    queue_timeout: Duration,
    epoch: Instant,
    /// Requests shed since the last log line, and when that line was written (whole seconds
    /// since `epoch`): one line per second at most, however hard the flood.
    shed: AtomicU64,
    logged_at_s: AtomicU64,
}

impl Admission {
    /// At most `max_in_flight` requests at once (at least 1); one more waits at most
    /// `queue_timeout`.
    pub fn new(max_in_flight: usize, queue_timeout: Duration) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Self {
            inner: Arc::new(Inner {
                permits: Semaphore::new(max_in_flight),
                max_in_flight,
                queue_timeout,
                epoch: Instant::now(),
                shed: AtomicU64::new(0),
                logged_at_s: AtomicU64::new(0),
            }),
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.max_in_flight - self.inner.permits.available_permits()
    }

    fn note_shed(&self) {
        let inner = &self.inner;
        inner.shed.fetch_add(1, Ordering::Relaxed);
        let now_s = inner.epoch.elapsed().as_secs() + 1;
        let last = inner.logged_at_s.load(Ordering::Relaxed);
        if now_s > last
            && inner
                .logged_at_s
                .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let shed = inner.shed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                code = "frontend_busy",
                requests.shed = shed,
                relay.max_in_flight = inner.max_in_flight,
                "shedding load: requests beyond RELAY_MAX_IN_FLIGHT answered 503 (counted since the last such line)"
            );
        }
    }
}

/// The middleware: a place, or a wait of at most the queue timeout, or 503 `frontend_busy`.
pub async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    let inner = &admission.inner;
    let permit = match inner.permits.try_acquire() {
        Ok(permit) => permit,
        Err(_) => match tokio::time::timeout(inner.queue_timeout, inner.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                admission.note_shed();
                return busy();
            }
        },
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

fn busy() -> Response {
    let mut response = hosting::error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "frontend_busy",
        "the front end is already serving as many requests as it allows (RELAY_MAX_IN_FLIGHT)",
        Some(
            "retry after the Retry-After delay; if it lasts, scale out or raise RELAY_MAX_IN_FLIGHT",
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
