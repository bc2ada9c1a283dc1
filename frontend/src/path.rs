//! The path report (`GET /api/path` and the page's path panel): does the front end's call to the
//! back end take the locked-down path? How the back-end host resolves from here, what the back
//! end saw as caller, whether that lies in the integration subnet, which credential let the
//! front end in (in Entra mode: the back end's verdict on this front end's own token), and how
//! long each step took.
//!
//! A service-endpoint caller reaches the back end as an IPv6 address carrying its VNet IPv4
//! (`fde4:8dba::/32`, see [`hosting::service_endpoint`]): the in-subnet verdict compares that IPv4
//! with `INTEGRATION_SUBNET`, and an IPv6 caller in no known form is said to be undecidable.

use std::net::IpAddr;
use std::time::Instant;

use axum::http::HeaderValue;
use diag::dns::round_ms;
use hosting::{CallerAddr, Instance, Membership};
use ipnet::IpNet;
use serde::Serialize;

use crate::AppState;
use crate::backend_client::{CallerAuthSeen, CallerSeen, ReadinessSeen};
use crate::diagnosis::Diagnosis;
use crate::front_door::ClientView;

/// The overall state of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathVerdict {
    /// The back end answered and saw the call come from the integration subnet.
    Locked,
    /// The back end answered, but nothing says where from (`INTEGRATION_SUBNET` unset).
    Unverified,
    /// Something on the path is wrong; the checks say what.
    Broken,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct PathCheck {
    /// What was checked (`backend_name`, `dns`, `backend`, `credential`, `caller_in_subnet`).
    pub name: &'static str,
    /// `true` passed, `false` failed, `null` could not be decided.
    pub ok: Option<bool>,
    /// What was seen.
    pub detail: String,
}

/// How the back-end host resolved from the front end.
#[derive(Debug, Clone, Serialize)]
pub struct PathDns {
    /// The host name looked up (absent when `BACKEND_URL` holds an IP literal).
    pub host: String,
    /// Whether the lookup succeeded.
    pub ok: bool,
    /// The addresses with their class.
    pub addresses: Vec<PathAddress>,
    /// The CNAME hops, in order.
    pub aliases: Vec<String>,
    /// A `*.privatelink.*` hop was seen.
    pub privatelink: bool,
    /// The resolver's error, when it failed.
    pub error: Option<String>,
    /// Which servers answered, and where that setting came from.
    pub resolver: serde_json::Value,
    /// Lookup time.
    pub duration_ms: f64,
}

/// One resolved address.
#[derive(Debug, Clone, Serialize)]
pub struct PathAddress {
    /// The address.
    pub ip: String,
    /// Its class.
    pub class: String,
}

/// `GET /api/path`.
#[derive(Debug, Clone, Serialize)]
pub struct PathReport {
    /// The overall verdict.
    pub verdict: PathVerdict,
    /// One sentence for the panel's headline.
    pub summary: String,
    /// `BACKEND_URL`.
    pub backend_url: String,
    /// What the front end sends the back end: `none`, `api-key` or `entra` (`BACKEND_AUTH`).
    pub backend_auth: &'static str,
    /// `INTEGRATION_SUBNET`, when set.
    pub integration_subnet: Option<String>,
    /// The back-end host's resolution (absent for IP literals).
    pub dns: Option<PathDns>,
    /// What the back end saw as caller, when it answered.
    pub caller: Option<CallerSeen>,
    /// The VNet IPv4 the caller carries when the back end saw it in App Service's
    /// service-endpoint IPv6 form (decoded here from `caller.client_ip`): what
    /// `caller_in_subnet` compares with an IPv4 `INTEGRATION_SUBNET`.
    pub caller_vnet_ip: Option<String>,
    /// Whether that caller lies in the integration subnet (`null` when it cannot be told: no
    /// `INTEGRATION_SUBNET`, or an IPv6 caller that cannot be compared with an IPv4 subnet).
    pub caller_in_subnet: Option<bool>,
    /// Why the call failed, when it did.
    pub diagnosis: Option<Diagnosis>,
    /// Each step, in order.
    pub checks: Vec<PathCheck>,
    /// Time of the back-end call, in ms.
    pub backend_ms: Option<f64>,
    /// The front-end instance that made the report.
    pub frontend_instance: Instance,
    /// The back-end instance that answered.
    pub backend_instance: Option<Instance>,
    /// The back end's own hop to its store: `store` (`embedded`/`postgres`), and on PostgreSQL
    /// the database's `host`, resolved `address` and `class`, `tls_verified`, `latency_ms`, or
    /// the `diagnosis` of its failure. Absent when the back end did not answer.
    pub database: Option<PathDatabase>,
    /// The hop in front of the front end: how this request reached it (`via`: `front_door`,
    /// `other_front_door`, `unverified_front_door`, `direct`), the client address it believes
    /// and where from, `X-Azure-ClientIP` as a claim, `X-Azure-Ref`, the public origin.
    pub front: ClientView,
}

