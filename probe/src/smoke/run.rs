//! Running a suite: every check (and every instance of a fanned-out check) concurrently, each
//! action either here — with the same functions as `/diag` — or inside an app through its
//! `/diag` over HTTP(S); under `--wait`, failing checks are retried with backoff until a deadline.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use url::Url;

use crate::smoke::config::{Action, Check, ConfigError, Instances, SmokeConfig, parse_dns_server};
use crate::smoke::evaluate::{Evaluation, Outcome, evaluate};
use crate::smoke::facts::Facts;
use crate::smoke::report::{CheckResult, RanFrom, SuiteReport, Verdict};
use diag::api::INSTANCE_HEADER;
use diag::appservice::{ResponseHead, classify};
use diag::diagnosis::Code;
use diag::dns::{DnsArgs, DnsResolver, QueryType, round_ms};
use diag::httpcheck::{HttpCheckRequest, http_check, tls_client_config};
use diag::tcpping::{TcpPingRequest, tcp_ping};
use diag::tlscheck::{TlsCheckRequest, tls_check};

/// How to run a suite.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Retry failing checks until this much time has passed.
    pub wait: Option<Duration>,
    /// Show retry progress on stderr (only when it is a terminal).
    pub progress: bool,
    /// Tokens by variable name, consulted before the environment (the lab passes its own).
    pub tokens: HashMap<String, String>,
    /// How many actions run at once.
    pub concurrency: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            wait: None,
            progress: false,
            tokens: HashMap::new(),
            concurrency: 16,
        }
    }
}

/// The first retry delay under `--wait`; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest pause between retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15);

/// One check's last run.
#[derive(Clone)]
struct Ran {
    evaluation: Evaluation,
    facts: Facts,
    answered_by: Option<String>,
    duration_ms: f64,
}

/// One check on one instance.
struct Unit {
    check: Arc<Check>,
    instance: Option<String>,
}

struct Context {
    here_servers: Vec<std::net::SocketAddr>,
    here_source: Option<IpAddr>,
    apps: HashMap<String, AppClient>,
    tls: Arc<rustls::ClientConfig>,
    /// The `tls` checks' verifier: the platform's roots plus `[here] ca_file`.
    tls_verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    http: reqwest::Client,
}

#[derive(Clone)]
struct AppClient {
    /// Where the calls go: the app's URL, or the URL of the app it is reached through.
    url: Url,
    token: String,
    instances: Option<Vec<String>>,
    /// The app this one is reached through (`via`): calls go to its `/diag/backend/…`.
    via: Option<String>,
    /// Calls in flight to this app: below `/diag`'s own bound (8 by default) so a suite never
    /// trips it.
    in_flight: Arc<Semaphore>,
    /// The same bound per pinned instance: `/diag` bounds each instance on its own, so calls
    /// pinned to different instances need not queue behind each other.
    per_instance: Arc<std::sync::Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl AppClient {
    /// The bound a call takes: its instance's when pinned, else the app's.
    fn slots(&self, instance: Option<&str>) -> Arc<Semaphore> {
        match instance {
            None => self.in_flight.clone(),
            Some(id) => self
                .per_instance
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(id.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(PER_APP_CONCURRENCY)))
                .clone(),
        }
    }
}

/// How long one call keeps waiting, as told by `Retry-After`, while the app's `/diag` answers
/// 429 or 503 (its rate and concurrency bounds): long enough for a suite of hundreds of checks
/// per instance to be paced through at the default rate, bounded so a stuck app still ends.
pub const BUSY_WAIT_LIMIT: Duration = Duration::from_secs(120);

/// Calls in flight to one app's `/diag` at once.
pub const PER_APP_CONCURRENCY: usize = 4;

