//! Accounts, split by concern: sessions and access tokens ([`Sessions`]), registration
//! ([`Registration`]), user-interactive authentication ([`Interactive`]), devices
//! ([`Devices`]), profiles ([`Profiles`]), an account's own password and deactivation
//! ([`AccountSecurity`]), and the names reserved for the gateways ([`Reserved`]).
//!
//! Tokens are 256 random bits handed to the client once; the store keeps their SHA-256.
//! Passwords are argon2id hashes.

mod devices;
mod interactive;
mod profiles;
mod registration;
mod reserved;
mod security;
mod sessions;

use converge_core::id;
use ruma::{OwnedUserId, UserId};

pub use converge_store::{Device, RegistrationToken};
pub use devices::Devices;
pub use interactive::Interactive;
pub use profiles::{Profile, ProfileField, Profiles};
pub use registration::{Registration, RegistrationRequest};
pub use reserved::Reserved;
pub use security::AccountSecurity;
pub use sessions::{Credentials, PasswordLogin, Sessions};

use crate::error::{Error, Result};

/// Longest device ID a client may choose.
const MAX_DEVICE_ID_BYTES: usize = 255;
/// Longest display name (of a user or a device), in characters (Synapse's limit too).
const MAX_DISPLAYNAME_CHARS: usize = 256;

/// The full user ID of a local user.
fn user_id(localpart: &str, server_name: &str) -> Result<OwnedUserId> {
    UserId::parse(id::user_id(localpart, server_name)).map_err(Error::internal)
}

fn check_device_id(device_id: &str) -> Result<()> {
    if device_id.is_empty()
        || device_id.len() > MAX_DEVICE_ID_BYTES
        || device_id.chars().any(char::is_control)
    {
        return Err(Error::InvalidParam(format!(
            "device_id must be 1 to {MAX_DEVICE_ID_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

fn check_display_name(name: Option<&str>) -> Result<()> {
    if name.is_some_and(|n| n.chars().count() > MAX_DISPLAYNAME_CHARS) {
        return Err(Error::InvalidParam(format!(
            "display name longer than {MAX_DISPLAYNAME_CHARS} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_and_names_are_bounded() {
        assert!(check_device_id("ABCDEF").is_ok());
        assert!(check_device_id("").is_err());
        assert!(check_device_id(&"A".repeat(MAX_DEVICE_ID_BYTES + 1)).is_err());
        assert!(check_device_id("A\nB").is_err());
        assert!(check_display_name(None).is_ok());
        assert!(check_display_name(Some(&"é".repeat(MAX_DISPLAYNAME_CHARS))).is_ok());
        assert!(check_display_name(Some(&"é".repeat(MAX_DISPLAYNAME_CHARS + 1))).is_err());
    }
}
