//! Durability with real processes (the `backend` binary): two back ends writing concurrently to
//! one PostgreSQL lose and duplicate nothing; a back end SIGKILLed in the middle of concurrent
//! writes, then restarted, has every write it acknowledged (201) — on both stores, repeatedly.
//! The figures are printed (`--nocapture`) for the record.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use test_support::TestDns;

use crate::helpers::KEY;

/// Where a back-end process keeps its items.
pub(crate) enum Store {
    Embedded(std::path::PathBuf),
    Postgres { url: String, dns: String },
}

/// A running `backend` process on a loopback port.
pub(crate) struct Process {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn start(store: &Store) -> Process {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_backend"));
    command
        .env_clear()
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("API_KEYS", KEY)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    match store {
        Store::Embedded(dir) => command.env("DATA_DIR", dir),
        Store::Postgres { url, dns } => command
            .env("DATABASE_URL", url)
            .env("DNS_SERVERS", dns)
            .env("DB_POOL_SIZE", "8"),
    };
    let child = command.spawn().unwrap();
    let process = Process {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = client
            .get(format!("{}/readyz", process.base))
            .header("x-api-key", KEY)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return process;
        }
        assert!(Instant::now() < deadline, "the back end did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Creates items through `bases` (round robin) from `writers` tasks until `stop` or an error
/// per writer; returns the ids the back end acknowledged with 201.
async fn write_until(
    bases: Vec<String>,
    writers: usize,
    per_writer: usize,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let client = client();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let client = client.clone();
            let bases = bases.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..per_writer {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let base = &bases[(w + n) % bases.len()];
                    let sent = client
                        .post(format!("{base}/api/items"))
                        .header("x-api-key", KEY)
                        .json(&serde_json::json!({ "name": format!("w{w} n{n}") }))
                        .send()
                        .await;
                    let Ok(response) = sent else { break };
                    if response.status() != 201 {
                        if !stop.load(Ordering::SeqCst) {
                            eprintln!(
                                "writer {w} stops: {} {}",
                                response.status(),
                                response.text().await.unwrap_or_default()
                            );
                        }
                        break;
                    }
                    let Ok(item) = response.json::<serde_json::Value>().await else {
                        break;
                    };
                    acknowledged.push(item["id"].as_str().unwrap().to_owned());
                }
                acknowledged
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

async fn listed(base: &str) -> Vec<String> {
    let list: serde_json::Value = client()
        .get(format!("{base}/api/items"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn postgres_store(dns: &TestDns) -> Option<Store> {
    let cluster = test_support::postgres::cluster()?;
    Some(Store::Postgres {
        url: cluster.url(&cluster.create_database()),
        dns: dns.addr.to_string(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_back_end_processes_share_one_postgres_and_lose_nothing() {
    let dns = test_support::spawn_dns().await;
    let Some(store) = postgres_store(&dns).await else {
        return;
    };
    let (a, b) = tokio::join!(start(&store), start(&store));
    let acknowledged = write_until(
        vec![a.base.clone(), b.base.clone()],
        8,
        40,
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    assert_eq!(acknowledged.len(), 8 * 40, "every write was acknowledged");
    let unique: HashSet<_> = acknowledged.iter().collect();
    assert_eq!(unique.len(), acknowledged.len(), "no id handed out twice");
    for base in [&a.base, &b.base] {
        let seen = listed(base).await;
        assert_eq!(seen.len(), acknowledged.len(), "nothing duplicated");
        let seen: HashSet<_> = seen.iter().collect();
        assert_eq!(
            seen, unique,
            "nothing lost, both processes see the same items"
        );
    }
    eprintln!(
        "two processes, one PostgreSQL: {} writes acknowledged, {} listed by each, 0 lost, 0 duplicated",
        acknowledged.len(),
        unique.len()
    );
}

/// Rounds of: start, concurrent writes, SIGKILL mid-flight, restart, check every acknowledged
/// write is there. Returns (acknowledged, lost) over all rounds.
async fn kill_rounds(store: &Store, rounds: usize) -> (usize, usize) {
    let mut acknowledged_total = 0;
    let mut lost_total = 0;
    let mut all_acknowledged: Vec<String> = Vec::new();
    for round in 0..rounds {
        let mut process = start(store).await;
        let stop = Arc::new(AtomicBool::new(false));
        let writes = tokio::spawn(write_until(
            vec![process.base.clone()],
            8,
            10_000,
            stop.clone(),
        ));
        // Let the writes flow (until some are acknowledged, at least), then kill the process
        // without warning.
        tokio::time::sleep(Duration::from_millis(300 + 100 * round as u64)).await;
        let started = Instant::now();
        while listed(&process.base).await.len() < 20 && started.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        process.child.kill().unwrap();
        process.child.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        let acknowledged = writes.await.unwrap();
        assert!(!acknowledged.is_empty(), "round {round}: no write landed");
        drop(process);

        let restarted = start(store).await;
        let present: HashSet<String> = listed(&restarted.base).await.into_iter().collect();
        all_acknowledged.extend(acknowledged.iter().cloned());
        let lost: Vec<_> = all_acknowledged
            .iter()
            .filter(|id| !present.contains(*id))
            .collect();
        acknowledged_total += acknowledged.len();
        lost_total += lost.len();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged writes lost: {lost:?}"
        );
        // The next round starts from a clean slate, under the store's limit.
        for id in &all_acknowledged {
            let _ = client()
                .delete(format!("{}/api/items/{id}", restarted.base))
                .header("x-api-key", KEY)
                .send()
                .await;
        }
        all_acknowledged.clear();
    }
    (acknowledged_total, lost_total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_writes_loses_no_acknowledged_write_on_either_store() {
    let dir = tempfile::tempdir().unwrap();
    let (acknowledged, lost) = kill_rounds(&Store::Embedded(dir.path().to_owned()), 3).await;
    eprintln!("embedded store, SIGKILL x3: {acknowledged} writes acknowledged, {lost} lost");
    assert_eq!(lost, 0);

    let dns = test_support::spawn_dns().await;
    if let Some(store) = postgres_store(&dns).await {
        let (acknowledged, lost) = kill_rounds(&store, 3).await;
        eprintln!("PostgreSQL, SIGKILL x3: {acknowledged} writes acknowledged, {lost} lost");
        assert_eq!(lost, 0);
    }
}
