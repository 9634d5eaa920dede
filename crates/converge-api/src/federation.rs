//! The one server-server endpoint Converge serves: `GET /_matrix/federation/v1/openid/userinfo`,
//! with which widgets and Element Call's services check a user's OpenID token.
//!
//! Spec: <https://spec.matrix.org/v1.16/server-server-api/#get_matrixfederationv1openiduserinfo>.
//! The endpoint needs no request signature (the token is the credential), so it is served
//! without the rest of federation. The Ruma build Converge uses has no federation types, so
//! the query and the answer are read and written here.

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/_matrix/federation/v1/openid/userinfo", get(userinfo))
}

async fn userinfo(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Json<Value>> {
    let token = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "access_token")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| Error::MissingParam("the access_token parameter is required".into()))?;
    let user_id = state.services.openid.userinfo(&token).await?;
    Ok(Json(json!({ "sub": user_id })))
}
