//! The smoke suite's TOML format: apps to run checks from, and checks that each do one action
//! and state what must hold. Validated as a whole before anything runs (exit 2 on a mistake).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;
use url::Url;

/// A whole suite.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeConfig {
    /// Settings every check inherits.
    #[serde(default)]
    pub defaults: Defaults,
    /// How checks `from = "here"` resolve and connect.
    #[serde(default)]
    pub here: Here,
    /// Apps whose `/diag` runs checks from inside App Service, by name.
    #[serde(default)]
    pub apps: BTreeMap<String, AppRef>,
    /// The checks, in order.
    #[serde(default, rename = "check")]
    pub checks: Vec<CheckSpec>,
    /// `sha256:` and the hex SHA-256 of the TOML text it was parsed from (the report's
    /// `suite_digest`).
    #[serde(skip)]
    pub digest: String,
}

/// Settings every check inherits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Time limit of one action (a lookup, a connect, a request), in ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    5_000
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            timeout_ms: default_timeout_ms(),
        }
    }
}

/// How checks `from = "here"` resolve and connect.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Here {
    /// DNS servers (`ip[:port]`); default: the system's.
    #[serde(default)]
    pub dns_servers: Vec<String>,
    /// Local address to connect from.
    #[serde(default)]
    pub source_addr: Option<IpAddr>,
    /// A PEM file of CA certificates `tls` checks from here trust besides the platform's (a
    /// private CA; the lab's test CA).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

/// An app reachable over HTTP(S) whose `/diag` runs checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRef {
    /// The app's base URL (`https://<app>.azurewebsites.net`).
    pub url: Url,
    /// The environment variable holding the app's `DIAG_TOKEN` (never the token itself); not
    /// set on an app reached `via` another (that app's token is the one sent).
    #[serde(default)]
    pub token_env: String,
    /// Instance ids to fan out over; default: discovered from `ARRAffinity` cookies.
    #[serde(default)]
    pub instances: Option<Vec<String>>,
    /// Reach this app's `/diag` through another app of the suite, which forwards to its own back
    /// end (`/diag/backend/…`, `BACKEND_DIAG_TOKEN` on that app): for a back end with no public
    /// entry. `url` still names the app (for the report); the calls go to the other app's URL.
    #[serde(default)]
    pub via: Option<String>,
}

/// Which instances a from-app check runs on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Instances {
    /// `"all"`: every instance, each reported separately.
    Keyword(String),
    /// These instance ids.
    List(Vec<String>),
}

/// One check as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// What the check proves, in words.
    pub name: String,
    /// `"here"` or an app name.
    #[serde(default = "here")]
    pub from: String,
    /// Fan out over instances (from-app checks only).
    #[serde(default)]
    pub instances: Option<Instances>,
    /// Action: look up this name.
    #[serde(default)]
    pub resolve: Option<String>,
    /// Record type for `resolve` (default A).
    #[serde(default, rename = "type")]
    pub record_type: Option<String>,
    /// DNS server for `resolve` (`ip[:port]`), instead of the resolver in force.
    #[serde(default)]
    pub server: Option<String>,
    /// Action: connect to `host:port`.
    #[serde(default)]
    pub tcpping: Option<String>,
    /// Action: request this URL.
    #[serde(default)]
    pub http: Option<String>,
    /// Action: handshake with `host[:port]` (TLS, or PostgreSQL's SSLRequest then TLS).
    #[serde(default)]
    pub tls: Option<String>,
    /// The name `tls` sends as SNI and verifies (default: the host).
    #[serde(default)]
    pub sni: Option<String>,
    /// `tls` or `postgres` for `tls` (default: from the Azure service catalogue and the port).
    #[serde(default)]
    pub protocol: Option<String>,
    /// Action: read the app's `/diag/env` (from an app only).
    #[serde(default)]
    pub env: Option<bool>,
    /// Short form: an Azure service's public name (`kv-x.vault.azure.net`, optionally `:PORT`)
    /// that expands to its resolve, connect and handshake checks (see [`SmokeConfig::checks`]).
    #[serde(default)]
    pub dependency: Option<String>,
    /// Overrides `defaults.timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Extra request headers of an `http` check from here (`{ "X-Azure-FDID" = "…" }`).
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Points the check's target at this deployment slot of its app: the host's first label
    /// gains `-<slot>` (`app-be.azurewebsites.net` → `app-be-staging.azurewebsites.net`,
    /// `app-be.scm.…` → `app-be-staging.scm.…`).
    #[serde(default)]
    pub slot: Option<String>,
    /// The next step to add to the diagnosis when the check fails: what is open (or closed) and
    /// how to fix it, in the suite author's words.
    #[serde(default)]
    pub hint: Option<String>,
    /// What must hold.
    pub expect: Expect,
}

fn here() -> String {
    "here".into()
}

