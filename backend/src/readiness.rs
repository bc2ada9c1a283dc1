//! `GET /readyz`: can this instance serve items now? On the embedded store it can once started;
//! on PostgreSQL a fresh connection and `SELECT 1`, bounded by `DB_CONNECT_TIMEOUT_MS`, say so
//! and describe the hop (the database's resolved address and its class, TLS verified, latency),
//! which the front end shows as the path's third hop. Behind the same gates as `/api` (it names
//! the database's address), unlike `/healthz`, which App Service's health check calls.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::AppState;
use crate::database::DbFailure;
use crate::store::{ItemStore, StoreKind};

/// What `/readyz` reports of the database hop.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseHop {
    /// The server's host name, as in `DATABASE_URL`.
    pub host: String,
    /// The address connected to (absent when the name did not resolve).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Its class (`private`, `public`, `loopback`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<hosting::netclass::AddressClass>,
    /// TLS with the certificate and host name verified.
    pub tls_verified: bool,
    /// Connect and `SELECT 1`, in milliseconds (on success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// The readiness answer: `status` `ready`, or the diagnosis' envelope with the hop beside it.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// `ready`.
    pub status: &'static str,
    /// Which store: `embedded` or `postgres`.
    pub store: StoreKind,
    /// The database hop (PostgreSQL only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseHop>,
}

/// Checks the store: `Err` carries the failure and what was seen of the hop.
pub async fn check(store: &ItemStore) -> Result<Readiness, (DbFailure, DatabaseHop)> {
    let ItemStore::Postgres(pg) = store else {
        return Ok(Readiness {
            status: "ready",
            store: StoreKind::Embedded,
            database: None,
        });
    };
    let connector = pg.connector();
    let settings = connector.settings();
    let bounded = tokio::time::timeout(connector.timeout(), pg.check()).await;
    let result = bounded.unwrap_or_else(|_| {
        Err(DbFailure {
            kind: crate::database::DbFailureKind::Timeout,
            message: format!(
                "no answer to SELECT 1 within {} ms",
                connector.timeout().as_millis()
            ),
            address: None,
        })
    });
    match result {
        Ok(check) => Ok(Readiness {
            status: "ready",
            store: StoreKind::Postgres,
            database: Some(DatabaseHop {
                host: settings.host.clone(),
                address: Some(check.facts.address.to_string()),
                class: Some(check.facts.class),
                tls_verified: check.facts.tls_verified,
                latency_ms: Some(check.latency_ms),
            }),
        }),
        Err(failure) => {
            let hop = DatabaseHop {
                host: settings.host.clone(),
                address: failure.address.map(|a| a.to_string()),
                class: failure
                    .address
                    .map(|a| hosting::netclass::AddressClass::of(a.ip())),
                tls_verified: false,
                latency_ms: None,
            };
            Err((failure, hop))
        }
    }
}

/// `GET /readyz`: 200 with [`Readiness`], or 503 with the database's diagnosis code in the
/// shared envelope and the hop under `database`.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match check(&state.store).await {
        Ok(ready) => Json(ready).into_response(),
        Err((failure, hop)) => {
            let code = failure.code();
            tracing::warn!(code = code.as_str(), error = %failure, "not ready: database");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "error": {
                        "code": code.as_str(),
                        "message": format!("the back end cannot use its database: {failure}"),
                        "hint": code.next_step(),
                    },
                    "store": StoreKind::Postgres,
                    "database": hop,
                })),
            )
                .into_response()
        }
    }
}
