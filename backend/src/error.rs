//! The back end's errors, each mapped once to a status and a code in the shared envelope.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hosting::error_response;

use crate::caller::{ClientAddr, Refusal};
use crate::database::DbFailure;
use crate::entra::TokenError;
use crate::store::StoreError;

/// Everything a back-end route can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 `unauthorized`: no API key, or not one of `API_KEYS`.
    #[error("a valid API key is required")]
    Unauthorized {
        /// True when no key was sent at all.
        missing: bool,
    },
    /// 401, 403 or 503 with the token's own code (`missing_token`, `wrong_audience`,
    /// `role_missing`, `signing_keys_unavailable`, …): the Entra token was refused (see
    /// [`TokenError`] for each code's status). 401s carry `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Token(TokenError),
    /// 403 `caller_not_allowed`: the client address is outside `ALLOWED_CALLERS`, or is an IPv6
    /// address in no form that can be compared with its IPv4 ranges. The message names both forms
    /// of a service-endpoint caller (the IPv6 address and the VNet IPv4 it carries).
    #[error("{}", caller_refusal(client, *refusal))]
    CallerNotAllowed {
        /// The address the decision was made on, and its source.
        client: ClientAddr,
        /// Why it was refused.
        refusal: Refusal,
    },
    /// 400 `invalid_id`: the id in the path is not a UUID.
    #[error("item ids are UUIDs")]
    InvalidId,
    /// 400 `invalid_item`: the item failed validation.
    #[error("{0}")]
    InvalidItem(String),
    /// 404 `item_not_found`.
    #[error("no item with this id")]
    ItemNotFound,
    /// 409 `store_full`: the sample store holds its maximum.
    #[error("the store is full")]
    StoreFull,
    /// 500 `internal`: the store failed. Logged here, never detailed to the caller.
    #[error("store failure: {0}")]
    Store(StoreError),
    /// 503 with the database's diagnosis code (`database_connect_timeout`,
    /// `database_auth_refused`, …): PostgreSQL could not be used. The code and its next step
    /// reach the front end, which passes them on; the failure's detail is only logged.
    #[error("the back end cannot use its database")]
    DatabaseUnavailable(DbFailure),
}

/// `caller 10.9.9.9 (from x-client-ip) is not in ALLOWED_CALLERS`; a service-endpoint caller
/// with both its forms; an undecodable IPv6 caller said so.
fn caller_refusal(client: &ClientAddr, refusal: Refusal) -> String {
    let caller = hosting::CallerAddr::of(client.ip);
    let source = client.source.as_str();
    match (refusal, caller.note()) {
        (Refusal::Outside, None) => {
            format!(
                "caller {} (from {source}) is not in ALLOWED_CALLERS",
                client.ip
            )
        }
        (Refusal::Outside, Some(note)) => format!(
            "caller {} ({note}, from {source}) is not in ALLOWED_CALLERS",
            client.ip
        ),
        (Refusal::Undecodable, _) => format!(
            "caller {} (from {source}) is {}, and no IPv6 range in ALLOWED_CALLERS contains it",
            client.ip,
            hosting::service_endpoint::UNDECODABLE
        ),
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Full => Self::StoreFull,
            StoreError::Unavailable(failure) => Self::DatabaseUnavailable(failure),
            other => Self::Store(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            Self::Unauthorized { missing } => error_response(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                if missing {
                    "no API key was sent"
                } else {
                    "the API key is not valid"
                },
                Some(
                    "send one of the back end's API_KEYS in the X-Api-Key header (the front end's BACKEND_API_KEY)",
                ),
            ),
            Self::Token(error) => {
                let mut response = error_response(
                    error.status(),
                    error.code(),
                    error.to_string(),
                    Some(error.hint()),
                );
                if let Some(challenge) = error.www_authenticate() {
                    response.headers_mut().insert(
                        axum::http::header::WWW_AUTHENTICATE,
                        axum::http::HeaderValue::from_static(challenge),
                    );
                }
                response
            }
            Self::CallerNotAllowed { refusal, .. } => error_response(
                StatusCode::FORBIDDEN,
                "caller_not_allowed",
                message,
                Some(match refusal {
                    Refusal::Outside => {
                        "call from the front end's integration subnet, or check ALLOWED_CALLERS and CLIENT_IP_SOURCE"
                    }
                    Refusal::Undecodable => {
                        "add the caller's IPv6 range to ALLOWED_CALLERS, or set CLIENT_IP_SOURCE to a source that carries its IPv4 address"
                    }
                }),
            ),
            Self::InvalidId => error_response(StatusCode::BAD_REQUEST, "invalid_id", message, None),
            Self::InvalidItem(_) => {
                error_response(StatusCode::BAD_REQUEST, "invalid_item", message, None)
            }
            Self::ItemNotFound => {
                error_response(StatusCode::NOT_FOUND, "item_not_found", message, None)
            }
            Self::StoreFull => error_response(
                StatusCode::CONFLICT,
                "store_full",
                message,
                Some("delete some items first"),
            ),
            Self::DatabaseUnavailable(failure) => {
                let code = failure.code();
                tracing::error!(code = code.as_str(), error = %failure, "database unavailable");
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code.as_str(),
                    format!("{message}: {}", code.meaning()),
                    Some(code.next_step()),
                )
            }
            Self::Store(error) => {
                tracing::error!(error = %error, "store failure");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the back end could not complete the request",
                    None,
                )
            }
        }
    }
}
