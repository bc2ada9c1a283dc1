//! Judging a resolve: the answer against `private`, `privatelink`, `address_in` and `ok`.

use std::net::IpAddr;

use crate::smoke::config::Expect;
use diag::diagnosis::Code;
use diag::dns::{DnsErrorKind, Resolution};

use super::*;

pub(super) fn resolve(expect: &Expect, r: &Resolution) -> Evaluation {
    let evidence = vec![describe_resolution(r)];
    let Some(error) = r.error.as_ref().filter(|_| !r.ok) else {
        return resolved(expect, r, evidence);
    };
    if expect.ok == Some(false) {
        return Evaluation::pass(evidence);
    }
    if expect.zone == Some(true)
        && let Some(zone) = diag::azure::zone_check(r)
    {
        return Evaluation::fail(
            Code::DnsFailure,
            format!(
                "{} ({}); {}.",
                r.query.host,
                error.message,
                zone.explain(&r.query.host)
            ),
            evidence,
        );
    }
    let next = match error.kind {
        DnsErrorKind::Nxdomain => {
            "the name does not exist in the DNS this check used: check the spelling, and that the app uses the VNet's DNS (WEBSITE_DNS_SERVER or the VNet's DNS servers)"
        }
        DnsErrorKind::Timeout | DnsErrorKind::Network => {
            "the DNS server did not answer: check WEBSITE_DNS_SERVER / the VNet's DNS servers, and that a firewall or NSG lets DNS (UDP and TCP 53) through"
        }
        DnsErrorKind::Nodata => "the name exists but has no record of that type",
        _ => "the DNS server failed to answer this name: check the server and the zone",
    };
    Evaluation::fail(
        Code::DnsFailure,
        format!("{} ({}); {next}.", r.query.host, error.message),
        evidence,
    )
}

pub(super) fn resolved(expect: &Expect, r: &Resolution, mut evidence: Vec<String>) -> Evaluation {
    if expect.ok == Some(false) {
        return Evaluation::fail(
            Code::UnexpectedAnswer,
            format!("{} resolves, but it must not from here.", r.query.host),
            evidence,
        );
    }
    let addresses: Vec<IpAddr> = r.addresses.iter().map(|a| a.ip).collect();
    if let Some(want) = expect.zone {
        // Judged here from the answer itself, so an app running an older /diag is judged too.
        if let Some(zone) = diag::azure::zone_check(r) {
            let host = &r.query.host;
            evidence.push(zone.explain(host));
            match (want, zone.code) {
                (true, Some(code)) => {
                    return Evaluation::fail(code, format!("{}.", zone.explain(host)), evidence);
                }
                (false, _) if zone.is_private() => {
                    return Evaluation::fail(
                        Code::ResolvesPrivate,
                        format!(
                            "{host} resolves through {} to a private address where it must not: a private DNS zone linked here still answers for it.",
                            zone.expected.join(" or ")
                        ),
                        evidence,
                    );
                }
                _ => {}
            }
        }
    }
    if let Some(want) = expect.privatelink
        && r.privatelink != want
    {
        return if want {
            Evaluation::fail(
                Code::NoPrivatelink,
                format!(
                    "{} has no *.privatelink.* hop in its CNAME chain: the app is not served through a private endpoint, or its private endpoint has no DNS zone group.",
                    r.query.host
                ),
                evidence,
            )
        } else {
            Evaluation::fail(
                Code::UnexpectedPrivatelink,
                format!(
                    "{} goes through a privatelink hop although it should not.",
                    r.query.host
                ),
                evidence,
            )
        };
    }
    if expect.private.is_some() && r.addresses.is_empty() {
        return Evaluation::fail(
            Code::NoAddress,
            format!("{} has no address, so private cannot hold.", r.query.host),
            evidence,
        );
    }
    if expect.private == Some(true)
        && let Some(public) = r.addresses.iter().find(|a| !a.class.is_private())
    {
        return Evaluation::fail(
            Code::ResolvesPublic,
            format!(
                "{} resolves to {} ({}), not to a private endpoint: {}",
                r.query.host,
                public.ip,
                public.class,
                unlinked_zone_hint(r)
            ),
            evidence,
        );
    }
    if expect.private == Some(false)
        && let Some(private) = r.addresses.iter().find(|a| a.class.is_private())
    {
        return Evaluation::fail(
            Code::ResolvesPrivate,
            format!(
                "{} resolves to {} ({}) although it should resolve publicly here: a private endpoint (or a private DNS zone) still answers for it — with a private endpoint, service-endpoint access rules do not apply.",
                r.query.host, private.ip, private.class
            ),
            evidence,
        );
    }
    if let Some(range) = expect.address_in {
        if addresses.is_empty() {
            return Evaluation::fail(
                Code::NoAddress,
                format!("{} has no address.", r.query.host),
                evidence,
            );
        }
        if let Some(outside) = addresses
            .iter()
            .find(|ip| !range.contains(&ip.to_canonical()))
        {
            return Evaluation::fail(
                Code::UnexpectedAddress,
                format!(
                    "{} resolves to {outside}, outside {range}. {}",
                    r.query.host,
                    unlinked_zone_hint(r)
                ),
                evidence,
            );
        }
    }
    Evaluation::pass(evidence)
}

