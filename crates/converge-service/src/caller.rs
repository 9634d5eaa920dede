//! Who is behind a request: the authenticated caller, and where the request came from.

use std::net::IpAddr;

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
