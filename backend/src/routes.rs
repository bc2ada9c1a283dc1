//! The `/api` routes: the sample items resource and `GET /api/caller`.

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use hosting::{ApiJson, ErrorEnvelope};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::CallerAuth;
use crate::caller::{CallerView, ClientAddr};
use crate::error::ApiError;
use crate::store::Item;

/// Longest item name, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// Longest item note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// The routes, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_items, create_item))
        .routes(routes!(get_item, delete_item))
        .routes(routes!(caller))
}

/// `GET /api/items` response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ItemList {
    /// All items, oldest first.
    pub items: Vec<Item>,
}

/// `POST /api/items` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// 1 to 80 characters, no control characters; surrounding spaces are trimmed.
    pub name: String,
    /// Up to 500 characters; line breaks allowed.
    #[serde(default)]
    pub note: Option<String>,
}

impl NewItem {
    /// Checks and normalises the fields.
    pub fn validate(self) -> Result<(String, Option<String>), ApiError> {
        let name = self.name.trim().to_owned();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            return Err(ApiError::InvalidItem(format!(
                "name must be 1 to {MAX_NAME_CHARS} characters, got {chars}"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(ApiError::InvalidItem(
                "name must not contain control characters".into(),
            ));
        }
        let note = self
            .note
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        if let Some(note) = &note {
            if note.chars().count() > MAX_NOTE_CHARS {
                return Err(ApiError::InvalidItem(format!(
                    "note must be at most {MAX_NOTE_CHARS} characters"
                )));
            }
            if note
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
            {
                return Err(ApiError::InvalidItem(
                    "note must not contain control characters other than line breaks and tabs"
                        .into(),
                ));
            }
        }
        Ok((name, note))
    }
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::InvalidId)
}

/// List all items.
#[utoipa::path(get, path = "/api/items", tag = "items",
    security(("api_key" = []), ("entra" = [])),
    responses(
        (status = 200, description = "All items, oldest first", body = ItemList),
        (status = 401, description = "Missing or invalid credential: API key, or Entra token (missing_token, wrong_audience, token_expired, …)", body = ErrorEnvelope),
        (status = 403, description = "Caller outside ALLOWED_CALLERS, or a valid token of a caller that is not allowed (app_not_allowed, object_not_allowed, role_missing, delegated_token)", body = ErrorEnvelope),
    ))]
async fn list_items(State(state): State<AppState>) -> Result<Json<ItemList>, ApiError> {
    Ok(Json(ItemList {
        items: state.store.list().await?,
    }))
}

/// Create an item.
#[utoipa::path(post, path = "/api/items", tag = "items",
    security(("api_key" = []), ("entra" = [])),
    request_body = NewItem,
    responses(
        (status = 201, description = "Created", body = Item),
        (status = 400, description = "Invalid item or JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing or invalid credential: API key, or Entra token (missing_token, wrong_audience, token_expired, …)", body = ErrorEnvelope),
        (status = 403, description = "Caller outside ALLOWED_CALLERS, or a valid token of a caller that is not allowed (app_not_allowed, object_not_allowed, role_missing, delegated_token)", body = ErrorEnvelope),
        (status = 409, description = "The store is full", body = ErrorEnvelope),
    ))]
async fn create_item(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewItem>,
) -> Result<impl IntoResponse, ApiError> {
    let (name, note) = new.validate()?;
    let item = state.store.create(name, note).await?;
    let location = format!("/api/items/{}", item.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(item),
    ))
}

/// Get one item.
#[utoipa::path(get, path = "/api/items/{id}", tag = "items",
    security(("api_key" = []), ("entra" = [])),
    params(("id" = String, Path, description = "Item id (UUID)")),
    responses(
        (status = 200, description = "The item", body = Item),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 404, description = "No such item", body = ErrorEnvelope),
    ))]
async fn get_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Item>, ApiError> {
    let id = parse_id(&id)?;
    state
        .store
        .get(id)
        .await?
        .map(Json)
        .ok_or(ApiError::ItemNotFound)
}

/// Delete one item.
#[utoipa::path(delete, path = "/api/items/{id}", tag = "items",
    security(("api_key" = []), ("entra" = [])),
    params(("id" = String, Path, description = "Item id (UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 404, description = "No such item", body = ErrorEnvelope),
    ))]
async fn delete_item(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    if state.store.delete(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::ItemNotFound)
    }
}

/// How the back end sees its caller: client address, its source, the forwarded chain, its class,
/// whether it is allowed, how its credential let it in (in Entra mode: which application and
/// object called), and which instance answered.
#[utoipa::path(get, path = "/api/caller", tag = "diagnostics",
    security(("api_key" = []), ("entra" = [])),
    responses(
        (status = 200, description = "The caller as seen here", body = CallerView),
        (status = 401, description = "Missing or invalid credential: API key, or Entra token (missing_token, wrong_audience, token_expired, …)", body = ErrorEnvelope),
        (status = 403, description = "Caller outside ALLOWED_CALLERS, or a valid token of a caller that is not allowed (app_not_allowed, object_not_allowed, role_missing, delegated_token)", body = ErrorEnvelope),
    ))]
async fn caller(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    Extension(auth): Extension<CallerAuth>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Json<CallerView> {
    Json(CallerView::new(
        client,
        &headers,
        peer,
        &state.callers,
        auth,
        (*state.instance).clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_item(name: &str, note: Option<&str>) -> NewItem {
        NewItem {
            name: name.into(),
            note: note.map(Into::into),
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(new_item("  milk ", None).validate().unwrap().0, "milk");
        assert!(new_item("   ", None).validate().is_err());
        assert!(new_item(&"x".repeat(81), None).validate().is_err());
        assert!(new_item(&"é".repeat(80), None).validate().is_ok());
        assert!(new_item("a\u{7}b", None).validate().is_err());
    }

    #[test]
    fn notes_allow_line_breaks_but_not_other_controls() {
        assert!(new_item("a", Some("line\nbreak")).validate().is_ok());
        assert!(new_item("a", Some("bell\u{7}")).validate().is_err());
        assert!(new_item("a", Some(&"n".repeat(501))).validate().is_err());
        assert_eq!(new_item("a", Some("  ")).validate().unwrap().1, None);
    }
}
