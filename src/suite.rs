//! The lab's smoke suite: expectations as code, in the same TOML a user writes for Azure
//! (`infra/smoke/*.toml`), filled in with the lab's addresses and ports.

use crate::breaks::Mode;
use crate::stack::{Lab, LabAuth, TOKEN_ENV};
use crate::topology::{INTEGRATION_SUBNET, PRIVATE_ENDPOINT_SUBNET, PUBLIC_RANGE};

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
{entra_checks}"#,
        mode = lab.plan.mode,
        public_dns = lab.public_dns,
        backend_host = lab.hosts.backend,
        frontend = lab.frontend_url,
        RESOLVE = checks::RESOLVE,
        EGRESS = checks::EGRESS,
        REACH = checks::REACH,
        CALLER = checks::CALLER,
        DENIED = checks::DENIED,
    )
}
