//! A fake Microsoft Entra ID that lives on loopback, for lockdown's tests and its lab.
//!
//! Nothing here is secret or long-lived: RSA keys are generated when the process runs, and
//! both endpoints listen on `127.0.0.1:0`.
//!
//! # Layout
//!
//! - [`SigningKey`]: an RSA key pair with a `kid`; signs RS256 tokens and shows itself as a JWK.
//! - [`claims`]: the claims Entra puts in app-only (managed identity) and delegated tokens, v1
//!   and v2, to be tweaked by tests one field at a time; [`encode`] and friends assemble tokens,
//!   including broken ones (`none`, HS256, a foreign signature).
//! - [`FakeKeys`]: the keys endpoint, `GET /{tenant}/discovery/v2.0/keys`, with a fetch counter,
//!   key rotation and a failure switch.
//! - [`FakeIdentity`]: App Service's managed-identity endpoint (`IDENTITY_ENDPOINT`, api-version
//!   2019-08-01, `X-IDENTITY-HEADER`), minting tokens signed by a [`SigningKey`], with the error
//!   shapes of the real endpoint (400 with a message and a `correlationId`, a vague 500, slow
//!   answers, 429).

pub mod claims;
pub mod identity;
pub mod keys;
pub mod keys_endpoint;

pub use claims::{encode, encode_hs256, encode_unsigned, unix_now};
pub use identity::{Behaviour, ExpiresOnFormat, FakeIdentity, IdentityRequest, ManagedIdentity};
pub use keys::SigningKey;
pub use keys_endpoint::FakeKeys;

/// The tenant the tests and the lab use (a made-up GUID).
pub const TENANT_ID: &str = "8f1e9a3c-5b2d-4c7e-9f10-2a3b4c5d6e7f";
/// Another tenant, for "token from the wrong tenant".
pub const OTHER_TENANT_ID: &str = "0d9c8b7a-6f5e-4d3c-8b2a-19f8e7d6c5b4";
/// The back end's application ID URI in tests and the lab (the `resource` the front end asks for).
pub const BACKEND_APP_ID_URI: &str = "api://8f1e9a3c-5b2d-4c7e-9f10-2a3b4c5d6e7f/lockdown-backend";
/// The back end's application (client) ID: the audience of v2 tokens.
pub const BACKEND_CLIENT_ID: &str = "3b6f2d1e-8c4a-4f9b-a7e2-5d1c0b9a8f7e";
/// The front end's managed identity: its client ID (`appid`/`azp` in its tokens).
pub const FRONTEND_CLIENT_ID: &str = "c4a8e2f6-1b3d-4e5f-8a9b-0c1d2e3f4a5b";
/// The front end's managed identity: its object (principal) ID (`oid` and `sub`).
pub const FRONTEND_OBJECT_ID: &str = "e7d6c5b4-a392-4180-9f8e-7d6c5b4a3921";
/// The app role the back end requires.
pub const REQUIRED_ROLE: &str = "Backend.Call";
