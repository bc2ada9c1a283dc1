//! The items store behind one interface, [`ItemStore`]: the embedded redb store under
//! `DATA_DIR` (the default: nothing to run) or PostgreSQL (`DATABASE_URL`: many instances share
//! it). Both give the same items, the same limit and the same errors.

pub mod embedded;
pub mod postgres;

use std::path::Path;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::database::DbFailure;

/// The most items the sample store holds; beyond it creation answers 409 `store_full`.
pub const MAX_ITEMS: u64 = 1_000;

/// One stored item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Item {
    /// Time-ordered id (UUID v7).
    pub id: Uuid,
    /// Short name, 1 to 80 characters.
    pub name: String,
    /// Optional note, up to 500 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
}

/// What can go wrong in the store. Details are logged, never returned to callers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or a transaction failed.
    #[error("database error: {0}")]
    Database(String),
    /// A stored record did not decode.
    #[error("corrupt record {id}: {source}")]
    Corrupt {
        /// The record's key.
        id: String,
        /// The decode error.
        source: serde_json::Error,
    },
    /// The store already holds [`MAX_ITEMS`].
    #[error("the store is full")]
    Full,
    /// Another process (an overlapping back end on the same `DATA_DIR`) holds the store's lock.
    #[error(
        "DATA_DIR is in use by another back end (its lock was not released in DATA_DIR_LOCK_WAIT_MS): one back end per DATA_DIR; stop the other one, or scale out on PostgreSQL (DATABASE_URL)"
    )]
    Locked,
    /// The blocking task was cancelled or panicked.
    #[error("store task failed: {0}")]
    Task(String),
    /// PostgreSQL could not be reached or refused (with its diagnosis).
    #[error("database unavailable: {0}")]
    Unavailable(DbFailure),
}

/// Which store is in use, as `/readyz` and the start-up log say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// redb under `DATA_DIR`.
    Embedded,
    /// PostgreSQL at `DATABASE_URL`.
    Postgres,
}

/// A cheap handle to the store in use, shared by every request.
#[derive(Clone, Debug)]
pub enum ItemStore {
    /// redb under `DATA_DIR`.
    Embedded(embedded::EmbeddedStore),
    /// PostgreSQL.
    Postgres(postgres::PostgresStore),
}

impl ItemStore {
    /// Opens (or creates) the embedded store in `data_dir`, creating the folder if needed.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        embedded::EmbeddedStore::open(data_dir).map(Self::Embedded)
    }

    /// Which store this is.
    pub fn kind(&self) -> StoreKind {
        match self {
            Self::Embedded(_) => StoreKind::Embedded,
            Self::Postgres(_) => StoreKind::Postgres,
        }
    }

    /// All items, oldest first.
    pub async fn list(&self) -> Result<Vec<Item>, StoreError> {
        match self {
            Self::Embedded(store) => store.list().await,
            Self::Postgres(store) => store.list().await,
        }
    }

    /// One item, if it exists.
    pub async fn get(&self, id: Uuid) -> Result<Option<Item>, StoreError> {
        match self {
            Self::Embedded(store) => store.get(id).await,
            Self::Postgres(store) => store.get(id).await,
        }
    }

    /// Stores a new item built from already validated fields; [`StoreError::Full`] at
    /// [`MAX_ITEMS`]. It returns once the item is durable.
    pub async fn create(&self, name: String, note: Option<String>) -> Result<Item, StoreError> {
        match self {
            Self::Embedded(store) => store.create(name, note).await,
            Self::Postgres(store) => store.create(name, note).await,
        }
    }

    /// Deletes an item; `false` when there was none.
    pub async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        match self {
            Self::Embedded(store) => store.delete(id).await,
            Self::Postgres(store) => store.delete(id).await,
        }
    }
}

/// A new item's id and creation time: UUID v7 (sorts by creation), RFC 3339 UTC to the second.
fn new_item(name: String, note: Option<String>) -> Item {
    Item {
        id: Uuid::now_v7(),
        name,
        note,
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    }
}
