//! Shared helpers: build the app in process, or spawn it on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use backend::entra::EntraSettings;
use backend::jwks::KeyCacheSettings;
use backend::{ApiKeys, AppState, AuthMode, CallerPolicy, ClientIpSource, ItemStore};
use hosting::Instance;
use http_body_util::BodyExt;
use test_support::TestServer;
use tower::ServiceExt;

pub use test_support::entra_validator;

pub const KEY: &str = "test-key-1";
pub const DIAG_TOKEN: &str = "diag-token-for-tests";

/// `/diag` as mounted in the back end, with `DIAG_TOKEN` set (`None` leaves it off).
pub fn diag(token: Option<&str>) -> diag::api::DiagState {
    let resolver = diag::dns::DnsResolver::with_servers(
        vec!["127.0.0.1:9".parse().unwrap()],
        Duration::from_millis(300),
    )
    .unwrap();
    let args = diag::api::DiagArgs {
        diag_token: token.map(str::to_owned),
        diag_allow: Some("127.0.0.0/8".into()),
    };
    diag::api::DiagState::new(diag::api::DiagSettings::new(args, resolver)).unwrap()
}

/// How to build a back end for a test.
pub struct Setup {
    pub keys: Vec<&'static str>,
    /// Replaces the API keys when set (Entra mode).
    pub auth: Option<AuthMode>,
    /// `WEBSITE_AUTH_ENABLED`.
    pub app_service_auth: bool,
    pub allowed: Vec<&'static str>,
    pub source: ClientIpSource,
    pub diag_token: Option<&'static str>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            keys: vec![KEY],
            auth: None,
            app_service_auth: false,
            allowed: vec![],
            source: ClientIpSource::Peer,
            diag_token: None,
        }
    }
}

/// fake-entra's tenant (as every test and the lab trust it) with keys from `authority`; the
/// key cache refetches after a second, so rotation tests need not wait.
pub fn entra_settings(authority: &str) -> EntraSettings {
    EntraSettings {
        keys: KeyCacheSettings {
            fetch_timeout: Duration::from_secs(2),
            min_refetch_interval: Duration::from_secs(1),
            max_age: Duration::from_secs(3600),
        },
        ..test_support::fake_tenant_settings(authority)
    }
}

pub fn state(setup: &Setup, data_dir: &Path) -> AppState {
    AppState {
        store: ItemStore::open(data_dir).unwrap(),
        auth: setup
            .auth
            .clone()
            .unwrap_or_else(|| AuthMode::from_keys(ApiKeys::new(&setup.keys))),
        app_service_auth: setup.app_service_auth,
        callers: Arc::new(CallerPolicy::new(
            setup.allowed.iter().map(|c| c.parse().unwrap()).collect(),
        )),
        client_ip_source: setup.source,
        instance: Arc::new(Instance {
            site: "app-be".into(),
            id: "instance-a".into(),
        }),
    }
}

/// The app in process, as if called from `peer`.
pub fn in_process(setup: &Setup, data_dir: &Path, peer: &str) -> Router {
    let peer: SocketAddr = peer.parse().unwrap();
    backend::app(
        state(setup, data_dir),
        diag(setup.diag_token),
        Duration::from_secs(5),
    )
    .layer(MockConnectInfo(peer))
}

/// Sends one request in process; returns the status and the JSON body (Null when empty).
pub async fn call(app: &Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, json)
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("x-api-key", KEY)
        .body(Body::empty())
        .unwrap()
}

pub fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// A back end on a real socket.
pub async fn spawn(setup: &Setup, data_dir: &Path) -> TestServer {
    let app = backend::app(
        state(setup, data_dir),
        diag(setup.diag_token),
        Duration::from_secs(5),
    );
    test_support::serve(app).await
}

/// A reqwest client whose connections leave from `source` (another loopback address).
pub fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(source.parse().unwrap()))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The state of `setup` around an already opened store.
pub fn state_with_store(setup: &Setup, store: backend::ItemStore) -> AppState {
    let dir = tempfile::tempdir().unwrap();
    AppState {
        store,
        ..state(setup, dir.path())
    }
}

/// The app in process around `store`, as if called from 127.0.0.1.
pub fn in_process_with_store(store: backend::ItemStore) -> Router {
    backend::app(
        state_with_store(&Setup::default(), store),
        diag(None),
        Duration::from_secs(5),
    )
    .layer(MockConnectInfo(
        "127.0.0.1:4000".parse::<SocketAddr>().unwrap(),
    ))
}
