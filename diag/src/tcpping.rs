//! TCP ping, like Kudu's `tcpping`: resolve the host once with the app's resolver, check the
//! address against the target policy, then open `count` connections to exactly that address (no
//! second lookup), each from the app's outbound source, and say what the result means.

use crate::failure::FailureKind;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::dns::{DnsErrorKind, DnsResolver, round_ms};
use crate::outbound::connect_tcp;
use crate::policy::{Denied, Policy};
use crate::target::{Host, InputError, parse_bounded, parse_host, parse_port};

/// Default port (Kudu's).
pub const DEFAULT_PORT: u16 = 80;
/// Default number of attempts (Kudu's).
pub const DEFAULT_COUNT: u64 = 4;
/// Most attempts per request.
pub const MAX_COUNT: u64 = 20;
/// Default connect timeout per attempt, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 3_000;
/// Longest connect timeout per attempt (App Service's own tooling waits 21 s; a diagnostic needs
/// far less to say "timeout").
pub const MAX_TIMEOUT_MS: u64 = 10_000;
/// Default pause between attempts, in milliseconds.
pub const DEFAULT_INTERVAL_MS: u64 = 1_000;
/// Longest pause between attempts.
pub const MAX_INTERVAL_MS: u64 = 5_000;

/// A validated TCP ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPingRequest {
    /// The host as validated (IPs normalised).
    pub host: Host,
    /// The port.
    pub port: u16,
    /// Number of attempts, 1–20.
    pub count: u32,
    /// Connect timeout per attempt.
    pub timeout: Duration,
    /// Pause between attempts (0 allowed).
    pub interval: Duration,
}

impl TcpPingRequest {
    /// Validates the parameters as given in a query string or on the command line: port 1–65535
    /// (default 80), count 1–20 (default 4), timeout_ms 1–10000 (default 3000), interval_ms
    /// 0–5000 (default 1000).
    pub fn parse(
        host: &str,
        port: Option<&str>,
        count: Option<&str>,
        timeout_ms: Option<&str>,
        interval_ms: Option<&str>,
    ) -> Result<Self, InputError> {
        let host = parse_host(host)?;
        let port = port.map(parse_port).transpose()?.unwrap_or(DEFAULT_PORT);
        let count = parse_bounded("count", count, DEFAULT_COUNT, 1, MAX_COUNT)?;
        let timeout_ms = parse_bounded(
            "timeout_ms",
            timeout_ms,
            DEFAULT_TIMEOUT_MS,
            1,
            MAX_TIMEOUT_MS,
        )?;
        let interval_ms = parse_bounded(
            "interval_ms",
            interval_ms,
            DEFAULT_INTERVAL_MS,
            0,
            MAX_INTERVAL_MS,
        )?;
        Ok(Self {
            host,
            port,
            count: u32::try_from(count).unwrap_or(1),
            timeout: Duration::from_millis(timeout_ms),
            interval: Duration::from_millis(interval_ms),
        })
    }

    /// The longest the connects can take: every attempt timing out, plus the pauses.
    pub fn worst_case(&self) -> Duration {
        self.timeout * self.count + self.interval * self.count.saturating_sub(1)
    }

    /// The longest the name's lookup can take with `resolver` (zero for an IP address).
    pub fn lookup_limit(&self, resolver: &DnsResolver) -> Duration {
        match self.host {
            Host::Ip(_) => Duration::ZERO,
            Host::Name(_) => resolver.lookup_ip_limit(),
        }
    }
}

/// What was pinged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingTarget {
    /// The host as asked (IPs normalised).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The address every attempt connected to, when the name resolved.
    pub ip: Option<IpAddr>,
    /// Every address the name resolved to (the first IPv4 one, else the first, is used).
    pub resolved: Vec<IpAddr>,
}

/// One connection attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingAttempt {
    /// 1-based attempt number.
    pub seq: u32,
    /// The address connected to.
    pub ip: Option<IpAddr>,
    /// The local address the kernel chose (shows whether traffic leaves from the integration
    /// subnet).
    pub local_addr: Option<SocketAddr>,
    /// True when the connection opened.
    pub ok: bool,
    /// Time to open the connection, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Why it failed.
    pub error: Option<FailureKind>,
    /// The failure in words.
    pub message: Option<String>,
    /// How the lookup failed, when `error` is `dns` (`nxdomain`, `timeout`, `servfail`, …; the
    /// `error.kind` of `/diag/resolve`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dns_error: Option<DnsErrorKind>,
}

