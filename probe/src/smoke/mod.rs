//! `probe smoke`: expectations as code. A suite (TOML) names checks that each run from here or
//! from inside an app (through its `/diag`), do one action — `resolve`, `tcpping` or `http` —
//! and state what must hold, including what must **not** be reachable. Every result carries a
//! verdict, the evidence and a diagnosis in plain words.

pub mod compare;
pub mod config;
pub mod evaluate;
pub mod evidence;
pub mod facts;
pub mod html;
pub mod output;
pub mod report;
pub mod run;

pub use config::{ConfigError, SmokeConfig};
pub use report::{CheckResult, SuiteReport, Verdict};
pub use run::{RunOptions, run};
