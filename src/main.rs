//! `lockdown`: the lab. Starts the whole stack on loopback with the App Service network
//! emulated, runs the smoke suite against it, prints the report, and keeps serving the front end
//! until Ctrl-C (`--once` exits with the suite's exit code instead).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lockdown::stack::TOKEN_ENV;
use lockdown::suite::{fill_suite, placeholders, suite_toml};
use lockdown::topology::HostNames;
use lockdown::{Break, Front, Lab, LabAuth, LabDatabase, LabOptions, Mode, Plan, describe};
use probe::cli::{ReportingArgs, SmokeFormat, print_out};
use probe::smoke::{RunOptions, SmokeConfig};

/// The lockdown lab: a front end and a back end on loopback, locked down as on Azure App
/// Service, proven (or disproven) by the smoke suite.
#[derive(Debug, Parser)]
#[command(name = "lockdown", version)]
struct LabArgs {
    /// How the back end is locked down.
    #[arg(long, value_enum, default_value_t = Mode::ServiceEndpoint)]
    mode: Mode,
    /// How the front end proves itself to the back end: an API key, or a token of its managed
    /// identity (a fake Entra ID on loopback plays the identity endpoint and the tenant's keys).
    #[arg(long, value_enum, default_value_t = LabAuth::ApiKey)]
    auth: LabAuth,
    /// What stands in front of the front end: `front-door` (Azure Front Door; the front end
    /// allows only our profile), `app-gateway` (an Application Gateway's subnet), or `none`. With
    /// a front, the back end's SCM site and staging slot and a deploy runner join the lab and the
    /// suite (service-endpoint mode only).
    #[arg(long, value_enum, default_value_t = Front::None)]
    front: Front,
    /// Apply a misconfiguration from the catalogue (repeatable; see --list-breaks).
    #[arg(long = "break", value_enum, value_name = "NAME")]
    breaks: Vec<Break>,
    /// Print the misconfiguration catalogue and exit.
    #[arg(long)]
    list_breaks: bool,
    /// Run the suite, print the report, and exit with its code (0 passed, 1 failed).
    #[arg(long)]
    once: bool,
    /// The front end's port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Report format (the same as probe smoke's).
    #[arg(long, value_enum, default_value_t = SmokeFormat::Text)]
    format: SmokeFormat,
    /// Reporting, as probe smoke: --baseline, --evidence.
    #[command(flatten)]
    reporting: ReportingArgs,
    /// Name the apps with unique default host names, as Azure can
    /// (`app-be-<hash>.westeurope-01.azurewebsites.net`, the private endpoint's record under
    /// `privatelink.westeurope-01.azurewebsites.net`), instead of `app-be.azurewebsites.net`.
    #[arg(long)]
    unique_hostnames: bool,
    /// Also write the suite the lab runs (the TOML `probe smoke` reads) to this file.
    #[arg(long, value_name = "FILE")]
    write_suite: Option<PathBuf>,
    /// Instances of each app (front end and back end); `ARRAffinity` spreads callers over them,
    /// and `instances = "all"` checks fan out over every one.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=250))]
    instances: u16,
    /// Run this suite (the TOML `probe smoke` reads) against the lab instead of the lab's own;
    /// `${LAB_FRONTEND_URL}`, `${LAB_BACKEND}` (host:port), `${LAB_BACKEND_HOST}`,
    /// `${LAB_BACKEND_PORT}`, `${LAB_PUBLIC_DNS}`, `${LAB_TOKEN_ENV}` and
    /// `${LAB_INTEGRATION_SUBNET}` in it are filled in with the running lab's values.
    #[arg(long, value_name = "FILE")]
    suite: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = LabArgs::parse();
    hosting::init_logging_with_default(hosting::LogFormat::Text, "error");
    if args.list_breaks {
        print_out(&describe::break_catalogue());
        return ExitCode::SUCCESS;
    }
    match run(args).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("lockdown: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(mut args: LabArgs) -> anyhow::Result<ExitCode> {
    // A break named twice is one break.
    let mut breaks = Vec::new();
    for b in args.breaks.drain(..) {
        if !breaks.contains(&b) {
            breaks.push(b);
        }
    }
    args.breaks = breaks;
    let plan = Plan::new(args.mode, &args.breaks)?.with_front(args.front)?;
    // Read before the lab starts: a wrong path is a usage error, not a finding.
    let baseline = probe::smoke::output::load_baseline(args.reporting.baseline.as_deref())
        .map_err(anyhow::Error::msg)?;
    let own_suite = match &args.suite {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read the suite {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let lab = Lab::start(LabOptions {
        auth: args.auth,
        hosts: if args.unique_hostnames {
            HostNames::unique()
        } else {
            HostNames::classic()
        },
        database: LabDatabase::PostgresIfInstalled,
        frontend_instances: usize::from(args.instances),
        backend_instances: usize::from(args.instances),
        ..LabOptions::new(plan, args.port)
    })
    .await?;
    let suite = match &own_suite {
        Some(text) => fill_suite(text, &placeholders(&lab)).map_err(anyhow::Error::msg)?,
        None => suite_toml(&lab),
    };
    if let Some(path) = &args.write_suite {
        std::fs::write(path, &suite)?;
        eprintln!(
            "suite written to {path}; while this lab runs (its ports change at every start{once}): {TOKEN_ENV}={token} probe smoke --config {path}",
            path = path.display(),
            once = if args.once {
                ", and --once stops it"
            } else {
                ""
            },
            token = lab.diag_token,
        );
    }
    let text = args.format == SmokeFormat::Text;
    if text {
        print_out(&describe::topology(&lab, &args.breaks));
    }
    let config = SmokeConfig::from_toml(&suite)?;
    let options = RunOptions {
        tokens: [(TOKEN_ENV.to_owned(), lab.diag_token.clone())].into(),
        ..RunOptions::default()
    };
    let mut report = probe::smoke::run(&config, &options).await?;
    probe::smoke::output::finish(
        &mut report,
        baseline.as_ref(),
        args.reporting.evidence.as_deref(),
        &config,
        &options,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    print_out(&report.render(args.format, std::io::stdout().is_terminal()));
    let code = if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    if args.once {
        return Ok(code);
    }
    // The report alone goes to stdout (so --format json|junit stays parseable); the rest to stderr.
    let report_url = serve_report(report.render_html()).await?;
    eprintln!();
    eprintln!("The report as a page (topology, per-instance matrix, diagnoses): {report_url}");
    eprintln!(
        "Serving the front end at {} — open it in a browser; its path panel shows the same truth.",
        lab.frontend_url
    );
    eprintln!(
        "Try /diag by hand:  curl -H 'Authorization: Bearer {}' '{}/diag/tcpping?host={}&port={}'",
        lab.diag_token, lab.frontend_url, lab.hosts.backend, lab.backend_port
    );
    eprintln!("Ctrl-C to stop.");
    hosting::shutdown_signal().await;
    lab.stop();
    Ok(code)
}

/// Serves the run's HTML report on a loopback port of its own, next to the front end (which is
/// the lab's emulated App Service app and stays as it would be deployed), until the lab stops.
async fn serve_report(html: String) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let url = format!("http://{}/report", listener.local_addr()?);
    let page = axum::response::Html(html);
    let app = axum::Router::new().route("/report", axum::routing::get(move || async move { page }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}
