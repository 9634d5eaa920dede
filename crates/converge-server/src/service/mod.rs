//! The service layer: what the server does, independent of HTTP.
//!
//! Handlers and gateways call these services; only services touch the store. Each service
//! is a plain struct holding exactly what it needs, built once in [`Services::new`].

pub mod accounts;
pub mod password;
pub mod ratelimit;
pub mod uia;

use std::sync::Arc;

use converge_store::Store;

use crate::config::Config;

/// Every service, shared by all requests.
pub struct Services {
    pub accounts: accounts::Accounts,
    pub limiter: Arc<ratelimit::RateLimiter>,
    pub store: Store,
}

impl Services {
    pub async fn new(config: &Config, store: Store) -> Self {
        let limiter = Arc::new(ratelimit::RateLimiter::new(&config.rate_limits));
        let accounts = accounts::Accounts::new(config, store.clone(), limiter.clone()).await;
        Self {
            accounts,
            limiter,
            store,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