/// Runs the suite. Configuration mistakes (including a missing token variable) come back as
/// errors before anything is sent.
pub async fn run(config: &SmokeConfig, options: &RunOptions) -> Result<SuiteReport, ConfigError> {
    let started = Instant::now();
    let started_at = std::time::SystemTime::now();
    let checks = config.checks()?;
    let ctx = Arc::new(context(config, &checks, options)?);
    let mut units = Vec::new();
    let mut discovered: HashMap<String, Vec<Option<String>>> = HashMap::new();
    for check in checks {
        let check = Arc::new(check);
        let instances = match (&check.from, &check.instances) {
            (Some(app), Some(Instances::List(ids))) => {
                let _ = app;
                ids.iter().cloned().map(Some).collect()
            }
            (Some(app), Some(Instances::Keyword(_))) => {
                if !discovered.contains_key(app) {
                    let found = discover_instances(&ctx, app).await;
                    discovered.insert(app.clone(), found);
                }
                discovered[app].clone()
            }
            _ => vec![None],
        };
        for instance in instances {
            units.push(Unit {
                check: check.clone(),
                instance,
            });
        }
    }

    let limit = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut results: Vec<Option<Ran>> = vec![None; units.len()];
    let mut attempts = vec![0u32; units.len()];
    let deadline = options.wait.map(|w| started + w);
    let mut backoff = FIRST_BACKOFF;
    let mut pending: Vec<usize> = (0..units.len()).collect();
    let mut round = 0u32;
    loop {
        round += 1;
        let mut tasks = Vec::new();
        for &i in &pending {
            let unit = Unit {
                check: units[i].check.clone(),
                instance: units[i].instance.clone(),
            };
            let ctx = ctx.clone();
            let limit = limit.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = limit
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let began = Instant::now();
                let answer = perform(&ctx, &unit).await;
                let evaluation = evaluate(&unit.check.action, &unit.check.expect, &answer.outcome);
                Ran {
                    evaluation,
                    facts: Facts::of(&answer.outcome),
                    answered_by: answer.answered_by,
                    duration_ms: round_ms(began.elapsed()),
                }
            }));
        }
        for (&i, task) in pending.iter().zip(tasks) {
            let done = task.await.unwrap_or_else(|e| Ran {
                evaluation: Evaluation {
                    passed: false,
                    code: Some("internal".into()),
                    diagnosis: Some(format!("the check crashed: {e}")),
                    evidence: Vec::new(),
                },
                facts: Facts::default(),
                answered_by: None,
                duration_ms: 0.0,
            });
            attempts[i] += 1;
            results[i] = Some(done);
        }
        pending.retain(|&i| results[i].as_ref().is_some_and(|r| !r.evaluation.passed));
        let Some(deadline) = deadline else { break };
        let now = Instant::now();
        if pending.is_empty() || now + backoff > deadline {
            if options.progress && round > 1 && std::io::stderr().is_terminal() {
                eprintln!();
            }
            break;
        }
        if options.progress {
            let names: Vec<&str> = pending
                .iter()
                .map(|&i| units[i].check.name.as_str())
                .collect();
            let line = progress_line(
                round,
                &names,
                units.len(),
                backoff,
                deadline.saturating_duration_since(now),
            );
            if std::io::stderr().is_terminal() {
                // One status line, redrawn: the terminal shows what is still failing now.
                eprint!("\r\x1b[K{line}");
            } else {
                eprintln!("{line}");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }

    let results = units
        .iter()
        .zip(results)
        .zip(attempts)
        .map(|((unit, result), attempts)| {
            let Ran {
                evaluation,
                facts,
                answered_by,
                duration_ms,
            } = result.expect("every unit ran at least once");
            CheckResult {
                name: unit.check.name.clone(),
                from: unit.check.from.clone().unwrap_or_else(|| "here".into()),
                via: unit
                    .check
                    .from
                    .as_ref()
                    .and_then(|app| ctx.apps.get(app))
                    .and_then(|client| client.via.clone()),
                instance: unit.instance.clone(),
                answered_by,
                action: unit.check.action.kind().to_owned(),
                target: unit.check.action.target(),
                verdict: if evaluation.passed {
                    Verdict::Pass
                } else {
                    Verdict::Fail
                },
                code: evaluation.code,
                // The suite's own next step comes last: it knows what this check guards.
                diagnosis: match (evaluation.diagnosis, &unit.check.hint) {
                    (Some(diagnosis), Some(hint)) => Some(format!("{diagnosis} {hint}")),
                    (diagnosis, _) => diagnosis,
                },
                evidence: evaluation.evidence,
                facts,
                attempts,
                duration_ms,
            }
        })
        .collect();
    let mut report = SuiteReport::new(results, round_ms(started.elapsed()));
    report.started_at = humantime::format_rfc3339_millis(started_at).to_string();
    report.finished_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    report.suite_digest = config.digest.clone();
    report.ran_from = RanFrom {
        host: host_name(),
        source_addr: config.here.source_addr,
        dns_servers: config.here.dns_servers.clone(),
    };
    report.apps = ctx
        .apps
        .keys()
        .map(|name| (name.clone(), config.apps[name].url.to_string()))
        .collect();
    Ok(report)
}

