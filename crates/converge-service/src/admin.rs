//! What a server admin may do beyond the client-server API: list, create, deactivate and
//! promote users, reset passwords, manage registration tokens, list and shut down rooms.
//! Every function checks the caller is an admin; the first-run facts ([`Admin::setup`]) are
//! public.

use std::sync::Arc;

use converge_store::{RegistrationToken, RoomSummary, Store, UserSummary};
use serde::Serialize;
use serde_json::Value;

use crate::accounts::{AccountSecurity, Registration, Sessions};
use crate::caller::Caller;
use crate::config::RegistrationMode;
use crate::error::{Error, Result};
use crate::rooms::Rooms;

/// The longest page of users or rooms.
const MAX_PAGE: u32 = 200;
/// The page when the caller names none.
const DEFAULT_PAGE: u32 = 50;

/// What a first visit to the web app needs to know.
#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    pub server_name: String,
    /// Whether anyone can administer the server yet; if not, the app explains how to make
    /// the first admin (`converge user add --admin`).
    pub has_admin: bool,
    pub registration: RegistrationMode,
    pub version: &'static str,
}

/// A user, as the admin pages show them.
#[derive(Clone, Debug, Serialize)]
pub struct AdminUser {
    pub user_id: String,
    pub displayname: Option<String>,
    pub admin: bool,
    pub deactivated: bool,
    pub created_ts: i64,
    pub last_seen_ts: Option<i64>,
}

/// A room, as the admin pages show them.
#[derive(Clone, Debug, Serialize)]
pub struct AdminRoom {
    pub room_id: String,
    pub name: Option<String>,
    pub canonical_alias: Option<String>,
    pub creator: String,
    pub joined_members: i64,
    pub events: i64,
    pub created_ts: i64,
    pub public: bool,
    /// Whether a server admin shut it down.
    pub shut_down: bool,
}

/// One page of a listing, and the `from` of the next if there is one.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_from: Option<String>,
}

pub struct Admin {
    store: Store,
    server_name: String,
    mode: RegistrationMode,
    registration: Arc<Registration>,
    security: Arc<AccountSecurity>,
    sessions: Arc<Sessions>,
    rooms: Arc<Rooms>,
}

impl Admin {
    pub fn new(
        store: Store,
        server_name: String,
        mode: RegistrationMode,
        registration: Arc<Registration>,
        security: Arc<AccountSecurity>,
        sessions: Arc<Sessions>,
        rooms: Arc<Rooms>,
    ) -> Self {
        Self {
            store,
            server_name,
            mode,
            registration,
            security,
            sessions,
            rooms,
        }
    }

    /// `GET /_converge/v1/setup`: for anyone, signed in or not.
    pub async fn setup(&self) -> Result<Setup> {
        Ok(Setup {
            server_name: self.server_name.clone(),
            has_admin: self.store.admin_count().await? > 0,
            registration: self.mode,
            version: env!("CARGO_PKG_VERSION"),
        })
    }

    /// Refuses anyone but a server admin.
    pub fn require(&self, caller: &Caller) -> Result<()> {
        require_admin(caller)
    }

