//! An App Service front-end emulator: what stands between a caller and an app's instances, as
//! captured on real deployments. It applies `publicNetworkAccess` and the access-restriction rules
//! (the shape of ARM `ipSecurityRestrictions`) to traffic that arrives on the public address,
//! lets traffic that arrives through the private endpoint skip them (as Azure does), refuses with
//! App Service's status lines (`403 Ip Forbidden` + `x-ms-forbidden-ip`, `403 Site Disabled`, the
//! nginx 503), hands the app the headers App Service adds on each path (public, service endpoint,
//! private endpoint), and pins callers to instances with the `ARRAffinity` cookies.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use diag::appservice::{ACCESS_RESTRICTED_PAGE, APP_ERROR_PAGE, APP_STOPPED_PAGE};
use hyper::ext::ReasonPhrase;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The largest request body the emulator forwards.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The header App Service adds to an `Ip Forbidden` answer: the caller's address as the access
/// restrictions saw it (for a service-endpoint caller, its IPv6 form).
pub const FORBIDDEN_IP_HEADER: &str = "x-ms-forbidden-ip";

/// The reason phrase of a caller refused by the access restrictions or by disabled public access.
pub const IP_FORBIDDEN_REASON: &str = "Ip Forbidden";

/// The reason phrase of a stopped app's answer.
pub const SITE_DISABLED_REASON: &str = "Site Disabled";

/// The lab's custom 403 page (`--break custom-error-pages`): a plan's own page carries none of
/// App Service's sentences, so only the status line and `x-ms-forbidden-ip` tell the denial.
pub const CUSTOM_FORBIDDEN_PAGE: &str = "<!DOCTYPE html>\r\n<html>\r\n<head><title>Contoso</title></head>\r\n<body>\r\n<h1>Sorry, this page is not available to you.</h1>\r\n<p>Contact the Contoso help desk if you think this is a mistake.</p>\r\n</body>\r\n</html>\r\n";

/// The lab's custom 503 page (`--break custom-error-pages`).
pub const CUSTOM_UNAVAILABLE_PAGE: &str = "<!DOCTYPE html>\r\n<html>\r\n<head><title>Contoso</title></head>\r\n<body>\r\n<h1>We'll be right back.</h1>\r\n<p>Contoso is down for maintenance.</p>\r\n</body>\r\n</html>\r\n";

/// The first 96 bits of the service-endpoint form: those of the captured audit entry
/// (`fde4:8dba:2300:5457:6f23:200:a00:104` for 10.0.1.4). Azure varies them by network; the lab
/// needs one.
const SERVICE_ENDPOINT_PREFIX: [u16; 6] = [0xfde4, 0x8dba, 0x2300, 0x5457, 0x6f23, 0x0200];

/// The first 96 bits of the `Client-Ip` App Service sends for a private-endpoint caller. The
/// capture (`[fd40:…:a0a:5]:39466`) elides the middle groups: these are the lab's own.
const PRIVATE_ENDPOINT_PREFIX: [u16; 6] = [0xfd40, 0x7a2c, 0x11e0, 0x4d3b, 0x8e00, 0x0100];

/// An IPv4 address in the low 32 bits of an IPv6 /96.
fn embed(prefix: [u16; 6], v4: Ipv4Addr) -> Ipv6Addr {
    let [a, b, c, d] = v4.octets();
    let [p0, p1, p2, p3, p4, p5] = prefix;
    Ipv6Addr::new(
        p0,
        p1,
        p2,
        p3,
        p4,
        p5,
        u16::from_be_bytes([a, b]),
        u16::from_be_bytes([c, d]),
    )
}

/// How a VNet address reaches an app's public address through a `Microsoft.Web` service
/// endpoint: as an IPv6 ULA carrying the IPv4 source in its low 32 bits (captured:
/// 10.0.1.4 → `fde4:8dba:2300:5457:6f23:200:a00:104`).
pub fn service_endpoint_form(v4: Ipv4Addr) -> Ipv6Addr {
    embed(SERVICE_ENDPOINT_PREFIX, v4)
}

