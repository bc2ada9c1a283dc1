//! Judging what the back end saw of the caller: where it came from (`caller_in`) and with
//! which credential (`caller_auth`), read from `/api/path` or `/api/caller`.

use std::net::IpAddr;

use hosting::{AddressClass, CallerAddr, Membership};
use serde_json::Value;

use diag::diagnosis::Code;

use super::*;
/// The credential that let the caller in (`caller.auth.mode` of the front end's `/api/path`, or
/// `auth.mode` of the back end's `/api/caller`) must be `want`.
pub(super) fn caller_auth(
    want: &str,
    body: Option<&Value>,
    mut evidence: Vec<String>,
) -> Evaluation {
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
pub(super) struct FrontEndDiagnosis<'a> {
    code: &'a str,
    message: &'a str,
    hint: &'a str,
}

pub(super) fn front_end_diagnosis(body: &Value) -> Option<FrontEndDiagnosis<'_>> {
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

pub(super) fn caller_in(
    range: ipnet::IpNet,
    body: Option<&Value>,
    mut evidence: Vec<String>,
) -> Evaluation {
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
