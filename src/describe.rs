//! What the lab prints about itself: the misconfiguration catalogue (`--list-breaks`) and the
//! topology of a running lab (mode, breaks, apps, addresses, credential, DNS).

use std::net::Ipv4Addr;

use crate::emulator::service_endpoint_form;
use crate::topology::{
    BACKEND_PRIVATE_ENDPOINT, BACKEND_PUBLIC, INTEGRATION_SUBNET, frontend_private_ip,
};
use crate::{Break, Lab, Mode};

/// The catalogue of `--break` names: each one's mode (or `either`) and what it gets wrong.
pub fn break_catalogue() -> String {
    let mut out = format!("{:<26} {:<18} what is wrong\n", "--break", "mode");
    for b in Break::ALL {
        let mode = b.mode().map_or("either".to_owned(), |m| m.to_string());
        out += &format!("{:<26} {mode:<18} {}\n", b.name(), b.description());
    }
    out
}

/// The lab as it runs: mode, breaks, apps, addresses, credential, DNS.
pub fn topology(lab: &Lab, breaks: &[Break]) -> String {
    let mut out = String::new();
    let mode = lab.plan.mode;
    let front = lab
        .site
        .as_ref()
        .map(|s| format!(", behind {}", s.front))
        .unwrap_or_default();
    out += &format!(
        "lockdown lab — {mode} mode{front}{}\n",
        if breaks.is_empty() {
            String::new()
        } else {
            format!(
                ", broken: {}",
                breaks
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    out += &format!(
        "  front end   {}  instances {}  egress from {}\n",
        lab.frontend_url,
        short_ids(&lab.frontend_instance_ids),
        if lab.plan.frontend_integrated {
            format!(
                "{}–{} (integration subnet {INTEGRATION_SUBNET})",
                frontend_private_ip(0),
                frontend_private_ip(lab.frontend_instance_ids.len().saturating_sub(1))
            )
        } else {
            "127.0.0.1 (not integrated)".into()
        }
    );
    let inbound = match mode {
        Mode::ServiceEndpoint => format!(
            "public {BACKEND_PUBLIC}, access restriction: {}",
            describe_rules(lab)
        ),
        Mode::PrivateEndpoint => format!(
            "private endpoint {BACKEND_PRIVATE_ENDPOINT}, public access {}",
            if lab
                .backend_site
                .networking
                .read()
                .map(|n| n.public_network_access)
                .unwrap_or(false)
            {
                "ENABLED"
            } else {
                "disabled"
            }
        ),
    };
    out += &format!(
        "  back end    {}  instances {}  {inbound}\n",
        lab.backend_url,
        short_ids(&lab.backend_instance_ids)
    );
    out += &format!("  store       {}\n", lab.store);
    if lab.plan.service_endpoint {
        out += &format!(
            "  endpoint    Microsoft.Web service endpoint on {INTEGRATION_SUBNET}: its calls reach the public address as {} (127.0.2.4)\n",
            service_endpoint_form(Ipv4Addr::new(127, 0, 2, 4))
        );
    }
    if lab.plan.custom_error_pages {
        out += "  error pages custom 403 and 503 pages (status lines and x-ms-forbidden-ip unchanged)\n";
    }
    if let Some(site) = &lab.site {
        out += &site.describe();
    }
    if lab.plan.gateway_in_front {
        out += "  gateway     an Application Gateway in front of the back end answers 403 to every caller\n";
    }
    out += &format!(
        "  credential  {}\n",
        match &lab.entra_authority {
            Some(authority) => format!(
                "Entra ID: the front end's managed-identity token, checked by the back end (keys from {authority})"
            ),
            None => "API key".to_owned(),
        }
    );
    out += &format!(
        "  DNS         VNet {}{}, public {}\n",
        lab.vnet_dns,
        if lab.plan.vnet_dns.is_none() {
            " (not answering)"
        } else {
            ""
        },
        lab.public_dns
    );
    out.push('\n');
    out
}

/// Instance ids (64 hex, as `WEBSITE_INSTANCE_ID`) shortened for the topology; the report
/// names them in full.
fn short_ids(ids: &[String]) -> String {
    ids.iter()
        .map(|id| match id.get(..12) {
            Some(start) if id.len() > 12 => format!("{start}…"),
            _ => id.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_rules(lab: &Lab) -> String {
    let Ok(networking) = lab.backend_site.networking.read() else {
        return String::new();
    };
    if networking.rules.is_empty() {
        return format!("none (default {:?})", networking.default_action);
    }
    let rules: Vec<String> = networking
        .rules
        .iter()
        .map(|r| {
            format!(
                "{:?} {}",
                r.action,
                r.vnet_subnet
                    .or(r.ip_address)
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )
        })
        .collect();
    format!(
        "{}, default {:?}",
        rules.join(", "),
        networking.default_action
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_lists_every_break_once_with_its_mode() {
        let catalogue = break_catalogue();
        let lines: Vec<&str> = catalogue.lines().collect();
        assert!(lines[0].starts_with("--break"), "{catalogue}");
        assert_eq!(lines.len(), Break::ALL.len() + 1, "{catalogue}");
        for b in Break::ALL {
            let line = lines
                .iter()
                .find(|l| l.split_whitespace().next() == Some(b.name()))
                .unwrap_or_else(|| panic!("{} missing:\n{catalogue}", b.name()));
            let mode = b.mode().map_or("either".to_owned(), |m| m.to_string());
            assert!(line.contains(&mode), "{line}");
            assert!(line.ends_with(b.description()), "{line}");
        }
    }
}
