//! The errors `/diag` answers with, and their one mapping to HTTP responses in the shared
//! envelope `{"error":{"code","message","hint"}}`.

use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::policy::Denied;
use crate::target::InputError;

/// Everything `/diag` can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    /// 404 `not_found`: `DIAG_TOKEN` is unset, so `/diag` does not exist (same body as any unknown
    /// route, so a scanner learns nothing). The router mounts nothing then, so this is only the
    /// guard's fallback.
    #[error("no such route")]
    Disabled,
    /// 401 `unauthorized`: the `Authorization: Bearer` token is missing or wrong.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// 405 `method_not_allowed`: `/diag` answers GET and HEAD only (the `Allow` header lists them).
    #[error("{0} is not allowed here: /diag answers GET and HEAD")]
    MethodNotAllowed(Method),
    /// 429 `rate_limited`: more `/diag` requests than the rate allows (authenticated ones, or
    /// ones with a wrong token, each on their own budget); retry after the delay.
    #[error("too many diagnostic requests")]
    RateLimited {
        /// When a request will be accepted again.
        retry_after: Duration,
    },
    /// 503 `diag_busy`: as many diagnostics as allowed are already running.
    #[error("too many diagnostics are running at once")]
    Busy,
    /// 400 `invalid_input`: a parameter is missing or malformed; nothing was sent anywhere.
    #[error(transparent)]
    InvalidInput(#[from] InputError),
    /// 403 `target_denied`: the target policy forbids the (resolved) address; nothing was sent.
    #[error("{0}")]
    TargetDenied(Denied),
    /// 404 `backend_diag_not_configured`: `/diag/backend/…` on an app that has no back end's
    /// diag token (`BACKEND_DIAG_TOKEN` on the front end).
    #[error("this app does not forward diagnostics to its back end")]
    BackendNotConfigured,
    /// 500 `internal`: something that should not fail did (details are logged, not returned).
    #[error("internal error: {0}")]
    Internal(String),
}

impl IntoResponse for DiagError {
    fn into_response(self) -> Response {
        let (status, code, hint): (StatusCode, &str, Option<String>) = match &self {
            Self::Disabled => (StatusCode::NOT_FOUND, "not_found", None),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                Some("send Authorization: Bearer <DIAG_TOKEN>".to_owned()),
            ),
            Self::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                Some("send a GET request".to_owned()),
            ),
            Self::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                Some("wait for Retry-After seconds, then try again".to_owned()),
            ),
            Self::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "diag_busy",
                Some("wait for the running diagnostics to finish, then try again".to_owned()),
            ),
            Self::InvalidInput(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_input",
                Some("check the query parameters".to_owned()),
            ),
            Self::TargetDenied(denied) => (
                StatusCode::FORBIDDEN,
                "target_denied",
                Some(denied.hint().to_owned()),
            ),
            Self::BackendNotConfigured => (
                StatusCode::NOT_FOUND,
                "backend_diag_not_configured",
                Some(
                    "set BACKEND_DIAG_TOKEN on the front end to the back end's DIAG_TOKEN"
                        .to_owned(),
                ),
            ),
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "diag request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", None)
            }
        };
        let message = match &self {
            Self::Internal(_) => "the diagnostic failed inside the probe".to_owned(),
            other => other.to_string(),
        };
        let mut response = hosting::error_response(status, code, message, hint.as_deref());
        let retry_after = match &self {
            Self::RateLimited { retry_after } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            Self::Busy => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
