//! The PostgreSQL store: any number of back-end instances share one database. Connections come
//! from a small pool whose every new connection goes through [`Connector`] (so a token used as
//! the password is fetched fresh for each); the schema is brought up to date at start-up by the
//! embedded migrations, under an advisory lock so that instances starting together apply each
//! migration once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Pool, PoolError, RecycleError, RecycleResult};
use serde::Serialize;
use tokio_postgres::Client;
use uuid::Uuid;

use super::{Item, MAX_ITEMS, StoreError};
use crate::database::{ConnectFacts, Connector, DbFailure, DbFailureKind};

/// The migrations, in order: `(version, name, SQL)`. Applied ones are recorded in
/// `lockdown_migrations`; a version is never edited once released, only new ones added.
pub const MIGRATIONS: &[(i32, &str, &str)] =
    &[(1, "items", include_str!("../../migrations/0001_items.sql"))];

/// Advisory lock held while migrating: instances starting at once wait for each other.
const MIGRATION_LOCK: i64 = 0x6c6f_636b_646f_776e; // "lockdown"
/// Advisory lock held by each insert's transaction, so that the count against [`MAX_ITEMS`]
/// and the insert are one step across every instance.
const INSERT_LOCK: i64 = 0x6c6f_636b_6974_656d; // "lockitem"

/// A pooled connection idle this long is verified before it is handed out again.
const VERIFY_IDLE_AFTER: Duration = Duration::from_secs(5);

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Most connections this instance opens.
    pub max_size: usize,
    /// Longest wait for a connection (a free one, or a new one being opened).
    pub wait_timeout: Duration,
}

/// Opens connections for the pool; a closed connection is not handed out again.
struct PgManager {
    connector: Arc<Connector>,
}

impl managed::Manager for PgManager {
    type Type = Client;
    type Error = DbFailure;

    async fn create(&self) -> Result<Client, DbFailure> {
        self.connector.connect().await.map(|(client, _)| client)
    }

    async fn recycle(&self, client: &mut Client, metrics: &Metrics) -> RecycleResult<DbFailure> {
        if client.is_closed() {
            return Err(RecycleError::message("the connection was closed"));
        }
        // A connection idle for a while may have been cut without a word (a failover, a
        // firewall's idle timeout): one empty round trip proves it before it is handed out.
        // Busy connections skip it, so the relay does not pay a round trip per request.
        if metrics.last_used() >= VERIFY_IDLE_AFTER && client.simple_query("").await.is_err() {
            return Err(RecycleError::message("the idle connection was cut"));
        }
        Ok(())
    }
}

/// A cheap handle to the pool, shared by every request.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool<PgManager>,
    connector: Arc<Connector>,
    /// Set once the migrations ran (at start-up, or on the first call after the database came
    /// back, for a store opened with [`PostgresStore::open_unready`]).
    migrated: Arc<tokio::sync::OnceCell<()>>,
}

