//! The back end's PostgreSQL hop: `DATABASE_URL` read and checked, and one connect done the way
//! the app's other outbound calls are (the name through the app's resolver, the socket from
//! `OUTBOUND_SOURCE_ADDR`, exactly the checked address), then TLS with the server's certificate
//! and host name verified, then the start-up handshake. Each phase fails with its own
//! [`DbFailureKind`], so a failure reads as a diagnosis rather than a driver's message.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diag::diagnosis::Code;
use diag::dns::DnsResolver;
use diag::failure::FailureKind;
use hosting::netclass::AddressClass;
use hosting::secret::Secret;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;
use tokio_postgres::Client;
use tokio_postgres::tls::MakeTlsConnect;
use url::Url;

use crate::config::ConfigError;

/// The default PostgreSQL port.
pub const DEFAULT_PORT: u16 = 5432;

/// How the TLS of the database connection is set (`sslmode` in `DATABASE_URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// `verify-full` (the default): TLS, the chain checked against `roots`, the certificate
    /// must name the host of the URL.
    VerifyFull {
        /// The trusted roots.
        roots: Roots,
    },
    /// `disable`: plain TCP, for a local server only (logged loudly).
    Disable,
}

/// Where the trusted roots come from (`sslrootcert` in `DATABASE_URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The platform's store (absent or `sslrootcert=system`): Azure Database for PostgreSQL's
    /// certificates chain to public roots that it holds.
    System,
    /// Only the CA certificates of this PEM file.
    File(PathBuf),
}

/// Which password the back end presents (`DB_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DbAuthName {
    /// The password of `DATABASE_URL` (local use).
    Password,
    /// A Microsoft Entra token of the app's managed identity, as the password.
    Entra,
}

impl DbAuthName {
    /// The setting's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Entra => "entra",
        }
    }
}

/// `DATABASE_URL`, read and checked.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// The server's host name (or address, with `sslmode=disable` only).
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// The role to log in as (with Entra: the managed identity's role name).
    pub user: String,
    /// The password of the URL, if any.
    pub password: Option<Secret>,
    /// The database.
    pub dbname: String,
    /// TLS.
    pub tls: TlsMode,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("dbname", &self.dbname)
            .field("tls", &self.tls)
            .finish()
    }
}

