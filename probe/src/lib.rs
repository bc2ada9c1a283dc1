//! The probe tool, for operators: the `probe` CLI (`serve` mounts the [`diag`] library's `/diag`
//! router on its own; `resolve` and `tcpping` run the same diagnostics from this machine) and
//! `probe smoke`, expectations as code, run after every lockdown change, with a verdict, the
//! evidence and a diagnosis per check.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap) and what each verb prints.
//! - [`smoke`]: the suite's TOML ([`smoke::config`]), running checks here or through an app's
//!   `/diag` ([`smoke::run`](mod@smoke::run)), judging outcomes ([`smoke::evaluate`]), and the text, JSON and
//!   JUnit reports ([`smoke::report`]).

pub mod cli;
pub mod smoke;
