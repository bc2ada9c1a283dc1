//! Turning a failed back-end call into a diagnosis: what went wrong on the path to the back end,
//! in one stable code, a sentence, and the next step. Never a bare "502 Bad Gateway".

use std::error::Error as StdError;
use std::io;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use probe::appservice::{AppServiceBlock, classify};
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

/// Every diagnosis code the front end can answer with (documented in the README).
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
];

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

/// Diagnoses an HTTP response from the back end. `None` means "relay it as it is": successes
/// and the caller's own mistakes (400, 404, 409, …).
pub fn from_response(status: StatusCode, body: &[u8]) -> Option<Diagnosis> {
    let gateway = StatusCode::BAD_GATEWAY;
    let text = String::from_utf8_lossy(&body[..body.len().min(16 * 1024)]);
    if let Some(block) = classify(status.as_u16(), &text) {
        return Some(from_block(block));
    }
    let backend_code = envelope_code(body);
    match status {
        StatusCode::UNAUTHORIZED => Some(Diagnosis::new(
            gateway,
            "backend_unauthorized",
            format!(
                "the back end refused the front end's credential ({})",
                backend_code.as_deref().unwrap_or("no code")
            ),
            "BACKEND_API_KEY must be one of the back end's API_KEYS (check that the Key Vault references resolved)",
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
    sources(error).any(|e| e.is::<probe::dns::LookupFailure>())
}

fn io_kind(error: &reqwest::Error) -> Option<io::ErrorKind> {
    sources(error).find_map(|e| e.downcast_ref::<io::Error>().map(io::Error::kind))
}

fn is_tls_failure(error: &reqwest::Error) -> bool {
    sources(error).any(|e| e.is::<rustls::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_service_pages_are_recognised() {
        let cases = [
            (
                probe::appservice::ACCESS_RESTRICTED_PAGE,
                "access_restricted",
            ),
            (probe::appservice::APP_STOPPED_PAGE, "app_stopped"),
            (
                probe::appservice::PUBLIC_ACCESS_DISABLED_PAGE,
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
    fn every_code_is_listed() {
        for page in [
            probe::appservice::ACCESS_RESTRICTED_PAGE,
            probe::appservice::APP_STOPPED_PAGE,
        ] {
            let code = from_response(StatusCode::FORBIDDEN, page.as_bytes())
                .unwrap()
                .code;
            assert!(CODES.contains(&code));
        }
    }
}
