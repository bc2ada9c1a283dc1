//! The `/diag` router the front end, the back end and `probe serve` mount: `/diag/resolve`,
//! `/diag/tcpping`, `/diag/tls`, `/diag/http`, `/diag/env`, behind the guard — absent without `DIAG_TOKEN`
//! (the app's own 404 for unknown routes answers), 401 without the right bearer token (wrong
//! tokens draw on a budget of their own, so they cannot lock the operator out), a request rate and
//! a concurrency bound, input validation, and the target policy on every resolved address (see
//! [`crate::policy`]). Every answer past the token check names the instance that gave it in
//! [`INSTANCE_HEADER`], so `probe smoke` can tell whether an `ARRAffinity` pin held.

use crate::failure::FailureKind;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hosting::ApiQuery;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::dns::{DnsResolver, ResolveRequest};
use crate::envfacts::{DiagPolicyView, EnvFacts, EnvReport, interfaces, parse_resolv_conf};
use crate::error::DiagError;
use crate::forward::{ACTIONS, BackendDiag, Forwarder};
use crate::httpcheck::{HttpCheckRequest, http_check, tls_client_config};
use crate::policy::{Policy, PolicyError, PolicySource};
use crate::target::{InputError, parse_ip_port, truncate};
use crate::tcpping::{PingVerdict, TcpPingRequest, tcp_ping};
use crate::tlscheck::{TlsCheckRequest, tls_check};

/// The response header naming the instance that answered (`WEBSITE_INSTANCE_ID`, the value an
/// `ARRAffinity` cookie pins). Sent only to callers that passed the token check.
pub const INSTANCE_HEADER: HeaderName = HeaderName::from_static("x-instance-id");

/// `/diag` settings. `Debug` is written by hand so the token never reaches a log.
#[derive(Clone, Default, clap::Args)]
pub struct DiagArgs {
    /// Enables `/diag`: requests must send `Authorization: Bearer <token>`. Unset or empty: every
    /// `/diag` path answers 404.
    #[arg(long, env = "DIAG_TOKEN", hide_env_values = true)]
    pub diag_token: Option<String>,
    /// Target policy for `/diag`: comma-separated CIDR, host or `*.suffix` entries, each
    /// optionally `:PORT` or `:FROM-TO` (IPv6 CIDRs in brackets). Replaces the default (RFC 1918,
    /// the app's own back end, Azure DNS 168.63.129.16:53).
    #[arg(long, env = "DIAG_ALLOW", hide_env_values = true)]
    pub diag_allow: Option<String>,
}

impl std::fmt::Debug for DiagArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiagArgs")
            .field(
                "diag_token",
                &self.diag_token.as_ref().map(|_| "<redacted>"),
            )
            .field("diag_allow", &self.diag_allow)
            .finish()
    }
}

/// The bounds of `/diag` besides the per-parameter ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiagLimits {
    /// Diagnostics running at once; more answer 503 `diag_busy`.
    pub max_concurrent: usize,
    /// Requests allowed in a burst (the token bucket's size).
    pub burst: u32,
    /// Sustained requests per second (the bucket's refill rate).
    pub per_second: f64,
    /// Requests with a missing or wrong token allowed in a burst: a bucket of their own, so they
    /// never spend the operator's; when it is empty they answer 429 and are not logged.
    pub failed_burst: u32,
    /// Sustained requests with a missing or wrong token per second.
    pub failed_per_second: f64,
    /// Longest a tcpping may take in the worst case (count × timeout + pauses), so it ends before
    /// the request timeout.
    pub max_request: Duration,
}

impl Default for DiagLimits {
    fn default() -> Self {
        Self {
            max_concurrent: 8,
            burst: 30,
            per_second: 5.0,
            failed_burst: 10,
            failed_per_second: 1.0,
            max_request: Duration::from_secs(25),
        }
    }
}

/// `probe serve`'s settings for the bounds of `/diag` (the defaults suit an app's sidecar use;
/// raise them to load-test the probe itself).
#[derive(Debug, Clone, clap::Args)]
pub struct DiagLimitArgs {
    /// Diagnostics running at once; more answer 503 `diag_busy`.
    #[arg(long, env = "DIAG_CONCURRENCY", default_value_t = 8)]
    pub diag_concurrency: usize,
    /// Requests allowed in a burst before 429 `rate_limited`.
    #[arg(long, env = "DIAG_BURST", default_value_t = 30)]
    pub diag_burst: u32,
    /// Sustained requests per second.
    #[arg(long, env = "DIAG_RATE_PER_S", default_value_t = 5.0)]
    pub diag_rate_per_s: f64,
}

