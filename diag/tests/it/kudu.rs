//! The Kudu text of every tcpping and resolve outcome, read back the way Microsoft's Diagnostics
//! portal reads it (`test_support::kudu_reader`): the classes it sees, the counts and the summary.

use diag::failure::FailureKind;
use std::net::IpAddr;
use std::time::Duration;

use diag::dns::{DnsErrorKind, DnsResolver, QueryType};
use diag::tcpping::{PingVerdict, TcpPingReport, TcpPingRequest, tcp_ping};
use diag::{Policy, Resolution};

use test_support::kudu_reader::{
    Complete, Status, bare_addresses, read_complete, read_nameresolver, read_tcpping,
};
use test_support::{
    closed_port, spawn_accept_once, spawn_canary, spawn_dns, spawn_full_queue, spawn_servfail_dns,
    spawn_silent_dns,
};

fn request(host: &str, port: u16, count: u32, timeout_ms: u64, interval_ms: u64) -> TcpPingRequest {
    TcpPingRequest::parse(
        host,
        Some(&port.to_string()),
        Some(&count.to_string()),
        Some(&timeout_ms.to_string()),
        Some(&interval_ms.to_string()),
    )
    .unwrap()
}

/// Reads the report's Kudu text as the portal does; returns the statuses and the summary.
fn portal_reads(report: &TcpPingReport) -> (Vec<Status>, Complete) {
    let text = report.to_text();
    assert!(text.ends_with("\r\n"), "{text:?}");
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "a bare LF: {text:?}"
    );
    let read = read_tcpping(&text).unwrap_or_else(|error| panic!("{error}\n{text:?}"));
    let complete = read_complete(&read.complete).unwrap();
    assert_eq!(complete.total as usize, read.statuses.len(), "{text:?}");
    let successes = read
        .statuses
        .iter()
        .filter(|s| **s == Status::Success)
        .count();
    assert_eq!(complete.ok as usize, successes, "{text:?}");
    (read.statuses, complete)
}

/// Nothing connected: every line has `status`, and the summary says 0 of `count`, 0%, 0ms.
fn assert_all_failed(report: &TcpPingReport, status: Status, count: usize) {
    let (statuses, complete) = portal_reads(report);
    assert_eq!(statuses, vec![status; count], "{}", report.to_text());
    assert_eq!(
        (complete.ok, complete.total, complete.percent),
        (0, count as u32, 0)
    );
    assert_eq!(complete.average_ms, 0.0);
    assert!(report.to_text().ends_with("Average success time: 0ms\r\n"));
}

#[tokio::test]
async fn connected_attempts_read_as_success() {
    let dns = spawn_dns().await;
    let canary = spawn_canary().await;
    let report = tcp_ping(
        &dns.resolver(),
        &request("loopback.lockdown.test", canary.port(), 3, 2_000, 0),
        None,
        None,
    )
    .await;
    let (statuses, complete) = portal_reads(&report);
    assert_eq!(statuses, vec![Status::Success; 3]);
    assert_eq!((complete.ok, complete.total, complete.percent), (3, 3, 100));
    assert_close(complete.average_ms, report.summary.avg_ms.unwrap());
    let text = report.to_text();
    assert!(
        text.starts_with(&format!(
            "Connected to loopback.lockdown.test:{}, time taken: ",
            canary.port()
        )),
        "{text:?}"
    );
    // The JSON facts stay out of the Kudu text.
    assert!(!text.contains("127.0.0.1"), "{text:?}");
    assert_eq!(canary.settle().await, 3);
}

/// The text prints the JSON's average with at most two decimals.
fn assert_close(printed_ms: f64, avg_ms: f64) {
    assert!(
        (printed_ms - avg_ms).abs() <= 0.005 + f64::EPSILON,
        "printed {printed_ms}, JSON {avg_ms}"
    );
}

#[tokio::test]
async fn refused_attempts_read_as_refused() {
    let dns = spawn_dns().await;
    let report = tcp_ping(
        &dns.resolver(),
        &request("127.0.0.1", closed_port(), 2, 2_000, 0),
        None,
        None,
    )
    .await;
    assert_all_failed(&report, Status::Refused, 2);
    assert!(report.to_text().starts_with(
        "Connection attempt failed: No connection could be made because the target machine actively refused it\r\n"
    ));
}

