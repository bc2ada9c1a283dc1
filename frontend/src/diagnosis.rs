//! Turning a failed back-end call into a diagnosis: what went wrong on the path to the back end,
//! in one stable code, a sentence, and the next step. Never a bare "502 Bad Gateway".

use std::error::Error as StdError;
use std::io;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use diag::appservice::{AppServiceBlock, classify};
use serde::Serialize;

/// What the front end concluded about a failed back-end call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// The status the front end answers with: 502, or 504 for timeouts.
    #[serde(skip)]
    pub status: StatusCode,
    /// Stable code (`dns_failure`, `connect_timeout`, `access_restricted`, …).
    pub code: &'static str,
    /// What happened, in a sentence.
    pub message: String,
    /// The next step.
    pub hint: String,
}

impl Diagnosis {
    fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl IntoResponse for Diagnosis {
    fn into_response(self) -> Response {
        hosting::error_response(self.status, self.code, self.message, Some(&self.hint))
    }
}

/// Every diagnosis code the front end can answer with (each has a row in docs/deploy.md).
pub const CODES: &[&str] = &[
    "dns_failure",
    "connect_timeout",
    "connect_refused",
    "network_unreachable",
    "tls_failure",
    "backend_timeout",
    "backend_unreachable",
    "backend_unauthorized",
    "caller_not_allowed",
    "access_restricted",
    "app_stopped",
    "public_access_disabled",
    "backend_forbidden",
    "backend_error",
    "token_unavailable",
    "app_service_auth_refused",
    "missing_token",
    "malformed_authorization",
    "malformed_token",
    "unsupported_algorithm",
    "unknown_key",
    "invalid_signature",
    "token_expired",
    "token_not_yet_valid",
    "wrong_tenant",
    "wrong_issuer",
    "wrong_audience",
    "delegated_token",
    "app_not_allowed",
    "object_not_allowed",
    "role_missing",
    "signing_keys_unavailable",
];

/// What the front end sent as its credential: decides which next step a refusal points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// Nothing (`BACKEND_AUTH=api-key` with an empty key).
    Nothing,
    /// `X-Api-Key`.
    ApiKey,
    /// An Entra token of the managed identity.
    EntraToken,
}

/// The back end's Entra codes, each with the front end's next step. The code is passed through
/// as the diagnosis code, so the page, `/api/path` and the smoke report show the precise cause.
const TOKEN_REFUSALS: &[(&str, &str)] = &[
    (
        "missing_token",
        "the back end wants an Entra token (AUTH_MODE=entra): set BACKEND_AUTH=entra and BACKEND_TOKEN_RESOURCE on the front end; if it is set, something between the apps strips the Authorization header",
    ),
    (
        "malformed_authorization",
        "something between the front end and the back end alters the Authorization header (a gateway or proxy)",
    ),
    (
        "malformed_token",
        "the token the back end got is not an Entra access token: check that nothing between the apps rewrites Authorization",
    ),
    (
        "unsupported_algorithm",
        "the token the back end got is not signed with RS256: it did not come from this front end's managed identity",
    ),
    (
        "unknown_key",
        "the token was signed by another tenant's keys than the back end's: ENTRA_TENANT_ID (and ENTRA_AUTHORITY) on the back end must be the managed identity's tenant",
    ),
    (
        "invalid_signature",
        "the token's signature does not verify: ENTRA_TENANT_ID and ENTRA_AUTHORITY on the back end must be the managed identity's tenant and cloud",
    ),
    (
        "token_expired",
        "the front end sent an expired token: check the clocks; the front end renews tokens 5 minutes before they expire",
    ),
    (
        "token_not_yet_valid",
        "the back end's clock is behind the token's: check the clocks, or raise ENTRA_LEEWAY_S a little",
    ),
    (
        "wrong_tenant",
        "the front end's managed identity lives in another tenant than the back end's ENTRA_TENANT_ID",
    ),
    (
        "wrong_issuer",
        "the token's issuer is not the back end's tenant: check ENTRA_TENANT_ID on the back end",
    ),
    (
        "wrong_audience",
        "BACKEND_TOKEN_RESOURCE must be the back end's application ID URI (api://…) or client ID, without /.default, and the back end's ENTRA_AUDIENCES must list it",
    ),
    (
        "delegated_token",
        "the front end must call with its managed identity's own app-only token, not a user's token",
    ),
    (
        "app_not_allowed",
        "the back end's ENTRA_ALLOWED_APPS must list the client ID of this front end's managed identity (AZURE_CLIENT_ID for a user-assigned one)",
    ),
    (
        "object_not_allowed",
        "the back end's ENTRA_ALLOWED_OBJECTS must list the object (principal) ID of this front end's managed identity",
    ),
    (
        "role_missing",
        "assign the back end's app role (ENTRA_REQUIRED_ROLE) to the front end's managed identity (infra/scripts/auth.sh or the Bicep); a token fetched before the assignment lacks the role until it is renewed (managed-identity tokens are cached up to 24 h)",
    ),
    (
        "signing_keys_unavailable",
        "the back end cannot fetch Entra ID's signing keys: check its outbound access to login.microsoftonline.com (ENTRA_AUTHORITY)",
    ),
];

