//! The targets both probers hit, so each side asks the same server: the lab's public DNS view
//! (hickory-server, `app-be.azurewebsites.net` → 127.0.1.20) and a TCP sink that accepts every
//! connection and holds it until the prober closes, then resets it (no TIME_WAIT on either side).
//! When PostgreSQL is installed, also the lab's database (its own cluster behind the
//! `privatelink` name, fsync on) and the DNS that names it, for the relay's PostgreSQL rows.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lockdown::dns::{DnsServer, ZoneView};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// Longest a sink connection is held when the prober never closes.
const SINK_HOLD: Duration = Duration::from_secs(30);

/// Serves until stdin closes, SIGTERM/SIGINT, or `max_seconds`; prints the addresses first.
pub fn run(max_seconds: u64) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(max_seconds))
}

async fn serve(max_seconds: u64) -> anyhow::Result<String> {
    // The cluster stops when this function returns (its supervisor's stdin closes).
    let database = match test_support::postgres::bin_dir() {
        None => None,
        Some(_) => {
            let cluster =
                test_support::postgres::PgCluster::start(&test_support::postgres::ClusterOptions {
                    listen: lockdown::topology::DATABASE_PRIVATE_ENDPOINT,
                    names: vec![lockdown::topology::DATABASE_HOST.to_owned()],
                })
                .map_err(anyhow::Error::msg)?;
            let dns = DnsServer::database(Some(cluster.listen)).await?;
            let url = cluster.url_at(
                lockdown::topology::DATABASE_HOST,
                &cluster.create_database(),
            );
            Some((cluster, dns, url))
        }
    };
    let dns = DnsServer::start(
        ZoneView {
            private_endpoint: false,
            privatelink_linked: false,
        },
        &lockdown::topology::HostNames::classic(),
        None,
    )
    .await?;
    let sink = TcpListener::bind("127.0.0.1:0").await?;
    let tcp = sink.local_addr()?;
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    let sink_task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = sink.accept().await else {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let _ = tokio::time::timeout(SINK_HOLD, async {
                    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                })
                .await;
                // The prober has closed (or gone quiet): answer its FIN with a reset, so its
                // socket skips TIME_WAIT and thousands of probes a second do not run it out of
                // ephemeral ports. Resetting only after the prober's FIN never turns a
                // completed connect into a failed one.
                let _ = stream.set_zero_linger();
            });
        }
    });
    let ready = serde_json::json!({
        "dns": dns.addr.to_string(),
        "tcp": tcp.to_string(),
        "name": lockdown::topology::BACKEND_HOST,
        "address": lockdown::topology::BACKEND_PUBLIC.to_string(),
        "database": database.as_ref().map(|(_, dns, url)| serde_json::json!({
            "url": url,
            "dns": dns.addr.to_string(),
            "version": test_support::postgres::version(),
        })),
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{ready}")?;
        out.flush()?;
    }
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let reason = tokio::select! {
        () = stdin_closed => "stdin closed",
        _ = terminate.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = tokio::time::sleep(Duration::from_secs(max_seconds)) => "max-seconds reached",
    };
    sink_task.abort();
    drop(dns);
    drop(database);
    Ok(serde_json::json!({
        "stopped": reason,
        "tcp_accepted": accepted.load(Ordering::Relaxed),
    })
    .to_string())
}
