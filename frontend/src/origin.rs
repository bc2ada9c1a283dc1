//! `Origin`: the front end's pooled HTTP/1 connections to its one back end. A general-purpose
//! client (redirects, proxies, cookies, HTTP/2 negotiation, per-request URL parsing) does work
//! the relay never needs; this is hyper's pooled client with a connector that resolves with the
//! app's resolver (inside the connect budget: a silent DNS server costs at most that budget),
//! leaves from `OUTBOUND_SOURCE_ADDR`, connects to exactly the address it resolved, and speaks
//! TLS for `https` origins. The pool is bounded (idle connections per origin, idle timeout).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderValue, Request, Response, Uri};
use bytes::Bytes;
use diag::dns::{DnsErrorKind, DnsResolver, LookupFailure};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use url::Url;

/// How many connections the front end keeps open to its back end, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Idle connections kept per origin (`BACKEND_POOL_MAX_IDLE`); more are closed when they
    /// come back to the pool.
    pub max_idle: usize,
    /// How long an idle connection is kept (`BACKEND_POOL_IDLE_TIMEOUT_MS`).
    pub idle_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_idle: 64,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a call to the origin got no HTTP answer.
#[derive(Debug)]
pub enum OriginError {
    /// The origin's name did not resolve (or its DNS server did not answer within the budget).
    Dns(LookupFailure),
    /// Nothing answered the TCP handshake within the connect budget.
    ConnectTimeout,
    /// The TCP connect failed (refused, unreachable, or the socket could not even be opened).
    Connect(io::Error),
    /// The TLS handshake failed.
    Tls(io::Error),
    /// The request went out on a connection that then failed (reset, closed, not HTTP).
    Exchange(hyper_util::client::legacy::Error),
    /// The answer's body was cut (the connection closed or reset mid-answer).
    Body(hyper::Error),
}

impl OriginError {
    /// True when the request may have been lost on a connection the origin closed or reset
    /// before answering (a pooled connection closed under us): worth one retry when idempotent.
    pub fn is_lost_on_connection(&self) -> bool {
        let Self::Exchange(error) = self else {
            return false;
        };
        diag::failure::chain(error).any(|cause| {
            if let Some(hyper_error) = cause.downcast_ref::<hyper::Error>() {
                return hyper_error.is_incomplete_message()
                    || hyper_error.is_canceled()
                    || hyper_error.is_closed();
            }
            cause.downcast_ref::<io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                )
            })
        })
    }
}

/// The connector's own failure, carried through hyper's error to [`OriginError`].
#[derive(Debug, thiserror::Error)]
enum ConnectFailure {
    #[error("{}", .0.message)]
    Dns(LookupFailure),
    #[error("no answer to the TCP handshake within the connect budget")]
    ConnectTimeout,
    #[error("{0}")]
    Connect(io::Error),
    #[error("TLS handshake: {0}")]
    Tls(io::Error),
}

/// The pooled client of one origin. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Origin {
    client: Client<OriginConnector, Full<Bytes>>,
    scheme: Scheme,
    authority: Authority,
    host_header: HeaderValue,
}

impl Origin {
    /// A client of `base`'s origin (`http` or `https`), resolving with `resolver`, binding to
    /// `source`, giving name resolution and the connect `connect_budget` together.
    pub fn new(
        base: &Url,
        resolver: DnsResolver,
        source: Option<IpAddr>,
        connect_budget: Duration,
        pool: PoolSettings,
    ) -> anyhow::Result<Self> {
        let host = base
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("the back-end URL has no host"))?;
        let port = base
            .port_or_known_default()
            .ok_or_else(|| anyhow::anyhow!("the back-end URL has no port"))?;
        let (scheme, tls) = match base.scheme() {
            "http" => (Scheme::HTTP, None),
            "https" => {
                let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())?;
                let config = diag::httpcheck::tls_client_config()?;
                (Scheme::HTTPS, Some((TlsConnector::from(config), name)))
            }
            other => anyhow::bail!("the back-end URL's scheme {other} is not http or https"),
        };
        // Host as a browser would send it: the port only when it is not the scheme's default.
        let host_header = match base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let connector = OriginConnector {
            inner: Arc::new(ConnectorInner {
                resolver,
                host: host.to_owned(),
                port,
                source,
                budget: connect_budget,
                tls,
            }),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(pool.idle_timeout)
            .pool_max_idle_per_host(pool.max_idle)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            scheme,
            authority: Authority::try_from(format!("{host}:{port}"))?,
            host_header: HeaderValue::try_from(host_header)?,
        })
    }

    /// The full URI of `path` (absolute, with its query) on this origin.
    pub fn uri(&self, path: &str) -> Result<Uri, axum::http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::try_from(path)?)
            .build()
    }

    /// The `Host` header every request carries (built once).
    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    /// Sends one request on a pooled connection (or a new one); no time limit of its own beyond
    /// the connect budget: the caller bounds the whole exchange.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, OriginError> {
        self.client.request(request).await.map_err(classify)
    }
}

