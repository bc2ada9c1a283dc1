//! App Service's managed-identity endpoint, on `127.0.0.1:0`: `GET /msi/token?resource=…&
//! api-version=2019-08-01[&client_id=…]` with the `X-IDENTITY-HEADER` secret. It mints v1
//! app-only tokens for the resources it was granted, signed by its [`SigningKey`], and can
//! misbehave the way the real endpoint does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::claims::{app_v1, unix_now};
use crate::keys::SigningKey;

/// The path the endpoint answers on (`IDENTITY_ENDPOINT` is `http://127.0.0.1:PORT/msi/token`).
pub const TOKEN_PATH: &str = "/msi/token";

/// The managed identity the endpoint hands tokens out for.
#[derive(Debug, Clone)]
pub struct ManagedIdentity {
    /// Its client ID (`appid` in its tokens; `AZURE_CLIENT_ID` for a user-assigned identity).
    pub client_id: String,
    /// Its object (principal) ID (`oid` and `sub`).
    pub object_id: String,
    /// Its tenant.
    pub tenant: String,
}

/// How the endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Tokens as the real endpoint hands them out.
    Normal,
    /// 400 with this message (what the endpoint says for an unknown identity or resource).
    BadRequest(String),
    /// 500 "An unexpected error occured while fetching the AAD Token." every time.
    Vague500,
    /// 500 for the next N requests, then normal.
    FailTimes(usize),
    /// 429 for the next N requests, then normal.
    Throttle(usize),
    /// Waits this long before answering normally.
    Slow(Duration),
}

/// What a request to the endpoint carried (never the secret header's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRequest {
    /// `resource`.
    pub resource: Option<String>,
    /// `api-version`.
    pub api_version: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// Whether `X-IDENTITY-HEADER` matched the secret.
    pub header_ok: bool,
}

/// How `expires_on` is written in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiresOnFormat {
    /// `"1700000000"`, as App Service writes it.
    String,
    /// `1700000000`.
    Number,
}

struct Settings {
    behaviour: Behaviour,
    lifetime: Duration,
    expires_on_format: ExpiresOnFormat,
    user_assigned: bool,
    fixed_token: Option<String>,
}

struct IdentityState {
    secret: String,
    key: SigningKey,
    identity: ManagedIdentity,
    grants: Mutex<HashMap<String, Vec<String>>>,
    settings: Mutex<Settings>,
    requests: Mutex<Vec<IdentityRequest>>,
    issued: AtomicUsize,
    served: AtomicUsize,
}

/// A running managed-identity endpoint. Dropping it stops the server.
pub struct FakeIdentity {
    addr: SocketAddr,
    state: Arc<IdentityState>,
    task: tokio::task::JoinHandle<()>,
}

