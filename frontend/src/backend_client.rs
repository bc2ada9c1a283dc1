//! `BackendClient`: the one way the front end talks to the back end. It resolves with the same
//! resolver as `/diag/resolve`, leaves from `OUTBOUND_SOURCE_ADDR` when set, adds the credential
//! (an API key, or a token of the managed identity from [`TokenSource`]) and the request id,
//! follows no redirects, and turns every failure into a [`Diagnosis`].

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use bytes::Bytes;
use diag::dns::DnsResolver;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::Secret;
use diag::appservice::ResponseHead;
use diag::diagnosis::Code;

use crate::diagnosis::{self, CredentialKind, Diagnosis};
use crate::origin::{Origin, OriginError, PoolSettings};
use crate::token::{TokenSettings, TokenSource};

/// The credential the front end adds to every back-end call.
#[derive(Debug, Clone)]
pub enum CredentialSettings {
    /// Nothing.
    None,
    /// `X-Api-Key` (an empty key means nothing is sent).
    ApiKey(Secret),
    /// `Authorization: Bearer` with a token of the managed identity.
    ManagedIdentity(Box<TokenSettings>),
}

/// How to build a [`BackendClient`].
#[derive(Debug, Clone)]
pub struct BackendSettings {
    /// The back end's base URL.
    pub base: Url,
    /// The credential.
    pub credential: CredentialSettings,
    /// Limit for one call, connect included.
    pub timeout: Duration,
    /// Local address outbound sockets bind to.
    pub source: Option<IpAddr>,
    /// The connection pool's bounds.
    pub pool: PoolSettings,
}

/// A response from the back end that is not a failure.
#[derive(Debug, Clone)]
pub struct BackendResponse {
    /// The back end's status.
    pub status: StatusCode,
    /// Its content type, when it sent one.
    pub content_type: Option<HeaderValue>,
    /// The body.
    pub body: Bytes,
    /// How long the call took.
    pub elapsed: Duration,
}

/// An item as the back end returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Item id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its note.
    #[serde(default)]
    pub note: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: String,
}

/// A new item, as the back end's `POST /api/items` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewItem {
    /// Its name (the back end trims and bounds it).
    pub name: String,
    /// Its note (the back end drops an empty one).
    #[serde(default)]
    pub note: Option<String>,
}

/// The back end's `GET /readyz`: its store and, on PostgreSQL, the database hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessSeen {
    /// `embedded` or `postgres` (absent: not a lockdown back end's readiness).
    #[serde(default)]
    pub store: Option<String>,
    /// The database hop (PostgreSQL only).
    #[serde(default)]
    pub database: Option<DatabaseSeen>,
}

/// The database hop as the back end saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseSeen {
    /// The server's host name.
    pub host: String,
    /// The address connected to.
    #[serde(default)]
    pub address: Option<String>,
    /// Its class.
    #[serde(default)]
    pub class: Option<String>,
    /// TLS with the certificate and host name verified.
    pub tls_verified: bool,
    /// Connect and `SELECT 1`, in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<u64>,
}

/// The back end's `GET /api/caller`, as far as the front end needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerSeen {
    /// The client address the back end settled on.
    pub client_ip: String,
    /// Where it read it from.
    pub source: String,
    /// The TCP peer it saw.
    pub peer: String,
    /// The address class.
    pub class: String,
    /// Whether the back end's ALLOWED_CALLERS lets it in.
    pub allowed: bool,
    /// How the back end's credential gate let the front end in (absent from older back ends).
    #[serde(default)]
    pub auth: Option<CallerAuthSeen>,
    /// Which back-end instance answered.
    pub instance: hosting::Instance,
}

/// The back end's `auth` in `/api/caller`: which credential let the front end in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerAuthSeen {
    /// `none`, `api-key` or `entra`.
    pub mode: String,
    /// Entra: the calling application (the managed identity's client ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Entra: the caller's object ID (the managed identity's principal ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Entra: the app roles in the token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Entra: the token version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_version: Option<String>,
}

