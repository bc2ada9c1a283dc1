//! Judging one outcome against its expectations: a verdict, the evidence in plain words, and —
//! when it fails — a diagnosis code and what to do next.

use diag::failure::FailureKind;
use std::net::IpAddr;

use hosting::service_endpoint::UNDECODABLE;
use hosting::{AddressClass, CallerAddr, Membership};
use ipnet::IpNet;
use serde_json::Value;

use crate::smoke::config::{Action, Expect};
use diag::diagnosis::Code;
use diag::dns::{DnsErrorKind, Resolution};
use diag::httpcheck::{AppServiceFinding, HttpCheckReport};
use diag::tcpping::TcpPingReport;

/// What an action produced, wherever it ran.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A DNS lookup.
    Resolve(Resolution),
    /// TCP connects.
    TcpPing(TcpPingReport),
    /// An HTTP request, with the JSON body when the check needs it (`caller_in`, from here).
    Http {
        /// The request's report.
        report: Box<HttpCheckReport>,
        /// The response body as JSON, when it was read and parsed.
        body: Option<Value>,
    },
    /// The check could not run (the app's `/diag` unreachable or refusing, …).
    NotRun {
        /// Diagnosis code.
        code: Code,
        /// What happened.
        message: String,
    },
}

/// The verdict on one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Every expectation held.
    pub passed: bool,
    /// Why not, as a stable code.
    pub code: Option<String>,
    /// Why not, in plain words, with the next step.
    pub diagnosis: Option<String>,
    /// What was seen.
    pub evidence: Vec<String>,
}

impl Evaluation {
    fn pass(evidence: Vec<String>) -> Self {
        Self {
            passed: true,
            code: None,
            diagnosis: None,
            evidence,
        }
    }

    fn fail(code: Code, diagnosis: String, evidence: Vec<String>) -> Self {
        Self::fail_as(code.as_str(), diagnosis, evidence)
    }

    /// Fails with a code another program gave (the front end's diagnosis, carried as it is).
    fn fail_as(code: &str, diagnosis: String, evidence: Vec<String>) -> Self {
        Self {
            passed: false,
            code: Some(code.to_owned()),
            diagnosis: Some(diagnosis),
            evidence,
        }
    }
}

/// Judges `outcome` against `expect`.
pub fn evaluate(action: &Action, expect: &Expect, outcome: &Outcome) -> Evaluation {
    match outcome {
        Outcome::NotRun { code, message } => Evaluation::fail(*code, message.clone(), Vec::new()),
        Outcome::Resolve(resolution) => resolve(expect, resolution),
        Outcome::TcpPing(report) => tcpping(expect, report),
        Outcome::Http { report, body } => http(action, expect, report, body.as_ref()),
    }
}

// ---- resolve ----

fn resolve(expect: &Expect, r: &Resolution) -> Evaluation {
    let evidence = vec![describe_resolution(r)];
    let Some(error) = r.error.as_ref().filter(|_| !r.ok) else {
        return resolved(expect, r, evidence);
    };
    if expect.ok == Some(false) {
        return Evaluation::pass(evidence);
    }
    let next = match error.kind {
        DnsErrorKind::Nxdomain => {
            "the name does not exist in the DNS this check used: check the spelling, and that the app uses the VNet's DNS (WEBSITE_DNS_SERVER or the VNet's DNS servers)"
        }
        DnsErrorKind::Timeout | DnsErrorKind::Network => {
            "the DNS server did not answer: check WEBSITE_DNS_SERVER / the VNet's DNS servers, and that a firewall or NSG lets DNS (UDP and TCP 53) through"
        }
        DnsErrorKind::Nodata => "the name exists but has no record of that type",
        _ => "the DNS server failed to answer this name: check the server and the zone",
    };
    Evaluation::fail(
        Code::DnsFailure,
        format!("{} ({}); {next}.", r.query.host, error.message),
        evidence,
    )
}

