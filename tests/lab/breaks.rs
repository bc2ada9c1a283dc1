//! Every entry of the misconfiguration catalogue makes the suite fail on the right checks, with
//! the right diagnosis codes, and nothing else fails.

use lockdown::suite::checks::{
    CALLER, DB_DENIED, DB_REACH, DB_RESOLVE, DB_TLS, DENIED, EGRESS, KV_BACKEND, REACH, RESOLVE,
};
use lockdown::{Break, LabOptions, Mode, Plan};

use crate::helpers::*;

/// The mode each break runs in, and the checks it must fail with their codes (the data tier's
/// breaks on the lab on PostgreSQL: `database.rs`).
pub fn expected(b: Break) -> (Mode, Vec<(&'static str, &'static str)>) {
    use Break::*;
    let se = Mode::ServiceEndpoint;
    let pe = Mode::PrivateEndpoint;
    match b {
        // Checks run in the back end through the front end cannot reach it either.
        FrontendNotIntegrated => (
            se,
            vec![
                (CALLER, "access_restricted"),
                (EGRESS, "egress_not_in_subnet"),
                (KV_BACKEND, "access_restricted"),
                (REACH, "access_restricted"),
            ],
        ),
        NoAccessRestriction => (se, vec![(DENIED, "reachable_but_should_be_denied")]),
        WrongSubnet => (
            se,
            vec![
                (CALLER, "access_restricted"),
                (KV_BACKEND, "access_restricted"),
                (REACH, "access_restricted"),
            ],
        ),
        PeDnsNotLinked => (
            pe,
            vec![
                (CALLER, "public_access_disabled"),
                (KV_BACKEND, "public_access_disabled"),
                (REACH, "public_access_disabled"),
                (RESOLVE, "unexpected_address"),
            ],
        ),
        PePublicAccess => (pe, vec![(DENIED, "reachable_but_should_be_denied")]),
        DnsDown => (
            se,
            vec![
                (CALLER, "dns_failure"),
                (EGRESS, "dns_failure"),
                (KV_BACKEND, "dns_failure"),
                (REACH, "dns_failure"),
                (RESOLVE, "dns_failure"),
            ],
        ),
        EgressBlocked => (
            se,
            vec![
                (CALLER, "connect_timeout"),
                (EGRESS, "connect_timeout"),
                (KV_BACKEND, "connect_timeout"),
                (REACH, "connect_timeout"),
            ],
        ),
        // The nginx 503 of an app with no instance answering.
        BackendDown => (
            se,
            vec![
                (CALLER, "app_unavailable"),
                (KV_BACKEND, "app_unavailable"),
                (REACH, "app_unavailable"),
            ],
        ),
        BadCredential => (se, vec![(CALLER, "backend_unauthorized")]),
        // The status line and x-ms-forbidden-ip still tell App Service's denial from the app's
        // own 403: the internet stays denied and nothing fails.
        CustomErrorPages => (se, vec![]),
        // The gateway refuses the front end too; the internet is refused as well, which is what
        // the denial check asks.
        GatewayInFront => (
            se,
            vec![
                (CALLER, "gateway_refused"),
                (KV_BACKEND, "gateway_refused"),
                (REACH, "gateway_refused"),
            ],
        ),
        // The name goes through privatelink, but public DNS answers it with the public
        // endpoint, which refuses the back end as it refuses everyone.
        DbDnsNotLinked => (
            pe,
            vec![
                (DB_REACH, "connect_refused"),
                (DB_RESOLVE, "unexpected_address"),
                (DB_TLS, "connect_refused"),
            ],
        ),
        DbPublicAccess => (pe, vec![(DB_DENIED, "reachable_but_should_be_denied")]),
        // The back end refuses its DATABASE_URL at start-up: no instance answers.
        DbByAddress => (
            pe,
            vec![
                (CALLER, "app_unavailable"),
                (DB_REACH, "app_unavailable"),
                (DB_RESOLVE, "app_unavailable"),
                (DB_TLS, "app_unavailable"),
                (KV_BACKEND, "app_unavailable"),
                (REACH, "app_unavailable"),
            ],
        ),
        DbEgressBlocked => (
            pe,
            vec![(DB_REACH, "connect_timeout"), (DB_TLS, "connect_timeout")],
        ),
        // The back end takes the literal reference as its key: the front end's is refused.
        KvReferenceUnresolved => (
            se,
            vec![
                (CALLER, "backend_unauthorized"),
                (KV_BACKEND, "keyvault_reference_unresolved"),
            ],
        ),
        FdNoFdidCheck | FdDirectOpen | ScmOpen | ScmBlocksDeploy | SlotOpen => {
            unreachable!("whole-site breaks need --front: tests/lab/site.rs")
        }
    }
}

