//! `/diag/backend/{action}`: a diagnostic run inside the app's own back end, reached through this
//! app. A locked-down back end has no public entry (a private endpoint, or access restrictions
//! that deny the internet), so `probe smoke`'s checks `from = "backend"` go through the front end:
//! it forwards the request to `/diag/{action}` of **its configured back end only** — the target is
//! fixed at start-up (`BACKEND_URL`), never taken from the request — with the back end's diag token
//! (`BACKEND_DIAG_TOKEN`), which it holds and never returns. The caller passes the front end's own
//! guard (token, rate, concurrency) first; the back end then applies its own guard and target
//! policy to what the diagnostic reaches.
//!
//! The back end's answer comes back as it is (status, JSON body), marked with [`RAN_IN_HEADER`]
//! and the back-end instance that ran it ([`BACKEND_INSTANCE_HEADER`]). When the back end's
//! `/diag` cannot be reached, the answer is a 502 in the shared envelope whose `code` is the
//! diagnosis (`connect_timeout`, `access_restricted`, `dns_failure`, …).

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

use crate::api::INSTANCE_HEADER;
use crate::appservice::{ResponseHead, classify, reason_phrase};
use crate::diagnosis::Code;
use crate::dns::{DnsResolver, QueryType};
use crate::failure::{io_kind, root_cause};
use crate::outbound::http_client_builder;

/// The diagnostics that can be forwarded (the back end's `/diag/{action}`).
pub const ACTIONS: &[&str] = &["resolve", "tcpping", "tls", "http", "env"];

/// Marks an answer that ran in the back end: its value is `backend`.
pub const RAN_IN_HEADER: HeaderName = HeaderName::from_static("x-diag-ran-in");

/// The back-end instance that ran a forwarded diagnostic (its `x-instance-id`).
pub const BACKEND_INSTANCE_HEADER: HeaderName = HeaderName::from_static("x-diag-backend-instance");

/// The query parameter that pins a back-end instance (sent on as its `ARRAffinity` cookie).
pub const BACKEND_INSTANCE_PARAM: &str = "backend_instance";

/// Where forwarded diagnostics go. `Debug` is written by hand so the token never reaches a log.
#[derive(Clone)]
pub struct BackendDiag {
    url: Url,
    token: String,
}

impl BackendDiag {
    /// The back end at `url` (the app's `BACKEND_URL`, an `http(s)` origin) with its diag token
    /// (the front end's `BACKEND_DIAG_TOKEN`). Refuses a token a header cannot carry, or an
    /// empty one.
    pub fn new(url: Url, token: &str) -> Result<Self, String> {
        let token = token.trim();
        if token.is_empty() {
            return Err("BACKEND_DIAG_TOKEN is empty".to_owned());
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("BACKEND_DIAG_TOKEN must be printable ASCII without spaces".to_owned());
        }
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!("the back end's URL {url} is not an http(s) origin"));
        }
        Ok(Self {
            url,
            token: token.to_owned(),
        })
    }
}

impl std::fmt::Debug for BackendDiag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendDiag")
            .field("url", &self.url.as_str())
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A forwarded request that could not be made, or was refused before the back end's `/diag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardFailure {
    /// The diagnosis.
    pub code: Code,
    /// What happened, in words (never the token).
    pub message: String,
}

impl IntoResponse for ForwardFailure {
    fn into_response(self) -> Response {
        let mut response = hosting::error_response(
            StatusCode::BAD_GATEWAY,
            self.code.as_str(),
            self.message,
            Some(self.code.next_step()),
        );
        response
            .headers_mut()
            .insert(RAN_IN_HEADER, HeaderValue::from_static("backend"));
        response
    }
}

/// The forwarding client, built once.
#[derive(Clone)]
pub(crate) struct Forwarder {
    base: Url,
    authorization: HeaderValue,
    client: reqwest::Client,
    resolver: DnsResolver,
    timeout: Duration,
}

impl Forwarder {
    /// A client that resolves and connects exactly as the app does (its resolver, its outbound
    /// source address), never following redirects.
    pub(crate) fn new(
        target: BackendDiag,
        resolver: DnsResolver,
        source: Option<std::net::IpAddr>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", target.token))
            .map_err(|_| "BACKEND_DIAG_TOKEN holds characters a header cannot carry".to_owned())?;
        authorization.set_sensitive(true);
        let client = http_client_builder(resolver.clone(), source)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .build()
            .map_err(|e| format!("the back-end diag client could not be built: {e}"))?;
        Ok(Self {
            base: target.url,
            authorization,
            client,
            resolver,
            timeout,
        })
    }

