//! The diagnostic lookup against real DNS servers on loopback: chains, privatelink, every failure
//! told apart, TCP fallback, record types.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use diag::dns::{DnsErrorKind, QueryType, ResolveRequest, ResolverSource};
use hickory_proto::op::ResponseCode;

use test_support::{
    BIG_RECORDS, spawn_dns, spawn_dns_with, spawn_scripted_dns, spawn_servfail_dns,
    spawn_silent_dns,
};

fn ips(resolution: &diag::Resolution) -> Vec<String> {
    resolution
        .addresses
        .iter()
        .map(|a| a.ip.to_string())
        .collect()
}

#[tokio::test]
async fn a_public_name_resolves_with_its_class() {
    let dns = spawn_dns().await;
    let r = dns
        .resolver()
        .resolve("public.lockdown.test", QueryType::A)
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.rcode.as_deref(), Some("NOERROR"));
    assert_eq!(ips(&r), ["20.30.40.50"]);
    assert_eq!(r.addresses[0].ttl, 60);
    assert_eq!(r.addresses[0].class, hosting::AddressClass::Public);
    assert!(r.chain.is_empty());
    assert_eq!(r.canonical_name.as_deref(), Some("public.lockdown.test"));
    assert!(!r.privatelink);
    assert!(r.error.is_none());
    assert_eq!(r.resolver.source, ResolverSource::DnsServers);
    assert_eq!(r.resolver.servers, vec![dns.addr]);
    assert!(r.duration_ms > 0.0);
}

#[tokio::test]
async fn the_privatelink_chain_is_reported_hop_by_hop() {
    let dns = spawn_dns().await;
    let r = dns
        .resolver()
        .resolve("app-be.azurewebsites.net", QueryType::Addresses)
        .await;
    assert!(r.ok, "{r:?}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["chain"],
        serde_json::json!([{
            "name": "app-be.azurewebsites.net",
            "ttl": 300,
            "target": "app-be.privatelink.azurewebsites.net"
        }])
    );
    assert_eq!(
        json["canonical_name"],
        "app-be.privatelink.azurewebsites.net"
    );
    assert_eq!(
        json["addresses"],
        serde_json::json!([{"ip": "10.20.2.4", "ttl": 10, "class": "private"}])
    );
    assert_eq!(json["privatelink"], true);
    assert_eq!(json["query"]["type"], "A+AAAA");
    assert_eq!(json["resolver"]["source"], "DNS_SERVERS");
    for key in ["ok", "rcode", "error", "duration_ms"] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
}

#[tokio::test]
async fn the_public_name_of_a_public_app_is_not_privatelink() {
    let dns = spawn_dns().await;
    let r = dns
        .resolver()
        .resolve("app-fe.azurewebsites.net", QueryType::Addresses)
        .await;
    assert!(r.ok);
    assert!(!r.privatelink);
    assert_eq!(ips(&r), ["20.40.60.80"]);
}

#[tokio::test]
async fn nxdomain_and_nodata_are_told_apart() {
    let dns = spawn_dns().await;
    let resolver = dns.resolver();
    let r = resolver
        .resolve("nosuch.lockdown.test", QueryType::Addresses)
        .await;
    assert!(!r.ok);
    assert_eq!(r.error.as_ref().unwrap().kind, DnsErrorKind::Nxdomain);
    assert_eq!(r.rcode.as_deref(), Some("NXDOMAIN"));

    let r = resolver
        .resolve("textonly.lockdown.test", QueryType::A)
        .await;
    assert!(!r.ok);
    assert_eq!(r.error.as_ref().unwrap().kind, DnsErrorKind::Nodata);
    assert_eq!(r.rcode.as_deref(), Some("NOERROR"));

    // Both A and AAAA empty is still NODATA for the default query.
    let r = resolver
        .resolve("textonly.lockdown.test", QueryType::Addresses)
        .await;
    assert_eq!(r.error.as_ref().unwrap().kind, DnsErrorKind::Nodata);
}

