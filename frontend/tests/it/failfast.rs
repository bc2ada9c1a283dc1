//! Fail-fast and admission control in the relay: a silent DNS server or a stuck back end costs
//! at most the budget (and then nothing, while it lasts), a GET lost on a reset pooled
//! connection is sent once more (a POST never is), and a flood beyond the bound is shed with
//! 503 and `Retry-After` instead of queueing, with the back-end connections bounded too.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

/// GET and parse JSON on a client built beforehand (building one is no part of what is timed),
/// with how long the exchange took.
async fn timed_get(http: &reqwest::Client, url: &str) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let response = http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap();
    (status, body, started.elapsed())
}

/// A DNS server that reads queries and never answers.
async fn silent_dns() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let dns = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = dns.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while dns.recv_from(&mut buf).await.is_ok() {}
    });
    (addr, task)
}

#[tokio::test]
async fn a_silent_dns_server_costs_at_most_the_call_budget() {
    let (dns, _task) = silent_dns().await;
    // The resolver alone would wait 2 × 500 ms (A and AAAA); the budget is shorter.
    let mut front = Front::to("http://app-be.lockdown.test:8081".into());
    front.dns = Some(dns);
    front.timeout = Duration::from_millis(400);
    let fe = front.spawn().await;
    let http = client();
    let (status, body, took) = timed_get(&http, &format!("{}/api/items", fe.url())).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "dns_failure", "{body}");
    assert!(
        took < Duration::from_millis(400),
        "the name is looked up inside the connect budget (200 ms), took {took:?}"
    );
}

#[tokio::test]
async fn a_never_accepting_back_end_costs_at_most_the_call_budget() {
    let silent = test_support::spawn_full_queue().await;
    let mut front = Front::to(format!("http://{}", silent.addr));
    front.timeout = Duration::from_millis(400);
    let fe = front.spawn().await;
    let http = client();
    let (status, body, took) = timed_get(&http, &format!("{}/api/items", fe.url())).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "connect_timeout");
    assert!(took < Duration::from_millis(400), "{took:?}");
}

/// A back end that hangs while `stuck` is set, and answers an empty list otherwise.
async fn stuck_backend(stuck: Arc<AtomicBool>) -> test_support::TestServer {
    let app = Router::new().fallback(move || {
        let stuck = stuck.clone();
        async move {
            if stuck.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                r#"{"items":[]}"#,
            )
        }
    });
    serve_on("127.0.0.1", app).await
}

#[tokio::test]
async fn a_stuck_back_end_fails_fast_after_two_timeouts_and_recovers() {
    let stuck = Arc::new(AtomicBool::new(true));
    let be = stuck_backend(stuck.clone()).await;
    let mut front = Front::to(be.url());
    front.timeout = Duration::from_millis(1_000);
    let fe = front.spawn().await;
    let url = format!("{}/api/items", fe.url());
    let http = client();

    for _ in 0..2 {
        let (status, body, took) = timed_get(&http, &url).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (504, Some("backend_timeout"))
        );
        assert!(took >= Duration::from_millis(1_000));
    }
    // Open: the same diagnosis at once (well within the budget), saying so.
    let (status, body, took) = timed_get(&http, &url).await;
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (504, Some("backend_timeout"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failing fast"),
        "{body}"
    );

    // The back end comes back: after the hold, one trial call goes through and closes it.
    stuck.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for _ in 0..3 {
        let (status, body) = get_json(&url).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn refusals_never_open_the_fail_fast() {
    // Refused is fast already: failing fast on it would only delay the recovery.
    let port = test_support::closed_addr();
    let fe = Front::to(format!("http://{port}")).spawn().await;
    for _ in 0..4 {
        let (status, body) = get_json(&format!("{}/api/items", fe.url())).await;
        assert_eq!(status, 502);
        assert!(
            !body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("failing fast"),
            "{body}"
        );
    }
}

/// What the raw back end below saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    gets: AtomicUsize,
    posts: AtomicUsize,
}

/// Reads one request head (and its body, by `Content-Length`); `None` at EOF.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                let n = stream.read(&mut buf).await.ok()?;
                if n == 0 {
                    return None;
                }
                data.extend_from_slice(&buf[..n]);
            }
            return Some(head);
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
}

