//! What a resolve request asks: the name and the record type.

use std::fmt;
use std::str::FromStr;

use hickory_resolver::proto::rr::RecordType;

use crate::target::{Host, InputError, parse_host, truncate};

/// The record type of a diagnostic lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum QueryType {
    /// A and AAAA together, like `nameresolver` (the default). An IP address as host means PTR.
    #[default]
    Addresses,
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// The alias of a name.
    Cname,
    /// Text records.
    Txt,
    /// Mail exchangers.
    Mx,
    /// Service records.
    Srv,
    /// The name of an address (the host is an IP).
    Ptr,
}

impl QueryType {
    /// The name used in JSON and text (`A+AAAA` for the default).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Addresses => "A+AAAA",
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Cname => "CNAME",
            Self::Txt => "TXT",
            Self::Mx => "MX",
            Self::Srv => "SRV",
            Self::Ptr => "PTR",
        }
    }

    pub(crate) fn record_type(self) -> RecordType {
        match self {
            Self::Addresses | Self::A => RecordType::A,
            Self::Aaaa => RecordType::AAAA,
            Self::Cname => RecordType::CNAME,
            Self::Txt => RecordType::TXT,
            Self::Mx => RecordType::MX,
            Self::Srv => RecordType::SRV,
            Self::Ptr => RecordType::PTR,
        }
    }
}

impl fmt::Display for QueryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QueryType {
    type Err = InputError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Ok(match input.to_ascii_uppercase().as_str() {
            "A+AAAA" => Self::Addresses,
            "A" => Self::A,
            "AAAA" => Self::Aaaa,
            "CNAME" => Self::Cname,
            "TXT" => Self::Txt,
            "MX" => Self::Mx,
            "SRV" => Self::Srv,
            "PTR" => Self::Ptr,
            _ => return Err(InputError::InvalidRecordType(truncate(input))),
        })
    }
}

/// A validated diagnostic lookup: what `/diag/resolve` and `probe resolve` accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveRequest {
    /// The host as validated.
    pub host: Host,
    /// The record type (an IP host with the default type becomes PTR).
    pub query_type: QueryType,
}

impl ResolveRequest {
    /// Validates a host and an optional record type. An IP address with no type means PTR (as
    /// `nslookup` does); PTR needs an IP address.
    pub fn parse(host: &str, record_type: Option<&str>) -> Result<Self, InputError> {
        let host = parse_host(host)?;
        let query_type = match record_type {
            Some(t) => t.parse()?,
            None => QueryType::Addresses,
        };
        let query_type = match (&host, query_type) {
            (Host::Ip(_), QueryType::Addresses) => QueryType::Ptr,
            (Host::Name(name), QueryType::Ptr) => {
                return Err(InputError::PtrNeedsIp(name.clone()));
            }
            (_, other) => other,
        };
        Ok(Self { host, query_type })
    }
}
