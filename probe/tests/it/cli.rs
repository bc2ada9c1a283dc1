//! The CLI's public contract: `--help` pinned by golden files, the Kudu and human texts pinned
//! from fixed reports, the Kudu text of the real binary read as Microsoft's portal reads it, and
//! the exit codes of the real binary against loopback servers.

use diag::failure::FailureKind;
use std::path::PathBuf;
use std::process::Command;

use clap::CommandFactory;
use diag::dns::{
    ChainHop, DnsErrorKind, LookupFailure, Resolution, ResolveQuery, ResolvedAddress, ResolverInfo,
    ResolverSource,
};
use diag::tcpping::{PingAttempt, PingTarget, PingVerdict, TcpPingReport, summarize};
use probe::cli::Cli;

use test_support::kudu_reader::{
    Status, bare_addresses, read_complete, read_nameresolver, read_tcpping,
};
use test_support::{closed_port, spawn_accept_once, spawn_canary, spawn_dns};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares with a golden file; `UPDATE_GOLDEN=1` rewrites it.
fn assert_golden(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        "{name} differs (UPDATE_GOLDEN=1 to accept)"
    );
}

/// The help as `probe ARGS --help` prints it, with the values of environment variables hidden:
/// clap shows the value of a variable that is set (`[env: PORT=8080]`), which would make the
/// golden depend on where the tests run.
fn help(args: &[&str]) -> String {
    fn hide(arg: clap::Arg) -> clap::Arg {
        arg.hide_env_values(true)
    }
    let argv = std::iter::once("probe")
        .chain(args.iter().copied())
        .chain(["--help"]);
    let command = Cli::command()
        .mut_args(hide)
        .mut_subcommands(|c| c.mut_args(hide));
    let error = command.try_get_matches_from(argv).unwrap_err();
    assert_eq!(error.kind(), clap::error::ErrorKind::DisplayHelp);
    error.to_string()
}

#[test]
fn every_help_is_pinned() {
    assert_golden("probe-help.txt", &help(&[]));
    let subcommands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    assert_eq!(subcommands, ["serve", "resolve", "tcpping", "tls", "smoke"]);
    for name in &subcommands {
        assert_golden(&format!("{name}-help.txt"), &help(&[name]));
    }
}