/// One progress line under `--wait`: the round, what still fails, the next retry, the time left.
fn progress_line(
    round: u32,
    failing: &[&str],
    total: usize,
    retry_in: Duration,
    left: Duration,
) -> String {
    let mut names = failing.to_vec();
    names.dedup();
    format!(
        "waiting: round {round}, {}/{total} failing ({}); retry in {:.1} s, {:.0} s left",
        failing.len(),
        names.join("; "),
        retry_in.as_secs_f64(),
        left.as_secs_f64()
    )
}

/// This machine's name, for `ran_from.host` (Linux's kernel value, else `HOSTNAME`).
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// What an app's `/diag/env` answered during a run, for the evidence bundle.
#[derive(Debug, Clone)]
pub struct EnvSnapshot {
    /// The app's name in the suite.
    pub app: String,
    /// The instance asked for (`ARRAffinity`), when the app's checks were fanned out.
    pub instance: Option<String>,
    /// The body as JSON, or why there is none.
    pub body: Result<serde_json::Value, String>,
}

/// Fetches `/diag/env` of every app the report ran checks from, once per instance it saw (the
/// network facts differ from instance to instance: `WEBSITE_PRIVATE_IP`, the source address).
pub async fn fetch_envs(
    config: &SmokeConfig,
    options: &RunOptions,
    report: &SuiteReport,
) -> Result<Vec<EnvSnapshot>, ConfigError> {
    let checks = config.checks()?;
    let ctx = context(config, &checks, options)?;
    let mut wanted: Vec<(String, Option<String>)> = Vec::new();
    for result in &report.results {
        if !ctx.apps.contains_key(&result.from) {
            continue;
        }
        let pair = (result.from.clone(), result.instance.clone());
        if !wanted.contains(&pair) {
            wanted.push(pair);
        }
    }
    // An unpinned check landed on one of the instances already asked for by name.
    let pinned: Vec<String> = wanted
        .iter()
        .filter(|(_, instance)| instance.is_some())
        .map(|(app, _)| app.clone())
        .collect();
    wanted.retain(|(app, instance)| instance.is_some() || !pinned.contains(app));
    let mut snapshots = Vec::new();
    for (app, instance) in wanted {
        let client = &ctx.apps[&app];
        let url = client
            .url
            .join("/diag/env")
            .expect("a base URL joins a path");
        let mut request = ctx
            .http
            .get(url)
            .bearer_auth(&client.token)
            .timeout(Duration::from_secs(10));
        if let Some(instance) = &instance {
            request = request.header(reqwest::header::COOKIE, format!("ARRAffinity={instance}"));
        }
        let body = match request.send().await {
            Ok(response) if response.status().is_success() => response
                .json::<serde_json::Value>()
                .await
                .map_err(|e| format!("the /diag/env answer did not parse: {e}")),
            Ok(response) => Err(format!("/diag/env answered {}", response.status())),
            Err(e) => Err(format!("could not call /diag/env: {}", root_cause(&e))),
        };
        snapshots.push(EnvSnapshot {
            app,
            instance,
            body,
        });
    }
    Ok(snapshots)
}

