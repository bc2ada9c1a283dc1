//! Serves the probe's test zones on loopback (UDP and TCP), to try `probe resolve` and
//! `probe tcpping` by hand without touching any real DNS:
//!
//! ```text
//! cargo run -p probe --example zone_dns -- 127.0.0.1:5353
//! probe resolve app-be.azurewebsites.net 127.0.0.1:5353
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::LowerName;
use hickory_proto::serialize::txt::Parser;
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

const ZONES: [&str; 4] = [
    include_str!("../tests/it/zones/azurewebsites.net.zone"),
    include_str!("../tests/it/zones/privatelink.azurewebsites.net.zone"),
    include_str!("../tests/it/zones/2.20.10.in-addr.arpa.zone"),
    include_str!("../tests/it/zones/lockdown.test.zone"),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5353".to_owned())
        .parse()?;
    anyhow::ensure!(addr.ip().is_loopback(), "serve on loopback only");
    let mut catalog = Catalog::new();
    for text in ZONES {
        let (origin, records) = Parser::new(text, None, None).parse()?;
        let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
            origin.clone(),
            records,
            ZoneType::Primary,
            AxfrPolicy::Deny,
        )
        .map_err(anyhow::Error::msg)?;
        catalog.upsert(LowerName::from(origin), vec![Arc::new(handler)]);
    }
    let mut server = Server::new(catalog);
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
