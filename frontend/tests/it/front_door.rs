//! The front end behind Azure Front Door (`FRONT_DOOR_ID`): which requests' Front Door headers
//! are trusted, the client address and the public origin it takes from them, the `front_door`
//! line of the path report, and the CSRF origin check through Front Door's host name. The
//! addresses in headers are documentation ranges: parsed in-process, never connected to.

use crate::helpers::*;

const OURS: &str = "6a1b2c3d-0000-4000-8000-00000000f00d";
const THEIRS: &str = "0bad0bad-0000-4000-8000-000000000bad";
const ENDPOINT: &str = "lockdown-ep.z01.azurefd.net";

/// A request as App Service hands it to the front end behind Front Door profile `fdid`.
fn via_front_door(request: reqwest::RequestBuilder, fdid: Option<&str>) -> reqwest::RequestBuilder {
    let request = request
        .header("x-client-ip", "198.51.100.7")
        .header("x-azure-ref", "20261203T103000Z-abc")
        .header("x-azure-socketip", "203.0.113.9")
        .header("x-azure-clientip", "192.0.2.66")
        .header("x-forwarded-for", "192.0.2.66, 203.0.113.9")
        .header("x-forwarded-host", ENDPOINT)
        .header("x-forwarded-proto", "https");
    match fdid {
        Some(fdid) => request.header("x-azure-fdid", fdid),
        None => request,
    }
}

async fn front_end(
    front_door_id: Option<&'static str>,
) -> (test_support::TestServer, test_support::TestServer) {
    let backend = spawn_backend(&["127.0.0.2/32"]).await;
    let mut front = Front::to(backend.url());
    front.source = Some("127.0.0.2");
    front.integration_subnet = Some("127.0.0.2/32");
    front.front_door_id = front_door_id;
    let fe = front.spawn().await;
    (backend, fe)
}

async fn path(fe: &str, fdid: Option<&str>) -> serde_json::Value {
    let response = via_front_door(client().get(format!("{fe}/api/path")), fdid)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn front_door_check(path: &serde_json::Value) -> Option<&serde_json::Value> {
    path["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "front_door")
}

#[tokio::test]
async fn through_our_profile_the_socket_ip_is_the_client_and_the_path_is_locked() {
    let (_backend, fe) = front_end(Some(OURS)).await;
    let path = path(&fe.url(), Some(OURS)).await;
    let front = &path["front"];
    assert_eq!(front["via"], "front_door", "{path:#}");
    assert_eq!(front["trusted"], true);
    assert_eq!(front["client_ip"], "203.0.113.9");
    assert_eq!(front["client_ip_source"], "x-azure-socketip");
    assert_eq!(front["claimed_client_ip"], "192.0.2.66");
    assert_eq!(front["edge_ip"], "198.51.100.7");
    assert_eq!(front["azure_ref"], "20261203T103000Z-abc");
    assert_eq!(front["public_origin"], format!("https://{ENDPOINT}"));
    let check = front_door_check(&path).unwrap();
    assert_eq!(check["ok"], true);
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("claims to be 192.0.2.66"),
        "{check}"
    );
    assert_eq!(path["verdict"], "locked", "{path:#}");
}

#[tokio::test]
async fn another_profile_and_no_profile_break_the_path_and_trust_nothing() {
    let (_backend, fe) = front_end(Some(OURS)).await;
    for (fdid, via, says) in [
        (
            Some(THEIRS),
            "other_front_door",
            "another Front Door profile",
        ),
        (None, "direct", "without Front Door"),
    ] {
        let path = path(&fe.url(), fdid).await;
        let front = &path["front"];
        assert_eq!(front["via"], via, "{path:#}");
        assert_eq!(front["trusted"], false);
        assert_eq!(
            front["client_ip"], "198.51.100.7",
            "App Service's view, not the headers'"
        );
        assert_eq!(front["client_ip_source"], "x-client-ip");
        assert_eq!(front["azure_ref"], serde_json::Value::Null);
        assert!(
            front["public_origin"]
                .as_str()
                .unwrap()
                .starts_with("https://127.0.0.1:"),
            "X-Forwarded-Host is not believed: {front}"
        );
        let check = front_door_check(&path).unwrap();
        assert_eq!(check["ok"], false);
        assert!(check["detail"].as_str().unwrap().contains(says), "{check}");
        assert_eq!(path["verdict"], "broken");
        assert!(path["summary"].as_str().unwrap().contains(says), "{path:#}");
    }
}

#[tokio::test]
async fn without_front_door_id_front_doors_headers_are_not_trusted() {
    let (_backend, fe) = front_end(None).await;
    let path = path(&fe.url(), Some(OURS)).await;
    assert_eq!(path["front"]["via"], "unverified_front_door");
    assert_eq!(path["front"]["front_door_id_configured"], false);
    assert_eq!(path["front"]["client_ip"], "198.51.100.7");
    let check = front_door_check(&path).unwrap();
    assert_eq!(check["ok"], serde_json::Value::Null);
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("set FRONT_DOOR_ID")
    );
    assert_eq!(
        path["verdict"], "locked",
        "an unverified hop is amber, not red"
    );

    // No Front Door on either side: no line at all, and the peer is the client.
    let (status, plain) = get_json(&format!("{}/api/path", fe.url())).await;
    assert_eq!(status, 200);
    assert!(front_door_check(&plain).is_none(), "{plain:#}");
    assert_eq!(plain["front"]["via"], "direct");
    assert_eq!(plain["front"]["client_ip"], "127.0.0.1");
    assert_eq!(plain["front"]["client_ip_source"], "peer");
}

#[tokio::test]
async fn writes_through_front_door_pass_the_origin_check_only_from_our_profile() {
    let (_backend, fe) = front_end(Some(OURS)).await;
    let post = |fdid: Option<&'static str>| {
        via_front_door(client().post(format!("{}/api/items", fe.url())), fdid)
            .header("content-type", "application/json")
            .header("origin", format!("https://{ENDPOINT}"))
            .body(r#"{"name":"through Front Door"}"#)
            .send()
    };
    assert_eq!(post(Some(OURS)).await.unwrap().status(), 201);
    // Through another profile the forwarded host is not believed: the browser's origin is
    // Front Door's host name, the request's host the front end's own, so it is cross-site.
    for fdid in [Some(THEIRS), None] {
        let refused = post(fdid).await.unwrap();
        assert_eq!(refused.status(), 403, "{fdid:?}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "cross_site_request");
    }
    let (_, list) = get_json(&format!("{}/api/items", fe.url())).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_page_shows_the_front_door_hop() {
    let (_backend, fe) = front_end(Some(OURS)).await;
    let page = via_front_door(client().get(fe.url()), Some(THEIRS))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("front_door"),
        "the check's line is on the panel"
    );
    assert!(page.contains("another Front Door profile"));
}
