//! `AUTH_MODE=entra`: the token table (each case with its exact status and code), the platform's
//! principal headers, and the key cache (rotation, a storm of unknown `kid`s, failures).
//! Keys are generated when the tests run; the keys endpoint listens on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fake_entra::claims::{app_v1, app_v2, delegated_v1, issuer_v1, issuer_v2};
use fake_entra::{
    BACKEND_APP_ID_URI, BACKEND_CLIENT_ID, FRONTEND_CLIENT_ID, FRONTEND_OBJECT_ID, FakeKeys,
    OTHER_TENANT_ID, REQUIRED_ROLE, SigningKey, TENANT_ID, unix_now,
};
use serde_json::{Value, json};

use crate::helpers::*;
use backend::AuthMode;

const OTHER_APP: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const OTHER_OBJECT: &str = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a";

fn good_v1() -> Value {
    app_v1(
        TENANT_ID,
        BACKEND_APP_ID_URI,
        FRONTEND_CLIENT_ID,
        FRONTEND_OBJECT_ID,
        &[REQUIRED_ROLE],
    )
}

fn good_v2() -> Value {
    app_v2(
        TENANT_ID,
        BACKEND_CLIENT_ID,
        FRONTEND_CLIENT_ID,
        FRONTEND_OBJECT_ID,
        &[REQUIRED_ROLE],
    )
}

fn with(mut claims: Value, changes: &[(&str, Value)]) -> Value {
    for (name, value) in changes {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(*name);
        } else {
            claims[*name] = value.clone();
        }
    }
    claims
}

struct Entra {
    keys: FakeKeys,
    key: SigningKey,
}

async fn entra() -> Entra {
    let key = SigningKey::generate("kid-current");
    let keys = FakeKeys::start(TENANT_ID, &[&key]).await.unwrap();
    Entra { keys, key }
}

