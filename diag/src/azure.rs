//! The catalogue of Azure services an app locks down behind private endpoints: for each, the
//! public host suffix its names end with, the `privatelink` zone(s) a private endpoint's record
//! lives in, its ports and how to prove each port answers (TLS, PostgreSQL's SSLRequest, or only
//! a connect). One table ([`SERVICES`]); `docs/azure-services.md` is generated from it
//! ([`catalogue_markdown`]) and a test keeps the two equal. Also what a lookup says about a
//! catalogued name ([`zone_check`]: through the right zone or not) and how a host is called
//! ([`called_by`]: an address or a `privatelink` name, which no certificate names).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::diagnosis::Code;
use crate::dns::Resolution;

/// How a port proves that the service answers, beyond a TCP connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TLS from the first byte: a handshake with the public name as SNI proves the certificate.
    Tls,
    /// PostgreSQL: `SSLRequest`, the server's `S`, then TLS, without logging in.
    Postgres,
    /// TLS starts inside the service's own protocol (SQL's TDS, MySQL, SMB): only the connect is
    /// proved.
    None,
}

impl Protocol {
    /// The `snake_case` name, as in the JSON and the `protocol=` parameter.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tls => "tls",
            Self::Postgres => "postgres",
            Self::None => "none",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "tls" => Ok(Self::Tls),
            "postgres" => Ok(Self::Postgres),
            "none" => Ok(Self::None),
            other => Err(format!("{other:?} is not one of tls, postgres, none")),
        }
    }
}

/// One port of a service and how to prove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServicePort {
    /// The TCP port.
    pub port: u16,
    /// How a check proves it.
    pub protocol: Protocol,
}

/// One catalogued service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AzureService {
    /// A stable key (`key_vault`).
    pub key: &'static str,
    /// The service's name as Azure's documentation writes it.
    pub name: &'static str,
    /// The public suffix its host names end with (`vault.azure.net`).
    pub suffix: &'static str,
    /// The private DNS zone(s) a private endpoint's A record lives in; the public name's CNAME
    /// goes through it.
    pub zones: &'static [&'static str],
    /// Its ports, the first the one a check uses by default.
    pub ports: &'static [ServicePort],
    /// What else a user must know (the ports of a policy, a second kind of name).
    pub note: &'static str,
}

impl AzureService {
    /// The default port (the first).
    pub fn default_port(&self) -> u16 {
        self.ports[0].port
    }

    /// How to prove `port` (`none` for a port the catalogue does not list).
    pub fn protocol_on(&self, port: u16) -> Protocol {
        self.ports
            .iter()
            .find(|p| p.port == port)
            .map_or(Protocol::None, |p| p.protocol)
    }
}

const fn tls(port: u16) -> ServicePort {
    ServicePort {
        port,
        protocol: Protocol::Tls,
    }
}

const fn postgres(port: u16) -> ServicePort {
    ServicePort {
        port,
        protocol: Protocol::Postgres,
    }
}

const fn connect(port: u16) -> ServicePort {
    ServicePort {
        port,
        protocol: Protocol::None,
    }
}

