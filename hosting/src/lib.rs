//! What App Service hands every lockdown app, done once: the listen address, logging, graceful
//! shutdown, the shared error envelope, request ids, client-address parsing (with the
//! service-endpoint IPv6 form decoded), instance identity and the managed identity's tokens.
//!
//! The front end, the back end and the probe server all build on this crate so that they behave
//! the same way on the platform.
//!
//! # Layout
//!
//! - [`host`]: the settings App Service hands every app (`PORT`, site and instance names,
//!   `LOG_FORMAT`), the instance identity and logging set-up.
//! - [`server`]: serving a router (request ids, trace spans, the request timeout, graceful
//!   shutdown on SIGTERM).
//! - [`repeat`]: logging a repeated failure once per window, with a count of the rest.
//! - [`error`]: the one error envelope and the extractors that answer rejected input in it.
//! - [`forwarded`]: parsing `X-Forwarded-For` and `X-Client-IP`.
//! - [`service_endpoint`]: decoding the service-endpoint IPv6 form of a caller (its VNet IPv4).
//! - [`cookie`]: reading one cookie from a request.
//! - [`netclass`]: what kind of address an IP is (private, public, loopback, …).
//! - [`secret`]: a secret that never prints, and the constant-time comparison of secrets.

pub mod cookie;
pub mod error;
pub mod forwarded;
pub mod host;
pub mod identity;
pub mod netclass;
pub mod repeat;
pub mod secret;
pub mod server;
pub mod service_endpoint;

pub use error::{ApiJson, ApiQuery, ErrorBody, ErrorEnvelope, error_response, not_found};
pub use host::{
    ConfigError, HostArgs, Instance, LogFormat, init_logging, init_logging_with_default,
};
pub use netclass::AddressClass;
pub use server::{ServerLimits, run, serve, serve_with_limits, shutdown_signal, with_http_layers};
pub use service_endpoint::{AddressForm, CallerAddr, Membership};