/// The third hop: the back end to its database.
#[derive(Debug, Clone, Serialize)]
pub struct PathDatabase {
    /// `embedded` or `postgres` (`unknown` when the back end could not say).
    pub store: String,
    /// The database's host name.
    pub host: Option<String>,
    /// The address the back end connected to.
    pub address: Option<String>,
    /// Its class.
    pub class: Option<String>,
    /// TLS with the certificate and host name verified.
    pub tls_verified: Option<bool>,
    /// Connect and `SELECT 1` from the back end, in ms.
    pub latency_ms: Option<u64>,
    /// Why the back end cannot use it, when it cannot.
    pub diagnosis: Option<Diagnosis>,
}

/// Builds the report: resolves the back-end host, calls `GET /api/caller`, and judges the result;
/// `front` is how the request itself came in (the `front_door` check, first).
pub async fn path_report(
    state: &AppState,
    request_id: Option<&HeaderValue>,
    front: ClientView,
) -> PathReport {
    let base = state.backend.base().clone();
    let host = base
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let resolve = async {
        if host.parse::<IpAddr>().is_ok() {
            return None;
        }
        let started = Instant::now();
        let resolution = state.resolver.resolve(&host, diag::dns::QueryType::A).await;
        Some(dns_view(&host, &resolution, started))
    };
    let (dns, caller, readiness) = tokio::join!(
        resolve,
        state.backend.caller(request_id),
        state.backend.readiness(request_id)
    );
    let database = caller.is_ok().then(|| database_view(readiness)).flatten();
    let mut report = judge(state, base.as_str(), dns, caller, front);
    if let Some(database) = database {
        add_database(&mut report, database);
    }
    report
}

fn database_view(readiness: Result<Option<ReadinessSeen>, Diagnosis>) -> Option<PathDatabase> {
    match readiness {
        Ok(None) => None,
        Ok(Some(seen)) => {
            let hop = seen.database;
            Some(PathDatabase {
                store: seen.store?,
                host: hop.as_ref().map(|h| h.host.clone()),
                address: hop.as_ref().and_then(|h| h.address.clone()),
                class: hop.as_ref().and_then(|h| h.class.clone()),
                tls_verified: hop.as_ref().map(|h| h.tls_verified),
                latency_ms: hop.as_ref().and_then(|h| h.latency_ms),
                diagnosis: None,
            })
        }
        Err(diagnosis) => Some(PathDatabase {
            store: if diagnosis.code.family() == diag::diagnosis::Family::Database {
                "postgres".to_owned()
            } else {
                "unknown".to_owned()
            },
            host: None,
            address: None,
            class: None,
            tls_verified: None,
            latency_ms: None,
            diagnosis: Some(diagnosis),
        }),
    }
}

/// Adds the `database` check: green for the embedded store or a private, verified hop; amber
/// for a hop that works over a public address or without verified TLS; red with the diagnosis.
fn add_database(report: &mut PathReport, database: PathDatabase) {
    let (ok, detail) = database_check(&database);
    report.checks.push(PathCheck {
        name: "database",
        ok,
        detail: detail.clone(),
    });
    if ok == Some(false) && report.verdict != PathVerdict::Broken {
        report.verdict = PathVerdict::Broken;
        report.summary = match &database.diagnosis {
            Some(d) => format!("{}. {}", capitalise(&d.message), capitalise(&d.hint)),
            None => capitalise(&detail),
        };
    }
    report.database = Some(database);
}