impl DiagLimitArgs {
    /// The limits, or why they are not usable.
    pub fn limits(&self) -> Result<DiagLimits, String> {
        if self.diag_concurrency == 0
            || self.diag_burst == 0
            || !self.diag_rate_per_s.is_finite()
            || self.diag_rate_per_s <= 0.0
        {
            return Err("DIAG_CONCURRENCY, DIAG_BURST and DIAG_RATE_PER_S must be positive".into());
        }
        Ok(DiagLimits {
            max_concurrent: self.diag_concurrency,
            burst: self.diag_burst,
            per_second: self.diag_rate_per_s,
            ..DiagLimits::default()
        })
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn full(burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            last: Instant::now(),
        }
    }

    /// Takes one request, or says how long until one is available.
    fn take(&mut self, burst: u32, per_second: f64) -> Result<(), Duration> {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * per_second;
        self.tokens = (self.tokens + refill).min(f64::from(burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if per_second > 0.0 {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / per_second))
        } else {
            Err(Duration::from_secs(60))
        }
    }
}

/// The budget of requests with a missing or wrong token, and how many went unlogged since the
/// last one that was logged.
#[derive(Debug)]
struct Failures {
    bucket: TokenBucket,
    unlogged: u64,
}

struct Inner {
    token: Option<Vec<u8>>,
    policy: Policy,
    resolver: DnsResolver,
    source: Option<IpAddr>,
    facts: EnvFacts,
    /// `facts.instance_id` as a header value, when it is one.
    instance: Option<HeaderValue>,
    tls: Result<Arc<rustls::ClientConfig>, String>,
    /// `/diag/backend/{action}`'s client, when the app has a back end to forward to.
    forwarder: Option<Result<Forwarder, String>>,
    /// The handshake check's verifier (the platform's roots plus [`DiagSettings::tls_extra_roots`]).
    tls_verifier: Result<Arc<dyn rustls::client::danger::ServerCertVerifier>, String>,
    limits: DiagLimits,
    bucket: Mutex<TokenBucket>,
    failures: Mutex<Failures>,
    running: Arc<Semaphore>,
}

/// The state of the `/diag` router: cheap to clone.
#[derive(Clone)]
pub struct DiagState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DiagState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("DiagState")
            .field("enabled", &self.enabled())
            .field("policy", &self.inner.policy.describe())
            .field("limits", &self.inner.limits)
            .finish()
    }
}

