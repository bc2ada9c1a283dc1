//! Starting the whole lab: the DNS views, the back end's and the front end's instances, and an
//! App Service front-end emulator in front of each app, all on loopback. With `--auth entra`, a
//! fake Entra ID as well (fake-entra: a keys endpoint and the front end's managed-identity
//! endpoint on 127.0.0.1, RSA keys generated at start), and both apps in Entra mode.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::{Listener, ListenerExt};
use backend::{ApiKeys, AuthMode, CallerPolicy, ClientIpSource, ItemStore};
use diag::api::{DiagArgs, DiagSettings};
use diag::dns::DnsArgs;
use diag::outbound::OutboundArgs;
use fake_entra::{FakeIdentity, FakeKeys, ManagedIdentity, SigningKey};
use hosting::{HostArgs, Instance, LogFormat};
use rustls::pki_types::pem::PemObject;
use test_support::FullQueue;
use test_support::postgres::{ClusterOptions, PgCluster};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::breaks::{DatabasePlan, Mode, Plan};
use crate::dns::DnsServer;
use crate::emulator::{self, Entry, ErrorPages, Site, SiteInstance};
use crate::front::{self, BackendExtras, Front, RunningSite, SlotBackend};
use crate::gateway;
use crate::proxy;
use crate::topology::{
    BACKEND_PRIVATE_ENDPOINT, BACKEND_PUBLIC, DATABASE_BLOCKED_ENDPOINT, DATABASE_HOST,
    DATABASE_PRIVATE_ENDPOINT, DATABASE_PUBLIC, FRONTEND_PUBLIC, HostNames, INTEGRATION_SUBNET,
    frontend_private_ip, in_vnet, instance_id, net,
};

/// What App Service leaves in `API_KEYS` when it cannot resolve the reference
/// (`--break kv-reference-unresolved`).
const KEYVAULT_LITERAL: &str =
    "@Microsoft.KeyVault(SecretUri=https://kv-lab.vault.azure.net/secrets/backend-api-key/)";

/// The environment variable the lab's smoke suite reads the front end's `/diag` token from.
pub const TOKEN_ENV: &str = "LOCKDOWN_LAB_DIAG_TOKEN";

/// Which store the lab's back end uses.
#[derive(Clone, Copy, Default)]
pub enum LabDatabase {
    /// The embedded store, one for every instance (they share the process).
    #[default]
    Embedded,
    /// PostgreSQL when it is installed (a cluster of the lab's own, behind a private endpoint in
    /// the back end's DNS), else the embedded store.
    PostgresIfInstalled,
    /// PostgreSQL on this running cluster (tests share one).
    Shared(&'static PgCluster),
}

impl std::fmt::Debug for LabDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Embedded => "Embedded",
            Self::PostgresIfInstalled => "PostgresIfInstalled",
            Self::Shared(_) => "Shared",
        })
    }
}

/// The lab's database, when it runs on PostgreSQL.
#[derive(Debug)]
enum LabPg {
    Own(PgCluster),
    Shared(&'static PgCluster),
}

impl LabPg {
    fn cluster(&self) -> &PgCluster {
        match self {
            Self::Own(cluster) => cluster,
            Self::Shared(cluster) => cluster,
        }
    }
}

/// How the lab's front end proves itself to its back end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LabAuth {
    /// An API key (`X-Api-Key`).
    #[default]
    ApiKey,
    /// A token of the front end's (fake) managed identity, checked by the back end against the
    /// (fake) tenant's keys.
    Entra,
}

impl std::fmt::Display for LabAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ApiKey => "api-key",
            Self::Entra => "entra",
        })
    }
}

/// The resource a front end with a bad credential asks a token for (`--break bad-credential`
/// in Entra mode): the identity endpoint hands one out, and the back end refuses its audience.
pub const WRONG_RESOURCE: &str = "api://8f1e9a3c-5b2d-4c7e-9f10-2a3b4c5d6e7f/some-other-api";

/// The fake Entra ID of an Entra-mode lab, kept alive with it.
struct LabEntra {
    keys: FakeKeys,
    identity: FakeIdentity,
    identity_secret: String,
}

