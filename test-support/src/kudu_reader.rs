//! A port of how Microsoft's App Service Diagnostics portal reads Kudu's `tcpping.exe` and
//! `nameresolver.exe` text (its `diag-provider.ts`), so tests can prove the portal reads ours.
//!
//! tcpping: drop the output's last two characters, split on `"\r\n"`, classify each line by its
//! start, stop at a line starting `Complete`, fail with "unknown status" on any other line. The
//! portal matches the host-not-found phrase anywhere in the line; where the brief we work from
//! leaves it open whether a phrase must start the line or only appear in it (the timeout line),
//! every line is classified both ways and the two readings must agree, so the text satisfies
//! either. nameresolver: the expression `/Addresses:\s*([\S\s]*)Aliases:\s*([\S\s]*)$/`,
//! written out by hand.

use std::net::IpAddr;

/// How the portal classifies one tcpping line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `Connected to …`.
    Success,
    /// `… No such host is known`.
    HostNotFound,
    /// `Connection timed out`.
    Timeout,
    /// `Connection attempt failed: An attempt was made to access a socket …`.
    Blocked,
    /// `Connection attempt failed: No connection could be made because the target machine
    /// actively refused …`.
    Refused,
    /// `… A non-recoverable error occurred during a database lookup`.
    NonRecoverable,
}

/// What the portal got out of a tcpping output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPing {
    /// One status per attempt line, in order.
    pub statuses: Vec<Status>,
    /// The `Complete` line.
    pub complete: String,
}

/// The numbers of the `Complete` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Complete {
    /// Attempts that connected.
    pub ok: u32,
    /// Attempts.
    pub total: u32,
    /// The percentage printed.
    pub percent: u32,
    /// The average success time printed, in milliseconds.
    pub average_ms: f64,
}

const RULES: [(&str, Status); 6] = [
    ("Connected to ", Status::Success),
    ("No such host is known", Status::HostNotFound),
    ("Connection timed out", Status::Timeout),
    (
        "Connection attempt failed: An attempt was made to access a socket",
        Status::Blocked,
    ),
    (
        "Connection attempt failed: No connection could be made because the target machine actively refused",
        Status::Refused,
    ),
    (
        "A non-recoverable error occurred during a database lookup",
        Status::NonRecoverable,
    ),
];

/// The strict reading: a phrase must start the line, except the host-not-found and the
/// non-recoverable phrases, which follow `Connection attempt failed: ` in `tcpping.exe`'s output
/// and are matched anywhere in the line.
fn classify_strict(line: &str) -> Option<Status> {
    RULES.iter().find_map(|(phrase, status)| {
        let matches = match status {
            Status::HostNotFound | Status::NonRecoverable => line.contains(phrase),
            _ => line.starts_with(phrase),
        };
        matches.then_some(*status)
    })
}

/// The loose reading: every phrase anywhere in the line.
fn classify_loose(line: &str) -> Option<Status> {
    RULES
        .iter()
        .find_map(|(phrase, status)| line.contains(phrase).then_some(*status))
}

/// Reads a tcpping output as the portal does, or says why it would fail.
pub fn read_tcpping(output: &str) -> Result<TcpPing, String> {
    // The portal drops the last two characters (the final "\r\n") before splitting.
    let mut chars = output.chars();
    chars.next_back();
    chars.next_back();
    let body = chars.as_str();
    let mut statuses = Vec::new();
    for line in body.split("\r\n") {
        if line.starts_with("Complete") {
            return Ok(TcpPing {
                statuses,
                complete: line.to_owned(),
            });
        }
        match (classify_strict(line), classify_loose(line)) {
            (Some(strict), Some(loose)) if strict == loose => statuses.push(strict),
            (None, None) => return Err(format!("unknown status: {line:?}")),
            (strict, loose) => {
                return Err(format!(
                    "the readings disagree on {line:?}: starts with {strict:?}, contains {loose:?}"
                ));
            }
        }
    }
    Err(format!("no Complete line in {output:?}"))
}

/// Reads `Complete: N/M successful attempts (P%). Average success time: Xms`.
pub fn read_complete(line: &str) -> Result<Complete, String> {
    let bad = || format!("not a Complete line: {line:?}");
    let rest = line.strip_prefix("Complete: ").ok_or_else(bad)?;
    let (ok, rest) = rest.split_once('/').ok_or_else(bad)?;
    let (total, rest) = rest.split_once(" successful attempts (").ok_or_else(bad)?;
    let (percent, rest) = rest
        .split_once("%). Average success time: ")
        .ok_or_else(bad)?;
    let average = rest.strip_suffix("ms").ok_or_else(bad)?;
    Ok(Complete {
        ok: ok.parse().map_err(|_| bad())?,
        total: total.parse().map_err(|_| bad())?,
        percent: percent.parse().map_err(|_| bad())?,
        average_ms: average.parse().map_err(|_| bad())?,
    })
}

