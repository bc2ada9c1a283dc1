//! `BackendClient`: the one way the front end talks to the back end. It resolves with the same
//! resolver as `/diag/resolve`, leaves from `OUTBOUND_SOURCE_ADDR` when set, adds the credential
//! (an API key, or a token of the managed identity from [`TokenSource`]) and the request id,
//! follows no redirects, and turns every failure into a [`Diagnosis`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, Method, StatusCode, header};
use bytes::Bytes;
use diag::dns::DnsResolver;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::Secret;
use diag::appservice::ResponseHead;
use diag::diagnosis::Code;

use crate::diagnosis::{self, CredentialKind, Diagnosis};
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
    http: reqwest::Client,
    resolver: DnsResolver,
    base: Url,
    credential: Credential,
    label: String,
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
        let http = diag::outbound::http_client_builder(resolver.clone(), settings.source)
            .timeout(settings.timeout)
            // Half the budget: a connect still pending by then is reported as a connect timeout
            // (a firewall or NSG dropping SYNs), never confused with a slow answer.
            .connect_timeout(settings.timeout / 2)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()?;
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
                http,
                resolver,
                base: settings.base,
                credential,
                label,
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
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        json_body: Option<Bytes>,
        request_id: Option<&HeaderValue>,
    ) -> Result<BackendResponse, Diagnosis> {
        let url =
            self.inner.base.join(path).map_err(|e| {
                diagnosis::internal(format!("the back-end URL cannot be built: {e}"))
            })?;
        let mut request = self.inner.http.request(method, url);
        match &self.inner.credential {
            Credential::None => {}
            Credential::ApiKey(key) => request = request.header("x-api-key", key.clone()),
            Credential::Entra(tokens) => match Box::pin(tokens.token()).await {
                Ok(token) => request = request.header(header::AUTHORIZATION, token.authorization()),
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
            Err(error) => return Err(Box::pin(self.diagnose_transport(&error)).await),
        };
        let status = response.status();
        let content_type = response.headers().get("content-type").cloned();
        // Only failures keep the head: it is what tells App Service's own answers apart.
        let failed_head = (status.is_client_error() || status.is_server_error()).then(|| {
            (
                response.headers().clone(),
                diag::appservice::reason_phrase(response.extensions()).map(str::to_owned),
            )
        });
        let body = response
            .bytes()
            .await
            .map_err(|e| diagnosis::from_transport(&e, &self.inner.label))?;
        let diagnosis = failed_head.and_then(|(headers, reason)| {
            let head = ResponseHead {
                status: status.as_u16(),
                reason: reason.as_deref(),
                headers: &headers,
            };
            diagnosis::from_response_to(&head, &body, self.credential_kind())
        });
        if let Some(mut diagnosis) = diagnosis {
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
        let diagnosis = diagnosis::from_transport(error, &self.inner.label);
        if diagnosis.code != Code::ConnectTimeout {
            return diagnosis;
        }
        match self.inner.base.host() {
            Some(url::Host::Domain(name)) => match self.inner.resolver.lookup_ip(name).await {
                Err(failure) => diagnosis::dns_failure(&failure.to_string()),
                Ok(_) => diagnosis,
            },
            _ => diagnosis,
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

fn unexpected(label: &str, status: StatusCode) -> Diagnosis {
    diagnosis::not_the_api(format!("{label} answered {status}"))
}
