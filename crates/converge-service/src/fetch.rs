//! Outbound HTTP that never reaches an address the SSRF blocklist refuses: used by URL
//! previews and outgoing webhooks.
//!
//! Every address is checked after DNS resolution, by the client's resolver, so a name that
//! points at a private address is refused; IP literals, which skip the resolver, are
//! checked before the request ([`Policy::check_url`]) and on every redirect.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use converge_core::net::{Cidr, may_fetch};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// The most redirects followed.
const MAX_REDIRECTS: usize = 5;

/// The wait before the next delivery after `failures` failed attempts in a row: 1 s, 2 s,
/// 4 s, ... up to `max` (outgoing webhooks and pushers retry alike).
pub fn backoff(failures: i64, max: Duration) -> Duration {
    let exponent = failures.clamp(1, 31) as u32 - 1;
    Duration::from_secs(1u64 << exponent).min(max)
}

/// What the refusal says, in errors and in the resolver's error chain.
pub const BLOCKED: &str = "the address is not allowed";

/// Which addresses may be fetched: the blocklist, with allow and deny lists from config.
#[derive(Clone)]
pub struct Policy {
    allow: Arc<Vec<Cidr>>,
    deny: Arc<Vec<Cidr>>,
}

impl Policy {
    /// Parses the `allow` and `deny` CIDR lists.
    pub fn new(allow: &[String], deny: &[String]) -> Result<Self, String> {
        let parse = |list: &[String]| {
            list.iter()
                .map(|r| r.parse::<Cidr>())
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            allow: Arc::new(parse(allow)?),
            deny: Arc::new(parse(deny)?),
        })
    }

    fn permits(&self, ip: IpAddr) -> bool {
        may_fetch(ip, &self.allow, &self.deny)
    }

    /// Refuses URLs that are not http(s) or whose host is a refused IP literal.
    pub fn check_url(&self, url: &Url) -> Result<(), &'static str> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err("only http and https URLs can be fetched");
        }
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err("the URL has no host"),
        };
        if self.permits(ip) {
            Ok(())
        } else {
            Err(BLOCKED)
        }
    }

    /// An HTTP client bound to this policy: its resolver drops refused addresses and its
    /// redirects are checked like the first URL.
    pub fn client(&self, timeout: Duration, purpose: &str) -> Result<reqwest::Client, String> {
        let redirect_policy = self.clone();
        reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .user_agent(format!(
                "Converge/{} ({purpose})",
                env!("CARGO_PKG_VERSION")
            ))
            .dns_resolver(Arc::new(GuardedResolver(self.clone())))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error("too many redirects");
                }
                match redirect_policy.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(reason) => attempt.error(reason),
                }
            }))
            .build()
            .map_err(|e| e.to_string())
    }
}

/// Whether a request failed because the policy refused an address.
pub fn was_blocked(err: &reqwest::Error) -> bool {
    format!("{err:?}").contains(BLOCKED)
}

/// Resolves names with the system resolver and drops every address the policy refuses.
struct GuardedResolver(Policy);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found.filter(|addr| policy.permits(addr.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    BLOCKED,
                ))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, max), Duration::from_secs(1));
        assert_eq!(backoff(2, max), Duration::from_secs(2));
        assert_eq!(backoff(5, max), Duration::from_secs(16));
        assert_eq!(backoff(7, max), max);
        assert_eq!(backoff(1000, max), max);
    }

    #[test]
    fn literal_addresses_are_checked_before_fetching() {
        let policy = Policy::new(&["127.0.0.2/32".into()], &[]).unwrap();
        for blocked in [
            "http://127.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://10.0.0.1/",
            "http://[::1]:8008/",
            "http://169.254.169.254/",
        ] {
            assert_eq!(
                policy.check_url(&Url::parse(blocked).unwrap()),
                Err(BLOCKED),
                "{blocked}"
            );
        }
        assert!(
            policy
                .check_url(&Url::parse("ftp://example.org/").unwrap())
                .is_err()
        );
        assert!(
            policy
                .check_url(&Url::parse("http://127.0.0.2:9000/").unwrap())
                .is_ok()
        );
        assert!(
            policy
                .check_url(&Url::parse("https://example.org/").unwrap())
                .is_ok()
        );
    }
}