fn request(path: &str, authorization: &[&str], extra: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get(path);
    for value in authorization {
        builder = builder.header("authorization", *value);
    }
    for (name, value) in extra {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The token table: every case, its exact status and code.
#[tokio::test]
async fn the_token_table() {
    let fake = entra().await;
    let stranger = SigningKey::generate("kid-not-published");
    let impostor = SigningKey::generate("kid-current");
    let now = unix_now();
    let key = &fake.key;
    let hs256_secret = fake.key.jwk()["n"].as_str().unwrap().as_bytes().to_vec();

    let good = key.token(&good_v1());
    let cases: Vec<(&str, Vec<String>, u16, &str)> = vec![
        ("good v1", vec![bearer(&good)], 200, ""),
        ("good v2", vec![bearer(&key.token(&good_v2()))], 200, ""),
        (
            "v1 token for the client ID as audience",
            vec![bearer(&key.token(&with(
                good_v1(),
                &[("aud", json!(BACKEND_CLIENT_ID))],
            )))],
            200,
            "",
        ),
        (
            "wrong audience",
            vec![bearer(&key.token(&with(
                good_v1(),
                &[("aud", json!("https://management.azure.com/"))],
            )))],
            401,
            "wrong_audience",
        ),
        (
            "audience with /.default",
            vec![bearer(&key.token(&with(
                good_v1(),
                &[("aud", json!(format!("{BACKEND_APP_ID_URI}/.default")))],
            )))],
            401,
            "wrong_audience",
        ),
        (
            "other tenant",
            vec![bearer(&key.token(&with(
                good_v1(),
                &[
                    ("tid", json!(OTHER_TENANT_ID)),
                    ("iss", json!(issuer_v1(OTHER_TENANT_ID))),
                ],
            )))],
            401,
            "wrong_tenant",
        ),
        (
            "right tenant, another tenant's issuer",
            vec![bearer(&key.token(&with(
                good_v1(),
                &[("iss", json!(issuer_v1(OTHER_TENANT_ID)))],
            )))],
            401,
            "wrong_issuer",
        ),
        (
            "v1 issuer without its trailing slash",
            vec![bearer(&key.token(&with(
                good_v1(),
                &[("iss", json!(format!("https://sts.windows.net/{TENANT_ID}")))],
            )))],
            401,
            "wrong_issuer",
        ),
        (
            "v2 issuer with a trailing slash",
            vec![bearer(&key.token(&with(
                good_v2(),
                &[("iss", json!(format!("{}/", issuer_v2(TENANT_ID))))],
            )))],
            401,
            "wrong_issuer",
        ),
        (
            "wrong application",
            vec![bearer(
                &key.token(&with(good_v1(), &[("appid", json!(OTHER_APP))])),
            )],
            403,
            "app_not_allowed",
        ),
        (
            "wrong application (v2 azp)",
            vec![bearer(
                &key.token(&with(good_v2(), &[("azp", json!(OTHER_APP))])),
            )],
            403,
            "app_not_allowed",
        ),
        (
            "wrong object",
            vec![bearer(&key.token(&with(
                good_v1(),
                &[("oid", json!(OTHER_OBJECT)), ("sub", json!(OTHER_OBJECT))],
            )))],
            403,
            "object_not_allowed",
        ),
        (
            "no role",
            vec![bearer(
                &key.token(&with(good_v1(), &[("roles", json!([]))])),
            )],
            403,
            "role_missing",
        ),
        (
            "no roles claim, another role only",
            vec![bearer(&key.token(&with(
                good_v1(),
                &[("roles", json!(["Items.Read"]))],
            )))],
            403,
            "role_missing",
        ),
        (
            "delegated (user) token",
            vec![bearer(&key.token(&delegated_v1(
                TENANT_ID,
                BACKEND_APP_ID_URI,
                FRONTEND_CLIENT_ID,
                FRONTEND_OBJECT_ID,
            )))],
            403,
            "delegated_token",
        ),
        (
            "scp on an otherwise app-only token",
            vec![bearer(&key.token(&with(
                good_v1(),
                &[("scp", json!("user_impersonation"))],
            )))],
            403,
            "delegated_token",
        ),
        (
            "expired beyond the leeway",
            vec![bearer(
                &key.token(&with(good_v1(), &[("exp", json!(now - 61 - 60))])),
            )],
            401,
            "token_expired",
        ),
        (
            "expired within the leeway",
            vec![bearer(
                &key.token(&with(good_v1(), &[("exp", json!(now - 30))])),
            )],
            200,
            "",
        ),
        (
            "not yet valid",
            vec![bearer(
                &key.token(&with(good_v1(), &[("nbf", json!(now + 600))])),
            )],
            401,
            "token_not_yet_valid",
        ),
        (
            "not yet valid within the leeway",
            vec![bearer(
                &key.token(&with(good_v1(), &[("nbf", json!(now + 30))])),
            )],
            200,
            "",
        ),
        (
            "no exp",
            vec![bearer(
                &key.token(&with(good_v1(), &[("exp", Value::Null)])),
            )],
            401,
            "malformed_token",
        ),
        (
            "unknown kid",
            vec![bearer(&stranger.token(&good_v1()))],
            401,
            "unknown_key",
        ),
        (
            "right kid, signed by another key",
            vec![bearer(&impostor.token(&good_v1()))],
            401,
            "invalid_signature",
        ),
        (
            "claims changed after signing",
            vec![bearer(&{
                let genuine = key.token(&good_v1());
                let parts: Vec<&str> = genuine.split('.').collect();
                let forged = fake_entra::encode(
                    &json!({}),
                    &with(good_v1(), &[("roles", json!(["Admin", REQUIRED_ROLE]))]),
                );
                let forged_claims = forged.split('.').nth(1).unwrap().to_owned();
                format!("{}.{forged_claims}.{}", parts[0], parts[2])
            })],
            401,
            "invalid_signature",
        ),
        (
            "HS256 keyed with the public key",
            vec![bearer(&fake_entra::encode_hs256(
                &hs256_secret,
                key.kid(),
                &good_v1(),
            ))],
            401,
            "unsupported_algorithm",
        ),
        (
            "alg none",
            vec![bearer(&fake_entra::encode(
                &json!({"typ": "JWT", "alg": "none", "kid": key.kid()}),
                &good_v1(),
            ))],
            401,
            "unsupported_algorithm",
        ),
        (
            "RS384",
            vec![bearer(&key.sign(
                &json!({"typ": "JWT", "alg": "RS384", "kid": key.kid()}),
                &good_v1(),
            ))],
            401,
            "unsupported_algorithm",
        ),
        (
            "no kid",
            vec![bearer(
                &key.sign(&json!({"typ": "JWT", "alg": "RS256"}), &good_v1()),
            )],
            401,
            "malformed_token",
        ),
        (
            "not a JWT",
            vec!["Bearer not-a-jwt".into()],
            401,
            "malformed_token",
        ),
        (
            "four parts",
            vec![bearer(&format!("{good}.extra"))],
            401,
            "malformed_token",
        ),
        (
            "Basic scheme",
            vec!["Basic dXNlcjpwYXNz".into()],
            401,
            "malformed_authorization",
        ),
        (
            "Bearer and nothing",
            vec!["Bearer ".into()],
            401,
            "malformed_authorization",
        ),
        (
            "two tokens in one header",
            vec![format!("Bearer {good} {good}")],
            401,
            "malformed_authorization",
        ),
        (
            "duplicated Authorization headers",
            vec![bearer(&good), bearer(&good)],
            401,
            "malformed_authorization",
        ),
        ("no Authorization header", vec![], 401, "missing_token"),
    ];

    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        auth: Some(AuthMode::Entra(entra_validator(entra_settings(
            &fake.keys.authority(),
        )))),
        ..Setup::default()
    };
    let app = in_process(&setup, dir.path(), "127.0.0.1:4000");
    let mut failures = Vec::new();
    for (name, authorization, status, code) in &cases {
        let values: Vec<&str> = authorization.iter().map(String::as_str).collect();
        let response = tower::ServiceExt::oneshot(app.clone(), request("/api/items", &values, &[]))
            .await
            .unwrap();
        let got_status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let got_code = json["error"]["code"].as_str().unwrap_or("");
        if (got_status, got_code) != (*status, *code) {
            failures.push(format!(
                "{name}: expected {status} {code:?}, got {got_status} {got_code:?} ({})",
                json["error"]["message"]
            ));
            continue;
        }
        // Every refusal explains itself and says what to do; a 401 challenges for a bearer token.
        if *status != 200 {
            assert!(
                json["error"]["hint"]
                    .as_str()
                    .is_some_and(|h| !h.is_empty()),
                "{name}"
            );
            let body = String::from_utf8_lossy(&bytes);
            assert!(!body.contains(&good), "{name}: the token is echoed");
        }
        match *status {
            401 if *code == "missing_token" => {
                assert_eq!(challenge.as_deref(), Some("Bearer"), "{name}")
            }
            401 => assert_eq!(
                challenge.as_deref(),
                Some("Bearer error=\"invalid_token\""),
                "{name}"
            ),
            _ => assert_eq!(challenge, None, "{name}"),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // The whole table cost one fetch of the keys (the unknown kid's refetch was rate-limited
    // or brought nothing new; either way at most two).
    assert!(fake.keys.fetches() <= 2, "{} fetches", fake.keys.fetches());
}

#[tokio::test]
async fn caller_says_which_application_and_object_called() {
    let fake = entra().await;
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        auth: Some(AuthMode::Entra(entra_validator(entra_settings(
            &fake.keys.authority(),
        )))),
        ..Setup::default()
    };
    let app = in_process(&setup, dir.path(), "127.0.0.1:4000");
    let token = fake.key.token(&good_v1());
    let (status, json) = call(&app, request("/api/caller", &[&bearer(&token)], &[])).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["auth"]["mode"], "entra");
    assert_eq!(json["auth"]["app_id"], FRONTEND_CLIENT_ID);
    assert_eq!(json["auth"]["object_id"], FRONTEND_OBJECT_ID);
    assert_eq!(json["auth"]["roles"], json!([REQUIRED_ROLE]));
    assert_eq!(json["auth"]["token_version"], "1.0");
    assert!(!json.to_string().contains(&token));

    // The API key is no credential in Entra mode.
    let (status, json) = call(&app, get("/api/items")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "missing_token");
}

#[tokio::test]
async fn forged_principal_headers_are_ignored_without_app_service_authentication() {
    let fake = entra().await;
    let forged: &[(&str, &str)] = &[
        ("x-ms-client-principal-id", FRONTEND_OBJECT_ID),
        ("x-ms-client-principal-name", FRONTEND_CLIENT_ID),
        ("x-ms-client-principal-idp", "aad"),
        ("x-ms-client-principal", "eyJhdXRoX3R5cCI6ImFhZCJ9"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let settings = entra_settings(&fake.keys.authority());
    let off = in_process(
        &Setup {
            auth: Some(AuthMode::Entra(entra_validator(settings.clone()))),
            ..Setup::default()
        },
        dir.path(),
        "127.0.0.1:4000",
    );
    // Without a token the headers open nothing…
    let (status, json) = call(&off, request("/api/items", &[], forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "missing_token");
    // …and with one they are not reported either.
    let token = fake.key.token(&good_v1());
    let (status, json) = call(&off, request("/api/caller", &[&bearer(&token)], forged)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["auth"].get("platform"), None, "{json}");

    // Not in the other modes either.
    let keyed_dir = tempfile::tempdir().unwrap();
    let keyed = in_process(&Setup::default(), keyed_dir.path(), "127.0.0.1:4000");
    let (status, json) = call(&keyed, request("/api/items", &[], forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "unauthorized");

    // With App Service Authentication on, the platform's headers are reported, and the token is
    // still checked by the app.
    let dir = tempfile::tempdir().unwrap();
    let on = in_process(
        &Setup {
            auth: Some(AuthMode::Entra(entra_validator(settings))),
            app_service_auth: true,
            ..Setup::default()
        },
        dir.path(),
        "127.0.0.1:4000",
    );
    let (status, json) = call(&on, request("/api/caller", &[&bearer(&token)], forged)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["auth"]["platform"]["principal_id"], FRONTEND_OBJECT_ID);
    assert_eq!(json["auth"]["platform"]["identity_provider"], "aad");
    let (status, json) = call(&on, request("/api/items", &[], forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "missing_token");
}

async fn code_of(validator: &backend::EntraValidator, token: &str) -> &'static str {
    match validator.validate(token).await {
        Ok(_) => "ok",
        Err(error) => error.code(),
    }
}

#[tokio::test]
async fn rotation_refetches_once_and_withdrawn_keys_stop_working() {
    let fake = entra().await;
    let validator = entra_validator(entra_settings(&fake.keys.authority()));
    let old = &fake.key;
    assert_eq!(code_of(&validator, &old.token(&good_v1())).await, "ok");
    assert_eq!(fake.keys.fetches(), 1);
    assert_eq!(code_of(&validator, &old.token(&good_v1())).await, "ok");
    assert_eq!(fake.keys.fetches(), 1, "a known kid costs no fetch");

    let new = SigningKey::generate("kid-next");
    fake.keys.set_keys(&[&new]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(code_of(&validator, &new.token(&good_v1())).await, "ok");
    assert_eq!(fake.keys.fetches(), 2, "the new kid refetched once");
    assert_eq!(code_of(&validator, &new.token(&good_v1())).await, "ok");
    assert_eq!(fake.keys.fetches(), 2);
    // The old key is gone from the published set, so from the cache.
    assert_eq!(
        code_of(&validator, &old.token(&good_v1())).await,
        "unknown_key"
    );
    assert_eq!(fake.keys.fetches(), 2, "the refetch was rate-limited");
}

#[tokio::test]
async fn a_storm_of_unknown_kids_is_not_a_storm_of_fetches() {
    let fake = entra().await;
    let validator = entra_validator(entra_settings(&fake.keys.authority()));
    assert_eq!(code_of(&validator, &fake.key.token(&good_v1())).await, "ok");
    assert_eq!(fake.keys.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let storm = |round: usize| {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..100 {
            let validator = Arc::clone(&validator);
            let token = fake
                .key
                .token_with_kid(&format!("made-up-{round}-{n}"), &good_v1());
            tasks.spawn(async move { code_of(&validator, &token).await });
        }
        tasks
    };
    let codes = storm(1).join_all().await;
    assert!(codes.iter().all(|c| *c == "unknown_key"), "{codes:?}");
    assert_eq!(fake.keys.fetches(), 2, "100 unknown kids, one fetch");
    let codes = storm(2).join_all().await;
    assert!(codes.iter().all(|c| *c == "unknown_key"), "{codes:?}");
    assert_eq!(fake.keys.fetches(), 2, "and none while the interval runs");
    // Known keys kept working throughout.
    assert_eq!(code_of(&validator, &fake.key.token(&good_v1())).await, "ok");
}

#[tokio::test]
async fn the_keys_can_be_fetched_at_start_up() {
    let fake = entra().await;
    let validator = entra_validator(entra_settings(&fake.keys.authority()));
    validator.keys().prefetch().await;
    assert_eq!((fake.keys.fetches(), validator.keys().known()), (1, 1));
    assert_eq!(code_of(&validator, &fake.key.token(&good_v1())).await, "ok");
    assert_eq!(fake.keys.fetches(), 1);
}

#[tokio::test]
async fn a_cold_start_under_load_fetches_the_keys_once() {
    let fake = entra().await;
    fake.keys.set_delay(Duration::from_millis(200));
    let validator = entra_validator(entra_settings(&fake.keys.authority()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let validator = Arc::clone(&validator);
        let token = fake.key.token(&good_v1());
        tasks.spawn(async move { code_of(&validator, &token).await });
    }
    let codes = tasks.join_all().await;
    assert!(codes.iter().all(|c| *c == "ok"), "{codes:?}");
    assert_eq!(fake.keys.fetches(), 1);
}

#[tokio::test]
async fn a_failed_fetch_keeps_the_known_keys() {
    let fake = entra().await;
    let validator = entra_validator(entra_settings(&fake.keys.authority()));
    assert_eq!(code_of(&validator, &fake.key.token(&good_v1())).await, "ok");
    fake.keys.set_failing(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let unknown = fake.key.token_with_kid("kid-after-outage", &good_v1());
    let error = validator.validate(&unknown).await.unwrap_err();
    assert_eq!(error.code(), "signing_keys_unavailable");
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fake.keys.fetches(), 2);
    assert_eq!(code_of(&validator, &fake.key.token(&good_v1())).await, "ok");
    assert_eq!(validator.keys().known(), 1);
}

#[tokio::test]
async fn without_any_key_nothing_is_accepted() {
    let fake = entra().await;
    fake.keys.set_failing(true);
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        auth: Some(AuthMode::Entra(entra_validator(entra_settings(
            &fake.keys.authority(),
        )))),
        ..Setup::default()
    };
    let app = in_process(&setup, dir.path(), "127.0.0.1:4000");
    let token = fake.key.token(&good_v1());
    let (status, json) = call(&app, request("/api/items", &[&bearer(&token)], &[])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["error"]["code"], "signing_keys_unavailable");

    // A keys endpoint that never answers in time is the same failure, within the fetch timeout.
    let silent = entra().await;
    silent.keys.set_delay(Duration::from_secs(30));
    let mut settings = entra_settings(&silent.keys.authority());
    settings.keys.fetch_timeout = Duration::from_millis(300);
    let validator = entra_validator(settings);
    let started = std::time::Instant::now();
    let error = validator
        .validate(&silent.key.token(&good_v1()))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "signing_keys_unavailable");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn the_configuration_builds_an_entra_back_end() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let config = backend::BackendConfig::parse_from([
        "backend",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--auth-mode",
        "entra",
        "--entra-tenant-id",
        TENANT_ID,
        "--entra-audiences",
        BACKEND_APP_ID_URI,
        "--entra-allowed-apps",
        FRONTEND_CLIENT_ID,
        "--entra-authority",
        "http://127.0.0.1:9",
        "--api-keys",
        "ignored-in-entra-mode",
    ]);
    let state = backend::build(&config).unwrap().state;
    assert_eq!(state.auth.name(), backend::AuthModeName::Entra);
    let AuthMode::Entra(validator) = &state.auth else {
        unreachable!("checked above")
    };
    assert_eq!(validator.settings().required_role, None);
    assert_eq!(
        validator.keys().url().as_str(),
        format!("http://127.0.0.1:9/{TENANT_ID}/discovery/v2.0/keys")
    );
}
