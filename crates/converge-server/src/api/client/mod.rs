//! The Matrix client-server API, grouped like the spec's sections.

mod account;
mod device;
mod discovery;
mod profile;
mod session;

use axum::Router;
use axum::routing::get;
use ruma::api::client::{
    account as acc, device as dev, discovery as disc, profile as prof, session as sess,
};

use super::RouterExt;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .ruma::<disc::get_supported_versions::Request, _, _>(discovery::get_supported_versions)
        .route(
            "/.well-known/matrix/client",
            get(discovery::discover_homeserver),
        )
        .ruma::<disc::get_capabilities::v3::Request, _, _>(discovery::get_capabilities)
        .ruma::<sess::get_login_types::v3::Request, _, _>(session::get_login_types)
        .ruma::<sess::login::v3::Request, _, _>(session::login)
        .ruma::<sess::refresh_token::v3::Request, _, _>(session::refresh_token)
        .ruma::<sess::logout::v3::Request, _, _>(session::logout)
        .ruma::<sess::logout_all::v3::Request, _, _>(session::logout_all)
        .ruma::<acc::register::v3::Request, _, _>(account::register)
        .ruma::<acc::get_username_availability::v3::Request, _, _>(
            account::get_username_availability,
        )
        .ruma::<acc::check_registration_token_validity::v1::Request, _, _>(
            account::check_registration_token_validity,
        )
        .ruma::<acc::whoami::v3::Request, _, _>(account::whoami)
        .ruma::<acc::change_password::v3::Request, _, _>(account::change_password)
        .ruma::<acc::deactivate::v3::Request, _, _>(account::deactivate)
        .ruma::<dev::get_devices::v3::Request, _, _>(device::get_devices)
        .ruma::<dev::get_device::v3::Request, _, _>(device::get_device)
        .ruma::<dev::update_device::v3::Request, _, _>(device::update_device)
        .ruma::<dev::delete_device::v3::Request, _, _>(device::delete_device)
        .ruma::<dev::delete_devices::v3::Request, _, _>(device::delete_devices)
        .ruma::<prof::get_profile::v3::Request, _, _>(profile::get_profile)
        .ruma::<prof::get_display_name::v3::Request, _, _>(profile::get_display_name)
        .ruma::<prof::set_display_name::v3::Request, _, _>(profile::set_display_name)
        .ruma::<prof::get_avatar_url::v3::Request, _, _>(profile::get_avatar_url)
        .ruma::<prof::set_avatar_url::v3::Request, _, _>(profile::set_avatar_url)
}
