//! `BACKEND_AUTH=entra` end to end on loopback: a fake managed-identity endpoint and a fake keys
//! endpoint (fake-entra, keys generated now), the real back end in Entra mode, the front end in
//! between. The token cache (one fetch for many requests, renewal ahead of expiry, the old token
//! kept when a renewal fails) and every error shape of the identity endpoint.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use fake_entra::identity::ExpiresOnFormat;
use fake_entra::{
    BACKEND_APP_ID_URI, Behaviour, FRONTEND_CLIENT_ID, FRONTEND_OBJECT_ID, FakeIdentity, FakeKeys,
    ManagedIdentity, REQUIRED_ROLE, SigningKey, TENANT_ID,
};
use frontend::token::TokenError;
use frontend::{CredentialSettings, TokenSettings, TokenSource};

use crate::helpers::*;
use test_support::closed_addr;

const IDENTITY_SECRET: &str = "identity-header-s3cret-for-tests";

/// A fake Entra: its keys endpoint and the front end's managed-identity endpoint, sharing a key.
struct Entra {
    keys: FakeKeys,
    identity: FakeIdentity,
}

async fn entra() -> Entra {
    let key = SigningKey::generate("kid-1");
    let keys = FakeKeys::start(TENANT_ID, &[&key]).await.unwrap();
    let identity = FakeIdentity::start(
        ManagedIdentity {
            client_id: FRONTEND_CLIENT_ID.into(),
            object_id: FRONTEND_OBJECT_ID.into(),
            tenant: TENANT_ID.into(),
        },
        key,
        IDENTITY_SECRET,
    )
    .await
    .unwrap();
    identity.grant(BACKEND_APP_ID_URI, &[REQUIRED_ROLE]);
    Entra { keys, identity }
}

fn token_settings(endpoint: &str, resource: &str, timeout: Duration) -> TokenSettings {
    TokenSettings::new(
        Some(endpoint.parse().unwrap()),
        Some(IDENTITY_SECRET.into()),
        resource.into(),
        None,
        timeout,
    )
}

fn entra_front(backend_url: String, endpoint: &str, resource: &str) -> Front {
    let mut front = Front::to(backend_url);
    front.credential = Some(CredentialSettings::ManagedIdentity(Box::new(
        token_settings(endpoint, resource, Duration::from_secs(5)),
    )));
    front
}

fn plain_http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn the_front_end_calls_with_its_token_and_the_back_end_names_it() {
    let fake = entra().await;
    let backend = spawn_backend_entra(&fake.keys.authority()).await;
    let fe = entra_front(backend.url(), &fake.identity.endpoint(), BACKEND_APP_ID_URI)
        .spawn()
        .await;

    let created = client()
        .post(format!("{}/api/items", fe.url()))
        .header("content-type", "application/json")
        .body(r#"{"name":"with a token"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let (status, list) = get_json(&format!("{}/api/items", fe.url())).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["name"], "with a token");

    let (status, path) = get_json(&format!("{}/api/path", fe.url())).await;
    assert_eq!(status, 200);
    assert_eq!(path["backend_auth"], "entra");
    assert_eq!(path["caller"]["auth"]["mode"], "entra");
    assert_eq!(path["caller"]["auth"]["app_id"], FRONTEND_CLIENT_ID);
    assert_eq!(path["caller"]["auth"]["object_id"], FRONTEND_OBJECT_ID);
    let credential = path["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "credential")
        .unwrap();
    assert_eq!(credential["ok"], true, "{credential}");

    // The request the identity endpoint saw: the resource (no /.default), the API version, the
    // secret header, no client_id for a system-assigned identity; one fetch for all of it.
    let requests = fake.identity.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].resource.as_deref(), Some(BACKEND_APP_ID_URI));
    assert_eq!(requests[0].api_version.as_deref(), Some("2019-08-01"));
    assert!(requests[0].header_ok);
    assert_eq!(requests[0].client_id, None);
}

