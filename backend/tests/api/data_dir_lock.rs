//! A second back end on the same `DATA_DIR` (an overlapping restart or slot swap) waits for the
//! lock instead of exiting at once, and when the wait ends without it, says so in one JSON line.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::durability::{Store, start};
use crate::helpers::KEY;

fn second_backend(dir: &std::path::Path, port: u16, wait_ms: u64) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_backend"))
        .env_clear()
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("API_KEYS", KEY)
        .env("DATA_DIR", dir)
        .env("DATA_DIR_LOCK_WAIT_MS", wait_ms.to_string())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_second_back_end_waits_for_the_lock_and_starts_once_the_first_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(&Store::Embedded(dir.path().to_owned())).await;
    let port = free_port();
    let mut second = second_backend(dir.path(), port, 10_000);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        second.try_wait().unwrap().is_none(),
        "the second back end exited instead of waiting"
    );
    let _ = first.child.kill();
    let _ = first.child.wait();

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let ready = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .header("x-api-key", KEY)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second back end never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = second.kill();
    let _ = second.wait();
}

#[tokio::test]
async fn a_second_back_end_gives_up_after_the_wait_with_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let _first = start(&Store::Embedded(dir.path().to_owned())).await;
    let started = Instant::now();
    let mut second = second_backend(dir.path(), free_port(), 600);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still waiting after 10 s with a 600 ms wait"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    assert!(started.elapsed() >= Duration::from_millis(600));
    let mut stdout = String::new();
    second
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.trim().is_empty(), "{stderr}");
    let errors: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .filter(|line: &serde_json::Value| line["level"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{stdout}");
    let error = errors[0]["error"].as_str().unwrap();
    assert!(
        error.contains("DATA_DIR is in use by another back end"),
        "{error}"
    );
    assert!(stdout.contains("waiting for it to stop"), "{stdout}");
}