/// The front end could not get a token from its managed identity (`token_unavailable`). The
/// message carries the endpoint's `correlationId`, never a token.
pub fn token_unavailable(error: &crate::token::TokenError) -> Diagnosis {
    use crate::token::TokenError;
    let hint = match error {
        TokenError::NotConfigured(_) => {
            "turn on a managed identity for the front end (App Service then sets IDENTITY_ENDPOINT and IDENTITY_HEADER), or use BACKEND_AUTH=api-key"
                .to_owned()
        }
        TokenError::Refused { message, .. } if message.contains("AADSTS500011") => {
            "BACKEND_TOKEN_RESOURCE names no application in the tenant: use the back end's application ID URI (api://…) or client ID, as registered, without /.default"
                .to_owned()
        }
        TokenError::Refused { status, message, .. }
            if *status == 400
                && (message.contains("Managed Identity") || message.contains("ClientId")) =>
        {
            "AZURE_CLIENT_ID must be the client ID of a user-assigned identity attached to this app (unset it to use the system-assigned identity)"
                .to_owned()
        }
        TokenError::Refused { status, .. } if *status == 429 || *status >= 500 => format!(
            "the identity endpoint failed after retries; it is usually transient — if it lasts, quote the correlationId{} to Azure support",
            error
                .correlation_id()
                .map(|id| format!(" {id}"))
                .unwrap_or_default()
        ),
        TokenError::Refused { .. } => {
            "the identity endpoint refused the request: check BACKEND_TOKEN_RESOURCE and AZURE_CLIENT_ID".to_owned()
        }
        TokenError::Unreachable(_) | TokenError::Timeout(_) | TokenError::Busy => {
            "the identity endpoint (IDENTITY_ENDPOINT) did not answer: it runs inside App Service; restart the app if it lasts"
                .to_owned()
        }
        TokenError::BadAnswer(_) => {
            "the identity endpoint's answer was not a token: check IDENTITY_ENDPOINT".to_owned()
        }
    };
    Diagnosis::new(
        StatusCode::BAD_GATEWAY,
        "token_unavailable",
        format!(
            "the front end could not get a token for the back end from its managed identity: {error}"
        ),
        hint,
    )
}

/// Diagnoses a call that got no HTTP response at all.
pub fn from_transport(error: &reqwest::Error, backend: &str) -> Diagnosis {
    let gateway = StatusCode::BAD_GATEWAY;
    if is_dns_failure(error) {
        return dns_failure(&root_cause(error));
    }
    if error.is_connect() && error.is_timeout() {
        return Diagnosis::new(
            StatusCode::GATEWAY_TIMEOUT,
            "connect_timeout",
            format!("connecting to {backend} timed out: nothing answered the TCP handshake"),
            "a firewall, an NSG on the integration subnet, or a route (route-all through a firewall) drops the \
             traffic, or the private endpoint is unreachable; /diag/tcpping shows it from inside the app",
        );
    }
    if let Some(kind) = io_kind(error) {
        match kind {
            io::ErrorKind::ConnectionRefused => {
                return Diagnosis::new(
                    gateway,
                    "connect_refused",
                    format!("{backend} refused the connection: nothing listens there"),
                    "check that the back end is running and that BACKEND_URL's port is right",
                );
            }
            io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => {
                return Diagnosis::new(
                    gateway,
                    "network_unreachable",
                    format!("no route to {backend}"),
                    "check the VNet integration and its routes (route-all, UDRs)",
                );
            }
            _ => {}
        }
    }
    if is_tls_failure(error) {
        return Diagnosis::new(
            gateway,
            "tls_failure",
            format!(
                "the TLS handshake with {backend} failed: {}",
                root_cause(error)
            ),
            "call the back end by its *.azurewebsites.net name (the certificate does not cover the privatelink \
             name or an IP address)",
        );
    }
    if error.is_timeout() {
        return Diagnosis::new(
            StatusCode::GATEWAY_TIMEOUT,
            "backend_timeout",
            format!("{backend} accepted the connection but did not answer in time"),
            "the back end is slow or stuck; raise BACKEND_TIMEOUT_MS only if it is expected to be slow",
        );
    }
    Diagnosis::new(
        gateway,
        "backend_unreachable",
        format!("the call to {backend} failed: {}", root_cause(error)),
        "/diag/tcpping and /diag/http show the path from inside the app",
    )
}