#[tokio::test]
async fn a_user_assigned_identity_is_named_with_its_client_id() {
    let fake = entra().await;
    fake.identity.set_user_assigned(true);
    fake.identity.set_expires_on_format(ExpiresOnFormat::Number);
    let backend = spawn_backend_entra(&fake.keys.authority()).await;

    let fe = entra_front(backend.url(), &fake.identity.endpoint(), BACKEND_APP_ID_URI)
        .spawn()
        .await;
    let (status, body) = get_json(&format!("{}/api/items", fe.url())).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "token_unavailable");
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("AZURE_CLIENT_ID"),
        "{body}"
    );

    let mut settings = token_settings(
        &fake.identity.endpoint(),
        BACKEND_APP_ID_URI,
        Duration::from_secs(5),
    );
    settings.client_id = Some(FRONTEND_CLIENT_ID.into());
    let mut front = Front::to(backend.url());
    front.credential = Some(CredentialSettings::ManagedIdentity(Box::new(settings)));
    let fe = front.spawn().await;
    let (status, body) = get_json(&format!("{}/api/items", fe.url())).await;
    assert_eq!(status, 200, "{body}");
    let last = fake.identity.requests().pop().unwrap();
    assert_eq!(last.client_id.as_deref(), Some(FRONTEND_CLIENT_ID));
}

#[tokio::test]
async fn many_concurrent_requests_cost_one_token_fetch() {
    let fake = entra().await;
    fake.identity
        .set_behaviour(Behaviour::Slow(Duration::from_millis(200)));
    let backend = spawn_backend_entra(&fake.keys.authority()).await;
    let fe = entra_front(backend.url(), &fake.identity.endpoint(), BACKEND_APP_ID_URI)
        .spawn()
        .await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let url = format!("{}/api/items", fe.url());
        tasks.spawn(async move { get_json(&url).await.0 });
    }
    let statuses = tasks.join_all().await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(fake.identity.served(), 1);
}

/// A clock the test moves.
#[derive(Clone)]
struct TestClock(Arc<AtomicU64>, SystemTime);

impl TestClock {
    fn new() -> Self {
        Self(Arc::new(AtomicU64::new(0)), SystemTime::now())
    }

    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    fn clock(&self) -> frontend::token::Clock {
        let this = self.clone();
        Arc::new(move || this.1 + Duration::from_secs(this.0.load(Ordering::SeqCst)))
    }
}

fn bytes_of(token: &frontend::token::AccessToken) -> Vec<u8> {
    token.authorization().as_bytes().to_vec()
}

#[tokio::test]
async fn tokens_are_renewed_ahead_of_expiry() {
    let fake = entra().await;
    fake.identity.set_lifetime(Duration::from_secs(3600));
    let clock = TestClock::new();
    let source = TokenSource::with_clock(
        token_settings(
            &fake.identity.endpoint(),
            BACKEND_APP_ID_URI,
            Duration::from_secs(5),
        ),
        plain_http(),
        clock.clock(),
    );
    let first = source.token().await.unwrap();
    assert_eq!(bytes_of(&source.token().await.unwrap()), bytes_of(&first));
    assert_eq!(source.requests(), 1);

    // 55 minutes later: still fresh (renewal starts 5 minutes before expiry).
    clock.advance(Duration::from_secs(55 * 60 - 10));
    assert_eq!(bytes_of(&source.token().await.unwrap()), bytes_of(&first));
    assert_eq!(source.requests(), 1);

    // Inside the window: renewed, and the new token is used from then on.
    fake.identity.set_lifetime(Duration::from_secs(7200));
    clock.advance(Duration::from_secs(60));
    let renewed = source.token().await.unwrap();
    assert_ne!(bytes_of(&renewed), bytes_of(&first));
    assert_eq!(source.requests(), 2);
    assert_eq!(bytes_of(&source.token().await.unwrap()), bytes_of(&renewed));
    assert_eq!(source.requests(), 2);
}

#[tokio::test]
async fn a_renewal_that_brings_back_an_old_token_is_not_repeated_on_every_call() {
    let fake = entra().await;
    fake.identity.set_lifetime(Duration::from_secs(3600));
    let clock = TestClock::new();
    let source = TokenSource::with_clock(
        token_settings(
            &fake.identity.endpoint(),
            BACKEND_APP_ID_URI,
            Duration::from_secs(5),
        ),
        plain_http(),
        clock.clock(),
    );
    source.token().await.unwrap();
    // The platform keeps handing out tokens that expire as soon as the cached one.
    clock.advance(Duration::from_secs(3600 - 200));
    fake.identity.set_lifetime(Duration::from_secs(200));
    source.token().await.unwrap();
    assert_eq!(source.requests(), 2);
    for _ in 0..10 {
        source.token().await.unwrap();
    }
    assert_eq!(source.requests(), 2, "quiet for the retry interval");
    clock.advance(Duration::from_secs(6));
    source.token().await.unwrap();
    assert_eq!(source.requests(), 3);
}

