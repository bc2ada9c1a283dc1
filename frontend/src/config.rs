//! The front end's configuration, parsed once from flags and environment variables.

use diag::api::DiagArgs;
use diag::dns::DnsArgs;
use diag::outbound::OutboundArgs;
use hosting::HostArgs;
use ipnet::IpNet;
use url::Url;

/// How the front end proves itself to the back end (`BACKEND_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BackendAuth {
    /// `X-Api-Key: <BACKEND_API_KEY>` (none when the key is empty).
    #[default]
    ApiKey,
    /// `Authorization: Bearer <token>`: a token of this app's managed identity for
    /// `BACKEND_TOKEN_RESOURCE`.
    Entra,
}

impl BackendAuth {
    /// The name used in configuration, JSON and the back end's `auth.mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api-key",
            Self::Entra => "entra",
        }
    }
}

pub use hosting::ConfigError;
pub use hosting::secret::Secret;

/// Everything the front end reads at start-up. `--help` lists every variable and its default.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "frontend",
    version,
    about = "The lockdown reference front end (BFF)"
)]
pub struct FrontendConfig {
    /// Platform settings: port, logging, instance identity, timeouts.
    #[command(flatten)]
    pub host: HostArgs,
    /// The back end's base URL; on App Service `https://<backend>.azurewebsites.net`.
    #[arg(long, env = "BACKEND_URL", default_value = "http://127.0.0.1:8081")]
    pub backend_url: Url,
    /// How the front end proves itself to the back end: `api-key` (`BACKEND_API_KEY` in
    /// `X-Api-Key`) or `entra` (a token of this app's managed identity in `Authorization`).
    #[arg(long, env = "BACKEND_AUTH", value_enum, default_value_t = BackendAuth::ApiKey)]
    pub backend_auth: BackendAuth,
    /// The API key sent to the back end in `X-Api-Key` (never reaches the browser).
    #[arg(long, env = "BACKEND_API_KEY", hide_env_values = true)]
    pub backend_api_key: Option<Secret>,
    /// The back end's `DIAG_TOKEN`: turns on `/diag/backend/{action}`, which runs a diagnostic
    /// in the back end through this app (for a back end with no public entry). Held here, sent
    /// only to `BACKEND_URL`, never returned or logged. Unset: those routes answer 404.
    #[arg(long, env = "BACKEND_DIAG_TOKEN", hide_env_values = true)]
    pub backend_diag_token: Option<Secret>,
    /// Entra mode: the resource the token is asked for — the back end's application ID URI
    /// (`api://…`) or client ID. A resource, not a scope: no `/.default`.
    #[arg(long, env = "BACKEND_TOKEN_RESOURCE")]
    pub backend_token_resource: Option<String>,
    /// Entra mode: the client ID of the user-assigned managed identity to use (unset: the
    /// system-assigned identity).
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub azure_client_id: Option<String>,
    /// The managed-identity endpoint (set by App Service when the app has a managed identity).
    #[arg(long, env = "IDENTITY_ENDPOINT")]
    pub identity_endpoint: Option<Url>,
    /// The secret the managed-identity endpoint expects in `X-IDENTITY-HEADER` (set by App
    /// Service; never logged).
    #[arg(long, env = "IDENTITY_HEADER", hide_env_values = true)]
    pub identity_header: Option<Secret>,
    /// Time limit for one back-end call; the connect gets half of it. App Service's own tooling
    /// waits 21 s for a connect that a firewall drops; a shorter limit gives a faster diagnosis.
    /// Fetching a token (retries included) gets the same limit.
    #[arg(long, env = "BACKEND_TIMEOUT_MS", default_value_t = 10_000)]
    pub backend_timeout_ms: u64,
    /// The VNet integration subnet (CIDR): the path report checks that the back end saw the
    /// front end's calls coming from it.
    #[arg(long, env = "INTEGRATION_SUBNET")]
    pub integration_subnet: Option<IpNet>,
    /// The `frontDoorId` of the Azure Front Door profile in front of this app: Front Door's
    /// headers (`X-Azure-SocketIP` as the client, `X-Forwarded-Host`/`-Proto` as the public
    /// origin) are trusted only on requests whose `X-Azure-FDID` equals it, and the path report
    /// says when a request came without it. Unset: the front end is not behind Front Door.
    #[arg(long, env = "FRONT_DOOR_ID")]
    pub front_door_id: Option<String>,
    /// Resolver settings (shared with `/diag/resolve`).
    #[command(flatten)]
    pub dns: DnsArgs,
    /// Outbound source address (the lab's emulated integration subnet).
    #[command(flatten)]
    pub outbound: OutboundArgs,
    /// `/diag` settings.
    #[command(flatten)]
    pub diag: DiagArgs,
    /// The relay's connection pool and admission control.
    #[command(flatten)]
    pub relay: RelayArgs,
}

/// The relay's connection pool to the back end and its admission control.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Idle connections to the back end kept for reuse; more are closed as they come back.
    #[arg(long, env = "BACKEND_POOL_MAX_IDLE", default_value_t = 64)]
    pub backend_pool_max_idle: usize,
    /// How long an idle connection to the back end is kept, in milliseconds.
    #[arg(long, env = "BACKEND_POOL_IDLE_TIMEOUT_MS", default_value_t = 30_000)]
    pub backend_pool_idle_timeout_ms: u64,
    /// Requests that call the back end (the relay, the page, /api/path, /readyz) served at
    /// once; beyond it they wait at most RELAY_QUEUE_TIMEOUT_MS, then get 503 `frontend_busy`
    /// with `Retry-After`.
    #[arg(long, env = "RELAY_MAX_IN_FLIGHT", default_value_t = 256)]
    pub relay_max_in_flight: usize,
    /// How long a request waits for a place under RELAY_MAX_IN_FLIGHT, in milliseconds.
    #[arg(long, env = "RELAY_QUEUE_TIMEOUT_MS", default_value_t = 100)]
    pub relay_queue_timeout_ms: u64,
}

