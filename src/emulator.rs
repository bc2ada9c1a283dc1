//! An App Service front-end emulator: what stands between a caller and an app's instances.
//! It applies `publicNetworkAccess` and the access-restriction rules (the shape of ARM
//! `ipSecurityRestrictions`) to traffic that arrives on the public address, lets traffic that
//! arrives through the private endpoint skip them (as Azure does), answers with App Service's
//! own 403 pages, adds the headers App Service adds, and pins callers to instances with the
//! `ARRAffinity` cookie.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use diag::appservice::{ACCESS_RESTRICTED_PAGE, APP_STOPPED_PAGE};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The largest request body the emulator forwards.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// App Service's page when no instance of the app answers.
pub const APP_ERROR_PAGE: &str = "<!DOCTYPE html><html><head><title>Application Error</title></head>\
<body><h1>:( Application Error</h1><p>If you are the application administrator, you can access the \
diagnostic resources.</p></body></html>";

/// `action` of an access-restriction rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleAction {
    /// Let the caller in.
    Allow,
    /// Answer 403.
    Deny,
}

/// One access-restriction rule, as in ARM `ipSecurityRestrictions`: an `ipAddress` CIDR or a
/// `vnetSubnetResourceId` (here: the subnet's CIDR, since a service endpoint makes the subnet's
/// private addresses visible to the app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessRule {
    /// The rule's name.
    pub name: String,
    /// Lower numbers are evaluated first.
    pub priority: u32,
    /// What a match does.
    pub action: RuleAction,
    /// `ipAddress`: a CIDR.
    pub ip_address: Option<IpNet>,
    /// `vnetSubnetResourceId`, reduced to the subnet's range.
    pub vnet_subnet: Option<IpNet>,
}

impl AccessRule {
    fn matches(&self, ip: IpAddr) -> bool {
        self.ip_address
            .iter()
            .chain(self.vnet_subnet.iter())
            .any(|net| net.contains(&ip))
    }
}

/// A site's inbound networking, mutable at run time so the lab can break or repair it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteNetworking {
    /// `publicNetworkAccess`: when false, the public address answers 403 to everyone.
    pub public_network_access: bool,
    /// `ipSecurityRestrictions`.
    pub rules: Vec<AccessRule>,
    /// `ipSecurityRestrictionsDefaultAction`: what happens when no rule matches.
    pub default_action: RuleAction,
    /// The app is stopped.
    pub stopped: bool,
}

impl SiteNetworking {
    /// Open to everyone (no rules, default Allow).
    pub fn open() -> Self {
        Self {
            public_network_access: true,
            rules: Vec::new(),
            default_action: RuleAction::Allow,
            stopped: false,
        }
    }

    /// The first matching rule by priority decides; else the default action.
    pub fn decide(&self, ip: IpAddr) -> RuleAction {
        let mut rules: Vec<&AccessRule> = self.rules.iter().collect();
        rules.sort_by_key(|r| r.priority);
        rules
            .into_iter()
            .find(|r| r.matches(ip))
            .map_or(self.default_action, |r| r.action)
    }
}

/// Which address a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// The app's public address: `publicNetworkAccess` and access restrictions apply.
    Public,
    /// The private endpoint: reachable from the VNet only; access restrictions do not apply.
    PrivateEndpoint,
}

/// One instance behind the site.
#[derive(Debug, Clone)]
pub struct SiteInstance {
    /// `WEBSITE_INSTANCE_ID`, also the `ARRAffinity` cookie's value.
    pub id: String,
    /// Where the instance listens.
    pub upstream: SocketAddr,
}

/// A site: its networking and its instances. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Site {
    /// The site's name.
    pub name: String,
    /// The inbound networking, shared with whoever may change it.
    pub networking: Arc<RwLock<SiteNetworking>>,
    instances: Arc<Vec<SiteInstance>>,
    next: Arc<AtomicUsize>,
    http: reqwest::Client,
}

impl Site {
    /// A site in front of `instances`.
    pub fn new(name: &str, networking: SiteNetworking, instances: Vec<SiteInstance>) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .expect("a plain HTTP client always builds");
        Self {
            name: name.to_owned(),
            networking: Arc::new(RwLock::new(networking)),
            instances: Arc::new(instances),
            next: Arc::new(AtomicUsize::new(0)),
            http,
        }
    }

    /// Replaces the networking (break or repair at run time).
    pub fn set_networking(&self, networking: SiteNetworking) {
        *self.networking.write().expect("networking lock") = networking;
    }

    fn networking(&self) -> SiteNetworking {
        self.networking.read().expect("networking lock").clone()
    }

    /// The instance for a request: the one its `ARRAffinity` cookie names, else round robin.
    /// Returns whether the cookie must be (re)set.
    fn pick(&self, headers: &HeaderMap) -> Option<(&SiteInstance, bool)> {
        if let Some(id) = affinity_cookie(headers)
            && let Some(instance) = self.instances.iter().find(|i| i.id == id)
        {
            return Some((instance, false));
        }
        if self.instances.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.instances.len();
        Some((&self.instances[n], true))
    }
}

