//! The Entra ID credential (`AUTH_MODE=entra`): the front end calls with an access token of its
//! own managed identity, and the back end accepts that caller only.
//!
//! In this order, each failure with its own code (see [`TokenError`]):
//! 1. exactly one `Authorization: Bearer <token>` header;
//! 2. a JWT (three base64url parts, a JSON header), signed with RS256 — nothing else, so `none`,
//!    HS256 and "the public key used as an HMAC secret" are refused before any key is touched;
//! 3. its `kid` among the tenant's published keys ([`crate::jwks`]) and the signature valid;
//! 4. then the claims, read only once the signature holds: `exp` and `nbf` (with
//!    `ENTRA_LEEWAY_S`), `tid`, the issuer (exactly `https://sts.windows.net/{tenant}/` for v1 or
//!    `https://login.microsoftonline.com/{tenant}/v2.0` for v2), `aud` among `ENTRA_AUDIENCES`,
//!    an app-only token (no `scp`, `idtyp` app when present, `sub` = `oid`), the calling
//!    application (`appid` in v1, `azp` in v2) among `ENTRA_ALLOWED_APPS`, `oid` among
//!    `ENTRA_ALLOWED_OBJECTS`, and `ENTRA_REQUIRED_ROLE` in `roles`.
//!
//! The issuers are the public cloud's and do not depend on `ENTRA_AUTHORITY`, which only says
//! where the keys are fetched (tests point it at loopback). Tokens are never logged or echoed;
//! messages quote claim values (bounded), never the token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use url::Url;

use crate::jwks::{KeyCache, KeyCacheSettings, KeyError};

/// `ENTRA_AUTHORITY`'s default.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Longest `Authorization` header accepted, in bytes (Entra tokens are 1–3 KiB).
pub const MAX_AUTHORIZATION_BYTES: usize = 16 * 1024;
/// Longest claim value quoted in an error message.
const MAX_QUOTED_CHARS: usize = 120;

/// What the validator accepts. Built from `ENTRA_*` (see `BackendConfig::entra_settings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraSettings {
    /// The tenant (lowercase GUID): `tid` and both issuers.
    pub tenant_id: String,
    /// Accepted `aud` values (the application ID URI and/or client ID), compared
    /// case-insensitively.
    pub audiences: Vec<String>,
    /// Accepted calling applications (`appid`/`azp`); empty: not checked.
    pub allowed_apps: Vec<String>,
    /// Accepted caller object IDs (`oid`); empty: not checked.
    pub allowed_objects: Vec<String>,
    /// The app role the caller must hold; `None`: not checked.
    pub required_role: Option<String>,
    /// Where the keys are fetched: `{authority}/{tenant}/discovery/v2.0/keys`.
    pub authority: Url,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// The key cache's timing.
    pub keys: KeyCacheSettings,
}

impl EntraSettings {
    /// The keys URL: `{authority}/{tenant}/discovery/v2.0/keys`.
    pub fn keys_url(&self) -> Url {
        let base = self.authority.as_str().trim_end_matches('/');
        format!("{base}/{}/discovery/v2.0/keys", self.tenant_id)
            .parse()
            .expect("an authority URL with a tenant path is a URL")
    }

    /// The v1 issuer: `https://sts.windows.net/{tenant}/` (with the trailing slash).
    pub fn issuer_v1(&self) -> String {
        format!("https://sts.windows.net/{}/", self.tenant_id)
    }

    /// The v2 issuer: `https://login.microsoftonline.com/{tenant}/v2.0`.
    pub fn issuer_v2(&self) -> String {
        format!("https://login.microsoftonline.com/{}/v2.0", self.tenant_id)
    }
}

