//! The text of Kudu's `tcpping.exe` and `nameresolver.exe` (`format=text` on `/diag`, the
//! `probe` CLI's default), written so that Microsoft's own reader of that text, the App Service
//! Diagnostics portal, can read it.
//!
//! That reader (`diag-provider.ts`) drops the output's last two characters, splits on `"\r\n"`
//! and classifies every tcpping line by a fixed Windows phrase; a line it does not know fails the
//! whole answer ("unknown status"), and a line starting `Complete` ends the attempts. It reads
//! nameresolver output with `/Addresses:\s*([\S\s]*)Aliases:\s*([\S\s]*)$/`. Hence the rules
//! here: CRLF after every line (the last too), one line per requested attempt whatever failed,
//! only the Windows phrases, the `Complete` summary always (`0ms` when nothing connected), bare
//! tab-indented addresses and an `Aliases:` line even when there are none. Everything else we
//! know (address classes, this system's error text, the address tried, the source address,
//! records of other types) is in the JSON and in the CLI's `--format human`, never here.
//!
//! How our outcomes map to the classes the portal knows (Windows socket error in brackets):
//!
//! | our outcome (JSON)                                   | Kudu line                                                                    | why this class |
//! |------------------------------------------------------|------------------------------------------------------------------------------|----------------|
//! | connected                                            | `Connected to H:P, time taken: Nms` (`<1ms`)                                 | success |
//! | `refused`                                            | `Connection attempt failed: No connection could be made because the target machine actively refused it` (10061) | the same event |
//! | `timeout`                                            | `Connection timed out`                                                       | the same event (tcpping's own timer) |
//! | `unreachable` (no route, source address unusable)    | `Connection attempt failed: An attempt was made to access a socket in a way forbidden by its access permissions` (10013) | what App Service's sandbox answers to a connect it will not route (a private address without VNet integration) |
//! | `denied` (the `/diag` target policy)                 | the same 10013 line                                                          | it is literally an access rule that forbade the connect |
//! | `dns` with `nxdomain`, `nodata`, `invalid_input`     | `Connection attempt failed: No such host is known` (11001)                   | the name gives no address (Windows has no parser-known phrase for NODATA) |
//! | `dns` with `timeout`, `servfail`, `refused`, `network`, `truncated`, `cname_loop`, `rcode`, `other` | `Connection attempt failed: A non-recoverable error occurred during a database lookup` (11003) | the lookup itself failed, not the name; Windows' own 11002 "temporary error" is unknown to the portal, and "timed out" would blame the target |
//!
//! The phrases are those .NET Framework tools print (`"Connection attempt failed: " +
//! SocketException.Message`, no final period), as in captures of `tcpping.exe`.
//!
//! A name that does not resolve, or an address the policy denies, sends nothing: the JSON has one
//! attempt for that one failure, the text repeats its line for each of the `count` attempts asked
//! for (`summary.requested`), as `tcpping.exe` does, and counts them all in `Complete`.

use crate::dns::{DnsErrorKind, Resolution};
use crate::failure::FailureKind;
use crate::tcpping::{PingAttempt, TcpPingReport, short_ms};

/// Line end of Kudu's text (its reader splits on it).
pub const CRLF: &str = "\r\n";
/// Start of a successful attempt's line.
pub const CONNECTED: &str = "Connected to ";
/// The line of an attempt that got no answer in time.
pub const TIMED_OUT: &str = "Connection timed out";
/// Start of every other failed attempt's line.
pub const ATTEMPT_FAILED: &str = "Connection attempt failed: ";
/// Windows' text for WSAECONNREFUSED (10061).
pub const REFUSED: &str =
    "No connection could be made because the target machine actively refused it";
/// Windows' text for WSAEACCES (10013).
pub const FORBIDDEN: &str =
    "An attempt was made to access a socket in a way forbidden by its access permissions";
