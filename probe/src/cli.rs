//! The `probe` command line: `serve` (the `/diag` + `/healthz` server), and `resolve`,
//! `tcpping` and `tls` for the operator's own shell — the same functions and input validation as the
//! endpoints, without token or target policy. Exit codes: 0 passed, 1 failed, 2 usage or config
//! error. Add a subcommand by adding a variant to [`Command`] and an arm to [`run`].

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hosting::HostArgs;

use diag::api::{DiagArgs, DiagSettings, DiagState, router};
use diag::dns::{DnsArgs, DnsResolver, ResolveRequest};
use diag::envfacts::EnvFacts;
use diag::outbound::OutboundArgs;
use diag::target::{InputError, parse_ip_port, parse_port, split_host_port};
use diag::tcpping::{TcpPingRequest, tcp_ping};
use diag::tlscheck::{TlsCheckRequest, tls_check, tls_verifier};

/// Exit code: everything passed (resolved, connected).
pub const EXIT_OK: u8 = 0;
/// Exit code: the check ran and failed (NXDOMAIN, an attempt that did not connect, …).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;

/// lockdown's probe: see what the network looks like from inside an App Service app.
#[derive(Debug, Parser)]
#[command(name = "probe", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve /diag and /healthz (enable /diag with DIAG_TOKEN).
    Serve(ServeArgs),
    /// Look a name up like Kudu's nameresolver (--format human adds address classes).
    Resolve(ResolveArgs),
    /// Open TCP connections like Kudu's tcpping.
    Tcpping(TcppingArgs),
    /// Prove what answers on a port: a TLS handshake (or PostgreSQL's SSLRequest, then TLS).
    Tls(TlsArgs),
    /// Run a smoke suite (expectations as code) and report a verdict per check.
    Smoke(SmokeArgs),
}

/// Report formats of `probe smoke` (and the lab).
pub use crate::smoke::report::ReportFormat as SmokeFormat;

/// Output formats of `probe resolve` and `probe tcpping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Kudu's text (CRLF line ends), which Microsoft's Diagnostics portal reads: the same as
    /// /diag's format=text.
    Text,
    /// More for a person at a shell: address classes, the address tried, the source address,
    /// this system's error text, the verdict. Not for parsers.
    Human,
    /// The /diag body as JSON.
    Json,
}

/// The format asked for: `--json` is short for `--format json`.
fn output_format(format: OutputFormat, json: bool) -> OutputFormat {
    if json { OutputFormat::Json } else { format }
}

/// `probe smoke [--config FILE] [--format text|json|junit|html] [--output FILE] [--wait DURATION]
/// [--baseline FILE] [--evidence DIR]`.
#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// The suite (TOML; see infra/smoke/ for both lockdown modes).
    #[arg(long, short = 'c', default_value = "smoke.toml", value_name = "FILE")]
    pub config: std::path::PathBuf,
    /// Report format.
    #[arg(long, short = 'f', value_enum, default_value_t = SmokeFormat::Text)]
    pub format: SmokeFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Retry failing checks with backoff until this much time has passed (e.g. 90s, 10m):
    /// lockdown changes take minutes to apply.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub wait: Option<std::time::Duration>,
    /// Reporting: --baseline, --evidence.
    #[command(flatten)]
    pub reporting: ReportingArgs,
}

/// What to compare a run with and where to keep its evidence (`probe smoke` and the lab).
#[derive(Debug, Clone, Default, Args)]
pub struct ReportingArgs {
    /// Compare with an earlier run's JSON report: newly failing, newly passing, still failing,
    /// and facts that changed (exit codes stay this run's).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<std::path::PathBuf>,
    /// Write an evidence bundle into DIR: the report in every format, each app's /diag/env,
    /// and a manifest of SHA-256 digests (manifest.json, SHA256SUMS).
    #[arg(long, value_name = "DIR")]
    pub evidence: Option<std::path::PathBuf>,
}

/// `probe serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address, logging, instance identity.
    #[command(flatten)]
    pub host: HostArgs,
    /// DNS servers.
    #[command(flatten)]
    pub dns: DnsArgs,
    /// `/diag` token and target policy.
    #[command(flatten)]
    pub diag: DiagArgs,
    /// Outbound source address.
    #[command(flatten)]
    pub outbound: OutboundArgs,
    /// Bounds of `/diag`: concurrency, burst, rate.
    #[command(flatten)]
    pub limits: diag::api::DiagLimitArgs,
}

