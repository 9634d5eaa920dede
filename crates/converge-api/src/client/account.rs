//! Accounts: `POST /register`, `GET /register/available`, registration token validity,
//! `GET /account/whoami`, `POST /account/password`, `POST /account/deactivate`.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#account-registration-and-management>.

use axum::extract::State;
use ruma::api::client::account::{
    ThirdPartyIdRemovalStatus, change_password, check_registration_token_validity, deactivate,
    get_username_availability, register, whoami,
};

use crate::error::Result;
use crate::state::AppState;
use crate::{Ruma, RumaResponse};
use converge_service::accounts::RegistrationRequest;

pub async fn register(
    State(state): State<AppState>,
    request: Ruma<register::v3::Request>,
) -> Result<RumaResponse<register::v3::Response>> {
    let body = request.body;
    let appservice = body.login_type == Some(register::LoginType::ApplicationService)
        || request
            .caller
            .as_ref()
            .is_some_and(|c| c.appservice.is_some());
    let registration = RegistrationRequest {
        username: body.username,
        password: body.password,
        device_id: body.device_id.map(Into::into),
        device_display_name: body.initial_device_display_name,
        inhibit_login: body.inhibit_login,
        refresh_token: body.refresh_token,
        guest: body.kind == register::RegistrationKind::Guest,
    };
    let (user_id, credentials) = if appservice {
        let caller = request.caller.ok_or(crate::error::Error::MissingToken)?;
        state
            .services
            .registration
            .register_for_appservice(&caller, registration, request.client)
            .await?
    } else {
        state
            .services
            .registration
            .register(registration, body.auth, request.client)
            .await?
    };
    let mut response = register::v3::Response::new(user_id);
    if let Some(credentials) = credentials {
        response.access_token = Some(credentials.access_token);
        response.device_id = Some(credentials.device_id);
        response.refresh_token = credentials.refresh_token;
        response.expires_in = credentials.expires_in;
    }
    Ok(RumaResponse(response))
}

pub async fn get_username_availability(
    State(state): State<AppState>,
    request: Ruma<get_username_availability::v3::Request>,
) -> Result<RumaResponse<get_username_availability::v3::Response>> {
    state
        .services
        .registration
        .username_available(&request.body.username, request.client)
        .await?;
    Ok(RumaResponse(get_username_availability::v3::Response::new(
        true,
    )))
}

pub async fn check_registration_token_validity(
    State(state): State<AppState>,
    request: Ruma<check_registration_token_validity::v1::Request>,
) -> Result<RumaResponse<check_registration_token_validity::v1::Response>> {
    let valid = state
        .services
        .registration
        .registration_token_valid(&request.body.token, request.client)
        .await?;
    Ok(RumaResponse(
        check_registration_token_validity::v1::Response::new(valid),
    ))
}

pub async fn whoami(
    request: Ruma<whoami::v3::Request>,
) -> Result<RumaResponse<whoami::v3::Response>> {
    let caller = request.caller()?;
    let mut response = whoami::v3::Response::new(caller.user_id.clone(), false);
    response.device_id = Some(caller.device_id.clone());
    Ok(RumaResponse(response))
}

pub async fn change_password(
    State(state): State<AppState>,
    request: Ruma<change_password::v3::Request>,
) -> Result<RumaResponse<change_password::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .security
        .change_password(&caller, body.new_password, body.logout_devices, body.auth)
        .await?;
    Ok(RumaResponse(change_password::v3::Response::new()))
}

pub async fn deactivate(
    State(state): State<AppState>,
    request: Ruma<deactivate::v3::Request>,
) -> Result<RumaResponse<deactivate::v3::Response>> {
    let (caller, body) = request.authed()?;
    state
        .services
        .security
        .deactivate(&caller, body.auth)
        .await?;
    Ok(RumaResponse(deactivate::v3::Response::new(
        ThirdPartyIdRemovalStatus::NoSupport,
    )))
}
