//! The whole site (`--front front-door|app-gateway`): what stands in front of the front end, the
//! back end's SCM (Kudu) site and its staging slot.
//!
//! - **Azure Front Door**: an edge on an address of its own that forwards to the front end's App
//!   Service address from the `AzureFrontDoor.Backend` range, with Front Door's headers
//!   (`X-Azure-FDID`, `X-Azure-Ref`, `X-Azure-SocketIP`, `X-Azure-ClientIP`, an appended
//!   `X-Forwarded-For`, `X-Forwarded-Host`/`-Proto`, the origin's `Host`) and health probes on
//!   `/healthz` (`X-FD-HealthProbe: 1`). A second edge plays **another customer's profile**:
//!   same service tag, another id. The front end allows the tag with an `X-Azure-FDID` filter.
//! - **Application Gateway**: a gateway whose subnet has the `Microsoft.Web` service endpoint;
//!   the front end allows that subnet. Its own 403 (`Server: Microsoft-Azure-Application-Gateway/v2`)
//!   answers what its WAF blocks.
//! - **SCM site**: `<app>.scm.azurewebsites.net`, a fake Kudu behind rules of its own (or the
//!   main site's: `scmIpSecurityRestrictionsUseMain`), which allow the **deploy runner** (a
//!   `probe serve` on an address of its own, as a build agent would run it).
//! - **Staging slot**: `<app>-staging.azurewebsites.net`, a back-end instance of its own behind
//!   its own restrictions.
//!
//! The back end's public address answers for the site, its SCM site and its slot by `Host`, as
//! App Service's front ends do. The whole site runs in service-endpoint mode.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use backend::{AuthMode, CallerPolicy, ClientIpSource, ItemStore};
use diag::api::{DiagArgs, DiagSettings, DiagState};
use hosting::Instance;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::breaks::{Break, Mode, restricted_to};
use crate::emulator::{self, AccessRule, Entry, RuleAction, Site, SiteInstance, SiteNetworking};
use crate::topology::{BACKEND_PUBLIC, HostNames, INTEGRATION_SUBNET, instance_id, net};

/// What stands in front of the front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Front {
    /// Nothing: the front end is reached on its own address (the lab's classic shape).
    #[default]
    None,
    /// Azure Front Door (Standard): the front end allows only our profile.
    FrontDoor,
    /// An Application Gateway (v2) whose subnet has the `Microsoft.Web` service endpoint.
    AppGateway,
}

impl std::fmt::Display for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::FrontDoor => "front-door",
            Self::AppGateway => "app-gateway",
        })
    }
}

/// Our Front Door edge (the endpoint `*.azurefd.net` resolves to): what a browser reaches.
pub const FRONT_DOOR_EDGE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 4, 10));
/// Another customer's Front Door edge: same service, another profile.
pub const OTHER_FRONT_DOOR_EDGE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 4, 20));
/// The Application Gateway's public address.
pub const APP_GATEWAY_PUBLIC: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 4, 30));
/// The `AzureFrontDoor.Backend` service tag: where every profile's edges call origins from.
pub const FRONT_DOOR_BACKEND_RANGE: &str = "127.0.5.0/24";
/// Where our profile's edge calls the origin from.
pub const FRONT_DOOR_ORIGIN_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 5, 10));
/// Where the other profile's edge calls origins from (the same service tag).
pub const OTHER_FRONT_DOOR_ORIGIN_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 5, 20));
/// The Application Gateway's subnet (with the `Microsoft.Web` service endpoint).
pub const APP_GATEWAY_SUBNET: &str = "127.0.6.0/24";
/// Where the gateway's instance calls the front end from.
pub const APP_GATEWAY_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 6, 4));
/// The deploy runner's public address (a build agent's outbound IP).
pub const DEPLOY_RUNNER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 7, 10));
/// Our Front Door profile's `frontDoorId` (the front end's `FRONT_DOOR_ID`).
pub const FRONT_DOOR_ID: &str = "6a1b2c3d-4e5f-4a1b-9c8d-00000000f00d";
/// Another customer's profile id.
pub const OTHER_FRONT_DOOR_ID: &str = "0bad0bad-1234-4abc-8def-000000000bad";
/// The service tag the front end's rule names.
pub const FRONT_DOOR_SERVICE_TAG: &str = "AzureFrontDoor.Backend";
/// The back end's deployment slot.
pub const SLOT: &str = "staging";

/// The lab's range of a service tag.
pub fn service_tag_range(tag: &str) -> Option<IpNet> {
    tag.eq_ignore_ascii_case(FRONT_DOOR_SERVICE_TAG)
        .then(|| net(FRONT_DOOR_BACKEND_RANGE))
}

/// `<app>.scm.<rest>` for an app's default host name.
pub fn scm_host(host: &str) -> String {
    match host.split_once('.') {
        Some((app, rest)) => format!("{app}.scm.{rest}"),
        None => format!("{host}.scm"),
    }
}

/// `<app>-<slot>.<rest>`: the slot's default host name (as `probe smoke`'s `slot` key names it).
pub fn slot_host(host: &str, slot: &str) -> String {
    probe::smoke::config::slot_host(host, slot).unwrap_or_else(|_| format!("{host}-{slot}"))
}

