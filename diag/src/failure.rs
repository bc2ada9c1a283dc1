//! Reading an error chain: the innermost cause in words, the `io::ErrorKind` inside, and whether
//! a given error type is wrapped somewhere (rustls and the resolver's failures travel inside
//! nested `io::Error`s, whose `source()` skips the error they wrap). One walk, used by the front
//! end's diagnosis, the token client and `probe smoke`.

use std::error::Error as StdError;
use std::io;

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