#[tokio::test]
async fn a_full_accept_queue_reads_as_timeout() {
    let dns = spawn_dns().await;
    let queue = spawn_full_queue().await;
    let report = tcp_ping(
        &dns.resolver(),
        &request("127.0.0.1", queue.addr.port(), 2, 300, 0),
        None,
        None,
    )
    .await;
    assert!(
        report
            .attempts
            .iter()
            .all(|a| a.error == Some(FailureKind::Timeout)),
        "{report:?}"
    );
    assert_all_failed(&report, Status::Timeout, 2);
    assert!(report.to_text().starts_with("Connection timed out\r\n"));
}

#[tokio::test]
async fn a_name_that_does_not_exist_reads_as_no_such_host_once_per_attempt() {
    let dns = spawn_dns().await;
    let report = tcp_ping(
        &dns.resolver(),
        &request("nosuch.lockdown.test", 80, 4, 1_000, 0),
        None,
        None,
    )
    .await;
    // One lookup, one failure in the JSON; four lines in the text, as tcpping.exe prints.
    assert_eq!(report.attempts.len(), 1);
    assert_eq!(report.attempts[0].dns_error, Some(DnsErrorKind::Nxdomain));
    assert_eq!((report.summary.requested, report.summary.sent), (4, 1));
    assert_all_failed(&report, Status::HostNotFound, 4);
    assert_eq!(
        report.to_text(),
        "Connection attempt failed: No such host is known\r\n".repeat(4)
            + "Complete: 0/4 successful attempts (0%). Average success time: 0ms\r\n"
    );
}

#[tokio::test]
async fn a_name_without_addresses_reads_as_no_such_host() {
    let dns = spawn_dns().await;
    let report = tcp_ping(
        &dns.resolver(),
        &request("textonly.lockdown.test", 80, 2, 1_000, 0),
        None,
        None,
    )
    .await;
    assert_eq!(report.attempts[0].dns_error, Some(DnsErrorKind::Nodata));
    assert_all_failed(&report, Status::HostNotFound, 2);
}

#[tokio::test]
async fn a_dns_server_that_never_answers_reads_as_non_recoverable() {
    let dns = spawn_silent_dns().await;
    let report = tcp_ping(
        &dns.resolver(Duration::from_millis(200)),
        &request("app-be.lockdown.test", 80, 3, 1_000, 0),
        None,
        None,
    )
    .await;
    assert_eq!(report.verdict, PingVerdict::Unresolved, "{report:?}");
    assert_eq!(report.attempts[0].dns_error, Some(DnsErrorKind::Timeout));
    assert_all_failed(&report, Status::NonRecoverable, 3);
}

#[tokio::test]
async fn a_failing_dns_server_reads_as_non_recoverable() {
    let dns = spawn_servfail_dns().await;
    let report = tcp_ping(
        &dns.resolver(Duration::from_millis(1_000)),
        &request("app-be.lockdown.test", 80, 2, 1_000, 0),
        None,
        None,
    )
    .await;
    assert_eq!(report.attempts[0].dns_error, Some(DnsErrorKind::Servfail));
    assert_all_failed(&report, Status::NonRecoverable, 2);
}

#[tokio::test]
async fn a_target_the_policy_denies_reads_as_blocked_and_is_never_connected_to() {
    let dns = spawn_dns().await;
    let canary = spawn_canary().await;
    let policy = Policy::parse("10.0.0.0/8").unwrap();
    let report = tcp_ping(
        &dns.resolver(),
        &request("loopback.lockdown.test", canary.port(), 3, 1_000, 0),
        None,
        Some(&policy),
    )
    .await;
    assert_eq!(report.verdict, PingVerdict::Denied);
    assert_all_failed(&report, Status::Blocked, 3);
    assert_eq!(canary.settle().await, 0);
}

