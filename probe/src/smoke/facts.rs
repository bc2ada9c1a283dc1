//! What a check saw, as data: taken from the `diag` reports the action produced (resolution,
//! tcpping, HTTP check, the back end's view of its caller), never parsed back out of sentences,
//! so reports can be compared and audited by programs.

use std::net::{IpAddr, Ipv4Addr};

use hosting::{AddressClass, CallerAddr};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::smoke::evaluate::Outcome;

/// An address with what it is: its class, and the VNet IPv4 a service-endpoint IPv6 carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressFact {
    /// The address as seen.
    pub ip: IpAddr,
    /// `private`, `public`, `loopback`, … (of the VNet IPv4 when there is one).
    pub class: AddressClass,
    /// The caller's IPv4 in its VNet, when `ip` is App Service's service-endpoint form
    /// (`fde4:8dba:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnet_ip: Option<Ipv4Addr>,
}

impl AddressFact {
    /// Decodes `ip` (service-endpoint form included) and classifies it.
    pub fn of(ip: IpAddr) -> Self {
        let decoded = CallerAddr::of(ip);
        let vnet_ip = decoded.vnet_ip();
        Self {
            ip: decoded.seen(),
            class: AddressClass::of(vnet_ip.map_or(decoded.seen(), IpAddr::V4)),
            vnet_ip,
        }
    }

    fn parse(text: &str) -> Option<Self> {
        CallerAddr::parse(text).map(|c| Self::of(c.seen()))
    }
}

/// A resolved address, with the zone that answered for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedFact {
    /// The address.
    pub ip: IpAddr,
    /// Its class.
    pub class: AddressClass,
    /// The zone the answer came from: the canonical name without its first label
    /// (`privatelink.azurewebsites.net` or `azurewebsites.net`); absent when the action did
    /// not report the chain (tcpping, http).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// What the back end said about its caller (the front end's `/api/path` or `/api/caller`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerFact {
    /// The address the back end saw, both forms when decoded.
    #[serde(flatten)]
    pub address: AddressFact,
    /// The back-end instance that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The credential that let the caller in (`api-key`, `entra`, `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
}

/// App Service (or a gateway) answering before the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformFact {
    /// `access_restricted`, `public_access_disabled`, `app_stopped`, …
    pub code: String,
    /// The signal it rests on (`status_line`, `forbidden_ip_header`, `server_header`, `page`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The caller as App Service saw it (`x-ms-forbidden-ip`), both forms when decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forbidden_ip: Option<AddressFact>,
}

/// Time per phase, in milliseconds (absent: not reached or not part of the action).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimingFacts {
    /// Name resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<f64>,
    /// TCP connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<f64>,
    /// TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<f64>,
    /// Request sent to response head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte: Option<f64>,
    /// The whole action as the reporting side measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
}

/// Everything a result knows as data. Every field is optional: which ones are set depends on
/// the action and on how far it got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// The name at the end of the CNAME chain (resolve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_name: Option<String>,
    /// A `*.privatelink.*` name was on the chain (resolve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privatelink: Option<bool>,
    /// The DNS response code (resolve).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    /// Every address the name resolved to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<ResolvedFact>,
    /// The address connected to (tcpping, http).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ip: Option<IpAddr>,
    /// The port connected to (tcpping, http).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The source address the kernel chose for the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<AddressFact>,
    /// How the back end saw the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<CallerFact>,
    /// The HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// A non-standard reason phrase (`Ip Forbidden`, `Site Disabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The `error.code` of a lockdown error envelope in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// App Service's own answer, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_service: Option<PlatformFact>,
    /// How the connection or lookup failed (`refused`, `timeout`, `dns`, `nxdomain`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Time per phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings_ms: Option<TimingFacts>,
}

/// A serde name (`refused`, `nxdomain`) of a value, without its quotes.
fn name_of<T: Serialize>(value: &T) -> Option<String> {
    match serde_json::to_value(value).ok()? {
        Value::String(name) => Some(name),
        _ => None,
    }
}

/// The zone of a name: everything after its first label.
fn zone_of(name: &str) -> Option<String> {
    let name = name.trim_end_matches('.');
    name.split_once('.').map(|(_, zone)| zone.to_owned())
}

