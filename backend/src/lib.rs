//! The lockdown reference back end: a small items API that must be reachable only from the
//! front end, and `GET /api/caller`, which says how this back end sees whoever called it.
//!
//! Defence in depth behind the platform's network lockdown: `ALLOWED_CALLERS` (the client
//! address, read from the source `CLIENT_IP_SOURCE` names), then one credential (`AUTH_MODE`):
//! an API key from `API_KEYS`, or an Entra ID token of the front end's managed identity.
//!
//! # Layout
//!
//! - This file: the state ([`AppState`]), [`build`] from the configuration, [`app`] (the
//!   routes, no I/O) and the OpenAPI document.
//! - [`config`]: flags and variables, parsed once.
//! - [`routes`]: `/api/items…` and `GET /api/caller` ([`routes::CallerView`]).
//! - [`auth`]: the gate in front of `/api` (network, then credential); [`caller`]: which address
//!   is the client's and whether `ALLOWED_CALLERS` lets it in.
//! - [`entra`]: validating Entra ID tokens; [`jwks`]: the tenant's signing keys, cached.
//! - [`store`]: the items in redb; [`error`]: every error, mapped once to the envelope.
//!
//! Dependencies go one way: `caller` uses no other module here, `error` and `auth` build on it,
//! and `routes` on all of them.

pub mod auth;
pub mod caller;
pub mod config;
pub mod database;
pub mod entra;
pub mod error;
pub mod jwks;
pub mod readiness;
pub mod routes;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use diag::api::{DiagSettings, DiagState};
use hosting::Instance;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub use auth::{ApiKeys, AuthMode, AuthModeName, CallerAuth};
pub use caller::{CallerPolicy, ClientIpSource};
pub use config::BackendConfig;
pub use entra::{EntraSettings, EntraValidator};
pub use store::ItemStore;

/// Largest request body accepted, in bytes: items are small.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The back end's shared state: cheap handles, built once.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The items store.
    pub store: ItemStore,
    /// The credential callers must present.
    pub auth: AuthMode,
    /// App Service Authentication is on (`WEBSITE_AUTH_ENABLED`): only then are its
    /// `X-MS-CLIENT-PRINCIPAL*` headers read.
    pub app_service_auth: bool,
    /// The `ALLOWED_CALLERS` gate.
    pub callers: Arc<CallerPolicy>,
    /// Where the client address is read from.
    pub client_ip_source: ClientIpSource,
    /// Which instance this is.
    pub instance: Arc<Instance>,
}

/// Everything built from the configuration: the app state and the `/diag` state.
#[derive(Debug)]
pub struct Built {
    /// The back end's state.
    pub state: AppState,
    /// The probe's state, for `/diag`.
    pub diag: DiagState,
}

/// Builds the state from the configuration, opening the store (no network: in Entra mode the
/// keys are fetched by [`AppState::spawn_key_prefetch`] or on the first call).
pub fn build(config: &BackendConfig) -> anyhow::Result<Built> {
    let store = ItemStore::open(&config.data_dir)
        .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
    build_with_store(config, store)
}

/// As [`build`], with the store the configuration selects: PostgreSQL when `DATABASE_URL` is
/// set (see [`open_store`]: a database that cannot be used yet leaves the back end unready), else the embedded
/// store under `DATA_DIR`.
pub async fn build_connected(config: &BackendConfig) -> anyhow::Result<Built> {
    let store = open_store(config).await?;
    build_with_store(config, store)
}

