//! Sessions: `GET/POST /login`, `POST /refresh`, `POST /logout`, `POST /logout/all`.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#login>.

use axum::extract::State;
use ruma::api::client::session::{get_login_types, login, logout, logout_all, refresh_token};
use ruma::api::client::uiaa::UserIdentifier;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};
use converge_service::accounts::PasswordLogin;

pub async fn get_login_types(
    _: Ruma<get_login_types::v3::Request>,
) -> RumaResponse<get_login_types::v3::Response> {
    use get_login_types::v3::LoginType;
    RumaResponse(get_login_types::v3::Response::new(vec![
        LoginType::Password(Default::default()),
        LoginType::ApplicationService(Default::default()),
    ]))
}

pub async fn login(
    State(state): State<AppState>,
    request: Ruma<login::v3::Request>,
) -> Result<RumaResponse<login::v3::Response>> {
    let body = request.body;
    if let login::v3::LoginInfo::ApplicationService(info) = body.login_info {
        let caller = request.caller.ok_or(Error::MissingToken)?;
        #[allow(deprecated)]
        let identifier = match (info.identifier, info.user) {
            (Some(UserIdentifier::Matrix(id)), _) => id.user,
            (None, Some(user)) => user,
            _ => return Err(Error::BadJson("no m.id.user identifier given".into()).into()),
        };
        let credentials = state
            .services
            .sessions
            .login_for_appservice(
                &caller,
                PasswordLogin {
                    identifier,
                    password: String::new(),
                    device_id: body.device_id.map(Into::into),
                    device_display_name: body.initial_device_display_name,
                    refresh_token: body.refresh_token,
                },
                request.client,
            )
            .await?;
        return Ok(login_response(credentials));
    }
    let login::v3::LoginInfo::Password(info) = body.login_info else {
        return Err(Error::BadJson(
            "only m.login.password and m.login.application_service are supported".into(),
        )
        .into());
    };
    #[allow(deprecated)]
    let identifier = match (info.identifier, info.user) {
        (Some(UserIdentifier::Matrix(id)), _) => id.user,
        (None, Some(user)) => user,
        (Some(_), _) => {
            return Err(Error::forbidden("only m.id.user identifiers are supported").into());
        }
        (None, None) => return Err(Error::BadJson("no user identifier given".into()).into()),
    };
    let credentials = state
        .services
        .sessions
        .login(
            PasswordLogin {
                identifier,
                password: info.password,
                device_id: body.device_id.map(Into::into),
                device_display_name: body.initial_device_display_name,
                refresh_token: body.refresh_token,
            },
            request.client,
        )
        .await?;
    Ok(login_response(credentials))
}

fn login_response(
    credentials: converge_service::accounts::Credentials,
) -> RumaResponse<login::v3::Response> {
    let mut response = login::v3::Response::new(
        credentials.user_id,
        credentials.access_token,
        credentials.device_id,
    );
    response.refresh_token = credentials.refresh_token;
    response.expires_in = credentials.expires_in;
    RumaResponse(response)
}

pub async fn refresh_token(
    State(state): State<AppState>,
    request: Ruma<refresh_token::v3::Request>,
) -> Result<RumaResponse<refresh_token::v3::Response>> {
    let credentials = state
        .services
        .sessions
        .refresh(&request.body.refresh_token)
        .await?;
    let mut response = refresh_token::v3::Response::new(credentials.access_token);
    response.refresh_token = credentials.refresh_token;
    response.expires_in_ms = credentials.expires_in;
    Ok(RumaResponse(response))
}

pub async fn logout(
    State(state): State<AppState>,
    request: Ruma<logout::v3::Request>,
) -> Result<RumaResponse<logout::v3::Response>> {
    state.services.sessions.logout(request.caller()?).await?;
    Ok(RumaResponse(logout::v3::Response::new()))
}

pub async fn logout_all(
    State(state): State<AppState>,
    request: Ruma<logout_all::v3::Request>,
) -> Result<RumaResponse<logout_all::v3::Response>> {
    state
        .services
        .sessions
        .logout_all(request.caller()?)
        .await?;
    Ok(RumaResponse(logout_all::v3::Response::new()))
}
