//! The settings App Service hands every app (`PORT`, `WEBSITES_PORT`, `WEBSITE_SITE_NAME`,
//! `WEBSITE_INSTANCE_ID`, …), parsed once with clap, and the logging set-up they imply.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use utoipa::ToSchema;

/// The listen port when neither `PORT` nor `WEBSITES_PORT` is set.
pub const DEFAULT_PORT: u16 = 8080;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (what App Service's log stream and Log Analytics want).
    Json,
    /// Human-readable lines for a terminal.
    Text,
}

/// A setting that cannot be used, named by the variable at fault (`AUTH_MODE`, `BACKEND_TOKEN_RESOURCE`, …).
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    /// The variable at fault.
    pub name: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// Settings shared by every lockdown service.
#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    /// Listen port; App Service hands a dynamic one to VNet-integrated Linux containers.
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,
    /// Listen port when `PORT` is unset (App Service custom containers).
    #[arg(long, env = "WEBSITES_PORT")]
    pub websites_port: Option<u16>,
    /// Full `ip:port` to listen on, overriding both ports (local runs and tests; port 0 picks one).
    #[arg(long, env = "LISTEN_ADDR")]
    pub listen_addr: Option<SocketAddr>,
    /// Log format: `json` or `text` [default: json on App Service, text elsewhere].
    #[arg(long, env = "LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// The app's name on App Service (set by the platform).
    #[arg(long, env = "WEBSITE_SITE_NAME")]
    pub site_name: Option<String>,
    /// This instance's id on App Service, also the value of the `ARRAffinity` cookie.
    #[arg(long, env = "WEBSITE_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// How long one request may take before it is answered 503 `request_timeout`.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// How long in-flight requests may drain after SIGTERM (App Service kills after 5 s by default).
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value_t = 4_000)]
    pub shutdown_timeout_ms: u64,
    /// How long a client has to send a request head before its connection is closed (slowloris).
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// How long a connection with no request in flight stays open.
    #[arg(long, env = "IDLE_TIMEOUT_MS", default_value_t = 10_000)]
    pub idle_timeout_ms: u64,
    /// Connections served at once; past it new ones get 503 `too_many_connections` [default:
    /// half the open-file limit, at most 10000].
    #[arg(long, env = "MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
}

impl Default for HostArgs {
    fn default() -> Self {
        Self {
            port: None,
            websites_port: None,
            listen_addr: None,
            log_format: None,
            site_name: None,
            instance_id: None,
            request_timeout_ms: 30_000,
            shutdown_timeout_ms: 4_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 10_000,
            max_connections: None,
        }
    }
}

impl HostArgs {
    /// The address to bind: `LISTEN_ADDR`, else `0.0.0.0:PORT`, else `0.0.0.0:WEBSITES_PORT`,
    /// else `0.0.0.0:8080`.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr.unwrap_or_else(|| {
            let port = self.port.or(self.websites_port).unwrap_or(DEFAULT_PORT);
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
        })
    }

    /// True when the platform's variables say we run on App Service.
    pub fn on_app_service(&self) -> bool {
        self.site_name.is_some()
    }

    /// The log format in force: the explicit one, else json on App Service, else text.
    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or(if self.on_app_service() {
            LogFormat::Json
        } else {
            LogFormat::Text
        })
    }

    /// Who this process is, for responses that must say which instance answered.
    pub fn instance(&self, role: &str) -> Instance {
        Instance {
            site: self
                .site_name
                .clone()
                .unwrap_or_else(|| format!("local-{role}")),
            id: self
                .instance_id
                .clone()
                .unwrap_or_else(|| format!("pid-{}", std::process::id())),
        }
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The bound on draining in-flight requests after SIGTERM.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    /// The limits the server enforces on its clients (a zero timeout counts as 1 ms, a zero cap
    /// as 1: no setting turns a limit off).
    pub fn server_limits(&self) -> crate::server::ServerLimits {
        crate::server::ServerLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms.max(1)),
            max_connections: self
                .max_connections
                .unwrap_or_else(crate::server::default_max_connections)
                .max(1),
            drain_timeout: self.shutdown_timeout(),
        }
    }
}

/// Which app and which instance of it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct Instance {
    /// `WEBSITE_SITE_NAME`, or `local-<role>` off the platform.
    pub site: String,
    /// `WEBSITE_INSTANCE_ID`, or `pid-<pid>` off the platform.
    pub id: String,
}

/// Sets up `tracing` for the process: `RUST_LOG` filter (default `info`), json or text lines.
/// Safe to call more than once (later calls do nothing), so tests and the lab can share it.
pub fn init_logging(format: LogFormat) {
    init_logging_with_default(format, "info");
}

/// As [`init_logging`], with another filter when `RUST_LOG` is unset.
pub fn init_logging_with_default(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry().with(filter);
    let _already_set = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    // Colours for a terminal only: a log file gets plain text.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
            )
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_precedence_follows_app_service() {
        let mut args = HostArgs::default();
        assert_eq!(args.listen_addr(), "0.0.0.0:8080".parse().unwrap());
        args.websites_port = Some(3000);
        assert_eq!(args.listen_addr(), "0.0.0.0:3000".parse().unwrap());
        args.port = Some(5000);
        assert_eq!(args.listen_addr(), "0.0.0.0:5000".parse().unwrap());
        args.listen_addr = Some("127.0.0.1:0".parse().unwrap());
        assert_eq!(args.listen_addr(), "127.0.0.1:0".parse().unwrap());
    }

    #[test]
    fn json_logs_by_default_on_app_service() {
        let mut args = HostArgs::default();
        assert_eq!(args.log_format(), LogFormat::Text);
        args.site_name = Some("app-be".into());
        assert_eq!(args.log_format(), LogFormat::Json);
        args.log_format = Some(LogFormat::Text);
        assert_eq!(args.log_format(), LogFormat::Text);
    }
}
