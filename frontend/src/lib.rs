//! The lockdown reference front end: a Backend-for-Frontend. The browser talks to this app only;
//! every back-end call is made server-side, so it can go through the VNet, carry a credential
//! the browser never sees, and fail with a diagnosis instead of a bare 502.
//!
//! Routes: `/` (items and the path panel), `/api/items…` (same-origin JSON relay),
//! `/api/path` (the path report), `/readyz`, `/healthz`, and `/diag` from the probe.
//!
//! # Layout
//!
//! - This file: the state ([`AppState`]), [`build`] from the configuration, [`app`] (the
//!   routes, no I/O, with the security headers).
//! - [`config`]: flags and variables, parsed once.
//! - [`routes`]: the page and its forms, the JSON relay, the path report, readiness.
//! - [`backend_client`]: the typed client, one method per back-end call, and the front end's
//!   copies of the back end's types; [`token`]: managed-identity tokens for it.
//! - [`diagnosis`]: a failed back-end call turned into a code, a message and a next step;
//!   [`path`]: the path report built from the back end's view of its caller.
//! - [`csrf`]: the checks on state-changing requests; [`front_door`]: who called, and whether
//!   through our Front Door profile (`FRONT_DOOR_ID`).

pub mod admission;
pub mod backend_client;
pub mod config;
pub mod csrf;
pub mod diagnosis;
pub mod front_door;
pub mod origin;
pub mod path;
pub mod routes;
/// The managed identity's tokens (shared with the back end's database login: `hosting::identity`).
pub use hosting::identity as token;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue};
use diag::api::{DiagSettings, DiagState};
use diag::dns::DnsResolver;
use hosting::Instance;
use ipnet::IpNet;

pub use admission::Admission;
pub use backend_client::{BackendClient, BackendSettings, CredentialSettings};
pub use config::{BackendAuth, FrontendConfig, RelayArgs, Secret};
pub use origin::PoolSettings;
pub use token::{TokenSettings, TokenSource};

/// Largest request body relayed to the back end, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The front end's shared state: cheap handles, built once.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The typed back-end client.
    pub backend: BackendClient,
    /// The resolver, shared with the client and `/diag`.
    pub resolver: DnsResolver,
    /// `INTEGRATION_SUBNET`.
    pub integration_subnet: Option<IpNet>,
    /// Which instance this is.
    pub instance: Arc<Instance>,
    /// `FRONT_DOOR_ID`: the profile whose `X-Azure-FDID` makes Front Door's headers trusted.
    pub front_door_id: Option<Arc<str>>,
    /// The bound on requests that call the back end.
    pub admission: Admission,
}

/// The relay's handlers take the back-end client alone: extracting the whole state clones each
/// of its handles for every request.
impl axum::extract::FromRef<AppState> for BackendClient {
    fn from_ref(state: &AppState) -> Self {
        state.backend.clone()
    }
}

/// Everything built from the configuration: the app state and the `/diag` state.
#[derive(Debug)]
pub struct Built {
    /// The front end's state.
    pub state: AppState,
    /// The probe's state, for `/diag`.
    pub diag: DiagState,
}

/// `BACKEND_URL` must be a bare origin: a path would be silently replaced by `/api/…`, and
/// credentials in it would be logged and shown on the path panel.
fn check_backend_url(url: &url::Url) -> anyhow::Result<()> {
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        anyhow::bail!(
            "BACKEND_URL must be http(s)://host[:port], got a {} URL",
            url.scheme()
        );
    }
    if !url.username().is_empty() || url.password().is_some() {
        anyhow::bail!(
            "BACKEND_URL must not carry credentials: use BACKEND_API_KEY or BACKEND_AUTH=entra"
        );
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        anyhow::bail!(
            "BACKEND_URL must be the back end's origin only (https://host[:port]), without a path or query"
        );
    }
    Ok(())
}

