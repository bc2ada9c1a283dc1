//! The network facts of this instance for `/diag/env`: a fixed allow-list of App Service
//! variables (never any other variable — the environment holds secrets), the network interfaces
//! and the nameservers of /etc/resolv.conf; of every other variable, only the **names** of those
//! whose value is still an unresolved Key Vault reference (`@Microsoft.KeyVault(…)`), never a
//! value. Also which credential mode is configured (names and
//! identifiers only: never a key, a token or `IDENTITY_HEADER`; of `IDENTITY_ENDPOINT` only
//! whether it is set).

use std::collections::HashMap;
use std::net::IpAddr;

use hosting::AddressClass;
use serde::{Deserialize, Serialize};

use crate::dns::ResolverInfo;

/// The only variables `/diag/env` ever reads.
pub const ALLOWED_VARIABLES: [&str; 17] = [
    "WEBSITE_SITE_NAME",
    "WEBSITE_INSTANCE_ID",
    "WEBSITE_PRIVATE_IP",
    "REGION_NAME",
    "WEBSITE_VNET_ROUTE_ALL",
    "WEBSITE_DNS_SERVER",
    "WEBSITE_DNS_ALT_SERVER",
    "DNS_SERVERS",
    "DNS_TIMEOUT_MS",
    "OUTBOUND_SOURCE_ADDR",
    "AUTH_MODE",
    "BACKEND_AUTH",
    "BACKEND_TOKEN_RESOURCE",
    "AZURE_CLIENT_ID",
    "ENTRA_TENANT_ID",
    "WEBSITE_AUTH_ENABLED",
    // Only whether it is set is reported, never its value.
    "IDENTITY_ENDPOINT",
];

/// Longest value reported per variable.
const MAX_VALUE_LEN: usize = 256;

/// The DNS settings among the variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSettings {
    /// `DNS_SERVERS` (the lab's and tests' override).
    pub dns_servers: Option<String>,
    /// `WEBSITE_DNS_SERVER`.
    pub website_dns_server: Option<String>,
    /// `WEBSITE_DNS_ALT_SERVER`.
    pub website_dns_alt_server: Option<String>,
    /// `DNS_TIMEOUT_MS`.
    pub dns_timeout_ms: Option<String>,
}

/// Which credential mode is configured (identifiers, never secrets). The apps fill in what is in
/// force, whether it was set by variable or by flag; other values are the variables as set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthFacts {
    /// The back end's `AUTH_MODE` as set (`api-key`, `entra`, `none`; unset: api-key when
    /// `API_KEYS` is set — the back end's `/api/caller` says what is in force).
    pub auth_mode: Option<String>,
    /// The front end's `BACKEND_AUTH` as set (`api-key`, `entra`; unset: api-key).
    pub backend_auth: Option<String>,
    /// The front end's `BACKEND_TOKEN_RESOURCE`: the audience it asks tokens for.
    pub backend_token_resource: Option<String>,
    /// `AZURE_CLIENT_ID`: the user-assigned identity used (unset: system-assigned).
    pub azure_client_id: Option<String>,
    /// The back end's `ENTRA_TENANT_ID`.
    pub entra_tenant_id: Option<String>,
    /// Whether App Service hands this app a managed identity (`IDENTITY_ENDPOINT` is set).
    pub managed_identity: bool,
    /// `WEBSITE_AUTH_ENABLED`: App Service Authentication is on.
    pub app_service_auth: Option<bool>,
}

/// The allow-listed network variables of this instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvFacts {
    /// `WEBSITE_SITE_NAME`.
    pub site_name: Option<String>,
    /// `WEBSITE_INSTANCE_ID` (also the `ARRAffinity` cookie value).
    pub instance_id: Option<String>,
    /// `WEBSITE_PRIVATE_IP`: this instance's address in the integration subnet.
    pub private_ip: Option<String>,
    /// `REGION_NAME`.
    pub region: Option<String>,
    /// `WEBSITE_VNET_ROUTE_ALL` as set (`vnetRouteAllEnabled` shows up as this variable).
    pub vnet_route_all: Option<String>,
    /// Route-all interpreted: `1`/`true` → true, `0`/`false` → false, unset → null.
    pub route_all_enabled: Option<bool>,
    /// DNS variables.
    pub dns: DnsSettings,
    /// `OUTBOUND_SOURCE_ADDR`.
    pub outbound_source_addr: Option<String>,
    /// The credential mode configured.
    #[serde(default)]
    pub auth: AuthFacts,
    /// Names (never values) of the settings whose value is still a literal
    /// `@Microsoft.KeyVault(…)`: App Service leaves the reference in place when it cannot
    /// resolve it (the vault unreachable on the platform's path, or the identity without access).
    #[serde(default)]
    pub keyvault_references: Vec<String>,
}

