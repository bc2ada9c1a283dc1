//! lockdown's diagnostics library, mounted by every app: network diagnostics that run inside the
//! app's own sandbox, so they use the app's own outbound path — resolve (the CNAME chain, private
//! or public), TCP ping, an HTTP check that recognises App Service's own answers, and the network
//! facts of the instance — behind a guarded `/diag` router. The apps also take their resolver and
//! outbound connections from here, so `/diag` tells the truth about what the app itself does.
//!
//! # Layout
//!
//! - [`api`]: the `/diag` router, its token, limits and state.
//! - [`policy`], [`target`]: which targets `/diag` may reach, and parsing what users send.
//! - [`azure`]: the catalogue of Azure services: host suffix, `privatelink` zone, ports, how to
//!   prove each; whether a lookup came through the right zone.
//! - [`dns`]: the resolver (no cache for diagnostics), the CNAME walk, the resolve report.
//! - [`tcpping`]: TCP connects to exactly the resolved address.
//! - [`tlscheck`]: the handshake check: TLS with the public name as SNI, PostgreSQL's
//!   `SSLRequest` first; the chain, its names and expiry, and why it does not verify.
//! - [`kudu`]: the text of Kudu's `tcpping` and `nameresolver` that Microsoft's portal reads.
//! - [`httpcheck`]: one HTTP request with phase timings and App Service's answers recognised.
//! - [`appservice`]: what App Service's own refusals look like (status line, headers, pages).
//! - [`outbound`]: outbound sockets bound to the integration-subnet source, the HTTP client.
//! - [`envfacts`]: the instance's network facts (`/diag/env`), never any other variable.
//! - [`diagnosis`]: the one diagnosis vocabulary: every code, its meaning and its next step.
//! - [`error`]: the `/diag` error type and its envelope.
//! - [`failure`]: reading an error chain: the innermost cause, the `io` kind, a wrapped type.
//! - [`forward`]: `/diag/backend/…`, a diagnostic run in the app's own back end, through it.

pub mod api;
pub mod appservice;
pub mod azure;
pub mod diagnosis;
pub mod dns;
pub mod envfacts;
pub mod error;
pub mod failure;
pub mod forward;
pub mod httpcheck;
pub mod kudu;
pub mod outbound;
pub mod policy;
pub mod target;
pub mod tcpping;
pub mod tlscheck;

pub use api::{DiagArgs, DiagState, router};
pub use appservice::{PlatformAnswer, classify};
pub use diagnosis::Code;
pub use dns::{DnsArgs, DnsResolver, QueryType, Resolution};
pub use envfacts::EnvFacts;
pub use error::DiagError;
pub use outbound::{OutboundArgs, http_client_builder};
pub use policy::Policy;
pub use tcpping::{TcpPingReport, TcpPingRequest, tcp_ping};
