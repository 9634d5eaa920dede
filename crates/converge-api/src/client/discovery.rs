//! Server discovery: `GET /_matrix/client/versions`, `GET /.well-known/matrix/client` and
//! `GET /_matrix/client/v3/capabilities`.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#server-discovery> and
//! <https://spec.matrix.org/v1.12/client-server-api/#capabilities-negotiation>.

use axum::Json;
use axum::extract::State;
use converge_core::RoomVersion;
use ruma::api::client::discovery::{get_capabilities, get_supported_versions};
use serde_json::{Value, json};

use crate::error::Result;
use crate::state::AppState;
use crate::{Ruma, RumaResponse};

/// The spec versions whose endpoints Converge serves so far. A version goes on this list
/// only once what it requires of a server works here.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11",
    "v1.12",
];

/// Unstable features clients look for, each true only if it works here.
pub const UNSTABLE_FEATURES: &[(&str, bool)] = &[
    // Element shows cross-signing set-up only when this is set.
    ("org.matrix.e2e_cross_signing", true),
    // Threaded read receipts and per-thread notification counts.
    ("org.matrix.msc3771", true),
    ("org.matrix.msc3773", true),
    // Simplified sliding sync (MSC4186): Element X syncs only with it.
    ("org.matrix.simplified_msc3575", true),
];

pub async fn get_supported_versions(
    _: Ruma<get_supported_versions::Request>,
) -> RumaResponse<get_supported_versions::Response> {
    let versions = SUPPORTED_VERSIONS.iter().map(|v| (*v).to_owned()).collect();
    let mut response = get_supported_versions::Response::new(versions);
    response.unstable_features = UNSTABLE_FEATURES
        .iter()
        .map(|(name, on)| ((*name).to_owned(), *on))
        .collect();
    RumaResponse(response)
}

pub async fn discover_homeserver(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "m.homeserver": { "base_url": &*state.base_url } }))
}

pub async fn get_capabilities(
    request: Ruma<get_capabilities::v3::Request>,
) -> Result<RumaResponse<get_capabilities::v3::Response>> {
    request.caller()?;
    let mut capabilities = get_capabilities::v3::Capabilities::new();
    capabilities.change_password.enabled = true;
    #[allow(deprecated)]
    {
        capabilities.set_displayname.enabled = true;
        capabilities.set_avatar_url.enabled = true;
    }
    capabilities.thirdparty_id_changes.enabled = false;
    let available = RoomVersion::SUPPORTED
        .iter()
        .map(|v| {
            (
                v.ruma_id(),
                get_capabilities::v3::RoomVersionStability::Stable,
            )
        })
        .collect();
    capabilities.room_versions = get_capabilities::v3::RoomVersionsCapability::new(
        RoomVersion::DEFAULT.ruma_id(),
        available,
    );
    Ok(RumaResponse(get_capabilities::v3::Response::new(
        capabilities,
    )))
}