/// The prefix App Service leaves in a setting whose Key Vault reference it could not resolve.
pub const KEYVAULT_REFERENCE_PREFIX: &str = "@Microsoft.KeyVault(";

/// The names, sorted, of the variables whose value starts with [`KEYVAULT_REFERENCE_PREFIX`]
/// (any case, leading spaces ignored). Values are looked at here and nowhere kept.
pub fn keyvault_references<K: AsRef<str>, V: AsRef<str>>(
    vars: impl IntoIterator<Item = (K, V)>,
) -> Vec<String> {
    let prefix = KEYVAULT_REFERENCE_PREFIX.as_bytes();
    let mut names: Vec<String> = vars
        .into_iter()
        .filter(|(_, value)| {
            value
                .as_ref()
                .trim_start()
                .as_bytes()
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        })
        .map(|(name, _)| name.as_ref().chars().take(MAX_VALUE_LEN).collect())
        .collect();
    names.sort();
    names.dedup();
    names
}

impl EnvFacts {
    /// Reads the allow-listed variables from the process environment, one by one (the
    /// environment is never listed).
    pub fn from_process_env() -> Self {
        let map: HashMap<String, String> = ALLOWED_VARIABLES
            .iter()
            .filter_map(|name| {
                std::env::var(name)
                    .ok()
                    .map(|value| ((*name).to_owned(), value))
            })
            .collect();
        let mut facts = Self::from_map(&map);
        // Every variable is looked at for the reference's prefix; only names leave this function.
        facts.keyvault_references =
            keyvault_references(std::env::vars_os().map(|(name, value)| {
                (
                    name.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                )
            }));
        facts
    }

    /// The same facts with the site and instance the app was configured with (`--site-name`,
    /// `--instance-id`, or the same variables): they win, so an app started with flags, as in
    /// the lab, names itself the way its other answers do.
    pub fn with_host(mut self, host: &hosting::HostArgs) -> Self {
        if let Some(site) = &host.site_name {
            self.site_name = Some(site.clone());
        }
        if let Some(instance) = &host.instance_id {
            self.instance_id = Some(instance.clone());
        }
        self
    }

    /// Builds the facts from a map of variables, reading only the allow-listed names — and, of
    /// every variable, whether it still holds a Key Vault reference (its name only).
    pub fn from_map(map: &HashMap<String, String>) -> Self {
        let get = |name: &str| {
            debug_assert!(ALLOWED_VARIABLES.contains(&name));
            map.get(name)
                .map(|value| value.trim())
                .filter(|value| !value.is_empty())
                .map(|value| value.chars().take(MAX_VALUE_LEN).collect::<String>())
        };
        let vnet_route_all = get("WEBSITE_VNET_ROUTE_ALL");
        let route_all_enabled =
            vnet_route_all
                .as_deref()
                .and_then(|value| match value.to_ascii_lowercase().as_str() {
                    "1" | "true" => Some(true),
                    "0" | "false" => Some(false),
                    _ => None,
                });
        Self {
            site_name: get("WEBSITE_SITE_NAME"),
            instance_id: get("WEBSITE_INSTANCE_ID"),
            private_ip: get("WEBSITE_PRIVATE_IP"),
            region: get("REGION_NAME"),
            vnet_route_all,
            route_all_enabled,
            dns: DnsSettings {
                dns_servers: get("DNS_SERVERS"),
                website_dns_server: get("WEBSITE_DNS_SERVER"),
                website_dns_alt_server: get("WEBSITE_DNS_ALT_SERVER"),
                dns_timeout_ms: get("DNS_TIMEOUT_MS"),
            },
            outbound_source_addr: get("OUTBOUND_SOURCE_ADDR"),
            auth: AuthFacts {
                auth_mode: get("AUTH_MODE"),
                backend_auth: get("BACKEND_AUTH"),
                backend_token_resource: get("BACKEND_TOKEN_RESOURCE"),
                azure_client_id: get("AZURE_CLIENT_ID"),
                entra_tenant_id: get("ENTRA_TENANT_ID"),
                managed_identity: get("IDENTITY_ENDPOINT").is_some(),
                app_service_auth: get("WEBSITE_AUTH_ENABLED")
                    .map(|v| v.eq_ignore_ascii_case("true") || v == "1"),
            },
            keyvault_references: keyvault_references(map),
        }
    }
}

