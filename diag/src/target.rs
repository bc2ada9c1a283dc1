//! Parsing what a caller names as a target — host names, IP literals in every spelling, ports,
//! `host:port` pairs, bounded numbers — into validated values, with one error type whose
//! messages say exactly what was wrong. The `/diag` endpoints and the CLI share these.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest DNS name accepted, without the trailing dot (RFC 1035: 255 octets on the wire).
pub const MAX_NAME_LEN: usize = 253;
/// Longest DNS label accepted (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;

/// Input that was rejected before anything was sent anywhere (400 `invalid_input`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// A required parameter is missing.
    #[error("missing parameter `{0}`")]
    Missing(&'static str),
    /// The host is empty.
    #[error("the host is empty")]
    EmptyHost,
    /// The host name is longer than 253 characters.
    #[error("the host name is {0} characters long; DNS allows at most 253")]
    NameTooLong(usize),
    /// One label of the host name is longer than 63 characters.
    #[error("the label `{label}…` is {len} characters long; DNS allows at most 63 per label")]
    LabelTooLong {
        /// The first characters of the offending label.
        label: String,
        /// Its length.
        len: usize,
    },
    /// The host is neither an IP address nor a valid DNS name.
    #[error("`{0}` is neither an IP address nor a valid host name")]
    InvalidHost(String),
    /// The port is not a number between 1 and 65535.
    #[error("the port `{0}` is not a number between 1 and 65535")]
    InvalidPort(String),
    /// A number parameter does not parse.
    #[error("`{name}` must be a whole number, got `{value}`")]
    NotANumber {
        /// The parameter.
        name: &'static str,
        /// What was sent.
        value: String,
    },
    /// A number parameter is outside its bounds.
    #[error("`{name}` must be between {min} and {max}, got {value}")]
    OutOfRange {
        /// The parameter.
        name: &'static str,
        /// What was sent.
        value: u64,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// The DNS record type is not one the probe asks for.
    #[error("unsupported record type `{0}`; use A, AAAA, CNAME, TXT, MX, SRV or PTR")]
    InvalidRecordType(String),
    /// A PTR lookup needs an IP address.
    #[error("a PTR lookup takes an IP address as host, got `{0}`")]
    PtrNeedsIp(String),
    /// The DNS server is not `IP[:PORT]`.
    #[error("the DNS server `{0}` is not IP[:PORT] (IPv6 in brackets when a port follows)")]
    InvalidServer(String),
    /// The output format is not `json` or `text`.
    #[error("unknown format `{0}`; use json or text")]
    InvalidFormat(String),
    /// The URL cannot be checked.
    #[error("the URL {0}")]
    InvalidUrl(String),
    /// The handshake protocol is not one `/diag/tls` speaks.
    #[error("unknown protocol `{0}`; use tls or postgres")]
    InvalidProtocol(String),
    /// The port was given twice (`host:port` and a separate port) with different values.
    #[error("the port is given twice ({0} and {1})")]
    PortTwice(u16, u16),
    /// The whole request would take longer than the endpoint allows.
    #[error(
        "this could take {} ms (the name's lookup up to {lookup_ms} ms, then count × timeout_ms + (count − 1) × interval_ms = {connects_ms} ms); this endpoint allows at most {max_ms} ms: lower count, timeout_ms or interval_ms", lookup_ms + connects_ms
    )]
    TooLong {
        /// The longest the name's lookup can take (0 for an IP address).
        lookup_ms: u64,
        /// The worst case of the connects and pauses asked for.
        connects_ms: u64,
        /// The budget.
        max_ms: u64,
    },
}

/// A validated target host: an IP address (already normalised) or a lower-case DNS name without a
/// trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IP literal, in any spelling the caller used, normalised (`::ffff:a.b.c.d` becomes
    /// `a.b.c.d`, `2130706433` becomes `127.0.0.1`).
    Ip(IpAddr),
    /// A DNS name.
    Name(String),
}

