//! Converge's admin API under `/_converge/admin/v1`, for server admins.
//!
//! `POST /_converge/admin/v1/registration_tokens` creates a registration token;
//! `GET /_converge/admin/v1/registration_tokens/{token}` shows how much of it is used;
//! `GET /_converge/admin/v1/reports?from=&limit=` lists content reports, newest first.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{Authed, JsonBody};
use crate::error::{Error, Result};
use crate::state::AppState;
use converge_service::config::human_duration;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_converge/admin/v1/registration_tokens",
            post(create_registration_token),
        )
        .route(
            "/_converge/admin/v1/registration_tokens/{token}",
            get(get_registration_token),
        )
        .route("/_converge/admin/v1/reports", get(list_reports))
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

fn require_admin(caller: &converge_service::Caller) -> Result<()> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(Error::forbidden("you are not a server admin").into())
    }
}

async fn create_registration_token(
    State(state): State<AppState>,
    Authed(caller): Authed,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<Json<TokenInfo>> {
    require_admin(&caller)?;
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
    require_admin(&caller)?;
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
    query: Result<Query<ReportsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>> {
    let Query(query) = query.map_err(|e| Error::InvalidParam(e.body_text()))?;
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