#[tokio::test]
async fn a_failed_renewal_keeps_the_token_while_it_is_valid() {
    let fake = entra().await;
    fake.identity.set_lifetime(Duration::from_secs(3600));
    let clock = TestClock::new();
    let source = TokenSource::with_clock(
        token_settings(
            &fake.identity.endpoint(),
            BACKEND_APP_ID_URI,
            Duration::from_secs(5),
        ),
        plain_http(),
        clock.clock(),
    );
    let first = source.token().await.unwrap();
    fake.identity.set_behaviour(Behaviour::Vague500);
    clock.advance(Duration::from_secs(3600 - 120));
    let kept = source.token().await.unwrap();
    assert_eq!(bytes_of(&kept), bytes_of(&first));
    assert_eq!(
        source.requests(),
        1 + 3,
        "the renewal retried the 500 three times"
    );
    assert_eq!(bytes_of(&source.token().await.unwrap()), bytes_of(&first));
    assert_eq!(source.requests(), 4, "and is not retried on the next call");

    // Once the token is too close to expiry to use, the failure is the caller's.
    clock.advance(Duration::from_secs(100));
    let error = source.token().await.unwrap_err();
    assert!(
        matches!(
            &error,
            TokenError::Refused {
                status: 500,
                correlation_id: Some(_),
                ..
            }
        ),
        "{error:?}"
    );
    // …and concurrent callers within the retry interval share it without asking again.
    let asked = source.requests();
    assert!(source.token().await.is_err());
    assert_eq!(source.requests(), asked);
    fake.identity.set_behaviour(Behaviour::Normal);
    clock.advance(Duration::from_secs(6));
    assert!(source.token().await.is_ok());
}

async fn items_through(front: Front) -> (u16, serde_json::Value, Duration) {
    let fe = front.spawn().await;
    let started = Instant::now();
    let (status, body) = get_json(&format!("{}/api/items", fe.url())).await;
    (status, body, started.elapsed())
}

#[tokio::test]
async fn identity_endpoint_failures_are_diagnosed() {
    // 400, as for a resource the tenant does not know: not retried, the correlationId shown.
    let fake = entra().await;
    let backend = spawn_backend_entra(&fake.keys.authority()).await;
    let (status, body, _) = items_through(entra_front(
        backend.url(),
        &fake.identity.endpoint(),
        "api://no-such-app",
    ))
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("token_unavailable"))
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("AADSTS500011"), "{message}");
    assert!(
        message.contains("correlationId fake-correlation-"),
        "{message}"
    );
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("BACKEND_TOKEN_RESOURCE")
    );
    assert_eq!(fake.identity.served(), 1);

    // A vague 500: retried, then diagnosed with its correlationId.
    let fake = entra().await;
    fake.identity.set_behaviour(Behaviour::Vague500);
    let (status, body, _) = items_through(entra_front(
        backend.url(),
        &fake.identity.endpoint(),
        BACKEND_APP_ID_URI,
    ))
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("token_unavailable"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("An unexpected error occured")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fake-correlation-")
    );
    assert_eq!(fake.identity.served(), 3);

    // Two 500s then a token; a 429 then a token: retries that succeed.
    let backend = spawn_backend_entra(&fake.keys.authority()).await;
    for (behaviour, served) in [(Behaviour::FailTimes(2), 3), (Behaviour::Throttle(1), 2)] {
        let fake = entra().await;
        let backend = spawn_backend_entra(&fake.keys.authority()).await;
        fake.identity.set_behaviour(behaviour.clone());
        let (status, body, _) = items_through(entra_front(
            backend.url(),
            &fake.identity.endpoint(),
            BACKEND_APP_ID_URI,
        ))
        .await;
        assert_eq!(status, 200, "{behaviour:?}: {body}");
        assert_eq!(fake.identity.served(), served, "{behaviour:?}");
    }

    // Slow: a timeout, not retried, within the limit.
    let fake = entra().await;
    fake.identity
        .set_behaviour(Behaviour::Slow(Duration::from_secs(5)));
    let mut front = Front::to(backend.url());
    front.credential = Some(CredentialSettings::ManagedIdentity(Box::new(
        token_settings(
            &fake.identity.endpoint(),
            BACKEND_APP_ID_URI,
            Duration::from_millis(500),
        ),
    )));
    let (status, body, elapsed) = items_through(front).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("token_unavailable"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("within 500 ms"),
        "{body}"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(fake.identity.served(), 1);

    // Refused: nothing listens; connect errors are retried, then diagnosed.
    let closed = closed_addr();
    let source = TokenSource::new(
        token_settings(
            &format!("http://{closed}/msi/token"),
            BACKEND_APP_ID_URI,
            Duration::from_secs(5),
        ),
        plain_http(),
    );
    let error = source.token().await.unwrap_err();
    assert!(matches!(error, TokenError::Unreachable(_)), "{error:?}");
    assert_eq!(source.requests(), 3);
    let diagnosis = frontend::diagnosis::token_unavailable(&error);
    assert_eq!(diagnosis.code.as_str(), "token_unavailable");

    // No managed identity at all.
    let mut front = Front::to(backend.url());
    front.credential = Some(CredentialSettings::ManagedIdentity(Box::new(
        TokenSettings::new(
            None,
            None,
            BACKEND_APP_ID_URI.into(),
            None,
            Duration::from_secs(1),
        ),
    )));
    let (status, body, _) = items_through(front).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("token_unavailable"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("IDENTITY_ENDPOINT")
    );
}