/// Why a request's token was refused. 401 when the token does not authenticate the caller, 403
/// when it does but the caller is not allowed, 503 when it cannot be checked at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// 401 `missing_token`: no `Authorization` header.
    #[error("no bearer token was sent")]
    MissingToken,
    /// 401 `malformed_authorization`: not exactly one `Authorization: Bearer <token>` header.
    #[error("the Authorization header is not usable: {0}")]
    MalformedAuthorization(String),
    /// 401 `malformed_token`: the bearer value is not a JWT, or lacks a claim every Entra token has.
    #[error("the bearer token is not a well-formed Entra access token: {0}")]
    MalformedToken(String),
    /// 401 `unsupported_algorithm`: the header's `alg` is not RS256 (`none`, HS256, …).
    #[error("the token is signed with {0:?}; only RS256 is accepted")]
    UnsupportedAlgorithm(String),
    /// 401 `unknown_key`: no published signing key has the token's `kid`, even after a refetch.
    #[error("the token names signing key {0:?}, which the tenant does not publish")]
    UnknownKey(String),
    /// 401 `invalid_signature`: the signature does not verify with the key the `kid` names.
    #[error("the token's signature is not valid")]
    InvalidSignature,
    /// 401 `token_expired`: `exp` lies in the past by more than the leeway.
    #[error("the token expired {ago_s} s ago (leeway {leeway_s} s)")]
    Expired {
        /// Seconds since `exp`.
        ago_s: i64,
        /// The leeway in force.
        leeway_s: u64,
    },
    /// 401 `token_not_yet_valid`: `nbf` lies in the future by more than the leeway.
    #[error("the token is valid only in {in_s} s (leeway {leeway_s} s)")]
    NotYetValid {
        /// Seconds until `nbf`.
        in_s: i64,
        /// The leeway in force.
        leeway_s: u64,
    },
    /// 401 `wrong_tenant`: `tid` is not `ENTRA_TENANT_ID`.
    #[error("the token comes from tenant {0}, not from ENTRA_TENANT_ID")]
    WrongTenant(String),
    /// 401 `wrong_issuer`: `iss` is neither the v1 nor the v2 issuer of the tenant, exactly.
    #[error("the token's issuer {0} is not the tenant's v1 or v2 issuer")]
    WrongIssuer(String),
    /// 401 `wrong_audience`: `aud` is not in `ENTRA_AUDIENCES`.
    #[error("the token is for audience {got}, not for this back end")]
    WrongAudience {
        /// The token's `aud` (the caller's own data; the configured audiences are never echoed
        /// to an anonymous caller).
        got: String,
    },
    /// 403 `delegated_token`: a token for a signed-in user (`scp`, `idtyp` user, or `sub` ≠ `oid`).
    #[error("the token is a delegated (user) token; only app-only tokens are accepted")]
    Delegated,
    /// 403 `app_not_allowed`: the calling application (`appid`/`azp`) is not in `ENTRA_ALLOWED_APPS`.
    #[error("calling application {0} is not in ENTRA_ALLOWED_APPS")]
    AppNotAllowed(String),
    /// 403 `object_not_allowed`: the caller's `oid` is not in `ENTRA_ALLOWED_OBJECTS`.
    #[error("caller object {0} is not in ENTRA_ALLOWED_OBJECTS")]
    ObjectNotAllowed(String),
    /// 403 `role_missing`: `roles` lacks `ENTRA_REQUIRED_ROLE`.
    #[error("the caller does not hold the app role {required} (its roles: {held})")]
    RoleMissing {
        /// `ENTRA_REQUIRED_ROLE`.
        required: String,
        /// The roles the token carries.
        held: String,
    },
    /// 503 `signing_keys_unavailable`: the keys could not be fetched, so nothing can be checked.
    /// The inner text (why the fetch failed) is logged where it happens, never returned.
    #[error("Entra ID's signing keys are unavailable")]
    KeysUnavailable(String),
}

