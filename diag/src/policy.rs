//! The `/diag` target policy (`DIAG_ALLOW`): which addresses and names a diagnostic may reach.
//! `/diag` is a network tool inside the VNet, i.e. an SSRF surface, so the decision is a pure
//! function of (requested name, **resolved** address, port) that tests can drive without sockets.
//!
//! Rules, in order:
//! 1. IPv4-mapped IPv6 is checked as the IPv4 it carries.
//! 2. Always denied, whatever the policy: `0.0.0.0/8`, `169.254.0.0/16` (IMDS, identity
//!    endpoint), multicast, `255.255.255.255`, `::`, `fe80::/10`, and IPv6 forms that embed an
//!    IPv4 address for a translator or tunnel (`::/96`, `64:ff9b::/96`, `64:ff9b:1::/48`,
//!    `2002::/16`, `2001::/32`), which could otherwise carry a forbidden IPv4 address.
//! 3. Loopback passes only through an explicit loopback CIDR entry: one whose whole network lies
//!    inside `127.0.0.0/8`, or `::1/128`. A wider network that happens to contain loopback
//!    (`0.0.0.0/0`, `::/0`) does not allow it, and a host-name entry such as `localhost` allows
//!    the name, never a loopback address it resolves to.
//! 4. Otherwise a target passes when its address is in an allowed CIDR, or the requested name
//!    matches an allowed host or `*.suffix` glob — in both cases on an allowed port.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::target::{normalize_ip, parse_ipv4_loose, validate_dns_name};

/// Azure's virtual DNS server (reachable from every VNet on port 53).
pub const AZURE_DNS: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);

/// A `DIAG_ALLOW` value that does not parse (a startup configuration error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DIAG_ALLOW entry `{entry}`: {reason}")]
pub struct PolicyError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Which ports an entry allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ports {
    Any,
    Range(u16, u16),
}

impl Ports {
    fn contains(self, port: u16) -> bool {
        match self {
            Self::Any => true,
            Self::Range(from, to) => (from..=to).contains(&port),
        }
    }
}

/// What an entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    Net(IpNet),
    Host(String),
    /// `*.suffix`, stored as `.suffix`.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    matcher: Matcher,
    ports: Ports,
}

/// Where the policy in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    /// `DIAG_ALLOW`.
    DiagAllow,
    /// The built-in default (RFC 1918, the app's own back end, Azure DNS).
    Default,
}

/// A parsed target policy. Build it once at startup with [`Policy::parse`] or
/// [`Policy::default_for`], then call [`Policy::check`] for every target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    entries: Vec<Entry>,
    source: PolicySource,
}

/// Why a target was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeniedReason {
    /// Link-local (IMDS, the identity endpoint): never a diagnostic target.
    LinkLocal,
    /// `0.0.0.0/8` or `::`.
    Unspecified,
    /// Multicast.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// An IPv6 form embedding an IPv4 address for a translator or tunnel.
    EmbeddedIpv4,
    /// Loopback, not allowed by a loopback CIDR entry.
    Loopback,
    /// Not covered by any entry of the policy.
    NotAllowed,
}

/// A refused target: what, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denied {
    /// The requested name, when the target was named.
    pub name: Option<String>,
    /// The resolved (normalised) address that was checked.
    pub ip: IpAddr,
    /// The port.
    pub port: u16,
    /// Why.
    pub reason: DeniedReason,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.name {
            Some(name) => format!("{name} ({}) port {}", self.ip, self.port),
            None => format!("{} port {}", self.ip, self.port),
        };
        let why = match self.reason {
            DeniedReason::LinkLocal => {
                "is link-local (instance metadata, identity endpoint), which /diag never reaches"
            }
            DeniedReason::Unspecified => "is an unspecified address, which /diag never reaches",
            DeniedReason::Multicast => "is multicast, which /diag never reaches",
            DeniedReason::Broadcast => "is broadcast, which /diag never reaches",
            DeniedReason::EmbeddedIpv4 => {
                "embeds an IPv4 address for a translator or tunnel, which /diag never reaches"
            }
            DeniedReason::Loopback => {
                "is loopback, which /diag reaches only through a DIAG_ALLOW CIDR entry inside 127.0.0.0/8 or [::1]"
            }
            DeniedReason::NotAllowed => "is not allowed by the diag target policy",
        };
        write!(f, "target {target} {why}")
    }
}

