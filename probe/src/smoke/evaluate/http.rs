//! Judging an HTTP check: who answered (the platform, the network or the app) and what the app
//! said; the order of the rules is on `http`.

use diag::failure::FailureKind;
use std::net::IpAddr;

use hosting::service_endpoint::UNDECODABLE;
use hosting::{AddressClass, CallerAddr, Membership};
use ipnet::IpNet;
use serde_json::Value;

use crate::smoke::config::{Action, Expect};
use diag::diagnosis::Code;
use diag::httpcheck::{AppServiceFinding, HttpCheckReport};

use super::*;

/// `source_in`: the local address decoded when it is not inside `range` (a service-endpoint
/// IPv6 form is compared by the IPv4 it carries, as `caller_in` does), `None` when it is.
pub(super) fn source_outside(ip: IpAddr, range: IpNet) -> Option<(CallerAddr, Membership)> {
    let source = CallerAddr::of(ip);
    match source.in_net(&range) {
        Membership::Inside => None,
        other => Some((source, other)),
    }
}

pub(super) fn egress_not_in_subnet(
    (outside, membership): (CallerAddr, Membership),
    range: IpNet,
    evidence: Vec<String>,
) -> Evaluation {
    if membership == Membership::Undecodable {
        return undecodable(
            &format!("the connection left from {}", outside.seen()),
            range,
            evidence,
        );
    }
    Evaluation::fail(
        Code::EgressNotInSubnet,
        format!(
            "the connection left from {outside}, outside {range}: this instance's outbound traffic does not go through the integration subnet. Check the app's VNet integration and that all outbound traffic is routed into the VNet (vnetRouteAllEnabled / outboundVnetRouting)."
        ),
        evidence,
    )
}

/// `caller_undecodable`: an IPv6 address (`who` says whose) that cannot be compared with the
/// IPv4 range of `caller_in` or `source_in`, said as such rather than failed as outside it.
pub(super) fn undecodable(who: &str, range: IpNet, evidence: Vec<String>) -> Evaluation {
    Evaluation::fail(
        Code::CallerUndecodable,
        format!(
            "{who}, {UNDECODABLE} such as {range}. A service-endpoint caller arrives as an IPv6 address in fde4:8dba::/32 carrying its VNet IPv4; this one is not in that form. If the call went through a service endpoint, the platform used another form: report the address. Otherwise write the expectation as an IPv6 range."
        ),
        evidence,
    )
}

pub(super) const RULE_CHANGES_TAKE_MINUTES: &str =
    "service endpoint and access rule changes take minutes to apply (--wait retries)";

/// A must-not-reach check that App Service (or a gateway) answered for the app.
pub(super) fn denied_by_platform(
    finding: &AppServiceFinding,
    mut evidence: Vec<String>,
) -> Evaluation {
    match finding.code() {
        // A stopped app or one with no instance answering refuses everyone: that says nothing
        // about the lockdown.
        Some(code @ (Code::AppStopped | Code::AppUnavailable)) => Evaluation::fail(
            code,
            sentences(&[
                &finding.message,
                "that says nothing about the lockdown",
                code.next_step(),
                "then run the check again",
            ]),
            evidence,
        ),
        Some(Code::GatewayRefused) => {
            evidence.push(format!(
                "denied by a gateway in front of the app{}, not by App Service's own rules: the app was not reached",
                finding
                    .server
                    .as_deref()
                    .map(|server| format!(" ({server})"))
                    .unwrap_or_default()
            ));
            Evaluation::pass(evidence)
        }
        _ => {
            evidence.push(match &finding.forbidden_ip {
                Some(ip) => format!(
                    "denied by App Service: {} (App Service saw the call as coming from {ip})",
                    finding.code
                ),
                None => format!("denied by App Service: {}", finding.code),
            });
            Evaluation::pass(evidence)
        }
    }
}

