//! The `probe` binary: parse the command line, run it, exit with its code (0 passed, 1 failed,
//! 2 usage or config error).

use std::process::ExitCode;

use clap::Parser;

// mimalloc rather than the system allocator: a request allocates and frees dozens of small
// buffers across worker threads, where glibc's malloc spent ~12 % of the relay's CPU (see
// BENCHMARKS.md), and its per-thread arenas kept RSS high after a load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    probe::cli::run(probe::cli::Cli::parse()).await
}
