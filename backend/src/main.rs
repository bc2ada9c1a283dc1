//! The `backend` binary: read config, set up logging, build state, serve.

use backend::BackendConfig;
use clap::Parser;

// mimalloc rather than the system allocator: a request allocates and frees dozens of small
// buffers across worker threads, where glibc's malloc spent ~12 % of the relay's CPU (see
// BENCHMARKS.md), and its per-thread arenas kept RSS high after a load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = BackendConfig::parse();
    hosting::init_logging(config.host.log_format());
    let built = match backend::build_connected(&config).await {
        Ok(built) => built,
        Err(error) => {
            // One log line (JSON on App Service) rather than anyhow's multi-line report on
            // stderr, which the log stream splits into unrelated lines.
            tracing::error!(error = format!("{error:#}"), "cannot start");
            std::process::exit(1);
        }
    };
    built.state.spawn_key_prefetch();
    let app = backend::app(built.state, built.diag, config.host.request_timeout());
    hosting::run(&config.host, "backend", app).await?;
    Ok(())
}