/// Aggregates over the attempts (times over successful attempts only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingSummary {
    /// Attempts asked for (`count`). More than `sent` when the name did not resolve or the policy
    /// denied the address: then one failure stands for every attempt and nothing was sent.
    #[serde(default)]
    pub requested: u32,
    /// Attempts made.
    pub sent: u32,
    /// Attempts that connected.
    pub ok: u32,
    /// Fastest connect.
    pub min_ms: Option<f64>,
    /// Mean connect time.
    pub avg_ms: Option<f64>,
    /// Slowest connect.
    pub max_ms: Option<f64>,
    /// Median connect time (nearest rank).
    pub p50_ms: Option<f64>,
}

/// The overall result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PingVerdict {
    /// Every attempt connected.
    Reachable,
    /// Some attempts connected.
    PartiallyReachable,
    /// No attempt connected.
    Unreachable,
    /// The name did not resolve; nothing was sent.
    Unresolved,
    /// The target policy forbids the address; nothing was sent.
    Denied,
    /// This app ran out of open files or memory before it could try: nothing was learnt about
    /// the network.
    LocalResourceExhausted,
}

/// The `/diag/tcpping` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpPingReport {
    /// What was pinged.
    pub target: PingTarget,
    /// Each attempt.
    pub attempts: Vec<PingAttempt>,
    /// Aggregates.
    pub summary: PingSummary,
    /// The overall result.
    pub verdict: PingVerdict,
    /// What the result means and what to check next.
    pub hint: String,
    /// Why the policy refused the target, when it did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub denied: Option<Denied>,
}

/// Pings `req.host:req.port`: one lookup, one policy check (when `policy` is given), then
/// `req.count` connects to that one address from `source`.
pub async fn tcp_ping(
    resolver: &DnsResolver,
    req: &TcpPingRequest,
    source: Option<IpAddr>,
    policy: Option<&Policy>,
) -> TcpPingReport {
    let mut target = PingTarget {
        host: req.host.to_string(),
        port: req.port,
        ip: None,
        resolved: Vec::new(),
    };
    let resolved = match &req.host {
        Host::Ip(ip) => Ok(vec![*ip]),
        Host::Name(name) => resolver.lookup_ip(name).await,
    };
    let ips = match resolved {
        Ok(ips) => ips,
        Err(failure) => {
            let attempt = PingAttempt {
                dns_error: Some(failure.kind),
                ..failed_attempt(None, FailureKind::Dns, failure.message)
            };
            return finish(target, vec![attempt], None, req);
        }
    };
    let ip = ips.iter().copied().find(IpAddr::is_ipv4).unwrap_or(ips[0]);
    target.ip = Some(ip);
    target.resolved = ips;
    if let Some(policy) = policy
        && let Err(denied) = policy.check(req.host.name(), ip, req.port)
    {
        let attempt = failed_attempt(Some(ip), FailureKind::Denied, denied.to_string());
        return finish(target, vec![attempt], Some(denied), req);
    }
    let addr = SocketAddr::new(ip, req.port);
    let mut attempts = Vec::with_capacity(req.count as usize);
    for seq in 1..=req.count {
        if seq > 1 && !req.interval.is_zero() {
            tokio::time::sleep(req.interval).await;
        }
        let started = Instant::now();
        let attempt = match connect_tcp(addr, source, req.timeout).await {
            Ok(stream) => PingAttempt {
                seq,
                ip: Some(ip),
                local_addr: stream.local_addr().ok(),
                ok: true,
                rtt_ms: Some(round_ms(started.elapsed())),
                error: None,
                message: None,
                dns_error: None,
            },
            Err(error) => PingAttempt {
                seq,
                ..failed_attempt(Some(ip), error.kind, error.message)
            },
        };
        tracing::debug!(seq, ok = attempt.ok, ip = %ip, port = req.port, "tcpping attempt");
        attempts.push(attempt);
    }
    finish(target, attempts, None, req)
}

fn failed_attempt(ip: Option<IpAddr>, error: FailureKind, message: String) -> PingAttempt {
    PingAttempt {
        seq: 1,
        ip,
        local_addr: None,
        ok: false,
        rtt_ms: None,
        error: Some(error),
        message: Some(message),
        dns_error: None,
    }
}

fn finish(
    target: PingTarget,
    attempts: Vec<PingAttempt>,
    denied: Option<Denied>,
    req: &TcpPingRequest,
) -> TcpPingReport {
    let summary = PingSummary {
        requested: req.count,
        ..summarize(&attempts)
    };
    let (verdict, hint) = verdict(&attempts, &summary, req);
    TcpPingReport {
        target,
        attempts,
        summary,
        verdict,
        hint,
        denied,
    }
}

