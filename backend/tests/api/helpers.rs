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
use backend::{
    ApiKeys, AppState, AuthMode, CallerPolicy, ClientIpSource, EntraValidator, ItemStore,
};
use hosting::Instance;
use http_body_util::BodyExt;
use tower::ServiceExt;

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

/// What the Entra tests accept: fake-entra's tenant, the back end's URI and client ID as
/// audiences, the front end's identity, the role, keys from `authority`.
pub fn entra_settings(authority: &str) -> EntraSettings {
    EntraSettings {
        tenant_id: fake_entra::TENANT_ID.into(),
        audiences: vec![
            fake_entra::BACKEND_APP_ID_URI.into(),
            fake_entra::BACKEND_CLIENT_ID.into(),
        ],
        allowed_apps: vec![fake_entra::FRONTEND_CLIENT_ID.into()],
        allowed_objects: vec![fake_entra::FRONTEND_OBJECT_ID.into()],
        required_role: Some(fake_entra::REQUIRED_ROLE.into()),
        authority: authority.parse().unwrap(),
        leeway: Duration::from_secs(60),
        keys: KeyCacheSettings {
            fetch_timeout: Duration::from_secs(2),
            min_refetch_interval: Duration::from_secs(1),
            max_age: Duration::from_secs(3600),
        },
    }
}

/// A validator on `settings`, fetching over plain loopback HTTP.
pub fn validator(settings: EntraSettings) -> Arc<EntraValidator> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Arc::new(EntraValidator::new(settings, http))
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
pub struct Spawned {
    pub addr: SocketAddr,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn spawn(setup: &Setup, data_dir: &Path) -> Spawned {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = backend::app(
        state(setup, data_dir),
        diag(setup.diag_token),
        Duration::from_secs(5),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(hosting::serve(
        listener,
        app,
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(2),
    ));
    Spawned { addr, stop, task }
}

impl Spawned {
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// A reqwest client whose connections leave from `source` (another loopback address).
pub fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(source.parse().unwrap()))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}
