//! The whole site (`--front`): Front Door or an Application Gateway in front of the front end,
//! the back end's SCM site and staging slot. Both fronts pass their suite; each whole-site break
//! fails exactly its checks with the right code and the suite's next step; the front end sees
//! its client through Front Door as the client, not the edge.

use lockdown::front::checks::*;
use lockdown::front::{FRONT_DOOR_ID, OTHER_FRONT_DOOR_ID};
use lockdown::gateway::GATEWAY_SERVER;
use lockdown::suite::checks::{CALLER, DENIED, EGRESS, REACH, RESOLVE};
use lockdown::{Break, Front, Lab, LabOptions, Mode, Plan};

use crate::helpers::*;

async fn start_site(front: Front, breaks: &[Break]) -> TestLab {
    let plan = Plan::new(Mode::ServiceEndpoint, breaks)
        .unwrap()
        .with_front(front)
        .unwrap();
    start_with(LabOptions::new(plan, 0)).await
}

fn names(report: &probe::smoke::SuiteReport) -> Vec<&str> {
    let mut names: Vec<&str> = report.results.iter().map(|r| r.name.as_str()).collect();
    names.dedup();
    names
}

#[tokio::test]
async fn each_front_passes_its_whole_site_suite() {
    let common = [
        RESOLVE,
        EGRESS,
        REACH,
        CALLER,
        DENIED,
        SCM_DENIED,
        SCM_DEPLOY,
        SLOT_DENIED,
        SLOT_REACH,
    ];
    for (front, own, results) in [
        (
            Front::FrontDoor,
            &[FD_REACH, FD_DIRECT, FD_FORGED, FD_OTHER][..],
            18,
        ),
        (Front::AppGateway, &[GW_REACH, GW_DIRECT][..], 16),
    ] {
        let lab = start_site(front, &[]).await;
        let report = smoke(&lab).await;
        assert!(
            report.all_passed(),
            "{front}:\n{}",
            report.render_text(false)
        );
        let seen = names(&report);
        for name in common.iter().chain(own) {
            assert!(seen.contains(name), "{front}: {name} missing from {seen:?}");
        }
        // The slot's reach fans out over both front-end instances.
        assert_eq!(
            report.results.len(),
            results,
            "{}",
            report.render_text(false)
        );
        let slot = report
            .results
            .iter()
            .find(|r| r.name == SLOT_DENIED)
            .unwrap();
        assert!(
            slot.target.contains("app-be-staging.azurewebsites.net"),
            "{slot:?}"
        );
        let deploy = report
            .results
            .iter()
            .find(|r| r.name == SCM_DEPLOY)
            .unwrap();
        assert_eq!(deploy.from, "runner");
    }
}

fn expected(b: Break) -> Vec<(&'static str, &'static str)> {
    const OPEN: &str = "reachable_but_should_be_denied";
    match b {
        Break::FdNoFdidCheck => vec![(FD_OTHER, OPEN)],
        // No rule at all: the direct call, a forged id and another profile all get in.
        Break::FdDirectOpen => vec![(FD_FORGED, OPEN), (FD_OTHER, OPEN), (FD_DIRECT, OPEN)],
        Break::ScmOpen => vec![(SCM_DENIED, OPEN)],
        // The SCM site takes the main site's rules, which allow only the integration subnet.
        Break::ScmBlocksDeploy => vec![(SCM_DEPLOY, "access_restricted")],
        Break::SlotOpen => vec![(SLOT_DENIED, OPEN)],
        other => panic!("{other} is not a whole-site break"),
    }
}

/// The words of the suite's hint that must end each failure's diagnosis.
fn says(b: Break) -> &'static str {
    match b {
        Break::FdNoFdidCheck => "add an X-Azure-FDID header filter",
        Break::FdDirectOpen => "AzureFrontDoor.Backend service tag",
        Break::ScmOpen => "scmIpSecurityRestrictionsDefaultAction Deny",
        Break::ScmBlocksDeploy => "allow the deploy runner's address",
        Break::SlotOpen => "A slot is a site of its own",
        _ => unreachable!(),
    }
}

