//! The caller as each of App Service's three paths hands it over (public, service endpoint,
//! private endpoint), and `ALLOWED_CALLERS` against service-endpoint IPv6 callers. In process:
//! every address below is header text that is only parsed, never connected to.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::helpers::*;
use backend::ClientIpSource;

/// The service-endpoint form of 10.0.1.4, from an access-restriction audit entry.
const SE_10_0_1_4: &str = "fde4:8dba:2300:5457:6f23:200:a00:104";
/// The same VNet's form of 10.9.9.9 (another subnet).
const SE_10_9_9_9: &str = "fde4:8dba:2300:5457:6f23:200:a09:909";

/// `GET /api/caller` with `headers`, against a back end reading `source` and allowing `allowed`.
async fn caller_seen(
    source: ClientIpSource,
    allowed: Vec<&'static str>,
    headers: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        allowed,
        source,
        ..Setup::default()
    };
    let app = in_process(&setup, dir.path(), "127.0.0.1:4000");
    let mut request = Request::get("/api/caller").header("x-api-key", KEY);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    call(&app, request.body(Body::empty()).unwrap()).await
}

/// The public path's header set: values the back end parses in-process, never an address anything
/// connects to.
fn public_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("client-ip", "203.0.113.9:51234"), // parsed in-process, never connected to
        ("x-client-ip", "203.0.113.9"),
        ("x-client-port", "51234"),
        ("x-forwarded-for", "203.0.113.9:51234"), // parsed in-process, never connected to
    ]
}

/// A service-endpoint caller: the chain ends in the bracketed IPv6 form; `X-Client-Ip` may carry
/// it too (unconfirmed, so both forms are accepted).
fn service_endpoint_headers(ipv6: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("client-ip", format!("[{ipv6}]:50451")),
        ("x-client-ip", ipv6.to_owned()),
        ("x-client-port", "50451".to_owned()),
        ("x-forwarded-for", format!("[{ipv6}]:50451")),
    ]
}

fn private_endpoint_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("client-ip", "[fd40:1f2e:3d4c:5b6a:7988:100:a0a:5]:39466"),
        ("x-client-ip", "10.10.0.5"),
        ("x-client-port", "0"),
        ("x-forwarded-for", "10.10.0.5"),
    ]
}

fn borrowed<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

#[tokio::test]
async fn the_public_path_gives_an_ipv4_caller() {
    for source in [ClientIpSource::XClientIp, ClientIpSource::XForwardedFor] {
        let (status, json) = caller_seen(source, vec![], &public_headers()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json["client_ip"], "203.0.113.9", "{source:?}");
        assert_eq!(json["address_form"], "ipv4");
        assert_eq!(json["vnet_ip"], serde_json::Value::Null);
        assert_eq!(json["client_ip_note"], serde_json::Value::Null);
        assert_eq!(json["class"], "documentation");
    }
}

#[tokio::test]
async fn the_service_endpoint_path_shows_both_forms() {
    let headers = service_endpoint_headers(SE_10_0_1_4);
    for source in [ClientIpSource::XClientIp, ClientIpSource::XForwardedFor] {
        let (status, json) = caller_seen(source, vec![], &borrowed(&headers)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json["client_ip"], SE_10_0_1_4, "{source:?}");
        assert_eq!(json["address_form"], "service_endpoint");
        assert_eq!(json["vnet_ip"], "10.0.1.4");
        assert_eq!(
            json["client_ip_note"],
            "the service-endpoint form of 10.0.1.4"
        );
        assert_eq!(json["class"], "unique_local");
        assert_eq!(json["forwarded_for"][0]["port"], 50451);
    }
    // X-Client-Ip bracketed, with a port: the same caller.
    let (_, json) = caller_seen(
        ClientIpSource::XClientIp,
        vec![],
        &[("x-client-ip", &format!("[{SE_10_0_1_4}]:50451"))],
    )
    .await;
    assert_eq!(json["vnet_ip"], "10.0.1.4");
}

#[tokio::test]
async fn the_private_endpoint_path_gives_the_bare_private_address() {
    for source in [ClientIpSource::XClientIp, ClientIpSource::XForwardedFor] {
        let (status, json) =
            caller_seen(source, vec!["10.10.0.0/24"], &private_endpoint_headers()).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(json["client_ip"], "10.10.0.5", "{source:?}");
        assert_eq!(json["address_form"], "ipv4");
        assert_eq!(json["allowed"], true);
        assert_eq!(json["forwarded_for"][0]["port"], serde_json::Value::Null);
    }
}

#[tokio::test]
async fn ipv4_ranges_judge_a_service_endpoint_caller_by_its_vnet_address() {
    let inside = service_endpoint_headers(SE_10_0_1_4);
    let (status, json) = caller_seen(
        ClientIpSource::XClientIp,
        vec!["10.0.1.0/24"],
        &borrowed(&inside),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["allowed"], true);
    assert_eq!(json["allow_list_enforced"], true);

    let outside = service_endpoint_headers(SE_10_9_9_9);
    let (status, json) = caller_seen(
        ClientIpSource::XClientIp,
        vec!["10.0.1.0/24"],
        &borrowed(&outside),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json["error"]["code"], "caller_not_allowed");
    assert_eq!(
        json["error"]["message"],
        format!(
            "caller {SE_10_9_9_9} (the service-endpoint form of 10.9.9.9, from x-client-ip) is not in ALLOWED_CALLERS"
        )
    );
}

#[tokio::test]
async fn an_ipv6_range_is_compared_with_the_address_as_seen() {
    let allowed = vec!["fde4:8dba:2300:5457::/64"];
    let headers = service_endpoint_headers(SE_10_0_1_4);
    let (status, json) = caller_seen(
        ClientIpSource::XForwardedFor,
        allowed.clone(),
        &borrowed(&headers),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["allowed"], true);

    // Another VNet's service-endpoint caller, carrying the same IPv4: outside the IPv6 range.
    let other = service_endpoint_headers("fde4:8dba:1200:98db:6a12:300:a00:104");
    let (status, json) =
        caller_seen(ClientIpSource::XForwardedFor, allowed, &borrowed(&other)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the service-endpoint form of 10.0.1.4"),
        "{json}"
    );
}

#[tokio::test]
async fn an_undecodable_ipv6_caller_is_refused_as_such() {
    const GLOBAL: &str = "[2603:1030:20e:3::a00:104]:443"; // parsed, never connected to
    let (status, json) = caller_seen(
        ClientIpSource::XForwardedFor,
        vec!["10.0.1.0/24"],
        &[("x-forwarded-for", GLOBAL)],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json["error"]["code"], "caller_not_allowed");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2603:1030:20e:3::a00:104 (from x-forwarded-for) is an IPv6 caller that is not in App Service's service-endpoint form: it cannot be compared with IPv4 ranges"),
        "{message}"
    );
    assert!(
        json["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("IPv6 range"),
        "{json}"
    );

    // Without a list it is let in, and /api/caller says what it is.
    let (status, json) = caller_seen(
        ClientIpSource::XForwardedFor,
        vec![],
        &[("x-forwarded-for", GLOBAL)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["address_form"], "ipv6");
    assert_eq!(json["vnet_ip"], serde_json::Value::Null);
    assert!(
        json["client_ip_note"]
            .as_str()
            .unwrap()
            .contains("cannot be compared with IPv4 ranges")
    );
}
