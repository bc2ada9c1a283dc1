//! How a lockdown app opens outbound connections: names resolved with the app's [`DnsResolver`],
//! sockets bound to `OUTBOUND_SOURCE_ADDR` when set (the lab emulates the integration subnet that
//! way), one connect to exactly the address that was checked. Both the diagnostics and the app's
//! HTTP clients go through here, so they leave the same way.

use crate::failure::FailureKind;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use crate::dns::DnsResolver;

/// Outbound settings shared by every lockdown app.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutboundArgs {
    /// Bind outbound sockets to this local address (the lab's emulated integration subnet).
    #[arg(long, env = "OUTBOUND_SOURCE_ADDR", hide_env_values = true)]
    pub outbound_source_addr: Option<IpAddr>,
}

/// A failed connect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectError {
    /// The kind.
    pub kind: FailureKind,
    /// What the OS or the timer said.
    pub message: String,
}

/// Connects to exactly `addr` (no lookup), from `source` when given, within `timeout`.
pub async fn connect_tcp(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| {
        if hosting::server::is_resource_exhausted(&e) {
            exhausted(&e)
        } else {
            unreachable(format!("cannot open a socket: {e}"))
        }
    })?;
    if let Some(source) = source {
        if source.is_ipv4() != addr.is_ipv4() {
            return Err(unreachable(format!(
                "OUTBOUND_SOURCE_ADDR {source} cannot reach {addr}: different address families"
            )));
        }
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| unreachable(format!("cannot bind OUTBOUND_SOURCE_ADDR {source}: {e}")))?;
    }
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(classify_io(&error, timeout)),
        Err(_) => Err(ConnectError {
            kind: FailureKind::Timeout,
            message: format!("Connection timed out after {}ms", timeout.as_millis()),
        }),
    }
}

fn unreachable(message: String) -> ConnectError {
    ConnectError {
        kind: FailureKind::Unreachable,
        message,
    }
}

fn exhausted(error: &io::Error) -> ConnectError {
    ConnectError {
        kind: FailureKind::ResourceExhausted,
        message: format!("this app ran out of a local resource: {error}"),
    }
}

fn classify_io(error: &io::Error, timeout: Duration) -> ConnectError {
    if hosting::server::is_resource_exhausted(error) {
        return exhausted(error);
    }
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ConnectError {
            kind: FailureKind::Refused,
            message: "Connection refused".to_owned(),
        },
        io::ErrorKind::TimedOut => ConnectError {
            kind: FailureKind::Timeout,
            message: format!("Connection timed out after {}ms", timeout.as_millis()),
        },
        _ => unreachable(error.to_string()),
    }
}

/// The reqwest resolver of a lockdown app: every name goes through the app's [`DnsResolver`].
#[derive(Debug, Clone)]
struct AppResolve(DnsResolver);

impl reqwest::dns::Resolve for AppResolve {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = resolver.lookup_ip(&host).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// A reqwest client builder that resolves with `resolver` and binds outbound sockets to `source`
/// when given. Proxies from the environment are ignored: they would hide the real path. Add
/// timeouts, redirect policy and the like on the returned builder.
pub fn http_client_builder(
    resolver: DnsResolver,
    source: Option<IpAddr>,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(AppResolve(resolver))
        .local_address(source)
        .no_proxy()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_and_connected_on_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let stream = connect_tcp(open, None, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), open);

        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let error = connect_tcp(closed, None, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(error.kind, FailureKind::Refused);
    }

    #[tokio::test]
    async fn binds_the_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let source: IpAddr = "127.0.0.7".parse().unwrap();
        let stream = connect_tcp(addr, Some(source), Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(stream.local_addr().unwrap().ip(), source);
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), source);

        let v6: IpAddr = "::1".parse().unwrap();
        let error = connect_tcp(addr, Some(v6), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(error.kind, FailureKind::Unreachable);
    }
}