/// What to link for `r`'s name: its catalogued service's `privatelink` zone(s) (App Service's
/// when the name is not catalogued, the case this tool started from).
pub(super) fn unlinked_zone_hint(r: &Resolution) -> String {
    let zone = diag::azure::lookup(&r.query.host)
        .map(|found| found.service.zones.join(" or "))
        .unwrap_or_else(|| "privatelink.azurewebsites.net".to_owned());
    if r.privatelink {
        format!(
            "The name goes through {zone} but the answer is not the private endpoint's address: the private DNS zone is not linked to the VNet this app resolves through (or the app does not use the VNet's DNS)."
        )
    } else {
        format!(
            "If this should be a private endpoint: create it with a DNS zone group, link the {zone} zone to the VNet, and make the app resolve through the VNet's DNS."
        )
    }
}

pub(super) fn describe_resolution(r: &Resolution) -> String {
    let mut text = r.query.host.clone();
    for hop in &r.chain {
        text += &format!(" → CNAME {}", hop.target);
    }
    if r.ok {
        let addresses: Vec<String> = r
            .addresses
            .iter()
            .map(|a| format!("{} ({})", a.ip, a.class))
            .collect();
        text += &format!(
            " → {}",
            if addresses.is_empty() {
                "no address".into()
            } else {
                addresses.join(", ")
            }
        );
    } else if let Some(error) = &r.error {
        text += &format!(": {} ({})", error.kind.phrase(), error.message);
    }
    let servers: Vec<String> = r.resolver.servers.iter().map(ToString::to_string).collect();
    format!(
        "{text} in {:.1} ms via {}",
        r.duration_ms,
        if servers.is_empty() {
            "the system resolver".into()
        } else {
            servers.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_vault(chain: &[&str], ips: &[&str]) -> Resolution {
        let mut previous = "kv-x.vault.azure.net".to_owned();
        let chain: Vec<_> = chain
            .iter()
            .map(|target| {
                let hop = serde_json::json!({"name": previous, "ttl": 60, "target": target});
                previous = (*target).to_owned();
                hop
            })
            .collect();
        let addresses: Vec<_> = ips
            .iter()
            .map(|ip| {
                let class = if ip.starts_with("10.") {
                    "private"
                } else {
                    "public"
                };
                serde_json::json!({"ip": ip, "ttl": 60, "class": class})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "query": {"host": "kv-x.vault.azure.net", "type": "A", "name": "kv-x.vault.azure.net"},
            "resolver": {"servers": [], "source": "DNS_SERVERS"},
            "ok": true, "rcode": "NOERROR", "error": null, "chain": chain,
            "canonical_name": null, "addresses": addresses, "records": [],
            "privatelink": false, "duration_ms": 1.0
        }))
        .unwrap()
    }

    /// `zone = true` fails with the code of each wrong way, naming the zone to link; an answer
    /// from an older /diag (no `zone` key) is judged all the same.
    #[test]
    fn the_zone_expectation_names_the_zone_to_link() {
        let inside = Expect {
            zone: Some(true),
            ..Expect::default()
        };
        let right = "kv-x.privatelink.vaultcore.azure.net";
        let pass = resolve(&inside, &key_vault(&[right], &["10.20.3.4"]));
        assert!(pass.passed, "{pass:?}");
        assert!(
            pass.evidence
                .iter()
                .any(|e| e.contains("privatelink.vaultcore.azure.net"))
        );
        for (chain, ips, code) in [
            (
                &[right, "vault-weu.vault.azure.net"][..],
                &["20.1.2.3"][..],
                Code::PrivatelinkZoneNotLinked,
            ),
            (&[][..], &["20.1.2.3"][..], Code::PrivatelinkZoneMissing),
            (
                &["kv-x.privatelink.vault.azure.net"][..],
                &["10.20.3.9"][..],
                Code::WrongPrivatelinkZone,
            ),
        ] {
            let e = resolve(&inside, &key_vault(chain, ips));
            assert_eq!(e.code.as_deref(), Some(code.as_str()), "{chain:?}: {e:?}");
            assert!(
                e.diagnosis
                    .unwrap()
                    .contains("privatelink.vaultcore.azure.net")
            );
        }
        let outside = Expect {
            zone: Some(false),
            ..Expect::default()
        };
        assert!(
            resolve(
                &outside,
                &key_vault(&[right, "vault-weu.vault.azure.net"], &["20.1.2.3"])
            )
            .passed
        );
        let e = resolve(&outside, &key_vault(&[right], &["10.20.3.4"]));
        assert_eq!(e.code.as_deref(), Some("resolves_private"), "{e:?}");
    }
}