/// What must hold. Only the keys that fit the action are allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The action succeeds (the name resolves; every connect succeeds; a response comes back).
    pub ok: Option<bool>,
    /// The target answers (a connect succeeds; an HTTP response that is not an App Service block page).
    pub reachable: Option<bool>,
    /// Must NOT reach: an App Service 403 page, a refused or timed-out connection, or an
    /// address that does not route from here.
    pub denied: Option<bool>,
    /// The HTTP status.
    pub status: Option<u16>,
    /// Every resolved address is private (RFC 1918, shared, ULA).
    pub private: Option<bool>,
    /// Every resolved (or connected) address lies in this range.
    #[serde(default, deserialize_with = "cidr")]
    pub address_in: Option<IpNet>,
    /// A `*.privatelink.*` hop is (or is not) in the CNAME chain.
    pub privatelink: Option<bool>,
    /// `true`: the name (one the Azure service catalogue knows) resolved through its service's
    /// `privatelink` zone to private addresses; `false`: it did not (the view from outside).
    pub zone: Option<bool>,
    /// `true`: no setting of the app still holds an unresolved `@Microsoft.KeyVault(…)`
    /// reference (`env` checks).
    pub keyvault_resolved: Option<bool>,
    /// The connection's local (source) address lies in this range.
    #[serde(default, deserialize_with = "cidr")]
    pub source_in: Option<IpNet>,
    /// The back end saw the caller inside this range (an HTTP JSON body with `client_ip` or
    /// `caller.client_ip`, such as the front end's `/api/path`).
    #[serde(default, deserialize_with = "cidr")]
    pub caller_in: Option<IpNet>,
    /// The `error.code` of the lockdown error envelope in the response (`missing_token`, …):
    /// which of the app's gates refused. Works through `/diag/http`, which reports only that code.
    pub error_code: Option<String>,
    /// The credential that let the caller in, as the back end reports it (`auth.mode` or
    /// `caller.auth.mode` in a JSON body such as `/api/path`): `entra`, `api-key` or `none`.
    /// From here only, like `caller_in`.
    pub caller_auth: Option<String>,
    /// The response carries this header (`x-azure-ref`: Front Door answered). One of the
    /// headers a report records: `server`, `content-type`, `content-length`, `location`,
    /// `x-azure-ref`, `x-ms-*`.
    pub header: Option<String>,
}

/// A range in CIDR form; a bare address is the range of that one address.
fn cidr<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<IpNet>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(Some)
        .map_err(|_| {
            serde::de::Error::custom(format!(
                "{text:?} is not a range: write it in CIDR form, such as \"10.20.1.0/24\""
            ))
        })
}

/// The action of a check, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// DNS lookup.
    Resolve {
        /// The name.
        host: String,
        /// Record type.
        record_type: String,
        /// A DNS server to ask instead of the resolver in force.
        server: Option<String>,
    },
    /// TCP connect.
    TcpPing {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// HTTP request.
    Http {
        /// The URL.
        url: Url,
    },
    /// The app's network facts (`/diag/env`).
    Env,
    /// Protocol handshake.
    Tls {
        /// Host name or address.
        host: String,
        /// Port (default: the catalogued service's, else 443).
        port: Option<u16>,
        /// The SNI to send and verify (default: the host).
        sni: Option<String>,
        /// `tls` or `postgres` (default: from the catalogue and the port).
        protocol: Option<String>,
    },
}

impl Action {
    /// `resolve`, `tcpping` or `http`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Resolve { .. } => "resolve",
            Self::TcpPing { .. } => "tcpping",
            Self::Http { .. } => "http",
            Self::Tls { .. } => "tls",
            Self::Env => "env",
        }
    }

    /// The target as written in reports.
    pub fn target(&self) -> String {
        match self {
            Self::Resolve {
                host, record_type, ..
            } => format!("{host} {record_type}"),
            Self::TcpPing { host, port } => format!("{host}:{port}"),
            Self::Http { url } => url.to_string(),
            Self::Env => "/diag/env".to_owned(),
            Self::Tls {
                host, port: None, ..
            } => host.clone(),
            Self::Tls {
                host,
                port: Some(port),
                ..
            } => format!("{host}:{port}"),
        }
    }
}

/// A check, validated and ready to run.
#[derive(Debug, Clone)]
pub struct Check {
    /// Its position in the file (1-based).
    pub index: usize,
    /// Its name.
    pub name: String,
    /// `None` = here; else the app's name.
    pub from: Option<String>,
    /// Fan-out request.
    pub instances: Option<Instances>,
    /// The action.
    pub action: Action,
    /// The time limit of one action.
    pub timeout_ms: u64,
    /// What must hold.
    pub expect: Expect,
    /// Extra request headers (`http` from here).
    pub headers: Vec<(String, String)>,
    /// The deployment slot the target was pointed at.
    pub slot: Option<String>,
    /// The suite's next step for a failure.
    pub hint: Option<String>,
}

/// A mistake in the suite, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}{hint}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
        /// The next step, when the file is missing.
        hint: &'static str,
    },
    /// The TOML does not parse or has unknown keys.
    #[error("{0}")]
    Toml(String),
    /// A check is wrong.
    #[error("check {index} ({name:?}): {message}")]
    Check {
        /// 1-based position.
        index: usize,
        /// Its name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Something else is wrong.
    #[error("{0}")]
    Invalid(String),
}