impl Facts {
    /// The facts of an outcome.
    pub fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Resolve(resolution) => {
                let zone = resolution
                    .canonical_name
                    .as_deref()
                    .or(Some(resolution.query.name.as_str()))
                    .and_then(zone_of);
                Self {
                    canonical_name: resolution.canonical_name.clone(),
                    privatelink: Some(resolution.privatelink),
                    rcode: resolution.rcode.clone(),
                    addresses: resolution
                        .addresses
                        .iter()
                        .map(|a| ResolvedFact {
                            ip: a.ip,
                            class: a.class,
                            zone: zone.clone(),
                        })
                        .collect(),
                    failure: resolution.error.as_ref().and_then(|e| name_of(&e.kind)),
                    timings_ms: Some(TimingFacts {
                        dns: Some(resolution.duration_ms),
                        total: Some(resolution.duration_ms),
                        ..TimingFacts::default()
                    }),
                    ..Self::default()
                }
            }
            Outcome::TcpPing(report) => {
                let attempt = report
                    .attempts
                    .iter()
                    .find(|a| a.ok)
                    .or(report.attempts.first());
                Self {
                    addresses: resolved(&report.target.resolved),
                    target_ip: report.target.ip,
                    port: Some(report.target.port),
                    source: attempt
                        .and_then(|a| a.local_addr)
                        .map(|addr| AddressFact::of(addr.ip())),
                    failure: attempt.and_then(|a| {
                        a.dns_error
                            .as_ref()
                            .and_then(name_of)
                            .or_else(|| a.error.as_ref().and_then(name_of))
                    }),
                    timings_ms: Some(TimingFacts {
                        connect: attempt.and_then(|a| a.rtt_ms),
                        ..TimingFacts::default()
                    }),
                    ..Self::default()
                }
            }
            Outcome::Http { report, body } => Self {
                addresses: resolved(report.target.ip.as_slice()),
                target_ip: report.target.ip,
                port: Some(report.target.port),
                source: report.target.local_addr.map(|a| AddressFact::of(a.ip())),
                caller: body.as_ref().and_then(caller_of),
                status: report.status,
                reason: report.reason.clone(),
                error_code: report.error_code.clone(),
                app_service: report.app_service.as_ref().map(|finding| PlatformFact {
                    code: finding.code.clone(),
                    signal: finding.signal.as_ref().and_then(name_of),
                    forbidden_ip: finding.forbidden_ip.as_deref().and_then(AddressFact::parse),
                }),
                failure: report.error.as_ref().and_then(|e| name_of(&e.kind)),
                timings_ms: Some(TimingFacts {
                    dns: report.timings_ms.dns,
                    connect: report.timings_ms.connect,
                    tls: report.timings_ms.tls,
                    first_byte: report.timings_ms.first_byte,
                    total: Some(report.timings_ms.total),
                }),
                ..Self::default()
            },
            Outcome::Tls(report) => Self {
                addresses: resolved(report.target.ip.as_slice()),
                target_ip: report.target.ip,
                port: Some(report.target.port),
                source: report.target.local_addr.map(|a| AddressFact::of(a.ip())),
                failure: report.error.as_ref().and_then(|e| name_of(&e.kind)),
                timings_ms: Some(TimingFacts {
                    dns: report.timings_ms.dns,
                    connect: report.timings_ms.connect,
                    tls: report.timings_ms.handshake,
                    total: Some(report.timings_ms.total),
                    ..TimingFacts::default()
                }),
                ..Self::default()
            },
            Outcome::NotRun { .. } | Outcome::Env { .. } => Self::default(),
        }
    }
}

fn resolved(ips: &[IpAddr]) -> Vec<ResolvedFact> {
    ips.iter()
        .map(|&ip| ResolvedFact {
            ip,
            class: AddressClass::of(ip),
            zone: None,
        })
        .collect()
}

/// The caller in a `/api/path` (`caller.*`) or `/api/caller` body.
fn caller_of(body: &Value) -> Option<CallerFact> {
    let caller = if body["caller"].is_object() {
        &body["caller"]
    } else {
        body
    };
    Some(CallerFact {
        address: AddressFact::parse(caller["client_ip"].as_str()?)?,
        instance: caller["instance"]["id"].as_str().map(str::to_owned),
        auth: caller["auth"]["mode"].as_str().map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_endpoint_caller_keeps_both_forms() {
        let body = serde_json::json!({"caller": {"client_ip": "fde4:8dba:2300:5457:6f23:200:a00:104",
            "instance": {"id": "be-1"}, "auth": {"mode": "api-key"}}});
        let caller = caller_of(&body).unwrap();
        assert_eq!(caller.address.vnet_ip, Some(Ipv4Addr::new(10, 0, 1, 4)));
        assert_eq!(caller.address.class, AddressClass::Private);
        assert_eq!(caller.instance.as_deref(), Some("be-1"));
        assert_eq!(caller.auth.as_deref(), Some("api-key"));
        let plain = caller_of(&serde_json::json!({"client_ip": "127.0.2.10"})).unwrap();
        assert_eq!(plain.address.vnet_ip, None);
        assert_eq!(plain.address.class, AddressClass::Loopback);
        assert!(caller_of(&serde_json::json!({"caller": null, "diagnosis": {}})).is_none());
        assert!(caller_of(&serde_json::json!({"client_ip": "not an ip"})).is_none());
    }

    #[test]
    fn zones_drop_the_first_label() {
        assert_eq!(
            zone_of("app-be.privatelink.azurewebsites.net.").as_deref(),
            Some("privatelink.azurewebsites.net")
        );
        assert_eq!(zone_of("localhost"), None);
    }
}