/// A check that had to reach the app, refused by App Service (or a gateway) before the app.
pub(super) fn refused_by_platform(
    finding: &AppServiceFinding,
    report: &HttpCheckReport,
    expect: &Expect,
    evidence: Vec<String>,
) -> Evaluation {
    // Where the call left from splits the two usual causes of an access restriction: the call
    // did not leave through the subnet, or the rule names another. With the subnet
    // (`source_in`) the check knows which one it is.
    // App Service's own word (`x-ms-forbidden-ip`, already in the finding's message) is
    // stronger than the socket's local address: it is what the rule was checked against.
    let source = report
        .target
        .local_addr
        .map(|a| a.ip().to_canonical())
        .filter(|_| finding.forbidden_ip.is_none());
    let context = match (finding.code(), source, expect.source_in) {
        (Some(Code::AccessRestricted), Some(ip), Some(range)) if range.contains(&ip) => format!(
            "the call left from {ip}, inside the integration subnet {range}, so the rule does not allow that subnet: check its vnetSubnetResourceId, and that the subnet has the Microsoft.Web service endpoint; {RULE_CHANGES_TAKE_MINUTES}"
        ),
        (Some(Code::AccessRestricted), Some(ip), Some(range)) => format!(
            "the call left from {ip}, outside the integration subnet {range}: this app's egress does not go through the VNet. Check its VNet integration and that route-all (vnetRouteAllEnabled) is on; {RULE_CHANGES_TAKE_MINUTES}"
        ),
        (Some(Code::AccessRestricted), Some(ip), None) => format!(
            "the call left from {ip}: if {ip} is in the integration subnet, the rule does not allow that subnet; if it is not, this app's egress does not go through the VNet"
        ),
        _ => String::new(),
    };
    Evaluation::fail_as(
        &finding.code,
        sentences(&[&finding.message, &context, &finding.hint]),
        evidence,
    )
}

/// Judges an HTTP check. The order of the rules matters; each one that applies decides:
///
/// 1. the app's `/diag` refused the target: nothing was checked;
/// 2. a must-not-reach check is judged on who answered: the platform, the network, or the app;
/// 3. no HTTP answer at all: the failure's own code;
/// 4. App Service (or a gateway) answered for an app the check had to reach: its refusal comes
///    before any expectation about the app's own answer, which never came;
/// 5. the app's own answer: its status, its error code, then where the call came from
///    (`source_in`, `caller_in`) and with which credential (`caller_auth`).
pub(super) fn http(
    action: &Action,
    expect: &Expect,
    report: &HttpCheckReport,
    body: Option<&Value>,
) -> Evaluation {
    let evidence = vec![describe_http(action, report)];
    if let Some(denied) = &report.denied {
        return target_denied(denied, evidence);
    }
    if expect.denied == Some(true) {
        return must_not_reach(report, evidence);
    }
    if let Some(error) = &report.error {
        // https to an address or a privatelink name: no certificate carries it, say that.
        if error.kind == FailureKind::Tls
            && let Action::Http { url } = action
            && url.scheme() == "https"
            && let Some(host) = url.host_str()
            && let Some(by) = diag::azure::called_by(host)
        {
            return Evaluation::fail(
                Code::CalledByAddress,
                sentences(&[&error.message, &by.explain(host)]),
                evidence,
            );
        }
        return connect_failed(error.kind, &format!("({})", error.message), evidence);
    }
    if let Some(finding) = &report.app_service
        && needs_the_app(expect)
    {
        return refused_by_platform(finding, report, expect, evidence);
    }
    the_apps_answer(expect, report, body, evidence)
}

/// A must-not-reach check: denied by the platform, by the network, or reached.
pub(super) fn must_not_reach(report: &HttpCheckReport, evidence: Vec<String>) -> Evaluation {
    if let Some(finding) = &report.app_service {
        return denied_by_platform(finding, evidence);
    }
    // A policy refusal says nothing about the target; the other failures are the network's
    // answer.
    if let Some(error) = report
        .error
        .as_ref()
        .filter(|e| e.kind != FailureKind::Denied)
    {
        let connected = report.timings_ms.connect.is_some();
        let private = report
            .target
            .ip
            .is_some_and(|ip| AddressClass::of(ip).is_private());
        return denied_by_network(error.kind, connected, private, evidence);
    }
    let status = report
        .status
        .map_or("a response".to_owned(), |s| format!("HTTP {s}"));
    let seen = if matches!(report.status, Some(401 | 403)) {
        format!(
            "the request reached the app itself, which answered {status}: only the app's own check stood in the way"
        )
    } else {
        format!("the request got {status}")
    };
    reachable(&seen, evidence)
}

