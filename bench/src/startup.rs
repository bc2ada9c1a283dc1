//! Start-up time: exec → first `200` on `GET /healthz`, polled in a tight loop (a connect
//! attempt every 100 µs, each with a short timeout), and the process's resident memory when it
//! first answers and after it has sat idle for a moment. Each start gets a fresh loopback port
//! through `LISTEN_ADDR`; each process is stopped with SIGTERM (so the back end's store closes
//! cleanly and the next start does not pay for a repair), SIGKILL after 5 s.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Pause between two connect attempts while the server is not listening yet.
const POLL_PAUSE: Duration = Duration::from_micros(100);
/// Connect timeout of one attempt (loopback answers at once or refuses).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(20);
/// Time limit for the `/healthz` answer once connected.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a stopped process may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What `startup` measures.
pub struct Options {
    /// Number of starts.
    pub runs: usize,
    /// Limit for one start, in ms.
    pub timeout_ms: u64,
    /// Idle time before the second RSS reading, in ms.
    pub settle_ms: u64,
    /// `NAME=VALUE` pairs.
    pub env: Vec<String>,
    /// Where the binary's output goes.
    pub log: Option<PathBuf>,
    /// Binary and arguments.
    pub command: Vec<String>,
}

/// Runs the starts and returns the figures as JSON.
pub fn run(options: &Options) -> anyhow::Result<String> {
    let env: Vec<(String, String)> = options
        .env
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--env {pair}: expected NAME=VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut ready_ms = Vec::new();
    let mut rss_ready_kb = Vec::new();
    let mut rss_idle_kb = Vec::new();
    for _ in 0..options.runs {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = Command::new(&options.command[0]);
        command
            .args(&options.command[1..])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("LISTEN_ADDR", addr.to_string())
            .stdin(Stdio::null());
        match &options.log {
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                command.stdout(file.try_clone()?).stderr(file);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", options.command[0]))?;
        let outcome = wait_healthy(
            &mut child,
            addr,
            started,
            Duration::from_millis(options.timeout_ms),
        );
        let outcome = outcome.and_then(|elapsed| {
            let ready = rss_kb(child.id())?;
            std::thread::sleep(Duration::from_millis(options.settle_ms));
            let idle = rss_kb(child.id())?;
            Ok((elapsed, ready, idle))
        });
        stop(&mut child)?;
        let (elapsed, ready, idle) = outcome?;
        ready_ms.push(elapsed.as_secs_f64() * 1000.0);
        rss_ready_kb.push(ready);
        rss_idle_kb.push(idle);
    }
    Ok(serde_json::json!({
        "command": options.command,
        "ready_ms": ready_ms,
        "rss_ready_kb": rss_ready_kb,
        "rss_idle_kb": rss_idle_kb,
    })
    .to_string())
}

/// A loopback port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_healthy(
    child: &mut Child,
    addr: SocketAddr,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let deadline = started + timeout;
    while Instant::now() < deadline {
        if let Ok(stream) = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            && healthz_status(stream).ok() == Some(200)
        {
            return Ok(started.elapsed());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the process exited with {status} before answering /healthz");
        }
        std::thread::sleep(POLL_PAUSE);
    }
    bail!(
        "no 200 on http://{addr}/healthz within {} ms",
        timeout.as_millis()
    )
}

/// Sends `GET /healthz` and returns the status code.
fn healthz_status(mut stream: TcpStream) -> anyhow::Result<u16> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            bail!("connection closed before the status line");
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP status line: {line:?}"))
}

/// `VmRSS` of a process, in kB.
pub fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// SIGTERM (through `kill`, the workspace forbids `unsafe`), then SIGKILL after a bound.
fn stop(child: &mut Child) -> anyhow::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill()?;
    child.wait()?;
    Ok(())
}
