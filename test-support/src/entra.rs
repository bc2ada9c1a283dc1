//! The back end's trust in fake-entra's tenant, as the tests and the lab set it up.

use std::sync::Arc;
use std::time::Duration;

use backend::jwks::KeyCacheSettings;
use backend::{EntraSettings, EntraValidator};

/// What a back end trusting fake-entra's tenant accepts: the back end's application ID URI and
/// client ID as audiences, the front end's managed identity (client and object ID), the
/// required role; signing keys from `authority` (a `FakeKeys`' authority), a minute of leeway.
pub fn fake_tenant_settings(authority: &str) -> EntraSettings {
    EntraSettings {
        tenant_id: fake_entra::TENANT_ID.into(),
        audiences: vec![
            fake_entra::BACKEND_APP_ID_URI.into(),
            fake_entra::BACKEND_CLIENT_ID.into(),
        ],
        allowed_apps: vec![fake_entra::FRONTEND_CLIENT_ID.into()],
        allowed_objects: vec![fake_entra::FRONTEND_OBJECT_ID.into()],
        required_role: Some(fake_entra::REQUIRED_ROLE.into()),
        authority: authority.parse().expect("the fake authority is a URL"),
        leeway: Duration::from_secs(60),
        keys: KeyCacheSettings::default(),
    }
}

/// A validator on `settings`, fetching keys over plain loopback HTTP (no proxy, no redirects).
pub fn entra_validator(settings: EntraSettings) -> Arc<EntraValidator> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain HTTP client builds");
    Arc::new(EntraValidator::new(settings, http))
}
