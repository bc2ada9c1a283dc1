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
name = "{DB_DENIED}"
from = "here"
tcpping = "{DATABASE_HOST}:{port}"
expect = {{ denied = true }}
"#,
            DB_RESOLVE = checks::DB_RESOLVE,
            DB_REACH = checks::DB_REACH,
            DB_DENIED = checks::DB_DENIED,
        ),
    };
    let backend_app = if lab.database_port.is_some() {
        format!(
            r#"
# The back end has no public entry: its /diag is reached through the front end's.
[apps.backend]
url = "{}"
via = "frontend"
"#,
            lab.backend_url
        )
    } else {
        String::new()
    };
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
        site_checks = lab
            .site
            .as_ref()
            .map(|site| crate::front::suite_checks(site, &backend, TOKEN_ENV))
            .unwrap_or_default(),
    )
}