/// What the `/diag` state is built from, each setting by name. Start from
/// [`DiagSettings::new`] and set what differs with struct update syntax.
#[derive(Debug, Clone)]
pub struct DiagSettings {
    /// `DIAG_TOKEN` and `DIAG_ALLOW`.
    pub args: DiagArgs,
    /// The resolver every diagnostic uses (the app's own, built once).
    pub resolver: DnsResolver,
    /// `OUTBOUND_SOURCE_ADDR`: the local address outbound sockets bind to.
    pub outbound_source_addr: Option<IpAddr>,
    /// The app's own back end (a host, `host:port` or URL): joins the default policy when
    /// `DIAG_ALLOW` is unset.
    pub own_backend_host: Option<String>,
    /// What `/diag/env` reports.
    pub facts: EnvFacts,
    /// The bounds (default: the production ones).
    pub limits: DiagLimits,
    /// The app's own back end's `/diag`, reached through `/diag/backend/{action}` (the front
    /// end's `BACKEND_DIAG_TOKEN`); `None`: those routes answer 404 `backend_diag_not_configured`.
    pub backend_diag: Option<BackendDiag>,
    /// CA certificates `/diag/tls` trusts besides the platform's (tests, the lab, a private CA).
    pub tls_extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl DiagSettings {
    /// `args` over `resolver`: no source address, no own back end, no facts, production limits.
    pub fn new(args: DiagArgs, resolver: DnsResolver) -> Self {
        Self {
            args,
            resolver,
            outbound_source_addr: None,
            own_backend_host: None,
            facts: EnvFacts::default(),
            limits: DiagLimits::default(),
            backend_diag: None,
            tls_extra_roots: Vec::new(),
        }
    }
}

impl DiagState {
    /// Builds the state once at startup. Fails when `DIAG_ALLOW` does not parse.
    pub fn new(settings: DiagSettings) -> Result<Self, PolicyError> {
        let DiagSettings {
            args,
            resolver,
            outbound_source_addr: source,
            own_backend_host,
            mut facts,
            limits,
            backend_diag,
            tls_extra_roots,
        } = settings;
        let policy = match &args.diag_allow {
            Some(allow) => Policy::parse(allow)?,
            None => Policy::default_for(own_backend_host.as_deref())?,
        };
        let token = args
            .diag_token
            .as_deref()
            .filter(|token| !token.trim().is_empty())
            .map(|token| token.as_bytes().to_vec());
        let tls = tls_client_config().map_err(|e| e.to_string());
        let tls_verifier =
            crate::tlscheck::tls_verifier(tls_extra_roots).map_err(|e| e.to_string());
        // What is in force, whether it was set by variable, by flag or (the lab) in code.
        if let Some(source) = source {
            facts.outbound_source_addr = Some(source.to_string());
        }
        facts.dns.dns_timeout_ms = Some(resolver.timeout().as_millis().to_string());
        let info = resolver.settings();
        if info.source == crate::dns::ResolverSource::DnsServers {
            facts.dns.dns_servers = Some(info.display_servers());
        }
        let instance = facts
            .instance_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok());
        // A forwarded diagnostic gets what the back end needs for its longest one, and a margin.
        let forwarder = backend_diag.map(|target| {
            Forwarder::new(
                target,
                resolver.clone(),
                source,
                limits.max_request + Duration::from_secs(3),
            )
        });
        Ok(Self {
            inner: Arc::new(Inner {
                token,
                forwarder,
                policy,
                resolver,
                source,
                instance,
                facts,
                tls,
                tls_verifier,
                bucket: Mutex::new(TokenBucket::full(limits.burst)),
                failures: Mutex::new(Failures {
                    bucket: TokenBucket::full(limits.failed_burst),
                    unlogged: 0,
                }),
                running: Arc::new(Semaphore::new(limits.max_concurrent)),
                limits,
            }),
        })
    }

    /// True when `DIAG_TOKEN` is set.
    pub fn enabled(&self) -> bool {
        self.inner.token.is_some()
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// Takes one authenticated request from the bucket, or says how long until one is available.
    fn take_rate_token(&self) -> Result<(), Duration> {
        let limits = self.inner.limits;
        self.inner
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(limits.burst, limits.per_second)
    }

    /// Answers a request with a missing or wrong token: 401 while the failure budget lasts (each
    /// logged, with the count of refusals that were not), then 429 without a log line, so neither
    /// guessing nor the log volume is unbounded — and the operator's bucket is never touched.
    fn refuse_wrong_token(&self) -> DiagError {
        let limits = self.inner.limits;
        let mut failures = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match failures
            .bucket
            .take(limits.failed_burst, limits.failed_per_second)
        {
            Ok(()) => {
                let unlogged = std::mem::take(&mut failures.unlogged);
                drop(failures);
                tracing::warn!(
                    diag.unlogged_failures = unlogged,
                    "diag request with a missing or wrong token"
                );
                DiagError::Unauthorized
            }
            Err(retry_after) => {
                failures.unlogged += 1;
                DiagError::RateLimited { retry_after }
            }
        }
    }
}

/// The `/diag` routes with their guard; merge into the app's router. Without `DIAG_TOKEN` the
/// router is empty, so every `/diag` request, whatever its method, gets exactly the app's answer
/// for an unknown route. With it, a method other than GET or HEAD is 405 in the envelope.
pub fn router(state: DiagState) -> Router {
    if !state.enabled() {
        return Router::new();
    }
    Router::new()
        .route("/diag/resolve", get(resolve))
        .route("/diag/tcpping", get(tcpping))
        .route("/diag/tls", get(tls))
        .route("/diag/http", get(http))
        .route("/diag/env", get(env))
        .route("/diag/backend/{action}", get(backend))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed(method: Method) -> DiagError {
    DiagError::MethodNotAllowed(method)
}

/// The token (constant time) → 401, or 429 once the budget of failed attempts is spent; then the
/// operator's rate → 429; the concurrency bound → 503, held until the diagnostic finishes. The
/// token comes first so that wrong tokens never spend the operator's rate. Past the token, every
/// answer carries [`INSTANCE_HEADER`].
async fn guard(State(state): State<DiagState>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.inner.token else {
        // Not reached: without a token `router` mounts nothing.
        return DiagError::Disabled.into_response();
    };
    if !bearer_matches(request.headers(), expected) {
        return state.refuse_wrong_token().into_response();
    }
    let mut response = admit(&state, request, next).await;
    if let Some(instance) = &state.inner.instance {
        response
            .headers_mut()
            .insert(INSTANCE_HEADER, instance.clone());
    }
    response
}

/// The rate and the concurrency bound, then the diagnostic.
async fn admit(state: &DiagState, request: Request, next: Next) -> Response {
    if let Err(retry_after) = state.take_rate_token() {
        // Not logged here: the server logs the first 429 `rate_limited` of a window and counts
        // the rest (a flood logged one WARN per call: 123 MB in 30 s).
        return DiagError::RateLimited { retry_after }.into_response();
    }
    let Ok(permit) = state.inner.running.clone().try_acquire_owned() else {
        return DiagError::Busy.into_response();
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

/// Compares the bearer token in constant time (over the expected token's length, so neither the
/// content nor the length of the secret shows in the timing).
fn bearer_matches(headers: &HeaderMap, expected: &[u8]) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let given = match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => &value[7..],
        _ => return false,
    };
    hosting::secret::constant_time_eq(expected, given)
}

/// `format=json` (default) or `format=text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Text,
}

fn format(input: Option<&str>) -> Result<Format, InputError> {
    match input {
        None | Some("json") => Ok(Format::Json),
        Some("text") => Ok(Format::Text),
        Some(other) => Err(InputError::InvalidFormat(truncate(other))),
    }
}

fn respond<T: Serialize>(format: Format, body: &T, text: impl FnOnce(&T) -> String) -> Response {
    match format {
        Format::Json => axum::Json(body).into_response(),
        Format::Text => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text(body),
        )
            .into_response(),
    }
}