impl Denied {
    /// True when no policy can allow this target.
    pub fn is_always_denied(&self) -> bool {
        !matches!(
            self.reason,
            DeniedReason::Loopback | DeniedReason::NotAllowed
        )
    }

    /// The next step for the operator.
    pub fn hint(&self) -> &'static str {
        if self.is_always_denied() {
            "this address class is denied whatever DIAG_ALLOW says"
        } else {
            "allow the target in DIAG_ALLOW (comma-separated CIDR, host or *.suffix entries, each optionally :PORT or :FROM-TO)"
        }
    }
}

impl Policy {
    /// Parses `DIAG_ALLOW`: comma-separated entries, each a CIDR or IP (`10.0.0.0/8`,
    /// `10.1.2.3`, `[fd00::/8]`, `fd00::1`), a host name or a `*.suffix` glob, optionally followed
    /// by `:PORT` or `:FROM-TO` (IPv6 in brackets when a port follows). An empty value is a policy
    /// that allows nothing.
    pub fn parse(input: &str) -> Result<Self, PolicyError> {
        let entries = input
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(parse_entry)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            entries,
            source: PolicySource::DiagAllow,
        })
    }

    /// The policy when `DIAG_ALLOW` is unset: RFC 1918 ranges on any port, the app's own back
    /// end (`own_backend_host`: a host, `host:port` or URL) on its port — the explicit one, else
    /// 80 for `http://` and 443 for `https://`, else (a bare host) any port —, and Azure DNS
    /// 168.63.129.16 on port 53.
    pub fn default_for(own_backend_host: Option<&str>) -> Result<Self, PolicyError> {
        let mut entries: Vec<Entry> = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
            .into_iter()
            .map(|net| Entry {
                matcher: Matcher::Net(net.parse().unwrap_or_else(|_| unreachable_net())),
                ports: Ports::Any,
            })
            .collect();
        entries.push(Entry {
            matcher: Matcher::Net(IpNet::V4(Ipv4Net::from(AZURE_DNS))),
            ports: Ports::Range(53, 53),
        });
        if let Some(backend) = own_backend_host.map(str::trim).filter(|b| !b.is_empty()) {
            let (host, port) = backend_target(backend).map_err(|reason| PolicyError {
                entry: backend.to_owned(),
                reason: reason.to_owned(),
            })?;
            let mut entry = parse_entry(host)?;
            entry.ports = port.map_or(Ports::Any, |port| Ports::Range(port, port));
            entries.push(entry);
        }
        Ok(Self {
            entries,
            source: PolicySource::Default,
        })
    }

    /// Where this policy came from.
    pub fn source(&self) -> PolicySource {
        self.source
    }

    /// Decides whether a diagnostic may reach `ip:port`, asked for as `name` (when it was a name).
    /// `ip` must be the address the connection will go to: the check is on the resolved address.
    pub fn check(&self, name: Option<&str>, ip: IpAddr, port: u16) -> Result<(), Denied> {
        let ip = normalize_ip(ip);
        let deny = |reason| Denied {
            name: name.map(str::to_owned),
            ip,
            port,
            reason,
        };
        if let Some(reason) = always_denied(ip) {
            return Err(deny(reason));
        }
        // Loopback needs a loopback entry: `0.0.0.0/0` contains 127.0.0.1 but does not say so.
        let in_allowed_net = self.entries.iter().any(|entry| {
            matches!(&entry.matcher, Matcher::Net(net)
                if net.contains(&ip) && (!ip.is_loopback() || is_loopback_net(net)))
                && entry.ports.contains(port)
        });
        if in_allowed_net {
            return Ok(());
        }
        if ip.is_loopback() {
            return Err(deny(DeniedReason::Loopback));
        }
        let name = name.map(|n| n.strip_suffix('.').unwrap_or(n).to_ascii_lowercase());
        let name_allowed = name.as_deref().is_some_and(|name| {
            self.entries.iter().any(|entry| {
                entry.ports.contains(port)
                    && match &entry.matcher {
                        Matcher::Host(host) => host == name,
                        Matcher::Suffix(suffix) => name.ends_with(suffix.as_str()),
                        Matcher::Net(_) => false,
                    }
            })
        });
        if name_allowed {
            Ok(())
        } else {
            Err(deny(DeniedReason::NotAllowed))
        }
    }

    /// A short description for logs and `/diag/env` (entries, never anything secret).
    pub fn describe(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|entry| {
                let matcher = match &entry.matcher {
                    Matcher::Net(IpNet::V6(net)) if entry.ports != Ports::Any => format!("[{net}]"),
                    Matcher::Net(net) => net.to_string(),
                    Matcher::Host(host) => host.clone(),
                    Matcher::Suffix(suffix) => format!("*{suffix}"),
                };
                match entry.ports {
                    Ports::Any => matcher,
                    Ports::Range(from, to) if from == to => format!("{matcher}:{from}"),
                    Ports::Range(from, to) => format!("{matcher}:{from}-{to}"),
                }
            })
            .collect()
    }
}

