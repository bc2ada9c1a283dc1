//! `/diag/tls` against local servers: rustls servers with certificates for the right name,
//! another name, an expired one and one from an untrusted root; a plain listener; the real
//! PostgreSQL of the test cluster (skipped when PostgreSQL is not installed). All on loopback.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use test_support::{DiagConfig, TestDiag, TestDns, spawn_accept_once, spawn_diag, spawn_dns};

/// A CA: its certificate and what signs with it.
struct Ca {
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf for `name` signed by `ca`, expired when `expired`.
fn leaf(ca: &Ca, name: &str, expired: bool) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    (cert.der().clone(), key)
}

/// A TLS server on 127.0.0.1 that completes handshakes with `cert` and then closes; its port.
async fn spawn_tls(cert: (CertificateDer<'static>, PrivateKeyDer<'static>)) -> u16 {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.0], cert.1)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    port
}

/// A listener that answers every connection with an HTTP error line and closes.
async fn spawn_plain_http() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    port
}

/// A `/diag` trusting `roots` besides the platform's, under `allow`; the DNS server with it.
async fn diag_trusting(roots: Vec<CertificateDer<'static>>, allow: &str) -> (TestDiag, TestDns) {
    let dns = spawn_dns().await;
    let mut config = DiagConfig::new(dns.resolver(), Some(allow));
    config.tls_extra_roots = roots;
    (spawn_diag(config).await, dns)
}

#[tokio::test]
async fn each_certificate_problem_has_its_own_diagnosis() {
    let trusted = ca("lockdown test CA");
    let stranger = ca("someone else's CA");
    let good = spawn_tls(leaf(&trusted, "svc.lockdown.test", false)).await;
    let other = spawn_tls(leaf(&trusted, "other.lockdown.test", false)).await;
    let expired = spawn_tls(leaf(&trusted, "svc.lockdown.test", true)).await;
    let untrusted = spawn_tls(leaf(&stranger, "svc.lockdown.test", false)).await;
    let (diag, _dns) = diag_trusting(vec![trusted.der.clone()], "127.0.0.0/8").await;
    let check = |port: u16| format!("/diag/tls?host=127.0.0.1&port={port}&sni=svc.lockdown.test");

    let (status, ok) = diag.get_json(&check(good)).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["verified"], true, "{ok}");
    assert_eq!(ok["protocol"], "tls");
    assert_eq!(ok["target"]["sni"], "svc.lockdown.test");
    assert_eq!(ok["target"]["ip"], "127.0.0.1");
    assert_eq!(ok["code"], serde_json::Value::Null);
    let leaf_cert = &ok["certificates"][0];
    assert_eq!(leaf_cert["names"], serde_json::json!(["svc.lockdown.test"]));
    assert!(
        leaf_cert["subject"]
            .as_str()
            .unwrap()
            .contains("svc.lockdown.test"),
        "{ok}"
    );
    assert!(
        leaf_cert["issuer"]
            .as_str()
            .unwrap()
            .contains("lockdown test CA"),
        "{ok}"
    );
    assert!(leaf_cert["days_left"].as_i64().unwrap() > 300, "{ok}");
    assert!(
        ok["tls_version"].as_str().unwrap().starts_with("TLS"),
        "{ok}"
    );

    for (port, verify_error, code) in [
        (other, "name_mismatch", "tls_name_mismatch"),
        (expired, "expired", "tls_expired"),
        (untrusted, "untrusted_root", "tls_untrusted"),
    ] {
        let (status, report) = diag.get_json(&check(port)).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(report["verified"], false, "{report}");
        assert_eq!(report["verify_error"], verify_error, "{report}");
        assert_eq!(report["code"], code, "{report}");
        assert_eq!(report["error"]["kind"], "tls", "{report}");
        assert!(!report["hint"].as_str().unwrap().is_empty());
        // The chain is reported even when it does not verify.
        assert_eq!(
            report["certificates"].as_array().unwrap().len(),
            1,
            "{report}"
        );
    }
    let (_, expired_report) = diag.get_json(&check(expired)).await;
    assert!(
        expired_report["certificates"][0]["days_left"]
            .as_i64()
            .unwrap()
            < 0
    );
    assert!(
        expired_report["certificates"][0]["not_after"]
            .as_str()
            .unwrap()
            .starts_with("2021-01-01T")
    );

    // The text form.
    let text = diag
        .get(&format!("{}&format=text", check(other)))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("Diagnosis: tls_name_mismatch"), "{text}");
    assert!(text.contains("names: other.lockdown.test"), "{text}");
}