/// Query of `/diag/resolve`.
#[derive(Debug, Deserialize)]
struct ResolveParams {
    host: Option<String>,
    server: Option<String>,
    #[serde(rename = "type")]
    record_type: Option<String>,
    format: Option<String>,
}

async fn resolve(
    State(state): State<DiagState>,
    ApiQuery(params): ApiQuery<ResolveParams>,
) -> Result<Response, DiagError> {
    let format = format(params.format.as_deref())?;
    let host = params.host.as_deref().ok_or(InputError::Missing("host"))?;
    let request = ResolveRequest::parse(host, params.record_type.as_deref())?;
    let resolver = match params.server.as_deref() {
        None => state.inner.resolver.clone(),
        Some(server) => {
            // The named DNS server is a target like any other.
            let server = parse_ip_port(server, 53)?;
            state
                .inner
                .policy
                .check(None, server.ip(), server.port())
                .map_err(DiagError::TargetDenied)?;
            state
                .inner
                .resolver
                .with_query_servers(vec![server])
                .map_err(|e| DiagError::Internal(e.to_string()))?
        }
    };
    let resolution = resolver.resolve_request(&request).await;
    tracing::info!(
        diag.action = "resolve",
        query.name = %resolution.query.name,
        query.r#type = %resolution.query.record_type,
        ok = resolution.ok,
        duration_ms = resolution.duration_ms,
        "diag resolve"
    );
    Ok(respond(format, &resolution, |r| r.to_text()))
}

/// Query of `/diag/tcpping`.
#[derive(Debug, Deserialize)]
struct TcpPingParams {
    host: Option<String>,
    port: Option<String>,
    count: Option<String>,
    timeout_ms: Option<String>,
    interval_ms: Option<String>,
    format: Option<String>,
}