#[tokio::test]
async fn servfail_is_reported_as_such() {
    let dns = spawn_servfail_dns().await;
    let r = dns
        .resolver(Duration::from_millis(1_000))
        .resolve("anything.lockdown.test", QueryType::A)
        .await;
    assert!(!r.ok);
    assert_eq!(r.error.as_ref().unwrap().kind, DnsErrorKind::Servfail);
    assert_eq!(r.rcode.as_deref(), Some("SERVFAIL"));
}

#[tokio::test]
async fn refused_is_reported_as_such() {
    // The test server is authoritative only: it refuses names outside its zones.
    let dns = spawn_dns().await;
    let r = dns
        .resolver()
        .resolve("outside.example", QueryType::A)
        .await;
    assert!(!r.ok, "{r:?}");
    assert_eq!(
        r.error.as_ref().unwrap().kind,
        DnsErrorKind::Refused,
        "{r:?}"
    );
    assert_eq!(r.rcode.as_deref(), Some("REFUSED"));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let dns = spawn_silent_dns().await;
    let started = Instant::now();
    let r = dns
        .resolver(Duration::from_millis(300))
        .resolve("public.lockdown.test", QueryType::A)
        .await;
    assert!(!r.ok);
    assert_eq!(
        r.error.as_ref().unwrap().kind,
        DnsErrorKind::Timeout,
        "{r:?}"
    );
    assert_eq!(r.rcode, None);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(dns.query_count() >= 1);
}

#[tokio::test]
async fn a_truncated_answer_is_retried_over_tcp_and_complete() {
    let dns = spawn_dns().await;
    let r = dns
        .resolver()
        .resolve("big.lockdown.test", QueryType::A)
        .await;
    assert!(r.ok, "{:?}", r.error);
    assert_eq!(r.addresses.len(), BIG_RECORDS);
    assert!(
        r.addresses
            .iter()
            .any(|a| a.ip == IpAddr::from([10, 99, 1, 50]))
    );

    // The same answer from a server without TCP cannot be completed: the fallback is real.
    let udp_only = spawn_dns_with(false).await;
    let r = udp_only
        .resolver()
        .resolve("big.lockdown.test", QueryType::A)
        .await;
    assert!(!r.ok);
    assert_eq!(
        r.error.as_ref().unwrap().kind,
        DnsErrorKind::Truncated,
        "{r:?}"
    );
}

#[tokio::test]
async fn a_cname_chain_is_followed_to_its_end() {
    let dns = spawn_dns().await;
    let r = dns
        .resolver()
        .resolve("chain1.lockdown.test", QueryType::Addresses)
        .await;
    assert!(r.ok, "{r:?}");
    let hops: Vec<_> = r
        .chain
        .iter()
        .map(|h| (h.name.as_str(), h.target.as_str()))
        .collect();
    assert_eq!(
        hops,
        [
            ("chain1.lockdown.test", "chain2.lockdown.test"),
            ("chain2.lockdown.test", "chain3.lockdown.test")
        ]
    );
    assert_eq!(r.canonical_name.as_deref(), Some("chain3.lockdown.test"));
    assert_eq!(ips(&r), ["20.30.40.53"]);
}

#[tokio::test]
async fn a_cname_loop_is_detected() {
    let dns = spawn_dns().await;
    let r = dns
        .resolver()
        .resolve("loop1.lockdown.test", QueryType::A)
        .await;
    assert!(!r.ok);
    assert_eq!(
        r.error.as_ref().unwrap().kind,
        DnsErrorKind::CnameLoop,
        "{r:?}"
    );
    assert!(!r.chain.is_empty());
}