fn context(
    config: &SmokeConfig,
    checks: &[Check],
    options: &RunOptions,
) -> Result<Context, ConfigError> {
    let here_servers = config
        .here
        .dns_servers
        .iter()
        .map(|s| parse_dns_server(s).map_err(ConfigError::Invalid))
        .collect::<Result<Vec<_>, _>>()?;
    let mut apps: HashMap<String, AppClient> = HashMap::new();
    // An app reached via another shares that app's client: its token, URL and in-flight bound
    // (both land on the same /diag guard).
    let mut needed: Vec<&String> = Vec::new();
    for name in checks.iter().filter_map(|c| c.from.as_ref()) {
        if let Some(via) = &config.apps[name].via {
            needed.push(via);
        }
        needed.push(name);
    }
    for name in needed {
        if apps.contains_key(name) {
            continue;
        }
        let app = &config.apps[name];
        if let Some(via) = &app.via {
            let through = apps[via].clone();
            apps.insert(
                name.clone(),
                AppClient {
                    instances: app.instances.clone(),
                    via: Some(via.clone()),
                    ..through
                },
            );
            continue;
        }
        let token = options
            .tokens
            .get(&app.token_env)
            .cloned()
            .or_else(|| std::env::var(&app.token_env).ok())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "apps.{name}: set the environment variable {} to the app's DIAG_TOKEN (checks run from {name} need it)",
                    app.token_env
                ))
            })?;
        apps.insert(
            name.clone(),
            AppClient {
                url: app.url.clone(),
                token,
                instances: app.instances.clone(),
                via: None,
                in_flight: Arc::new(Semaphore::new(PER_APP_CONCURRENCY)),
                per_instance: Arc::default(),
            },
        );
    }
    let tls =
        tls_client_config().map_err(|e| ConfigError::Invalid(format!("TLS set-up failed: {e}")))?;
    let extra_roots = match &config.here.ca_file {
        Some(path) => {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let invalid =
                |e: String| ConfigError::Invalid(format!("here.ca_file {}: {e}", path.display()));
            CertificateDer::pem_file_iter(path)
                .map_err(|e| invalid(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(e.to_string()))?
        }
        None => Vec::new(),
    };
    let tls_verifier = diag::tlscheck::tls_verifier(extra_roots)
        .map_err(|e| ConfigError::Invalid(format!("TLS set-up failed: {e}")))?;
    let resolver = here_resolver(&here_servers, Duration::from_secs(5))
        .map_err(|e| ConfigError::Invalid(format!("DNS set-up failed: {e}")))?;
    let http = diag::outbound::http_client_builder(resolver, config.here.source_addr)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ConfigError::Invalid(format!("HTTP client set-up failed: {e}")))?;
    Ok(Context {
        here_servers,
        here_source: config.here.source_addr,
        apps,
        tls,
        tls_verifier,
        http,
    })
}

fn here_resolver(
    servers: &[std::net::SocketAddr],
    timeout: Duration,
) -> Result<DnsResolver, diag::dns::DnsConfigError> {
    if servers.is_empty() {
        DnsResolver::from_args(&DnsArgs {
            dns_timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            ..DnsArgs::default()
        })
    } else {
        DnsResolver::with_servers(servers.to_vec(), timeout)
    }
}

