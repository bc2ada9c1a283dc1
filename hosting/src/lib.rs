//! What App Service hands every lockdown app, done once: the listen address, logging, graceful
//! shutdown, the shared error envelope, request ids, client-address parsing (with the
//! service-endpoint IPv6 form decoded) and instance identity.
//!
//! The front end, the back end and the probe server all build on this crate so that they behave
//! the same way on the platform.

pub mod error;
pub mod forwarded;
pub mod host;
pub mod netclass;
pub mod secret;
pub mod server;
pub mod service_endpoint;

pub use error::{ApiJson, ApiQuery, ErrorBody, ErrorEnvelope, error_response, not_found};
pub use host::{
    ConfigError, HostArgs, Instance, LogFormat, init_logging, init_logging_with_default,
};
pub use netclass::AddressClass;
pub use server::{run, serve, shutdown_signal, with_http_layers};
pub use service_endpoint::{AddressForm, CallerAddr, Membership};
