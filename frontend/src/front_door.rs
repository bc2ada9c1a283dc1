//! Who called the front end, and through what: behind Azure Front Door the caller's TCP peer (and
//! App Service's `X-Client-IP`) is Front Door's edge, not the user. Front Door's own headers say
//! who the user is, but any client can send them too, so they are trusted only when
//! `X-Azure-FDID` carries this front end's profile id (`FRONT_DOOR_ID`):
//!
//! | header | trusted as |
//! |---|---|
//! | `X-Azure-FDID` | which Front Door profile forwarded the request: trust is decided on it |
//! | `X-Azure-SocketIP` | the client address: the TCP peer of Front Door's edge |
//! | `X-Azure-ClientIP` | a **claim** only: Front Door takes it from a client-sent `X-Forwarded-For` |
//! | `X-Azure-Ref` | Front Door's reference of the request (for its logs and support) |
//! | `X-Forwarded-Host`, `X-Forwarded-Proto` | the public origin the browser used (absolute URLs, the CSRF origin check) |
//! | `X-FD-HealthProbe` | `1` on Front Door's health probes |
//!
//! Without a match (another profile, no header, or no `FRONT_DOOR_ID`), the client is App
//! Service's `X-Client-IP` (else the TCP peer) and the public origin is `Host`.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, header};
use hosting::forwarded::parse_client_ip;
use serde::Serialize;

use crate::path::PathCheck;

/// `X-Azure-FDID`: the forwarding profile's `frontDoorId`.
pub const FDID_HEADER: &str = "x-azure-fdid";
/// `X-Azure-SocketIP`: the address of the TCP peer of Front Door's edge.
pub const SOCKET_IP_HEADER: &str = "x-azure-socketip";
/// `X-Azure-ClientIP`: the client address as claimed (from a client-sent `X-Forwarded-For`).
pub const CLIENT_IP_HEADER: &str = "x-azure-clientip";
/// `X-Azure-Ref`: Front Door's reference of the request.
pub const REF_HEADER: &str = "x-azure-ref";
/// `X-FD-HealthProbe`: `1` on Front Door's health probes.
pub const HEALTH_PROBE_HEADER: &str = "x-fd-healthprobe";

/// How a request reached the front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Through the Front Door profile named by `FRONT_DOOR_ID`: its headers are trusted.
    FrontDoor,
    /// With an `X-Azure-FDID` that is not `FRONT_DOOR_ID`: another customer's profile (the
    /// `AzureFrontDoor.Backend` service tag admits every one), or a client sending the header.
    OtherFrontDoor,
    /// With an `X-Azure-FDID` while `FRONT_DOOR_ID` is not set: nothing to compare it with.
    UnverifiedFrontDoor,
    /// Without `X-Azure-FDID`: straight to App Service.
    Direct,
}

/// How the front end sees its own caller (`front` in `/api/path`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientView {
    /// How the request arrived.
    pub via: Via,
    /// `FRONT_DOOR_ID` is set.
    pub front_door_id_configured: bool,
    /// The `X-Azure-FDID` the request carried.
    pub front_door_id: Option<String>,
    /// Front Door's headers were trusted (`via` is `front_door`).
    pub trusted: bool,
    /// The client address the front end believes.
    pub client_ip: Option<String>,
    /// Where it came from: `x-azure-socketip`, `x-client-ip` or `peer`.
    pub client_ip_source: &'static str,
    /// `X-Azure-ClientIP`: what the client says it is. Never used as the client address.
    pub claimed_client_ip: Option<String>,
    /// The address App Service saw (`X-Client-IP`, else the TCP peer): through Front Door,
    /// Front Door's edge.
    pub edge_ip: Option<String>,
    /// `X-Azure-Ref`, when trusted.
    pub azure_ref: Option<String>,
    /// The public origin the browser used (`https://host`): from `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` when trusted, else `Host`.
    pub public_origin: Option<String>,
    /// The request is one of Front Door's health probes (`X-FD-HealthProbe: 1`, trusted).
    pub health_probe: bool,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The first value of a header that a proxy may have turned into a list (`a, b`).
