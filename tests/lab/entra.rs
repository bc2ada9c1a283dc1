//! The lab with `--auth entra`: a fake Entra ID on loopback (keys generated at start), the front
//! end calling with its managed-identity token, the back end checking it; the suite proves the
//! back end let the front end in by its token and refuses a call without one.

use lockdown::suite::checks::{CALLER, KV_BACKEND, NO_TOKEN, REACH};
use lockdown::{Break, LabAuth, LabOptions, Mode, Plan};

use crate::helpers::*;

async fn start_entra(mode: Mode, breaks: &[Break]) -> TestLab {
    start_with(LabOptions {
        auth: LabAuth::Entra,
        ..LabOptions::new(Plan::new(mode, breaks).unwrap(), 0)
    })
    .await
}

#[tokio::test]
async fn both_modes_pass_with_entra_tokens() {
    for mode in [Mode::ServiceEndpoint, Mode::PrivateEndpoint] {
        let lab = start_entra(mode, &[]).await;
        assert!(lab.entra_authority.is_some());
        let report = smoke(&lab).await;
        assert!(
            report.all_passed(),
            "{mode}:\n{}",
            report.render_text(false)
        );
        // The default 7 checks (9 results) plus the refusal without a token.
        assert_eq!(report.results.len(), 10, "{}", report.render_text(false));
        let caller = report.results.iter().find(|r| r.name == CALLER).unwrap();
        let evidence = caller.evidence.join(" ");
        assert!(
            evidence.contains(&format!(
                "by entra (application {}, object {})",
                fake_entra::FRONTEND_CLIENT_ID,
                fake_entra::FRONTEND_OBJECT_ID
            )),
            "{evidence}"
        );
        let refusal = report.results.iter().find(|r| r.name == NO_TOKEN).unwrap();
        assert!(
            refusal
                .evidence
                .join(" ")
                .contains("the app refused with missing_token"),
            "{:?}",
            refusal.evidence
        );
    }
}

#[tokio::test]
async fn a_token_for_another_resource_is_a_wrong_audience() {
    let lab = start_entra(Mode::ServiceEndpoint, &[Break::BadCredential]).await;
    let report = smoke(&lab).await;
    assert_eq!(
        failing_checks(&report),
        [(CALLER.to_owned(), "wrong_audience".to_owned())],
        "{}",
        report.render_text(false)
    );
    let failure = report.failures().next().unwrap();
    assert!(
        failure
            .diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("BACKEND_TOKEN_RESOURCE"),
        "{failure:?}"
    );
}

#[tokio::test]
async fn a_back_end_that_is_down_fails_the_token_check_too() {
    let lab = start_entra(Mode::ServiceEndpoint, &[Break::BackendDown]).await;
    let report = smoke(&lab).await;
    assert_eq!(
        failing_checks(&report),
        [
            (NO_TOKEN.to_owned(), "app_unavailable".to_owned()),
            (CALLER.to_owned(), "app_unavailable".to_owned()),
            (KV_BACKEND.to_owned(), "app_unavailable".to_owned()),
            (REACH.to_owned(), "app_unavailable".to_owned()),
        ],
        "{}",
        report.render_text(false)
    );
}