impl Host {
    /// The name when this is a DNS name.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Name(name) => Some(name),
            Self::Ip(_) => None,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// Parses IPv4 the way `inet_aton(3)` does, so that every spelling a C library (or a browser)
/// would accept maps to the address it means: one to four parts separated by dots, each decimal,
/// octal (leading `0`) or hex (`0x`); the last part fills the remaining bytes (`127.1` is
/// 127.0.0.1, `169.254.43518` is 169.254.169.254, `2852039166` is 169.254.169.254). One trailing
/// dot is accepted. Anything else, or any part out of range, is `None`.
pub fn parse_ipv4_loose(input: &str) -> Option<Ipv4Addr> {
    let input = input.strip_suffix('.').unwrap_or(input);
    if input.is_empty() {
        return None;
    }
    let parts: Vec<u64> = input
        .split('.')
        .map(parse_number_part)
        .collect::<Option<_>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|&part| part > 0xff) {
        return None;
    }
    let last_bits = 8 * (4 - leading.len() as u32);
    if *last >= 1u64 << last_bits {
        return None;
    }
    let mut value: u64 = 0;
    for (index, part) in leading.iter().enumerate() {
        value |= part << (24 - 8 * index as u32);
    }
    value |= last;
    Some(Ipv4Addr::from(u32::try_from(value).ok()?))
}

fn parse_number_part(part: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    // An empty part (`1..2`, `0x`) or a sign is never a number here.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// True when the last label of a name is a number (decimal, or hex with `0x`): such a string is
/// an IPv4 address attempt (the WHATWG URL rule), never a host name.
fn ends_in_number(input: &str) -> bool {
    let input = input.strip_suffix('.').unwrap_or(input);
    let last = input.rsplit('.').next().unwrap_or(input);
    !last.is_empty()
        && (last.chars().all(|c| c.is_ascii_digit())
            || ((last.starts_with("0x") || last.starts_with("0X"))
                && last[2..].chars().all(|c| c.is_ascii_hexdigit())))
}

/// Normalises an address for policy checks and connects: IPv4-mapped IPv6 (`::ffff:a.b.c.d`)
/// becomes the IPv4 address it carries.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Validates a host: an IPv6 literal (bare or in brackets, no zone id), an IPv4 address in any
/// `inet_aton` spelling, or a DNS name (letters, digits, `-`, `_`; labels 1–63, total ≤ 253;
/// one trailing dot allowed; lower-cased).
pub fn parse_host(input: &str) -> Result<Host, InputError> {
    if input.is_empty() {
        return Err(InputError::EmptyHost);
    }
    if let Some(inner) = input.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| InputError::InvalidHost(truncate(input)))?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|ip| Host::Ip(normalize_ip(IpAddr::V6(ip))))
            .map_err(|_| InputError::InvalidHost(truncate(input)));
    }
    if input.contains(':') {
        return input
            .parse::<Ipv6Addr>()
            .map(|ip| Host::Ip(normalize_ip(IpAddr::V6(ip))))
            .map_err(|_| InputError::InvalidHost(truncate(input)));
    }
    if ends_in_number(input) {
        return parse_ipv4_loose(input)
            .map(|ip| Host::Ip(IpAddr::V4(ip)))
            .ok_or_else(|| InputError::InvalidHost(truncate(input)));
    }
    validate_dns_name(input).map(Host::Name)
}

/// Validates a DNS name and returns it lower-cased, without a trailing dot.
pub fn validate_dns_name(input: &str) -> Result<String, InputError> {
    let name = input.strip_suffix('.').unwrap_or(input);
    if name.is_empty() {
        return Err(InputError::EmptyHost);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(InputError::NameTooLong(name.len()));
    }
    for label in name.split('.') {
        if label.len() > MAX_LABEL_LEN {
            return Err(InputError::LabelTooLong {
                label: label.chars().take(20).collect(),
                len: label.len(),
            });
        }
        let valid = !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(InputError::InvalidHost(truncate(input)));
        }
    }
    Ok(name.to_ascii_lowercase())
}