/// `action` of an access-restriction rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleAction {
    /// Let the caller in.
    Allow,
    /// Answer 403.
    Deny,
}

/// One access-restriction rule, as in ARM `ipSecurityRestrictions`: an `ipAddress` CIDR, a
/// `vnetSubnetResourceId` (here: the subnet's range) or a service tag (`tag: ServiceTag` with
/// the tag's name as `ipAddress`), optionally narrowed by header filters (`headers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessRule {
    /// The rule's name.
    pub name: String,
    /// Lower numbers are evaluated first.
    pub priority: u32,
    /// What a match does.
    pub action: RuleAction,
    /// `ipAddress`: a CIDR, compared with the address as App Service sees it.
    pub ip_address: Option<IpNet>,
    /// `vnetSubnetResourceId`, reduced to the subnet's range: matches callers that come through
    /// the subnet's service endpoint.
    pub vnet_subnet: Option<IpNet>,
    /// A service tag (`AzureFrontDoor.Backend`): matches callers from the tag's ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tag: Option<String>,
    /// Header filters (`headers`): lower-case header name → allowed values (at most 8 each).
    /// Every header named must carry one of its values, else the rule does not match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
}

/// The headers App Service's access restrictions can filter on.
pub const FILTER_HEADERS: [&str; 4] = [
    "x-forwarded-host",
    "x-forwarded-for",
    "x-azure-fdid",
    "x-fd-healthprobe",
];

/// The most values one header filter takes.
pub const MAX_FILTER_VALUES: usize = 8;

/// A rule that App Service would refuse to save.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("access rule {rule:?}: {message}")]
pub struct InvalidRule {
    rule: String,
    message: String,
}

impl AccessRule {
    /// A rule matching one source: an address range or a subnet's service endpoint.
    pub fn new(name: &str, priority: u32, action: RuleAction) -> Self {
        Self {
            name: name.to_owned(),
            priority,
            action,
            ip_address: None,
            vnet_subnet: None,
            service_tag: None,
            headers: BTreeMap::new(),
        }
    }

    /// Checks what ARM checks: exactly one source, known filter headers, 1–8 values each.
    pub fn validate(&self) -> Result<(), InvalidRule> {
        let fail = |message: String| InvalidRule {
            rule: self.name.clone(),
            message,
        };
        let sources = [
            self.ip_address.is_some(),
            self.vnet_subnet.is_some(),
            self.service_tag.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(fail(
                "give exactly one of ipAddress, vnetSubnetResourceId or a service tag".into(),
            ));
        }
        if let Some(tag) = &self.service_tag
            && crate::front::service_tag_range(tag).is_none()
        {
            return Err(fail(format!("unknown service tag {tag}")));
        }
        for (name, values) in &self.headers {
            if !FILTER_HEADERS.contains(&name.as_str()) {
                return Err(fail(format!(
                    "header filters take {}, not {name}",
                    FILTER_HEADERS.join(", ")
                )));
            }
            if values.is_empty() || values.len() > MAX_FILTER_VALUES {
                return Err(fail(format!(
                    "a header filter takes 1 to {MAX_FILTER_VALUES} values; {name} has {}",
                    values.len()
                )));
            }
        }
        Ok(())
    }

    fn matches(&self, caller: &Caller, headers: &HeaderMap) -> bool {
        // As on Azure: an `ipAddress` rule naming a subnet's IPv4 range does not match that
        // subnet's service-endpoint traffic (App Service sees it as IPv6), and a subnet rule
        // matches only traffic that came through the subnet's service endpoint.
        let source = self
            .ip_address
            .is_some_and(|net| net.contains(&caller.seen_ip()))
            || self.vnet_subnet.is_some_and(|net| {
                caller
                    .service_endpoint_source()
                    .is_some_and(|ip| net.contains(&IpAddr::V4(ip)))
            })
            || self
                .service_tag
                .as_deref()
                .and_then(crate::front::service_tag_range)
                .is_some_and(|net| net.contains(&caller.seen_ip()));
        source
            && self
                .headers
                .iter()
                .all(|(name, allowed)| header_allowed(headers, name, allowed))
    }
}