#[tokio::test]
async fn the_back_ends_refusals_become_next_steps() {
    let fake = entra().await;
    let backend = spawn_backend_entra(&fake.keys.authority()).await;

    // A token for another resource: the back end says wrong_audience, the front end says why.
    fake.identity
        .grant("api://some-other-api", &[REQUIRED_ROLE]);
    let fe = entra_front(
        backend.url(),
        &fake.identity.endpoint(),
        "api://some-other-api",
    )
    .spawn()
    .await;
    let (status, body) = get_json(&format!("{}/api/items", fe.url())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("wrong_audience"))
    );
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("BACKEND_TOKEN_RESOURCE")
    );
    let (_, path) = get_json(&format!("{}/api/path", fe.url())).await;
    assert_eq!(path["verdict"], "broken");
    assert_eq!(path["diagnosis"]["code"], "wrong_audience");

    // The identity holds no app role on the back end.
    let fake = entra().await;
    fake.identity.grant(BACKEND_APP_ID_URI, &[]);
    let backend = spawn_backend_entra(&fake.keys.authority()).await;
    let fe = entra_front(backend.url(), &fake.identity.endpoint(), BACKEND_APP_ID_URI)
        .spawn()
        .await;
    let (status, body) = get_json(&format!("{}/api/items", fe.url())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("role_missing"))
    );
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("assign the back end's app role")
    );

    // A front end still sending the API key to an Entra back end.
    let fe = Front::to(backend.url()).spawn().await;
    let (status, body) = get_json(&format!("{}/api/items", fe.url())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("missing_token"))
    );
    assert!(
        body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("BACKEND_AUTH=entra")
    );

    // A front end sending a token to an API-key back end.
    let keyed = spawn_backend(&[]).await;
    let fe = entra_front(keyed.url(), &fake.identity.endpoint(), BACKEND_APP_ID_URI)
        .spawn()
        .await;
    let (status, body) = get_json(&format!("{}/api/items", fe.url())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("backend_unauthorized"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AUTH_MODE=api-key")
    );
}

/// A log sink. It is the process's global subscriber, so it also gets the other tests' logs:
/// a thread-local one misses events whose callsite another thread registered first.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_and_the_identity_secret_never_reach_the_logs() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    // For this thread only: the fixtures install the global test subscriber. A `tokio::test`
    // runtime runs every task (the servers included) on this thread, so all their logs land here.
    let _capture = tracing::subscriber::set_default(subscriber);

    let fake = entra().await;
    let backend = spawn_backend_entra(&fake.keys.authority()).await;
    let fe = entra_front(backend.url(), &fake.identity.endpoint(), BACKEND_APP_ID_URI)
        .spawn()
        .await;
    assert_eq!(get_json(&format!("{}/api/items", fe.url())).await.0, 200);
    fake.identity
        .grant("api://some-other-api", &[REQUIRED_ROLE]);
    let wrong = entra_front(
        backend.url(),
        &fake.identity.endpoint(),
        "api://some-other-api",
    )
    .spawn()
    .await;
    assert_eq!(get_json(&format!("{}/api/items", wrong.url())).await.0, 502);
    fake.identity.set_behaviour(Behaviour::Vague500);
    let failing = entra_front(backend.url(), &fake.identity.endpoint(), "api://unused")
        .spawn()
        .await;
    assert_eq!(
        get_json(&format!("{}/api/items", failing.url())).await.0,
        502
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("got a managed-identity token"), "{logs}");
    assert!(logs.contains("wrong_audience"), "{logs}");
    assert!(
        logs.contains("fake-correlation-"),
        "the correlationId is logged: {logs}"
    );
    // JWTs start with base64url('{"'): "eyJ".
    assert!(!logs.contains("eyJ"), "a token reached the logs: {logs}");
    assert!(
        !logs.contains(IDENTITY_SECRET),
        "the identity secret reached the logs"
    );
}
