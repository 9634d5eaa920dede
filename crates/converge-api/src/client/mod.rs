//! The Matrix client-server API, grouped like the spec's sections.

mod account;
mod account_data;
mod appservice;
mod device;
mod directory;
mod discovery;
mod ephemeral;
mod keys;
mod membership;
mod message;
mod openid;
mod profile;
mod push;
mod reporting;
mod room;
mod session;
mod spaces;
mod sync;
mod thirdparty;
mod threads;
mod threepid;
mod upgrades;
mod voip;

use axum::Router;
use axum::routing::get;
use ruma::api::client::{
    account as acc, alias, backup, config, context, device as dev, directory as dir,
    discovery as disc, filter, keys as k, knock, membership as mem, message as msg, presence,
    profile as prof, push as p, read_marker, receipt, redact, relations, room as rm,
    session as sess, state as st, sync as sy, tag, to_device, typing, user_directory,
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
        .merge(room_routes())
        .merge(element_routes())
        .merge(e2ee_routes())
        .merge(push_routes())
}

fn e2ee_routes() -> Router<AppState> {
    Router::new()
        .ruma::<k::upload_keys::v3::Request, _, _>(keys::upload_keys)
        .ruma::<k::get_keys::v3::Request, _, _>(keys::get_keys)
        .ruma::<k::claim_keys::v3::Request, _, _>(keys::claim_keys)
        .ruma::<k::get_key_changes::v3::Request, _, _>(keys::get_key_changes)
        .ruma::<k::upload_signing_keys::v3::Request, _, _>(keys::upload_signing_keys)
        .ruma::<k::upload_signatures::v3::Request, _, _>(keys::upload_signatures)
        .ruma::<to_device::send_event_to_device::v3::Request, _, _>(keys::send_to_device)
        .ruma::<backup::create_backup_version::v3::Request, _, _>(keys::create_backup_version)
        .ruma::<backup::get_latest_backup_info::v3::Request, _, _>(keys::get_latest_backup_info)
        .ruma::<backup::get_backup_info::v3::Request, _, _>(keys::get_backup_info)
        .ruma::<backup::update_backup_version::v3::Request, _, _>(keys::update_backup_version)
        .ruma::<backup::delete_backup_version::v3::Request, _, _>(keys::delete_backup_version)
        .ruma::<backup::add_backup_keys::v3::Request, _, _>(keys::add_backup_keys)
        .ruma::<backup::add_backup_keys_for_room::v3::Request, _, _>(keys::add_backup_keys_for_room)
        .ruma::<backup::add_backup_keys_for_session::v3::Request, _, _>(
            keys::add_backup_keys_for_session,
        )
        .ruma::<backup::get_backup_keys::v3::Request, _, _>(keys::get_backup_keys)
        .ruma::<backup::get_backup_keys_for_room::v3::Request, _, _>(keys::get_backup_keys_for_room)
        .ruma::<backup::get_backup_keys_for_session::v3::Request, _, _>(
            keys::get_backup_keys_for_session,
        )
        .ruma::<backup::delete_backup_keys::v3::Request, _, _>(keys::delete_backup_keys)
        .ruma::<backup::delete_backup_keys_for_room::v3::Request, _, _>(
            keys::delete_backup_keys_for_room,
        )
        .ruma::<backup::delete_backup_keys_for_session::v3::Request, _, _>(
            keys::delete_backup_keys_for_session,
        )
}

fn push_routes() -> Router<AppState> {
    Router::new()
        .ruma::<p::get_pushrules_all::v3::Request, _, _>(push::get_pushrules_all)
        .ruma::<p::get_pushrules_global_scope::v3::Request, _, _>(push::get_pushrules_global_scope)
        .ruma::<p::get_pushrule::v3::Request, _, _>(push::get_pushrule)
        .ruma::<p::set_pushrule::v3::Request, _, _>(push::set_pushrule)
        .ruma::<p::delete_pushrule::v3::Request, _, _>(push::delete_pushrule)
        .ruma::<p::get_pushrule_enabled::v3::Request, _, _>(push::get_pushrule_enabled)
        .ruma::<p::set_pushrule_enabled::v3::Request, _, _>(push::set_pushrule_enabled)
        .ruma::<p::get_pushrule_actions::v3::Request, _, _>(push::get_pushrule_actions)
        .ruma::<p::set_pushrule_actions::v3::Request, _, _>(push::set_pushrule_actions)
        .ruma::<p::get_pushers::v3::Request, _, _>(push::get_pushers)
        .ruma::<p::set_pusher::v3::Request, _, _>(push::set_pusher)
        .ruma::<p::get_notifications::v3::Request, _, _>(push::get_notifications)
}