#[tokio::test]
async fn an_unusable_source_address_reads_as_blocked() {
    // An IPv6 source for an IPv4 target: refused before any socket connects.
    let dns = spawn_dns().await;
    let canary = spawn_canary().await;
    let report = tcp_ping(
        &dns.resolver(),
        &request("127.0.0.1", canary.port(), 2, 1_000, 0),
        Some("::1".parse::<IpAddr>().unwrap()),
        None,
    )
    .await;
    assert!(
        report
            .attempts
            .iter()
            .all(|a| a.error == Some(FailureKind::Unreachable)),
        "{report:?}"
    );
    assert_all_failed(&report, Status::Blocked, 2);
    assert_eq!(canary.settle().await, 0);
}

#[tokio::test]
async fn mixed_results_read_attempt_by_attempt() {
    let dns = spawn_dns().await;
    let once = spawn_accept_once().await;
    let report = tcp_ping(
        &dns.resolver(),
        &request("127.0.0.1", once.port(), 3, 1_000, 300),
        None,
        None,
    )
    .await;
    let (statuses, complete) = portal_reads(&report);
    assert_eq!(
        statuses,
        [Status::Success, Status::Refused, Status::Refused],
        "{}",
        report.to_text()
    );
    assert_eq!((complete.ok, complete.total, complete.percent), (1, 3, 33));
    assert_close(complete.average_ms, report.summary.avg_ms.unwrap());
}

