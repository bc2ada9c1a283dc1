//! The lab at more instances than two, a generated suite pinned round-robin over them (what
//! `lockdown-bench scale` runs at 100 instances), and a user's own suite through `--suite`.

use std::process::Command;

use lockdown::suite::{scale_suite, verify_scale};
use lockdown::{LabOptions, Mode, Plan};
use probe::smoke::SmokeConfig;

use crate::helpers::{options, start_with};

#[tokio::test]
async fn no_result_is_lost_or_swapped_between_instances() {
    let lab = start_with(LabOptions {
        frontend_instances: 5,
        backend_instances: 5,
        ..LabOptions::new(Plan::new(Mode::ServiceEndpoint, &[]).unwrap(), 0)
    })
    .await;
    assert_eq!(lab.frontend_instance_ids.len(), 5);
    let checks = 30;
    let config = SmokeConfig::from_toml(&scale_suite(&lab, checks)).unwrap();
    let report = probe::smoke::run(&config, &options(&lab)).await.unwrap();
    verify_scale(&lab, &report, checks).unwrap();

    // The verification itself catches a result reported for the wrong instance, a lost one and
    // a tcpping whose evidence came from another instance.
    let at = |name: &str| report.results.iter().position(|r| r.name == name).unwrap();
    let mut swapped = report.clone();
    let (c, d) = (at("check 3"), at("check 4"));
    swapped.results[c].answered_by = swapped.results[d].answered_by.clone();
    assert!(verify_scale(&lab, &swapped, checks).is_err());
    let mut lost = report.clone();
    lost.results.pop();
    assert!(verify_scale(&lab, &lost, checks).is_err());
    let mut foreign = report.clone();
    // Check 0 ran on instance 0, check 3 on instance 3: both are tcppings.
    let (a, b) = (at("check 0"), at("check 3"));
    foreign.results[a].facts.source = report.results[b].facts.source.clone();
    assert!(
        verify_scale(&lab, &foreign, checks)
            .unwrap_err()
            .contains("left from")
    );
}

fn lockdown(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lockdown"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the lockdown binary runs")
}

#[test]
fn a_users_suite_runs_against_the_lab_with_its_placeholders_filled_in() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("mine.toml");
    std::fs::write(
        &suite,
        r#"[apps.frontend]
url = "${LAB_FRONTEND_URL}"
token_env = "${LAB_TOKEN_ENV}"

[[check]]
name = "my check: every instance reaches the back end"
from = "frontend"
instances = "all"
tcpping = "${LAB_BACKEND_HOST}:${LAB_BACKEND_PORT}"
expect = { reachable = true, source_in = "${LAB_INTEGRATION_SUBNET}" }
"#,
    )
    .unwrap();
    let path = suite.to_str().unwrap();
    let out = lockdown(&[
        "--once",
        "--port",
        "0",
        "--instances",
        "3",
        "--suite",
        path,
        "--format",
        "json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "one result per instance: {stdout}");
    assert!(
        results
            .iter()
            .all(|r| r["name"] == "my check: every instance reaches the back end")
    );

    // A typo in a placeholder is a usage error, named.
    std::fs::write(
        &suite,
        "[[check]]\nname = \"x\"\ntcpping = \"${LAB_BACKEN}:1\"\nexpect = { reachable = true }\n",
    )
    .unwrap();
    let out = lockdown(&["--once", "--port", "0", "--suite", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LAB_BACKEN"));
    // So is a missing file, before the lab starts.
    let out = lockdown(&[
        "--once",
        "--port",
        "0",
        "--suite",
        "/nonexistent/suite.toml",
    ]);
    assert_eq!(out.status.code(), Some(2));
}
