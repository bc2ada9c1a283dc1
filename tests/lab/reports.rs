//! Reports as evidence, on the lab: the JSON report against its published schema, the baseline
//! comparison on pairs of runs, the evidence bundle's digests, and the HTML report as a browser
//! shows it.

use std::path::Path;
use std::process::Command;

use lockdown::suite::{checks, suite_toml};
use lockdown::topology::instance_id;
use lockdown::{Break, LabOptions, Mode, Plan};
use probe::smoke::compare::{ChangeKind, Comparison, compare};
use probe::smoke::evidence::{MANIFEST, verify_bundle};
use probe::smoke::html::{FAIL_COLOUR, PASS_COLOUR};
use probe::smoke::{SmokeConfig, SuiteReport};

use crate::helpers::*;

const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/smoke-report.schema.json");

/// True when Python's `jsonschema` is importable; CI installs it (`.ci/install-test-tools`), and
/// elsewhere the schema test says it is skipped, as the Chromium tests do.
fn have_jsonschema() -> bool {
    let present = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with jsonschema is required in CI"
        );
        eprintln!(
            "SKIPPED: python3's jsonschema is not installed (python3 -m pip install jsonschema)"
        );
    }
    present
}

/// Validates JSON files against the schema with Python's `jsonschema` (Draft 2020-12); returns
/// the validator's complaints per file. The Rust `jsonschema` crate was not taken: its tree
/// pulls far more than this one test needs.
fn schema_errors(files: &[&Path]) -> String {
    let script = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
for path in sys.argv[2:]:
    for error in validator.iter_errors(json.load(open(path))):
        print(f"{path}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(SCHEMA)
        .args(files)
        .output()
        .expect(
            "python3 runs (the schema test needs python3 with jsonschema: pip install jsonschema)",
        );
    assert!(
        output.status.success(),
        "the validator did not run (pip install jsonschema): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn report_of(mode: Mode, breaks: &[Break]) -> SuiteReport {
    let lab = start(mode, breaks).await;
    let report = smoke(&lab).await;
    lab.stop();
    report
}

#[tokio::test]
async fn reports_of_default_and_broken_runs_match_the_schema() {
    if !have_jsonschema() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runs: &[(Mode, &[Break])] = &[
        (Mode::ServiceEndpoint, &[]),
        (Mode::PrivateEndpoint, &[]),
        (Mode::ServiceEndpoint, &[Break::NoAccessRestriction]),
        (Mode::ServiceEndpoint, &[Break::FrontendNotIntegrated]),
        (Mode::ServiceEndpoint, &[Break::BadCredential]),
        (Mode::PrivateEndpoint, &[Break::PeDnsNotLinked]),
        (Mode::ServiceEndpoint, &[Break::DnsDown]),
    ];
    let mut files = Vec::new();
    let mut previous: Option<SuiteReport> = None;
    for (i, (mode, breaks)) in runs.iter().enumerate() {
        let mut report = report_of(*mode, breaks).await;
        assert_eq!(report.all_passed(), breaks.is_empty(), "{breaks:?}");
        // Facts are data, not only sentences: every result that ran has some.
        let with_facts = report
            .results
            .iter()
            .filter(|r| r.facts != Default::default())
            .count();
        assert!(with_facts > 0, "{}", report.render_json());
        if let Some(previous) = &previous {
            report.baseline = Some(compare(previous, &report));
        }
        let path = dir.path().join(format!("run-{i}.json"));
        std::fs::write(&path, report.render_json()).unwrap();
        files.push(path);
        previous = Some(report);
    }
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let errors = schema_errors(&paths);
    assert!(errors.is_empty(), "{errors}");

    // The validation can fail: a report without its version, and one with an unknown fact.
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[2]).unwrap()).unwrap();
    value.as_object_mut().unwrap().remove("schema_version");
    value["results"][0]["facts"]["mood"] = "cheerful".into();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, value.to_string()).unwrap();
    let errors = schema_errors(&[&bad]);
    assert!(
        errors.contains("'schema_version' is a required property"),
        "{errors}"
    );
    assert!(errors.contains("'mood' was unexpected"), "{errors}");
}

#[tokio::test]
async fn the_service_endpoint_facts_carry_addresses_sources_and_the_caller() {
    let report = report_of(Mode::ServiceEndpoint, &[]).await;
    let find = |name: &str| {
        report
            .results
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .facts
            .clone()
    };
    let resolve = find(checks::RESOLVE);
    assert!(!resolve.addresses.is_empty(), "{resolve:?}");
    assert!(resolve.addresses.iter().all(|a| a.zone.is_some()));
    let egress = find(checks::EGRESS);
    let source = egress.source.expect("egress has a source address");
    assert!(source.ip.to_string().starts_with("127.0.2."), "{source:?}");
    let caller = find(checks::CALLER).caller.expect("the back end's view");
    assert!(
        caller
            .instance
            .is_some_and(|i| i == instance_id("be-0") || i == instance_id("be-1"))
    );
    assert_eq!(caller.auth.as_deref(), Some("api-key"));
    let denied = find(checks::DENIED);
    assert_eq!(denied.status, Some(403), "{denied:?}");
    assert_eq!(
        denied.app_service.map(|p| p.code).as_deref(),
        Some("access_restricted")
    );
}

