//! The back end's configuration, parsed once from flags and environment variables.

use std::path::PathBuf;
use std::time::Duration;

use diag::api::DiagArgs;
use diag::dns::DnsArgs;
use diag::outbound::OutboundArgs;
use hosting::HostArgs;
use ipnet::IpNet;

use url::Url;

use crate::auth::AuthModeName;
use crate::caller::ClientIpSource;
use crate::database::{DatabaseSettings, DbAuthName};
use crate::entra::{DEFAULT_AUTHORITY, EntraSettings};
use crate::jwks::KeyCacheSettings;

/// Largest `ENTRA_LEEWAY_S` accepted: clocks on App Service are synchronised, so more than a few
/// minutes of skew means something else is wrong.
pub const MAX_LEEWAY_S: u64 = 300;

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
    pub api_keys: Secret,
    /// How `/api` callers authenticate: `api-key` (`X-Api-Key`, one of `API_KEYS`), `entra` (an
    /// Entra ID token of the front end's managed identity) or `none` [default: api-key when
    /// `API_KEYS` is set, else none].
    #[arg(long, env = "AUTH_MODE", value_enum)]
    pub auth_mode: Option<AuthModeName>,
    /// Entra mode: the tenant ID (GUID) the tokens must come from (`tid` and the issuer).
    #[arg(long, env = "ENTRA_TENANT_ID")]
    pub entra_tenant_id: Option<String>,
    /// Entra mode: accepted audiences, comma-separated: the back end's application ID URI
    /// (`api://…`) and/or its client ID (v2 tokens carry the client ID).
    #[arg(long, env = "ENTRA_AUDIENCES", default_value = "")]
    pub entra_audiences: String,
    /// Entra mode: accepted calling applications (`appid`/`azp`), comma-separated client IDs:
    /// the front end's managed identity. At least this or ENTRA_ALLOWED_OBJECTS must be set.
    #[arg(long, env = "ENTRA_ALLOWED_APPS", default_value = "")]
    pub entra_allowed_apps: String,
    /// Entra mode: accepted caller object IDs (`oid`), comma-separated: the front end's managed
    /// identity's principal ID.
    #[arg(long, env = "ENTRA_ALLOWED_OBJECTS", default_value = "")]
    pub entra_allowed_objects: String,
    /// Entra mode: the app role (`roles` claim) callers must hold, e.g. `Backend.Call`. Empty: no
    /// role is required (logged loudly).
    #[arg(long, env = "ENTRA_REQUIRED_ROLE")]
    pub entra_required_role: Option<String>,
    /// Entra mode: where the signing keys are fetched, `{authority}/{tenant}/discovery/v2.0/keys`
    /// (https; http only on loopback, for tests). The accepted issuers do not depend on it.
    #[arg(long, env = "ENTRA_AUTHORITY", default_value = DEFAULT_AUTHORITY)]
    pub entra_authority: Url,
    /// Entra mode: clock skew allowed on `exp` and `nbf`, in seconds (at most 300).
    #[arg(long, env = "ENTRA_LEEWAY_S", default_value_t = 60)]
    pub entra_leeway_s: u64,
    /// Set by App Service when App Service Authentication is on (`True`): only then are its
    /// `X-MS-CLIENT-PRINCIPAL*` headers read (and only reported, never trusted instead of the token).
    #[arg(long, env = "WEBSITE_AUTH_ENABLED")]
    pub website_auth_enabled: Option<String>,
    /// Networks allowed to call `/api`, comma-separated IPv4 or IPv6 CIDRs (the integration
    /// subnet). A service-endpoint caller (IPv6 in `fde4:8dba::/32`) is compared with IPv4 ranges by
    /// the VNet IPv4 it carries. Empty: no app-level network check (the platform's access
    /// restriction still applies).
    #[arg(long, env = "ALLOWED_CALLERS", default_value = "")]
    pub allowed_callers: String,
    /// Where the client address comes from: `x-client-ip`, `x-forwarded-for` or `peer`
    /// [default: x-client-ip on App Service, else peer].
    #[arg(long, env = "CLIENT_IP_SOURCE", value_enum)]
    pub client_ip_source: Option<ClientIpSource>,
    /// Folder of the embedded store (on App Service, under the persisted `/home`).
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// How long to wait for `DATA_DIR`'s lock when another back end holds it (an overlapping
    /// restart or slot swap) before giving up.
    #[arg(long, env = "DATA_DIR_LOCK_WAIT_MS", default_value_t = 30_000)]
    pub data_dir_lock_wait_ms: u64,
    /// PostgreSQL instead of the embedded store, `postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME`
    /// (TLS with the certificate and host name verified; `?sslrootcert=PATH` trusts that CA
    /// instead of the platform's roots; `?sslmode=disable` for a local server only). Unset: the
    /// embedded store under `DATA_DIR`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// The database password: `password` (the one in `DATABASE_URL`) or `entra` (a token of the
    /// app's managed identity, renewed before it expires).
    #[arg(long, env = "DB_AUTH", value_enum, default_value = "password")]
    pub db_auth: DbAuthName,
    /// `DB_AUTH=entra`: the token's resource (Azure Database for PostgreSQL's).
    #[arg(long, env = "DB_TOKEN_RESOURCE", default_value = DEFAULT_DB_TOKEN_RESOURCE)]
    pub db_token_resource: String,
    /// `DB_AUTH=entra`: the managed-identity endpoint (set by App Service).
    #[arg(long, env = "IDENTITY_ENDPOINT")]
    pub identity_endpoint: Option<Url>,
    /// `DB_AUTH=entra`: the identity endpoint's secret (set by App Service; never logged).
    #[arg(long, env = "IDENTITY_HEADER", hide_env_values = true)]
    pub identity_header: Option<Secret>,
    /// `DB_AUTH=entra`: the client ID of a user-assigned identity (unset: the system-assigned one).
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub azure_client_id: Option<String>,
    /// Time limit of one database connect (lookup, TCP, TLS, login), and of `/readyz`'s check.
    #[arg(long, env = "DB_CONNECT_TIMEOUT_MS", default_value_t = 5_000)]
    pub db_connect_timeout_ms: u64,
    /// Most database connections one instance opens.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: usize,
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

