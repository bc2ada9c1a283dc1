//! The `probe` binary: parse the command line, run it, exit with its code (0 passed, 1 failed,
//! 2 usage or config error).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    probe::cli::run(probe::cli::Cli::parse()).await
}
