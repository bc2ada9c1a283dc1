//! Starting a lab and running its suite.

use lockdown::stack::TOKEN_ENV;
use lockdown::suite::suite_toml;
use lockdown::{Break, Lab, LabOptions, Mode, Plan};
use probe::smoke::{RunOptions, SmokeConfig, SuiteReport, Verdict};

pub async fn start(mode: Mode, breaks: &[Break]) -> TestLab {
    start_with(LabOptions::new(Plan::new(mode, breaks).unwrap(), 0)).await
}

pub async fn start_with(options: LabOptions) -> TestLab {
    test_support::init_logging();
    let slot = lab_slots()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    let lab = Lab::start(options).await.expect("the lab starts");
    TestLab { lab, _slot: slot }
}

/// A running lab, holding one of the slots of [`lab_slots`] until it is dropped.
pub struct TestLab {
    lab: Lab,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl std::ops::Deref for TestLab {
    type Target = Lab;

    fn deref(&self) -> &Lab {
        &self.lab
    }
}

/// How many labs this test binary runs at once. The lab's suite has 1.5 s checks and 1 s DNS
/// timeouts; dozens of labs on a few cores (the test threads follow the core count, and one test
/// may start eleven labs) starve their timers and make healthy hops look broken. A test holds at
/// most two labs at a time, far fewer than the slots, so waiting for one cannot deadlock.
fn lab_slots() -> std::sync::Arc<tokio::sync::Semaphore> {
    use std::sync::{Arc, LazyLock};
    static SLOTS: LazyLock<Arc<tokio::sync::Semaphore>> = LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Arc::new(tokio::sync::Semaphore::new((4 * cores).max(8)))
    });
    SLOTS.clone()
}

/// A PostgreSQL cluster laid out as the lab's own (on the database's private endpoint address,
/// its certificate naming the server's public name), shared by the lab tests; `None` (with a
/// message) when PostgreSQL is not installed outside CI.
pub fn lab_cluster() -> Option<&'static test_support::postgres::PgCluster> {
    use std::sync::OnceLock;
    use test_support::postgres::{ClusterOptions, PgCluster};
    static CLUSTER: OnceLock<Option<PgCluster>> = OnceLock::new();
    // Through the shared helper first: it decides installed / skipped / required in CI.
    test_support::postgres::cluster()?;
    CLUSTER
        .get_or_init(|| {
            Some(
                PgCluster::start(&ClusterOptions {
                    listen: lockdown::topology::DATABASE_PRIVATE_ENDPOINT,
                    names: vec![lockdown::topology::DATABASE_HOST.to_owned()],
                })
                .unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .as_ref()
}

pub fn options(lab: &Lab) -> RunOptions {
    RunOptions {
        tokens: [(TOKEN_ENV.to_owned(), lab.diag_token.clone())].into(),
        ..RunOptions::default()
    }
}

pub async fn smoke(lab: &Lab) -> SuiteReport {
    let config = SmokeConfig::from_toml(&suite_toml(lab)).unwrap();
    probe::smoke::run(&config, &options(lab)).await.unwrap()
}

/// The failing results as (check name, instance, code), sorted.
pub fn failures(report: &SuiteReport) -> Vec<(String, Option<String>, String)> {
    let mut failed: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .map(|r| {
            (
                r.name.clone(),
                r.instance.clone(),
                r.code.clone().unwrap_or_default(),
            )
        })
        .collect();
    failed.sort();
    failed
}

/// The failing checks as (name, code), one entry per check (instances folded), sorted.
pub fn failing_checks(report: &SuiteReport) -> Vec<(String, String)> {
    let mut failed: Vec<_> = failures(report)
        .into_iter()
        .map(|(name, _, code)| (name, code))
        .collect();
    failed.dedup();
    failed
}