impl DatabaseSettings {
    /// Reads `postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?sslmode=…&sslrootcert=…]`.
    ///
    /// Refused: a scheme other than `postgres`/`postgresql`, no host, no user, no database,
    /// `sslmode` other than `verify-full` (default) or `disable` (`require` and `verify-ca` check
    /// nothing of the name: the connection could go anywhere), and, with `verify-full`, a host
    /// the server's certificate cannot name: an IP address or a `privatelink` name.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError {
            name: "DATABASE_URL",
            message,
        };
        // Never quote the URL itself in an error: it may carry the password.
        let url = Url::parse(raw.trim()).map_err(|e| error(format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(error(format!(
                "the scheme is {:?}; write postgres://USER@HOST:5432/DBNAME",
                url.scheme()
            )));
        }
        let host = match url.host() {
            Some(url::Host::Domain(name)) => name.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(error("no host".into())),
        };
        let user = percent_decode(url.username());
        if user.is_empty() {
            return Err(error(
                "no user: write postgres://USER@HOST:5432/DBNAME (with DB_AUTH=entra, the managed identity's role name)".into(),
            ));
        }
        let password = url.password().map(|p| Secret::from(percent_decode(p)));
        let dbname = percent_decode(url.path().trim_start_matches('/'));
        if dbname.is_empty() || dbname.contains('/') {
            return Err(error(
                "no database name: write postgres://USER@HOST:5432/DBNAME".into(),
            ));
        }
        let mut sslmode = "verify-full".to_owned();
        let mut roots = Roots::System;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" => sslmode = value.into_owned(),
                "sslrootcert" if value == "system" => roots = Roots::System,
                "sslrootcert" => roots = Roots::File(PathBuf::from(value.as_ref())),
                other => {
                    return Err(error(format!(
                        "unknown parameter {other:?} (known: sslmode, sslrootcert)"
                    )));
                }
            }
        }
        let tls = match sslmode.as_str() {
            "verify-full" => TlsMode::VerifyFull { roots },
            "disable" => TlsMode::Disable,
            other => {
                return Err(error(format!(
                    "sslmode={other} is refused: it does not check that the certificate names the server, so the connection could go anywhere; leave sslmode out (verify-full) or, for a local server without TLS, write sslmode=disable"
                )));
            }
        };
        let settings = Self {
            port: url.port().unwrap_or(DEFAULT_PORT),
            host,
            user,
            password,
            dbname,
            tls,
        };
        settings.check_name()?;
        Ok(settings)
    }

    /// With `verify-full`, the host must be a name the server's certificate carries: Azure's
    /// certificate names `NAME.postgres.database.azure.com`, never an address nor the
    /// `privatelink` name (those resolve, but TLS then fails on every connect).
    fn check_name(&self) -> Result<(), ConfigError> {
        if self.tls == TlsMode::Disable {
            return Ok(());
        }
        // One test for every caller (`/diag/tls`, smoke checks, the front end's BACKEND_URL).
        let Some(called_by) = diag::azure::called_by(&self.host) else {
            return Ok(());
        };
        let instead = match &called_by {
            diag::azure::CalledBy::PrivatelinkName {
                public_name: Some(public),
            } => format!("Use the server's public name ({public})"),
            _ => "Use the server's public name (NAME.postgres.database.azure.com)".to_owned(),
        };
        let what = match called_by {
            diag::azure::CalledBy::Address { .. } => "an address",
            diag::azure::CalledBy::PrivatelinkName { .. } => "a privatelink name",
        };
        Err(ConfigError {
            name: "DATABASE_URL",
            message: format!(
                "the host {} is {what}: the server's certificate cannot name it, so TLS verification (sslmode=verify-full) fails on every connect. {instead}, which resolves to the private endpoint through the privatelink zone",
                self.host
            ),
        })
    }

    /// The URL's shape for logs and reports, without the password.
    pub fn redacted(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{} (sslmode={})",
            self.user,
            self.host,
            self.port,
            self.dbname,
            match self.tls {
                TlsMode::VerifyFull { .. } => "verify-full",
                TlsMode::Disable => "disable",
            }
        )
    }
}

/// Decodes `%XX` escapes of a URL's user, password or path (a `+` stays a `+`, unlike in a
/// query string).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the password of each new connection comes from.
#[derive(Clone)]
pub enum Credential {
    /// A fixed password (or none: trust or certificate authentication).
    Password(Option<Secret>),
    /// A token fetched (and renewed before it expires) for each new connection.
    Token(Arc<dyn TokenProvider>),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Password(_) => "Credential::Password(***)",
            Self::Token(_) => "Credential::Token",
        })
    }
}

/// Hands out a current access token; implemented by the identity-endpoint client.
pub trait TokenProvider: Send + Sync {
    /// A token valid for at least the next few minutes, or why there is none.
    fn token(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<Secret, String>> + Send + '_>>;
}

/// The managed identity's tokens as database passwords (`DB_AUTH=entra`): the identity
/// endpoint's client shared with the front end ([`hosting::identity`]), which renews a token
/// ahead of its expiry. The pool asks for the password at every new connection, so a new
/// connection never logs in with an expired token (a connection keeps working past its login
/// token's expiry: the server checks the token at login only).
pub struct IdentityTokens(pub Arc<hosting::identity::TokenSource>);

impl fmt::Debug for IdentityTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdentityTokens")
            .field(&self.0.resource())
            .finish()
    }
}

impl TokenProvider for IdentityTokens {
    fn token(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<Secret, String>> + Send + '_>> {
        Box::pin(async move {
            // The error names the endpoint's answer and correlationId, never a token.
            self.0
                .token()
                .await
                .map(|token| token.secret())
                .map_err(|e| e.to_string())
        })
    }
}

