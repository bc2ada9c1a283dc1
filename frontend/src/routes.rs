//! The front end's routes: the page and its forms, the same-origin JSON relay to the back end,
//! the path report and readiness. Handlers are thin: they call `BackendClient` or `path_report`.

use std::net::SocketAddr;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use hosting::error_response;
use serde::Deserialize;

use crate::AppState;
use crate::backend_client::{BackendClient, BackendResponse, Item, NewItem};
use crate::csrf;
use crate::diagnosis::Diagnosis;
use crate::front_door::ClientView;
use crate::path::{PathReport, PathVerdict, path_report};

/// All routes of the front end.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.css", get(stylesheet))
        .route("/items", post(add_item_form))
        .route("/items/{id}/delete", post(delete_item_form))
        .route("/api/items", get(relay_list).post(relay_create))
        .route("/api/items/{id}", get(relay_get).delete(relay_delete))
        .route("/api/path", get(api_path))
        .route("/readyz", get(readyz))
}

fn request_id(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers.get(hosting::server::REQUEST_ID_HEADER)
}

/// The caller as seen through `FRONT_DOOR_ID` (never fails: in-process tests have no peer).
struct Front(ClientView);

impl FromRequestParts<AppState> for Front {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer);
        Ok(Self(ClientView::of(
            &parts.headers,
            peer,
            state.front_door_id.as_deref(),
        )))
    }
}

/// The request id alone, for handlers that need nothing else of the headers (extracting the
/// whole `HeaderMap` copies every header of every relayed request).
struct RequestId(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(hosting::server::REQUEST_ID_HEADER)
                .cloned(),
        ))
    }
}

// ---- the page ----

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    items: &'a [Item],
    items_error: Option<&'a Diagnosis>,
    path: &'a PathReport,
    verdict_class: &'static str,
    verdict_title: &'static str,
    notice: Option<&'static str>,
    csrf_token: &'a str,
}

/// Notices the page can show after a form post (`/?notice=…`): only these fixed texts.
fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "added" => "Item added.",
        "deleted" => "Item deleted.",
        "invalid" => "That item was not accepted: names are 1 to 80 characters.",
        "full" => "The store is full: delete some items first.",
        "gone" => "That item was already gone.",
        "rejected" => "The back end refused the request.",
        "csrf" => "The form expired or came from another site; please try again.",
        "backend" => "The back end could not be reached; the path panel says why.",
        _ => return None,
    })
}

async fn index(
    State(state): State<AppState>,
    Front(front): Front,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let rid = request_id(&headers);
    let (items, path) = tokio::join!(
        state.backend.list_items(rid),
        path_report(&state, rid, front)
    );
    let (items, items_error) = match items {
        Ok(items) => (items, None),
        Err(diagnosis) => (Vec::new(), Some(diagnosis)),
    };
    let (verdict_class, verdict_title) = match path.verdict {
        PathVerdict::Locked => ("ok", "Locked down: the path is right"),
        PathVerdict::Unverified => ("unknown", "The back end answers; the path is not verified"),
        PathVerdict::Broken => ("broken", "The path to the back end is broken"),
    };
    let existing = csrf::cookie_token(&headers)
        .filter(|t| t.len() == 32 && t.chars().all(|c| c.is_ascii_hexdigit()));
    let token = existing.clone().unwrap_or_else(csrf::new_token);
    let notice = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(name, _)| name == "notice")
            .and_then(|(_, value)| notice_text(&value))
    });
    let page = IndexPage {
        items: &items,
        items_error: items_error.as_ref(),
        path: &path,
        verdict_class,
        verdict_title,
        notice,
        csrf_token: &token,
    };
    let html = match page.render() {
        Ok(html) => html,
        Err(error) => {
            tracing::error!(%error, "rendering the page failed");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the page could not be rendered",
                None,
            );
        }
    };
    let mut response = Html(html).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if existing.is_none()
        && let Ok(cookie) = HeaderValue::from_str(&csrf::set_cookie(&token, &headers))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/app.css"),
    )
}