/// Computes the summary over attempts (public for tests and the smoke runner); `requested` is
/// the number of attempts given.
pub fn summarize(attempts: &[PingAttempt]) -> PingSummary {
    let mut times: Vec<f64> = attempts.iter().filter_map(|a| a.rtt_ms).collect();
    times.sort_by(f64::total_cmp);
    let ok = attempts.iter().filter(|a| a.ok).count() as u32;
    let avg = (!times.is_empty())
        .then(|| (times.iter().sum::<f64>() / times.len() as f64 * 1000.0).round() / 1000.0);
    PingSummary {
        requested: attempts.len() as u32,
        sent: attempts.len() as u32,
        ok,
        min_ms: times.first().copied(),
        avg_ms: avg,
        max_ms: times.last().copied(),
        p50_ms: (!times.is_empty()).then(|| times[times.len().div_ceil(2) - 1]),
    }
}

fn verdict(
    attempts: &[PingAttempt],
    summary: &PingSummary,
    req: &TcpPingRequest,
) -> (PingVerdict, String) {
    let first_error = attempts.iter().find_map(|a| a.error);
    let port = req.port;
    match (summary.ok, first_error) {
        (ok, _) if ok == summary.sent && ok > 0 => (
            PingVerdict::Reachable,
            format!("TCP connections to port {port} open; if calls still fail, look above TCP: TLS, the HTTP status (an App Service 403 page), credentials"),
        ),
        (ok, error) if ok > 0 => (
            PingVerdict::PartiallyReachable,
            format!(
                "{ok} of {} attempts connected, the others failed ({}): an intermittent drop, an overloaded target, or one broken instance or path among several",
                summary.sent,
                error.map_or("unknown", FailureKind::as_str)
            ),
        ),
        (_, Some(FailureKind::Dns)) => (
            PingVerdict::Unresolved,
            "the name does not resolve with this app's DNS settings: check the name, DNS_SERVERS / WEBSITE_DNS_SERVER, and that the private DNS zone is linked to the VNet".to_owned(),
        ),
        (_, Some(FailureKind::Denied)) => (
            PingVerdict::Denied,
            "the diag target policy forbids this address; nothing was sent: allow it in DIAG_ALLOW".to_owned(),
        ),
        (_, Some(FailureKind::Timeout)) => (
            PingVerdict::Unreachable,
            format!("no answer within {} ms: a firewall, an NSG or a route drops the packets (App Service's own tooling waits 21 s before it gives up); check the NSG and route table of the integration subnet, route-all, and the target's access rules", req.timeout.as_millis()),
        ),
        (_, Some(FailureKind::ResourceExhausted)) => (
            PingVerdict::LocalResourceExhausted,
            "this app ran out of a local resource (open files or memory) before the connect, so nothing was learnt about the network: look at the app's own limits (ulimit -n, MAX_CONNECTIONS, connections left open), not at VNet integration".to_owned(),
        ),
        (_, Some(FailureKind::Refused)) => (
            PingVerdict::Unreachable,
            format!("the address answered but nothing listens on port {port}: check the port, and that the service is running"),
        ),
        (_, _) => (
            PingVerdict::Unreachable,
            "no route to the address from this instance, or the source address is unusable: check the VNet integration, route-all, the route table and OUTBOUND_SOURCE_ADDR".to_owned(),
        ),
    }
}

impl TcpPingReport {
    /// The text of Kudu's `tcpping.exe`, which Microsoft's Diagnostics portal can read
    /// (`format=text`, the CLI's default): see [`crate::kudu`].
    pub fn to_text(&self) -> String {
        crate::kudu::tcpping_text(self)
    }

    /// A richer text for a person at a shell (`probe tcpping --format human`): the address
    /// tried, the source address the kernel chose, and the failure in this system's words, then
    /// the verdict and the hint. Not for parsers.
    pub fn to_human_text(&self) -> String {
        let mut out = String::new();
        let host = &self.target.host;
        let port = self.target.port;
        for attempt in &self.attempts {
            let place = match attempt.ip {
                Some(ip) => SocketAddr::new(ip, port).to_string(),
                None => format!("{host}:{port}"),
            };
            if attempt.ok {
                let rtt = short_ms(attempt.rtt_ms.unwrap_or(0.0));
                let from = attempt
                    .local_addr
                    .map(|local| format!(" from {local}"))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "#{} connected to {place}{from} in {rtt} ms\n",
                    attempt.seq
                ));
            } else {
                let message = attempt.message.as_deref().unwrap_or("failed");
                let kind = attempt.error.map_or("failed", FailureKind::as_str);
                out.push_str(&format!("#{} {kind}: {message} ({place})\n", attempt.seq));
            }
        }
        let summary = &self.summary;
        out.push_str(&format!("{}/{} connected", summary.ok, summary.sent));
        if let (Some(min), Some(avg), Some(max)) = (summary.min_ms, summary.avg_ms, summary.max_ms)
        {
            out.push_str(&format!(
                ", min/avg/max {}/{}/{} ms",
                short_ms(min),
                short_ms(avg),
                short_ms(max)
            ));
        }
        out.push_str(&format!(
            "\nVerdict: {}\nHint: {}\n",
            verdict_word(self.verdict),
            self.hint
        ));
        out
    }
}

