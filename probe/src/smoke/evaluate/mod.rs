//! Judging one outcome against its expectations: a verdict, the evidence in plain words, and —
//! when it fails — a diagnosis code and what to do next.
//!
//! # Layout
//!
//! - `resolve`, `tcpping`, `http`, `tls`: one judge per action.
//! - `caller`: what the back end saw of the caller (`caller_in`, `caller_auth`).
//! - this file: the outcome and verdict types, and the sentence helper they share.

use serde_json::Value;

use crate::smoke::config::{Action, Expect};
use diag::diagnosis::Code;
use diag::dns::Resolution;
use diag::httpcheck::HttpCheckReport;
use diag::tcpping::TcpPingReport;
use diag::tlscheck::TlsCheckReport;

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
    /// A protocol handshake.
    Tls(Box<TlsCheckReport>),
    /// The app's `/diag/env`: what the checks read of it.
    Env {
        /// Names of settings still holding an unresolved Key Vault reference.
        keyvault_references: Vec<String>,
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
        Outcome::Tls(report) => tls(expect, report),
        Outcome::Env {
            keyvault_references,
        } => env(expect, keyvault_references),
    }
}

/// Judges the app's settings: `keyvault_resolved`.
fn env(expect: &Expect, keyvault_references: &[String]) -> Evaluation {
    if keyvault_references.is_empty() {
        return Evaluation::pass(vec![
            "no setting holds an unresolved Key Vault reference".to_owned(),
        ]);
    }
    let names = keyvault_references.join(", ");
    let evidence = vec![format!("unresolved Key Vault references: {names}")];
    if expect.keyvault_resolved == Some(true) {
        return Evaluation::fail(
            Code::KeyvaultReferenceUnresolved,
            format!(
                "{names} still hold their @Microsoft.KeyVault(...) reference: App Service could not resolve them. {}",
                Code::KeyvaultReferenceUnresolved.next_step()
            ),
            evidence,
        );
    }
    Evaluation::pass(evidence)
}

mod caller;
mod http;
mod resolve;
mod tcpping;
mod tls;

use caller::*;
use http::*;
use resolve::*;
use tcpping::*;
use tls::*;

/// The app's `/diag` policy refused the check's target: nothing was checked.
fn target_denied(denied: &diag::policy::Denied, evidence: Vec<String>) -> Evaluation {
    Evaluation::fail(
        Code::DiagTargetDenied,
        format!(
            "the app's /diag refused this target ({:?}): add it to the app's DIAG_ALLOW to run this check.",
            denied.reason
        ),
        evidence,
    )
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
    fn a_catalogued_services_connect_failure_says_what_the_service_is() {
        let on = |host: &str, ip: &str, error: Option<&str>| {
            let mut report = ping_report(Some(ip), error);
            report.target.host = host.to_owned();
            report
        };
        let tcpping = |expect: &Expect, report: TcpPingReport| {
            evaluate(
                &Action::TcpPing {
                    host: report.target.host.clone(),
                    port: 5432,
                },
                expect,
                &Outcome::TcpPing(report),
            )
        };
        let db = "pg-x.postgres.database.azure.com";
        // Must not reach, and its public endpoint answers: the server's public access.
        let open = tcpping(&denied(), on(db, "20.1.2.3", None));
        assert_eq!(open.code.as_deref(), Some("reachable_but_should_be_denied"));
        let text = open.diagnosis.unwrap();
        assert!(
            text.starts_with(&format!("{db} is Azure Database for PostgreSQL")),
            "{text}"
        );
        assert!(text.contains("public network access to Disabled"), "{text}");
        // Must reach, but it was tried at a public address: the zone to link.
        let reach = Expect {
            reachable: Some(true),
            ..Expect::default()
        };
        let public = tcpping(&reach, on(db, "20.1.2.3", Some("refused")));
        let text = public.diagnosis.unwrap();
        assert!(
            text.contains("privatelink.postgres.database.azure.com"),
            "{text}"
        );
        // A private address that does not answer: no claim about the zone.
        let private = tcpping(&reach, on(db, "10.20.2.5", Some("timeout")));
        assert!(
            !private
                .diagnosis
                .unwrap()
                .contains("not a private endpoint")
        );
        // App Service names keep the apps' own wording.
        let app = tcpping(&denied(), on("app-be.azurewebsites.net", "20.1.2.3", None));
        assert!(!app.diagnosis.unwrap().contains("App Service:"));
    }

    #[test]
    fn https_by_address_or_privatelink_name_is_called_by_address() {
        let ok = Expect {
            status: Some(200),
            ..Expect::default()
        };
        let judge = |url: &str| {
            evaluate(
                &Action::Http {
                    url: url.parse().unwrap(),
                },
                &ok,
                &Outcome::Http {
                    report: Box::new(denial_http(None, Some(1.0), Some("tls"), None)),
                    body: None,
                },
            )
        };
        let by_ip = judge("https://10.20.2.4/healthz");
        assert_eq!(
            by_ip.code.as_deref(),
            Some("called_by_address"),
            "{by_ip:?}"
        );
        let by_pl = judge("https://app-be.privatelink.azurewebsites.net/healthz");
        assert_eq!(by_pl.code.as_deref(), Some("called_by_address"));
        assert!(
            by_pl
                .diagnosis
                .unwrap()
                .contains("app-be.azurewebsites.net")
        );
        // A public name's TLS failure stays a TLS failure.
        let by_name = judge("https://app-be.azurewebsites.net/healthz");
        assert_eq!(by_name.code.as_deref(), Some("tls_failure"));
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
    fn a_response_header_tells_who_answered() {
        let want = expect("status = 200\nheader = \"X-Azure-Ref\"");
        let action = http_action();
        let mut through = http_report(200, None);
        through
            .headers
            .insert("x-azure-ref".into(), "20261203T1030Z-abc".into());
        let passed = http(&action, &want, &through, None);
        assert!(passed.passed, "{passed:?}");
        assert!(
            passed
                .evidence
                .iter()
                .any(|e| e.contains("x-azure-ref: 20261203T1030Z-abc")),
            "{passed:?}"
        );
        let direct = http(&action, &want, &http_report(200, None), None);
        assert!(!direct.passed);
        assert_eq!(direct.code.as_deref(), Some("header_missing"));
        assert!(
            direct
                .diagnosis
                .unwrap()
                .contains("did not come through Azure Front Door")
        );
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