#[tokio::test]
async fn a_dangling_alias_keeps_its_chain() {
    let dns = spawn_dns().await;
    let r = dns
        .resolver()
        .resolve("dangling.lockdown.test", QueryType::A)
        .await;
    assert!(!r.ok);
    assert_eq!(
        r.error.as_ref().unwrap().kind,
        DnsErrorKind::Nxdomain,
        "{r:?}"
    );
    assert_eq!(r.chain.len(), 1);
    assert_eq!(r.chain[0].target, "missing.lockdown.test");
}

#[tokio::test]
async fn other_record_types() {
    let dns = spawn_dns().await;
    let resolver = dns.resolver();

    let txt = resolver
        .resolve("textonly.lockdown.test", QueryType::Txt)
        .await;
    assert!(txt.ok);
    assert_eq!(txt.records[0].record_type, "TXT");
    assert_eq!(txt.records[0].data, "only text here");

    let mx = resolver.resolve("mail.lockdown.test", QueryType::Mx).await;
    assert!(mx.ok);
    assert_eq!(mx.records[0].data, "10 mx1.lockdown.test");

    let srv = resolver
        .resolve("_https._tcp.svc.lockdown.test", QueryType::Srv)
        .await;
    assert!(srv.ok, "{srv:?}");
    assert_eq!(srv.records[0].data, "10 5 443 public.lockdown.test");

    let request = ResolveRequest::parse("10.20.2.4", None).unwrap();
    assert_eq!(request.query_type, QueryType::Ptr);
    let ptr = resolver.resolve_request(&request).await;
    assert!(ptr.ok, "{ptr:?}");
    assert_eq!(ptr.query.name, "4.2.20.10.in-addr.arpa");
    assert_eq!(ptr.records[0].data, "app-be.privatelink.azurewebsites.net");
    assert!(!ptr.privatelink, "a PTR answer is not a CNAME hop");

    let cname = resolver
        .resolve("app-be.azurewebsites.net", QueryType::Cname)
        .await;
    assert!(cname.ok);
    assert_eq!(
        cname.chain[0].target,
        "app-be.privatelink.azurewebsites.net"
    );
    assert!(cname.privatelink);

    let dual = resolver
        .resolve("dual.lockdown.test", QueryType::Addresses)
        .await;
    assert_eq!(ips(&dual), ["20.30.40.51", "2001:db8::51"]);
    let v6 = resolver
        .resolve("dual.lockdown.test", QueryType::Aaaa)
        .await;
    assert_eq!(ips(&v6), ["2001:db8::51"]);
}

#[tokio::test]
async fn invalid_names_are_failures_not_panics() {
    let dns = spawn_dns().await;
    let r = dns.resolver().resolve(&"a".repeat(64), QueryType::A).await;
    assert!(!r.ok);
    assert_eq!(r.error.unwrap().kind, DnsErrorKind::InvalidInput);
}

#[tokio::test]
async fn lookup_ip_for_connects() {
    let dns = spawn_dns().await;
    let resolver = dns.resolver();
    assert_eq!(
        resolver
            .lookup_ip("app-be.azurewebsites.net")
            .await
            .unwrap(),
        vec![IpAddr::from([10, 20, 2, 4])]
    );
    // IPv4 first.
    let dual = resolver.lookup_ip("dual.lockdown.test").await.unwrap();
    assert_eq!(dual[0], IpAddr::from([20, 30, 40, 51]));
    assert_eq!(dual.len(), 2);
    // Literals in any spelling need no DNS.
    assert_eq!(
        resolver.lookup_ip("0x7f.1").await.unwrap(),
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
    );
    let failure = resolver
        .lookup_ip("nosuch.lockdown.test")
        .await
        .unwrap_err();
    assert_eq!(failure.kind, DnsErrorKind::Nxdomain);
}

#[tokio::test]
async fn each_lookup_asks_the_server_again() {
    // No cache: two lookups, two queries.
    let dns =
        spawn_scripted_dns(|_, _| Some((ResponseCode::NoError, vec![Ipv4Addr::new(127, 0, 0, 1)])))
            .await;
    let resolver = dns.resolver(Duration::from_millis(1_000));
    resolver.resolve("again.lockdown.test", QueryType::A).await;
    resolver.resolve("again.lockdown.test", QueryType::A).await;
    assert_eq!(dns.query_count(), 2);
}

