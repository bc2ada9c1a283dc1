//! Entra ID's signing keys, fetched from `{ENTRA_AUTHORITY}/{tenant}/discovery/v2.0/keys` and
//! cached by `kid`.
//!
//! - A token naming an unknown `kid` triggers one refetch (Entra rotates keys), but refetches are
//!   rate-limited (`min_refetch_interval`) and run in a single flight: a storm of made-up `kid`s
//!   costs at most one fetch per interval, and concurrent requests wait for that one fetch.
//! - Keys older than `max_age` are refreshed by the next request that finds the flight free, so a
//!   key Entra withdrew stops being trusted within a day.
//! - A failed fetch keeps the keys already known; only when none are known (or the one asked for
//!   could not be looked up) does validation fail with "keys unavailable".
//!
//! The metadata document (`.well-known/openid-configuration`) is not read: the keys URL is
//! derived from the authority and the tenant, which saves a request and a failure mode, and the
//! issuers the validator accepts are fixed (see `crate::entra`), not taken from the network.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use url::Url;

/// Largest keys document read, in bytes (Entra's is a few KiB).
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Timing of the key cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCacheSettings {
    /// Time limit of one fetch.
    pub fetch_timeout: Duration,
    /// Fetches (after the first) are at least this far apart, whatever the tokens say.
    pub min_refetch_interval: Duration,
    /// Keys fetched longer ago than this are refreshed.
    pub max_age: Duration,
}

impl Default for KeyCacheSettings {
    fn default() -> Self {
        Self {
            fetch_timeout: Duration::from_secs(5),
            min_refetch_interval: Duration::from_secs(30),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// Why no key could be found for a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The keys are known (and were refreshed, or recently enough), and none has this `kid`.
    #[error("no signing key with kid {kid:?} is published for the tenant")]
    Unknown {
        /// The `kid` the token named.
        kid: String,
    },
    /// The keys could not be fetched, so the `kid` could not be looked up.
    #[error("the signing keys could not be fetched: {0}")]
    Unavailable(String),
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
}

#[derive(Default)]
struct Flight {
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// The cache. Cheap to share behind an `Arc`.
pub struct KeyCache {
    url: Url,
    http: reqwest::Client,
    settings: KeyCacheSettings,
    keys: RwLock<KeySet>,
    // Held across the fetch: whoever holds it is the single flight.
    flight: tokio::sync::Mutex<Flight>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("url", &self.url.as_str())
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache fetching from `url` with `http` (no keys until the first token asks).
    pub fn new(url: Url, http: reqwest::Client, settings: KeyCacheSettings) -> Self {
        Self {
            url,
            http,
            settings,
            keys: RwLock::new(KeySet::default()),
            flight: tokio::sync::Mutex::new(Flight::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// The keys URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// How many fetches were started.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    /// How many keys are known.
    pub fn known(&self) -> usize {
        self.keys.read().map_or(0, |set| set.keys.len())
    }

    fn cached(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.keys.read().ok()?.keys.get(kid).cloned()
    }

    fn stale(&self) -> bool {
        self.keys.read().is_ok_and(|set| {
            set.fetched_at
                .is_some_and(|at| at.elapsed() > self.settings.max_age)
        })
    }

    /// The key named `kid`, fetching the keys when it is unknown (at most once per
    /// `min_refetch_interval`, in a single flight).
    pub async fn key_for(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyError> {
        if let Some(key) = self.cached(kid) {
            if self.stale()
                && let Ok(mut flight) = self.flight.try_lock()
            {
                self.refresh(&mut flight).await;
            }
            return Ok(key);
        }
        // Everyone who needs a fetch waits for the one in flight; the wait is bounded by the
        // fetch's own time limit.
        let wait = self.settings.fetch_timeout + Duration::from_secs(1);
        let Ok(mut flight) = tokio::time::timeout(wait, self.flight.lock()).await else {
            return Err(KeyError::Unavailable(
                "a fetch of the keys is still running".into(),
            ));
        };
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        self.refresh(&mut flight).await;
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        match &flight.last_error {
            Some(error) => Err(KeyError::Unavailable(error.clone())),
            None if self.known() == 0 => Err(KeyError::Unavailable("no keys are known".into())),
            None => Err(KeyError::Unknown {
                kid: kid.to_owned(),
            }),
        }
    }

    /// Fetches the keys now (at start-up, so a wrong tenant or authority shows in the log before
    /// the first call), in the single flight; a failure is logged and the next token retries.
    pub async fn prefetch(&self) {
        let mut flight = self.flight.lock().await;
        self.refresh(&mut flight).await;
    }

    /// Fetches the keys unless the last attempt is too recent; a failure keeps the old keys.
    async fn refresh(&self, flight: &mut Flight) {
        let now = Instant::now();
        if flight
            .last_attempt
            .is_some_and(|at| now.duration_since(at) < self.settings.min_refetch_interval)
        {
            return;
        }
        flight.last_attempt = Some(now);
        self.fetches.fetch_add(1, Ordering::SeqCst);
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(
                    url = %self.url,
                    keys.count = keys.len(),
                    "fetched Entra ID's signing keys"
                );
                if let Ok(mut set) = self.keys.write() {
                    set.keys = keys;
                    set.fetched_at = Some(Instant::now());
                }
                flight.last_error = None;
            }
            Err(error) => {
                tracing::warn!(
                    url = %self.url,
                    error = %error,
                    keys.kept = self.known(),
                    "fetching Entra ID's signing keys failed; keeping the keys already known"
                );
                flight.last_error = Some(error);
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
        let mut response = self
            .http
            .get(self.url.clone())
            .timeout(self.settings.fetch_timeout)
            .send()
            .await
            .map_err(|e| format!("GET {} failed: {e}", self.url))?;
        if !response.status().is_success() {
            return Err(format!("GET {} answered {}", self.url, response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading {} failed: {e}", self.url))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "{} is larger than {MAX_DOCUMENT_BYTES} bytes",
                    self.url
                ));
            }
            body.extend_from_slice(&chunk);
        }
        parse_keys(&body)
    }
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The RSA signing keys of a JWKS document, by `kid`; other keys are skipped.
pub fn parse_keys(body: &[u8]) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
    let document: Document = serde_json::from_slice(body)
        .map_err(|e| format!("the keys document is not a JWKS: {e}"))?;
    let keys: HashMap<_, _> = document
        .keys
        .into_iter()
        .filter(|k| k.kty.as_deref() == Some("RSA"))
        .filter(|k| k.usage.as_deref().is_none_or(|u| u == "sig"))
        .filter_map(|k| {
            let key = DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?;
            Some((k.kid?, Arc::new(key)))
        })
        .collect();
    if keys.is_empty() {
        return Err("the keys document holds no RSA signing key".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rsa_signing_keys_with_a_kid_are_kept() {
        let body = br#"{"keys":[
            {"kty":"RSA","use":"sig","kid":"a","n":"sXch","e":"AQAB"},
            {"kty":"RSA","use":"enc","kid":"b","n":"sXch","e":"AQAB"},
            {"kty":"EC","use":"sig","kid":"c","crv":"P-256","x":"AA","y":"AA"},
            {"kty":"RSA","use":"sig","n":"sXch","e":"AQAB"},
            {"kty":"RSA","kid":"d","n":"sXch","e":"AQAB","x5c":["MIIB"],"issuer":"https://login.microsoftonline.com/t/v2.0"}
        ]}"#;
        let keys = parse_keys(body).unwrap();
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["a", "d"]);
        assert!(parse_keys(br#"{"keys":[]}"#).is_err());
        assert!(parse_keys(b"<html>").is_err());
    }
}
