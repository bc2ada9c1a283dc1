//! How the back end sees its caller: which address it takes as the client, from which source,
//! and whether `ALLOWED_CALLERS` lets it in. This is what turns "why do I get 403?" into an answer.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use hosting::forwarded::{
    ForwardedHop, client_from_forwarded_for, parse_client_ip, parse_forwarded_for,
};
use hosting::{AddressClass, Instance};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::CallerAuth;

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

/// The app-level network gate: `ALLOWED_CALLERS`.
#[derive(Debug, Clone, Default)]
pub struct CallerPolicy {
    allowed: Vec<IpNet>,
}

impl CallerPolicy {
    /// A gate allowing `allowed`; an empty list allows everyone.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// True when the list is empty or `ip` lies in one of its networks.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allowed.is_empty() || self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// True when a list is configured.
    pub fn is_enforced(&self) -> bool {
        !self.allowed.is_empty()
    }
}

/// `GET /api/caller`: how the back end sees its caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CallerView {
    /// The client address the back end settled on.
    pub client_ip: String,
    /// Where it came from: `x-client-ip`, `x-forwarded-for` or `peer`.
    pub source: ClientIpSource,
    /// The TCP peer (`ip:port`): on App Service, the platform's front end.
    pub peer: String,
    /// The parsed `X-Forwarded-For` chain, leftmost first (informational: only the source above
    /// decides).
    pub forwarded_for: Vec<ForwardedHop>,
    /// The client address's class (`private`, `public`, `loopback`, …).
    pub class: AddressClass,
    /// Whether `ALLOWED_CALLERS` lets this client in (always true when it is empty).
    pub allowed: bool,
    /// Whether an `ALLOWED_CALLERS` list is configured at all.
    pub allow_list_enforced: bool,
    /// How the credential gate let the caller in (`mode`; in Entra mode the calling `app_id`,
    /// `object_id` and `roles` — never the token).
    pub auth: CallerAuth,
    /// Which back-end instance answered.
    pub instance: Instance,
}

impl CallerView {
    /// Builds the view from what the request carried.
    pub fn new(
        client: ClientAddr,
        headers: &HeaderMap,
        peer: SocketAddr,
        policy: &CallerPolicy,
        auth: CallerAuth,
        instance: Instance,
    ) -> Self {
        Self {
            client_ip: client.ip.to_string(),
            source: client.source,
            peer: peer.to_string(),
            forwarded_for: header_str(headers, "x-forwarded-for")
                .map(parse_forwarded_for)
                .unwrap_or_default(),
            class: AddressClass::of(client.ip),
            allowed: policy.allows(client.ip),
            allow_list_enforced: policy.is_enforced(),
            auth,
            instance,
        }
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
    fn allow_list() {
        let policy = CallerPolicy::new(vec!["127.0.2.0/24".parse().unwrap()]);
        assert!(policy.allows("127.0.2.9".parse().unwrap()));
        assert!(!policy.allows("127.0.0.1".parse().unwrap()));
        assert!(CallerPolicy::default().allows("8.8.8.8".parse().unwrap()));
    }
}
