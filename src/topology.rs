//! The lab's address plan: an App Service deployment laid out on loopback, one `/24` of
//! `127.0.0.0/8` per network, so every hop can be told apart by its address.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

/// "The internet": where `probe smoke` runs from (`from = "here"`) and where a browser sits.
pub const INTERNET: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// The front end's public address (its App Service front end), also the browser's URL.
pub const FRONTEND_PUBLIC: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// The back end's public address (`app-be.azurewebsites.net` without a private endpoint).
pub const BACKEND_PUBLIC: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 20));
/// The range of public App Service addresses.
pub const PUBLIC_RANGE: &str = "127.0.1.0/24";
/// The VNet integration subnet: the front end's outbound traffic leaves from here.
pub const INTEGRATION_SUBNET: &str = "127.0.2.0/24";
/// Another subnet of the same VNet (what a wrong access rule names).
pub const OTHER_SUBNET: &str = "127.0.9.0/24";
/// The private-endpoint subnet.
pub const PRIVATE_ENDPOINT_SUBNET: &str = "127.0.3.0/24";
/// The back end's private endpoint.
pub const BACKEND_PRIVATE_ENDPOINT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 3, 4));
/// Where the emulated DNS servers listen.
pub const DNS_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

/// The front end's host name.
pub const FRONTEND_HOST: &str = "app-fe.azurewebsites.net";
/// The back end's host name.
pub const BACKEND_HOST: &str = "app-be.azurewebsites.net";
/// The back end's privatelink name.
pub const BACKEND_PRIVATELINK_HOST: &str = "app-be.privatelink.azurewebsites.net";

/// The integration-subnet address of front-end instance `n` (its `WEBSITE_PRIVATE_IP`).
pub fn frontend_private_ip(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        2,
        4 + u8::try_from(n).expect("fewer than 250 instances"),
    ))
}

/// Parses one of the CIDR constants above.
pub fn net(cidr: &str) -> IpNet {
    cidr.parse().expect("the lab's constants are valid CIDRs")
}

/// True when `ip` lies inside the VNet (integration or private-endpoint subnet): the only
/// sources from which a private endpoint's address routes.
pub fn in_vnet(ip: IpAddr) -> bool {
    [INTEGRATION_SUBNET, PRIVATE_ENDPOINT_SUBNET, OTHER_SUBNET]
        .iter()
        .any(|cidr| net(cidr).contains(&ip.to_canonical()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_fall_in_their_networks() {
        assert!(net(INTEGRATION_SUBNET).contains(&frontend_private_ip(0)));
        assert!(net(INTEGRATION_SUBNET).contains(&frontend_private_ip(1)));
        assert!(net(PRIVATE_ENDPOINT_SUBNET).contains(&BACKEND_PRIVATE_ENDPOINT));
        assert!(net(PUBLIC_RANGE).contains(&BACKEND_PUBLIC));
        assert!(in_vnet(frontend_private_ip(0)));
        assert!(!in_vnet(INTERNET));
    }
}
