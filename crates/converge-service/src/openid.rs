//! OpenID tokens: a user proves who they are to a third party (a widget, Element Call's
//! SFU) by handing it a token, which the third party checks with this server.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#openid> and
//! <https://spec.matrix.org/v1.16/server-server-api/#openid>. Tokens are 256 random bits,
//! stored only as their SHA-256, and expire after an hour.

use std::time::Duration;

use converge_store::Store;

use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::ids::{hash_token, new_token};
use crate::now_ms;

/// How long an OpenID token is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// A token handed to the user, shown once.
#[derive(Clone, Debug)]
pub struct OpenIdToken {
    pub access_token: String,
    pub server_name: String,
    pub expires_in: Duration,
}

pub struct OpenId {
    store: Store,
    server_name: String,
}

impl OpenId {
    pub fn new(store: Store, server_name: String) -> Self {
        Self { store, server_name }
    }

    /// `POST /user/{userId}/openid/request_token`: a token for the caller, and only for the
    /// caller.
    pub async fn request_token(&self, caller: &Caller, user_id: &str) -> Result<OpenIdToken> {
        if user_id != caller.user_id.as_str() {
            return Err(Error::forbidden(
                "you may only request OpenID tokens for yourself",
            ));
        }
        let token = new_token("cvgo_");
        let now = now_ms();
        let lifetime = i64::try_from(TOKEN_LIFETIME.as_millis()).unwrap_or(i64::MAX);
        self.store
            .create_openid_token(&hash_token(&token), user_id, now + lifetime, now)
            .await?;
        Ok(OpenIdToken {
            access_token: token,
            server_name: self.server_name.clone(),
            expires_in: TOKEN_LIFETIME,
        })
    }

    /// `GET /_matrix/federation/v1/openid/userinfo`: the user a valid token stands for. An
    /// unknown or expired token, or one of a user deactivated since, is `M_UNKNOWN_TOKEN`.
    pub async fn userinfo(&self, token: &str) -> Result<String> {
        let unknown = || Error::UnknownToken { soft_logout: false };
        let user_id = self
            .store
            .openid_token_user(&hash_token(token), now_ms())
            .await?
            .ok_or_else(unknown)?;
        let localpart = user_id
            .strip_prefix('@')
            .and_then(|rest| rest.strip_suffix(&format!(":{}", self.server_name)))
            .ok_or_else(unknown)?;
        match self.store.user(localpart).await? {
            Some(user) if !user.deactivated => Ok(user_id),
            _ => Err(unknown()),
        }
    }
}
