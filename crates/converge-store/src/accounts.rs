//! Users, devices, access and refresh tokens, and registration tokens.
//!
//! Tokens are stored only as hashes: the caller hashes, the store compares bytes.

use sqlx::Row;

use crate::db::{BeginWrite, fetch_in, on_pool};
use crate::{Store, StoreError};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A local user account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub localpart: String,
    /// PHC string (argon2id); `None` when the account cannot log in with a password.
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub deactivated: bool,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    pub created_ts: i64,
    /// The application service that made the user, if one did.
    pub appservice_id: Option<String>,
}

/// What registration needs to create a user.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub localpart: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub displayname: Option<String>,
    pub created_ts: i64,
    /// The application service making the user, if one is.
    pub appservice_id: Option<String>,
}

/// A login: the device it is for and the hashes of the tokens handed out.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub device_id: String,
    /// Display name for a new device; an existing device keeps its name when `None`.
    pub display_name: Option<String>,
    pub access_token_hash: Vec<u8>,
    pub refresh_token_hash: Option<Vec<u8>>,
    /// When the access token stops working (ms); `None` for never.
    pub expires_ts: Option<i64>,
    pub created_ts: i64,
    pub ip: Option<String>,
}

/// Who an access token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub localpart: String,
    pub device_id: String,
    pub expires_ts: Option<i64>,
    pub is_admin: bool,
}

/// A user's device, as listed by `/devices`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub device_id: String,
    pub display_name: Option<String>,
    pub last_seen_ts: Option<i64>,
    pub last_seen_ip: Option<String>,
}

/// A registration token and how much of it is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationToken {
    pub token: String,
    pub uses_allowed: Option<i64>,
    pub completed: i64,
    pub expiry_ts: Option<i64>,
}

const USER_COLUMNS: &str = "localpart, password_hash, is_admin, deactivated, displayname, \
     avatar_url, created_ts, appservice_id";

macro_rules! user_from_row {
    ($row:expr) => {{
        let row = $row;
        User {
            localpart: row.try_get("localpart")?,
            password_hash: row.try_get("password_hash")?,
            is_admin: row.try_get("is_admin")?,
            deactivated: row.try_get("deactivated")?,
            displayname: row.try_get("displayname")?,
            avatar_url: row.try_get("avatar_url")?,
            created_ts: row.try_get("created_ts")?,
            appservice_id: row.try_get("appservice_id")?,
        }
    }};
}

macro_rules! device_from_row {
    ($row:expr) => {{
        let row = $row;
        Device {
            device_id: row.try_get("device_id")?,
            display_name: row.try_get("display_name")?,
            last_seen_ts: row.try_get("last_seen_ts")?,
            last_seen_ip: row.try_get("last_seen_ip")?,
        }
    }};
}