#[derive(Deserialize)]
struct AddItemForm {
    name: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
struct DeleteItemForm {
    #[serde(default)]
    csrf: String,
}

fn form_allowed(headers: &HeaderMap, front: &ClientView, token: &str) -> bool {
    csrf::same_origin(headers, front.public_authority()) && csrf::form_token_matches(headers, token)
}

async fn add_item_form(
    State(state): State<AppState>,
    Front(front): Front,
    headers: HeaderMap,
    Form(form): Form<AddItemForm>,
) -> Redirect {
    if !form_allowed(&headers, &front, &form.csrf) {
        return Redirect::to("/?notice=csrf");
    }
    let item = NewItem {
        name: form.name,
        note: Some(form.note),
    };
    let sent = state.backend.create_item(&item, request_id(&headers)).await;
    Redirect::to(match sent {
        Ok(r) if r.status.is_success() => "/?notice=added",
        Ok(r) if r.status == StatusCode::CONFLICT => "/?notice=full",
        Ok(r) if r.status == StatusCode::BAD_REQUEST => "/?notice=invalid",
        Ok(_) => "/?notice=rejected",
        Err(_) => "/?notice=backend",
    })
}

async fn delete_item_form(
    State(state): State<AppState>,
    Front(front): Front,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DeleteItemForm>,
) -> Redirect {
    if !form_allowed(&headers, &front, &form.csrf) {
        return Redirect::to("/?notice=csrf");
    }
    let Ok(id) = uuid::Uuid::try_parse(&id) else {
        return Redirect::to("/?notice=invalid");
    };
    let sent = state.backend.delete_item(id, request_id(&headers)).await;
    Redirect::to(match sent {
        Ok(r) if r.status.is_success() => "/?notice=deleted",
        Ok(r) if r.status == StatusCode::NOT_FOUND => "/?notice=gone",
        Ok(_) => "/?notice=rejected",
        Err(_) => "/?notice=backend",
    })
}

// ---- the JSON relay ----

fn relayed(response: BackendResponse) -> Response {
    let mut out = (response.status, response.body).into_response();
    if let Some(content_type) = response.content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, content_type);
    }
    out
}

fn relay_result(result: Result<BackendResponse, Diagnosis>) -> Response {
    match result {
        Ok(response) => relayed(response),
        Err(diagnosis) => diagnosis.into_response(),
    }
}

fn cross_site() -> Response {
    error_response(
        StatusCode::FORBIDDEN,
        "cross_site_request",
        "state-changing requests must come from this site",
        Some("call the API from the front end's own pages"),
    )
}

/// The back-end path of an item: only UUIDs, so the relay can reach nothing but items.
fn item_path(id: &str) -> Option<String> {
    uuid::Uuid::try_parse(id)
        .ok()
        .map(|id| format!("/api/items/{id}"))
}

fn invalid_id() -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        "invalid_id",
        "item ids are UUIDs",
        None,
    )
}

async fn relay_list(State(backend): State<BackendClient>, RequestId(id): RequestId) -> Response {
    relay_result(
        backend
            .send(Method::GET, "/api/items", None, id.as_ref())
            .await,
    )
}

async fn relay_create(
    State(state): State<AppState>,
    Front(front): Front,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !csrf::same_origin(&headers, front.public_authority()) {
        return cross_site();
    }
    // A cross-site form cannot send this content type without a CORS preflight, which we never answer.
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body with Content-Type: application/json",
            None,
        );
    }
    relay_result(
        state
            .backend
            .send(Method::POST, "/api/items", Some(body), request_id(&headers))
            .await,
    )
}

async fn relay_get(
    State(backend): State<BackendClient>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
) -> Response {
    match item_path(&id) {
        Some(path) => relay_result(
            backend
                .send(Method::GET, &path, None, request_id.as_ref())
                .await,
        ),
        None => invalid_id(),
    }
}

async fn relay_delete(
    State(state): State<AppState>,
    Front(front): Front,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !csrf::same_origin(&headers, front.public_authority()) {
        return cross_site();
    }
    match uuid::Uuid::try_parse(&id) {
        Ok(id) => relay_result(state.backend.delete_item(id, request_id(&headers)).await),
        Err(_) => invalid_id(),
    }
}

// ---- the path report and readiness ----

async fn api_path(
    State(state): State<AppState>,
    Front(front): Front,
    headers: HeaderMap,
) -> Json<PathReport> {
    Json(path_report(&state, request_id(&headers), front).await)
}

async fn readyz(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let rid = request_id(&headers);
    let ready = match state.backend.caller(rid).await {
        // The back end answers: its own hop to the database must hold too.
        Ok(answer) => match state.backend.readiness(rid).await {
            Ok(db) => Ok((answer, db)),
            Err(d) if d.code.family() == diag::diagnosis::Family::Database => Err(d),
            // Readiness that says nothing of a database (an older back end): the call itself
            // answered, which is what this front end needs.
            Err(_) => Ok((answer, None)),
        },
        Err(diagnosis) => Err(diagnosis),
    };
    match ready {
        Ok(((seen, elapsed), readiness)) => Json(serde_json::json!({
            "status": "ready",
            "backend_instance": seen.instance,
            "backend_ms": diag::dns::round_ms(elapsed),
            "store": readiness.as_ref().and_then(|r| r.store.clone()),
            "database": readiness.and_then(|r| r.database),
        }))
        .into_response(),
        Err(diagnosis) => {
            let mut response = diagnosis.into_response();
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        }
    }
}