/// The back end's host name did not resolve.
pub fn dns_failure(cause: &str) -> Diagnosis {
    Diagnosis::new(
        StatusCode::BAD_GATEWAY,
        "dns_failure",
        format!("the back end's host name did not resolve: {cause}"),
        "check BACKEND_URL and the DNS server the app uses (WEBSITE_DNS_SERVER or the VNet's DNS); \
         for a private endpoint, check that the privatelink.azurewebsites.net zone is linked to the VNet; \
         /diag/resolve shows what this app resolves",
    )
}

/// Diagnoses an HTTP response from the back end to a front end sending an API key. `None`
/// means "relay it as it is": successes and the caller's own mistakes (400, 404, 409, …).
pub fn from_response(status: StatusCode, body: &[u8]) -> Option<Diagnosis> {
    from_response_to(status, body, CredentialKind::ApiKey)
}

/// Diagnoses an HTTP response from the back end, knowing what the front end sent.
pub fn from_response_to(
    status: StatusCode,
    body: &[u8],
    sent: CredentialKind,
) -> Option<Diagnosis> {
    // Only 4xx and 5xx answers can diagnose: every other answer is relayed as it is, without
    // reading (let alone parsing) its body. This runs on every relayed call.
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let gateway = StatusCode::BAD_GATEWAY;
    let text = String::from_utf8_lossy(&body[..body.len().min(16 * 1024)]);
    if let Some(block) = classify(status.as_u16(), &text) {
        return Some(from_block(block));
    }
    let backend_code = envelope_code(body);
    if let Some((code, hint)) = backend_code
        .as_deref()
        .and_then(|c| TOKEN_REFUSALS.iter().find(|(known, _)| *known == c))
    {
        return Some(Diagnosis::new(
            gateway,
            code,
            format!(
                "the back end refused the front end's token: {}",
                envelope_message(body)
            ),
            *hint,
        ));
    }
    // App Service Authentication answers before the app: 401 without a body for a token it
    // does not accept, 403 with IIS's sentence for a caller its policy does not allow.
    let platform_refusal = status == StatusCode::UNAUTHORIZED
        || (status == StatusCode::FORBIDDEN
            && text.contains("You do not have permission to view this directory or page"));
    if sent == CredentialKind::EntraToken && backend_code.is_none() && platform_refusal {
        return Some(Diagnosis::new(
            gateway,
            "app_service_auth_refused",
            format!(
                "the back end's platform answered {status} before the app saw the call: App Service Authentication refused the token"
            ),
            "in the back end's authsettingsV2, allowedAudiences must include BACKEND_TOKEN_RESOURCE and allowedApplications / allowedPrincipals must name this front end's managed identity (never an empty list: it means nobody)",
        ));
    }
    match status {
        StatusCode::UNAUTHORIZED => Some(Diagnosis::new(
            gateway,
            "backend_unauthorized",
            format!(
                "the back end refused the front end's credential ({})",
                backend_code.as_deref().unwrap_or("no code")
            ),
            match sent {
                CredentialKind::ApiKey => {
                    "BACKEND_API_KEY must be one of the back end's API_KEYS (check that the Key Vault references resolved)"
                }
                CredentialKind::EntraToken => {
                    "the back end checks API keys (AUTH_MODE=api-key) while this front end sends an Entra token (BACKEND_AUTH=entra): set both to the same mode"
                }
                CredentialKind::Nothing => {
                    "the front end sends no credential: set BACKEND_API_KEY (one of the back end's API_KEYS), or BACKEND_AUTH=entra"
                }
            },
        )),
        StatusCode::FORBIDDEN if backend_code.as_deref() == Some("caller_not_allowed") => {
            Some(Diagnosis::new(
                gateway,
                "caller_not_allowed",
                format!(
                    "the back end's ALLOWED_CALLERS refused the front end: {}",
                    envelope_message(body)
                ),
                "the call did not leave through the integration subnet: check the front end's VNet integration and \
             route-all, and that ALLOWED_CALLERS names the integration subnet",
            ))
        }
        StatusCode::FORBIDDEN => Some(Diagnosis::new(
            gateway,
            "backend_forbidden",
            "the back end answered 403 with a page lockdown does not recognise",
            "/diag/http shows the response; look for a WAF or gateway in front of the back end",
        )),
        s if s.is_server_error() => Some(Diagnosis::new(
            gateway,
            "backend_error",
            format!("the back end failed with {s}"),
            "look at the back end's logs (the request id is in X-Request-Id)",
        )),
        _ => None,
    }
}