/// One address of a network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceAddress {
    /// Interface name (`eth0`, `lo`, …).
    pub name: String,
    /// The address.
    pub ip: IpAddr,
    /// Prefix length of its network.
    pub prefix_len: u8,
    /// Its class.
    pub class: AddressClass,
}

/// The parts of /etc/resolv.conf that matter for lookups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvConf {
    /// `nameserver` lines (App Service Linux: 127.0.0.11, the embedded forwarder).
    pub nameservers: Vec<String>,
    /// `search` domains.
    pub search: Vec<String>,
    /// `options` entries.
    pub options: Vec<String>,
}

/// Parses resolv.conf text (comments and unknown lines ignored).
pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => conf.nameservers.extend(words.next().map(str::to_owned)),
            Some("search") | Some("domain") => conf.search = words.map(str::to_owned).collect(),
            Some("options") => conf.options.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    conf
}

/// The interfaces and their addresses, read now.
pub fn interfaces() -> Vec<InterfaceAddress> {
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    interfaces
        .into_iter()
        .map(|interface| {
            let ip = interface.ip();
            let prefix_len = match &interface.addr {
                if_addrs::IfAddr::V4(v4) => v4.prefixlen,
                if_addrs::IfAddr::V6(v6) => v6.prefixlen,
            };
            InterfaceAddress {
                class: AddressClass::of(ip),
                name: interface.name,
                ip,
                prefix_len,
            }
        })
        .collect()
}

/// The `/diag/env` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvReport {
    /// The allow-listed variables.
    pub facts: EnvFacts,
    /// The resolver in force (servers and source).
    pub resolver: ResolverInfo,
    /// Interfaces and addresses.
    pub interfaces: Vec<InterfaceAddress>,
    /// /etc/resolv.conf.
    pub resolv_conf: ResolvConf,
    /// The diag target policy entries in force and their source.
    pub diag_policy: DiagPolicyView,
}

/// The policy as `/diag/env` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagPolicyView {
    /// `diag_allow` or `default`.
    pub source: String,
    /// The entries.
    pub entries: Vec<String>,
}

