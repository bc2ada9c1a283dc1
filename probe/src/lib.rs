//! lockdown's probe: network diagnostics that run inside the app's own sandbox, so they use the
//! app's own outbound path — resolve (the CNAME chain, private or public), TCP ping, an HTTP check
//! that recognises App Service's 403 pages, and the network facts of the instance — behind a
//! guarded `/diag` router that the front end, the back end and `probe serve` mount, plus the
//! `probe` CLI, and `probe smoke`: expectations as code, run after every lockdown change.

pub mod appservice;
pub mod cli;
pub mod diag;
pub mod dns;
pub mod envfacts;
pub mod error;
pub mod httpcheck;
pub mod outbound;
pub mod policy;
pub mod smoke;
pub mod target;
pub mod tcpping;

pub use appservice::{AppServiceBlock, classify};
pub use diag::{DiagArgs, DiagState, router};
pub use dns::{DnsArgs, DnsResolver, QueryType, Resolution};
pub use envfacts::EnvFacts;
pub use error::DiagError;
pub use outbound::{OutboundArgs, http_client_builder};
pub use policy::Policy;
pub use tcpping::{TcpPingReport, TcpPingRequest, tcp_ping};