/// `probe resolve HOST [SERVER] [--type T] [--format text|human|json] [--json]`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The name to look up (an IP address looks up its PTR record).
    pub host: String,
    // The text is also `--help` (pinned by a golden): the brackets are not links.
    #[allow(
        rustdoc::broken_intra_doc_links,
        reason = "clap help text, not rustdoc"
    )]
    /// Ask this DNS server (IP[:PORT]) instead of the configured ones.
    pub server: Option<String>,
    /// Record type: A, AAAA, CNAME, TXT, MX, SRV or PTR [default: A and AAAA].
    #[arg(long = "type", short = 't', value_name = "T")]
    pub record_type: Option<String>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Print JSON (the /diag/resolve body): the same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// DNS servers.
    #[command(flatten)]
    pub dns: DnsArgs,
}

/// `probe tcpping HOST[:PORT] [PORT] [-n COUNT] [-w TIMEOUT_MS] [--format text|human|json] [--json]`.
#[derive(Debug, Args)]
pub struct TcppingArgs {
    // The text is also `--help` (pinned by a golden): the brackets are not links.
    #[allow(
        rustdoc::broken_intra_doc_links,
        reason = "clap help text, not rustdoc"
    )]
    /// HOST or HOST:PORT ([v6]:PORT for IPv6).
    #[arg(value_name = "HOST[:PORT]")]
    pub target: String,
    /// The port, when not in HOST:PORT [default: 80].
    pub port: Option<String>,
    /// Number of attempts, 1-20 [default: 4].
    #[arg(short = 'n', long = "count", value_name = "COUNT")]
    pub count: Option<String>,
    /// Connect timeout per attempt in milliseconds, 1-10000 [default: 3000].
    #[arg(short = 'w', long = "timeout-ms", value_name = "TIMEOUT_MS")]
    pub timeout_ms: Option<String>,
    /// Pause between attempts in milliseconds, 0-5000 [default: 1000].
    #[arg(short = 'i', long = "interval-ms", value_name = "INTERVAL_MS")]
    pub interval_ms: Option<String>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Print JSON (the /diag/tcpping body): the same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// DNS servers.
    #[command(flatten)]
    pub dns: DnsArgs,
    /// Outbound source address.
    #[command(flatten)]
    pub outbound: OutboundArgs,
}

/// `probe tls HOST[:PORT] [PORT] [--sni NAME] [--protocol tls|postgres] [--ca-file PEM]
/// [-w TIMEOUT_MS] [--format text|json] [--json]`.
#[derive(Debug, Args)]
pub struct TlsArgs {
    // The text is also `--help` (pinned by a golden): the brackets are not links.
    #[allow(
        rustdoc::broken_intra_doc_links,
        reason = "clap help text, not rustdoc"
    )]
    /// HOST or HOST:PORT ([v6]:PORT for IPv6).
    #[arg(value_name = "HOST[:PORT]")]
    pub target: String,
    /// The port, when not in HOST:PORT [default: the Azure service's, else 443].
    pub port: Option<String>,
    /// The name to send as SNI and verify [default: HOST].
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// tls or postgres (SSLRequest, then TLS) [default: postgres on a PostgreSQL port, else tls].
    #[arg(long, value_name = "PROTOCOL")]
    pub protocol: Option<String>,
    /// Also trust the CA certificates of this PEM file (a private CA; the platform's roots stay).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Time for the connect and the handshake in milliseconds, 1-10000 [default: 5000].
    #[arg(short = 'w', long = "timeout-ms", value_name = "TIMEOUT_MS")]
    pub timeout_ms: Option<String>,
    /// Output format (human is the same as text here).
    #[arg(long, short = 'f', value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Print JSON (the /diag/tls body): the same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// DNS servers.
    #[command(flatten)]
    pub dns: DnsArgs,
    /// Outbound source address.
    #[command(flatten)]
    pub outbound: OutboundArgs,
}

/// Runs a parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let code = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Resolve(args) => resolve(args).await,
        Command::Tcpping(args) => tcpping(args).await,
        Command::Tls(args) => tls(args).await,
        Command::Smoke(args) => smoke(args).await,
    };
    ExitCode::from(code)
}

fn usage_error(message: impl std::fmt::Display) -> u8 {
    eprintln!("probe: {message}");
    EXIT_USAGE
}

fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(json) => print_out(&(json + "\n")),
        Err(error) => eprintln!("probe: cannot print JSON: {error}"),
    }
}

/// Writes to standard output. A reader that went away (`probe … | head`) ends the output
/// quietly instead of in a panic, as `print!` would; other failures are said on stderr.
pub fn print_out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("cannot write the output: {error}");
    }
}

/// `probe resolve`.
pub async fn resolve(args: ResolveArgs) -> u8 {
    let request = match ResolveRequest::parse(&args.host, args.record_type.as_deref()) {
        Ok(request) => request,
        Err(error) => return usage_error(error),
    };
    let mut resolver = match DnsResolver::from_args(&args.dns) {
        Ok(resolver) => resolver,
        Err(error) => return usage_error(error),
    };
    if let Some(server) = &args.server {
        let server = match parse_ip_port(server, 53) {
            Ok(server) => server,
            Err(error) => return usage_error(error),
        };
        resolver = match resolver.with_query_servers(vec![server]) {
            Ok(resolver) => resolver,
            Err(error) => return usage_error(error),
        };
    }
    let resolution = resolver.resolve_request(&request).await;
    match output_format(args.format, args.json) {
        OutputFormat::Text => print_out(&resolution.to_text()),
        OutputFormat::Human => print_out(&resolution.to_human_text()),
        OutputFormat::Json => print_json(&resolution),
    }
    if resolution.ok { EXIT_OK } else { EXIT_FAILED }
}

/// Splits `HOST[:PORT]` and a separate `PORT` into the host and one port.
pub fn tcpping_target<'a>(
    target: &'a str,
    port: Option<&'a str>,
) -> Result<(&'a str, Option<&'a str>), InputError> {
    let (host, inline) = split_host_port(target);
    match (inline, port) {
        (Some(a), Some(b)) => {
            let (a, b) = (parse_port(a)?, parse_port(b)?);
            if a == b {
                Ok((host, inline))
            } else {
                Err(InputError::PortTwice(a, b))
            }
        }
        (inline, port) => Ok((host, inline.or(port))),
    }
}

