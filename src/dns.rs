//! The lab's DNS: two hickory servers, as in Azure. The **VNet** view (what the apps use) links
//! the privatelink zone (`privatelink.azurewebsites.net`, or the region's with unique default
//! host names: see [`HostNames`]) in private-endpoint mode; the **public** view (what
//! the internet sees) never does. A "down" server reads queries and never answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::LowerName;
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

use crate::topology::{
    BACKEND_PRIVATE_ENDPOINT, BACKEND_PUBLIC, DATABASE_PRIVATELINK_HOST, DATABASE_PUBLIC, DNS_HOST,
    FRONTEND_PUBLIC, HostNames,
};

/// What one DNS view holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneView {
    /// The back end has a private endpoint: its public name is a CNAME into `privatelink`.
    pub private_endpoint: bool,
    /// The `privatelink.azurewebsites.net` zone is linked to this view.
    pub privatelink_linked: bool,
}

const SOA: &str = "@ 3600 IN SOA ns1.lab.test. hostmaster.lab.test. 1 3600 600 86400 60";

/// The `azurewebsites.net` zone text for a view, with the apps named `hosts`.
pub fn public_zone(view: ZoneView, hosts: &HostNames) -> String {
    let relative = |host: &str| relative(host, "azurewebsites.net").to_owned();
    let mut zone = format!("$ORIGIN azurewebsites.net.\n{SOA}\n");
    zone += &format!("{} 60 IN A {FRONTEND_PUBLIC}\n", relative(&hosts.frontend));
    if view.private_endpoint {
        zone += &format!(
            "{} 60 IN CNAME {}.\n",
            relative(&hosts.backend),
            hosts.backend_privatelink
        );
        if !view.privatelink_linked {
            // Unlinked: public DNS answers the privatelink name with the public address.
            zone += &format!(
                "{} 60 IN A {BACKEND_PUBLIC}\n",
                relative(&hosts.backend_privatelink)
            );
        }
    } else {
        zone += &format!("{} 60 IN A {BACKEND_PUBLIC}\n", relative(&hosts.backend));
        // The back end's SCM site and staging slot (used with `--front`; unused names otherwise).
        zone += &crate::front::site_records(hosts);
    }
    zone
}

/// The privatelink zone text (linked views only): the back end's private endpoint record.
pub fn privatelink_zone(hosts: &HostNames) -> String {
    format!(
        "$ORIGIN {zone}.\n{SOA}\n{record} 10 IN A {BACKEND_PRIVATE_ENDPOINT}\n",
        zone = hosts.privatelink_zone,
        record = relative(&hosts.backend_privatelink, &hosts.privatelink_zone),
    )
}

/// `host` relative to `origin` (`app-be` in `azurewebsites.net`).
fn relative<'a>(host: &'a str, origin: &str) -> &'a str {
    host.strip_suffix(origin)
        .and_then(|rest| rest.strip_suffix('.'))
        .unwrap_or(host)
}

fn zone_handler(
    text: &str,
) -> anyhow::Result<(LowerName, Arc<InMemoryZoneHandler<TokioRuntimeProvider>>)> {
    let (origin, records) = Parser::new(text, None, None)
        .parse()
        .context("parsing a lab zone")?;
    let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
        origin.clone(),
        records,
        ZoneType::Primary,
        AxfrPolicy::Deny,
    )
    .map_err(|e| anyhow::anyhow!("building a lab zone: {e}"))?;
    Ok((LowerName::new(&origin), Arc::new(handler)))
}

/// A UDP socket and a TCP listener on the same free loopback port (DNS falls back to TCP).
async fn bind_udp_and_tcp() -> anyhow::Result<(UdpSocket, TcpListener)> {
    for _ in 0..20 {
        let udp = UdpSocket::bind((DNS_HOST, 0)).await?;
        if let Ok(tcp) = TcpListener::bind(udp.local_addr()?).await {
            return Ok((udp, tcp));
        }
    }
    anyhow::bail!("no loopback port was free for both UDP and TCP")
}

/// The `postgres.database.azure.com` and `privatelink.postgres.database.azure.com` zone texts:
/// the server's public name is a CNAME into `privatelink`. With the zone linked (`Some(address)`,
/// the VNet's view) the privatelink name gives the private endpoint's `address`; unlinked
/// (`None`: the internet's view, or a VNet without the link) public DNS answers it with the
/// server's public endpoint.
pub fn database_zones(linked: Option<std::net::Ipv4Addr>) -> Vec<String> {
    let public = format!(
        "$ORIGIN postgres.database.azure.com.\n{SOA}\npg-lockdown 60 IN CNAME {DATABASE_PRIVATELINK_HOST}.\n"
    );
    match linked {
        Some(address) => vec![
            public,
            format!(
                "$ORIGIN privatelink.postgres.database.azure.com.\n{SOA}\npg-lockdown 10 IN A {address}\n"
            ),
        ],
        None => vec![public + &format!("pg-lockdown.privatelink 60 IN A {DATABASE_PUBLIC}\n")],
    }
}