/// The two groups of `/Addresses:\s*([\S\s]*)Aliases:\s*([\S\s]*)$/`, or `None` when it does not
/// match. The first `Addresses:` starts the match; the greedy `[\S\s]*` backtracks to the last
/// `Aliases:`; each `\s*` eats the whitespace after its label.
pub fn read_nameresolver(output: &str) -> Option<(String, String)> {
    const ADDRESSES: &str = "Addresses:";
    const ALIASES: &str = "Aliases:";
    let start = output.find(ADDRESSES)? + ADDRESSES.len();
    let aliases_at = output.rfind(ALIASES)?;
    if aliases_at < start {
        return None;
    }
    let addresses = output[start..aliases_at].trim_start_matches(is_js_space);
    let aliases = output[aliases_at + ALIASES.len()..].trim_start_matches(is_js_space);
    Some((addresses.to_owned(), aliases.to_owned()))
}

/// The addresses of the first group: each line must be one bare address, tab-indented in the
/// output (the expression ate the first tab), with nothing after it.
pub fn bare_addresses(group: &str) -> Result<Vec<IpAddr>, String> {
    let body = group.strip_suffix("\r\n").unwrap_or(group);
    if body.is_empty() {
        return Ok(Vec::new());
    }
    body.split("\r\n")
        .enumerate()
        .map(|(index, line)| {
            let bare = if index == 0 {
                Some(line)
            } else {
                line.strip_prefix('\t')
            };
            bare.and_then(|address| address.parse().ok())
                .ok_or_else(|| format!("not a tab-indented bare address: {line:?}"))
        })
        .collect()
}

/// JavaScript's `\s` (the ASCII and Unicode spaces and line ends).
fn is_js_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kudu_captures_read_as_the_portal_reads_them() {
        let text = "Connection attempt failed: No such host is known\r\n".repeat(4)
            + "Complete: 0/4 successful attempts (0%). Average success time: 0ms\r\n";
        let read = read_tcpping(&text).unwrap();
        assert_eq!(read.statuses, vec![Status::HostNotFound; 4]);
        let complete = read_complete(&read.complete).unwrap();
        assert_eq!((complete.ok, complete.total, complete.percent), (0, 4, 0));
        assert_eq!(complete.average_ms, 0.0);
    }

    #[test]
    fn what_the_portal_rejects() {
        for (text, why) in [
            // A Linux error text.
            (
                "Connection attempt failed: Connection refused (1.2.3.4:80)\r\nComplete: 0/1 successful attempts (0%). Average success time: 0ms\r\n",
                "unknown status",
            ),
            // LF line ends: one long line, then no Complete.
            (
                "Connected to h:80, time taken: 1ms\nComplete: 1/1 successful attempts (100%). Average success time: 1ms\n",
                "no Complete",
            ),
            // A blank line.
            (
                "Connected to h:80, time taken: 1ms\r\n\r\nComplete: 1/1 successful attempts (100%). Average success time: 1ms\r\n",
                "unknown status",
            ),
            // Timeout in the middle of a line: the readings disagree.
            (
                "Connection attempt failed: Connection timed out\r\nComplete: 0/1 successful attempts (0%). Average success time: 0ms\r\n",
                "disagree",
            ),
        ] {
            let error = read_tcpping(text).unwrap_err();
            assert!(error.contains(why), "{text:?}: {error}");
        }
        assert!(read_complete("Complete: 0/1 successful attempts (0%).").is_err());
    }

    #[test]
    fn the_nameresolver_expression() {
        let (addresses, aliases) = read_nameresolver(
            "Server: x\r\n\r\nName: a\r\nAddresses:\r\n\t10.0.0.1\r\n\t10.0.0.2\r\nAliases:\r\n\tb\r\n",
        )
        .unwrap();
        assert_eq!(addresses, "10.0.0.1\r\n\t10.0.0.2\r\n");
        assert_eq!(aliases, "b\r\n");
        assert_eq!(
            bare_addresses(&addresses).unwrap(),
            vec![
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "10.0.0.2".parse().unwrap()
            ]
        );
        assert!(bare_addresses("10.0.0.1  (private)\r\n").is_err());
        assert!(bare_addresses("10.0.0.1\r\n        10.0.0.2\r\n").is_err());
        let (addresses, aliases) =
            read_nameresolver("Addresses:\r\n\t1.2.3.4\r\nAliases:\r\n").unwrap();
        assert_eq!((addresses.as_str(), aliases.as_str()), ("1.2.3.4\r\n", ""));
        assert_eq!(read_nameresolver("Addresses:\r\n\t1.2.3.4\r\n"), None);
        assert_eq!(read_nameresolver("Aliases:\r\nAddresses:\r\n"), None);
        assert_eq!(
            read_nameresolver("*** x can't find a: Non-existent domain\r\n"),
            None
        );
    }
}
