//! Turning a failed back-end call into a diagnosis: what went wrong on the path to the back end,
//! in one stable code, a sentence, and the next step. Never a bare "502 Bad Gateway". The codes,
//! what each means and its next step are `diag`'s one vocabulary ([`diag::diagnosis::Code`]);
//! this module adds the front end's context (which back end, what it sent, what came back).

use std::io;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use diag::appservice::{PlatformAnswer, ResponseHead, classify};
use diag::diagnosis::{Code, Family};
use diag::failure::{io_kind, root_cause};

use crate::origin::OriginError;
use serde::Serialize;

/// What the front end concluded about a failed back-end call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// The status the front end answers with: 502, or 504 for timeouts.
    #[serde(skip)]
    pub status: StatusCode,
    /// Stable code (`dns_failure`, `connect_timeout`, `access_restricted`, …).
    pub code: Code,
    /// What happened, in a sentence, with the front end's context.
    pub message: String,
    /// The next step: the code's own.
    pub hint: String,
    /// The caller's address as App Service saw it, when App Service refused the call
    /// (`x-ms-forbidden-ip`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forbidden_ip: Option<String>,
    /// App Service's answer behind the diagnosis, kept to apply context later.
    #[serde(skip)]
    platform: Option<Box<PlatformAnswer>>,
}

impl Diagnosis {
    fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            hint: code.next_step().to_owned(),
            forbidden_ip: None,
            platform: None,
        }
    }

    /// App Service (or a gateway in front of it) answered instead of the back end.
    pub fn from_platform(answer: PlatformAnswer) -> Self {
        let mut diagnosis = Self::new(StatusCode::BAD_GATEWAY, answer.code, answer.message());
        diagnosis.forbidden_ip = answer.forbidden_ip.clone();
        diagnosis.platform = Some(Box::new(answer));
        diagnosis
    }

    /// True when the back end's name must be looked up to tell an access restriction from a
    /// refused call to the public address of an app with a private endpoint.
    pub fn needs_dns_context(&self) -> bool {
        self.platform
            .as_ref()
            .is_some_and(|answer| answer.code == Code::AccessRestricted)
    }

    /// Applies what the back end's name resolved through: a refusal of a name that goes through
    /// `privatelink` is `public_access_disabled` (see [`PlatformAnswer::in_context`]).
    pub fn in_context(self, via_privatelink: bool) -> Self {
        match self.platform {
            Some(answer) if via_privatelink => Self::from_platform(answer.in_context(true)),
            _ => self,
        }
    }
}

impl IntoResponse for Diagnosis {
    fn into_response(self) -> Response {
        hosting::error_response(
            self.status,
            self.code.as_str(),
            self.message,
            Some(&self.hint),
        )
    }
}

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

/// The front end could not get a token from its managed identity (`token_unavailable`). The
/// message carries the endpoint's `correlationId`, never a token.
pub fn token_unavailable(error: &crate::token::TokenError) -> Diagnosis {
    use crate::token::TokenError;
    let cause = match error {
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
        Code::TokenUnavailable,
        format!(
            "the front end could not get a token for the back end from its managed identity: {error}; {cause}"
        ),
    )
}

/// Diagnoses a call that got no HTTP response at all.
pub fn from_transport(error: &OriginError, backend: &str) -> Diagnosis {
    let gateway = StatusCode::BAD_GATEWAY;
    match error {
        OriginError::Dns(failure) => dns_failure(&failure.message),
        OriginError::ConnectTimeout => Diagnosis::new(
            StatusCode::GATEWAY_TIMEOUT,
            Code::ConnectTimeout,
            format!("connecting to {backend} timed out: nothing answered the TCP handshake"),
        ),
        OriginError::Tls(cause) => Diagnosis::new(
            gateway,
            Code::TlsFailure,
            format!(
                "the TLS handshake with {backend} failed: {}",
                root_cause(cause)
            ),
        ),
        OriginError::Connect(cause) => from_io(cause, backend),
        OriginError::Exchange(cause) => from_io(cause, backend),
        OriginError::Body(cause) => from_io(cause, backend),
    }
}

/// The back end accepted the connection but did not answer within the budget.
pub fn backend_timeout(backend: &str) -> Diagnosis {
    Diagnosis::new(
        StatusCode::GATEWAY_TIMEOUT,
        Code::BackendTimeout,
        format!("{backend} accepted the connection but did not answer in time"),
    )
}

