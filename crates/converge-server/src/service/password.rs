//! Password hashing with argon2id, off the async runtime.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::{Error, Result};

/// Longest password accepted, in bytes. Bounds the work one request can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes `password` into a PHC string (argon2id, random salt).
pub async fn hash(password: String) -> Result<String> {
    check_length(&password)?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(Error::internal)
    })
    .await
    .map_err(Error::internal)?
}

/// Whether `password` matches the PHC string `hash`.
pub async fn verify(password: String, hash: String) -> Result<bool> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .map_err(Error::internal)
}

pub fn check_length(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(Error::InvalidParam("the password must not be empty".into()));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::InvalidParam(format!(
            "the password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}
