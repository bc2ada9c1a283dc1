//! The lab's smoke suite: expectations as code, in the same TOML a user writes for Azure
//! (`infra/smoke/*.toml`), filled in with the lab's addresses and ports.

use crate::breaks::Mode;
use crate::stack::{Lab, LabAuth, TOKEN_ENV};
use crate::topology::{DATABASE_HOST, INTEGRATION_SUBNET, PRIVATE_ENDPOINT_SUBNET, PUBLIC_RANGE};

/// The check names, in the order the suite runs them (the tests pin which ones each break fails).
pub mod checks {
    /// The front end resolves the back end (to the private endpoint in private-endpoint mode).
    pub const RESOLVE: &str = "front end resolves the back end";
    /// Every front-end instance's egress leaves through the integration subnet.
    pub const EGRESS: &str = "front end's egress leaves through the integration subnet";
    /// Every front-end instance reaches the back end through the lockdown.
    pub const REACH: &str = "front end reaches the back end";
    /// The back end sees the front end's calls coming from the integration subnet.
    pub const CALLER: &str = "back end sees the front end inside the integration subnet";
    /// The internet cannot reach the back end.
    pub const DENIED: &str = "the internet cannot reach the back end";
    /// Entra mode: the back end refuses a call without a token, with its own code.
    pub const NO_TOKEN: &str = "back end refuses a call without a token";
    /// On PostgreSQL: the back end resolves its database's name through the privatelink zone to
    /// the private endpoint (run in the back end, reached through the front end).
    pub const DB_RESOLVE: &str = "back end resolves its database through the privatelink zone";
    /// On PostgreSQL: every back-end instance connects to the database's private endpoint.
    pub const DB_REACH: &str = "back end connects to its database";
    /// On PostgreSQL: the database's public endpoint refuses the internet.
    pub const DB_DENIED: &str = "the internet cannot reach the database";
    /// On PostgreSQL: the server answers the back end as PostgreSQL, over TLS that verifies its
    /// public name.
    pub const DB_TLS: &str = "back end's database answers as PostgreSQL over verified TLS";
    /// The front end's Key Vault references were resolved (no setting holds the literal).
    pub const KV_FRONTEND: &str = "front end's Key Vault references are resolved";
    /// The back end's Key Vault references were resolved.
    pub const KV_BACKEND: &str = "back end's Key Vault references are resolved";
}

