//! Tokens of this app's managed identity, from App Service's identity endpoint: the front end's
//! for the back end (`BACKEND_AUTH=entra`), the back end's for its database (`DB_AUTH=entra`,
//! used as the password). The endpoint is asked
//! `GET {IDENTITY_ENDPOINT}?resource=…&api-version=2019-08-01[&client_id=…]` with
//! `X-IDENTITY-HEADER: {IDENTITY_HEADER}`.
//!
//! Facts this follows: on Linux the endpoint is plain http on a private address, so the client
//! never goes through a proxy; `expires_on` is a string of Unix seconds (a number is accepted
//! too); tokens live about 24 h and the platform caches them, so a "refresh" may hand back the
//! same token.
//!
//! Behaviour:
//! - tokens are cached and renewed `refresh_ahead` before they expire, in a single flight: one
//!   caller fetches, concurrent callers keep using the still-valid token meanwhile (or, with no
//!   usable token, wait for that one fetch, bounded by the fetch's time limit);
//! - a failed renewal keeps the old token while it is still usable, and is not retried before
//!   `retry_interval` (nor is a failed first fetch: concurrent callers share its error);
//! - within one fetch, only connect errors, 429 and 5xx are retried, with backoff, inside the
//!   fetch's time limit; a 400 or a timeout is final;
//! - the token is never logged, never in an error, never in `Debug` output; errors carry the
//!   endpoint's `correlationId`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;
use serde_json::Value;
use url::Url;

use crate::secret::Secret;

/// The endpoint's API version (the one with `X-IDENTITY-HEADER` and `client_id`).
pub const API_VERSION: &str = "2019-08-01";
/// The header carrying `IDENTITY_HEADER`.
pub const IDENTITY_HEADER_NAME: &str = "x-identity-header";
/// Largest answer read from the endpoint, in bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Longest endpoint message quoted in an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// How to get tokens.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `IDENTITY_ENDPOINT` (unset: the app has no managed identity).
    pub endpoint: Option<Url>,
    /// `IDENTITY_HEADER`.
    pub identity_header: Option<Secret>,
    /// `BACKEND_TOKEN_RESOURCE`.
    pub resource: String,
    /// `AZURE_CLIENT_ID`, for a user-assigned identity.
    pub client_id: Option<String>,
    /// Time limit of one fetch, retries included.
    pub timeout: Duration,
    /// Renew a token this long before it expires.
    pub refresh_ahead: Duration,
    /// A token with less left than this is not used any more.
    pub min_remaining: Duration,
    /// After a failure (or a renewal that brought nothing newer), the endpoint is not asked
    /// again before this much time has passed.
    pub retry_interval: Duration,
    /// Attempts within one fetch (connect errors, 429, 5xx).
    pub attempts: u32,
}

impl TokenSettings {
    /// The defaults around the four settings that come from the environment.
    pub fn new(
        endpoint: Option<Url>,
        identity_header: Option<Secret>,
        resource: String,
        client_id: Option<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            endpoint,
            identity_header,
            resource,
            client_id,
            timeout,
            refresh_ahead: Duration::from_secs(5 * 60),
            min_remaining: Duration::from_secs(30),
            retry_interval: Duration::from_secs(5),
            attempts: 3,
        }
    }
}

/// An access token, ready to be sent. Its value never shows in `Debug` output.
#[derive(Clone)]
pub struct AccessToken {
    authorization: HeaderValue,
    expires_at: SystemTime,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// The `Authorization` header value (`Bearer …`), marked sensitive.
    pub fn authorization(&self) -> HeaderValue {
        self.authorization.clone()
    }

    /// The bare token, for the one place that sends it otherwise than in `Authorization` (the
    /// database login's password).
    pub fn secret(&self) -> Secret {
        let value = self.authorization.to_str().unwrap_or_default();
        Secret::from(value.strip_prefix("Bearer ").unwrap_or_default())
    }

    /// When it expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at.duration_since(now).unwrap_or_default()
    }
}

