//! The HTTP check behind `/diag/http`: one GET, measured phase by phase — DNS with the app's
//! resolver, a TCP connect to exactly the checked address (from the app's outbound source), TLS
//! with rustls when https, the first byte over HTTP/1.1 — with selected headers, no redirects
//! followed, and App Service's 403 pages recognised. The body is read only as far as needed to
//! classify a 403 or to read the `error.code` of a lockdown error envelope (a 4xx/5xx JSON body:
//! `{"error":{"code":"missing_token",…}}`); the body itself is never returned, only that code —
//! a `snake_case` word of at most 64 characters, or nothing.

use crate::failure::FailureKind;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HOST, SET_COOKIE, USER_AGENT};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use crate::appservice::{PlatformAnswer, ResponseHead, Signal, classify, reason_phrase};
use crate::diagnosis::Code;
use crate::dns::{DnsResolver, QueryType, round_ms};
use crate::outbound::connect_tcp;
use crate::policy::{Denied, Policy};
use crate::target::{Host, InputError, parse_bounded, parse_host, parse_port};

/// Default time budget of the whole check, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Longest time budget of the whole check.
pub const MAX_TIMEOUT_MS: u64 = 10_000;
/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2_048;
/// Most body bytes read to classify a 403.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most body bytes read to find the error code of another 4xx/5xx.
const MAX_ENVELOPE_BYTES: usize = 8 * 1024;
/// Longest error code reported.
const MAX_ERROR_CODE_CHARS: usize = 64;
/// Longest header value reported.
const MAX_HEADER_VALUE: usize = 256;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpScheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

/// A validated HTTP check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheckRequest {
    /// The URL, as it will be reported.
    pub url: String,
    /// The scheme.
    pub scheme: HttpScheme,
    /// The host (IPs normalised).
    pub host: Host,
    /// The port (explicit or the scheme's).
    pub port: u16,
    /// Path and query sent in the request line.
    pub path_and_query: String,
    /// Time budget of the whole check.
    pub timeout: Duration,
    /// Extra request headers (`probe smoke`'s `headers` key: e.g. a forged `X-Azure-FDID`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Request headers a check may not set: the exchange's own framing and `Host` (the URL names
/// the host), and credentials, which do not belong in a suite file.
pub const RESERVED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "authorization",
    "cookie",
    "proxy-authorization",
];

impl HttpCheckRequest {
    /// Adds request headers, refusing invalid names and values and [`RESERVED_REQUEST_HEADERS`].
    pub fn with_headers<'a>(
        mut self,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, InputError> {
        for (name, value) in headers {
            let bad = |why: String| {
                InputError::InvalidUrl(format!("request cannot carry header {name:?}: it {why}"))
            };
            let parsed: http::HeaderName = name
                .parse()
                .map_err(|_| bad("is not a valid header name".into()))?;
            if RESERVED_REQUEST_HEADERS.contains(&parsed.as_str()) {
                return Err(bad(format!(
                    "cannot be set by a check (reserved: {})",
                    RESERVED_REQUEST_HEADERS.join(", ")
                )));
            }
            let value: http::HeaderValue = value
                .parse()
                .map_err(|_| bad("has a value that is not a valid header value".into()))?;
            self.headers.push((parsed, value));
        }
        Ok(self)
    }

    /// Validates a URL: `http` or `https` only, no user info, a valid host and port; plus an
    /// optional time budget (1–10000 ms, default 5000).
    pub fn parse(url: &str, timeout_ms: Option<&str>) -> Result<Self, InputError> {
        let bad = |why: &str| InputError::InvalidUrl(why.to_owned());
        if url.len() > MAX_URL_LEN {
            return Err(bad(&format!("is longer than {MAX_URL_LEN} characters")));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|e| bad(&format!("does not parse: {e}")))?;
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => HttpScheme::Http,
            Some("https") => HttpScheme::Https,
            Some(_) => return Err(bad("must use http or https")),
            None => return Err(bad("must be absolute (http://… or https://…)")),
        };
        let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("must not carry user info (user:password@)"));
        }
        // The port text as written: `Authority::port` hides ports that do not fit a u16.
        let (host_text, port_text) = crate::target::split_host_port(authority.as_str());
        let host = parse_host(host_text)?;
        let port = match port_text {
            Some(port) => parse_port(port)?,
            None => match scheme {
                HttpScheme::Http => 80,
                HttpScheme::Https => 443,
            },
        };
        let timeout_ms = parse_bounded(
            "timeout_ms",
            timeout_ms,
            DEFAULT_TIMEOUT_MS,
            1,
            MAX_TIMEOUT_MS,
        )?;
        let path_and_query = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
        let scheme_text = match scheme {
            HttpScheme::Http => "http",
            HttpScheme::Https => "https",
        };
        Ok(Self {
            url: format!(
                "{scheme_text}://{}{path_and_query}",
                authority_text(&host, port, scheme)
            ),
            scheme,
            host,
            port,
            path_and_query,
            timeout: Duration::from_millis(timeout_ms),
            headers: Vec::new(),
        })
    }
}

