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
        let hash = self.passwords.hash(new_password).await?;
        self.store
            .set_password_hash(&caller.localpart, &hash)
            .await?;
        if logout_devices {
            self.store
                .delete_other_devices(
                    &caller.localpart,
                    caller.user_id.as_str(),
                    Some(caller.device_id.as_str()),
                )
                .await?;
            self.sessions.forget(&caller.localpart, None);
            self.device_lists.changed(caller.user_id.as_str()).await?;
        }
        self.interactive.complete(&session);
        Ok(())
    }

    /// `POST /account/deactivate`.
    pub async fn deactivate(&self, caller: &Caller, auth: Option<AuthData>) -> Result<()> {
        let session = self
            .interactive
            .confirm_password(caller, "deactivate", auth)
            .await?;
        self.store
            .deactivate_user(&caller.localpart, caller.user_id.as_str())
            .await?;
        self.sessions.forget(&caller.localpart, None);
        self.interactive.complete(&session);
        // A deactivated user leaves every room and rejects every invite, as the spec asks.
        self.device_lists.changed(caller.user_id.as_str()).await?;
        self.rooms.leave_all(caller.user_id.as_str()).await?;
        tracing::info!(user = %caller.localpart, "deactivated");
        Ok(())
    }
}