/// Why no token could be had. Never carries the token or `IDENTITY_HEADER`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` are not set: the app has no managed identity.
    #[error("{0} is not set: this app has no managed identity")]
    NotConfigured(&'static str),
    /// The endpoint answered with an error.
    #[error("the identity endpoint answered {status}: {message}{}", correlation(.correlation_id))]
    Refused {
        /// Its status.
        status: u16,
        /// Its message (bounded).
        message: String,
        /// Its `correlationId`, to quote to support.
        correlation_id: Option<String>,
    },
    /// No connection to the endpoint.
    #[error("the identity endpoint could not be reached: {0}")]
    Unreachable(String),
    /// No answer within the time limit.
    #[error("the identity endpoint did not answer within {0} ms")]
    Timeout(u128),
    /// A 200 whose body is not a usable token.
    #[error("the identity endpoint's answer is not usable: {0}")]
    BadAnswer(String),
    /// Another fetch was still running when the time limit ran out.
    #[error("another token fetch is still running")]
    Busy,
}

fn correlation(id: &Option<String>) -> String {
    id.as_ref()
        .map(|id| format!(" (correlationId {id})"))
        .unwrap_or_default()
}

impl TokenError {
    /// The endpoint's `correlationId`, when it gave one.
    pub fn correlation_id(&self) -> Option<&str> {
        match self {
            Self::Refused { correlation_id, .. } => correlation_id.as_deref(),
            _ => None,
        }
    }
}

/// A clock, so tests can move time.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

#[derive(Clone)]
struct Cached {
    token: AccessToken,
    /// Do not ask the endpoint again before this (after a failed renewal, or a renewal that
    /// brought back a token as old as before: the platform's own cache).
    quiet_until: Option<SystemTime>,
}

#[derive(Default)]
struct Flight {
    last_failure: Option<(SystemTime, TokenError)>,
}

/// The token source. Share it behind an `Arc`.
pub struct TokenSource {
    settings: TokenSettings,
    http: reqwest::Client,
    clock: Clock,
    cache: Mutex<Option<Cached>>,
    flight: tokio::sync::Mutex<Flight>,
    requests: AtomicU64,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("resource", &self.settings.resource)
            .field("client_id", &self.settings.client_id)
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source asking with `http` (build it without a proxy; see `diag::outbound`).
    pub fn new(settings: TokenSettings, http: reqwest::Client) -> Self {
        Self::with_clock(settings, http, Arc::new(SystemTime::now))
    }

    /// As [`TokenSource::new`], with another clock.
    pub fn with_clock(settings: TokenSettings, http: reqwest::Client, clock: Clock) -> Self {
        Self {
            settings,
            http,
            clock,
            cache: Mutex::new(None),
            flight: tokio::sync::Mutex::new(Flight::default()),
            requests: AtomicU64::new(0),
        }
    }

    /// The resource tokens are asked for.
    pub fn resource(&self) -> &str {
        &self.settings.resource
    }