impl SmokeConfig {
    /// Reads and parses a suite file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            hint: if source.kind() == std::io::ErrorKind::NotFound {
                ". Name a suite with --config FILE: infra/smoke/ has one per lockdown mode, \
                 infra/scripts/smoke-config.sh writes one for a deployment, and \
                 `lockdown --write-suite FILE` writes the lab's"
            } else {
                ""
            },
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parses a suite.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut config: Self =
            toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        config.digest = format!(
            "sha256:{}",
            crate::smoke::evidence::sha256_hex(text.as_bytes())
        );
        Ok(config)
    }

    /// Validates every check; the first mistake is returned.
    pub fn checks(&self) -> Result<Vec<Check>, ConfigError> {
        if self.checks.is_empty() {
            return Err(ConfigError::Invalid("the suite has no [[check]]".into()));
        }
        for server in &self.here.dns_servers {
            parse_dns_server(server).map_err(ConfigError::Invalid)?;
        }
        for (name, app) in &self.apps {
            if !matches!(app.url.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid(format!(
                    "apps.{name}.url must be http or https"
                )));
            }
            // The app's DIAG_TOKEN travels with every check: never in clear off this machine.
            let loopback = match app.url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if app.url.scheme() == "http" && !loopback && app.via.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "apps.{name}.url must be https: the /diag token would travel in clear (plain http is allowed on loopback only)"
                )));
            }
            match &app.via {
                None if app.token_env.trim().is_empty() => {
                    return Err(ConfigError::Invalid(format!(
                        "apps.{name}.token_env must name the variable holding the app's DIAG_TOKEN"
                    )));
                }
                None => {}
                Some(via) => {
                    let Some(through) = self.apps.get(via) else {
                        return Err(ConfigError::Invalid(format!(
                            "apps.{name}.via = {via:?} is not an app of the suite ([apps.{via}])"
                        )));
                    };
                    if via == name || through.via.is_some() {
                        return Err(ConfigError::Invalid(format!(
                            "apps.{name}.via = {via:?}: an app is reached through one app that has a URL of its own, not through itself or a chain"
                        )));
                    }
                    if !app.token_env.is_empty() {
                        return Err(ConfigError::Invalid(format!(
                            "apps.{name}: drop token_env: reached via {via}, it is {via}'s token that is sent (the back end's stays in {via}'s BACKEND_DIAG_TOKEN)"
                        )));
                    }
                }
            }
        }
        let mut checks = Vec::new();
        for (i, spec) in self.checks.iter().enumerate() {
            match &spec.dependency {
                Some(dependency) => checks.extend(self.dependency(i + 1, spec, dependency)?),
                None => checks.push(self.check(i + 1, spec)?),
            }
        }
        Ok(checks)
    }

    /// Expands `dependency = "NAME[:PORT]"`: with `expect = { reachable = true }` (or `ok`),
    /// the name resolves through its service's `privatelink` zone to private addresses, connects
    /// on the port (the service's first by default), and, where the catalogue can prove the port
    /// (`tls`, `postgres`), completes the handshake with its certificate verified; with
    /// `expect = { denied = true }`, the name does not resolve to the private endpoint from here
    /// and nothing answers on the port. Each is reported as its own check, named after this one.
    fn dependency(
        &self,
        index: usize,
        spec: &CheckSpec,
        dependency: &str,
    ) -> Result<Vec<Check>, ConfigError> {
        let fail = |message: String| ConfigError::Check {
            index,
            name: spec.name.clone(),
            message,
        };
        if spec.resolve.is_some()
            || spec.tcpping.is_some()
            || spec.http.is_some()
            || spec.tls.is_some()
            || spec.env.is_some()
            || spec.record_type.is_some()
            || spec.server.is_some()
            || spec.sni.is_some()
            || spec.protocol.is_some()
        {
            return Err(fail(
                "dependency is a check of its own: give no resolve, tcpping, http, tls, type, server, sni or protocol with it".into(),
            ));
        }
        let (host, port) = match split_host_port(dependency) {
            Some((host, port)) => (host, Some(port)),
            None => (dependency.to_owned(), None),
        };
        if let Some(by) = diag::azure::called_by(&host) {
            return Err(fail(format!(
                "dependency = {dependency:?}: {}",
                by.explain(&host)
            )));
        }
        let Some(found) = diag::azure::lookup(&host) else {
            return Err(fail(format!(
                "dependency = {dependency:?} is not a name of a service the catalogue knows (docs/azure-services.md): write the checks out"
            )));
        };
        let service = found.service;
        let port = port.unwrap_or_else(|| service.default_port());
        let e = &spec.expect;
        let rest = Expect {
            ok: None,
            reachable: None,
            denied: None,
            ..e.clone()
        };
        let reach = match (e.ok.or(e.reachable), e.denied) {
            (Some(true), None) if rest == Expect::default() => true,
            (None, Some(true)) if rest == Expect::default() => false,
            _ => {
                return Err(fail(
                    "a dependency takes expect = { reachable = true } (resolve privately, connect, handshake) or { denied = true } (not from here), nothing else".into(),
                ));
            }
        };
        let zone = service.zones.join(" or ");
        let target = format!("{host}:{port}");
        // Each part is a check as if written out, so it is validated the same way.
        let part = |suffix: String, expect: Expect| CheckSpec {
            name: format!("{} — {suffix}", spec.name),
            resolve: None,
            tcpping: None,
            http: None,
            tls: None,
            env: None,
            sni: None,
            protocol: None,
            dependency: None,
            record_type: None,
            server: None,
            expect,
            ..spec.clone()
        };
        let mut parts = Vec::new();
        if reach {
            parts.push(CheckSpec {
                resolve: Some(host.clone()),
                ..part(
                    format!("resolves privately through {zone}"),
                    Expect {
                        zone: Some(true),
                        ..Expect::default()
                    },
                )
            });
            parts.push(CheckSpec {
                tcpping: Some(target.clone()),
                ..part(
                    format!("connects on {port}"),
                    Expect {
                        reachable: Some(true),
                        ..Expect::default()
                    },
                )
            });
            let protocol = service.protocol_on(port);
            if protocol != diag::azure::Protocol::None {
                parts.push(CheckSpec {
                    tls: Some(target.clone()),
                    protocol: Some(protocol.as_str().to_owned()),
                    ..part(
                        format!("{} handshake verifies", protocol.as_str()),
                        Expect {
                            ok: Some(true),
                            ..Expect::default()
                        },
                    )
                });
            }
        } else {
            parts.push(CheckSpec {
                resolve: Some(host.clone()),
                ..part(
                    format!("does not resolve through {zone} to a private address"),
                    Expect {
                        zone: Some(false),
                        ..Expect::default()
                    },
                )
            });
            parts.push(CheckSpec {
                tcpping: Some(target),
                ..part(
                    format!("nothing answers on {port}"),
                    Expect {
                        denied: Some(true),
                        ..Expect::default()
                    },
                )
            });
        }
        parts.iter().map(|part| self.check(index, part)).collect()
    }

    fn check(&self, index: usize, spec: &CheckSpec) -> Result<Check, ConfigError> {
        let fail = |message: String| ConfigError::Check {
            index,
            name: spec.name.clone(),
            message,
        };
        if spec.name.trim().is_empty() {
            return Err(fail("name must not be empty".into()));
        }
        let from = if spec.from == "here" {
            None
        } else if self.apps.contains_key(&spec.from) {
            Some(spec.from.clone())
        } else {
            let known: Vec<_> = self.apps.keys().map(String::as_str).collect();
            return Err(fail(format!(
                "from = {:?} is neither \"here\" nor an app ([apps.NAME]; known: {})",
                spec.from,
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )));
        };
        if let Some(instances) = &spec.instances {
            if from.is_none() {
                return Err(fail(
                    "instances applies to checks from an app, not from here".into(),
                ));
            }
            if let Instances::Keyword(word) = instances
                && word != "all"
            {
                return Err(fail(format!(
                    "instances must be \"all\" or a list of ids, not {word:?}"
                )));
            }
        }
        let actions = [
            spec.resolve.is_some(),
            spec.tcpping.is_some(),
            spec.http.is_some(),
            spec.tls.is_some(),
            spec.env.is_some(),
        ];
        if actions.iter().filter(|a| **a).count() != 1 {
            return Err(fail(
                "give exactly one action: resolve, tcpping, http, tls, env or dependency".into(),
            ));
        }
        let action = if let Some(host) = &spec.resolve {
            let record_type = spec
                .record_type
                .clone()
                .unwrap_or_else(|| "A".into())
                .to_ascii_uppercase();
            if !["A", "AAAA", "CNAME", "TXT", "MX", "SRV", "PTR"].contains(&record_type.as_str()) {
                return Err(fail(format!(
                    "type {record_type:?} is not one of A, AAAA, CNAME, TXT, MX, SRV, PTR"
                )));
            }
            if let Some(server) = &spec.server {
                parse_dns_server(server).map_err(fail)?;
            }
            Action::Resolve {
                host: host.clone(),
                record_type,
                server: spec.server.clone(),
            }
        } else if let Some(target) = &spec.tcpping {
            let (host, port) = split_host_port(target).ok_or_else(|| {
                fail(format!(
                    "tcpping = {target:?} must be host:port (IPv6 as [addr]:port)"
                ))
            })?;
            Action::TcpPing { host, port }
        } else if let Some(env) = spec.env {
            if !env {
                return Err(fail("env = true is the only form".into()));
            }
            if from.is_none() {
                return Err(fail(
                    "env reads an app's /diag/env: run it from an app (from = \"NAME\")".into(),
                ));
            }
            Action::Env
        } else if let Some(target) = &spec.tls {
            let (host, port) = match split_host_port(target) {
                Some((host, port)) => (host, Some(port)),
                None => (target.clone(), None),
            };
            // The same validation as /diag/tls, so a mistake is exit 2 before anything runs.
            diag::tlscheck::TlsCheckRequest::parse(
                &host,
                port.map(|p| p.to_string()).as_deref(),
                spec.sni.as_deref(),
                spec.protocol.as_deref(),
                None,
            )
            .map_err(|e| fail(format!("tls = {target:?}: {e}")))?;
            Action::Tls {
                host,
                port,
                sni: spec.sni.clone(),
                protocol: spec.protocol.clone(),
            }
        } else {
            let raw = spec.http.as_deref().unwrap_or_default();
            let url =
                Url::parse(raw).map_err(|e| fail(format!("http = {raw:?} is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(fail("http URLs must be http or https".into()));
            }
            Action::Http { url }
        };
        if spec.tls.is_none() && (spec.sni.is_some() || spec.protocol.is_some()) {
            return Err(fail("sni and protocol go with tls".into()));
        }
        if spec.resolve.is_none() && (spec.record_type.is_some() || spec.server.is_some()) {
            return Err(fail("type and server go with resolve".into()));
        }
        let action = match &spec.slot {
            Some(slot) => in_slot(action, slot).map_err(fail)?,
            None => action,
        };
        let headers: Vec<(String, String)> = spec
            .headers
            .iter()
            .flatten()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        if !headers.is_empty() {
            let Action::Http { url } = &action else {
                return Err(fail("headers go with http".into()));
            };
            if from.is_some() {
                return Err(fail(
                    "headers apply to checks from here: an app's /diag/http sends none of its caller's".into(),
                ));
            }
            diag::httpcheck::HttpCheckRequest::parse(url.as_str(), None)
                .and_then(|r| r.with_headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))))
                .map_err(|e| fail(e.to_string()))?;
        }
        if let Some(hint) = &spec.hint
            && (hint.trim().is_empty() || hint.len() > 1_000)
        {
            return Err(fail(
                "hint must be a sentence of 1 to 1000 characters".into(),
            ));
        }
        check_expectations(&action, from.is_none(), &spec.expect).map_err(fail)?;
        let timeout_ms = spec.timeout_ms.unwrap_or(self.defaults.timeout_ms);
        // The probe bounds one tcpping attempt or HTTP check at 10 s (App Service's own
        // connect timeout is 21 s; a lockdown check needs no longer).
        if !(1..=10_000).contains(&timeout_ms) {
            return Err(fail("timeout_ms must be between 1 and 10000".into()));
        }
        Ok(Check {
            index,
            name: spec.name.clone(),
            from,
            instances: spec.instances.clone(),
            action,
            timeout_ms,
            expect: spec.expect.clone(),
            headers,
            slot: spec.slot.clone(),
            hint: spec.hint.as_deref().map(str::trim).map(str::to_owned),
        })
    }
}