/// The extra `azurewebsites.net` records of the whole site: the back end's SCM site, its slot
/// and the slot's SCM site, on the back end's public address.
pub fn site_records(hosts: &HostNames) -> String {
    let slot = slot_host(&hosts.backend, SLOT);
    [scm_host(&hosts.backend), scm_host(&slot), slot]
        .iter()
        .map(|name| {
            let relative = name
                .strip_suffix(".azurewebsites.net")
                .unwrap_or(name.as_str());
            format!("{relative} 60 IN A {BACKEND_PUBLIC}\n")
        })
        .collect()
}

/// The SCM site's rules: its own, or the main site's (`scmIpSecurityRestrictionsUseMain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScmPlan {
    /// `scmIpSecurityRestrictionsUseMain`.
    pub use_main: bool,
    /// `scmIpSecurityRestrictions` and `scmIpSecurityRestrictionsDefaultAction` (when not the main ones).
    pub networking: SiteNetworking,
}

/// The whole site's plan: the front, the front end's inbound rules, the SCM site, the slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePlan {
    /// What stands in front of the front end.
    pub front: Front,
    /// The breaks of the whole site (applied by [`SitePlan::new`]).
    pub breaks: Vec<Break>,
    /// The front end's access restrictions.
    pub frontend_networking: SiteNetworking,
    /// The back end's SCM site.
    pub scm: ScmPlan,
    /// The back end's staging slot's access restrictions.
    pub slot_networking: SiteNetworking,
}

impl Default for SitePlan {
    fn default() -> Self {
        Self {
            front: Front::None,
            breaks: Vec::new(),
            frontend_networking: SiteNetworking::open(),
            scm: ScmPlan {
                use_main: false,
                networking: SiteNetworking::open(),
            },
            slot_networking: SiteNetworking::open(),
        }
    }
}

/// A `--front` that does not fit the mode or the breaks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WrongFront {
    /// A whole-site break without the front it needs.
    #[error("--break {name} needs --front {needs} (try: --front {needs} --break {name})")]
    NeedsFront {
        /// The break.
        name: &'static str,
        /// A front it works with.
        needs: Front,
    },
    /// The whole site runs in service-endpoint mode only.
    #[error(
        "--front {0} runs in --mode service-endpoint (its SCM site and staging slot are locked with service endpoints)"
    )]
    Mode(Front),
}

fn deny_by_default(rules: Vec<AccessRule>) -> SiteNetworking {
    SiteNetworking {
        public_network_access: true,
        rules,
        default_action: RuleAction::Deny,
        stopped: false,
    }
}

impl SitePlan {
    /// The right lockdown behind `front` in `mode`, then each of `breaks`.
    pub fn new(front: Front, mode: Mode, breaks: Vec<Break>) -> Result<Self, WrongFront> {
        for &b in &breaks {
            if let Some(fronts) = b.front()
                && !fronts.contains(&front)
            {
                return Err(WrongFront::NeedsFront {
                    name: b.name(),
                    needs: fronts[0],
                });
            }
        }
        if front == Front::None {
            return Ok(Self::default());
        }
        if mode != Mode::ServiceEndpoint {
            return Err(WrongFront::Mode(front));
        }
        let frontend_rule = match front {
            Front::FrontDoor => AccessRule {
                service_tag: Some(FRONT_DOOR_SERVICE_TAG.into()),
                headers: [("x-azure-fdid".to_owned(), vec![FRONT_DOOR_ID.to_owned()])].into(),
                ..AccessRule::new("allow-our-front-door", 100, RuleAction::Allow)
            },
            _ => AccessRule {
                vnet_subnet: Some(net(APP_GATEWAY_SUBNET)),
                ..AccessRule::new("allow-app-gateway-subnet", 100, RuleAction::Allow)
            },
        };
        let mut plan = Self {
            front,
            breaks: breaks.clone(),
            frontend_networking: deny_by_default(vec![frontend_rule]),
            scm: ScmPlan {
                use_main: false,
                networking: deny_by_default(vec![AccessRule {
                    ip_address: Some(IpNet::from(DEPLOY_RUNNER)),
                    ..AccessRule::new("allow-deploy-runner", 100, RuleAction::Allow)
                }]),
            },
            slot_networking: restricted_to(INTEGRATION_SUBNET),
        };
        for b in breaks {
            match b {
                // The tag alone: every customer's Front Door is `AzureFrontDoor.Backend`.
                Break::FdNoFdidCheck => {
                    for rule in &mut plan.frontend_networking.rules {
                        rule.headers.clear();
                    }
                }
                Break::FdDirectOpen => plan.frontend_networking = SiteNetworking::open(),
                Break::ScmOpen => plan.scm.networking = SiteNetworking::open(),
                // The usual way to get there: the SCM site takes the main site's rules, which
                // allow only the integration subnet.
                Break::ScmBlocksDeploy => plan.scm.use_main = true,
                Break::SlotOpen => plan.slot_networking = SiteNetworking::open(),
                _ => {}
            }
        }
        Ok(plan)
    }
}

