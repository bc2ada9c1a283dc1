//! The protocol handshake check (`/diag/tls`, `probe tls`, the smoke suite's `tls` checks):
//! resolve once with the app's resolver, check the address against the target policy, connect to
//! exactly that address from the app's outbound source, then prove what answers — a TLS
//! handshake with the service's public name as SNI, or for PostgreSQL its `SSLRequest`, the
//! server's `S`, then TLS — without sending anything else (no login, no request). The report
//! carries the certificate chain (subjects, issuers, names, expiry), whether it verifies and
//! why not, each failure with its diagnosis code.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::azure::{CalledBy, Protocol, ServiceView, called_by};
use crate::diagnosis::Code;
use crate::dns::{DnsResolver, round_ms};
use crate::failure::FailureKind;
use crate::outbound::connect_tcp;
use crate::policy::{Denied, Policy};
use crate::target::{Host, InputError, parse_bounded, parse_host, parse_port, validate_dns_name};

/// Default time for the whole check (lookup excluded), in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Longest time for the whole check, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 10_000;
/// The port of a host the catalogue does not know.
pub const DEFAULT_PORT: u16 = 443;
/// PostgreSQL's `SSLRequest`: length 8, the code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// A validated handshake check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCheckRequest {
    /// The host to connect to (IPs normalised).
    pub host: Host,
    /// The port.
    pub port: u16,
    /// The name sent as SNI and verified against the certificate: `sni=` when given, else the
    /// host (none for an address).
    pub sni: Option<String>,
    /// `tls` or `postgres`.
    pub protocol: Protocol,
    /// Time for connect and handshake together.
    pub timeout: Duration,
}

impl TlsCheckRequest {
    /// Validates the parameters: the port defaults to the catalogued service's first (else 443);
    /// the protocol to `postgres` for a PostgreSQL port (the catalogue's, or 5432/6432 of a name
    /// it does not know), else `tls`; `timeout_ms` 1–10000 (default 5000).
    pub fn parse(
        host: &str,
        port: Option<&str>,
        sni: Option<&str>,
        protocol: Option<&str>,
        timeout_ms: Option<&str>,
    ) -> Result<Self, InputError> {
        let host = parse_host(host)?;
        let service = host.name().and_then(crate::azure::lookup);
        let port = match port {
            Some(port) => parse_port(port)?,
            None => service.map_or(DEFAULT_PORT, |m| m.service.default_port()),
        };
        let protocol = match protocol {
            Some("tls") => Protocol::Tls,
            Some("postgres") => Protocol::Postgres,
            Some(other) => return Err(InputError::InvalidProtocol(crate::target::truncate(other))),
            None => match service.map(|m| m.service.protocol_on(port)) {
                Some(Protocol::Postgres) => Protocol::Postgres,
                None if matches!(port, 5432 | 6432) => Protocol::Postgres,
                _ => Protocol::Tls,
            },
        };
        let sni = match sni {
            Some(sni) => Some(validate_dns_name(sni)?),
            None => host.name().map(str::to_owned),
        };
        let timeout_ms = parse_bounded(
            "timeout_ms",
            timeout_ms,
            DEFAULT_TIMEOUT_MS,
            1,
            MAX_TIMEOUT_MS,
        )?;
        Ok(Self {
            host,
            port,
            sni,
            protocol,
            timeout: Duration::from_millis(timeout_ms),
        })
    }

    /// The longest the name's lookup can take with `resolver` (zero for an IP address).
    pub fn lookup_limit(&self, resolver: &DnsResolver) -> Duration {
        match self.host {
            Host::Ip(_) => Duration::ZERO,
            Host::Name(_) => resolver.lookup_ip_limit(),
        }
    }
}

/// The roots a handshake check verifies against: the platform's store (as the HTTP check and
/// reqwest use), plus extra CA certificates (a test CA, a private CA of your own).
pub fn tls_verifier(
    extra_roots: Vec<CertificateDer<'static>>,
) -> Result<Arc<dyn ServerCertVerifier>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = if extra_roots.is_empty() {
        rustls_platform_verifier::Verifier::new(provider)?
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider)?
    };
    Ok(Arc::new(verifier))
}

/// What was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsTarget {
    /// The host as asked.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The address connected to, when the name resolved.
    pub ip: Option<IpAddr>,
    /// The local address the kernel chose.
    pub local_addr: Option<SocketAddr>,
    /// The name sent as SNI and verified (null for an address without `sni`).
    pub sni: Option<String>,
}