fn authority_text(host: &Host, port: u16, scheme: HttpScheme) -> String {
    let default = match scheme {
        HttpScheme::Http => 80,
        HttpScheme::Https => 443,
    };
    if port == default {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// A failed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCheckError {
    /// The kind.
    pub kind: FailureKind,
    /// What happened.
    pub message: String,
}

/// Where the check went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpTarget {
    /// The host as asked.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The address connected to.
    pub ip: Option<IpAddr>,
    /// The local address the kernel chose.
    pub local_addr: Option<SocketAddr>,
}

/// Time spent in each phase, in milliseconds (null for phases not reached or not needed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseTimings {
    /// Name resolution (0 for an IP literal).
    pub dns: Option<f64>,
    /// TCP connect.
    pub connect: Option<f64>,
    /// TLS handshake (https only).
    pub tls: Option<f64>,
    /// From sending the request to the response head.
    pub first_byte: Option<f64>,
    /// The whole check.
    pub total: f64,
}

/// An answer App Service (or a gateway in front of it) gave before the app, recognised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppServiceFinding {
    /// `access_restricted`, `public_access_disabled`, `app_stopped`, `app_unavailable` or
    /// `gateway_refused` (see `diag::diagnosis`).
    pub code: String,
    /// What it means, with what App Service said.
    pub message: String,
    /// What to do.
    pub hint: String,
    /// The strongest signal it rests on: `status_line`, `forbidden_ip_header`, `server_header`
    /// or `page`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// The caller's address as App Service saw it (`x-ms-forbidden-ip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forbidden_ip: Option<String>,
    /// The `Server` header, when it named who answered (a gateway, App Service's nginx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

impl From<PlatformAnswer> for AppServiceFinding {
    fn from(answer: PlatformAnswer) -> Self {
        Self {
            code: answer.code.as_str().to_owned(),
            message: answer.message(),
            hint: answer.code.next_step().to_owned(),
            signal: Some(answer.signal),
            forbidden_ip: answer.forbidden_ip,
            server: answer.server,
        }
    }
}

impl AppServiceFinding {
    /// The finding's code, when it is one of lockdown's.
    pub fn code(&self) -> Option<Code> {
        Code::parse(&self.code)
    }
}

/// The `/diag/http` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpCheckReport {
    /// The URL checked.
    pub url: String,
    /// Where it went.
    pub target: HttpTarget,
    /// True when an HTTP response came back (whatever its status).
    pub ok: bool,
    /// The response status.
    pub status: Option<u16>,
    /// The status line's reason phrase when it is not the standard one (`Ip Forbidden`,
    /// `Site Disabled`): App Service's strongest signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Phase timings.
    pub timings_ms: PhaseTimings,
    /// `server`, `content-type`, `content-length`, `location`, `x-azure-ref` and `x-ms-*` headers.
    pub headers: BTreeMap<String, String>,
    /// Names of the cookies set (never their values).
    pub set_cookie_names: Vec<String>,
    /// App Service's own 403 page, when the response is one.
    pub app_service: Option<AppServiceFinding>,
    /// The `error.code` of a lockdown error envelope in a 4xx/5xx JSON body (`missing_token`,
    /// `wrong_audience`, …): which gate refused, without returning the body.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_code: Option<String>,
    /// Why the check failed, when it did.
    pub error: Option<HttpCheckError>,
    /// What the result means.
    pub hint: Option<String>,
    /// Why the policy refused the target, when it did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub denied: Option<Denied>,
}

