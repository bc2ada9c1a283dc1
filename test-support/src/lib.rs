//! Fixtures shared by the tests of every crate (and the lab). Everything listens on loopback
//! only.
//!
//! # Layout
//!
//! - This file: an in-process DNS server with the test zones ([`spawn_dns`]), tiny scripted DNS
//!   responders, a canary listener that counts connections, a listener that accepts once, a
//!   listener whose accept queue is full, a closed port, and the `/diag` server.
//! - [`server`]: any app on a loopback port ([`serve`]), stopped when dropped.
//! - [`entra`]: the back end's settings for fake-entra's tenant ([`fake_tenant_settings`]).
//! - [`logging`]: the log subscriber for tests ([`init_logging`]), installed by the fixtures.
//! - [`kudu_reader`]: reads Kudu's text as Microsoft's Diagnostics portal does.
//! - [`postgres`]: a throw-away PostgreSQL (TLS, unprivileged owner, loopback port).

pub mod browser;
pub mod entra;
pub mod kudu_reader;
pub mod logging;
pub mod postgres;
pub mod server;

pub use entra::{entra_validator, fake_tenant_settings};
pub use logging::init_logging;
pub use server::{TestServer, serve, serve_on};

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diag::api::{DiagArgs, DiagLimits, DiagSettings, DiagState};
use diag::dns::DnsResolver;
use diag::envfacts::EnvFacts;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{LowerName, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};

/// The token the test `/diag` servers accept.
pub const TOKEN: &str = "test-diag-token-0123456789";
/// Number of A records of `big.lockdown.test` (far more than fits in a UDP answer).
pub const BIG_RECORDS: usize = 300;

const ZONES: [&str; 6] = [
    include_str!("zones/azurewebsites.net.zone"),
    include_str!("zones/privatelink.azurewebsites.net.zone"),
    include_str!("zones/2.20.10.in-addr.arpa.zone"),
    include_str!("zones/lockdown.test.zone"),
    // Key Vault's zones, for the catalogue's zone check (`diag::azure`).
    include_str!("zones/vault.azure.net.zone"),
    include_str!("zones/privatelink.vaultcore.azure.net.zone"),
];

/// A running DNS server with the test zones.
pub struct TestDns {
    /// Where it listens (UDP and TCP on the same port).
    pub addr: SocketAddr,
    _server: Server<Catalog>,
}

// By hand: hickory's server is not `Debug`.
impl std::fmt::Debug for TestDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDns")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestDns {
    /// A resolver that asks only this server.
    pub fn resolver(&self) -> DnsResolver {
        DnsResolver::with_servers(vec![self.addr], Duration::from_millis(2_000)).unwrap()
    }
}

/// The test zones, ready to serve (`big.lockdown.test` with its [`BIG_RECORDS`] records).
pub fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    for (index, text) in ZONES.iter().enumerate() {
        let mut text = (*text).to_owned();
        if index == 3 {
            for n in 0..BIG_RECORDS {
                text.push_str(&format!("big IN A 10.99.{}.{}\n", n / 250, n % 250 + 1));
            }
        }
        let (origin, records) = Parser::new(text, None, None).parse().unwrap();
        let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
            origin.clone(),
            records,
            ZoneType::Primary,
            AxfrPolicy::Deny,
        )
        .unwrap();
        catalog.upsert(LowerName::from(origin), vec![Arc::new(handler)]);
    }
    catalog
}

/// Serves the test zones over UDP and TCP on one loopback port (`tcp: false` serves UDP only,
/// so a truncated answer cannot be retried over TCP).
pub async fn spawn_dns_with(tcp: bool) -> TestDns {
    init_logging();
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let mut server = Server::new(catalog());
        if tcp {
            // The same port for TCP; another process may hold it, then try another port.
            let Ok(listener) = TcpListener::bind(addr).await else {
                continue;
            };
            server.register_listener(listener, Duration::from_secs(5), 64 * 1024);
        }
        server.register_socket(udp);
        return TestDns {
            addr,
            _server: server,
        };
    }
}