/// One certificate of the chain the server sent, leaf first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateView {
    /// The subject's distinguished name.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The subject alternative names (DNS names, and addresses as text).
    pub names: Vec<String>,
    /// Start of validity (RFC 3339, UTC).
    pub not_before: String,
    /// End of validity (RFC 3339, UTC).
    pub not_after: String,
    /// Whole days until `not_after` (negative once expired).
    pub days_left: i64,
}

/// Why a chain did not verify (`verify_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyError {
    /// The certificate does not name the SNI.
    NameMismatch,
    /// A certificate of the chain has expired.
    Expired,
    /// A certificate of the chain is not valid yet.
    NotYetValid,
    /// The chain does not lead to a trusted root.
    UntrustedRoot,
    /// Revoked, bad signature, wrong usage, …
    Other,
}

impl VerifyError {
    fn of(error: &rustls::Error) -> Self {
        match error {
            rustls::Error::InvalidCertificate(e) => match e {
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => Self::NameMismatch,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    Self::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    Self::NotYetValid
                }
                CertificateError::UnknownIssuer => Self::UntrustedRoot,
                _ => Self::Other,
            },
            _ => Self::Other,
        }
    }

    /// The diagnosis code.
    pub const fn code(self) -> Code {
        match self {
            Self::NameMismatch => Code::TlsNameMismatch,
            Self::Expired | Self::NotYetValid => Code::TlsExpired,
            Self::UntrustedRoot => Code::TlsUntrusted,
            Self::Other => Code::TlsFailure,
        }
    }
}

/// A failed step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsCheckError {
    /// `dns`, `denied`, `refused`, `timeout`, `unreachable` or `tls` (the handshake, or
    /// PostgreSQL's answer before it).
    pub kind: FailureKind,
    /// What happened.
    pub message: String,
}

/// Phase timings in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsTimings {
    /// Name resolution (0 for an address).
    pub dns: Option<f64>,
    /// TCP connect.
    pub connect: Option<f64>,
    /// PostgreSQL's `SSLRequest` and its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_request: Option<f64>,
    /// The TLS handshake.
    pub handshake: Option<f64>,
    /// The whole check.
    pub total: f64,
}

/// The `/diag/tls` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsCheckReport {
    /// What was checked.
    pub target: TlsTarget,
    /// `tls` or `postgres`.
    pub protocol: Protocol,
    /// The catalogued Azure service of the host, when it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceView>,
    /// True when the handshake completed and the chain verified for the SNI.
    pub ok: bool,
    /// For `postgres`: the server's one-byte answer to `SSLRequest` (`S`, `N`), when one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_answer: Option<String>,
    /// The negotiated TLS version (`TLSv1_3`), when the handshake completed.
    pub tls_version: Option<String>,
    /// True when the chain verified for the SNI.
    pub verified: bool,
    /// Why it did not, when the server's certificate was judged.
    pub verify_error: Option<VerifyError>,
    /// The verifier's own words.
    pub verify_message: Option<String>,
    /// The chain the server sent, leaf first (empty when none came).
    pub certificates: Vec<CertificateView>,
    /// The host is an address or a `privatelink` name: no certificate names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub called_by: Option<CalledBy>,
    /// Timings.
    pub timings_ms: TlsTimings,
    /// The failed step.
    pub error: Option<TlsCheckError>,
    /// The diagnosis, when not ok.
    pub code: Option<Code>,
    /// The next step, when not ok.
    pub hint: Option<String>,
    /// The policy's refusal, when the address was denied (then nothing was sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied: Option<Denied>,
}

