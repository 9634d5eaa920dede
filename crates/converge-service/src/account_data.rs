//! Account data (global and per room), room tags, receipts and read markers.
//!
//! All of them are written through the ordered writer, so they reach `/sync` in the same
//! stream as events.

use std::sync::Arc;

use converge_core::Membership;
use converge_store::{Store, WriteOp};
use serde_json::{Value, json};

use super::notifier::Notifier;
use super::now_ms;
use super::rooms::Rooms;
use crate::caller::Caller;
use crate::error::{Error, Result};

/// The largest account data content accepted, in bytes of JSON.
pub const MAX_ACCOUNT_DATA_BYTES: usize = 65_536;

pub struct AccountData {
    store: Store,
    rooms: Arc<Rooms>,
    notifier: Arc<dyn Notifier>,
}

impl AccountData {
    pub fn new(store: Store, rooms: Arc<Rooms>, notifier: Arc<dyn Notifier>) -> Self {
        Self {
            store,
            rooms,
            notifier,
        }
    }

    fn check_self(caller: &Caller, user_id: &str) -> Result<()> {
        if caller.user_id.as_str() != user_id {
            return Err(Error::forbidden(
                "you can only access your own account data",
            ));
        }
        Ok(())
    }

    async fn check_room(&self, caller: &Caller, room_id: &str) -> Result<()> {
        let membership = self
            .rooms
            .snapshot(room_id, |room| room.membership(caller.user_id.as_str()))
            .await?;
        if membership == Membership::Leave {
            return Err(Error::forbidden("you are not in this room"));
        }
        Ok(())
    }

    /// `PUT /user/{userId}[/rooms/{roomId}]/account_data/{type}`.
    pub async fn set(
        &self,
        caller: &Caller,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
        content: Value,
    ) -> Result<()> {
        Self::check_self(caller, user_id)?;
        if matches!(data_type, "m.fully_read" | "m.push_rules") {
            return Err(Error::BadJson(format!(
                "{data_type} cannot be set through this endpoint"
            )));
        }
        if let Some(room_id) = room_id {
            self.check_room(caller, room_id).await?;
        }
        self.write(caller, room_id, data_type, content).await
    }

    async fn write(
        &self,
        caller: &Caller,
        room_id: Option<&str>,
        data_type: &str,
        content: Value,
    ) -> Result<()> {
        if !content.is_object() {
            return Err(Error::BadJson("account data must be a JSON object".into()));
        }
        let content = content.to_string();
        if content.len() > MAX_ACCOUNT_DATA_BYTES {
            return Err(Error::TooLarge {
                limit: MAX_ACCOUNT_DATA_BYTES as u64,
            });
        }
        self.store
            .append(WriteOp::AccountData {
                user_id: caller.user_id.to_string(),
                room_id: room_id.map(str::to_owned),
                data_type: data_type.to_owned(),
                content,
            })
            .await?;
        self.notifier
            .notify(&mut std::iter::once(caller.user_id.as_str()));
        Ok(())
    }

    /// `GET /user/{userId}[/rooms/{roomId}]/account_data/{type}`.
    pub async fn get(
        &self,
        caller: &Caller,
        user_id: &str,
        room_id: Option<&str>,
        data_type: &str,
    ) -> Result<Value> {
        Self::check_self(caller, user_id)?;
        let content = self
            .store
            .account_data(user_id, room_id, data_type)
            .await?
            .ok_or_else(|| Error::NotFound("no account data of this type".into()))?;
        serde_json::from_str(&content).map_err(Error::internal)
    }

    /// `GET /user/{userId}/rooms/{roomId}/tags`.
    pub async fn tags(&self, caller: &Caller, user_id: &str, room_id: &str) -> Result<Value> {
        Self::check_self(caller, user_id)?;
        let content = self
            .store
            .account_data(user_id, Some(room_id), "m.tag")
            .await?;
        let content: Value = content
            .and_then(|c| serde_json::from_str(&c).ok())
            .unwrap_or_else(|| json!({ "tags": {} }));
        Ok(json!({ "tags": content.get("tags").cloned().unwrap_or_else(|| json!({})) }))
    }

