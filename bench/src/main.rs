//! `lockdown-bench`: the measuring half of `bench/run`. The Python driver starts servers, runs
//! wrk and writes `BENCHMARKS.md`; this binary does what needs lockdown's own code or a tight
//! clock: the loopback DNS and TCP targets both probers hit, exec-to-healthy timing, and the
//! smoke-suite timings against an in-process lab, at the lab's size and at scale. Every subcommand prints one JSON object on
//! stdout, touches loopback only, and stops by itself.

mod scale;
mod smoke;
mod startup;
mod targets;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Measuring helpers for `bench/run` (loopback only).
#[derive(Debug, Parser)]
#[command(name = "lockdown-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the lab's public DNS zone and a TCP sink on loopback until stdin closes, SIGTERM, or
    /// --max-seconds; print their addresses as one JSON line first.
    Targets {
        /// Stop after this many seconds whatever happens.
        #[arg(long, default_value_t = 3_600)]
        max_seconds: u64,
    },
    /// Start a binary --runs times and time exec → first 200 on GET /healthz; read its RSS.
    Startup {
        /// How many starts.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Give up on one start after this long.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// How long to let it sit idle after the first 200 before reading its RSS again.
        #[arg(long, default_value_t = 300)]
        settle_ms: u64,
        /// Extra environment for the binary (`NAME=VALUE`, repeatable); LISTEN_ADDR is set here.
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// Append the binary's output here (default: discarded).
        #[arg(long)]
        log: Option<PathBuf>,
        /// The binary and its arguments.
        #[arg(required = true, last = true)]
        command: Vec<String>,
    },
    /// Start the lab in-process and time its default suite, a 20-check passing suite and a suite
    /// whose checks time out, --rounds times each, alternating.
    Smoke {
        /// Rounds of each suite.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Pause between two suite runs (the front end's /diag refills its rate bucket).
        #[arg(long, default_value_t = 2_500)]
        pause_ms: u64,
    },
    /// Start the lab in-process with --instances per app and time a generated suite of
    /// --checks checks pinned round-robin over the front end's instances; verify every result
    /// and report the peak RSS.
    Scale {
        /// Checks in the generated suite.
        #[arg(long, default_value_t = 100)]
        checks: usize,
        /// Instances per app.
        #[arg(long, default_value_t = 2)]
        instances: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Targets { max_seconds } => targets::run(max_seconds),
        Command::Startup {
            runs,
            timeout_ms,
            settle_ms,
            env,
            log,
            command,
        } => startup::run(&startup::Options {
            runs,
            timeout_ms,
            settle_ms,
            env,
            log,
            command,
        }),
        Command::Smoke { rounds, pause_ms } => smoke::run(rounds, pause_ms),
        Command::Scale { checks, instances } => scale::run(checks, instances),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("lockdown-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
