//! The server-rendered page: items, the path panel, forms with CSRF, security headers, and a
//! headless-Chromium look at it.

use crate::helpers::*;
use test_support::closed_addr;

#[tokio::test]
async fn the_page_shows_items_and_the_panel_and_never_the_key() {
    let backend = spawn_backend(&["127.0.0.2/32"]).await;
    let mut front = Front::to(backend.url());
    front.source = Some("127.0.0.2");
    front.integration_subnet = Some("127.0.0.2/32");
    let fe = front.spawn().await;
    client()
        .post(format!("{}/api/items", fe.url()))
        .header("content-type", "application/json")
        .body(r#"{"name":"<script>alert(1)</script>"}"#)
        .send()
        .await
        .unwrap();

    let response = client().get(format!("{}/", fe.url())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    for name in [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
    ] {
        assert!(headers.contains_key(name), "missing {name}");
    }
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("SameSite=Strict")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("alert(1)"), "the item is on the page");
    assert!(!html.contains("<script"), "item names are escaped");
    assert!(html.contains(r#"id="path-panel" class="panel ok""#));
    assert!(html.contains("Locked down"));
    assert!(html.contains("127.0.0.2"));
    for body in [
        html,
        client()
            .get(format!("{}/api/path", fe.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    ] {
        assert!(
            !body.contains(KEY),
            "the back-end key must never reach the browser"
        );
    }
}

#[tokio::test]
async fn the_panel_turns_red_with_the_diagnosis() {
    let port = closed_addr();
    let fe = Front::to(format!("http://{port}")).spawn().await;
    let html = client()
        .get(format!("{}/", fe.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"class="panel broken""#));
    assert!(html.contains("connect_refused"));
}

fn csrf_cookie(response: &reqwest::Response) -> String {
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("csrf=")
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn forms_need_the_csrf_token() {
    let backend = spawn_backend(&[]).await;
    let fe = Front::to(backend.url()).spawn().await;
    let page = client().get(format!("{}/", fe.url())).send().await.unwrap();
    let token = csrf_cookie(&page);

    let forged = client()
        .post(format!("{}/items", fe.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=forged&csrf=wrong")
        .header("cookie", format!("csrf={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 303);
    assert_eq!(forged.headers()["location"], "/?notice=csrf");

    let real = client()
        .post(format!("{}/items", fe.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("name=from+the+form&csrf={token}"))
        .header("cookie", format!("csrf={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(real.headers()["location"], "/?notice=added");

    let (_, list) = get_json(&format!("{}/api/items", fe.url())).await;
    let names: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names, vec![serde_json::json!("from the form")]);
}

/// Looks at the page as a person would: headless Chromium renders it to a PNG, and the DOM it
/// built must hold the items and the panel. Needs Debian's `chromium` (CI installs it).
#[tokio::test]
async fn chromium_renders_the_items_and_a_green_panel() {
    let Some(chromium) = test_support::browser::chromium() else {
        return;
    };
    let backend = spawn_backend(&["127.0.0.2/32"]).await;
    let mut front = Front::to(backend.url());
    front.source = Some("127.0.0.2");
    front.integration_subnet = Some("127.0.0.2/32");
    let fe = front.spawn().await;
    for name in ["first item", "second item"] {
        client()
            .post(format!("{}/api/items", fe.url()))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "name": name }).to_string())
            .send()
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("page.png");
    let url = format!("{}/", fe.url());
    let args = |extra: &str| {
        vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-quic".into(),
            format!("--user-data-dir={}", dir.path().join("profile").display()),
            "--window-size=1100,900".into(),
            extra.to_owned(),
            url.clone(),
        ]
    };
    let dom = run_with_timeout(chromium, args("--dump-dom")).await;
    assert!(
        dom.contains("first item") && dom.contains("second item"),
        "{dom}"
    );
    assert!(dom.contains("path-panel") && dom.contains("Locked down"));
    run_with_timeout(chromium, args(&format!("--screenshot={}", shot.display()))).await;
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    let green = count_panel_pixels(&png);
    assert!(
        green > 2_000,
        "the panel's green is not on the screenshot ({green} pixels)"
    );
    if let Ok(keep) = std::env::var("SCREENSHOT_DIR") {
        std::fs::copy(&shot, std::path::Path::new(&keep).join("frontend-page.png")).unwrap();
    }
}

async fn run_with_timeout(binary: &str, args: Vec<String>) -> String {
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(binary)
            .args(&args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium took over 60 s")
    .expect("chromium did not start");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Pixels of the panel's background green (#e6f4ea), give or take antialiasing.
fn count_panel_pixels(png_bytes: &[u8]) -> usize {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|px| {
            px[0].abs_diff(0xe6) <= 3 && px[1].abs_diff(0xf4) <= 3 && px[2].abs_diff(0xea) <= 3
        })
        .count()
}
