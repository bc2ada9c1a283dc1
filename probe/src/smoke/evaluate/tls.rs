//! Judging a protocol handshake: `ok` (the handshake completed and the chain verified for the
//! name) and `denied` (nothing answered from here).

use diag::failure::FailureKind;
use diag::tlscheck::TlsCheckReport;
use hosting::AddressClass;

use crate::smoke::config::Expect;
use diag::diagnosis::Code;

use super::*;

pub(super) fn tls(expect: &Expect, report: &TlsCheckReport) -> Evaluation {
    let evidence = vec![describe_tls(report)];
    if let Some(denied) = &report.denied {
        return target_denied(denied, evidence);
    }
    let connected = report.timings_ms.connect.is_some();
    if expect.denied == Some(true) {
        if connected {
            return reachable(
                &format!(
                    "the connect to {}:{} succeeded",
                    report.target.host, report.target.port
                ),
                evidence,
            );
        }
        let private = report
            .target
            .ip
            .is_some_and(|ip| AddressClass::of(ip).is_private());
        let error = report
            .error
            .as_ref()
            .map_or(FailureKind::Timeout, |e| e.kind);
        return denied_by_network(error, false, private, evidence);
    }
    if report.ok {
        return Evaluation::pass(evidence);
    }
    let error = report.error.as_ref();
    if !connected && let Some(error) = error {
        return connect_failed(error.kind, "", evidence);
    }
    let code = report.code.unwrap_or(Code::TlsFailure);
    let message = error.map_or("the handshake failed", |e| e.message.as_str());
    Evaluation::fail(
        code,
        sentences(&[message, report.hint.as_deref().unwrap_or(code.next_step())]),
        evidence,
    )
}

/// One line: what answered and how its certificate read.
pub(super) fn describe_tls(r: &TlsCheckReport) -> String {
    let t = &r.target;
    let mut text = format!(
        "{} handshake with {}:{}",
        r.protocol.as_str(),
        t.host,
        t.port
    );
    if let Some(ip) = t.ip {
        text += &format!(" ({ip})");
    }
    if let Some(local) = t.local_addr {
        text += &format!(" from {}", local.ip());
    }
    if let Some(sni) = &t.sni {
        text += &format!(", SNI {sni}");
    }
    if let Some(answer) = &r.postgres_answer {
        text += &format!(", SSLRequest answered {answer}");
    }
    if let Some(leaf) = r.certificates.first() {
        text += &format!(
            ", certificate for {} by {} ({} days left)",
            if leaf.names.is_empty() {
                leaf.subject.clone()
            } else {
                leaf.names.join(", ")
            },
            leaf.issuer,
            leaf.days_left
        );
    }
    if r.ok {
        text += ": verified";
    } else if let Some(error) = &r.error {
        text += &format!(": {}", error.message);
    }
    text
}
