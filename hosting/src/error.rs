//! The one error envelope every lockdown service answers with, and extractors that put rejected
//! input (bad JSON, bad query strings) into it.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"error": {...}}`: the body of every error response from every service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    /// What went wrong.
    pub error: ErrorBody,
}

/// The inside of the error envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable `snake_case` code that scripts can match on.
    pub code: String,
    /// A human sentence saying what happened.
    pub message: String,
    /// The next step to take, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl ErrorEnvelope {
    /// Builds an envelope from its three parts.
    pub fn new(code: impl Into<String>, message: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            error: ErrorBody {
                code: code.into(),
                message: message.into(),
                hint,
            },
        }
    }
}

/// Answers `status` with the error envelope as JSON.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
    hint: Option<&str>,
) -> Response {
    let body = ErrorEnvelope::new(code, message, hint.map(str::to_owned));
    let mut response = (status, axum::Json(body)).into_response();
    response.extensions_mut().insert(ErrorCode(code.to_owned()));
    response
}

/// The envelope's `code`, kept on the response so that the server's failure log names the
/// diagnosis without parsing the body (see [`crate::server::with_http_layers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCode(pub String);

/// A JSON body extractor whose rejection is the shared envelope (400 `invalid_json`, 415
/// `unsupported_media_type`, 413 `payload_too_large`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> Response {
    let (code, hint) = match &rejection {
        JsonRejection::MissingJsonContentType(_) => (
            "unsupported_media_type",
            "send the body with Content-Type: application/json",
        ),
        // The body could not be read: too long (413), or broken on the wire (400: a malformed
        // chunked encoding, a client that stopped sending), which no smaller body would fix.
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", "send a smaller body")
        }
        JsonRejection::BytesRejection(_) => (
            "invalid_body",
            "the body could not be read: check the Content-Length or chunked encoding",
        ),
        _ => ("invalid_json", "check the body against the API's schema"),
    };
    error_response(rejection.status(), code, rejection.body_text(), Some(hint))
}

/// A query-string extractor whose rejection is the shared envelope (400 `invalid_query`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        rejection.body_text(),
        Some("check the query parameters"),
    )
}

/// The most of a bare error body kept as the envelope's message.
const BARE_MESSAGE_LIMIT: usize = 1024;

/// Puts an error answered outside the envelope into it: axum's own rejections (a path that does
/// not parse, a body over the limit, a 405 with an empty body) are plain text. JSON bodies and
/// answers that already carry an [`ErrorCode`] pass unchanged; the `Allow` header of a 405 is
/// kept. Applied to every answer by [`crate::server::with_http_layers`].
pub async fn envelope_bare(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<ErrorCode>().is_some()
    {
        return response;
    }
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
    if is_json {
        return response;
    }
    let (code, default_message, hint) = match status {
        StatusCode::BAD_REQUEST => (
            "bad_request",
            "the request could not be read",
            Some("check the path, query and body"),
        ),
        StatusCode::NOT_FOUND => ("not_found", "no such route", None),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not answer that method",
            Some("the Allow header lists the methods it answers"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is larger than this service accepts",
            Some("send a smaller body"),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the body's media type is not accepted here",
            Some("send the body with Content-Type: application/json"),
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "invalid_json",
            "the body does not match the API's schema",
            Some("check the body against the API's schema"),
        ),
        _ => return response,
    };
    let (parts, body) = response.into_parts();
    let message = axum::body::to_bytes(body, BARE_MESSAGE_LIMIT)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| default_message.to_owned());
    let mut enveloped = error_response(status, code, message, hint);
    for kept in [
        axum::http::header::ALLOW,
        axum::http::header::RETRY_AFTER,
        axum::http::header::WWW_AUTHENTICATE,
    ] {
        if let Some(value) = parts.headers.get(&kept) {
            enveloped.headers_mut().insert(kept, value.clone());
        }
    }
    enveloped
}

/// Fallback for unknown routes: 404 in the envelope.
pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such route", None)
}
