//! Smoke at scale: the lab in-process with N instances per app, a generated suite of C checks
//! pinned round-robin over the front end's instances (`lockdown::suite::scale_suite`), timed
//! around `probe::smoke::run` alone, every result checked against the instance that must have
//! produced it (`lockdown::suite::verify_scale`), and the process's peak RSS (`VmHWM`: the lab
//! and the runner together). One process per (checks, instances) pair, so each peak is its own.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lockdown::stack::TOKEN_ENV;
use lockdown::suite::{scale_suite, verify_scale};
use lockdown::{Lab, LabOptions, Mode, Plan};
use probe::smoke::{RunOptions, SmokeConfig};
use serde_json::json;

/// Runs one (checks, instances) pair and returns its figures as JSON.
pub fn run(checks: usize, instances: usize) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(measure(checks, instances))
}

async fn measure(checks: usize, instances: usize) -> anyhow::Result<String> {
    let started = Instant::now();
    let plan = Plan::new(Mode::ServiceEndpoint, &[])?;
    let lab = Lab::start(LabOptions {
        frontend_instances: instances,
        backend_instances: instances,
        ..LabOptions::new(plan, 0)
    })
    .await?;
    let lab_start_ms = ms(started.elapsed());
    let rss_after_start_kb = status_kb("VmRSS");
    let config = SmokeConfig::from_toml(&scale_suite(&lab, checks))?;
    let options = RunOptions {
        tokens: HashMap::from([(TOKEN_ENV.to_owned(), lab.diag_token.clone())]),
        ..RunOptions::default()
    };
    let began = Instant::now();
    let report = probe::smoke::run(&config, &options).await?;
    let wall_ms = ms(began.elapsed());
    let verified = verify_scale(&lab, &report, checks);
    lab.stop();
    Ok(json!({
        "checks": checks,
        "instances": instances,
        "lab_start_ms": lab_start_ms,
        "wall_ms": wall_ms,
        "results": report.results.len(),
        "passed": report.passed,
        "failed": report.failed,
        "verified": verified.is_ok(),
        "verify_error": verified.err(),
        "longest_check_ms": report.results.iter().map(|r| r.duration_ms).fold(0.0, f64::max),
        "rss_after_lab_start_kb": rss_after_start_kb,
        "peak_rss_kb": status_kb("VmHWM"),
    })
    .to_string())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A `kB` line of `/proc/self/status` (`VmRSS`, `VmHWM`).
fn status_kb(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
