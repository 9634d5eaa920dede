//! Server-side key backup: versions of a user's encrypted backup and the room key sessions
//! in them. The server stores opaque `session_data`; it keeps, per session, the better
//! copy by the spec's rules, and refuses writes to any but the current version.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#server-side-key-backups>.

use converge_core::e2ee::{BackupRank, backup_replaces};
use converge_store::{BackupSession, BackupVersion, Store};
use serde_json::{Value, json};

use crate::caller::Caller;
use crate::error::{Error, Result};

/// Most sessions one upload may carry.
const MAX_SESSIONS_PER_UPLOAD: usize = 10_000;
/// The largest `auth_data` or `session_data`, serialised.
const MAX_DATA_BYTES: usize = 64 * 1024;

pub struct KeyBackup {
    store: Store,
}

/// A session as the client uploads it, with where it belongs.
pub struct UploadedSession {
    pub room_id: String,
    pub session_id: String,
    pub data: Value,
}

impl KeyBackup {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// `POST /room_keys/version`.
    pub async fn create_version(
        &self,
        caller: &Caller,
        algorithm: &str,
        auth_data: &Value,
    ) -> Result<String> {
        let auth_data = bounded(auth_data, "auth_data")?;
        let version = self
            .store
            .create_backup_version(caller.user_id.as_str(), algorithm, &auth_data)
            .await?;
        Ok(version.to_string())
    }

    /// `GET /room_keys/version[/{version}]`: the version with its key count and etag.
    pub async fn version(&self, caller: &Caller, version: Option<&str>) -> Result<Value> {
        let user = caller.user_id.as_str();
        let wanted = version.map(parse_version).transpose()?;
        let found = self
            .store
            .backup_version(user, wanted)
            .await?
            .ok_or_else(|| Error::NotFound("no key backup found".into()))?;
        let count = self.store.backup_count(user, found.version).await?;
        Ok(json!({
            "algorithm": found.algorithm,
            "auth_data": serde_json::from_str::<Value>(&found.auth_data).unwrap_or(Value::Null),
            "count": count,
            "etag": found.etag.to_string(),
            "version": found.version.to_string(),
        }))
    }

    /// `PUT /room_keys/version/{version}`: new `auth_data` for an existing version (the
    /// algorithm cannot change).
    pub async fn update_version(
        &self,
        caller: &Caller,
        version: &str,
        algorithm: &str,
        auth_data: &Value,
        body_version: Option<&str>,
    ) -> Result<()> {
        let user = caller.user_id.as_str();
        let number = parse_version(version)?;
        if body_version.is_some_and(|v| v != version) {
            return Err(Error::InvalidParam(
                "the version in the body differs from the path".into(),
            ));
        }
        let current = self
            .store
            .backup_version(user, Some(number))
            .await?
            .ok_or_else(|| Error::NotFound("no such key backup version".into()))?;
        if current.algorithm != algorithm {
            return Err(Error::InvalidParam(
                "a backup version's algorithm cannot change".into(),
            ));
        }
        let auth_data = bounded(auth_data, "auth_data")?;
        self.store
            .update_backup_version(user, number, &auth_data)
            .await?;
        Ok(())
    }

    /// `DELETE /room_keys/version/{version}`.
    pub async fn delete_version(&self, caller: &Caller, version: &str) -> Result<()> {
        let number = parse_version(version)?;
        if !self
            .store
            .delete_backup_version(caller.user_id.as_str(), number)
            .await?
        {
            return Err(Error::NotFound("no such key backup version".into()));
        }
        Ok(())
    }

    /// Writes only go to the current version: an older one answers
    /// `M_WRONG_ROOM_KEYS_VERSION` with the current one.
    async fn current(&self, user: &str, version: &str) -> Result<BackupVersion> {
        let number = parse_version(version)?;
        let current = self
            .store
            .backup_version(user, None)
            .await?
            .ok_or_else(|| Error::NotFound("no key backup found".into()))?;
        if current.version != number {
            return Err(Error::WrongRoomKeysVersion {
                current_version: current.version.to_string(),
            });
        }
        Ok(current)
    }

