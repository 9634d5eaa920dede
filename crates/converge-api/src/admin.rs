//! Converge's admin API under `/_converge/admin/v1`, for server admins, and the first-run
//! facts at `/_converge/v1/setup` for anyone. The shapes are documented in `docs/admin-api.md`.
//!
//! - users: `GET /users?search=&from=&limit=`, `POST /users`, `POST /users/{userId}/deactivate`,
//!   `POST /users/{userId}/password`, `PUT /users/{userId}/admin`
//! - registration tokens: `GET`, `POST /registration_tokens`, `GET`, `DELETE
//!   /registration_tokens/{token}`
//! - rooms: `GET /rooms?search=&from=&limit=`, `POST /rooms/{roomId}/shutdown`
//! - `GET /reports?from=&limit=`, `GET /metrics` (Prometheus text), `GET /analytics?days=`
//! - application services: `GET /appservices`, `POST /appservices/reload`

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Authed, JsonBody};
use crate::error::{Error, Result};
use crate::state::AppState;
use converge_service::config::human_duration;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_converge/v1/setup", get(setup))
        .route(
            "/_converge/admin/v1/users",
            get(list_users).post(create_user),
        )
        .route(
            "/_converge/admin/v1/users/{user_id}/deactivate",
            post(deactivate_user),
        )
        .route(
            "/_converge/admin/v1/users/{user_id}/password",
            post(reset_password),
        )
        .route("/_converge/admin/v1/users/{user_id}/admin", put(set_admin))
        .route(
            "/_converge/admin/v1/registration_tokens",
            get(list_registration_tokens).post(create_registration_token),
        )
        .route(
            "/_converge/admin/v1/registration_tokens/{token}",
            get(get_registration_token).delete(delete_registration_token),
        )
        .route("/_converge/admin/v1/rooms", get(list_rooms))
        .route(
            "/_converge/admin/v1/rooms/{room_id}/shutdown",
            post(shut_down_room),
        )
        .route("/_converge/admin/v1/reports", get(list_reports))
        .route("/_converge/admin/v1/metrics", get(metrics))
        .route("/_converge/admin/v1/analytics", get(analytics))
        .route("/_converge/admin/v1/appservices", get(list_appservices))
        .route(
            "/_converge/admin/v1/appservices/reload",
            post(reload_appservices),
        )
}