/// Why a connect to the database failed, phase by phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbFailureKind {
    /// The name did not resolve.
    Dns,
    /// The TCP connect timed out.
    Timeout,
    /// The TCP connect was refused.
    Refused,
    /// No route, or the source address is not usable.
    Unreachable,
    /// The certificate does not name the host.
    TlsName,
    /// Another TLS failure (untrusted chain, expired, protocol, no TLS on the server).
    Tls,
    /// The server refused the login (password, token, `pg_hba.conf`, firewall rule).
    Auth,
    /// No token could be had for the login.
    Token,
    /// Anything else (a query failed, the server closed the connection, the time ran out).
    Other,
}

/// A failed database operation: its kind and what was said, never the password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DbFailure {
    /// The phase that failed.
    pub kind: DbFailureKind,
    /// What failed, in words.
    pub message: String,
    /// The address that was tried, when the name resolved.
    pub address: Option<SocketAddr>,
}

impl DbFailure {
    fn new(kind: DbFailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            address: None,
        }
    }

    /// The diagnosis code: a failure after the name resolved to a public address reads as
    /// `database_resolves_public` (the usual cause: the privatelink zone is not linked, and
    /// the server's public side refuses or drops the call).
    pub fn code(&self) -> Code {
        let public = self
            .address
            .is_some_and(|a| AddressClass::of(a.ip()) == AddressClass::Public);
        match self.kind {
            DbFailureKind::Dns => Code::DatabaseDnsFailure,
            DbFailureKind::Token => Code::DatabaseTokenUnavailable,
            DbFailureKind::TlsName => Code::DatabaseTlsNameMismatch,
            _ if public => Code::DatabaseResolvesPublic,
            DbFailureKind::Timeout | DbFailureKind::Unreachable => Code::DatabaseConnectTimeout,
            DbFailureKind::Refused => Code::DatabaseConnectRefused,
            DbFailureKind::Tls => Code::DatabaseTlsFailure,
            DbFailureKind::Auth => Code::DatabaseAuthRefused,
            DbFailureKind::Other => Code::DatabaseError,
        }
    }
}

/// What one connect saw: the hop as the path report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectFacts {
    /// The address connected to.
    pub address: SocketAddr,
    /// Its class.
    pub class: AddressClass,
    /// TLS with the certificate and host name verified.
    pub tls_verified: bool,
    /// Name lookup, TCP connect, TLS and login, in milliseconds.
    pub connect_ms: u64,
}

