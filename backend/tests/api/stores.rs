//! One suite, two stores: every store behaviour runs against the embedded store and against a
//! real PostgreSQL (started by `test_support::postgres`; skipped with a message when it is not
//! installed, outside CI). Also the database hop's failures, each with its diagnosis code.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use backend::ItemStore;
use backend::database::{Connector, Credential, DatabaseSettings, DbFailureKind};
use backend::store::postgres::{PoolSettings, PostgresStore};
use backend::store::{MAX_ITEMS, StoreError};
use diag::diagnosis::Code;
use test_support::TestDns;
use test_support::postgres::{self, PG_HOST, PG_OTHER_HOST, PgCluster};

use crate::helpers::*;

/// A store under test and what keeps it alive.
struct Subject {
    name: &'static str,
    store: ItemStore,
    reopen: Reopen,
}

/// How to open the same data again (a restart).
enum Reopen {
    Embedded(tempfile::TempDir),
    Postgres { url: String, dns: TestDns },
}

impl Reopen {
    async fn open(&self) -> ItemStore {
        match self {
            Reopen::Embedded(dir) => ItemStore::open(dir.path()).unwrap(),
            Reopen::Postgres { url, dns } => pg_store(url, dns).await.unwrap(),
        }
    }
}

fn connector(url: &str, dns: &TestDns) -> Connector {
    let settings = DatabaseSettings::parse(url).unwrap();
    let credential = Credential::Password(settings.password.clone());
    Connector::new(
        settings,
        dns.resolver(),
        None,
        credential,
        Duration::from_secs(5),
    )
    .unwrap()
}

async fn pg_store(url: &str, dns: &TestDns) -> Result<ItemStore, StoreError> {
    PostgresStore::open(
        connector(url, dns),
        PoolSettings {
            max_size: 8,
            wait_timeout: Duration::from_secs(5),
        },
    )
    .await
    .map(ItemStore::Postgres)
}

/// The embedded store in a fresh folder, and PostgreSQL on a fresh database when installed.
async fn subjects() -> Vec<Subject> {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![Subject {
        name: "embedded",
        store: ItemStore::open(dir.path()).unwrap(),
        reopen: Reopen::Embedded(dir),
    }];
    if let Some(cluster) = postgres::cluster() {
        let url = cluster.url(&cluster.create_database());
        let dns = test_support::spawn_dns().await;
        all.push(Subject {
            name: "postgres",
            store: pg_store(&url, &dns).await.unwrap(),
            reopen: Reopen::Postgres { url, dns },
        });
    }
    all
}