/// The credential as the client holds it.
// Debug is safe: the key's header value is marked sensitive, and the token source redacts.
#[derive(Clone, Debug)]
enum Credential {
    None,
    ApiKey(HeaderValue),
    Entra(Arc<TokenSource>),
}

/// Typed client for the back-end API. Cheap to clone (one `Arc`): the front end's state is
/// cloned for every request.
#[derive(Clone, Debug)]
pub struct BackendClient {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    origin: Origin,
    resolver: DnsResolver,
    base: Url,
    credential: Credential,
    label: String,
    timeout: Duration,
    fail_fast: FailFast,
}

impl BackendClient {
    /// Builds the client; the connection pool is shared by all clones.
    pub fn new(settings: BackendSettings, resolver: DnsResolver) -> anyhow::Result<Self> {
        Self::build(settings, resolver, None)
    }

    /// As [`BackendClient::new`], with a token source built by the caller (tests move its clock).
    pub fn with_token_source(
        settings: BackendSettings,
        resolver: DnsResolver,
        tokens: Arc<TokenSource>,
    ) -> anyhow::Result<Self> {
        let settings = BackendSettings {
            credential: CredentialSettings::None,
            ..settings
        };
        Self::build(settings, resolver, Some(tokens))
    }

    fn build(
        settings: BackendSettings,
        resolver: DnsResolver,
        tokens: Option<Arc<TokenSource>>,
    ) -> anyhow::Result<Self> {
        // Half the budget for the name and the connect together: a connect still pending by
        // then is reported as a connect timeout (a firewall or NSG dropping SYNs), never
        // confused with a slow answer, and a silent DNS server costs no more than that.
        let origin = Origin::new(
            &settings.base,
            resolver.clone(),
            settings.source,
            settings.timeout / 2,
            settings.pool,
        )?;
        let credential = match (tokens, settings.credential) {
            (Some(tokens), _) => Credential::Entra(tokens),
            (None, CredentialSettings::None) => Credential::None,
            (None, CredentialSettings::ApiKey(key)) if key.is_empty() => Credential::None,
            (None, CredentialSettings::ApiKey(key)) => {
                let mut value = HeaderValue::from_str(key.expose())?;
                value.set_sensitive(true);
                Credential::ApiKey(value)
            }
            (None, CredentialSettings::ManagedIdentity(token_settings)) => {
                // The identity endpoint is local to the instance: plain http, never a proxy, no
                // source binding (it is not reached through the VNet).
                let http = diag::outbound::http_client_builder(resolver.clone(), None)
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(Duration::from_secs(2).min(token_settings.timeout))
                    .build()?;
                Credential::Entra(Arc::new(TokenSource::new(*token_settings, http)))
            }
        };
        let label = match (
            settings.base.host_str(),
            settings.base.port_or_known_default(),
        ) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => settings.base.to_string(),
        };
        Ok(Self {
            inner: Arc::new(ClientInner {
                origin,
                resolver,
                base: settings.base,
                credential,
                label,
                timeout: settings.timeout,
                fail_fast: FailFast::new(settings.timeout),
            }),
        })
    }

    /// The back end's base URL.
    pub fn base(&self) -> &Url {
        &self.inner.base
    }

    /// What the front end sends: `none`, `api-key` or `entra`.
    pub fn auth_mode(&self) -> &'static str {
        match self.inner.credential {
            Credential::None => "none",
            Credential::ApiKey(_) => "api-key",
            Credential::Entra(_) => "entra",
        }
    }

    /// The token source, in Entra mode.
    pub fn token_source(&self) -> Option<&Arc<TokenSource>> {
        match &self.inner.credential {
            Credential::Entra(tokens) => Some(tokens),
            _ => None,
        }
    }

    fn credential_kind(&self) -> CredentialKind {
        match self.inner.credential {
            Credential::None => CredentialKind::Nothing,
            Credential::ApiKey(_) => CredentialKind::ApiKey,
            Credential::Entra(_) => CredentialKind::EntraToken,
        }
    }

    /// Sends one request to `path` (absolute, e.g. `/api/items`). Failures the front end can
    /// explain (transport errors, 401, 403, 5xx) come back as a [`Diagnosis`]; everything else,
    /// including 4xx caused by the caller's input, comes back as a response to relay.
    ///
    /// The whole call (name, connect, request, answer) fits in `BACKEND_TIMEOUT_MS`. A GET lost
    /// on a connection the back end closed or reset is sent once more (a pooled connection
    /// closed under the request is not a fault of the path). While the back end keeps timing
    /// out, calls fail fast with the last diagnosis and one call at a time tries again.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        json_body: Option<Bytes>,
        request_id: Option<&HeaderValue>,
    ) -> Result<BackendResponse, Diagnosis> {
        if let Some(diagnosis) = self.inner.fail_fast.check() {
            return Err(diagnosis);
        }
        let uri =
            self.inner.origin.uri(path).map_err(|e| {
                diagnosis::internal(format!("the back-end URL cannot be built: {e}"))
            })?;
        let credential = match &self.inner.credential {
            Credential::None => None,
            Credential::ApiKey(key) => Some((API_KEY_HEADER, key.clone())),
            Credential::Entra(tokens) => match Box::pin(tokens.token()).await {
                Ok(token) => Some((header::AUTHORIZATION, token.authorization())),
                Err(error) => {
                    let diagnosis = diagnosis::token_unavailable(&error);
                    tracing::warn!(
                        code = diagnosis.code.as_str(),
                        identity.correlation_id = error.correlation_id().unwrap_or(""),
                        error = %error,
                        "no token for the back-end call"
                    );
                    return Err(diagnosis);
                }
            },
        };
        let outgoing = Outgoing {
            method,
            uri,
            credential,
            request_id: request_id.cloned(),
            body: json_body,
        };
        let started = Instant::now();
        let exchanged = tokio::time::timeout(self.inner.timeout, self.exchange(&outgoing)).await;
        let (head, body) = match exchanged {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                let diagnosis = diagnosis::from_transport(&error, &self.inner.label);
                self.inner.fail_fast.failed(&diagnosis);
                return Err(diagnosis);
            }
            Err(_) => {
                let diagnosis = diagnosis::backend_timeout(&self.inner.label);
                self.inner.fail_fast.failed(&diagnosis);
                return Err(diagnosis);
            }
        };
        self.inner.fail_fast.succeeded();
        let status = head.status;
        // Only failures are read: it is what tells App Service's own answers apart.
        if status.is_client_error() || status.is_server_error() {
            let reason = diag::appservice::reason_phrase(&head.extensions);
            let answer = ResponseHead {
                status: status.as_u16(),
                reason,
                headers: &head.headers,
            };
            if let Some(mut diagnosis) =
                diagnosis::from_response_to(&answer, &body, self.credential_kind())
            {
                if diagnosis.needs_dns_context() {
                    diagnosis = diagnosis.in_context(self.via_privatelink().await);
                }
                // Logged once by the server with the code it answers (`hosting::with_http_layers`).
                tracing::debug!(
                    code = diagnosis.code.as_str(),
                    http.status = status.as_u16(),
                    "back-end call failed"
                );
                return Err(diagnosis);
            }
        }
        let mut head = head;
        Ok(BackendResponse {
            status,
            content_type: head.headers.remove(header::CONTENT_TYPE),
            body,
            elapsed: started.elapsed(),
        })
    }

    /// One exchange, and one more for a GET lost on a connection that was closed under it. The
    /// answer is read whole inside the caller's budget: a back end that stalls mid-answer is a
    /// diagnosed timeout, never a truncated relay.
    async fn exchange(
        &self,
        outgoing: &Outgoing,
    ) -> Result<(axum::http::response::Parts, Bytes), OriginError> {
        let mut retried = false;
        loop {
            let request = outgoing.request(self.inner.origin.host_header());
            let response = match self.inner.origin.send(request).await {
                Ok(response) => response,
                Err(error)
                    if !retried
                        && outgoing.method == Method::GET
                        && error.is_lost_on_connection() =>
                {
                    retried = true;
                    tracing::debug!(error = ?error, "GET lost on a closed connection: sent again");
                    continue;
                }
                Err(error) => return Err(error),
            };
            let (head, body) = response.into_parts();
            match body.collect().await {
                Ok(collected) => return Ok((head, collected.to_bytes())),
                Err(error) if !retried && outgoing.method == Method::GET => {
                    retried = true;
                    tracing::debug!(%error, "GET's answer cut on a closed connection: sent again");
                }
                Err(error) => return Err(OriginError::Body(error)),
            }
        }
    }

    /// Whether the back end's name goes through `privatelink` (failure path only: an access
    /// restriction's 403 on such a name means the call reached the public address of an app with
    /// a private endpoint). An address in `BACKEND_URL`, or a failed lookup, says no.
    async fn via_privatelink(&self) -> bool {
        match self.inner.base.host() {
            Some(url::Host::Domain(name)) => {
                self.inner
                    .resolver
                    .resolve(name, diag::QueryType::A)
                    .await
                    .privatelink
            }
            _ => false,
        }
    }

    /// `GET /api/items`.
    pub async fn list_items(
        &self,
        request_id: Option<&HeaderValue>,
    ) -> Result<Vec<Item>, Diagnosis> {
        #[derive(Deserialize)]
        struct List {
            items: Vec<Item>,
        }
        let response = self
            .send(Method::GET, "/api/items", None, request_id)
            .await?;
        Ok(self.decode::<List>(&response)?.items)
    }

    /// `POST /api/items`. The back end's answer comes back as it is, for the caller to judge:
    /// 201 with the item, or the 4xx the input drew (`invalid_item`, `store_full`).
    pub async fn create_item(
        &self,
        item: &NewItem,
        request_id: Option<&HeaderValue>,
    ) -> Result<BackendResponse, Diagnosis> {
        let body = serde_json::to_vec(item).expect("a NewItem always serialises");
        self.send(Method::POST, "/api/items", Some(body.into()), request_id)
            .await
    }

    /// `DELETE /api/items/{id}`. The back end's answer comes back as it is (204, or 404 when
    /// the item was already gone).
    pub async fn delete_item(
        &self,
        id: uuid::Uuid,
        request_id: Option<&HeaderValue>,
    ) -> Result<BackendResponse, Diagnosis> {
        self.send(
            Method::DELETE,
            &format!("/api/items/{id}"),
            None,
            request_id,
        )
        .await
    }

    /// `GET /api/caller`, with how long it took.
    pub async fn caller(
        &self,
        request_id: Option<&HeaderValue>,
    ) -> Result<(CallerSeen, Duration), Diagnosis> {
        let response = self
            .send(Method::GET, "/api/caller", None, request_id)
            .await?;
        Ok((self.decode(&response)?, response.elapsed))
    }

    /// `GET /readyz` of the back end: its store and database hop; `Ok(None)` from a back end
    /// without it (404: an older version). A database failure comes back as its diagnosis.
    pub async fn readiness(
        &self,
        request_id: Option<&HeaderValue>,
    ) -> Result<Option<ReadinessSeen>, Diagnosis> {
        let response = self.send(Method::GET, "/readyz", None, request_id).await?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.decode(&response).map(Some)
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        response: &BackendResponse,
    ) -> Result<T, Diagnosis> {
        if !response.status.is_success() {
            return Err(unexpected(&self.inner.label, response.status));
        }
        serde_json::from_slice(&response.body).map_err(|e| {
            diagnosis::not_the_api(format!(
                "{} answered something that is not the lockdown API: {e}",
                self.inner.label
            ))
        })
    }
}

