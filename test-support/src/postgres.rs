//! A throw-away PostgreSQL for tests: Debian's `postgresql` binaries, a cluster in a temporary
//! folder owned by an unprivileged user (initdb refuses root, and CI runs as root), listening on
//! 127.0.0.1 and a free port only, TLS on with a CA and a certificate for [`PG_HOST`] made at run
//! time. One cluster per test binary ([`cluster`]); each test takes its own database
//! ([`PgCluster::create_database`]).
//!
//! The server runs under a small shell that stops it (fast shutdown) and removes the folder when
//! the test binary's end of a pipe closes, so no server outlives the tests, even after a panic.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The server's name in the test zone (`lockdown.test`), resolving to 127.0.0.1; its certificate
/// names it.
pub const PG_HOST: &str = "pg.lockdown.test";
/// Another name for 127.0.0.1 in the test zone, which the certificate does not carry.
pub const PG_OTHER_HOST: &str = "pg-alias.lockdown.test";
/// The lab's database server name (`lockdown::topology::DATABASE_HOST`).
pub const LAB_HOST: &str = "pg-lockdown.postgres.database.azure.com";
/// The superuser's password.
pub const ADMIN_PASSWORD: &str = "admin-pw-for-tests";
/// The application role the tests log in as, and its password.
pub const APP_USER: &str = "lockdown_app";
/// The application role's password.
pub const APP_PASSWORD: &str = "app-pw-for-tests";

/// A running cluster.
#[derive(Debug)]
pub struct PgCluster {
    /// The loopback address it listens on.
    pub listen: std::net::Ipv4Addr,
    /// Its port.
    pub port: u16,
    /// The CA certificate (PEM) that signed the server's certificate.
    pub ca_file: PathBuf,
    /// A CA that signed nothing the server holds (for the untrusted-chain case).
    pub other_ca_file: PathBuf,
    bin: PathBuf,
    /// Keeps the supervising shell's stdin open: dropping it stops the server.
    _guard: Mutex<Child>,
    databases: AtomicUsize,
}

/// Where Debian puts the server's binaries: the newest `/usr/lib/postgresql/*/bin`.
pub fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

/// The server's major version, as the lab's header says it.
pub fn version() -> Option<String> {
    bin_dir()?
        .parent()?
        .file_name()?
        .to_str()
        .map(str::to_owned)
}

/// The shared cluster of this test binary, started on first use; `None` (having said why on
/// stderr) when PostgreSQL is not installed outside CI. In CI (`CI=true`) a missing PostgreSQL
/// fails the test: `.ci/run` installs it.
pub fn cluster() -> Option<&'static PgCluster> {
    static CLUSTER: OnceLock<Option<PgCluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            if bin_dir().is_none() {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!(
                        "PostgreSQL is not installed (apt-get install postgresql): CI needs it"
                    );
                }
                eprintln!(
                    "skipped: PostgreSQL is not installed (apt-get install postgresql); the PostgreSQL half of this test did not run"
                );
                return None;
            }
            Some(PgCluster::start(&ClusterOptions::default()).unwrap_or_else(|e| panic!("{e}")))
        })
        .as_ref()
}

/// Runs `command` as the unprivileged owner of the cluster when this process is root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;

fn give_to_owner(path: &Path) {
    if is_root() {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOGROUP)).unwrap();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A CA and a certificate signed by it for `names`: `(ca_pem, cert_pem, key_pem)`.
pub fn make_certificates(names: &[&str]) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "lockdown test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// Where a cluster listens and which names its certificate carries.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The loopback address it listens on.
    pub listen: std::net::Ipv4Addr,
    /// The names in the server's certificate (the first is its common name).
    pub names: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            listen: std::net::Ipv4Addr::LOCALHOST,
            // The lab's database name too, so that lab tests can share this cluster.
            names: vec![PG_HOST.to_owned(), LAB_HOST.to_owned()],
        }
    }
}