fn classify(error: hyper_util::client::legacy::Error) -> OriginError {
    if error.is_connect() {
        let failure = diag::failure::chain(&error)
            .find_map(|cause| cause.downcast_ref::<ConnectFailure>())
            .map(|failure| match failure {
                ConnectFailure::Dns(f) => OriginError::Dns(f.clone()),
                ConnectFailure::ConnectTimeout => OriginError::ConnectTimeout,
                ConnectFailure::Connect(c) => OriginError::Connect(copy_io(c)),
                ConnectFailure::Tls(t) => OriginError::Tls(copy_io(t)),
            });
        if let Some(failure) = failure {
            return failure;
        }
    }
    OriginError::Exchange(error)
}

/// An `io::Error` is not `Clone`: the kind and the innermost cause in words are what diagnoses read.
fn copy_io(error: &io::Error) -> io::Error {
    io::Error::new(error.kind(), diag::failure::root_cause(error))
}

#[derive(Clone, Debug)]
struct OriginConnector {
    inner: Arc<ConnectorInner>,
}

struct ConnectorInner {
    resolver: DnsResolver,
    host: String,
    port: u16,
    source: Option<IpAddr>,
    budget: Duration,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

// By hand: the TLS connector has no Debug.
impl std::fmt::Debug for ConnectorInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorInner")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("source", &self.source)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl tower::Service<Uri> for OriginConnector {
    type Response = TokioIo<Transport>;
    type Error = ConnectFailure;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    /// The URI is always this origin's (the client is never given another), so the connector
    /// uses the host and port it was built with.
    fn call(&mut self, _: Uri) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { inner.connect().await.map(TokioIo::new) })
    }
}

impl ConnectorInner {
    async fn connect(&self) -> Result<Transport, ConnectFailure> {
        let deadline = Instant::now() + self.budget;
        let addresses =
            match tokio::time::timeout(self.budget, self.resolver.lookup_ip(&self.host)).await {
                Ok(Ok(addresses)) => addresses,
                Ok(Err(failure)) => return Err(ConnectFailure::Dns(failure)),
                Err(_) => {
                    return Err(ConnectFailure::Dns(LookupFailure {
                        kind: DnsErrorKind::Timeout,
                        message: format!(
                            "the DNS server did not answer within the connect budget ({} ms)",
                            self.budget.as_millis()
                        ),
                    }));
                }
            };
        let mut last = None;
        let mut stream = None;
        for ip in addresses {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.connect_tcp(SocketAddr::new(ip, self.port), left).await {
                Ok(connected) => {
                    stream = Some(connected);
                    break;
                }
                Err(error) => last = Some(error),
            }
        }
        let stream = match (stream, last) {
            (Some(stream), _) => stream,
            (None, Some(error)) => return Err(error),
            (None, None) => {
                return Err(ConnectFailure::Dns(LookupFailure {
                    kind: DnsErrorKind::Nodata,
                    message: format!("{} has no address", self.host),
                }));
            }
        };
        // Small requests and answers: never wait for Nagle.
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => Ok(Transport::Plain(stream)),
            Some((connector, name)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, connector.connect(name.clone(), stream)).await {
                    Ok(Ok(tls)) => Ok(Transport::Tls(Box::new(tls))),
                    Ok(Err(error)) => Err(ConnectFailure::Tls(error)),
                    Err(_) => Err(ConnectFailure::Tls(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no TLS handshake within the connect budget",
                    ))),
                }
            }
        }
    }
}

impl ConnectorInner {
    /// One connect to exactly `addr`, from `OUTBOUND_SOURCE_ADDR` when set, keeping the OS's
    /// error (its kind tells refused, unreachable and the app's own limits apart).
    async fn connect_tcp(
        &self,
        addr: SocketAddr,
        left: Duration,
    ) -> Result<TcpStream, ConnectFailure> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(ConnectFailure::Connect)?;
        if let Some(source) = self.source {
            socket.bind(SocketAddr::new(source, 0)).map_err(|e| {
                ConnectFailure::Connect(io::Error::new(
                    e.kind(),
                    format!("cannot bind OUTBOUND_SOURCE_ADDR {source}: {e}"),
                ))
            })?;
        }
        match tokio::time::timeout(left, socket.connect(addr)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(error)) if error.kind() == io::ErrorKind::TimedOut => {
                Err(ConnectFailure::ConnectTimeout)
            }
            Ok(Err(error)) => Err(ConnectFailure::Connect(error)),
            Err(_) => Err(ConnectFailure::ConnectTimeout),
        }
    }
}

/// A connection to the origin: plain TCP, or TLS over it.
#[derive(Debug)]
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Transport {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