/// A rules list in a line: `Allow AzureFrontDoor.Backend [x-azure-fdid=…], default Deny`.
pub fn describe_networking(networking: &SiteNetworking) -> String {
    if networking.rules.is_empty() {
        return format!("none (default {:?})", networking.default_action);
    }
    let rules: Vec<String> = networking
        .rules
        .iter()
        .map(|r| {
            let source = r
                .service_tag
                .clone()
                .or_else(|| r.vnet_subnet.map(|n| format!("subnet {n}")))
                .or_else(|| r.ip_address.map(|n| n.to_string()))
                .unwrap_or_default();
            let filters: Vec<String> = r
                .headers
                .iter()
                .map(|(name, values)| format!("{name}={}", values.join("|")))
                .collect();
            if filters.is_empty() {
                format!("{:?} {source}", r.action)
            } else {
                format!("{:?} {source} [{}]", r.action, filters.join(", "))
            }
        })
        .collect();
    format!(
        "{}, default {:?}",
        rules.join(", "),
        networking.default_action
    )
}

/// Serves several sites on one address by `Host` (as App Service's front ends do): the site,
/// its SCM site, its slot. Anything else goes to `default`.
pub fn by_host(default: Router, sites: Vec<(String, Router)>) -> Router {
    let sites = Arc::new(sites);
    Router::new().fallback(move |request: Request| {
        let sites = sites.clone();
        let default = default.clone();
        async move {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name))
                .unwrap_or_default()
                .to_ascii_lowercase();
            let router = sites
                .iter()
                .find(|(name, _)| *name == host)
                .map_or(default, |(_, router)| router.clone());
            match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    })
}

/// A fake Kudu: what the SCM site answers once the rules let the caller in.
fn kudu() -> Router {
    Router::new()
        .route(
            "/api/deployments",
            get(|| async { axum::Json(serde_json::json!([])) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async {
            (
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>Kudu</h1><p>Environment · Debug console · Deployments</p></body></html>",
            )
        })
}

/// What the back end's public address serves besides the site: its SCM site and its slot.
#[derive(Debug)]
pub struct BackendExtras {
    /// The back end's SCM site.
    pub scm: Site,
    /// The staging slot.
    pub slot: Site,
    /// The slot's instance id.
    pub slot_instance_id: String,
    _slot_data: tempfile::TempDir,
}

/// What the slot's back-end instance needs from the lab.
#[derive(Debug)]
pub struct SlotBackend {
    /// The credential it checks (the production slot's, as a swap keeps it).
    pub auth: AuthMode,
    /// `DIAG_TOKEN`.
    pub diag_token: String,
    /// The VNet's DNS server.
    pub vnet_dns: SocketAddr,
}

impl BackendExtras {
    /// Starts the SCM site's fake Kudu and the slot's back-end instance.
    pub async fn start(
        plan: &SitePlan,
        backend_site: &Site,
        hosts: &HostNames,
        slot_backend: SlotBackend,
        stop: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let kudu_id = instance_id("scm-0");
        let kudu_addr = crate::stack::serve_instance(kudu(), stop).await?;
        let scm_host = scm_host(&hosts.backend);
        let mut scm = Site::new(
            "app-be",
            plan.scm.networking.clone(),
            vec![SiteInstance {
                id: kudu_id,
                upstream: kudu_addr,
            }],
        )
        .with_host_name(&scm_host)
        .with_service_endpoints(vec![net(INTEGRATION_SUBNET)]);
        if plan.scm.use_main {
            // One set of rules for both: a change to the site's changes the SCM site's.
            scm.networking = backend_site.networking.clone();
        }

        let data = tempfile::tempdir()?;
        let slot_id = instance_id("be-staging-0");
        let state = backend::AppState {
            store: ItemStore::open(data.path())?,
            auth: slot_backend.auth,
            app_service_auth: false,
            callers: Arc::new(CallerPolicy::new(vec![net(INTEGRATION_SUBNET)])),
            client_ip_source: ClientIpSource::XClientIp,
            instance: Arc::new(Instance {
                site: format!("app-be-{SLOT}"),
                id: slot_id.clone(),
            }),
        };
        let resolver = diag::dns::DnsResolver::with_servers(
            vec![slot_backend.vnet_dns],
            Duration::from_secs(1),
        )?;
        let diag = DiagState::new(DiagSettings::new(
            DiagArgs {
                diag_token: Some(slot_backend.diag_token),
                diag_allow: Some("127.0.0.0/8".into()),
            },
            resolver,
        ))?;
        let slot_addr =
            crate::stack::serve_instance(backend::app(state, diag, Duration::from_secs(30)), stop)
                .await?;
        let slot = Site::new(
            &format!("app-be-{SLOT}"),
            plan.slot_networking.clone(),
            vec![SiteInstance {
                id: slot_id.clone(),
                upstream: slot_addr,
            }],
        )
        .with_host_name(&slot_host(&hosts.backend, SLOT))
        .with_service_endpoints(vec![net(INTEGRATION_SUBNET)]);
        Ok(Self {
            scm,
            slot,
            slot_instance_id: slot_id,
            _slot_data: data,
        })
    }

    /// The back end's address, answering for the site, its SCM site and its slot by `Host`.
    pub fn router(&self, site: Router, entry: Entry) -> Router {
        by_host(
            site,
            vec![
                (
                    self.scm.host_name.clone(),
                    emulator::router(self.scm.clone(), entry),
                ),
                (
                    self.slot.host_name.clone(),
                    emulator::router(self.slot.clone(), entry),
                ),
            ],
        )
    }
}

// ---- the edges ----

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
    "host",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EdgeKind {
    FrontDoor { profile_id: &'static str },
    AppGateway,
}

#[derive(Clone, Debug)]
struct Edge {
    kind: EdgeKind,
    origin: SocketAddr,
    origin_host: String,
    http: reqwest::Client,
}

fn client_from(source: IpAddr) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(source)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()?)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The headers Front Door sends the origin for a client at `peer`, as documented: its own
/// `X-Azure-*` (whatever the client sent in their name is dropped), `X-Azure-ClientIP` from a
/// client-sent `X-Forwarded-For` when there is one, the socket address appended to
/// `X-Forwarded-For`, the host the client used in `X-Forwarded-Host`.
fn front_door_headers(
    incoming: &HeaderMap,
    peer: SocketAddr,
    profile_id: &str,
    reference: &str,
) -> Vec<(&'static str, String)> {
    let socket_ip = peer.ip().to_canonical().to_string();
    let client_sent = header_str(incoming, "x-forwarded-for");
    let claimed = client_sent
        .and_then(|v| {
            hosting::forwarded::parse_forwarded_for(v)
                .into_iter()
                .next()
        })
        .and_then(|hop| hop.ip)
        .map_or_else(|| socket_ip.clone(), |ip| ip.to_string());
    let forwarded_for = match client_sent {
        Some(existing) => format!("{existing}, {socket_ip}"),
        None => socket_ip.clone(),
    };
    vec![
        ("x-azure-fdid", profile_id.to_owned()),
        ("x-azure-ref", reference.to_owned()),
        ("x-azure-socketip", socket_ip),
        ("x-azure-clientip", claimed),
        ("x-forwarded-for", forwarded_for),
        (
            "x-forwarded-host",
            header_str(incoming, "host").unwrap_or_default().to_owned(),
        ),
        ("x-forwarded-proto", "http".to_owned()),
    ]
}

/// The headers an Application Gateway (v2) adds: `X-Forwarded-For` with the client's
/// `ip:port`, `X-Forwarded-Proto`/`-Port`, `X-Original-Host`.
fn app_gateway_headers(
    incoming: &HeaderMap,
    peer: SocketAddr,
    port: u16,
) -> Vec<(&'static str, String)> {
    let client = SocketAddr::new(peer.ip().to_canonical(), peer.port()).to_string();
    let forwarded_for = match header_str(incoming, "x-forwarded-for") {
        Some(existing) => format!("{existing}, {client}"),
        None => client,
    };
    vec![
        ("x-forwarded-for", forwarded_for),
        ("x-forwarded-proto", "http".to_owned()),
        ("x-forwarded-port", port.to_string()),
        (
            "x-original-host",
            header_str(incoming, "host").unwrap_or_default().to_owned(),
        ),
    ]
}

/// What the gateway's WAF blocks with the gateway's own 403 (a stand-in for its managed rules).
fn waf_blocks(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("<script") || lower.contains("%3cscript") || lower.contains("../")
}

/// A Front Door reference: `<UTC time>-<random>`, as Front Door's look.
fn reference() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs}Z-{}", uuid::Uuid::new_v4().simple())
}

