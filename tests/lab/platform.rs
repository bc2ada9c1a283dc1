//! The emulator answers as App Service does on real deployments: the status lines with their
//! reason phrases as a client reads them, `x-ms-forbidden-ip` per path, the pages, the header set
//! the app receives on each path (through an echo upstream, and through the real back end), the
//! 64-hex affinity cookies, and the gateway in front.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::http::HeaderMap;
use diag::appservice::{ACCESS_RESTRICTED_PAGE, APP_ERROR_PAGE, APP_STOPPED_PAGE};
use hyper::ext::ReasonPhrase;
use lockdown::emulator::{
    self, AccessRule, CUSTOM_FORBIDDEN_PAGE, CUSTOM_UNAVAILABLE_PAGE, Entry, ErrorPages,
    RuleAction, Site, SiteInstance, SiteNetworking,
};
use lockdown::gateway::{GATEWAY_FORBIDDEN_PAGE, GATEWAY_SERVER};
use lockdown::topology::{BACKEND_HOST, BACKEND_PRIVATE_ENDPOINT, BACKEND_PUBLIC, net};
use lockdown::{Break, Lab, Mode};
use test_support::TestServer;

use crate::helpers::*;

/// The service-endpoint form of the integration-subnet address `127.0.2.<last>`.
fn service_endpoint_form(last: u8) -> String {
    format!("fde4:8dba:2300:5457:6f23:200:7f00:2{last:02x}")
}

/// A client whose calls leave from `source` and that finds the back end's name at `at`,
/// without any DNS lookup.
fn client_from(source: &str, at: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(source.parse::<IpAddr>().unwrap())
        .resolve(BACKEND_HOST, at)
        .build()
        .unwrap()
}

/// What a client reads of an answer: status, reason phrase, headers, body.
struct Answer {
    status: u16,
    reason: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn status_line(&self) -> String {
        let reason = self.reason.clone().unwrap_or_else(|| {
            reqwest::StatusCode::from_u16(self.status)
                .unwrap()
                .canonical_reason()
                .unwrap_or_default()
                .to_owned()
        });
        format!("{} {reason}", self.status)
    }
}