    /// `PUT /room_keys/keys[/{roomId}[/{sessionId}]]`: stores sessions, each kept only if
    /// better than the stored copy. Returns the etag and the count.
    pub async fn put(
        &self,
        caller: &Caller,
        version: &str,
        sessions: Vec<UploadedSession>,
    ) -> Result<(String, i64)> {
        let user = caller.user_id.as_str();
        if sessions.len() > MAX_SESSIONS_PER_UPLOAD {
            return Err(Error::InvalidParam(format!(
                "at most {MAX_SESSIONS_PER_UPLOAD} sessions per upload"
            )));
        }
        let current = self.current(user, version).await?;
        let mut rows = Vec::with_capacity(sessions.len());
        for session in sessions {
            let field = |name: &str| session.data.get(name).cloned().unwrap_or(Value::Null);
            let (Some(first_message_index), Some(forwarded_count), Some(is_verified)) = (
                field("first_message_index").as_i64(),
                field("forwarded_count").as_i64(),
                field("is_verified").as_bool(),
            ) else {
                return Err(Error::BadJson(
                    "a session needs first_message_index, forwarded_count and is_verified".into(),
                ));
            };
            let session_data = bounded(&field("session_data"), "session_data")?;
            rows.push(BackupSession {
                room_id: session.room_id,
                session_id: session.session_id,
                first_message_index,
                forwarded_count,
                is_verified,
                session_data,
            });
        }
        let etag = self
            .store
            .put_backup_sessions(user, current.version, &rows, better)
            .await?;
        let count = self.store.backup_count(user, current.version).await?;
        Ok((etag.to_string(), count))
    }

    /// `GET /room_keys/keys[/{roomId}[/{sessionId}]]`: the sessions of a version, grouped
    /// by room; one session alone when both IDs are given (404 if absent).
    pub async fn get(
        &self,
        caller: &Caller,
        version: &str,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<Value> {
        let user = caller.user_id.as_str();
        let number = parse_version(version)?;
        self.store
            .backup_version(user, Some(number))
            .await?
            .ok_or_else(|| Error::NotFound("no such key backup version".into()))?;
        let sessions = self
            .store
            .backup_sessions(user, number, room_id, session_id)
            .await?;
        let data = |s: &BackupSession| {
            json!({
                "first_message_index": s.first_message_index,
                "forwarded_count": s.forwarded_count,
                "is_verified": s.is_verified,
                "session_data": serde_json::from_str::<Value>(&s.session_data).unwrap_or(Value::Null),
            })
        };
        if session_id.is_some() {
            return sessions
                .first()
                .map(data)
                .ok_or_else(|| Error::NotFound("no such session in the backup".into()));
        }
        let mut rooms = serde_json::Map::new();
        for session in &sessions {
            let room = rooms
                .entry(session.room_id.clone())
                .or_insert_with(|| json!({ "sessions": {} }));
            room["sessions"][&session.session_id] = data(session);
        }
        if room_id.is_some() {
            return Ok(rooms
                .into_iter()
                .next()
                .map_or_else(|| json!({ "sessions": {} }), |(_, room)| room));
        }
        Ok(json!({ "rooms": rooms }))
    }

    /// `DELETE /room_keys/keys[/{roomId}[/{sessionId}]]`: returns the etag and the count.
    pub async fn delete(
        &self,
        caller: &Caller,
        version: &str,
        room_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<(String, i64)> {
        let user = caller.user_id.as_str();
        let current = self.current(user, version).await?;
        let etag = self
            .store
            .delete_backup_sessions(user, current.version, room_id, session_id)
            .await?;
        let count = self.store.backup_count(user, current.version).await?;
        Ok((etag.to_string(), count))
    }
}

/// The spec's rule for which copy of a session the backup keeps.
fn better(new: &BackupSession, stored: &BackupSession) -> bool {
    let rank = |s: &BackupSession| BackupRank {
        is_verified: s.is_verified,
        first_message_index: s.first_message_index,
        forwarded_count: s.forwarded_count,
    };
    backup_replaces(rank(new), rank(stored))
}

fn parse_version(version: &str) -> Result<i64> {
    version
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| Error::NotFound("no such key backup version".into()))
}

/// `value` serialised, refused past the size limit.
fn bounded(value: &Value, name: &str) -> Result<String> {
    let text = value.to_string();
    if text.len() > MAX_DATA_BYTES || !value.is_object() {
        return Err(Error::BadJson(format!(
            "{name} must be an object of at most {MAX_DATA_BYTES} bytes"
        )));
    }
    Ok(text)
}
