//! A user's devices: listing, renaming, and deleting them (behind password confirmation),
//! which ends their sessions.

use std::sync::Arc;

use converge_store::{Device, Store, StoreError};
use ruma::api::client::uiaa::AuthData;

use super::{Interactive, Sessions, check_display_name};
use crate::caller::Caller;
use crate::device_lists::DeviceLists;
use crate::error::{Error, Result};

pub struct Devices {
    store: Store,
    sessions: Arc<Sessions>,
    interactive: Arc<Interactive>,
    /// Deleted devices are news to the user's co-members.
    device_lists: Arc<DeviceLists>,
}

impl Devices {
    pub fn new(
        store: Store,
        sessions: Arc<Sessions>,
        interactive: Arc<Interactive>,
        device_lists: Arc<DeviceLists>,
    ) -> Self {
        Self {
            store,
            sessions,
            interactive,
            device_lists,
        }
    }

    /// `GET /devices`.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<Device>> {
        Ok(self.store.devices(&caller.localpart).await?)
    }

    /// `GET /devices/{deviceId}`.
    pub async fn get(&self, caller: &Caller, device_id: &str) -> Result<Device> {
        self.store
            .device(&caller.localpart, device_id)
            .await?
            .ok_or_else(|| Error::NotFound("no such device".into()))
    }

    /// `PUT /devices/{deviceId}`: renames a device; an application service (MSC4190) also
    /// creates its users' devices this way.
    pub async fn rename(
        &self,
        caller: &Caller,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<()> {
        check_display_name(display_name)?;
        if caller.appservice.is_some() {
            super::check_device_id(device_id)?;
            let created = self
                .store
                .upsert_device(&caller.localpart, device_id, display_name, crate::now_ms())
                .await?;
            if created {
                self.device_lists.changed(caller.user_id.as_str()).await?;
            }
            return Ok(());
        }
        match self
            .store
            .set_device_display_name(&caller.localpart, device_id, display_name)
            .await
        {
            Err(StoreError::NotFound) => Err(Error::NotFound("no such device".into())),
            other => Ok(other?),
        }
    }

    /// `DELETE /devices/{deviceId}` and `POST /delete_devices`, behind password UIA.
    pub async fn delete(
        &self,
        caller: &Caller,
        device_ids: &[String],
        auth: Option<AuthData>,
    ) -> Result<()> {
        // An application service manages its users' devices without their password.
        let session = match caller.appservice {
            Some(_) => None,
            None => Some(
                self.interactive
                    .confirm_password(caller, "delete_devices", auth)
                    .await?,
            ),
        };
        self.store
            .delete_devices(&caller.localpart, caller.user_id.as_str(), device_ids)
            .await?;
        for device_id in device_ids {
            self.sessions.forget(&caller.localpart, Some(device_id));
        }
        if let Some(session) = session {
            self.interactive.complete(&session);
        }
        self.device_lists.changed(caller.user_id.as_str()).await
    }
}
