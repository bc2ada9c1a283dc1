//! Smoke-suite timings against a lab started in-process (`lockdown::Lab`), measured around
//! `probe::smoke::run` alone, so the lab's start-up is not counted:
//!
//! - `default`: the suite the lab runs (`lockdown --once`);
//! - `twenty`: 20 passing checks, from here and from the front end's `/diag`;
//! - `timeouts`: 5 checks whose connects time out (loopback listeners with a full accept queue)
//!   next to 5 passing ones. Checks run concurrently, so the suite should take about its longest
//!   timeout, not the sum.
//!
//! Suites alternate round by round, with a pause between runs so the front end's `/diag` rate
//! bucket refills (the lab's apps keep the default bounds: burst 30, 5 per second).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use lockdown::stack::TOKEN_ENV;
use lockdown::suite::suite_toml;
use lockdown::topology::{BACKEND_HOST, FRONTEND_HOST, INTEGRATION_SUBNET, PUBLIC_RANGE};
use lockdown::{FullQueue, Lab, LabOptions, Mode, Plan};
use probe::smoke::{RunOptions, SmokeConfig, SuiteReport};
use serde_json::{Value, json};

/// The longest timeout in the `timeouts` suite, in ms.
const LONGEST_TIMEOUT_MS: u64 = 1_000;
/// Timeouts of the checks that time out: three from here, two from the front end.
const HERE_TIMEOUTS_MS: [u64; 3] = [LONGEST_TIMEOUT_MS, LONGEST_TIMEOUT_MS, 500];
const FRONTEND_TIMEOUTS_MS: [u64; 2] = [LONGEST_TIMEOUT_MS, 750];

/// Runs every suite `rounds` times and returns the timings as JSON.
pub fn run(rounds: usize, pause_ms: u64) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(measure(rounds, pause_ms))
}

struct Suite {
    name: &'static str,
    config: SmokeConfig,
    longest_timeout_ms: Option<u64>,
    runs: Vec<Value>,
}

