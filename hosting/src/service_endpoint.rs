//! Decoding the IPv6 address a service-endpoint caller shows up as, so that it can be compared
//! with the IPv4 ranges people write (`ALLOWED_CALLERS`, `INTEGRATION_SUBNET`, `caller_in`).
//!
//! A `Microsoft.Web` service endpoint carries VNet traffic to App Service over IPv6
//! encapsulation with NAT: the back end sees its caller as an IPv6 unique local address whose
//! low 32 bits are the caller's IPv4 source in the VNet. Captured on real Azure (an access
//! restriction audit entry with `"ServiceEndpoint":"True"`, and a real app's forwarded-for chain):
//!
//! | seen at App Service | VNet source |
//! |---|---|
//! | `fde4:8dba:2300:5457:6f23:200:a00:104` | 10.0.1.4 |
//! | `fde4:8dba:1200:98db:6a12:300:a02:126` | 10.2.1.38 |
//!
//! **Only `fde4:8dba::/32` is decoded**, not every ULA. The two captures come from different apps
//! and share 24 of the 40 random bits of a ULA's global ID, which no two independently chosen
//! ULAs would: that block is the platform's. A wider rule ("any `fc00::/7`, take the low 32
//! bits") would turn every IPv6 ULA caller — a dual-stack VNet, a private endpoint's own IPv6
//! form (`fd40:…:a0a:5`, seen in `Client-Ip`) — into an IPv4 address by the accident of its low
//! bits, and an allow list must not let a caller in by such an accident. The cost of being
//! narrow is loud, not silent: an IPv6 caller outside the block is reported as one that cannot be
//! compared with IPv4 ranges (never compared and refused as if it were outside them), and the
//! address it names shows what to add here if the platform uses another block.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv6Net};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The block App Service's service-endpoint callers come from (see the module's documentation
/// for why no wider rule is accepted).
pub const SERVICE_ENDPOINT_PREFIX: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0xfde4, 0x8dba, 0, 0, 0, 0, 0, 0), 32);

/// What is said about an IPv6 caller that is not in the service-endpoint form, wherever it would
/// have been compared with an IPv4 range.
pub const UNDECODABLE: &str = "an IPv6 caller that is not in App Service's service-endpoint form: it cannot be compared with IPv4 ranges";

/// Which form a caller's address is in (`address_form` in `/api/caller`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AddressForm {
    /// An IPv4 address (an IPv4-mapped IPv6 address counts as its IPv4).
    Ipv4,
    /// App Service's service-endpoint form: an IPv6 address in `fde4:8dba::/32` carrying the
    /// caller's VNet IPv4 in its low 32 bits.
    ServiceEndpoint,
    /// Any other IPv6 address: compared only with IPv6 ranges.
    Ipv6,
}

impl AddressForm {
    /// The `snake_case` name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::ServiceEndpoint => "service_endpoint",
            Self::Ipv6 => "ipv6",
        }
    }
}

/// A caller's address, decoded once: what it is compared with ranges as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallerAddr {
    /// An IPv4 caller (IPv4-mapped IPv6 included).
    V4(Ipv4Addr),
    /// A service-endpoint caller: the address as seen, and the VNet IPv4 it carries.
    ServiceEndpoint {
        /// The address as App Service handed it over.
        seen: Ipv6Addr,
        /// The caller's IPv4 source in its VNet (the low 32 bits).
        vnet_ip: Ipv4Addr,
    },
    /// An IPv6 caller in no form this decoder knows.
    V6(Ipv6Addr),
}

/// Whether a caller lies in a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Inside.
    Inside,
    /// Outside.
    Outside,
    /// An IPv6 caller that is not in the service-endpoint form, against an IPv4 range: nothing
    /// can be said, and it must be said so.
    Undecodable,
}

impl CallerAddr {
    /// Decodes `ip`: IPv4-mapped IPv6 as its IPv4, `fde4:8dba::/32` as the service-endpoint form.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) if SERVICE_ENDPOINT_PREFIX.contains(&v6) => Self::ServiceEndpoint {
                seen: v6,
                // The low 32 bits, on purpose: that is where the VNet source is carried.
                vnet_ip: Ipv4Addr::from_bits(v6.to_bits() as u32),
            },
            IpAddr::V6(v6) => Self::V6(v6),
        }
    }

    /// Parses and decodes an address written as text (`client_ip` in `/api/caller`).
    pub fn parse(text: &str) -> Option<Self> {
        text.trim().parse::<IpAddr>().ok().map(Self::of)
    }

    /// The address as seen (IPv4-mapped addresses as their IPv4).
    pub fn seen(self) -> IpAddr {
        match self {
            Self::V4(v4) => IpAddr::V4(v4),
            Self::ServiceEndpoint { seen, .. } | Self::V6(seen) => IpAddr::V6(seen),
        }
    }

    /// The VNet IPv4 a service-endpoint caller carries.
    pub fn vnet_ip(self) -> Option<Ipv4Addr> {
        match self {
            Self::ServiceEndpoint { vnet_ip, .. } => Some(vnet_ip),
            _ => None,
        }
    }

    /// The IPv4 address compared with IPv4 ranges: the address itself, or the embedded one.
    pub fn ipv4(self) -> Option<Ipv4Addr> {
        match self {
            Self::V4(v4) | Self::ServiceEndpoint { vnet_ip: v4, .. } => Some(v4),
            Self::V6(_) => None,
        }
    }

    /// Which form the address is in.
    pub fn form(self) -> AddressForm {
        match self {
            Self::V4(_) => AddressForm::Ipv4,
            Self::ServiceEndpoint { .. } => AddressForm::ServiceEndpoint,
            Self::V6(_) => AddressForm::Ipv6,
        }
    }

    /// Whether the caller lies in `net`: IPv4 ranges are compared with the IPv4 (embedded, for a
    /// service-endpoint caller), IPv6 ranges with the address as seen.
    pub fn in_net(self, net: &IpNet) -> Membership {
        let inside = match net {
            IpNet::V4(v4net) => match self.ipv4() {
                Some(v4) => v4net.contains(&v4),
                None => return Membership::Undecodable,
            },
            IpNet::V6(v6net) => match self.seen() {
                IpAddr::V6(v6) => v6net.contains(&v6),
                IpAddr::V4(_) => false,
            },
        };
        if inside {
            Membership::Inside
        } else {
            Membership::Outside
        }
    }

    /// What is said about the form, without the address: `the service-endpoint form of
    /// 10.0.1.4`, [`UNDECODABLE`], or nothing for IPv4.
    pub fn note(self) -> Option<String> {
        match self {
            Self::V4(_) => None,
            Self::ServiceEndpoint { vnet_ip, .. } => {
                Some(format!("the service-endpoint form of {vnet_ip}"))
            }
            Self::V6(_) => Some(UNDECODABLE.to_owned()),
        }
    }
}

