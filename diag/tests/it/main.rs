//! The diag library's integration tests, one binary: real DNS servers, listeners and `/diag`
//! servers, all on loopback.

mod diag;
mod dns;
mod forward;
mod guard;
mod http;
mod kudu;
mod tcpping;
mod tls;
