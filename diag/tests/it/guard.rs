//! The guard, live: loopback targets that the policy forbids, in every spelling and behind names,
//! are refused with 403 and a canary listener proves no connection was made; bad input is 400 and
//! connects nowhere; an allowed target does reach the canary (so these tests can fail).
//! Forbidden targets off loopback are tested as pure functions only (policy unit tests, and
//! `names_resolving_to_forbidden_addresses_are_denied` below, which resolves but never connects).

use std::net::{IpAddr, Ipv4Addr};

use diag::policy::{DeniedReason, Policy};

use test_support::{DiagConfig, spawn_canary, spawn_diag, spawn_dns, spawn_silent_dns};

/// A policy that allows private ranges and the test zone by name, but not loopback.
const NO_LOOPBACK: &str = "10.0.0.0/8, 192.168.0.0/16, *.lockdown.test, localhost";

const LOOPBACK_SPELLINGS: [&str; 10] = [
    "127.0.0.1",
    "2130706433",
    "0x7f.1",
    "127.1",
    "017700000001",
    "0x7f000001",
    "0177.0.0.1",
    "127.0.1",
    "::ffff:127.0.0.1",
    "[::ffff:7f00:1]",
];

#[tokio::test]
async fn forbidden_loopback_targets_are_denied_and_never_connected() {
    let dns = spawn_dns().await;
    let canary = spawn_canary().await;
    let diag = spawn_diag(DiagConfig::new(dns.resolver(), Some(NO_LOOPBACK))).await;
    let port = canary.port();
    let hosts = LOOPBACK_SPELLINGS.iter().copied().chain([
        "loopback.lockdown.test",
        "localhost",
        "LOOPBACK.lockdown.test.",
    ]);
    for host in hosts {
        let encoded = host
            .replace('[', "%5B")
            .replace(']', "%5D")
            .replace(':', "%3A");
        let (status, body) = diag
            .get_json(&format!(
                "/diag/tcpping?host={encoded}&port={port}&count=1&interval_ms=0"
            ))
            .await;
        assert_eq!(status, 403, "{host}: {body}");
        assert_eq!(body["error"]["code"], "target_denied", "{host}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("loopback"),
            "{host}: {body}"
        );
        assert!(
            body["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("DIAG_ALLOW"),
            "{host}"
        );

        let url = format!(
            "http://{}:{port}/",
            if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host.to_owned()
            }
        );
        let (status, body) = diag
            .get_json(&format!("/diag/http?url={}", urlencode(&url)))
            .await;
        assert_eq!(status, 403, "{url}: {body}");
        assert_eq!(body["error"]["code"], "target_denied", "{url}");
    }
    assert_eq!(canary.settle().await, 0, "a denied target was connected to");
}

