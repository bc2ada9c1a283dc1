//! The keys endpoint Entra publishes its signing keys on, `GET /{tenant}/discovery/v2.0/keys`,
//! on `127.0.0.1:0`, with what tests need: a fetch counter, rotation, a failure switch and a delay.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::keys::SigningKey;

struct KeysState {
    tenant: String,
    keys: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    failing: AtomicBool,
    delay_ms: AtomicU64,
}

/// A running keys endpoint. Dropping it stops the server.
pub struct FakeKeys {
    addr: SocketAddr,
    state: Arc<KeysState>,
    task: tokio::task::JoinHandle<()>,
}

// By hand: the state holds signing keys, which a debug print must not show.
impl std::fmt::Debug for FakeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKeys")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeKeys {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKeys {
    /// Serves `keys` for `tenant` on `127.0.0.1:0`.
    pub async fn start(tenant: &str, keys: &[&SigningKey]) -> std::io::Result<Self> {
        let state = Arc::new(KeysState {
            tenant: tenant.to_owned(),
            keys: Mutex::new(keys.iter().map(|k| k.jwk()).collect()),
            fetches: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/{tenant}/discovery/v2.0/keys", get(keys_document))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// What `ENTRA_AUTHORITY` must be for the validator to fetch keys here.
    pub fn authority(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The keys URL.
    pub fn keys_url(&self) -> String {
        format!(
            "http://{}/{}/discovery/v2.0/keys",
            self.addr, self.state.tenant
        )
    }

    /// Replaces the published keys (a rotation).
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        self.set_jwks(keys.iter().map(|k| k.jwk()).collect());
    }

    /// Replaces the published keys with raw JWKs.
    pub fn set_jwks(&self, jwks: Vec<Value>) {
        *self.state.keys.lock().expect("keys lock") = jwks;
    }

    /// How many times the keys were fetched.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// While on, every fetch answers 500.
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// Delays every answer.
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

async fn keys_document(
    State(state): State<Arc<KeysState>>,
    Path(tenant): Path<String>,
) -> Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if state.failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "keys unavailable").into_response();
    }
    if tenant != state.tenant {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant not found."})),
        )
            .into_response();
    }
    let keys = state.keys.lock().expect("keys lock").clone();
    axum::Json(json!({ "keys": keys })).into_response()
}