/// One header filter: `X-Forwarded-For` by address range (any hop), the others by value
/// (case-insensitive).
fn header_allowed(headers: &HeaderMap, name: &str, allowed: &[String]) -> bool {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if name == "x-forwarded-for" {
        let ranges: Vec<IpNet> = allowed.iter().filter_map(|a| a.parse().ok()).collect();
        return values
            .iter()
            .flat_map(|v| hosting::forwarded::parse_forwarded_for(v))
            .filter_map(|hop| hop.ip)
            .any(|ip| ranges.iter().any(|net| net.contains(&ip)));
    }
    values
        .iter()
        .any(|value| allowed.iter().any(|a| a.eq_ignore_ascii_case(value.trim())))
}

/// A site's inbound networking, mutable at run time so the lab can break or repair it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteNetworking {
    /// `publicNetworkAccess`: when false, the public address refuses everyone as a denial does.
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

    /// The first matching rule by priority decides; else the default action. A request without
    /// headers: rules with header filters never match it.
    pub fn decide(&self, caller: &Caller) -> RuleAction {
        self.decide_request(caller, &HeaderMap::new())
    }

    /// The first rule by priority that matches the caller and the request's headers decides;
    /// else the default action.
    pub fn decide_request(&self, caller: &Caller, headers: &HeaderMap) -> RuleAction {
        let mut rules: Vec<&AccessRule> = self.rules.iter().collect();
        rules.sort_by_key(|r| r.priority);
        rules
            .into_iter()
            .find(|r| r.matches(caller, headers))
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

/// A caller as App Service's front end sees it, which decides the rules that match it and the
/// headers the app receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// On the public address, from the internet or from a subnet without the service endpoint.
    Public(SocketAddr),
    /// On the public address, through a subnet's `Microsoft.Web` service endpoint: seen as the
    /// IPv6 form of its VNet address.
    ServiceEndpoint {
        /// The VNet address the call left from.
        source: Ipv4Addr,
        /// Its port.
        port: u16,
    },
    /// Through the private endpoint.
    PrivateEndpoint(SocketAddr),
}

impl Caller {
    /// The caller of a connection from `peer` on `entry`, when `service_endpoint_subnets` have
    /// the `Microsoft.Web` service endpoint.
    pub fn of(peer: SocketAddr, entry: Entry, service_endpoint_subnets: &[IpNet]) -> Self {
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        match (entry, peer.ip()) {
            (Entry::PrivateEndpoint, _) => Self::PrivateEndpoint(peer),
            (Entry::Public, IpAddr::V4(v4))
                if service_endpoint_subnets
                    .iter()
                    .any(|net| net.contains(&peer.ip())) =>
            {
                Self::ServiceEndpoint {
                    source: v4,
                    port: peer.port(),
                }
            }
            (Entry::Public, _) => Self::Public(peer),
        }
    }

    /// The address App Service compares with `ipAddress` rules and names in `x-ms-forbidden-ip`.
    pub fn seen_ip(&self) -> IpAddr {
        match *self {
            Self::Public(peer) | Self::PrivateEndpoint(peer) => peer.ip(),
            Self::ServiceEndpoint { source, .. } => IpAddr::V6(service_endpoint_form(source)),
        }
    }

