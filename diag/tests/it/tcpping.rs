//! TCP ping against loopback listeners: open, closed, a full accept queue (a timeout), source
//! binding, one lookup only.

use diag::failure::FailureKind;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use diag::tcpping::{PingVerdict, TcpPingRequest, tcp_ping};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use test_support::{
    closed_port, spawn_canary, spawn_canary_on, spawn_dns, spawn_full_queue, spawn_scripted_dns,
};

fn request(host: &str, port: u16, count: &str, timeout_ms: &str) -> TcpPingRequest {
    TcpPingRequest::parse(
        host,
        Some(&port.to_string()),
        Some(count),
        Some(timeout_ms),
        Some("0"),
    )
    .unwrap()
}

#[tokio::test]
async fn an_open_port_is_reachable() {
    let dns = spawn_dns().await;
    let canary = spawn_canary().await;
    let report = tcp_ping(
        &dns.resolver(),
        &request("127.0.0.1", canary.port(), "3", "2000"),
        None,
        None,
    )
    .await;
    assert_eq!(report.verdict, PingVerdict::Reachable, "{report:?}");
    assert_eq!((report.summary.sent, report.summary.ok), (3, 3));
    for (index, attempt) in report.attempts.iter().enumerate() {
        assert_eq!(attempt.seq, index as u32 + 1);
        assert!(attempt.ok);
        assert_eq!(attempt.ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(attempt.local_addr.unwrap().ip().is_loopback());
        assert!(attempt.rtt_ms.is_some());
        assert!(attempt.error.is_none());
    }
    let summary = &report.summary;
    assert!(summary.min_ms.unwrap() <= summary.p50_ms.unwrap());
    assert!(summary.p50_ms.unwrap() <= summary.max_ms.unwrap());
    assert_eq!(canary.settle().await, 3);
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    let dns = spawn_dns().await;
    let report = tcp_ping(
        &dns.resolver(),
        &request("127.0.0.1", closed_port(), "2", "2000"),
        None,
        None,
    )
    .await;
    assert_eq!(report.verdict, PingVerdict::Unreachable);
    assert_eq!(report.summary.ok, 0);
    assert!(
        report
            .attempts
            .iter()
            .all(|a| a.error == Some(FailureKind::Refused))
    );
    assert!(report.hint.contains("nothing listens"), "{}", report.hint);
    assert_eq!(report.summary.avg_ms, None);
}

#[tokio::test]
async fn a_full_accept_queue_times_out() {
    let dns = spawn_dns().await;
    let queue = spawn_full_queue().await;
    let report = tcp_ping(
        &dns.resolver(),
        &request("127.0.0.1", queue.addr.port(), "2", "300"),
        None,
        None,
    )
    .await;
    assert_eq!(report.verdict, PingVerdict::Unreachable, "{report:?}");
    assert!(
        report
            .attempts
            .iter()
            .all(|a| a.error == Some(FailureKind::Timeout)),
        "{report:?}"
    );
    assert!(
        report.hint.contains("firewall") && report.hint.contains("21 s"),
        "{}",
        report.hint
    );
    assert!(
        report.attempts[0]
            .message
            .as_deref()
            .unwrap()
            .contains("300ms")
    );
}

#[tokio::test]
async fn a_name_resolves_once_and_every_attempt_uses_that_address() {
    // A rebinding server: the first answer is 127.0.0.1, every later one 127.0.0.2.
    let a_queries = std::sync::atomic::AtomicUsize::new(0);
    let dns = spawn_scripted_dns(move |_, record_type| match record_type {
        RecordType::A => {
            let first = a_queries.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            let last = if first { 1 } else { 2 };
            Some((ResponseCode::NoError, vec![Ipv4Addr::new(127, 0, 0, last)]))
        }
        _ => Some((ResponseCode::NoError, vec![])),
    })
    .await;
    let canary = spawn_canary().await;
    let resolver = dns.resolver(Duration::from_millis(1_000));
    let report = tcp_ping(
        &resolver,
        &request("rebind.lockdown.test", canary.port(), "3", "1000"),
        None,
        None,
    )
    .await;
    assert_eq!(
        report.target.ip,
        Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "{report:?}"
    );
    assert!(
        report
            .attempts
            .iter()
            .all(|a| a.ip == report.target.ip && a.ok),
        "{report:?}"
    );
    // One A and one AAAA query, never a lookup per attempt.
    assert!(dns.query_count() <= 2, "{} queries", dns.query_count());
    assert_eq!(canary.settle().await, 3);
}

#[tokio::test]
async fn outbound_sockets_bind_the_source_address() {
    let dns = spawn_dns().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let source: IpAddr = "127.0.2.9".parse().unwrap();
    let accept = tokio::spawn(async move { listener.accept().await.unwrap().1 });
    let report = tcp_ping(
        &dns.resolver(),
        &request("127.0.0.1", port, "1", "2000"),
        Some(source),
        None,
    )
    .await;
    assert!(report.attempts[0].ok, "{report:?}");
    assert_eq!(report.attempts[0].local_addr.unwrap().ip(), source);
    assert_eq!(accept.await.unwrap().ip(), source);
}

#[tokio::test]
async fn a_name_that_does_not_resolve_sends_nothing() {
    let dns = spawn_dns().await;
    let report = tcp_ping(
        &dns.resolver(),
        &request("nosuch.lockdown.test", 80, "4", "1000"),
        None,
        None,
    )
    .await;
    assert_eq!(report.verdict, PingVerdict::Unresolved);
    assert_eq!(report.attempts.len(), 1);
    assert_eq!(report.attempts[0].error, Some(FailureKind::Dns));
    assert!(report.hint.contains("does not resolve"));
    assert_eq!(report.target.ip, None);
}

#[tokio::test]
async fn names_resolve_through_the_test_zone() {
    let dns = spawn_dns().await;
    let canary = spawn_canary_on("127.0.0.1".parse().unwrap()).await;
    let report = tcp_ping(
        &dns.resolver(),
        &request("loopback.lockdown.test", canary.port(), "1", "1000"),
        None,
        None,
    )
    .await;
    assert_eq!(report.verdict, PingVerdict::Reachable, "{report:?}");
    assert_eq!(
        report.target.resolved,
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
    );
    let json = serde_json::to_value(&report).unwrap();
    for key in ["target", "attempts", "summary", "verdict", "hint"] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    for key in ["seq", "ip", "local_addr", "ok", "rtt_ms", "error"] {
        assert!(
            json["attempts"][0].get(key).is_some(),
            "missing attempts[].{key}"
        );
    }
    for key in ["sent", "ok", "min_ms", "avg_ms", "max_ms", "p50_ms"] {
        assert!(json["summary"].get(key).is_some(), "missing summary.{key}");
    }
    assert_eq!(json["verdict"], "reachable");
}