/// The suite for a running lab, as TOML.
pub fn suite_toml(lab: &Lab) -> String {
    let backend = format!("{}:{}", lab.hosts.backend, lab.backend_port);
    let resolve_expect = match lab.plan.mode {
        Mode::ServiceEndpoint => format!(r#"{{ ok = true, address_in = "{PUBLIC_RANGE}" }}"#),
        Mode::PrivateEndpoint => {
            format!(r#"{{ address_in = "{PRIVATE_ENDPOINT_SUBNET}", privatelink = true }}"#)
        }
    };
    // In Entra mode, the back end must say it let the front end in with its token, and refuse a
    // call without one with its own code (the lab has no App Service Authentication in front).
    let (caller_auth, entra_checks) = match lab.auth {
        LabAuth::ApiKey => (String::new(), String::new()),
        LabAuth::Entra => (
            r#", caller_auth = "entra""#.to_owned(),
            format!(
                r#"
[[check]]
name = "{NO_TOKEN}"
from = "frontend"
http = "http://{backend}/api/items"
expect = {{ status = 401, error_code = "missing_token" }}
"#,
                NO_TOKEN = checks::NO_TOKEN,
            ),
        ),
    };
    // The data tier, when the lab runs on PostgreSQL: checked from inside the back end, which
    // has no public entry, through the front end's /diag/backend/.
    let data_tier = match lab.database_port {
        None => String::new(),
        Some(port) => format!(
            r#"
# The lab's addresses are all loopback, so the private endpoint is told by its subnet, not
# by `zone = true` (which needs a private address; use it on Azure).
[[check]]
name = "{DB_RESOLVE}"
from = "backend"
resolve = "{DATABASE_HOST}"
expect = {{ address_in = "{PRIVATE_ENDPOINT_SUBNET}", privatelink = true }}

[[check]]
name = "{DB_REACH}"
from = "backend"
instances = "all"
tcpping = "{DATABASE_HOST}:{port}"
expect = {{ reachable = true }}

[[check]]
name = "{DB_TLS}"
from = "backend"
timeout_ms = 5000
tls = "{DATABASE_HOST}:{port}"
protocol = "postgres"
expect = {{ ok = true }}

[[check]]
name = "{DB_DENIED}"
from = "here"
tcpping = "{DATABASE_HOST}:{port}"
expect = {{ denied = true }}
"#,
            DB_TLS = checks::DB_TLS,
            DB_RESOLVE = checks::DB_RESOLVE,
            DB_REACH = checks::DB_REACH,
            DB_DENIED = checks::DB_DENIED,
        ),
    };
    // The back end has no public entry: its /diag is reached through the front end's.
    let backend_app = format!(
        r#"
[apps.backend]
url = "{}"
via = "frontend"
"#,
        lab.backend_url
    );
    format!(
        r#"# lockdown lab, {mode} mode: expectations as code. `probe smoke --config FILE` runs the
# same format against Azure (see infra/smoke/).

[defaults]
timeout_ms = 1500

[here]
# The internet's DNS (the lab's public view); on a real machine, leave this out.
dns_servers = ["{public_dns}"]

[apps.frontend]
url = "{frontend}"
token_env = "{TOKEN_ENV}"
{backend_app}
[[check]]
name = "{RESOLVE}"
from = "frontend"
resolve = "{backend_host}"
expect = {resolve_expect}

[[check]]
name = "{EGRESS}"
from = "frontend"
instances = "all"
tcpping = "{backend}"
expect = {{ reachable = true, source_in = "{INTEGRATION_SUBNET}" }}

[[check]]
name = "{REACH}"
from = "frontend"
instances = "all"
http = "http://{backend}/healthz"
expect = {{ status = 200, source_in = "{INTEGRATION_SUBNET}" }}

[[check]]
name = "{CALLER}"
from = "here"
timeout_ms = 5000
http = "{frontend}/api/path"
expect = {{ status = 200, caller_in = "{INTEGRATION_SUBNET}"{caller_auth} }}

[[check]]
name = "{DENIED}"
from = "here"
http = "http://{backend}/healthz"
expect = {{ denied = true }}

[[check]]
name = "{KV_FRONTEND}"
from = "frontend"
env = true
expect = {{ keyvault_resolved = true }}

[[check]]
name = "{KV_BACKEND}"
from = "backend"
env = true
expect = {{ keyvault_resolved = true }}
{entra_checks}{data_tier}{site_checks}"#,
        mode = lab.plan.mode,
        public_dns = lab.public_dns,
        backend_host = lab.hosts.backend,
        frontend = lab.frontend_url,
        RESOLVE = checks::RESOLVE,
        EGRESS = checks::EGRESS,
        REACH = checks::REACH,
        CALLER = checks::CALLER,
        DENIED = checks::DENIED,
        KV_FRONTEND = checks::KV_FRONTEND,
        KV_BACKEND = checks::KV_BACKEND,
        site_checks = lab
            .site
            .as_ref()
            .map(|site| crate::front::suite_checks(site, &backend, TOKEN_ENV))
            .unwrap_or_default(),
    )
}

/// The `${LAB_…}` placeholders a suite given with `--suite` may use, with the running lab's
/// values (its ports change at every start, so a suite cannot name them itself).
pub fn placeholders(lab: &Lab) -> Vec<(&'static str, String)> {
    vec![
        ("LAB_FRONTEND_URL", lab.frontend_url.clone()),
        (
            "LAB_BACKEND",
            format!("{}:{}", lab.hosts.backend, lab.backend_port),
        ),
        ("LAB_BACKEND_HOST", lab.hosts.backend.clone()),
        ("LAB_BACKEND_PORT", lab.backend_port.to_string()),
        ("LAB_PUBLIC_DNS", lab.public_dns.to_string()),
        ("LAB_TOKEN_ENV", TOKEN_ENV.to_owned()),
        ("LAB_INTEGRATION_SUBNET", INTEGRATION_SUBNET.to_owned()),
    ]
}

/// A user's suite (`--suite FILE`) with every `${LAB_…}` placeholder filled in. An unknown
/// `${LAB_…}` is an error: a typo would otherwise reach the probe as a host name.
pub fn fill_suite(text: &str, values: &[(&'static str, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${LAB_") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            let shown: String = rest[start..].chars().take(40).collect();
            return Err(format!("an unclosed placeholder: {shown}"));
        };
        let name = &after[..end];
        let Some((_, value)) = values.iter().find(|(known, _)| *known == name) else {
            let known: Vec<&str> = values.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown placeholder ${{{name}}}; the lab fills in {}",
                known.join(", ")
            ));
        };
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A generated suite of `checks` checks for scale runs (`lockdown-bench scale`, the lab's
/// tests): check `k` runs from the front end's instance `k mod N` (pinned by id), in turn a
/// tcpping of the back end, an HTTP call to it and a lookup of its name. Each result can then be
/// traced to the instance that must have produced it ([`verify_scale`]).
pub fn scale_suite(lab: &Lab, checks: usize) -> String {
    let backend = format!("{}:{}", lab.hosts.backend, lab.backend_port);
    let mut suite = format!(
        r#"[defaults]
timeout_ms = 5000

[apps.frontend]
url = "{frontend}"
token_env = "{TOKEN_ENV}"
"#,
        frontend = lab.frontend_url,
    );
    for k in 0..checks {
        let instance = &lab.frontend_instance_ids[k % lab.frontend_instance_ids.len()];
        let (action, expect) = match k % 3 {
            0 => (
                format!(r#"tcpping = "{backend}""#),
                format!(r#"{{ reachable = true, source_in = "{INTEGRATION_SUBNET}" }}"#),
            ),
            1 => (
                format!(r#"http = "http://{backend}/healthz""#),
                "{ status = 200 }".to_owned(),
            ),
            _ => (
                format!(r#"resolve = "{}""#, lab.hosts.backend),
                "{ ok = true }".to_owned(),
            ),
        };
        suite += &format!(
            "\n[[check]]\nname = \"check {k}\"\nfrom = \"frontend\"\ninstances = [\"{instance}\"]\n{action}\nexpect = {expect}\n"
        );
    }
    suite
}

/// Checks a report of [`scale_suite`]: one result per check, none lost or repeated, each passed,
/// pinned to and answered by its own instance, and each tcpping left from that instance's own
/// address in the integration subnet (so no result was swapped with another instance's).
pub fn verify_scale(
    lab: &Lab,
    report: &probe::smoke::SuiteReport,
    checks: usize,
) -> Result<(), String> {
    if report.results.len() != checks {
        return Err(format!(
            "{} results for {checks} checks",
            report.results.len()
        ));
    }
    let mut seen = vec![false; checks];
    for result in &report.results {
        let k: usize = result
            .name
            .strip_prefix("check ")
            .and_then(|n| n.parse().ok())
            .filter(|k| *k < checks)
            .ok_or_else(|| format!("a result of no check: {}", result.name))?;
        if std::mem::replace(&mut seen[k], true) {
            return Err(format!("{} reported twice", result.name));
        }
        let n = k % lab.frontend_instance_ids.len();
        let instance = &lab.frontend_instance_ids[n];
        if result.instance.as_ref() != Some(instance)
            || result.answered_by.as_ref() != Some(instance)
        {
            return Err(format!(
                "{} belongs to instance {instance}, reported as pinned to {:?}, answered by {:?}",
                result.name, result.instance, result.answered_by
            ));
        }
        if result.verdict != probe::smoke::Verdict::Pass {
            return Err(format!(
                "{} failed: {:?} {:?}",
                result.name, result.code, result.diagnosis
            ));
        }
        if k.is_multiple_of(3) {
            let source = result.facts.source.as_ref().map(|s| s.ip);
            let own = crate::topology::frontend_private_ip(n);
            if source != Some(own) {
                return Err(format!(
                    "{} ran on instance {n} (source {own}) but its tcpping left from {source:?}",
                    result.name
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fill_suite;

    #[test]
    fn placeholders_are_filled_and_typos_refused() {
        let values = [
            ("LAB_BACKEND", "app-be:4000".to_owned()),
            ("LAB_TOKEN_ENV", "T".to_owned()),
        ];
        assert_eq!(
            fill_suite(
                "tcpping = \"${LAB_BACKEND}\" # ${LAB_TOKEN_ENV}, ${HOME}",
                &values
            )
            .unwrap(),
            "tcpping = \"app-be:4000\" # T, ${HOME}"
        );
        let error = fill_suite("x = \"${LAB_BACKEN}\"", &values).unwrap_err();
        assert!(
            error.contains("LAB_BACKEN") && error.contains("LAB_BACKEND"),
            "{error}"
        );
        assert!(fill_suite("x = \"${LAB_BACKEND\"", &values).is_err());
    }
}
