//! `/diag` mounted as the apps mount it: off without a token, 401 on a wrong one, the shapes
//! with the right one, the rate and concurrency bounds, and in-process routing checks.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use diag::api::DiagLimits;
use tower::ServiceExt;

use test_support::{
    DiagConfig, TOKEN, TestDiag, spawn_canary, spawn_diag, spawn_dns, spawn_full_queue,
};

const PATHS: [&str; 4] = [
    "/diag/resolve?host=public.lockdown.test",
    "/diag/tcpping?host=127.0.0.1&port=9",
    "/diag/http?url=http://127.0.0.1:9/",
    "/diag/env",
];

#[tokio::test]
async fn without_a_token_every_diag_path_is_404() {
    let dns = spawn_dns().await;
    let canary = spawn_canary().await;
    let mut config = DiagConfig::new(dns.resolver(), Some("127.0.0.0/8"));
    config.token = None;
    let diag = spawn_diag(config).await;
    let tcpping = format!("/diag/tcpping?host=127.0.0.1&port={}", canary.port());
    for path in PATHS
        .iter()
        .copied()
        .chain([tcpping.as_str(), "/diag/unknown", "/diag"])
    {
        let (status, body) = diag.get_json(path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
        // Indistinguishable from a route that does not exist.
        let (_, unknown) = diag.get_json("/no/such/route").await;
        assert_eq!(body, unknown);
    }
    let response = diag
        .client
        .post(format!("{}/diag/resolve", diag.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(canary.settle().await, 0);

    // An empty token is no token.
    let mut config = DiagConfig::new(dns.resolver(), None);
    config.token = Some("  ".into());
    let diag = spawn_diag(config).await;
    let (status, _) = diag.get_json("/diag/env").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let dns = spawn_dns().await;
    let mut config = DiagConfig::new(dns.resolver(), None);
    // Room for every attempt below (the budget of wrong tokens has its own test).
    config.limits = DiagLimits {
        failed_burst: 100,
        ..DiagLimits::default()
    };
    let diag = spawn_diag(config).await;
    for path in PATHS {
        let url = format!("{}{path}", diag.base);
        let attempts = [
            diag.client.get(&url).send().await.unwrap(),
            diag.client
                .get(&url)
                .bearer_auth("wrong")
                .send()
                .await
                .unwrap(),
            diag.client
                .get(&url)
                .bearer_auth(format!("{TOKEN}x"))
                .send()
                .await
                .unwrap(),
            diag.client
                .get(&url)
                .bearer_auth(&TOKEN[..TOKEN.len() - 1])
                .send()
                .await
                .unwrap(),
            diag.client
                .get(&url)
                .basic_auth("user", Some(TOKEN))
                .send()
                .await
                .unwrap(),
            diag.client
                .get(&url)
                .header("authorization", TOKEN)
                .send()
                .await
                .unwrap(),
        ];
        for response in attempts {
            assert_eq!(response.status(), 401, "{path}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
            assert!(!body.to_string().contains(TOKEN));
        }
    }
}

#[tokio::test]
async fn with_the_token_the_diagnostics_answer() {
    let dns = spawn_dns().await;
    let canary = spawn_canary().await;
    let mut config = DiagConfig::new(dns.resolver(), Some("127.0.0.0/8"));
    config.env = HashMap::from([
        ("WEBSITE_SITE_NAME".to_owned(), "app-fe".to_owned()),
        ("WEBSITE_PRIVATE_IP".to_owned(), "10.20.1.4".to_owned()),
        ("WEBSITE_VNET_ROUTE_ALL".to_owned(), "1".to_owned()),
        ("REGION_NAME".to_owned(), "westeurope".to_owned()),
        (
            "BACKEND_API_KEY".to_owned(),
            "canary-secret-api-key".to_owned(),
        ),
        ("DIAG_TOKEN".to_owned(), "canary-secret-token".to_owned()),
    ]);
    let diag = spawn_diag(config).await;

    let (status, body) = diag
        .get_json("/diag/resolve?host=app-be.azurewebsites.net")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["privatelink"], true);
    assert_eq!(body["addresses"][0]["class"], "private");

    // A lookup that fails is still a 200 diagnostic.
    let (status, body) = diag
        .get_json("/diag/resolve?host=nosuch.lockdown.test")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"]["kind"], "nxdomain");

    let response = diag
        .get("/diag/resolve?host=app-be.azurewebsites.net&format=text")
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert_eq!(
        text,
        format!(
            "Server: {}\r\n\r\nNon-authoritative answer:\r\nName:    app-be.privatelink.azurewebsites.net\r\nAddresses:\r\n\t10.20.2.4\r\nAliases:\r\n\tapp-be.azurewebsites.net\r\n",
            dns.addr
        )
    );

    let (status, body) = diag
        .get_json(&format!(
            "/diag/tcpping?host=127.0.0.1&port={}&count=2&interval_ms=0",
            canary.port()
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summary"]["ok"], 2);

    let text = diag
        .get(&format!(
            "/diag/tcpping?host=127.0.0.1&port={}&count=1&format=text",
            canary.port()
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.starts_with(&format!(
            "Connected to 127.0.0.1:{}, time taken: ",
            canary.port()
        )),
        "{text}"
    );
    assert!(
        text.contains("\r\nComplete: 1/1 successful attempts (100%). Average success time: "),
        "{text}"
    );
    assert!(text.ends_with("ms\r\n"), "{text}");

    let response = diag.get("/diag/env").await;
    assert_eq!(response.status(), 200);
    let raw = response.text().await.unwrap();
    assert!(!raw.contains("canary-secret"), "{raw}");
    let body: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(body["facts"]["site_name"], "app-fe");
    assert_eq!(body["facts"]["private_ip"], "10.20.1.4");
    assert_eq!(body["facts"]["route_all_enabled"], true);
    assert_eq!(body["resolver"]["source"], "DNS_SERVERS");
    assert_eq!(body["diag_policy"]["entries"][0], "127.0.0.0/8");
    assert!(
        body["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["class"] == "loopback")
    );
    assert!(body["resolv_conf"]["nameservers"].is_array());
    let text = diag
        .get("/diag/env?format=text")
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("Site:            app-fe"), "{text}");
    assert!(!text.contains("canary-secret"));
}

#[tokio::test]
async fn the_request_rate_is_bounded_with_retry_after() {
    let dns = spawn_dns().await;
    let mut config = DiagConfig::new(dns.resolver(), None);
    config.limits = DiagLimits {
        burst: 3,
        per_second: 0.1,
        ..DiagLimits::default()
    };
    let diag = spawn_diag(config).await;
    for _ in 0..3 {
        assert_eq!(diag.get("/diag/env").await.status(), 200);
    }
    let response = diag.get("/diag/env").await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Wrong tokens have their own budget: an empty request bucket still answers them 401.
    assert_eq!(
        diag.get_with_token("/diag/env", "guess").await.status(),
        401
    );
}

#[tokio::test]
async fn a_tcpping_that_could_outlast_the_request_is_refused_lookup_included() {
    let dns = spawn_dns().await; // lookups up to 2 × 2 s
    let diag = spawn_diag(DiagConfig::new(dns.resolver(), Some("127.0.0.0/8"))).await;
    // 3 × 8 s of connects fit the 25 s budget alone; with the name's lookup they do not.
    let (status, body) = diag
        .get_json(
            "/diag/tcpping?host=public.lockdown.test&port=9&count=3&timeout_ms=8000&interval_ms=0",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_input");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("28000 ms") && message.contains("lookup up to 4000 ms"),
        "{message}"
    );
    // The same connects to an address need no lookup, so they are allowed (port 9 on loopback
    // refuses at once).
    let (status, body) = diag
        .get_json("/diag/tcpping?host=127.0.0.1&port=9&count=3&timeout_ms=8000&interval_ms=0")
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn answers_past_the_token_name_the_instance() {
    let dns = spawn_dns().await;
    let mut config = DiagConfig::new(dns.resolver(), None);
    config.env = HashMap::from([("WEBSITE_INSTANCE_ID".to_owned(), "inst-7".to_owned())]);
    config.limits = DiagLimits {
        burst: 2,
        per_second: 0.1,
        ..DiagLimits::default()
    };
    let diag = spawn_diag(config).await;
    // An answer, and a refusal by the target policy (the default one denies loopback).
    for (path, status) in [(PATHS[0], 200), (PATHS[1], 403)] {
        let response = diag.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(response.headers()["x-instance-id"], "inst-7", "{path}");
    }
    // Refusals past the token name it too (a pinned caller learns where it landed)…
    let limited = diag.get("/diag/env").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["x-instance-id"], "inst-7");
    // …but a caller without the token learns nothing.
    let refused = diag.get_with_token("/diag/env", "guess").await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().get("x-instance-id").is_none());

    // Off the platform there is no instance id, and no header.
    let plain = spawn_diag(DiagConfig::new(dns.resolver(), None)).await;
    let response = plain.get("/diag/env").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-instance-id").is_none());
}

#[tokio::test]
async fn wrong_tokens_do_not_spend_the_operators_rate() {
    // The reviewer's case: burst 3, two wrong tokens, then the right one.
    let dns = spawn_dns().await;
    let mut config = DiagConfig::new(dns.resolver(), None);
    config.limits = DiagLimits {
        burst: 3,
        per_second: 0.1,
        ..DiagLimits::default()
    };
    let diag = spawn_diag(config).await;
    for _ in 0..2 {
        assert_eq!(
            diag.get_with_token("/diag/env", "guess").await.status(),
            401
        );
    }
    for _ in 0..3 {
        assert_eq!(diag.get("/diag/env").await.status(), 200);
    }
    // The operator's own bucket is still bounded.
    assert_eq!(diag.get("/diag/env").await.status(), 429);
}

#[tokio::test]
async fn a_flood_of_wrong_tokens_never_locks_out_the_right_one() {
    let dns = spawn_dns().await;
    let mut config = DiagConfig::new(dns.resolver(), None);
    config.limits = DiagLimits {
        burst: 3,
        per_second: 0.1,
        ..DiagLimits::default()
    };
    let diag = spawn_diag(config).await;
    let mut statuses = Vec::new();
    for n in 0..40 {
        let response = diag
            .get_with_token("/diag/env", &format!("guess-{n}"))
            .await;
        let status = response.status().as_u16();
        if status == 429 {
            assert!(response.headers().contains_key("retry-after"));
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
        }
        statuses.push(status);
    }
    // Guessing is bounded: a few 401s, then the failure budget is spent and answers 429.
    let unauthorized = statuses.iter().take_while(|&&s| s == 401).count();
    let budget = DiagLimits::default().failed_burst as usize;
    assert!(
        (budget..=budget + 5).contains(&unauthorized),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 401 || s == 429),
        "{statuses:?}"
    );
    // And the right token still gets through, as often as its own bucket allows.
    for _ in 0..3 {
        assert_eq!(diag.get("/diag/env").await.status(), 200);
    }
}

/// Status, headers (without `date`) and body of a request with a fixed request id, so two
/// responses can be compared byte for byte.
async fn snapshot(
    diag: &TestDiag,
    method: reqwest::Method,
    path: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let response = diag
        .client
        .request(method, format!("{}{path}", diag.base))
        .header("x-request-id", "fixed-request-id")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn disabled_diag_is_indistinguishable_from_an_unknown_route() {
    let dns = spawn_dns().await;
    let mut config = DiagConfig::new(dns.resolver(), None);
    config.token = None;
    let diag = spawn_diag(config).await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::HEAD,
        reqwest::Method::DELETE,
    ] {
        let unknown = snapshot(&diag, method.clone(), "/nope").await;
        assert_eq!(unknown.0, 404, "{method}");
        for path in ["/diag/env", "/diag/resolve", "/diag/tcpping", "/diag/http"] {
            let answer = snapshot(&diag, method.clone(), path).await;
            assert_eq!(answer, unknown, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_in_the_envelope() {
    let dns = spawn_dns().await;
    let diag = spawn_diag(DiagConfig::new(dns.resolver(), None)).await;
    for path in ["/diag/env", "/diag/resolve", "/diag/tcpping", "/diag/http"] {
        for token in [Some(TOKEN), None] {
            let mut request = diag.client.post(format!("{}{path}", diag.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 405, "{path}");
            let allow = response.headers()["allow"].to_str().unwrap().to_owned();
            assert!(allow.contains("GET"), "{allow}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(
                body["error"]["code"], "method_not_allowed",
                "{path}: {body}"
            );
            assert!(body["error"]["message"].as_str().unwrap().contains("POST"));
        }
    }
}

#[tokio::test]
async fn concurrent_diagnostics_are_bounded() {
    let dns = spawn_dns().await;
    let queue = spawn_full_queue().await;
    let mut config = DiagConfig::new(dns.resolver(), Some("127.0.0.0/8"));
    config.limits = DiagLimits {
        max_concurrent: 1,
        ..DiagLimits::default()
    };
    let diag = std::sync::Arc::new(spawn_diag(config).await);
    let slow = {
        let diag = diag.clone();
        let port = queue.addr.port();
        tokio::spawn(async move {
            diag.get(&format!(
                "/diag/tcpping?host=127.0.0.1&port={port}&count=1&timeout_ms=1500"
            ))
            .await
            .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = diag.get("/diag/env").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "diag_busy");
    assert_eq!(slow.await.unwrap(), 200);
    assert_eq!(diag.get("/diag/env").await.status(), 200);
}

#[tokio::test]
async fn in_process_routing() {
    let dns = spawn_dns().await;
    let mut config = DiagConfig::new(dns.resolver(), None);
    let enabled = diag::api::router(config.state());
    config.token = None;
    let disabled = diag::api::router(config.state());

    let request = |path: &str| {
        Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap()
    };
    let response = disabled
        .clone()
        .oneshot(request("/diag/env"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = enabled.clone().oneshot(request("/diag/env")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = enabled
        .clone()
        .oneshot(request("/diag/tcpping?host=127.0.0.1&port=9&count=x"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "invalid_input");
    assert_eq!(
        body["error"]["message"],
        "`count` must be a whole number, got `x`"
    );
    // Duplicate parameters are rejected, not silently resolved one way or the other.
    let response = enabled
        .oneshot(request("/diag/tcpping?host=127.0.0.1&host=10.0.0.1&port=9"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