async fn assert_break(b: Break, mode: Mode, want: &[(&str, &str)]) {
    assert_break_with(LabOptions::new(Plan::new(mode, &[b]).unwrap(), 0), b, want).await;
}

/// The lab of `options` (with `b` in its plan) fails exactly `want`.
pub async fn assert_break_with(options: LabOptions, b: Break, want: &[(&str, &str)]) {
    let mode = options.plan.mode;
    let lab = start_with(options).await;
    let report = smoke(&lab).await;
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(c, code)| ((*c).to_owned(), (*code).to_owned()))
        .collect();
    want.sort();
    assert_eq!(
        failing_checks(&report),
        want,
        "--break {b} --mode {mode}:\n{}",
        report.render_text(false)
    );
    for failure in report.failures() {
        let diagnosis = failure.diagnosis.as_deref().unwrap_or_default();
        assert!(
            diagnosis.len() > 40,
            "a diagnosis in plain words, not a code: {diagnosis:?}"
        );
    }
}

// Its labs run at once: on all cores, not all on the test's one thread (where their 1 s DNS
// and 1.5 s check timeouts would measure each other's work).
#[tokio::test(flavor = "multi_thread")]
async fn every_break_fails_the_right_checks_with_the_right_code() {
    let runs = Break::ALL
        .into_iter()
        .filter(|b| !b.needs_database() && b.front().is_none())
        .map(|b| {
            let (mode, want) = expected(b);
            tokio::spawn(async move { assert_break(b, mode, &want).await })
        });
    for run in runs.collect::<Vec<_>>() {
        if let Err(panic) = run.await {
            std::panic::resume_unwind(panic.into_panic());
        }
    }
}

#[tokio::test]
async fn breaks_for_either_mode_also_fail_in_private_endpoint_mode() {
    assert_break(Break::CustomErrorPages, Mode::PrivateEndpoint, &[]).await;
    assert_break(
        Break::GatewayInFront,
        Mode::PrivateEndpoint,
        &[
            (CALLER, "gateway_refused"),
            (KV_BACKEND, "gateway_refused"),
            (REACH, "gateway_refused"),
        ],
    )
    .await;
    assert_break(
        Break::BadCredential,
        Mode::PrivateEndpoint,
        &[(CALLER, "backend_unauthorized")],
    )
    .await;
    assert_break(
        Break::DnsDown,
        Mode::PrivateEndpoint,
        &[
            (CALLER, "dns_failure"),
            (EGRESS, "dns_failure"),
            (KV_BACKEND, "dns_failure"),
            (REACH, "dns_failure"),
            (RESOLVE, "dns_failure"),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_access_restriction_is_told_apart_by_where_the_call_left_from() {
    // x-ms-forbidden-ip tells: the service-endpoint form of an integration-subnet address came
    // through the endpoint (the rule is wrong); a plain IPv4 did not leave through the VNet.
    for (b, says) in [
        (
            Break::FrontendNotIntegrated,
            "coming from 127.0.0.1: not a service-endpoint address, so the call did not come through the integration subnet's service endpoint",
        ),
        (Break::WrongSubnet, "the service-endpoint form of 127.0.2."),
        (
            Break::WrongSubnet,
            "so that subnet has the endpoint and the rule does not allow it",
        ),
    ] {
        let lab = start(Mode::ServiceEndpoint, &[b]).await;
        let report = smoke(&lab).await;
        let reach: Vec<_> = report.results.iter().filter(|r| r.name == REACH).collect();
        assert!(!reach.is_empty());
        for result in reach {
            let diagnosis = result.diagnosis.as_deref().unwrap_or_default();
            assert!(diagnosis.contains(says), "--break {b}: {diagnosis}");
        }
    }
}