fn database_check(database: &PathDatabase) -> (Option<bool>, String) {
    if let Some(d) = &database.diagnosis {
        if d.code.family() != diag::diagnosis::Family::Database {
            // /api/caller answered but /readyz did not: nothing is known of the hop.
            return (
                None,
                format!(
                    "the back end's readiness could not tell about its store: {}: {}",
                    d.code, d.message
                ),
            );
        }
        return (Some(false), format!("{}: {}", d.code, d.message));
    }
    if database.store == "embedded" {
        return (
            Some(true),
            "the back end keeps its items in its embedded store: no database hop".to_owned(),
        );
    }
    let host = database.host.as_deref().unwrap_or("the database");
    let address = database.address.as_deref().unwrap_or("?");
    let class = database.class.as_deref().unwrap_or("?");
    let ms = database
        .latency_ms
        .map(|ms| format!(", {ms} ms"))
        .unwrap_or_default();
    let seen = format!("{host} at {address} ({class})");
    match (database.tls_verified, class) {
        (Some(true), "public") => (
            None,
            format!(
                "{seen}, TLS verified{ms} — over the server's public address: link the privatelink zone so the name resolves to the private endpoint"
            ),
        ),
        (Some(true), _) => (Some(true), format!("{seen}, TLS verified{ms}")),
        _ => (
            None,
            format!("{seen}, TLS NOT verified (sslmode=disable){ms}"),
        ),
    }
}