#[tokio::test]
async fn every_store_serves_the_same_api() {
    for subject in subjects().await {
        let name = subject.name;
        let app = in_process_with_store(subject.store.clone());
        let (status, created) = call(
            &app,
            post_json("/api/items", r#"{"name":" milk ","note":"2 l"}"#),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{name}");
        assert_eq!(created["name"], "milk", "{name}");
        assert_eq!(created["note"], "2 l", "{name}");
        let (status, bad) = call(&app, post_json("/api/items", r#"{"name":""}"#)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(bad["error"]["code"], "invalid_item", "{name}");
        let (_, second) = call(&app, post_json("/api/items", r#"{"name":"eggs"}"#)).await;
        assert!(second.get("note").is_none(), "{name}: {second}");
        let id = created["id"].as_str().unwrap();
        let (status, got) = call(&app, get(&format!("/api/items/{id}"))).await;
        assert_eq!((status, &got), (StatusCode::OK, &created), "{name}");
        let (_, list) = call(&app, get("/api/items")).await;
        let names: Vec<_> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["milk", "eggs"], "{name}: oldest first");
        let delete = |id: &str| {
            Request::delete(format!("/api/items/{id}"))
                .header("x-api-key", KEY)
                .body(Body::empty())
                .unwrap()
        };
        assert_eq!(
            call(&app, delete(id)).await.0,
            StatusCode::NO_CONTENT,
            "{name}"
        );
        let (status, gone) = call(&app, delete(id)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}");
        assert_eq!(gone["error"]["code"], "item_not_found", "{name}");
        let (status, _) = call(&app, get(&format!("/api/items/{id}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}");
    }
}

#[tokio::test]
async fn every_store_keeps_items_across_a_restart() {
    for subject in subjects().await {
        let name = subject.name;
        let kept = subject
            .store
            .create("kept".into(), Some("note".into()))
            .await
            .unwrap();
        let gone = subject.store.create("gone".into(), None).await.unwrap();
        assert!(subject.store.delete(gone.id).await.unwrap(), "{name}");
        // A restart: the store closed, the same data opened again (`reopen` stays alive: the
        // reopened PostgreSQL store keeps resolving through its test DNS server).
        let Subject { store, reopen, .. } = subject;
        drop(store);
        let again = reopen.open().await;
        assert_eq!(again.list().await.unwrap(), vec![kept.clone()], "{name}");
        assert_eq!(again.get(kept.id).await.unwrap(), Some(kept), "{name}");
        assert_eq!(again.get(gone.id).await.unwrap(), None, "{name}");
    }
}

#[tokio::test]
async fn every_store_lands_concurrent_writes_once() {
    for subject in subjects().await {
        let writers: Vec<_> = (0..60)
            .map(|n| {
                let store = subject.store.clone();
                tokio::spawn(async move { store.create(format!("item {n}"), None).await })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        let mut names: Vec<_> = subject
            .store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        names.sort();
        let mut want: Vec<_> = (0..60).map(|n| format!("item {n}")).collect();
        want.sort();
        assert_eq!(names, want, "{}", subject.name);
    }
}

#[tokio::test]
async fn every_store_is_full_at_the_limit_and_says_store_full() {
    for subject in subjects().await {
        let name = subject.name;
        // Writers race for the last places: exactly MAX_ITEMS may land, across them all.
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let store = subject.store.clone();
                tokio::spawn(async move {
                    let mut landed = 0_u64;
                    for n in 0..MAX_ITEMS {
                        match store.create(format!("w{w} {n}"), None).await {
                            Ok(_) => landed += 1,
                            Err(StoreError::Full) => break,
                            Err(other) => panic!("{other}"),
                        }
                    }
                    landed
                })
            })
            .collect();
        let mut landed = 0;
        for writer in writers {
            landed += writer.await.unwrap();
        }
        assert_eq!(landed, MAX_ITEMS, "{name}");
        let app = in_process_with_store(subject.store.clone());
        let (status, body) = call(&app, post_json("/api/items", r#"{"name":"one more"}"#)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{name}");
        assert_eq!(body["error"]["code"], "store_full", "{name}");
    }
}

fn pg() -> Option<&'static PgCluster> {
    postgres::cluster()
}

#[tokio::test]
async fn migrations_apply_once_when_instances_start_together() {
    let Some(cluster) = pg() else { return };
    let database = cluster.create_database();
    let url = cluster.url(&database);
    let dns = test_support::spawn_dns().await;
    let starts: Vec<_> = (0..6)
        .map(|_| {
            let connector = connector(&url, &dns);
            tokio::spawn(async move {
                PostgresStore::open(
                    connector,
                    PoolSettings {
                        max_size: 2,
                        wait_timeout: Duration::from_secs(5),
                    },
                )
                .await
                .map(|_| ())
            })
        })
        .collect();
    for start in starts {
        start.await.unwrap().unwrap();
    }
    let applied = cluster.psql(
        &database,
        "SELECT string_agg(version::text, ',') FROM lockdown_migrations",
    );
    assert_eq!(applied, "1");
    // And again on a migrated database: nothing to do, no error.
    pg_store(&url, &dns).await.unwrap();
}

async fn connect_failure(url: &str, dns: &TestDns) -> backend::database::DbFailure {
    connector(url, dns).connect().await.map(|_| ()).unwrap_err()
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_name() {
    let Some(cluster) = pg() else { return };
    let dns = test_support::spawn_dns().await;
    let database = cluster.create_database();
    // The same server through a name its certificate does not carry.
    let failure = connect_failure(&cluster.url_at(PG_OTHER_HOST, &database), &dns).await;
    assert_eq!(failure.kind, DbFailureKind::TlsName, "{failure}");
    assert_eq!(failure.code(), Code::DatabaseTlsNameMismatch);
    assert!(failure.message.contains(PG_OTHER_HOST), "{failure}");
    // And with the right name it connects, TLS verified.
    let (_, facts) = connector(&cluster.url_at(PG_HOST, &database), &dns)
        .connect()
        .await
        .unwrap();
    assert!(facts.tls_verified);
    assert_eq!(facts.address.ip().to_string(), "127.0.0.1");
}

#[tokio::test]
async fn a_chain_from_an_untrusted_ca_is_a_tls_failure() {
    let Some(cluster) = pg() else { return };
    let dns = test_support::spawn_dns().await;
    let url = cluster.url(&cluster.create_database()).replace(
        &cluster.ca_file.display().to_string(),
        &cluster.other_ca_file.display().to_string(),
    );
    let failure = connect_failure(&url, &dns).await;
    assert_eq!(failure.kind, DbFailureKind::Tls, "{failure}");
    assert_eq!(failure.code(), Code::DatabaseTlsFailure);
}

#[tokio::test]
async fn a_wrong_password_is_a_refused_login_and_never_quoted() {
    let Some(cluster) = pg() else { return };
    let dns = test_support::spawn_dns().await;
    let url = cluster
        .url(&cluster.create_database())
        .replace(postgres::APP_PASSWORD, "wrong-secret");
    let failure = connect_failure(&url, &dns).await;
    assert_eq!(failure.kind, DbFailureKind::Auth, "{failure}");
    assert_eq!(failure.code(), Code::DatabaseAuthRefused);
    assert!(!failure.message.contains("wrong-secret"), "{failure}");
}

#[tokio::test]
async fn dns_refused_and_timeout_each_have_their_code() {
    let dns = test_support::spawn_dns().await;
    let failure = connect_failure("postgres://u:p@nope.lockdown.test/d", &dns).await;
    assert_eq!(failure.code(), Code::DatabaseDnsFailure, "{failure}");

    let closed = test_support::closed_port();
    let failure = connect_failure(&format!("postgres://u:p@{PG_HOST}:{closed}/d"), &dns).await;
    assert_eq!(failure.code(), Code::DatabaseConnectRefused, "{failure}");
    assert_eq!(failure.address.unwrap().port(), closed);

    let queue = test_support::spawn_full_queue().await;
    let settings =
        DatabaseSettings::parse(&format!("postgres://u:p@{PG_HOST}:{}/d", queue.addr.port()))
            .unwrap();
    let connector = Connector::new(
        settings,
        dns.resolver(),
        None,
        Credential::Password(None),
        Duration::from_millis(400),
    )
    .unwrap();
    let failure = connector.connect().await.map(|_| ()).unwrap_err();
    assert_eq!(failure.code(), Code::DatabaseConnectTimeout, "{failure}");
}

#[tokio::test]
async fn a_database_down_at_start_up_leaves_the_back_end_unready_with_the_diagnosis() {
    use clap::Parser;
    let closed = test_support::closed_port();
    let config = backend::BackendConfig::parse_from([
        "backend",
        "--database-url",
        &format!("postgres://u:secret@127.0.0.1:{closed}/d?sslmode=disable"),
    ]);
    // The back end starts; the store answers every call with the diagnosis.
    let store = backend::open_store(&config).await.unwrap();
    let app = in_process_with_store(store);
    let (status, body) = call(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "database_connect_refused", "{body}");
    assert_eq!(
        body["error"]["hint"],
        Code::DatabaseConnectRefused.next_step()
    );
    let (status, body) = call(&app, get("/api/items")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "database_connect_refused");
    assert!(!body.to_string().contains("secret"), "{body}");

    // A URL that can never verify still stops start-up, saying what to use instead.
    let config = backend::BackendConfig::parse_from([
        "backend",
        "--database-url",
        "postgres://u@10.0.2.4/d",
    ]);
    let error = backend::open_store(&config).await.map(|_| ()).unwrap_err();
    assert!(
        format!("{error:#}").contains("Use the server's public name"),
        "{error:#}"
    );
}

/// A database that comes up after the back end: the first call that reaches it migrates, and
/// the back end is ready without a restart.
#[tokio::test]
async fn the_back_end_becomes_ready_when_its_database_comes_up() {
    let Some(cluster) = pg() else { return };
    let (role, password) = cluster.create_role();
    let database = cluster.create_database();
    let dns = test_support::spawn_dns().await;
    let url = format!(
        "postgres://{role}:{password}@{PG_HOST}:{}/{database}?sslrootcert={}",
        cluster.port,
        cluster.ca_file.display()
    );
    // The role may not log in yet (as a database still starting, or a login not yet granted).
    cluster.psql("postgres", &format!("ALTER ROLE {role} NOLOGIN"));
    let settings = DatabaseSettings::parse(&url).unwrap();
    let connector = Connector::new(
        settings.clone(),
        dns.resolver(),
        None,
        Credential::Password(settings.password.clone()),
        Duration::from_secs(5),
    )
    .unwrap();
    let pool = PoolSettings {
        max_size: 2,
        wait_timeout: Duration::from_secs(5),
    };
    let (store, failure) = PostgresStore::open_unready(connector, pool).await.unwrap();
    assert_eq!(failure.unwrap().code(), Code::DatabaseAuthRefused);
    assert!(matches!(
        store.list().await,
        Err(backend::store::StoreError::Unavailable(_))
    ));

    cluster.psql("postgres", &format!("ALTER ROLE {role} LOGIN"));
    store
        .create("after the database came up".into(), None)
        .await
        .unwrap();
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn readyz_describes_the_hop_and_diagnoses_a_refused_login() {
    // The embedded store: ready, no hop.
    let dir = tempfile::tempdir().unwrap();
    let app = in_process_with_store(ItemStore::open(dir.path()).unwrap());
    let (status, body) = call(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({"status": "ready", "store": "embedded"})
    );
    // Behind the gates, like /api: it names the database's address.
    let anonymous = Request::get("/readyz").body(Body::empty()).unwrap();
    assert_eq!(call(&app, anonymous).await.0, StatusCode::UNAUTHORIZED);

    let Some(cluster) = pg() else { return };
    let dns = test_support::spawn_dns().await;
    let (role, password) = cluster.create_role();
    let database = cluster.create_database();
    let url = cluster.url_as(&role, &password, &database);
    let store = pg_store(&url, &dns).await.unwrap();
    let app = in_process_with_store(store.clone());
    let (status, body) = call(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["store"], "postgres");
    assert_eq!(body["database"]["host"], PG_HOST);
    assert_eq!(
        body["database"]["address"],
        format!("127.0.0.1:{}", cluster.port)
    );
    assert_eq!(body["database"]["class"], "loopback");
    assert_eq!(body["database"]["tls_verified"], true);
    assert!(body["database"]["latency_ms"].is_u64(), "{body}");

    // The role may no longer log in, and its connections are cut: readiness and the items API
    // both answer 503 with the database's diagnosis.
    cluster.psql("postgres", &format!("ALTER ROLE {role} NOLOGIN"));
    cluster.psql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"),
    );
    let (status, body) = call(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "database_auth_refused");
    assert_eq!(body["error"]["hint"], Code::DatabaseAuthRefused.next_step());
    assert_eq!(body["database"]["class"], "loopback");
    assert!(!body.to_string().contains(&password), "{body}");
    let (status, body) = call(&app, get("/api/items")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "database_auth_refused");
}

/// A clock the Entra test moves (the token source's; the fake endpoint's `expires_on` uses the
/// real time, so tokens are issued with a lifetime the moved clock reaches).
#[derive(Clone)]
struct TestClock(
    std::sync::Arc<std::sync::atomic::AtomicU64>,
    std::time::SystemTime,
);

impl TestClock {
    fn clock(&self) -> hosting::identity::Clock {
        let this = self.clone();
        std::sync::Arc::new(move || {
            this.1 + Duration::from_secs(this.0.load(std::sync::atomic::Ordering::SeqCst))
        })
    }

    fn advance(&self, by: Duration) {
        self.0
            .fetch_add(by.as_secs(), std::sync::atomic::Ordering::SeqCst);
    }
}

/// A managed identity's endpoint (fake-entra's) that hands out tokens for Azure Database for
/// PostgreSQL, an hour long, to callers that send `secret`.
async fn db_identity(secret: &str) -> fake_entra::FakeIdentity {
    let identity = fake_entra::FakeIdentity::start(
        fake_entra::ManagedIdentity {
            client_id: fake_entra::BACKEND_CLIENT_ID.into(),
            object_id: fake_entra::FRONTEND_OBJECT_ID.into(),
            tenant: fake_entra::TENANT_ID.into(),
        },
        fake_entra::SigningKey::generate("kid-db"),
        secret,
    )
    .await
    .unwrap();
    identity.grant(backend::config::DEFAULT_DB_TOKEN_RESOURCE, &[]);
    identity.set_lifetime(Duration::from_secs(3600));
    identity
}

#[tokio::test]
async fn an_entra_token_is_the_password_and_new_connections_use_the_renewed_one() {
    use hosting::identity::{TokenSettings, TokenSource};
    let Some(cluster) = pg() else { return };
    let secret = "identity-header-for-db-tests";
    let identity = db_identity(secret).await;
    let clock = TestClock(Default::default(), std::time::SystemTime::now());
    let source = std::sync::Arc::new(TokenSource::with_clock(
        TokenSettings::new(
            Some(identity.endpoint().parse().unwrap()),
            Some(secret.into()),
            backend::config::DEFAULT_DB_TOKEN_RESOURCE.into(),
            None,
            Duration::from_secs(5),
        ),
        reqwest::Client::builder().no_proxy().build().unwrap(),
        clock.clock(),
    ));
    // PostgreSQL accepts the identity's current token as the role's password (Azure checks the
    // token's signature instead; the test server compares it as a password).
    let (role, _) = cluster.create_role();
    let first = source.token().await.unwrap().secret();
    let set_password = |token: &hosting::secret::Secret| {
        cluster.psql(
            "postgres",
            &format!("ALTER ROLE {role} PASSWORD '{}'", token.expose()),
        );
    };
    set_password(&first);
    let database = cluster.create_database();
    let url = format!(
        "postgres://{role}@{PG_HOST}:{}/{database}?sslrootcert={}",
        cluster.port,
        cluster.ca_file.display()
    );
    let dns = test_support::spawn_dns().await;
    let connector = Connector::new(
        DatabaseSettings::parse(&url).unwrap(),
        dns.resolver(),
        None,
        Credential::Token(std::sync::Arc::new(backend::database::IdentityTokens(
            source.clone(),
        ))),
        Duration::from_secs(5),
    )
    .unwrap();
    let store = PostgresStore::open(
        connector,
        PoolSettings {
            max_size: 2,
            wait_timeout: Duration::from_secs(5),
        },
    )
    .await
    .unwrap();
    store
        .create("with the first token".into(), None)
        .await
        .unwrap();

    // Inside the renewal window (5 minutes before expiry): the next connection asks for the
    // password, gets a renewed token, and the server (now expecting that one) lets it in.
    identity.set_lifetime(Duration::from_secs(7200));
    clock.advance(Duration::from_secs(56 * 60));
    let renewed = source.token().await.unwrap().secret();
    assert_ne!(renewed.expose(), first.expose(), "renewed ahead of expiry");
    set_password(&renewed);
    cluster.psql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"),
    );
    // Let the pooled connection's driver read the server's goodbye.
    tokio::time::sleep(Duration::from_millis(200)).await;
    store
        .create("with the renewed token".into(), None)
        .await
        .unwrap();
    assert_eq!(store.list().await.unwrap().len(), 2);
    assert_eq!(source.requests(), 2);

    // The identity endpoint fails and the token has run out: a new connection cannot log in,
    // and says why (database_token_unavailable), without a token in the message.
    identity.set_behaviour(fake_entra::Behaviour::Vague500);
    clock.advance(Duration::from_secs(3 * 3600));
    cluster.psql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"),
    );
    let failure = store.check().await.unwrap_err();
    assert_eq!(failure.code(), Code::DatabaseTokenUnavailable, "{failure}");
    assert!(!failure.message.contains(renewed.expose()));
}

/// The binary's own path: `DB_AUTH=entra` with the identity endpoint App Service sets, through
/// `open_store` (the configuration the Bicep writes), logs in with the identity's token.
#[tokio::test]
async fn the_back_end_logs_in_with_its_managed_identity_from_its_settings() {
    use clap::Parser;
    let Some(cluster) = pg() else { return };
    let secret = "identity-header-for-the-binary";
    let identity = db_identity(secret).await;
    // The server takes the token the endpoint hands out as the role's password (Azure checks its
    // signature instead): the endpoint answers one known token.
    let token = hosting::secret::Secret::from(format!("db-token-{}", std::process::id()));
    identity.set_fixed_token(Some(token.expose()));
    let (role, _) = cluster.create_role();
    cluster.psql(
        "postgres",
        &format!("ALTER ROLE {role} PASSWORD '{}'", token.expose()),
    );
    let database = cluster.create_database();
    let dns = test_support::spawn_dns().await;
    let url = format!(
        "postgres://{role}@{PG_HOST}:{}/{database}?sslrootcert={}",
        cluster.port,
        cluster.ca_file.display()
    );
    let endpoint = identity.endpoint();
    let dns_server = dns.addr.to_string();
    let config = backend::BackendConfig::parse_from([
        "backend",
        "--database-url",
        &url,
        "--db-auth",
        "entra",
        "--identity-endpoint",
        &endpoint,
        "--identity-header",
        secret,
        "--dns-servers",
        &dns_server,
    ]);
    let store = backend::open_store(&config).await.unwrap();
    store
        .create("logged in as the identity".into(), None)
        .await
        .unwrap();
    assert_eq!(store.list().await.unwrap().len(), 1);
    let asked = identity.requests();
    assert!(
        !asked.is_empty() && asked.iter().all(|r| r.header_ok),
        "{asked:?}"
    );
    assert!(
        asked
            .iter()
            .all(|r| r.resource.as_deref() == Some(backend::config::DEFAULT_DB_TOKEN_RESOURCE)),
        "{asked:?}"
    );

    // Without the identity endpoint (no managed identity on the app): the back end starts
    // unready and every call says why.
    let config = backend::BackendConfig::parse_from([
        "backend",
        "--database-url",
        &url,
        "--db-auth",
        "entra",
        "--dns-servers",
        &dns_server,
    ]);
    let app = in_process_with_store(backend::open_store(&config).await.unwrap());
    let (status, body) = call(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body["error"]["code"], "database_token_unavailable",
        "{body}"
    );
    assert!(!body.to_string().contains(token.expose()), "{body}");
}
