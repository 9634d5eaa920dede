//! An account's own security: changing its password and deactivating it, each behind
//! password confirmation and each ending sessions.

use std::sync::Arc;

use converge_store::Store;
use ruma::api::client::uiaa::AuthData;

use super::{Interactive, Sessions};
use crate::caller::Caller;
use crate::device_lists::DeviceLists;
use crate::error::Result;
use crate::password::{self, Passwords};
use crate::rooms::Rooms;

pub struct AccountSecurity {
    store: Store,
    passwords: Arc<Passwords>,
    sessions: Arc<Sessions>,
    interactive: Arc<Interactive>,
    /// A deactivated user leaves their rooms.
    rooms: Arc<Rooms>,
    /// Devices logged out are news to the user's co-members.
    device_lists: Arc<DeviceLists>,
}

impl AccountSecurity {
    pub fn new(
        store: Store,
        passwords: Arc<Passwords>,
        sessions: Arc<Sessions>,
        interactive: Arc<Interactive>,
        rooms: Arc<Rooms>,
        device_lists: Arc<DeviceLists>,
    ) -> Self {
        Self {
            store,
            passwords,
            sessions,
            interactive,
            rooms,
            device_lists,
        }
    }

    /// `POST /account/password`.
    pub async fn change_password(
        &self,
        caller: &Caller,
        new_password: String,
        logout_devices: bool,
        auth: Option<AuthData>,
    ) -> Result<()> {
        password::check_length(&new_password)?;
        let session = self
            .interactive
            .confirm_password(caller, "password", auth)
            .await?;
        let keep = logout_devices.then_some(caller.device_id.as_str());
        self.set_password(
            &caller.localpart,
            caller.user_id.as_str(),
            new_password,
            keep,
        )
        .await?;
        self.interactive.complete(&session);
        Ok(())
    }

    /// Sets a user's password (for themselves, or by a server admin); with `logout_except`,
    /// every other device is logged out (all of them for `Some("")`).
    pub(crate) async fn set_password(
        &self,
        localpart: &str,
        user_id: &str,
        new_password: String,
        logout_except: Option<&str>,
    ) -> Result<()> {
        password::check_length(&new_password)?;
        let hash = self.passwords.hash(new_password).await?;
        self.store.set_password_hash(localpart, &hash).await?;
        if let Some(keep) = logout_except {
            let keep = (!keep.is_empty()).then_some(keep);
            self.store
                .delete_other_devices(localpart, user_id, keep)
                .await?;
            self.sessions.forget(localpart, None);
            self.device_lists.changed(user_id).await?;
        }
        Ok(())
    }

    /// `POST /account/deactivate`.
    pub async fn deactivate(&self, caller: &Caller, auth: Option<AuthData>) -> Result<()> {
        let session = self
            .interactive
            .confirm_password(caller, "deactivate", auth)
            .await?;
        self.deactivate_account(&caller.localpart, caller.user_id.as_str())
            .await?;
        self.interactive.complete(&session);
        Ok(())
    }

    /// Deactivates an account for good (by its owner, or by a server admin): its sessions
    /// end, its devices and keys go, and it leaves every room and rejects every invite, as
    /// the spec asks.
    pub(crate) async fn deactivate_account(&self, localpart: &str, user_id: &str) -> Result<()> {
        self.store.deactivate_user(localpart, user_id).await?;
        self.sessions.forget(localpart, None);
        self.device_lists.changed(user_id).await?;
        self.rooms.leave_all(user_id).await?;
        tracing::info!(user = %localpart, "deactivated");
        Ok(())
    }
}