// By hand: the identity endpoint's secret stays out of debug prints.
impl std::fmt::Debug for LabEntra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabEntra")
            .field("keys", &self.keys)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl LabEntra {
    async fn start(secret: &str) -> anyhow::Result<Self> {
        let key = SigningKey::generate(format!("lab-{}", &secret[..8]));
        let keys = FakeKeys::start(fake_entra::TENANT_ID, &[&key]).await?;
        let identity_secret = format!("lab-identity-{}", &secret[8..24]);
        let identity = FakeIdentity::start(
            ManagedIdentity {
                client_id: fake_entra::FRONTEND_CLIENT_ID.into(),
                object_id: fake_entra::FRONTEND_OBJECT_ID.into(),
                tenant: fake_entra::TENANT_ID.into(),
            },
            key,
            &identity_secret,
        )
        .await?;
        identity.grant(fake_entra::BACKEND_APP_ID_URI, &[fake_entra::REQUIRED_ROLE]);
        identity.grant(WRONG_RESOURCE, &[fake_entra::REQUIRED_ROLE]);
        Ok(Self {
            keys,
            identity,
            identity_secret,
        })
    }

    fn validator(&self) -> Arc<backend::EntraValidator> {
        test_support::entra_validator(test_support::fake_tenant_settings(&self.keys.authority()))
    }
}

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The lockdown, with its breaks applied.
    pub plan: Plan,
    /// The front end's public port on 127.0.0.1 (0 picks one).
    pub frontend_port: u16,
    /// How many front-end instances (`ARRAffinity` spreads callers over them).
    pub frontend_instances: usize,
    /// How many back-end instances.
    pub backend_instances: usize,
    /// Front-end instances (by index) that are not VNet-integrated although the plan says the
    /// front end is: one broken instance among healthy ones.
    pub unintegrated_instances: Vec<usize>,
    /// Where the back end keeps its items (default: a temporary folder, removed at exit).
    pub data_dir: Option<PathBuf>,
    /// The front end's credential.
    pub auth: LabAuth,
    /// The apps' host names: classic, or unique default host names (`--unique-hostnames`).
    pub hosts: HostNames,
    /// The back end's store.
    pub database: LabDatabase,
}

impl LabOptions {
    /// Two instances of each app, the front end on `frontend_port`.
    pub fn new(plan: Plan, frontend_port: u16) -> Self {
        Self {
            plan,
            frontend_port,
            frontend_instances: 2,
            backend_instances: 2,
            unintegrated_instances: Vec::new(),
            data_dir: None,
            database: LabDatabase::Embedded,
            auth: LabAuth::ApiKey,
            hosts: HostNames::classic(),
        }
    }
}

/// A running lab. Dropping it stops everything.
pub struct Lab {
    /// The plan it runs.
    pub plan: Plan,
    /// The front end's credential.
    pub auth: LabAuth,
    /// The apps' host names (in DNS, `BACKEND_URL` and the suite).
    pub hosts: HostNames,
    /// Entra mode: the fake tenant's keys endpoint (`ENTRA_AUTHORITY`).
    pub entra_authority: Option<String>,
    /// The front end as a browser reaches it.
    pub frontend_url: String,
    /// `BACKEND_URL` as the front end has it.
    pub backend_url: String,
    /// The back end's port (public address and private endpoint alike).
    pub backend_port: u16,
    /// The VNet's DNS server (the apps' resolver).
    pub vnet_dns: SocketAddr,
    /// The internet's DNS server (what `probe smoke` uses from "here").
    pub public_dns: SocketAddr,
    /// The front end's `/diag` token (random per run).
    pub diag_token: String,
    /// The back end's API key (random per run; what the front end sends in api-key mode), so a
    /// test can ask the back end itself how it saw a caller.
    pub backend_api_key: String,
    /// The back end's emulated site, to break or repair it while the lab runs.
    pub backend_site: Site,
    /// The front end's instance ids.
    pub frontend_instance_ids: Vec<String>,
    /// The back end's instance ids.
    pub backend_instance_ids: Vec<String>,
    /// The back end's store, in words (the topology's `store` line).
    pub store: String,
    /// The database's port, when the lab runs on PostgreSQL (its private endpoint, and its
    /// public endpoint with `db-public-access`).
    pub database_port: Option<u16>,
    /// The whole site, with `--front`: the edges, the SCM site, the slot, the deploy runner.
    pub site: Option<RunningSite>,
    _extras: Option<BackendExtras>,
    stop: CancellationToken,
    _dns: Vec<DnsServer>,
    _silent: Vec<FullQueue>,
    _data: Option<tempfile::TempDir>,
    _entra: Option<LabEntra>,
    _pg: Option<LabPg>,
}