impl TokenError {
    /// The status this failure answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Delegated
            | Self::AppNotAllowed(_)
            | Self::ObjectNotAllowed(_)
            | Self::RoleMissing { .. } => StatusCode::FORBIDDEN,
            Self::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The stable code in the error envelope.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::MalformedAuthorization(_) => "malformed_authorization",
            Self::MalformedToken(_) => "malformed_token",
            Self::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Self::UnknownKey(_) => "unknown_key",
            Self::InvalidSignature => "invalid_signature",
            Self::Expired { .. } => "token_expired",
            Self::NotYetValid { .. } => "token_not_yet_valid",
            Self::WrongTenant(_) => "wrong_tenant",
            Self::WrongIssuer(_) => "wrong_issuer",
            Self::WrongAudience { .. } => "wrong_audience",
            Self::Delegated => "delegated_token",
            Self::AppNotAllowed(_) => "app_not_allowed",
            Self::ObjectNotAllowed(_) => "object_not_allowed",
            Self::RoleMissing { .. } => "role_missing",
            Self::KeysUnavailable(_) => "signing_keys_unavailable",
        }
    }

    /// The next step, for whoever configures the caller or this back end.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::MissingToken => {
                "send Authorization: Bearer <token>; the front end does so with BACKEND_AUTH=entra and a managed identity"
            }
            Self::MalformedAuthorization(_) => {
                "send exactly one Authorization header, of the form Bearer <token>"
            }
            Self::MalformedToken(_) => {
                "the bearer value must be an Entra ID access token (a JWT) for this back end"
            }
            Self::UnsupportedAlgorithm(_) => {
                "Entra ID signs access tokens with RS256; tokens signed any other way are refused"
            }
            Self::UnknownKey(_) => {
                "the token was not signed by the tenant in ENTRA_TENANT_ID (or its key is brand new: retry in a minute)"
            }
            Self::InvalidSignature => {
                "the token was altered or not issued by Entra ID; get a new one from the managed identity"
            }
            Self::Expired { .. } => {
                "get a fresh token (the front end renews its token ahead of expiry); check both clocks"
            }
            Self::NotYetValid { .. } => {
                "check the clocks of the caller and of the back end, or raise ENTRA_LEEWAY_S a little"
            }
            Self::WrongTenant(_) => {
                "ENTRA_TENANT_ID must be the tenant of the front end's managed identity"
            }
            Self::WrongIssuer(_) => {
                "accepted issuers are https://sts.windows.net/{tenant}/ (v1) and https://login.microsoftonline.com/{tenant}/v2.0 (v2)"
            }
            Self::WrongAudience { .. } => {
                "the front end's BACKEND_TOKEN_RESOURCE must be the back end's application ID URI (or client ID), and that value must be in the back end's ENTRA_AUDIENCES"
            }
            Self::Delegated => {
                "call with the front end's managed identity (an app-only token), not with a user's token"
            }
            Self::AppNotAllowed(_) => {
                "add the client ID of the front end's managed identity to ENTRA_ALLOWED_APPS"
            }
            Self::ObjectNotAllowed(_) => {
                "add the object (principal) ID of the front end's managed identity to ENTRA_ALLOWED_OBJECTS"
            }
            Self::RoleMissing { .. } => {
                "assign the back end's app role to the front end's managed identity (infra/scripts/auth.sh or the Bicep); a token cached before the assignment carries the role only once renewed (within 24 h, or restart the front end)"
            }
            Self::KeysUnavailable(_) => {
                "the back end could not fetch the signing keys from ENTRA_AUTHORITY: check its outbound access to login.microsoftonline.com"
            }
        }
    }

    /// The `WWW-Authenticate` value of a 401 (RFC 6750), `None` for other statuses.
    pub fn www_authenticate(&self) -> Option<&'static str> {
        match self {
            Self::MissingToken => Some("Bearer"),
            e if e.status() == StatusCode::UNAUTHORIZED => Some("Bearer error=\"invalid_token\""),
            _ => None,
        }
    }
}

/// Who called, according to a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraCaller {
    /// The calling application (`appid` in v1 tokens, `azp` in v2).
    pub app_id: String,
    /// The caller's object ID (`oid`): the managed identity's principal.
    pub object_id: String,
    /// The app roles the token carries.
    pub roles: Vec<String>,
    /// `1.0` or `2.0`.
    pub token_version: &'static str,
}

/// Validates Entra ID access tokens. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct EntraValidator {
    settings: EntraSettings,
    keys: KeyCache,
    issuer_v1: String,
    issuer_v2: String,
}

impl EntraValidator {
    /// A validator fetching keys with `http` (give it a client without redirects).
    pub fn new(settings: EntraSettings, http: reqwest::Client) -> Self {
        let keys = KeyCache::new(settings.keys_url(), http, settings.keys);
        Self {
            issuer_v1: settings.issuer_v1(),
            issuer_v2: settings.issuer_v2(),
            settings,
            keys,
        }
    }

    /// What it accepts.
    pub fn settings(&self) -> &EntraSettings {
        &self.settings
    }

    /// The key cache (its fetch counter is what the rotation tests watch).
    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// Validates the request's bearer token.
    pub async fn validate_request(&self, headers: &HeaderMap) -> Result<EntraCaller, TokenError> {
        let token = bearer_token(headers)?;
        self.validate(token).await
    }

