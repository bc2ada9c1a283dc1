//! The two gates in front of `/api`: the caller's network (`ALLOWED_CALLERS`), then its
//! credential — one [`AuthMode`]: none, an API key (`API_KEYS`, compared in constant time) or an
//! Entra ID token of the front end's managed identity ([`crate::entra`]). Defence in depth behind
//! the platform's lockdown.
//!
//! App Service Authentication's `X-MS-CLIENT-PRINCIPAL*` headers are read only when the platform
//! says it is on (`WEBSITE_AUTH_ENABLED=true`): the platform then strips what callers send and
//! sets its own. Without it anyone can send them, so they are ignored entirely, and they never
//! stand in for the app's own token check.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::caller::client_addr;
use crate::entra::{EntraCaller, EntraValidator};
use crate::error::ApiError;

/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The accepted API keys. Several are allowed so a key can be rotated without downtime.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Arc<Vec<Vec<u8>>>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} configured)", self.keys.len())
    }
}

impl ApiKeys {
    /// Keys from their string values; empty strings are ignored.
    pub fn new<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let keys = keys
            .into_iter()
            .map(|k| k.as_ref().as_bytes().to_vec())
            .filter(|k| !k.is_empty())
            .collect();
        Self {
            keys: Arc::new(keys),
        }
    }

    /// True when keys are configured (and so required).
    pub fn required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks a presented key against every configured key without short-circuiting, so the
    /// time taken does not tell which key (or how much of it) matched.
    pub fn verify(&self, presented: &[u8]) -> bool {
        // Every key is compared, each in time that depends only on its own length.
        self.keys.iter().fold(false, |matched, key| {
            matched | hosting::secret::constant_time_eq(key, presented)
        })
    }
}

/// The name of a credential mode, as `AUTH_MODE` and `/api/caller` spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AuthModeName {
    /// No credential is checked (logged loudly at start-up).
    None,
    /// An API key in `X-Api-Key`.
    ApiKey,
    /// An Entra ID access token in `Authorization: Bearer`.
    Entra,
}

impl AuthModeName {
    /// The name used in configuration and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ApiKey => "api-key",
            Self::Entra => "entra",
        }
    }
}

/// How `/api` callers must prove who they are: the one place the credential is decided.
#[derive(Debug, Clone)]
pub enum AuthMode {
    /// Nobody has to prove anything.
    None,
    /// One of these keys in `X-Api-Key` (an empty set is treated as [`AuthMode::None`]).
    ApiKey(ApiKeys),
    /// An Entra ID token that this validator accepts.
    Entra(Arc<EntraValidator>),
}

impl AuthMode {
    /// API-key mode when keys are given, else none (the historical default of `API_KEYS`).
    pub fn from_keys(keys: ApiKeys) -> Self {
        if keys.required() {
            Self::ApiKey(keys)
        } else {
            Self::None
        }
    }

    /// The mode's name.
    pub fn name(&self) -> AuthModeName {
        match self {
            Self::None => AuthModeName::None,
            Self::ApiKey(keys) if !keys.required() => AuthModeName::None,
            Self::ApiKey(_) => AuthModeName::ApiKey,
            Self::Entra(_) => AuthModeName::Entra,
        }
    }
}

/// What App Service Authentication said about the caller (only when it is on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlatformPrincipal {
    /// `X-MS-CLIENT-PRINCIPAL-ID`: the caller's object ID as the platform validated it.
    pub principal_id: Option<String>,
    /// `X-MS-CLIENT-PRINCIPAL-NAME`.
    pub principal_name: Option<String>,
    /// `X-MS-CLIENT-PRINCIPAL-IDP` (`aad`).
    pub identity_provider: Option<String>,
}

impl PlatformPrincipal {
    /// Reads the platform's headers; `None` when none is present.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let read = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().filter(|c| !c.is_control()).take(128).collect())
        };
        let principal = Self {
            principal_id: read("x-ms-client-principal-id"),
            principal_name: read("x-ms-client-principal-name"),
            identity_provider: read("x-ms-client-principal-idp"),
        };
        (principal.principal_id.is_some()
            || principal.principal_name.is_some()
            || principal.identity_provider.is_some())
        .then_some(principal)
    }
}

