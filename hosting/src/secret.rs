//! Comparing secrets (API keys, tokens) without telling an attacker, through timing, how much
//! of a guess was right — or how long the secret is.

use std::fmt;
use std::str::FromStr;

use subtle::ConstantTimeEq;

/// A secret setting (API key, token, header): its value never shows in `Debug` output (clap
/// hides it in `--help` with `hide_env_values`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(empty)"
        } else {
            "Secret(***)"
        })
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// True when `given` equals `expected`. The time taken depends only on `expected`'s length:
/// neither a matching prefix nor `given`'s length shows.
pub fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    let same_len = (expected.len() as u64).ct_eq(&(given.len() as u64));
    let mut same_bytes = subtle::Choice::from(1u8);
    for (index, byte) in expected.iter().enumerate() {
        let other = given.get(index).copied().unwrap_or(0);
        same_bytes &= byte.ct_eq(&other);
    }
    bool::from(same_len & same_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        assert_eq!(format!("{:?}", Secret::from("s3cret")), "Secret(***)");
        assert_eq!(format!("{:?}", Secret::default()), "Secret(empty)");
    }

    #[test]
    fn equal_only_when_equal() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret!"));
        assert!(!constant_time_eq(b"s3cret", b"S3cret"));
        assert!(!constant_time_eq(b"s3cret", b""));
        assert!(constant_time_eq(b"", b""));
    }
}