/// Serves the test zones over UDP and TCP.
pub async fn spawn_dns() -> TestDns {
    spawn_dns_with(true).await
}

/// A scripted UDP DNS responder: `answer(query number, query type)` gives the response code and
/// the A addresses of each answer. Counts the queries it received.
#[derive(Debug)]
pub struct ScriptedDns {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Queries received.
    pub queries: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl ScriptedDns {
    /// A resolver that asks only this server.
    pub fn resolver(&self, timeout: Duration) -> DnsResolver {
        DnsResolver::with_servers(vec![self.addr], timeout).unwrap()
    }

    /// Queries received so far.
    pub fn query_count(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

/// Starts a scripted responder; `None` from `answer` means: never reply.
pub async fn spawn_scripted_dns<F>(answer: F) -> ScriptedDns
where
    F: Fn(usize, RecordType) -> Option<(ResponseCode, Vec<Ipv4Addr>)> + Send + Sync + 'static,
{
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let counter = queries.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let number = counter.fetch_add(1, Ordering::SeqCst);
            let Ok(request) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            let Some(query) = request.queries.first().cloned() else {
                continue;
            };
            let Some((code, ips)) = answer(number, query.query_type()) else {
                continue;
            };
            let mut response = Message::response(request.metadata.id, OpCode::Query);
            response.metadata.response_code = code;
            response.metadata.recursion_desired = request.metadata.recursion_desired;
            response.metadata.recursion_available = true;
            response.add_query(query.clone());
            for ip in ips {
                response.add_answer(Record::from_rdata(
                    query.name().clone(),
                    30,
                    RData::A(A(ip)),
                ));
            }
            let _ = socket.send_to(&response.to_vec().unwrap(), peer).await;
        }
    });
    ScriptedDns {
        addr,
        queries,
        _task: task,
    }
}

/// A DNS server that answers SERVFAIL to everything.
pub async fn spawn_servfail_dns() -> ScriptedDns {
    spawn_scripted_dns(|_, _| Some((ResponseCode::ServFail, Vec::new()))).await
}

/// A DNS server that reads queries and never answers.
pub async fn spawn_silent_dns() -> ScriptedDns {
    spawn_scripted_dns(|_, _| None).await
}

/// A loopback listener that accepts and counts every connection: the proof that a denied target
/// was never connected to.
#[derive(Debug)]
pub struct Canary {
    /// Where it listens.
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Canary {
    /// Connections accepted so far.
    pub fn count(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Waits briefly for accepts in flight to be counted.
    pub async fn settle(&self) -> usize {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.count()
    }
}

/// Starts a canary on `ip` (a loopback address), port chosen by the kernel.
pub async fn spawn_canary_on(ip: IpAddr) -> Canary {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    Canary {
        addr,
        accepted,
        _task: task,
    }
}

/// Starts a canary on 127.0.0.1.
pub async fn spawn_canary() -> Canary {
    spawn_canary_on(IpAddr::V4(Ipv4Addr::LOCALHOST)).await
}

/// A loopback listener that accepts one connection and then closes, so later connects to its
/// port are refused (a target that is reachable only some of the time).
#[derive(Debug)]
pub struct AcceptOnce {
    /// Where it listened.
    pub addr: SocketAddr,
    _task: tokio::task::JoinHandle<()>,
}

impl AcceptOnce {
    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Starts an [`AcceptOnce`] on 127.0.0.1.
pub async fn spawn_accept_once() -> AcceptOnce {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        if let Ok((stream, _)) = listener.accept().await {
            drop(listener);
            drop(stream);
        }
    });
    AcceptOnce { addr, _task: task }
}

/// A port on 127.0.0.1 where nothing listens (bound, noted, released).
pub fn closed_port() -> u16 {
    closed_addr().port()
}

/// An address on 127.0.0.1 where nothing listens (bound, noted, released).
pub fn closed_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A listener with backlog 0 that never accepts, its queue filled: further connects time out,
/// as when an NSG or a firewall drops the traffic, without a packet leaving loopback. The tests,
/// the lab's `egress-blocked` break and the benchmark's timing-out checks use it. Keep it alive
/// while it is needed.
#[derive(Debug)]
pub struct FullQueue {
    /// Where it listens.
    pub addr: SocketAddr,
    _socket: tokio::net::TcpListener,
    _fillers: Vec<std::net::TcpStream>,
}

impl FullQueue {
    /// Binds `ip:port` (a loopback address; port 0: any) with a backlog of 0 and fills the queue.
    pub async fn bind(ip: IpAddr, port: u16) -> std::io::Result<Self> {
        let socket = match ip {
            IpAddr::V4(_) => TcpSocket::new_v4()?,
            IpAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(ip, port))?;
        let listener = socket.listen(0)?;
        let addr = listener.local_addr()?;
        // Blocking connects, off the runtime: once the queue is full the next one stalls.
        let fillers = tokio::task::spawn_blocking(move || {
            let mut fillers = Vec::new();
            for _ in 0..4 {
                match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                    Ok(stream) => fillers.push(stream),
                    Err(_) => break,
                }
            }
            fillers
        })
        .await
        .map_err(std::io::Error::other)?;
        Ok(Self {
            addr,
            _socket: listener,
            _fillers: fillers,
        })
    }
}