    /// How many HTTP requests went to the endpoint.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    fn cached(&self) -> Option<Cached> {
        self.cache.lock().ok()?.clone()
    }

    fn store(&self, cached: Cached) {
        if let Ok(mut slot) = self.cache.lock() {
            *slot = Some(cached);
        }
    }

    /// A token for the back end: the cached one while it is fresh, else a renewed one.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        let now = (self.clock)();
        if let Some(cached) = self.cached() {
            let remaining = cached.token.remaining(now);
            if remaining >= self.settings.refresh_ahead {
                return Ok(cached.token);
            }
            if remaining >= self.settings.min_remaining {
                if cached.quiet_until.is_some_and(|until| now < until) {
                    return Ok(cached.token);
                }
                // Due for renewal but still good: whoever gets the flight renews; everyone else
                // goes on with the current token.
                let Ok(mut flight) = self.flight.try_lock() else {
                    return Ok(cached.token);
                };
                return match self.fetch_and_store(&mut flight).await {
                    Ok(token) => Ok(token),
                    Err(error) => {
                        tracing::warn!(
                            error = %error,
                            identity.correlation_id = error.correlation_id().unwrap_or(""),
                            token.remaining_s = remaining.as_secs(),
                            "renewing the managed-identity token failed; keeping the current one"
                        );
                        self.store(Cached {
                            token: cached.token.clone(),
                            quiet_until: Some((self.clock)() + self.settings.retry_interval),
                        });
                        Ok(cached.token)
                    }
                };
            }
        }
        // No usable token: wait for the one fetch in flight (or be it).
        let wait = self.settings.timeout + Duration::from_secs(1);
        let Ok(mut flight) = tokio::time::timeout(wait, self.flight.lock()).await else {
            return Err(TokenError::Busy);
        };
        let now = (self.clock)();
        if let Some(cached) = self.cached()
            && cached.token.remaining(now) >= self.settings.min_remaining
        {
            return Ok(cached.token);
        }
        if let Some((at, error)) = &flight.last_failure
            && now < *at + self.settings.retry_interval
        {
            return Err(error.clone());
        }
        self.fetch_and_store(&mut flight).await
    }

    async fn fetch_and_store(&self, flight: &mut Flight) -> Result<AccessToken, TokenError> {
        match self.fetch().await {
            Ok(token) => {
                let now = (self.clock)();
                let remaining = token.remaining(now);
                tracing::info!(
                    token.resource = %self.settings.resource,
                    token.expires_in_s = remaining.as_secs(),
                    "got a managed-identity token for the back end"
                );
                let quiet_until = (remaining < self.settings.refresh_ahead)
                    .then(|| now + self.settings.retry_interval);
                self.store(Cached {
                    token: token.clone(),
                    quiet_until,
                });
                flight.last_failure = None;
                Ok(token)
            }
            Err(error) => {
                flight.last_failure = Some(((self.clock)(), error.clone()));
                Err(error)
            }
        }
    }

    fn request_url(&self, endpoint: &Url) -> Url {
        let mut url = endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("api-version", API_VERSION);
            query.append_pair("resource", &self.settings.resource);
            if let Some(client_id) = self.settings.client_id.as_deref().filter(|c| !c.is_empty()) {
                query.append_pair("client_id", client_id);
            }
        }
        url
    }

    /// One fetch: up to `attempts` requests within `timeout`.
    async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let endpoint = self
            .settings
            .endpoint
            .as_ref()
            .ok_or(TokenError::NotConfigured("IDENTITY_ENDPOINT"))?;
        let secret = self
            .settings
            .identity_header
            .as_ref()
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::NotConfigured("IDENTITY_HEADER"))?;
        let mut header = HeaderValue::from_str(secret.expose()).map_err(|_| {
            TokenError::BadAnswer("IDENTITY_HEADER is not a valid header value".into())
        })?;
        header.set_sensitive(true);
        let url = self.request_url(endpoint);
        let started = Instant::now();
        let deadline = started + self.settings.timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(TokenError::Timeout(self.settings.timeout.as_millis()));
            }
            self.requests.fetch_add(1, Ordering::SeqCst);
            let sent = self
                .http
                .get(url.clone())
                .header(IDENTITY_HEADER_NAME, header.clone())
                .header("accept", "application/json")
                .timeout(remaining)
                .send()
                .await;
            let (error, retryable) = match sent {
                Ok(response) => {
                    let status = response.status();
                    let body = read_bounded(response).await;
                    if status.is_success() {
                        let body = body.map_err(TokenError::BadAnswer)?;
                        return parse_token(&body, (self.clock)());
                    }
                    let body = body.unwrap_or_default();
                    let (message, correlation_id) = parse_failure(&body);
                    (
                        TokenError::Refused {
                            status: status.as_u16(),
                            message,
                            correlation_id,
                        },
                        status.as_u16() == 429 || status.is_server_error(),
                    )
                }
                Err(error) if error.is_connect() => {
                    (TokenError::Unreachable(root_cause(&error)), true)
                }
                Err(error) if error.is_timeout() => {
                    return Err(TokenError::Timeout(self.settings.timeout.as_millis()));
                }
                Err(error) => (TokenError::Unreachable(root_cause(&error)), false),
            };
            if !retryable || attempt >= self.settings.attempts {
                return Err(error);
            }
            let backoff = Duration::from_millis(100 * 4u64.pow(attempt - 1));
            if Instant::now() + backoff >= deadline {
                return Err(error);
            }
            tokio::time::sleep(backoff).await;
        }
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn root_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Unix seconds from a string (`"1700000000"`, as App Service writes it) or a number.
fn unix_seconds(value: &Value) -> Option<u64> {
    match value {
        Value::String(text) => text.trim().parse().ok(),
        Value::Number(number) => number.as_u64(),
        _ => None,
    }
}