/// A keep-alive back end whose first connection answers one request, then drops the
/// connection on reading the next (a pooled connection the back end closed under the caller);
/// every later connection answers everything.
async fn closing_backend(seen: Arc<Seen>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let n = seen.connections.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut answered = 0;
                while let Some(head) = read_request(&mut stream).await {
                    if head.starts_with("POST") {
                        seen.posts.fetch_add(1, Ordering::SeqCst);
                    } else {
                        seen.gets.fetch_add(1, Ordering::SeqCst);
                    }
                    if n == 0 && answered == 1 {
                        return; // dropped: the client reads EOF instead of an answer
                    }
                    let body = r#"{"items":[]}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    answered += 1;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_get_lost_on_a_closed_pooled_connection_is_sent_once_more() {
    let seen = Arc::new(Seen::default());
    let addr = closing_backend(seen.clone()).await;
    let (state, _) = Front::to(format!("http://{addr}")).state();
    for _ in 0..2 {
        // Time for the first connection to go back to the pool.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let answer = state
            .backend
            .send(Method::GET, "/api/items", None, None)
            .await
            .expect("the GET is answered, the second on a fresh connection");
        assert_eq!(answer.status, 200);
    }
    assert_eq!(
        seen.gets.load(Ordering::SeqCst),
        3,
        "one GET was sent twice"
    );
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_post_lost_on_a_closed_pooled_connection_is_not_sent_again() {
    let seen = Arc::new(Seen::default());
    let addr = closing_backend(seen.clone()).await;
    let (state, _) = Front::to(format!("http://{addr}")).state();
    state
        .backend
        .send(Method::GET, "/api/items", None, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let failed = state
        .backend
        .send(
            Method::POST,
            "/api/items",
            Some(r#"{"name":"x"}"#.into()),
            None,
        )
        .await
        .expect_err("the POST is not repeated: it may have been applied");
    assert_eq!(failed.code.as_str(), "backend_unreachable", "{failed:?}");
    assert_eq!(seen.posts.load(Ordering::SeqCst), 1);
}

/// A back end that takes `delay` per answer and counts the connections it was called on.
async fn slow_backend(delay: Duration) -> (std::net::SocketAddr, Arc<Mutex<HashSet<u16>>>) {
    let peers = Arc::new(Mutex::new(HashSet::new()));
    let seen = peers.clone();
    let app = Router::new().fallback(
        move |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>| {
            seen.lock().unwrap().insert(peer.port());
            async move {
                tokio::time::sleep(delay).await;
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    r#"{"items":[]}"#,
                )
            }
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    (addr, peers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_are_served_or_shed_with_retry_after_never_queued() {
    let (addr, backend_connections) = slow_backend(Duration::from_secs(1)).await;
    let mut front = Front::to(format!("http://{addr}"));
    front.max_in_flight = 32;
    front.queue_timeout = Duration::from_millis(50);
    let fe = front.spawn().await;
    let url = format!("{}/api/items", fe.url());
    // One client: concurrent requests each get a connection of their own, as a flood of
    // browsers would open (building a client per request would cost more than the test).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..1_000 {
        let url = url.clone();
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let response = client.get(&url).send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, retry_after, body)
        }));
    }
    let (mut served, mut shed) = (0, 0);
    for task in tasks {
        let (status, retry_after, body) = task.await.unwrap();
        match status {
            200 => served += 1,
            503 => {
                shed += 1;
                assert_eq!(body["error"]["code"], "frontend_busy", "{body}");
                assert_eq!(retry_after.unwrap(), "1");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(served >= 32, "served {served}");
    assert!(
        shed > 500,
        "shed {shed}: most of a flood 30× the bound is refused at once"
    );
    assert!(
        backend_connections.lock().unwrap().len() <= 32,
        "back-end connections stay within the bound: {}",
        backend_connections.lock().unwrap().len()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "nothing queued without bound: {:?}",
        started.elapsed()
    );
    // Health checks are never shed.
    let (status, _) = get_json(&format!("{}/healthz", fe.url())).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_waiting_request_gets_a_place_when_one_frees_within_the_queue_timeout() {
    let (addr, _) = slow_backend(Duration::from_millis(100)).await;
    let mut front = Front::to(format!("http://{addr}"));
    front.max_in_flight = 1;
    front.queue_timeout = Duration::from_millis(1_000);
    let fe = front.spawn().await;
    let url = format!("{}/api/items", fe.url());
    let (a, b) = tokio::join!(get_json(&url), get_json(&url));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
}
