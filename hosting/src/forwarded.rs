//! Parsing the client-address headers App Service adds: `X-Forwarded-For` is `ip:port`, may be a
//! list, and may carry IPv6 in brackets; `X-Client-IP` is the bare address.
//!
//! The three paths a call can take hand over these header sets (parsed here, then decoded by
//! [`crate::service_endpoint`] when the address is IPv6):
//!
//! | path | `X-Forwarded-For` | `X-Client-Ip` | `X-Client-Port` |
//! |---|---|---|---|
//! | public | `203.0.113.9:51234` | `203.0.113.9` | the port |
//! | service endpoint | `…, [fde4:8dba:…:a00:104]:50451` | not confirmed: the IPv6 form, bare or bracketed, is accepted | the port |
//! | private endpoint | `10.10.0.5` (no port) | `10.10.0.5` | `0` |

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One entry of an `X-Forwarded-For` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ForwardedHop {
    /// The entry as sent, trimmed.
    pub raw: String,
    /// The address, when the entry parses as one.
    #[schema(value_type = Option<String>)]
    pub ip: Option<IpAddr>,
    /// The port, when the entry carried one.
    pub port: Option<u16>,
}

/// Splits an `X-Forwarded-For` value into its hops, leftmost (the original client, as claimed)
/// first. Entries that are not addresses (`unknown`, garbage) are kept with `ip: None`.
pub fn parse_forwarded_for(value: &str) -> Vec<ForwardedHop> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (ip, port) = parse_entry(entry);
            ForwardedHop {
                raw: entry.to_owned(),
                ip,
                port,
            }
        })
        .collect()
}

fn parse_entry(entry: &str) -> (Option<IpAddr>, Option<u16>) {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return (Some(ip), None);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return (Some(addr.ip()), Some(addr.port()));
    }
    // `[2001:db8::1]` without a port.
    if let Some(inner) = entry.strip_prefix('[').and_then(|s| s.strip_suffix(']'))
        && let Ok(ip) = inner.parse::<IpAddr>()
    {
        return (Some(ip), None);
    }
    (None, None)
}

/// The client address according to `X-Forwarded-For`: the **rightmost** parseable hop, because
/// that is the one the nearest trusted proxy (App Service's front end) appended; everything to
/// its left was sent by the client and can be forged.
pub fn client_from_forwarded_for(value: &str) -> Option<IpAddr> {
    parse_forwarded_for(value)
        .into_iter()
        .rev()
        .find_map(|hop| hop.ip)
}

/// Parses `X-Client-IP`: a bare address, tolerating a port or brackets.
pub fn parse_client_ip(value: &str) -> Option<IpAddr> {
    parse_entry(value.trim()).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_app_service_shapes() {
        let hops = parse_forwarded_for("203.0.113.9:51234, 10.20.1.4:0,[2001:db8::7]:443, unknown");
        let ips: Vec<_> = hops.iter().map(|h| h.ip.map(|ip| ip.to_string())).collect();
        assert_eq!(
            ips,
            vec![
                Some("203.0.113.9".into()),
                Some("10.20.1.4".into()),
                Some("2001:db8::7".into()),
                None
            ]
        );
        assert_eq!(hops[0].port, Some(51234));
        assert_eq!(hops[2].port, Some(443));
        assert_eq!(hops[3].raw, "unknown");
    }

    #[test]
    fn bare_and_bracketed_addresses() {
        let hops = parse_forwarded_for("2001:db8::1, [fd00::2], 192.168.0.1");
        assert_eq!(hops.len(), 3);
        assert!(hops.iter().all(|h| h.ip.is_some() && h.port.is_none()));
    }

    #[test]
    fn the_client_is_the_rightmost_parseable_hop() {
        assert_eq!(
            client_from_forwarded_for("1.1.1.1, 10.20.1.4:3333, junk"),
            Some("10.20.1.4".parse().unwrap())
        );
        assert_eq!(client_from_forwarded_for("junk, "), None);
        assert_eq!(client_from_forwarded_for(""), None);
    }

    /// The header sets of the three paths, as captured on real Azure (parsed, never connected to).
    #[test]
    fn each_paths_header_set_gives_the_caller() {
        // Public: ip:port in X-Forwarded-For, the bare address in X-Client-Ip.
        assert_eq!(
            client_from_forwarded_for("203.0.113.9:51234"),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(
            parse_client_ip("203.0.113.9"),
            Some("203.0.113.9".parse().unwrap())
        );
        // Service endpoint: the chain ends in the bracketed IPv6 form with a port.
        let chain = "198.51.100.7:443, [fde4:8dba:1200:98db:6a12:300:a02:126]:27842";
        let se: IpAddr = "fde4:8dba:1200:98db:6a12:300:a02:126".parse().unwrap();
        assert_eq!(client_from_forwarded_for(chain), Some(se));
        assert_eq!(parse_forwarded_for(chain)[1].port, Some(27842));
        // X-Client-Ip may carry it too (unconfirmed): bare, bracketed, or bracketed with a port.
        for value in [
            "fde4:8dba:1200:98db:6a12:300:a02:126",
            "[fde4:8dba:1200:98db:6a12:300:a02:126]",
            "[fde4:8dba:1200:98db:6a12:300:a02:126]:27842",
        ] {
            assert_eq!(parse_client_ip(value), Some(se), "{value}");
        }
        // Private endpoint: the bare address, no port (X-Client-Port: 0 says so).
        assert_eq!(
            client_from_forwarded_for("10.10.0.5"),
            Some("10.10.0.5".parse().unwrap())
        );
        assert_eq!(parse_forwarded_for("10.10.0.5")[0].port, None);
        assert_eq!(
            parse_client_ip("10.10.0.5"),
            Some("10.10.0.5".parse().unwrap())
        );
    }

    #[test]
    fn client_ip_header_tolerates_a_port() {
        assert_eq!(
            parse_client_ip(" 10.0.0.5 "),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(
            parse_client_ip("10.0.0.5:80"),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(parse_client_ip("nope"), None);
    }
}