fn resolved(expect: &Expect, r: &Resolution, evidence: Vec<String>) -> Evaluation {
    if expect.ok == Some(false) {
        return Evaluation::fail(
            Code::UnexpectedAnswer,
            format!("{} resolves, but it must not from here.", r.query.host),
            evidence,
        );
    }
    let addresses: Vec<IpAddr> = r.addresses.iter().map(|a| a.ip).collect();
    if let Some(want) = expect.privatelink
        && r.privatelink != want
    {
        return if want {
            Evaluation::fail(
                Code::NoPrivatelink,
                format!(
                    "{} has no *.privatelink.* hop in its CNAME chain: the app is not served through a private endpoint, or its private endpoint has no DNS zone group.",
                    r.query.host
                ),
                evidence,
            )
        } else {
            Evaluation::fail(
                Code::UnexpectedPrivatelink,
                format!(
                    "{} goes through a privatelink hop although it should not.",
                    r.query.host
                ),
                evidence,
            )
        };
    }
    if expect.private.is_some() && r.addresses.is_empty() {
        return Evaluation::fail(
            Code::NoAddress,
            format!("{} has no address, so private cannot hold.", r.query.host),
            evidence,
        );
    }
    if expect.private == Some(true)
        && let Some(public) = r.addresses.iter().find(|a| !a.class.is_private())
    {
        return Evaluation::fail(
            Code::ResolvesPublic,
            format!(
                "{} resolves to {} ({}), not to a private endpoint: {}",
                r.query.host,
                public.ip,
                public.class,
                unlinked_zone_hint(r)
            ),
            evidence,
        );
    }
    if expect.private == Some(false)
        && let Some(private) = r.addresses.iter().find(|a| a.class.is_private())
    {
        return Evaluation::fail(
            Code::ResolvesPrivate,
            format!(
                "{} resolves to {} ({}) although it should resolve publicly here: a private endpoint (or a private DNS zone) still answers for it — with a private endpoint, service-endpoint access rules do not apply.",
                r.query.host, private.ip, private.class
            ),
            evidence,
        );
    }
    if let Some(range) = expect.address_in {
        if addresses.is_empty() {
            return Evaluation::fail(
                Code::NoAddress,
                format!("{} has no address.", r.query.host),
                evidence,
            );
        }
        if let Some(outside) = addresses
            .iter()
            .find(|ip| !range.contains(&ip.to_canonical()))
        {
            return Evaluation::fail(
                Code::UnexpectedAddress,
                format!(
                    "{} resolves to {outside}, outside {range}. {}",
                    r.query.host,
                    unlinked_zone_hint(r)
                ),
                evidence,
            );
        }
    }
    Evaluation::pass(evidence)
}

fn unlinked_zone_hint(r: &Resolution) -> &'static str {
    if r.privatelink {
        "The name goes through privatelink.azurewebsites.net but the answer is not the private endpoint's address: the private DNS zone is not linked to the VNet this app resolves through (or the app does not use the VNet's DNS)."
    } else {
        "If this should be a private endpoint: create it with a DNS zone group, link the privatelink.azurewebsites.net zone to the VNet, and make the app resolve through the VNet's DNS."
    }
}

fn describe_resolution(r: &Resolution) -> String {
    let mut text = r.query.host.clone();
    for hop in &r.chain {
        text += &format!(" → CNAME {}", hop.target);
    }
    if r.ok {
        let addresses: Vec<String> = r
            .addresses
            .iter()
            .map(|a| format!("{} ({})", a.ip, a.class))
            .collect();
        text += &format!(
            " → {}",
            if addresses.is_empty() {
                "no address".into()
            } else {
                addresses.join(", ")
            }
        );
    } else if let Some(error) = &r.error {
        text += &format!(": {} ({})", error.kind.phrase(), error.message);
    }
    let servers: Vec<String> = r.resolver.servers.iter().map(ToString::to_string).collect();
    format!(
        "{text} in {:.1} ms via {}",
        r.duration_ms,
        if servers.is_empty() {
            "the system resolver".into()
        } else {
            servers.join(", ")
        }
    )
}

