//! The `backend` binary: read config, set up logging, build state, bind, serve.

use anyhow::Context;
use backend::{AppState, BackendConfig};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = BackendConfig::parse();
    hosting::init_logging(config.host.log_format());
    let state = AppState::from_config(&config)?;
    state.spawn_key_prefetch();
    let addr = config.host.listen_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "backend listening");
    let diag = backend::diag_state(&config)?;
    let app = backend::app(state, diag, config.host.request_timeout());
    hosting::serve(
        listener,
        app,
        hosting::shutdown_signal(),
        config.host.shutdown_timeout(),
    )
    .await?;
    Ok(())
}