/// The reason an address is denied under every policy, if it is.
pub fn always_denied(ip: IpAddr) -> Option<DeniedReason> {
    match normalize_ip(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if a == 0 {
                Some(DeniedReason::Unspecified)
            } else if a == 169 && b == 254 {
                Some(DeniedReason::LinkLocal)
            } else if v4.is_multicast() {
                Some(DeniedReason::Multicast)
            } else if v4.is_broadcast() {
                Some(DeniedReason::Broadcast)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            if v6.is_unspecified() {
                Some(DeniedReason::Unspecified)
            } else if segments[0] & 0xffc0 == 0xfe80 {
                Some(DeniedReason::LinkLocal)
            } else if v6.is_multicast() {
                Some(DeniedReason::Multicast)
            } else if embeds_ipv4(v6) {
                Some(DeniedReason::EmbeddedIpv4)
            } else {
                None
            }
        }
    }
}

/// IPv4-compatible `::a.b.c.d` (not `::1`), NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4
/// `2002::/16`, Teredo `2001::/32`.
fn embeds_ipv4(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let compatible = s[..6].iter().all(|&x| x == 0) && !ip.is_loopback() && !ip.is_unspecified();
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && (s[2..6].iter().all(|&x| x == 0) || s[2] == 1);
    let six_to_four = s[0] == 0x2002;
    let teredo = s[0] == 0x2001 && s[1] == 0;
    compatible || nat64 || six_to_four || teredo
}

fn unreachable_net() -> IpNet {
    // The literals above are valid; this keeps the code free of panics all the same.
    IpNet::V4(Ipv4Net::from(Ipv4Addr::BROADCAST))
}

/// True when the whole network is loopback: inside `127.0.0.0/8`, or exactly `::1/128`.
fn is_loopback_net(net: &IpNet) -> bool {
    match net {
        IpNet::V4(v4) => v4.prefix_len() >= 8 && v4.network().is_loopback(),
        IpNet::V6(v6) => v6.prefix_len() == 128 && v6.network().is_loopback(),
    }
}