/// The catalogue. Zones as in Microsoft's "Azure Private Endpoint private DNS zone values";
/// ports as in each service's network documentation.
pub const SERVICES: &[AzureService] = &[
    AzureService {
        key: "app_service",
        name: "App Service",
        suffix: "azurewebsites.net",
        zones: &["privatelink.azurewebsites.net"],
        ports: &[tls(443)],
        note: "Unique default host names (`NAME-HASH.REGION.azurewebsites.net`) go through the same zone.",
    },
    AzureService {
        key: "app_service_scm",
        name: "App Service (SCM/Kudu site)",
        suffix: "scm.azurewebsites.net",
        zones: &["privatelink.azurewebsites.net"],
        ports: &[tls(443)],
        note: "The SCM site shares the app's private endpoint and zone (`NAME.scm.privatelink.azurewebsites.net`) and has its own access rules.",
    },
    AzureService {
        key: "sql_database",
        name: "Azure SQL Database",
        suffix: "database.windows.net",
        zones: &["privatelink.database.windows.net"],
        ports: &[connect(1433)],
        note: "TLS starts inside TDS, so a check proves the connect only. With the Redirect connection policy over a private endpoint, clients then connect to the node directly: allow 1433–65535 outbound.",
    },
    AzureService {
        key: "postgres_flexible",
        name: "Azure Database for PostgreSQL flexible server",
        suffix: "postgres.database.azure.com",
        zones: &["privatelink.postgres.database.azure.com"],
        ports: &[postgres(5432), postgres(6432)],
        note: "6432 is the built-in PgBouncer. A server with VNet integration (a delegated subnet, no private endpoint) uses a private zone of your own (`*.private.postgres.database.azure.com`) instead.",
    },
    AzureService {
        key: "mysql_flexible",
        name: "Azure Database for MySQL flexible server",
        suffix: "mysql.database.azure.com",
        zones: &["privatelink.mysql.database.azure.com"],
        ports: &[connect(3306)],
        note: "TLS starts inside MySQL's protocol, so a check proves the connect only.",
    },
    AzureService {
        key: "storage_blob",
        name: "Storage (blob)",
        suffix: "blob.core.windows.net",
        zones: &["privatelink.blob.core.windows.net"],
        ports: &[tls(443)],
        note: "Each storage sub-resource (blob, file, queue, table, dfs, web) needs its own private endpoint and zone.",
    },
    AzureService {
        key: "storage_file",
        name: "Storage (file)",
        suffix: "file.core.windows.net",
        zones: &["privatelink.file.core.windows.net"],
        ports: &[tls(443), connect(445)],
        note: "445 is SMB (mounts), 443 the REST API.",
    },
    AzureService {
        key: "storage_queue",
        name: "Storage (queue)",
        suffix: "queue.core.windows.net",
        zones: &["privatelink.queue.core.windows.net"],
        ports: &[tls(443)],
        note: "",
    },
    AzureService {
        key: "storage_table",
        name: "Storage (table)",
        suffix: "table.core.windows.net",
        zones: &["privatelink.table.core.windows.net"],
        ports: &[tls(443)],
        note: "",
    },
    AzureService {
        key: "storage_dfs",
        name: "Storage (Data Lake Gen2, dfs)",
        suffix: "dfs.core.windows.net",
        zones: &["privatelink.dfs.core.windows.net"],
        ports: &[tls(443)],
        note: "",
    },
    AzureService {
        key: "storage_web",
        name: "Storage (static website, web)",
        suffix: "web.core.windows.net",
        zones: &["privatelink.web.core.windows.net"],
        ports: &[tls(443)],
        note: "",
    },
    AzureService {
        key: "key_vault",
        name: "Key Vault",
        suffix: "vault.azure.net",
        zones: &["privatelink.vaultcore.azure.net"],
        ports: &[tls(443)],
        note: "The zone is `vaultcore`, not `vault`: a zone named `privatelink.vault.azure.net` is never asked.",
    },
    AzureService {
        key: "cosmos_db",
        name: "Cosmos DB (NoSQL)",
        suffix: "documents.azure.com",
        zones: &["privatelink.documents.azure.com"],
        ports: &[tls(443)],
        note: "Each region of the account has its own name (`ACCOUNT-REGION.documents.azure.com`) in the same zone.",
    },
    AzureService {
        key: "cosmos_db_mongo",
        name: "Cosmos DB (MongoDB)",
        suffix: "mongo.cosmos.azure.com",
        zones: &["privatelink.mongo.cosmos.azure.com"],
        ports: &[tls(10255)],
        note: "",
    },
    AzureService {
        key: "redis",
        name: "Azure Cache for Redis",
        suffix: "redis.cache.windows.net",
        zones: &["privatelink.redis.cache.windows.net"],
        ports: &[tls(6380)],
        note: "6379 (no TLS) is off by default.",
    },
    AzureService {
        key: "managed_redis",
        name: "Azure Managed Redis",
        suffix: "redis.azure.net",
        zones: &["privatelink.redis.azure.net"],
        ports: &[tls(10000)],
        note: "",
    },
    AzureService {
        key: "service_bus",
        name: "Service Bus / Event Hubs",
        suffix: "servicebus.windows.net",
        zones: &["privatelink.servicebus.windows.net"],
        ports: &[tls(5671), tls(443), tls(9093)],
        note: "5671 is AMQP over TLS, 443 AMQP over WebSockets and HTTPS, 9093 Event Hubs' Kafka endpoint.",
    },
    AzureService {
        key: "container_registry",
        name: "Container Registry",
        suffix: "azurecr.io",
        zones: &["privatelink.azurecr.io"],
        ports: &[tls(443)],
        note: "Pulls also go to the data endpoints (`NAME.REGION.data.azurecr.io`), in the same zone.",
    },
    AzureService {
        key: "cognitive_services",
        name: "Azure AI services (Cognitive Services)",
        suffix: "cognitiveservices.azure.com",
        zones: &["privatelink.cognitiveservices.azure.com"],
        ports: &[tls(443)],
        note: "",
    },
    AzureService {
        key: "openai",
        name: "Azure OpenAI",
        suffix: "openai.azure.com",
        zones: &["privatelink.openai.azure.com"],
        ports: &[tls(443)],
        note: "",
    },
];