/// Reads a successful answer: `access_token`, `expires_on` (else `expires_in`), `token_type`.
fn parse_token(body: &[u8], now: SystemTime) -> Result<AccessToken, TokenError> {
    let bad = |why: &str| TokenError::BadAnswer(why.to_owned());
    let json: Value = serde_json::from_slice(body).map_err(|_| bad("not JSON"))?;
    let token = json["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no access_token"))?;
    if let Some(kind) = json["token_type"].as_str()
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(bad("token_type is not Bearer"));
    }
    let expires_at = match (
        unix_seconds(&json["expires_on"]),
        unix_seconds(&json["expires_in"]),
    ) {
        (Some(on), _) => UNIX_EPOCH + Duration::from_secs(on),
        (None, Some(seconds)) => now + Duration::from_secs(seconds),
        (None, None) => return Err(bad("no expires_on (Unix seconds)")),
    };
    if expires_at <= now {
        return Err(bad("the token has already expired"));
    }
    let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| bad("the token is not a valid header value"))?;
    authorization.set_sensitive(true);
    Ok(AccessToken {
        authorization,
        expires_at,
    })
}

/// The message and `correlationId` of an error answer, in the shapes the endpoint uses
/// (`{"statusCode":…,"message":…,"correlationId":…}`, or OAuth's `error`/`error_description`).
fn parse_failure(body: &[u8]) -> (String, Option<String>) {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        return (
            if text.is_empty() {
                "no details".to_owned()
            } else {
                bounded(text)
            },
            None,
        );
    };
    let message = json["message"]
        .as_str()
        .or_else(|| json["error_description"].as_str())
        .or_else(|| json["error"]["message"].as_str())
        .or_else(|| json["error"].as_str())
        .unwrap_or("no details");
    let correlation_id = json["correlationId"]
        .as_str()
        .or_else(|| json["correlation_id"].as_str())
        .map(bounded);
    (bounded(message), correlation_id)
}

fn bounded(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_MESSAGE_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_on_is_a_string_or_a_number() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for body in [
            r#"{"access_token":"a.b.c","expires_on":"1700086400","token_type":"Bearer"}"#,
            r#"{"access_token":"a.b.c","expires_on":1700086400}"#,
            r#"{"access_token":"a.b.c","expires_in":"86400"}"#,
        ] {
            let token = parse_token(body.as_bytes(), now).unwrap();
            assert_eq!(token.remaining(now), Duration::from_secs(86_400), "{body}");
            assert!(token.authorization().is_sensitive());
        }
        for bad in [
            r#"{"access_token":"a.b.c"}"#,
            r#"{"expires_on":"1700086400"}"#,
            r#"{"access_token":"a.b.c","expires_on":"1600000000"}"#,
            r#"{"access_token":"a.b.c","expires_on":"soon"}"#,
            r#"{"access_token":"a.b.c","expires_on":"1700086400","token_type":"pop"}"#,
            "<html>",
        ] {
            assert!(
                matches!(
                    parse_token(bad.as_bytes(), now),
                    Err(TokenError::BadAnswer(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn failures_keep_the_message_and_the_correlation_id() {
        let (message, id) = parse_failure(
            br#"{"statusCode":"500","message":"An unexpected error occured while fetching the AAD Token.","correlationId":"7d0c9763-ff1d-4842-a3f3-6d49e64f4513"}"#,
        );
        assert_eq!(
            message,
            "An unexpected error occured while fetching the AAD Token."
        );
        assert_eq!(id.as_deref(), Some("7d0c9763-ff1d-4842-a3f3-6d49e64f4513"));
        let (message, id) =
            parse_failure(br#"{"error":"invalid_request","error_description":"bad resource"}"#);
        assert_eq!((message.as_str(), id), ("bad resource", None));
        assert_eq!(parse_failure(b"").0, "no details");
        let error = TokenError::Refused {
            status: 500,
            message: "boom".into(),
            correlation_id: Some("c-1".into()),
        };
        assert_eq!(
            error.to_string(),
            "the identity endpoint answered 500: boom (correlationId c-1)"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = parse_token(
            br#"{"access_token":"s3cret.token.value","expires_in":3600}"#,
            SystemTime::now(),
        )
        .unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