    fn service_endpoint_source(&self) -> Option<Ipv4Addr> {
        match *self {
            Self::ServiceEndpoint { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The client-address headers App Service hands the app on this caller's path, as captured
    /// (`Client-Ip`, `X-Client-Ip`, `X-Client-Port`, and the entry it appends to
    /// `X-Forwarded-For`).
    pub fn client_headers(&self) -> ClientHeaders {
        match *self {
            Self::Public(peer) => ClientHeaders {
                client_ip: peer.to_string(),
                x_client_ip: peer.ip().to_string(),
                x_client_port: peer.port().to_string(),
                forwarded_for: peer.to_string(),
            },
            Self::ServiceEndpoint { source, port } => {
                let seen = SocketAddr::new(IpAddr::V6(service_endpoint_form(source)), port);
                ClientHeaders {
                    client_ip: seen.to_string(),
                    // Unconfirmed by the captures: whether `X-Client-Ip` carries the IPv6 form
                    // or the VNet's IPv4. The lab sends the IPv6 form, the harder case for an
                    // app, so the apps are tested against it.
                    x_client_ip: seen.ip().to_string(),
                    x_client_port: port.to_string(),
                    forwarded_for: seen.to_string(),
                }
            }
            Self::PrivateEndpoint(peer) => {
                // The private endpoint hands the bare address with port 0; only `Client-Ip`
                // has a port, on an IPv6 form of the address.
                let v4 = match peer.ip() {
                    IpAddr::V4(v4) => v4,
                    IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                };
                let client =
                    SocketAddr::new(IpAddr::V6(embed(PRIVATE_ENDPOINT_PREFIX, v4)), peer.port());
                ClientHeaders {
                    client_ip: client.to_string(),
                    x_client_ip: peer.ip().to_string(),
                    x_client_port: "0".into(),
                    forwarded_for: peer.ip().to_string(),
                }
            }
        }
    }
}

/// The client-address headers of one path (see [`Caller::client_headers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHeaders {
    /// `Client-Ip`.
    pub client_ip: String,
    /// `X-Client-Ip`.
    pub x_client_ip: String,
    /// `X-Client-Port`.
    pub x_client_port: String,
    /// The entry appended to `X-Forwarded-For`.
    pub forwarded_for: String,
}

/// The pages a site answers its 403 denials and its 503 with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorPages {
    /// The body of `403 Ip Forbidden`.
    pub forbidden: &'static str,
    /// The body of the 503 when no instance answers.
    pub unavailable: &'static str,
}

impl ErrorPages {
    /// App Service's own pages.
    pub const APP_SERVICE: Self = Self {
        forbidden: ACCESS_RESTRICTED_PAGE,
        unavailable: APP_ERROR_PAGE,
    };
    /// A plan's custom error pages (a Premium feature): the status line and headers stay.
    pub const CUSTOM: Self = Self {
        forbidden: CUSTOM_FORBIDDEN_PAGE,
        unavailable: CUSTOM_UNAVAILABLE_PAGE,
    };
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
    /// Its default host name (`WEBSITE_HOSTNAME`: `<name>.azurewebsites.net`).
    pub host_name: String,
    /// The inbound networking, shared with whoever may change it.
    pub networking: Arc<RwLock<SiteNetworking>>,
    service_endpoint_subnets: Arc<Vec<IpNet>>,
    pages: ErrorPages,
    instances: Arc<Vec<SiteInstance>>,
    next: Arc<AtomicUsize>,
    http: reqwest::Client,
}

impl Site {
    /// A site in front of `instances`, with App Service's own pages and no service endpoint.
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
            host_name: format!("{name}.azurewebsites.net"),
            networking: Arc::new(RwLock::new(networking)),
            service_endpoint_subnets: Arc::new(Vec::new()),
            pages: ErrorPages::APP_SERVICE,
            instances: Arc::new(instances),
            next: Arc::new(AtomicUsize::new(0)),
            http,
        }
    }

    /// Its default host name, when not `<name>.azurewebsites.net` (unique default host names:
    /// `<name>-<hash>.<region>.azurewebsites.net`).
    pub fn with_host_name(mut self, host_name: &str) -> Self {
        host_name.clone_into(&mut self.host_name);
        self
    }

    /// The subnets whose traffic reaches the public address through a `Microsoft.Web` service
    /// endpoint (and so arrives in its IPv6 form).
    pub fn with_service_endpoints(mut self, subnets: Vec<IpNet>) -> Self {
        self.service_endpoint_subnets = Arc::new(subnets);
        self
    }

    /// Replaces App Service's 403 and 503 pages (custom error pages).
    pub fn with_error_pages(mut self, pages: ErrorPages) -> Self {
        self.pages = pages;
        self
    }

    /// Replaces the networking (break or repair at run time).
    pub fn set_networking(&self, networking: SiteNetworking) {
        *self.networking.write().expect("networking lock") = networking;
    }

    fn networking(&self) -> SiteNetworking {
        self.networking.read().expect("networking lock").clone()
    }

    /// The instance for a request: the one its affinity cookie names, else round robin.
    /// Returns whether the cookies must be (re)set.
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

