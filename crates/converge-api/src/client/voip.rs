//! Voice over IP: `GET /voip/turnServer`.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3voipturnserver>.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use ruma::api::client::voip::get_turn_server_info;
use serde_json::json;

use crate::error::Result;
use crate::state::AppState;
use crate::{Ruma, RumaResponse};

/// Credentials for the configured TURN server, or `{}` when there is none: Ruma's response
/// type cannot be empty, and `{}` is what Synapse answers, after which Element stops asking.
pub async fn get_turn_server(
    State(state): State<AppState>,
    request: Ruma<get_turn_server_info::v3::Request>,
) -> Result<Response> {
    let caller = request.caller()?;
    Ok(match state.services.calls.turn_server(caller) {
        Some(creds) => RumaResponse(get_turn_server_info::v3::Response::new(
            creds.username,
            creds.password,
            creds.uris,
            creds.ttl,
        ))
        .into_response(),
        None => Json(json!({})).into_response(),
    })
}
