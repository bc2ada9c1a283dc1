//! A server on a loopback port for a test: the app as the binaries serve it (`hosting::serve`),
//! aborted when dropped, or drained with [`TestServer::shutdown`].

use std::any::Any;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long [`TestServer::shutdown`] lets requests in flight finish.
const DRAIN: Duration = Duration::from_secs(2);

/// A server running on a loopback port until dropped (aborted) or shut down (drained).
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
    kept: Vec<Box<dyn Any + Send + Sync>>,
}

impl TestServer {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Keeps `value` (a temporary folder, a fake peer) alive as long as the server.
    pub fn holding(mut self, value: impl Send + Sync + 'static) -> Self {
        self.kept.push(Box::new(value));
        self
    }

    /// Stops accepting, lets requests in flight finish, and panics if the server failed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("the server task ran to its end")
                .expect("the server stopped cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Serves `app` on 127.0.0.1, any port.
pub async fn serve(app: Router) -> TestServer {
    serve_on(Ipv4Addr::LOCALHOST.into(), app).await
}

/// Serves `app` on `ip` (a loopback address), any port. Installs the test log subscriber.
pub async fn serve_on(ip: IpAddr, app: Router) -> TestServer {
    crate::init_logging();
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(hosting::serve(
        listener,
        app,
        async move {
            let _ = stopped.await;
        },
        DRAIN,
    ));
    TestServer {
        addr,
        stop: Some(stop),
        task: Some(task),
        kept: Vec::new(),
    }
}