async fn edge_handle(
    State(edge): State<Edge>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if edge.kind == EdgeKind::AppGateway && waf_blocks(&path) {
        return crate::gateway::forbidden_response();
    }
    let Ok(body) = to_bytes(body, 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let reference = reference();
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        let name_str = name.as_str();
        let front_doors_own = matches!(edge.kind, EdgeKind::FrontDoor { .. })
            && (name_str.starts_with("x-azure-") || name_str.starts_with("x-fd-"));
        if !HOP_BY_HOP.contains(&name_str) && !front_doors_own && name_str != "x-forwarded-for" {
            headers.append(name.clone(), value.clone());
        }
    }
    let added = match edge.kind {
        EdgeKind::FrontDoor { profile_id } => {
            front_door_headers(&parts.headers, peer, profile_id, &reference)
        }
        EdgeKind::AppGateway => app_gateway_headers(&parts.headers, peer, edge.origin.port()),
    };
    for (name, value) in added {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    // The origin host header: the app's own name, so App Service routes it to the app.
    if let Ok(host) = HeaderValue::from_str(&format!("{}:{}", edge.origin_host, edge.origin.port()))
    {
        headers.insert(header::HOST, host);
    }
    let sent = edge
        .http
        .request(parts.method, format!("http://{}{path}", edge.origin))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let mut response = match sent {
        Ok(upstream) => {
            let status = upstream.status();
            let mut out = HeaderMap::new();
            for (name, value) in upstream.headers() {
                if !HOP_BY_HOP.contains(&name.as_str()) {
                    out.append(name.clone(), value.clone());
                }
            }
            match upstream.bytes().await {
                Ok(bytes) => {
                    let mut response = Response::new(Body::from(bytes));
                    *response.status_mut() = status;
                    *response.headers_mut() = out;
                    response
                }
                Err(_) => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
        Err(error) => {
            tracing::debug!(%error, "the edge's origin did not answer");
            StatusCode::BAD_GATEWAY.into_response()
        }
    };
    if let EdgeKind::FrontDoor { .. } = edge.kind {
        // The BFF's routes are never cached (the route's caching is off).
        let added = [
            ("x-azure-ref", reference),
            ("x-cache", "CONFIG_NOCACHE".into()),
        ];
        for (name, value) in added {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(name), value);
            }
        }
    }
    response
}

/// One Front Door health probe of the origin: `GET /healthz` with `X-FD-HealthProbe: 1` (and
/// the profile's id, as Front Door sends it), the answer's status in words.
async fn health_probe(edge: &Edge) -> String {
    let answer = edge
        .http
        .get(format!("http://{}/healthz", edge.origin))
        .header(
            header::HOST,
            format!("{}:{}", edge.origin_host, edge.origin.port()),
        )
        .header("x-fd-healthprobe", "1")
        .header(
            "x-azure-fdid",
            match edge.kind {
                EdgeKind::FrontDoor { profile_id } => profile_id,
                EdgeKind::AppGateway => "",
            },
        )
        .header("x-azure-ref", reference())
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    match answer {
        Ok(response) if response.status().is_success() => {
            format!("{} (healthy)", response.status().as_u16())
        }
        Ok(response) => format!("{} (unhealthy)", response.status().as_u16()),
        Err(_) => "no answer (unhealthy)".to_owned(),
    }
}

/// How often the lab's Front Door probes its origin (Front Door's default is 30 s).
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// The whole site as it runs.
#[derive(Debug)]
pub struct RunningSite {
    /// What stands in front of the front end.
    pub front: Front,
    /// Our Front Door's edge, or the gateway: what a browser uses.
    pub edge_url: String,
    /// Another customer's Front Door edge (front-door only).
    pub other_edge_url: Option<String>,
    /// The front end's own App Service address (what must be denied).
    pub frontend_direct_url: String,
    /// The deploy runner's `probe serve` (its `/diag` runs the runner's checks).
    pub runner_url: String,
    /// The back end's SCM site's host name.
    pub scm_host: String,
    /// The back end's staging slot's host name.
    pub slot_host: String,
    /// The SCM site (its rules can be changed at run time).
    pub scm: Site,
    /// The staging slot.
    pub slot: Site,
    /// The front end's access restrictions as applied.
    pub frontend_networking: SiteNetworking,
    /// The SCM site takes the main site's rules.
    pub scm_use_main: bool,
    /// The last health probe of the origin (Front Door only).
    pub health: Arc<Mutex<Option<String>>>,
}

impl RunningSite {
    /// Starts the edges (or the gateway) in front of the front end at `frontend`, and the deploy
    /// runner. The edge listens on `port` (0: any).
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, each argument a lab part"
    )]
    pub async fn start(
        plan: &SitePlan,
        extras: &BackendExtras,
        frontend: SocketAddr,
        hosts: &HostNames,
        port: u16,
        public_dns: SocketAddr,
        diag_token: &str,
        stop: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let origin_host = hosts.frontend.clone();
        let serve_edge = |ip: IpAddr, port: u16, edge: Edge| async move {
            let listener = TcpListener::bind((ip, port)).await.map_err(|e| {
                anyhow::anyhow!("binding the edge on {ip}:{port}: {e} (try --port 0)")
            })?;
            let url = format!("http://{}", listener.local_addr()?);
            let app = Router::new().fallback(edge_handle).with_state(edge);
            crate::stack::spawn_front(listener, false, app, stop);
            anyhow::Ok(url)
        };
        let health = Arc::new(Mutex::new(None));
        let (edge_url, other_edge_url) = match plan.front {
            Front::FrontDoor => {
                let ours = Edge {
                    kind: EdgeKind::FrontDoor {
                        profile_id: FRONT_DOOR_ID,
                    },
                    origin: frontend,
                    origin_host: origin_host.clone(),
                    http: client_from(FRONT_DOOR_ORIGIN_SOURCE)?,
                };
                let theirs = Edge {
                    kind: EdgeKind::FrontDoor {
                        profile_id: OTHER_FRONT_DOOR_ID,
                    },
                    origin: frontend,
                    origin_host: origin_host.clone(),
                    http: client_from(OTHER_FRONT_DOOR_ORIGIN_SOURCE)?,
                };
                *health.lock().expect("health lock") = Some(health_probe(&ours).await);
                let probes = ours.clone();
                let last = health.clone();
                let stopped = stop.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            () = stopped.cancelled() => break,
                            () = tokio::time::sleep(HEALTH_PROBE_INTERVAL) => {
                                let seen = health_probe(&probes).await;
                                *last.lock().expect("health lock") = Some(seen);
                            }
                        }
                    }
                });
                (
                    serve_edge(FRONT_DOOR_EDGE, port, ours).await?,
                    Some(serve_edge(OTHER_FRONT_DOOR_EDGE, 0, theirs).await?),
                )
            }
            Front::AppGateway | Front::None => {
                let gateway = Edge {
                    kind: EdgeKind::AppGateway,
                    origin: frontend,
                    origin_host,
                    http: client_from(APP_GATEWAY_SOURCE)?,
                };
                (serve_edge(APP_GATEWAY_PUBLIC, port, gateway).await?, None)
            }
        };
        let runner_url = start_runner(public_dns, diag_token, stop).await?;
        Ok(Self {
            front: plan.front,
            edge_url,
            other_edge_url,
            frontend_direct_url: format!("http://{frontend}"),
            runner_url,
            scm_host: extras.scm.host_name.clone(),
            slot_host: extras.slot.host_name.clone(),
            scm: extras.scm.clone(),
            slot: extras.slot.clone(),
            frontend_networking: plan.frontend_networking.clone(),
            scm_use_main: plan.scm.use_main,
            health,
        })
    }

    /// The topology's lines for the whole site.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        match self.front {
            Front::FrontDoor => {
                out += &format!(
                    "  front door  {} (profile {FRONT_DOOR_ID}, from {FRONT_DOOR_BACKEND_RANGE} = {FRONT_DOOR_SERVICE_TAG}); another customer's profile {} ({OTHER_FRONT_DOOR_ID}); health probe GET /healthz every {} s: {}\n",
                    self.edge_url,
                    self.other_edge_url.as_deref().unwrap_or("-"),
                    HEALTH_PROBE_INTERVAL.as_secs(),
                    self.health
                        .lock()
                        .ok()
                        .and_then(|h| h.clone())
                        .unwrap_or_else(|| "not yet".into())
                );
            }
            _ => {
                out += &format!(
                    "  gateway     Application Gateway v2 {} (subnet {APP_GATEWAY_SUBNET} with the Microsoft.Web service endpoint)\n",
                    self.edge_url
                );
            }
        }
        out += &format!(
            "  front end   {} directly, access restriction: {}\n",
            self.frontend_direct_url,
            describe_networking(&self.frontend_networking)
        );
        out += &format!(
            "  scm site    {}: {}\n",
            self.scm_host,
            if self.scm_use_main {
                "the main site's rules (scmIpSecurityRestrictionsUseMain)".to_owned()
            } else {
                describe_networking(
                    &self
                        .scm
                        .networking
                        .read()
                        .map(|n| n.clone())
                        .unwrap_or_else(|_| SiteNetworking::open()),
                )
            }
        );
        out += &format!(
            "  slot        {}: {}\n",
            self.slot_host,
            describe_networking(
                &self
                    .slot
                    .networking
                    .read()
                    .map(|n| n.clone())
                    .unwrap_or_else(|_| SiteNetworking::open())
            )
        );
        out += &format!(
            "  runner      deploy runner {DEPLOY_RUNNER} (probe serve at {})\n",
            self.runner_url
        );
        out
    }
}