impl TlsCheckReport {
    /// A short text for a person (`format=text`, the CLI's default).
    pub fn to_text(&self) -> String {
        let t = &self.target;
        let mut out = format!(
            "{} handshake with {}:{}{}{}\n",
            self.protocol.as_str(),
            t.host,
            t.port,
            t.ip.map(|ip| format!(" ({ip})")).unwrap_or_default(),
            t.sni
                .as_ref()
                .map(|s| format!(", SNI {s}"))
                .unwrap_or_default()
        );
        if let Some(service) = &self.service {
            out.push_str(&format!("Service: {}\n", service.name));
        }
        if let Some(answer) = &self.postgres_answer {
            out.push_str(&format!("PostgreSQL answered SSLRequest with {answer:?}\n"));
        }
        if let Some(version) = &self.tls_version {
            out.push_str(&format!("Negotiated {version}\n"));
        }
        for (i, cert) in self.certificates.iter().enumerate() {
            out.push_str(&format!(
                "Certificate {i}: {}\n  issuer: {}\n  names: {}\n  valid until {} ({} days left)\n",
                cert.subject,
                cert.issuer,
                if cert.names.is_empty() {
                    "(none)".to_owned()
                } else {
                    cert.names.join(", ")
                },
                cert.not_after,
                cert.days_left
            ));
        }
        if self.ok {
            out.push_str("Verified: yes\n");
        } else {
            if let Some(error) = &self.error {
                out.push_str(&format!("Failed: {}\n", error.message));
            }
            if let Some(code) = self.code {
                out.push_str(&format!("Diagnosis: {code}\n"));
            }
            if let Some(hint) = &self.hint {
                out.push_str(&format!("Next: {hint}\n"));
            }
        }
        out
    }
}

/// Wraps the real verifier to keep what the server sent and what the verifier said, while
/// deciding exactly as it does (the check never accepts what the app would refuse).
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    chain: Vec<CertificateDer<'static>>,
    result: Option<Result<(), rustls::Error>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        seen.result = Some(result.as_ref().map(|_| ()).map_err(Clone::clone));
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn fail(kind: FailureKind, message: impl Into<String>) -> TlsCheckError {
    TlsCheckError {
        kind,
        message: message.into(),
    }
}

/// Runs one check with `verifier` (see [`tls_verifier`]). Never panics on a hostile peer.
pub async fn tls_check(
    resolver: &DnsResolver,
    verifier: &Arc<dyn ServerCertVerifier>,
    req: &TlsCheckRequest,
    source: Option<IpAddr>,
    policy: Option<&Policy>,
) -> TlsCheckReport {
    let started = Instant::now();
    let host_text = req.host.to_string();
    let mut report = TlsCheckReport {
        target: TlsTarget {
            host: host_text.clone(),
            port: req.port,
            ip: None,
            local_addr: None,
            sni: req.sni.clone(),
        },
        protocol: req.protocol,
        service: req
            .host
            .name()
            .and_then(crate::azure::lookup)
            .map(|m| m.service.into()),
        ok: false,
        postgres_answer: None,
        tls_version: None,
        verified: false,
        verify_error: None,
        verify_message: None,
        certificates: Vec::new(),
        // What matters is the name verified: an address with an explicit `sni` is fine.
        called_by: match &req.sni {
            Some(sni) => called_by(sni),
            None => called_by(&host_text),
        },
        timings_ms: TlsTimings::default(),
        error: None,
        code: None,
        hint: None,
        denied: None,
    };
    let result = run(resolver, verifier, req, source, policy, &mut report).await;
    report.timings_ms.total = round_ms(started.elapsed());
    match result {
        Ok(()) => report.ok = true,
        Err((error, code)) => {
            let code = match (code, &report.called_by) {
                // The certificate cannot name an address or a privatelink name: say that.
                (Code::TlsNameMismatch, Some(_)) => Code::CalledByAddress,
                (code, _) => code,
            };
            report.hint = Some(match (&report.called_by, code) {
                (Some(by), Code::CalledByAddress) => {
                    by.explain(report.target.sni.as_deref().unwrap_or(&host_text))
                }
                _ => code.next_step().to_owned(),
            });
            report.code = Some(code);
            report.error = Some(error);
        }
    }
    report
}