fn dns_view(host: &str, resolution: &diag::dns::Resolution, started: Instant) -> PathDns {
    let json = serde_json::to_value(resolution).unwrap_or_default();
    let addresses = json["addresses"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| PathAddress {
                    ip: a["ip"].as_str().unwrap_or_default().to_owned(),
                    class: a["class"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    let aliases = json["chain"]
        .as_array()
        .map(|hops| {
            hops.iter()
                .filter_map(|h| h["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    PathDns {
        host: host.to_owned(),
        ok: json["ok"].as_bool().unwrap_or(false),
        addresses,
        aliases,
        privatelink: json["privatelink"].as_bool().unwrap_or(false),
        error: json["error"]["message"]
            .as_str()
            .or_else(|| json["error"]["kind"].as_str())
            .map(str::to_owned),
        resolver: json["resolver"].clone(),
        duration_ms: json["duration_ms"]
            .as_f64()
            .unwrap_or_else(|| round_ms(started.elapsed())),
    }
}

/// `BACKEND_URL` over https names the back end by an address or its `privatelink` name: no
/// certificate carries those, so every call fails TLS (`called_by_address`). `None` when the name
/// is one a certificate can carry, or over plain http.
pub fn backend_name_check(url: &url::Url) -> Option<PathCheck> {
    if url.scheme() != "https" {
        return None;
    }
    let host = url.host_str()?;
    let called_by = diag::azure::called_by(host)?;
    Some(PathCheck {
        name: "backend_name",
        ok: Some(false),
        detail: format!(
            "{}: {}",
            diag::diagnosis::Code::CalledByAddress,
            called_by.explain(host)
        ),
    })
}

fn judge(
    state: &AppState,
    backend_url: &str,
    dns: Option<PathDns>,
    caller: Result<(CallerSeen, std::time::Duration), Diagnosis>,
    front: ClientView,
) -> PathReport {
    let mut checks: Vec<PathCheck> = front.check().into_iter().collect();
    checks.extend(
        url::Url::parse(backend_url)
            .ok()
            .as_ref()
            .and_then(backend_name_check),
    );
    if let Some(dns) = &dns {
        checks.push(PathCheck {
            name: "dns",
            ok: Some(dns.ok),
            detail: describe_dns(dns),
        });
    }
    let (caller, diagnosis, backend_ms) = match caller {
        Ok((seen, elapsed)) => (Some(seen), None, Some(round_ms(elapsed))),
        Err(diagnosis) => (None, Some(diagnosis), None),
    };
    checks.push(PathCheck {
        name: "backend",
        ok: Some(caller.is_some()),
        detail: match (&caller, &diagnosis) {
            (Some(seen), _) => format!("answered from instance {}", seen.instance.id),
            (None, Some(d)) => format!("{}: {}", d.code, d.message),
            (None, None) => String::new(),
        },
    });
    if let Some(auth) = caller.as_ref().and_then(|seen| seen.auth.as_ref()) {
        checks.push(credential_check(state.backend.auth_mode(), auth));
    }
    let decoded = caller
        .as_ref()
        .and_then(|seen| CallerAddr::parse(&seen.client_ip));
    let membership = in_subnet(state.integration_subnet, decoded);
    let caller_in_subnet = match membership {
        Some(Membership::Inside) => Some(true),
        Some(Membership::Outside) => Some(false),
        Some(Membership::Undecodable) | None => None,
    };
    if let Some(seen) = &caller {
        // `fde4:…:104, the service-endpoint form of 10.0.1.4`, or the address as sent.
        let saw = decoded.map_or_else(|| seen.client_ip.clone(), |c| c.to_string());
        checks.push(PathCheck {
            name: "caller_in_subnet",
            ok: caller_in_subnet,
            detail: match (state.integration_subnet, membership) {
                (None, _) => format!("the back end saw {saw} ({}); set INTEGRATION_SUBNET to judge it", seen.class),
                (Some(net), Some(Membership::Inside)) => format!("the back end saw {saw} — inside {net}"),
                (Some(net), Some(Membership::Undecodable)) => format!(
                    "the back end saw {saw}, so whether it is inside {net} cannot be told: check that the front end calls through the service endpoint or the private endpoint"
                ),
                (Some(net), _) => format!(
                    "the back end saw {saw} ({}) — outside {net}: the call did not leave through the integration subnet",
                    seen.class
                ),
            },
        });
    }
    let verdict = if checks.iter().any(|c| c.ok == Some(false)) {
        PathVerdict::Broken
    } else if caller_in_subnet == Some(true) {
        PathVerdict::Locked
    } else {
        PathVerdict::Unverified
    };
    let summary = match (verdict, &diagnosis) {
        (PathVerdict::Locked, _) => "The back end answers, and it sees the front end coming from the integration subnet.".to_owned(),
        (PathVerdict::Unverified, _) if membership == Some(Membership::Undecodable) => "The back end answers, but it sees the front end as an IPv6 address that cannot be compared with INTEGRATION_SUBNET.".to_owned(),
        (PathVerdict::Unverified, _) => "The back end answers; set INTEGRATION_SUBNET to check where it sees the front end coming from.".to_owned(),
        (PathVerdict::Broken, Some(d)) => format!("{}. {}", capitalise(&d.message), capitalise(&d.hint)),
        (PathVerdict::Broken, None) => checks
            .iter()
            .find(|c| c.ok == Some(false))
            .map(|c| capitalise(&c.detail))
            .unwrap_or_default(),
    };
    let backend_instance = caller.as_ref().map(|c| c.instance.clone());
    PathReport {
        verdict,
        summary,
        backend_url: backend_url.to_owned(),
        backend_auth: state.backend.auth_mode(),
        integration_subnet: state.integration_subnet.map(|n| n.to_string()),
        dns,
        caller,
        caller_vnet_ip: decoded
            .and_then(CallerAddr::vnet_ip)
            .map(|ip| ip.to_string()),
        caller_in_subnet,
        diagnosis,
        checks,
        backend_ms,
        frontend_instance: (*state.instance).clone(),
        backend_instance,
        database: None,
        front,
    }
}

/// How the back end's credential gate let this front end in.
fn credential_check(sent: &str, auth: &CallerAuthSeen) -> PathCheck {
    let (ok, detail) = match auth.mode.as_str() {
        "none" => (
            None,
            "the back end checks no credential (AUTH_MODE=none): whoever reaches it gets in"
                .to_owned(),
        ),
        "entra" if sent == "entra" => (
            Some(true),
            format!(
                "the back end accepted this front end's Entra token: application {}, object {}, roles {}",
                auth.app_id.as_deref().unwrap_or("?"),
                auth.object_id.as_deref().unwrap_or("?"),
                if auth.roles.is_empty() {
                    "none".to_owned()
                } else {
                    auth.roles.join(", ")
                }
            ),
        ),
        "api-key" if sent == "api-key" => (
            Some(true),
            "the back end accepted this front end's API key".to_owned(),
        ),
        other => (
            Some(false),
            format!("the back end let the call in by {other}, while the front end sends {sent}"),
        ),
    };
    PathCheck {
        name: "credential",
        ok,
        detail,
    }
}

/// Where the caller lies against `INTEGRATION_SUBNET`; `None` without a subnet or an address.
fn in_subnet(subnet: Option<IpNet>, caller: Option<CallerAddr>) -> Option<Membership> {
    Some(caller?.in_net(&subnet?))
}

fn describe_dns(dns: &PathDns) -> String {
    if !dns.ok {
        return format!(
            "{} did not resolve: {}",
            dns.host,
            dns.error.as_deref().unwrap_or("no answer")
        );
    }
    let addresses: Vec<String> = dns
        .addresses
        .iter()
        .map(|a| format!("{} ({})", a.ip, a.class))
        .collect();
    let via = if dns.privatelink {
        " via a privatelink CNAME"
    } else {
        ""
    };
    format!("{} resolves to {}{via}", dns.host, addresses.join(", "))
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_membership_decodes_the_service_endpoint_form() {
        let net: IpNet = "127.0.2.0/24".parse().unwrap();
        let at = |ip: &str| in_subnet(Some(net), CallerAddr::parse(ip));
        assert_eq!(at("127.0.2.7"), Some(Membership::Inside));
        assert_eq!(at("::ffff:127.0.2.7"), Some(Membership::Inside));
        assert_eq!(at("127.0.0.1"), Some(Membership::Outside));
        assert_eq!(at("garbage"), None);
        assert_eq!(in_subnet(None, CallerAddr::parse("127.0.2.7")), None);
        let vnet: IpNet = "10.0.1.0/24".parse().unwrap();
        let at = |ip: &str| in_subnet(Some(vnet), CallerAddr::parse(ip));
        assert_eq!(
            at("fde4:8dba:2300:5457:6f23:200:a00:104"),
            Some(Membership::Inside)
        );
        assert_eq!(
            at("fde4:8dba:2300:5457:6f23:200:a09:909"),
            Some(Membership::Outside)
        );
        assert_eq!(at("fd00::a00:104"), Some(Membership::Undecodable));
    }

    #[test]
    fn the_credential_check_names_what_let_the_front_end_in() {
        let entra = CallerAuthSeen {
            mode: "entra".into(),
            app_id: Some("app-1".into()),
            object_id: Some("oid-1".into()),
            roles: vec!["Backend.Call".into()],
            token_version: Some("1.0".into()),
        };
        let check = credential_check("entra", &entra);
        assert_eq!(check.ok, Some(true));
        assert!(
            check
                .detail
                .contains("application app-1, object oid-1, roles Backend.Call")
        );
        let none = CallerAuthSeen {
            mode: "none".into(),
            app_id: None,
            object_id: None,
            roles: vec![],
            token_version: None,
        };
        assert_eq!(credential_check("api-key", &none).ok, None);
        assert_eq!(credential_check("api-key", &entra).ok, Some(false));
    }
}

#[cfg(test)]
mod backend_name_tests {
    use super::backend_name_check;

    #[test]
    fn an_https_backend_url_by_address_or_privatelink_name_is_diagnosed() {
        for (url, public) in [
            ("https://10.20.2.4", None),
            ("https://[fd00::4]:8443", None),
            (
                "https://app-be.privatelink.azurewebsites.net",
                Some("app-be.azurewebsites.net"),
            ),
        ] {
            let check =
                backend_name_check(&url.parse().unwrap()).unwrap_or_else(|| panic!("{url}"));
            assert_eq!((check.name, check.ok), ("backend_name", Some(false)));
            assert!(
                check.detail.starts_with("called_by_address: "),
                "{}",
                check.detail
            );
            if let Some(public) = public {
                assert!(check.detail.contains(public), "{}", check.detail);
            }
        }
        for fine in [
            "https://app-be.azurewebsites.net",
            "http://127.0.0.1:8081",
            "http://app-be.privatelink.azurewebsites.net",
        ] {
            assert!(
                backend_name_check(&fine.parse().unwrap()).is_none(),
                "{fine}"
            );
        }
    }
}