/// As [`build`], around an already opened store.
pub fn build_with_store(config: &BackendConfig, store: ItemStore) -> anyhow::Result<Built> {
    let callers = CallerPolicy::new(config.allowed_callers()?);
    let source = config.client_ip_source();
    let mode = config.auth_mode()?;
    // One resolver for the key fetches and `/diag`, as in the front end.
    let resolver = diag::dns::DnsResolver::from_args(&config.dns)?;
    let auth = match mode {
        AuthModeName::None => {
            tracing::warn!(
                "AUTH_MODE is none (or API_KEYS is empty): the back end accepts calls WITHOUT a credential"
            );
            AuthMode::None
        }
        AuthModeName::ApiKey => AuthMode::ApiKey(ApiKeys::new(config.api_keys())),
        AuthModeName::Entra => {
            let settings = config.entra_settings()?;
            if settings.required_role.is_none() {
                tracing::warn!(
                    "ENTRA_REQUIRED_ROLE is empty: any token of an allowed application is accepted without an app role"
                );
            }
            tracing::info!(
                entra.tenant_id = %settings.tenant_id,
                entra.audiences = %settings.audiences.join(","),
                entra.allowed_apps = %settings.allowed_apps.join(","),
                entra.allowed_objects = %settings.allowed_objects.join(","),
                entra.required_role = settings.required_role.as_deref().unwrap_or(""),
                entra.keys_url = %settings.keys_url(),
                "Entra ID tokens required"
            );
            let http = entra::keys_http_client(resolver.clone())?;
            AuthMode::Entra(Arc::new(EntraValidator::new(settings, http)))
        }
    };
    if mode != AuthModeName::ApiKey && !config.api_keys().is_empty() {
        tracing::warn!(
            auth_mode = mode.as_str(),
            "API_KEYS is set but ignored in this AUTH_MODE"
        );
    }
    if !callers.is_enforced() {
        tracing::warn!("ALLOWED_CALLERS is empty: no app-level network check");
    }
    tracing::info!(
        client_ip_source = source.as_str(),
        auth_mode = mode.as_str(),
        app_service_auth = config.app_service_auth(),
        allowed_callers = %config.allowed_callers,
        "back end configured"
    );
    let mut facts = diag::envfacts::EnvFacts::from_process_env().with_host(&config.host);
    facts.auth.auth_mode = Some(mode.as_str().to_owned());
    let diag = DiagState::new(DiagSettings {
        outbound_source_addr: config.outbound.outbound_source_addr,
        facts,
        ..DiagSettings::new(config.diag.clone(), resolver)
    })?;
    Ok(Built {
        state: AppState {
            store,
            auth,
            app_service_auth: config.app_service_auth(),
            callers: Arc::new(callers),
            client_ip_source: source,
            instance: Arc::new(config.host.instance("backend")),
        },
        diag,
    })
}

/// How often a back end waiting for `DATA_DIR`'s lock tries again.
const LOCK_RETRY: Duration = Duration::from_millis(200);

/// Opens the embedded store, waiting up to `wait` while another process holds its lock: during
/// an overlapping restart or a slot swap the old back end still has it for a few seconds, and
/// exiting at once would crash-loop. Logged once when the wait starts.
pub async fn open_embedded_waiting(
    data_dir: &std::path::Path,
    wait: Duration,
) -> Result<ItemStore, store::StoreError> {
    let started = std::time::Instant::now();
    let mut logged = false;
    loop {
        match ItemStore::open(data_dir) {
            Err(store::StoreError::Locked) if started.elapsed() < wait => {
                if !logged {
                    logged = true;
                    tracing::warn!(
                        data_dir = %data_dir.display(),
                        wait_ms = wait.as_millis() as u64,
                        "DATA_DIR is locked by another back end: waiting for it to stop (DATA_DIR_LOCK_WAIT_MS)"
                    );
                }
                tokio::time::sleep(LOCK_RETRY).await;
            }
            Err(store::StoreError::Locked) => {
                return Err(store::StoreError::Locked);
            }
            other => {
                if logged {
                    tracing::info!(
                        waited_ms = started.elapsed().as_millis() as u64,
                        "DATA_DIR's lock was released: store open"
                    );
                }
                return other;
            }
        }
    }
}