impl Default for RelayArgs {
    fn default() -> Self {
        Self {
            backend_pool_max_idle: 64,
            backend_pool_idle_timeout_ms: 30_000,
            relay_max_in_flight: 256,
            relay_queue_timeout_ms: 100,
        }
    }
}

impl FrontendConfig {
    /// `BACKEND_TOKEN_RESOURCE`, checked: required in Entra mode, and a resource, not a scope.
    pub fn token_resource(&self) -> Result<String, ConfigError> {
        let resource = self
            .backend_token_resource
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or(ConfigError {
                name: "BACKEND_TOKEN_RESOURCE",
                message: "BACKEND_AUTH=entra needs the back end's application ID URI (api://…) or client ID"
                    .into(),
            })?;
        if resource.ends_with("/.default") {
            return Err(ConfigError {
                name: "BACKEND_TOKEN_RESOURCE",
                message: format!(
                    "{resource:?} is a scope; the managed-identity endpoint takes the resource itself: drop /.default"
                ),
            });
        }
        Ok(resource.to_owned())
    }

    /// Why `REQUEST_TIMEOUT_MS` could cut a slow back-end call short, when it could: the caller
    /// would then get 503 `request_timeout` instead of the diagnosis. A request may need a token
    /// fetch (Entra) and a back-end call, each within `BACKEND_TIMEOUT_MS`, and on a failure a
    /// look-up of the back end's name (up to 2 × `DNS_TIMEOUT_MS`).
    pub fn request_budget_warning(&self) -> Option<String> {
        let steps = match self.backend_auth {
            BackendAuth::ApiKey => 1,
            BackendAuth::Entra => 2,
        };
        let lookup = u64::from(diag::dns::LOOKUP_IP_TIMEOUTS) * self.dns.dns_timeout_ms;
        let needed = steps * self.backend_timeout_ms + lookup;
        let limit = self.host.request_timeout_ms;
        (needed >= limit).then(|| {
            let calls = match self.backend_auth {
                BackendAuth::ApiKey => "a back-end call",
                BackendAuth::Entra => "a token fetch and a back-end call",
            };
            format!(
                "REQUEST_TIMEOUT_MS ({limit}) does not outlast {calls} (BACKEND_TIMEOUT_MS each) and the failure's DNS check (2 × DNS_TIMEOUT_MS): {needed} ms in all. \
                 A slow back end would be answered 503 request_timeout instead of its diagnosis: raise REQUEST_TIMEOUT_MS above {needed} or lower BACKEND_TIMEOUT_MS"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_request_limit_must_outlast_a_diagnosed_back_end_call() {
        let parse = |args: &[&str]| {
            FrontendConfig::parse_from(std::iter::once("frontend").chain(args.iter().copied()))
        };
        // The defaults fit in both modes: 10 s (+ 10 s token) + 2 × 3 s DNS < 30 s.
        assert_eq!(parse(&[]).request_budget_warning(), None);
        assert_eq!(
            parse(&["--backend-auth", "entra"]).request_budget_warning(),
            None
        );
        let slow = ["--backend-timeout-ms", "15000"];
        assert_eq!(parse(&slow).request_budget_warning(), None);
        let warning = parse(&[&slow[..], &["--backend-auth", "entra"]].concat())
            .request_budget_warning()
            .expect("15 s + 15 s + 6 s cannot fit in 30 s");
        assert!(
            warning.contains("a token fetch and a back-end call") && warning.contains("36000 ms"),
            "{warning}"
        );
        let short = parse(&["--request-timeout-ms", "12000"])
            .request_budget_warning()
            .expect("10 s + 6 s cannot fit in 12 s");
        assert!(short.contains("REQUEST_TIMEOUT_MS (12000)"), "{short}");
    }

    #[test]
    fn entra_settings_are_read_and_secrets_stay_hidden() {
        let config = FrontendConfig::parse_from([
            "frontend",
            "--backend-auth",
            "entra",
            "--backend-token-resource",
            " api://backend ",
            "--identity-endpoint",
            "http://127.0.0.1:41000/msi/token",
            "--identity-header",
            "s3cret-identity-header",
            "--backend-api-key",
            "s3cret-key",
        ]);
        assert_eq!(config.backend_auth, BackendAuth::Entra);
        assert_eq!(config.token_resource().unwrap(), "api://backend");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(
            config.identity_header.as_ref().map(Secret::expose),
            Some("s3cret-identity-header")
        );
    }

    #[test]
    fn the_resource_is_required_and_never_a_scope() {
        let mut config = FrontendConfig::parse_from(["frontend", "--backend-auth", "entra"]);
        assert_eq!(
            config.token_resource().unwrap_err().name,
            "BACKEND_TOKEN_RESOURCE"
        );
        config.backend_token_resource = Some("api://backend/.default".into());
        let error = config.token_resource().unwrap_err();
        assert!(error.message.contains("drop /.default"), "{error}");
        assert_eq!(
            FrontendConfig::parse_from(["frontend"]).backend_auth,
            BackendAuth::ApiKey
        );
    }
}