/// `host` in deployment slot `slot`: its first label gains `-<slot>`. Slots are sites of their
/// own, named `<app>-<slot>` (and `<app>-<slot>.scm` for their SCM site).
pub fn slot_host(host: &str, slot: &str) -> Result<String, String> {
    let valid = !slot.is_empty()
        && slot.len() <= 59
        && slot
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slot.starts_with('-')
        && !slot.ends_with('-');
    if !valid {
        return Err(format!(
            "slot = {slot:?} must be a slot name: lowercase letters, digits and inner hyphens"
        ));
    }
    if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
        return Err(format!(
            "slot needs a host name to point at the slot, not the address {host}"
        ));
    }
    match host.split_once('.') {
        Some((app, rest)) if !app.is_empty() && !rest.is_empty() => {
            Ok(format!("{app}-{slot}.{rest}"))
        }
        _ => Err(format!(
            "slot needs an app's host name (app.azurewebsites.net), not {host:?}"
        )),
    }
}

/// The action aimed at deployment slot `slot` of its app.
fn in_slot(action: Action, slot: &str) -> Result<Action, String> {
    Ok(match action {
        Action::Resolve {
            host,
            record_type,
            server,
        } => Action::Resolve {
            host: slot_host(&host, slot)?,
            record_type,
            server,
        },
        Action::TcpPing { host, port } => Action::TcpPing {
            host: slot_host(&host, slot)?,
            port,
        },
        Action::Http { mut url } => {
            let host = slot_host(url.host_str().unwrap_or_default(), slot)?;
            url.set_host(Some(&host))
                .map_err(|e| format!("slot host {host}: {e}"))?;
            Action::Http { url }
        }
        Action::Tls {
            host,
            port,
            sni,
            protocol,
        } => Action::Tls {
            host: slot_host(&host, slot)?,
            port,
            sni: sni.map(|sni| slot_host(&sni, slot)).transpose()?,
            protocol,
        },
        Action::Env => return Err("slot does not apply to env: the app's own facts".into()),
    })
}