// By hand: the `/diag` token stays out of debug prints.
impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("plan", &self.plan)
            .field("auth", &self.auth)
            .field("frontend_url", &self.frontend_url)
            .field("backend_url", &self.backend_url)
            .finish_non_exhaustive()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Lab {
    /// Starts everything and returns once every listener is bound.
    pub async fn start(options: LabOptions) -> anyhow::Result<Self> {
        let plan = options.plan.clone();
        // Whole-site breaks without the front they need (a plan never given `with_front`).
        if let Some(b) = plan.site.breaks.first()
            && plan.site.front == Front::None
        {
            let needs = b.front().map_or(Front::FrontDoor, |f| f[0]);
            anyhow::bail!(front::WrongFront::NeedsFront {
                name: b.name(),
                needs
            });
        }
        raise_open_file_limit();
        let stop = CancellationToken::new();
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let api_key = format!("lab-key-{}", &secret[..16]);
        let diag_token = format!("lab-diag-{}", &secret[16..]);

        let hosts = options.hosts.clone();
        let runs_pg = match options.database {
            LabDatabase::Embedded => false,
            LabDatabase::PostgresIfInstalled => test_support::postgres::bin_dir().is_some(),
            LabDatabase::Shared(_) => true,
        };
        if !runs_pg && plan.database != DatabasePlan::LOCKED {
            anyhow::bail!(
                "the data tier's breaks (db-*) need the lab on PostgreSQL: apt-get install postgresql"
            );
        }
        // The internet's DNS answers the database's name with its public endpoint.
        let public_dns = DnsServer::start(plan.public_dns, &hosts, runs_pg.then_some(None)).await?;
        let vnet_dns = match plan.vnet_dns {
            Some(view) => DnsServer::start(view, &hosts, None).await?,
            None => DnsServer::mute().await?,
        };

        let (data_dir, temp) = match &options.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let temp = tempfile::Builder::new().prefix("lockdown-lab-").tempdir()?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        let pg = match options.database {
            LabDatabase::Embedded => None,
            LabDatabase::PostgresIfInstalled if test_support::postgres::bin_dir().is_none() => None,
            LabDatabase::PostgresIfInstalled => Some(LabPg::Own(
                PgCluster::start(&ClusterOptions {
                    listen: DATABASE_PRIVATE_ENDPOINT,
                    names: vec![DATABASE_HOST.to_owned()],
                })
                .map_err(|e| anyhow::anyhow!("starting the lab's PostgreSQL: {e}"))?,
            )),
            LabDatabase::Shared(cluster) => Some(LabPg::Shared(cluster)),
        };
        // The back end's DNS for its database: a view of its own, so that a broken VNet DNS
        // (the front end's `dns-down`) breaks the front end's hop, not the back end's start-up.
        let mut silent = Vec::new();
        let (database_dns, database_url, database_port) = match &pg {
            None => (None, None, None),
            Some(pg) => {
                let cluster = pg.cluster();
                let db = plan.database;
                // The lab's own private endpoint in front of the server: a port of its own, so
                // that labs sharing one cluster (the tests) never see each other's public
                // endpoint or blocked address on the same address and port.
                let port = proxy::spawn(
                    SocketAddr::new(cluster.listen.into(), 0),
                    SocketAddr::new(cluster.listen.into(), cluster.port),
                    &stop,
                )
                .await?
                .port();
                // An NSG dropping the back end's packets: the endpoint's address never answers.
                let endpoint = if db.egress_blocked {
                    silent.push(FullQueue::bind(DATABASE_BLOCKED_ENDPOINT.into(), port).await?);
                    DATABASE_BLOCKED_ENDPOINT
                } else {
                    cluster.listen
                };
                let dns = DnsServer::database(db.privatelink_linked.then_some(endpoint)).await?;
                // Public network access enabled: the server's public endpoint answers the
                // internet (nothing listens there otherwise: refused, as a closed server is).
                if db.public_access {
                    proxy::spawn(
                        SocketAddr::new(DATABASE_PUBLIC.into(), port),
                        SocketAddr::new(cluster.listen.into(), cluster.port),
                        &stop,
                    )
                    .await?;
                }
                let host = if db.by_address {
                    cluster.listen.to_string()
                } else {
                    DATABASE_HOST.to_owned()
                };
                let url = cluster.url_via(&host, port, &cluster.create_database());
                (Some(dns), Some(url), Some(port))
            }
        };
        let embedded = ItemStore::open(&data_dir)?;
        let store_line = match (&pg, &options.database) {
            (Some(pg), _) => format!(
                "PostgreSQL {} at {DATABASE_HOST} (private endpoint {}:{}, TLS verified); each back-end instance its own pool",
                test_support::postgres::version().unwrap_or_default(),
                pg.cluster().listen,
                database_port.unwrap_or_default()
            ),
            (None, LabDatabase::PostgresIfInstalled) => {
                "embedded (redb; PostgreSQL is not installed: apt-get install postgresql)"
                    .to_owned()
            }
            (None, _) => "embedded (redb)".to_owned(),
        };
        let entra = match options.auth {
            LabAuth::ApiKey => None,
            LabAuth::Entra => Some(LabEntra::start(&secret).await?),
        };
        // App Service leaves a setting whose Key Vault reference it cannot resolve holding the
        // reference itself: the back end then takes the literal as its key.
        let backend_keys = if plan.keyvault_unresolved {
            KEYVAULT_LITERAL.to_owned()
        } else {
            api_key.clone()
        };
        let keyvault_references = if plan.keyvault_unresolved {
            diag::envfacts::keyvault_references([("API_KEYS", KEYVAULT_LITERAL)])
        } else {
            Vec::new()
        };
        let backend_auth = match &entra {
            None => AuthMode::from_keys(ApiKeys::new([backend_keys.as_str()])),
            Some(entra) => AuthMode::Entra(entra.validator()),
        };
        // The back end's handshake checks trust the database's CA (a private one, in the lab).
        let database_roots = match &pg {
            Some(pg) => vec![
                rustls::pki_types::CertificateDer::from_pem_file(&pg.cluster().ca_file)
                    .context("reading the lab database's CA")?,
            ],
            None => Vec::new(),
        };
        // The back end's own start-up check of DATABASE_URL: a URL that cannot verify stops it,
        // as the binary does (App Service then has no instance to send requests to).
        let database_settings = match &database_url {
            Some(url) => match backend::database::DatabaseSettings::parse(url) {
                Ok(settings) => Some(Ok(settings)),
                Err(error) => Some(Err(error.to_string())),
            },
            None => None,
        };
        let backend_starts = !matches!(database_settings, Some(Err(_)));
        let mut store_line = store_line;
        if let Some(Err(error)) = &database_settings {
            store_line += &format!("; the back end does not start: {error}");
        }
        let mut backend_instances = Vec::new();
        for n in 0..options.backend_instances {
            let id = instance_id(&format!("be-{n}"));
            let upstream = if plan.backend_running && backend_starts {
                let store = match (&database_settings, &database_dns) {
                    (Some(Ok(settings)), Some(dns)) => {
                        lab_pg_store(settings.clone(), dns.addr).await?
                    }
                    _ => embedded.clone(),
                };
                let state = backend::AppState {
                    store,
                    auth: backend_auth.clone(),
                    app_service_auth: false,
                    callers: Arc::new(CallerPolicy::new(vec![net(INTEGRATION_SUBNET)])),
                    client_ip_source: ClientIpSource::XClientIp,
                    instance: Arc::new(Instance {
                        site: "app-be".into(),
                        id: id.clone(),
                    }),
                };
                let diag_args = DiagArgs {
                    diag_token: Some(diag_token.clone()),
                    diag_allow: Some("127.0.0.0/8".into()),
                };
                // The back end resolves through its VNet's DNS: the view with its database's zone.
                let resolver = diag::dns::DnsResolver::with_servers(
                    vec![database_dns.as_ref().map_or(vnet_dns.addr, |dns| dns.addr)],
                    Duration::from_secs(1),
                )?;
                let diag = diag::api::DiagState::new(DiagSettings {
                    facts: diag::envfacts::EnvFacts {
                        site_name: Some("app-be".into()),
                        instance_id: Some(id.clone()),
                        auth: diag::envfacts::AuthFacts {
                            auth_mode: Some(
                                match options.auth {
                                    LabAuth::ApiKey => "api-key",
                                    LabAuth::Entra => "entra",
                                }
                                .into(),
                            ),
                            ..Default::default()
                        },
                        keyvault_references: keyvault_references.clone(),
                        ..Default::default()
                    },
                    tls_extra_roots: database_roots.clone(),
                    ..DiagSettings::new(diag_args, resolver)
                })?;
                let app = backend::app(state, diag, Duration::from_secs(30));
                serve_instance(app, &stop).await?
            } else {
                test_support::closed_addr()
            };
            backend_instances.push(SiteInstance { id, upstream });
        }
        let backend_ids = backend_instances.iter().map(|i| i.id.clone()).collect();
        let backend_site = Site::new("app-be", plan.backend_networking.clone(), backend_instances)
            .with_host_name(&hosts.backend)
            .with_service_endpoints(if plan.service_endpoint {
                vec![net(INTEGRATION_SUBNET)]
            } else {
                Vec::new()
            })
            .with_error_pages(if plan.custom_error_pages {
                ErrorPages::CUSTOM
            } else {
                ErrorPages::APP_SERVICE
            });
        // The whole site (`--front`): the back end's SCM site and staging slot on its address.
        let extras = if plan.site.front == Front::None {
            None
        } else {
            Some(
                BackendExtras::start(
                    &plan.site,
                    &backend_site,
                    &hosts,
                    SlotBackend {
                        auth: backend_auth.clone(),
                        diag_token: diag_token.clone(),
                        vnet_dns: vnet_dns.addr,
                    },
                    &stop,
                )
                .await?,
            )
        };
        // A gateway in front answers on the back end's addresses instead of App Service.
        let backend_front = |entry| {
            if plan.gateway_in_front {
                gateway::router()
            } else {
                let site = emulator::router(backend_site.clone(), entry);
                match &extras {
                    Some(extras) => extras.router(site, entry),
                    None => site,
                }
            }
        };

        let backend_port = if plan.egress_blocked {
            let blocked = FullQueue::bind(BACKEND_PUBLIC, 0).await?;
            let port = blocked.addr.port();
            silent.push(blocked);
            if plan.mode == Mode::PrivateEndpoint {
                silent.push(FullQueue::bind(BACKEND_PRIVATE_ENDPOINT, port).await?);
            }
            port
        } else {
            let (public, private) = bind_backend_addresses(plan.mode).await?;
            let port = public.local_addr()?.port();
            spawn_front(public, false, backend_front(Entry::Public), &stop);
            if let Some(private) = private {
                spawn_front(private, true, backend_front(Entry::PrivateEndpoint), &stop);
            }
            port
        };
        let backend_url = format!("http://{}:{backend_port}", hosts.backend);

        let mut frontend_instances = Vec::new();
        for n in 0..options.frontend_instances {
            let id = instance_id(&format!("fe-{n}"));
            let integrated =
                plan.frontend_integrated && !options.unintegrated_instances.contains(&n);
            let credential = match &entra {
                None => FrontendCredential::ApiKey(if plan.frontend_key_ok {
                    &api_key
                } else {
                    "not-the-lab-key"
                }),
                Some(entra) => FrontendCredential::Entra {
                    endpoint: entra.identity.endpoint(),
                    secret: &entra.identity_secret,
                    resource: if plan.frontend_key_ok {
                        fake_entra::BACKEND_APP_ID_URI
                    } else {
                        WRONG_RESOURCE
                    },
                },
            };
            let config = frontend_config(FrontendInstance {
                id: &id,
                backend_url: &backend_url,
                credential,
                vnet_dns: vnet_dns.addr,
                source: integrated.then(|| frontend_private_ip(n)),
                diag_token: &diag_token,
                front_door_id: (plan.site.front == Front::FrontDoor)
                    .then_some(front::FRONT_DOOR_ID),
            })?;
            let built = frontend::build(&config)?;
            let app = frontend::app(built.state, built.diag, config.host.request_timeout());
            let upstream = serve_instance(app, &stop).await?;
            frontend_instances.push(SiteInstance { id, upstream });
        }
        let frontend_ids = frontend_instances.iter().map(|i| i.id.clone()).collect();
        let frontend_site = Site::new(
            "app-fe",
            plan.site.frontend_networking.clone(),
            frontend_instances,
        )
        .with_host_name(&hosts.frontend)
        .with_service_endpoints(if plan.site.front == Front::AppGateway {
            vec![net(front::APP_GATEWAY_SUBNET)]
        } else {
            Vec::new()
        });
        let frontend_listener = TcpListener::bind((FRONTEND_PUBLIC, options.frontend_port))
            .await
            .with_context(|| {
                format!(
                    "binding the front end on {FRONTEND_PUBLIC}:{} (busy? pick another with --port, or --port 0)",
                    options.frontend_port
                )
            })?;
        let frontend_addr = frontend_listener.local_addr()?;
        spawn_front(
            frontend_listener,
            false,
            emulator::router(frontend_site, Entry::Public),
            &stop,
        );
        let site = match &extras {
            Some(extras) => Some(
                RunningSite::start(
                    &plan.site,
                    extras,
                    frontend_addr,
                    &hosts,
                    options.frontend_port,
                    public_dns.addr,
                    &diag_token,
                    &stop,
                )
                .await?,
            ),
            None => None,
        };
        // Behind a front, a browser (and the suite) reaches the front end through it.
        let frontend_url = site
            .as_ref()
            .map_or_else(|| format!("http://{frontend_addr}"), |s| s.edge_url.clone());

        Ok(Self {
            plan,
            auth: options.auth,
            hosts,
            entra_authority: entra.as_ref().map(|e| e.keys.authority()),
            frontend_url,
            backend_url,
            backend_port,
            vnet_dns: vnet_dns.addr,
            public_dns: public_dns.addr,
            diag_token,
            backend_api_key: api_key,
            backend_site,
            frontend_instance_ids: frontend_ids,
            backend_instance_ids: backend_ids,
            store: store_line,
            database_port,
            stop,
            _dns: [Some(vnet_dns), Some(public_dns), database_dns]
                .into_iter()
                .flatten()
                .collect(),
            _silent: silent,
            _data: temp,
            _entra: entra,
            _pg: pg,
            site,
            _extras: extras,
        })
    }

    /// Stops every server.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// One back-end instance's PostgreSQL store: its own pool, as a separate process would have.
async fn lab_pg_store(
    settings: backend::database::DatabaseSettings,
    dns: SocketAddr,
) -> anyhow::Result<ItemStore> {
    use backend::database::{Connector, Credential};
    use backend::store::postgres::{PoolSettings, PostgresStore};
    let credential = Credential::Password(settings.password.clone());
    let connector = Connector::new(
        settings,
        diag::dns::DnsResolver::with_servers(vec![dns], Duration::from_secs(1))?,
        None,
        credential,
        Duration::from_secs(5),
    )?;
    // As the binary: a database that cannot be used yet leaves the back end unready, saying why.
    let (store, failure) = PostgresStore::open_unready(
        connector,
        PoolSettings {
            max_size: 4,
            wait_timeout: Duration::from_secs(2),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("the lab's database: {e}"))?;
    if let Some(failure) = failure {
        tracing::warn!(code = failure.code().as_str(), error = %failure, "lab back end: its database cannot be used yet");
    }
    Ok(ItemStore::Postgres(store))
}

enum FrontendCredential<'a> {
    ApiKey(&'a str),
    Entra {
        endpoint: String,
        secret: &'a str,
        resource: &'a str,
    },
}

struct FrontendInstance<'a> {
    id: &'a str,
    backend_url: &'a str,
    credential: FrontendCredential<'a>,
    vnet_dns: SocketAddr,
    source: Option<IpAddr>,
    diag_token: &'a str,
    front_door_id: Option<&'a str>,
}

fn frontend_config(instance: FrontendInstance<'_>) -> anyhow::Result<frontend::FrontendConfig> {
    let (backend_auth, backend_api_key, backend_token_resource, identity_endpoint, identity_header) =
        match instance.credential {
            FrontendCredential::ApiKey(key) => (
                frontend::BackendAuth::ApiKey,
                Some(key.into()),
                None,
                None,
                None,
            ),
            FrontendCredential::Entra {
                endpoint,
                secret,
                resource,
            } => (
                frontend::BackendAuth::Entra,
                None,
                Some(resource.to_owned()),
                Some(endpoint.parse()?),
                Some(secret.into()),
            ),
        };
    Ok(frontend::FrontendConfig {
        host: HostArgs {
            site_name: Some("app-fe".into()),
            instance_id: Some(instance.id.into()),
            log_format: Some(LogFormat::Text),
            ..HostArgs::default()
        },
        backend_url: instance.backend_url.parse()?,
        backend_auth,
        backend_api_key,
        // The lab's apps share one /diag token, as the Bicep's do (one Key Vault secret).
        backend_diag_token: Some(instance.diag_token.into()),
        backend_token_resource,
        azure_client_id: None,
        identity_endpoint,
        identity_header,
        // Short enough that a blocked hop is diagnosed within the suite's 5 s caller check, long
        // enough that a busy machine (tests run many labs at once) is not taken for a stuck back end.
        backend_timeout_ms: 3_000,
        integration_subnet: Some(net(INTEGRATION_SUBNET)),
        front_door_id: instance.front_door_id.map(str::to_owned),
        dns: DnsArgs {
            dns_servers: Some(instance.vnet_dns.to_string()),
            dns_timeout_ms: 1_000,
            ..DnsArgs::default()
        },
        outbound: OutboundArgs {
            outbound_source_addr: instance.source,
        },
        diag: DiagArgs {
            diag_token: Some(instance.diag_token.into()),
            diag_allow: Some("127.0.0.0/8".into()),
        },
        relay: frontend::RelayArgs::default(),
    })
}

/// Serves an app instance on a fresh loopback port until the lab stops.
pub(crate) async fn serve_instance(
    app: axum::Router,
    stop: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stopped = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        if let Err(error) = hosting::serve(listener, app, stopped, Duration::from_secs(2)).await {
            tracing::error!(%error, "lab instance stopped");
        }
    });
    Ok(addr)
}