#[tokio::test]
async fn an_address_without_a_name_is_called_by_address() {
    let trusted = ca("lockdown test CA");
    let good = spawn_tls(leaf(&trusted, "svc.lockdown.test", false)).await;
    let (diag, _dns) = diag_trusting(vec![trusted.der.clone()], "127.0.0.0/8").await;
    let (status, report) = diag
        .get_json(&format!("/diag/tls?host=127.0.0.1&port={good}"))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["code"], "called_by_address", "{report}");
    assert_eq!(report["called_by"]["by"], "address", "{report}");
    assert_eq!(report["target"]["sni"], serde_json::Value::Null);
    assert!(
        report["hint"].as_str().unwrap().contains("public name"),
        "{report}"
    );
}

#[tokio::test]
async fn a_port_that_does_not_speak_tls_or_postgres_is_told_apart() {
    let plain = spawn_plain_http().await;
    let (diag, _dns) = diag_trusting(Vec::new(), "127.0.0.0/8").await;
    let (_, report) = diag
        .get_json(&format!(
            "/diag/tls?host=127.0.0.1&port={plain}&sni=svc.lockdown.test"
        ))
        .await;
    assert_eq!(report["code"], "tls_failure", "{report}");
    assert_eq!(report["certificates"], serde_json::json!([]), "{report}");

    // PostgreSQL's handshake against an HTTP server, and against one that closes at once.
    let (_, report) = diag
        .get_json(&format!(
            "/diag/tls?host=127.0.0.1&port={plain}&sni=svc.lockdown.test&protocol=postgres"
        ))
        .await;
    assert_eq!(report["protocol"], "postgres", "{report}");
    assert_eq!(report["code"], "not_postgres", "{report}");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than the one byte"),
        "{report}"
    );
    let closing = spawn_accept_once().await;
    let (_, report) = diag
        .get_json(&format!(
            "/diag/tls?host=127.0.0.1&port={}&sni=svc.lockdown.test&protocol=postgres",
            closing.addr.port()
        ))
        .await;
    assert_eq!(report["code"], "not_postgres", "{report}");
}

#[tokio::test]
async fn the_real_postgres_answers_sslrequest_then_tls() {
    let Some(cluster) = test_support::postgres::cluster() else {
        return;
    };
    let ca = CertificateDer::from_pem_file(&cluster.ca_file).unwrap();
    let (diag, _dns) = diag_trusting(vec![ca], "127.0.0.0/8").await;
    let check = |sni: &str| {
        format!(
            "/diag/tls?host=127.0.0.1&port={}&sni={sni}&protocol=postgres",
            cluster.port
        )
    };
    let (status, report) = diag.get_json(&check(test_support::postgres::PG_HOST)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["postgres_answer"], "S", "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["verified"], true, "{report}");
    // The same server under a name its certificate does not carry.
    let (_, report) = diag
        .get_json(&check(test_support::postgres::PG_OTHER_HOST))
        .await;
    assert_eq!(report["postgres_answer"], "S", "{report}");
    assert_eq!(report["code"], "tls_name_mismatch", "{report}");
    // As plain TLS, PostgreSQL does not answer a ClientHello: not a certificate problem.
    let (_, report) = diag
        .get_json(&format!(
            "/diag/tls?host=127.0.0.1&port={}&sni={}&protocol=tls&timeout_ms=2000",
            cluster.port,
            test_support::postgres::PG_HOST
        ))
        .await;
    assert_eq!(report["ok"], false, "{report}");
    assert_ne!(report["code"], "tls_name_mismatch", "{report}");
}

#[tokio::test]
async fn bad_input_and_denied_targets_answer_in_the_envelope() {
    let canary = test_support::spawn_canary().await;
    let (diag, _dns) = diag_trusting(Vec::new(), "10.0.0.0/8").await;
    let (status, body) = diag
        .get_json(&format!("/diag/tls?host=127.0.0.1&port={}", canary.port()))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "target_denied");
    assert_eq!(
        canary.settle().await,
        0,
        "a denied target is never connected"
    );
    for query in [
        "/diag/tls",
        "/diag/tls?host=a.test&protocol=smtp",
        "/diag/tls?host=a.test&port=0",
        "/diag/tls?host=a.test&timeout_ms=99999",
        "/diag/tls?host=a.test&sni=bad%20name",
    ] {
        let (status, body) = diag.get_json(query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_input", "{query}");
        assert!(body["error"]["message"].is_string());
    }
    let response = diag.get_with_token("/diag/tls?host=a.test", "wrong").await;
    assert_eq!(response.status(), 401);
}
