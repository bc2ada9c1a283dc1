//! The claims Entra puts in access tokens, and helpers that assemble tokens by hand (broken ones
//! included), so that a test changes one thing at a time.
//!
//! App-only tokens (a managed identity calling an API) carry `appid` (v1) or `azp` (v2), `oid`
//! equal to `sub`, `idtyp: "app"`, the assigned app roles in `roles`, and no `scp`. Delegated
//! (user) tokens carry `scp`, a user's `oid` and a pairwise `sub`.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::keys::part;

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The v1 issuer of `tenant` (with its trailing slash, as Entra writes it).
pub fn issuer_v1(tenant: &str) -> String {
    format!("https://sts.windows.net/{tenant}/")
}

/// The v2 issuer of `tenant`.
pub fn issuer_v2(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/v2.0")
}

/// A v1 app-only token's claims: `app_id` calling `audience` as object `object_id`, with `roles`,
/// valid from a minute ago for an hour.
pub fn app_v1(
    tenant: &str,
    audience: &str,
    app_id: &str,
    object_id: &str,
    roles: &[&str],
) -> Value {
    let now = unix_now();
    json!({
        "aud": audience,
        "iss": issuer_v1(tenant),
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "aio": "k2BgYDhx+fake+lab+aio",
        "appid": app_id,
        "appidacr": "2",
        "idp": issuer_v1(tenant),
        "idtyp": "app",
        "oid": object_id,
        "rh": "0.fake-lab-rh.",
        "roles": roles,
        "sub": object_id,
        "tid": tenant,
        "uti": "fake-lab-uti",
        "ver": "1.0",
        "xms_mirid": "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-lab/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-fe",
    })
}

/// A v2 app-only token's claims (`azp` instead of `appid`, the v2 issuer).
pub fn app_v2(
    tenant: &str,
    audience: &str,
    app_id: &str,
    object_id: &str,
    roles: &[&str],
) -> Value {
    let now = unix_now();
    json!({
        "aud": audience,
        "iss": issuer_v2(tenant),
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "aio": "k2BgYDhx+fake+lab+aio",
        "azp": app_id,
        "azpacr": "2",
        "idtyp": "app",
        "oid": object_id,
        "rh": "0.fake-lab-rh.",
        "roles": roles,
        "sub": object_id,
        "tid": tenant,
        "uti": "fake-lab-uti",
        "ver": "2.0",
    })
}

/// A v1 delegated token: a user signed in to `app_id`, which calls `audience` on their behalf.
pub fn delegated_v1(tenant: &str, audience: &str, app_id: &str, user_object_id: &str) -> Value {
    let now = unix_now();
    json!({
        "aud": audience,
        "iss": issuer_v1(tenant),
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "acr": "1",
        "amr": ["pwd", "mfa"],
        "appid": app_id,
        "appidacr": "0",
        "idtyp": "user",
        "name": "Lab User",
        "oid": user_object_id,
        "scp": "user_impersonation",
        "sub": "pairwise-subject-of-the-user-for-this-app",
        "tid": tenant,
        "unique_name": "user@lab.example",
        "upn": "user@lab.example",
        "ver": "1.0",
    })
}

/// Assembles `header.claims.signature` from parts, without checking anything.
pub fn encode_unsigned(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        part(header),
        part(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// An HS256 token keyed with `secret` (the classic "sign with the public key as an HMAC
/// secret" attack, when `secret` is the JWK's modulus).
pub fn encode_hs256(secret: &[u8], kid: &str, claims: &Value) -> String {
    let header = json!({"typ": "JWT", "alg": "HS256", "kid": kid});
    let message = format!("{}.{}", part(&header), part(claims));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// A token as it would look with any header, signed by nobody (`alg: none` and friends).
pub fn encode(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", part(header), part(claims))
}