/// A catalogued host: the service, and whether the host is its `privatelink` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceMatch {
    /// The service.
    pub service: &'static AzureService,
    /// True when the host is the record in the private zone (`kv.privatelink.vaultcore.azure.net`)
    /// rather than the public name.
    pub privatelink_name: bool,
}

/// True when `name` is `suffix` itself or ends with `.suffix` (labels compared whole, any case).
fn under(name: &str, suffix: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.len() > suffix.len()
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
        && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// `name` without its `privatelink` label, when it has one.
fn without_privatelink(name: &str) -> Option<String> {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    let at = labels
        .iter()
        .position(|l| l.eq_ignore_ascii_case("privatelink"))?;
    let mut rest = labels;
    rest.remove(at);
    Some(rest.join("."))
}

/// The service whose public suffix `name` ends with (the longest that matches).
fn by_public_name(name: &str) -> Option<&'static AzureService> {
    SERVICES
        .iter()
        .filter(|s| under(name, s.suffix))
        .max_by_key(|s| s.suffix.len())
}

/// The public name of a catalogued `privatelink` name: `kv.privatelink.vaultcore.azure.net` →
/// `kv.vault.azure.net` (the zone's suffix may differ from the public one; services sharing a
/// zone, such as an app and its SCM site, keep the labels that tell them apart), and the region
/// form `NAME.privatelink.REGION.azurewebsites.net` → `NAME.REGION.azurewebsites.net`. `None`
/// for any other name.
pub fn public_name_of(privatelink_name: &str) -> Option<String> {
    let name = privatelink_name.trim_end_matches('.');
    for service in SERVICES {
        if let Some(zone) = service.zones.iter().find(|z| under(name, z)) {
            let resource = &name[..name.len() - zone.len() - 1];
            return Some(format!(
                "{}.{}",
                resource.to_ascii_lowercase(),
                service.suffix
            ));
        }
    }
    let stripped = without_privatelink(name)?;
    let service = by_public_name(&stripped)?;
    // `NAME.privatelink.SUFFIX` where the catalogue names another zone is a wrong zone, not a
    // region form.
    let zone = zone_of(name)?;
    (zone != format!("privatelink.{}", service.suffix)).then(|| stripped.to_ascii_lowercase())
}

