//! `BackendClient`: the one way the front end talks to the back end. It resolves with the same
//! resolver as `/diag/resolve`, leaves from `OUTBOUND_SOURCE_ADDR` when set, adds the credential
//! and the request id, follows no redirects, and turns every failure into a [`Diagnosis`].

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, Method, StatusCode};
use bytes::Bytes;
use probe::dns::DnsResolver;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::diagnosis::{self, Diagnosis};

/// How to build a [`BackendClient`].
#[derive(Debug, Clone)]
pub struct BackendSettings {
    /// The back end's base URL.
    pub base: Url,
    /// The API key, if the back end requires one.
    pub api_key: Option<String>,
    /// Limit for one call, connect included.
    pub timeout: Duration,
    /// Local address outbound sockets bind to.
    pub source: Option<IpAddr>,
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
    /// Which back-end instance answered.
    pub instance: hosting::Instance,
}

/// Typed client for the back-end API. Cheap to clone.
#[derive(Clone)]
pub struct BackendClient {
    http: reqwest::Client,
    resolver: DnsResolver,
    base: Url,
    api_key: Option<HeaderValue>,
    label: String,
}

impl BackendClient {
    /// Builds the client; the connection pool is shared by all clones.
    pub fn new(settings: BackendSettings, resolver: DnsResolver) -> anyhow::Result<Self> {
        let http = probe::outbound::http_client_builder(resolver.clone(), settings.source)
            .timeout(settings.timeout)
            // Half the budget: a connect still pending by then is reported as a connect timeout
            // (a firewall or NSG dropping SYNs), never confused with a slow answer.
            .connect_timeout(settings.timeout / 2)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()?;
        let api_key = settings
            .api_key
            .filter(|k| !k.is_empty())
            .map(|k| {
                let mut value = HeaderValue::from_str(&k)?;
                value.set_sensitive(true);
                Ok::<_, axum::http::header::InvalidHeaderValue>(value)
            })
            .transpose()?;
        let label = match (
            settings.base.host_str(),
            settings.base.port_or_known_default(),
        ) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => settings.base.to_string(),
        };
        Ok(Self {
            http,
            resolver,
            base: settings.base,
            api_key,
            label,
        })
    }

    /// The back end's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Sends one request to `path` (absolute, e.g. `/api/items`). Failures the front end can
    /// explain (transport errors, 401, 403, 5xx) come back as a [`Diagnosis`]; everything else,
    /// including 4xx caused by the caller's input, comes back as a response to relay.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        json_body: Option<Bytes>,
        request_id: Option<&HeaderValue>,
    ) -> Result<BackendResponse, Diagnosis> {
        let url = self.base.join(path).map_err(|e| {
            diagnosis::from_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string().as_bytes())
                .expect("5xx always diagnoses")
        })?;
        let mut request = self.http.request(method, url);
        if let Some(key) = &self.api_key {
            request = request.header("x-api-key", key.clone());
        }
        if let Some(id) = request_id {
            request = request.header(hosting::server::REQUEST_ID_HEADER, id.clone());
        }
        if let Some(body) = json_body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let started = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Err(self.diagnose_transport(&error).await),
        };
        let status = response.status();
        let content_type = response.headers().get("content-type").cloned();
        let body = response
            .bytes()
            .await
            .map_err(|e| diagnosis::from_transport(&e, &self.label))?;
        if let Some(diagnosis) = diagnosis::from_response(status, &body) {
            tracing::warn!(
                code = diagnosis.code,
                http.status = status.as_u16(),
                "back-end call failed"
            );
            return Err(diagnosis);
        }
        Ok(BackendResponse {
            status,
            content_type,
            body,
            elapsed: started.elapsed(),
        })
    }

    /// The connect budget also covers name resolution, so before blaming the network for a
    /// connect timeout, ask the resolver (failure path only) whether the name resolves at all.
    async fn diagnose_transport(&self, error: &reqwest::Error) -> Diagnosis {
        let diagnosis = diagnosis::from_transport(error, &self.label);
        if diagnosis.code != "connect_timeout" {
            return diagnosis;
        }
        match self.base.host() {
            Some(url::Host::Domain(name)) => match self.resolver.lookup_ip(name).await {
                Err(failure) => diagnosis::dns_failure(&failure.to_string()),
                Ok(_) => diagnosis,
            },
            _ => diagnosis,
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

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        response: &BackendResponse,
    ) -> Result<T, Diagnosis> {
        if !response.status.is_success() {
            return Err(unexpected(&self.label, response.status));
        }
        serde_json::from_slice(&response.body).map_err(|e| Diagnosis {
            status: StatusCode::BAD_GATEWAY,
            code: "backend_error",
            message: format!(
                "{} answered something that is not the lockdown API: {e}",
                self.label
            ),
            hint: "check that BACKEND_URL points at the lockdown back end".into(),
        })
    }
}

fn unexpected(label: &str, status: StatusCode) -> Diagnosis {
    Diagnosis {
        status: StatusCode::BAD_GATEWAY,
        code: "backend_error",
        message: format!("{label} answered {status}"),
        hint: "check that BACKEND_URL points at the lockdown back end".into(),
    }
}
