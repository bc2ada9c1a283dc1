//! Shared helpers: spawn the real back end, the front end, and hostile fake back ends.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use backend::{ApiKeys, AuthMode, CallerPolicy, ClientIpSource, ItemStore};
use diag::api::{DiagArgs, DiagSettings, DiagState};
use diag::dns::DnsResolver;
use frontend::{AppState, BackendClient, BackendSettings, CredentialSettings, TokenSource};
use hosting::Instance;
use tokio::net::TcpListener;

pub const KEY: &str = "backend-key-1";

/// A server running on a loopback socket until dropped or shut down.
pub struct Running {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _data: Option<tempfile::TempDir>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve_on(ip: &str, app: Router) -> Running {
    let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(hosting::serve(
        listener,
        app,
        std::future::pending(),
        Duration::from_secs(2),
    ));
    Running {
        addr,
        task,
        _data: None,
    }
}

/// The real back end, with `API_KEYS=KEY` and the given `ALLOWED_CALLERS`.
pub async fn spawn_backend(allowed: &[&str]) -> Running {
    spawn_backend_with(allowed, AuthMode::from_keys(ApiKeys::new([KEY]))).await
}

/// The real back end in Entra mode, trusting fake-entra's tenant with keys from `authority`:
/// audiences the back end's URI and client ID, the front end's identity, the role.
pub async fn spawn_backend_entra(authority: &str) -> Running {
    let settings = backend::EntraSettings {
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
        keys: backend::jwks::KeyCacheSettings::default(),
    };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let validator = Arc::new(backend::EntraValidator::new(settings, http));
    spawn_backend_with(&[], AuthMode::Entra(validator)).await
}

/// The real back end with the given credential mode.
pub async fn spawn_backend_with(allowed: &[&str], auth: AuthMode) -> Running {
    let data = tempfile::tempdir().unwrap();
    let state = backend::AppState {
        store: ItemStore::open(data.path()).unwrap(),
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
    let mut running = serve_on(
        "127.0.0.1",
        backend::app(state, diag, Duration::from_secs(5)),
    )
    .await;
    running._data = Some(data);
    running
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
        };
        (state, diag)
    }

    pub async fn spawn(&self) -> Running {
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
pub async fn spawn_fake(status: u16, body: &'static str, content_type: &'static str) -> Running {
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
) -> Running {
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

/// A loopback port with nothing listening (bound, noted, released).
pub async fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// A listener whose accept queue is full and that never accepts: connects to it time out,
/// like a firewall that drops SYNs, without leaving loopback.
pub struct Silent {
    pub addr: SocketAddr,
    _listener: tokio::net::TcpListener,
    _fillers: Vec<std::net::TcpStream>,
}

pub async fn silent_listener() -> Silent {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    // Fill the queue; once full, further handshakes stall.
    for _ in 0..4 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => break,
        }
    }
    Silent {
        addr,
        _listener: listener,
        _fillers: fillers,
    }
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