fn check_expectations(action: &Action, from_here: bool, expect: &Expect) -> Result<(), String> {
    if *expect == Expect::default() {
        return Err("expect states nothing: say what must hold".into());
    }
    let mut allowed = vec!["ok", "denied", "address_in"];
    match action {
        Action::Resolve { .. } => allowed.extend(["private", "privatelink", "zone"]),
        Action::Tls { .. } => allowed.retain(|k| *k != "address_in"),
        Action::Env => allowed = vec!["keyvault_resolved"],
        Action::TcpPing { .. } => allowed.extend(["reachable", "source_in"]),
        Action::Http { .. } => {
            allowed.extend([
                "reachable",
                "status",
                "source_in",
                "caller_in",
                "error_code",
                "caller_auth",
                "header",
            ]);
            allowed.retain(|k| *k != "address_in");
        }
    }
    let given = [
        ("ok", expect.ok.is_some()),
        ("reachable", expect.reachable.is_some()),
        ("denied", expect.denied.is_some()),
        ("status", expect.status.is_some()),
        ("private", expect.private.is_some()),
        ("address_in", expect.address_in.is_some()),
        ("privatelink", expect.privatelink.is_some()),
        ("zone", expect.zone.is_some()),
        ("keyvault_resolved", expect.keyvault_resolved.is_some()),
        ("source_in", expect.source_in.is_some()),
        ("caller_in", expect.caller_in.is_some()),
        ("error_code", expect.error_code.is_some()),
        ("caller_auth", expect.caller_auth.is_some()),
        ("header", expect.header.is_some()),
    ];
    for (key, present) in given {
        if present && !allowed.contains(&key) {
            return Err(format!("expect.{key} does not apply to {}", action.kind()));
        }
    }
    if let Action::Resolve { host, .. } = action
        && expect.zone.is_some()
        && diag::azure::lookup(host).is_none()
    {
        return Err(format!(
            "expect.zone needs a name of a service the catalogue knows (docs/azure-services.md); {host:?} is not one"
        ));
    }
    if matches!(action, Action::Resolve { .. }) && expect.denied.is_some() {
        return Err("expect.denied does not apply to resolve (use ok = false for a name that must not resolve)".into());
    }
    if expect.denied == Some(true)
        && (expect.reachable == Some(true)
            || expect.status.is_some()
            || expect.caller_in.is_some()
            || expect.source_in.is_some()
            || expect.error_code.is_some()
            || expect.caller_auth.is_some()
            || expect.header.is_some())
    {
        return Err(
            "denied = true cannot be combined with reachable, status, source_in, caller_in, error_code, caller_auth or header"
                .into(),
        );
    }
    if let Some(name) = &expect.header
        && !diag::httpcheck::is_reported_header(&name.to_ascii_lowercase())
    {
        return Err(format!(
            "expect.header = {name:?} is not a header the check records: {}, or x-ms-*",
            diag::httpcheck::REPORTED_HEADERS.join(", ")
        ));
    }
    if let Some(code) = &expect.error_code {
        let word = !code.is_empty()
            && code.len() <= 64
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !word {
            return Err(format!(
                "expect.error_code = {code:?} must be a snake_case code such as missing_token"
            ));
        }
    }
    if let Some(mode) = &expect.caller_auth {
        if !["entra", "api-key", "none"].contains(&mode.as_str()) {
            return Err(format!(
                "expect.caller_auth = {mode:?} must be entra, api-key or none"
            ));
        }
        if !from_here {
            return Err("caller_auth reads the response body, which /diag never returns: run it from here (e.g. against the front end's /api/path)".into());
        }
    }
    if expect.denied == Some(false) {
        return Err("say reachable = true instead of denied = false".into());
    }
    if expect.reachable == Some(false) {
        return Err("say denied = true instead of reachable = false".into());
    }
    if expect.ok == Some(false) && !matches!(action, Action::Resolve { .. }) {
        return Err(format!(
            "ok = false applies to resolve only (a name that must not resolve); for {} that must not get through, say denied = true",
            action.kind()
        ));
    }
    if expect.caller_in.is_some() && !from_here {
        return Err("caller_in reads the response body, which /diag never returns: run it from here (e.g. against the front end's /api/path)".into());
    }
    Ok(())
}