/// The rustls client configuration of the HTTP check: the platform's roots (as reqwest uses),
/// the aws-lc-rs provider (as reqwest uses), HTTP/1.1 only.
pub fn tls_client_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Runs one check. `tls` is used for https (see [`tls_client_config`]).
pub async fn http_check(
    resolver: &DnsResolver,
    tls: &Arc<rustls::ClientConfig>,
    req: &HttpCheckRequest,
    source: Option<IpAddr>,
    policy: Option<&Policy>,
) -> HttpCheckReport {
    let started = Instant::now();
    let deadline = started + req.timeout;
    let mut report = HttpCheckReport {
        url: req.url.clone(),
        target: HttpTarget {
            host: req.host.to_string(),
            port: req.port,
            ip: None,
            local_addr: None,
        },
        ok: false,
        status: None,
        reason: None,
        timings_ms: PhaseTimings::default(),
        headers: BTreeMap::new(),
        set_cookie_names: Vec::new(),
        app_service: None,
        error_code: None,
        error: None,
        hint: None,
        denied: None,
    };
    let result = run(resolver, tls, req, source, policy, deadline, &mut report).await;
    report.timings_ms.total = round_ms(started.elapsed());
    if let Err(error) = result {
        report.hint = Some(error_hint(error.kind, req));
        report.error = Some(error);
    } else {
        report.ok = true;
        report.hint = status_hint(&report);
    }
    report
}

async fn run(
    resolver: &DnsResolver,
    tls: &Arc<rustls::ClientConfig>,
    req: &HttpCheckRequest,
    source: Option<IpAddr>,
    policy: Option<&Policy>,
    deadline: Instant,
    report: &mut HttpCheckReport,
) -> Result<(), HttpCheckError> {
    // DNS.
    let phase = Instant::now();
    let ip = match &req.host {
        Host::Ip(ip) => *ip,
        Host::Name(name) => {
            // Time that runs out while resolving is a DNS failure, not a slow target.
            let left = deadline.saturating_duration_since(Instant::now());
            let ips = within(deadline, resolver.lookup_ip(name))
                .await
                .map_err(|_| {
                    fail(
                        FailureKind::Dns,
                        format!(
                            "no DNS answer for {name} within {} ms (the check's time)",
                            left.as_millis()
                        ),
                    )
                })?
                .map_err(|failure| fail(FailureKind::Dns, failure.message))?;
            ips.iter().copied().find(IpAddr::is_ipv4).unwrap_or(ips[0])
        }
    };
    report.timings_ms.dns = Some(round_ms(phase.elapsed()));
    report.target.ip = Some(ip);
    if let Some(policy) = policy
        && let Err(denied) = policy.check(req.host.name(), ip, req.port)
    {
        let error = fail(FailureKind::Denied, denied.to_string());
        report.denied = Some(denied);
        return Err(error);
    }

    // TCP, to exactly the checked address.
    let phase = Instant::now();
    let remaining = deadline.saturating_duration_since(Instant::now());
    let stream = connect_tcp(SocketAddr::new(ip, req.port), source, remaining)
        .await
        .map_err(|e| fail(e.kind, e.message))?;
    report.timings_ms.connect = Some(round_ms(phase.elapsed()));
    report.target.local_addr = stream.local_addr().ok();

    let answer = match req.scheme {
        HttpScheme::Http => exchange(stream, req, deadline, report).await?,
        HttpScheme::Https => {
            let phase = Instant::now();
            let server_name = match &req.host {
                Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
                Host::Name(name) => ServerName::try_from(name.clone())
                    .map_err(|e| fail(FailureKind::Tls, format!("invalid TLS server name: {e}")))?,
            };
            let connector = TlsConnector::from(tls.clone());
            let stream = within(deadline, connector.connect(server_name, stream))
                .await?
                .map_err(|e| fail(FailureKind::Tls, format!("TLS handshake failed: {e}")))?;
            report.timings_ms.tls = Some(round_ms(phase.elapsed()));
            exchange(stream, req, deadline, report).await?
        }
    };
    if let Some(answer) = answer {
        let via_privatelink = match (&req.host, answer.code) {
            // Only a refusal needs the context, and only a name can go through privatelink:
            // one more lookup, on this path alone, within the check's time.
            (Host::Name(name), Code::AccessRestricted) => {
                within(deadline, resolver.resolve(name, QueryType::A))
                    .await
                    .is_ok_and(|resolution| resolution.privatelink)
            }
            _ => false,
        };
        report.app_service = Some(answer.in_context(via_privatelink).into());
    }
    Ok(())
}

