//! The front end's configuration, parsed once from flags and environment variables.

use hosting::HostArgs;
use ipnet::IpNet;
use probe::diag::DiagArgs;
use probe::dns::DnsArgs;
use probe::outbound::OutboundArgs;
use url::Url;

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
    /// The API key sent to the back end in `X-Api-Key` (never reaches the browser).
    #[arg(long, env = "BACKEND_API_KEY", hide_env_values = true)]
    pub backend_api_key: Option<String>,
    /// Time limit for one back-end call; the connect gets half of it. App Service's own tooling
    /// waits 21 s for a connect that a firewall drops; a shorter limit gives a faster diagnosis.
    #[arg(long, env = "BACKEND_TIMEOUT_MS", default_value_t = 10_000)]
    pub backend_timeout_ms: u64,
    /// The VNet integration subnet (CIDR): the path report checks that the back end saw the
    /// front end's calls coming from it.
    #[arg(long, env = "INTEGRATION_SUBNET")]
    pub integration_subnet: Option<IpNet>,
    /// Resolver settings (shared with `/diag/resolve`).
    #[command(flatten)]
    pub dns: DnsArgs,
    /// Outbound source address (the lab's emulated integration subnet).
    #[command(flatten)]
    pub outbound: OutboundArgs,
    /// `/diag` settings.
    #[command(flatten)]
    pub diag: DiagArgs,
}
