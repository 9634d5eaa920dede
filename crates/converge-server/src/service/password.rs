//! Password hashing with argon2id, off the async runtime and a few at a time.
//!
//! Each argon2id hash takes about 19 MiB and tens of milliseconds. Running at most one per
//! core bounds both the memory a burst of logins can claim (glibc keeps freed arenas, so
//! unbounded parallel hashing once held gigabytes) and the CPU it can take from everything
//! else.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Longest password accepted, in bytes. Bounds the work one request can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;

pub struct Passwords {
    permits: Semaphore,
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self { permits: Semaphore::new(cores) }
    }
}

impl Passwords {
    /// Hashes `password` into a PHC string (argon2id, random salt).
    pub async fn hash(&self, password: String) -> Result<String> {
        check_length(&password)?;
        let _permit = self.permits.acquire().await.map_err(Error::internal)?;
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
    pub async fn verify(&self, password: String, hash: String) -> Result<bool> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        let _permit = self.permits.acquire().await.map_err(Error::internal)?;
        tokio::task::spawn_blocking(move || Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok())
            .await
            .map_err(Error::internal)
    }
}

pub fn check_length(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(Error::InvalidParam("the password must not be empty".into()));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::InvalidParam(format!("the password must be at most {MAX_PASSWORD_BYTES} bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_refuse() {
        let passwords = Passwords::default();
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(passwords.verify("correct horse".into(), hash.clone()).await.unwrap());
        assert!(!passwords.verify("wrong".into(), hash.clone()).await.unwrap());
        assert!(!passwords.verify("x".repeat(MAX_PASSWORD_BYTES + 1), hash).await.unwrap());
        assert!(passwords.hash(String::new()).await.is_err());
    }
}