/// Binds the back end's public address and, with a private endpoint, the endpoint's address on
/// the same port (so one URL works through either).
async fn bind_backend_addresses(mode: Mode) -> anyhow::Result<(TcpListener, Option<TcpListener>)> {
    for _ in 0..20 {
        let public = TcpListener::bind((BACKEND_PUBLIC, 0)).await?;
        if mode == Mode::ServiceEndpoint {
            return Ok((public, None));
        }
        let port = public.local_addr()?.port();
        if let Ok(private) = TcpListener::bind((BACKEND_PRIVATE_ENDPOINT, port)).await {
            return Ok((public, Some(private)));
        }
    }
    anyhow::bail!("no port was free on both {BACKEND_PUBLIC} and {BACKEND_PRIVATE_ENDPOINT}")
}

/// A listener for an emulated address. A private endpoint's address routes only from inside the
/// VNet: connections from anywhere else are dropped at once.
struct EmulatorListener {
    inner: TcpListener,
    vnet_only: bool,
}

impl Listener for EmulatorListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = Listener::accept(&mut self.inner).await;
            if !self.vnet_only || in_vnet(peer.ip()) {
                return (stream, peer);
            }
            drop(stream);
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Serves what stands in front of an app (App Service's front end, or a gateway) on `listener`
/// until the lab stops.
pub(crate) fn spawn_front(
    listener: TcpListener,
    vnet_only: bool,
    app: axum::Router,
    stop: &CancellationToken,
) {
    let listener = EmulatorListener {
        inner: listener,
        vnet_only,
    }
    .tap_io(|_| {});
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let stopped = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await;
    });
}

/// Every instance of every app runs in this one process, each with its listeners, pools and DNS
/// sockets: the soft open-file limit is raised to the hard one, once (a desktop's default 1024
/// is too few for `--instances 100`, or for the tests' many labs at once).
fn raise_open_file_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "the open-file limit could not be raised"),
    });
}