/// The app's instances, from its `ARRAffinity` cookies: requests without a cookie are spread
/// over the instances, and each answer names the one it pinned.
async fn discover_instances(ctx: &Context, app: &str) -> Vec<Option<String>> {
    let client = &ctx.apps[app];
    if let Some(ids) = &client.instances {
        return ids.iter().cloned().map(Some).collect();
    }
    if client.via.is_some() {
        return discover_via(ctx, client).await;
    }
    let url = client
        .url
        .join("/healthz")
        .expect("a base URL joins a path");
    let mut found: Vec<String> = Vec::new();
    let mut quiet = 0;
    for _ in 0..16 {
        let Ok(response) = ctx
            .http
            .get(url.clone())
            .timeout(Duration::from_secs(5))
            .send()
            .await
        else {
            break;
        };
        let new = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| {
                c.split(';')
                    .next()?
                    .trim()
                    .strip_prefix("ARRAffinity=")
                    .map(str::to_owned)
            })
            .filter(|id| !found.contains(id))
            .collect::<Vec<_>>();
        if new.is_empty() {
            quiet += 1;
            if quiet >= 4 {
                break;
            }
        } else {
            quiet = 0;
            found.extend(new);
        }
    }
    if found.is_empty() {
        vec![None]
    } else {
        // Sorted: the round robin starts anywhere, and reports must compare from run to run.
        found.sort();
        found.into_iter().map(Some).collect()
    }
}

/// The instances of an app reached through another: the back-end instances that answer the
/// forwarded `/diag/backend/env` (the front end's calls carry no affinity cookie, so the platform
/// spreads them), until a few calls in a row bring nothing new.
async fn discover_via(ctx: &Context, client: &AppClient) -> Vec<Option<String>> {
    let url = client
        .url
        .join("/diag/backend/env")
        .expect("a base URL joins a path");
    let mut found: Vec<String> = Vec::new();
    let mut quiet = 0;
    for _ in 0..12 {
        let Ok(response) = ctx
            .http
            .get(url.clone())
            .bearer_auth(&client.token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        else {
            break;
        };
        let id = response
            .headers()
            .get(diag::forward::BACKEND_INSTANCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match id {
            Some(id) if !found.contains(&id) => {
                quiet = 0;
                found.push(id);
            }
            Some(_) => {
                quiet += 1;
                if quiet >= 3 {
                    break;
                }
            }
            // Not forwarding, or failing: the checks themselves will say why.
            None => break,
        }
    }
    if found.is_empty() {
        vec![None]
    } else {
        found.sort();
        found.into_iter().map(Some).collect()
    }
}

/// What one check on one instance gave.
struct Answer {
    outcome: Outcome,
    /// The instance that answered, when the app said so (its `/diag` sends
    /// [`INSTANCE_HEADER`]).
    answered_by: Option<String>,
}

async fn perform(ctx: &Context, unit: &Unit) -> Answer {
    match &unit.check.from {
        None => Answer {
            outcome: perform_here(ctx, &unit.check).await,
            answered_by: None,
        },
        Some(app) => perform_remote(ctx, app, unit).await,
    }
}

fn not_run(code: Code, message: impl Into<String>) -> Outcome {
    Outcome::NotRun {
        code,
        message: message.into(),
    }
}

async fn perform_here(ctx: &Context, check: &Check) -> Outcome {
    let timeout = Duration::from_millis(check.timeout_ms);
    let servers = match &check.action {
        Action::Resolve {
            server: Some(server),
            ..
        } => match parse_dns_server(server) {
            Ok(addr) => vec![addr],
            Err(e) => return not_run(Code::Config, e),
        },
        _ => ctx.here_servers.clone(),
    };
    let resolver = match here_resolver(&servers, timeout) {
        Ok(resolver) => resolver,
        Err(e) => return not_run(Code::Config, format!("DNS set-up failed: {e}")),
    };
    match &check.action {
        Action::Resolve {
            host, record_type, ..
        } => {
            let query: QueryType = record_type.parse().unwrap_or(QueryType::A);
            Outcome::Resolve(resolver.resolve(host, query).await)
        }
        Action::TcpPing { host, port } => {
            let timeout_ms = check.timeout_ms.min(10_000).to_string();
            match TcpPingRequest::parse(
                host,
                Some(&port.to_string()),
                Some("1"),
                Some(&timeout_ms),
                Some("0"),
            ) {
                Ok(request) => {
                    Outcome::TcpPing(tcp_ping(&resolver, &request, ctx.here_source, None).await)
                }
                Err(e) => not_run(Code::Config, e.to_string()),
            }
        }
        Action::Http { url } => {
            let timeout_ms = check.timeout_ms.min(10_000).to_string();
            let request =
                match HttpCheckRequest::parse(url.as_str(), Some(&timeout_ms)).and_then(|r| {
                    r.with_headers(check.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))
                }) {
                    Ok(request) => request,
                    Err(e) => return not_run(Code::Config, e.to_string()),
                };
            let report = http_check(&resolver, &ctx.tls, &request, ctx.here_source, None).await;
            let needs_body = check.expect.caller_in.is_some() || check.expect.caller_auth.is_some();
            let body = if needs_body && report.status.is_some() {
                read_json_body(ctx, url, &check.headers, timeout).await
            } else {
                None
            };
            Outcome::Http {
                report: Box::new(report),
                body,
            }
        }
        // Refused by the suite's validation: /diag/env is an app's.
        Action::Env => not_run(Code::Config, "env runs from an app only"),
        Action::Tls { .. } => {
            let params = tls_params(&check.action, check.timeout_ms);
            let get = |key: &str| {
                params
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.as_str())
            };
            let request = match TlsCheckRequest::parse(
                get("host").unwrap_or_default(),
                get("port"),
                get("sni"),
                get("protocol"),
                get("timeout_ms"),
            ) {
                Ok(request) => request,
                Err(e) => return not_run(Code::Config, e.to_string()),
            };
            Outcome::Tls(Box::new(
                tls_check(
                    &resolver,
                    &ctx.tls_verifier,
                    &request,
                    ctx.here_source,
                    None,
                )
                .await,
            ))
        }
    }
}

