//! Password hashing with argon2id, on a few threads of its own.
//!
//! Each argon2id hash takes about 19 MiB and tens of milliseconds. Running at most one per
//! core, queued, bounds both the memory a burst of logins can claim and the CPU it can
//! take from everything else.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::{Error, Result};

/// Longest password accepted, in bytes. Bounds the work one request can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;

pub struct Passwords {
    /// Jobs for the hashing threads. Dropping it (with the service) ends the threads.
    jobs: std::sync::mpsc::Sender<Job>,
    /// A hash checked against when there is no account (or no password) to check, so the
    /// answer takes as long as for a real one and does not reveal which users exist.
    dummy_hash: std::sync::OnceLock<String>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Default for Passwords {
    /// One hashing thread per core. A fixed set of threads, rather than the runtime's
    /// blocking pool, also keeps the allocator's per-thread arenas to one per core: with
    /// the blocking pool, every new thread kept its own 19 MiB high-water mark and a burst
    /// of registrations left the process at gigabytes.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for n in 0..cores {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("a hashing thread starts");
        }
        Self {
            jobs,
            dummy_hash: std::sync::OnceLock::new(),
        }
    }
}

impl Passwords {
    /// Runs `work` on a hashing thread and waits for its result.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(work());
            }))
            .map_err(|_| Error::internal("the password hashing threads are gone"))?;
        result
            .await
            .map_err(|_| Error::internal("a password hashing job was lost"))
    }

    /// Hashes `password` into a PHC string (argon2id, random salt).
    pub async fn hash(&self, password: String) -> Result<String> {
        check_length(&password)?;
        self.run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
        })
        .await?
        .map_err(Error::internal)
    }

    /// Whether `password` matches `hash`; with no hash (no such user, or one without a
    /// password) it is checked against a dummy hash and never matches, in the same time.
    pub async fn verify_or_dummy(&self, password: String, hash: Option<String>) -> Result<bool> {
        match hash {
            Some(hash) => self.verify(password, hash).await,
            None => {
                let dummy = match self.dummy_hash.get() {
                    Some(dummy) => dummy.clone(),
                    None => {
                        let made = self.hash(crate::ids::random_id(16)).await?;
                        self.dummy_hash.get_or_init(|| made).clone()
                    }
                };
                self.verify(password, dummy).await.map(|_| false)
            }
        }
    }

    /// Whether `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        self.run(move || {
            Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_refuse() {
        let passwords = Passwords::default();
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            passwords
                .verify("correct horse".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("wrong".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("x".repeat(MAX_PASSWORD_BYTES + 1), hash)
                .await
                .unwrap()
        );
        assert!(passwords.hash(String::new()).await.is_err());
    }
}