/// The store the configuration selects: PostgreSQL at `DATABASE_URL`, else the embedded store
/// under `DATA_DIR`. A `DATABASE_URL` that cannot be right (an address or a `privatelink` name
/// where TLS verifies the name, a malformed URL) stops start-up. A database that cannot be used
/// *now* (name, network, TLS, login) does not: the failure is logged once with its diagnosis,
/// and the store answers `/readyz` and every call with it until the database answers.
pub async fn open_store(config: &BackendConfig) -> anyhow::Result<ItemStore> {
    let Some(settings) = config.database()? else {
        tracing::info!(data_dir = %config.data_dir.display(), "store: embedded (redb)");
        let wait = Duration::from_millis(config.data_dir_lock_wait_ms);
        return open_embedded_waiting(&config.data_dir, wait)
            .await
            .with_context(|| format!("opening the store in {}", config.data_dir.display()));
    };
    if settings.tls == database::TlsMode::Disable {
        tracing::warn!(
            "DATABASE_URL has sslmode=disable: the database connection is NOT encrypted (local use only)"
        );
    }
    let credential = match config.db_auth {
        database::DbAuthName::Password => database::Credential::Password(settings.password.clone()),
        database::DbAuthName::Entra => database::Credential::Token(db_token_provider(config)?),
    };
    let shown = settings.redacted();
    let resolver = diag::dns::DnsResolver::from_args(&config.dns)?;
    let connector = database::Connector::new(
        settings,
        resolver,
        config.outbound.outbound_source_addr,
        credential,
        config.db_connect_timeout(),
    )?;
    let pool = store::postgres::PoolSettings {
        max_size: config.db_pool_size,
        wait_timeout: config.db_connect_timeout(),
    };
    match store::postgres::PostgresStore::open_unready(connector, pool).await {
        Ok((store, None)) => {
            tracing::info!(database = %shown, db_auth = config.db_auth.as_str(), "store: PostgreSQL");
            Ok(ItemStore::Postgres(store))
        }
        // The database is down, unreachable or refuses the login: the back end still starts, so
        // the diagnosis reaches the front end (`/readyz`, every API call) instead of a restart
        // loop behind App Service's 503; the migrations run once the database answers.
        Ok((store, Some(failure))) => {
            let code = failure.code();
            tracing::error!(
                database = %shown,
                code = code.as_str(),
                error = %failure,
                next_step = code.next_step(),
                "store: PostgreSQL cannot be used yet; not ready until it can"
            );
            Ok(ItemStore::Postgres(store))
        }
        Err(other) => Err(anyhow::anyhow!("the database ({shown}): {other}")),
    }
}

/// `DB_AUTH=entra`: tokens of the app's managed identity for the database (`DB_TOKEN_RESOURCE`),
/// from the identity endpoint App Service gives the app — the front end's client
/// ([`hosting::identity`]), renewed ahead of expiry. Without `IDENTITY_ENDPOINT` the first
/// connect fails as `database_token_unavailable`, which says to turn the identity on.
fn db_token_provider(config: &BackendConfig) -> anyhow::Result<Arc<dyn database::TokenProvider>> {
    let settings = hosting::identity::TokenSettings::new(
        config.identity_endpoint.clone(),
        config.identity_header.clone(),
        config.db_token_resource.clone(),
        config.azure_client_id.clone(),
        config.db_connect_timeout(),
    );
    // The identity endpoint is local to the instance: plain http, never a proxy, no source
    // binding (it is not reached through the VNet).
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2).min(config.db_connect_timeout()))
        .build()
        .context("building the identity endpoint's client")?;
    Ok(Arc::new(database::IdentityTokens(Arc::new(
        hosting::identity::TokenSource::new(settings, http),
    ))))
}

impl AppState {
    /// In Entra mode, fetches the signing keys in the background, so that a wrong tenant or an
    /// unreachable authority is logged at start-up rather than on the first call.
    pub fn spawn_key_prefetch(&self) {
        if let AuthMode::Entra(validator) = &self.auth {
            let validator = Arc::clone(validator);
            tokio::spawn(async move { validator.keys().prefetch().await });
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "lockdown backend", description = "The lockdown reference back-end API."),
    modifiers(&SecuritySchemes),
    tags(
        (name = "items", description = "A small sample resource"),
        (name = "diagnostics", description = "How the back end sees its caller"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(auth::API_KEY_HEADER))),
        );
        components.add_security_scheme(
            "entra",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "AUTH_MODE=entra: an Entra ID access token of the front end's managed identity",
                    ))
                    .build(),
            ),
        );
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(routes::router())
}

/// The OpenAPI document, generated from the routes' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

/// The back end's routes (no I/O): `/api/*` and `/readyz` behind the gates, `/api/openapi.json`, `/diag`
/// (404 unless `DIAG_TOKEN` is set), and what `hosting` adds (`/healthz`, request ids,
/// tracing, the request timeout).
pub fn app(state: AppState, diag: DiagState, request_timeout: std::time::Duration) -> Router {
    let (api, doc) = api().split_for_parts();
    let doc = Arc::new(doc);
    let api = api
        .route("/readyz", get(readiness::readyz))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::gate,
        ))
        .route(
            "/api/openapi.json",
            get(move || async move { axum::Json(doc.as_ref().clone()) }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .merge(diag::api::router(diag));
    hosting::with_http_layers(api, request_timeout)
}