/// `probe tcpping`. Exits 0 when every attempt connected, else 1 (a target that connects only
/// some of the time is a failed check).
pub async fn tcpping(args: TcppingArgs) -> u8 {
    let request = tcpping_target(&args.target, args.port.as_deref()).and_then(|(host, port)| {
        TcpPingRequest::parse(
            host,
            port,
            args.count.as_deref(),
            args.timeout_ms.as_deref(),
            args.interval_ms.as_deref(),
        )
    });
    let request = match request {
        Ok(request) => request,
        Err(error) => return usage_error(error),
    };
    let resolver = match DnsResolver::from_args(&args.dns) {
        Ok(resolver) => resolver,
        Err(error) => return usage_error(error),
    };
    let report = tcp_ping(
        &resolver,
        &request,
        args.outbound.outbound_source_addr,
        None,
    )
    .await;
    match output_format(args.format, args.json) {
        OutputFormat::Text => print_out(&report.to_text()),
        OutputFormat::Human => print_out(&report.to_human_text()),
        OutputFormat::Json => print_json(&report),
    }
    if report.summary.sent > 0 && report.summary.ok == report.summary.sent {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// The CA certificates of a PEM file.
fn read_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("--ca-file {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("--ca-file {} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// `probe tls`. Exits 0 when the handshake completed and the chain verified, else 1.
pub async fn tls(args: TlsArgs) -> u8 {
    let request = tcpping_target(&args.target, args.port.as_deref()).and_then(|(host, port)| {
        TlsCheckRequest::parse(
            host,
            port,
            args.sni.as_deref(),
            args.protocol.as_deref(),
            args.timeout_ms.as_deref(),
        )
    });
    let request = match request {
        Ok(request) => request,
        Err(error) => return usage_error(error),
    };
    let roots = match args.ca_file.as_deref().map(read_ca_file).transpose() {
        Ok(roots) => roots.unwrap_or_default(),
        Err(error) => return usage_error(error),
    };
    let verifier = match tls_verifier(roots) {
        Ok(verifier) => verifier,
        Err(error) => return usage_error(format!("no TLS verifier: {error}")),
    };
    let resolver = match DnsResolver::from_args(&args.dns) {
        Ok(resolver) => resolver,
        Err(error) => return usage_error(error),
    };
    let report = tls_check(
        &resolver,
        &verifier,
        &request,
        args.outbound.outbound_source_addr,
        None,
    )
    .await;
    match output_format(args.format, args.json) {
        OutputFormat::Text | OutputFormat::Human => print_out(&report.to_text()),
        OutputFormat::Json => print_json(&report),
    }
    if report.ok { EXIT_OK } else { EXIT_FAILED }
}

/// `probe serve`: `/diag` and `/healthz` until SIGTERM or Ctrl-C.
pub async fn serve(args: ServeArgs) -> u8 {
    hosting::init_logging(args.host.log_format());
    let resolver = match DnsResolver::from_args(&args.dns) {
        Ok(resolver) => resolver,
        Err(error) => {
            tracing::error!(%error, "invalid DNS configuration");
            return EXIT_USAGE;
        }
    };
    let limits = match args.limits.limits() {
        Ok(limits) => limits,
        Err(error) => return usage_error(error),
    };
    let state = match DiagState::new(DiagSettings {
        outbound_source_addr: args.outbound.outbound_source_addr,
        facts: EnvFacts::from_process_env().with_host(&args.host),
        limits,
        ..DiagSettings::new(args.diag.clone(), resolver.clone())
    }) {
        Ok(state) => state,
        Err(error) => {
            tracing::error!(%error, "invalid DIAG_ALLOW");
            return EXIT_USAGE;
        }
    };
    let addr = args.host.listen_addr();
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, %addr, "cannot listen");
            return EXIT_FAILED;
        }
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    let settings = resolver.settings();
    tracing::info!(
        listen_addr = %local,
        diag.enabled = state.enabled(),
        diag.policy = ?state.policy().describe(),
        dns.servers = %settings.display_servers(),
        dns.source = ?settings.source,
        "probe serving"
    );
    let app = hosting::with_http_layers(router(state), args.host.request_timeout());
    match hosting::serve_with_limits(
        listener,
        app,
        hosting::shutdown_signal(),
        &args.host.server_limits(),
    )
    .await
    {
        Ok(()) => EXIT_OK,
        Err(error) => {
            tracing::error!(%error, "server failed");
            EXIT_FAILED
        }
    }
}

/// `probe smoke`: 0 when every check passed, 1 when one failed, 2 for a mistake in the suite.
pub async fn smoke(args: SmokeArgs) -> u8 {
    use std::io::IsTerminal;

    use crate::smoke::{RunOptions, SmokeConfig};

    let config = match SmokeConfig::load(&args.config) {
        Ok(config) => config,
        Err(error) => return usage_error(error),
    };
    let options = RunOptions {
        wait: args.wait,
        progress: true,
        ..RunOptions::default()
    };
    let baseline = match crate::smoke::output::load_baseline(args.reporting.baseline.as_deref()) {
        Ok(baseline) => baseline,
        Err(error) => return usage_error(error),
    };
    let mut report = match crate::smoke::run(&config, &options).await {
        Ok(report) => report,
        Err(error) => return usage_error(error),
    };
    if let Err(error) = crate::smoke::output::finish(
        &mut report,
        baseline.as_ref(),
        args.reporting.evidence.as_deref(),
        &config,
        &options,
    )
    .await
    {
        return usage_error(error);
    }
    let to_terminal = args.output.is_none() && std::io::stdout().is_terminal();
    let rendered = report.render(args.format, to_terminal);
    match &args.output {
        Some(path) => {
            if let Err(error) = std::fs::write(path, &rendered) {
                return usage_error(format!("cannot write {}: {error}", path.display()));
            }
            eprintln!(
                "probe: {} passed, {} failed; report written to {}",
                report.passed,
                report.failed,
                path.display()
            );
        }
        None => print_out(&rendered),
    }
    if report.all_passed() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn tcpping_targets() {
        assert_eq!(tcpping_target("h:443", None), Ok(("h", Some("443"))));
        assert_eq!(tcpping_target("h", Some("443")), Ok(("h", Some("443"))));
        assert_eq!(tcpping_target("[::1]:53", None), Ok(("[::1]", Some("53"))));
        assert_eq!(tcpping_target("h:443", Some("443")), Ok(("h", Some("443"))));
        assert_eq!(
            tcpping_target("h:443", Some("80")),
            Err(InputError::PortTwice(443, 80))
        );
        assert_eq!(tcpping_target("h", None), Ok(("h", None)));
    }
}
