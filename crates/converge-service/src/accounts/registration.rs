//! Registration: `/register` behind user-interactive authentication, username
//! availability, registration tokens, and accounts made by an operator.

use std::sync::Arc;
use std::time::Duration;

use converge_core::id;
use converge_store::{NewUser, RegistrationToken, Store};
use ruma::OwnedUserId;
use ruma::api::client::uiaa::AuthData;

use super::{Credentials, Interactive, Reserved, Sessions, check_device_id, user_id};
use crate::caller::{Caller, Client};
use crate::config::RegistrationMode;
use crate::error::{Error, Result};
use crate::ids::{random_id, random_localpart};
use crate::now_ms;
use crate::password::{self, Passwords};
use crate::ratelimit::{Limit, RateLimiter};
use crate::uia::Stage;

/// What `/register` asks for, after parsing.
#[derive(Debug, Default)]
pub struct RegistrationRequest {
    pub username: Option<String>,
    pub password: Option<String>,
    pub device_id: Option<String>,
    pub device_display_name: Option<String>,
    pub inhibit_login: bool,
    pub refresh_token: bool,
    pub guest: bool,
}

/// Built by [`crate::Services::new`], which holds the pieces it shares with the other
/// account services.
pub struct Registration {
    pub(crate) store: Store,
    pub(crate) server_name: String,
    pub(crate) mode: RegistrationMode,
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) passwords: Arc<Passwords>,
    /// Registering logs the new user in.
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) interactive: Arc<Interactive>,
    /// Names the gateways keep for themselves.
    pub(crate) reserved: Arc<Reserved>,
}

impl Registration {
    /// `POST /register`.
    ///
    /// Returns the new user's ID, and credentials unless `inhibit_login` was asked for.
    pub async fn register(
        &self,
        request: RegistrationRequest,
        auth: Option<AuthData>,
        client: Client,
    ) -> Result<(OwnedUserId, Option<Credentials>)> {
        let flows: &[&[Stage]] = match self.mode {
            RegistrationMode::Closed => {
                return Err(Error::forbidden("registration is closed on this server"));
            }
            RegistrationMode::Open => &[&[Stage::Dummy]],
            // Token, then dummy, as Synapse offers it: clients such as matrix-nio expect
            // the second stage.
            RegistrationMode::Token => &[&[Stage::RegistrationToken, Stage::Dummy]],
        };
        if request.guest {
            return Err(Error::GuestAccessForbidden);
        }
        self.limiter.check(Limit::Register, &client.key())?;
        if let Some(username) = &request.username {
            self.check_available(username).await?;
        }
        if let Some(password) = &request.password {
            password::check_length(password)?;
        }
        if let Some(device_id) = &request.device_id {
            check_device_id(device_id)?;
        }
        let proof = self.interactive.run("register", flows, auth, None).await?;

        let password = request
            .password
            .ok_or_else(|| Error::MissingParam("a password is required".into()))?;
        let password_hash = self.passwords.hash(password).await?;
        let localpart = request.username.unwrap_or_else(random_localpart);
        let now = now_ms();
        let (session, credentials) = if request.inhibit_login {
            (None, None)
        } else {
            let (session, issued) = self.sessions.issue(
                &localpart,
                request.device_id,
                request.device_display_name,
                request.refresh_token,
                now,
                client,
            )?;
            (Some(session), Some(issued))
        };
        let user = NewUser {
            localpart: localpart.clone(),
            password_hash: Some(password_hash),
            is_admin: false,
            displayname: Some(localpart.clone()),
            created_ts: now,
            appservice_id: None,
        };
        self.store
            .create_user(&user, proof.registration_token.as_deref(), session.as_ref())
            .await?;
        self.interactive.complete(&proof.session);
        tracing::info!(user = %localpart, "registered");
        Ok((user_id(&localpart, &self.server_name)?, credentials))
    }