pub use hosting::ConfigError;

/// Azure Database for PostgreSQL's token resource (`DB_TOKEN_RESOURCE`'s default).
pub const DEFAULT_DB_TOKEN_RESOURCE: &str = "https://ossrdbms-aad.database.windows.net";
pub use hosting::secret::Secret;

impl BackendConfig {
    /// `DATABASE_URL`, checked; `None` selects the embedded store.
    pub fn database(&self) -> Result<Option<DatabaseSettings>, ConfigError> {
        let Some(url) = self
            .database_url
            .as_ref()
            .filter(|u| !u.expose().trim().is_empty())
        else {
            return Ok(None);
        };
        let settings = DatabaseSettings::parse(url.expose())?;
        if self.db_pool_size == 0 {
            return Err(ConfigError {
                name: "DB_POOL_SIZE",
                message: "at least 1".into(),
            });
        }
        if self.db_auth == DbAuthName::Entra && settings.password.is_some() {
            return Err(ConfigError {
                name: "DATABASE_URL",
                message: "DB_AUTH=entra uses a token as the password: leave the password out of DATABASE_URL".into(),
            });
        }
        Ok(Some(settings))
    }

    /// Time limit of one database connect.
    pub fn db_connect_timeout(&self) -> Duration {
        Duration::from_millis(self.db_connect_timeout_ms)
    }

    /// The API keys, without empty entries.
    pub fn api_keys(&self) -> Vec<String> {
        split_list(self.api_keys.expose())
            .map(str::to_owned)
            .collect()
    }

    /// The credential mode in force: `AUTH_MODE`, else api-key when `API_KEYS` is set, else none.
    /// `AUTH_MODE=api-key` without keys is refused (it would let everyone in).
    pub fn auth_mode(&self) -> Result<AuthModeName, ConfigError> {
        let has_keys = !self.api_keys().is_empty();
        match self.auth_mode {
            Some(AuthModeName::ApiKey) if !has_keys => Err(ConfigError {
                name: "API_KEYS",
                message: "AUTH_MODE=api-key needs at least one key in API_KEYS".into(),
            }),
            Some(mode) => Ok(mode),
            None if has_keys => Ok(AuthModeName::ApiKey),
            None => Ok(AuthModeName::None),
        }
    }

    /// True when App Service Authentication is on (`WEBSITE_AUTH_ENABLED` is `true`/`True`/`1`).
    pub fn app_service_auth(&self) -> bool {
        self.website_auth_enabled
            .as_deref()
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
    }