// ---- tcpping ----

fn tcpping(expect: &Expect, report: &TcpPingReport) -> Evaluation {
    let evidence = vec![describe_ping(report)];
    if let Some(denied) = &report.denied {
        return Evaluation::fail(
            Code::DiagTargetDenied,
            format!(
                "the app's /diag refused this target ({:?}): add it to the app's DIAG_ALLOW to run this check.",
                denied.reason
            ),
            evidence,
        );
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
fn denied_by_network(
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
fn seen_failing(error: FailureKind) -> &'static str {
    match error {
        FailureKind::Timeout => "nothing answered the TCP handshake",
        FailureKind::Refused => "the address answered but nothing listens on that port",
        FailureKind::Unreachable => "there is no route to the address from where the check ran",
        FailureKind::Dns => "the name does not resolve where this check ran",
        FailureKind::Denied => "the app's /diag refused this target",
        FailureKind::Tls => "the TLS handshake failed",
        FailureKind::Http => "something answered, but not with HTTP",
    }
}

/// Fails a check whose connection failed: what was seen, the detail, the code's next step.
fn connect_failed(error: FailureKind, detail: &str, evidence: Vec<String>) -> Evaluation {
    let code = error.code();
    Evaluation::fail(
        code,
        sentences(&[seen_failing(error), detail, code.next_step()]),
        evidence,
    )
}

/// The must-not-reach check that was reached: what let the call in, then the next step.
fn reachable(seen: &str, evidence: Vec<String>) -> Evaluation {
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

fn describe_ping(report: &TcpPingReport) -> String {
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

// ---- http ----

/// `source_in`: the local address decoded when it is not inside `range` (a service-endpoint
/// IPv6 form is compared by the IPv4 it carries, as `caller_in` does), `None` when it is.
fn source_outside(ip: IpAddr, range: IpNet) -> Option<(CallerAddr, Membership)> {
    let source = CallerAddr::of(ip);
    match source.in_net(&range) {
        Membership::Inside => None,
        other => Some((source, other)),
    }
}

fn egress_not_in_subnet(
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
fn undecodable(who: &str, range: IpNet, evidence: Vec<String>) -> Evaluation {
    Evaluation::fail(
        Code::CallerUndecodable,
        format!(
            "{who}, {UNDECODABLE} such as {range}. A service-endpoint caller arrives as an IPv6 address in fde4:8dba::/32 carrying its VNet IPv4; this one is not in that form. If the call went through a service endpoint, the platform used another form: report the address. Otherwise write the expectation as an IPv6 range."
        ),
        evidence,
    )
}

const RULE_CHANGES_TAKE_MINUTES: &str =
    "service endpoint and access rule changes take minutes to apply (--wait retries)";

/// A must-not-reach check that App Service (or a gateway) answered for the app.
fn denied_by_platform(finding: &AppServiceFinding, mut evidence: Vec<String>) -> Evaluation {
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
fn refused_by_platform(
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

fn http(
    action: &Action,
    expect: &Expect,
    report: &HttpCheckReport,
    body: Option<&Value>,
) -> Evaluation {
    let mut evidence = vec![describe_http(action, report)];
    if let Some(denied) = &report.denied {
        return Evaluation::fail(
            Code::DiagTargetDenied,
            format!(
                "the app's /diag refused this target ({:?}): add it to the app's DIAG_ALLOW to run this check.",
                denied.reason
            ),
            evidence,
        );
    }
    if expect.denied == Some(true) {
        if let Some(finding) = &report.app_service {
            return denied_by_platform(finding, evidence);
        }
        if let Some(error) = &report.error {
            // A policy refusal says nothing about the target; the rest are the network's answer.
            if error.kind != FailureKind::Denied {
                let attempt = error.kind;
                let connected = report.timings_ms.connect.is_some();
                let private = report
                    .target
                    .ip
                    .is_some_and(|ip| AddressClass::of(ip).is_private());
                return denied_by_network(attempt, connected, private, evidence);
            }
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
        return reachable(&seen, evidence);
    }
    if let Some(error) = &report.error {
        return connect_failed(error.kind, &format!("({})", error.message), evidence);
    }
    if let Some(finding) = &report.app_service
        && (expect.reachable == Some(true)
            || expect.status.is_some_and(|s| s != 403)
            || expect.caller_in.is_some()
            || expect.caller_auth.is_some()
            || expect.error_code.is_some()
            || expect.ok == Some(true))
    {
        return refused_by_platform(finding, report, expect, evidence);
    }
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

/// The credential that let the caller in (`caller.auth.mode` of the front end's `/api/path`, or
/// `auth.mode` of the back end's `/api/caller`) must be `want`.
fn caller_auth(want: &str, body: Option<&Value>, mut evidence: Vec<String>) -> Evaluation {
    let Some(body) = body else {
        return Evaluation::fail(Code::CallerUnknown, "the response is not JSON: caller_auth needs a body like the front end's /api/path or the back end's /api/caller.".into(), evidence);
    };
    let auth = if body["caller"].is_object() {
        &body["caller"]["auth"]
    } else {
        &body["auth"]
    };
    let Some(seen) = auth["mode"].as_str() else {
        if let Some(diagnosis) = front_end_diagnosis(body) {
            return diagnosis.carried(evidence);
        }
        return Evaluation::fail(Code::CallerUnknown,
            "the body says nothing about the caller's credential (no auth.mode): the back end predates credential reporting, or this is not /api/path or /api/caller.".into(),
            evidence,
        );
    };
    let who = match (auth["app_id"].as_str(), auth["object_id"].as_str()) {
        (Some(app), Some(object)) => format!(" (application {app}, object {object})"),
        _ => String::new(),
    };
    evidence.push(format!("the back end let the caller in by {seen}{who}"));
    if seen == want {
        return Evaluation::pass(evidence);
    }
    let why = match seen {
        "none" => "the back end checks no credential (AUTH_MODE=none, or API_KEYS empty): whoever reaches it gets in. Set AUTH_MODE on the back end.".to_owned(),
        "api-key" if want == "entra" => "the back end still takes the API key: set AUTH_MODE=entra (and the ENTRA_* settings) on the back end, and BACKEND_AUTH=entra on the front end.".to_owned(),
        _ => format!("the back end let the caller in by {seen}, not by {want}: set AUTH_MODE on the back end and BACKEND_AUTH on the front end to {want}."),
    };
    Evaluation::fail(Code::UnexpectedCallerAuth, why, evidence)
}

/// The diagnosis in the front end's path report (`/api/path`), which says why it has no caller.
struct FrontEndDiagnosis<'a> {
    code: &'a str,
    message: &'a str,
    hint: &'a str,
}

fn front_end_diagnosis(body: &Value) -> Option<FrontEndDiagnosis<'_>> {
    let diagnosis = &body["diagnosis"];
    Some(FrontEndDiagnosis {
        code: diagnosis["code"].as_str()?,
        message: diagnosis["message"].as_str().unwrap_or_default(),
        hint: diagnosis["hint"].as_str().unwrap_or_default(),
    })
}

impl FrontEndDiagnosis<'_> {
    /// Fails the check with the front end's own code and words.
    fn carried(self, mut evidence: Vec<String>) -> Evaluation {
        evidence.push(format!(
            "the front end could not call the back end: {}",
            self.code
        ));
        Evaluation::fail_as(self.code, sentences(&[self.message, self.hint]), evidence)
    }
}

fn caller_in(range: ipnet::IpNet, body: Option<&Value>, mut evidence: Vec<String>) -> Evaluation {
    let Some(body) = body else {
        return Evaluation::fail(Code::CallerUnknown, "the response is not JSON: caller_in needs a body like the front end's /api/path or the back end's /api/caller.".into(), evidence);
    };
    let seen = body["caller"]["client_ip"]
        .as_str()
        .or_else(|| body["client_ip"].as_str());
    let Some(seen) = seen else {
        if let Some(diagnosis) = front_end_diagnosis(body) {
            return diagnosis.carried(evidence);
        }
        return Evaluation::fail(
            Code::CallerUnknown,
            "the body says nothing about the caller (no client_ip).".into(),
            evidence,
        );
    };
    let instance = body["caller"]["instance"]["id"]
        .as_str()
        .or_else(|| body["instance"]["id"].as_str());
    // `fde4:…:104, the service-endpoint form of 10.0.1.4`: both forms in the evidence.
    let caller = CallerAddr::parse(seen);
    let described = caller.map_or_else(|| seen.to_owned(), |c| c.to_string());
    evidence.push(match instance {
        Some(id) => format!("the back end (instance {id}) saw the caller as {described}"),
        None => format!("the back end saw the caller as {described}"),
    });
    let Some(caller) = caller else {
        return Evaluation::fail(
            Code::CallerUnknown,
            format!("client_ip {seen:?} is not an address."),
            evidence,
        );
    };
    match caller.in_net(&range) {
        Membership::Inside => Evaluation::pass(evidence),
        Membership::Outside => Evaluation::fail(
            Code::CallerNotInSubnet,
            format!(
                "the back end saw the front end as {caller} ({}), outside {range}: the call did not leave through the integration subnet. Check the front end's VNet integration and route-all.",
                // The class of the address compared: the VNet IPv4 of a service-endpoint caller.
                AddressClass::of(caller.ipv4().map_or(caller.seen(), IpAddr::V4))
            ),
            evidence,
        ),
        Membership::Undecodable => undecodable(
            &format!("the back end saw the front end as {}", caller.seen()),
            range,
            evidence,
        ),
    }
}

fn kind_name(kind: FailureKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn describe_http(action: &Action, report: &HttpCheckReport) -> String {
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

/// Joins parts into sentences: each starts with a capital and ends with a full stop.
fn sentences(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.trim().trim_end_matches('.'))
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            let first = chars
                .next()
                .map(|c| c.to_uppercase().collect::<String>())
                .unwrap_or_default();
            format!("{first}{}.", chars.as_str())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    fn denial_http(
        status: Option<u16>,
        connect_ms: Option<f64>,
        error: Option<&str>,
        page: Option<&str>,
    ) -> HttpCheckReport {
        serde_json::from_value(serde_json::json!({
            "url": "https://app-be.example/healthz",
            "target": {"host": "app-be.example", "port": 443, "ip": "20.1.2.3", "local_addr": null},
            "ok": error.is_none(),
            "status": status,
            "timings_ms": {"dns": 1.0, "connect": connect_ms, "tls": null, "first_byte": null, "total": 5.0},
            "headers": {},
            "set_cookie_names": [],
            "app_service": page.map(|code| serde_json::json!({"code": code, "message": "m", "hint": "h"})),
            "error": error.map(|kind| serde_json::json!({"kind": kind, "message": "x"})),
            "hint": null
        }))
        .unwrap()
    }

    fn ping_report(ip: Option<&str>, error: Option<&str>) -> TcpPingReport {
        let ok = error.is_none();
        serde_json::from_value(serde_json::json!({
            "target": {"host": "app-be.example", "port": 443, "ip": ip, "resolved": []},
            "attempts": [{"seq": 1, "ip": ip, "local_addr": if ok { Some("10.20.1.4:5000") } else { None }, "ok": ok,
                          "rtt_ms": if ok { Some(1.0) } else { None }, "error": error, "message": null}],
            "summary": {"sent": 1, "ok": u32::from(ok), "min_ms": null, "avg_ms": null, "max_ms": null, "p50_ms": null},
            "verdict": if ok { "reachable" } else { "unreachable" },
            "hint": ""
        }))
        .unwrap()
    }

    fn denied() -> Expect {
        Expect {
            denied: Some(true),
            ..Expect::default()
        }
    }

    fn denial_action() -> Action {
        Action::Http {
            url: "https://app-be.example/healthz".parse().unwrap(),
        }
    }

    fn judge_http(report: HttpCheckReport) -> Evaluation {
        evaluate(
            &denial_action(),
            &denied(),
            &Outcome::Http {
                report: Box::new(report),
                body: None,
            },
        )
    }

    #[test]
    fn only_a_refusal_proves_an_http_target_denied() {
        assert!(
            judge_http(denial_http(
                Some(403),
                Some(1.0),
                None,
                Some("access_restricted")
            ))
            .passed
        );
        assert!(
            judge_http(denial_http(
                Some(403),
                Some(1.0),
                None,
                Some("public_access_disabled")
            ))
            .passed
        );
        assert!(judge_http(denial_http(None, None, Some("refused"), None)).passed);
        assert!(
            judge_http(denial_http(None, None, Some("timeout"), None)).passed,
            "connect timed out"
        );
        let cases = [
            (
                denial_http(Some(200), Some(1.0), None, None),
                "reachable_but_should_be_denied",
            ),
            (
                denial_http(Some(401), Some(1.0), None, None),
                "reachable_but_should_be_denied",
            ),
            (
                denial_http(None, Some(1.0), Some("timeout"), None),
                "reachable_but_should_be_denied",
            ),
            (denial_http(None, None, Some("dns"), None), "dns_failure"),
            (
                denial_http(None, None, Some("unreachable"), None),
                "network_unreachable",
            ),
            (
                denial_http(Some(403), Some(1.0), None, Some("app_stopped")),
                "app_stopped",
            ),
        ];
        for (report, code) in cases {
            let verdict = judge_http(report);
            assert!(!verdict.passed, "{code}");
            assert_eq!(verdict.code.as_deref(), Some(code));
        }
    }

    #[test]
    fn only_a_refusal_proves_a_tcp_target_denied() {
        let action = Action::TcpPing {
            host: "app-be.example".into(),
            port: 443,
        };
        let judge = |report| evaluate(&action, &denied(), &Outcome::TcpPing(report));
        assert!(judge(ping_report(Some("20.1.2.3"), Some("refused"))).passed);
        assert!(judge(ping_report(Some("20.1.2.3"), Some("timeout"))).passed);
        assert!(
            judge(ping_report(Some("10.20.2.4"), Some("unreachable"))).passed,
            "private, no route"
        );
        assert_eq!(
            judge(ping_report(None, Some("dns"))).code.as_deref(),
            Some("dns_failure")
        );
        assert_eq!(
            judge(ping_report(Some("20.1.2.3"), Some("unreachable")))
                .code
                .as_deref(),
            Some("network_unreachable")
        );
        assert_eq!(
            judge(ping_report(Some("20.1.2.3"), None)).code.as_deref(),
            Some("reachable_but_should_be_denied")
        );
    }

    #[test]
    fn address_expectations_do_not_hold_vacuously() {
        let action = Action::TcpPing {
            host: "app-be.example".into(),
            port: 443,
        };
        let expect = Expect {
            address_in: Some("10.0.0.0/8".parse().unwrap()),
            ..Expect::default()
        };
        let verdict = evaluate(
            &action,
            &expect,
            &Outcome::TcpPing(ping_report(None, Some("dns"))),
        );
        assert_eq!(verdict.code.as_deref(), Some("no_address"));
    }

    use serde_json::json;

    fn http_report(status: u16, error_code: Option<&str>) -> HttpCheckReport {
        serde_json::from_value(json!({
            "url": "https://app-be.azurewebsites.net/api/items",
            "target": {"host": "app-be.azurewebsites.net", "port": 443, "ip": "10.20.2.4", "local_addr": null},
            "ok": true,
            "status": status,
            "timings_ms": {"total": 3.0},
            "headers": {},
            "set_cookie_names": [],
            "app_service": null,
            "error_code": error_code,
            "error": null,
            "hint": null,
        }))
        .unwrap()
    }

    fn http_action() -> Action {
        Action::Http {
            url: "https://app-be.azurewebsites.net/api/items"
                .parse()
                .unwrap(),
        }
    }

    fn expect(text: &str) -> Expect {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_error_code_names_the_gate_that_refused() {
        let want = expect("status = 401\nerror_code = \"missing_token\"");
        let action = http_action();
        let passed = http(
            &action,
            &want,
            &http_report(401, Some("missing_token")),
            None,
        );
        assert!(passed.passed, "{passed:?}");
        assert!(passed.evidence[0].contains("[error code: missing_token]"));
        let other = http(
            &action,
            &want,
            &http_report(401, Some("unauthorized")),
            None,
        );
        assert_eq!(other.code.as_deref(), Some("unexpected_error_code"));
        assert!(other.diagnosis.unwrap().contains("got unauthorized"));
        let platform = http(&action, &want, &http_report(401, None), None);
        assert_eq!(platform.code.as_deref(), Some("unexpected_error_code"));
        assert!(
            platform
                .diagnosis
                .unwrap()
                .contains("App Service Authentication")
        );
        let open = http(&action, &want, &http_report(200, None), None);
        assert_eq!(open.code.as_deref(), Some("unexpected_status"));
    }

    #[test]
    fn caller_auth_reads_what_let_the_front_end_in() {
        let action = http_action();
        let want = expect("status = 200\ncaller_in = \"10.20.1.0/24\"\ncaller_auth = \"entra\"");
        let path = |mode: &str| json!({"caller": {"client_ip": "10.20.1.4", "auth": {"mode": mode, "app_id": "app-1", "object_id": "oid-1"}}});
        let passed = http(
            &action,
            &want,
            &http_report(200, None),
            Some(&path("entra")),
        );
        assert!(passed.passed, "{passed:?}");
        assert!(
            passed
                .evidence
                .iter()
                .any(|e| e.contains("by entra (application app-1, object oid-1)"))
        );
        let keyed = http(
            &action,
            &want,
            &http_report(200, None),
            Some(&path("api-key")),
        );
        assert_eq!(keyed.code.as_deref(), Some("unexpected_caller_auth"));
        assert!(keyed.diagnosis.unwrap().contains("AUTH_MODE=entra"));
        let open = http(&action, &want, &http_report(200, None), Some(&path("none")));
        assert_eq!(open.code.as_deref(), Some("unexpected_caller_auth"));
        // The front end could not call: its diagnosis (a wrong audience) is the verdict.
        let broken = json!({"caller": null, "diagnosis": {"code": "wrong_audience", "message": "the back end refused the front end's token", "hint": "BACKEND_TOKEN_RESOURCE must be the back end's application ID URI"}});
        let only_auth = expect("caller_auth = \"entra\"");
        let verdict = http(&action, &only_auth, &http_report(200, None), Some(&broken));
        assert_eq!(verdict.code.as_deref(), Some("wrong_audience"));
        assert!(
            verdict
                .diagnosis
                .unwrap()
                .contains("BACKEND_TOKEN_RESOURCE")
        );
    }

    #[test]
    fn sentences_are_capitalised_and_stopped() {
        assert_eq!(
            sentences(&["blocked", "you are outside."]),
            "Blocked. You are outside."
        );
        assert_eq!(sentences(&["", "x"]), "X.");
    }

    /// The back end's `/api/caller` (or the front end's `/api/path`) with `client_ip`.
    fn caller_in_with(client_ip: &str, range: &str) -> Evaluation {
        let want = expect(&format!("status = 200\ncaller_in = \"{range}\""));
        let body = json!({"caller": {"client_ip": client_ip, "instance": {"id": "be-1"}}});
        http(&http_action(), &want, &http_report(200, None), Some(&body))
    }

    #[test]
    fn caller_in_compares_a_service_endpoint_caller_by_its_vnet_address() {
        let passed = caller_in_with("fde4:8dba:2300:5457:6f23:200:a00:104", "10.0.1.0/24");
        assert!(passed.passed, "{passed:?}");
        assert!(passed.evidence.contains(
            &"the back end (instance be-1) saw the caller as fde4:8dba:2300:5457:6f23:200:a00:104, the service-endpoint form of 10.0.1.4".to_owned()
        ), "{passed:?}");

        let outside = caller_in_with("fde4:8dba:1200:98db:6a12:300:a02:126", "10.0.1.0/24");
        assert_eq!(outside.code.as_deref(), Some("caller_not_in_subnet"));
        assert!(
            outside.diagnosis.as_deref().unwrap().contains(
                "as fde4:8dba:1200:98db:6a12:300:a02:126, the service-endpoint form of 10.2.1.38 (private), outside 10.0.1.0/24"
            ),
            "{outside:?}"
        );

        // An IPv6 range compares the address as it arrived.
        let v6 = caller_in_with(
            "fde4:8dba:2300:5457:6f23:200:a00:104",
            "fde4:8dba:2300::/48",
        );
        assert!(v6.passed, "{v6:?}");
        let v6_outside = caller_in_with(
            "fde4:8dba:1200:98db:6a12:300:a00:104",
            "fde4:8dba:2300::/48",
        );
        assert_eq!(v6_outside.code.as_deref(), Some("caller_not_in_subnet"));
    }

    #[test]
    fn caller_in_says_an_undecodable_ipv6_caller_cannot_be_compared() {
        for client_ip in ["fd40:1f2e:3d4c:5b6a:7988:100:a0a:5", "2603:1030::a00:104"] {
            let verdict = caller_in_with(client_ip, "10.0.1.0/24");
            assert_eq!(
                verdict.code.as_deref(),
                Some("caller_undecodable"),
                "{client_ip}"
            );
            let diagnosis = verdict.diagnosis.unwrap();
            assert!(
                diagnosis.contains(&format!(
                    "the back end saw the front end as {client_ip}, an IPv6 caller that is not in App Service's service-endpoint form: it cannot be compared with IPv4 ranges such as 10.0.1.0/24."
                )),
                "{diagnosis}"
            );
        }
        // Against an IPv6 range it is compared, and may pass.
        assert!(caller_in_with("2603:1030::a00:104", "2603:1030::/32").passed);
        // Mapped IPv4 is IPv4.
        assert!(caller_in_with("::ffff:10.0.1.4", "10.0.1.0/24").passed);
    }

    #[test]
    fn source_in_decodes_the_local_address_as_caller_in_does() {
        let with_source = |local: &str| {
            let mut report = http_report(200, None);
            report.target.local_addr = Some(local.parse().unwrap());
            http(
                &http_action(),
                &expect("status = 200\nsource_in = \"10.0.1.0/24\""),
                &report,
                None,
            )
        };
        assert!(with_source("10.0.1.4:5000").passed);
        assert!(with_source("[fde4:8dba:2300:5457:6f23:200:a00:104]:5000").passed);
        let outside = with_source("[fde4:8dba:2300:5457:6f23:200:a09:909]:5000");
        assert_eq!(outside.code.as_deref(), Some("egress_not_in_subnet"));
        assert!(
            outside
                .diagnosis
                .unwrap()
                .contains("the service-endpoint form of 10.9.9.9, outside 10.0.1.0/24")
        );
        let undecodable = with_source("[fd00::1]:5000");
        assert_eq!(undecodable.code.as_deref(), Some("caller_undecodable"));
        assert!(
            undecodable
                .diagnosis
                .unwrap()
                .starts_with("the connection left from fd00::1, an IPv6 caller")
        );

        // tcpping: every attempt's local address is judged.
        let mut ping = ping_report(Some("10.20.2.4"), None);
        ping.attempts[0].local_addr = Some("[fd00::1]:5000".parse().unwrap());
        let verdict = tcpping(&expect("source_in = \"10.20.1.0/24\""), &ping);
        assert_eq!(verdict.code.as_deref(), Some("caller_undecodable"));
        let inside = tcpping(
            &expect("source_in = \"10.20.1.0/24\""),
            &ping_report(Some("10.20.2.4"), None),
        );
        assert!(inside.passed, "{inside:?}");
    }
}