async fn run(
    resolver: &DnsResolver,
    verifier: &Arc<dyn ServerCertVerifier>,
    req: &TlsCheckRequest,
    source: Option<IpAddr>,
    policy: Option<&Policy>,
    report: &mut TlsCheckReport,
) -> Result<(), (TlsCheckError, Code)> {
    let phase = Instant::now();
    let ip = match &req.host {
        Host::Ip(ip) => *ip,
        Host::Name(name) => {
            let ips = resolver
                .lookup_ip(name)
                .await
                .map_err(|f| (fail(FailureKind::Dns, f.message), Code::DnsFailure))?;
            ips.iter().copied().find(IpAddr::is_ipv4).unwrap_or(ips[0])
        }
    };
    report.timings_ms.dns = Some(round_ms(phase.elapsed()));
    report.target.ip = Some(ip);
    if let Some(policy) = policy
        && let Err(denied) = policy.check(req.host.name(), ip, req.port)
    {
        let error = fail(FailureKind::Denied, denied.to_string());
        report.denied = Some(denied);
        return Err((error, Code::DiagTargetDenied));
    }
    // The connect and the handshake share the check's time.
    let deadline = Instant::now() + req.timeout;
    let phase = Instant::now();
    let mut stream = connect_tcp(SocketAddr::new(ip, req.port), source, req.timeout)
        .await
        .map_err(|e| (fail(e.kind, e.message), e.kind.code()))?;
    report.timings_ms.connect = Some(round_ms(phase.elapsed()));
    report.target.local_addr = stream.local_addr().ok();

    if req.protocol == Protocol::Postgres {
        let phase = Instant::now();
        let answer = within(deadline, async {
            stream.write_all(&SSL_REQUEST).await?;
            // PostgreSQL answers one byte and then waits for the ClientHello: anything more in
            // the first read is another server that happens to start with `S` or `N` (an SSH
            // banner, `SSH-2.0-…`).
            let mut buffer = [0u8; 64];
            let read = stream.read(&mut buffer).await?;
            Ok::<_, std::io::Error>(match read {
                0 => None,
                1 => Some(buffer[0]),
                _ => Some(0),
            })
        })
        .await;
        report.timings_ms.ssl_request = Some(round_ms(phase.elapsed()));
        let not_postgres = |why: String| (fail(FailureKind::Tls, why), Code::NotPostgres);
        match answer {
            Err(()) => {
                return Err(not_postgres(format!(
                    "no answer to PostgreSQL's SSLRequest within {} ms: this port is not PostgreSQL",
                    req.timeout.as_millis()
                )));
            }
            Ok(Err(e)) => {
                return Err(not_postgres(format!(
                    "the connection failed during PostgreSQL's SSLRequest ({e}): this port is not PostgreSQL"
                )));
            }
            Ok(Ok(None)) => {
                return Err(not_postgres(
                    "the server closed the connection at PostgreSQL's SSLRequest: this port is not PostgreSQL".to_owned(),
                ));
            }
            Ok(Ok(Some(b'S'))) => report.postgres_answer = Some("S".to_owned()),
            Ok(Ok(Some(b'N'))) => {
                report.postgres_answer = Some("N".to_owned());
                return Err((
                    fail(
                        FailureKind::Tls,
                        "PostgreSQL answered SSLRequest with N: the server does not offer TLS",
                    ),
                    Code::PostgresNoTls,
                ));
            }
            Ok(Ok(Some(0))) => {
                return Err(not_postgres(
                    "the server answered PostgreSQL's SSLRequest with more than the one byte PostgreSQL sends: this port is not PostgreSQL".to_owned(),
                ));
            }
            Ok(Ok(Some(other))) => {
                return Err(not_postgres(format!(
                    "the server answered PostgreSQL's SSLRequest with byte 0x{other:02x}, not S or N: this port is not PostgreSQL"
                )));
            }
        }
    }

    let phase = Instant::now();
    let recording = Arc::new(Recording {
        inner: verifier.clone(),
        seen: Mutex::default(),
    });
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| (fail(FailureKind::Tls, e.to_string()), Code::TlsFailure))?
    .dangerous()
    .with_custom_certificate_verifier(recording.clone())
    .with_no_client_auth();
    let server_name = match &req.sni {
        Some(name) => ServerName::try_from(name.clone()).map_err(|e| {
            (
                fail(FailureKind::Tls, format!("invalid TLS server name: {e}")),
                Code::TlsFailure,
            )
        })?,
        None => ServerName::IpAddress(ip.into()),
    };
    let handshake = TlsConnector::from(Arc::new(config)).connect(server_name, stream);
    let outcome = within(deadline, handshake).await;
    report.timings_ms.handshake = Some(round_ms(phase.elapsed()));
    let seen = std::mem::take(
        &mut *recording
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    report.certificates = seen.chain.iter().filter_map(describe).collect();
    match &seen.result {
        Some(Ok(())) => report.verified = true,
        Some(Err(e)) => {
            report.verify_error = Some(VerifyError::of(e));
            report.verify_message = Some(e.to_string());
        }
        None => {}
    }
    match outcome {
        Err(()) => Err((
            fail(
                FailureKind::Timeout,
                format!(
                    "the TLS handshake did not complete within {} ms",
                    req.timeout.as_millis()
                ),
            ),
            Code::TlsFailure,
        )),
        Ok(Err(e)) => {
            let code = report
                .verify_error
                .map_or(Code::TlsFailure, VerifyError::code);
            Err((
                fail(FailureKind::Tls, format!("TLS handshake failed: {e}")),
                code,
            ))
        }
        Ok(Ok(tls)) => {
            report.tls_version = tls.get_ref().1.protocol_version().map(|v| format!("{v:?}"));
            Ok(())
        }
    }
}