/// Sends the GET over an open stream, records status and headers, and recognises App Service's
/// own answer.
async fn exchange<S>(
    stream: S,
    req: &HttpCheckRequest,
    deadline: Instant,
    report: &mut HttpCheckReport,
) -> Result<Option<PlatformAnswer>, HttpCheckError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http_error =
        |e: hyper::Error| fail(FailureKind::Http, format!("HTTP exchange failed: {e}"));
    let phase = Instant::now();
    let (mut sender, connection) = within(
        deadline,
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)),
    )
    .await?
    .map_err(http_error)?;
    // The connection task ends when the response (and its body) is dropped.
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "http check connection closed with an error");
        }
    });
    let mut request = http::Request::get(req.path_and_query.as_str())
        .header(HOST, authority_text(&req.host, req.port, req.scheme))
        .header(
            USER_AGENT,
            concat!("lockdown-probe/", env!("CARGO_PKG_VERSION")),
        )
        .header("accept", "*/*")
        .header("connection", "close");
    for (name, value) in &req.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| fail(FailureKind::Http, format!("cannot build the request: {e}")))?;
    let response = within(deadline, sender.send_request(request))
        .await?
        .map_err(http_error)?;
    report.timings_ms.first_byte = Some(round_ms(phase.elapsed()));
    let status = response.status().as_u16();
    report.status = Some(status);
    report.reason = reason_phrase(response.extensions()).map(str::to_owned);
    report.headers = selected_headers(response.headers());
    report.set_cookie_names = cookie_names(response.headers());

    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let platform_status = status == 403 || status == 503;
    let mut answer = None;
    if status >= 400 && (platform_status || is_json) {
        // Read only as much as needed to recognise App Service's page or the error code; the
        // body is never returned.
        let limit = if platform_status {
            MAX_BODY_BYTES
        } else {
            MAX_ENVELOPE_BYTES
        };
        let (parts, mut body) = response.into_parts();
        let mut excerpt = Vec::new();
        while excerpt.len() < limit {
            match within(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        let room = limit - excerpt.len();
                        excerpt.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                // End of body, a body error or the deadline: classify what arrived.
                _ => break,
            }
        }
        if platform_status {
            let head = ResponseHead::new(status, &parts.extensions, &parts.headers);
            answer = classify(&head, &excerpt);
        }
        if is_json {
            report.error_code = envelope_code(&excerpt);
        }
    }
    Ok(answer)
}

/// The `error.code` of a lockdown error envelope: a `snake_case` word, bounded; anything else
/// (another JSON shape, free text, a long string) gives `None`.
pub fn envelope_code(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = json.get("error")?.get("code")?.as_str()?;
    let word = code.len() <= MAX_ERROR_CODE_CHARS
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    word.then(|| code.to_owned())
}

/// The response headers a report carries (besides every `x-ms-*` one): `x-azure-ref` says Front
/// Door answered.
pub const REPORTED_HEADERS: &[&str] = &[
    "server",
    "content-type",
    "content-length",
    "location",
    "x-azure-ref",
];

/// Whether a report records response header `name` (lowercase).
pub fn is_reported_header(name: &str) -> bool {
    REPORTED_HEADERS.contains(&name) || name.starts_with("x-ms-")
}

fn selected_headers(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    let mut selected: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        let wanted = is_reported_header(name);
        if !wanted {
            continue;
        }
        let value: String = String::from_utf8_lossy(value.as_bytes())
            .chars()
            .take(MAX_HEADER_VALUE)
            .collect();
        selected
            .entry(name.to_owned())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    selected
}

/// The cookie names of `Set-Cookie` headers (`ARRAffinity`, …), never their values.
fn cookie_names(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let name = text.split(['=', ';']).next()?.trim().to_owned();
            (!name.is_empty()).then(|| name.chars().take(64).collect())
        })
        .collect()
}

fn fail(kind: FailureKind, message: String) -> HttpCheckError {
    HttpCheckError { kind, message }
}