/// The API key's header.
const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// One request as the client will send it (again, for a retried GET).
struct Outgoing {
    method: Method,
    uri: Uri,
    credential: Option<(HeaderName, HeaderValue)>,
    request_id: Option<HeaderValue>,
    body: Option<Bytes>,
}

impl Outgoing {
    /// The request, with headers that are built once and cloned (a reference count, no copy).
    fn request(&self, host: &HeaderValue) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone().unwrap_or_default()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(header::HOST, host.clone());
        if let Some((name, value)) = &self.credential {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(id) = &self.request_id {
            headers.insert(hosting::server::REQUEST_ID_HEADER, id.clone());
        }
        if self.body.is_some() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        request
    }
}

/// Fail-fast while the back end keeps timing out: after [`FailFast::TRIP_AFTER`] calls in a
/// row ended in a timeout (DNS, connect or answer), calls answer at once with the last
/// diagnosis for [`FailFast::HOLD`]; then one call at a time tries again, and its success
/// closes it. A dead DNS server or a stuck back end then costs one caller the budget, not every
/// caller. The hot path is one atomic load.
#[derive(Debug)]
struct FailFast {
    epoch: Instant,
    /// Milliseconds since `epoch` until which calls fail fast; 0 when closed.
    open_until_ms: AtomicU64,
    /// Timeouts in a row.
    consecutive: AtomicU32,
    /// How long one trial call may take (the call budget).
    trial_ms: u64,
    last: Mutex<Option<(Diagnosis, Instant)>>,
}

