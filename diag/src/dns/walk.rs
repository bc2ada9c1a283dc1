//! The CNAME walk of a diagnostic lookup: one query per hop, what each hop and failure says, and
//! how the A and AAAA walks merge.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::NameServerConfig;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, Record, RecordType};
use hosting::AddressClass;

use crate::target::{parse_ip_port, truncate};

use super::*;

/// What a walk has found so far: the hops, the final name, its answers, the last response code
/// and the failure that ended it, if one did.
#[derive(Default)]
pub(crate) struct ChainOutcome {
    pub(crate) chain: Vec<ChainHop>,
    pub(crate) canonical: Option<Name>,
    pub(crate) answers: Vec<Record>,
    pub(crate) rcode: Option<ResponseCode>,
    pub(crate) error: Option<LookupFailure>,
}

impl ChainOutcome {
    pub(crate) fn fail_with(&mut self, name: &Name, error: NetError, timeout: Duration) {
        let shown = display_name(name);
        let (kind, message) = match &error {
            NetError::Dns(DnsError::NoRecordsFound(no_records)) => {
                self.rcode = Some(no_records.response_code);
                let kind = if no_records.response_code == ResponseCode::NXDomain {
                    DnsErrorKind::Nxdomain
                } else {
                    DnsErrorKind::Nodata
                };
                let failure = failure_for(kind, name, no_records.query.query_type());
                (failure.kind, failure.message)
            }
            NetError::Dns(DnsError::ResponseCode(code)) => {
                self.rcode = Some(*code);
                match code {
                    ResponseCode::ServFail => (
                        DnsErrorKind::Servfail,
                        format!(
                            "the DNS server failed to answer for {shown} (SERVFAIL): it could not reach the authoritative servers or a forwarder behind it"
                        ),
                    ),
                    ResponseCode::Refused => (
                        DnsErrorKind::Refused,
                        format!(
                            "the DNS server refused to answer for {shown} (REFUSED): it does not serve this name or does not serve this client"
                        ),
                    ),
                    other => (
                        DnsErrorKind::Rcode,
                        format!("the DNS server answered {} for {shown}", rcode_name(*other)),
                    ),
                }
            }
            NetError::Timeout => (
                DnsErrorKind::Timeout,
                format!(
                    "no DNS answer for {shown} within {} ms",
                    timeout.as_millis()
                ),
            ),
            NetError::Truncated => (
                DnsErrorKind::Truncated,
                format!("the answer for {shown} did not fit in UDP and the retry over TCP failed"),
            ),
            NetError::Io(io) => (
                DnsErrorKind::Network,
                format!("cannot reach the DNS server: {io}"),
            ),
            NetError::NoConnections => (
                DnsErrorKind::Network,
                "no connection to any DNS server could be made".to_owned(),
            ),
            other => (
                DnsErrorKind::Other,
                format!("lookup of {shown} failed: {other}"),
            ),
        };
        self.error = Some(LookupFailure { kind, message });
    }
}

pub(crate) fn failure_for(
    kind: DnsErrorKind,
    name: &Name,
    record_type: RecordType,
) -> LookupFailure {
    let shown = display_name(name);
    let message = match kind {
        DnsErrorKind::Nxdomain => format!("{shown} does not exist (NXDOMAIN)"),
        DnsErrorKind::Nodata => format!("{shown} exists but has no {record_type} record (NODATA)"),
        _ => format!("lookup of {shown} failed"),
    };
    LookupFailure { kind, message }
}

/// Merges the A and AAAA lookups of the default query: found if either found addresses.
pub(crate) fn merge_dual(v4: ChainOutcome, v6: ChainOutcome) -> ChainOutcome {
    let found_v4 = v4.error.is_none();
    let found_v6 = v6.error.is_none();
    let chain = if v4.chain.is_empty() {
        v6.chain.clone()
    } else {
        v4.chain.clone()
    };
    let canonical = v4.canonical.clone().or_else(|| v6.canonical.clone());
    let error = match (found_v4, found_v6) {
        (true, _) | (_, true) => None,
        // Both failed: NODATA for one and something worse for the other reports the worse.
        _ => match (&v4.error, &v6.error) {
            (Some(a), Some(b))
                if a.kind == DnsErrorKind::Nodata && b.kind != DnsErrorKind::Nodata =>
            {
                Some(b.clone())
            }
            (Some(a), Some(b))
                if a.kind == DnsErrorKind::Nodata && b.kind == DnsErrorKind::Nodata =>
            {
                Some(LookupFailure {
                    kind: DnsErrorKind::Nodata,
                    message: a.message.replace(" no A record", " no A or AAAA record"),
                })
            }
            (a, b) => a.clone().or_else(|| b.clone()),
        },
    };
    let mut answers = v4.answers;
    answers.extend(v6.answers);
    ChainOutcome {
        chain,
        canonical,
        answers,
        rcode: v4.rcode.or(v6.rcode),
        error,
    }
}

pub(crate) fn parse_server_list(
    variable: &'static str,
    list: &str,
) -> Result<Vec<SocketAddr>, DnsConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|server| {
            parse_ip_port(server, 53).map_err(|_| DnsConfigError::InvalidServer {
                variable,
                value: truncate(server),
            })
        })
        .collect()
}

pub(crate) fn name_server(server: &SocketAddr) -> NameServerConfig {
    let mut config = NameServerConfig::udp_and_tcp(server.ip());
    for connection in &mut config.connections {
        connection.port = server.port();
    }
    config
}

pub(crate) fn address(ip: IpAddr, ttl: u32) -> ResolvedAddress {
    ResolvedAddress {
        ip,
        ttl,
        class: AddressClass::of(ip),
    }
}

pub(crate) fn is_privatelink(name: &str) -> bool {
    name.split('.')
        .any(|label| label.eq_ignore_ascii_case("privatelink"))
}

pub(crate) fn display_name(name: &Name) -> String {
    trim_dot(&name.to_ascii()).to_owned()
}

pub(crate) fn trim_dot(text: &str) -> &str {
    text.strip_suffix('.').unwrap_or(text)
}

pub(crate) fn name_or_root(name: &str) -> Name {
    Name::from_ascii(name).unwrap_or_else(|_| Name::root())
}

pub(crate) fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".to_owned(),
        ResponseCode::FormErr => "FORMERR".to_owned(),
        ResponseCode::ServFail => "SERVFAIL".to_owned(),
        ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
        ResponseCode::NotImp => "NOTIMP".to_owned(),
        ResponseCode::Refused => "REFUSED".to_owned(),
        other => other.to_string().to_ascii_uppercase(),
    }
}
