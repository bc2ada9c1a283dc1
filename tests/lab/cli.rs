//! The `lockdown` binary as a user runs it.

use std::process::Command;

fn lockdown(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lockdown"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the lockdown binary runs")
}

#[test]
fn once_exits_with_the_suite_code() {
    let ok = lockdown(&["--once", "--port", "0"]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("lockdown lab — service-endpoint mode"));
    assert!(stdout.contains("0 failed"));
    // The store the header names: PostgreSQL when installed, else the embedded store.
    let store = if test_support::postgres::bin_dir().is_some() {
        "store       PostgreSQL"
    } else {
        "store       embedded (redb; PostgreSQL is not installed"
    };
    assert!(stdout.contains(store), "{stdout}");

    let broken = lockdown(&["--once", "--port", "0", "--break", "bad-credential"]);
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("backend_unauthorized"));
}

#[test]
fn entra_mode_runs_from_the_command_line() {
    let ok = lockdown(&["--once", "--port", "0", "--auth", "entra"]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("credential  Entra ID"), "{stdout}");
    assert!(
        stdout.contains("back end refuses a call without a token"),
        "{stdout}"
    );

    let broken = lockdown(&[
        "--once",
        "--port",
        "0",
        "--auth",
        "entra",
        "--break",
        "bad-credential",
    ]);
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("wrong_audience"), "{stdout}");
}

#[test]
fn list_breaks_prints_the_catalogue() {
    let out = lockdown(&["--list-breaks"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for b in lockdown::Break::ALL {
        assert!(stdout.contains(b.name()), "{stdout}");
    }
}

#[test]
fn a_break_from_the_other_mode_is_a_usage_error() {
    let out = lockdown(&["--once", "--port", "0", "--break", "pe-dns-not-linked"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mode private-endpoint"));
    let out = lockdown(&["--break", "no-such-break"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn json_output_is_the_report() {
    let out = lockdown(&["--once", "--port", "0", "--format", "json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is the JSON report alone");
    assert_eq!(report["failed"], 0);
    // Nine results (two of them the apps' Key Vault references), and five of the data tier when
    // the lab runs on PostgreSQL (its resolve, a connect per back-end instance, the handshake,
    // the internet's denial).
    let expected = if test_support::postgres::bin_dir().is_some() {
        14
    } else {
        9
    };
    assert_eq!(report["results"].as_array().unwrap().len(), expected);
}

#[test]
fn the_lab_takes_probe_smokes_reporting_options() {
    let dir = tempfile::tempdir().unwrap();
    let before = dir.path().join("before.json");
    let healthy = lockdown(&["--once", "--port", "0", "--format", "json"]);
    assert_eq!(healthy.status.code(), Some(0));
    std::fs::write(&before, &healthy.stdout).unwrap();
    let bundle = dir.path().join("bundle");
    let broken = lockdown(&[
        "--once",
        "--port",
        "0",
        "--break",
        "no-access-restriction",
        "--baseline",
        before.to_str().unwrap(),
        "--evidence",
        bundle.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(
        broken.status.code(),
        Some(1),
        "exit codes stay this run's: {stdout}"
    );
    assert!(
        stdout.contains("1 newly failing")
            && stdout.contains("newly failing: the internet cannot reach the back end"),
        "{stdout}"
    );
    assert!(bundle.join("manifest.json").is_file());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["baseline"]["counts"]["newly_failing"], 1, "{json}");

    let html = lockdown(&["--once", "--port", "0", "--format", "html"]);
    let page = String::from_utf8_lossy(&html.stdout);
    assert!(
        page.starts_with("<!doctype html>") && page.contains("Locked down"),
        "{page}"
    );

    let missing = lockdown(&[
        "--once",
        "--port",
        "0",
        "--baseline",
        "/nonexistent/before.json",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the baseline"));
}

#[test]
fn a_running_lab_serves_its_report_as_a_page() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockdown"))
        .args(["--port", "0", "--format", "json"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the lockdown binary runs");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let url = stderr.lines().map_while(Result::ok).find_map(|line| {
        line.split_once("diagnoses): ")
            .map(|(_, url)| url.trim().to_owned())
    });
    let page = url.as_deref().map(|url| {
        let addr = url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix("/report"))
            .expect("a loopback URL");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /report HTTP/1.1\r\nhost: lab\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut page = String::new();
        stream.read_to_string(&mut page).unwrap();
        page
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let page = page.expect("the lab printed the report's URL");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("<svg") && page.contains("Locked down"),
        "{page}"
    );
}