impl PgCluster {
    /// Starts a cluster (the lab starts its own; tests share [`cluster`]). Fails when
    /// PostgreSQL is not installed or does not start.
    pub fn start(options: &ClusterOptions) -> Result<Self, String> {
        let bin = bin_dir().ok_or("PostgreSQL is not installed (apt-get install postgresql)")?;
        std::panic::catch_unwind(|| Self::start_unchecked(bin, options)).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "PostgreSQL did not start".to_owned())
        })
    }

    fn start_unchecked(bin: PathBuf, options: &ClusterOptions) -> Self {
        let listen = options.listen;
        assert!(
            listen.is_loopback(),
            "a test cluster listens on loopback only"
        );
        let dir = tempfile::Builder::new()
            .prefix("lockdown-pg-")
            .tempdir()
            .unwrap()
            .keep();
        set_mode(&dir, 0o755);
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        set_mode(&data, 0o700);
        give_to_owner(&data);

        let names: Vec<&str> = options.names.iter().map(String::as_str).collect();
        let (ca, cert, key) = make_certificates(&names);
        let (other_ca, _, _) = make_certificates(&names);
        let ca_file = dir.join("ca.pem");
        let other_ca_file = dir.join("other-ca.pem");
        std::fs::write(&ca_file, ca).unwrap();
        std::fs::write(&other_ca_file, other_ca).unwrap();
        let cert_file = dir.join("server.crt");
        let key_file = dir.join("server.key");
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        set_mode(&key_file, 0o600);
        give_to_owner(&key_file);
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, ADMIN_PASSWORD).unwrap();
        give_to_owner(&pwfile);

        let status = as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");

        let port = free_port(listen);
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        writeln!(
            conf,
            "listen_addresses = '{listen}'\nport = {port}\nunix_socket_directories = '{}'\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nmax_connections = 200\nshared_buffers = 16MB\nfsync = on\nsynchronous_commit = on\nlog_min_messages = warning",
            data.display(),
            cert_file.display(),
            key_file.display()
        )
        .unwrap();
        // TLS and plain TCP from loopback only; scram passwords.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhost all all 127.0.0.0/8 scram-sha-256\n",
        )
        .unwrap();

        // The supervising shell: starts the server, waits for stdin to close (the test binary
        // ended), then stops it fast and removes the folder.
        let script = format!(
            "{postgres} -D {data} >{log} 2>&1 & pid=$!; read _ignored; kill -INT $pid; wait $pid; rm -rf {dir}",
            postgres = shell_quote(&bin.join("postgres")),
            data = shell_quote(&data),
            log = shell_quote(&dir.join("server.log")),
            dir = shell_quote(&dir),
        );
        let mut supervisor = if is_root() {
            let mut command = Command::new("setpriv");
            command.args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--",
                "sh",
                "-c",
                &script,
            ]);
            command
        } else {
            let mut command = Command::new("sh");
            command.args(["-c", &script]);
            command
        };
        // The log goes to the folder; give it to the owner first.
        std::fs::write(dir.join("server.log"), "").unwrap();
        give_to_owner(&dir.join("server.log"));
        // rm -rf of a root-owned folder by nobody would fail: hand the whole folder over.
        give_to_owner(&dir);
        for f in [&ca_file, &other_ca_file, &cert_file] {
            give_to_owner(f);
        }
        let child = supervisor
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();

        let cluster = Self {
            listen,
            port,
            ca_file,
            other_ca_file,
            bin,
            _guard: Mutex::new(child),
            databases: AtomicUsize::new(0),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.ready() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start within 30 s: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster.psql(
            "postgres",
            &format!("CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'"),
        );
        cluster
    }

    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args([
                "-q",
                "-h",
                &self.listen.to_string(),
                "-p",
                &self.port.to_string(),
            ])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Runs one SQL statement as the superuser in `database`; panics on failure.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.listen.to_string(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", ADMIN_PASSWORD)
            .env("PGSSLMODE", "disable")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// A new, empty database owned by [`APP_USER`]; its name.
    pub fn create_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}_{n}", std::process::id());
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} OWNER {APP_USER}"),
        );
        name
    }

    /// A new login role of its own (tests that break a login must not break the others'):
    /// `(name, password)`, allowed to use every test database.
    pub fn create_role(&self) -> (String, String) {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("r{}_{n}", std::process::id());
        let password = format!("pw-{name}");
        self.psql(
            "postgres",
            &format!("CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {APP_USER}"),
        );
        (name, password)
    }

    /// `DATABASE_URL` for `database` as `user` with `password`, verify-full against the test CA.
    pub fn url_as(&self, user: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{user}:{password}@{PG_HOST}:{}/{database}?sslrootcert={}",
            self.port,
            self.ca_file.display()
        )
    }

    /// `DATABASE_URL` for `database` as [`APP_USER`], verify-full against the test CA, at `host`
    /// on the cluster's port.
    pub fn url_at(&self, host: &str, database: &str) -> String {
        self.url_via(host, self.port, database)
    }

    /// [`PgCluster::url_at`] on `port`: something in front of the cluster (the lab's endpoint).
    pub fn url_via(&self, host: &str, port: u16, database: &str) -> String {
        format!(
            "postgres://{APP_USER}:{APP_PASSWORD}@{host}:{port}/{database}?sslrootcert={}",
            self.ca_file.display()
        )
    }

    /// [`PgCluster::url_at`] with [`PG_HOST`].
    pub fn url(&self, database: &str) -> String {
        self.url_at(PG_HOST, database)
    }
}

fn free_port(ip: std::net::Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}
