//! The default suite in both modes, the report formats, --wait, and the instance fan-out.

use std::time::Duration;

use lockdown::emulator::SiteNetworking;
use lockdown::suite::{checks, suite_toml};
use lockdown::topology::instance_id;
use lockdown::{Break, LabOptions, Mode, Plan};
use probe::smoke::{SmokeConfig, Verdict};

use crate::helpers::*;

#[tokio::test]
async fn both_modes_pass_the_default_suite() {
    for mode in [Mode::ServiceEndpoint, Mode::PrivateEndpoint] {
        let lab = start(mode, &[]).await;
        let report = smoke(&lab).await;
        assert!(
            report.all_passed(),
            "{mode}:\n{}",
            report.render_text(false)
        );
        // Two front-end instances fan out on two checks: 7 checks, 9 results.
        assert_eq!(report.results.len(), 9, "{}", report.render_text(false));
        let instances: Vec<_> = report
            .results
            .iter()
            .filter_map(|r| r.instance.clone())
            .collect();
        assert!(
            lab.frontend_instance_ids
                .iter()
                .all(|id| instances.contains(id)),
            "{instances:?}"
        );
        // Every answer from the front end says which instance gave it; pinned ones, the pinned one.
        for result in report.results.iter().filter(|r| r.from == "frontend") {
            let answered = result.answered_by.as_deref();
            assert!(
                answered.is_some_and(|id| lab.frontend_instance_ids.iter().any(|fe| fe == id)),
                "{result:?}"
            );
            if let Some(pinned) = &result.instance {
                assert_eq!(answered, Some(pinned.as_str()), "{result:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_pin_that_does_not_hold_fails_instead_of_reporting_another_instance() {
    // fe-9 does not exist: App Service (here its emulator) routes the call elsewhere.
    let lab = start(Mode::ServiceEndpoint, &[]).await;
    let (fe0, fe9) = (instance_id("fe-0"), instance_id("fe-9"));
    let toml = suite_toml(&lab).replace(
        "instances = \"all\"",
        &format!("instances = [\"{fe0}\", \"{fe9}\"]"),
    );
    let config = SmokeConfig::from_toml(&toml).unwrap();
    let report = probe::smoke::run(&config, &options(&lab)).await.unwrap();
    let pinned: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.instance.is_some())
        .map(|r| (r.instance.as_deref().unwrap(), r.verdict, r.code.as_deref()))
        .collect();
    assert_eq!(
        pinned,
        vec![
            (fe0.as_str(), Verdict::Pass, None),
            (fe9.as_str(), Verdict::Fail, Some("instance_not_pinned")),
            (fe0.as_str(), Verdict::Pass, None),
            (fe9.as_str(), Verdict::Fail, Some("instance_not_pinned")),
        ],
        "{}",
        report.render_text(false)
    );
    let gone = report
        .results
        .iter()
        .find(|r| r.instance.as_deref() == Some(fe9.as_str()))
        .unwrap();
    let diagnosis = gone.diagnosis.as_deref().unwrap();
    assert!(
        diagnosis.contains(&format!("instance {fe9}")) && diagnosis.contains("answered"),
        "{diagnosis}"
    );
    assert!(gone.answered_by.as_deref().is_some_and(|id| id != fe9));
}

#[tokio::test]
async fn private_endpoint_mode_resolves_through_privatelink() {
    let lab = start(Mode::PrivateEndpoint, &[]).await;
    let report = smoke(&lab).await;
    let resolve = report
        .results
        .iter()
        .find(|r| r.name == checks::RESOLVE)
        .unwrap();
    let evidence = resolve.evidence.join(" ");
    assert!(
        evidence.contains("CNAME app-be.privatelink.azurewebsites.net"),
        "{evidence}"
    );
    assert!(evidence.contains("127.0.3.4"), "{evidence}");
}

#[tokio::test]
async fn junit_output_parses_with_the_right_counts() {
    let lab = start(Mode::ServiceEndpoint, &[Break::NoAccessRestriction]).await;
    let report = smoke(&lab).await;
    let xml = report.render_junit();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures) = (0, 0);
    let mut suite_counts = None;
    loop {
        match reader
            .read_event()
            .expect("JUnit output is well-formed XML")
        {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                match e.name().into_inner() {
                    "testcase" => cases += 1,
                    "failure" => failures += 1,
                    "testsuite" => {
                        let attr = |name: &str| {
                            e.try_get_attribute(name)
                                .unwrap()
                                .map(|a| a.value.into_owned())
                        };
                        suite_counts = Some((attr("tests").unwrap(), attr("failures").unwrap()));
                    }
                    _ => {}
                }
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(cases, report.results.len());
    assert_eq!(failures, 1);
    assert_eq!(suite_counts, Some((cases.to_string(), "1".to_owned())));
}

#[tokio::test]
async fn wait_turns_a_check_green_when_the_lab_repairs_itself() {
    let lab = start(Mode::ServiceEndpoint, &[Break::NoAccessRestriction]).await;
    let correct = Plan::new(Mode::ServiceEndpoint, &[])
        .unwrap()
        .backend_networking;
    let site = lab.backend_site.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        site.set_networking(correct);
    });
    let config = SmokeConfig::from_toml(&lockdown::suite::suite_toml(&lab)).unwrap();
    let mut options = options(&lab);
    options.wait = Some(Duration::from_secs(20));
    let report = probe::smoke::run(&config, &options).await.unwrap();
    assert!(report.all_passed(), "{}", report.render_text(false));
    let denied = report
        .results
        .iter()
        .find(|r| r.name == checks::DENIED)
        .unwrap();
    assert!(
        denied.attempts > 1,
        "the check should have failed first, then passed"
    );
    let first_try = report
        .results
        .iter()
        .find(|r| r.name == checks::RESOLVE)
        .unwrap();
    assert_eq!(first_try.attempts, 1, "passing checks are not re-run");
}

#[tokio::test]
async fn without_wait_the_same_lab_fails() {
    // The counterpart of the test above: the break is real until repaired.
    let lab = start(Mode::ServiceEndpoint, &[Break::NoAccessRestriction]).await;
    assert!(!smoke(&lab).await.all_passed());
    lab.backend_site.set_networking(SiteNetworking::open());
}

#[tokio::test]
async fn fan_out_reports_a_broken_instance_on_its_own() {
    let mut options = LabOptions::new(Plan::new(Mode::ServiceEndpoint, &[]).unwrap(), 0);
    options.unintegrated_instances = vec![1];
    let lab = start_with(options).await;
    let report = smoke(&lab).await;
    // From here, the path report lands on whichever instance the front end's ARR picks, and so
    // do the checks run in the back end through the front end.
    let failed: Vec<_> = failures(&report)
        .into_iter()
        .filter(|(name, _, _)| name != checks::CALLER && name != checks::KV_BACKEND)
        .collect();
    assert_eq!(
        failed,
        vec![
            (
                checks::REACH.to_owned(),
                Some(instance_id("fe-1")),
                "access_restricted".to_owned()
            ),
            (
                checks::EGRESS.to_owned(),
                Some(instance_id("fe-1")),
                "egress_not_in_subnet".to_owned()
            ),
        ],
        "{}",
        report.render_text(false)
    );
    let healthy = report
        .results
        .iter()
        .filter(|r| r.instance.as_deref() == Some(instance_id("fe-0").as_str()));
    assert!(
        healthy.clone().count() == 2 && healthy.into_iter().all(|r| r.verdict == Verdict::Pass)
    );
}

#[tokio::test]
async fn diag_env_shows_the_settings_in_force_not_only_the_variables() {
    // The lab configures its apps in code, as flags would: no variable is set.
    let lab = start(Mode::ServiceEndpoint, &[]).await;
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/diag/env", lab.frontend_url))
        .bearer_auth(&lab.diag_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let env: serde_json::Value = response.json().await.unwrap();
    let facts = &env["facts"];
    let instance = facts["instance_id"].as_str().unwrap();
    assert!(
        lab.frontend_instance_ids.iter().any(|id| id == instance),
        "{facts}"
    );
    assert!(
        facts["outbound_source_addr"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("127.0.2.")),
        "{facts}"
    );
    assert_eq!(facts["auth"]["backend_auth"], "api-key", "{facts}");
    assert_eq!(
        facts["dns"]["dns_servers"],
        lab.vnet_dns.to_string(),
        "{facts}"
    );
    assert_eq!(facts["dns"]["dns_timeout_ms"], "1000", "{facts}");
}
