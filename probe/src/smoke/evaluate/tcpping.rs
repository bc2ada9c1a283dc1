//! Judging TCP connects, and what a failed connection means for a must-not-reach check.

use diag::failure::FailureKind;

use hosting::AddressClass;

use crate::smoke::config::Expect;
use diag::diagnosis::Code;
use diag::tcpping::TcpPingReport;

use super::*;

pub(super) fn tcpping(expect: &Expect, report: &TcpPingReport) -> Evaluation {
    with_service_context(judge(expect, report), report)
}

/// A failed connect to a catalogued Azure service other than App Service (a database, a vault…)
/// says first what the target is and what its failure means for it: the codes' own next steps
/// speak of the apps, the hop the tool started from.
fn with_service_context(mut evaluation: Evaluation, report: &TcpPingReport) -> Evaluation {
    let Some(found) = diag::azure::lookup(&report.target.host) else {
        return evaluation;
    };
    let service = found.service;
    if evaluation.passed || service.key.starts_with("app_service") {
        return evaluation;
    }
    let zone = service.zones.join(" or ");
    let public_ip = report
        .target
        .ip
        .filter(|ip| AddressClass::of(*ip) == AddressClass::Public);
    let context = match (evaluation.code.as_deref(), public_ip) {
        (Some("reachable_but_should_be_denied"), _) => format!(
            "{} is {}: its public endpoint answers here. Set the server's public network access to Disabled (a private endpoint alone does not close it).",
            report.target.host, service.name
        ),
        (_, Some(ip)) => format!(
            "{} is {}, and it was tried at {ip}, not a private endpoint's address: resolve it through {zone}, linked to the VNet the app resolves through.",
            report.target.host, service.name
        ),
        _ => format!("{} is {}.", report.target.host, service.name),
    };
    evaluation.diagnosis = Some(match evaluation.diagnosis.take() {
        Some(text) => format!("{context} {text}"),
        None => context,
    });
    evaluation
}

fn judge(expect: &Expect, report: &TcpPingReport) -> Evaluation {
    let evidence = vec![describe_ping(report)];
    if let Some(denied) = &report.denied {
        return target_denied(denied, evidence);
    }
    let first_error = report.attempts.iter().find_map(|a| a.error);
    let connected = report.summary.ok;
    if expect.denied == Some(true) {
        if connected > 0 {
            return reachable(
                &format!("{connected}/{} connects succeeded", report.summary.sent),
                evidence,
            );
        }
        let private = report
            .target
            .ip
            .is_some_and(|ip| AddressClass::of(ip).is_private());
        return denied_by_network(
            first_error.unwrap_or(FailureKind::Timeout),
            false,
            private,
            evidence,
        );
    }
    let all_ok = connected == report.summary.sent && connected > 0;
    let needs_connect =
        expect.reachable == Some(true) || expect.ok == Some(true) || expect.source_in.is_some();
    if needs_connect && connected == 0 {
        return connect_failed(first_error.unwrap_or(FailureKind::Timeout), "", evidence);
    }
    if expect.ok == Some(true) && !all_ok {
        return Evaluation::fail(
            Code::PartiallyReachable,
            format!(
                "{connected}/{} connects succeeded: one path or one instance behind the address is failing.",
                report.summary.sent
            ),
            evidence,
        );
    }
    if let Some(range) = expect.source_in
        && let Some(outside) = report
            .attempts
            .iter()
            .filter_map(|a| a.local_addr)
            .find_map(|addr| source_outside(addr.ip(), range))
    {
        return egress_not_in_subnet(outside, range, evidence);
    }
    if expect.address_in.is_some() && report.target.ip.is_none() {
        return Evaluation::fail(
            Code::NoAddress,
            format!(
                "{} did not resolve, so address_in cannot hold.",
                report.target.host
            ),
            evidence,
        );
    }
    if let Some(range) = expect.address_in
        && let Some(ip) = report.target.ip
        && !range.contains(&ip.to_canonical())
    {
        return Evaluation::fail(
            Code::UnexpectedAddress,
            format!(
                "{} was reached at {ip}, outside {range}.",
                report.target.host
            ),
            evidence,
        );
    }
    Evaluation::pass(evidence)
}