    /// `POST /register` with `m.login.application_service` by an application service: a
    /// user of its namespaces, without a password and without rate limits (unless it is
    /// rate limited). Logs the user in unless `inhibit_login`.
    pub async fn register_for_appservice(
        &self,
        caller: &Caller,
        request: RegistrationRequest,
        client: Client,
    ) -> Result<(OwnedUserId, Option<Credentials>)> {
        let Some(service) = &caller.appservice else {
            return Err(Error::forbidden(
                "only an application service's token registers with m.login.application_service",
            ));
        };
        if caller.rate_limited() {
            self.limiter.check(Limit::Register, &client.key())?;
        }
        let localpart = request.username.ok_or_else(|| {
            Error::MissingParam("an appservice registration names its user".into())
        })?;
        id::validate_localpart(&localpart, &self.server_name)
            .map_err(|e| Error::InvalidUsername(e.to_string()))?;
        let full_id = id::user_id(&localpart, &self.server_name);
        if !service.claims_user(&full_id, converge_core::appservice::Claim::Any)
            || self.reserved.is_reserved(&localpart)
        {
            return Err(Error::Exclusive(format!(
                "{full_id} is not in the namespaces of the application service `{}`",
                service.id()
            )));
        }
        if let Some(device_id) = &request.device_id {
            check_device_id(device_id)?;
        }
        let now = now_ms();
        let (session, credentials) = if request.inhibit_login {
            (None, None)
        } else {
            let (session, issued) = self.sessions.issue(
                &localpart,
                request.device_id,
                request.device_display_name,
                request.refresh_token,
                now,
                client,
            )?;
            (Some(session), Some(issued))
        };
        let user = NewUser {
            localpart: localpart.clone(),
            password_hash: None,
            is_admin: false,
            displayname: Some(localpart.clone()),
            created_ts: now,
            appservice_id: Some(service.id().to_owned()),
        };
        self.store
            .create_user(&user, None, session.as_ref())
            .await?;
        tracing::info!(user = %localpart, appservice = service.id(), "registered by an appservice");
        Ok((user_id(&localpart, &self.server_name)?, credentials))
    }

    /// Whether `username` could be registered now.
    async fn check_available(&self, username: &str) -> Result<()> {
        id::validate_localpart(username, &self.server_name)
            .map_err(|e| Error::InvalidUsername(e.to_string()))?;
        self.reserved.refuse(username)?;
        if self.store.user(username).await?.is_some() {
            return Err(Error::UserInUse);
        }
        Ok(())
    }

    /// `GET /register/available`, rate limited like registration itself.
    pub async fn username_available(&self, username: &str, client: Client) -> Result<()> {
        self.limiter.check(Limit::Register, &client.key())?;
        self.check_available(username).await
    }

    /// `GET /register/m.login.registration_token/validity`.
    pub async fn registration_token_valid(&self, token: &str, client: Client) -> Result<bool> {
        if self.mode != RegistrationMode::Token {
            return Err(Error::forbidden(
                "registration tokens are not used on this server",
            ));
        }
        self.limiter.check(Limit::Register, &client.key())?;
        Ok(self
            .store
            .registration_token(token)
            .await?
            .is_some_and(|t| t.usable_at(now_ms())))
    }

    /// Creates a user from the command line or the admin API, whatever the registration
    /// mode.
    pub async fn create_user(
        &self,
        localpart: &str,
        password: String,
        is_admin: bool,
    ) -> Result<OwnedUserId> {
        id::validate_localpart(localpart, &self.server_name)
            .map_err(|e| Error::InvalidUsername(e.to_string()))?;
        self.reserved.refuse(localpart)?;
        let password_hash = self.passwords.hash(password).await?;
        let user = NewUser {
            localpart: localpart.to_owned(),
            password_hash: Some(password_hash),
            is_admin,
            displayname: Some(localpart.to_owned()),
            created_ts: now_ms(),
            appservice_id: None,
        };
        self.store.create_user(&user, None, None).await?;
        user_id(localpart, &self.server_name)
    }

    /// Creates a registration token usable `uses` times (unlimited if `None`) until
    /// `expires_in` from now (forever if `None`).
    pub async fn create_token(
        &self,
        uses: Option<u32>,
        expires_in: Option<Duration>,
    ) -> Result<RegistrationToken> {
        let now = now_ms();
        let expiry_ts = match expires_in {
            Some(d) => Some(
                i64::try_from(d.as_millis())
                    .ok()
                    .and_then(|ms| now.checked_add(ms))
                    .ok_or_else(|| Error::InvalidParam("expiry too far in the future".into()))?,
            ),
            None => None,
        };
        let token = RegistrationToken {
            token: random_id(16),
            uses_allowed: uses.map(i64::from),
            completed: 0,
            expiry_ts,
        };
        self.store.create_registration_token(&token, now).await?;
        Ok(token)
    }

    /// A registration token and how much of it is used.
    pub async fn token(&self, token: &str) -> Result<RegistrationToken> {
        self.store
            .registration_token(token)
            .await?
            .ok_or_else(|| Error::NotFound("no such registration token".into()))
    }
}