fn from_block(block: AppServiceBlock) -> Diagnosis {
    Diagnosis::new(
        StatusCode::BAD_GATEWAY,
        block.code(),
        block.message(),
        block.hint(),
    )
}

fn envelope_code(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    json["error"]["code"].as_str().map(str::to_owned)
}

fn envelope_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|json| json["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn sources(error: &reqwest::Error) -> impl Iterator<Item = &(dyn StdError + 'static)> {
    std::iter::successors(error.source(), |e| (*e).source())
}

fn root_cause(error: &reqwest::Error) -> String {
    sources(error)
        .last()
        .map_or_else(|| error.to_string(), ToString::to_string)
}

fn is_dns_failure(error: &reqwest::Error) -> bool {
    sources(error).any(wraps::<diag::dns::LookupFailure>)
}

fn io_kind(error: &reqwest::Error) -> Option<io::ErrorKind> {
    sources(error).find_map(|e| e.downcast_ref::<io::Error>().map(io::Error::kind))
}

fn is_tls_failure(error: &reqwest::Error) -> bool {
    sources(error).any(wraps::<rustls::Error>)
}

/// True when `error` is a `T`, or an `io::Error` (however deeply nested) carrying one:
/// `io::Error::source()` skips the error it wraps, so `get_ref` has to be followed by hand.
fn wraps<T: StdError + 'static>(mut error: &(dyn StdError + 'static)) -> bool {
    loop {
        if error.is::<T>() {
            return true;
        }
        match error
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
        {
            Some(inner) => error = inner,
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_service_pages_are_recognised() {
        let cases = [
            (
                diag::appservice::ACCESS_RESTRICTED_PAGE,
                "access_restricted",
            ),
            (diag::appservice::APP_STOPPED_PAGE, "app_stopped"),
            (
                diag::appservice::PUBLIC_ACCESS_DISABLED_PAGE,
                "public_access_disabled",
            ),
        ];
        for (page, code) in cases {
            let diagnosis = from_response(StatusCode::FORBIDDEN, page.as_bytes()).unwrap();
            assert_eq!(diagnosis.code, code);
            assert_eq!(diagnosis.status, StatusCode::BAD_GATEWAY);
            assert!(!diagnosis.hint.is_empty());
        }
    }

    #[test]
    fn back_end_refusals_become_diagnoses_and_client_errors_pass_through() {
        let unauthorized =
            br#"{"error":{"code":"unauthorized","message":"the API key is not valid"}}"#;
        assert_eq!(
            from_response(StatusCode::UNAUTHORIZED, unauthorized)
                .unwrap()
                .code,
            "backend_unauthorized"
        );
        let not_allowed = br#"{"error":{"code":"caller_not_allowed","message":"caller 127.0.0.1 (from peer) is not in ALLOWED_CALLERS"}}"#;
        let diagnosis = from_response(StatusCode::FORBIDDEN, not_allowed).unwrap();
        assert_eq!(diagnosis.code, "caller_not_allowed");
        assert!(diagnosis.message.contains("127.0.0.1"));
        assert_eq!(
            from_response(StatusCode::FORBIDDEN, b"nope").unwrap().code,
            "backend_forbidden"
        );
        assert_eq!(
            from_response(StatusCode::SERVICE_UNAVAILABLE, b"")
                .unwrap()
                .code,
            "backend_error"
        );
        assert_eq!(from_response(StatusCode::NOT_FOUND, b"{}"), None);
        assert_eq!(from_response(StatusCode::OK, b"{}"), None);
    }

    #[test]
    fn token_refusals_keep_their_code_and_get_a_next_step() {
        let cases = [
            (401, "wrong_audience", "BACKEND_TOKEN_RESOURCE"),
            (403, "role_missing", "assign the back end's app role"),
            (403, "app_not_allowed", "ENTRA_ALLOWED_APPS"),
            (403, "object_not_allowed", "ENTRA_ALLOWED_OBJECTS"),
            (401, "token_expired", "clocks"),
            (401, "missing_token", "BACKEND_AUTH=entra"),
            (503, "signing_keys_unavailable", "login.microsoftonline.com"),
        ];
        for (status, code, hint) in cases {
            let body = format!(r#"{{"error":{{"code":"{code}","message":"said the back end"}}}}"#);
            let diagnosis = from_response_to(
                StatusCode::from_u16(status).unwrap(),
                body.as_bytes(),
                CredentialKind::EntraToken,
            )
            .unwrap();
            assert_eq!(diagnosis.code, code);
            assert_eq!(diagnosis.status, StatusCode::BAD_GATEWAY);
            assert!(diagnosis.hint.contains(hint), "{code}: {}", diagnosis.hint);
            assert!(diagnosis.message.contains("said the back end"));
            assert!(CODES.contains(&diagnosis.code));
        }
    }

    #[test]
    fn a_mode_mismatch_and_the_platform_gate_are_named() {
        let unauthorized = br#"{"error":{"code":"unauthorized","message":"no API key was sent"}}"#;
        let diagnosis = from_response_to(
            StatusCode::UNAUTHORIZED,
            unauthorized,
            CredentialKind::EntraToken,
        )
        .unwrap();
        assert_eq!(diagnosis.code, "backend_unauthorized");
        assert!(
            diagnosis.hint.contains("AUTH_MODE=api-key"),
            "{}",
            diagnosis.hint
        );
        let platform =
            from_response_to(StatusCode::UNAUTHORIZED, b"", CredentialKind::EntraToken).unwrap();
        assert_eq!(platform.code, "app_service_auth_refused");
        let platform = from_response_to(
            StatusCode::FORBIDDEN,
            b"You do not have permission to view this directory or page.",
            CredentialKind::EntraToken,
        )
        .unwrap();
        assert_eq!(platform.code, "app_service_auth_refused");
        // An API-key front end keeps its old diagnoses.
        assert_eq!(
            from_response_to(StatusCode::UNAUTHORIZED, b"", CredentialKind::ApiKey)
                .unwrap()
                .code,
            "backend_unauthorized"
        );
    }

    #[test]
    fn a_failed_token_fetch_is_its_own_diagnosis() {
        use crate::token::TokenError;
        let diagnosis = token_unavailable(&TokenError::Refused {
            status: 500,
            message: "An unexpected error occured while fetching the AAD Token.".into(),
            correlation_id: Some("7d0c9763".into()),
        });
        assert_eq!(diagnosis.code, "token_unavailable");
        assert!(
            diagnosis.message.contains("correlationId 7d0c9763"),
            "{}",
            diagnosis.message
        );
        assert!(diagnosis.hint.contains("7d0c9763"));
        let diagnosis = token_unavailable(&TokenError::Refused {
            status: 400,
            message: "AADSTS500011: The resource principal named api://x was not found".into(),
            correlation_id: None,
        });
        assert!(
            diagnosis.hint.contains("BACKEND_TOKEN_RESOURCE"),
            "{}",
            diagnosis.hint
        );
        let diagnosis = token_unavailable(&TokenError::NotConfigured("IDENTITY_ENDPOINT"));
        assert!(diagnosis.hint.contains("managed identity"));
    }

    #[test]
    fn every_code_is_listed() {
        for page in [
            diag::appservice::ACCESS_RESTRICTED_PAGE,
            diag::appservice::APP_STOPPED_PAGE,
        ] {
            let code = from_response(StatusCode::FORBIDDEN, page.as_bytes())
                .unwrap()
                .code;
            assert!(CODES.contains(&code));
        }
    }

    #[test]
    fn every_code_has_a_row_in_the_troubleshooting_table() {
        let docs = include_str!("../../docs/deploy.md");
        let missing: Vec<_> = CODES
            .iter()
            .filter(|code| !docs.contains(&format!("`{code}`")))
            .collect();
        assert!(missing.is_empty(), "not in docs/deploy.md: {missing:?}");
    }
}