fn affinity_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "ARRAffinity")
        .map(|(_, value)| value.to_owned())
}

#[derive(Clone)]
struct Ctx {
    site: Site,
    entry: Entry,
}

/// The router for one of the site's addresses.
pub fn router(site: Site, entry: Entry) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Ctx { site, entry })
}

fn page(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn handle(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let client = peer.ip().to_canonical();
    let networking = ctx.site.networking();
    if ctx.entry == Entry::Public {
        if !networking.public_network_access {
            // As on Azure: no page of its own, the access restriction's answer.
            return page(StatusCode::FORBIDDEN, ACCESS_RESTRICTED_PAGE);
        }
        if networking.decide(client) == RuleAction::Deny {
            return page(StatusCode::FORBIDDEN, ACCESS_RESTRICTED_PAGE);
        }
    }
    if networking.stopped {
        return page(StatusCode::FORBIDDEN, APP_STOPPED_PAGE);
    }
    let Some((instance, set_cookie)) = ctx.site.pick(request.headers()) else {
        return page(StatusCode::SERVICE_UNAVAILABLE, APP_ERROR_PAGE);
    };
    let mut response = forward(&ctx.site.http, instance, peer, request).await;
    if set_cookie
        && let Ok(cookie) =
            HeaderValue::from_str(&format!("ARRAffinity={}; Path=/; HttpOnly", instance.id))
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

async fn forward(
    http: &reqwest::Client,
    instance: &SiteInstance,
    peer: SocketAddr,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let Ok(body) = to_bytes(body, MAX_BODY_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    let client = peer.ip().to_canonical();
    let forwarded_for = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(existing) => format!("{existing}, {client}:{}", peer.port()),
        None => format!("{client}:{}", peer.port()),
    };
    let platform = [
        ("x-client-ip", client.to_string()),
        ("x-client-port", peer.port().to_string()),
        ("x-forwarded-for", forwarded_for),
        ("x-forwarded-proto", "http".to_owned()),
        ("x-arr-log-id", uuid::Uuid::new_v4().to_string()),
        ("x-original-url", path.clone()),
    ];
    for (name, value) in platform {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    let url = format!("http://{}{path}", instance.upstream);
    let sent = http
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::debug!(%error, instance = %instance.id, "instance did not answer");
            return page(StatusCode::SERVICE_UNAVAILABLE, APP_ERROR_PAGE);
        }
    };
    let status = upstream.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in upstream.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out_headers.append(name.clone(), value.clone());
        }
    }
    match upstream.bytes().await {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            *response.headers_mut() = out_headers;
            response
        }
        Err(_) => page(StatusCode::BAD_GATEWAY, APP_ERROR_PAGE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(priority: u32, action: RuleAction, cidr: &str) -> AccessRule {
        AccessRule {
            name: format!("rule-{priority}"),
            priority,
            action,
            ip_address: None,
            vnet_subnet: Some(cidr.parse().unwrap()),
        }
    }

    #[test]
    fn rules_are_evaluated_by_priority_then_the_default_action() {
        let networking = SiteNetworking {
            public_network_access: true,
            rules: vec![
                rule(200, RuleAction::Allow, "127.0.2.0/24"),
                rule(100, RuleAction::Deny, "127.0.2.66/32"),
            ],
            default_action: RuleAction::Deny,
            stopped: false,
        };
        assert_eq!(
            networking.decide("127.0.2.4".parse().unwrap()),
            RuleAction::Allow
        );
        assert_eq!(
            networking.decide("127.0.2.66".parse().unwrap()),
            RuleAction::Deny
        );
        assert_eq!(
            networking.decide("127.0.0.1".parse().unwrap()),
            RuleAction::Deny
        );
        assert_eq!(
            SiteNetworking::open().decide("127.0.0.1".parse().unwrap()),
            RuleAction::Allow
        );
    }

    #[test]
    fn the_affinity_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; ARRAffinity=be-1; b=2".parse().unwrap(),
        );
        assert_eq!(affinity_cookie(&headers).as_deref(), Some("be-1"));
    }
}
