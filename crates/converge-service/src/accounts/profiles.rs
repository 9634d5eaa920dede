//! Profiles: display names and avatars, announced in the user's rooms when they change.

use std::sync::Arc;

use converge_store::Store;
use ruma::UserId;

use super::check_display_name;
use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::rooms::Rooms;

/// Longest avatar URL, in bytes.
const MAX_AVATAR_URL_BYTES: usize = 1000;

/// A field of a profile a user can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileField {
    DisplayName,
    AvatarUrl,
}

/// A user's public profile.
#[derive(Debug, Default)]
pub struct Profile {
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
}

pub struct Profiles {
    store: Store,
    server_name: String,
    /// Profile changes are announced in the user's rooms.
    rooms: Arc<Rooms>,
    /// Application services, asked about users they may know.
    appservices: Arc<crate::appservices::Registrations>,
}

impl Profiles {
    pub fn new(
        store: Store,
        server_name: String,
        rooms: Arc<Rooms>,
        appservices: Arc<crate::appservices::Registrations>,
    ) -> Self {
        Self {
            store,
            server_name,
            rooms,
            appservices,
        }
    }

    /// `GET /profile/{userId}`.
    pub async fn get(&self, user_id: &UserId) -> Result<Profile> {
        let missing = || Error::NotFound("no such user".into());
        if user_id.server_name().as_str() != self.server_name {
            return Err(missing());
        }
        let mut user = self.store.user(user_id.localpart()).await?;
        // A user an application service owns may exist once it is asked.
        if user.is_none() && self.appservices.query_user(user_id.as_str()).await {
            user = self.store.user(user_id.localpart()).await?;
        }
        let user = user.ok_or_else(missing)?;
        Ok(Profile {
            displayname: user.displayname,
            avatar_url: user.avatar_url,
        })
    }

    /// `PUT /profile/{userId}/displayname` and `.../avatar_url`: sets one field of the
    /// caller's profile (empty clears it) and announces the change in their rooms.
    pub async fn set(
        &self,
        caller: &Caller,
        user_id: &UserId,
        field: ProfileField,
        value: Option<&str>,
    ) -> Result<()> {
        if user_id != caller.user_id {
            return Err(Error::forbidden("you can only change your own profile"));
        }
        let value = value.filter(|v| !v.is_empty());
        match field {
            ProfileField::DisplayName => {
                check_display_name(value)?;
                self.store.set_displayname(&caller.localpart, value).await?;
            }
            ProfileField::AvatarUrl => {
                if let Some(url) = value
                    && (url.len() > MAX_AVATAR_URL_BYTES
                        || <&ruma::MxcUri>::from(url).validate().is_err())
                {
                    return Err(Error::InvalidParam(
                        "avatar_url must be an mxc:// URI".into(),
                    ));
                }
                self.store.set_avatar_url(&caller.localpart, value).await?;
            }
        }
        self.rooms.update_profile(caller.user_id.as_str()).await
    }
}