/// Opens connections to the database: one per call, for the pool and for readiness.
pub struct Connector {
    settings: DatabaseSettings,
    resolver: DnsResolver,
    source: Option<IpAddr>,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    credential: Credential,
    timeout: Duration,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("settings", &self.settings)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector for `settings`: names resolved by `resolver`, sockets bound to `source`,
    /// each connect (lookup, TCP, TLS, login) bounded by `timeout`. Fails when the roots cannot
    /// be read.
    pub fn new(
        settings: DatabaseSettings,
        resolver: DnsResolver,
        source: Option<IpAddr>,
        credential: Credential,
        timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let tls = match &settings.tls {
            TlsMode::Disable => None,
            TlsMode::VerifyFull { roots } => Some(tokio_postgres_rustls::MakeRustlsConnect::new(
                tls_config(roots).map_err(|message| ConfigError {
                    name: "DATABASE_URL",
                    message,
                })?,
            )),
        };
        Ok(Self {
            settings,
            resolver,
            source,
            tls,
            credential,
            timeout,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &DatabaseSettings {
        &self.settings
    }

    /// The time limit of one connect.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One new connection, its driver task spawned, with what the connect saw.
    pub async fn connect(&self) -> Result<(Client, ConnectFacts), DbFailure> {
        let started = Instant::now();
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.connect_phases(started)).await {
            Ok(result) => result,
            Err(_) => Err(DbFailure::new(
                DbFailureKind::Timeout,
                format!(
                    "no connection to {} within {} ms",
                    self.settings.host,
                    timeout.as_millis()
                ),
            )),
        }
    }

    async fn connect_phases(&self, started: Instant) -> Result<(Client, ConnectFacts), DbFailure> {
        let host = &self.settings.host;
        let ips = self.resolver.lookup_ip(host).await.map_err(|e| {
            DbFailure::new(
                DbFailureKind::Dns,
                format!("{host} did not resolve: {}", e.message),
            )
        })?;
        let ip = ips[0];
        let address = SocketAddr::new(ip, self.settings.port);
        let at = |mut failure: DbFailure| {
            failure.address = Some(address);
            failure
        };
        let stream = diag::outbound::connect_tcp(address, self.source, self.timeout)
            .await
            .map_err(|e| {
                let kind = match e.kind {
                    FailureKind::Refused => DbFailureKind::Refused,
                    FailureKind::Timeout => DbFailureKind::Timeout,
                    _ => DbFailureKind::Unreachable,
                };
                at(DbFailure::new(
                    kind,
                    format!("TCP connect to {address} ({host}) failed: {}", e.message),
                ))
            })?;
        let password = match &self.credential {
            Credential::Password(password) => password.clone(),
            Credential::Token(provider) => Some(provider.token().await.map_err(|e| {
                at(DbFailure::new(
                    DbFailureKind::Token,
                    format!("no token for the database login: {e}"),
                ))
            })?),
        };
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(self.settings.port)
            .user(&self.settings.user)
            .dbname(&self.settings.dbname)
            .application_name("lockdown-backend");
        if let Some(password) = &password {
            config.password(password.expose());
        }
        let client = match &self.tls {
            Some(make) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let mut make = make.clone();
                let tls = <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<
                    tokio::net::TcpStream,
                >>::make_tls_connect(&mut make, host)
                .map_err(|e| at(DbFailure::new(DbFailureKind::Tls, e.to_string())))?;
                let (client, connection) = config
                    .connect_raw(stream, tls)
                    .await
                    .map_err(|e| at(classify(&e, host)))?;
                spawn_driver(connection);
                client
            }
            None => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, connection) = config
                    .connect_raw(stream, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| at(classify(&e, host)))?;
                spawn_driver(connection);
                client
            }
        };
        Ok((
            client,
            ConnectFacts {
                address,
                class: AddressClass::of(ip),
                tls_verified: self.tls.is_some(),
                connect_ms: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
            },
        ))
    }
}

fn spawn_driver<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %error, "database connection closed");
        }
    });
}

/// Reads a failed connect: a rustls error somewhere in the chain is TLS (a name mismatch
/// apart), a server error of class 28 (invalid authorisation) is a refused login.
fn classify(error: &tokio_postgres::Error, host: &str) -> DbFailure {
    if let Some(db) = error.as_db_error() {
        let kind = if db.code().code().starts_with("28") {
            DbFailureKind::Auth
        } else {
            DbFailureKind::Other
        };
        // The server's message names the role, never the password.
        return DbFailure::new(kind, format!("the server refused: {}", db.message()));
    }
    let rustls_error = diag::failure::chain(error).find_map(|e| e.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        )) => DbFailure::new(
            DbFailureKind::TlsName,
            format!("the server's certificate does not name {host}"),
        ),
        Some(other) => DbFailure::new(DbFailureKind::Tls, format!("TLS failed: {other}")),
        None if error.to_string().contains("TLS") || error.to_string().contains("tls") => {
            DbFailure::new(
                DbFailureKind::Tls,
                format!("TLS failed: {}", diag::failure::root_cause(error)),
            )
        }
        None => DbFailure::new(
            DbFailureKind::Other,
            format!(
                "the connection failed: {}",
                diag::failure::root_cause(error)
            ),
        ),
    }
}