/// The address with its form: `10.0.1.4`, `fde4:…:104, the service-endpoint form of 10.0.1.4`,
/// or `2001:db8::1, an IPv6 caller that is not in App Service's service-endpoint form: …`.
impl fmt::Display for CallerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.note() {
            Some(note) => write!(f, "{}, {note}", self.seen()),
            None => write!(f, "{}", self.seen()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> CallerAddr {
        CallerAddr::parse(text).unwrap()
    }

    #[test]
    fn the_captured_service_endpoint_callers_carry_their_vnet_address() {
        let audit = decode("fde4:8dba:2300:5457:6f23:200:a00:104");
        assert_eq!(audit.form(), AddressForm::ServiceEndpoint);
        assert_eq!(audit.vnet_ip(), Some(Ipv4Addr::new(10, 0, 1, 4)));
        assert_eq!(
            audit.to_string(),
            "fde4:8dba:2300:5457:6f23:200:a00:104, the service-endpoint form of 10.0.1.4"
        );
        let chain = decode("fde4:8dba:1200:98db:6a12:300:a02:126");
        assert_eq!(chain.vnet_ip(), Some(Ipv4Addr::new(10, 2, 1, 38)));
        assert_eq!(chain.ipv4(), chain.vnet_ip());
    }

    #[test]
    fn a_private_endpoints_client_ip_form_is_not_decoded() {
        // `Client-Ip` through a private endpoint: fd40:…, low bits 10.10.0.5. Outside the
        // service-endpoint block, so it stays an IPv6 caller (X-Client-Ip carries the IPv4 there).
        let pe = decode("fd40:1f2e:3d4c:5b6a:7988:100:a0a:5");
        assert_eq!(pe.form(), AddressForm::Ipv6);
        assert_eq!(pe.vnet_ip(), None);
        assert_eq!(
            pe.in_net(&"10.10.0.0/24".parse().unwrap()),
            Membership::Undecodable
        );
    }

    #[test]
    fn other_ipv6_callers_are_said_undecodable_against_ipv4_ranges() {
        let ipv4_range: IpNet = "10.0.1.0/24".parse().unwrap();
        for text in ["fd00::a00:104", "fde4:8dbb::a00:104", "2603:1030::a00:104"] {
            let caller = decode(text);
            assert_eq!(caller.form(), AddressForm::Ipv6, "{text}");
            assert_eq!(
                caller.in_net(&ipv4_range),
                Membership::Undecodable,
                "{text}"
            );
            assert!(caller.to_string().ends_with(UNDECODABLE), "{text}");
        }
        // Against an IPv6 range, an IPv6 caller is compared as it is.
        let global = decode("2603:1030::a00:104");
        assert_eq!(
            global.in_net(&"2603:1030::/32".parse().unwrap()),
            Membership::Inside
        );
        assert_eq!(
            global.in_net(&"fd00::/8".parse().unwrap()),
            Membership::Outside
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4() {
        let mapped = decode("::ffff:10.0.1.4");
        assert_eq!(mapped, CallerAddr::V4(Ipv4Addr::new(10, 0, 1, 4)));
        assert_eq!(mapped.note(), None);
        assert_eq!(mapped.to_string(), "10.0.1.4");
        assert_eq!(
            mapped.in_net(&"10.0.1.0/24".parse().unwrap()),
            Membership::Inside
        );
    }

    #[test]
    fn service_endpoint_callers_compare_both_forms() {
        let caller = decode("fde4:8dba:2300:5457:6f23:200:a00:104");
        let inside = |net: &str| caller.in_net(&net.parse().unwrap());
        assert_eq!(inside("10.0.1.0/24"), Membership::Inside);
        assert_eq!(inside("10.9.9.0/24"), Membership::Outside);
        assert_eq!(inside("fde4:8dba:2300:5457::/64"), Membership::Inside);
        assert_eq!(inside("fde4:8dba:1200::/48"), Membership::Outside);
        // An IPv4 caller is never inside an IPv6 range (and nothing is undecodable about it).
        assert_eq!(
            decode("10.0.1.4").in_net(&"fd00::/8".parse().unwrap()),
            Membership::Outside
        );
    }

    #[test]
    fn garbage_is_not_an_address() {
        assert_eq!(CallerAddr::parse("fde4:8dba::zz"), None);
        assert_eq!(CallerAddr::parse(""), None);
    }
}