/// The service a host name belongs to, by its public suffix (the longest that matches) or its
/// `privatelink` zone. `None` for names the catalogue does not know and for addresses.
pub fn lookup(host: &str) -> Option<ServiceMatch> {
    if let Some(public) = public_name_of(host) {
        return by_public_name(&public).map(|service| ServiceMatch {
            service,
            privatelink_name: true,
        });
    }
    by_public_name(host).map(|service| ServiceMatch {
        service,
        privatelink_name: false,
    })
}

/// The service whose key is `key`.
pub fn by_key(key: &str) -> Option<&'static AzureService> {
    SERVICES.iter().find(|s| s.key == key)
}

/// `service` in a resolve report: the catalogued service of the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// The catalogue's key (`key_vault`).
    pub key: String,
    /// The service's name.
    pub name: String,
    /// Its `privatelink` zone(s).
    pub zones: Vec<String>,
    /// Its ports.
    pub ports: Vec<u16>,
}

impl From<&AzureService> for ServiceView {
    fn from(s: &AzureService) -> Self {
        Self {
            key: s.key.to_owned(),
            name: s.name.to_owned(),
            zones: s.zones.iter().map(|z| (*z).to_owned()).collect(),
            ports: s.ports.iter().map(|p| p.port).collect(),
        }
    }
}

/// Whether a catalogued name's answer came through its `privatelink` zone (`zone.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneStatus {
    /// Through the service's zone to private addresses only: a private endpoint, reached.
    Private,
    /// Through the service's zone's name, yet to a public address: the zone is not linked to the
    /// VNet the lookup went through (or has no record), so public DNS answered.
    NotLinked,
    /// No `privatelink` name in the chain: the service has no private endpoint, or DNS here
    /// answers from a zone of its own.
    Missing,
    /// Through another service's `privatelink` zone.
    WrongZone,
    /// The lookup failed (see `error`): often a linked zone without the endpoint's record.
    Failed,
}

/// `zone` in a resolve report of a catalogued name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneCheck {
    /// The zone(s) the answer must come through.
    pub expected: Vec<String>,
    /// The `privatelink` zone the chain went through (from its `privatelink` label on), if any.
    pub seen: Option<String>,
    /// The verdict.
    pub status: ZoneStatus,
    /// The diagnosis when the status is not `private` and not `failed`.
    pub code: Option<Code>,
}

impl ZoneCheck {
    /// True when the answer came through the right zone to private addresses.
    pub fn is_private(&self) -> bool {
        self.status == ZoneStatus::Private
    }

    /// One sentence: what was seen and the zone to link.
    pub fn explain(&self, host: &str) -> String {
        let expected = self.expected.join(" or ");
        match self.status {
            ZoneStatus::Private => {
                format!("{host} resolved through {expected} to a private address")
            }
            ZoneStatus::NotLinked => format!(
                "{host} goes through {expected} but resolved to a public address: link {expected} (with the private endpoint's A record, through its zone group) to the VNet this app resolves through"
            ),
            ZoneStatus::Missing => format!(
                "{host} resolved through no privatelink zone: give the service a private endpoint with a DNS zone group in {expected}, and link {expected} to the VNet"
            ),
            ZoneStatus::WrongZone => format!(
                "{host} resolved through {} instead of {expected}: the record belongs in {expected}; link that zone to the VNet",
                self.seen.as_deref().unwrap_or("another zone")
            ),
            ZoneStatus::Failed => format!(
                "{host} did not resolve: if {expected} is linked, its record for the endpoint may be missing (re-create the zone group)"
            ),
        }
    }
}

/// The zone of a `privatelink` name: from its `privatelink` label on.
fn zone_of(name: &str) -> Option<String> {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    let at = labels
        .iter()
        .position(|l| l.eq_ignore_ascii_case("privatelink"))?;
    Some(labels[at..].join(".").to_ascii_lowercase())
}