/// The instance a request names: `ARRAffinity`, else its `ARRAffinitySameSite` twin (a browser
/// may keep only the one that suits the request's site context).
fn affinity_cookie(headers: &HeaderMap) -> Option<String> {
    hosting::cookie::cookie(headers, "ARRAffinity")
        .or_else(|| hosting::cookie::cookie(headers, "ARRAffinitySameSite"))
}

/// The two cookies that pin a caller to `id`. Without `Domain` (App Service sets the host the
/// caller used): the lab is reached by IP address, where a browser would drop such a cookie.
fn affinity_cookies(id: &str) -> [String; 2] {
    [
        format!("ARRAffinity={id};Path=/;HttpOnly"),
        format!("ARRAffinitySameSite={id};Path=/;HttpOnly;SameSite=None;Secure"),
    ]
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
    (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

/// `403 Ip Forbidden`: what an access restriction and disabled public access both answer.
fn ip_forbidden(seen: IpAddr, pages: ErrorPages) -> Response {
    let mut response = page(StatusCode::FORBIDDEN, pages.forbidden);
    response
        .extensions_mut()
        .insert(ReasonPhrase::from_static(IP_FORBIDDEN_REASON.as_bytes()));
    if let Ok(value) = HeaderValue::from_str(&seen.to_string()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(FORBIDDEN_IP_HEADER), value);
    }
    response
}

fn site_disabled() -> Response {
    let mut response = page(StatusCode::FORBIDDEN, APP_STOPPED_PAGE);
    response
        .extensions_mut()
        .insert(ReasonPhrase::from_static(SITE_DISABLED_REASON.as_bytes()));
    response
}

/// The 503 of Linux App Service's nginx front when no instance answers. It sometimes adds
/// `Retry-After`; the lab never does, so nothing comes to depend on it.
fn app_unavailable(pages: ErrorPages) -> Response {
    let mut response = page(StatusCode::SERVICE_UNAVAILABLE, pages.unavailable);
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("nginx"));
    response
}

