//! Serves the test zones on loopback (UDP and TCP), to try `probe resolve` and
//! `probe tcpping` by hand without touching any real DNS:
//!
//! ```text
//! cargo run -p test-support --example zone_dns -- 127.0.0.1:5353
//! probe resolve app-be.azurewebsites.net 127.0.0.1:5353
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5353".to_owned())
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err("serve on loopback only".into());
    }
    let mut server = Server::new(test_support::catalog());
    server.register_socket(tokio::net::UdpSocket::bind(addr).await?);
    server.register_listener(
        tokio::net::TcpListener::bind(addr).await?,
        Duration::from_secs(5),
        64 * 1024,
    );
    println!("serving the test zones on {addr} (UDP and TCP); Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    server.shutdown_gracefully().await?;
    Ok(())
}