/// A running DNS server (or a mute one), stopped when dropped.
#[derive(Debug)]
pub struct DnsServer {
    /// Where it listens (UDP and TCP on the same port).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DnsServer {
    /// Serves `view`, the apps named `hosts`, on a fresh loopback port, UDP and TCP; with
    /// `database`, also the database's name (see [`database_zones`]).
    pub async fn start(
        view: ZoneView,
        hosts: &HostNames,
        database: Option<Option<std::net::Ipv4Addr>>,
    ) -> anyhow::Result<Self> {
        let mut catalog = Catalog::new();
        let (name, handler) = zone_handler(&public_zone(view, hosts))?;
        catalog.upsert(name, vec![handler]);
        if view.privatelink_linked {
            let (name, handler) = zone_handler(&privatelink_zone(hosts))?;
            catalog.upsert(name, vec![handler]);
        }
        for text in database.map(database_zones).unwrap_or_default() {
            let (name, handler) = zone_handler(&text)?;
            catalog.upsert(name, vec![handler]);
        }
        Self::serve(catalog).await
    }

    /// The back end's view of its database's name (see [`database_zones`]).
    pub async fn database(linked: Option<std::net::Ipv4Addr>) -> anyhow::Result<Self> {
        let mut catalog = Catalog::new();
        for text in database_zones(linked) {
            let (name, handler) = zone_handler(&text)?;
            catalog.upsert(name, vec![handler]);
        }
        Self::serve(catalog).await
    }

    async fn serve(catalog: Catalog) -> anyhow::Result<Self> {
        let (udp, tcp) = bind_udp_and_tcp().await?;
        let addr = udp.local_addr()?;
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64 * 1024);
        let task = tokio::spawn(async move {
            if let Err(error) = server.block_until_done().await {
                tracing::warn!(%error, "lab DNS server stopped");
            }
        });
        Ok(Self { addr, task })
    }

    /// A server that reads every query and never answers (the `dns-down` break).
    pub async fn mute() -> anyhow::Result<Self> {
        let udp = UdpSocket::bind((DNS_HOST, 0)).await?;
        let addr = udp.local_addr()?;
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while udp.recv_from(&mut buf).await.is_ok() {}
        });
        Ok(Self { addr, task })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_parse_for_every_view() {
        for hosts in [HostNames::classic(), HostNames::unique()] {
            for private_endpoint in [false, true] {
                for privatelink_linked in [false, true] {
                    let view = ZoneView {
                        private_endpoint,
                        privatelink_linked,
                    };
                    zone_handler(&public_zone(view, &hosts)).unwrap();
                }
            }
            zone_handler(&privatelink_zone(&hosts)).unwrap();
        }
        for linked in [Some(std::net::Ipv4Addr::new(127, 0, 3, 5)), None] {
            for text in database_zones(linked) {
                zone_handler(&text).unwrap();
            }
        }
    }

    #[test]
    fn an_unlinked_view_answers_the_privatelink_name_with_the_public_address() {
        let view = ZoneView {
            private_endpoint: true,
            privatelink_linked: false,
        };
        let zone = public_zone(view, &HostNames::classic());
        assert!(zone.contains("app-be 60 IN CNAME app-be.privatelink.azurewebsites.net."));
        assert!(zone.contains(&format!("app-be.privatelink 60 IN A {BACKEND_PUBLIC}")));
        let zone = public_zone(view, &HostNames::unique());
        assert!(zone.contains(
            "app-be-c4bqa2hxgzf3dvep.westeurope-01 60 IN CNAME app-be-c4bqa2hxgzf3dvep.privatelink.westeurope-01.azurewebsites.net."
        ));
        assert!(zone.contains(&format!(
            "app-be-c4bqa2hxgzf3dvep.privatelink.westeurope-01 60 IN A {BACKEND_PUBLIC}"
        )));
    }

    #[test]
    fn the_private_endpoint_record_sits_in_its_zone() {
        assert!(privatelink_zone(&HostNames::classic()).contains(&format!(
            "$ORIGIN privatelink.azurewebsites.net.\n{SOA}\napp-be 10 IN A"
        )));
        assert!(privatelink_zone(&HostNames::unique()).contains(&format!(
            "$ORIGIN privatelink.westeurope-01.azurewebsites.net.\n{SOA}\napp-be-c4bqa2hxgzf3dvep 10 IN A"
        )));
    }
}