/// Windows' text for WSAHOST_NOT_FOUND (11001).
pub const HOST_NOT_FOUND: &str = "No such host is known";
/// Windows' text for WSANO_RECOVERY (11003).
pub const NON_RECOVERABLE: &str = "A non-recoverable error occurred during a database lookup";

/// The `tcpping.exe` line of one failed attempt (see the table above).
pub fn failure_line(attempt: &PingAttempt) -> String {
    let phrase = match attempt.error {
        Some(FailureKind::Timeout) => return TIMED_OUT.to_owned(),
        Some(FailureKind::Refused) => REFUSED,
        // A failed attempt always has a kind; without one, say the connect was not allowed
        // rather than invent a network cause (a timeout or a refusal would send people looking
        // at the target).
        // A connect never fails as TLS or HTTP; were one to, it is no network cause either.
        Some(
            FailureKind::Unreachable
            | FailureKind::Denied
            | FailureKind::Tls
            | FailureKind::Http
            | FailureKind::ResourceExhausted,
        )
        | None => FORBIDDEN,
        Some(FailureKind::Dns) => match attempt.dns_error {
            Some(DnsErrorKind::Nxdomain | DnsErrorKind::Nodata | DnsErrorKind::InvalidInput)
            // A report from an older app says `dns` without the kind: the name did not resolve.
            | None => HOST_NOT_FOUND,
            Some(_) => NON_RECOVERABLE,
        },
    };
    format!("{ATTEMPT_FAILED}{phrase}")
}

/// The whole `tcpping.exe` output of a report.
pub fn tcpping_text(report: &TcpPingReport) -> String {
    let host = &report.target.host;
    let port = report.target.port;
    let mut lines: Vec<String> = report
        .attempts
        .iter()
        .map(|attempt| {
            if attempt.ok {
                format!(
                    "{CONNECTED}{host}:{port}, time taken: {}",
                    time_taken(attempt.rtt_ms.unwrap_or(0.0))
                )
            } else {
                failure_line(attempt)
            }
        })
        .collect();
    // One failure before any connect (lookup, policy) stands for every attempt asked for.
    let asked = report.summary.requested as usize;
    if let Some(last) = lines.last().cloned() {
        while lines.len() < asked {
            lines.push(last.clone());
        }
    }
    let total = lines.len() as u64;
    let ok = u64::from(report.summary.ok);
    let percent = (ok * 100 + total / 2).checked_div(total).unwrap_or(0);
    let average = report
        .summary
        .avg_ms
        .map_or_else(|| "0".to_owned(), short_ms);
    lines.push(format!(
        "Complete: {ok}/{total} successful attempts ({percent}%). Average success time: {average}ms"
    ));
    let mut out = lines.join(CRLF);
    out.push_str(CRLF);
    out
}

/// `12ms`, `<1ms`: whole milliseconds, as `tcpping.exe` prints them.
fn time_taken(rtt_ms: f64) -> String {
    if rtt_ms < 1.0 {
        "<1ms".to_owned()
    } else {
        format!("{}ms", rtt_ms.floor() as u64)
    }
}