async fn get(client: &reqwest::Client, port: u16, path: &str) -> Answer {
    let response = client
        .get(format!("http://{BACKEND_HOST}:{port}{path}"))
        .send()
        .await
        .unwrap();
    let reason = response
        .extensions()
        .get::<ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
    Answer {
        status: response.status().as_u16(),
        reason,
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// An upstream that answers with the headers it received, as the app would see them.
async fn serve_echo() -> TestServer {
    async fn echo(headers: HeaderMap) -> Json<BTreeMap<String, String>> {
        Json(
            headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        )
    }
    test_support::serve(axum::Router::new().fallback(echo)).await
}

/// The emulator in front of `site` on `ip` (any port), for `entry`.
async fn serve_site(site: Site, ip: &str, entry: Entry) -> TestServer {
    test_support::serve_on(ip.parse().unwrap(), emulator::router(site, entry)).await
}

/// An `app-be` site in front of one echo instance, whose integration subnet has the service
/// endpoint, served on `ip` for `entry` (the echo lives as long as the server).
async fn serve_echo_site(networking: SiteNetworking, ip: &str, entry: Entry) -> (Site, TestServer) {
    let echo = serve_echo().await;
    let site = Site::new(
        "app-be",
        networking,
        vec![SiteInstance {
            id: lockdown::topology::instance_id("be-0"),
            upstream: echo.addr,
        }],
    )
    .with_service_endpoints(vec![net("127.0.2.0/24")]);
    let front = serve_site(site.clone(), ip, entry).await.holding(echo);
    (site, front)
}

/// What the app received from `source` through the site.
async fn echoed(
    networking: SiteNetworking,
    ip: &str,
    entry: Entry,
    source: &str,
) -> BTreeMap<String, String> {
    let (_, front) = serve_echo_site(networking, ip, entry).await;
    let at = front.addr;
    let answer = get(&client_from(source, at), at.port(), "/echo/a%20b?q=1").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    serde_json::from_str(&answer.body).unwrap()
}

fn is_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

/// The headers every path shares: `Host` kept, the site's names, the URL, the log id.
fn assert_common_headers(seen: &BTreeMap<String, String>, port: u16) {
    let host = format!("{BACKEND_HOST}:{port}");
    assert_eq!(seen["host"], host, "Host is kept: {seen:?}");
    assert_eq!(seen["disguised-host"], host);
    assert_eq!(seen["was-default-hostname"], BACKEND_HOST);
    assert_eq!(seen["x-site-deployment-id"], "app-be");
    assert_eq!(seen["x-original-url"], "/echo/a%20b?q=1");
    assert_eq!(seen["x-waws-unencoded-url"], "/echo/a b?q=1");
    assert_eq!(seen["max-forwards"], "10");
    assert!(is_uuid(&seen["x-arr-log-id"]), "{seen:?}");
    assert!(
        !seen.contains_key("x-forwarded-proto"),
        "plain HTTP carries no X-Forwarded-Proto: {seen:?}"
    );
}

fn port_of(entry: &str) -> u16 {
    entry.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[tokio::test]
async fn the_app_receives_app_services_headers_on_the_public_path() {
    let (_, front) = serve_echo_site(SiteNetworking::open(), "127.0.1.31", Entry::Public).await;
    let at = front.addr;
    let answer = get(&client_from("127.0.0.1", at), at.port(), "/echo/a%20b?q=1").await;
    let seen: BTreeMap<String, String> = serde_json::from_str(&answer.body).unwrap();
    assert_common_headers(&seen, at.port());
    let port = port_of(&seen["client-ip"]);
    assert_eq!(seen["client-ip"], format!("127.0.0.1:{port}"));
    assert_eq!(seen["x-client-ip"], "127.0.0.1");
    assert_eq!(seen["x-client-port"], port.to_string());
    assert_eq!(seen["x-forwarded-for"], format!("127.0.0.1:{port}"));
}

#[tokio::test]
async fn a_service_endpoint_caller_reaches_the_app_in_its_ipv6_form() {
    let seen = echoed(
        SiteNetworking::open(),
        "127.0.1.32",
        Entry::Public,
        "127.0.2.9",
    )
    .await;
    let v6 = service_endpoint_form(9);
    let port = port_of(&seen["client-ip"]);
    assert_ne!(port, 0);
    assert_eq!(seen["client-ip"], format!("[{v6}]:{port}"));
    assert_eq!(seen["x-forwarded-for"], format!("[{v6}]:{port}"));
    assert_eq!(
        seen["x-client-ip"], v6,
        "unconfirmed on Azure; the lab sends the IPv6 form"
    );
    assert_eq!(seen["x-client-port"], port.to_string());
}

#[tokio::test]
async fn a_private_endpoint_caller_arrives_bare_with_port_0() {
    let networking = SiteNetworking {
        public_network_access: false,
        ..SiteNetworking::open()
    };
    let seen = echoed(
        networking,
        "127.0.3.31",
        Entry::PrivateEndpoint,
        "127.0.2.9",
    )
    .await;
    assert_eq!(seen["x-forwarded-for"], "127.0.2.9");
    assert_eq!(seen["x-client-ip"], "127.0.2.9");
    assert_eq!(seen["x-client-port"], "0");
    let client_ip = &seen["client-ip"];
    assert!(
        client_ip.starts_with("[fd40:") && client_ip.contains(":7f00:209]:"),
        "the IPv6 form with the IPv4 in the low 32 bits: {client_ip}"
    );
    assert_ne!(port_of(client_ip), 0);
}

#[tokio::test]
async fn a_forwarded_for_chain_ends_with_the_hop_app_service_appends() {
    let (_, front) = serve_echo_site(SiteNetworking::open(), "127.0.1.33", Entry::Public).await;
    let at = front.addr;
    let response = client_from("127.0.2.9", at)
        .get(format!("http://{BACKEND_HOST}:{}/", at.port()))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-client-ip", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let seen: BTreeMap<String, String> = response.json().await.unwrap();
    let v6 = service_endpoint_form(9);
    let chain = &seen["x-forwarded-for"];
    assert!(
        chain.starts_with("203.0.113.9, [") && chain.contains(&v6),
        "{chain}"
    );
    assert_eq!(
        seen["x-client-ip"], v6,
        "a caller cannot choose its X-Client-Ip"
    );
}

fn denied_everywhere_but(rule: AccessRule) -> SiteNetworking {
    SiteNetworking {
        public_network_access: true,
        rules: vec![rule],
        default_action: RuleAction::Deny,
        stopped: false,
    }
}

fn assert_ip_forbidden(answer: &Answer, forbidden_ip: &str, page: &str) {
    assert_eq!(answer.status_line(), "403 Ip Forbidden", "{}", answer.body);
    assert_eq!(answer.header("x-ms-forbidden-ip"), Some(forbidden_ip));
    assert_eq!(answer.body, page);
}

#[tokio::test]
async fn an_ip_rule_naming_the_subnet_does_not_match_its_service_endpoint_callers() {
    let subnet = net("127.0.2.0/24");
    let ip_rule = AccessRule {
        ip_address: Some(subnet),
        ..AccessRule::new("allow-subnet-range", 100, RuleAction::Allow)
    };
    let networking = denied_everywhere_but(ip_rule.clone());
    let (site, front) = serve_echo_site(networking, "127.0.1.34", Entry::Public).await;
    let at = front.addr;
    let client = client_from("127.0.2.9", at);
    assert_ip_forbidden(
        &get(&client, at.port(), "/").await,
        &service_endpoint_form(9),
        ACCESS_RESTRICTED_PAGE,
    );
    // The same range as a subnet rule matches by the embedded IPv4.
    site.set_networking(denied_everywhere_but(AccessRule {
        ip_address: None,
        vnet_subnet: Some(subnet),
        ..ip_rule
    }));
    let allowed = get(&client, at.port(), "/").await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
}

#[tokio::test]
async fn a_denied_internet_caller_gets_ip_forbidden_with_its_address() {
    let lab = start(Mode::ServiceEndpoint, &[]).await;
    let public = SocketAddr::new(BACKEND_PUBLIC, lab.backend_port);
    let answer = get(
        &client_from("127.0.0.1", public),
        lab.backend_port,
        "/healthz",
    )
    .await;
    assert_ip_forbidden(&answer, "127.0.0.1", ACCESS_RESTRICTED_PAGE);
    assert!(answer.body.contains("Error 403 - Forbidden"));
    assert!(
        answer
            .body
            .contains("The web app you have attempted to reach has blocked your access.")
    );
}

#[tokio::test]
async fn a_service_endpoint_caller_is_denied_in_its_ipv6_form() {
    // The rule names another subnet: the front end's calls arrive through the service endpoint.
    let lab = start(Mode::ServiceEndpoint, &[Break::WrongSubnet]).await;
    let public = SocketAddr::new(BACKEND_PUBLIC, lab.backend_port);
    let answer = get(
        &client_from("127.0.2.9", public),
        lab.backend_port,
        "/healthz",
    )
    .await;
    assert_ip_forbidden(&answer, &service_endpoint_form(9), ACCESS_RESTRICTED_PAGE);
}

#[tokio::test]
async fn disabled_public_access_answers_exactly_as_a_denial() {
    let lab = start(Mode::PrivateEndpoint, &[]).await;
    let public = SocketAddr::new(BACKEND_PUBLIC, lab.backend_port);
    // From the internet and from the VNet (no service endpoint in this mode: plain IPv4).
    for source in ["127.0.0.1", "127.0.2.9"] {
        let answer = get(&client_from(source, public), lab.backend_port, "/healthz").await;
        assert_ip_forbidden(&answer, source, ACCESS_RESTRICTED_PAGE);
    }
    // The private endpoint lets the VNet in.
    let private = SocketAddr::new(BACKEND_PRIVATE_ENDPOINT, lab.backend_port);
    let answer = get(
        &client_from("127.0.2.9", private),
        lab.backend_port,
        "/healthz",
    )
    .await;
    assert_eq!(answer.status_line(), "200 OK", "{}", answer.body);
}

#[tokio::test]
async fn a_stopped_app_answers_site_disabled() {
    let lab = start(Mode::PrivateEndpoint, &[]).await;
    lab.backend_site.set_networking(SiteNetworking {
        stopped: true,
        ..lab.plan.backend_networking.clone()
    });
    let private = SocketAddr::new(BACKEND_PRIVATE_ENDPOINT, lab.backend_port);
    let answer = get(
        &client_from("127.0.2.9", private),
        lab.backend_port,
        "/healthz",
    )
    .await;
    assert_eq!(answer.status_line(), "403 Site Disabled");
    assert_eq!(answer.body, APP_STOPPED_PAGE);
    assert!(answer.body.contains("Error 403 - This web app is stopped."));
    assert_eq!(answer.header("x-ms-forbidden-ip"), None);
}

#[tokio::test]
async fn no_instance_answering_is_nginx_503() {
    let lab = start(Mode::PrivateEndpoint, &[Break::BackendDown]).await;
    let private = SocketAddr::new(BACKEND_PRIVATE_ENDPOINT, lab.backend_port);
    let answer = get(
        &client_from("127.0.2.9", private),
        lab.backend_port,
        "/healthz",
    )
    .await;
    assert_eq!(answer.status_line(), "503 Service Unavailable");
    assert_eq!(answer.header("server"), Some("nginx"));
    assert_eq!(answer.body, APP_ERROR_PAGE);
    assert!(answer.body.contains(":( Application Error"));
}

#[tokio::test]
async fn custom_error_pages_keep_the_status_lines_and_the_forbidden_ip() {
    let lab = start(Mode::ServiceEndpoint, &[Break::CustomErrorPages]).await;
    let public = SocketAddr::new(BACKEND_PUBLIC, lab.backend_port);
    let answer = get(
        &client_from("127.0.0.1", public),
        lab.backend_port,
        "/healthz",
    )
    .await;
    assert_ip_forbidden(&answer, "127.0.0.1", CUSTOM_FORBIDDEN_PAGE);
    assert!(!answer.body.contains("blocked your access"));

    let down = Site::new(
        "app-be",
        SiteNetworking::open(),
        vec![SiteInstance {
            id: lockdown::topology::instance_id("be-0"),
            upstream: test_support::closed_addr(),
        }],
    )
    .with_error_pages(ErrorPages::CUSTOM);
    let front = serve_site(down, "127.0.1.35", Entry::Public).await;
    let at = front.addr;
    let answer = get(&client_from("127.0.0.1", at), at.port(), "/").await;
    assert_eq!(answer.status_line(), "503 Service Unavailable");
    assert_eq!(answer.header("server"), Some("nginx"));
    assert_eq!(answer.body, CUSTOM_UNAVAILABLE_PAGE);
}

#[tokio::test]
async fn a_gateway_in_front_refuses_everyone_itself() {
    for mode in [Mode::ServiceEndpoint, Mode::PrivateEndpoint] {
        let lab = start(mode, &[Break::GatewayInFront]).await;
        let public = SocketAddr::new(BACKEND_PUBLIC, lab.backend_port);
        let mut targets = vec![("127.0.0.1", public), ("127.0.2.9", public)];
        if mode == Mode::PrivateEndpoint {
            targets.push((
                "127.0.2.9",
                SocketAddr::new(BACKEND_PRIVATE_ENDPOINT, lab.backend_port),
            ));
        }
        for (source, at) in targets {
            let answer = get(&client_from(source, at), lab.backend_port, "/healthz").await;
            assert_eq!(
                answer.status_line(),
                "403 Forbidden",
                "{mode} {source} {at}"
            );
            assert_eq!(answer.header("server"), Some(GATEWAY_SERVER));
            assert_eq!(answer.body.len(), 179);
            assert_eq!(answer.body, GATEWAY_FORBIDDEN_PAGE);
            assert_eq!(answer.header("x-ms-forbidden-ip"), None);
        }
    }
}

#[tokio::test]
async fn affinity_cookies_carry_the_64_hex_instance_id_twice() {
    let lab = start(Mode::ServiceEndpoint, &[]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .get(format!("{}/healthz", lab.frontend_url))
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let value = |name: &str| {
        cookies
            .iter()
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .and_then(|rest| rest.split(';').next())
            .map(str::to_owned)
    };
    let id = value("ARRAffinity").expect("an ARRAffinity cookie");
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert_eq!(value("ARRAffinitySameSite").as_deref(), Some(id.as_str()));
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("ARRAffinitySameSite=") && c.contains("SameSite=None")),
        "{cookies:?}"
    );
    assert!(lab.frontend_instance_ids.contains(&id));
    // The id is the instance's WEBSITE_INSTANCE_ID: pinned, that instance answers.
    let pinned = client
        .get(format!("{}/diag/env", lab.frontend_url))
        .bearer_auth(&lab.diag_token)
        .header("cookie", format!("ARRAffinitySameSite={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        pinned
            .headers()
            .get(diag::api::INSTANCE_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some(id.as_str())
    );
    assert!(pinned.headers().get(reqwest::header::SET_COOKIE).is_none());
}

#[test]
fn app_service_pages_are_the_captured_shape() {
    for (page, size) in [(ACCESS_RESTRICTED_PAGE, 1900), (APP_STOPPED_PAGE, 1100)] {
        assert!(page.contains("<title>Web App - Unavailable</title>"));
        assert!(
            page.len().abs_diff(size) < 150,
            "about {size} bytes, got {}",
            page.len()
        );
        assert!(page.ends_with("\r\n"));
        assert_eq!(
            page.matches('\n').count(),
            page.matches("\r\n").count(),
            "CRLF line ends only"
        );
    }
}

/// How the real back end saw a call from `source` to `at` (its `/api/caller`).
async fn backend_saw(lab: &Lab, source: &str, at: IpAddr) -> serde_json::Value {
    let at = SocketAddr::new(at, lab.backend_port);
    let response = client_from(source, at)
        .get(format!(
            "http://{BACKEND_HOST}:{}/api/caller",
            lab.backend_port
        ))
        .header("x-api-key", &lab.backend_api_key)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let caller: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{caller}");
    caller
}

fn last_forwarded_hop(caller: &serde_json::Value) -> &str {
    caller["forwarded_for"]
        .as_array()
        .and_then(|hops| hops.last())
        .and_then(|hop| hop["raw"].as_str())
        .unwrap_or_else(|| panic!("no forwarded-for hop: {caller}"))
}

#[tokio::test]
async fn the_back_end_sees_a_private_endpoint_caller_bare() {
    let lab = start(Mode::PrivateEndpoint, &[]).await;
    let caller = backend_saw(&lab, "127.0.2.9", BACKEND_PRIVATE_ENDPOINT).await;
    assert_eq!(caller["client_ip"], "127.0.2.9", "{caller}");
    assert_eq!(caller["source"], "x-client-ip", "{caller}");
    assert_eq!(
        last_forwarded_hop(&caller),
        "127.0.2.9",
        "no port: {caller}"
    );
}

#[tokio::test]
async fn the_back_end_sees_a_service_endpoint_caller_in_its_ipv6_form() {
    // The back end lets it in: ALLOWED_CALLERS compares the embedded IPv4 with the subnet.
    let lab = start(Mode::ServiceEndpoint, &[]).await;
    let caller = backend_saw(&lab, "127.0.2.9", BACKEND_PUBLIC).await;
    let hop = last_forwarded_hop(&caller);
    assert!(
        hop.starts_with(&format!("[{}]:", service_endpoint_form(9))),
        "{caller}"
    );
    assert_eq!(caller["allowed"], true, "{caller}");
    assert_eq!(caller["client_ip"], service_endpoint_form(9), "{caller}");
    assert_eq!(caller["address_form"], "service_endpoint", "{caller}");
    assert_eq!(caller["vnet_ip"], "127.0.2.9", "{caller}");
}