// By hand: the state holds signing keys, which a debug print must not show.
impl std::fmt::Debug for FakeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeIdentity")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeIdentity {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeIdentity {
    /// Serves tokens for `identity`, signed by `key`, to callers that send `secret` in
    /// `X-IDENTITY-HEADER`. The identity is system-assigned (no `client_id` expected) until
    /// [`FakeIdentity::set_user_assigned`].
    pub async fn start(
        identity: ManagedIdentity,
        key: SigningKey,
        secret: &str,
    ) -> std::io::Result<Self> {
        let state = Arc::new(IdentityState {
            secret: secret.to_owned(),
            key,
            identity,
            grants: Mutex::new(HashMap::new()),
            settings: Mutex::new(Settings {
                behaviour: Behaviour::Normal,
                lifetime: Duration::from_secs(24 * 3600),
                expires_on_format: ExpiresOnFormat::String,
                user_assigned: false,
                fixed_token: None,
            }),
            requests: Mutex::new(Vec::new()),
            issued: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route(TOKEN_PATH, get(token))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// What `IDENTITY_ENDPOINT` must be.
    pub fn endpoint(&self) -> String {
        format!("http://{}{TOKEN_PATH}", self.addr)
    }

    /// Lets the identity get tokens for `resource`, carrying `roles` (the app roles assigned to
    /// it on that resource's app). Other resources get Entra's AADSTS500011 answer.
    pub fn grant(&self, resource: &str, roles: &[&str]) {
        self.state.grants.lock().expect("grants lock").insert(
            resource.to_owned(),
            roles.iter().map(|r| (*r).to_owned()).collect(),
        );
    }

    /// Changes how the endpoint answers.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.state.settings.lock().expect("settings lock").behaviour = behaviour;
    }

    /// How long tokens live from now (default 24 h, as managed-identity tokens do).
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.state.settings.lock().expect("settings lock").lifetime = lifetime;
    }

    /// How `expires_on` is written.
    pub fn set_expires_on_format(&self, format: ExpiresOnFormat) {
        self.state
            .settings
            .lock()
            .expect("settings lock")
            .expires_on_format = format;
    }

    /// Answers `token` as the access token instead of a freshly signed one (`None`: signed
    /// tokens again): for a peer that compares the token as a password, as the tests'
    /// PostgreSQL does where Azure's checks the signature.
    pub fn set_fixed_token(&self, token: Option<&str>) {
        self.state
            .settings
            .lock()
            .expect("settings lock")
            .fixed_token = token.map(str::to_owned);
    }

    /// A user-assigned identity: requests must name it with `client_id`.
    pub fn set_user_assigned(&self, user_assigned: bool) {
        self.state
            .settings
            .lock()
            .expect("settings lock")
            .user_assigned = user_assigned;
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<IdentityRequest> {
        self.state.requests.lock().expect("requests lock").clone()
    }

    /// How many requests reached the endpoint.
    pub fn served(&self) -> usize {
        self.state.served.load(Ordering::SeqCst)
    }

    /// How many tokens it handed out.
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    resource: Option<String>,
    #[serde(rename = "api-version")]
    api_version: Option<String>,
    client_id: Option<String>,
}

fn failure(status: StatusCode, message: &str) -> Response {
    let correlation_id = format!("fake-correlation-{:08x}", unix_now() as u32 ^ 0x5a5a_5a5a);
    (
        status,
        axum::Json(json!({
            "statusCode": status.as_u16(),
            "message": message,
            "correlationId": correlation_id,
        })),
    )
        .into_response()
}

async fn token(
    State(state): State<Arc<IdentityState>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Response {
    let header_ok = headers
        .get("x-identity-header")
        .is_some_and(|v| v.as_bytes() == state.secret.as_bytes());
    state.served.fetch_add(1, Ordering::SeqCst);
    state
        .requests
        .lock()
        .expect("requests lock")
        .push(IdentityRequest {
            resource: query.resource.clone(),
            api_version: query.api_version.clone(),
            client_id: query.client_id.clone(),
            header_ok,
        });

    let (behaviour, lifetime, format, user_assigned, fixed_token) = {
        let mut settings = state.settings.lock().expect("settings lock");
        let behaviour = settings.behaviour.clone();
        match &mut settings.behaviour {
            Behaviour::FailTimes(n) | Behaviour::Throttle(n) if *n > 0 => *n -= 1,
            _ => {}
        }
        (
            behaviour,
            settings.lifetime,
            settings.expires_on_format,
            settings.user_assigned,
            settings.fixed_token.clone(),
        )
    };
    match behaviour {
        Behaviour::BadRequest(message) => return failure(StatusCode::BAD_REQUEST, &message),
        Behaviour::Vague500 | Behaviour::FailTimes(1..) => {
            return failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "An unexpected error occured while fetching the AAD Token.",
            );
        }
        Behaviour::Throttle(1..) => {
            return failure(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests: retry later.",
            );
        }
        Behaviour::Slow(delay) => tokio::time::sleep(delay).await,
        _ => {}
    }

    if !header_ok {
        return failure(
            StatusCode::BAD_REQUEST,
            "The X-IDENTITY-HEADER header is missing or not valid.",
        );
    }
    if query.api_version.as_deref() != Some("2019-08-01") {
        return failure(
            StatusCode::BAD_REQUEST,
            "(UnsupportedApiVersion) The HTTP resource does not support this API version.",
        );
    }
    match (&query.client_id, user_assigned) {
        (Some(id), _) if *id != state.identity.client_id => {
            return failure(
                StatusCode::BAD_REQUEST,
                "No Managed Identity found for specified ClientId/ResourceId/PrincipalId.",
            );
        }
        (None, true) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "Unable to load the proper Managed Identity.",
            );
        }
        _ => {}
    }
    let Some(resource) = query.resource.filter(|r| !r.is_empty()) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "The resource parameter is required.",
        );
    };
    let roles = state
        .grants
        .lock()
        .expect("grants lock")
        .get(&resource)
        .cloned();
    let Some(roles) = roles else {
        return failure(
            StatusCode::BAD_REQUEST,
            &format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant.",
                state.identity.tenant
            ),
        );
    };
    let role_refs: Vec<&str> = roles.iter().map(String::as_str).collect();
    let mut claims = app_v1(
        &state.identity.tenant,
        &resource,
        &state.identity.client_id,
        &state.identity.object_id,
        &role_refs,
    );
    let serial = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let expires_on = unix_now() + lifetime.as_secs() as i64;
    claims["exp"] = json!(expires_on);
    claims["uti"] = json!(format!("fake-lab-uti-{serial}"));
    let access_token = fixed_token.unwrap_or_else(|| state.key.token(&claims));
    let expires_on = match format {
        ExpiresOnFormat::String => json!(expires_on.to_string()),
        ExpiresOnFormat::Number => json!(expires_on),
    };
    axum::Json(json!({
        "access_token": access_token,
        "expires_on": expires_on,
        "resource": resource,
        "token_type": "Bearer",
        "client_id": state.identity.client_id,
    }))
    .into_response()
}