    /// Validates one token.
    pub async fn validate(&self, token: &str) -> Result<EntraCaller, TokenError> {
        let header = parse_header(token)?;
        if header.alg != "RS256" {
            return Err(TokenError::UnsupportedAlgorithm(quote(&header.alg)));
        }
        let kid = header.kid.filter(|k| !k.is_empty()).ok_or_else(|| {
            TokenError::MalformedToken("the header names no signing key (kid)".into())
        })?;
        let key = self.keys.key_for(&kid).await.map_err(|e| match e {
            KeyError::Unknown { kid } => TokenError::UnknownKey(quote(&kid)),
            KeyError::Unavailable(why) => TokenError::KeysUnavailable(why),
        })?;
        let claims = verify_signature(token, &key)?;
        self.check_claims(&claims, unix_now())
    }

    /// The claim checks, on claims whose signature held.
    fn check_claims(&self, claims: &Claims, now: i64) -> Result<EntraCaller, TokenError> {
        let leeway_s = self.settings.leeway.as_secs();
        let leeway = leeway_s as i64;
        let exp = claims
            .exp
            .ok_or_else(|| TokenError::MalformedToken("the token has no expiry (exp)".into()))?;
        if now > exp.saturating_add(leeway) {
            return Err(TokenError::Expired {
                ago_s: now - exp,
                leeway_s,
            });
        }
        if let Some(nbf) = claims.nbf
            && nbf.saturating_sub(leeway) > now
        {
            return Err(TokenError::NotYetValid {
                in_s: nbf - now,
                leeway_s,
            });
        }
        let tid = claims.tid.as_deref().unwrap_or("(none)");
        if !tid.eq_ignore_ascii_case(&self.settings.tenant_id) {
            return Err(TokenError::WrongTenant(quote(tid)));
        }
        let iss = claims.iss.as_deref().unwrap_or("(none)");
        let version = if iss == self.issuer_v1 {
            "1.0"
        } else if iss == self.issuer_v2 {
            "2.0"
        } else {
            return Err(TokenError::WrongIssuer(quote(iss)));
        };
        let audiences = claims
            .aud
            .as_ref()
            .map(Audience::values)
            .unwrap_or_default();
        let accepted = audiences.iter().any(|aud| {
            self.settings
                .audiences
                .iter()
                .any(|want| want.eq_ignore_ascii_case(aud))
        });
        if !accepted {
            return Err(TokenError::WrongAudience {
                got: quote(&if audiences.is_empty() {
                    "(none)".to_owned()
                } else {
                    audiences.join(", ")
                }),
            });
        }
        let oid = claims
            .oid
            .as_deref()
            .ok_or_else(|| TokenError::MalformedToken("the token has no oid".into()))?;
        let app_only = claims.scp.is_none()
            && claims.idtyp.as_deref().is_none_or(|t| t == "app")
            && claims.sub.as_deref() == Some(oid);
        if !app_only {
            return Err(TokenError::Delegated);
        }
        let app_id = if version == "1.0" {
            claims.appid.as_deref()
        } else {
            claims.azp.as_deref()
        }
        .ok_or_else(|| {
            TokenError::MalformedToken(format!(
                "the v{version} token names no calling application ({})",
                if version == "1.0" { "appid" } else { "azp" }
            ))
        })?;
        if !self.settings.allowed_apps.is_empty()
            && !self
                .settings
                .allowed_apps
                .iter()
                .any(|a| a.eq_ignore_ascii_case(app_id))
        {
            return Err(TokenError::AppNotAllowed(quote(app_id)));
        }
        if !self.settings.allowed_objects.is_empty()
            && !self
                .settings
                .allowed_objects
                .iter()
                .any(|o| o.eq_ignore_ascii_case(oid))
        {
            return Err(TokenError::ObjectNotAllowed(quote(oid)));
        }
        let roles = claims.roles.clone().unwrap_or_default();
        if let Some(required) = &self.settings.required_role
            && !roles.iter().any(|r| r == required)
        {
            return Err(TokenError::RoleMissing {
                required: required.clone(),
                held: if roles.is_empty() {
                    "none".into()
                } else {
                    quote(&roles.join(", "))
                },
            });
        }
        Ok(EntraCaller {
            app_id: app_id.to_ascii_lowercase(),
            object_id: oid.to_ascii_lowercase(),
            roles,
            token_version: version,
        })
    }
}

