//! Shared helpers: spawn the real back end, the front end, and hostile fake back ends (the
//! servers, closed ports and silent listeners themselves come from `test-support`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use backend::{ApiKeys, AuthMode, CallerPolicy, ClientIpSource, ItemStore};
use diag::api::{DiagArgs, DiagSettings, DiagState};
use diag::dns::DnsResolver;
use frontend::{
    Admission, AppState, BackendClient, BackendSettings, CredentialSettings, PoolSettings,
    TokenSource,
};
use hosting::Instance;
use test_support::TestServer;
use tokio::net::TcpListener;

pub const KEY: &str = "backend-key-1";

/// Serves `app` on `ip` (a loopback address), any port.
pub async fn serve_on(ip: &str, app: Router) -> TestServer {
    test_support::serve_on(ip.parse().unwrap(), app).await
}

/// The real back end, with `API_KEYS=KEY` and the given `ALLOWED_CALLERS`.
pub async fn spawn_backend(allowed: &[&str]) -> TestServer {
    spawn_backend_with(allowed, AuthMode::from_keys(ApiKeys::new([KEY]))).await
}

/// The real back end in Entra mode, trusting fake-entra's tenant with keys from `authority`:
/// audiences the back end's URI and client ID, the front end's identity, the role.
pub async fn spawn_backend_entra(authority: &str) -> TestServer {
    let validator = test_support::entra_validator(test_support::fake_tenant_settings(authority));
    spawn_backend_with(&[], AuthMode::Entra(validator)).await
}

/// The real back end with the given credential mode.
pub async fn spawn_backend_with(allowed: &[&str], auth: AuthMode) -> TestServer {
    let data = tempfile::tempdir().unwrap();
    let store = ItemStore::open(data.path()).unwrap();
    spawn_backend_on(allowed, auth, store).await.holding(data)
}

/// The real back end on `store` (PostgreSQL in the database tests).
pub async fn spawn_backend_on(allowed: &[&str], auth: AuthMode, store: ItemStore) -> TestServer {
    let state = backend::AppState {
        store,
        auth,
        app_service_auth: false,
        callers: Arc::new(CallerPolicy::new(
            allowed.iter().map(|c| c.parse().unwrap()).collect(),
        )),
        client_ip_source: ClientIpSource::Peer,
        instance: Arc::new(Instance {
            site: "app-be".into(),
            id: "be-1".into(),
        }),
    };
    let resolver = DnsResolver::with_servers(
        vec!["127.0.0.1:9".parse().unwrap()],
        Duration::from_millis(300),
    )
    .unwrap();
    let diag = DiagState::new(DiagSettings::new(DiagArgs::default(), resolver)).unwrap();
    test_support::serve(backend::app(state, diag, Duration::from_secs(5))).await
}

/// How to build a front end for a test.
pub struct Front {
    pub backend_url: String,
    pub api_key: Option<&'static str>,
    /// Replaces the API key (Entra mode).
    pub credential: Option<CredentialSettings>,
    /// A token source built by the test (Entra mode with a clock the test moves).
    pub tokens: Option<Arc<TokenSource>>,
    pub source: Option<&'static str>,
    pub integration_subnet: Option<&'static str>,
    pub timeout: Duration,
    pub dns: Option<SocketAddr>,
    pub diag_token: Option<&'static str>,
    /// `FRONT_DOOR_ID`.
    pub front_door_id: Option<&'static str>,
    pub pool: PoolSettings,
    /// RELAY_MAX_IN_FLIGHT and RELAY_QUEUE_TIMEOUT_MS.
    pub max_in_flight: usize,
    pub queue_timeout: Duration,
}

impl Front {
    pub fn to(backend_url: String) -> Self {
        Self {
            backend_url,
            api_key: Some(KEY),
            credential: None,
            tokens: None,
            source: None,
            integration_subnet: None,
            timeout: Duration::from_secs(5),
            dns: None,
            diag_token: None,
            front_door_id: None,
            pool: PoolSettings::default(),
            max_in_flight: 256,
            queue_timeout: Duration::from_millis(100),
        }
    }

    pub fn state(&self) -> (AppState, DiagState) {
        // Loopback port 9 (discard): nothing answers there, and only names would be looked up.
        let dns = self.dns.unwrap_or_else(|| "127.0.0.1:9".parse().unwrap());
        let resolver = DnsResolver::with_servers(vec![dns], Duration::from_millis(500)).unwrap();
        let settings = BackendSettings {
            base: self.backend_url.parse().unwrap(),
            credential: self.credential.clone().unwrap_or_else(|| {
                CredentialSettings::ApiKey(self.api_key.unwrap_or_default().into())
            }),
            timeout: self.timeout,
            source: self.source.map(|s| s.parse().unwrap()),
            pool: self.pool,
        };
        let backend = match &self.tokens {
            Some(tokens) => {
                BackendClient::with_token_source(settings, resolver.clone(), tokens.clone())
            }
            None => BackendClient::new(settings, resolver.clone()),
        }
        .unwrap();
        let args = DiagArgs {
            diag_token: self.diag_token.map(str::to_owned),
            diag_allow: Some("127.0.0.0/8".into()),
        };
        let diag = DiagState::new(DiagSettings {
            outbound_source_addr: self.source.map(|s| s.parse().unwrap()),
            ..DiagSettings::new(args, resolver.clone())
        })
        .unwrap();
        let state = AppState {
            backend,
            resolver,
            integration_subnet: self.integration_subnet.map(|n| n.parse().unwrap()),
            instance: Arc::new(Instance {
                site: "app-fe".into(),
                id: "fe-1".into(),
            }),
            front_door_id: self.front_door_id.map(Into::into),
            admission: Admission::new(self.max_in_flight, self.queue_timeout),
        };
        (state, diag)
    }

    pub async fn spawn(&self) -> TestServer {
        let (state, diag) = self.state();
        serve_on(
            "127.0.0.1",
            frontend::app(state, diag, Duration::from_secs(10)),
        )
        .await
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A fake back end answering every request with `status` and `body`.
pub async fn spawn_fake(status: u16, body: &'static str, content_type: &'static str) -> TestServer {
    let app = Router::new().fallback(move || async move {
        (
            axum::http::StatusCode::from_u16(status).unwrap(),
            [(axum::http::header::CONTENT_TYPE, content_type)],
            body,
        )
    });
    serve_on("127.0.0.1", app).await
}

/// A server that answers every request as App Service's front end would: a status with its own
/// reason phrase (`403 Ip Forbidden`), the platform's headers, and a page.
pub async fn spawn_platform(
    status: u16,
    reason: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
) -> TestServer {
    let app = Router::new().fallback(move || async move {
        let mut response = axum::response::Response::new(axum::body::Body::from(body));
        *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
        for (name, value) in headers {
            response.headers_mut().insert(
                axum::http::HeaderName::from_static(name),
                axum::http::HeaderValue::from_static(value),
            );
        }
        if let Some(reason) = reason {
            response
                .extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
        }
        response
    });
    serve_on("127.0.0.1", app).await
}

/// A server that accepts connections and never answers.
pub async fn mute_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}