fn room_routes() -> Router<AppState> {
    Router::new()
        .ruma::<rm::create_room::v3::Request, _, _>(room::create_room)
        .ruma::<rm::get_room_event::v3::Request, _, _>(room::get_room_event)
        .ruma::<rm::aliases::v3::Request, _, _>(room::get_room_aliases)
        .ruma::<st::get_state_events::v3::Request, _, _>(room::get_state_events)
        .ruma::<st::get_state_event_for_key::v3::Request, _, _>(room::get_state_event_for_key)
        .ruma_without_last::<st::get_state_event_for_key::v3::Request, _, _>(
            room::get_state_event_for_key,
        )
        .ruma::<st::send_state_event::v3::Request, _, _>(message::send_state_event)
        .ruma_without_last::<st::send_state_event::v3::Request, _, _>(message::send_state_event)
        .ruma::<msg::send_message_event::v3::Request, _, _>(message::send_message_event)
        .ruma::<msg::get_message_events::v3::Request, _, _>(room::get_message_events)
        .ruma::<redact::redact_event::v3::Request, _, _>(message::redact_event)
        .ruma::<context::get_context::v3::Request, _, _>(room::get_context)
        .ruma::<relations::get_relating_events::v1::Request, _, _>(room::get_relating_events)
        .ruma::<relations::get_relating_events_with_rel_type::v1::Request, _, _>(
            room::get_relating_events_with_rel_type,
        )
        .ruma::<relations::get_relating_events_with_rel_type_and_event_type::v1::Request, _, _>(
            room::get_relating_events_with_rel_type_and_event_type,
        )
        .ruma::<mem::get_member_events::v3::Request, _, _>(room::get_member_events)
        .ruma::<mem::joined_members::v3::Request, _, _>(room::joined_members)
        .ruma::<mem::joined_rooms::v3::Request, _, _>(room::joined_rooms)
        .ruma::<mem::join_room_by_id::v3::Request, _, _>(membership::join_room_by_id)
        .ruma::<mem::join_room_by_id_or_alias::v3::Request, _, _>(
            membership::join_room_by_id_or_alias,
        )
        .ruma::<mem::invite_user::v3::Request, _, _>(membership::invite_user)
        .ruma::<mem::leave_room::v3::Request, _, _>(membership::leave_room)
        .ruma::<mem::forget_room::v3::Request, _, _>(membership::forget_room)
        .ruma::<mem::kick_user::v3::Request, _, _>(membership::kick_user)
        .ruma::<mem::ban_user::v3::Request, _, _>(membership::ban_user)
        .ruma::<mem::unban_user::v3::Request, _, _>(membership::unban_user)
        .ruma::<knock::knock_room::v3::Request, _, _>(membership::knock_room)
        .ruma::<sy::sync_events::v3::Request, _, _>(sync::sync_events)
        .ruma::<sy::sync_events::v5::Request, _, _>(sync::sliding_sync)
        .ruma::<filter::create_filter::v3::Request, _, _>(sync::create_filter)
        .ruma::<filter::get_filter::v3::Request, _, _>(sync::get_filter)
        .ruma::<typing::create_typing_event::v3::Request, _, _>(ephemeral::create_typing_event)
        .ruma::<receipt::create_receipt::v3::Request, _, _>(ephemeral::create_receipt)
        .ruma::<read_marker::set_read_marker::v3::Request, _, _>(ephemeral::set_read_marker)
        .ruma::<presence::set_presence::v3::Request, _, _>(ephemeral::set_presence)
        .ruma::<presence::get_presence::v3::Request, _, _>(ephemeral::get_presence)
        .ruma::<config::set_global_account_data::v3::Request, _, _>(
            account_data::set_global_account_data,
        )
        .ruma::<config::get_global_account_data::v3::Request, _, _>(
            account_data::get_global_account_data,
        )
        .ruma::<config::set_room_account_data::v3::Request, _, _>(
            account_data::set_room_account_data,
        )
        .ruma::<config::get_room_account_data::v3::Request, _, _>(
            account_data::get_room_account_data,
        )
        .ruma::<tag::get_tags::v3::Request, _, _>(account_data::get_tags)
        .ruma::<tag::create_tag::v3::Request, _, _>(account_data::create_tag)
        .ruma::<tag::delete_tag::v3::Request, _, _>(account_data::delete_tag)
        .ruma::<alias::create_alias::v3::Request, _, _>(directory::create_alias)
        .ruma::<alias::get_alias::v3::Request, _, _>(directory::get_alias)
        .ruma::<alias::delete_alias::v3::Request, _, _>(directory::delete_alias)
        .ruma::<dir::get_room_visibility::v3::Request, _, _>(directory::get_room_visibility)
        .ruma::<dir::set_room_visibility::v3::Request, _, _>(directory::set_room_visibility)
        .ruma::<dir::get_public_rooms::v3::Request, _, _>(directory::get_public_rooms)
        .ruma::<dir::get_public_rooms_filtered::v3::Request, _, _>(
            directory::get_public_rooms_filtered,
        )
        .ruma::<user_directory::search_users::v3::Request, _, _>(directory::search_users)
}