/// The `/diag/tls` parameters of a `tls` action, the same from here and from an app.
fn tls_params(action: &Action, timeout_ms: u64) -> Vec<(&'static str, String)> {
    let Action::Tls {
        host,
        port,
        sni,
        protocol,
    } = action
    else {
        return Vec::new();
    };
    let mut q = vec![("host", host.clone())];
    if let Some(port) = port {
        q.push(("port", port.to_string()));
    }
    if let Some(sni) = sni {
        q.push(("sni", sni.clone()));
    }
    if let Some(protocol) = protocol {
        q.push(("protocol", protocol.clone()));
    }
    q.push(("timeout_ms", timeout_ms.min(10_000).to_string()));
    q
}

async fn read_json_body(
    ctx: &Context,
    url: &Url,
    headers: &[(String, String)],
    timeout: Duration,
) -> Option<serde_json::Value> {
    let mut request = ctx.http.get(url.clone()).timeout(timeout);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let mut response = request.send().await.ok()?;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY_BYTES {
            return None;
        }
    }
    serde_json::from_slice(&body).ok()
}

/// The largest JSON body `caller_in` / `caller_auth` read (a path report is a few KiB).
const MAX_BODY_BYTES: usize = 256 * 1024;

async fn perform_remote(ctx: &Context, app: &str, unit: &Unit) -> Answer {
    let client = &ctx.apps[app];
    let slots = client.slots(unit.instance.as_deref());
    let _slot = slots
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let check = &unit.check;
    let (path, query): (&str, Vec<(&str, String)>) = match &check.action {
        Action::Resolve {
            host,
            record_type,
            server,
        } => {
            let mut q = vec![("host", host.clone()), ("type", record_type.clone())];
            if let Some(server) = server {
                q.push(("server", server.clone()));
            }
            ("resolve", q)
        }
        Action::TcpPing { host, port } => (
            "tcpping",
            vec![
                ("host", host.clone()),
                ("port", port.to_string()),
                ("count", "1".into()),
                ("timeout_ms", check.timeout_ms.min(10_000).to_string()),
                ("interval_ms", "0".into()),
            ],
        ),
        Action::Http { url } => (
            "http",
            vec![
                ("url", url.to_string()),
                ("timeout_ms", check.timeout_ms.min(10_000).to_string()),
            ],
        ),
        Action::Tls { .. } => ("tls", tls_params(&check.action, check.timeout_ms)),
        Action::Env => ("env", Vec::new()),
    };
    let path = match &client.via {
        Some(_) => format!("/diag/backend/{path}"),
        None => format!("/diag/{path}"),
    };
    let mut url = client.url.join(&path).expect("a base URL joins a path");
    url.query_pairs_mut().extend_pairs(&query);
    if let (Some(_), Some(instance)) = (&client.via, &unit.instance) {
        url.query_pairs_mut()
            .append_pair(diag::forward::BACKEND_INSTANCE_PARAM, instance);
    }
    let mut request = ctx
        .http
        .get(url)
        .bearer_auth(&client.token)
        .timeout(Duration::from_millis(check.timeout_ms) + Duration::from_secs(10));
    if let (None, Some(instance)) = (&client.via, &unit.instance) {
        request = request.header(reqwest::header::COOKIE, format!("ARRAffinity={instance}"));
    }
    let mut retry = request.try_clone();
    let mut response = request.send().await;
    // The app's /diag bounds concurrency (503 diag_busy) and rate (429): its own answers (they
    // carry the instance header) are waited out as told, within BUSY_WAIT_LIMIT, so a large
    // suite is paced instead of losing results; anything else answering 503 or 429 in front of
    // it (the platform) gets one more try.
    let mut waited = Duration::ZERO;
    while let Ok(busy) = &response {
        if !matches!(
            busy.status(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            break;
        }
        let own_bound = busy.headers().contains_key(INSTANCE_HEADER);
        let may_wait = waited.is_zero() || (own_bound && waited < BUSY_WAIT_LIMIT);
        if !may_wait {
            break;
        }
        let Some(again) = retry.take() else { break };
        let wait = busy
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1)
            .clamp(1, 5);
        let wait = Duration::from_secs(wait);
        tokio::time::sleep(wait).await;
        waited += wait;
        retry = again.try_clone();
        response = again.send().await;
    }
    let response = match response {
        Ok(response) => response,
        Err(e) => {
            return Answer {
                outcome: not_run(
                    Code::DiagUnreachable,
                    format!(
                        "could not call {app}'s /diag at {}: {}. Check the app's URL and that it is running.",
                        client.url,
                        root_cause(&e)
                    ),
                ),
                answered_by: None,
            };
        }
    };
    let instance_header = match &client.via {
        Some(_) => diag::forward::BACKEND_INSTANCE_HEADER,
        None => INSTANCE_HEADER,
    };
    let answered_by = response
        .headers()
        .get(instance_header)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = response.status();
    let headers = response.headers().clone();
    let reason = diag::appservice::reason_phrase(response.extensions()).map(str::to_owned);
    let body = response.bytes().await.unwrap_or_default();
    let head = ResponseHead {
        status: status.as_u16(),
        reason: reason.as_deref(),
        headers: &headers,
    };
    let outcome = match (&unit.instance, &answered_by) {
        (Some(pinned), Some(answered)) if pinned != answered => not_run(
            Code::InstanceNotPinned,
            format!(
                "asked {app} for instance {pinned} (ARRAffinity cookie) but instance {answered} answered, so this result is not about {pinned}. \
                 Either {pinned} is gone (instances change with scaling, restarts and platform moves: use instances = \"all\" to find the current ones) \
                 or App Service does not pin this app's callers (clientAffinityEnabled is off)."
            ),
        ),
        _ => diag_outcome(app, client.via.as_deref(), &check.action, &head, &body),
    };
    Answer {
        outcome,
        answered_by,
    }
}