/// Judges a must-not-reach check that got no HTTP answer. Only what proves the target refuses
/// this caller counts as denied: a refused connect, a connect that timed out, or a private
/// address with no route from here. A name that does not resolve, a timeout after the
/// connection was made, or no route to a public address prove nothing about the lockdown.
pub(super) fn denied_by_network(
    error: FailureKind,
    connected: bool,
    private: bool,
    mut evidence: Vec<String>,
) -> Evaluation {
    match (error, connected) {
        (FailureKind::Timeout | FailureKind::Refused, true) => reachable(
            "a connection was made, then the server did not answer in time",
            evidence,
        ),
        (FailureKind::Refused | FailureKind::Timeout, false) => {
            evidence.push(if private {
                "denied: a private address that does not route from here".into()
            } else if error == FailureKind::Refused {
                "denied by the network: connection refused".into()
            } else {
                "denied by the network: the connect timed out".into()
            });
            Evaluation::pass(evidence)
        }
        (FailureKind::Unreachable, _) if private => {
            evidence.push("denied: a private address that does not route from here".into());
            Evaluation::pass(evidence)
        }
        (FailureKind::Dns, _) => Evaluation::fail(Code::DnsFailure,
            "the name does not resolve from here, so this check cannot tell whether the lockdown holds: check the URL and this machine's DNS.".into(),
            evidence,
        ),
        (FailureKind::Unreachable, _) => Evaluation::fail(Code::NetworkUnreachable,
            "there is no route from here to a public address: that is this machine's network, not the lockdown, so this check cannot tell.".into(),
            evidence,
        ),
        (FailureKind::ResourceExhausted, _) => Evaluation::fail(Code::LocalResourceExhausted,
            "the app running the check ran out of open files or memory before it could connect, so this check cannot tell.".into(),
            evidence,
        ),
        (FailureKind::Denied, _) => Evaluation::fail(Code::DiagTargetDenied,
            "the app's /diag refused this target: add it to the app's DIAG_ALLOW to run this check.".into(),
            evidence,
        ),
        // A TLS or HTTP failure comes after the connection was made: the target is reachable.
        (FailureKind::Tls | FailureKind::Http, _) => reachable(
            "a connection was made (the failure came after it, in TLS or HTTP)",
            evidence,
        ),
    }
}

/// What a failure looked like from the check, in its words (the code and its next step come
/// from the one taxonomy and vocabulary).
pub(super) fn seen_failing(error: FailureKind) -> &'static str {
    match error {
        FailureKind::Timeout => "nothing answered the TCP handshake",
        FailureKind::Refused => "the address answered but nothing listens on that port",
        FailureKind::Unreachable => "there is no route to the address from where the check ran",
        FailureKind::Dns => "the name does not resolve where this check ran",
        FailureKind::Denied => "the app's /diag refused this target",
        FailureKind::Tls => "the TLS handshake failed",
        FailureKind::Http => "something answered, but not with HTTP",
        FailureKind::ResourceExhausted => "the checking side ran out of open files or memory",
    }
}

/// Fails a check whose connection failed: what was seen, the detail, the code's next step.
pub(super) fn connect_failed(
    error: FailureKind,
    detail: &str,
    evidence: Vec<String>,
) -> Evaluation {
    let code = error.code();
    Evaluation::fail(
        code,
        sentences(&[seen_failing(error), detail, code.next_step()]),
        evidence,
    )
}

/// The must-not-reach check that was reached: what let the call in, then the next step.
pub(super) fn reachable(seen: &str, evidence: Vec<String>) -> Evaluation {
    let code = Code::ReachableButShouldBeDenied;
    Evaluation::fail(
        code,
        sentences(&[
            seen,
            "this must not be reachable from here, and it is: the lockdown is missing or not applied yet",
            code.next_step(),
        ]),
        evidence,
    )
}

pub(super) fn describe_ping(report: &TcpPingReport) -> String {
    let target = match report.target.ip {
        Some(ip) => format!("{}:{} ({ip})", report.target.host, report.target.port),
        None => format!("{}:{}", report.target.host, report.target.port),
    };
    let mut text = format!(
        "{target}: {}/{} connected",
        report.summary.ok, report.summary.sent
    );
    if let Some(avg) = report.summary.avg_ms {
        text += &format!(", avg {avg:.1} ms");
    }
    let sources: Vec<String> = report
        .attempts
        .iter()
        .filter_map(|a| a.local_addr.map(|addr| addr.ip().to_string()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !sources.is_empty() {
        text += &format!(", from {}", sources.join(", "));
    }
    if let Some(error) = report.attempts.iter().find_map(|a| a.error) {
        text += &format!(
            ", failed: {}",
            serde_json::to_value(error)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        );
    }
    text
}
