//! The one DNS resolver of a lockdown app: built once from `DNS_SERVERS`, else
//! `WEBSITE_DNS_SERVER` + `WEBSITE_DNS_ALT_SERVER`, else the system configuration, with no cache,
//! so every lookup is real. `/diag/resolve` uses it for the diagnostic lookup (the whole CNAME
//! chain, per-hop TTLs, the exact failure), and outbound connects use it through
//! [`DnsResolver::lookup_ip`], so the probe tells the truth about what the app does.
//!
//! The diagnostic lookup sends one query per CNAME hop itself (over UDP, retried over TCP when
//! the answer is truncated) instead of relying on the resolver's CNAME following, because that
//! folds TTLs together, hides the chain of a failed lookup, and cannot tell a CNAME loop from
//! NODATA. Names are looked up as given (absolute): search domains apply to
//! [`DnsResolver::lookup_ip`] only, as they do for the app's own connects.
//!
//! # Layout
//!
//! - `settings`: where the servers come from (`DnsArgs`, `ResolverInfo`).
//! - `query`: what a request asks (`QueryType`, `ResolveRequest`).
//! - `report`: what a lookup found (`Resolution`, `DnsErrorKind`, the nameresolver text).
//! - `walk`: the CNAME walk, one query per hop.
//! - this file: the resolver itself (`DnsResolver`).

mod query;
mod report;
mod settings;
mod walk;

pub use query::*;
pub use report::*;
pub use settings::*;
use walk::*;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_resolver::config::{LookupIpStrategy, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer};
use hickory_resolver::proto::op::{DnsRequestOptions, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, Resolver, TlsConfig};

use crate::target::{Host, InputError, parse_host, truncate};

/// Default per-lookup DNS timeout (Windows App Service waits 3 s per server).
pub const DEFAULT_DNS_TIMEOUT_MS: u64 = 3_000;
/// How many lookup timeouts a name's addresses may take (A and AAAA): see
/// [`DnsResolver::lookup_ip_limit`].
pub const LOOKUP_IP_TIMEOUTS: u32 = 2;
/// Longest per-lookup DNS timeout a setting may ask for.
pub const MAX_DNS_TIMEOUT_MS: u64 = 30_000;
/// Most queries one diagnostic lookup sends while following a CNAME chain.
const MAX_CHAIN_QUERIES: usize = 16;

struct Inner {
    /// For connects: search domains, A and AAAA, no cache.
    resolver: Resolver<TokioRuntimeProvider>,
    /// For diagnostics: one query at a time, the raw answer.
    pool: NameServerPool<TokioRuntimeProvider>,
    request_options: DnsRequestOptions,
    info: ResolverInfo,
    timeout: Duration,
    /// Resolvers for server lists named by requests (`server=`), built once per list: building
    /// one (a hickory `Resolver`, its pool and options) costs more than the lookup itself. They
    /// cache no answers, so every lookup is still real.
    query_resolvers: Mutex<HashMap<Vec<SocketAddr>, DnsResolver>>,
}

/// Most server lists [`DnsResolver::with_query_servers`] keeps built; beyond it, it starts over.
const MAX_QUERY_RESOLVERS: usize = 64;

/// The app's resolver: cheap to clone (an `Arc` inside), no cache.
#[derive(Clone)]
pub struct DnsResolver {
    inner: Arc<Inner>,
}

impl fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsResolver")
            .field("info", &self.inner.info)
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