/// Bounds a phase by the overall deadline.
async fn within<F: std::future::Future>(
    deadline: Instant,
    future: F,
) -> Result<F::Output, HttpCheckError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(remaining, future)
        .await
        .map_err(|_| fail(FailureKind::Timeout, "the check ran out of time".to_owned()))
}

impl HttpCheckReport {
    /// A short human summary (`format=text`).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        match (&self.error, self.status) {
            (Some(error), _) => {
                let kind = serde_json::to_value(error.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "GET {} failed: {kind}: {}\n",
                    self.url, error.message
                ));
            }
            (None, Some(status)) => match &self.reason {
                Some(reason) => out.push_str(&format!("GET {} -> {status} {reason}\n", self.url)),
                None => out.push_str(&format!("GET {} -> {status}\n", self.url)),
            },
            (None, None) => out.push_str(&format!("GET {}\n", self.url)),
        }
        let ip = self
            .target
            .ip
            .map(|ip| format!(" ({ip})"))
            .unwrap_or_default();
        let from = self
            .target
            .local_addr
            .map(|local| format!(" from {local}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "Target:      {}:{}{ip}{from}\n",
            self.target.host, self.target.port
        ));
        let t = &self.timings_ms;
        let phases: Vec<String> = [
            ("dns", t.dns),
            ("connect", t.connect),
            ("tls", t.tls),
            ("first byte", t.first_byte),
        ]
        .into_iter()
        .filter_map(|(name, ms)| ms.map(|ms| format!("{name} {ms}ms")))
        .chain(std::iter::once(format!("total {}ms", t.total)))
        .collect();
        out.push_str(&format!("Timings:     {}\n", phases.join(", ")));
        for (name, value) in &self.headers {
            out.push_str(&format!("Header:      {name}: {value}\n"));
        }
        if !self.set_cookie_names.is_empty() {
            out.push_str(&format!(
                "Cookies set: {}\n",
                self.set_cookie_names.join(", ")
            ));
        }
        if let Some(finding) = &self.app_service {
            out.push_str(&format!(
                "App Service: {}: {}\n",
                finding.code, finding.message
            ));
        }
        if let Some(code) = &self.error_code {
            out.push_str(&format!("Error code:  {code}\n"));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("Hint:        {hint}\n"));
        }
        out
    }
}

fn error_hint(kind: FailureKind, req: &HttpCheckRequest) -> String {
    match kind {
        FailureKind::Dns => "the name does not resolve with this app's DNS settings: check the name, DNS_SERVERS / WEBSITE_DNS_SERVER, and the private DNS zone link".to_owned(),
        FailureKind::Denied => "the diag target policy forbids this address; nothing was sent: allow it in DIAG_ALLOW".to_owned(),
        FailureKind::Refused => format!("nothing listens on port {}: check the port and that the service runs", req.port),
        FailureKind::Timeout => "no answer in time: a firewall, an NSG or a route drops the packets (App Service's own tooling waits 21 s), or the app is very slow".to_owned(),
        FailureKind::Unreachable => "no route from this instance, or OUTBOUND_SOURCE_ADDR is unusable: check the VNet integration and route-all".to_owned(),
        FailureKind::Tls => "the TLS handshake failed: check the certificate (name, issuer, expiry) and that the port speaks TLS".to_owned(),
        FailureKind::Http => "the peer does not speak HTTP/1.1 on this port".to_owned(),
        FailureKind::ResourceExhausted => "this app ran out of open files or memory before it could try: look at its own limits (ulimit -n, MAX_CONNECTIONS), not at the network".to_owned(),
    }
}

