//! Names reserved for the gateways (the bot's localpart and each gateway's prefix for its
//! virtual users) and for application services (their exclusive user namespaces). Nobody
//! else can register them; the gateways' accounts are made here.

use converge_core::id;
use converge_store::{NewUser, Store, StoreError};

use crate::error::{Error, Result};
use crate::now_ms;

pub struct Reserved {
    store: Store,
    server_name: String,
    /// The gateway bot's localpart.
    bot: String,
    /// Localpart prefixes of the gateways' virtual users (`hook-`, `device-`, ...).
    prefixes: Vec<String>,
    /// Application services' exclusive namespaces.
    appservices: std::sync::Arc<crate::appservices::Registrations>,
}

impl Reserved {
    pub fn new(
        store: Store,
        server_name: String,
        bot: String,
        prefixes: Vec<String>,
        appservices: std::sync::Arc<crate::appservices::Registrations>,
    ) -> Self {
        Self {
            store,
            server_name,
            bot,
            prefixes,
            appservices,
        }
    }

    /// Whether a localpart belongs to the gateways (the bot or a virtual user).
    pub fn is_reserved(&self, localpart: &str) -> bool {
        localpart == self.bot
            || self
                .prefixes
                .iter()
                .any(|p| localpart.starts_with(p.as_str()))
    }

    /// Whether `user_id` is the gateway bot or one of the gateways' virtual users.
    pub fn is_virtual(&self, user_id: &str) -> bool {
        user_id
            .strip_prefix('@')
            .and_then(|rest| rest.strip_suffix(self.server_name.as_str()))
            .and_then(|rest| rest.strip_suffix(':'))
            .is_some_and(|localpart| self.is_reserved(localpart))
    }

    /// Refuses a localpart reserved for the gateways or an application service, with
    /// `M_EXCLUSIVE`.
    pub fn refuse(&self, localpart: &str) -> Result<()> {
        if self.is_reserved(localpart) {
            return Err(Error::Exclusive(
                "this user ID is reserved for the server's gateways".into(),
            ));
        }
        self.appservices
            .refuse(&id::user_id(localpart, &self.server_name))
    }

    /// Creates a gateway's virtual user (no password: it cannot log in) if it does not
    /// exist, and returns its ID. Refuses if the ID belongs to an ordinary account.
    pub async fn ensure_virtual_user(&self, localpart: &str, displayname: &str) -> Result<String> {
        id::validate_localpart(localpart, &self.server_name)
            .map_err(|e| Error::InvalidUsername(e.to_string()))?;
        let user_id = id::user_id(localpart, &self.server_name);
        match self.store.user(localpart).await? {
            Some(user) if user.password_hash.is_none() && !user.deactivated => return Ok(user_id),
            Some(_) => {
                return Err(Error::internal(format!(
                    "{user_id} is an ordinary account, not a gateway user (set `gateways.bot` to another name)"
                )));
            }
            None => {}
        }
        let user = NewUser {
            localpart: localpart.to_owned(),
            password_hash: None,
            is_admin: false,
            displayname: Some(displayname.to_owned()),
            created_ts: now_ms(),
            appservice_id: None,
        };
        match self.store.create_user(&user, None, None).await {
            Ok(()) | Err(StoreError::UserExists) => Ok(user_id),
            Err(err) => Err(err.into()),
        }
    }
}
