//! What kind of address an IP is: the first question behind every lockdown diagnosis ("did the
//! name resolve to a private address?", "is the caller inside the integration subnet?").

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The class of an IP address, as reported in `/diag/resolve`, `/api/caller` and the path report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AddressClass {
    /// 127.0.0.0/8 or ::1.
    Loopback,
    /// RFC 1918: 10/8, 172.16/12, 192.168/16 — where VNets and private endpoints live.
    Private,
    /// RFC 6598 shared address space 100.64.0.0/10 (carrier-grade NAT).
    Shared,
    /// 169.254.0.0/16 or fe80::/10 (IMDS and the identity endpoint live here).
    LinkLocal,
    /// IPv6 unique local fc00::/7 (the IPv6 counterpart of RFC 1918).
    UniqueLocal,
    /// Multicast.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 0.0.0.0/8 or ::.
    Unspecified,
    /// Documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32).
    Documentation,
    /// Other reserved space (240/4, 192.0.0/24, 198.18/15 benchmarking).
    Reserved,
    /// Everything else: routable on the internet.
    Public,
}

impl AddressClass {
    /// Classifies an address; IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is classified as its IPv4.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => classify_v4(v4),
            IpAddr::V6(v6) => classify_v6(v6),
        }
    }

    /// True for addresses that only route inside a private network (RFC 1918, shared, ULA).
    pub fn is_private(self) -> bool {
        matches!(self, Self::Private | Self::Shared | Self::UniqueLocal)
    }

    /// The `snake_case` name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::Shared => "shared",
            Self::LinkLocal => "link_local",
            Self::UniqueLocal => "unique_local",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Unspecified => "unspecified",
            Self::Documentation => "documentation",
            Self::Reserved => "reserved",
            Self::Public => "public",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() {
        AddressClass::Private
    } else if a == 100 && (64..128).contains(&b) {
        AddressClass::Shared
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if ip.is_broadcast() {
        AddressClass::Broadcast
    } else if a == 0 {
        AddressClass::Unspecified
    } else if ip.is_documentation() {
        AddressClass::Documentation
    } else if a >= 240 || (a == 192 && b == 0 && c == 0) || (a == 198 && (b == 18 || b == 19)) {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if first & 0xfe00 == 0xfc00 {
        AddressClass::UniqueLocal
    } else if first & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        AddressClass::Documentation
    } else {
        AddressClass::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_well_known_addresses() {
        let cases = [
            ("127.0.0.1", AddressClass::Loopback),
            ("127.0.2.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("10.20.1.4", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("172.32.0.1", AddressClass::Public),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::Shared),
            ("100.128.0.1", AddressClass::Public),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("fd00::1", AddressClass::UniqueLocal),
            ("224.0.0.1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
            ("0.0.0.0", AddressClass::Unspecified),
            ("0.1.2.3", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("192.0.2.7", AddressClass::Documentation),
            ("2001:db8::1", AddressClass::Documentation),
            ("240.0.0.1", AddressClass::Reserved),
            ("20.40.60.80", AddressClass::Public),
            ("168.63.129.16", AddressClass::Public),
            ("2603:1030::1", AddressClass::Public),
            ("::ffff:10.0.0.1", AddressClass::Private),
            ("::ffff:169.254.169.254", AddressClass::LinkLocal),
        ];
        for (ip, want) in cases {
            assert_eq!(AddressClass::of(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn private_means_only_routable_inside_a_network() {
        assert!(AddressClass::Private.is_private());
        assert!(AddressClass::UniqueLocal.is_private());
        assert!(!AddressClass::Public.is_private());
        assert!(!AddressClass::Loopback.is_private());
    }
}