/// The deploy runner: a `probe serve` on its own public address, resolving with the internet's
/// DNS, as a build agent would run it before a deployment.
async fn start_runner(
    public_dns: SocketAddr,
    diag_token: &str,
    stop: &CancellationToken,
) -> anyhow::Result<String> {
    let resolver = diag::dns::DnsResolver::with_servers(vec![public_dns], Duration::from_secs(1))?;
    let diag = DiagState::new(DiagSettings {
        outbound_source_addr: Some(DEPLOY_RUNNER),
        ..DiagSettings::new(
            DiagArgs {
                diag_token: Some(diag_token.to_owned()),
                diag_allow: Some("127.0.0.0/8".into()),
            },
            resolver,
        )
    })?;
    let listener = TcpListener::bind((DEPLOY_RUNNER, 0)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = hosting::with_http_layers(diag::api::router(diag), Duration::from_secs(30));
    let stopped = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        if let Err(error) = hosting::serve(listener, app, stopped, Duration::from_secs(2)).await {
            tracing::error!(%error, "the lab's deploy runner stopped");
        }
    });
    Ok(url)
}

/// The names of the whole site's checks (the tests pin which ones each break fails).
pub mod checks {
    /// Through our Front Door: 200 with `X-Azure-Ref`.
    pub const FD_REACH: &str = "the front end answers through Front Door";
    /// The front end's own address: denied.
    pub const FD_DIRECT: &str = "the front end cannot be reached without Front Door";
    /// Our profile's id forged on a direct call: denied.
    pub const FD_FORGED: &str = "a forged X-Azure-FDID does not get around Front Door";
    /// Through another customer's Front Door: denied.
    pub const FD_OTHER: &str = "another Front Door profile cannot reach the front end";
    /// Through the gateway: 200.
    pub const GW_REACH: &str = "the front end answers through the Application Gateway";
    /// The front end's own address: denied.
    pub const GW_DIRECT: &str = "the front end cannot be reached without the Application Gateway";
    /// The SCM site from the internet: denied.
    pub const SCM_DENIED: &str = "the internet cannot reach the back end's SCM site";
    /// The SCM site from the deploy runner: 200.
    pub const SCM_DEPLOY: &str = "the deploy runner reaches the back end's SCM site";
    /// The staging slot from the internet: denied.
    pub const SLOT_DENIED: &str = "the internet cannot reach the back end's staging slot";
    /// The staging slot from every front-end instance: 200 through the integration subnet.
    pub const SLOT_REACH: &str = "front end reaches the back end's staging slot";
}