#[test]
fn debug_of_the_parsed_command_line_never_shows_the_token() {
    use clap::Parser;
    let cli = Cli::try_parse_from(["probe", "serve", "--diag-token", "secret-xyz"]).unwrap();
    for shown in [format!("{cli:?}"), format!("{cli:#?}")] {
        assert!(!shown.contains("secret-xyz"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}

fn resolver_info() -> ResolverInfo {
    ResolverInfo {
        servers: vec!["127.0.0.1:5353".parse().unwrap()],
        source: ResolverSource::DnsServers,
    }
}

#[test]
fn resolve_text_follows_nameresolver() {
    let resolution = Resolution {
        query: ResolveQuery {
            host: "app-be.azurewebsites.net".into(),
            record_type: "A+AAAA".into(),
            name: "app-be.azurewebsites.net".into(),
        },
        resolver: resolver_info(),
        ok: true,
        rcode: Some("NOERROR".into()),
        error: None,
        chain: vec![ChainHop {
            name: "app-be.azurewebsites.net".into(),
            ttl: 300,
            target: "app-be.privatelink.azurewebsites.net".into(),
        }],
        canonical_name: Some("app-be.privatelink.azurewebsites.net".into()),
        addresses: vec![ResolvedAddress {
            ip: "10.20.2.4".parse().unwrap(),
            ttl: 10,
            class: hosting::AddressClass::Private,
        }],
        records: vec![],
        privatelink: true,
        service: None,
        zone: None,
        duration_ms: 1.234,
    };
    assert_eq!(
        resolution.to_text(),
        "Server: 127.0.0.1:5353\r\n\r\nNon-authoritative answer:\r\nName:    app-be.privatelink.azurewebsites.net\r\nAddresses:\r\n\t10.20.2.4\r\nAliases:\r\n\tapp-be.azurewebsites.net\r\n"
    );
    assert_eq!(
        resolution.to_human_text(),
        "Server: 127.0.0.1:5353\n\nNon-authoritative answer:\nName:    app-be.privatelink.azurewebsites.net\nAddresses:\n        10.20.2.4  (private)\nAliases:\n        app-be.azurewebsites.net\n"
    );
    let failed = Resolution {
        query: ResolveQuery {
            host: "nosuch.example".into(),
            record_type: "A+AAAA".into(),
            name: "nosuch.example".into(),
        },
        ok: false,
        rcode: Some("NXDOMAIN".into()),
        error: Some(LookupFailure {
            kind: DnsErrorKind::Nxdomain,
            message: "nosuch.example does not exist (NXDOMAIN)".into(),
        }),
        chain: vec![],
        canonical_name: Some("nosuch.example".into()),
        addresses: vec![],
        privatelink: false,
        ..resolution
    };
    assert_eq!(
        failed.to_text(),
        "Server: 127.0.0.1:5353\r\n\r\n*** 127.0.0.1:5353 can't find nosuch.example: Non-existent domain\r\n"
    );
    assert_eq!(
        failed.to_human_text(),
        "Server: 127.0.0.1:5353\n\n*** 127.0.0.1:5353 can't find nosuch.example: Non-existent domain\nnosuch.example does not exist (NXDOMAIN)\n"
    );
}

#[test]
fn tcpping_text_follows_kudu() {
    let ok = |seq: u32, rtt: f64| PingAttempt {
        seq,
        ip: Some("20.1.2.3".parse().unwrap()),
        local_addr: Some("10.20.1.4:50000".parse().unwrap()),
        ok: true,
        rtt_ms: Some(rtt),
        error: None,
        message: None,
        dns_error: None,
    };
    let attempts = vec![
        ok(1, 12.4),
        ok(2, 0.6),
        PingAttempt {
            seq: 3,
            ip: Some("20.1.2.3".parse().unwrap()),
            local_addr: None,
            ok: false,
            rtt_ms: None,
            error: Some(FailureKind::Refused),
            message: Some("Connection refused".into()),
            dns_error: None,
        },
        ok(4, 0.5),
    ];
    let report = TcpPingReport {
        target: PingTarget {
            host: "app-be.azurewebsites.net".into(),
            port: 443,
            ip: Some("20.1.2.3".parse().unwrap()),
            resolved: vec!["20.1.2.3".parse().unwrap()],
        },
        summary: summarize(&attempts),
        attempts,
        verdict: PingVerdict::PartiallyReachable,
        hint: String::new(),
        denied: None,
    };
    assert_eq!(
        report.to_text(),
        "Connected to app-be.azurewebsites.net:443, time taken: 12ms\r\n\
         Connected to app-be.azurewebsites.net:443, time taken: <1ms\r\n\
         Connection attempt failed: No connection could be made because the target machine actively refused it\r\n\
         Connected to app-be.azurewebsites.net:443, time taken: <1ms\r\n\
         Complete: 3/4 successful attempts (75%). Average success time: 4.5ms\r\n"
    );
}

fn probe_bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_probe"));
    for variable in [
        "DNS_SERVERS",
        "WEBSITE_DNS_SERVER",
        "WEBSITE_DNS_ALT_SERVER",
        "OUTBOUND_SOURCE_ADDR",
        "DIAG_TOKEN",
        "DIAG_ALLOW",
    ] {
        command.env_remove(variable);
    }
    command
}

async fn run(mut command: Command) -> (i32, String) {
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    (output.status.code().unwrap(), stdout)
}

#[tokio::test]
async fn the_binary_exit_codes() {
    let dns = spawn_dns().await;
    let server = dns.addr.to_string();

    let mut command = probe_bin();
    command.args(["resolve", "app-be.azurewebsites.net", &server]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("Name:    app-be.privatelink.azurewebsites.net"),
        "{stdout}"
    );

    let mut command = probe_bin();
    command.args(["resolve", "nosuch.lockdown.test", &server, "--json"]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["error"]["kind"], "nxdomain");
    assert_eq!(json["resolver"]["source"], "query");

    // DNS_SERVERS is read from the environment.
    let mut command = probe_bin();
    command
        .env("DNS_SERVERS", &server)
        .args(["resolve", "public.lockdown.test", "--type", "A"]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 0, "{stdout}");

    let mut command = probe_bin();
    command.args(["resolve", "bad name"]);
    assert_eq!(run(command).await.0, 2);

    // The lookup's time limit is bounded like tcpping's (refused before any lookup).
    for timeout in ["0", "30001", "999999999"] {
        let mut command = probe_bin();
        command.args([
            "resolve",
            "public.lockdown.test",
            &server,
            "--dns-timeout-ms",
            timeout,
        ]);
        assert_eq!(run(command).await.0, 2, "--dns-timeout-ms {timeout}");
    }

    let mut command = probe_bin();
    command
        .env("DNS_SERVERS", "not-an-ip")
        .args(["resolve", "public.lockdown.test"]);
    assert_eq!(run(command).await.0, 2);

    let canary = spawn_canary().await;
    let mut command = probe_bin();
    command.env("DNS_SERVERS", &server).args([
        "tcpping",
        &format!("127.0.0.1:{}", canary.port()),
        "-n",
        "2",
        "-i",
        "0",
    ]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("Complete: 2/2 successful attempts (100%)"),
        "{stdout}"
    );

    // Some attempts connected, one did not: that is a failed check, not a pass.
    let once = spawn_accept_once().await;
    let mut command = probe_bin();
    command.env("DNS_SERVERS", &server).args([
        "tcpping",
        &format!("127.0.0.1:{}", once.port()),
        "-n",
        "2",
        "-i",
        "500",
        "--json",
    ]);
    let (code, stdout) = run(command).await;
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["summary"]["ok"], 1, "{stdout}");
    assert_eq!(json["attempts"][1]["error"], "refused", "{stdout}");
    assert_eq!(code, 1, "{stdout}");

    let mut command = probe_bin();
    command.env("DNS_SERVERS", &server).args([
        "tcpping",
        "127.0.0.1",
        &closed_port().to_string(),
        "-n",
        "1",
        "--json",
    ]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["attempts"][0]["error"], "refused");

    for bad in [
        &["tcpping", "127.0.0.1:0"][..],
        &["tcpping", "127.0.0.1:80", "81"],
        &["tcpping", "127.0.0.1", "-n", "21"],
        &["nosuch"],
    ] {
        let mut command = probe_bin();
        command.env("DNS_SERVERS", &server).args(bad);
        assert_eq!(run(command).await.0, 2, "{bad:?}");
    }
}

/// What the binary prints by default is Kudu's text, read back as Microsoft's portal reads it;
/// `--format human` is the richer text; `--json` and `--format` do not mix. DNS is the test zone
/// on loopback, never the system resolver.
#[tokio::test]
async fn the_binary_prints_text_the_portal_reads() {
    let dns = spawn_dns().await;
    let server = dns.addr.to_string();

    let mut command = probe_bin();
    command.args(["resolve", "app-be.azurewebsites.net", &server]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 0, "{stdout}");
    let (addresses, aliases) = read_nameresolver(&stdout).unwrap();
    assert_eq!(
        bare_addresses(&addresses).unwrap(),
        ["10.20.2.4".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(aliases, "app-be.azurewebsites.net\r\n");

    let mut command = probe_bin();
    command.args(["resolve", "nosuch.lockdown.test", &server]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 1);
    assert_eq!(read_nameresolver(&stdout), None, "{stdout}");
    assert!(stdout.ends_with("can't find nosuch.lockdown.test: Non-existent domain\r\n"));

    let mut command = probe_bin();
    command.args([
        "resolve",
        "app-be.azurewebsites.net",
        &server,
        "--format",
        "human",
    ]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("        10.20.2.4  (private)\n"),
        "{stdout}"
    );
    assert!(!stdout.contains('\r'), "{stdout:?}");

    let mut command = probe_bin();
    command.env("DNS_SERVERS", &server).args([
        "tcpping",
        "nosuch.lockdown.test:443",
        "-n",
        "3",
        "-i",
        "0",
    ]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 1, "{stdout}");
    let read = read_tcpping(&stdout).unwrap();
    assert_eq!(read.statuses, vec![Status::HostNotFound; 3]);
    let complete = read_complete(&read.complete).unwrap();
    assert_eq!((complete.ok, complete.total, complete.percent), (0, 3, 0));

    let canary = spawn_canary().await;
    let target = format!("127.0.0.1:{}", canary.port());
    let mut command = probe_bin();
    command
        .env("DNS_SERVERS", &server)
        .args(["tcpping", &target, "-n", "2", "-i", "0"]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 0, "{stdout}");
    let read = read_tcpping(&stdout).unwrap();
    assert_eq!(read.statuses, vec![Status::Success; 2]);
    assert_eq!(read_complete(&read.complete).unwrap().percent, 100);

    let mut command = probe_bin();
    command
        .env("DNS_SERVERS", &server)
        .args(["tcpping", &target, "-n", "1", "-f", "human"]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.starts_with(&format!("#1 connected to {target} from 127.0.0.1:")),
        "{stdout}"
    );
    assert!(stdout.contains("Verdict: reachable\n"), "{stdout}");

    for bad in [
        &["tcpping", &target, "--json", "--format", "human"][..],
        &[
            "resolve",
            "public.lockdown.test",
            &server,
            "--json",
            "-f",
            "text",
        ],
        &[
            "resolve",
            "public.lockdown.test",
            &server,
            "--format",
            "kudu",
        ],
    ] {
        let mut command = probe_bin();
        command.env("DNS_SERVERS", &server).args(bad);
        assert_eq!(run(command).await.0, 2, "{bad:?}");
    }
}

#[tokio::test]
async fn probe_tls_exit_codes() {
    let closed = closed_port();
    let mut command = probe_bin();
    command.args([
        "tls",
        &format!("127.0.0.1:{closed}"),
        "--sni",
        "a.lockdown.test",
        "--json",
    ]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 1, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["code"], "connect_refused", "{json}");

    for bad in [
        vec!["tls", "127.0.0.1:443", "--protocol", "smtp"],
        vec!["tls", "127.0.0.1:443", "--ca-file", "/nonexistent/ca.pem"],
        vec!["tls", "bad name"],
    ] {
        let mut command = probe_bin();
        command.args(&bad);
        assert_eq!(run(command).await.0, 2, "{bad:?}");
    }

    let Some(cluster) = test_support::postgres::cluster() else {
        return;
    };
    let mut command = probe_bin();
    command.args([
        "tls",
        &format!("127.0.0.1:{}", cluster.port),
        "--sni",
        test_support::postgres::PG_HOST,
        "--protocol",
        "postgres",
        "--ca-file",
        cluster.ca_file.to_str().unwrap(),
    ]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("PostgreSQL answered SSLRequest with \"S\""),
        "{stdout}"
    );
    assert!(stdout.contains("Verified: yes"), "{stdout}");
}

#[tokio::test]
async fn probe_resolve_names_the_service_and_the_zone() {
    let dns = spawn_dns().await;
    let mut command = probe_bin();
    command.args([
        "resolve",
        "kv-public.vault.azure.net",
        &dns.addr.to_string(),
        "-f",
        "human",
    ]);
    let (code, stdout) = run(command).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("Service: Key Vault"), "{stdout}");
    assert!(stdout.contains("[privatelink_zone_not_linked]"), "{stdout}");
}