/// The whole `nameresolver.exe` output of a lookup: the answer block with bare addresses, or
/// nslookup's `*** SERVER can't find NAME: REASON` line, which the portal's expression does not
/// match, so it reads a failed lookup as one.
pub fn nameresolver_text(resolution: &Resolution) -> String {
    let server = resolution.resolver.display_servers();
    let mut lines = vec![format!("Server: {server}"), String::new()];
    match &resolution.error {
        Some(error) => lines.push(format!(
            "*** {server} can't find {}: {}",
            resolution.query.name,
            error.kind.phrase()
        )),
        None => {
            let name = resolution
                .canonical_name
                .as_deref()
                .unwrap_or(&resolution.query.name);
            lines.push("Non-authoritative answer:".to_owned());
            lines.push(format!("Name:    {name}"));
            lines.push("Addresses:".to_owned());
            lines.extend(resolution.addresses.iter().map(|a| format!("\t{}", a.ip)));
            // Always there, even empty: without it the portal's expression matches nothing.
            lines.push("Aliases:".to_owned());
            lines.extend(resolution.chain.iter().map(|hop| format!("\t{}", hop.name)));
        }
    }
    let mut out = lines.join(CRLF);
    out.push_str(CRLF);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcpping::{PingSummary, PingTarget, PingVerdict, summarize};

    fn failed(error: FailureKind, dns_error: Option<DnsErrorKind>) -> PingAttempt {
        PingAttempt {
            seq: 1,
            ip: None,
            local_addr: None,
            ok: false,
            rtt_ms: None,
            error: Some(error),
            message: Some("connect: no route to host (os error 113)".into()),
            dns_error,
        }
    }

    #[test]
    fn every_failure_has_its_windows_line() {
        let forbidden = format!("{ATTEMPT_FAILED}{FORBIDDEN}");
        let not_found = format!("{ATTEMPT_FAILED}{HOST_NOT_FOUND}");
        let non_recoverable = format!("{ATTEMPT_FAILED}{NON_RECOVERABLE}");
        for (error, dns_error, line) in [
            (
                FailureKind::Refused,
                None,
                format!("{ATTEMPT_FAILED}{REFUSED}"),
            ),
            (FailureKind::Timeout, None, TIMED_OUT.to_owned()),
            (FailureKind::Unreachable, None, forbidden.clone()),
            (FailureKind::Denied, None, forbidden),
            (FailureKind::Dns, None, not_found.clone()),
        ] {
            assert_eq!(failure_line(&failed(error, dns_error)), line, "{error:?}");
        }
        for kind in [
            DnsErrorKind::Nxdomain,
            DnsErrorKind::Nodata,
            DnsErrorKind::InvalidInput,
        ] {
            let line = failure_line(&failed(FailureKind::Dns, Some(kind)));
            assert_eq!(line, not_found, "{kind:?}");
        }
        for kind in [
            DnsErrorKind::Timeout,
            DnsErrorKind::Servfail,
            DnsErrorKind::Refused,
            DnsErrorKind::Network,
            DnsErrorKind::Truncated,
            DnsErrorKind::CnameLoop,
            DnsErrorKind::Rcode,
            DnsErrorKind::Other,
        ] {
            let line = failure_line(&failed(FailureKind::Dns, Some(kind)));
            assert_eq!(line, non_recoverable, "{kind:?}");
        }
    }

    fn report(attempts: Vec<PingAttempt>, requested: u32) -> TcpPingReport {
        TcpPingReport {
            target: PingTarget {
                host: "app-be.azurewebsites.net".into(),
                port: 443,
                ip: None,
                resolved: vec![],
            },
            summary: PingSummary {
                requested,
                ..summarize(&attempts)
            },
            attempts,
            verdict: PingVerdict::Unresolved,
            hint: String::new(),
            denied: None,
        }
    }

    #[test]
    fn one_failure_before_any_connect_stands_for_every_attempt() {
        let attempt = failed(FailureKind::Dns, Some(DnsErrorKind::Servfail));
        assert_eq!(
            tcpping_text(&report(vec![attempt.clone()], 3)),
            format!("{ATTEMPT_FAILED}{NON_RECOVERABLE}\r\n").repeat(3)
                + "Complete: 0/3 successful attempts (0%). Average success time: 0ms\r\n"
        );
        // A report from an app that predates `requested` (0): the attempts as they are.
        assert_eq!(
            tcpping_text(&report(vec![attempt], 0)),
            format!("{ATTEMPT_FAILED}{NON_RECOVERABLE}\r\n")
                + "Complete: 0/1 successful attempts (0%). Average success time: 0ms\r\n"
        );
    }

    #[test]
    fn times_are_whole_milliseconds_or_under_one() {
        assert_eq!(time_taken(0.4), "<1ms");
        assert_eq!(time_taken(1.0), "1ms");
        assert_eq!(time_taken(12.9), "12ms");
    }
}