fn status_hint(report: &HttpCheckReport) -> Option<String> {
    if let Some(finding) = &report.app_service {
        return Some(finding.hint.clone());
    }
    let status = report.status?;
    Some(match status {
        200..=299 => return None,
        300..=399 => format!(
            "a redirect, not followed{}",
            report
                .headers
                .get("location")
                .map(|l| format!(": Location {l}"))
                .unwrap_or_default()
        ),
        401 => "the app wants credentials: check the key or token the caller sends".to_owned(),
        403 => "the app itself answered 403 (not an App Service page): check the app's own caller rules and credentials".to_owned(),
        502..=504 => "the app or the platform in front of it is failing or starting: check the app's logs and health".to_owned(),
        _ => format!("the app answered {status}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_validated_and_normalised() {
        let req = HttpCheckRequest::parse("https://App-BE.azurewebsites.net/api/items?x=1", None)
            .unwrap();
        assert_eq!(req.scheme, HttpScheme::Https);
        assert_eq!(req.host, Host::Name("app-be.azurewebsites.net".into()));
        assert_eq!(req.port, 443);
        assert_eq!(req.path_and_query, "/api/items?x=1");
        assert_eq!(req.url, "https://app-be.azurewebsites.net/api/items?x=1");
        assert_eq!(req.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));

        let req = HttpCheckRequest::parse("http://0x7f.1:8080", Some("200")).unwrap();
        assert_eq!(req.host, Host::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(req.url, "http://127.0.0.1:8080/");
        let req = HttpCheckRequest::parse("http://[::ffff:a9fe:a9fe]/", None).unwrap();
        assert_eq!(req.host, Host::Ip("169.254.169.254".parse().unwrap()));
    }

    #[test]
    fn unsafe_or_broken_urls_are_rejected() {
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://127.0.0.1:70/",
            "//example.com/",
            "/relative",
            "http://user:pass@example.com/",
            "http://user@example.com/",
            "http://example.com:0/",
            "http://example.com:99999/",
            "http://exa mple.com/",
            "http://1.2.3.999/",
            "http:///",
        ] {
            assert!(HttpCheckRequest::parse(bad, None).is_err(), "{bad}");
        }
        let long = format!("http://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(HttpCheckRequest::parse(&long, None).is_err());
        assert!(HttpCheckRequest::parse("http://example.com/", Some("10001")).is_err());
    }

    #[test]
    fn only_a_snake_case_envelope_code_is_kept() {
        assert_eq!(
            envelope_code(br#"{"error":{"code":"missing_token","message":"no bearer token"}}"#)
                .as_deref(),
            Some("missing_token")
        );
        for other in [
            &br#"{"error":{"code":"Has Spaces And <html>"}}"#[..],
            br#"{"error":"invalid_request"}"#,
            br#"{"code":"missing_token"}"#,
            br#"{"error":{"code":"secret.token.value"}}"#,
            b"not json",
        ] {
            assert_eq!(
                envelope_code(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        let long = format!(r#"{{"error":{{"code":"{}"}}}}"#, "a".repeat(65));
        assert_eq!(envelope_code(long.as_bytes()), None);
    }

    #[test]
    fn cookie_values_never_leave() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            SET_COOKIE,
            "ARRAffinity=secretvalue; Path=/; HttpOnly".parse().unwrap(),
        );
        headers.append(SET_COOKIE, "session=abc".parse().unwrap());
        headers.append("x-ms-request-id", "r1".parse().unwrap());
        headers.append("authorization", "Bearer x".parse().unwrap());
        headers.append("server", "Kestrel".parse().unwrap());
        headers.append("x-azure-ref", "20261203T1030Z-abc".parse().unwrap());
        headers.append("x-cache", "CONFIG_NOCACHE".parse().unwrap());
        assert_eq!(cookie_names(&headers), ["ARRAffinity", "session"]);
        let selected = selected_headers(&headers);
        assert_eq!(
            selected.keys().collect::<Vec<_>>(),
            ["server", "x-azure-ref", "x-ms-request-id"]
        );
    }

    #[test]
    fn extra_request_headers_are_checked() {
        let request = HttpCheckRequest::parse("http://127.0.0.1:8080/", None).unwrap();
        let with = request
            .clone()
            .with_headers([("X-Azure-FDID", "0bad0bad-0000-4000-8000-000000000bad")])
            .unwrap();
        assert_eq!(with.headers.len(), 1);
        assert_eq!(with.headers[0].0.as_str(), "x-azure-fdid");
        for (name, value, why) in [
            ("Host", "a", "reserved"),
            ("Authorization", "Bearer x", "reserved"),
            ("bad name", "a", "not a valid header name"),
            ("x-a", "line\nbreak", "not a valid header value"),
        ] {
            let error = request
                .clone()
                .with_headers([(name, value)])
                .unwrap_err()
                .to_string();
            assert!(error.contains(why), "{name}: {error}");
        }
    }
}
