//! How the back end sees its caller: which address it takes as the client, from which source,
//! and whether `ALLOWED_CALLERS` lets it in. This is what turns "why do I get 403?" into an answer.
//!
//! A service-endpoint caller arrives as an IPv6 address carrying its VNet IPv4 (see
//! [`hosting::service_endpoint`]): IPv4 ranges are compared with that IPv4, IPv6 ranges with the
//! address as seen, and an IPv6 caller in no known form is refused *as such*, never as if it had
//! been compared with the IPv4 ranges and found outside.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use hosting::forwarded::{client_from_forwarded_for, parse_client_ip};
use hosting::{CallerAddr, Membership};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where the client address is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpSource {
    /// The `X-Client-IP` header App Service's front ends set (falls back to the peer when absent).
    XClientIp,
    /// The rightmost entry of `X-Forwarded-For` (the one the nearest proxy appended).
    XForwardedFor,
    /// The TCP peer; headers are never trusted.
    Peer,
}

impl ClientIpSource {
    /// The name used in configuration and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::XClientIp => "x-client-ip",
            Self::XForwardedFor => "x-forwarded-for",
            Self::Peer => "peer",
        }
    }
}

/// The client address the back end settled on, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The address.
    pub ip: IpAddr,
    /// The source actually used (the configured one, or `peer` when its header was absent).
    pub source: ClientIpSource,
}

/// Picks the client address according to `source`. Under `peer`, headers are ignored entirely,
/// so a spoofed `X-Forwarded-For` cannot change the outcome.
pub fn client_addr(source: ClientIpSource, headers: &HeaderMap, peer: SocketAddr) -> ClientAddr {
    let from_header = match source {
        ClientIpSource::Peer => None,
        ClientIpSource::XClientIp => header_str(headers, "x-client-ip").and_then(parse_client_ip),
        ClientIpSource::XForwardedFor => {
            header_str(headers, "x-forwarded-for").and_then(client_from_forwarded_for)
        }
    };
    match from_header {
        Some(ip) => ClientAddr {
            ip: ip.to_canonical(),
            source,
        },
        None => ClientAddr {
            ip: peer.ip().to_canonical(),
            source: ClientIpSource::Peer,
        },
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Why `ALLOWED_CALLERS` refused a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The caller (its VNet IPv4, for a service-endpoint caller) lies in none of the ranges.
    Outside,
    /// An IPv6 caller that is not in the service-endpoint form, against a list with IPv4 ranges
    /// that no IPv6 range of the list contains: it could not be compared, and is refused so.
    Undecodable,
}

/// The app-level network gate: `ALLOWED_CALLERS` (IPv4 and IPv6 CIDRs).
#[derive(Debug, Clone, Default)]
pub struct CallerPolicy {
    allowed: Vec<IpNet>,
}

impl CallerPolicy {
    /// A gate allowing `allowed`; an empty list allows everyone.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Lets `ip` in when the list is empty or one of its ranges contains it: IPv4 ranges are
    /// compared with the IPv4 (a service-endpoint caller's embedded one), IPv6 ranges with the
    /// address as seen.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.allowed.is_empty() {
            return Ok(());
        }
        let caller = CallerAddr::of(ip);
        let mut undecodable = false;
        for net in &self.allowed {
            match caller.in_net(net) {
                Membership::Inside => return Ok(()),
                Membership::Undecodable => undecodable = true,
                Membership::Outside => {}
            }
        }
        Err(if undecodable {
            Refusal::Undecodable
        } else {
            Refusal::Outside
        })
    }

    /// True when [`Self::check`] lets `ip` in.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.check(ip).is_ok()
    }

    /// True when a list is configured.
    pub fn is_enforced(&self) -> bool {
        !self.allowed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    const PEER: &str = "127.0.0.1:5000";

    #[test]
    fn peer_source_ignores_spoofed_headers() {
        let h = headers(&[
            ("x-forwarded-for", "10.20.1.4"),
            ("x-client-ip", "10.20.1.4"),
        ]);
        let client = client_addr(ClientIpSource::Peer, &h, PEER.parse().unwrap());
        assert_eq!(client.ip.to_string(), "127.0.0.1");
        assert_eq!(client.source, ClientIpSource::Peer);
    }

    #[test]
    fn header_sources_read_their_header() {
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4, 10.20.1.4:4711"),
            ("x-client-ip", "10.20.1.5"),
        ]);
        let peer = PEER.parse().unwrap();
        assert_eq!(
            client_addr(ClientIpSource::XForwardedFor, &h, peer)
                .ip
                .to_string(),
            "10.20.1.4"
        );
        assert_eq!(
            client_addr(ClientIpSource::XClientIp, &h, peer)
                .ip
                .to_string(),
            "10.20.1.5"
        );
    }

    #[test]
    fn a_missing_header_falls_back_to_the_peer_and_says_so() {
        let client = client_addr(
            ClientIpSource::XClientIp,
            &HeaderMap::new(),
            PEER.parse().unwrap(),
        );
        assert_eq!(client.source, ClientIpSource::Peer);
        assert_eq!(client.ip.to_string(), "127.0.0.1");
    }

    #[test]
    fn mapped_ipv6_peers_are_compared_as_ipv4() {
        let client = client_addr(
            ClientIpSource::Peer,
            &HeaderMap::new(),
            "[::ffff:127.0.0.2]:80".parse().unwrap(),
        );
        let policy = CallerPolicy::new(vec!["127.0.0.2/32".parse().unwrap()]);
        assert!(policy.allows(client.ip));
    }

    #[test]
    fn service_endpoint_callers_are_judged_by_their_vnet_address() {
        let policy = CallerPolicy::new(vec!["10.0.1.0/24".parse().unwrap()]);
        // 10.0.1.4 and 10.9.9.9 in the service-endpoint form.
        assert_eq!(
            policy.check("fde4:8dba:2300:5457:6f23:200:a00:104".parse().unwrap()),
            Ok(())
        );
        assert_eq!(
            policy.check("fde4:8dba:2300:5457:6f23:200:a09:909".parse().unwrap()),
            Err(Refusal::Outside)
        );
        assert_eq!(
            policy.check("2603:1030::a00:104".parse().unwrap()),
            Err(Refusal::Undecodable)
        );
        // With an IPv6 range as well, an IPv6 caller outside it is plainly outside.
        let both = CallerPolicy::new(vec![
            "10.0.1.0/24".parse().unwrap(),
            "2603:1030::/32".parse().unwrap(),
        ]);
        assert!(both.allows("2603:1030::a00:104".parse().unwrap()));
        assert_eq!(
            both.check("2603:1031::1".parse().unwrap()),
            Err(Refusal::Undecodable)
        );
        let only_v6 = CallerPolicy::new(vec!["2603:1030::/32".parse().unwrap()]);
        assert_eq!(
            only_v6.check("2603:1031::1".parse().unwrap()),
            Err(Refusal::Outside)
        );
        assert_eq!(
            only_v6.check("10.0.1.4".parse().unwrap()),
            Err(Refusal::Outside)
        );
    }

    #[test]
    fn allow_list() {
        let policy = CallerPolicy::new(vec!["127.0.2.0/24".parse().unwrap()]);
        assert!(policy.allows("127.0.2.9".parse().unwrap()));
        assert!(!policy.allows("127.0.0.1".parse().unwrap()));
        assert!(CallerPolicy::default().allows("8.8.8.8".parse().unwrap()));
    }
}