/// Parses `ip[:port]` (port 53 by default; IPv6 as `[addr]:port` or bare).
pub fn parse_dns_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{text:?} is not a DNS server address (ip or ip:port)"))
}

/// Splits `host:port` or `[v6]:port`.
pub fn split_host_port(text: &str) -> Option<(String, u16)> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some((addr.ip().to_string(), addr.port()));
    }
    let (host, port) = text.rsplit_once(':')?;
    if host.is_empty() || host.contains(':') {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(check: &str) -> Result<Vec<Check>, ConfigError> {
        let text = format!(
            "[apps.frontend]\nurl = \"https://fe.example\"\ntoken_env = \"T\"\n\n[[check]]\nname = \"c\"\n{check}"
        );
        SmokeConfig::from_toml(&text)?.checks()
    }

    #[test]
    fn ranges_are_cidrs_or_single_addresses() {
        let checks =
            suite("resolve = \"a.test\"\nexpect = { address_in = \"10.20.2.4\" }").unwrap();
        assert_eq!(
            checks[0].expect.address_in,
            Some("10.20.2.4/32".parse().unwrap())
        );
        let error = suite("resolve = \"a.test\"\nexpect = { address_in = \"notacidr\" }")
            .unwrap_err()
            .to_string();
        assert!(error.contains("CIDR form"), "{error}");
    }

    #[test]
    fn the_zone_expectation_needs_a_catalogued_name() {
        let checks = suite(
            "from = \"frontend\"\nresolve = \"kv-x.vault.azure.net\"\nexpect = { zone = true }",
        )
        .unwrap();
        assert_eq!(checks[0].expect.zone, Some(true));
        for (check, wanted) in [
            (
                "resolve = \"a.test\"\nexpect = { zone = true }",
                "catalogue knows",
            ),
            (
                "tcpping = \"kv-x.vault.azure.net:443\"\nexpect = { zone = true }",
                "does not apply",
            ),
        ] {
            let error = suite(check).unwrap_err().to_string();
            assert!(error.contains(wanted), "{error}");
        }
    }

    #[test]
    fn a_dependency_expands_to_resolve_connect_and_handshake() {
        let checks = suite(
            "from = \"frontend\"\ndependency = \"kv-x.vault.azure.net\"\nexpect = { reachable = true }",
        )
        .unwrap();
        let seen: Vec<(String, String, Expect)> = checks
            .iter()
            .map(|c| {
                (
                    c.action.kind().to_owned(),
                    c.action.target(),
                    c.expect.clone(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "resolve".to_owned(),
                    "kv-x.vault.azure.net A".to_owned(),
                    Expect {
                        zone: Some(true),
                        ..Expect::default()
                    }
                ),
                (
                    "tcpping".to_owned(),
                    "kv-x.vault.azure.net:443".to_owned(),
                    Expect {
                        reachable: Some(true),
                        ..Expect::default()
                    }
                ),
                (
                    "tls".to_owned(),
                    "kv-x.vault.azure.net:443".to_owned(),
                    Expect {
                        ok: Some(true),
                        ..Expect::default()
                    }
                ),
            ]
        );
        assert!(
            checks
                .iter()
                .all(|c| c.index == 1 && c.from.as_deref() == Some("frontend"))
        );
        assert_eq!(
            checks[0].name,
            "c — resolves privately through privatelink.vaultcore.azure.net"
        );
        assert_eq!(checks[2].name, "c — tls handshake verifies");

        // PostgreSQL: its own port and handshake; SQL: no handshake the probe can do.
        let pg =
            suite("dependency = \"pg-x.postgres.database.azure.com:6432\"\nexpect = { ok = true }")
                .unwrap();
        assert_eq!(
            pg[1].action.target(),
            "pg-x.postgres.database.azure.com:6432"
        );
        assert!(matches!(&pg[2].action, Action::Tls { protocol: Some(p), .. } if p == "postgres"));
        let sql =
            suite("dependency = \"sql-x.database.windows.net\"\nexpect = { reachable = true }")
                .unwrap();
        assert_eq!(sql.len(), 2);
        assert_eq!(sql[1].action.target(), "sql-x.database.windows.net:1433");

        // The must-not-reach form.
        let denied =
            suite("dependency = \"kv-x.vault.azure.net\"\nexpect = { denied = true }").unwrap();
        assert_eq!(denied.len(), 2);
        assert_eq!(denied[0].expect.zone, Some(false));
        assert_eq!(denied[1].expect.denied, Some(true));
        assert_eq!(denied[1].action.kind(), "tcpping");
    }

    #[test]
    fn a_dependency_is_refused_when_it_cannot_be_expanded() {
        for (check, wanted) in [
            (
                "dependency = \"db.example.com\"\nexpect = { reachable = true }",
                "catalogue knows",
            ),
            (
                "dependency = \"10.20.3.4\"\nexpect = { reachable = true }",
                "is an address",
            ),
            (
                "dependency = \"kv-x.privatelink.vaultcore.azure.net\"\nexpect = { reachable = true }",
                "kv-x.vault.azure.net",
            ),
            (
                "dependency = \"kv-x.vault.azure.net\"\nexpect = { status = 200 }",
                "reachable = true",
            ),
            (
                "dependency = \"kv-x.vault.azure.net\"\nexpect = { reachable = true, private = true }",
                "nothing else",
            ),
            (
                "dependency = \"kv-x.vault.azure.net\"\ntcpping = \"a:1\"\nexpect = { reachable = true }",
                "check of its own",
            ),
            ("expect = { reachable = true }", "or dependency"),
        ] {
            let error = suite(check).unwrap_err().to_string();
            assert!(error.contains(wanted), "{check}: {error}");
        }
    }

    #[test]
    fn env_checks_run_from_an_app_and_judge_key_vault_references() {
        let checks =
            suite("from = \"frontend\"\nenv = true\nexpect = { keyvault_resolved = true }")
                .unwrap();
        assert_eq!(checks[0].action, Action::Env);
        for (check, wanted) in [
            (
                "env = true\nexpect = { keyvault_resolved = true }",
                "from an app",
            ),
            (
                "from = \"frontend\"\nenv = true\nexpect = { ok = true }",
                "does not apply to env",
            ),
            (
                "from = \"frontend\"\nenv = false\nexpect = { keyvault_resolved = true }",
                "only form",
            ),
            (
                "from = \"frontend\"\ntcpping = \"a:1\"\nexpect = { keyvault_resolved = true }",
                "does not apply",
            ),
        ] {
            let error = suite(check).unwrap_err().to_string();
            assert!(error.contains(wanted), "{check}: {error}");
        }
    }

    #[test]
    fn a_valid_check_of_each_kind() {
        let checks = suite("from = \"frontend\"\ninstances = \"all\"\ntcpping = \"be.example:443\"\nexpect = { reachable = true, source_in = \"10.0.1.0/24\" }").unwrap();
        assert_eq!(
            checks[0].action,
            Action::TcpPing {
                host: "be.example".into(),
                port: 443
            }
        );
        assert_eq!(checks[0].from.as_deref(), Some("frontend"));
        suite("resolve = \"be.example\"\nexpect = { private = true, privatelink = true }").unwrap();
        suite("http = \"https://be.example/healthz\"\nexpect = { denied = true }").unwrap();
        suite("tcpping = \"[::1]:80\"\nexpect = { ok = true }").unwrap();
        let checks = suite("from = \"frontend\"\nhttp = \"https://be.example/api/items\"\nexpect = { status = 401, error_code = \"missing_token\" }").unwrap();
        assert_eq!(
            checks[0].expect.error_code.as_deref(),
            Some("missing_token")
        );
        suite("http = \"https://fe.example/api/path\"\nexpect = { status = 200, caller_in = \"10.0.1.0/24\", caller_auth = \"entra\" }").unwrap();
    }

    #[test]
    fn mistakes_are_named_with_their_check() {
        let cases = [
            ("expect = { ok = true }", "exactly one action"),
            (
                "resolve = \"a\"\nhttp = \"http://a\"\nexpect = { ok = true }",
                "exactly one action",
            ),
            (
                "from = \"nowhere\"\nresolve = \"a\"\nexpect = { ok = true }",
                "neither \"here\" nor an app",
            ),
            ("resolve = \"a\"\nexpect = {}", "states nothing"),
            (
                "resolve = \"a\"\nexpect = { status = 200 }",
                "does not apply to resolve",
            ),
            (
                "tcpping = \"a\"\nexpect = { ok = true }",
                "must be host:port",
            ),
            (
                "tcpping = \"a:0\"\nexpect = { ok = true }",
                "must be host:port",
            ),
            (
                "http = \"ftp://a\"\nexpect = { ok = true }",
                "http or https",
            ),
            (
                "http = \"http://a\"\nexpect = { denied = true, status = 200 }",
                "cannot be combined",
            ),
            (
                "from = \"frontend\"\nhttp = \"http://a\"\nexpect = { caller_in = \"10.0.0.0/8\" }",
                "run it from here",
            ),
            (
                "resolve = \"a\"\ntype = \"NS\"\nexpect = { ok = true }",
                "is not one of",
            ),
            (
                "instances = \"all\"\nresolve = \"a\"\nexpect = { ok = true }",
                "not from here",
            ),
            (
                "resolve = \"a\"\ntimeout_ms = 0\nexpect = { ok = true }",
                "timeout_ms",
            ),
            (
                "tcpping = \"a:1\"\ntimeout_ms = 20000\nexpect = { reachable = true }",
                "timeout_ms",
            ),
            (
                "tcpping = \"a:1\"\nexpect = { reachable = false }",
                "denied = true instead",
            ),
            (
                "http = \"http://a\"\nexpect = { ok = false }",
                "resolve only",
            ),
            (
                "http = \"http://a\"\nexpect = { error_code = \"Missing Token\" }",
                "snake_case",
            ),
            (
                "http = \"http://a\"\nexpect = { caller_auth = \"kerberos\" }",
                "entra, api-key or none",
            ),
            (
                "from = \"frontend\"\nhttp = \"http://a\"\nexpect = { caller_auth = \"entra\" }",
                "run it from here",
            ),
            (
                "http = \"http://a\"\nexpect = { denied = true, error_code = \"missing_token\" }",
                "cannot be combined",
            ),
            (
                "tcpping = \"a:1\"\nexpect = { error_code = \"x\" }",
                "does not apply to tcpping",
            ),
        ];
        for (check, want) in cases {
            let error = suite(check).unwrap_err().to_string();
            assert!(error.starts_with("check 1 (\"c\")"), "{error}");
            assert!(error.contains(want), "{check}: {error}");
        }
    }

    #[test]
    fn an_app_reached_via_another_is_checked_for_what_it_needs() {
        let suite = |apps: &str| {
            SmokeConfig::from_toml(&format!(
                "[apps.frontend]\nurl = \"https://fe.example\"\ntoken_env = \"T\"\n\n{apps}\n[[check]]\nname = \"c\"\nfrom = \"backend\"\nresolve = \"db.postgres.database.azure.com\"\nexpect = {{ ok = true }}\n"
            ))
            .unwrap()
            .checks()
        };
        let checks =
            suite("[apps.backend]\nurl = \"https://be.example\"\nvia = \"frontend\"\n").unwrap();
        assert_eq!(checks[0].from.as_deref(), Some("backend"));
        for (apps, want) in [
            (
                "[apps.backend]\nurl = \"https://be.example\"\nvia = \"gateway\"\n",
                "not an app of the suite",
            ),
            (
                "[apps.backend]\nurl = \"https://be.example\"\nvia = \"backend\"\n",
                "not through itself",
            ),
            (
                "[apps.backend]\nurl = \"https://be.example\"\nvia = \"frontend\"\ntoken_env = \"B\"\n",
                "drop token_env",
            ),
            (
                "[apps.backend]\nurl = \"https://be.example\"\n",
                "token_env must name",
            ),
            (
                "[apps.backend]\nurl = \"https://be.example\"\nvia = \"db\"\n[apps.db]\nurl = \"https://db.example\"\nvia = \"frontend\"\n",
                "or a chain",
            ),
        ] {
            let error = suite(apps).unwrap_err().to_string();
            assert!(error.contains(want), "{apps}: {error}");
        }
    }

    #[test]
    fn request_headers_go_with_http_from_here() {
        let checks = suite("http = \"https://fe.example/\"\nheaders = { \"X-Azure-FDID\" = \"0bad\" }\nhint = \" Add the header filter. \"\nexpect = { denied = true }").unwrap();
        assert_eq!(
            checks[0].headers,
            [("X-Azure-FDID".to_owned(), "0bad".to_owned())]
        );
        assert_eq!(checks[0].hint.as_deref(), Some("Add the header filter."));
        for (check, want) in [
            (
                "from = \"frontend\"\nhttp = \"https://a/\"\nheaders = { a = \"b\" }\nexpect = { status = 200 }",
                "checks from here",
            ),
            (
                "tcpping = \"a:1\"\nheaders = { a = \"b\" }\nexpect = { reachable = true }",
                "go with http",
            ),
            (
                "http = \"https://a/\"\nheaders = { Host = \"b\" }\nexpect = { status = 200 }",
                "reserved",
            ),
            (
                "http = \"https://a/\"\nheaders = { Authorization = \"Bearer x\" }\nexpect = { status = 200 }",
                "reserved",
            ),
            (
                "http = \"https://a/\"\nhint = \" \"\nexpect = { status = 200 }",
                "hint must be",
            ),
            (
                "http = \"https://a/\"\nexpect = { header = \"x-cache\" }",
                "not a header the check records",
            ),
            (
                "http = \"https://a/\"\nexpect = { denied = true, header = \"x-azure-ref\" }",
                "cannot be combined",
            ),
            (
                "resolve = \"a\"\nexpect = { header = \"x-azure-ref\" }",
                "does not apply to resolve",
            ),
        ] {
            let error = suite(check).unwrap_err().to_string();
            assert!(error.contains(want), "{check}: {error}");
        }
    }

    #[test]
    fn a_slot_points_the_target_at_the_slots_site() {
        let checks = suite("from = \"frontend\"\nslot = \"staging\"\nhttp = \"https://app-be.azurewebsites.net:8443/healthz\"\nexpect = { status = 200 }").unwrap();
        assert_eq!(
            checks[0].action.target(),
            "https://app-be-staging.azurewebsites.net:8443/healthz"
        );
        assert_eq!(checks[0].slot.as_deref(), Some("staging"));
        let checks = suite("slot = \"staging\"\nresolve = \"app-be.scm.azurewebsites.net\"\nexpect = { ok = true }").unwrap();
        assert_eq!(
            checks[0].action.target(),
            "app-be-staging.scm.azurewebsites.net A"
        );
        let checks = suite("slot = \"blue\"\ntcpping = \"app-be.azurewebsites.net:443\"\nexpect = { reachable = true }").unwrap();
        assert_eq!(
            checks[0].action.target(),
            "app-be-blue.azurewebsites.net:443"
        );
        for (check, want) in [
            (
                "slot = \"Staging\"\nresolve = \"app.example\"\nexpect = { ok = true }",
                "must be a slot name",
            ),
            (
                "slot = \"-x\"\nresolve = \"app.example\"\nexpect = { ok = true }",
                "must be a slot name",
            ),
            (
                "slot = \"s\"\ntcpping = \"10.0.0.1:80\"\nexpect = { reachable = true }",
                "not the address",
            ),
            (
                "slot = \"s\"\nresolve = \"localhost\"\nexpect = { ok = true }",
                "an app's host name",
            ),
        ] {
            let error = suite(check).unwrap_err().to_string();
            assert!(error.contains(want), "{check}: {error}");
        }
    }

    #[test]
    fn app_tokens_never_travel_in_clear_off_loopback() {
        let app = |url: &str| {
            format!(
                "[apps.fe]\nurl = \"{url}\"\ntoken_env = \"T\"\n\n[[check]]\nname = \"c\"\nfrom = \"fe\"\nresolve = \"a\"\nexpect = {{ ok = true }}\n"
            )
        };
        let error = SmokeConfig::from_toml(&app("http://fe.example"))
            .unwrap()
            .checks()
            .unwrap_err();
        assert!(error.to_string().contains("must be https"), "{error}");
        for ok in [
            "https://fe.example",
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:2",
        ] {
            SmokeConfig::from_toml(&app(ok))
                .unwrap()
                .checks()
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = suite("resolve = \"a\"\nexpect = { privat = true }")
            .unwrap_err()
            .to_string();
        assert!(error.contains("privat"), "{error}");
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("a.b:443"), Some(("a.b".into(), 443)));
        assert_eq!(
            split_host_port("10.0.0.1:80"),
            Some(("10.0.0.1".into(), 80))
        );
        assert_eq!(
            split_host_port("[fd00::1]:443"),
            Some(("fd00::1".into(), 443))
        );
        assert_eq!(split_host_port("fd00::1"), None);
        assert_eq!(split_host_port("a.b"), None);
        assert_eq!(parse_dns_server("127.0.0.1").unwrap().port(), 53);
        assert!(parse_dns_server("dns.example").is_err());
    }
}