    /// Runs `action` (one of [`ACTIONS`]) in the back end with `query` (as received; a
    /// `backend_instance` pair is taken out and sent as the `ARRAffinity` cookie).
    pub(crate) async fn forward(&self, action: &str, query: Option<&str>) -> Response {
        debug_assert!(ACTIONS.contains(&action));
        let mut instance = None;
        let mut url = self.base.clone();
        url.set_path(&format!("/diag/{action}"));
        url.set_query(None);
        {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
                if key == BACKEND_INSTANCE_PARAM {
                    instance = Some(value.into_owned());
                } else {
                    pairs.append_pair(&key, &value);
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let mut request = self
            .client
            .get(url)
            .header(header::AUTHORIZATION, self.authorization.clone());
        if let Some(id) = &instance {
            if id.is_empty()
                || id.len() > 128
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return hosting::error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid_input",
                    "backend_instance must be an instance id (letters, digits and '-', at most 128)",
                    Some("pass an id the back end's x-diag-backend-instance header named"),
                );
            }
            request = request.header(header::COOKIE, format!("ARRAffinity={id}"));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return self.transport_failure(&error).await.into_response(),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let reason = reason_phrase(response.extensions()).map(str::to_owned);
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => return self.transport_failure(&error).await.into_response(),
        };
        self.answer(status, reason.as_deref(), &headers, body).await
    }

    /// The back end's answer as it is, or a diagnosis when it is not `/diag`'s.
    async fn answer(
        &self,
        status: StatusCode,
        reason: Option<&str>,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let head = ResponseHead {
            status: status.as_u16(),
            reason,
            headers,
        };
        if let Some(answer) = classify(&head, &body) {
            let answer = answer.in_context(self.via_privatelink().await);
            return ForwardFailure {
                code: answer.code,
                message: format!(
                    "the front end could not reach its back end's /diag: {}",
                    answer.message()
                ),
            }
            .into_response();
        }
        if status == StatusCode::UNAUTHORIZED {
            return ForwardFailure {
                code: Code::DiagUnauthorized,
                message: "the back end refused the front end's BACKEND_DIAG_TOKEN: set it to the back end's DIAG_TOKEN".to_owned(),
            }
            .into_response();
        }
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return ForwardFailure {
                code: if status == StatusCode::NOT_FOUND {
                    Code::DiagUnavailable
                } else {
                    Code::BadResponse
                },
                message: format!(
                    "the back end answered {status} without a /diag answer: is DIAG_TOKEN set on the back end, and is BACKEND_URL the back end?"
                ),
            }
            .into_response();
        }
        let mut response = (status, body).into_response();
        let out = response.headers_mut();
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        out.insert(RAN_IN_HEADER, HeaderValue::from_static("backend"));
        if let Some(id) = headers.get(INSTANCE_HEADER) {
            out.insert(BACKEND_INSTANCE_HEADER, id.clone());
        }
        for name in [header::RETRY_AFTER] {
            if let Some(value) = headers.get(&name) {
                out.insert(name, value.clone());
            }
        }
        response
    }

    /// A request that never got an answer, diagnosed in the shared vocabulary.
    async fn transport_failure(&self, error: &reqwest::Error) -> ForwardFailure {
        let cause = root_cause(error);
        let code = if error.is_timeout() {
            // The budget covers the lookup too: blame DNS when the name does not resolve.
            match self.base.host() {
                Some(url::Host::Domain(name)) if self.resolver.lookup_ip(name).await.is_err() => {
                    Code::DnsFailure
                }
                _ if error.is_connect() => Code::ConnectTimeout,
                _ => Code::BackendTimeout,
            }
        } else if error.is_connect() {
            match io_kind(error) {
                Some(std::io::ErrorKind::ConnectionRefused) => Code::ConnectRefused,
                Some(std::io::ErrorKind::TimedOut) => Code::ConnectTimeout,
                _ if crate::failure::wraps::<crate::dns::LookupFailure>(error) => Code::DnsFailure,
                _ => Code::NetworkUnreachable,
            }
        } else {
            Code::BadResponse
        };
        ForwardFailure {
            code,
            message: format!(
                "the front end could not reach its back end's /diag at {} within {} s: {cause}",
                self.base,
                self.timeout.as_secs()
            ),
        }
    }

    /// Whether the back end's name goes through `privatelink` (refusal path only).
    async fn via_privatelink(&self) -> bool {
        match self.base.host() {
            Some(url::Host::Domain(name)) => {
                self.resolver.resolve(name, QueryType::A).await.privatelink
            }
            _ => false,
        }
    }
}
