//! The `frontend` binary: read config, set up logging, build state, bind, serve.

use anyhow::Context;
use clap::Parser;
use frontend::FrontendConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = FrontendConfig::parse();
    hosting::init_logging(config.host.log_format());
    let built = frontend::build(&config)?;
    let addr = config.host.listen_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "frontend listening");
    let app = frontend::app(built.state, built.diag, config.host.request_timeout());
    hosting::serve(
        listener,
        app,
        hosting::shutdown_signal(),
        config.host.shutdown_timeout(),
    )
    .await?;
    Ok(())
}
