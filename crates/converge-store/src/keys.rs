//! The server's part of end-to-end encryption: device keys, one-time and fallback keys,
//! cross-signing keys and the signatures uploaded for keys, the stream of device-list
//! changes, to-device messages, and the server-side key backup.

use converge_core::StreamPos;
use sqlx::Row;

use crate::db::{BeginWrite, Db, fetch_in, on_pool};
use crate::{Store, StoreError};

/// A one-time key or fallback key: `algorithm:key_id` and its JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneTimeKey {
    pub algorithm: String,
    pub key_id: String,
    pub json: String,
}

/// A cross-signing key of a user (`master`, `self_signing`, `user_signing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrossSigningKey {
    pub user_id: String,
    pub key_type: String,
    /// The unpadded base64 public key, as named in `keys` (`ed25519:<key>`).
    pub public_key: String,
    pub json: String,
}

/// A signature uploaded for a key after the fact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySignature {
    pub target_user: String,
    /// A device ID, or a cross-signing public key.
    pub target_key: String,
    pub signer_user: String,
    /// `ed25519:<device ID or public key>`.
    pub signer_key_id: String,
    pub signature: String,
}

/// A to-device message waiting for its device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToDeviceMessage {
    pub stream_pos: StreamPos,
    pub sender: String,
    pub event_type: String,
    pub content: String,
}

/// A version of a user's key backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupVersion {
    pub version: i64,
    pub algorithm: String,
    pub auth_data: String,
    /// Changes whenever the backup's keys change.
    pub etag: i64,
}

/// One backed-up room key session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSession {
    pub room_id: String,
    pub session_id: String,
    pub first_message_index: i64,
    pub forwarded_count: i64,
    pub is_verified: bool,
    pub session_data: String,
}

/// How a one-time key upload went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OneTimeKeysAdded {
    Added,
    /// A key ID was uploaded before with other content.
    Conflict(String),
}

/// `DELETE ... RETURNING` of one unclaimed key; PostgreSQL skips keys another claim holds
/// locked, SQLite's writer lock serialises claims anyway.
fn claim_sql(db: &Db) -> &'static str {
    match db {
        Db::Sqlite(_) => {
            "DELETE FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 \
             AND key_id = (SELECT key_id FROM one_time_keys WHERE user_id = $1 AND device_id = $2 \
             AND algorithm = $3 ORDER BY key_id LIMIT 1) RETURNING key_id, json"
        }
        Db::Postgres(_) => {
            "DELETE FROM one_time_keys WHERE (user_id, device_id, algorithm, key_id) IN \
             (SELECT user_id, device_id, algorithm, key_id FROM one_time_keys WHERE user_id = $1 \
             AND device_id = $2 AND algorithm = $3 ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING key_id, json"
        }
    }
}

impl Store {
    /// The stored device keys of `users` (every device of each), as `(user, device, json)`.
    pub async fn device_keys(
        &self,
        users: &[String],
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(fetch_in!(
            &self.inner.db,
            "SELECT user_id, device_id, keys FROM device_keys WHERE user_id IN ({in})",
            users,
            |row| (
                row.try_get("user_id")?,
                row.try_get("device_id")?,
                row.try_get("keys")?
            )
        ))
    }