/// The rustls configuration: the aws-lc-rs provider, and the platform's roots or a PEM file's.
fn tls_config(roots: &Roots) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match roots {
        Roots::System => {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| format!("the platform's trust store: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
        Roots::File(path) => {
            let mut store = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                store
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
            if store.is_empty() {
                return Err(format!(
                    "sslrootcert {} holds no certificate",
                    path.display()
                ));
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_read_with_verify_full_by_default() {
        let s = DatabaseSettings::parse(
            "postgres://app%40id:p%40s+s@pg-lockdown.postgres.database.azure.com/items",
        )
        .unwrap();
        assert_eq!(s.host, "pg-lockdown.postgres.database.azure.com");
        assert_eq!(s.port, 5432);
        assert_eq!(s.user, "app@id");
        assert_eq!(s.password.as_ref().unwrap().expose(), "p@s+s");
        assert_eq!(s.dbname, "items");
        assert_eq!(
            s.tls,
            TlsMode::VerifyFull {
                roots: Roots::System
            }
        );
        assert!(!format!("{s:?}").contains("p@s+s"));
        assert!(!s.redacted().contains("p@s+s"));
        let file = DatabaseSettings::parse(
            "postgresql://u@db.lockdown.test:6543/d?sslrootcert=/tmp/ca.pem",
        )
        .unwrap();
        assert_eq!(file.port, 6543);
        assert_eq!(
            file.tls,
            TlsMode::VerifyFull {
                roots: Roots::File("/tmp/ca.pem".into())
            }
        );
        let plain = DatabaseSettings::parse("postgres://u@127.0.0.1/d?sslmode=disable").unwrap();
        assert_eq!(plain.tls, TlsMode::Disable);
    }

    #[test]
    fn names_the_certificate_cannot_match_are_refused_at_start_up() {
        for (url, instead) in [
            (
                "postgres://u@10.0.2.4/d",
                "NAME.postgres.database.azure.com",
            ),
            (
                "postgres://u@[fd00::4]/d",
                "NAME.postgres.database.azure.com",
            ),
            (
                "postgres://u@pg-lockdown.privatelink.postgres.database.azure.com/d",
                // The catalogue gives the public name of a privatelink name.
                "pg-lockdown.postgres.database.azure.com",
            ),
        ] {
            let error = DatabaseSettings::parse(url).unwrap_err();
            assert_eq!(error.name, "DATABASE_URL");
            assert!(
                error
                    .message
                    .contains(&format!("Use the server's public name ({instead})")),
                "{url}: {}",
                error.message
            );
        }
    }

    #[test]
    fn weak_or_unknown_settings_are_refused_without_quoting_the_password() {
        for (url, says) in [
            ("mysql://u:secret@h/d", "scheme"),
            ("postgres://h/d", "no user"),
            ("postgres://u:secret@h", "no database"),
            ("postgres://u:secret@h/d?sslmode=require", "sslmode=require"),
            (
                "postgres://u:secret@h/d?sslmode=verify-ca",
                "sslmode=verify-ca",
            ),
            ("postgres://u:secret@h/d?sslmode=prefer", "sslmode=prefer"),
            ("postgres://u:secret@h/d?options=x", "unknown parameter"),
        ] {
            let error = DatabaseSettings::parse(url).unwrap_err();
            assert!(error.message.contains(says), "{url}: {}", error.message);
            assert!(
                !error.message.contains("secret"),
                "{url}: {}",
                error.message
            );
        }
    }

    #[test]
    fn failures_map_to_the_database_codes() {
        let public: SocketAddr = "20.30.40.50:5432".parse().unwrap();
        let private: SocketAddr = "10.0.2.4:5432".parse().unwrap();
        let failure = |kind, address| DbFailure {
            kind,
            message: String::new(),
            address,
        };
        for (kind, address, code) in [
            (DbFailureKind::Dns, None, Code::DatabaseDnsFailure),
            (
                DbFailureKind::Timeout,
                Some(private),
                Code::DatabaseConnectTimeout,
            ),
            (
                DbFailureKind::Timeout,
                Some(public),
                Code::DatabaseResolvesPublic,
            ),
            (
                DbFailureKind::Refused,
                Some(private),
                Code::DatabaseConnectRefused,
            ),
            (
                DbFailureKind::TlsName,
                Some(public),
                Code::DatabaseTlsNameMismatch,
            ),
            (DbFailureKind::Tls, Some(private), Code::DatabaseTlsFailure),
            (
                DbFailureKind::Auth,
                Some(private),
                Code::DatabaseAuthRefused,
            ),
            (
                DbFailureKind::Auth,
                Some(public),
                Code::DatabaseResolvesPublic,
            ),
            (
                DbFailureKind::Token,
                Some(private),
                Code::DatabaseTokenUnavailable,
            ),
            (DbFailureKind::Other, Some(private), Code::DatabaseError),
        ] {
            assert_eq!(failure(kind, address).code(), code, "{kind:?} {address:?}");
        }
    }
}