/// Builds the state from the configuration.
pub fn build(config: &FrontendConfig) -> anyhow::Result<Built> {
    check_backend_url(&config.backend_url)?;
    if let Some(check) = path::backend_name_check(&config.backend_url) {
        // Not fatal (a certificate of your own may carry an address), but every call fails TLS
        // otherwise: say so at start-up, as /api/path does.
        tracing::warn!("BACKEND_URL: {}", check.detail);
    }
    let resolver = DnsResolver::from_args(&config.dns)?;
    let source = config.outbound.outbound_source_addr;
    let timeout = Duration::from_millis(config.backend_timeout_ms);
    let credential = match config.backend_auth {
        BackendAuth::ApiKey => {
            let key = config.backend_api_key.clone().unwrap_or_default();
            if key.is_empty() {
                tracing::warn!(
                    "BACKEND_API_KEY is empty: calls to the back end carry no credential"
                );
            }
            CredentialSettings::ApiKey(key)
        }
        BackendAuth::Entra => {
            let resource = config.token_resource()?;
            if config.identity_endpoint.is_none() || config.identity_header.is_none() {
                // Not fatal: every back-end call is then diagnosed as token_unavailable, with
                // the next step, on the page and in /api/path.
                tracing::error!(
                    "BACKEND_AUTH=entra but IDENTITY_ENDPOINT/IDENTITY_HEADER are not set: this app has no managed identity"
                );
            }
            tracing::info!(
                token.resource = %resource,
                token.client_id = config.azure_client_id.as_deref().unwrap_or("(system-assigned)"),
                "calls to the back end carry a managed-identity token"
            );
            CredentialSettings::ManagedIdentity(Box::new(TokenSettings::new(
                config.identity_endpoint.clone(),
                config.identity_header.clone(),
                resource,
                config
                    .azure_client_id
                    .clone()
                    .filter(|c| !c.trim().is_empty()),
                timeout,
            )))
        }
    };
    let backend = BackendClient::new(
        BackendSettings {
            base: config.backend_url.clone(),
            credential,
            timeout,
            source,
            pool: PoolSettings {
                max_idle: config.relay.backend_pool_max_idle,
                idle_timeout: Duration::from_millis(config.relay.backend_pool_idle_timeout_ms),
            },
        },
        resolver.clone(),
    )?;
    let mut facts = diag::envfacts::EnvFacts::from_process_env().with_host(&config.host);
    facts.auth.backend_auth = Some(config.backend_auth.as_str().to_owned());
    if config.backend_auth == BackendAuth::Entra {
        facts.auth.backend_token_resource = config.token_resource().ok();
    }
    let backend_diag = match config.backend_diag_token.as_ref().filter(|t| !t.is_empty()) {
        Some(token) => Some(
            diag::forward::BackendDiag::new(config.backend_url.clone(), token.expose())
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let diag = DiagState::new(DiagSettings {
        outbound_source_addr: source,
        own_backend_host: Some(config.backend_url.as_str().to_owned()),
        facts,
        backend_diag,
        ..DiagSettings::new(config.diag.clone(), resolver.clone())
    })?;
    if let Some(warning) = config.request_budget_warning() {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        backend_url = %config.backend_url,
        backend_auth = config.backend_auth.as_str(),
        integration_subnet = ?config.integration_subnet.map(|n| n.to_string()),
        outbound_source_addr = ?source,
        front_door_id = ?config.front_door_id,
        "front end configured"
    );
    Ok(Built {
        state: AppState {
            backend,
            resolver,
            integration_subnet: config.integration_subnet,
            instance: Arc::new(config.host.instance("frontend")),
            front_door_id: front_door::configured_id(config.front_door_id.as_deref())
                .map(Arc::from),
            admission: Admission::new(
                config.relay.relay_max_in_flight,
                Duration::from_millis(config.relay.relay_queue_timeout_ms),
            ),
        },
        diag,
    })
}

/// The security headers of every answer, built once.
const SECURITY_HEADERS: [(HeaderName, HeaderValue); 8] = [
    (
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ),
    (
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    ),
    (
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    ),
    (
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    ),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    ),
    (
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    ),
    (
        HeaderName::from_static("strict-transport-security"),
        HeaderValue::from_static("max-age=31536000"),
    ),
];

/// Adds the security headers a handler did not set itself: one layer for all eight (eight
/// `SetResponseHeaderLayer`s nest eight services and futures around every request).
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    }
    response
}

/// The front end's routes (no I/O), with `/diag`, security headers and what `hosting` adds.
pub fn app(state: AppState, diag: DiagState, request_timeout: Duration) -> Router {
    let bound = state.admission.clone();
    let router = routes::router()
        .route_layer(axum::middleware::from_fn_with_state(
            bound,
            admission::admit,
        ))
        .with_state(state)
        .merge(diag::api::router(diag))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(security_headers));
    hosting::with_http_layers(router, request_timeout)
}

#[cfg(test)]
mod backend_url_tests {
    use super::check_backend_url;

    #[test]
    fn backend_url_is_an_origin() {
        for ok in ["https://app-be.azurewebsites.net", "http://127.0.0.1:8081/"] {
            check_backend_url(&ok.parse().unwrap()).unwrap();
        }
        for bad in [
            "https://u:p@app-be.example",
            "https://gw.example/backend/",
            "https://a.example/?x=1",
            "ftp://a.example",
        ] {
            assert!(check_backend_url(&bad.parse().unwrap()).is_err(), "{bad}");
        }
    }
}
