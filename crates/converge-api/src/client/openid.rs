//! OpenID: `POST /user/{userId}/openid/request_token`, the token a widget or Element Call
//! checks through the federation `userinfo` endpoint.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#openid>.

use axum::extract::State;
use ruma::api::client::account::request_openid_token;
use ruma::authentication::TokenType;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};
use converge_service::ratelimit::Limit;

pub async fn request_openid_token(
    State(state): State<AppState>,
    request: Ruma<request_openid_token::v3::Request>,
) -> Result<RumaResponse<request_openid_token::v3::Response>> {
    let (caller, body) = request.authed()?;
    // Each call stores a row, so it counts against the sender's event rate.
    state
        .services
        .limiter
        .check_caller(Limit::Message, &caller)?;
    let token = state
        .services
        .openid
        .request_token(&caller, body.user_id.as_str())
        .await?;
    Ok(RumaResponse(request_openid_token::v3::Response::new(
        token.access_token,
        TokenType::Bearer,
        token.server_name.try_into().map_err(Error::internal)?,
        token.expires_in,
    )))
}