/// Whether `resolution`'s answer came through the `privatelink` zone of the service its name
/// belongs to. `None` when the name is not catalogued (or is an address).
pub fn zone_check(resolution: &Resolution) -> Option<ZoneCheck> {
    let found = lookup(&resolution.query.host)?;
    let service = found.service;
    let names = std::iter::once(resolution.query.name.as_str())
        .chain(resolution.chain.iter().map(|hop| hop.target.as_str()));
    let mut seen_name = None;
    for name in names {
        if zone_of(name).is_some() {
            seen_name = Some(name.to_owned());
            break;
        }
    }
    let seen = seen_name.as_deref().and_then(zone_of);
    let right = seen_name.as_deref().is_some_and(|name| {
        lookup(name).is_some_and(|m| m.privatelink_name && m.service.zones == service.zones)
    });
    let status = if !resolution.ok {
        ZoneStatus::Failed
    } else if seen.is_none() {
        ZoneStatus::Missing
    } else if !right {
        ZoneStatus::WrongZone
    } else if resolution.addresses.is_empty()
        || resolution.addresses.iter().any(|a| !a.class.is_private())
    {
        ZoneStatus::NotLinked
    } else {
        ZoneStatus::Private
    };
    let code = match status {
        ZoneStatus::NotLinked => Some(Code::PrivatelinkZoneNotLinked),
        ZoneStatus::Missing => Some(Code::PrivatelinkZoneMissing),
        ZoneStatus::WrongZone => Some(Code::WrongPrivatelinkZone),
        ZoneStatus::Private | ZoneStatus::Failed => None,
    };
    Some(ZoneCheck {
        expected: service.zones.iter().map(|z| (*z).to_owned()).collect(),
        seen,
        status,
        code,
    })
}

/// How a TLS service is called when the name is one no certificate carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum CalledBy {
    /// An IP address.
    Address {
        /// The address.
        ip: IpAddr,
    },
    /// The service's record in its private zone.
    PrivatelinkName {
        /// The public name to call instead, when the catalogue knows the service.
        public_name: Option<String>,
    },
}

impl CalledBy {
    /// Why this fails and what to write instead.
    pub fn explain(&self, host: &str) -> String {
        match self {
            Self::Address { .. } => format!(
                "{host} is an address: no certificate of an Azure service names it, so TLS verification fails (and Azure SQL refuses the login). Call the service by its public name, which resolves to the private endpoint through the privatelink zone"
            ),
            Self::PrivatelinkName {
                public_name: Some(public),
            } => format!(
                "{host} is the privatelink name: the service's certificate does not carry it, so TLS verification fails (and Azure SQL refuses the login). Call {public}: it resolves to the same private endpoint through the zone"
            ),
            Self::PrivatelinkName { public_name: None } => format!(
                "{host} is a privatelink name: certificates do not carry it, so TLS verification fails. Call the service's public name, which resolves to the same private endpoint through the zone"
            ),
        }
    }
}

/// Whether `host` (a URL's host, a check's target) is a name the service's certificate cannot
/// carry: an IP literal or a `*.privatelink.*` name. The public name is given for a catalogued
/// privatelink name. Pure, for every caller (`/diag/tls`, smoke checks, `BACKEND_URL`,
/// `DATABASE_URL`).
pub fn called_by(host: &str) -> Option<CalledBy> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(CalledBy::Address { ip });
    }
    zone_of(bare)?;
    let public_name = public_name_of(bare);
    Some(CalledBy::PrivatelinkName { public_name })
}