fn verdict_word(verdict: PingVerdict) -> &'static str {
    match verdict {
        PingVerdict::Reachable => "reachable",
        PingVerdict::PartiallyReachable => "partially reachable",
        PingVerdict::Unreachable => "unreachable",
        PingVerdict::Unresolved => "unresolved",
        PingVerdict::Denied => "denied",
        PingVerdict::LocalResourceExhausted => "this app ran out of open files or memory",
    }
}

/// `4.5`, `12`, `0.34`: at most two decimals, no trailing zeros.
pub(crate) fn short_ms(ms: f64) -> String {
    let text = format!("{ms:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(seq: u32, rtt: f64) -> PingAttempt {
        PingAttempt {
            seq,
            ip: Some("127.0.0.1".parse().unwrap()),
            local_addr: Some("127.0.0.1:50000".parse().unwrap()),
            ok: true,
            rtt_ms: Some(rtt),
            error: None,
            message: None,
            dns_error: None,
        }
    }

    #[test]
    fn parse_defaults_and_bounds() {
        let req =
            TcpPingRequest::parse("app-be.azurewebsites.net", None, None, None, None).unwrap();
        assert_eq!((req.port, req.count), (80, 4));
        assert_eq!(req.timeout, Duration::from_millis(3000));
        assert_eq!(req.interval, Duration::from_millis(1000));
        assert_eq!(req.worst_case(), Duration::from_millis(15_000));
        assert!(
            TcpPingRequest::parse("h", Some("443"), Some("20"), Some("10000"), Some("0")).is_ok()
        );
        for (port, count, timeout, interval) in [
            (Some("0"), None, None, None),
            (Some("65536"), None, None, None),
            (Some("http"), None, None, None),
            (None, Some("21"), None, None),
            (None, Some("1000000"), None, None),
            (None, Some("0"), None, None),
            (None, None, Some("10001"), None),
            (None, None, Some("0"), None),
            (None, None, None, Some("5001")),
            (None, None, None, Some("-1")),
        ] {
            assert!(
                TcpPingRequest::parse("h", port, count, timeout, interval).is_err(),
                "{port:?} {count:?} {timeout:?} {interval:?}"
            );
        }
    }

    #[test]
    fn summary_statistics() {
        let mut failed = failed_attempt(None, FailureKind::Refused, "Connection refused".into());
        failed.seq = 4;
        let attempts = vec![ok(1, 12.0), ok(2, 0.5), ok(3, 1.0), failed];
        let summary = summarize(&attempts);
        assert_eq!((summary.sent, summary.ok), (4, 3));
        assert_eq!(summary.min_ms, Some(0.5));
        assert_eq!(summary.max_ms, Some(12.0));
        assert_eq!(summary.avg_ms, Some(4.5));
        assert_eq!(summary.p50_ms, Some(1.0));
        let none = summarize(&[]);
        assert_eq!((none.sent, none.avg_ms, none.p50_ms), (0, None, None));
    }

    #[test]
    fn the_human_text_keeps_what_the_kudu_text_leaves_out() {
        let mut failed = failed_attempt(
            Some("127.0.0.1".parse().unwrap()),
            FailureKind::Refused,
            "Connection refused".into(),
        );
        failed.seq = 2;
        let attempts = vec![ok(1, 1.5), failed];
        let report = TcpPingReport {
            target: PingTarget {
                host: "loopback.lockdown.test".into(),
                port: 8080,
                ip: Some("127.0.0.1".parse().unwrap()),
                resolved: vec!["127.0.0.1".parse().unwrap()],
            },
            summary: summarize(&attempts),
            attempts,
            verdict: PingVerdict::PartiallyReachable,
            hint: "one path fails".into(),
            denied: None,
        };
        assert_eq!(
            report.to_human_text(),
            "#1 connected to 127.0.0.1:8080 from 127.0.0.1:50000 in 1.5 ms\n\
             #2 refused: Connection refused (127.0.0.1:8080)\n\
             1/2 connected, min/avg/max 1.5/1.5/1.5 ms\n\
             Verdict: partially reachable\n\
             Hint: one path fails\n"
        );
    }

    #[test]
    fn short_milliseconds() {
        assert_eq!(short_ms(4.5), "4.5");
        assert_eq!(short_ms(12.0), "12");
        assert_eq!(short_ms(0.337), "0.34");
    }
}