/// The whole site's checks and the runner app, as TOML to append to the lab's suite.
pub fn suite_checks(site: &RunningSite, backend: &str, token_env: &str) -> String {
    use checks::*;
    let mut out = format!(
        r#"
[apps.runner]
# The deploy runner: a build agent running `probe serve` on its public address.
url = "{runner}"
token_env = "{token_env}"
"#,
        runner = site.runner_url,
    );
    let front_door_rule = "The front end's access restriction must allow only the AzureFrontDoor.Backend service tag with an X-Azure-FDID header filter of your profile's id (frontDoorId), and deny the rest (default action Deny)";
    match site.front {
        Front::FrontDoor => {
            out += &format!(
                r#"
[[check]]
name = "{FD_REACH}"
http = "{edge}/healthz"
hint = "Front Door's route must forward to the front end (origin host name = the app's default host name), and its health probe (GET /healthz) must find the origin healthy."
expect = {{ status = 200, header = "x-azure-ref" }}

[[check]]
name = "{FD_DIRECT}"
http = "{direct}/healthz"
hint = "{front_door_rule}."
expect = {{ denied = true }}

[[check]]
name = "{FD_FORGED}"
http = "{direct}/healthz"
headers = {{ "X-Azure-FDID" = "{FRONT_DOOR_ID}" }}
hint = "Anyone can send the header: the rule must also require the AzureFrontDoor.Backend service tag."
expect = {{ denied = true }}

[[check]]
name = "{FD_OTHER}"
http = "{other}/healthz"
hint = "The AzureFrontDoor.Backend tag admits every customer's Front Door: add an X-Azure-FDID header filter with your profile's frontDoorId to that rule."
expect = {{ denied = true }}
"#,
                edge = site.edge_url,
                direct = site.frontend_direct_url,
                other = site.other_edge_url.as_deref().unwrap_or_default(),
            );
        }
        _ => {
            out += &format!(
                r#"
[[check]]
name = "{GW_REACH}"
http = "{edge}/healthz"
hint = "The gateway's backend pool must be the front end's default host name, with the host name picked from the backend target."
expect = {{ status = 200 }}

[[check]]
name = "{GW_DIRECT}"
http = "{direct}/healthz"
hint = "The front end's access restriction must allow only the gateway's subnet (with the Microsoft.Web service endpoint) and deny the rest."
expect = {{ denied = true }}
"#,
                edge = site.edge_url,
                direct = site.frontend_direct_url,
            );
        }
    }
    let port = backend.rsplit_once(':').map_or("", |(_, p)| p);
    out += &format!(
        r#"
[[check]]
name = "{SCM_DENIED}"
http = "http://{scm}:{port}/api/deployments"
hint = "The SCM site has rules of its own: set scmIpSecurityRestrictions (allow your deploy runners) with scmIpSecurityRestrictionsDefaultAction Deny, or scmIpSecurityRestrictionsUseMain true."
expect = {{ denied = true }}

[[check]]
name = "{SCM_DEPLOY}"
from = "runner"
http = "http://{scm}:{port}/api/deployments"
hint = "Deployments go through the SCM site: allow the deploy runner's address in scmIpSecurityRestrictions, and keep scmIpSecurityRestrictionsUseMain false when the main rules allow only the VNet or Front Door."
expect = {{ status = 200 }}

[[check]]
name = "{SLOT_DENIED}"
slot = "{SLOT}"
http = "http://{backend}/healthz"
hint = "A slot is a site of its own: give it the production slot's access restrictions (and VNet integration); they do not follow a swap."
expect = {{ denied = true }}

[[check]]
name = "{SLOT_REACH}"
from = "frontend"
instances = "all"
slot = "{SLOT}"
http = "http://{backend}/healthz"
expect = {{ status = 200, source_in = "{INTEGRATION_SUBNET}" }}
"#,
        scm = site.scm_host,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(ip: &str) -> emulator::Caller {
        emulator::Caller::Public(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    fn fdid(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-azure-fdid", id.parse().unwrap());
        headers
    }

    #[test]
    fn the_front_door_rule_needs_the_tag_and_our_id() {
        let plan = SitePlan::new(Front::FrontDoor, Mode::ServiceEndpoint, vec![]).unwrap();
        let rules = &plan.frontend_networking;
        for rule in &rules.rules {
            rule.validate().unwrap();
        }
        let decide = |ip: &str, headers: &HeaderMap| rules.decide_request(&caller(ip), headers);
        assert_eq!(
            decide("127.0.5.10", &fdid(FRONT_DOOR_ID)),
            RuleAction::Allow
        );
        assert_eq!(
            decide("127.0.5.10", &fdid(&FRONT_DOOR_ID.to_uppercase())),
            RuleAction::Allow
        );
        assert_eq!(
            decide("127.0.5.20", &fdid(OTHER_FRONT_DOOR_ID)),
            RuleAction::Deny
        );
        assert_eq!(decide("127.0.5.10", &HeaderMap::new()), RuleAction::Deny);
        assert_eq!(
            decide("127.0.0.1", &fdid(FRONT_DOOR_ID)),
            RuleAction::Deny,
            "a forged header from outside the tag"
        );
        let open = SitePlan::new(
            Front::FrontDoor,
            Mode::ServiceEndpoint,
            vec![Break::FdNoFdidCheck],
        )
        .unwrap();
        assert_eq!(
            open.frontend_networking
                .decide_request(&caller("127.0.5.20"), &fdid(OTHER_FRONT_DOOR_ID)),
            RuleAction::Allow
        );
        assert_eq!(
            open.frontend_networking
                .decide_request(&caller("127.0.0.1"), &HeaderMap::new()),
            RuleAction::Deny
        );
    }

    #[test]
    fn rules_are_validated_as_arm_does() {
        let mut rule = AccessRule {
            service_tag: Some(FRONT_DOOR_SERVICE_TAG.into()),
            ..AccessRule::new("r", 100, RuleAction::Allow)
        };
        rule.validate().unwrap();
        rule.headers.insert(
            "x-azure-fdid".into(),
            (0..9).map(|n| n.to_string()).collect(),
        );
        assert!(rule.validate().unwrap_err().to_string().contains("1 to 8"));
        rule.headers.clear();
        rule.headers.insert("x-custom".into(), vec!["a".into()]);
        assert!(
            rule.validate()
                .unwrap_err()
                .to_string()
                .contains("header filters take")
        );
        rule.headers.clear();
        rule.ip_address = Some(net("127.0.0.0/8"));
        assert!(
            rule.validate()
                .unwrap_err()
                .to_string()
                .contains("exactly one")
        );
        let unknown = AccessRule {
            service_tag: Some("AzureCloud".into()),
            ..AccessRule::new("r", 100, RuleAction::Allow)
        };
        assert!(
            unknown
                .validate()
                .unwrap_err()
                .to_string()
                .contains("unknown service tag")
        );
    }

    #[test]
    fn forwarded_for_filters_match_any_hop_by_range() {
        let rule = AccessRule {
            ip_address: Some(net("127.0.0.0/8")),
            headers: [(
                "x-forwarded-for".to_owned(),
                vec!["192.0.2.0/24".to_owned()],
            )]
            .into(),
            ..AccessRule::new("r", 100, RuleAction::Allow)
        };
        let networking = deny_by_default(vec![rule]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.1, 192.0.2.7:4431".parse().unwrap(),
        );
        assert_eq!(
            networking.decide_request(&caller("127.0.0.1"), &headers),
            RuleAction::Allow
        );
        headers.insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
        assert_eq!(
            networking.decide_request(&caller("127.0.0.1"), &headers),
            RuleAction::Deny
        );
    }

    #[test]
    fn site_breaks_need_their_front_and_service_endpoint_mode() {
        let error =
            SitePlan::new(Front::None, Mode::ServiceEndpoint, vec![Break::ScmOpen]).unwrap_err();
        assert!(error.to_string().contains("--front front-door"), "{error}");
        let error = SitePlan::new(
            Front::AppGateway,
            Mode::ServiceEndpoint,
            vec![Break::FdDirectOpen],
        )
        .unwrap_err();
        assert!(error.to_string().contains("--front front-door"), "{error}");
        let error = SitePlan::new(Front::FrontDoor, Mode::PrivateEndpoint, vec![]).unwrap_err();
        assert_eq!(error, WrongFront::Mode(Front::FrontDoor));
        assert_eq!(
            SitePlan::new(Front::None, Mode::PrivateEndpoint, vec![]).unwrap(),
            SitePlan::default()
        );
        let gateway = SitePlan::new(
            Front::AppGateway,
            Mode::ServiceEndpoint,
            vec![Break::ScmBlocksDeploy],
        )
        .unwrap();
        assert!(gateway.scm.use_main);
        assert_eq!(
            gateway.frontend_networking.rules[0].vnet_subnet,
            Some(net(APP_GATEWAY_SUBNET))
        );
    }

    #[test]
    fn front_doors_headers_name_the_socket_and_keep_the_claim() {
        let mut incoming = HeaderMap::new();
        incoming.insert("host", "127.0.4.10:8080".parse().unwrap());
        incoming.insert("x-forwarded-for", "192.0.2.66".parse().unwrap());
        let added: std::collections::BTreeMap<_, _> = front_door_headers(
            &incoming,
            "127.0.0.1:50000".parse().unwrap(),
            FRONT_DOOR_ID,
            "ref-1",
        )
        .into_iter()
        .collect();
        assert_eq!(added["x-azure-fdid"], FRONT_DOOR_ID);
        assert_eq!(added["x-azure-socketip"], "127.0.0.1");
        assert_eq!(
            added["x-azure-clientip"], "192.0.2.66",
            "taken from the client's header"
        );
        assert_eq!(added["x-forwarded-for"], "192.0.2.66, 127.0.0.1");
        assert_eq!(added["x-forwarded-host"], "127.0.4.10:8080");
        let plain = front_door_headers(
            &HeaderMap::new(),
            "127.0.0.1:50000".parse().unwrap(),
            FRONT_DOOR_ID,
            "ref-1",
        );
        assert!(plain.contains(&("x-azure-clientip", "127.0.0.1".to_owned())));
    }

    #[test]
    fn site_names_follow_app_services() {
        let hosts = HostNames::classic();
        assert_eq!(scm_host(&hosts.backend), "app-be.scm.azurewebsites.net");
        assert_eq!(
            slot_host(&hosts.backend, SLOT),
            "app-be-staging.azurewebsites.net"
        );
        let records = site_records(&hosts);
        assert!(
            records.contains("app-be.scm 60 IN A 127.0.1.20"),
            "{records}"
        );
        assert!(records.contains("app-be-staging.scm 60 IN A"), "{records}");
        assert!(records.contains("app-be-staging 60 IN A"), "{records}");
        assert!(waf_blocks("/?q=<script>") && waf_blocks("/a/../b") && !waf_blocks("/healthz"));
    }
}