fn first_of_list<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    header(headers, name)
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `FRONT_DOOR_ID`, trimmed; `None` when unset or blank.
pub fn configured_id(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

impl ClientView {
    /// Reads a request's headers (and its TCP peer, when known) against `front_door_id`.
    pub fn of(headers: &HeaderMap, peer: Option<SocketAddr>, front_door_id: Option<&str>) -> Self {
        let fdid = header(headers, FDID_HEADER).map(str::to_owned);
        let via = match (front_door_id, fdid.as_deref()) {
            (_, None) => Via::Direct,
            (None, Some(_)) => Via::UnverifiedFrontDoor,
            // A profile id is a GUID: its case carries no meaning.
            (Some(ours), Some(theirs)) if ours.eq_ignore_ascii_case(theirs) => Via::FrontDoor,
            (Some(_), Some(_)) => Via::OtherFrontDoor,
        };
        let trusted = via == Via::FrontDoor;
        let app_service_ip = header(headers, "x-client-ip").and_then(parse_client_ip);
        let (edge_ip, edge_source) = match (app_service_ip, peer) {
            (Some(ip), _) => (Some(ip), "x-client-ip"),
            (None, Some(peer)) => (Some(peer.ip().to_canonical()), "peer"),
            (None, None) => (None, "peer"),
        };
        let socket_ip = trusted
            .then(|| header(headers, SOCKET_IP_HEADER).and_then(parse_client_ip))
            .flatten();
        let (client_ip, client_ip_source) = match socket_ip {
            Some(ip) => (Some(ip), "x-azure-socketip"),
            None => (edge_ip, edge_source),
        };
        let forwarded_host = trusted
            .then(|| first_of_list(headers, "x-forwarded-host"))
            .flatten();
        let host = forwarded_host.or_else(|| header(headers, header::HOST.as_str()));
        let proto = first_of_list(headers, "x-forwarded-proto")
            .filter(|p| p.eq_ignore_ascii_case("https") || p.eq_ignore_ascii_case("http"))
            .unwrap_or("http")
            .to_ascii_lowercase();
        Self {
            via,
            front_door_id_configured: front_door_id.is_some(),
            front_door_id: fdid,
            trusted,
            client_ip: client_ip.map(|ip: IpAddr| ip.to_string()),
            client_ip_source,
            claimed_client_ip: header(headers, CLIENT_IP_HEADER).map(str::to_owned),
            edge_ip: edge_ip.map(|ip| ip.to_string()),
            azure_ref: trusted
                .then(|| header(headers, REF_HEADER).map(str::to_owned))
                .flatten(),
            public_origin: host.map(|h| format!("{proto}://{h}")),
            health_probe: trusted && header(headers, HEALTH_PROBE_HEADER) == Some("1"),
        }
    }

    /// The public origin's authority (`host[:port]`), for the CSRF origin check.
    pub fn public_authority(&self) -> Option<&str> {
        self.public_origin
            .as_deref()
            .and_then(|o| o.split_once("://"))
            .map(|(_, authority)| authority)
    }

    /// The `front_door` line of the path report; `None` when neither side speaks of Front Door
    /// (no `FRONT_DOOR_ID`, no `X-Azure-FDID`): the front end is not meant to be behind it.
    pub fn check(&self) -> Option<PathCheck> {
        let client = self.client_ip.as_deref().unwrap_or("unknown");
        let claim = match &self.claimed_client_ip {
            Some(claimed) if Some(claimed.as_str()) != self.client_ip.as_deref() => {
                format!(" (it claims to be {claimed}: X-Azure-ClientIP is client-controlled)")
            }
            _ => String::new(),
        };
        let theirs = self.front_door_id.as_deref().unwrap_or_default();
        let (ok, detail) = match self.via {
            Via::Direct if !self.front_door_id_configured => return None,
            Via::FrontDoor => (
                Some(true),
                format!(
                    "through Front Door (profile {theirs}, ref {}): client {client}{claim}, edge {}",
                    self.azure_ref.as_deref().unwrap_or("none"),
                    self.edge_ip.as_deref().unwrap_or("unknown"),
                ),
            ),
            Via::OtherFrontDoor => (
                Some(false),
                format!(
                    "this request came through another Front Door profile ({theirs}), not FRONT_DOOR_ID: the front end's access restriction admits every Front Door — add an X-Azure-FDID header filter with your profile's id to the AzureFrontDoor.Backend rule"
                ),
            ),
            Via::UnverifiedFrontDoor => (
                None,
                format!(
                    "this request came through Front Door profile {theirs}, but FRONT_DOOR_ID is not set: its headers are not trusted and the client ({client}) is Front Door's edge — set FRONT_DOOR_ID to the profile's frontDoorId"
                ),
            ),
            Via::Direct => (
                Some(false),
                format!(
                    "this request reached the front end without Front Door (from {client}): the front end answers directly — allow only the AzureFrontDoor.Backend service tag with an X-Azure-FDID header filter"
                ),
            ),
        };
        Some(PathCheck {
            name: "front_door",
            ok,
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "6a1b2c3d-0000-4000-8000-00000000f00d";
    const THEIRS: &str = "0bad0bad-0000-4000-8000-000000000bad";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    /// What App Service hands the front end behind Front Door: `X-Client-IP` is the edge.
    /// (Documentation-range addresses: header values parsed in-process, never connected to.)
    fn through_front_door(fdid: &str) -> HeaderMap {
        headers(&[
            ("host", "app-fe.azurewebsites.net"),
            ("x-client-ip", "198.51.100.7"),
            ("x-azure-fdid", fdid),
            ("x-azure-ref", "20261203T103000Z-abc"),
            ("x-azure-socketip", "203.0.113.9"),
            ("x-azure-clientip", "203.0.113.9"),
            ("x-forwarded-for", "203.0.113.9, 198.51.100.7:40112"),
            ("x-forwarded-host", "lockdown-ep.z01.azurefd.net"),
            ("x-forwarded-proto", "https"),
        ])
    }

    #[test]
    fn our_profile_is_trusted_and_the_socket_ip_is_the_client() {
        let view = ClientView::of(&through_front_door(OURS), None, Some(OURS));
        assert_eq!(view.via, Via::FrontDoor);
        assert!(view.trusted);
        assert_eq!(view.client_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(view.client_ip_source, "x-azure-socketip");
        assert_eq!(view.edge_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(view.azure_ref.as_deref(), Some("20261203T103000Z-abc"));
        assert_eq!(
            view.public_origin.as_deref(),
            Some("https://lockdown-ep.z01.azurefd.net")
        );
        assert_eq!(view.public_authority(), Some("lockdown-ep.z01.azurefd.net"));
        let check = view.check().unwrap();
        assert_eq!(check.ok, Some(true));
        assert!(
            check.detail.contains("client 203.0.113.9"),
            "{}",
            check.detail
        );
        assert!(!check.detail.contains("claims"), "{}", check.detail);
        // The id's case carries no meaning.
        let upper = ClientView::of(&through_front_door(&OURS.to_uppercase()), None, Some(OURS));
        assert_eq!(upper.via, Via::FrontDoor);
    }

    #[test]
    fn another_profile_is_not_trusted_and_fails_the_check() {
        let view = ClientView::of(&through_front_door(THEIRS), None, Some(OURS));
        assert_eq!(view.via, Via::OtherFrontDoor);
        assert!(!view.trusted);
        // Nothing of Front Door's is believed: the client is App Service's view, the origin `Host`.
        assert_eq!(view.client_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(view.client_ip_source, "x-client-ip");
        assert_eq!(view.azure_ref, None);
        assert_eq!(
            view.public_origin.as_deref(),
            Some("https://app-fe.azurewebsites.net")
        );
        let check = view.check().unwrap();
        assert_eq!(check.ok, Some(false));
        assert!(
            check.detail.contains(THEIRS) && check.detail.contains("header filter"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn a_missing_fdid_is_a_direct_call_that_fails_when_front_door_is_expected() {
        let mut direct = through_front_door(OURS);
        direct.remove(FDID_HEADER);
        let view = ClientView::of(&direct, None, Some(OURS));
        assert_eq!(view.via, Via::Direct);
        assert!(!view.trusted);
        assert_eq!(view.client_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(view.azure_ref, None, "a forged X-Azure-Ref is not reported");
        let check = view.check().unwrap();
        assert_eq!(check.ok, Some(false));
        assert!(
            check.detail.contains("without Front Door"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn a_spoofed_client_ip_is_only_a_claim() {
        let mut spoofed = through_front_door(OURS);
        spoofed.insert("x-azure-clientip", "192.0.2.66".parse().unwrap());
        let view = ClientView::of(&spoofed, None, Some(OURS));
        assert_eq!(view.client_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(view.claimed_client_ip.as_deref(), Some("192.0.2.66"));
        let detail = view.check().unwrap().detail;
        assert!(
            detail.contains("claims to be 192.0.2.66") && detail.contains("client 203.0.113.9"),
            "{detail}"
        );
    }

    #[test]
    fn without_front_door_id_nothing_of_front_doors_is_trusted() {
        let view = ClientView::of(&through_front_door(OURS), None, None);
        assert_eq!(view.via, Via::UnverifiedFrontDoor);
        assert!(!view.trusted && !view.front_door_id_configured);
        assert_eq!(view.client_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(view.public_authority(), Some("app-fe.azurewebsites.net"));
        let check = view.check().unwrap();
        assert_eq!(check.ok, None);
        assert!(
            check.detail.contains("set FRONT_DOOR_ID"),
            "{}",
            check.detail
        );
        // Neither side speaks of Front Door: no line at all, the peer is the client.
        let plain = ClientView::of(
            &headers(&[("host", "127.0.0.1:8080")]),
            Some("127.0.0.1:51000".parse().unwrap()),
            None,
        );
        assert_eq!(plain.via, Via::Direct);
        assert_eq!(plain.client_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(plain.client_ip_source, "peer");
        assert_eq!(
            plain.public_origin.as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert!(plain.check().is_none());
    }

    #[test]
    fn trusted_but_incomplete_headers_fall_back_to_app_services_view() {
        let mut partial = through_front_door(OURS);
        partial.remove(SOCKET_IP_HEADER);
        partial.remove("x-forwarded-host");
        partial.insert("x-forwarded-proto", "https, http".parse().unwrap());
        let view = ClientView::of(&partial, None, Some(OURS));
        assert!(view.trusted);
        assert_eq!(view.client_ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(view.client_ip_source, "x-client-ip");
        assert_eq!(
            view.public_origin.as_deref(),
            Some("https://app-fe.azurewebsites.net")
        );
        assert_eq!(configured_id(Some("  ")), None);
        assert_eq!(configured_id(Some(" x ")).as_deref(), Some("x"));
    }

    #[test]
    fn health_probes_are_recognised_only_from_our_profile() {
        let mut probe = through_front_door(OURS);
        probe.insert(HEALTH_PROBE_HEADER, "1".parse().unwrap());
        assert!(ClientView::of(&probe, None, Some(OURS)).health_probe);
        assert!(!ClientView::of(&probe, None, Some(THEIRS)).health_probe);
    }
}