/// Parses a port: decimal digits only, 1–65535.
pub fn parse_port(input: &str) -> Result<u16, InputError> {
    let valid = !input.is_empty() && input.len() <= 5 && input.chars().all(|c| c.is_ascii_digit());
    match input.parse::<u16>() {
        Ok(port) if valid && port != 0 => Ok(port),
        _ => Err(InputError::InvalidPort(truncate(input))),
    }
}

/// Splits `host:port`, `[v6]:port`, `[v6]`, a bare IPv6 literal or a bare host into its host
/// and optional port text (not yet validated).
pub fn split_host_port(input: &str) -> (&str, Option<&str>) {
    if input.starts_with('[') {
        if let Some(end) = input.find(']') {
            let host = &input[..=end];
            return match input[end + 1..].strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if end + 1 == input.len() => (host, None),
                // `[::1]junk`: let host validation reject the whole thing.
                None => (input, None),
            };
        }
        return (input, None);
    }
    match input.matches(':').count() {
        1 => {
            let (host, port) = input.split_once(':').unwrap_or((input, ""));
            (host, Some(port))
        }
        // No colon, or a bare IPv6 literal.
        _ => (input, None),
    }
}

/// Parses `IP[:PORT]` (IPv6 with a port in brackets) with `default_port` when none is given.
/// IPv4 goes through [`parse_ipv4_loose`], so odd spellings are normalised, never smuggled.
pub fn parse_ip_port(input: &str, default_port: u16) -> Result<SocketAddr, InputError> {
    let bad = || InputError::InvalidServer(truncate(input));
    let (host, port) = split_host_port(input);
    let ip = match parse_host(host).map_err(|_| bad())? {
        Host::Ip(ip) => ip,
        Host::Name(_) => return Err(bad()),
    };
    let port = match port {
        Some(port) => parse_port(port)?,
        None => default_port,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Parses an optional whole number within `min..=max`, `default` when absent.
pub fn parse_bounded(
    name: &'static str,
    input: Option<&str>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, InputError> {
    let Some(input) = input else {
        return Ok(default);
    };
    let not_a_number = || InputError::NotANumber {
        name,
        value: truncate(input),
    };
    if input.is_empty() || !input.chars().all(|c| c.is_ascii_digit()) {
        return Err(not_a_number());
    }
    // Longer than u64: certainly out of range, report it as such.
    let value = input.parse::<u64>().unwrap_or(u64::MAX);
    if !(min..=max).contains(&value) {
        return Err(InputError::OutOfRange {
            name,
            value,
            min,
            max,
        });
    }
    Ok(value)
}

/// Shortens caller input for error messages (they are echoed back; keep them small).
pub(crate) fn truncate(input: &str) -> String {
    const MAX: usize = 80;
    if input.chars().count() <= MAX {
        input.to_owned()
    } else {
        let mut short: String = input.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_aton_spellings() {
        let cases = [
            ("127.0.0.1", Some("127.0.0.1")),
            ("127.1", Some("127.0.0.1")),
            ("127.0.1", Some("127.0.0.1")),
            ("2130706433", Some("127.0.0.1")),
            ("0x7f000001", Some("127.0.0.1")),
            ("0x7f.1", Some("127.0.0.1")),
            ("017700000001", Some("127.0.0.1")),
            ("0177.0.0.01", Some("127.0.0.1")),
            ("2852039166", Some("169.254.169.254")),
            ("0251.0376.0251.0376", Some("169.254.169.254")),
            ("0xa9fea9fe", Some("169.254.169.254")),
            ("0xA9.0xFE.0xA9.0xFE", Some("169.254.169.254")),
            ("169.254.43518", Some("169.254.169.254")),
            ("169.16689662", Some("169.254.169.254")),
            ("0xa9.254.0251.0xfe", Some("169.254.169.254")),
            ("0", Some("0.0.0.0")),
            ("0.0.0.0", Some("0.0.0.0")),
            ("255.255.255.255", Some("255.255.255.255")),
            ("4294967295", Some("255.255.255.255")),
            ("1.2.3.4.", Some("1.2.3.4")),
            ("4294967296", None),
            ("256.0.0.1", None),
            ("1.2.3.4.5", None),
            ("1.2.65536", None),
            ("08", None),
            ("0x", None),
            ("1..2", None),
            ("", None),
            (".", None),
            ("-1", None),
            ("+1", None),
            ("1.2.3.4 ", None),
            ("example.com", None),
        ];
        for (input, want) in cases {
            let got = parse_ipv4_loose(input).map(|ip| ip.to_string());
            assert_eq!(got.as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn hosts_are_normalised() {
        let ip = |s: &str| Host::Ip(s.parse().unwrap());
        assert_eq!(
            parse_host("::ffff:169.254.169.254").unwrap(),
            ip("169.254.169.254")
        );
        assert_eq!(
            parse_host("[::ffff:a9fe:a9fe]").unwrap(),
            ip("169.254.169.254")
        );
        assert_eq!(parse_host("[::1]").unwrap(), ip("::1"));
        assert_eq!(parse_host("0x7f.1").unwrap(), ip("127.0.0.1"));
        assert_eq!(
            parse_host("App-BE.AzureWebsites.net.").unwrap(),
            Host::Name("app-be.azurewebsites.net".into())
        );
        assert_eq!(
            parse_host("_sip._tcp.example.com").unwrap(),
            Host::Name("_sip._tcp.example.com".into())
        );
    }

    #[test]
    fn bad_hosts_are_rejected_with_the_reason() {
        assert_eq!(parse_host(""), Err(InputError::EmptyHost));
        assert!(matches!(
            parse_host(&"a".repeat(64)),
            Err(InputError::LabelTooLong { len: 64, .. })
        ));
        let long = vec!["abcdefgh"; 30].join(".");
        assert!(matches!(
            parse_host(&long),
            Err(InputError::NameTooLong(269))
        ));
        for bad in [
            "a b",
            "a..b",
            "-a.com",
            "a-.com",
            "1.2.3.999",
            "[::1",
            "[10.0.0.1]",
            "fe80::1%eth0",
            "é.com",
            "a/b",
            "a@b",
        ] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("443"), Ok(443));
        assert_eq!(parse_port("65535"), Ok(65535));
        for bad in [
            "0",
            "65536",
            "99999999999",
            "abc",
            "",
            "-1",
            "+80",
            " 80",
            "80 ",
            "0x50",
        ] {
            assert!(
                matches!(parse_port(bad), Err(InputError::InvalidPort(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn host_port_splitting() {
        assert_eq!(
            split_host_port("example.com:443"),
            ("example.com", Some("443"))
        );
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(split_host_port("[::1]:53"), ("[::1]", Some("53")));
        assert_eq!(split_host_port("[::1]"), ("[::1]", None));
        assert_eq!(split_host_port("::1"), ("::1", None));
        assert_eq!(split_host_port("10.0.0.1:"), ("10.0.0.1", Some("")));
    }

    #[test]
    fn dns_server_addresses() {
        assert_eq!(
            parse_ip_port("127.0.0.1", 53),
            Ok("127.0.0.1:53".parse().unwrap())
        );
        assert_eq!(
            parse_ip_port("127.1:5353", 53),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_ip_port("[::1]:5353", 53),
            Ok("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_ip_port("::1", 53), Ok("[::1]:53".parse().unwrap()));
        assert!(parse_ip_port("dns.example", 53).is_err());
        assert!(parse_ip_port("127.0.0.1:0", 53).is_err());
    }

    #[test]
    fn bounded_numbers() {
        assert_eq!(parse_bounded("count", None, 4, 1, 20), Ok(4));
        assert_eq!(parse_bounded("count", Some("20"), 4, 1, 20), Ok(20));
        assert!(matches!(
            parse_bounded("count", Some("21"), 4, 1, 20),
            Err(InputError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_bounded("count", Some("0"), 4, 1, 20),
            Err(InputError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_bounded("count", Some("99999999999999999999999"), 4, 1, 20),
            Err(InputError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_bounded("count", Some("-1"), 4, 1, 20),
            Err(InputError::NotANumber { .. })
        ));
    }
}