async fn within<T>(deadline: Instant, future: impl Future<Output = T>) -> Result<T, ()> {
    tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), future)
        .await
        .map_err(|_| ())
}

/// The fields of one certificate; `None` when it does not parse.
fn describe(der: &CertificateDer<'_>) -> Option<CertificateView> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes)
                            .ok()
                            .map(|b| IpAddr::from(b).to_string()),
                        16 => <[u8; 16]>::try_from(*bytes)
                            .ok()
                            .map(|b| IpAddr::from(b).to_string()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let validity = cert.validity();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let not_after = validity.not_after.timestamp();
    Some(CertificateView {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        names,
        not_before: rfc3339(validity.not_before.timestamp()),
        not_after: rfc3339(not_after),
        days_left: (not_after - now).div_euclid(86_400),
    })
}

fn rfc3339(unix_seconds: i64) -> String {
    let time = if unix_seconds >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(unix_seconds.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_picks_the_port_and_the_protocol() {
        let parse = |host: &str, port: Option<&str>, protocol: Option<&str>| {
            TlsCheckRequest::parse(host, port, None, protocol, None).unwrap()
        };
        let pg = parse("pg-x.postgres.database.azure.com", None, None);
        assert_eq!((pg.port, pg.protocol), (5432, Protocol::Postgres));
        assert_eq!(pg.sni.as_deref(), Some("pg-x.postgres.database.azure.com"));
        let bouncer = parse("pg-x.postgres.database.azure.com", Some("6432"), None);
        assert_eq!(bouncer.protocol, Protocol::Postgres);
        let redis = parse("r.redis.cache.windows.net", None, None);
        assert_eq!((redis.port, redis.protocol), (6380, Protocol::Tls));
        let other = parse("pg.lockdown.test", Some("5432"), None);
        assert_eq!(other.protocol, Protocol::Postgres);
        let plain = parse("example.com", None, None);
        assert_eq!((plain.port, plain.protocol), (443, Protocol::Tls));
        let forced = parse("example.com", Some("5432"), Some("tls"));
        assert_eq!(forced.protocol, Protocol::Tls);
        let ip = parse("127.0.0.1", Some("443"), None);
        assert_eq!(ip.sni, None);
        let named = TlsCheckRequest::parse("127.0.0.1", None, Some("a.test"), None, None).unwrap();
        assert_eq!(named.sni.as_deref(), Some("a.test"));
        for (protocol, sni, timeout) in [
            (Some("smtp"), None, None),
            (Some("none"), None, None),
            (None, Some("not a name"), None),
            (None, None, Some("0")),
            (None, None, Some("10001")),
        ] {
            assert!(
                TlsCheckRequest::parse("example.com", None, sni, protocol, timeout).is_err(),
                "{protocol:?} {sni:?} {timeout:?}"
            );
        }
    }

    #[test]
    fn verify_errors_map_to_their_codes() {
        let cases = [
            (
                CertificateError::NotValidForName,
                VerifyError::NameMismatch,
                Code::TlsNameMismatch,
            ),
            (
                CertificateError::Expired,
                VerifyError::Expired,
                Code::TlsExpired,
            ),
            (
                CertificateError::NotValidYet,
                VerifyError::NotYetValid,
                Code::TlsExpired,
            ),
            (
                CertificateError::UnknownIssuer,
                VerifyError::UntrustedRoot,
                Code::TlsUntrusted,
            ),
            (
                CertificateError::Revoked,
                VerifyError::Other,
                Code::TlsFailure,
            ),
        ];
        for (error, kind, code) in cases {
            let error = rustls::Error::InvalidCertificate(error);
            assert_eq!(VerifyError::of(&error), kind);
            assert_eq!(kind.code(), code);
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
