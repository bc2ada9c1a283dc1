//! The path's third hop: the back end's database as the front end reports it (`/api/path`, the
//! panel, `/readyz`), with a real back end on a real PostgreSQL (skipped with a message when it
//! is not installed, outside CI), and on the embedded store.

use std::time::Duration;

use backend::database::{Connector, Credential, DatabaseSettings};
use backend::store::postgres::{PoolSettings, PostgresStore};
use backend::{ApiKeys, AuthMode, ItemStore};

use crate::helpers::*;

fn database_check(path: &serde_json::Value) -> serde_json::Value {
    path["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "database")
        .cloned()
        .unwrap_or_else(|| panic!("no database check: {path:#}"))
}

#[tokio::test]
async fn the_embedded_store_is_a_green_hop_of_its_own() {
    let be = spawn_backend(&[]).await;
    let fe = Front::to(be.url()).spawn().await;
    let (status, path) = get_json(&format!("{}/api/path", fe.url())).await;
    assert_eq!(status, 200);
    assert_eq!(path["database"]["store"], "embedded");
    assert_eq!(database_check(&path)["ok"], true);
    let (status, ready) = get_json(&format!("{}/readyz", fe.url())).await;
    assert_eq!(
        (status, &ready["store"]),
        (200, &serde_json::json!("embedded"))
    );
}

#[tokio::test]
async fn a_database_the_back_end_cannot_use_is_diagnosed_in_the_path_and_readiness() {
    let Some(cluster) = test_support::postgres::cluster() else {
        return;
    };
    let dns = test_support::spawn_dns().await;
    let (role, password) = cluster.create_role();
    let url = cluster.url_as(&role, &password, &cluster.create_database());
    let settings = DatabaseSettings::parse(&url).unwrap();
    let credential = Credential::Password(settings.password.clone());
    let connector = Connector::new(
        settings,
        dns.resolver(),
        None,
        credential,
        Duration::from_secs(5),
    )
    .unwrap();
    let store = PostgresStore::open(
        connector,
        PoolSettings {
            max_size: 4,
            wait_timeout: Duration::from_secs(5),
        },
    )
    .await
    .unwrap();
    let be = spawn_backend_on(
        &[],
        AuthMode::from_keys(ApiKeys::new([KEY])),
        ItemStore::Postgres(store),
    )
    .await;
    let fe = Front::to(be.url()).spawn().await;

    let (status, path) = get_json(&format!("{}/api/path", fe.url())).await;
    assert_eq!(status, 200);
    let db = &path["database"];
    assert_eq!(db["store"], "postgres", "{path:#}");
    assert_eq!(db["host"], test_support::postgres::PG_HOST);
    assert_eq!(db["address"], format!("127.0.0.1:{}", cluster.port));
    assert_eq!(db["class"], "loopback");
    assert_eq!(db["tls_verified"], true);
    assert_eq!(database_check(&path)["ok"], true, "{path:#}");
    let page = client()
        .get(fe.url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<dt>Database</dt>"), "{page}");
    assert!(page.contains("TLS verified"), "{page}");

    // The back end's login is refused from now on.
    cluster.psql("postgres", &format!("ALTER ROLE {role} NOLOGIN"));
    cluster.psql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"),
    );
    let (status, ready) = get_json(&format!("{}/readyz", fe.url())).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["error"]["code"], "database_auth_refused");
    assert_eq!(
        ready["error"]["hint"],
        diag::diagnosis::Code::DatabaseAuthRefused.next_step()
    );
    let (_, path) = get_json(&format!("{}/api/path", fe.url())).await;
    assert_eq!(path["verdict"], "broken", "{path:#}");
    let check = database_check(&path);
    assert_eq!(check["ok"], false);
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .starts_with("database_auth_refused: "),
        "{check}"
    );
    // The relay answers with the same diagnosis, not a bare 502.
    let (status, relayed) = get_json(&format!("{}/api/items", fe.url())).await;
    assert_eq!(status, 502, "{relayed}");
    assert_eq!(relayed["error"]["code"], "database_auth_refused");
    let page = client()
        .get(fe.url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("database_auth_refused"), "{page}");
}