async fn tcpping(
    State(state): State<DiagState>,
    ApiQuery(params): ApiQuery<TcpPingParams>,
) -> Result<Response, DiagError> {
    let format = format(params.format.as_deref())?;
    let host = params.host.as_deref().ok_or(InputError::Missing("host"))?;
    let request = TcpPingRequest::parse(
        host,
        params.port.as_deref(),
        params.count.as_deref(),
        params.timeout_ms.as_deref(),
        params.interval_ms.as_deref(),
    )?;
    // The lookup counts too: the whole ping must end before the request's own time limit.
    let max = state.inner.limits.max_request;
    let lookup = request.lookup_limit(&state.inner.resolver);
    if lookup + request.worst_case() > max {
        return Err(InputError::TooLong {
            lookup_ms: lookup.as_millis() as u64,
            connects_ms: request.worst_case().as_millis() as u64,
            max_ms: max.as_millis() as u64,
        }
        .into());
    }
    let report = tcp_ping(
        &state.inner.resolver,
        &request,
        state.inner.source,
        Some(&state.inner.policy),
    )
    .await;
    if report.verdict == PingVerdict::Denied
        && let Some(denied) = report.denied
    {
        tracing::warn!(diag.action = "tcpping", %denied, "diag target denied");
        return Err(DiagError::TargetDenied(denied));
    }
    tracing::info!(
        diag.action = "tcpping",
        target.host = %report.target.host,
        target.port = report.target.port,
        sent = report.summary.sent,
        ok = report.summary.ok,
        "diag tcpping"
    );
    Ok(respond(format, &report, |r| r.to_text()))
}

/// Query of `/diag/tls`.
#[derive(Debug, Deserialize)]
struct TlsParams {
    host: Option<String>,
    port: Option<String>,
    sni: Option<String>,
    protocol: Option<String>,
    timeout_ms: Option<String>,
    format: Option<String>,
}

async fn tls(
    State(state): State<DiagState>,
    ApiQuery(params): ApiQuery<TlsParams>,
) -> Result<Response, DiagError> {
    let format = format(params.format.as_deref())?;
    let host = params.host.as_deref().ok_or(InputError::Missing("host"))?;
    let request = TlsCheckRequest::parse(
        host,
        params.port.as_deref(),
        params.sni.as_deref(),
        params.protocol.as_deref(),
        params.timeout_ms.as_deref(),
    )?;
    let max = state.inner.limits.max_request;
    let lookup = request.lookup_limit(&state.inner.resolver);
    if lookup + request.timeout > max {
        return Err(InputError::TooLong {
            lookup_ms: lookup.as_millis() as u64,
            connects_ms: request.timeout.as_millis() as u64,
            max_ms: max.as_millis() as u64,
        }
        .into());
    }
    let verifier = state
        .inner
        .tls_verifier
        .as_ref()
        .map_err(|e| DiagError::Internal(format!("no TLS verifier: {e}")))?;
    let report = tls_check(
        &state.inner.resolver,
        verifier,
        &request,
        state.inner.source,
        Some(&state.inner.policy),
    )
    .await;
    if let Some(denied) = report.denied {
        tracing::warn!(diag.action = "tls", %denied, "diag target denied");
        return Err(DiagError::TargetDenied(denied));
    }
    tracing::info!(
        diag.action = "tls",
        target.host = %report.target.host,
        target.port = report.target.port,
        protocol = report.protocol.as_str(),
        ok = report.ok,
        code = report.code.map(|c| c.as_str()),
        "diag tls"
    );
    Ok(respond(format, &report, |r| r.to_text()))
}

/// Query of `/diag/http`.
#[derive(Debug, Deserialize)]
struct HttpParams {
    url: Option<String>,
    timeout_ms: Option<String>,
    format: Option<String>,
}

async fn http(
    State(state): State<DiagState>,
    ApiQuery(params): ApiQuery<HttpParams>,
) -> Result<Response, DiagError> {
    let format = format(params.format.as_deref())?;
    let url = params.url.as_deref().ok_or(InputError::Missing("url"))?;
    let request = HttpCheckRequest::parse(url, params.timeout_ms.as_deref())?;
    let tls = state
        .inner
        .tls
        .as_ref()
        .map_err(|e| DiagError::Internal(format!("no TLS configuration: {e}")))?;
    let report = http_check(
        &state.inner.resolver,
        tls,
        &request,
        state.inner.source,
        Some(&state.inner.policy),
    )
    .await;
    if report
        .error
        .as_ref()
        .is_some_and(|e| e.kind == FailureKind::Denied)
        && let Some(denied) = report.denied
    {
        tracing::warn!(diag.action = "http", %denied, "diag target denied");
        return Err(DiagError::TargetDenied(denied));
    }
    tracing::info!(
        diag.action = "http",
        target.host = %report.target.host,
        target.port = report.target.port,
        status = report.status,
        "diag http"
    );
    Ok(respond(format, &report, |r| r.to_text()))
}