#[tokio::test]
async fn the_diag_endpoint_serves_the_same_text() {
    let dns = spawn_dns().await;
    let diag = test_support::spawn_diag(test_support::DiagConfig::new(
        dns.resolver(),
        Some("127.0.0.0/8"),
    ))
    .await;
    let response = diag
        .get("/diag/tcpping?host=nosuch.lockdown.test&port=80&count=3&timeout_ms=500&interval_ms=0&format=text")
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let read = read_tcpping(&text).unwrap();
    assert_eq!(read.statuses, vec![Status::HostNotFound; 3]);
    let response = diag
        .get("/diag/resolve?host=chain1.lockdown.test&format=text")
        .await;
    let text = response.text().await.unwrap();
    let (addresses, aliases) = read_nameresolver(&text).unwrap();
    assert_eq!(
        bare_addresses(&addresses).unwrap(),
        ["20.30.40.53".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        aliases,
        "chain1.lockdown.test\r\n\tchain2.lockdown.test\r\n"
    );
}

async fn resolve(resolver: &DnsResolver, host: &str, query_type: QueryType) -> Resolution {
    resolver.resolve(host, query_type).await
}

/// The portal's expression on a lookup that succeeded: the addresses and aliases it gets.
fn portal_reads_answer(resolution: &Resolution) -> (Vec<IpAddr>, Vec<String>) {
    let text = resolution.to_text();
    assert!(text.ends_with("\r\n"), "{text:?}");
    assert!(!text.replace("\r\n", "").contains('\n'), "{text:?}");
    let (addresses, aliases) =
        read_nameresolver(&text).unwrap_or_else(|| panic!("no match: {text:?}"));
    let addresses = bare_addresses(&addresses).unwrap_or_else(|e| panic!("{e}\n{text:?}"));
    let aliases = aliases.split("\r\n").filter(|a| !a.is_empty());
    let aliases = aliases
        .map(|alias| alias.trim_start_matches('\t').to_owned())
        .collect();
    (addresses, aliases)
}

#[tokio::test]
async fn resolve_text_with_an_alias() {
    let dns = spawn_dns().await;
    let r = resolve(
        &dns.resolver(),
        "app-be.azurewebsites.net",
        QueryType::Addresses,
    )
    .await;
    let (addresses, aliases) = portal_reads_answer(&r);
    assert_eq!(addresses, ["10.20.2.4".parse::<IpAddr>().unwrap()]);
    assert_eq!(aliases, ["app-be.azurewebsites.net"]);
    assert_eq!(
        r.to_text(),
        format!(
            "Server: {}\r\n\r\nNon-authoritative answer:\r\nName:    app-be.privatelink.azurewebsites.net\r\nAddresses:\r\n\t10.20.2.4\r\nAliases:\r\n\tapp-be.azurewebsites.net\r\n",
            dns.addr
        )
    );
}

#[tokio::test]
async fn resolve_text_without_aliases_still_matches() {
    let dns = spawn_dns().await;
    let r = resolve(
        &dns.resolver(),
        "public.lockdown.test",
        QueryType::Addresses,
    )
    .await;
    let (addresses, aliases) = portal_reads_answer(&r);
    assert_eq!(addresses, ["20.30.40.50".parse::<IpAddr>().unwrap()]);
    assert!(aliases.is_empty());
    assert!(
        r.to_text()
            .ends_with("Addresses:\r\n\t20.30.40.50\r\nAliases:\r\n")
    );
}

#[tokio::test]
async fn resolve_text_with_several_addresses_and_aliases() {
    let dns = spawn_dns().await;
    let r = resolve(&dns.resolver(), "dual.lockdown.test", QueryType::Addresses).await;
    let (addresses, _) = portal_reads_answer(&r);
    let expected: Vec<IpAddr> = vec![
        "20.30.40.51".parse().unwrap(),
        "2001:db8::51".parse().unwrap(),
    ];
    assert_eq!(addresses, expected);
    let r = resolve(
        &dns.resolver(),
        "chain1.lockdown.test",
        QueryType::Addresses,
    )
    .await;
    let (addresses, aliases) = portal_reads_answer(&r);
    assert_eq!(addresses, ["20.30.40.53".parse::<IpAddr>().unwrap()]);
    assert_eq!(aliases, ["chain1.lockdown.test", "chain2.lockdown.test"]);
    // 300 addresses: every one a bare line.
    let r = resolve(&dns.resolver(), "big.lockdown.test", QueryType::A).await;
    let (addresses, _) = portal_reads_answer(&r);
    assert_eq!(addresses.len(), test_support::BIG_RECORDS);
}

#[tokio::test]
async fn records_of_other_types_stay_out_of_the_kudu_text() {
    let dns = spawn_dns().await;
    let r = resolve(&dns.resolver(), "mail.lockdown.test", QueryType::Mx).await;
    assert!(r.ok && !r.records.is_empty(), "{r:?}");
    let (addresses, aliases) = portal_reads_answer(&r);
    assert!(addresses.is_empty() && aliases.is_empty());
    assert!(!r.to_text().contains("Records"), "{}", r.to_text());
    assert!(
        r.to_human_text()
            .contains("Records:\n        MX 10 mx1.lockdown.test")
    );
}

/// A failed lookup: nslookup's `***` line, which the portal's expression does not match.
async fn assert_failed(resolver: &DnsResolver, host: &str, kind: DnsErrorKind, phrase: &str) {
    let r = resolve(resolver, host, QueryType::Addresses).await;
    assert_eq!(r.error.as_ref().map(|e| e.kind), Some(kind), "{r:?}");
    let text = r.to_text();
    assert_eq!(read_nameresolver(&text), None, "{text:?}");
    let server = r.resolver.display_servers();
    assert_eq!(
        text,
        format!("Server: {server}\r\n\r\n*** {server} can't find {host}: {phrase}\r\n")
    );
}

#[tokio::test]
async fn failed_lookups_do_not_match_the_portal_expression() {
    let dns = spawn_dns().await;
    let resolver = dns.resolver();
    assert_failed(
        &resolver,
        "nosuch.lockdown.test",
        DnsErrorKind::Nxdomain,
        "Non-existent domain",
    )
    .await;
    assert_failed(
        &resolver,
        "textonly.lockdown.test",
        DnsErrorKind::Nodata,
        "No answer",
    )
    .await;
    let silent = spawn_silent_dns().await;
    let resolver = silent.resolver(Duration::from_millis(200));
    assert_failed(
        &resolver,
        "app-be.lockdown.test",
        DnsErrorKind::Timeout,
        "Timed out",
    )
    .await;
    let servfail = spawn_servfail_dns().await;
    let resolver = servfail.resolver(Duration::from_millis(1_000));
    assert_failed(
        &resolver,
        "app-be.lockdown.test",
        DnsErrorKind::Servfail,
        "Server failed",
    )
    .await;
}