// Its labs run at once: on all cores, not all on the test's one thread (where their 1 s DNS
// and 1.5 s check timeouts would measure each other's work).
#[tokio::test(flavor = "multi_thread")]
async fn every_site_break_fails_exactly_its_checks_with_the_next_step() {
    let site_breaks = Break::ALL.into_iter().filter(|b| b.front().is_some());
    let runs = site_breaks.map(|b| {
        tokio::spawn(async move {
            let lab = start_site(Front::FrontDoor, &[b]).await;
            let report = smoke(&lab).await;
            let mut want: Vec<(String, String)> = expected(b)
                .iter()
                .map(|(c, code)| ((*c).to_owned(), (*code).to_owned()))
                .collect();
            want.sort();
            assert_eq!(
                failing_checks(&report),
                want,
                "--break {b}:\n{}",
                report.render_text(false)
            );
            for failure in report.failures() {
                let diagnosis = failure.diagnosis.as_deref().unwrap_or_default();
                assert!(
                    diagnosis.contains(says(b)) || b == Break::FdDirectOpen,
                    "{b}: {diagnosis}"
                );
            }
        })
    });
    let runs: Vec<_> = runs.collect();
    assert_eq!(runs.len(), 5);
    for run in runs {
        if let Err(panic) = run.await {
            std::panic::resume_unwind(panic.into_panic());
        }
    }
}

#[tokio::test]
async fn site_breaks_need_a_front() {
    let plan = Plan::new(Mode::ServiceEndpoint, &[Break::ScmOpen]).unwrap();
    let error = Lab::start(LabOptions::new(plan, 0)).await.unwrap_err();
    assert!(error.to_string().contains("needs --front"), "{error}");
    let error = Plan::new(Mode::ServiceEndpoint, &[Break::FdNoFdidCheck])
        .unwrap()
        .with_front(Front::AppGateway)
        .unwrap_err();
    assert!(error.to_string().contains("--front front-door"), "{error}");
}

#[tokio::test]
async fn through_front_door_the_front_end_sees_the_client_not_the_edge() {
    let lab = start_site(Front::FrontDoor, &[Break::FdNoFdidCheck]).await;
    let site = lab.site.as_ref().unwrap();
    assert!(
        site.health
            .lock()
            .unwrap()
            .as_deref()
            .unwrap()
            .starts_with("200"),
        "Front Door's health probe reaches /healthz through the FDID rule"
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    // A client claiming another address (Front Door copies it into X-Azure-ClientIP).
    let ours = client
        .get(format!("{}/api/path", site.edge_url))
        .header("x-forwarded-for", "192.0.2.66")
        .header("x-azure-fdid", OTHER_FRONT_DOOR_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(ours.status(), 200);
    assert!(ours.headers().contains_key("x-azure-ref"));
    assert_eq!(ours.headers()["x-cache"], "CONFIG_NOCACHE");
    let path: serde_json::Value = ours.json().await.unwrap();
    let front = &path["front"];
    assert_eq!(
        front["via"], "front_door",
        "Front Door overwrites a client's X-Azure-FDID: {front}"
    );
    assert_eq!(front["front_door_id"], FRONT_DOOR_ID);
    assert_eq!(front["client_ip"], "127.0.0.1");
    assert_eq!(front["client_ip_source"], "x-azure-socketip");
    assert_eq!(front["claimed_client_ip"], "192.0.2.66");
    assert_eq!(
        front["edge_ip"], "127.0.5.10",
        "App Service's X-Client-IP is the edge"
    );
    assert_eq!(front["public_origin"], site.edge_url);
    assert_eq!(path["verdict"], "locked", "{path:#}");

    // With the tag alone, another customer's profile gets in — and the front end says so.
    let theirs: serde_json::Value = client
        .get(format!(
            "{}/api/path",
            site.other_edge_url.as_deref().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["front"]["via"], "other_front_door");
    assert_eq!(theirs["front"]["trusted"], false);
    assert_eq!(theirs["verdict"], "broken");
    assert!(
        theirs["summary"]
            .as_str()
            .unwrap()
            .contains("another Front Door profile"),
        "{theirs:#}"
    );
}

#[tokio::test]
async fn the_gateway_answers_what_its_waf_blocks_with_its_own_403() {
    let lab = start_site(Front::AppGateway, &[]).await;
    let site = lab.site.as_ref().unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let blocked = client
        .get(format!("{}/?q=<script>alert(1)</script>", site.edge_url))
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 403);
    assert_eq!(blocked.headers()["server"], GATEWAY_SERVER);
    let through: serde_json::Value = client
        .get(format!("{}/api/path", site.edge_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Not behind Front Door: no front_door line, and App Service saw the gateway's subnet.
    assert_eq!(through["front"]["via"], "direct");
    assert!(
        through["front"]["edge_ip"]
            .as_str()
            .unwrap()
            .starts_with("fde4:8dba:"),
        "the gateway's subnet reaches the front end through its service endpoint: {through:#}"
    );
    assert_eq!(through["verdict"], "locked");
}
