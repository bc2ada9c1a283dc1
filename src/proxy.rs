//! A TCP forwarder: an emulated address that leads to a real server — the database's private
//! endpoint (a port of each lab's own in front of the server), and its public endpoint when the
//! server's public network access is on (`--break db-public-access`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Forwards every connection to `listen` (a loopback address) to `to`, until `stop`. A connect to
/// `to` that fails or takes over five seconds closes the accepted connection.
pub async fn spawn(
    listen: SocketAddr,
    to: SocketAddr,
    stop: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let stop = stop.clone();
    tokio::spawn(async move {
        loop {
            let (mut inbound, _) = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => continue,
                },
            };
            let stop = stop.clone();
            tokio::spawn(async move {
                let Ok(Ok(mut outbound)) =
                    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(to)).await
                else {
                    return;
                };
                tokio::select! {
                    () = stop.cancelled() => {}
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                }
            });
        }
    });
    Ok(addr)
}