/// Whether the check is about the app's own answer, so that the platform answering instead
/// fails it (a check expecting 403 may be satisfied by App Service's 403).
pub(super) fn needs_the_app(expect: &Expect) -> bool {
    expect.reachable == Some(true)
        || expect.status.is_some_and(|s| s != 403)
        || expect.caller_in.is_some()
        || expect.caller_auth.is_some()
        || expect.error_code.is_some()
        || expect.header.is_some()
        || expect.ok == Some(true)
}

/// The app answered: its status, its error code, then where the call came from and with which
/// credential.
pub(super) fn the_apps_answer(
    expect: &Expect,
    report: &HttpCheckReport,
    body: Option<&Value>,
    mut evidence: Vec<String>,
) -> Evaluation {
    if let Some(want) = expect.status
        && report.status != Some(want)
    {
        let got = report.status.map_or("no status".into(), |s| s.to_string());
        return Evaluation::fail(
            Code::UnexpectedStatus,
            format!("expected HTTP {want}, got {got}."),
            evidence,
        );
    }
    if let Some(name) = &expect.header {
        let name = name.to_ascii_lowercase();
        match report.headers.get(&name) {
            Some(value) => evidence.push(format!("the answer carried {name}: {value}")),
            None => {
                return Evaluation::fail(
                    Code::HeaderMissing,
                    format!(
                        "the answer carried no {name} header: {}",
                        if name == "x-azure-ref" {
                            "it did not come through Azure Front Door (check that the URL is the Front Door endpoint's, not the app's own)"
                        } else {
                            "something else than expected answered"
                        }
                    ),
                    evidence,
                );
            }
        }
    }
    if let Some(want) = &expect.error_code {
        match report.error_code.as_deref() {
            Some(got) if got == want => evidence.push(format!("the app refused with {got}")),
            Some(got) => {
                return Evaluation::fail(
                    Code::UnexpectedErrorCode,
                    format!(
                        "expected the app's error code {want}, got {got}: another gate refused (or let through) the call than the one this check is about."
                    ),
                    evidence,
                );
            }
            None => {
                return Evaluation::fail(
                    Code::UnexpectedErrorCode,
                    format!(
                        "expected the app's error code {want}, but the response carried no lockdown error envelope: something in front of the app answered (App Service Authentication answers 401 without a body), or the app let the call through."
                    ),
                    evidence,
                );
            }
        }
    }
    if let Some(range) = expect.source_in
        && let Some(outside) = report
            .target
            .local_addr
            .and_then(|a| source_outside(a.ip(), range))
    {
        return egress_not_in_subnet(outside, range, evidence);
    }
    if let Some(range) = expect.caller_in {
        let verdict = caller_in(range, body, evidence);
        return match &expect.caller_auth {
            Some(mode) if verdict.passed => caller_auth(mode, body, verdict.evidence),
            _ => verdict,
        };
    }
    if let Some(mode) = &expect.caller_auth {
        return caller_auth(mode, body, evidence);
    }
    Evaluation::pass(evidence)
}

pub(super) fn kind_name(kind: FailureKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(super) fn describe_http(action: &Action, report: &HttpCheckReport) -> String {
    let url = match action {
        Action::Http { url } => url.as_str(),
        _ => report.url.as_str(),
    };
    let mut text = format!("GET {url}");
    if let Some(ip) = report.target.ip {
        text += &format!(" ({ip})");
    }
    match (report.status, &report.error) {
        (Some(status), _) => text += &format!(" → {status} in {:.1} ms", report.timings_ms.total),
        (None, Some(error)) => {
            text += &format!(" → failed: {} ({})", kind_name(error.kind), error.message)
        }
        (None, None) => text += " → no response",
    }
    if let Some(local) = report.target.local_addr {
        text += &format!(", from {}", local.ip());
    }
    if let Some(finding) = &report.app_service {
        text += &format!(" [answered by the platform: {}]", finding.code);
    }
    if let Some(code) = &report.error_code {
        text += &format!(" [error code: {code}]");
    }
    text
}
