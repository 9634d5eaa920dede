//! The client-server endpoint for application services:
//! `POST /_matrix/client/v1/appservice/{appserviceId}/ping`.
//!
//! Spec: <https://spec.matrix.org/v1.16/application-service-api/#post_matrixclientv1appserviceappserviceidping>.

use std::time::Duration;

use axum::extract::State;
use ruma::api::client::appservice::request_ping;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};

pub async fn ping(
    State(state): State<AppState>,
    request: Ruma<request_ping::v1::Request>,
) -> Result<RumaResponse<request_ping::v1::Response>> {
    let (caller, body) = request.authed()?;
    let service = caller
        .appservice
        .ok_or_else(|| Error::forbidden("only an application service may ping"))?;
    let millis = state
        .services
        .appservices
        .ping(
            &service,
            &body.appservice_id,
            body.transaction_id.as_ref().map(|t| t.as_str()),
        )
        .await?;
    Ok(RumaResponse(request_ping::v1::Response::new(
        Duration::from_millis(millis),
    )))
}
