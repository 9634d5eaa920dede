//! Matrix identifier rules Converge enforces for its own users.
//!
//! Spec: <https://spec.matrix.org/v1.12/appendices/#user-identifiers>. Historical user IDs
//! with wider alphabets exist on other servers; we only ever *create* the strict form.

use thiserror::Error;

/// The longest a full user ID (`@localpart:server`) may be, in bytes.
pub const MAX_USER_ID_BYTES: usize = 255;

/// Why a requested localpart was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LocalpartError {
    #[error("the user name is empty")]
    Empty,
    #[error("the user name may only contain a-z, 0-9, '.', '_', '=', '-', '/' and '+'")]
    InvalidCharacter,
    #[error("the user ID would be longer than {MAX_USER_ID_BYTES} bytes")]
    TooLong,
}

/// Checks that `localpart` is a valid localpart for a new user on `server_name`.
pub fn validate_localpart(localpart: &str, server_name: &str) -> Result<(), LocalpartError> {
    if localpart.is_empty() {
        return Err(LocalpartError::Empty);
    }
    let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/' | '+');
    if !localpart.chars().all(allowed) {
        return Err(LocalpartError::InvalidCharacter);
    }
    // "@" + localpart + ":" + server_name
    if localpart.len() + server_name.len() + 2 > MAX_USER_ID_BYTES {
        return Err(LocalpartError::TooLong);
    }
    Ok(())
}

/// Extracts the localpart a login identifier names on this server.
///
/// Accepts a bare localpart (`alice`) or a full user ID on this server (`@alice:example.org`).
/// Returns `None` for a user ID on another server. Logins are case-insensitive, as in
/// Synapse, so the result is lowercased.
pub fn login_localpart(identifier: &str, server_name: &str) -> Option<String> {
    let localpart = match identifier.strip_prefix('@') {
        Some(rest) => {
            let (localpart, server) = rest.split_once(':')?;
            if server != server_name {
                return None;
            }
            localpart
        }
        None => identifier,
    };
    Some(localpart.to_lowercase())
}

/// Builds the full user ID for a localpart on `server_name`.
pub fn user_id(localpart: &str, server_name: &str) -> String {
    format!("@{localpart}:{server_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localparts() {
        let long = "a".repeat(MAX_USER_ID_BYTES);
        let cases: &[(&str, Result<(), LocalpartError>)] = &[
            ("alice", Ok(())),
            ("a.b_c=d-e/f+g9", Ok(())),
            ("", Err(LocalpartError::Empty)),
            ("Alice", Err(LocalpartError::InvalidCharacter)),
            ("al ice", Err(LocalpartError::InvalidCharacter)),
            ("al:ice", Err(LocalpartError::InvalidCharacter)),
            ("@alice", Err(LocalpartError::InvalidCharacter)),
            ("ålice", Err(LocalpartError::InvalidCharacter)),
            (&long, Err(LocalpartError::TooLong)),
        ];
        for (input, expected) in cases {
            assert_eq!(
                &validate_localpart(input, "localhost"),
                expected,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn localpart_length_counts_the_server_name() {
        let fits = "a".repeat(MAX_USER_ID_BYTES - "localhost".len() - 2);
        assert_eq!(validate_localpart(&fits, "localhost"), Ok(()));
        let over = format!("{fits}a");
        assert_eq!(
            validate_localpart(&over, "localhost"),
            Err(LocalpartError::TooLong)
        );
    }

    #[test]
    fn login_identifiers() {
        let cases = [
            ("alice", Some("alice")),
            ("Alice", Some("alice")),
            ("@alice:localhost", Some("alice")),
            ("@Alice:localhost", Some("alice")),
            ("@alice:elsewhere.org", None),
            ("@alice", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                login_localpart(input, "localhost").as_deref(),
                expected,
                "input {input}"
            );
        }
    }
}
