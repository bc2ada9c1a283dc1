//! The back end's configuration, parsed once from flags and environment variables.

use std::path::PathBuf;

use hosting::HostArgs;
use ipnet::IpNet;
use probe::diag::DiagArgs;
use probe::dns::DnsArgs;
use probe::outbound::OutboundArgs;

use crate::caller::ClientIpSource;

/// Everything the back end reads at start-up. `--help` lists every variable and its default.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "backend",
    version,
    about = "The lockdown reference back-end API"
)]
pub struct BackendConfig {
    /// Platform settings: port, logging, instance identity, timeouts.
    #[command(flatten)]
    pub host: HostArgs,
    /// Accepted API keys, comma-separated (several, for rotation). Empty: no key is required,
    /// which is logged loudly at start-up.
    #[arg(long, env = "API_KEYS", hide_env_values = true, default_value = "")]
    pub api_keys: String,
    /// Networks allowed to call `/api`, comma-separated CIDRs (the integration subnet). Empty: no
    /// app-level network check (the platform's access restriction still applies).
    #[arg(long, env = "ALLOWED_CALLERS", default_value = "")]
    pub allowed_callers: String,
    /// Where the client address comes from: `x-client-ip`, `x-forwarded-for` or `peer`
    /// [default: x-client-ip on App Service, else peer].
    #[arg(long, env = "CLIENT_IP_SOURCE", value_enum)]
    pub client_ip_source: Option<ClientIpSource>,
    /// Folder of the embedded store (on App Service, under the persisted `/home`).
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Resolver settings for `/diag`.
    #[command(flatten)]
    pub dns: DnsArgs,
    /// Outbound source address for `/diag`.
    #[command(flatten)]
    pub outbound: OutboundArgs,
    /// `/diag` settings.
    #[command(flatten)]
    pub diag: DiagArgs,
}

/// A configuration value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    /// The variable at fault.
    pub name: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl BackendConfig {
    /// The API keys, without empty entries.
    pub fn api_keys(&self) -> Vec<String> {
        split_list(&self.api_keys).map(str::to_owned).collect()
    }

    /// The allowed caller networks.
    pub fn allowed_callers(&self) -> Result<Vec<IpNet>, ConfigError> {
        split_list(&self.allowed_callers)
            .map(|entry| parse_net(entry, "ALLOWED_CALLERS"))
            .collect()
    }

    /// The client-address source in force: explicit, else `x-client-ip` on App Service, else `peer`.
    pub fn client_ip_source(&self) -> ClientIpSource {
        self.client_ip_source
            .unwrap_or(if self.host.on_app_service() {
                ClientIpSource::XClientIp
            } else {
                ClientIpSource::Peer
            })
    }
}

/// Splits a comma-separated list, trimming entries and dropping empty ones.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Parses a CIDR, or a bare address as a single-host network.
pub fn parse_net(entry: &str, name: &'static str) -> Result<IpNet, ConfigError> {
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| ConfigError {
            name,
            message: format!("{entry:?} is not a CIDR such as 10.20.1.0/24"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn lists_drop_empty_entries_and_parse_cidrs() {
        let config = BackendConfig::parse_from([
            "backend",
            "--api-keys",
            " k1 ,,k2 ",
            "--allowed-callers",
            "10.20.1.0/24, 127.0.0.2",
        ]);
        assert_eq!(config.api_keys(), vec!["k1", "k2"]);
        let nets = config.allowed_callers().unwrap();
        assert_eq!(nets[0].to_string(), "10.20.1.0/24");
        assert_eq!(nets[1].to_string(), "127.0.0.2/32");
    }

    #[test]
    fn a_bad_cidr_names_the_variable() {
        let config = BackendConfig::parse_from(["backend", "--allowed-callers", "10.0.0.0/33"]);
        let error = config.allowed_callers().unwrap_err();
        assert_eq!(error.name, "ALLOWED_CALLERS");
    }

    #[test]
    fn client_ip_source_defaults_to_the_platform_header_on_app_service() {
        let mut config = BackendConfig::parse_from(["backend"]);
        assert_eq!(config.client_ip_source(), ClientIpSource::Peer);
        config.host.site_name = Some("app-be".into());
        assert_eq!(config.client_ip_source(), ClientIpSource::XClientIp);
    }
}