async fn handle(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let site = &ctx.site;
    let caller = Caller::of(peer, ctx.entry, &site.service_endpoint_subnets);
    let networking = site.networking();
    // There is no page of its own for disabled public access: the public address refuses
    // everyone exactly as an access restriction refuses one caller.
    if ctx.entry == Entry::Public
        && (!networking.public_network_access
            || networking.decide_request(&caller, request.headers()) == RuleAction::Deny)
    {
        return ip_forbidden(caller.seen_ip(), site.pages);
    }
    if networking.stopped {
        return site_disabled();
    }
    let Some((instance, set_cookie)) = site.pick(request.headers()) else {
        return app_unavailable(site.pages);
    };
    let mut response = forward(site, instance, &caller, request).await;
    if set_cookie {
        for cookie in affinity_cookies(&instance.id) {
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
        }
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
    "content-length",
];

/// Decodes `%XX` escapes (`X-Waws-Unencoded-Url`); invalid escapes stay as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(u8::try_from(hi * 16 + lo).expect("two hex digits fit a byte"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The headers the app receives: the caller's, minus hop-by-hop ones, plus App Service's for
/// this caller's path (captured from a Linux container over plain HTTP: no
/// `X-Forwarded-Proto`, which App Service adds only over HTTPS with `X-AppService-Proto`,
/// `X-ARR-SSL` and `X-Forwarded-TlsVersion`). `Host` is kept as the caller sent it.
fn upstream_headers(site: &Site, caller: &Caller, incoming: &HeaderMap, path: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in incoming {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    let host = incoming
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| site.host_name.clone(), str::to_owned);
    let client = caller.client_headers();
    let forwarded_for = match incoming
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(existing) => format!("{existing}, {}", client.forwarded_for),
        None => client.forwarded_for,
    };
    let platform = [
        ("host", host.clone()),
        ("max-forwards", "10".to_owned()),
        ("client-ip", client.client_ip),
        ("x-client-ip", client.x_client_ip),
        ("x-client-port", client.x_client_port),
        ("x-forwarded-for", forwarded_for),
        ("disguised-host", host),
        ("was-default-hostname", site.host_name.clone()),
        ("x-site-deployment-id", site.name.clone()),
        ("x-original-url", path.to_owned()),
        ("x-waws-unencoded-url", percent_decode(path)),
        ("x-arr-log-id", uuid::Uuid::new_v4().to_string()),
    ];
    for (name, value) in platform {
        // From bytes: the unencoded URL may carry UTF-8, which App Service sends as it is.
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    headers
}

async fn forward(
    site: &Site,
    instance: &SiteInstance,
    caller: &Caller,
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
    let headers = upstream_headers(site, caller, &parts.headers, &path);
    let url = format!("http://{}{path}", instance.upstream);
    let sent = site
        .http
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::debug!(%error, instance = %instance.id, "instance did not answer");
            return app_unavailable(site.pages);
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
        Err(_) => page(StatusCode::BAD_GATEWAY, site.pages.unavailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet_rule(priority: u32, action: RuleAction, cidr: &str) -> AccessRule {
        AccessRule {
            vnet_subnet: Some(cidr.parse().unwrap()),
            ..AccessRule::new(&format!("rule-{priority}"), priority, action)
        }
    }

    fn through_service_endpoint(ip: &str) -> Caller {
        Caller::ServiceEndpoint {
            source: ip.parse().unwrap(),
            port: 50451,
        }
    }

    fn public(ip: &str) -> Caller {
        Caller::Public(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn rules_are_evaluated_by_priority_then_the_default_action() {
        let networking = SiteNetworking {
            public_network_access: true,
            rules: vec![
                subnet_rule(200, RuleAction::Allow, "127.0.2.0/24"),
                subnet_rule(100, RuleAction::Deny, "127.0.2.66/32"),
            ],
            default_action: RuleAction::Deny,
            stopped: false,
        };
        let decide = |caller| networking.decide(&caller);
        assert_eq!(
            decide(through_service_endpoint("127.0.2.4")),
            RuleAction::Allow
        );
        assert_eq!(
            decide(through_service_endpoint("127.0.2.66")),
            RuleAction::Deny
        );
        assert_eq!(decide(public("127.0.0.1")), RuleAction::Deny);
        assert_eq!(
            SiteNetworking::open().decide(&public("127.0.0.1")),
            RuleAction::Allow
        );
    }

    #[test]
    fn a_subnet_rule_matches_only_service_endpoint_traffic_and_an_ip_rule_only_what_is_seen() {
        let subnet = subnet_rule(100, RuleAction::Allow, "127.0.2.0/24");
        // The same subnet's address without the service endpoint arrives as plain IPv4.
        let none = HeaderMap::new();
        assert!(subnet.matches(&through_service_endpoint("127.0.2.4"), &none));
        assert!(!subnet.matches(&public("127.0.2.4"), &none));
        let ip_rule = AccessRule {
            vnet_subnet: None,
            ip_address: Some("127.0.2.0/24".parse().unwrap()),
            ..subnet
        };
        assert!(ip_rule.matches(&public("127.0.2.4"), &none));
        assert!(
            !ip_rule.matches(&through_service_endpoint("127.0.2.4"), &none),
            "App Service compares ipAddress rules with the IPv6 form"
        );
        let v6_rule = AccessRule {
            ip_address: Some("fde4:8dba::/32".parse().unwrap()),
            ..ip_rule
        };
        assert!(v6_rule.matches(&through_service_endpoint("127.0.2.4"), &none));
    }

    #[test]
    fn the_service_endpoint_form_is_the_captured_one() {
        assert_eq!(
            service_endpoint_form("10.0.1.4".parse().unwrap()).to_string(),
            "fde4:8dba:2300:5457:6f23:200:a00:104"
        );
        assert_eq!(
            service_endpoint_form("127.0.2.4".parse().unwrap()).to_string(),
            "fde4:8dba:2300:5457:6f23:200:7f00:204"
        );
    }

    #[test]
    fn the_apps_decoder_reads_back_what_the_emulator_encodes() {
        use hosting::service_endpoint::CallerAddr;
        let v4: Ipv4Addr = "127.0.2.4".parse().unwrap();
        let seen = CallerAddr::of(IpAddr::V6(service_endpoint_form(v4)));
        assert_eq!(seen.vnet_ip(), Some(v4));
        // The private endpoint's `Client-Ip` form is another block: never taken for a VNet address.
        let client_ip = CallerAddr::of(IpAddr::V6(embed(PRIVATE_ENDPOINT_PREFIX, v4)));
        assert_eq!(client_ip.vnet_ip(), None);
    }

    #[test]
    fn callers_by_entry_and_subnet() {
        let subnets: Vec<IpNet> = vec!["127.0.2.0/24".parse().unwrap()];
        let peer = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 27842);
        assert_eq!(
            Caller::of(peer("127.0.2.4"), Entry::Public, &subnets),
            Caller::ServiceEndpoint {
                source: "127.0.2.4".parse().unwrap(),
                port: 27842
            }
        );
        assert_eq!(
            Caller::of(peer("127.0.0.1"), Entry::Public, &subnets),
            Caller::Public(peer("127.0.0.1"))
        );
        assert_eq!(
            Caller::of(peer("::ffff:127.0.2.4"), Entry::PrivateEndpoint, &subnets),
            Caller::PrivateEndpoint(peer("127.0.2.4"))
        );
        assert_eq!(
            Caller::of(peer("127.0.2.4"), Entry::Public, &[]),
            Caller::Public(peer("127.0.2.4"))
        );
    }

    #[test]
    fn client_headers_per_path() {
        let public = Caller::Public("203.0.113.9:51234".parse().unwrap()).client_headers();
        assert_eq!(
            public,
            ClientHeaders {
                client_ip: "203.0.113.9:51234".into(),
                x_client_ip: "203.0.113.9".into(),
                x_client_port: "51234".into(),
                forwarded_for: "203.0.113.9:51234".into(),
            }
        );
        let se = through_service_endpoint("10.0.1.4").client_headers();
        assert_eq!(
            se.forwarded_for,
            "[fde4:8dba:2300:5457:6f23:200:a00:104]:50451"
        );
        assert_eq!(se.x_client_ip, "fde4:8dba:2300:5457:6f23:200:a00:104");
        assert_eq!(se.x_client_port, "50451");
        let pe = Caller::PrivateEndpoint("10.10.0.5:39466".parse().unwrap()).client_headers();
        assert_eq!(pe.forwarded_for, "10.10.0.5");
        assert_eq!(pe.x_client_ip, "10.10.0.5");
        assert_eq!(pe.x_client_port, "0");
        assert!(
            pe.client_ip.starts_with("[fd40:") && pe.client_ip.ends_with(":a0a:5]:39466"),
            "{}",
            pe.client_ip
        );
    }

    #[test]
    fn the_affinity_cookie_is_read_among_others_and_its_twin_stands_in() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; ARRAffinitySameSite=twin; ARRAffinity=be-1; b=2"
                .parse()
                .unwrap(),
        );
        assert_eq!(affinity_cookie(&headers).as_deref(), Some("be-1"));
        headers.insert(header::COOKIE, "ARRAffinitySameSite=twin".parse().unwrap());
        assert_eq!(affinity_cookie(&headers).as_deref(), Some("twin"));
        headers.insert(header::COOKIE, "ARRAffinityX=no".parse().unwrap());
        assert_eq!(affinity_cookie(&headers), None);
    }

    #[test]
    fn unencoded_url_decodes_escapes_and_keeps_broken_ones() {
        assert_eq!(percent_decode("/a%20b?q=%C3%A9"), "/a b?q=é");
        assert_eq!(percent_decode("/100%/x%2"), "/100%/x%2");
    }
}
