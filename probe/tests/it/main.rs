//! The probe tool's integration tests, one binary: the CLI's contract and `probe smoke` against
//! real listeners and DNS servers, all on loopback.

mod cli;
mod smoke;
