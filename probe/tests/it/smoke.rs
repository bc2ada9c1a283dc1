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

/// Every diagnosis code `probe smoke` can report has a row in docs/deploy.md's troubleshooting
/// tables: the snake_case string literals of the evaluator, the runner and the platform-page
/// classifier, but for the few that are JSON keys or another program's codes.
#[test]
fn every_diagnosis_code_is_documented() {
    const NOT_CODES: [&str; 7] = [
        "app_id",
        "client_ip",
        "interval_ms",
        "object_id",
        "snake_case",
        "target_denied",
        "timeout_ms",
    ];
    let docs = include_str!("../../../docs/deploy.md");
    let sources = [
        include_str!("../../src/smoke/evaluate.rs"),
        include_str!("../../src/smoke/run.rs"),
        include_str!("../../../diag/src/appservice.rs"),
    ];
    let mut codes: Vec<String> = sources
        .iter()
        .flat_map(|source| string_literals(source.split("#[cfg(test)]").next().unwrap()))
        .filter(|s| {
            s.contains('_')
                && !s.starts_with('_')
                && !s.ends_with('_')
                && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .filter(|s| !NOT_CODES.contains(&s.as_str()))
        .collect();
    codes.sort();
    codes.dedup();
    assert!(codes.len() > 20, "the scan found too few codes: {codes:?}");
    let missing: Vec<_> = codes
        .iter()
        .filter(|code| !docs.contains(&format!("`{code}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/deploy.md's troubleshooting tables: {missing:?} (document them, or list JSON keys in NOT_CODES)"
    );
}

/// The contents of the string literals in Rust source (escapes kept as written).
fn string_literals(source: &str) -> Vec<String> {
    let mut literals = Vec::new();
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A char literal such as '"' is not the start of a string.
            '\'' if chars.peek() == Some(&'"') => {
                chars.next();
            }
            '"' => {
                let mut literal = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        c => literal.push(c),
                    }
                }
                literals.push(literal);
            }
            _ => {}
        }
    }
    literals
}