async fn list_appservices(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Value>> {
    let list = state.services.appservices.list(&caller).await?;
    Ok(Json(json!({ "appservices": list })))
}

async fn reload_appservices(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Value>> {
    let loaded = state.services.appservices.reload(&caller).await?;
    Ok(Json(json!({ "loaded": loaded })))
}

/// Parses a query string, answering bad ones with `M_INVALID_PARAM`.
fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T> {
    query
        .map(|Query(q)| q)
        .map_err(|e| Error::InvalidParam(e.body_text()).into())
}

async fn setup(State(state): State<AppState>) -> Result<Json<converge_service::admin::Setup>> {
    Ok(Json(state.services.admin.setup().await?))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    search: String,
    from: Option<String>,
    limit: Option<u32>,
}

async fn list_users(
    State(state): State<AppState>,
    Authed(caller): Authed,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let q = query(q)?;
    let page = state
        .services
        .admin
        .users(&caller, &q.search, q.from.as_deref(), q.limit)
        .await?;
    Ok(Json(
        json!({ "users": page.items, "next_from": page.next_from }),
    ))
}

#[derive(Deserialize)]
pub struct NewUser {
    localpart: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

async fn create_user(
    State(state): State<AppState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<Json<Value>> {
    let user_id = state
        .services
        .admin
        .create_user(&caller, &body.localpart, body.password, body.admin)
        .await?;
    Ok(Json(json!({ "user_id": user_id })))
}

async fn deactivate_user(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    state.services.admin.deactivate(&caller, &user_id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct NewPassword {
    password: String,
    #[serde(default = "yes")]
    logout_devices: bool,
}

fn yes() -> bool {
    true
}

async fn reset_password(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(user_id): Path<String>,
    JsonBody(body): JsonBody<NewPassword>,
) -> Result<Json<Value>> {
    state
        .services
        .admin
        .reset_password(&caller, &user_id, body.password, body.logout_devices)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct AdminFlag {
    admin: bool,
}

async fn set_admin(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(user_id): Path<String>,
    JsonBody(body): JsonBody<AdminFlag>,
) -> Result<Json<Value>> {
    state
        .services
        .admin
        .set_admin(&caller, &user_id, body.admin)
        .await?;
    Ok(Json(json!({})))
}

async fn list_registration_tokens(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> Result<Json<Value>> {
    let tokens: Vec<TokenInfo> = state
        .services
        .admin
        .tokens(&caller)
        .await?
        .into_iter()
        .map(TokenInfo::from)
        .collect();
    Ok(Json(json!({ "tokens": tokens })))
}

async fn delete_registration_token(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(token): Path<String>,
) -> Result<Json<Value>> {
    state.services.admin.delete_token(&caller, &token).await?;
    Ok(Json(json!({})))
}

async fn list_rooms(
    State(state): State<AppState>,
    Authed(caller): Authed,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let q = query(q)?;
    let page = state
        .services
        .admin
        .rooms(&caller, &q.search, q.from.as_deref(), q.limit)
        .await?;
    Ok(Json(
        json!({ "rooms": page.items, "next_from": page.next_from }),
    ))
}

async fn shut_down_room(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let left = state
        .services
        .admin
        .shut_down_room(&caller, &room_id)
        .await?;
    Ok(Json(json!({ "kicked_users": left })))
}

async fn metrics(State(state): State<AppState>, Authed(caller): Authed) -> Result<Response> {
    state.services.admin.require(&caller)?;
    Ok(crate::ops::metrics_text(&state).into_response())
}

#[derive(Deserialize)]
pub struct AnalyticsQuery {
    days: Option<u32>,
}

async fn analytics(
    State(state): State<AppState>,
    Authed(caller): Authed,
    q: Result<Query<AnalyticsQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let q = query(q)?;
    Ok(Json(
        state.services.analytics.report(&caller, q.days).await?,
    ))
}

#[derive(Deserialize)]
pub struct NewToken {
    /// How many registrations may use the token; unlimited if absent.
    uses_allowed: Option<u32>,
    /// How long the token is valid, e.g. `7d`; forever if absent.
    expires_in: Option<String>,
}

#[derive(Serialize)]
pub struct TokenInfo {
    token: String,
    uses_allowed: Option<i64>,
    completed: i64,
    /// Milliseconds since the Unix epoch.
    expiry_time: Option<i64>,
}

impl From<converge_service::accounts::RegistrationToken> for TokenInfo {
    fn from(t: converge_service::accounts::RegistrationToken) -> Self {
        Self {
            token: t.token,
            uses_allowed: t.uses_allowed,
            completed: t.completed,
            expiry_time: t.expiry_ts,
        }
    }
}

async fn create_registration_token(
    State(state): State<AppState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<Json<TokenInfo>> {
    state.services.admin.require(&caller)?;
    let expires_in = body
        .expires_in
        .as_deref()
        .map(human_duration::parse)
        .transpose()
        .map_err(Error::InvalidParam)?;
    let token = state
        .services
        .registration
        .create_token(body.uses_allowed, expires_in)
        .await?;
    Ok(Json(token.into()))
}

async fn get_registration_token(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(token): Path<String>,
) -> Result<Json<TokenInfo>> {
    state.services.admin.require(&caller)?;
    let token = state.services.registration.token(&token).await?;
    Ok(Json(token.into()))
}

#[derive(Deserialize)]
pub struct ReportsQuery {
    /// `next_token` of the previous page.
    from: Option<String>,
    limit: Option<u32>,
}

async fn list_reports(
    State(state): State<AppState>,
    Authed(caller): Authed,
    q: Result<Query<ReportsQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>> {
    let query = query(q)?;
    let page = state
        .services
        .reports
        .list(&caller, query.from.as_deref(), query.limit)
        .await?;
    let mut body = serde_json::json!({ "reports": page.reports });
    if let Some(next) = page.next_token {
        body["next_token"] = serde_json::json!(next);
    }
    Ok(Json(body))
}
