//! The whole suite with unique default host names (`--unique-hostnames`): every mode passes,
//! every break fails the same checks with the same codes as with classic names, and the private
//! endpoint is recognised through the region's privatelink name.

use std::process::Command;

use lockdown::suite::checks;
use lockdown::topology::HostNames;
use lockdown::{Break, Front, LabAuth, LabOptions, Mode, Plan};

use crate::helpers::*;

async fn start_named(mode: Mode, breaks: &[Break], hosts: HostNames, auth: LabAuth) -> TestLab {
    // A whole-site break runs behind the first front it fits (its SCM site and slot are named
    // after the back end's host name too).
    let front = breaks
        .iter()
        .find_map(|b| b.front())
        .map_or(Front::None, |fronts| fronts[0]);
    let plan = Plan::new(mode, breaks).unwrap().with_front(front).unwrap();
    start_with(LabOptions {
        hosts,
        auth,
        ..LabOptions::new(plan, 0)
    })
    .await
}

#[tokio::test]
async fn every_mode_and_credential_passes_with_unique_host_names() {
    for mode in [Mode::ServiceEndpoint, Mode::PrivateEndpoint] {
        for auth in [LabAuth::ApiKey, LabAuth::Entra] {
            let lab = start_named(mode, &[], HostNames::unique(), auth).await;
            assert!(
                lab.backend_url
                    .contains(".westeurope-01.azurewebsites.net:"),
                "{}",
                lab.backend_url
            );
            let report = smoke(&lab).await;
            assert!(
                report.all_passed(),
                "{mode} {auth}:\n{}",
                report.render_text(false)
            );
        }
    }
}

#[tokio::test]
async fn the_private_endpoint_is_seen_through_the_regions_privatelink_name() {
    let hosts = HostNames::unique();
    let lab = start_named(Mode::PrivateEndpoint, &[], hosts.clone(), LabAuth::ApiKey).await;
    let report = smoke(&lab).await;
    let resolve = report
        .results
        .iter()
        .find(|r| r.name == checks::RESOLVE)
        .unwrap();
    let evidence = resolve.evidence.join(" ");
    assert!(
        evidence.contains(&format!("CNAME {}", hosts.backend_privatelink)),
        "{evidence}"
    );
    assert!(evidence.contains("127.0.3.4"), "{evidence}");
}

#[tokio::test]
async fn every_break_fails_the_same_checks_as_with_classic_names() {
    // The data tier's names are the database's, whatever the apps are called (database.rs).
    for b in Break::ALL.into_iter().filter(|b| !b.needs_database()) {
        let mode = b.mode().unwrap_or(Mode::ServiceEndpoint);
        let classic = start_named(mode, &[b], HostNames::classic(), LabAuth::ApiKey).await;
        let expected = failing_checks(&smoke(&classic).await);
        drop(classic);
        let unique = start_named(mode, &[b], HostNames::unique(), LabAuth::ApiKey).await;
        let report = smoke(&unique).await;
        // custom-error-pages leaves the lockdown whole: it must fail nothing, under any names.
        assert_eq!(
            expected.is_empty(),
            b == Break::CustomErrorPages,
            "{}: with classic names it fails {expected:?}",
            b.name()
        );
        assert_eq!(
            failing_checks(&report),
            expected,
            "{}:\n{}",
            b.name(),
            report.render_text(false)
        );
    }
}

#[test]
fn the_flag_runs_the_suite_from_the_command_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_lockdown"))
        .args([
            "--once",
            "--port",
            "0",
            "--mode",
            "private-endpoint",
            "--unique-hostnames",
        ])
        .env_remove("RUST_LOG")
        .output()
        .expect("the lockdown binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&HostNames::unique().backend), "{stdout}");
    assert!(stdout.contains("0 failed"), "{stdout}");
}