impl DnsResolver {
    /// Builds the resolver from the environment's settings: `DNS_SERVERS`, else
    /// `WEBSITE_DNS_SERVER` (+ `WEBSITE_DNS_ALT_SERVER`), else /etc/resolv.conf.
    pub fn from_args(args: &DnsArgs) -> Result<Self, DnsConfigError> {
        let timeout = Duration::from_millis(if args.dns_timeout_ms == 0 {
            DEFAULT_DNS_TIMEOUT_MS
        } else {
            args.dns_timeout_ms
        });
        let present = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        if let Some(list) = present(&args.dns_servers) {
            let servers = parse_server_list("DNS_SERVERS", &list)?;
            return Self::build(servers, ResolverSource::DnsServers, timeout, None);
        }
        if let Some(primary) = present(&args.website_dns_server) {
            let mut servers = parse_server_list("WEBSITE_DNS_SERVER", &primary)?;
            if let Some(alt) = present(&args.website_dns_alt_server) {
                servers.extend(parse_server_list("WEBSITE_DNS_ALT_SERVER", &alt)?);
            }
            return Self::build(servers, ResolverSource::WebsiteDnsServer, timeout, None);
        }
        let (config, system_opts) = hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| DnsConfigError::System(e.to_string()))?;
        let servers = config
            .name_servers()
            .iter()
            .map(|ns| {
                let port = ns.connections.first().map_or(53, |c| c.port);
                SocketAddr::new(ns.ip, port)
            })
            .collect();
        Self::build(
            servers,
            ResolverSource::System,
            timeout,
            Some((config, system_opts)),
        )
    }

    /// A resolver that asks exactly these servers (reported as `DNS_SERVERS`); for tests and the lab.
    pub fn with_servers(
        servers: Vec<SocketAddr>,
        timeout: Duration,
    ) -> Result<Self, DnsConfigError> {
        Self::build(servers, ResolverSource::DnsServers, timeout, None)
    }

    /// The same resolver settings, asking `servers` named by a request (`server=`, source `query`).
    pub fn with_query_servers(&self, servers: Vec<SocketAddr>) -> Result<Self, DnsConfigError> {
        let mut built = self
            .inner
            .query_resolvers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(resolver) = built.get(&servers) {
            return Ok(resolver.clone());
        }
        let resolver = Self::build(
            servers.clone(),
            ResolverSource::Query,
            self.inner.timeout,
            None,
        )?;
        if built.len() >= MAX_QUERY_RESOLVERS {
            built.clear();
        }
        built.insert(servers, resolver.clone());
        Ok(resolver)
    }

    fn build(
        servers: Vec<SocketAddr>,
        source: ResolverSource,
        timeout: Duration,
        system: Option<(ResolverConfig, ResolverOpts)>,
    ) -> Result<Self, DnsConfigError> {
        if servers.is_empty() {
            return Err(DnsConfigError::NoServers(match source {
                ResolverSource::System => "/etc/resolv.conf lists no nameserver",
                _ => "empty server list",
            }));
        }
        let (config, mut opts) = match system {
            Some((config, system_opts)) => {
                let mut opts = ResolverOpts::default();
                opts.ndots = system_opts.ndots;
                (config, opts)
            }
            None => (
                ResolverConfig::from_name_servers(servers.iter().map(name_server).collect()),
                ResolverOpts::default(),
            ),
        };
        opts.cache_size = 0;
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.edns0 = true;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        // DNS only, for connects as for diagnostics: what /diag/resolve shows is what connects use.
        opts.use_hosts_file = ResolveHosts::Never;
        opts.preserve_intermediates = true;

        let mut request_options = DnsRequestOptions::default();
        request_options.recursion_desired = opts.recursion_desired;
        request_options.use_edns = opts.edns0;
        request_options.edns_payload_len = opts.edns_payload_len;
        request_options.case_randomization = opts.case_randomization;

        let tls = TlsConfig::new().map_err(|e| DnsConfigError::Build(e.to_string()))?;
        let context = Arc::new(PoolContext::new(opts.clone(), tls));
        let pool = NameServerPool::from_config(
            config.name_servers().to_vec(),
            context,
            TokioRuntimeProvider::default(),
        );
        let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| DnsConfigError::Build(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                resolver,
                pool,
                request_options,
                info: ResolverInfo { servers, source },
                timeout,
                query_resolvers: Mutex::default(),
            }),
        })
    }

    /// The servers and their source.
    pub fn settings(&self) -> ResolverInfo {
        self.inner.info.clone()
    }

    /// The per-lookup timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The longest [`Self::lookup_ip`] takes for a name (A and AAAA, each within the timeout).
    pub fn lookup_ip_limit(&self) -> Duration {
        self.inner.timeout * LOOKUP_IP_TIMEOUTS
    }

    /// The diagnostic lookup: the whole CNAME chain with each hop's TTL, the addresses with their
    /// class, the exact failure. Never panics on bad input: an invalid host comes back as an
    /// `invalid_input` failure.
    pub async fn resolve(&self, host: &str, record_type: QueryType) -> Resolution {
        let started = Instant::now();
        let record_type_name = record_type.as_str().to_owned();
        let request = match ResolveRequest::parse(host, Some(&record_type_name)) {
            Ok(request) => request,
            Err(error) => {
                return self.failed_input(host, record_type, error, started);
            }
        };
        self.resolve_request(&request).await
    }

    /// [`DnsResolver::resolve`] for an already validated request.
    pub async fn resolve_request(&self, request: &ResolveRequest) -> Resolution {
        let started = Instant::now();
        let query_type = request.query_type;
        let (host_text, name) = match (&request.host, query_type) {
            (Host::Ip(ip), QueryType::Ptr) => (ip.to_string(), Name::from(*ip)),
            (Host::Ip(ip), _) => {
                // An address needs no lookup for A/AAAA; other types of an address are not names.
                return self.literal(*ip, query_type, started);
            }
            (Host::Name(name), _) => match Name::from_ascii(format!("{name}.")) {
                Ok(fqdn) => (name.clone(), fqdn),
                Err(e) => {
                    return self.failed_input(
                        name,
                        query_type,
                        InputError::InvalidHost(format!("{name} ({e})")),
                        started,
                    );
                }
            },
        };
        let outcome = match query_type {
            QueryType::Addresses => {
                let (v4, v6) = tokio::join!(
                    self.query_chain(name.clone(), RecordType::A),
                    self.query_chain(name.clone(), RecordType::AAAA)
                );
                merge_dual(v4, v6)
            }
            other => self.query_chain(name.clone(), other.record_type()).await,
        };
        self.assemble(host_text, query_type, &name, outcome, started)
    }

    fn assemble(
        &self,
        host: String,
        query_type: QueryType,
        name: &Name,
        outcome: ChainOutcome,
        started: Instant,
    ) -> Resolution {
        let mut addresses = Vec::new();
        let mut records = Vec::new();
        for record in &outcome.answers {
            match &record.data {
                RData::A(a) => addresses.push(address(IpAddr::V4(a.0), record.ttl)),
                RData::AAAA(aaaa) => addresses.push(address(IpAddr::V6(aaaa.0), record.ttl)),
                RData::CNAME(_) => {}
                data => records.push(DnsRecord {
                    name: display_name(&record.name),
                    record_type: record.record_type().to_string(),
                    ttl: record.ttl,
                    data: match data {
                        RData::PTR(ptr) => display_name(&ptr.0),
                        other => trim_dot(&other.to_string()).to_owned(),
                    },
                }),
            }
        }
        let query_name = display_name(name);
        let privatelink = std::iter::once(query_name.as_str())
            .chain(
                outcome
                    .chain
                    .iter()
                    .flat_map(|hop| [hop.name.as_str(), hop.target.as_str()]),
            )
            .any(is_privatelink);
        let ok = outcome.error.is_none();
        let mut resolution = Resolution {
            query: ResolveQuery {
                host,
                record_type: query_type.as_str().to_owned(),
                name: query_name,
            },
            resolver: self.settings(),
            ok,
            rcode: outcome.rcode.map(rcode_name),
            error: outcome.error,
            canonical_name: Some(
                outcome
                    .canonical
                    .map_or_else(|| display_name(name), |canonical| display_name(&canonical)),
            ),
            chain: outcome.chain,
            addresses,
            records,
            privatelink,
            service: None,
            zone: None,
            duration_ms: elapsed_ms(started),
        };
        if query_type != QueryType::Ptr {
            resolution.service =
                crate::azure::lookup(&resolution.query.host).map(|m| m.service.into());
            if matches!(
                query_type,
                QueryType::Addresses | QueryType::A | QueryType::Aaaa
            ) {
                resolution.zone = crate::azure::zone_check(&resolution);
            }
        }
        resolution
    }

    fn literal(&self, ip: IpAddr, query_type: QueryType, started: Instant) -> Resolution {
        let matches = match query_type {
            QueryType::A => ip.is_ipv4(),
            QueryType::Aaaa => ip.is_ipv6(),
            _ => false,
        };
        let error = (!matches).then(|| LookupFailure {
            kind: DnsErrorKind::InvalidInput,
            message: format!("{ip} is an address; a {query_type} lookup needs a host name"),
        });
        Resolution {
            query: ResolveQuery {
                host: ip.to_string(),
                record_type: query_type.as_str().to_owned(),
                name: ip.to_string(),
            },
            resolver: self.settings(),
            ok: matches,
            rcode: None,
            error,
            chain: Vec::new(),
            canonical_name: Some(ip.to_string()),
            addresses: if matches {
                vec![address(ip, 0)]
            } else {
                Vec::new()
            },
            records: Vec::new(),
            privatelink: false,
            service: None,
            zone: None,
            duration_ms: elapsed_ms(started),
        }
    }

    fn failed_input(
        &self,
        host: &str,
        query_type: QueryType,
        error: InputError,
        started: Instant,
    ) -> Resolution {
        Resolution {
            query: ResolveQuery {
                host: truncate(host),
                record_type: query_type.as_str().to_owned(),
                name: truncate(host),
            },
            resolver: self.settings(),
            ok: false,
            rcode: None,
            error: Some(LookupFailure {
                kind: DnsErrorKind::InvalidInput,
                message: error.to_string(),
            }),
            chain: Vec::new(),
            canonical_name: None,
            addresses: Vec::new(),
            records: Vec::new(),
            privatelink: false,
            service: None,
            zone: None,
            duration_ms: elapsed_ms(started),
        }
    }

    /// Follows the CNAME chain of `name` for `record_type`, one query per hop.
    async fn query_chain(&self, name: Name, record_type: RecordType) -> ChainOutcome {
        let mut outcome = ChainOutcome::default();
        let mut current = name;
        let mut seen = HashSet::from([current.to_lowercase()]);
        // The whole chain, however long, ends within three lookup timeouts.
        let deadline = Instant::now() + self.inner.timeout * 3;
        for _ in 0..MAX_CHAIN_QUERIES {
            let query = Query::query(current.clone(), record_type);
            let lookup = self
                .inner
                .pool
                .lookup(query, self.inner.request_options)
                .first_answer();
            // The pool enforces the per-query timeout itself; this bounds the chain as a whole.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let response = match tokio::time::timeout(remaining, lookup).await {
                Ok(result) => result,
                Err(_) => Err(NetError::Timeout),
            };
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    outcome.fail_with(&current, error, self.inner.timeout);
                    return outcome;
                }
            };
            outcome.rcode = Some(response.response_code);
            let hops_before = outcome.chain.len();
            // Walk the CNAMEs this answer carries, in chain order.
            while let Some(record) = response
                .answers
                .iter()
                .find(|r| r.name == current && r.record_type() == RecordType::CNAME)
            {
                let RData::CNAME(target) = &record.data else {
                    break;
                };
                let target = target.0.clone();
                outcome.chain.push(ChainHop {
                    name: display_name(&current),
                    ttl: record.ttl,
                    target: display_name(&target),
                });
                outcome.canonical = Some(target.clone());
                if record_type == RecordType::CNAME {
                    outcome.answers.push(record.clone());
                    return outcome;
                }
                if !seen.insert(target.to_lowercase()) {
                    outcome.error = Some(LookupFailure {
                        kind: DnsErrorKind::CnameLoop,
                        message: format!("the CNAME chain loops back to {}", display_name(&target)),
                    });
                    return outcome;
                }
                current = target;
            }
            let answers: Vec<Record> = response
                .answers
                .iter()
                .filter(|r| r.name == current && r.record_type() == record_type)
                .cloned()
                .collect();
            if !answers.is_empty() {
                outcome.canonical = Some(current);
                outcome.answers = answers;
                return outcome;
            }
            let followed_here = outcome.chain.len() > hops_before;
            if followed_here && response.response_code == ResponseCode::NoError {
                // The server gave the alias but not the target's records: ask for the target.
                continue;
            }
            outcome.canonical = Some(current.clone());
            let kind = if response.response_code == ResponseCode::NXDomain {
                DnsErrorKind::Nxdomain
            } else {
                DnsErrorKind::Nodata
            };
            outcome.error = Some(failure_for(kind, &current, record_type));
            return outcome;
        }
        outcome.error = Some(LookupFailure {
            kind: DnsErrorKind::CnameLoop,
            message: format!("the CNAME chain is longer than {MAX_CHAIN_QUERIES} hops"),
        });
        outcome
    }

    /// The addresses of `host` for a connect: an IP literal (in any spelling) as-is, a name through
    /// this resolver (search domains apply; A and AAAA; IPv4 first).
    pub async fn lookup_ip(&self, host: &str) -> Result<Vec<IpAddr>, LookupFailure> {
        let name = match parse_host(host) {
            Ok(Host::Ip(ip)) => return Ok(vec![ip]),
            Ok(Host::Name(name)) => name,
            Err(error) => {
                return Err(LookupFailure {
                    kind: DnsErrorKind::InvalidInput,
                    message: error.to_string(),
                });
            }
        };
        let lookup = self.inner.resolver.lookup_ip(name.as_str());
        let result = match tokio::time::timeout(self.lookup_ip_limit(), lookup).await {
            Ok(result) => result,
            Err(_) => Err(NetError::Timeout),
        };
        match result {
            Ok(lookup) => {
                let mut ips: Vec<IpAddr> = lookup.iter().map(crate::target::normalize_ip).collect();
                ips.sort_by_key(|ip| ip.is_ipv6());
                ips.dedup();
                if ips.is_empty() {
                    Err(failure_for(
                        DnsErrorKind::Nodata,
                        &name_or_root(&name),
                        RecordType::A,
                    ))
                } else {
                    Ok(ips)
                }
            }
            Err(error) => {
                let mut outcome = ChainOutcome::default();
                outcome.fail_with(&name_or_root(&name), error, self.inner.timeout);
                Err(outcome.error.unwrap_or_else(|| LookupFailure {
                    kind: DnsErrorKind::Other,
                    message: format!("{name} did not resolve"),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_types_parse_case_insensitively() {
        assert_eq!("aaaa".parse::<QueryType>(), Ok(QueryType::Aaaa));
        assert_eq!("A+AAAA".parse::<QueryType>(), Ok(QueryType::Addresses));
        assert!(matches!(
            "ANY".parse::<QueryType>(),
            Err(InputError::InvalidRecordType(_))
        ));
    }

    #[test]
    fn requests_pick_ptr_for_addresses() {
        let request = ResolveRequest::parse("10.20.2.4", None).unwrap();
        assert_eq!(request.query_type, QueryType::Ptr);
        let request = ResolveRequest::parse("10.20.2.4", Some("A")).unwrap();
        assert_eq!(request.query_type, QueryType::A);
        assert!(matches!(
            ResolveRequest::parse("a.test", Some("PTR")),
            Err(InputError::PtrNeedsIp(_))
        ));
    }

    #[test]
    fn server_lists_parse_with_default_port() {
        assert_eq!(
            parse_server_list("DNS_SERVERS", " 127.0.0.1:5353, 10.0.0.4 ,[::1]:53").unwrap(),
            vec![
                "127.0.0.1:5353".parse::<SocketAddr>().unwrap(),
                "10.0.0.4:53".parse().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert!(parse_server_list("DNS_SERVERS", "dns.example").is_err());
    }

    #[test]
    fn privatelink_is_a_label() {
        assert!(is_privatelink("app-be.privatelink.azurewebsites.net"));
        assert!(!is_privatelink("app-be-privatelink.azurewebsites.net"));
        // Unique default host names: the record under the region's privatelink name.
        assert!(is_privatelink(
            "app-be-c4bqa2hxgzf3dvep.privatelink.westeurope-01.azurewebsites.net"
        ));
        assert!(is_privatelink(
            "app-be-c4bqa2hxgzf3dvep.westeurope-01.privatelink.azurewebsites.net"
        ));
        assert!(!is_privatelink(
            "app-be-c4bqa2hxgzf3dvep.westeurope-01.azurewebsites.net"
        ));
    }

    #[tokio::test]
    async fn settings_report_the_source() {
        let resolver = DnsResolver::from_args(&DnsArgs {
            website_dns_server: Some("10.0.0.4".into()),
            website_dns_alt_server: Some("10.0.0.5:5353".into()),
            ..DnsArgs::default()
        })
        .unwrap();
        let info = resolver.settings();
        assert_eq!(info.source, ResolverSource::WebsiteDnsServer);
        assert_eq!(info.display_servers(), "10.0.0.4, 10.0.0.5:5353");
        assert_eq!(
            serde_json::to_value(&info).unwrap(),
            serde_json::json!({"servers": ["10.0.0.4:53", "10.0.0.5:5353"], "source": "WEBSITE_DNS_SERVER"})
        );
        let resolver = DnsResolver::from_args(&DnsArgs {
            dns_servers: Some("127.0.0.1:5353".into()),
            website_dns_server: Some("10.0.0.4".into()),
            ..DnsArgs::default()
        })
        .unwrap();
        assert_eq!(resolver.settings().source, ResolverSource::DnsServers);
        let query = resolver
            .with_query_servers(vec!["127.0.0.1:53".parse().unwrap()])
            .unwrap();
        assert_eq!(query.settings().source, ResolverSource::Query);
        // Nothing set: the system configuration (when this machine has one).
        if let Ok(system) = DnsResolver::from_args(&DnsArgs::default()) {
            assert_eq!(system.settings().source, ResolverSource::System);
            assert_eq!(
                system.timeout(),
                Duration::from_millis(DEFAULT_DNS_TIMEOUT_MS)
            );
        }
        assert!(
            DnsResolver::from_args(&DnsArgs {
                dns_servers: Some("nope".into()),
                ..DnsArgs::default()
            })
            .is_err()
        );
    }
}
