//! The `frontend` binary: read config, set up logging, build state, serve.

use clap::Parser;
use frontend::FrontendConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = FrontendConfig::parse();
    hosting::init_logging(config.host.log_format());
    let built = frontend::build(&config)?;
    let app = frontend::app(built.state, built.diag, config.host.request_timeout());
    hosting::run(&config.host, "frontend", app).await?;
    Ok(())
}
