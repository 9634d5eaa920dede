//! What voice and video calls need from the server: credentials for a TURN relay.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv3voipturnserver>.
//! Credentials follow the TURN REST API scheme (draft-uberti-behave-turn-rest): the username
//! is `{expiry}:{user_id}` and the password `base64(HMAC-SHA1(secret, username))`, which a
//! TURN server holding the same secret checks without knowing the user.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::caller::Caller;
use crate::config::TurnConfig;
use crate::now_ms;

/// Credentials for the configured TURN server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnCredentials {
    pub username: String,
    pub password: String,
    pub uris: Vec<String>,
    pub ttl: Duration,
}

pub struct Calls {
    turn: TurnConfig,
}

impl Calls {
    pub fn new(turn: TurnConfig) -> Self {
        Self { turn }
    }

    /// `GET /voip/turnServer`: credentials valid for the configured time from now, or `None`
    /// when no TURN server is configured (answered `{}`, as Synapse does, which makes clients
    /// stop asking without showing an error).
    pub fn turn_server(&self, caller: &Caller) -> Option<TurnCredentials> {
        let now_secs = u64::try_from(now_ms() / 1000).unwrap_or(0);
        self.credentials_at(caller, now_secs)
    }

    /// The credentials handed out at `now_secs` (seconds since the Unix epoch).
    fn credentials_at(&self, caller: &Caller, now_secs: u64) -> Option<TurnCredentials> {
        if self.turn.shared_secret.is_empty() || self.turn.external_uris.is_empty() {
            return None;
        }
        let expiry = now_secs.saturating_add(self.turn.ttl.as_secs());
        let username = format!("{expiry}:{}", caller.user_id);
        Some(TurnCredentials {
            password: turn_password(&self.turn.shared_secret, &username),
            username,
            uris: self.turn.external_uris.clone(),
            ttl: self.turn.ttl,
        })
    }
}

/// `base64(HMAC-SHA1(secret, username))`, the TURN REST API password.
fn turn_password(secret: &str, username: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            localpart: "alice".into(),
            user_id: "@alice:example.org".try_into().unwrap(),
            device_id: "DEV".into(),
            is_admin: false,
            token_hash: Vec::new(),
            appservice: None,
        }
    }

    #[test]
    fn password_is_the_rest_api_hmac() {
        // The key-and-message pair of RFC 2202's second HMAC-SHA1 test case.
        assert_eq!(
            turn_password("Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
    }

    #[test]
    fn credentials_expire_after_the_ttl() {
        let calls = Calls::new(TurnConfig {
            external_uris: vec!["turn:turn.example.org:3478?transport=udp".into()],
            shared_secret: "s3cret".into(),
            ttl: Duration::from_secs(3600),
        });
        let creds = calls.credentials_at(&caller(), 1_000).unwrap();
        assert_eq!(creds.username, "4600:@alice:example.org");
        assert_eq!(
            creds.password,
            turn_password("s3cret", "4600:@alice:example.org")
        );
        assert_eq!(creds.ttl, Duration::from_secs(3600));
        assert_eq!(creds.uris.len(), 1);
    }

    #[test]
    fn nothing_configured_means_no_credentials() {
        let none = Calls::new(TurnConfig::default());
        assert_eq!(none.credentials_at(&caller(), 0), None);
        let no_uris = Calls::new(TurnConfig {
            shared_secret: "s".into(),
            ..TurnConfig::default()
        });
        assert_eq!(no_uris.turn_server(&caller()), None);
    }
}
