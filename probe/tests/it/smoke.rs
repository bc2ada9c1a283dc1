//! `probe smoke` as a user runs it: the real binary, a suite of checks from here against
//! loopback targets, exit codes 0/1/2, and the report formats.

use std::process::Command;

use tokio::net::TcpListener;

use test_support::closed_port;

fn write_suite(dir: &std::path::Path, checks: &str) -> std::path::PathBuf {
    let path = dir.join("suite.toml");
    std::fs::write(&path, format!("[defaults]\ntimeout_ms = 800\n{checks}")).unwrap();
    path
}

fn smoke(args: &[&str]) -> std::process::Output {
    smoke_with_env(args, &[])
}

/// `probe smoke ARGS` with these variables set.
fn smoke_with_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_probe"))
        .arg("smoke")
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .expect("the probe binary runs")
}

#[tokio::test]
async fn exit_codes_and_formats() {
    let open = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_addr = open.local_addr().unwrap();
    let closed = format!("127.0.0.1:{}", closed_port());
    let dir = tempfile::tempdir().unwrap();

    let passing = write_suite(
        dir.path(),
        &format!(
            "[[check]]\nname = \"open port answers\"\ntcpping = \"{open_addr}\"\nexpect = {{ reachable = true, source_in = \"127.0.0.0/8\" }}\n\n\
             [[check]]\nname = \"closed port is denied\"\ntcpping = \"{closed}\"\nexpect = {{ denied = true }}\n"
        ),
    );
    let path = passing.to_str().unwrap();
    let out = smoke(&["--config", path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("✓ open port answers") && stdout.contains("2 passed, 0 failed"),
        "{stdout}"
    );

    let junit = dir.path().join("report.xml");
    let out = smoke(&[
        "--config",
        path,
        "--format",
        "junit",
        "--output",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="2" failures="0""#), "{xml}");

    let failing = write_suite(
        dir.path(),
        &format!(
            "[[check]]\nname = \"closed port must answer\"\ntcpping = \"{closed}\"\nexpect = {{ reachable = true }}\n"
        ),
    );
    let out = smoke(&["--config", failing.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failed"], 1);
    assert_eq!(report["results"][0]["code"], "connect_refused");

    let broken = write_suite(
        dir.path(),
        "[[check]]\nname = \"no action\"\nexpect = { ok = true }\n",
    );
    let out = smoke(&["--config", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exactly one action"));

    let out = smoke(&[
        "--config",
        dir.path().join("missing.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("infra/smoke/"),
        "a missing suite says where to find one"
    );
    drop(open);
}

#[tokio::test]
async fn an_app_that_does_not_answer_is_reported_with_the_cause() {
    let closed = format!("127.0.0.1:{}", closed_port());
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        &format!(
            "[apps.frontend]\nurl = \"http://{closed}\"\ntoken_env = \"LOCKDOWN_TEST_DIAG_TOKEN\"\n\n\
             [[check]]\nname = \"from the app\"\nfrom = \"frontend\"\nresolve = \"example.test\"\nexpect = {{ ok = true }}\n"
        ),
    );
    let out = smoke_with_env(
        &["--format", "json", "--config", suite.to_str().unwrap()],
        &[("LOCKDOWN_TEST_DIAG_TOKEN", "t")],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let result = &report["results"][0];
    assert_eq!(result["code"], "diag_unreachable");
    let diagnosis = result["diagnosis"].as_str().unwrap().to_lowercase();
    assert!(diagnosis.contains("refused"), "{diagnosis}");
}

#[tokio::test]
async fn a_missing_token_variable_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        "[apps.frontend]\nurl = \"http://127.0.0.1:9\"\ntoken_env = \"LOCKDOWN_TEST_TOKEN_THAT_IS_NOT_SET\"\n\n\
         [[check]]\nname = \"from the app\"\nfrom = \"frontend\"\nresolve = \"example.test\"\nexpect = { ok = true }\n",
    );
    let out = smoke(&["--config", suite.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOCKDOWN_TEST_TOKEN_THAT_IS_NOT_SET"));
}

/// `tls` checks from here and through an app's `/diag/tls`: the real PostgreSQL (when installed)
/// by its certificate's name and by address, a port that is not PostgreSQL, and a must-not-reach
/// port.
#[tokio::test]
async fn tls_checks_prove_what_answers() {
    use probe::smoke::{RunOptions, SmokeConfig, Verdict};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_addr = plain.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = plain.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
        }
    });
    let closed = closed_port();
    let cluster = test_support::postgres::cluster();
    let dns = test_support::spawn_dns().await;
    let mut config = test_support::DiagConfig::new(dns.resolver(), Some("127.0.0.0/8"));
    if let Some(cluster) = cluster {
        config.tls_extra_roots = vec![CertificateDer::from_pem_file(&cluster.ca_file).unwrap()];
    }
    let diag = test_support::spawn_diag(config).await;

    let mut suite = format!(
        "[here]\ndns_servers = [\"{}\"]\n{}\n[apps.probe]\nurl = \"{}\"\ntoken_env = \"PROBE_DIAG_TOKEN\"\n\n\
         [[check]]\nname = \"not postgres\"\ntls = \"{plain_addr}\"\nsni = \"svc.lockdown.test\"\nprotocol = \"postgres\"\nexpect = {{ ok = true }}\n\n\
         [[check]]\nname = \"closed from the app\"\nfrom = \"probe\"\ntls = \"127.0.0.1:{closed}\"\nexpect = {{ denied = true }}\n\n",
        dns.addr,
        cluster.map_or(String::new(), |c| format!(
            "ca_file = \"{}\"",
            c.ca_file.display()
        )),
        diag.base,
    );
    if let Some(cluster) = cluster {
        let host = test_support::postgres::PG_HOST;
        let port = cluster.port;
        suite += &format!(
            "[[check]]\nname = \"pg by name\"\ntls = \"127.0.0.1:{port}\"\nsni = \"{host}\"\nprotocol = \"postgres\"\nexpect = {{ ok = true }}\n\n\
             [[check]]\nname = \"pg by name from the app\"\nfrom = \"probe\"\ntls = \"127.0.0.1:{port}\"\nsni = \"{host}\"\nprotocol = \"postgres\"\nexpect = {{ ok = true }}\n\n\
             [[check]]\nname = \"pg by address\"\ntls = \"127.0.0.1:{port}\"\nprotocol = \"postgres\"\nexpect = {{ ok = true }}\n\n"
        );
    }
    let config = SmokeConfig::from_toml(&suite).unwrap();
    let options = RunOptions {
        tokens: [(
            "PROBE_DIAG_TOKEN".to_owned(),
            test_support::TOKEN.to_owned(),
        )]
        .into(),
        ..RunOptions::default()
    };
    let report = probe::smoke::run(&config, &options).await.unwrap();
    let result = |name: &str| {
        report
            .results
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let not_pg = result("not postgres");
    assert_eq!(not_pg.verdict, Verdict::Fail, "{not_pg:?}");
    assert_eq!(not_pg.code.as_deref(), Some("not_postgres"), "{not_pg:?}");
    assert_eq!(not_pg.action, "tls");
    let closed_check = result("closed from the app");
    assert_eq!(closed_check.verdict, Verdict::Pass, "{closed_check:?}");
    if cluster.is_some() {
        for name in ["pg by name", "pg by name from the app"] {
            let r = result(name);
            assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
            assert!(r.evidence[0].contains("SSLRequest answered S"), "{r:?}");
            assert!(r.evidence[0].contains("verified"), "{r:?}");
        }
        let by_address = result("pg by address");
        assert_eq!(
            by_address.code.as_deref(),
            Some("called_by_address"),
            "{by_address:?}"
        );
        assert!(
            by_address
                .diagnosis
                .as_deref()
                .unwrap()
                .contains("public name")
        );
    }
}

/// `env = true` with `keyvault_resolved = true`: an app whose settings still hold a literal
/// `@Microsoft.KeyVault(…)` fails with the names (never the values); a clean one passes.
#[tokio::test]
async fn unresolved_key_vault_references_fail_the_env_check() {
    use probe::smoke::{RunOptions, SmokeConfig, Verdict};
    use std::collections::HashMap;

    let dns = test_support::spawn_dns().await;
    let mut broken = test_support::DiagConfig::new(dns.resolver(), None);
    broken.env = HashMap::from([
        (
            "BACKEND_API_KEY".to_owned(),
            "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/api-key/)"
                .to_owned(),
        ),
        ("API_KEYS".to_owned(), "resolved-s3cr3t".to_owned()),
    ]);
    let broken = test_support::spawn_diag(broken).await;
    let clean = test_support::spawn_diag(test_support::DiagConfig::new(dns.resolver(), None)).await;
    let (_, env) = broken.get_json("/diag/env").await;
    assert_eq!(
        env["facts"]["keyvault_references"],
        serde_json::json!(["BACKEND_API_KEY"])
    );
    assert!(!env.to_string().contains("SecretUri") && !env.to_string().contains("s3cr3t"));

    let suite = format!(
        "[apps.broken]\nurl = \"{}\"\ntoken_env = \"T\"\n\n[apps.clean]\nurl = \"{}\"\ntoken_env = \"T\"\n\n\
         [[check]]\nname = \"broken\"\nfrom = \"broken\"\nenv = true\nexpect = {{ keyvault_resolved = true }}\n\n\
         [[check]]\nname = \"clean\"\nfrom = \"clean\"\nenv = true\nexpect = {{ keyvault_resolved = true }}\n",
        broken.base, clean.base
    );
    let config = SmokeConfig::from_toml(&suite).unwrap();
    let options = RunOptions {
        tokens: [("T".to_owned(), test_support::TOKEN.to_owned())].into(),
        ..RunOptions::default()
    };
    let report = probe::smoke::run(&config, &options).await.unwrap();
    let broken = &report.results[0];
    assert_eq!(broken.verdict, Verdict::Fail, "{broken:?}");
    assert_eq!(
        broken.code.as_deref(),
        Some("keyvault_reference_unresolved")
    );
    assert_eq!(broken.action, "env");
    let diagnosis = broken.diagnosis.as_deref().unwrap();
    assert!(
        diagnosis.contains("BACKEND_API_KEY") && !diagnosis.contains("SecretUri"),
        "{diagnosis}"
    );
    assert_eq!(
        report.results[1].verdict,
        Verdict::Pass,
        "{:?}",
        report.results[1]
    );
}

/// An app whose `/diag` rate bound is far below the suite's size: the runner waits as the app's
/// `Retry-After` says, as often as needed, so every check gets its result (a single wait used
/// to turn most of them into `diag_rate_limited`).
#[tokio::test]
async fn a_suite_larger_than_the_apps_diag_rate_is_paced_not_lost() {
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = target.local_addr().unwrap().port();
    let _accepting = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = target.accept().await {
            held.push(stream);
        }
    });
    let resolver = diag::DnsResolver::with_servers(
        vec!["127.0.0.1:9".parse().unwrap()],
        std::time::Duration::from_millis(300),
    )
    .unwrap();
    let mut config = test_support::DiagConfig::new(resolver, Some("127.0.0.0/8"));
    config.limits.burst = 2;
    config.limits.per_second = 2.0;
    config.env = [("WEBSITE_INSTANCE_ID".to_owned(), "i-1".to_owned())].into();
    let app = test_support::spawn_diag(config).await;
    let mut suite = format!(
        "[apps.app]\nurl = \"{}\"\ntoken_env = \"PACED_TOKEN\"\n",
        app.base
    );
    for n in 0..8 {
        suite += &format!(
            "\n[[check]]\nname = \"check {n}\"\nfrom = \"app\"\ntcpping = \"127.0.0.1:{port}\"\nexpect = {{ reachable = true }}\n"
        );
    }
    let config = probe::smoke::SmokeConfig::from_toml(&suite).unwrap();
    let options = probe::smoke::RunOptions {
        tokens: [("PACED_TOKEN".to_owned(), test_support::TOKEN.to_owned())].into(),
        ..probe::smoke::RunOptions::default()
    };
    let report = probe::smoke::run(&config, &options).await.unwrap();
    let failed: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.verdict != probe::smoke::Verdict::Pass)
        .map(|r| (r.name.clone(), r.code.clone()))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(report.results.len(), 8);
}