/// How the credential gate let the caller in (in `/api/caller`, never a secret or a token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CallerAuth {
    /// The credential mode in force.
    pub mode: AuthModeName,
    /// Entra mode: the calling application (`appid`/`azp`), i.e. the managed identity's client ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Entra mode: the caller's object ID (`oid`), i.e. the managed identity's principal ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Entra mode: the app roles in the token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Entra mode: the token version (`1.0` or `2.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_version: Option<String>,
    /// What App Service Authentication reported, when it is on (`WEBSITE_AUTH_ENABLED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformPrincipal>,
}

impl CallerAuth {
    /// A caller let in by `mode` without more to say (none, API key).
    pub fn plain(mode: AuthModeName) -> Self {
        Self {
            mode,
            app_id: None,
            object_id: None,
            roles: Vec::new(),
            token_version: None,
            platform: None,
        }
    }

    /// A caller let in by its Entra token.
    pub fn entra(caller: EntraCaller) -> Self {
        Self {
            mode: AuthModeName::Entra,
            app_id: Some(caller.app_id),
            object_id: Some(caller.object_id),
            roles: caller.roles,
            token_version: Some(caller.token_version.to_owned()),
            platform: None,
        }
    }
}

/// Checks the credential `mode` asks for.
pub async fn authenticate(mode: &AuthMode, headers: &HeaderMap) -> Result<CallerAuth, ApiError> {
    match mode {
        AuthMode::None => Ok(CallerAuth::plain(AuthModeName::None)),
        AuthMode::ApiKey(keys) if !keys.required() => Ok(CallerAuth::plain(AuthModeName::None)),
        AuthMode::ApiKey(keys) => {
            let presented = headers
                .get(API_KEY_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if keys.verify(presented) {
                Ok(CallerAuth::plain(AuthModeName::ApiKey))
            } else {
                Err(ApiError::Unauthorized {
                    missing: presented.is_empty(),
                })
            }
        }
        AuthMode::Entra(validator) => match validator.validate_request(headers).await {
            Ok(caller) => Ok(CallerAuth::entra(caller)),
            Err(error) => {
                // Logged once, here; the token itself never is.
                tracing::warn!(
                    auth.code = error.code(),
                    http.status = error.status().as_u16(),
                    error = %error,
                    "token refused"
                );
                Err(ApiError::Token(error))
            }
        },
    }
}

/// Middleware on `/api`: the network gate first (403 `caller_not_allowed`), then the credential
/// (API key: 401 `unauthorized`; Entra: 401/403/503 with the codes of [`crate::entra::TokenError`]).
/// The chosen client address and the [`CallerAuth`] are left in the request's extensions.
pub async fn gate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let client = client_addr(state.client_ip_source, request.headers(), peer);
    if let Err(refusal) = state.callers.check(client.ip) {
        return Err(ApiError::CallerNotAllowed { client, refusal });
    }
    let mut auth = authenticate(&state.auth, request.headers()).await?;
    if state.app_service_auth {
        auth.platform = PlatformPrincipal::from_headers(request.headers());
    }
    request.extensions_mut().insert(client);
    request.extensions_mut().insert(auth);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_key_verifies() {
        let keys = ApiKeys::new(["old-key", "new-key", ""]);
        assert!(keys.required());
        assert!(keys.verify(b"old-key"));
        assert!(keys.verify(b"new-key"));
        assert!(!keys.verify(b"new-ke"));
        assert!(!keys.verify(b""));
        assert!(!ApiKeys::new([""]).required());
    }

    #[test]
    fn debug_never_shows_a_key() {
        let shown = format!("{:?}", ApiKeys::new(["s3cret"]));
        assert!(!shown.contains("s3cret"), "{shown}");
        let shown = format!("{:?}", AuthMode::from_keys(ApiKeys::new(["s3cret"])));
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn an_empty_key_set_means_no_credential() {
        assert_eq!(
            AuthMode::from_keys(ApiKeys::new([""])).name(),
            AuthModeName::None
        );
        assert_eq!(
            AuthMode::from_keys(ApiKeys::new(["k"])).name(),
            AuthModeName::ApiKey
        );
    }

    #[test]
    fn platform_headers_are_read_bounded() {
        let mut headers = HeaderMap::new();
        assert_eq!(PlatformPrincipal::from_headers(&headers), None);
        headers.insert("x-ms-client-principal-id", "abc".parse().unwrap());
        headers.insert("x-ms-client-principal-idp", "aad".parse().unwrap());
        let principal = PlatformPrincipal::from_headers(&headers).unwrap();
        assert_eq!(principal.principal_id.as_deref(), Some("abc"));
        assert_eq!(principal.identity_provider.as_deref(), Some("aad"));
        assert_eq!(principal.principal_name, None);
    }
}