#[tokio::test]
async fn the_widest_cidrs_do_not_reach_loopback() {
    // 0.0.0.0/0 and ::/0 contain loopback but are not an explicit permission for it.
    let dns = spawn_dns().await;
    let canary = spawn_canary().await;
    let wide = "0.0.0.0/0, ::/0, *.lockdown.test, localhost";
    let diag = spawn_diag(DiagConfig::new(dns.resolver(), Some(wide))).await;
    let port = canary.port();
    for host in ["127.0.0.1", "127.1", "localhost", "loopback.lockdown.test"] {
        let (status, body) = diag
            .get_json(&format!(
                "/diag/tcpping?host={host}&port={port}&count=1&interval_ms=0"
            ))
            .await;
        assert_eq!(status, 403, "{host}: {body}");
        assert_eq!(body["error"]["code"], "target_denied", "{host}");
        let (status, body) = diag
            .get_json(&format!(
                "/diag/http?url={}",
                urlencode(&format!("http://{host}:{port}/"))
            ))
            .await;
        assert_eq!(status, 403, "{host}: {body}");
    }
    assert_eq!(canary.settle().await, 0, "a denied target was connected to");

    // 127.0.0.0/8 is explicit: the same target is reached (so the loop above can fail).
    let explicit = format!("{wide}, 127.0.0.0/8");
    let diag = spawn_diag(DiagConfig::new(dns.resolver(), Some(&explicit))).await;
    let (status, body) = diag
        .get_json(&format!(
            "/diag/tcpping?host=loopback.lockdown.test&port={port}&count=1&interval_ms=0"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(canary.settle().await, 1);
}

#[tokio::test]
async fn the_dns_server_named_in_the_query_is_a_target_too() {
    let dns = spawn_dns().await;
    let silent = spawn_silent_dns().await;
    let diag = spawn_diag(DiagConfig::new(dns.resolver(), Some(NO_LOOPBACK))).await;
    for server in [
        format!("127.0.0.1:{}", silent.addr.port()),
        format!("127.1:{}", silent.addr.port()),
        format!("2130706433:{}", silent.addr.port()),
    ] {
        let (status, body) = diag
            .get_json(&format!(
                "/diag/resolve?host=public.lockdown.test&server={server}"
            ))
            .await;
        assert_eq!(status, 403, "{server}: {body}");
        assert_eq!(body["error"]["code"], "target_denied");
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(silent.query_count(), 0, "a denied DNS server was asked");
}

#[tokio::test]
async fn an_allowed_loopback_target_does_reach_the_canary() {
    let dns = spawn_dns().await;
    let canary = spawn_canary().await;
    let silent = spawn_silent_dns().await;
    let diag = spawn_diag(DiagConfig::new(dns.resolver(), Some("127.0.0.0/8"))).await;
    let (status, body) = diag
        .get_json(&format!(
            "/diag/tcpping?host=0x7f.1&port={}&count=2&interval_ms=0",
            canary.port()
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "reachable");
    assert_eq!(body["target"]["ip"], "127.0.0.1");
    assert_eq!(canary.settle().await, 2);

    let (status, body) = diag
        .get_json(&format!("/diag/http?url=http://127.1:{}/", canary.port()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(canary.settle().await, 3);

    // And the named DNS server is asked when the policy allows it.
    let (status, body) = diag
        .get_json(&format!(
            "/diag/resolve?host=public.lockdown.test&server=127.0.0.1:{}",
            silent.addr.port()
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resolver"]["source"], "query");
    assert!(silent.query_count() >= 1);
}

#[tokio::test]
async fn bad_input_is_rejected_and_connects_nowhere() {
    let dns = spawn_dns().await;
    let canary = spawn_canary().await;
    // Even a policy that allows the canary: bad input must stop before any connect.
    let diag = spawn_diag(DiagConfig::new(dns.resolver(), Some("127.0.0.0/8"))).await;
    let port = canary.port();
    let long_name = vec!["abcdefghij"; 25].join(".");
    let long_label = "a".repeat(64);
    let cases = [
        "/diag/tcpping?host=127.0.0.1&port=0".to_owned(),
        "/diag/tcpping?host=127.0.0.1&port=65536".to_owned(),
        "/diag/tcpping?host=127.0.0.1&port=99999999999".to_owned(),
        "/diag/tcpping?host=127.0.0.1&port=http".to_owned(),
        "/diag/tcpping?host=127.0.0.1&port=-1".to_owned(),
        format!("/diag/tcpping?host=127.0.0.1&port={port}&count=21"),
        format!("/diag/tcpping?host=127.0.0.1&port={port}&count=1000000"),
        format!("/diag/tcpping?host=127.0.0.1&port={port}&count=0"),
        format!("/diag/tcpping?host=127.0.0.1&port={port}&timeout_ms=10001"),
        format!("/diag/tcpping?host=127.0.0.1&port={port}&interval_ms=5001"),
        format!("/diag/tcpping?host=127.0.0.1&port={port}&count=20&timeout_ms=10000"),
        format!("/diag/tcpping?host={long_name}&port={port}"),
        format!("/diag/tcpping?host={long_label}.test&port={port}"),
        format!("/diag/tcpping?host=bad%20host&port={port}"),
        format!("/diag/tcpping?host=127.0.0.999&port={port}"),
        format!("/diag/tcpping?host=&port={port}"),
        format!("/diag/tcpping?port={port}"),
        format!("/diag/tcpping?host=127.0.0.1&port={port}&format=xml"),
        format!("/diag/resolve?host={long_name}"),
        "/diag/resolve?host=public.lockdown.test&type=ANY".to_owned(),
        "/diag/resolve?host=public.lockdown.test&server=dns.example".to_owned(),
        "/diag/resolve?host=public.lockdown.test&server=127.0.0.1:0".to_owned(),
        "/diag/resolve?host=public.lockdown.test&type=PTR".to_owned(),
        format!("/diag/http?url=ftp://127.0.0.1:{port}/"),
        format!("/diag/http?url=http://user:pw@127.0.0.1:{port}/"),
        "/diag/http?url=http://127.0.0.1:0/".to_owned(),
        format!("/diag/http?url=%2F%2F127.0.0.1:{port}/"),
        "/diag/http".to_owned(),
    ];
    for path in &cases {
        let (status, body) = diag.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let code = body["error"]["code"].as_str().unwrap();
        assert!(
            code == "invalid_input" || code == "invalid_query",
            "{path}: {body}"
        );
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(canary.settle().await, 0, "bad input led to a connection");
}

#[tokio::test]
async fn names_resolving_to_forbidden_addresses_are_denied() {
    // Resolves through the test zone, checks the policy, never connects (169.254.x is off loopback).
    let dns = spawn_dns().await;
    let resolver = dns.resolver();
    let policy = Policy::parse("0.0.0.0/0, *.lockdown.test").unwrap();
    let ips = resolver.lookup_ip("imds.lockdown.test").await.unwrap();
    assert_eq!(ips, vec![IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254))]);
    let denied = policy
        .check(Some("imds.lockdown.test"), ips[0], 80)
        .unwrap_err();
    assert_eq!(denied.reason, DeniedReason::LinkLocal);

    let ips = resolver.lookup_ip("loopback.lockdown.test").await.unwrap();
    for allow in [NO_LOOPBACK, "0.0.0.0/0, ::/0, *.lockdown.test"] {
        let policy = Policy::parse(allow).unwrap();
        let denied = policy
            .check(Some("loopback.lockdown.test"), ips[0], 80)
            .unwrap_err();
        assert_eq!(denied.reason, DeniedReason::Loopback, "{allow}");
    }
    let policy = Policy::parse("127.0.0.0/8").unwrap();
    assert!(
        policy
            .check(Some("loopback.lockdown.test"), ips[0], 80)
            .is_ok()
    );
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