/// What Element calls beyond chatting: calls, third parties, OpenID, reports, upgrades,
/// spaces, threads and jumping to a date.
fn element_routes() -> Router<AppState> {
    use ruma::api::client::{
        account as acc, room as rm, space, thirdparty as tp, threads as th, voip as call,
    };
    Router::new()
        .ruma::<ruma::api::client::appservice::request_ping::v1::Request, _, _>(appservice::ping)
        .ruma::<call::get_turn_server_info::v3::Request, _, _>(voip::get_turn_server)
        .ruma::<tp::get_protocols::v3::Request, _, _>(thirdparty::get_protocols)
        .ruma::<tp::get_protocol::v3::Request, _, _>(thirdparty::get_protocol)
        .ruma::<tp::get_location_for_protocol::v3::Request, _, _>(
            thirdparty::get_location_for_protocol,
        )
        .ruma::<tp::get_location_for_room_alias::v3::Request, _, _>(
            thirdparty::get_location_for_room_alias,
        )
        .ruma::<tp::get_user_for_protocol::v3::Request, _, _>(thirdparty::get_user_for_protocol)
        .ruma::<tp::get_user_for_user_id::v3::Request, _, _>(thirdparty::get_user_for_user_id)
        .ruma::<acc::get_3pids::v3::Request, _, _>(threepid::get_3pids)
        .ruma::<acc::request_3pid_management_token_via_email::v3::Request, _, _>(
            threepid::request_token_via_email,
        )
        .ruma::<acc::request_3pid_management_token_via_msisdn::v3::Request, _, _>(
            threepid::request_token_via_msisdn,
        )
        .ruma::<acc::add_3pid::v3::Request, _, _>(threepid::add_3pid)
        .ruma::<acc::bind_3pid::v3::Request, _, _>(threepid::bind_3pid)
        .ruma::<acc::delete_3pid::v3::Request, _, _>(threepid::delete_3pid)
        .ruma::<acc::unbind_3pid::v3::Request, _, _>(threepid::unbind_3pid)
        .ruma::<acc::request_openid_token::v3::Request, _, _>(openid::request_openid_token)
        .ruma::<rm::report_content::v3::Request, _, _>(reporting::report_event)
        .ruma::<rm::report_room::v3::Request, _, _>(reporting::report_room)
        .ruma::<rm::upgrade_room::v3::Request, _, _>(upgrades::upgrade_room)
        .ruma::<space::get_hierarchy::v1::Request, _, _>(spaces::get_hierarchy)
        .ruma::<th::get_threads::v1::Request, _, _>(threads::get_threads)
        .ruma::<rm::get_event_by_timestamp::v1::Request, _, _>(threads::get_event_by_timestamp)
}