    /// `PUT /user/{userId}/rooms/{roomId}/tags/{tag}` (`Some`) and `DELETE` (`None`).
    pub async fn set_tag(
        &self,
        caller: &Caller,
        user_id: &str,
        room_id: &str,
        tag: &str,
        info: Option<Value>,
    ) -> Result<()> {
        if tag.is_empty() || tag.len() > 255 {
            return Err(Error::InvalidParam("tags are 1 to 255 bytes".into()));
        }
        let mut content = self.tags(caller, user_id, room_id).await?;
        match info {
            Some(info) => {
                if !info.is_object() {
                    return Err(Error::BadJson("tag content must be an object".into()));
                }
                content["tags"][tag] = info;
            }
            None => {
                if let Some(tags) = content["tags"].as_object_mut() {
                    tags.remove(tag);
                }
            }
        }
        self.write(caller, Some(room_id), "m.tag", content).await
    }

    /// `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`, for the main timeline or one
    /// thread (`thread_id` `main` or a thread root) or unthreaded (`None`).
    pub async fn receipt(
        &self,
        caller: &Caller,
        room_id: &str,
        receipt_type: &str,
        event_id: &str,
        thread_id: Option<&str>,
    ) -> Result<()> {
        if receipt_type == "m.fully_read" && thread_id.is_some() {
            return Err(Error::InvalidParam(
                "m.fully_read receipts cannot be threaded".into(),
            ));
        }
        self.rooms
            .require_joined(room_id, caller.user_id.as_str())
            .await?;
        if self
            .store
            .event(event_id)
            .await?
            .is_none_or(|(_, e)| e.room_id != room_id)
        {
            return Err(Error::NotFound("no such event in this room".into()));
        }
        match receipt_type {
            "m.fully_read" => {
                self.write(
                    caller,
                    Some(room_id),
                    "m.fully_read",
                    json!({ "event_id": event_id }),
                )
                .await
            }
            "m.read" | "m.read.private" => {
                self.rooms.begin_write(room_id);
                let written = self
                    .store
                    .append(WriteOp::Receipt {
                        room_id: room_id.to_owned(),
                        receipt_type: receipt_type.to_owned(),
                        user_id: caller.user_id.to_string(),
                        thread_id: thread_id.unwrap_or_default().to_owned(),
                        event_id: event_id.to_owned(),
                        ts: now_ms(),
                    })
                    .await;
                self.rooms
                    .end_write(room_id, written.as_ref().ok().copied());
                written?;
                if receipt_type == "m.read" {
                    let interested = self
                        .rooms
                        .snapshot(room_id, |room| room.interested())
                        .await?;
                    self.notifier
                        .notify(&mut interested.iter().map(String::as_str));
                } else {
                    self.notifier
                        .notify(&mut std::iter::once(caller.user_id.as_str()));
                }
                Ok(())
            }
            other => Err(Error::InvalidParam(format!("unknown receipt type {other}"))),
        }
    }

    /// `POST /rooms/{roomId}/read_markers`.
    pub async fn read_markers(
        &self,
        caller: &Caller,
        room_id: &str,
        fully_read: Option<&str>,
        read: Option<&str>,
        read_private: Option<&str>,
    ) -> Result<()> {
        if let Some(event_id) = fully_read {
            self.receipt(caller, room_id, "m.fully_read", event_id, None)
                .await?;
        }
        if let Some(event_id) = read {
            self.receipt(caller, room_id, "m.read", event_id, None)
                .await?;
        }
        if let Some(event_id) = read_private {
            self.receipt(caller, room_id, "m.read.private", event_id, None)
                .await?;
        }
        Ok(())
    }
}
