//! The probe's integration tests, one binary: real DNS servers, listeners and `/diag` servers,
//! all on loopback.

mod cli;
mod diag;
mod dns;
mod guard;
mod helpers;
mod http;
mod smoke;
mod tcpping;
