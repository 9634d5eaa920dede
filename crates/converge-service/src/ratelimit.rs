//! Token-bucket rate limits, keyed by what is limited and by whom (an IP or an account).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::{Rate, RateLimitsConfig};
use crate::error::{Error, Result};

/// Buckets kept before idle ones are swept, so a flood of addresses cannot grow memory
/// without bound.
const MAX_BUCKETS: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Login attempts per client address.
    Login,
    /// Failed login attempts per target account.
    LoginAccount,
    /// Registration attempts per client address.
    Register,
    /// Events sent per user.
    Message,
    /// Uploads started per user.
    Upload,
    /// POSTs per incoming webhook.
    Webhook,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct RateLimiter {
    enabled: bool,
    config: RateLimitsConfig,
    buckets: Mutex<HashMap<(Limit, String), Bucket>>,
}

impl RateLimiter {
    pub fn new(config: &RateLimitsConfig) -> Self {
        Self {
            enabled: config.enabled,
            config: config.clone(),
            buckets: Mutex::default(),
        }
    }

    fn rate(&self, limit: Limit) -> Rate {
        match limit {
            Limit::Login => self.config.login,
            Limit::LoginAccount => self.config.login_account,
            Limit::Register => self.config.register,
            Limit::Message => self.config.message,
            Limit::Upload => self.config.upload,
            Limit::Webhook => self.config.webhook,
        }
    }

    /// Takes one token from the bucket of (`limit`, `key`), or answers `M_LIMIT_EXCEEDED`
    /// with the time until a token is available.
    /// Checks a caller's own limit, unless they are an appservice that is not limited.
    pub fn check_caller(&self, limit: Limit, caller: &crate::Caller) -> Result<()> {
        if caller.rate_limited() {
            self.check(limit, caller.user_id.as_str())
        } else {
            Ok(())
        }
    }

    pub fn check(&self, limit: Limit, key: &str) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let rate = self.rate(limit);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            // Drop buckets that have refilled: they carry no information.
            buckets.retain(|(l, _), b| {
                let rate = self.rate(*l);
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate.per_second
                    < f64::from(rate.burst)
            });
        }
        let bucket = buckets.entry((limit, key.to_owned())).or_insert(Bucket {
            tokens: f64::from(rate.burst),
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate.per_second).min(f64::from(rate.burst));
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / rate.per_second;
            Err(Error::LimitExceeded {
                retry_after_ms: (wait * 1000.0).ceil() as u64,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(enabled: bool) -> RateLimiter {
        RateLimiter::new(&RateLimitsConfig {
            enabled,
            login: Rate {
                per_second: 1.0,
                burst: 3,
            },
            ..RateLimitsConfig::default()
        })
    }

    #[test]
    fn a_burst_then_refusal_with_a_retry_time() {
        let limiter = limiter(true);
        for _ in 0..3 {
            limiter.check(Limit::Login, "1.2.3.4").unwrap();
        }
        match limiter.check(Limit::Login, "1.2.3.4") {
            Err(Error::LimitExceeded { retry_after_ms }) => {
                assert!((1..=1000).contains(&retry_after_ms))
            }
            other => panic!("expected a limit, got {other:?}"),
        }
        // Other keys and other limits have their own buckets.
        limiter.check(Limit::Login, "5.6.7.8").unwrap();
        limiter.check(Limit::Register, "1.2.3.4").unwrap();
    }

    #[test]
    fn disabled_limits_never_refuse() {
        let limiter = limiter(false);
        for _ in 0..100 {
            limiter.check(Limit::Login, "1.2.3.4").unwrap();
        }
    }
}