/// The client the validator fetches keys with: the app's resolver, no proxy, no redirects.
pub fn keys_http_client(resolver: diag::dns::DnsResolver) -> reqwest::Result<reqwest::Client> {
    diag::outbound::http_client_builder(resolver, None)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The bearer token of exactly one `Authorization` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, TokenError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(TokenError::MissingToken);
    };
    if values.next().is_some() {
        return Err(TokenError::MalformedAuthorization(
            "more than one Authorization header".into(),
        ));
    }
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(TokenError::MalformedAuthorization(format!(
            "longer than {MAX_AUTHORIZATION_BYTES} bytes"
        )));
    }
    let text = value
        .to_str()
        .map_err(|_| TokenError::MalformedAuthorization("not visible ASCII".into()))?;
    let Some((scheme, rest)) = text.split_once(' ') else {
        return Err(TokenError::MalformedAuthorization(
            "no scheme: expected Bearer <token>".into(),
        ));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::MalformedAuthorization(format!(
            "scheme {:?} is not Bearer",
            scheme.chars().take(20).collect::<String>()
        )));
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(TokenError::MalformedAuthorization(
            "expected exactly one token after Bearer".into(),
        ));
    }
    Ok(token)
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn parse_header(token: &str) -> Result<JwtHeader, TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(TokenError::MalformedToken(format!(
            "{} parts instead of 3 (header.payload.signature)",
            parts.len()
        )));
    }
    let base64url = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if parts[0].is_empty() || parts[1].is_empty() || !parts.iter().all(|p| base64url(p)) {
        return Err(TokenError::MalformedToken(
            "the parts are not base64url".into(),
        ));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(parts[0])
        .map_err(|_| TokenError::MalformedToken("the header is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::MalformedToken("the header is not a JSON object with alg".into()))
}

fn verify_signature(token: &str, key: &jsonwebtoken::DecodingKey) -> Result<Claims, TokenError> {
    // Signature only: every claim is checked by `check_claims`, with this module's codes.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature => TokenError::InvalidSignature,
            ErrorKind::InvalidAlgorithm => {
                TokenError::UnsupportedAlgorithm("RS256 with this key".into())
            }
            _ => TokenError::MalformedToken(format!("the claims do not parse ({error})")),
        })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn values(&self) -> Vec<String> {
        match self {
            Self::One(aud) => vec![aud.clone()],
            Self::Many(list) => list.clone(),
        }
    }
}

/// The claims the checks read; every other claim is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    tid: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    oid: Option<String>,
    sub: Option<String>,
    roles: Option<Vec<String>>,
    scp: Option<String>,
    idtyp: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A claim value fit for a message: printable, bounded.
fn quote(value: &str) -> String {
    let mut text: String = value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_QUOTED_CHARS)
        .collect();
    if value.chars().count() > MAX_QUOTED_CHARS {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_authorization_header_must_be_one_bearer_token() {
        assert_eq!(bearer_token(&headers(&[])), Err(TokenError::MissingToken));
        assert_eq!(
            bearer_token(&headers(&["Bearer abc.def.ghi"])),
            Ok("abc.def.ghi")
        );
        assert_eq!(bearer_token(&headers(&["bearer abc"])), Ok("abc"));
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "abc",
        ] {
            assert_eq!(
                bearer_token(&headers(&[bad])).unwrap_err().code(),
                "malformed_authorization",
                "{bad}"
            );
        }
        let twice = bearer_token(&headers(&["Bearer a", "Bearer b"])).unwrap_err();
        assert_eq!(twice.code(), "malformed_authorization");
        assert!(twice.to_string().contains("more than one"));
    }

    #[test]
    fn headers_that_are_not_jwts_are_malformed() {
        for bad in ["abc", "a.b", "a.b.c.d", "!!.b.c", ".b.c", "e30.e30.x"] {
            let error = parse_header(bad).err();
            assert!(
                matches!(error, Some(TokenError::MalformedToken(_))),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn statuses_follow_authentication_versus_authorization() {
        assert_eq!(TokenError::MissingToken.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(TokenError::Delegated.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            TokenError::KeysUnavailable("x".into()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(TokenError::MissingToken.www_authenticate(), Some("Bearer"));
        assert_eq!(TokenError::Delegated.www_authenticate(), None);
    }

    #[test]
    fn quoted_claims_are_bounded_and_printable() {
        assert_eq!(quote("a\u{7}b"), "ab");
        assert_eq!(
            quote(&"x".repeat(500)).chars().count(),
            MAX_QUOTED_CHARS + 1
        );
    }
}