/// A [`FullQueue`] on 127.0.0.1, any port.
pub async fn spawn_full_queue() -> FullQueue {
    FullQueue::bind(Ipv4Addr::LOCALHOST.into(), 0)
        .await
        .unwrap()
}

/// How to build a test `/diag` server.
#[derive(Debug)]
pub struct DiagConfig {
    /// `DIAG_TOKEN`.
    pub token: Option<String>,
    /// `DIAG_ALLOW`.
    pub allow: Option<String>,
    /// Limits (default: the production ones).
    pub limits: DiagLimits,
    /// The resolver.
    pub resolver: DnsResolver,
    /// `OUTBOUND_SOURCE_ADDR`.
    pub source: Option<IpAddr>,
    /// The variables `/diag/env` may read from.
    pub env: HashMap<String, String>,
    /// The back end `/diag/backend/…` forwards to.
    pub backend_diag: Option<diag::forward::BackendDiag>,
    /// CA certificates `/diag/tls` trusts besides the platform's.
    pub tls_extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl DiagConfig {
    /// Token set, the given policy, production limits.
    pub fn new(resolver: DnsResolver, allow: Option<&str>) -> Self {
        Self {
            token: Some(TOKEN.to_owned()),
            allow: allow.map(str::to_owned),
            limits: DiagLimits::default(),
            resolver,
            source: None,
            env: HashMap::new(),
            backend_diag: None,
            tls_extra_roots: Vec::new(),
        }
    }

    /// Builds the state.
    pub fn state(&self) -> DiagState {
        let args = DiagArgs {
            diag_token: self.token.clone(),
            diag_allow: self.allow.clone(),
        };
        DiagState::new(DiagSettings {
            outbound_source_addr: self.source,
            facts: EnvFacts::from_map(&self.env),
            limits: self.limits,
            backend_diag: self.backend_diag.clone(),
            tls_extra_roots: self.tls_extra_roots.clone(),
            ..DiagSettings::new(args, self.resolver.clone())
        })
        .unwrap()
    }
}

/// A running `/diag` server, mounted as the apps mount it.
#[derive(Debug)]
pub struct TestDiag {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client without proxies.
    pub client: reqwest::Client,
    _server: TestServer,
}

impl TestDiag {
    /// GET `path_and_query` with the test token.
    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// GET `path_and_query` with another bearer token.
    pub async fn get_with_token(&self, path_and_query: &str, token: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// GET and parse JSON, returning the status too.
    pub async fn get_json(&self, path_and_query: &str) -> (u16, serde_json::Value) {
        let response = self.get(path_and_query).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

/// Serves `/diag` (plus `/healthz` and the 404 fallback) on 127.0.0.1:0.
pub async fn spawn_diag(config: DiagConfig) -> TestDiag {
    let app = hosting::with_http_layers(diag::api::router(config.state()), Duration::from_secs(30));
    let server = serve(app).await;
    TestDiag {
        base: server.url(),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        _server: server,
    }
}