    /// Stores a device's keys (replacing what was there).
    pub async fn set_device_keys(
        &self,
        user_id: &str,
        device_id: &str,
        keys: &str,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "INSERT INTO device_keys (user_id, device_id, keys) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, device_id) DO UPDATE SET keys = excluded.keys",
        )
        .bind(user_id).bind(device_id).bind(keys)
        .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Adds one-time keys; a key ID stored before is skipped if its content is the same and
    /// refuses the whole upload if it differs. All or nothing.
    pub async fn add_one_time_keys(
        &self,
        user_id: &str,
        device_id: &str,
        keys: &[OneTimeKey],
    ) -> Result<OneTimeKeysAdded, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            for key in keys {
                let existing = sqlx::query(
                    "SELECT json FROM one_time_keys WHERE user_id = $1 AND device_id = $2 \
                     AND algorithm = $3 AND key_id = $4",
                )
                .bind(user_id).bind(device_id).bind(&key.algorithm).bind(&key.key_id)
                .fetch_optional(&mut *tx)
                .await?;
                match existing {
                    Some(row) => {
                        let json: String = row.try_get("json")?;
                        if json != key.json {
                            return Ok(OneTimeKeysAdded::Conflict(format!("{}:{}", key.algorithm, key.key_id)));
                        }
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, json) \
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(user_id).bind(device_id).bind(&key.algorithm).bind(&key.key_id).bind(&key.json)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(OneTimeKeysAdded::Added)
        })
    }

    /// How many unclaimed one-time keys a device has, per algorithm.
    pub async fn one_time_key_counts(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT algorithm, COUNT(*) AS n FROM one_time_keys WHERE user_id = $1 AND device_id = $2 \
                 GROUP BY algorithm",
            )
            .bind(user_id).bind(device_id)
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push((row.try_get("algorithm")?, row.try_get("n")?));
            }
            Ok(out)
        })
    }

    /// Claims a key for each (user, device, algorithm), all in one transaction, answered in
    /// the order asked: a one-time key (removed, so no two claimers get the same), else the
    /// device's fallback key (marked used, handed out again), else nothing.
    pub async fn claim_keys(
        &self,
        wanted: &[(String, String, String)],
    ) -> Result<Vec<Option<OneTimeKey>>, StoreError> {
        let sql = claim_sql(&self.inner.db);
        on_pool!(&self.inner.db, pool => {
            // Rows are locked in one order (PostgreSQL), so two claims naming the same
            // devices in other orders cannot deadlock on the fallback keys.
            let mut order: Vec<usize> = (0..wanted.len()).collect();
            order.sort_by(|&a, &b| wanted[a].cmp(&wanted[b]));
            let mut tx = pool.begin_write().await?;
            let mut keys = vec![None; wanted.len()];
            for i in order {
                let (user_id, device_id, algorithm) = &wanted[i];
                let claimed = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user_id).bind(device_id).bind(algorithm)
                    .fetch_optional(&mut *tx)
                    .await?;
                let row = match claimed {
                    Some(row) => Some(row),
                    None => sqlx::query(
                        "UPDATE fallback_keys SET used = TRUE WHERE user_id = $1 AND device_id = $2 \
                         AND algorithm = $3 RETURNING key_id, json",
                    )
                    .bind(user_id).bind(device_id).bind(algorithm)
                    .fetch_optional(&mut *tx)
                    .await?,
                };
                if let Some(row) = row {
                    keys[i] = Some(OneTimeKey {
                        algorithm: algorithm.clone(),
                        key_id: row.try_get("key_id")?,
                        json: row.try_get("json")?,
                    });
                }
            }
            tx.commit().await?;
            Ok(keys)
        })
    }

    /// Sets a device's fallback key for its algorithm (unused again).
    pub async fn set_fallback_key(
        &self,
        user_id: &str,
        device_id: &str,
        key: &OneTimeKey,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, json, used) \
             VALUES ($1, $2, $3, $4, $5, FALSE) ON CONFLICT (user_id, device_id, algorithm) \
             DO UPDATE SET key_id = excluded.key_id, json = excluded.json, \
             used = CASE WHEN fallback_keys.key_id = excluded.key_id THEN fallback_keys.used ELSE FALSE END",
        )
        .bind(user_id).bind(device_id).bind(&key.algorithm).bind(&key.key_id).bind(&key.json)
        .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// The algorithms of a device's fallback keys that no claim has used yet.
    pub async fn unused_fallback_algorithms(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT algorithm FROM fallback_keys WHERE user_id = $1 AND device_id = $2 \
                 AND used = FALSE ORDER BY algorithm",
            )
            .bind(user_id).bind(device_id)
            .fetch_all(pool).await?;
            rows.iter().map(|row| Ok(row.try_get("algorithm")?)).collect()
        })
    }

    /// The cross-signing keys of `users`.
    pub async fn cross_signing_keys(
        &self,
        users: &[String],
    ) -> Result<Vec<CrossSigningKey>, StoreError> {
        Ok(fetch_in!(
            &self.inner.db,
            "SELECT user_id, key_type, public_key, json FROM cross_signing_keys WHERE user_id IN ({in})",
            users,
            |row| CrossSigningKey {
                user_id: row.try_get("user_id")?,
                key_type: row.try_get("key_type")?,
                public_key: row.try_get("public_key")?,
                json: row.try_get("json")?,
            }
        ))
    }

    /// Stores cross-signing keys of a user (each replaces the key of its type).
    pub async fn set_cross_signing_keys(&self, keys: &[CrossSigningKey]) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            for key in keys {
                sqlx::query(
                    "INSERT INTO cross_signing_keys (user_id, key_type, public_key, json) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, key_type) \
                     DO UPDATE SET public_key = excluded.public_key, json = excluded.json",
                )
                .bind(&key.user_id).bind(&key.key_type).bind(&key.public_key).bind(&key.json)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Stores signatures (replacing one by the same signer key).
    pub async fn add_key_signatures(&self, signatures: &[KeySignature]) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            for s in signatures {
                sqlx::query(
                    "INSERT INTO key_signatures (target_user, target_key, signer_user, signer_key_id, signature) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (target_user, target_key, signer_user, signer_key_id) \
                     DO UPDATE SET signature = excluded.signature",
                )
                .bind(&s.target_user).bind(&s.target_key).bind(&s.signer_user).bind(&s.signer_key_id).bind(&s.signature)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Every signature uploaded for keys of `users`.
    pub async fn key_signatures(&self, users: &[String]) -> Result<Vec<KeySignature>, StoreError> {
        Ok(fetch_in!(
            &self.inner.db,
            "SELECT target_user, target_key, signer_user, signer_key_id, signature \
             FROM key_signatures WHERE target_user IN ({in})",
            users,
            |row| KeySignature {
                target_user: row.try_get("target_user")?,
                target_key: row.try_get("target_key")?,
                signer_user: row.try_get("signer_user")?,
                signer_key_id: row.try_get("signer_key_id")?,
                signature: row.try_get("signature")?,
            }
        ))
    }

    /// Users whose devices or keys changed with `after < position <= until`.
    pub async fn device_list_changes(
        &self,
        after: StreamPos,
        until: StreamPos,
    ) -> Result<Vec<String>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT DISTINCT user_id FROM device_list_changes WHERE stream_pos > $1 AND stream_pos <= $2",
            )
            .bind(after.0).bind(until.0)
            .fetch_all(pool).await?;
            rows.iter().map(|row| Ok(row.try_get("user_id")?)).collect()
        })
    }

    /// Membership changes with `after < changed <= until` of others in the rooms `user_id`
    /// is joined to now: `(user, membership)`.
    pub async fn co_member_changes(
        &self,
        user_id: &str,
        after: StreamPos,
        until: StreamPos,
    ) -> Result<Vec<(String, String)>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT DISTINCT m2.user_id, m2.membership FROM memberships m1 \
                 JOIN memberships m2 ON m2.room_id = m1.room_id \
                 WHERE m1.user_id = $1 AND m1.membership = 'join' AND m2.user_id <> $1 \
                 AND m2.changed_pos > $2 AND m2.changed_pos <= $3",
            )
            .bind(user_id).bind(after.0).bind(until.0)
            .fetch_all(pool).await?;
            rows.iter().map(|row| Ok((row.try_get("user_id")?, row.try_get("membership")?))).collect()
        })
    }

    /// Users sharing a joined room with `user_id` now (the user included if joined anywhere).
    pub async fn co_members(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT DISTINCT m2.user_id FROM memberships m1 \
                 JOIN memberships m2 ON m2.room_id = m1.room_id AND m2.membership = 'join' \
                 WHERE m1.user_id = $1 AND m1.membership = 'join'",
            )
            .bind(user_id)
            .fetch_all(pool).await?;
            rows.iter().map(|row| Ok(row.try_get("user_id")?)).collect()
        })
    }

    /// A device's to-device messages with `after < position <= until`, oldest first.
    pub async fn to_device_messages(
        &self,
        user_id: &str,
        device_id: &str,
        after: StreamPos,
        until: StreamPos,
        limit: u32,
    ) -> Result<Vec<ToDeviceMessage>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT stream_pos, sender, event_type, content FROM to_device WHERE user_id = $1 \
                 AND device_id = $2 AND stream_pos > $3 AND stream_pos <= $4 ORDER BY stream_pos LIMIT $5",
            )
            .bind(user_id).bind(device_id).bind(after.0).bind(until.0).bind(i64::from(limit))
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(ToDeviceMessage {
                    stream_pos: StreamPos(row.try_get("stream_pos")?),
                    sender: row.try_get("sender")?,
                    event_type: row.try_get("event_type")?,
                    content: row.try_get("content")?,
                });
            }
            Ok(out)
        })
    }

    /// Deletes a device's to-device messages up to `upto`: the device has seen them.
    pub async fn delete_to_device(
        &self,
        user_id: &str,
        device_id: &str,
        upto: StreamPos,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => sqlx::query(
            "DELETE FROM to_device WHERE user_id = $1 AND device_id = $2 AND stream_pos <= $3",
        )
        .bind(user_id).bind(device_id).bind(upto.0)
        .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// How many to-device messages wait for a device.
    pub async fn to_device_pending(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<i64, StoreError> {
        on_pool!(&self.inner.db, pool => Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM to_device WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id).bind(device_id)
        .fetch_one(pool).await?.try_get("n")?))
    }

    /// Creates a new backup version (numbered after every earlier one, deleted or not).
    pub async fn create_backup_version(
        &self,
        user_id: &str,
        algorithm: &str,
        auth_data: &str,
    ) -> Result<i64, StoreError> {
        // Two creations at once may pick the same number (PostgreSQL reads the maximum
        // without locking it); the loser takes the next.
        for _ in 0..crate::CONFLICT_RETRIES {
            let attempt = on_pool!(&self.inner.db, pool => {
                sqlx::query(
                    "INSERT INTO key_backup_versions (user_id, version, algorithm, auth_data, etag, deleted) \
                     SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, 0, FALSE \
                     FROM key_backup_versions WHERE user_id = $1 RETURNING version",
                )
                .bind(user_id).bind(algorithm).bind(auth_data)
                .fetch_one(pool)
                .await
                .and_then(|row| row.try_get::<i64, _>("version"))
            });
            match attempt {
                Ok(version) => return Ok(version),
                Err(err) if StoreError::is_unique_violation(&err) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(StoreError::Contended("key backup versions"))
    }

    /// A backup version that is not deleted: the newest if `version` is `None`.
    pub async fn backup_version(
        &self,
        user_id: &str,
        version: Option<i64>,
    ) -> Result<Option<BackupVersion>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(
                "SELECT version, algorithm, auth_data, etag FROM key_backup_versions \
                 WHERE user_id = $1 AND deleted = FALSE AND ($2 IS NULL OR version = $2) \
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(user_id).bind(version)
            .fetch_optional(pool).await?;
            Ok(match row {
                Some(row) => Some(BackupVersion {
                    version: row.try_get("version")?,
                    algorithm: row.try_get("algorithm")?,
                    auth_data: row.try_get("auth_data")?,
                    etag: row.try_get("etag")?,
                }),
                None => None,
            })
        })
    }

    /// Replaces a backup version's `auth_data`; `false` if there is no such version.
    pub async fn update_backup_version(
        &self,
        user_id: &str,
        version: i64,
        auth_data: &str,
    ) -> Result<bool, StoreError> {
        let n = on_pool!(&self.inner.db, pool => sqlx::query(
            "UPDATE key_backup_versions SET auth_data = $1 WHERE user_id = $2 AND version = $3 AND deleted = FALSE",
        )
        .bind(auth_data).bind(user_id).bind(version)
        .execute(pool).await?.rows_affected());
        Ok(n == 1)
    }

    /// Deletes a backup version and its keys; `false` if there was none.
    pub async fn delete_backup_version(
        &self,
        user_id: &str,
        version: i64,
    ) -> Result<bool, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query(
                "UPDATE key_backup_versions SET deleted = TRUE WHERE user_id = $1 AND version = $2 AND deleted = FALSE",
            )
            .bind(user_id).bind(version)
            .execute(&mut *tx).await?.rows_affected();
            sqlx::query("DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2")
                .bind(user_id).bind(version)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    /// Stores backed-up sessions, each kept only if it is better than the stored one (the
    /// spec's rules, decided by `better`), and bumps the version's etag if anything
    /// changed. Returns the new etag.
    pub async fn put_backup_sessions(
        &self,
        user_id: &str,
        version: i64,
        sessions: &[BackupSession],
        better: fn(&BackupSession, &BackupSession) -> bool,
    ) -> Result<i64, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            let mut changed = false;
            for session in sessions {
                let existing = sqlx::query(
                    "SELECT first_message_index, forwarded_count, is_verified, session_data \
                     FROM key_backup_sessions WHERE user_id = $1 AND version = $2 AND room_id = $3 AND session_id = $4",
                )
                .bind(user_id).bind(version).bind(&session.room_id).bind(&session.session_id)
                .fetch_optional(&mut *tx).await?;
                let replace = match existing {
                    None => true,
                    Some(row) => {
                        let current = BackupSession {
                            room_id: session.room_id.clone(),
                            session_id: session.session_id.clone(),
                            first_message_index: row.try_get("first_message_index")?,
                            forwarded_count: row.try_get("forwarded_count")?,
                            is_verified: row.try_get("is_verified")?,
                            session_data: row.try_get("session_data")?,
                        };
                        better(session, &current)
                    }
                };
                if replace {
                    changed = true;
                    sqlx::query(
                        "INSERT INTO key_backup_sessions (user_id, version, room_id, session_id, \
                         first_message_index, forwarded_count, is_verified, session_data) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET \
                         first_message_index = excluded.first_message_index, forwarded_count = excluded.forwarded_count, \
                         is_verified = excluded.is_verified, session_data = excluded.session_data",
                    )
                    .bind(user_id).bind(version).bind(&session.room_id).bind(&session.session_id)
                    .bind(session.first_message_index).bind(session.forwarded_count)
                    .bind(session.is_verified).bind(&session.session_data)
                    .execute(&mut *tx).await?;
                }
            }
            if changed {
                sqlx::query("UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2")
                    .bind(user_id).bind(version)
                    .execute(&mut *tx).await?;
            }
            let etag: i64 = sqlx::query("SELECT etag FROM key_backup_versions WHERE user_id = $1 AND version = $2")
                .bind(user_id).bind(version)
                .fetch_one(&mut *tx).await?.try_get("etag")?;
            tx.commit().await?;
            Ok(etag)
        })
    }

    /// Backed-up sessions of a version: all, one room's, or one session.
    pub async fn backup_sessions(
        &self,
        user_id: &str,
        version: i64,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<Vec<BackupSession>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data \
                 FROM key_backup_sessions WHERE user_id = $1 AND version = $2 \
                 AND ($3 IS NULL OR room_id = $3) AND ($4 IS NULL OR session_id = $4) \
                 ORDER BY room_id, session_id",
            )
            .bind(user_id).bind(version).bind(room_id).bind(session_id)
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(BackupSession {
                    room_id: row.try_get("room_id")?,
                    session_id: row.try_get("session_id")?,
                    first_message_index: row.try_get("first_message_index")?,
                    forwarded_count: row.try_get("forwarded_count")?,
                    is_verified: row.try_get("is_verified")?,
                    session_data: row.try_get("session_data")?,
                });
            }
            Ok(out)
        })
    }

    /// Deletes backed-up sessions (all, one room's, or one) and bumps the etag; returns it.
    pub async fn delete_backup_sessions(
        &self,
        user_id: &str,
        version: i64,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<i64, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2 \
                 AND ($3 IS NULL OR room_id = $3) AND ($4 IS NULL OR session_id = $4)",
            )
            .bind(user_id).bind(version).bind(room_id).bind(session_id)
            .execute(&mut *tx).await?;
            sqlx::query("UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2")
                .bind(user_id).bind(version)
                .execute(&mut *tx).await?;
            let etag: i64 = sqlx::query("SELECT etag FROM key_backup_versions WHERE user_id = $1 AND version = $2")
                .bind(user_id).bind(version)
                .fetch_one(&mut *tx).await?.try_get("etag")?;
            tx.commit().await?;
            Ok(etag)
        })
    }

    /// How many sessions a backup version holds.
    pub async fn backup_count(&self, user_id: &str, version: i64) -> Result<i64, StoreError> {
        on_pool!(&self.inner.db, pool => Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM key_backup_sessions WHERE user_id = $1 AND version = $2",
        )
        .bind(user_id).bind(version)
        .fetch_one(pool).await?.try_get("n")?))
    }
}