/// `/diag/backend/{action}`: `action` run in the app's own back end (see [`crate::forward`]).
async fn backend(
    State(state): State<DiagState>,
    axum::extract::Path(action): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, DiagError> {
    if !ACTIONS.contains(&action.as_str()) {
        // Like any unknown route: only the diagnostics /diag has are forwarded.
        return Err(DiagError::Disabled);
    }
    let forwarder = match &state.inner.forwarder {
        None => return Err(DiagError::BackendNotConfigured),
        Some(Err(e)) => return Err(DiagError::Internal(e.clone())),
        Some(Ok(forwarder)) => forwarder,
    };
    let response = forwarder.forward(&action, query.as_deref()).await;
    tracing::info!(
        diag.action = "backend",
        diag.backend_action = %action,
        status = response.status().as_u16(),
        "diag forwarded to the back end"
    );
    Ok(response)
}

/// Query of `/diag/env`.
#[derive(Debug, Deserialize)]
struct EnvParams {
    format: Option<String>,
}

async fn env(
    State(state): State<DiagState>,
    ApiQuery(params): ApiQuery<EnvParams>,
) -> Result<Response, DiagError> {
    let format = format(params.format.as_deref())?;
    let resolv_conf = tokio::fs::read_to_string("/etc/resolv.conf")
        .await
        .map(|text| parse_resolv_conf(&text))
        .unwrap_or_default();
    let report = EnvReport {
        facts: state.inner.facts.clone(),
        resolver: state.inner.resolver.settings(),
        interfaces: interfaces(),
        resolv_conf,
        diag_policy: DiagPolicyView {
            source: match state.inner.policy.source() {
                PolicySource::DiagAllow => "diag_allow".to_owned(),
                PolicySource::Default => "default".to_owned(),
            },
            entries: state.inner.policy.describe(),
        },
    };
    Ok(respond(format, &report, |r| r.to_text()))
}

#[cfg(test)]
mod tests {

    #[test]
    fn limit_settings_must_be_positive() {
        let args = DiagLimitArgs {
            diag_concurrency: 64,
            diag_burst: 1000,
            diag_rate_per_s: 500.0,
        };
        let limits = args.limits().unwrap();
        assert_eq!((limits.max_concurrent, limits.burst), (64, 1000));
        assert_eq!(limits.max_request, DiagLimits::default().max_request);
        for bad in [
            DiagLimitArgs {
                diag_concurrency: 0,
                ..args.clone()
            },
            DiagLimitArgs {
                diag_burst: 0,
                ..args.clone()
            },
            DiagLimitArgs {
                diag_rate_per_s: 0.0,
                ..args.clone()
            },
            DiagLimitArgs {
                diag_rate_per_s: f64::NAN,
                ..args.clone()
            },
        ] {
            assert!(bad.limits().is_err(), "{bad:?}");
        }
    }

    use super::*;

    #[test]
    fn the_bearer_token_is_compared_whole_and_the_scheme_ignores_case() {
        let expected = b"s3cret-token";
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            bearer_matches(&headers, expected)
        };
        assert!(with("Bearer s3cret-token"));
        assert!(with("bearer s3cret-token"));
        assert!(!with("Bearer s3cret-tokeN"));
        assert!(!with("Bearer s3cret-token-longer"));
        assert!(!with("Bearer s3cret"));
        assert!(!with("Bearer "));
        assert!(!with("Basic s3cret-token"));
        assert!(!with("s3cret-token"));
        assert!(!bearer_matches(&HeaderMap::new(), expected));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let args = DiagArgs {
            diag_token: Some("secret-xyz".into()),
            diag_allow: Some("10.0.0.0/8".into()),
        };
        for shown in [format!("{args:?}"), format!("{args:#?}")] {
            assert!(!shown.contains("secret-xyz"), "{shown}");
            assert!(shown.contains("10.0.0.0/8"), "{shown}");
        }
        assert!(
            format!("{args:?}").contains(r#"diag_token: Some("<redacted>")"#),
            "{args:?}"
        );
        let unset = DiagArgs::default();
        assert!(
            format!("{unset:?}").contains("diag_token: None"),
            "{unset:?}"
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "bearer tok".parse().unwrap());
        assert!(bearer_matches(&headers, b"tok"));
        headers.insert(header::AUTHORIZATION, "Basic tok".parse().unwrap());
        assert!(!bearer_matches(&headers, b"tok"));
        headers.insert(header::AUTHORIZATION, "Bearer".parse().unwrap());
        assert!(!bearer_matches(&headers, b"tok"));
    }
}