async fn measure(rounds: usize, pause_ms: u64) -> anyhow::Result<String> {
    let started = Instant::now();
    let plan = Plan::new(Mode::ServiceEndpoint, &[])?;
    let lab = Lab::start(LabOptions::new(plan, 0)).await?;
    let lab_start_ms = ms(started.elapsed());

    let silent_started = Instant::now();
    let silent = futures_join_all(
        (0..HERE_TIMEOUTS_MS.len() + FRONTEND_TIMEOUTS_MS.len())
            .map(|_| async { Ok(FullQueue::bind(Ipv4Addr::LOCALHOST.into(), 0).await?) }),
    )
    .await?;
    let silent_setup_ms = ms(silent_started.elapsed());
    let silent_addrs: Vec<SocketAddr> = silent.iter().map(|s| s.addr).collect();

    let mut suites = vec![
        Suite {
            name: "default",
            config: SmokeConfig::from_toml(&suite_toml(&lab))?,
            longest_timeout_ms: None,
            runs: Vec::new(),
        },
        Suite {
            name: "twenty",
            config: SmokeConfig::from_toml(&twenty_checks(&lab))?,
            longest_timeout_ms: None,
            runs: Vec::new(),
        },
        Suite {
            name: "timeouts",
            config: SmokeConfig::from_toml(&timeout_checks(&lab, &silent_addrs))?,
            longest_timeout_ms: Some(LONGEST_TIMEOUT_MS),
            runs: Vec::new(),
        },
    ];
    let options = RunOptions {
        tokens: HashMap::from([(TOKEN_ENV.to_owned(), lab.diag_token.clone())]),
        ..RunOptions::default()
    };
    for round in 0..rounds {
        // Rotate the order so no suite always runs first after the pause.
        for offset in 0..suites.len() {
            let index = (round + offset) % suites.len();
            let suite = &mut suites[index];
            let began = Instant::now();
            let report = probe::smoke::run(&suite.config, &options).await?;
            let wall_ms = ms(began.elapsed());
            suite.runs.push(describe(&report, wall_ms));
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
    }
    lab.stop();
    drop(silent);
    let suites: serde_json::Map<String, Value> = suites
        .into_iter()
        .map(|s| {
            (
                s.name.to_owned(),
                json!({
                    "checks": s.config.checks.len(),
                    "longest_timeout_ms": s.longest_timeout_ms,
                    "runs": s.runs,
                }),
            )
        })
        .collect();
    Ok(json!({
        "lab_start_ms": lab_start_ms,
        "silent_setup_ms": silent_setup_ms,
        "suites": suites,
    })
    .to_string())
}

fn describe(report: &SuiteReport, wall_ms: f64) -> Value {
    let failures: Vec<Value> = report
        .failures()
        .map(|r| json!({"name": r.name, "code": r.code, "duration_ms": r.duration_ms}))
        .collect();
    json!({
        "wall_ms": wall_ms,
        "report_ms": report.duration_ms,
        "units": report.results.len(),
        "passed": report.passed,
        "failed": report.failed,
        "longest_check_ms": report.results.iter().map(|r| r.duration_ms).fold(0.0, f64::max),
        "sum_of_checks_ms": report.results.iter().map(|r| r.duration_ms).sum::<f64>(),
        "failures": failures,
    })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The head every generated suite shares: the lab's public DNS for checks from here and the
/// front end's `/diag` for checks from inside.
fn head(lab: &Lab) -> String {
    format!(
        r#"[defaults]
timeout_ms = 1500

[here]
dns_servers = ["{dns}"]

[apps.frontend]
url = "{frontend}"
token_env = "{TOKEN_ENV}"
"#,
        dns = lab.public_dns,
        frontend = lab.frontend_url,
    )
}

fn check(name: &str, from: &str, action: &str, expect: &str) -> String {
    format!("\n[[check]]\nname = \"{name}\"\nfrom = \"{from}\"\n{action}\nexpect = {expect}\n")
}

/// 20 passing checks: 8 through the front end's `/diag` (at most 8 run at once there, its
/// concurrency bound) and 12 from here, covering every action and several expectations.
fn twenty_checks(lab: &Lab) -> String {
    let backend = format!("{BACKEND_HOST}:{}", lab.backend_port);
    let frontend = &lab.frontend_url;
    let frontend_addr = frontend.trim_start_matches("http://");
    let in_public = format!(r#"{{ ok = true, address_in = "{PUBLIC_RANGE}" }}"#);
    let mut suite = head(lab);
    let mut add = |from: &str, action: String, expect: &str| {
        let n = suite.matches("[[check]]").count() + 1;
        suite += &check(&format!("check {n:02}"), from, &action, expect);
    };
    for _ in 0..2 {
        add(
            "frontend",
            format!(r#"resolve = "{BACKEND_HOST}""#),
            &in_public,
        );
        add(
            "frontend",
            format!(r#"tcpping = "{backend}""#),
            &format!(r#"{{ reachable = true, source_in = "{INTEGRATION_SUBNET}" }}"#),
        );
        add(
            "frontend",
            format!(r#"http = "http://{backend}/healthz""#),
            "{ status = 200 }",
        );
    }
    add(
        "frontend",
        format!(r#"resolve = "{FRONTEND_HOST}""#),
        "{ ok = true }",
    );
    add(
        "frontend",
        format!(r#"tcpping = "{}""#, lab.vnet_dns),
        "{ reachable = true }",
    );
    for _ in 0..2 {
        add("here", format!(r#"resolve = "{BACKEND_HOST}""#), &in_public);
    }
    add(
        "here",
        format!(r#"resolve = "{FRONTEND_HOST}""#),
        "{ ok = true }",
    );
    add(
        "here",
        r#"resolve = "missing.azurewebsites.net""#.to_owned(),
        "{ ok = false }",
    );
    for _ in 0..2 {
        add(
            "here",
            format!(r#"tcpping = "{frontend_addr}""#),
            "{ reachable = true }",
        );
    }
    add(
        "here",
        format!(r#"tcpping = "{backend}""#),
        "{ reachable = true }",
    );
    for _ in 0..2 {
        add(
            "here",
            format!(r#"http = "{frontend}/healthz""#),
            "{ status = 200 }",
        );
    }
    add(
        "here",
        format!("http = \"{frontend}/api/path\"\ntimeout_ms = 5000"),
        &format!(r#"{{ status = 200, caller_in = "{INTEGRATION_SUBNET}" }}"#),
    );
    add(
        "here",
        format!(r#"http = "http://{backend}/healthz""#),
        "{ denied = true }",
    );
    add(
        "here",
        format!(r#"http = "{frontend}/readyz""#),
        "{ status = 200 }",
    );
    suite
}

/// Five checks whose connects time out (to listeners that never accept), three from here and
/// two through the front end's `/diag`, next to five passing checks.
fn timeout_checks(lab: &Lab, silent: &[SocketAddr]) -> String {
    let backend = format!("{BACKEND_HOST}:{}", lab.backend_port);
    let frontend = &lab.frontend_url;
    let mut suite = head(lab);
    let mut n = 0;
    let mut add = |suite: &mut String, from: &str, action: String, expect: &str| {
        n += 1;
        *suite += &check(&format!("check {n:02}"), from, &action, expect);
    };
    let (here, inside) = silent.split_at(HERE_TIMEOUTS_MS.len());
    for (addr, timeout) in here.iter().zip(HERE_TIMEOUTS_MS) {
        add(
            &mut suite,
            "here",
            format!("tcpping = \"{addr}\"\ntimeout_ms = {timeout}"),
            "{ reachable = true }",
        );
    }
    for (addr, timeout) in inside.iter().zip(FRONTEND_TIMEOUTS_MS) {
        add(
            &mut suite,
            "frontend",
            format!("tcpping = \"{addr}\"\ntimeout_ms = {timeout}"),
            "{ reachable = true }",
        );
    }
    add(
        &mut suite,
        "frontend",
        format!(r#"resolve = "{BACKEND_HOST}""#),
        "{ ok = true }",
    );
    add(
        &mut suite,
        "frontend",
        format!(r#"http = "http://{backend}/healthz""#),
        "{ status = 200 }",
    );
    add(
        &mut suite,
        "here",
        format!(r#"resolve = "{BACKEND_HOST}""#),
        "{ ok = true }",
    );
    add(
        &mut suite,
        "here",
        format!(r#"http = "{frontend}/healthz""#),
        "{ status = 200 }",
    );
    add(
        &mut suite,
        "here",
        format!(r#"http = "http://{backend}/healthz""#),
        "{ denied = true }",
    );
    suite
}

/// Awaits every future, keeping the first error (the workspace has no `futures` crate).
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> anyhow::Result<Vec<T>>
where
    F: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await??);
    }
    Ok(out)
}