impl EnvReport {
    /// A short human summary (`format=text`).
    pub fn to_text(&self) -> String {
        let show = |value: &Option<String>| value.clone().unwrap_or_else(|| "(unset)".to_owned());
        let f = &self.facts;
        let mut out = String::new();
        out.push_str(&format!("Site:            {}\n", show(&f.site_name)));
        out.push_str(&format!("Instance:        {}\n", show(&f.instance_id)));
        out.push_str(&format!("Region:          {}\n", show(&f.region)));
        out.push_str(&format!("Private IP:      {}\n", show(&f.private_ip)));
        out.push_str(&format!("Route all:       {}\n", show(&f.vnet_route_all)));
        out.push_str(&format!(
            "Outbound source: {}\n",
            show(&f.outbound_source_addr)
        ));
        if !f.keyvault_references.is_empty() {
            out.push_str(&format!(
                "Unresolved Key Vault references: {}\n",
                f.keyvault_references.join(", ")
            ));
        }
        let a = &f.auth;
        out.push_str(&format!(
            "Auth:            AUTH_MODE {}, BACKEND_AUTH {}, resource {}, managed identity {}, App Service Authentication {}\n",
            show(&a.auth_mode),
            show(&a.backend_auth),
            show(&a.backend_token_resource),
            if a.managed_identity { "yes" } else { "no" },
            a.app_service_auth
                .map_or("(unset)", |on| if on { "on" } else { "off" })
        ));
        let source = serde_json::to_value(self.resolver.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        out.push_str(&format!(
            "DNS servers:     {} (from {source})\n",
            self.resolver.display_servers()
        ));
        out.push_str(&format!(
            "resolv.conf:     nameserver {}; search {}\n",
            self.resolv_conf.nameservers.join(", "),
            self.resolv_conf.search.join(" ")
        ));
        out.push_str("Interfaces:\n");
        for interface in &self.interfaces {
            out.push_str(&format!(
                "        {} {}/{} ({})\n",
                interface.name, interface.ip, interface.prefix_len, interface.class
            ));
        }
        out.push_str(&format!(
            "Diag policy:     {}: {}\n",
            self.diag_policy.source,
            self.diag_policy.entries.join(", ")
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unresolved_key_vault_references_are_named_never_shown() {
        let map: HashMap<String, String> = [
            (
                "BACKEND_API_KEY",
                "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/api-key/)",
            ),
            (
                "DIAG_TOKEN",
                "  @microsoft.keyvault(VaultName=kv-x;SecretName=diag-token)",
            ),
            ("API_KEYS", "resolved-s3cr3t-value"),
            ("NOTE", "see @Microsoft.KeyVault(...) in the docs"),
            ("EMPTY", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let facts = EnvFacts::from_map(&map);
        assert_eq!(facts.keyvault_references, ["BACKEND_API_KEY", "DIAG_TOKEN"]);
        let json = serde_json::to_string(&facts).unwrap();
        assert!(
            !json.contains("SecretUri") && !json.contains("s3cr3t"),
            "{json}"
        );
        assert!(
            EnvFacts::from_map(&HashMap::new())
                .keyvault_references
                .is_empty()
        );
        // An older app's /diag/env has no such key: read as none.
        let old: EnvFacts = serde_json::from_value(serde_json::json!({
            "site_name": null, "instance_id": null, "private_ip": null, "region": null,
            "vnet_route_all": null, "route_all_enabled": null,
            "dns": {"dns_servers": null, "website_dns_server": null, "website_dns_alt_server": null, "dns_timeout_ms": null},
            "outbound_source_addr": null
        }))
        .unwrap();
        assert!(old.keyvault_references.is_empty());
    }

    #[test]
    fn only_allow_listed_variables_are_read() {
        let map: HashMap<String, String> = [
            ("WEBSITE_SITE_NAME", "app-fe"),
            ("WEBSITE_PRIVATE_IP", "10.20.1.4"),
            ("WEBSITE_VNET_ROUTE_ALL", "1"),
            ("REGION_NAME", "West Europe"),
            ("WEBSITE_DNS_SERVER", "168.63.129.16"),
            ("BACKEND_API_KEY", "s3cr3t-canary-value"),
            ("DIAG_TOKEN", "s3cr3t-canary-token"),
            ("IDENTITY_HEADER", "s3cr3t-canary-identity"),
            (
                "IDENTITY_ENDPOINT",
                "http://169.254.255.2:8081/msi/token?s3cr3t",
            ),
            ("WEBSITE_AUTH_ENCRYPTION_KEY", "s3cr3t-canary-key"),
            ("API_KEYS", "s3cr3t-canary-api-key"),
            ("BACKEND_AUTH", "entra"),
            ("BACKEND_TOKEN_RESOURCE", "api://lockdown-backend"),
            ("WEBSITE_AUTH_ENABLED", "True"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let facts = EnvFacts::from_map(&map);
        assert_eq!(facts.site_name.as_deref(), Some("app-fe"));
        assert_eq!(facts.private_ip.as_deref(), Some("10.20.1.4"));
        assert_eq!(facts.route_all_enabled, Some(true));
        assert_eq!(
            facts.dns.website_dns_server.as_deref(),
            Some("168.63.129.16")
        );
        assert_eq!(facts.auth.backend_auth.as_deref(), Some("entra"));
        assert_eq!(
            facts.auth.backend_token_resource.as_deref(),
            Some("api://lockdown-backend")
        );
        assert!(facts.auth.managed_identity);
        assert_eq!(facts.auth.app_service_auth, Some(true));
        let json = serde_json::to_string(&facts).unwrap();
        assert!(!json.contains("s3cr3t"), "{json}");
        assert!(!json.contains("169.254"), "{json}");
    }

    #[test]
    fn resolv_conf() {
        let conf = parse_resolv_conf(
            "# generated\nnameserver 127.0.0.11\nnameserver 168.63.129.16 # azure\nsearch a.internal b.internal\noptions ndots:0 timeout:3\n",
        );
        assert_eq!(conf.nameservers, ["127.0.0.11", "168.63.129.16"]);
        assert_eq!(conf.search, ["a.internal", "b.internal"]);
        assert_eq!(conf.options, ["ndots:0", "timeout:3"]);
    }

    #[test]
    fn interfaces_include_loopback() {
        assert!(
            interfaces()
                .iter()
                .any(|i| i.ip.is_loopback() && i.class == AddressClass::Loopback)
        );
    }
}