fn from_io(error: &(dyn std::error::Error + 'static), backend: &str) -> Diagnosis {
    let gateway = StatusCode::BAD_GATEWAY;
    // Out of open files or memory: the app's own limits, not the network.
    if diag::failure::is_resource_exhausted(error) {
        return Diagnosis::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::LocalResourceExhausted,
            format!(
                "the front end ran out of a local resource before calling {backend}: {}",
                root_cause(error)
            ),
        );
    }
    let kind = error
        .downcast_ref::<io::Error>()
        .map(io::Error::kind)
        .or_else(|| io_kind(error));
    match kind {
        Some(io::ErrorKind::ConnectionRefused) => Diagnosis::new(
            gateway,
            Code::ConnectRefused,
            format!("{backend} refused the connection: nothing listens there"),
        ),
        Some(io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable) => Diagnosis::new(
            gateway,
            Code::NetworkUnreachable,
            format!("no route to {backend}"),
        ),
        _ => Diagnosis::new(
            gateway,
            Code::BackendUnreachable,
            format!("the call to {backend} failed: {}", root_cause(error)),
        ),
    }
}

/// The back end's host name did not resolve.
pub fn dns_failure(cause: &str) -> Diagnosis {
    Diagnosis::new(
        StatusCode::BAD_GATEWAY,
        Code::DnsFailure,
        format!("the back end's host name did not resolve: {cause}"),
    )
}

/// The front end could not build the back-end call at all (an internal fault, never the path).
pub fn internal(message: impl Into<String>) -> Diagnosis {
    Diagnosis::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::BackendError,
        message,
    )
}

/// The back end answered, but not as the lockdown API does (a wrong `BACKEND_URL`).
pub fn not_the_api(message: impl std::fmt::Display) -> Diagnosis {
    Diagnosis::new(
        StatusCode::BAD_GATEWAY,
        Code::BackendError,
        format!("{message}: check that BACKEND_URL points at the lockdown back end"),
    )
}