#[tokio::test]
async fn servers_named_by_a_request_are_asked_every_time() {
    // `server=` resolvers are built once per server list and kept, but they cache no answers
    // and never mix up lists: every lookup is a query to exactly the servers named.
    let first =
        spawn_scripted_dns(|_, _| Some((ResponseCode::NoError, vec![Ipv4Addr::new(127, 0, 0, 1)])))
            .await;
    let second =
        spawn_scripted_dns(|_, _| Some((ResponseCode::NoError, vec![Ipv4Addr::new(127, 0, 0, 2)])))
            .await;
    let app = first.resolver(Duration::from_millis(1_000));
    for _ in 0..3 {
        let named = app.with_query_servers(vec![second.addr]).unwrap();
        let r = named.resolve("again.lockdown.test", QueryType::A).await;
        assert_eq!(ips(&r), ["127.0.0.2"]);
        assert_eq!(r.resolver.servers, [second.addr]);
    }
    assert_eq!(second.query_count(), 3);
    assert_eq!(first.query_count(), 0);
    let named = app.with_query_servers(vec![first.addr]).unwrap();
    let r = named.resolve("again.lockdown.test", QueryType::A).await;
    assert_eq!(ips(&r), ["127.0.0.1"]);
    assert_eq!(first.query_count(), 1);
}

/// A catalogued name's report names its service and says how its answer came, for each way a
/// Key Vault name can resolve.
#[tokio::test]
async fn a_catalogued_name_reports_its_service_and_zone() {
    use diag::azure::ZoneStatus;
    use diag::diagnosis::Code;
    let dns = spawn_dns().await;
    let resolver = dns.resolver();
    let cases = [
        (
            "kv-ok.vault.azure.net",
            ZoneStatus::Private,
            None,
            Some("privatelink.vaultcore.azure.net"),
        ),
        (
            "kv-public.vault.azure.net",
            ZoneStatus::NotLinked,
            Some(Code::PrivatelinkZoneNotLinked),
            Some("privatelink.vaultcore.azure.net"),
        ),
        (
            "kv-none.vault.azure.net",
            ZoneStatus::Missing,
            Some(Code::PrivatelinkZoneMissing),
            None,
        ),
        (
            "kv-wrong.vault.azure.net",
            ZoneStatus::WrongZone,
            Some(Code::WrongPrivatelinkZone),
            Some("privatelink.vault.azure.net"),
        ),
        ("kv-gone.vault.azure.net", ZoneStatus::Failed, None, None),
    ];
    for (host, status, code, seen) in cases {
        let r = resolver.resolve(host, QueryType::Addresses).await;
        let service = r
            .service
            .as_ref()
            .unwrap_or_else(|| panic!("{host}: {r:?}"));
        assert_eq!(service.key, "key_vault");
        assert_eq!(service.zones, ["privatelink.vaultcore.azure.net"]);
        let zone = r.zone.as_ref().unwrap();
        assert_eq!(
            (zone.status, zone.code, zone.seen.as_deref()),
            (status, code, seen),
            "{host}: {r:?}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["service"]["key"], "key_vault");
        assert_eq!(
            json["zone"]["expected"][0],
            "privatelink.vaultcore.azure.net"
        );
    }
    // Names the catalogue does not know carry neither key.
    let r = resolver.resolve("public.lockdown.test", QueryType::A).await;
    let json = serde_json::to_value(&r).unwrap();
    assert!(
        json.get("service").is_none() && json.get("zone").is_none(),
        "{json}"
    );
    // Other record types name the service but judge no zone.
    let r = resolver
        .resolve("kv-ok.vault.azure.net", QueryType::Cname)
        .await;
    assert!(r.service.is_some() && r.zone.is_none(), "{r:?}");
}