/// `docs/azure-services.md`'s table, generated from [`SERVICES`].
pub fn catalogue_markdown() -> String {
    let mut out = String::from(
        "| service | host suffix | privatelink zone | ports (how proved) | note |\n|---|---|---|---|---|\n",
    );
    for s in SERVICES {
        let zones: Vec<String> = s.zones.iter().map(|z| format!("`{z}`")).collect();
        let ports: Vec<String> = s
            .ports
            .iter()
            .map(|p| format!("{} ({})", p.port, p.protocol.as_str()))
            .collect();
        out.push_str(&format!(
            "| {} (`{}`) | `{}` | {} | {} | {} |\n",
            s.name,
            s.key,
            s.suffix,
            zones.join(", "),
            ports.join(", "),
            s.note
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{ChainHop, ResolveQuery, ResolvedAddress, ResolverInfo, ResolverSource};
    use hosting::AddressClass;

    /// Every service by a public name and by its privatelink name.
    #[test]
    fn every_service_is_found_by_its_public_and_its_privatelink_name() {
        let cases: &[(&str, &str, &str, u16, Protocol)] = &[
            (
                "app-be.azurewebsites.net",
                "app_service",
                "privatelink.azurewebsites.net",
                443,
                Protocol::Tls,
            ),
            (
                "app-be.scm.azurewebsites.net",
                "app_service_scm",
                "privatelink.azurewebsites.net",
                443,
                Protocol::Tls,
            ),
            (
                "sql-x.database.windows.net",
                "sql_database",
                "privatelink.database.windows.net",
                1433,
                Protocol::None,
            ),
            (
                "pg-x.postgres.database.azure.com",
                "postgres_flexible",
                "privatelink.postgres.database.azure.com",
                5432,
                Protocol::Postgres,
            ),
            (
                "my-x.mysql.database.azure.com",
                "mysql_flexible",
                "privatelink.mysql.database.azure.com",
                3306,
                Protocol::None,
            ),
            (
                "st.blob.core.windows.net",
                "storage_blob",
                "privatelink.blob.core.windows.net",
                443,
                Protocol::Tls,
            ),
            (
                "st.file.core.windows.net",
                "storage_file",
                "privatelink.file.core.windows.net",
                443,
                Protocol::Tls,
            ),
            (
                "st.queue.core.windows.net",
                "storage_queue",
                "privatelink.queue.core.windows.net",
                443,
                Protocol::Tls,
            ),
            (
                "st.table.core.windows.net",
                "storage_table",
                "privatelink.table.core.windows.net",
                443,
                Protocol::Tls,
            ),
            (
                "st.dfs.core.windows.net",
                "storage_dfs",
                "privatelink.dfs.core.windows.net",
                443,
                Protocol::Tls,
            ),
            (
                "st.z6.web.core.windows.net",
                "storage_web",
                "privatelink.web.core.windows.net",
                443,
                Protocol::Tls,
            ),
            (
                "kv-x.vault.azure.net",
                "key_vault",
                "privatelink.vaultcore.azure.net",
                443,
                Protocol::Tls,
            ),
            (
                "cosmos-x.documents.azure.com",
                "cosmos_db",
                "privatelink.documents.azure.com",
                443,
                Protocol::Tls,
            ),
            (
                "cosmos-x.mongo.cosmos.azure.com",
                "cosmos_db_mongo",
                "privatelink.mongo.cosmos.azure.com",
                10255,
                Protocol::Tls,
            ),
            (
                "redis-x.redis.cache.windows.net",
                "redis",
                "privatelink.redis.cache.windows.net",
                6380,
                Protocol::Tls,
            ),
            (
                "redis-x.westeurope.redis.azure.net",
                "managed_redis",
                "privatelink.redis.azure.net",
                10000,
                Protocol::Tls,
            ),
            (
                "sb-x.servicebus.windows.net",
                "service_bus",
                "privatelink.servicebus.windows.net",
                5671,
                Protocol::Tls,
            ),
            (
                "crx.azurecr.io",
                "container_registry",
                "privatelink.azurecr.io",
                443,
                Protocol::Tls,
            ),
            (
                "ai-x.cognitiveservices.azure.com",
                "cognitive_services",
                "privatelink.cognitiveservices.azure.com",
                443,
                Protocol::Tls,
            ),
            (
                "oai-x.openai.azure.com",
                "openai",
                "privatelink.openai.azure.com",
                443,
                Protocol::Tls,
            ),
        ];
        assert_eq!(cases.len(), SERVICES.len(), "a case for every service");
        for &(host, key, zone, port, protocol) in cases {
            let found = lookup(host).unwrap_or_else(|| panic!("{host} not found"));
            assert_eq!(found.service.key, key, "{host}");
            assert!(!found.privatelink_name, "{host}");
            assert_eq!(found.service.zones, [zone], "{host}");
            assert_eq!(found.service.default_port(), port, "{host}");
            assert_eq!(found.service.protocol_on(port), protocol, "{host}");
            assert_eq!(by_key(key), Some(found.service));
            // Any case, a trailing dot.
            assert_eq!(
                lookup(&format!("{}.", host.to_ascii_uppercase())).map(|m| m.service.key),
                Some(key)
            );
            let resource = host.split('.').next().unwrap();
            let private = format!("{resource}.{zone}");
            let found = lookup(&private).unwrap_or_else(|| panic!("{private} not found"));
            assert!(found.privatelink_name, "{private}");
            assert_eq!(found.service.zones, [zone], "{private}");
        }
    }

    #[test]
    fn ports_and_names_not_in_the_catalogue() {
        let pg = by_key("postgres_flexible").unwrap();
        assert_eq!(pg.protocol_on(6432), Protocol::Postgres);
        assert_eq!(pg.protocol_on(443), Protocol::None);
        let bus = by_key("service_bus").unwrap();
        assert_eq!(
            bus.ports.iter().map(|p| p.port).collect::<Vec<_>>(),
            [5671, 443, 9093]
        );
        assert_eq!(
            by_key("storage_file").unwrap().protocol_on(445),
            Protocol::None
        );
        for host in [
            "example.com",
            "vault.azure.net",
            "kv.vault.azure.net.example.com",
            "xvault.azure.net",
            "10.0.0.4",
            "",
        ] {
            assert_eq!(lookup(host), None, "{host:?}");
        }
        // The region form of an App Service privatelink name.
        let m = lookup("app-be-c4bq.privatelink.westeurope-01.azurewebsites.net").unwrap();
        assert_eq!((m.service.key, m.privatelink_name), ("app_service", true));
        assert_eq!("postgres".parse::<Protocol>(), Ok(Protocol::Postgres));
        assert!("smtp".parse::<Protocol>().is_err());
    }

    fn resolution(host: &str, chain: &[&str], ips: &[&str], ok: bool) -> Resolution {
        let mut previous = host.to_owned();
        let chain = chain
            .iter()
            .map(|target| {
                let hop = ChainHop {
                    name: previous.clone(),
                    ttl: 60,
                    target: (*target).to_owned(),
                };
                previous = (*target).to_owned();
                hop
            })
            .collect();
        Resolution {
            query: ResolveQuery {
                host: host.to_owned(),
                record_type: "A".into(),
                name: host.to_owned(),
            },
            resolver: ResolverInfo {
                servers: vec![],
                source: ResolverSource::DnsServers,
            },
            ok,
            rcode: None,
            error: None,
            chain,
            canonical_name: None,
            addresses: ips
                .iter()
                .map(|ip| {
                    let ip: IpAddr = ip.parse().unwrap();
                    ResolvedAddress {
                        ip,
                        ttl: 60,
                        class: AddressClass::of(ip),
                    }
                })
                .collect(),
            records: vec![],
            privatelink: false,
            service: None,
            zone: None,
            duration_ms: 1.0,
        }
    }

    #[test]
    fn the_zone_check_tells_each_way_a_name_resolves() {
        let kv = "kv-x.vault.azure.net";
        let right = "kv-x.privatelink.vaultcore.azure.net";
        /// The chain, the addresses, whether it resolved, and the verdict.
        type Case<'a> = (&'a [&'a str], &'a [&'a str], bool, ZoneStatus, Option<Code>);
        let cases: &[Case<'_>] = &[
            (&[right], &["10.20.3.4"], true, ZoneStatus::Private, None),
            (
                &[right, "azkms-prod-weu.westeurope.cloudapp.azure.com"],
                &["20.1.2.3"],
                true,
                ZoneStatus::NotLinked,
                Some(Code::PrivatelinkZoneNotLinked),
            ),
            (
                &["azkms-prod-weu.westeurope.cloudapp.azure.com"],
                &["20.1.2.3"],
                true,
                ZoneStatus::Missing,
                Some(Code::PrivatelinkZoneMissing),
            ),
            (
                &["kv-x.privatelink.vault.azure.net"],
                &["10.20.3.4"],
                true,
                ZoneStatus::WrongZone,
                Some(Code::WrongPrivatelinkZone),
            ),
            (&[right], &[], false, ZoneStatus::Failed, None),
        ];
        for (chain, ips, ok, status, code) in cases {
            let check = zone_check(&resolution(kv, chain, ips, *ok)).unwrap();
            assert_eq!((check.status, check.code), (*status, *code), "{chain:?}");
            assert_eq!(check.expected, ["privatelink.vaultcore.azure.net"]);
            assert!(
                check
                    .explain(kv)
                    .contains("privatelink.vaultcore.azure.net")
            );
        }
        let wrong = zone_check(&resolution(
            kv,
            &["kv-x.privatelink.vault.azure.net"],
            &["10.0.0.1"],
            true,
        ))
        .unwrap();
        assert_eq!(wrong.seen.as_deref(), Some("privatelink.vault.azure.net"));
        // Asked by its privatelink name: that is the right zone.
        assert!(
            zone_check(&resolution(right, &[], &["10.20.3.4"], true))
                .unwrap()
                .is_private()
        );
        // Not catalogued: nothing to say.
        assert_eq!(
            zone_check(&resolution("pg.lockdown.test", &[], &["127.0.0.1"], true)),
            None
        );
    }

    #[test]
    fn addresses_and_privatelink_names_are_called_out() {
        assert_eq!(
            called_by("10.20.3.4"),
            Some(CalledBy::Address {
                ip: "10.20.3.4".parse().unwrap()
            })
        );
        assert!(matches!(
            called_by("[fd00::4]"),
            Some(CalledBy::Address { .. })
        ));
        let cases = [
            (
                "kv-x.privatelink.vaultcore.azure.net",
                Some("kv-x.vault.azure.net"),
            ),
            (
                "pg-x.privatelink.postgres.database.azure.com",
                Some("pg-x.postgres.database.azure.com"),
            ),
            (
                "app-be.privatelink.azurewebsites.net",
                Some("app-be.azurewebsites.net"),
            ),
            ("x.privatelink.example.internal", None),
        ];
        for (host, public) in cases {
            assert_eq!(
                called_by(host),
                Some(CalledBy::PrivatelinkName {
                    public_name: public.map(str::to_owned)
                }),
                "{host}"
            );
            let explained = called_by(host).unwrap().explain(host);
            assert!(explained.contains(host), "{explained}");
            if let Some(public) = public {
                assert!(explained.contains(public), "{explained}");
            }
        }
        for fine in [
            "kv-x.vault.azure.net",
            "app-be.azurewebsites.net",
            "pg.lockdown.test",
            "app-privatelink.example.com",
        ] {
            assert_eq!(called_by(fine), None, "{fine}");
        }
    }

    /// `docs/azure-services.md` is this table: `UPDATE_GOLDEN=1` rewrites it.
    #[test]
    fn the_docs_table_is_generated_from_the_catalogue() {
        const START: &str = "<!-- azure services: generated from diag/src/azure.rs -->\n";
        const END: &str = "<!-- end of azure services -->";
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/azure-services.md");
        let docs = std::fs::read_to_string(&path).unwrap();
        let start = docs.find(START).expect("the start marker") + START.len();
        let end = docs.find(END).expect("the end marker");
        let generated = catalogue_markdown();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let updated = format!("{}{generated}{}", &docs[..start], &docs[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        assert!(
            docs[start..end] == generated,
            "docs/azure-services.md differs from diag::azure (UPDATE_GOLDEN=1 cargo test -p diag --lib azure rewrites it)"
        );
    }
}
