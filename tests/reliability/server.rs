//! The limits every service's server enforces (`hosting::serve_with_limits`), driven over raw
//! loopback sockets: slow and idle clients are closed on time, the connection cap answers 503
//! rather than queueing, `Host` is required, and the shutdown drain ends with answers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use hosting::ServerLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server under test, stopped by dropping or sending on `stop`.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Starts the drain and returns how long `serve_with_limits` took to return.
    async fn shut_down(mut self, bound: Duration) -> Duration {
        let started = Instant::now();
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(bound, &mut self.task)
            .await
            .expect("the drain is bounded")
            .expect("task")
            .expect("serve");
        started.elapsed()
    }
}

fn limits() -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        max_connections: 100,
        drain_timeout: Duration::from_secs(2),
    }
}

fn app() -> Router {
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/", get(|| async { "ok" }));
    hosting::with_http_layers(app, Duration::from_secs(60))
}

async fn spawn(limits: ServerLimits) -> Server {
    test_support::init_logging();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        hosting::serve_with_limits(
            listener,
            app(),
            async move {
                let _ = stopped.await;
            },
            &limits,
        )
        .await
    });
    Server {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Reads until the server closes the connection (or `bound` passes: then panics). Returns what
/// was read and when the close came.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        match tokio::time::timeout(
            bound.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => panic!(
                "still open after {bound:?}; read so far: {}",
                String::from_utf8_lossy(&all)
            ),
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&all).into_owned(),
        started.elapsed(),
    )
}

/// True when nothing arrives and the connection stays open for `during`.
async fn stays_open(stream: &mut TcpStream, during: Duration) -> bool {
    let mut buf = [0_u8; 1];
    tokio::time::timeout(during, stream.read(&mut buf))
        .await
        .is_err()
}

async fn request(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0_u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_slowloris_request_head_is_closed_within_the_header_read_timeout() {
    let server = spawn(ServerLimits {
        header_read_timeout: Duration::from_millis(400),
        ..limits()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    let (_, closed_after) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(
        closed_after >= Duration::from_millis(300),
        "closed before the timeout: {closed_after:?}"
    );
    // A client that connects and sends nothing is held to the same bound.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let (_, closed_after) = read_until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(closed_after < Duration::from_secs(2), "{closed_after:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = spawn(ServerLimits {
        idle_timeout: Duration::from_millis(400),
        header_read_timeout: Duration::from_secs(30),
        ..limits()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let answer = request(&mut stream, "/").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Kept alive for a while (keep-alive works), then closed well before the header timeout.
    assert!(stays_open(&mut stream, Duration::from_millis(150)).await);
    let (_, closed_after) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(closed_after < Duration::from_secs(2), "{closed_after:?}");
}

#[tokio::test]
async fn past_the_connection_cap_a_new_connection_gets_503_at_once_and_a_freed_slot_serves_again() {
    let server = spawn(ServerLimits {
        max_connections: 2,
        ..limits()
    })
    .await;
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    assert!(request(&mut first, "/").await.starts_with("HTTP/1.1 200"));
    assert!(request(&mut second, "/").await.starts_with("HTTP/1.1 200"));

    let started = Instant::now();
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let _ = third
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let (answer, _) = read_until_closed(&mut third, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(
        answer.contains(r#""code":"too_many_connections""#),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));

    drop(first);
    // The slot comes back once the server has seen the close.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut next = TcpStream::connect(server.addr).await.unwrap();
        let answer = request(&mut next, "/").await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot never came back: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_http_1_1_request_without_host_is_400_in_the_envelope_and_http_1_0_needs_none() {
    let server = spawn(limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut buf = vec![0_u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains(r#""code":"missing_host""#), "{answer}");

    let mut old = TcpStream::connect(server.addr).await.unwrap();
    old.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let (answer, _) = read_until_closed(&mut old, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
}

#[tokio::test]
async fn h2c_is_not_served() {
    let server = spawn(limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(!answer.contains("\0\0"), "an HTTP/2 frame came back");
}

#[tokio::test]
async fn a_request_still_running_at_the_end_of_the_drain_gets_503_shutting_down() {
    let server = spawn(ServerLimits {
        drain_timeout: Duration::from_millis(1_000),
        ..limits()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reader =
        tokio::spawn(async move { read_until_closed(&mut stream, Duration::from_secs(5)).await });
    let drained_in = server.shut_down(Duration::from_secs(3)).await;
    let (answer, _) = reader.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""code":"shutting_down""#), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(drained_in < Duration::from_millis(1_500), "{drained_in:?}");
}

#[tokio::test]
async fn a_half_sent_request_head_does_not_hold_the_drain_past_the_header_read_timeout() {
    let server = spawn(ServerLimits {
        header_read_timeout: Duration::from_millis(300),
        drain_timeout: Duration::from_secs(20),
        ..limits()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"POST / HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let drained_in = server.shut_down(Duration::from_secs(5)).await;
    assert!(drained_in < Duration::from_secs(2), "{drained_in:?}");
}

#[tokio::test]
async fn an_idle_connection_does_not_hold_the_drain() {
    let server = spawn(ServerLimits {
        drain_timeout: Duration::from_secs(20),
        ..limits()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    assert!(request(&mut stream, "/").await.starts_with("HTTP/1.1 200"));
    let drained_in = server.shut_down(Duration::from_secs(5)).await;
    assert!(drained_in < Duration::from_secs(1), "{drained_in:?}");
}
