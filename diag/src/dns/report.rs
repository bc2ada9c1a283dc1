//! What a lookup found: the resolve report (`/diag/resolve`), its failure kinds, and its
//! nameresolver text.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hosting::AddressClass;
use serde::{Deserialize, Serialize};

use super::*;

/// How a lookup failed (`error.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsErrorKind {
    /// The name does not exist (NXDOMAIN).
    Nxdomain,
    /// The name exists but has no record of the asked type (NOERROR, empty answer).
    Nodata,
    /// The server failed (SERVFAIL), often a forwarder that cannot reach upstream.
    Servfail,
    /// The server refused to answer (REFUSED): not allowed to ask it, or a zone it does not serve.
    Refused,
    /// No answer within the timeout.
    Timeout,
    /// The CNAME chain loops or is too long.
    CnameLoop,
    /// The answer did not fit in UDP and the TCP retry failed.
    Truncated,
    /// Another response code (FORMERR, NOTIMP, …).
    Rcode,
    /// The server could not be reached (network error, TCP refused).
    Network,
    /// The host is not a valid name.
    InvalidInput,
    /// Anything else.
    Other,
}

impl DnsErrorKind {
    /// The phrase `nameresolver` prints after "can't find NAME:".
    pub fn phrase(self) -> &'static str {
        match self {
            Self::Nxdomain => "Non-existent domain",
            Self::Nodata => "No answer",
            Self::Servfail => "Server failed",
            Self::Refused => "Query refused",
            Self::Timeout => "Timed out",
            Self::CnameLoop => "CNAME loop",
            Self::Truncated => "Truncated answer",
            Self::Rcode => "Server error",
            Self::Network => "Server unreachable",
            Self::InvalidInput => "Invalid name",
            Self::Other => "Lookup failed",
        }
    }
}

/// A failed lookup: the kind and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct LookupFailure {
    /// Machine-readable kind.
    pub kind: DnsErrorKind,
    /// What happened.
    pub message: String,
}

/// `query` in a [`Resolution`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveQuery {
    /// The host as asked (IPs in their normalised form).
    pub host: String,
    /// The record type asked (`A+AAAA` by default).
    #[serde(rename = "type")]
    pub record_type: String,
    /// The name actually looked up (differs for PTR: `4.2.20.10.in-addr.arpa`).
    pub name: String,
}

/// One CNAME hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHop {
    /// The alias.
    pub name: String,
    /// The TTL of this CNAME record, in seconds, as the server sent it.
    pub ttl: u32,
    /// What it points to.
    pub target: String,
}

/// One resolved address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedAddress {
    /// The address.
    pub ip: IpAddr,
    /// Its TTL in seconds.
    pub ttl: u32,
    /// loopback, private, public, link_local, …
    pub class: AddressClass,
}

/// A non-address answer (TXT, MX, SRV, PTR, CNAME).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// Owner name.
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// The data in zone-file form (`10 mail.example.com`, the TXT text, …).
    pub data: String,
}

/// The result of a diagnostic lookup (the `/diag/resolve` body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// What was asked.
    pub query: ResolveQuery,
    /// Which servers were asked and why those.
    pub resolver: ResolverInfo,
    /// True when the asked records were found.
    pub ok: bool,
    /// The response code of the last answer (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`), null
    /// when no answer came.
    pub rcode: Option<String>,
    /// Why the lookup failed, when it did.
    pub error: Option<LookupFailure>,
    /// The CNAME hops, in order, each with its own TTL.
    pub chain: Vec<ChainHop>,
    /// The name at the end of the chain (the query name when there is no CNAME).
    pub canonical_name: Option<String>,
    /// A and AAAA answers.
    pub addresses: Vec<ResolvedAddress>,
    /// Other answers (TXT, MX, SRV, PTR).
    pub records: Vec<DnsRecord>,
    /// True when a `*.privatelink.*` name appears in the query or the chain.
    pub privatelink: bool,
    /// The Azure service the name belongs to, when [`crate::azure`] catalogues it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<crate::azure::ServiceView>,
    /// For a catalogued name: whether the answer came through the service's `privatelink` zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<crate::azure::ZoneCheck>,
    /// Wall time of the whole lookup.
    pub duration_ms: f64,
}

impl Resolution {
    /// The text of Kudu's `nameresolver.exe`, which Microsoft's Diagnostics portal can read
    /// (`format=text`, the CLI's default): see [`crate::kudu`].
    pub fn to_text(&self) -> String {
        crate::kudu::nameresolver_text(self)
    }

    /// A richer text for a person at a shell (`probe resolve --format human`): nslookup's layout
    /// plus each address's class (the whole question is often "private or not"), the records of
    /// other types, and the failure in full. Not for parsers.
    pub fn to_human_text(&self) -> String {
        let server = self.resolver.display_servers();
        let mut out = format!("Server: {server}\n\n");
        if let Some(error) = &self.error {
            out.push_str(&format!(
                "*** {server} can't find {}: {}\n{}\n",
                self.query.name,
                error.kind.phrase(),
                error.message
            ));
            return out;
        }
        out.push_str("Non-authoritative answer:\n");
        let name = self.canonical_name.as_deref().unwrap_or(&self.query.name);
        out.push_str(&format!("Name:    {name}\n"));
        if !self.addresses.is_empty() {
            out.push_str("Addresses:\n");
            for address in &self.addresses {
                out.push_str(&format!("        {}  ({})\n", address.ip, address.class));
            }
        }
        if !self.records.is_empty() {
            out.push_str("Records:\n");
            for record in &self.records {
                out.push_str(&format!("        {} {}\n", record.record_type, record.data));
            }
        }
        if !self.chain.is_empty() {
            out.push_str("Aliases:\n");
            for hop in &self.chain {
                out.push_str(&format!("        {}\n", hop.name));
            }
        }
        if let Some(service) = &self.service {
            out.push_str(&format!("Service: {}\n", service.name));
        }
        if let Some(zone) = &self.zone {
            let code = zone.code.map(|c| format!(" [{c}]")).unwrap_or_default();
            out.push_str(&format!(
                "Zone:    {}{code}\n",
                zone.explain(&self.query.host)
            ));
        }
        out
    }
}

/// Milliseconds since `started`, rounded to microseconds.
pub(crate) fn elapsed_ms(started: Instant) -> f64 {
    round_ms(started.elapsed())
}

/// A duration in milliseconds, rounded to microseconds.
pub fn round_ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}
