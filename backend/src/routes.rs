//! The `/api` routes: the sample items resource and `GET /api/caller`.

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use hosting::forwarded::{ForwardedHop, parse_forwarded_for};
use hosting::{AddressClass, AddressForm, ApiJson, CallerAddr, ErrorEnvelope, Instance};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::CallerAuth;
use crate::caller::{CallerPolicy, ClientAddr, ClientIpSource};
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
        (status = 413, description = "The body is larger than 16 KiB (payload_too_large)", body = ErrorEnvelope),
        (status = 415, description = "The body is not sent as application/json (unsupported_media_type)", body = ErrorEnvelope),
        (status = 422, description = "Valid JSON of the wrong shape (invalid_json)", body = ErrorEnvelope),
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
        (status = 401, description = "Missing or invalid credential: API key, or Entra token (missing_token, wrong_audience, token_expired, …)", body = ErrorEnvelope),
        (status = 403, description = "Caller outside ALLOWED_CALLERS, or a valid token of a caller that is not allowed (app_not_allowed, object_not_allowed, role_missing, delegated_token)", body = ErrorEnvelope),
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
        (status = 401, description = "Missing or invalid credential: API key, or Entra token (missing_token, wrong_audience, token_expired, …)", body = ErrorEnvelope),
        (status = 403, description = "Caller outside ALLOWED_CALLERS, or a valid token of a caller that is not allowed (app_not_allowed, object_not_allowed, role_missing, delegated_token)", body = ErrorEnvelope),
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

/// `GET /api/caller`: how the back end sees its caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CallerView {
    /// The client address the back end settled on, as it arrived (IPv4-mapped IPv6 as its IPv4).
    pub client_ip: String,
    /// The form of `client_ip`: `ipv4`, `service_endpoint` (an IPv6 address in App Service's
    /// `fde4:8dba::/32` carrying the caller's VNet IPv4) or `ipv6` (any other IPv6 address).
    pub address_form: AddressForm,
    /// The VNet IPv4 a service-endpoint caller carries (the address IPv4 ranges are compared
    /// with); null for other forms.
    pub vnet_ip: Option<String>,
    /// What the form means, for IPv6 callers: `the service-endpoint form of 10.0.1.4`, or that the
    /// address cannot be compared with IPv4 ranges; null for IPv4.
    pub client_ip_note: Option<String>,
    /// Where it came from: `x-client-ip`, `x-forwarded-for` or `peer`.
    pub source: ClientIpSource,
    /// The TCP peer (`ip:port`): on App Service, the platform's front end.
    pub peer: String,
    /// The parsed `X-Forwarded-For` chain, leftmost first (informational: only the source above
    /// decides).
    pub forwarded_for: Vec<ForwardedHop>,
    /// The class of `client_ip` as it arrived (`private`, `public`, `loopback`, `unique_local` for
    /// a service-endpoint caller, …).
    pub class: AddressClass,
    /// Whether `ALLOWED_CALLERS` lets this client in (always true when it is empty).
    pub allowed: bool,
    /// Whether an `ALLOWED_CALLERS` list is configured at all.
    pub allow_list_enforced: bool,
    /// How the credential gate let the caller in (`mode`; in Entra mode the calling `app_id`,
    /// `object_id` and `roles` — never the token).
    pub auth: CallerAuth,
    /// Which back-end instance answered.
    pub instance: Instance,
}

impl CallerView {
    /// Builds the view from what the request carried.
    pub fn new(
        client: ClientAddr,
        headers: &HeaderMap,
        peer: SocketAddr,
        policy: &CallerPolicy,
        auth: CallerAuth,
        instance: Instance,
    ) -> Self {
        let decoded = CallerAddr::of(client.ip);
        Self {
            client_ip: client.ip.to_string(),
            address_form: decoded.form(),
            vnet_ip: decoded.vnet_ip().map(|ip| ip.to_string()),
            client_ip_note: decoded.note(),
            source: client.source,
            peer: peer.to_string(),
            forwarded_for: headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .map(parse_forwarded_for)
                .unwrap_or_default(),
            class: AddressClass::of(client.ip),
            allowed: policy.allows(client.ip),
            allow_list_enforced: policy.is_enforced(),
            auth,
            instance,
        }
    }
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

    #[test]
    fn the_view_shows_both_forms() {
        let ip: std::net::IpAddr = "fde4:8dba:2300:5457:6f23:200:a00:104".parse().unwrap();
        let view = CallerView::new(
            ClientAddr {
                ip,
                source: ClientIpSource::XForwardedFor,
            },
            &HeaderMap::new(),
            "127.0.0.1:5000".parse().unwrap(),
            &CallerPolicy::default(),
            CallerAuth::plain(crate::auth::AuthModeName::None),
            Instance {
                site: "be".into(),
                id: "i".into(),
            },
        );
        assert_eq!(view.client_ip, "fde4:8dba:2300:5457:6f23:200:a00:104");
        assert_eq!(view.address_form, AddressForm::ServiceEndpoint);
        assert_eq!(view.vnet_ip.as_deref(), Some("10.0.1.4"));
        assert_eq!(
            view.client_ip_note.as_deref(),
            Some("the service-endpoint form of 10.0.1.4")
        );
        assert_eq!(view.class, AddressClass::UniqueLocal);
    }
}