/// Diagnoses an HTTP response from the back end, knowing what the front end sent. `None` means
/// "relay it as it is": successes and the caller's own mistakes (400, 404, 409, …).
pub fn from_response_to(
    head: &ResponseHead<'_>,
    body: &[u8],
    sent: CredentialKind,
) -> Option<Diagnosis> {
    let status = StatusCode::from_u16(head.status).ok()?;
    // Only 4xx and 5xx answers can diagnose: every other answer is relayed as it is, without
    // reading (let alone parsing) its body. This runs on every relayed call.
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let gateway = StatusCode::BAD_GATEWAY;
    if let Some(answer) = classify(head, body) {
        return Some(Diagnosis::from_platform(answer));
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(16 * 1024)]);
    let backend_code = envelope_code(body);
    if let Some(code) = backend_code
        .as_deref()
        .and_then(Code::parse)
        .filter(|code| code.family() == Family::Token)
    {
        // The back end's own Entra code is passed through, so the page, `/api/path` and the
        // smoke report show the precise cause.
        return Some(Diagnosis::new(
            gateway,
            code,
            format!(
                "the back end refused the front end's token: {}",
                envelope_message(body)
            ),
        ));
    }
    if let Some(code) = backend_code
        .as_deref()
        .and_then(Code::parse)
        .filter(|code| code.family() == Family::Database)
    {
        // The back end's own database diagnosis is passed through: the failing hop is behind it.
        return Some(Diagnosis::new(
            gateway,
            code,
            format!("the back end answered {status}: {}", envelope_message(body)),
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
            Code::AppServiceAuthRefused,
            format!(
                "the back end's platform answered {status} before the app saw the call: App Service Authentication refused the token"
            ),
        ));
    }
    match status {
        StatusCode::UNAUTHORIZED => {
            let context = match sent {
                CredentialKind::ApiKey => {
                    "BACKEND_API_KEY is not one of the back end's API_KEYS (check that the Key Vault references resolved)"
                }
                CredentialKind::EntraToken => {
                    "the back end checks API keys (AUTH_MODE=api-key) while this front end sends an Entra token (BACKEND_AUTH=entra): set both to the same mode"
                }
                CredentialKind::Nothing => {
                    "the front end sends no credential: set BACKEND_API_KEY (one of the back end's API_KEYS), or BACKEND_AUTH=entra"
                }
            };
            Some(Diagnosis::new(
                gateway,
                Code::BackendUnauthorized,
                format!(
                    "the back end refused the front end's credential ({}): {context}",
                    backend_code.as_deref().unwrap_or("no code")
                ),
            ))
        }
        StatusCode::FORBIDDEN if backend_code.as_deref() == Some("caller_not_allowed") => {
            Some(Diagnosis::new(
                gateway,
                Code::CallerNotAllowed,
                format!(
                    "the back end's ALLOWED_CALLERS refused the front end: {}",
                    envelope_message(body)
                ),
            ))
        }
        StatusCode::FORBIDDEN => Some(Diagnosis::new(
            gateway,
            Code::BackendForbidden,
            "the back end answered 403 with none of App Service's signals (no Ip Forbidden status line, no x-ms-forbidden-ip, no known Server or page)",
        )),
        s if s.is_server_error() => Some(Diagnosis::new(
            gateway,
            Code::BackendError,
            format!("the back end failed with {s}"),
        )),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};
    use diag::appservice::{ACCESS_RESTRICTED_PAGE, APP_ERROR_PAGE, APP_STOPPED_PAGE};

    use super::*;

    fn respond(
        status: u16,
        reason: Option<&str>,
        headers: &[(&'static str, &str)],
        body: &[u8],
        sent: CredentialKind,
    ) -> Option<Diagnosis> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        let head = ResponseHead {
            status,
            reason,
            headers: &map,
        };
        from_response_to(&head, body, sent)
    }

    fn from_response(status: u16, body: &[u8]) -> Option<Diagnosis> {
        respond(status, None, &[], body, CredentialKind::ApiKey)
    }

    #[test]
    fn every_database_failure_of_the_back_end_is_passed_on_with_its_next_step() {
        let database_codes: Vec<Code> = Code::ALL
            .iter()
            .copied()
            .filter(|c| c.family() == Family::Database)
            .collect();
        assert_eq!(database_codes.len(), 9);
        for code in database_codes {
            let body = serde_json::json!({"error": {
                "code": code.as_str(),
                "message": "the back end cannot use its database: TCP connect to 10.0.2.4:5432 failed",
                "hint": code.next_step(),
            }})
            .to_string();
            let diagnosis = from_response(503, body.as_bytes()).unwrap();
            assert_eq!(diagnosis.code, code);
            assert_eq!(diagnosis.status, StatusCode::BAD_GATEWAY);
            assert_eq!(diagnosis.hint, code.next_step());
            assert!(diagnosis.message.contains("10.0.2.4:5432"), "{code}");
        }
        // An unknown code in a 5xx stays a back-end error.
        let body = br#"{"error":{"code":"database_on_fire","message":"m"}}"#;
        assert_eq!(from_response(503, body).unwrap().code, Code::BackendError);
    }

    #[test]
    fn app_service_answers_are_recognised_from_the_strongest_signal() {
        let denied = respond(
            403,
            Some("Ip Forbidden"),
            &[("x-ms-forbidden-ip", "203.0.113.7")],
            b"<html>a custom error page</html>",
            CredentialKind::ApiKey,
        )
        .unwrap();
        assert_eq!(denied.code, Code::AccessRestricted);
        assert_eq!(denied.status, StatusCode::BAD_GATEWAY);
        assert_eq!(denied.forbidden_ip.as_deref(), Some("203.0.113.7"));
        assert!(
            denied
                .message
                .contains("App Service saw this call as coming from 203.0.113.7"),
            "{}",
            denied.message
        );
        assert_eq!(denied.hint, Code::AccessRestricted.next_step());
        for (page, code) in [
            (ACCESS_RESTRICTED_PAGE, Code::AccessRestricted),
            (APP_STOPPED_PAGE, Code::AppStopped),
        ] {
            assert_eq!(from_response(403, page.as_bytes()).unwrap().code, code);
        }
        let stopped = respond(403, Some("Site Disabled"), &[], b"", CredentialKind::ApiKey);
        assert_eq!(stopped.unwrap().code, Code::AppStopped);
        let none_answered = respond(
            503,
            None,
            &[("server", "nginx")],
            APP_ERROR_PAGE.as_bytes(),
            CredentialKind::ApiKey,
        );
        assert_eq!(none_answered.unwrap().code, Code::AppUnavailable);
        let gateway = respond(
            403,
            None,
            &[("server", "Microsoft-Azure-Application-Gateway/v2")],
            b"<html>403 Forbidden</html>",
            CredentialKind::ApiKey,
        )
        .unwrap();
        assert_eq!(gateway.code, Code::GatewayRefused);
        assert!(!gateway.needs_dns_context());
    }

    #[test]
    fn a_refusal_of_a_privatelink_name_is_public_access_disabled() {
        let denied = respond(
            403,
            Some("Ip Forbidden"),
            &[("x-ms-forbidden-ip", "203.0.113.7")],
            b"",
            CredentialKind::ApiKey,
        )
        .unwrap();
        assert!(denied.needs_dns_context());
        assert_eq!(
            denied.clone().in_context(false).code,
            Code::AccessRestricted
        );
        let private = denied.in_context(true);
        assert_eq!(private.code, Code::PublicAccessDisabled);
        assert!(private.hint.contains("privatelink.azurewebsites.net"));
        assert_eq!(private.forbidden_ip.as_deref(), Some("203.0.113.7"));
    }

    #[test]
    fn back_end_refusals_become_diagnoses_and_client_errors_pass_through() {
        let unauthorized =
            br#"{"error":{"code":"unauthorized","message":"the API key is not valid"}}"#;
        assert_eq!(
            from_response(401, unauthorized).unwrap().code,
            Code::BackendUnauthorized
        );
        let not_allowed = br#"{"error":{"code":"caller_not_allowed","message":"caller 127.0.0.1 (from peer) is not in ALLOWED_CALLERS"}}"#;
        let diagnosis = from_response(403, not_allowed).unwrap();
        assert_eq!(diagnosis.code, Code::CallerNotAllowed);
        assert!(diagnosis.message.contains("127.0.0.1"));
        assert_eq!(
            from_response(403, b"nope").unwrap().code,
            Code::BackendForbidden
        );
        assert_eq!(from_response(503, b"").unwrap().code, Code::BackendError);
        assert_eq!(from_response(404, b"{}"), None);
        assert_eq!(from_response(200, b"{}"), None);
    }

    #[test]
    fn token_refusals_keep_their_code_and_get_a_next_step() {
        let cases = [
            (401, Code::WrongAudience, "BACKEND_TOKEN_RESOURCE"),
            (403, Code::RoleMissing, "assign the back end's app role"),
            (403, Code::AppNotAllowed, "ENTRA_ALLOWED_APPS"),
            (403, Code::ObjectNotAllowed, "ENTRA_ALLOWED_OBJECTS"),
            (401, Code::TokenExpired, "clocks"),
            (401, Code::MissingToken, "BACKEND_AUTH=entra"),
            (
                503,
                Code::SigningKeysUnavailable,
                "login.microsoftonline.com",
            ),
        ];
        for (status, code, hint) in cases {
            let body = format!(r#"{{"error":{{"code":"{code}","message":"said the back end"}}}}"#);
            let diagnosis = respond(
                status,
                None,
                &[],
                body.as_bytes(),
                CredentialKind::EntraToken,
            )
            .unwrap();
            assert_eq!(diagnosis.code, code);
            assert_eq!(diagnosis.status, StatusCode::BAD_GATEWAY);
            assert!(diagnosis.hint.contains(hint), "{code}: {}", diagnosis.hint);
            assert!(diagnosis.message.contains("said the back end"));
        }
    }

    #[test]
    fn a_mode_mismatch_and_the_platform_gate_are_named() {
        let unauthorized = br#"{"error":{"code":"unauthorized","message":"no API key was sent"}}"#;
        let diagnosis = respond(401, None, &[], unauthorized, CredentialKind::EntraToken).unwrap();
        assert_eq!(diagnosis.code, Code::BackendUnauthorized);
        assert!(
            diagnosis.message.contains("AUTH_MODE=api-key"),
            "{}",
            diagnosis.message
        );
        let platform = respond(401, None, &[], b"", CredentialKind::EntraToken).unwrap();
        assert_eq!(platform.code, Code::AppServiceAuthRefused);
        let platform = respond(
            403,
            None,
            &[],
            b"You do not have permission to view this directory or page.",
            CredentialKind::EntraToken,
        )
        .unwrap();
        assert_eq!(platform.code, Code::AppServiceAuthRefused);
        // An API-key front end keeps its old diagnoses.
        assert_eq!(
            respond(401, None, &[], b"", CredentialKind::ApiKey)
                .unwrap()
                .code,
            Code::BackendUnauthorized
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
        assert_eq!(diagnosis.code, Code::TokenUnavailable);
        assert!(
            diagnosis.message.contains("correlationId 7d0c9763"),
            "{}",
            diagnosis.message
        );
        assert_eq!(diagnosis.hint, Code::TokenUnavailable.next_step());
        let diagnosis = token_unavailable(&TokenError::Refused {
            status: 400,
            message: "AADSTS500011: The resource principal named api://x was not found".into(),
            correlation_id: None,
        });
        assert!(
            diagnosis
                .message
                .contains("BACKEND_TOKEN_RESOURCE names no application"),
            "{}",
            diagnosis.message
        );
        let diagnosis = token_unavailable(&TokenError::NotConfigured("IDENTITY_ENDPOINT"));
        assert!(diagnosis.message.contains("managed identity"));
    }

    #[test]
    fn the_envelope_and_the_path_report_carry_the_same_code_and_next_step() {
        let diagnosis = dns_failure("NXDOMAIN");
        let json = serde_json::to_value(&diagnosis).unwrap();
        assert_eq!(json["code"], "dns_failure");
        assert_eq!(json["hint"], Code::DnsFailure.next_step());
        assert!(json.get("forbidden_ip").is_none());
    }
}
