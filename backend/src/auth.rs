//! The two gates in front of `/api`: the caller's network (`ALLOWED_CALLERS`) and its credential
//! (`API_KEYS`, compared in constant time). Defence in depth behind the platform's lockdown.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use subtle::{Choice, ConstantTimeEq};

use crate::AppState;
use crate::caller::client_addr;
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
        let mut matched = Choice::from(0);
        for key in self.keys.iter() {
            matched |= key.as_slice().ct_eq(presented);
        }
        matched.into()
    }
}

/// Middleware on `/api`: the network gate first (403 `caller_not_allowed`), then the key
/// (401 `unauthorized`). The chosen client address is left in the request's extensions.
pub async fn gate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let client = client_addr(state.client_ip_source, request.headers(), peer);
    if !state.callers.allows(client.ip) {
        return Err(ApiError::CallerNotAllowed { client });
    }
    if state.keys.required() {
        let presented = request
            .headers()
            .get(API_KEY_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !state.keys.verify(presented) {
            return Err(ApiError::Unauthorized {
                missing: presented.is_empty(),
            });
        }
    }
    request.extensions_mut().insert(client);
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
    }
}
