//! Who is behind a request: the authenticated caller, and where the request came from.

use std::net::IpAddr;
use std::sync::Arc;

use converge_core::appservice::AppService;
use ruma::{OwnedDeviceId, OwnedUserId};

/// The authenticated user behind a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub localpart: String,
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    pub is_admin: bool,
    /// SHA-256 of the access token the request carried.
    pub token_hash: Vec<u8>,
    /// The application service acting, when the token was its `as_token` (acting as its
    /// own user or, by `?user_id=`, one of its namespace's).
    pub appservice: Option<Arc<AppService>>,
}

impl Caller {
    /// Whether the rate limits apply: not to appservices registered with
    /// `rate_limited: false`.
    pub fn rate_limited(&self) -> bool {
        self.appservice.as_ref().is_none_or(|s| s.rate_limited())
    }
}

/// Who an application service says it acts as, from the request's query string
/// (`user_id`, and `device_id` or `org.matrix.msc3202.device_id`). Ignored for other
/// tokens.
#[derive(Clone, Debug, Default)]
pub struct Masquerade {
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    /// For `POST /register`, where the user named may not exist yet (bridges name the
    /// user they are about to register): the appservice then acts as itself.
    pub registering: bool,
}

/// Where a request came from, for rate limits and device bookkeeping.
#[derive(Clone, Copy, Debug, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
}

impl Client {
    /// The key rate limits count this client under.
    pub fn key(&self) -> String {
        self.ip
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }
}