impl FailFast {
    /// Timeouts in a row that open it.
    const TRIP_AFTER: u32 = 2;
    /// How long it stays open before a trial call.
    const HOLD: Duration = Duration::from_secs(1);

    fn new(budget: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            open_until_ms: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            trial_ms: budget.as_millis() as u64,
            last: Mutex::new(None),
        }
    }

    fn now_ms(&self) -> u64 {
        // +1: 0 means closed.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// `Some` (the diagnosis to answer with at once) while open; `None` lets the call through,
    /// as the one trial when the hold is over.
    fn check(&self) -> Option<Diagnosis> {
        let until = self.open_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return None;
        }
        let now = self.now_ms();
        // The hold is over: exactly one caller wins the trial; the others keep failing fast
        // until it ends (a failed trial opens it again, a good one closes it).
        if now >= until
            && self
                .open_until_ms
                .compare_exchange(
                    until,
                    now + self.trial_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return None;
        }
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let (diagnosis, at) = last.as_ref()?;
        let mut diagnosis = diagnosis.clone();
        diagnosis.message = format!(
            "{} (failing fast: the last call failed this way {} ms ago; one call at a time tries again)",
            diagnosis.message,
            at.elapsed().as_millis()
        );
        Some(diagnosis)
    }

    fn failed(&self, diagnosis: &Diagnosis) {
        if !matches!(
            diagnosis.code,
            Code::DnsFailure | Code::ConnectTimeout | Code::BackendTimeout
        ) {
            self.succeeded();
            return;
        }
        let row = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if row >= Self::TRIP_AFTER {
            *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((diagnosis.clone(), Instant::now()));
            let until = self.now_ms() + Self::HOLD.as_millis() as u64;
            if self.open_until_ms.swap(until, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    code = diagnosis.code.as_str(),
                    hold_ms = Self::HOLD.as_millis() as u64,
                    "the back end keeps timing out: failing fast, one call at a time tries again"
                );
            }
        }
    }

    fn succeeded(&self) {
        // Loads first: the hot path writes nothing shared.
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
        if self.open_until_ms.load(Ordering::Relaxed) != 0 {
            self.open_until_ms.store(0, Ordering::Relaxed);
            tracing::info!("the back end answers again: no longer failing fast");
        }
    }
}

fn unexpected(label: &str, status: StatusCode) -> Diagnosis {
    diagnosis::not_the_api(format!("{label} answered {status}"))
}
