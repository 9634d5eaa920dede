//! OpenID tokens: short-lived proofs of a user's identity that widgets and calls hand to
//! third parties, who check them through the federation `userinfo` endpoint.

use sqlx::Row;

use crate::db::on_pool;
use crate::{Store, StoreError};

impl Store {
    /// Stores an OpenID token (by its hash) for `user_id` until `expires_ts`, and drops the
    /// tokens that expired before `now`, so the table holds at most an hour of tokens.
    pub async fn create_openid_token(
        &self,
        token_hash: &[u8],
        user_id: &str,
        expires_ts: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => {
            sqlx::query("DELETE FROM openid_tokens WHERE expires_ts <= $1")
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES ($1, $2, $3)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(expires_ts)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The user an OpenID token stands for, if the token exists and is valid at `now`.
    pub async fn openid_token_user(
        &self,
        token_hash: &[u8],
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(
                "SELECT user_id FROM openid_tokens WHERE token_hash = $1 AND expires_ts > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            Ok(match row { Some(row) => Some(row.try_get("user_id")?), None => None })
        })
    }
}