    /// Users whose ID or display name contains `search`, a page at a time.
    pub async fn users(
        &self,
        caller: &Caller,
        search: &str,
        from: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<AdminUser>> {
        self.require(caller)?;
        let limit = page_size(limit);
        // A search for a full user ID finds its localpart.
        let search = search
            .strip_prefix('@')
            .map_or(search, |rest| rest.split(':').next().unwrap_or(rest));
        let rows = self.store.list_users(search, from, limit + 1).await?;
        let page = paginate(rows, limit, |row: &UserSummary| row.user.localpart.clone());
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|row| AdminUser {
                    user_id: converge_core::id::user_id(&row.user.localpart, &self.server_name),
                    displayname: row.user.displayname,
                    admin: row.user.is_admin,
                    deactivated: row.user.deactivated,
                    created_ts: row.user.created_ts,
                    last_seen_ts: row.last_seen_ts,
                })
                .collect(),
            next_from: page.next_from,
        })
    }

    /// Creates a user, whatever the registration mode.
    pub async fn create_user(
        &self,
        caller: &Caller,
        localpart: &str,
        password: String,
        admin: bool,
    ) -> Result<String> {
        self.require(caller)?;
        let user_id = self
            .registration
            .create_user(localpart, password, admin)
            .await?;
        tracing::info!(admin = %caller.user_id, user = %user_id, "user created by an admin");
        Ok(user_id.to_string())
    }

    /// Deactivates a local user for good.
    pub async fn deactivate(&self, caller: &Caller, user_id: &str) -> Result<()> {
        self.require(caller)?;
        let localpart = self.local_user(user_id).await?;
        if user_id == caller.user_id.as_str() {
            return Err(Error::forbidden(
                "deactivate your own account from your account settings",
            ));
        }
        self.security.deactivate_account(&localpart, user_id).await
    }

    /// Sets a user's password, logging out all their devices if asked.
    pub async fn reset_password(
        &self,
        caller: &Caller,
        user_id: &str,
        password: String,
        logout_devices: bool,
    ) -> Result<()> {
        self.require(caller)?;
        let localpart = self.local_user(user_id).await?;
        self.security
            .set_password(&localpart, user_id, password, logout_devices.then_some(""))
            .await
    }

    /// Makes a user a server admin, or not. Admins cannot demote themselves, so the server
    /// is never left without one by accident.
    pub async fn set_admin(&self, caller: &Caller, user_id: &str, admin: bool) -> Result<()> {
        self.require(caller)?;
        let localpart = self.local_user(user_id).await?;
        if !admin && user_id == caller.user_id.as_str() {
            return Err(Error::forbidden(
                "you cannot remove your own admin rights; ask another admin",
            ));
        }
        self.store.set_admin(&localpart, admin).await?;
        // Their cached sessions carry the old flag.
        self.sessions.forget(&localpart, None);
        Ok(())
    }

    /// Every registration token, newest first.
    pub async fn tokens(&self, caller: &Caller) -> Result<Vec<RegistrationToken>> {
        self.require(caller)?;
        Ok(self.store.registration_tokens().await?)
    }

    /// Revokes a registration token.
    pub async fn delete_token(&self, caller: &Caller, token: &str) -> Result<()> {
        self.require(caller)?;
        if self.store.delete_registration_token(token).await? {
            Ok(())
        } else {
            Err(Error::NotFound("no such registration token".into()))
        }
    }

    /// Rooms whose ID, name or alias contains `search`, a page at a time.
    pub async fn rooms(
        &self,
        caller: &Caller,
        search: &str,
        from: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<AdminRoom>> {
        self.require(caller)?;
        let limit = page_size(limit);
        let needle = search.to_lowercase();
        let mut found = Vec::new();
        let mut after = from.map(str::to_owned);
        // Names live in state events, so the search reads rooms in ID order a chunk at a
        // time until a page (and one more, to know there is a next) is found.
        loop {
            let chunk = self
                .store
                .list_rooms(after.as_deref(), (limit * 4).max(64))
                .await?;
            let exhausted = chunk.len() < (limit * 4).max(64) as usize;
            after = chunk.last().map(|r| r.room_id.clone());
            found.extend(
                chunk
                    .into_iter()
                    .map(admin_room)
                    .filter(|room| needle.is_empty() || room_matches(room, &needle)),
            );
            if exhausted || found.len() > limit as usize {
                break;
            }
        }
        let page = paginate(found, limit, |room: &AdminRoom| room.room_id.clone());
        Ok(page)
    }

    /// Shuts a room down: see [`Rooms::shut_down`]. Returns who left it.
    pub async fn shut_down_room(&self, caller: &Caller, room_id: &str) -> Result<Vec<String>> {
        self.require(caller)?;
        self.rooms.shut_down(room_id, caller.user_id.as_str()).await
    }

    /// The localpart of a local user who exists.
    async fn local_user(&self, user_id: &str) -> Result<String> {
        let localpart = user_id
            .strip_prefix('@')
            .and_then(|rest| rest.strip_suffix(&format!(":{}", self.server_name)))
            .ok_or_else(|| Error::InvalidParam("not a user of this server".into()))?;
        match self.store.user(localpart).await? {
            Some(_) => Ok(localpart.to_owned()),
            None => Err(Error::NotFound("no such user".into())),
        }
    }
}

/// Refuses anyone but a server admin.
pub(crate) fn require_admin(caller: &Caller) -> Result<()> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(Error::forbidden("only server admins may do this"))
    }
}

fn page_size(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

/// Cuts `rows` (fetched with one extra) to `limit`, the next page starting after the last.
fn paginate<T>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_from = if more { rows.last().map(key) } else { None };
    Page {
        items: rows,
        next_from,
    }
}

fn admin_room(row: RoomSummary) -> AdminRoom {
    let field = |json: &Option<String>, name: &str| {
        json.as_deref()
            .and_then(|j| serde_json::from_str::<Value>(j).ok())
            .and_then(|e| e["content"][name].as_str().map(str::to_owned))
            .filter(|s| !s.is_empty())
    };
    AdminRoom {
        name: field(&row.name_event, "name"),
        canonical_alias: field(&row.alias_event, "alias"),
        room_id: row.room_id,
        creator: row.creator,
        joined_members: row.joined_members,
        events: row.events,
        created_ts: row.created_ts,
        public: row.is_public,
        shut_down: row.blocked,
    }
}

fn room_matches(room: &AdminRoom, needle: &str) -> bool {
    [
        Some(room.room_id.as_str()),
        room.name.as_deref(),
        room.canonical_alias.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|text| text.to_lowercase().contains(needle))
}
