//! How network operations fail, in one taxonomy: [`FailureKind`] names a failed connect, lookup,
//! TLS handshake or HTTP exchange the same way in tcpping attempts, the HTTP check and `probe
//! smoke`, and maps each to its diagnosis [`Code`]. Also the one walk down an error chain: the
//! innermost cause in words, the `io::ErrorKind` inside, and whether a given error type is
//! wrapped somewhere (rustls and the resolver's failures travel inside nested `io::Error`s, whose
//! `source()` skips the error they wrap).

use std::error::Error as StdError;
use std::io;

use serde::{Deserialize, Serialize};

use crate::diagnosis::Code;

/// How a network operation failed (`attempts[].error` of tcpping, `error.kind` of the HTTP
/// check; a connect can fail only as `refused`, `timeout` or `unreachable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The name did not resolve.
    Dns,
    /// The target policy forbids the address; nothing was sent.
    Denied,
    /// The address answered with a reset: nothing listens on that port.
    Refused,
    /// No answer within the time allowed: a firewall or NSG drops the packets.
    Timeout,
    /// No route, or the local side could not even send (a source address not on this machine).
    Unreachable,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The peer did not speak HTTP/1.1 properly.
    Http,
    /// This process or machine ran out of something before anything was sent: open files
    /// (EMFILE, ENFILE), memory or socket buffers. Not a network fault.
    ResourceExhausted,
}

impl FailureKind {
    /// The diagnosis code of this failure.
    pub const fn code(self) -> Code {
        match self {
            Self::Dns => Code::DnsFailure,
            Self::Denied => Code::DiagTargetDenied,
            Self::Refused => Code::ConnectRefused,
            Self::Timeout => Code::ConnectTimeout,
            Self::Unreachable => Code::NetworkUnreachable,
            Self::Tls => Code::TlsFailure,
            Self::Http => Code::BadResponse,
            Self::ResourceExhausted => Code::LocalResourceExhausted,
        }
    }

    /// The `snake_case` name, as in the JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Denied => "denied",
            Self::Refused => "refused",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::Tls => "tls",
            Self::Http => "http",
            Self::ResourceExhausted => "resource_exhausted",
        }
    }
}

/// Every error in the chain below `error`, outermost first, following `io::Error`'s wrapped
/// error where `source()` would skip it.
pub fn chain<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&e| next_cause(e)).skip(1)
}

fn next_cause<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match error
        .downcast_ref::<io::Error>()
        .and_then(io::Error::get_ref)
    {
        Some(inner) => Some(inner),
        None => error.source(),
    }
}

/// The innermost cause, in its own words ("Connection refused (os error 111)"): a client's own
/// text usually names only the URL. The error itself when it has no source.
pub fn root_cause(error: &(dyn StdError + 'static)) -> String {
    chain(error)
        .last()
        .map_or_else(|| error.to_string(), ToString::to_string)
}

/// The kind of the first `io::Error` in the chain.
pub fn io_kind(error: &(dyn StdError + 'static)) -> Option<io::ErrorKind> {
    chain(error).find_map(|e| e.downcast_ref::<io::Error>().map(io::Error::kind))
}

/// True when `error` or an `io::Error` in its chain says this process or machine ran out of
/// something (see [`hosting::server::is_resource_exhausted`]): too many open files, no memory.
pub fn is_resource_exhausted(error: &(dyn StdError + 'static)) -> bool {
    std::iter::once(error)
        .chain(chain(error))
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(hosting::server::is_resource_exhausted)
}

/// True when a `T` is somewhere in the chain.
pub fn wraps<T: StdError + 'static>(error: &(dyn StdError + 'static)) -> bool {
    error.is::<T>() || chain(error).any(|e| e.is::<T>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("the marker")]
    struct Marker;

    #[test]
    fn kinds_serialise_as_their_names_and_map_to_codes() {
        for kind in [
            FailureKind::Dns,
            FailureKind::Denied,
            FailureKind::Refused,
            FailureKind::Timeout,
            FailureKind::Unreachable,
            FailureKind::Tls,
            FailureKind::Http,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert!(!kind.code().next_step().is_empty());
        }
        assert_eq!(FailureKind::Timeout.code(), Code::ConnectTimeout);
    }

    #[test]
    fn the_walk_follows_errors_wrapped_in_io_errors() {
        let inner = io::Error::new(io::ErrorKind::InvalidData, Marker);
        let outer = Outer(io::Error::other(inner));
        assert!(wraps::<Marker>(&outer));
        assert_eq!(root_cause(&outer), "the marker");
        assert_eq!(io_kind(&outer), Some(io::ErrorKind::Other));
        let plain = Outer(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(io_kind(&plain), Some(io::ErrorKind::ConnectionRefused));
        assert!(!wraps::<Marker>(&plain));
        assert_eq!(root_cause(&Marker), "the marker");
    }
}
