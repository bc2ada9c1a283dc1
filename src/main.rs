//! `lockdown`: the lab. Starts the whole stack on loopback with the App Service network
//! emulated, runs the smoke suite against it, prints the report, and keeps serving the front end
//! until Ctrl-C (`--once` exits with the suite's exit code instead).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lockdown::stack::TOKEN_ENV;
use lockdown::suite::suite_toml;
use lockdown::topology::{
    BACKEND_PRIVATE_ENDPOINT, BACKEND_PUBLIC, HostNames, INTEGRATION_SUBNET, frontend_private_ip,
};
use lockdown::{Break, Lab, LabAuth, LabOptions, Mode, Plan};
use probe::cli::print_out;
use probe::smoke::{RunOptions, SmokeConfig};

/// The report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Junit,
}

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
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Name the apps with unique default host names, as Azure can
    /// (`app-be-<hash>.westeurope-01.azurewebsites.net`, the private endpoint's record under
    /// `privatelink.westeurope-01.azurewebsites.net`), instead of `app-be.azurewebsites.net`.
    #[arg(long)]
    unique_hostnames: bool,
    /// Also write the suite the lab runs (the TOML `probe smoke` reads) to this file.
    #[arg(long, value_name = "FILE")]
    write_suite: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = LabArgs::parse();
    hosting::init_logging_with_default(hosting::LogFormat::Text, "error");
    if args.list_breaks {
        print_breaks();
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

fn print_breaks() {
    let mut out = format!("{:<26} {:<18} what is wrong\n", "--break", "mode");
    for b in Break::ALL {
        let mode = b.mode().map_or("either".to_owned(), |m| m.to_string());
        out += &format!("{:<26} {mode:<18} {}\n", b.name(), b.description());
    }
    print_out(&out);
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
    let plan = Plan::new(args.mode, &args.breaks)?;
    let lab = Lab::start(LabOptions {
        auth: args.auth,
        hosts: if args.unique_hostnames {
            HostNames::unique()
        } else {
            HostNames::classic()
        },
        ..LabOptions::new(plan, args.port)
    })
    .await?;
    let suite = suite_toml(&lab);
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
    let text = args.format == Format::Text;
    if text {
        print_out(&topology(&lab, &args.breaks));
    }
    let config = SmokeConfig::from_toml(&suite)?;
    let options = RunOptions {
        tokens: [(TOKEN_ENV.to_owned(), lab.diag_token.clone())].into(),
        ..RunOptions::default()
    };
    let report = probe::smoke::run(&config, &options).await?;
    print_out(&match args.format {
        Format::Text => report.render_text(std::io::stdout().is_terminal()),
        Format::Json => report.render_json(),
        Format::Junit => report.render_junit(),
    });
    let code = if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    if args.once {
        return Ok(code);
    }
    // The report alone goes to stdout (so --format json|junit stays parseable); the rest to stderr.
    eprintln!();
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

/// The lab as it runs: mode, breaks, apps, addresses, credential, DNS.
fn topology(lab: &Lab, breaks: &[Break]) -> String {
    let mut out = String::new();
    let mode = lab.plan.mode;
    out += &format!(
        "lockdown lab — {mode} mode{}\n",
        if breaks.is_empty() {
            String::new()
        } else {
            format!(
                ", broken: {}",
                breaks
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    out += &format!(
        "  front end   {}  instances {}  egress from {}\n",
        lab.frontend_url,
        lab.frontend_instance_ids.join(", "),
        if lab.plan.frontend_integrated {
            format!(
                "{}–{} (integration subnet {INTEGRATION_SUBNET})",
                frontend_private_ip(0),
                frontend_private_ip(lab.frontend_instance_ids.len().saturating_sub(1))
            )
        } else {
            "127.0.0.1 (not integrated)".into()
        }
    );
    let inbound = match mode {
        Mode::ServiceEndpoint => format!(
            "public {BACKEND_PUBLIC}, access restriction: {}",
            describe_rules(lab)
        ),
        Mode::PrivateEndpoint => format!(
            "private endpoint {BACKEND_PRIVATE_ENDPOINT}, public access {}",
            if lab
                .backend_site
                .networking
                .read()
                .map(|n| n.public_network_access)
                .unwrap_or(false)
            {
                "ENABLED"
            } else {
                "disabled"
            }
        ),
    };
    out += &format!(
        "  back end    {}  instances {}  {inbound}\n",
        lab.backend_url,
        lab.backend_instance_ids.join(", ")
    );
    out += &format!(
        "  credential  {}\n",
        match &lab.entra_authority {
            Some(authority) => format!(
                "Entra ID: the front end's managed-identity token, checked by the back end (keys from {authority})"
            ),
            None => "API key".to_owned(),
        }
    );
    out += &format!(
        "  DNS         VNet {}{}, public {}\n",
        lab.vnet_dns,
        if lab.plan.vnet_dns.is_none() {
            " (not answering)"
        } else {
            ""
        },
        lab.public_dns
    );
    out.push('\n');
    out
}

fn describe_rules(lab: &Lab) -> String {
    let Ok(networking) = lab.backend_site.networking.read() else {
        return String::new();
    };
    if networking.rules.is_empty() {
        return format!("none (default {:?})", networking.default_action);
    }
    let rules: Vec<String> = networking
        .rules
        .iter()
        .map(|r| {
            format!(
                "{:?} {}",
                r.action,
                r.vnet_subnet
                    .or(r.ip_address)
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )
        })
        .collect();
    format!(
        "{}, default {:?}",
        rules.join(", "),
        networking.default_action
    )
}