fn change_of<'a>(comparison: &'a Comparison, name: &str) -> Vec<(&'a Option<String>, ChangeKind)> {
    comparison
        .changes
        .iter()
        .filter(|c| c.name == name)
        .map(|c| (&c.instance, c.change))
        .collect()
}

#[tokio::test]
async fn a_break_applied_then_removed_is_newly_failing_then_newly_passing() {
    let lab = start(Mode::ServiceEndpoint, &[]).await;
    let healthy = smoke(&lab).await;
    let correct = Plan::new(Mode::ServiceEndpoint, &[])
        .unwrap()
        .backend_networking;
    lab.backend_site
        .set_networking(lockdown::emulator::SiteNetworking::open());
    let broken = smoke(&lab).await;
    lab.backend_site.set_networking(correct);
    let repaired = smoke(&lab).await;
    lab.stop();

    // Through JSON, as --baseline reads it.
    let baseline = SuiteReport::from_json(&healthy.render_json()).unwrap();
    let applied = compare(&baseline, &broken);
    assert_eq!(
        change_of(&applied, checks::DENIED),
        vec![(&None, ChangeKind::NewlyFailing)],
        "{}",
        applied.render_text(false)
    );
    assert_eq!(applied.counts.newly_failing, 1, "{applied:?}");
    assert!(!applied.suite_changed, "the same lab runs the same suite");
    // The denied check now gets an answer: its status is a fact that changed.
    let denied = applied
        .changes
        .iter()
        .find(|c| c.name == checks::DENIED)
        .unwrap();
    assert!(
        denied
            .facts
            .iter()
            .any(|f| f.fact == "status" && f.before == "403"),
        "{denied:?}"
    );
    let removed = compare(&broken, &repaired);
    assert_eq!(
        change_of(&removed, checks::DENIED),
        vec![(&None, ChangeKind::NewlyPassing)]
    );
    assert_eq!(removed.counts.newly_failing, 0);
    let still = compare(&broken, &broken);
    assert_eq!(still.counts.still_failing, 1);
}

#[tokio::test]
async fn an_added_instance_is_reported_as_added() {
    let two = smoke_with(LabOptions::new(
        Plan::new(Mode::ServiceEndpoint, &[]).unwrap(),
        0,
    ))
    .await;
    let mut options = LabOptions::new(Plan::new(Mode::ServiceEndpoint, &[]).unwrap(), 0);
    options.frontend_instances = 3;
    let three = smoke_with(options).await;
    let comparison = compare(&two, &three);
    let mut added: Vec<_> = comparison
        .changes
        .iter()
        .filter(|c| c.change == ChangeKind::Added)
        .map(|c| (c.name.as_str(), c.instance.as_deref()))
        .collect();
    added.sort();
    let fe2 = instance_id("fe-2");
    assert_eq!(
        added,
        vec![
            (checks::REACH, Some(fe2.as_str())),
            (checks::EGRESS, Some(fe2.as_str()))
        ],
        "{}",
        comparison.render_text(false)
    );
    assert_eq!(comparison.counts.newly_failing, 0);
    // Each lab picks its own ports, so the suites differ, and the report says so.
    assert!(comparison.suite_changed);
    let back = compare(&three, &two);
    assert_eq!(back.counts.removed, 2);
}

#[tokio::test]
async fn an_address_that_changed_is_a_changed_fact() {
    let linked = report_of(Mode::PrivateEndpoint, &[]).await;
    let unlinked = report_of(Mode::PrivateEndpoint, &[Break::PeDnsNotLinked]).await;
    let comparison = compare(&linked, &unlinked);
    let resolve = comparison
        .changes
        .iter()
        .find(|c| c.name == checks::RESOLVE)
        .expect("the resolve check moved");
    assert_eq!(resolve.change, ChangeKind::NewlyFailing);
    let addresses = resolve
        .facts
        .iter()
        .find(|f| f.fact == "addresses")
        .unwrap_or_else(|| panic!("{resolve:?}"));
    assert_ne!(addresses.before, addresses.after);
    let text = comparison.render_text(false);
    assert!(
        text.contains(&format!(
            "addresses: {} → {}",
            addresses.before, addresses.after
        )),
        "{text}"
    );
}

async fn smoke_with(options: LabOptions) -> SuiteReport {
    let lab = start_with(options).await;
    let report = smoke(&lab).await;
    lab.stop();
    report
}

