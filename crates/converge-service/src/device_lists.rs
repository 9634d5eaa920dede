//! Device lists: recording that a user's devices or keys changed (so everyone sharing a
//! room with them refetches their keys), and working out, for a sync or `/keys/changes`,
//! whose lists changed and with whom the user no longer shares a room.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#tracking-the-device-list-for-a-user>.

use std::collections::BTreeSet;
use std::sync::Arc;

use converge_core::StreamPos;
use converge_store::{Store, WriteOp};

use crate::error::Result;
use crate::notifier::Notifier;

/// What changed for one user's view of device lists.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DeviceListDelta {
    /// Users to refetch keys of.
    pub changed: BTreeSet<String>,
    /// Users the client no longer shares a room with.
    pub left: BTreeSet<String>,
}

impl DeviceListDelta {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.left.is_empty()
    }
}

pub struct DeviceLists {
    store: Store,
    notifier: Arc<dyn Notifier>,
}

impl DeviceLists {
    pub fn new(store: Store, notifier: Arc<dyn Notifier>) -> Self {
        Self { store, notifier }
    }

    /// Records that `user_id`'s devices or keys changed, and wakes everyone who shares a
    /// room with them (and the user's own other devices).
    pub async fn changed(&self, user_id: &str) -> Result<()> {
        self.store
            .append(WriteOp::DeviceListChange {
                user_id: user_id.to_owned(),
            })
            .await?;
        let mut users = self.store.co_members(user_id).await?;
        users.push(user_id.to_owned());
        self.notifier.notify(&mut users.iter().map(String::as_str));
        Ok(())
    }

    /// Whose device lists `user_id` must refetch, and who left their view, for the range
    /// `(after, until]`. `joined` and `left_rooms` are the rooms the user joined or left in
    /// that range, each with its joined members.
    pub async fn delta(
        &self,
        user_id: &str,
        after: StreamPos,
        until: StreamPos,
        joined: &[Vec<String>],
        left_rooms: &[Vec<String>],
    ) -> Result<DeviceListDelta> {
        let co_members: BTreeSet<String> =
            self.store.co_members(user_id).await?.into_iter().collect();
        let mut delta = DeviceListDelta::default();
        for changed in self.store.device_list_changes(after, until).await? {
            if changed == user_id || co_members.contains(&changed) {
                delta.changed.insert(changed);
            }
        }
        for (other, membership) in self.store.co_member_changes(user_id, after, until).await? {
            match membership.as_str() {
                "join" => {
                    delta.changed.insert(other);
                }
                "leave" | "ban" if !co_members.contains(&other) => {
                    delta.left.insert(other);
                }
                _ => {}
            }
        }
        for members in joined {
            delta
                .changed
                .extend(members.iter().filter(|m| *m != user_id).cloned());
        }
        for members in left_rooms {
            delta.left.extend(
                members
                    .iter()
                    .filter(|m| *m != user_id && !co_members.contains(*m))
                    .cloned(),
            );
        }
        // Someone who is both is still shared with: refetch, don't forget.
        let both: Vec<String> = delta.left.intersection(&delta.changed).cloned().collect();
        for user in both {
            delta.left.remove(&user);
        }
        Ok(delta)
    }
}
