//! The embedded store: redb under `DATA_DIR`, one file that one process opens, so data survives
//! restarts and concurrent writes are serialised by its write transactions.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use uuid::Uuid;

use super::{Item, MAX_ITEMS, StoreError};

/// Items by id (UUID v7, so keys sort by creation time), stored as JSON.
const ITEMS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("items");

fn db_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Database(error.to_string())
}

/// A cheap handle to the redb database, shared by every request.
#[derive(Clone, Debug)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `data_dir`, creating the folder if needed.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(db_error)?;
        let db = Database::create(data_dir.join("items.redb")).map_err(|error| match error {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
            other => db_error(other),
        })?;
        let txn = db.begin_write().map_err(db_error)?;
        txn.open_table(ITEMS).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// All items, oldest first.
    pub async fn list(&self) -> Result<Vec<Item>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(db_error)?;
            let table = txn.open_table(ITEMS).map_err(db_error)?;
            let mut items = Vec::new();
            for entry in table.iter().map_err(db_error)? {
                let (key, value) = entry.map_err(db_error)?;
                items.push(decode(key.value(), value.value())?);
            }
            Ok(items)
        })
        .await
    }

    /// One item, if it exists.
    pub async fn get(&self, id: Uuid) -> Result<Option<Item>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(db_error)?;
            let table = txn.open_table(ITEMS).map_err(db_error)?;
            let key = id.to_string();
            match table.get(key.as_str()).map_err(db_error)? {
                Some(value) => Ok(Some(decode(&key, value.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Stores a new item built from already validated fields.
    pub async fn create(&self, name: String, note: Option<String>) -> Result<Item, StoreError> {
        self.blocking(move |db| {
            let item = super::new_item(name, note);
            let bytes = serde_json::to_vec(&item).map_err(db_error)?;
            let txn = db.begin_write().map_err(db_error)?;
            {
                let mut table = txn.open_table(ITEMS).map_err(db_error)?;
                if table.len().map_err(db_error)? >= MAX_ITEMS {
                    return Err(StoreError::Full);
                }
                table
                    .insert(item.id.to_string().as_str(), bytes.as_slice())
                    .map_err(db_error)?;
            }
            txn.commit().map_err(db_error)?;
            Ok(item)
        })
        .await
    }

    /// Deletes an item; `false` when there was none.
    pub async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(db_error)?;
            let existed = {
                let mut table = txn.open_table(ITEMS).map_err(db_error)?;
                table
                    .remove(id.to_string().as_str())
                    .map_err(db_error)?
                    .is_some()
            };
            txn.commit().map_err(db_error)?;
            Ok(existed)
        })
        .await
    }

    /// Runs a redb call off the async runtime: redb is synchronous and may fsync.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn decode(id: &str, bytes: &[u8]) -> Result<Item, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        id: id.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let kept = store
            .create("kept".into(), Some("note".into()))
            .await
            .unwrap();
        let gone = store.create("gone".into(), None).await.unwrap();
        assert!(store.delete(gone.id).await.unwrap());
        assert!(!store.delete(gone.id).await.unwrap());
        drop(store);

        let reopened = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(reopened.list().await.unwrap(), vec![kept.clone()]);
        assert_eq!(reopened.get(kept.id).await.unwrap(), Some(kept));
        assert_eq!(reopened.get(gone.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn concurrent_writes_all_land_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let writers: Vec<_> = (0..50)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { store.create(format!("item {n}"), None).await })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        let mut names: Vec<_> = store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect();
        names.sort();
        let mut want: Vec<_> = (0..50).map(|n| format!("item {n}")).collect();
        want.sort();
        assert_eq!(names, want);
    }
}