    /// The Entra validator's settings, checked: a GUID tenant, at least one audience (none of
    /// them a `/.default` scope), at least one allowed application or object (GUIDs), an https
    /// authority (http only on loopback), a leeway of at most 300 s.
    pub fn entra_settings(&self) -> Result<EntraSettings, ConfigError> {
        let tenant_id = self
            .entra_tenant_id
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ConfigError {
                name: "ENTRA_TENANT_ID",
                message: "AUTH_MODE=entra needs the tenant ID (a GUID)".into(),
            })?;
        let tenant_id = parse_guid(tenant_id, "ENTRA_TENANT_ID")?;
        let audiences: Vec<String> = split_list(&self.entra_audiences)
            .map(str::to_owned)
            .collect();
        if audiences.is_empty() {
            return Err(ConfigError {
                name: "ENTRA_AUDIENCES",
                message: "AUTH_MODE=entra needs the back end's application ID URI and/or client ID"
                    .into(),
            });
        }
        if let Some(scope) = audiences.iter().find(|a| a.ends_with("/.default")) {
            return Err(ConfigError {
                name: "ENTRA_AUDIENCES",
                message: format!(
                    "{scope:?} is a scope, not an audience: drop the /.default (tokens carry the bare application ID URI)"
                ),
            });
        }
        let allowed_apps = split_list(&self.entra_allowed_apps)
            .map(|a| parse_guid(a, "ENTRA_ALLOWED_APPS"))
            .collect::<Result<Vec<_>, _>>()?;
        let allowed_objects = split_list(&self.entra_allowed_objects)
            .map(|o| parse_guid(o, "ENTRA_ALLOWED_OBJECTS"))
            .collect::<Result<Vec<_>, _>>()?;
        if allowed_apps.is_empty() && allowed_objects.is_empty() {
            return Err(ConfigError {
                name: "ENTRA_ALLOWED_APPS",
                message: "AUTH_MODE=entra needs the front end's managed identity in ENTRA_ALLOWED_APPS (client ID) and/or ENTRA_ALLOWED_OBJECTS (object ID)".into(),
            });
        }
        let authority = &self.entra_authority;
        let loopback = match authority.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        let scheme_ok = authority.scheme() == "https" || (authority.scheme() == "http" && loopback);
        if !scheme_ok || authority.query().is_some() || authority.fragment().is_some() {
            return Err(ConfigError {
                name: "ENTRA_AUTHORITY",
                message: format!(
                    "{authority} must be an https base URL such as {DEFAULT_AUTHORITY} (plain http only on loopback)"
                ),
            });
        }
        if self.entra_leeway_s > MAX_LEEWAY_S {
            return Err(ConfigError {
                name: "ENTRA_LEEWAY_S",
                message: format!("at most {MAX_LEEWAY_S} s"),
            });
        }
        Ok(EntraSettings {
            tenant_id,
            audiences,
            allowed_apps,
            allowed_objects,
            required_role: self
                .entra_required_role
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
            authority: authority.clone(),
            leeway: Duration::from_secs(self.entra_leeway_s),
            keys: KeyCacheSettings::default(),
        })
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

/// Parses a GUID, returning it lowercase (Entra writes them lowercase in tokens).
pub fn parse_guid(value: &str, name: &'static str) -> Result<String, ConfigError> {
    uuid::Uuid::try_parse(value)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| ConfigError {
            name,
            message: format!("{value:?} is not a GUID"),
        })
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
            "10.20.1.0/24, 127.0.0.2, fde4:8dba:2300::/48",
        ]);
        assert_eq!(config.api_keys(), vec!["k1", "k2"]);
        let nets = config.allowed_callers().unwrap();
        assert_eq!(nets[0].to_string(), "10.20.1.0/24");
        assert_eq!(nets[1].to_string(), "127.0.0.2/32");
        assert_eq!(nets[2].to_string(), "fde4:8dba:2300::/48");
    }

    #[test]
    fn a_bad_cidr_names_the_variable() {
        let config = BackendConfig::parse_from(["backend", "--allowed-callers", "10.0.0.0/33"]);
        let error = config.allowed_callers().unwrap_err();
        assert_eq!(error.name, "ALLOWED_CALLERS");
    }

    const TENANT: &str = "8f1e9a3c-5b2d-4c7e-9f10-2a3b4c5d6e7f";
    const APP: &str = "c4a8e2f6-1b3d-4e5f-8a9b-0c1d2e3f4a5b";

    /// An Entra configuration; `extra` adds flags or replaces the value of one already there.
    fn entra(extra: &[&str]) -> BackendConfig {
        let mut args = vec![
            "backend",
            "--auth-mode",
            "entra",
            "--entra-tenant-id",
            TENANT,
            "--entra-audiences",
            "api://backend, 3B6F2D1E-8C4A-4F9B-A7E2-5D1C0B9A8F7E",
            "--entra-allowed-apps",
            APP,
        ];
        for pair in extra.chunks(2) {
            match args.iter().position(|a| *a == pair[0]) {
                Some(at) => args[at + 1] = pair[1],
                None => args.extend_from_slice(pair),
            }
        }
        BackendConfig::parse_from(args)
    }

    #[test]
    fn the_auth_mode_follows_api_keys_unless_set() {
        assert_eq!(
            BackendConfig::parse_from(["backend"]).auth_mode().unwrap(),
            AuthModeName::None
        );
        let keyed = BackendConfig::parse_from(["backend", "--api-keys", "k"]);
        assert_eq!(keyed.auth_mode().unwrap(), AuthModeName::ApiKey);
        let error = BackendConfig::parse_from(["backend", "--auth-mode", "api-key"])
            .auth_mode()
            .unwrap_err();
        assert_eq!(error.name, "API_KEYS");
        assert_eq!(entra(&[]).auth_mode().unwrap(), AuthModeName::Entra);
    }

    #[test]
    fn entra_settings_are_checked_and_normalised() {
        let settings = entra(&["--entra-required-role", " Backend.Call "])
            .entra_settings()
            .unwrap();
        assert_eq!(settings.tenant_id, TENANT);
        assert_eq!(
            settings.audiences,
            ["api://backend", "3B6F2D1E-8C4A-4F9B-A7E2-5D1C0B9A8F7E"]
        );
        assert_eq!(settings.allowed_apps, [APP]);
        assert_eq!(settings.required_role.as_deref(), Some("Backend.Call"));
        assert_eq!(settings.leeway, Duration::from_secs(60));
        assert_eq!(
            settings.keys_url().as_str(),
            format!("https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys")
        );
        assert_eq!(
            settings.issuer_v1(),
            format!("https://sts.windows.net/{TENANT}/")
        );

        let cases: &[(&[&str], &str)] = &[
            (
                &["--entra-tenant-id", "contoso.onmicrosoft.com"],
                "ENTRA_TENANT_ID",
            ),
            (
                &["--entra-audiences", "api://backend/.default"],
                "ENTRA_AUDIENCES",
            ),
            (&["--entra-audiences", " , "], "ENTRA_AUDIENCES"),
            (&["--entra-allowed-apps", ""], "ENTRA_ALLOWED_APPS"),
            (&["--entra-allowed-apps", "frontend"], "ENTRA_ALLOWED_APPS"),
            (&["--entra-allowed-objects", "x"], "ENTRA_ALLOWED_OBJECTS"),
            (
                &["--entra-authority", "http://login.example"],
                "ENTRA_AUTHORITY",
            ),
            (&["--entra-leeway-s", "301"], "ENTRA_LEEWAY_S"),
        ];
        for (extra, name) in cases {
            let error = entra(extra).entra_settings().unwrap_err();
            assert_eq!(error.name, *name, "{extra:?}: {error}");
        }
        let loopback = entra(&["--entra-authority", "http://127.0.0.1:5000/"]);
        assert_eq!(
            loopback.entra_settings().unwrap().keys_url().as_str(),
            format!("http://127.0.0.1:5000/{TENANT}/discovery/v2.0/keys")
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = BackendConfig::parse_from(["backend", "--api-keys", "s3cret-key"]);
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret-key"), "{shown}");
        assert_eq!(config.api_keys(), ["s3cret-key"]);
    }

    #[test]
    fn app_service_auth_reads_the_platform_flag() {
        let mut config = BackendConfig::parse_from(["backend"]);
        assert!(!config.app_service_auth());
        for (value, on) in [
            ("True", true),
            ("true", true),
            ("1", true),
            ("False", false),
            ("", false),
        ] {
            config.website_auth_enabled = Some(value.into());
            assert_eq!(config.app_service_auth(), on, "{value}");
        }
    }

    #[test]
    fn client_ip_source_defaults_to_the_platform_header_on_app_service() {
        let mut config = BackendConfig::parse_from(["backend"]);
        assert_eq!(config.client_ip_source(), ClientIpSource::Peer);
        config.host.site_name = Some("app-be".into());
        assert_eq!(config.client_ip_source(), ClientIpSource::XClientIp);
    }
}