/// The host and, when known, the port of the configured back end (a host, `host:port` or URL):
/// an explicit port wins, else the URL scheme's default (80 for `http`, 443 for `https`).
fn backend_target(backend: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (scheme, rest) = backend
        .split_once("://")
        .map_or((None, backend), |(scheme, rest)| (Some(scheme), rest));
    let rest = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let (host, port) = crate::target::split_host_port(rest);
    let port = match port {
        Some(port) => Some(
            crate::target::parse_port(port).map_err(|_| "the back end's port must be 1-65535")?,
        ),
        None => match scheme {
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => Some(80),
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => Some(443),
            _ => None,
        },
    };
    Ok((host, port))
}

fn parse_entry(raw: &str) -> Result<Entry, PolicyError> {
    let err = |reason: &str| PolicyError {
        entry: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let (target, ports) = split_entry(raw).ok_or_else(|| err("unbalanced brackets"))?;
    let ports = match ports {
        None => Ports::Any,
        Some(ports) => parse_ports(ports).ok_or_else(|| {
            err("the port must be PORT or FROM-TO, each 1-65535, FROM not above TO")
        })?,
    };
    let matcher = if let Some(suffix) = target.strip_prefix("*.") {
        let suffix =
            validate_dns_name(suffix).map_err(|e| err(&format!("not a valid *.suffix: {e}")))?;
        Matcher::Suffix(format!(".{suffix}"))
    } else if let Some(net) = parse_net(target) {
        Matcher::Net(net)
    } else if target.contains('/') || target.contains(':') || target.contains('*') {
        return Err(err("not a valid CIDR, host name or *.suffix glob"));
    } else {
        let host = validate_dns_name(target).map_err(|e| err(&e.to_string()))?;
        if host
            .rsplit('.')
            .next()
            .is_some_and(|last| last.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(err("not a valid IPv4 address"));
        }
        Matcher::Host(host)
    };
    Ok(Entry { matcher, ports })
}

/// Splits an entry into its target and optional port part.
fn split_entry(raw: &str) -> Option<(&str, Option<&str>)> {
    if let Some(inner) = raw.strip_prefix('[') {
        let (target, rest) = inner.split_once(']')?;
        return match rest {
            "" => Some((target, None)),
            _ => Some((target, Some(rest.strip_prefix(':')?))),
        };
    }
    // A bare IPv6 CIDR or address has several colons and no port.
    if raw.matches(':').count() > 1 {
        return Some((raw, None));
    }
    Some(match raw.split_once(':') {
        Some((target, ports)) => (target, Some(ports)),
        None => (raw, None),
    })
}

fn parse_ports(ports: &str) -> Option<Ports> {
    let port = |p: &str| crate::target::parse_port(p).ok();
    let (from, to) = match ports.split_once('-') {
        Some((from, to)) => (port(from)?, port(to)?),
        None => {
            let single = port(ports)?;
            (single, single)
        }
    };
    (from <= to).then_some(Ports::Range(from, to))
}

fn parse_net(target: &str) -> Option<IpNet> {
    if let Some((addr, prefix)) = target.split_once('/') {
        let prefix: u8 = prefix.parse().ok()?;
        if let Ok(v6) = addr.parse::<Ipv6Addr>() {
            return Ipv6Net::new(v6, prefix)
                .ok()
                .map(|net| normalize_net(IpNet::V6(net).trunc()));
        }
        let v4 = parse_ipv4_loose(addr)?;
        return Ipv4Net::new(v4, prefix)
            .ok()
            .map(|net| IpNet::V4(net.trunc()));
    }
    if let Ok(v6) = target.parse::<Ipv6Addr>() {
        return Some(normalize_net(IpNet::V6(Ipv6Net::from(v6))));
    }
    parse_ipv4_loose(target).map(|v4| IpNet::V4(Ipv4Net::from(v4)))
}

/// `::ffff:a.b.c.d/128` (or a mapped prefix ≥ 96) is the IPv4 network it maps.
fn normalize_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn reason(policy: &Policy, name: Option<&str>, addr: &str, port: u16) -> Option<DeniedReason> {
        policy.check(name, ip(addr), port).err().map(|d| d.reason)
    }

    #[test]
    fn parses_every_entry_shape() {
        let policy = Policy::parse(
            "10.0.0.0/8, 192.168.1.7:443, [fd00::/8]:443, fd01::/16, app-be.azurewebsites.net:443, *.privatelink.azurewebsites.net:8000-8100, 127.0.0.0/8:53",
        )
        .unwrap();
        assert_eq!(
            policy.describe(),
            [
                "10.0.0.0/8",
                "192.168.1.7/32:443",
                "[fd00::/8]:443",
                "fd01::/16",
                "app-be.azurewebsites.net:443",
                "*.privatelink.azurewebsites.net:8000-8100",
                "127.0.0.0/8:53",
            ]
        );
        assert_eq!(policy.source(), PolicySource::DiagAllow);
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/8:0",
            "10.0.0.0/8:70000",
            "10.0.0.0/8:9-1",
            "host:abc",
            "[fd00::/8",
            "[fd00::/8]443",
            "*.",
            "*",
            "a*.example.com",
            "1.2.3.999",
            "bad host",
            "x/y",
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_allow_list_allows_nothing() {
        let policy = Policy::parse(" , ").unwrap();
        assert_eq!(
            reason(&policy, None, "10.0.0.1", 80),
            Some(DeniedReason::NotAllowed)
        );
    }

    #[test]
    fn default_policy() {
        let policy = Policy::default_for(Some("https://app-be.azurewebsites.net/api")).unwrap();
        assert_eq!(policy.source(), PolicySource::Default);
        assert_eq!(reason(&policy, None, "10.20.2.4", 443), None);
        assert_eq!(reason(&policy, None, "172.31.0.1", 22), None);
        assert_eq!(reason(&policy, None, "192.168.0.1", 80), None);
        assert_eq!(reason(&policy, None, "168.63.129.16", 53), None);
        assert_eq!(
            reason(&policy, None, "168.63.129.16", 80),
            Some(DeniedReason::NotAllowed)
        );
        assert_eq!(
            reason(&policy, Some("app-be.azurewebsites.net"), "20.1.2.3", 443),
            None
        );
        assert_eq!(
            reason(&policy, Some("other.azurewebsites.net"), "20.1.2.3", 443),
            Some(DeniedReason::NotAllowed)
        );
        assert_eq!(
            reason(&policy, None, "20.1.2.3", 443),
            Some(DeniedReason::NotAllowed)
        );
        assert_eq!(
            reason(&policy, None, "127.0.0.1", 80),
            Some(DeniedReason::Loopback)
        );
        assert!(Policy::default_for(Some("http://bad host/")).is_err());
    }

    #[test]
    fn the_default_allows_a_backend_with_a_unique_default_host_name() {
        // `<app>-<hash>.<region>-01.azurewebsites.net`: the whole name, neither its app nor its
        // region's other apps, on the back end's port only.
        let unique = "app-be-c4bqa2hxgzf3dvep.westeurope-01.azurewebsites.net";
        let policy = Policy::default_for(Some(&format!("https://{unique}"))).unwrap();
        assert_eq!(reason(&policy, Some(unique), "20.1.2.3", 443), None);
        assert_eq!(
            reason(&policy, Some(&unique.to_ascii_uppercase()), "20.1.2.3", 443),
            None
        );
        assert_eq!(
            reason(&policy, Some(unique), "20.1.2.3", 80),
            Some(DeniedReason::NotAllowed)
        );
        for other in [
            "app-be.azurewebsites.net",
            "app-be-c4bqa2hxgzf3dvep.azurewebsites.net",
            "other-0123456789abcdef.westeurope-01.azurewebsites.net",
        ] {
            assert_eq!(
                reason(&policy, Some(other), "20.1.2.3", 443),
                Some(DeniedReason::NotAllowed),
                "{other}"
            );
        }
        // Through its private endpoint the address is private: RFC 1918 is allowed anyway.
        assert_eq!(reason(&policy, Some(unique), "10.20.2.4", 443), None);
    }

    #[test]
    fn the_default_backend_entry_is_limited_to_the_backend_port() {
        let backend = |configured: &str, name: Option<&str>, addr: &str, port: u16| {
            let policy = Policy::default_for(Some(configured)).unwrap();
            reason(&policy, name, addr, port)
        };
        // `host:port`: that port only.
        assert_eq!(backend("127.0.0.1:8081", None, "127.0.0.1", 8081), None);
        assert_eq!(
            backend("127.0.0.1:8081", None, "127.0.0.1", 9),
            Some(DeniedReason::Loopback)
        );
        // A URL: its port, else the scheme's.
        let be = Some("app-be.azurewebsites.net");
        for (url, port, other) in [
            ("https://app-be.azurewebsites.net/api", 443, 80),
            ("http://app-be.azurewebsites.net", 80, 443),
            ("HTTPS://app-be.azurewebsites.net:8443/x?y", 8443, 443),
            ("http://user@app-be.azurewebsites.net:8080", 8080, 80),
        ] {
            assert_eq!(backend(url, be, "20.1.2.3", port), None, "{url}");
            assert_eq!(
                backend(url, be, "20.1.2.3", other),
                Some(DeniedReason::NotAllowed),
                "{url}"
            );
        }
        assert_eq!(
            backend("http://[fd00::5]:8081/", None, "fd00::5", 8081),
            None
        );
        assert_eq!(
            backend("http://[fd00::5]:8081/", None, "fd00::5", 22),
            Some(DeniedReason::NotAllowed)
        );
        // A bare host says nothing about the port: any port.
        assert_eq!(
            backend("app-be.azurewebsites.net", be, "20.1.2.3", 22),
            None
        );
        let policy = Policy::default_for(Some("https://app-be.azurewebsites.net")).unwrap();
        assert!(
            policy
                .describe()
                .contains(&"app-be.azurewebsites.net:443".to_owned()),
            "{:?}",
            policy.describe()
        );
    }

    #[test]
    fn loopback_passes_only_through_a_loopback_cidr() {
        let wide = Policy::parse("0.0.0.0/0, ::/0, *.lockdown.test, localhost").unwrap();
        for (name, addr) in [
            (None, "127.0.0.1"),
            (None, "127.255.0.9"),
            (None, "::1"),
            (None, "::ffff:127.0.0.1"),
            (Some("localhost"), "127.0.0.1"),
            (Some("localhost"), "::1"),
            (Some("loopback.lockdown.test"), "127.0.0.1"),
            (Some("loopback.lockdown.test"), "::1"),
        ] {
            assert_eq!(
                reason(&wide, name, addr, 80),
                Some(DeniedReason::Loopback),
                "{name:?} {addr}"
            );
        }
        // Networks that contain loopback and more are not explicit permission either.
        for allow in ["126.0.0.0/7", "64.0.0.0/2", "::/127", "::/64"] {
            let policy = Policy::parse(allow).unwrap();
            for addr in ["127.0.0.1", "::1"] {
                assert_eq!(
                    reason(&policy, None, addr, 80),
                    Some(DeniedReason::Loopback),
                    "{allow} {addr}"
                );
            }
        }
        // Loopback CIDRs do allow it, in every spelling of the entry.
        let explicit = Policy::parse("127.0.0.0/8").unwrap();
        assert_eq!(reason(&explicit, None, "127.0.0.1", 80), None);
        assert_eq!(reason(&explicit, Some("localhost"), "127.0.0.1", 80), None);
        assert_eq!(reason(&explicit, None, "::ffff:127.0.0.1", 80), None);
        assert_eq!(
            reason(&explicit, None, "::1", 80),
            Some(DeniedReason::Loopback)
        );
        for allow in [
            "127.0.0.1",
            "127.0.0.0/24",
            "[::ffff:127.0.0.1]",
            "::ffff:7f00:0/104",
        ] {
            let policy = Policy::parse(allow).unwrap();
            assert_eq!(reason(&policy, None, "127.0.0.1", 80), None, "{allow}");
        }
        for allow in ["::1", "[::1]:80", "::1/128"] {
            let policy = Policy::parse(allow).unwrap();
            assert_eq!(
                reason(&policy, Some("localhost"), "::1", 80),
                None,
                "{allow}"
            );
        }
        // The wide policy still allows what is not loopback (so the table above can fail).
        assert_eq!(reason(&wide, None, "20.1.2.3", 80), None);
        assert_eq!(reason(&wide, Some("localhost"), "10.0.0.1", 80), None);
    }

    #[test]
    fn hostile_targets_are_denied_under_the_widest_policy() {
        // Everything an operator could write, including 0.0.0.0/0 and ::/0.
        let policy = Policy::parse("0.0.0.0/0, ::/0, *.example.com, localhost").unwrap();
        let cases = [
            ("169.254.169.254", DeniedReason::LinkLocal),
            ("169.254.0.1", DeniedReason::LinkLocal),
            ("::ffff:169.254.169.254", DeniedReason::LinkLocal),
            ("::ffff:a9fe:a9fe", DeniedReason::LinkLocal),
            ("fe80::1", DeniedReason::LinkLocal),
            ("0.0.0.0", DeniedReason::Unspecified),
            ("0.1.2.3", DeniedReason::Unspecified),
            ("::", DeniedReason::Unspecified),
            ("::ffff:0.0.0.0", DeniedReason::Unspecified),
            ("224.0.0.1", DeniedReason::Multicast),
            ("239.255.255.250", DeniedReason::Multicast),
            ("ff02::1", DeniedReason::Multicast),
            ("255.255.255.255", DeniedReason::Broadcast),
            ("::a9fe:a9fe", DeniedReason::EmbeddedIpv4),
            ("64:ff9b::a9fe:a9fe", DeniedReason::EmbeddedIpv4),
            ("64:ff9b:1::a9fe:a9fe", DeniedReason::EmbeddedIpv4),
            ("2002:a9fe:a9fe::1", DeniedReason::EmbeddedIpv4),
            (
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                DeniedReason::EmbeddedIpv4,
            ),
        ];
        for (addr, want) in cases {
            assert_eq!(
                reason(&policy, Some("x.example.com"), addr, 80),
                Some(want),
                "{addr}"
            );
            assert_eq!(reason(&policy, None, addr, 80), Some(want), "{addr}");
        }
        // The wide policy does allow ordinary addresses, so the table above can fail.
        assert_eq!(reason(&policy, None, "20.1.2.3", 80), None);
        assert_eq!(reason(&policy, None, "2603:1030::1", 80), None);
    }

    #[test]
    fn odd_spellings_of_the_metadata_address_normalise_to_it() {
        use crate::target::{Host, parse_host};
        let policy = Policy::parse("0.0.0.0/0, ::/0").unwrap();
        for spelling in [
            "169.254.169.254",
            "2852039166",
            "0251.0376.0251.0376",
            "0xa9fea9fe",
            "0xa9.0xfe.0xa9.0xfe",
            "169.254.43518",
            "169.16689662",
            "0251.254.0xa9.254",
            "::ffff:169.254.169.254",
            "[::ffff:a9fe:a9fe]",
            "[::ffff:169.254.169.254]",
        ] {
            let Host::Ip(addr) = parse_host(spelling).unwrap() else {
                panic!("{spelling} parsed as a name");
            };
            assert_eq!(
                policy.check(None, addr, 80).unwrap_err().reason,
                DeniedReason::LinkLocal,
                "{spelling}"
            );
        }
        for spelling in ["0", "0.0", "0x0", "00", "0.0.0.0"] {
            let Host::Ip(addr) = parse_host(spelling).unwrap() else {
                panic!("{spelling} parsed as a name");
            };
            assert_eq!(
                policy.check(None, addr, 80).unwrap_err().reason,
                DeniedReason::Unspecified
            );
        }
    }

    #[test]
    fn loopback_needs_a_cidr_entry() {
        let by_name = Policy::parse("localhost, *.lockdown.test, 10.0.0.0/8").unwrap();
        assert_eq!(
            reason(&by_name, Some("localhost"), "127.0.0.1", 80),
            Some(DeniedReason::Loopback)
        );
        assert_eq!(
            reason(&by_name, Some("rebind.lockdown.test"), "127.0.0.1", 80),
            Some(DeniedReason::Loopback)
        );
        assert_eq!(
            reason(&by_name, Some("localhost"), "::1", 80),
            Some(DeniedReason::Loopback)
        );
        assert_eq!(
            reason(&by_name, None, "::ffff:127.0.0.1", 80),
            Some(DeniedReason::Loopback)
        );
        // A name that is allowed still passes when it resolves to an ordinary address.
        assert_eq!(
            reason(&by_name, Some("app.lockdown.test"), "20.1.2.3", 80),
            None
        );
        let by_cidr = Policy::parse("127.0.0.0/8:8000-9000, [::1]").unwrap();
        assert_eq!(reason(&by_cidr, Some("localhost"), "127.0.0.1", 8080), None);
        assert_eq!(
            reason(&by_cidr, None, "127.0.0.1", 22),
            Some(DeniedReason::Loopback)
        );
        assert_eq!(reason(&by_cidr, None, "::1", 22), None);
    }

    #[test]
    fn ports_and_globs() {
        let policy = Policy::parse(
            "*.privatelink.azurewebsites.net:443, app-be.azurewebsites.net:443-444, 10.1.0.0/16:53",
        )
        .unwrap();
        assert_eq!(
            reason(
                &policy,
                Some("app-be.privatelink.azurewebsites.net"),
                "10.20.2.4",
                443
            ),
            None
        );
        assert_eq!(
            reason(
                &policy,
                Some("APP-BE.privatelink.azurewebsites.net."),
                "10.20.2.4",
                443
            ),
            None
        );
        assert_eq!(
            reason(
                &policy,
                Some("privatelink.azurewebsites.net"),
                "10.20.2.4",
                443
            ),
            Some(DeniedReason::NotAllowed)
        );
        assert_eq!(
            reason(
                &policy,
                Some("x.privatelink.azurewebsites.net"),
                "10.20.2.4",
                80
            ),
            Some(DeniedReason::NotAllowed)
        );
        assert_eq!(
            reason(
                &policy,
                Some("evilprivatelink.azurewebsites.net"),
                "10.20.2.4",
                443
            ),
            Some(DeniedReason::NotAllowed)
        );
        assert_eq!(
            reason(&policy, Some("app-be.azurewebsites.net"), "20.1.2.3", 444),
            None
        );
        assert_eq!(reason(&policy, None, "10.1.2.3", 53), None);
        assert_eq!(
            reason(&policy, None, "10.1.2.3", 54),
            Some(DeniedReason::NotAllowed)
        );
    }

    #[test]
    fn denial_messages_name_the_policy() {
        let policy = Policy::parse("10.0.0.0/8").unwrap();
        let denied = policy
            .check(Some("x.test"), ip("20.1.2.3"), 443)
            .unwrap_err();
        assert_eq!(
            denied.to_string(),
            "target x.test (20.1.2.3) port 443 is not allowed by the diag target policy"
        );
        assert!(denied.hint().contains("DIAG_ALLOW"));
        let denied = policy.check(None, ip("169.254.169.254"), 80).unwrap_err();
        assert!(denied.is_always_denied());
    }
}
