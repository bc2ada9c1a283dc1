//! Where the resolver's servers come from (`DNS_SERVERS`, `WEBSITE_DNS_SERVER`, the system) and
//! how that is reported.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::*;

/// Where the resolver's servers come from (`DNS_SERVERS`, `WEBSITE_DNS_SERVER`, …).
#[derive(Debug, Clone, clap::Args)]
pub struct DnsArgs {
    /// DNS servers to use instead of the platform's: comma-separated `ip[:port]` (the lab and
    /// tests point this at their own DNS server).
    #[arg(long, env = "DNS_SERVERS", hide_env_values = true)]
    pub dns_servers: Option<String>,
    /// The custom DNS server App Service hands the app (used when `DNS_SERVERS` is unset).
    #[arg(long, env = "WEBSITE_DNS_SERVER", hide_env_values = true)]
    pub website_dns_server: Option<String>,
    /// The alternate custom DNS server App Service hands the app.
    #[arg(long, env = "WEBSITE_DNS_ALT_SERVER", hide_env_values = true)]
    pub website_dns_alt_server: Option<String>,
    /// How long one DNS lookup may take, in milliseconds (1–30000).
    #[arg(
        long,
        env = "DNS_TIMEOUT_MS",
        default_value_t = DEFAULT_DNS_TIMEOUT_MS,
        value_parser = clap::value_parser!(u64).range(1..=MAX_DNS_TIMEOUT_MS),
        hide_env_values = true
    )]
    pub dns_timeout_ms: u64,
}

impl Default for DnsArgs {
    fn default() -> Self {
        Self {
            dns_servers: None,
            website_dns_server: None,
            website_dns_alt_server: None,
            dns_timeout_ms: DEFAULT_DNS_TIMEOUT_MS,
        }
    }
}

/// A DNS configuration that cannot be used (a startup error, exit code 2 in the CLI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsConfigError {
    /// A server in `DNS_SERVERS` / `WEBSITE_DNS_SERVER` / `server=` is not `ip[:port]`.
    #[error("{variable}: `{value}` is not ip[:port]")]
    InvalidServer {
        /// Where the value came from.
        variable: &'static str,
        /// The value.
        value: String,
    },
    /// No server is configured at all.
    #[error("no DNS server configured ({0})")]
    NoServers(&'static str),
    /// The system configuration (/etc/resolv.conf) cannot be read.
    #[error("cannot read the system DNS configuration: {0}")]
    System(String),
    /// hickory refused to build the resolver.
    #[error("cannot build the DNS resolver: {0}")]
    Build(String),
}

/// Which configuration the servers came from (`resolver.source` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResolverSource {
    /// The request's `server=` parameter.
    #[serde(rename = "query")]
    Query,
    /// `DNS_SERVERS`.
    #[serde(rename = "DNS_SERVERS")]
    DnsServers,
    /// `WEBSITE_DNS_SERVER` (+ `WEBSITE_DNS_ALT_SERVER`).
    #[serde(rename = "WEBSITE_DNS_SERVER")]
    WebsiteDnsServer,
    /// The system configuration (/etc/resolv.conf).
    #[serde(rename = "system")]
    System,
}

/// The servers a resolver asks and where they came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolverInfo {
    /// The servers, in order.
    pub servers: Vec<SocketAddr>,
    /// Where they came from.
    pub source: ResolverSource,
}

impl ResolverInfo {
    /// The server list as Kudu's `nameresolver` prints it: `ip` for port 53, else `ip:port`.
    pub fn display_servers(&self) -> String {
        let shown: Vec<String> = self
            .servers
            .iter()
            .map(|server| match (server.port(), server.ip()) {
                (53, ip) => ip.to_string(),
                _ => server.to_string(),
            })
            .collect();
        if shown.is_empty() {
            "(none)".to_owned()
        } else {
            shown.join(", ")
        }
    }
}
