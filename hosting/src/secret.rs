//! Comparing secrets (API keys, tokens) without telling an attacker, through timing, how much
//! of a guess was right — or how long the secret is.

use subtle::ConstantTimeEq;

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
    fn equal_only_when_equal() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret!"));
        assert!(!constant_time_eq(b"s3cret", b"S3cret"));
        assert!(!constant_time_eq(b"s3cret", b""));
        assert!(constant_time_eq(b"", b""));
    }
}
