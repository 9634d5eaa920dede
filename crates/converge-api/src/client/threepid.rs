//! Third-party identifiers on the account: `GET /account/3pid`, the `requestToken`
//! endpoints, and `POST /account/3pid/{add,bind,delete,unbind}`. Converge validates no email
//! addresses or phone numbers, so the list is empty and adding one is refused.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#adding-account-administrative-contact-information>.

use axum::extract::State;
use converge_service::third_party::UnbindResult;
use ruma::api::client::account::{
    ThirdPartyIdRemovalStatus, add_3pid, bind_3pid, delete_3pid, get_3pids,
    request_3pid_management_token_via_email, request_3pid_management_token_via_msisdn, unbind_3pid,
};

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};

fn removal_status(result: UnbindResult) -> ThirdPartyIdRemovalStatus {
    match result {
        UnbindResult::NoSupport => ThirdPartyIdRemovalStatus::NoSupport,
    }
}

pub async fn get_3pids(
    State(state): State<AppState>,
    request: Ruma<get_3pids::v3::Request>,
) -> Result<RumaResponse<get_3pids::v3::Response>> {
    let caller = request.caller()?;
    Ok(RumaResponse(get_3pids::v3::Response::new(
        state.services.third_party.threepids(caller),
    )))
}

pub async fn request_token_via_email(
    State(state): State<AppState>,
    _request: Ruma<request_3pid_management_token_via_email::v3::Request>,
) -> Result<RumaResponse<request_3pid_management_token_via_email::v3::Response>> {
    let sid = state.services.third_party.request_token("email")?;
    Ok(RumaResponse(
        request_3pid_management_token_via_email::v3::Response::new(
            sid.try_into().map_err(Error::internal)?,
        ),
    ))
}

pub async fn request_token_via_msisdn(
    State(state): State<AppState>,
    _request: Ruma<request_3pid_management_token_via_msisdn::v3::Request>,
) -> Result<RumaResponse<request_3pid_management_token_via_msisdn::v3::Response>> {
    let sid = state.services.third_party.request_token("msisdn")?;
    Ok(RumaResponse(
        request_3pid_management_token_via_msisdn::v3::Response::new(
            sid.try_into().map_err(Error::internal)?,
        ),
    ))
}

pub async fn add_3pid(
    State(state): State<AppState>,
    request: Ruma<add_3pid::v3::Request>,
) -> Result<RumaResponse<add_3pid::v3::Response>> {
    state.services.third_party.add(request.caller()?)?;
    Ok(RumaResponse(add_3pid::v3::Response::new()))
}

pub async fn bind_3pid(
    State(state): State<AppState>,
    request: Ruma<bind_3pid::v3::Request>,
) -> Result<RumaResponse<bind_3pid::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .third_party
        .bind(&caller, &body.identity_server_info.id_server)?;
    Ok(RumaResponse(bind_3pid::v3::Response::new()))
}

pub async fn delete_3pid(
    State(state): State<AppState>,
    request: Ruma<delete_3pid::v3::Request>,
) -> Result<RumaResponse<delete_3pid::v3::Response>> {
    let result = state.services.third_party.remove(request.caller()?);
    Ok(RumaResponse(delete_3pid::v3::Response::new(
        removal_status(result),
    )))
}

pub async fn unbind_3pid(
    State(state): State<AppState>,
    request: Ruma<unbind_3pid::v3::Request>,
) -> Result<RumaResponse<unbind_3pid::v3::Response>> {
    let result = state.services.third_party.remove(request.caller()?);
    Ok(RumaResponse(unbind_3pid::v3::Response::new(
        removal_status(result),
    )))
}