#[tokio::test]
async fn the_evidence_bundle_has_every_file_and_its_digests_check() {
    let lab = start(Mode::ServiceEndpoint, &[]).await;
    let config = SmokeConfig::from_toml(&suite_toml(&lab)).unwrap();
    let run_options = options(&lab);
    let mut report = probe::smoke::run(&config, &run_options).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    probe::smoke::output::finish(&mut report, None, Some(&bundle), &config, &run_options)
        .await
        .unwrap();
    lab.stop();
    let env_file = |short: &str| format!("env/frontend@{}.json", instance_id(short));
    for file in [
        "report.txt",
        "report.json",
        "report.junit.xml",
        "report.html",
        &env_file("fe-0"),
        &env_file("fe-1"),
        MANIFEST,
        "SHA256SUMS",
    ] {
        assert!(bundle.join(file).is_file(), "{file} missing");
    }
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join(env_file("fe-1"))).unwrap()).unwrap();
    assert_eq!(env["facts"]["instance_id"], instance_id("fe-1"), "{env}");
    // Checked by another tool than the one that wrote them.
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&bundle)
        .output()
        .expect("sha256sum runs");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(verify_bundle(&bundle).unwrap().is_empty());
    // The bundle is shared with reviewers: the /diag token must not be in it.
    for entry in walk(&bundle) {
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(
            !text.contains(&lab.diag_token),
            "{} holds the token",
            entry.display()
        );
    }
    // A file changed after the fact no longer matches.
    std::fs::write(bundle.join(env_file("fe-0")), "{}").unwrap();
    assert_eq!(verify_bundle(&bundle).unwrap(), vec![env_file("fe-0")]);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The HTML report as a person sees it: headless Chromium builds its DOM and paints it. Needs
/// Debian's `chromium` (CI installs it), as the front end's page test does.
#[tokio::test]
async fn chromium_shows_the_topology_the_matrix_and_the_change() {
    let Some(chromium) = test_support::browser::chromium() else {
        return;
    };
    let healthy = report_of(Mode::ServiceEndpoint, &[]).await;
    let mut options = LabOptions::new(Plan::new(Mode::ServiceEndpoint, &[]).unwrap(), 0);
    options.unintegrated_instances = vec![1];
    let mut broken = smoke_with(options).await;
    broken.baseline = Some(compare(&healthy, &broken));
    let dir = tempfile::tempdir().unwrap();

    let green = dir.path().join("green.html");
    std::fs::write(&green, healthy.render_html()).unwrap();
    let red = dir.path().join("red.html");
    std::fs::write(&red, broken.render_html()).unwrap();

    let dom = chromium_run(chromium, dir.path(), &red, "--dump-dom").await;
    assert!(dom.contains("checks failed"), "{dom}");
    assert!(dom.contains("<svg") && dom.contains("VNet (integration subnet)"));
    assert!(
        dom.matches(r#"class="edge fail""#).count() >= 2,
        "fe-1's edges are red: {dom}"
    );
    assert!(dom.matches(r#"class="edge pass""#).count() >= 2);
    assert!(
        dom.contains(r#"<td class="cell fail">✗ egress_not_in_subnet</td>"#),
        "{dom}"
    );
    assert!(dom.contains(r#"data-change="newly_failing""#), "{dom}");
    assert!(dom.contains("egress_not_in_subnet"));
    assert!(!dom.contains("<script"), "the report runs no script");

    let red_shot = screenshot(chromium, dir.path(), &red).await;
    let green_shot = screenshot(chromium, dir.path(), &green).await;
    if let Ok(keep) = std::env::var("SCREENSHOT_DIR") {
        std::fs::write(Path::new(&keep).join("report-red.png"), &red_shot).unwrap();
        std::fs::write(Path::new(&keep).join("report-green.png"), &green_shot).unwrap();
    }
    let (red_in_red, green_in_red) = (count(&red_shot, FAIL_COLOUR), count(&red_shot, PASS_COLOUR));
    let (red_in_green, green_in_green) = (
        count(&green_shot, FAIL_COLOUR),
        count(&green_shot, PASS_COLOUR),
    );
    assert!(
        red_in_red > 500 && green_in_red > 500,
        "the broken run draws red and green edges: {red_in_red} red, {green_in_red} green pixels"
    );
    assert!(
        red_in_green == 0 && green_in_green > 500,
        "the healthy run is all green: {red_in_green} red, {green_in_green} green pixels"
    );
}

async fn chromium_run(chromium: &str, dir: &Path, page: &Path, extra: &str) -> String {
    let args = vec![
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--no-first-run".into(),
        "--disable-quic".into(),
        format!("--user-data-dir={}", dir.join("profile").display()),
        "--window-size=1200,1000".into(),
        extra.to_owned(),
        format!("file://{}", page.display()),
    ];
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(chromium)
            .args(&args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium took over 60 s")
    .expect("chromium did not start");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn screenshot(chromium: &str, dir: &Path, page: &Path) -> Vec<u8> {
    let shot = dir.join("shot.png");
    let _ = std::fs::remove_file(&shot);
    chromium_run(
        chromium,
        dir,
        page,
        &format!("--screenshot={}", shot.display()),
    )
    .await;
    std::fs::read(&shot).expect("chromium wrote no screenshot")
}

/// Pixels of `colour` (`#rrggbb`), give or take antialiasing.
fn count(png_bytes: &[u8], colour: &str) -> usize {
    let hex = |i: usize| u8::from_str_radix(&colour[i..i + 2], 16).unwrap();
    let (r, g, b) = (hex(1), hex(3), hex(5));
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|px| px[0].abs_diff(r) <= 6 && px[1].abs_diff(g) <= 6 && px[2].abs_diff(b) <= 6)
        .count()
}