/// What an app's `/diag` answer says: the report, or why there is none.
fn diag_outcome(
    app: &str,
    via: Option<&str>,
    action: &Action,
    head: &ResponseHead<'_>,
    body: &[u8],
) -> Outcome {
    let status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    if let Some(via) = via {
        // The app that forwards answers for the way to the back end: its own refusals, then
        // the diagnosis of why the back end's /diag could not be reached.
        let code = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        match (status, code.as_deref()) {
            (StatusCode::NOT_FOUND, Some("backend_diag_not_configured")) => {
                return not_run(
                    Code::DiagUnavailable,
                    format!(
                        "{via} does not forward diagnostics to {app}: set BACKEND_DIAG_TOKEN on {via} to {app}'s DIAG_TOKEN."
                    ),
                );
            }
            (StatusCode::BAD_GATEWAY, Some(code)) => {
                let code = Code::parse(code).unwrap_or(Code::DiagError);
                return not_run(
                    code,
                    format!(
                        "{via} could not run this in {app}: {message} {}",
                        code.next_step()
                    ),
                );
            }
            _ => {}
        }
        let app = format!("{via} (forwarding to {app})");
        return diag_outcome(&app, None, action, head, body);
    }
    // App Service (or a gateway) answering for the app comes first: its 503 is not /diag's.
    if let Some(answer) = classify(head, body) {
        return not_run(
            answer.code,
            format!(
                "{app} itself cannot be reached from here: {}. {}",
                answer.message(),
                answer.code.next_step()
            ),
        );
    }
    match status {
        StatusCode::OK => match action {
            Action::Resolve { .. } => {
                decode(body).map_or_else(|e| not_run(Code::DiagError, e), Outcome::Resolve)
            }
            Action::TcpPing { .. } => {
                decode(body).map_or_else(|e| not_run(Code::DiagError, e), Outcome::TcpPing)
            }
            Action::Http { .. } => decode(body).map_or_else(
                |e| not_run(Code::DiagError, e),
                |report| Outcome::Http {
                    report: Box::new(report),
                    body: None,
                },
            ),
            Action::Tls { .. } => decode(body).map_or_else(
                |e| not_run(Code::DiagError, e),
                |report| Outcome::Tls(Box::new(report)),
            ),
            Action::Env => decode::<serde_json::Value>(body).map_or_else(
                |e| not_run(Code::DiagError, e),
                |env| Outcome::Env {
                    // An app older than this key reports none.
                    keyvault_references: env["facts"]["keyvault_references"]
                        .as_array()
                        .map(|names| {
                            names
                                .iter()
                                .filter_map(|n| n.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                },
            ),
        },
        StatusCode::NOT_FOUND => not_run(
            Code::DiagUnavailable,
            format!(
                "{app} answers 404 on /diag: set DIAG_TOKEN on the app to turn /diag on (and check that the app runs lockdown)."
            ),
        ),
        StatusCode::UNAUTHORIZED => not_run(
            Code::DiagUnauthorized,
            format!(
                "{app} refused the token: the token variable does not hold {app}'s DIAG_TOKEN."
            ),
        ),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => not_run(
            Code::DiagRateLimited,
            format!(
                "{app}'s /diag is busy or rate-limited even after waiting: run fewer checks from it at once."
            ),
        ),
        _ => {
            let code = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
            match code.as_deref() {
                Some("target_denied") => not_run(
                    Code::DiagTargetDenied,
                    format!(
                        "{app}'s /diag refused the target: add it to {app}'s DIAG_ALLOW to run this check."
                    ),
                ),
                Some(other) => not_run(
                    Code::DiagError,
                    format!("{app}'s /diag answered {status} {other}."),
                ),
                None => not_run(Code::DiagError, format!("{app}'s /diag answered {status}.")),
            }
        }
    }
}

/// What went wrong under a client error: reqwest's own text only names the URL ("error sending
/// request for url …"); the innermost source says refused, reset, certificate, name not found….
fn root_cause(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time".into();
    }
    diag::failure::root_cause(error)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("the /diag answer did not parse: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_names_the_round_what_fails_and_the_time_left() {
        let line = progress_line(
            3,
            &["reach", "reach", "denied"],
            7,
            Duration::from_secs(2),
            Duration::from_secs(95),
        );
        assert_eq!(
            line,
            "waiting: round 3, 3/7 failing (reach; denied); retry in 2.0 s, 95 s left"
        );
    }
}