/// How the database hop looked to a readiness check.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseCheck {
    /// What the connect saw.
    #[serde(flatten)]
    pub facts: ConnectFacts,
    /// Connect and `SELECT 1`, in milliseconds.
    pub latency_ms: u64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, applies the migrations that are missing, and returns the store. A failed first
    /// connect is returned as is: start-up says why the database cannot be used.
    pub async fn open(connector: Connector, pool: PoolSettings) -> Result<Self, StoreError> {
        let store = Self::unmigrated(connector, pool)?;
        let (mut client, _) = store
            .connector
            .connect()
            .await
            .map_err(StoreError::Unavailable)?;
        migrate(&mut client).await?;
        let _ = store.migrated.set(());
        Ok(store)
    }

    /// As [`PostgresStore::open`], but a database that cannot be reached or logged into now does
    /// not stop the caller: the store comes back with the failure, answers every call with it
    /// (`StoreError::Unavailable`, so `/readyz` and the API say why) and migrates on the first
    /// call that gets a connection. Other errors (a migration that fails) are returned.
    pub async fn open_unready(
        connector: Connector,
        pool: PoolSettings,
    ) -> Result<(Self, Option<DbFailure>), StoreError> {
        let store = Self::unmigrated(connector, pool)?;
        match store.ensure_migrated().await {
            Ok(()) => Ok((store, None)),
            Err(StoreError::Unavailable(failure)) => Ok((store, Some(failure))),
            Err(other) => Err(other),
        }
    }

    fn unmigrated(connector: Connector, pool: PoolSettings) -> Result<Self, StoreError> {
        let connector = Arc::new(connector);
        let pool = Pool::builder(PgManager {
            connector: Arc::clone(&connector),
        })
        .max_size(pool.max_size)
        .wait_timeout(Some(pool.wait_timeout))
        .create_timeout(Some(pool.wait_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(Self {
            pool,
            connector,
            migrated: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    /// Runs the migrations once per store (callers at the same time wait for the one running).
    async fn ensure_migrated(&self) -> Result<(), StoreError> {
        self.migrated
            .get_or_try_init(|| async {
                let mut client = self.raw_client().await?;
                migrate(&mut client).await.map(|_| ())
            })
            .await
            .map(|_| ())
    }

    /// The connector (settings, and fresh connections for checks).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// A fresh connection and `SELECT 1`, so that the hop's address, TLS and latency are
    /// measured now (a pooled connection would hide a broken path until it closes).
    pub async fn check(&self) -> Result<DatabaseCheck, DbFailure> {
        let started = Instant::now();
        let (client, facts) = self.connector.connect().await?;
        client.simple_query("SELECT 1").await.map_err(|e| {
            let mut failure = query_failure(&e);
            failure.address = Some(facts.address);
            failure
        })?;
        Ok(DatabaseCheck {
            facts,
            latency_ms: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
        })
    }

    async fn client(&self) -> Result<managed::Object<PgManager>, StoreError> {
        self.ensure_migrated().await?;
        self.raw_client().await
    }

    async fn raw_client(&self) -> Result<managed::Object<PgManager>, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(failure) => StoreError::Unavailable(failure),
            PoolError::Timeout(_) => StoreError::Unavailable(DbFailure {
                kind: DbFailureKind::Other,
                message: "no database connection free in time (DB_POOL_SIZE)".into(),
                address: None,
            }),
            other => StoreError::Database(other.to_string()),
        })
    }

    /// All items, oldest first.
    pub async fn list(&self) -> Result<Vec<Item>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, name, note, created_at FROM items ORDER BY id",
                &[],
            )
            .await
            .map_err(store_error)?;
        Ok(rows.iter().map(item).collect())
    }

    /// One item, if it exists.
    pub async fn get(&self, id: Uuid) -> Result<Option<Item>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, name, note, created_at FROM items WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(store_error)?;
        Ok(row.as_ref().map(item))
    }

    /// Stores a new item: counted and inserted in one transaction under `INSERT_LOCK`, and
    /// acknowledged only once committed (`synchronous_commit` is on by default: flushed).
    pub async fn create(&self, name: String, note: Option<String>) -> Result<Item, StoreError> {
        let mut client = self.client().await?;
        let item = super::new_item(name, note);
        let txn = client.transaction().await.map_err(store_error)?;
        txn.execute("SELECT pg_advisory_xact_lock($1)", &[&INSERT_LOCK])
            .await
            .map_err(store_error)?;
        let count: i64 = txn
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .map_err(store_error)?
            .get(0);
        if u64::try_from(count).unwrap_or(u64::MAX) >= MAX_ITEMS {
            return Err(StoreError::Full);
        }
        txn.execute(
            "INSERT INTO items (id, name, note, created_at) VALUES ($1, $2, $3, $4)",
            &[&item.id, &item.name, &item.note, &item.created_at],
        )
        .await
        .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        Ok(item)
    }

    /// Deletes an item; `false` when there was none.
    pub async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let deleted = client
            .execute("DELETE FROM items WHERE id = $1", &[&id])
            .await
            .map_err(store_error)?;
        Ok(deleted > 0)
    }
}

fn item(row: &tokio_postgres::Row) -> Item {
    Item {
        id: row.get(0),
        name: row.get(1),
        note: row.get(2),
        created_at: row.get(3),
    }
}

fn store_error(error: tokio_postgres::Error) -> StoreError {
    if error.is_closed() {
        StoreError::Unavailable(query_failure(&error))
    } else {
        StoreError::Database(diag::failure::root_cause(&error))
    }
}

fn query_failure(error: &tokio_postgres::Error) -> DbFailure {
    DbFailure {
        kind: DbFailureKind::Other,
        message: format!("the query failed: {}", diag::failure::root_cause(error)),
        address: None,
    }
}

/// Applies the missing `MIGRATIONS`, each in its own transaction, under `MIGRATION_LOCK`
/// (a session lock: released when this connection ends, even if start-up dies half way).
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(store_error)?;
    let result = apply_missing(client).await;
    // Unlocking can only fail with the connection gone, which releases the lock anyway.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn apply_missing(client: &mut Client) -> Result<Vec<i32>, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS lockdown_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(store_error)?;
    let applied: Vec<i32> = client
        .query("SELECT version FROM lockdown_migrations", &[])
        .await
        .map_err(store_error)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut done = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let txn = client.transaction().await.map_err(store_error)?;
        txn.batch_execute(sql)
            .await
            .map_err(|e| StoreError::Database(format!("migration {version} ({name}): {e}")))?;
        txn.execute(
            "INSERT INTO lockdown_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        tracing::info!(
            migration.version = version,
            migration.name = name,
            "database migration applied"
        );
        done.push(*version);
    }
    Ok(done)
}