/// Inserts a device (or refreshes an existing one) and its token row inside a transaction.
macro_rules! insert_session {
    ($tx:expr, $localpart:expr, $session:expr) => {{
        let session: &NewSession = $session;
        sqlx::query(
            "INSERT INTO devices (localpart, device_id, display_name, last_seen_ts, last_seen_ip, created_ts) \
             VALUES ($1, $2, $3, $4, $5, $4) \
             ON CONFLICT (localpart, device_id) DO UPDATE SET \
             display_name = COALESCE(excluded.display_name, devices.display_name), \
             last_seen_ts = excluded.last_seen_ts, last_seen_ip = excluded.last_seen_ip",
        )
        .bind($localpart)
        .bind(&session.device_id)
        .bind(&session.display_name)
        .bind(session.created_ts)
        .bind(&session.ip)
        .execute($tx)
        .await?;
        sqlx::query(
            "INSERT INTO access_tokens \
             (token_hash, localpart, device_id, expires_ts, refresh_token_hash, created_ts) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.access_token_hash)
        .bind($localpart)
        .bind(&session.device_id)
        .bind(session.expires_ts)
        .bind(&session.refresh_token_hash)
        .bind(session.created_ts)
        .execute($tx)
        .await?;
    }};
}

/// The per-device end-to-end tables, emptied with the device.
const DEVICE_KEY_TABLES: [&str; 4] = ["device_keys", "one_time_keys", "fallback_keys", "to_device"];

impl Store {
    /// Creates a user, consuming one use of `registration_token` and starting `session`
    /// in the same transaction: either all of it happens or none of it.
    pub async fn create_user(
        &self,
        user: &NewUser,
        registration_token: Option<&str>,
        session: Option<&NewSession>,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            if let Some(token) = registration_token {
                let used = sqlx::query(
                    "UPDATE registration_tokens SET completed = completed + 1 \
                     WHERE token = $1 AND (uses_allowed IS NULL OR completed < uses_allowed) \
                     AND (expiry_ts IS NULL OR expiry_ts > $2)",
                )
                .bind(token)
                .bind(user.created_ts)
                .execute(&mut *tx)
                .await?;
                if used.rows_affected() != 1 {
                    return Err(StoreError::TokenNotUsable);
                }
            }
            let inserted = sqlx::query(
                "INSERT INTO users (localpart, password_hash, is_admin, displayname, created_ts, appservice_id) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (localpart) DO NOTHING",
            )
            .bind(&user.localpart)
            .bind(&user.password_hash)
            .bind(user.is_admin)
            .bind(&user.displayname)
            .bind(user.created_ts)
            .bind(&user.appservice_id)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() != 1 {
                return Err(StoreError::UserExists);
            }
            if let Some(session) = session {
                insert_session!(&mut *tx, &user.localpart, session);
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Looks a user up by localpart, deactivated or not.
    pub async fn user(&self, localpart: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE localpart = $1");
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(localpart).fetch_optional(pool).await?;
            Ok(match row { Some(row) => Some(user_from_row!(row)), None => None })
        })
    }

    /// Replaces a user's password hash.
    pub async fn set_password_hash(&self, localpart: &str, hash: &str) -> Result<(), StoreError> {
        self.update_user_column("password_hash", localpart, Some(hash))
            .await
    }

    /// Sets or clears a user's display name.
    pub async fn set_displayname(
        &self,
        localpart: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        self.update_user_column("displayname", localpart, value)
            .await
    }

    /// Sets or clears a user's avatar URL.
    pub async fn set_avatar_url(
        &self,
        localpart: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        self.update_user_column("avatar_url", localpart, value)
            .await
    }

    async fn update_user_column(
        &self,
        column: &'static str,
        localpart: &str,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let sql = format!("UPDATE users SET {column} = $1 WHERE localpart = $2");
        let done = on_pool!(&self.inner.db, pool =>
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(value).bind(localpart).execute(pool).await?.rows_affected());
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Records which application service made a user (or none).
    pub async fn set_user_appservice(
        &self,
        localpart: &str,
        appservice_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.update_user_column("appservice_id", localpart, appservice_id)
            .await
    }

    /// Makes a user a server admin, or not.
    pub async fn set_admin(&self, localpart: &str, is_admin: bool) -> Result<(), StoreError> {
        let done = on_pool!(&self.inner.db, pool =>
            sqlx::query("UPDATE users SET is_admin = $1 WHERE localpart = $2")
                .bind(is_admin).bind(localpart).execute(pool).await?.rows_affected());
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Deactivates a user for good: no devices, no tokens, no profile. The password hash
    /// stays so a login with the right password can be told the account is deactivated.
    /// The localpart stays taken so the ID is never handed to someone else.
    /// Its end-to-end keys (all of them, cross-signing too) and key backups go as well.
    pub async fn deactivate_user(&self, localpart: &str, user_id: &str) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(
                "UPDATE users SET deactivated = TRUE, displayname = NULL, \
                 avatar_url = NULL WHERE localpart = $1",
            )
            .bind(localpart)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM access_tokens WHERE localpart = $1")
                .bind(localpart).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM devices WHERE localpart = $1")
                .bind(localpart).execute(&mut *tx).await?;
            for table in DEVICE_KEY_TABLES.iter().chain(&["cross_signing_keys", "key_backup_sessions", "key_backup_versions"]) {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE user_id = $1")))
                    .bind(user_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Starts a session on a device, creating the device if it is new. Any earlier tokens of
    /// that device stop working, as the spec asks for a login that reuses a device ID.
    pub async fn create_session(
        &self,
        localpart: &str,
        session: &NewSession,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM access_tokens WHERE localpart = $1 AND device_id = $2")
                .bind(localpart)
                .bind(&session.device_id)
                .execute(&mut *tx)
                .await?;
            insert_session!(&mut *tx, localpart, session);
            tx.commit().await?;
            Ok(())
        })
    }

    /// Resolves an access token hash to its session. Expired tokens are still returned;
    /// the caller decides (it answers them with a soft logout).
    pub async fn session_by_token(&self, token_hash: &[u8]) -> Result<Option<Session>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(
                "SELECT t.localpart, t.device_id, t.expires_ts, u.is_admin \
                 FROM access_tokens t JOIN users u ON u.localpart = t.localpart \
                 WHERE t.token_hash = $1 AND u.deactivated = FALSE",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(Session {
                    localpart: row.try_get("localpart")?,
                    device_id: row.try_get("device_id")?,
                    expires_ts: row.try_get("expires_ts")?,
                    is_admin: row.try_get("is_admin")?,
                }),
                None => None,
            })
        })
    }

    /// Swaps a refresh token for a new token pair on the same device. The old access and
    /// refresh tokens stop working. Returns the session's owner and device, or `None` if
    /// the refresh token is unknown.
    pub async fn refresh_session(
        &self,
        refresh_token_hash: &[u8],
        access_token_hash: &[u8],
        new_refresh_token_hash: &[u8],
        expires_ts: Option<i64>,
        now: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            let row = sqlx::query(
                "DELETE FROM access_tokens WHERE refresh_token_hash = $1 \
                 RETURNING localpart, device_id",
            )
            .bind(refresh_token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let localpart: String = row.try_get("localpart")?;
            let device_id: String = row.try_get("device_id")?;
            sqlx::query(
                "INSERT INTO access_tokens \
                 (token_hash, localpart, device_id, expires_ts, refresh_token_hash, created_ts) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(access_token_hash)
            .bind(&localpart)
            .bind(&device_id)
            .bind(expires_ts)
            .bind(new_refresh_token_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some((localpart, device_id)))
        })
    }

    /// Ends one access token's session without touching the device's other state.
    pub async fn delete_access_token(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool =>
            sqlx::query("DELETE FROM access_tokens WHERE token_hash = $1")
                .bind(token_hash).execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Lists a user's devices, ordered by device ID.
    pub async fn devices(&self, localpart: &str) -> Result<Vec<Device>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices \
                 WHERE localpart = $1 ORDER BY device_id",
            )
            .bind(localpart)
            .fetch_all(pool)
            .await?;
            let mut devices = Vec::with_capacity(rows.len());
            for row in rows {
                devices.push(device_from_row!(row));
            }
            Ok(devices)
        })
    }

    /// The devices of several users at once: (localpart, device), ordered by device ID
    /// within each user.
    pub async fn devices_of(
        &self,
        localparts: &[&str],
    ) -> Result<Vec<(String, Device)>, StoreError> {
        Ok(fetch_in!(
            &self.inner.db,
            "SELECT localpart, device_id, display_name, last_seen_ts, last_seen_ip FROM devices \
             WHERE localpart IN ({in}) ORDER BY localpart, device_id",
            localparts,
            |row| (row.try_get("localpart")?, device_from_row!(row))
        ))
    }

    /// One device of a user.
    pub async fn device(
        &self,
        localpart: &str,
        device_id: &str,
    ) -> Result<Option<Device>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(
                "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices \
                 WHERE localpart = $1 AND device_id = $2",
            )
            .bind(localpart)
            .bind(device_id)
            .fetch_optional(pool)
            .await?;
            Ok(match row { Some(row) => Some(device_from_row!(row)), None => None })
        })
    }

    /// Renames a device. Fails with `NotFound` if the user has no such device.
    /// Creates a device without a token (an application service's device, MSC4190), or
    /// renames it if it exists. Returns whether it was created.
    pub async fn upsert_device(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let created = on_pool!(&self.inner.db, pool => sqlx::query(
            "INSERT INTO devices (localpart, device_id, display_name, created_ts) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (localpart, device_id) DO NOTHING",
        )
        .bind(localpart).bind(device_id).bind(display_name).bind(now)
        .execute(pool).await?.rows_affected())
            == 1;
        if !created && display_name.is_some() {
            self.set_device_display_name(localpart, device_id, display_name)
                .await?;
        }
        Ok(created)
    }

    pub async fn set_device_display_name(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<(), StoreError> {
        let done = on_pool!(&self.inner.db, pool =>
            sqlx::query("UPDATE devices SET display_name = $1 WHERE localpart = $2 AND device_id = $3")
                .bind(display_name).bind(localpart).bind(device_id)
                .execute(pool).await?.rows_affected());
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Records when and from where a device was last seen.
    pub async fn touch_device(
        &self,
        localpart: &str,
        device_id: &str,
        ts: i64,
        ip: Option<&str>,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool =>
        {
            sqlx::query(
                "UPDATE devices SET last_seen_ts = $1, last_seen_ip = $2 \
                 WHERE localpart = $3 AND device_id = $4",
            )
            .bind(ts).bind(ip).bind(localpart).bind(device_id)
            .execute(pool).await?;
            sqlx::query(
                "INSERT INTO daily_active_users (day, localpart) VALUES ($1, $2) \
                 ON CONFLICT (day, localpart) DO NOTHING",
            )
            .bind(ts.div_euclid(crate::stats::DAY_MS)).bind(localpart)
            .execute(pool).await?;
        });
        Ok(())
    }

    /// Deletes the named devices of a user and every token they hold. Devices that do not
    /// exist are skipped, as the spec's `/delete_devices` asks.
    ///
    /// Their end-to-end keys (stored under the full `user_id`) and waiting to-device
    /// messages go with them.
    pub async fn delete_devices(
        &self,
        localpart: &str,
        user_id: &str,
        device_ids: &[String],
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            for device_id in device_ids {
                sqlx::query("DELETE FROM access_tokens WHERE localpart = $1 AND device_id = $2")
                    .bind(localpart).bind(device_id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM devices WHERE localpart = $1 AND device_id = $2")
                    .bind(localpart).bind(device_id).execute(&mut *tx).await?;
                for table in DEVICE_KEY_TABLES {
                    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE user_id = $1 AND device_id = $2")))
                        .bind(user_id).bind(device_id).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Deletes all of a user's devices except `keep`, with their tokens.
    pub async fn delete_other_devices(
        &self,
        localpart: &str,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<(), StoreError> {
        let keep = keep.unwrap_or("");
        on_pool!(&self.inner.db, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM access_tokens WHERE localpart = $1 AND device_id <> $2")
                .bind(localpart).bind(keep).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM devices WHERE localpart = $1 AND device_id <> $2")
                .bind(localpart).bind(keep).execute(&mut *tx).await?;
            for table in DEVICE_KEY_TABLES {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE user_id = $1 AND device_id <> $2")))
                    .bind(user_id).bind(keep).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Creates a registration token. Fails with `UserExists`-free semantics: an existing
    /// token of the same name is reported as a database unique violation.
    pub async fn create_registration_token(
        &self,
        token: &RegistrationToken,
        now: i64,
    ) -> Result<(), StoreError> {
        on_pool!(&self.inner.db, pool =>
            sqlx::query(
                "INSERT INTO registration_tokens (token, uses_allowed, completed, expiry_ts, created_ts) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&token.token).bind(token.uses_allowed).bind(token.completed)
            .bind(token.expiry_ts).bind(now)
            .execute(pool).await.map(drop))?;
        Ok(())
    }

    /// Looks up a registration token.
    pub async fn registration_token(
        &self,
        token: &str,
    ) -> Result<Option<RegistrationToken>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let row = sqlx::query(
                "SELECT token, uses_allowed, completed, expiry_ts FROM registration_tokens WHERE token = $1",
            )
            .bind(token)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(RegistrationToken {
                    token: row.try_get("token")?,
                    uses_allowed: row.try_get("uses_allowed")?,
                    completed: row.try_get("completed")?,
                    expiry_ts: row.try_get("expiry_ts")?,
                }),
                None => None,
            })
        })
    }
}

/// A user as the admin pages list them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSummary {
    pub user: User,
    /// The latest any of their devices was seen, if ever.
    pub last_seen_ts: Option<i64>,
}

/// `LIKE` pattern for "contains `text`", lowercased, with `%`, `_` and `\` escaped.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Store {
    /// Users in localpart order after `after`, at most `limit`, whose localpart or display
    /// name contains `search` (any case).
    pub async fn list_users(
        &self,
        search: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserSummary>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, (SELECT MAX(d.last_seen_ts) FROM devices d \
             WHERE d.localpart = users.localpart) AS last_seen_ts FROM users \
             WHERE localpart > $1 AND (LOWER(localpart) LIKE $2 ESCAPE '\\' \
             OR LOWER(COALESCE(displayname, '')) LIKE $2 ESCAPE '\\') \
             ORDER BY localpart LIMIT $3"
        );
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(after.unwrap_or(""))
                .bind(contains_pattern(search))
                .bind(i64::from(limit))
                .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(UserSummary {
                    user: user_from_row!(row),
                    last_seen_ts: row.try_get("last_seen_ts")?,
                });
            }
            Ok(out)
        })
    }

    /// How many active server admins there are.
    pub async fn admin_count(&self) -> Result<i64, StoreError> {
        on_pool!(&self.inner.db, pool => Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM users WHERE is_admin AND NOT deactivated",
        )
        .fetch_one(pool).await?.try_get("n")?))
    }

    /// Every registration token, newest first.
    pub async fn registration_tokens(&self) -> Result<Vec<RegistrationToken>, StoreError> {
        on_pool!(&self.inner.db, pool => {
            let rows = sqlx::query(
                "SELECT token, uses_allowed, completed, expiry_ts FROM registration_tokens \
                 ORDER BY created_ts DESC, token",
            )
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(RegistrationToken {
                    token: row.try_get("token")?,
                    uses_allowed: row.try_get("uses_allowed")?,
                    completed: row.try_get("completed")?,
                    expiry_ts: row.try_get("expiry_ts")?,
                });
            }
            Ok(out)
        })
    }

    /// Deletes a registration token; whether it existed.
    pub async fn delete_registration_token(&self, token: &str) -> Result<bool, StoreError> {
        on_pool!(&self.inner.db, pool => Ok(sqlx::query(
            "DELETE FROM registration_tokens WHERE token = $1",
        )
        .bind(token)
        .execute(pool).await?.rows_affected() == 1))
    }
}

impl RegistrationToken {
    /// Whether one more registration may use this token at time `now` (ms).
    pub fn usable_at(&self, now: i64) -> bool {
        self.uses_allowed
            .is_none_or(|allowed| self.completed < allowed)
            && self.expiry_ts.is_none_or(|expiry| expiry > now)
    }
}
