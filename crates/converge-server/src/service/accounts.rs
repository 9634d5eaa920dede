//! Accounts: registration, login, tokens, devices, passwords, deactivation and profiles.
//!
//! Tokens are 256 random bits handed to the client once; the store keeps their SHA-256.
//! Passwords are argon2id hashes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use ruma::api::client::uiaa::{AuthData, UserIdentifier};
use ruma::{OwnedDeviceId, OwnedUserId, UserId};
use sha2::{Digest, Sha256};

use converge_core::id;
use converge_store::{
    Device, NewSession, NewUser, RegistrationToken, Session, Store, StoreError, User,
};

use super::now_ms;
use super::password;
use super::ratelimit::{Limit, RateLimiter};
use super::rooms::Rooms;
use super::uia::{Proof, Stage, Uia};
use crate::config::{Config, RegistrationMode};
use crate::error::{Error, Result};

/// How long a resolved access token is trusted without asking the store again.
const SESSION_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// Resolved tokens kept at most.
const MAX_CACHED_SESSIONS: usize = 100_000;
/// How often a device's "last seen" time is written at most.
const LAST_SEEN_INTERVAL_MS: i64 = 60_000;
/// Longest device ID a client may choose.
const MAX_DEVICE_ID_BYTES: usize = 255;
/// Longest display name, in characters (Synapse's limit too).
const MAX_DISPLAYNAME_CHARS: usize = 256;
/// Longest avatar URL, in bytes.
const MAX_AVATAR_URL_BYTES: usize = 1000;

/// The authenticated user behind a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub localpart: String,
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    pub is_admin: bool,
    pub token_hash: Vec<u8>,
}

/// Where a request came from, for rate limits and device bookkeeping.
#[derive(Clone, Copy, Debug, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
}

impl Client {
    fn key(&self) -> String {
        self.ip
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }
}

/// What `/register` asks for, after parsing.
#[derive(Debug, Default)]
pub struct Registration {
    pub username: Option<String>,
    pub password: Option<String>,
    pub device_id: Option<String>,
    pub device_display_name: Option<String>,
    pub inhibit_login: bool,
    pub refresh_token: bool,
    pub guest: bool,
}

/// What a password login asks for, after parsing.
#[derive(Debug)]
pub struct PasswordLogin {
    pub identifier: String,
    pub password: String,
    pub device_id: Option<String>,
    pub device_display_name: Option<String>,
    pub refresh_token: bool,
}

/// The credentials handed to a client after registration, login or refresh.
#[derive(Debug)]
pub struct Credentials {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
}

/// A user's public profile.
#[derive(Debug, Default)]
pub struct Profile {
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
}

pub struct Accounts {
    store: Store,
    server_name: String,
    registration: RegistrationMode,
    refresh_lifetime: Duration,
    uia: Uia,
    limiter: Arc<RateLimiter>,
    /// Profile changes are announced in the user's rooms.
    rooms: Arc<Rooms>,
    /// A hash checked against when a login names an unknown user, so that the answer takes
    /// as long as for a known one and does not reveal which users exist.
    dummy_hash: String,
    passwords: password::Passwords,
    /// Recently resolved access tokens, so most requests skip the store. Every path that
    /// ends sessions drops the affected entries first; entries also expire, which bounds
    /// how long another node could honour a revoked token once there are several.
    sessions: Mutex<HashMap<Vec<u8>, (Session, std::time::Instant)>>,
    /// When each device's "last seen" was last written, to write it at most once a minute.
    last_seen: Mutex<HashMap<Vec<u8>, i64>>,
    /// The gateway bot's localpart, reserved like the virtual users' prefixes.
    bot_localpart: String,
}

/// Localpart prefixes of the gateways' virtual users; nobody can register them.
pub const VIRTUAL_PREFIXES: [&str; 2] = ["hook-", "device-"];

impl Accounts {
    pub async fn new(
        config: &Config,
        store: Store,
        limiter: Arc<RateLimiter>,
        rooms: Arc<Rooms>,
    ) -> Self {
        let passwords = password::Passwords::default();
        let dummy_hash = passwords
            .hash(random_string(16))
            .await
            .expect("hashing a random password cannot fail");
        Self {
            store,
            server_name: config.server_name.clone(),
            registration: config.registration.mode,
            refresh_lifetime: config.auth.refreshable_token_lifetime,
            uia: Uia::default(),
            limiter,
            rooms,
            dummy_hash,
            passwords,
            sessions: Mutex::default(),
            last_seen: Mutex::default(),
            bot_localpart: config.gateways.bot.clone(),
        }
    }

    /// Whether a localpart belongs to the gateways (the bot or a virtual user).
    fn is_reserved(&self, localpart: &str) -> bool {
        localpart == self.bot_localpart || VIRTUAL_PREFIXES.iter().any(|p| localpart.starts_with(p))
    }

    /// Whether `user_id` is the gateway bot or one of the gateways' virtual users.
    pub fn is_virtual(&self, user_id: &str) -> bool {
        user_id
            .strip_prefix('@')
            .and_then(|rest| rest.strip_suffix(self.server_name.as_str()))
            .and_then(|rest| rest.strip_suffix(':'))
            .is_some_and(|localpart| self.is_reserved(localpart))
    }

    fn refuse_reserved(&self, localpart: &str) -> Result<()> {
        if self.is_reserved(localpart) {
            return Err(Error::Exclusive(
                "this user ID is reserved for the server's gateways".into(),
            ));
        }
        Ok(())
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
        };
        match self.store.create_user(&user, None, None).await {
            Ok(()) | Err(converge_store::StoreError::UserExists) => Ok(user_id),
            Err(err) => Err(err.into()),
        }
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    fn user_id(&self, localpart: &str) -> Result<OwnedUserId> {
        UserId::parse(id::user_id(localpart, &self.server_name)).map_err(Error::internal)
    }

    /// The local user an ID names, or `None` for IDs on other servers.
    fn local_localpart<'a>(&self, user_id: &'a UserId) -> Option<&'a str> {
        (user_id.server_name().as_str() == self.server_name).then(|| user_id.localpart())
    }

    /// Resolves an access token to its caller.
    pub async fn authenticate(&self, token: &str, client: Client) -> Result<Caller> {
        let token_hash = hash_token(token);
        let cached = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&token_hash)
            .filter(|(_, at)| at.elapsed() < SESSION_CACHE_TTL)
            .map(|(session, _)| session.clone());
        let session = match cached {
            Some(session) => session,
            None => {
                let session = self
                    .store
                    .session_by_token(&token_hash)
                    .await?
                    .ok_or(Error::UnknownToken { soft_logout: false })?;
                let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
                if sessions.len() >= MAX_CACHED_SESSIONS {
                    sessions.retain(|_, (_, at)| at.elapsed() < SESSION_CACHE_TTL);
                    if sessions.len() >= MAX_CACHED_SESSIONS {
                        sessions.clear();
                    }
                }
                sessions.insert(
                    token_hash.clone(),
                    (session.clone(), std::time::Instant::now()),
                );
                session
            }
        };
        let now = now_ms();
        if session.expires_ts.is_some_and(|expires| expires <= now) {
            return Err(Error::UnknownToken { soft_logout: true });
        }
        self.note_last_seen(
            &session.localpart,
            &session.device_id,
            &token_hash,
            now,
            client,
        )
        .await;
        Ok(Caller {
            user_id: self.user_id(&session.localpart)?,
            localpart: session.localpart,
            device_id: session.device_id.into(),
            is_admin: session.is_admin,
            token_hash,
        })
    }

    async fn note_last_seen(
        &self,
        localpart: &str,
        device_id: &str,
        token_hash: &[u8],
        now: i64,
        client: Client,
    ) {
        {
            let mut seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen
                .get(token_hash)
                .is_some_and(|&at| now - at < LAST_SEEN_INTERVAL_MS)
            {
                return;
            }
            if seen.len() > 100_000 {
                seen.retain(|_, at| now - *at < LAST_SEEN_INTERVAL_MS);
            }
            seen.insert(token_hash.to_vec(), now);
        }
        let ip = client.ip.map(|ip| ip.to_string());
        if let Err(err) = self
            .store
            .touch_device(localpart, device_id, now, ip.as_deref())
            .await
        {
            tracing::warn!(error = %err, "could not record device last seen");
        }
    }

    /// `POST /register`.
    ///
    /// Returns the new user's ID, and credentials unless `inhibit_login` was asked for.
    pub async fn register(
        &self,
        request: Registration,
        auth: Option<AuthData>,
        client: Client,
    ) -> Result<(OwnedUserId, Option<Credentials>)> {
        let flows: &[&[Stage]] = match self.registration {
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
        let proof = self
            .authenticate_interactively("register", flows, auth, None)
            .await?;
        let token = proof.registration_token;
        let session = proof.session;

        let password = request
            .password
            .ok_or_else(|| Error::MissingParam("a password is required".into()))?;
        let password_hash = self.passwords.hash(password).await?;
        let localpart = match request.username {
            Some(username) => username,
            None => random_localpart(),
        };
        let now = now_ms();
        let mut credentials = None;
        let mut session_row = None;
        if !request.inhibit_login {
            let (new_session, issued) = self.new_session(
                &localpart,
                request.device_id,
                request.device_display_name,
                request.refresh_token,
                now,
                client,
            )?;
            session_row = Some(new_session);
            credentials = Some(issued);
        }
        let user = NewUser {
            localpart: localpart.clone(),
            password_hash: Some(password_hash),
            is_admin: false,
            displayname: Some(localpart.clone()),
            created_ts: now,
        };
        self.store
            .create_user(&user, token.as_deref(), session_row.as_ref())
            .await?;
        self.uia.complete(&session);
        tracing::info!(user = %localpart, "registered");
        Ok((self.user_id(&localpart)?, credentials))
    }

    /// `GET /register/available`: `Ok` if `username` could be registered now.
    pub async fn check_available(&self, username: &str) -> Result<()> {
        id::validate_localpart(username, &self.server_name)
            .map_err(|e| Error::InvalidUsername(e.to_string()))?;
        self.refuse_reserved(username)?;
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
        if self.registration != RegistrationMode::Token {
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

    /// `POST /login` with `m.login.password`.
    pub async fn login(&self, request: PasswordLogin, client: Client) -> Result<Credentials> {
        self.limiter.check(Limit::Login, &client.key())?;
        let invalid = || Error::forbidden("invalid username or password");
        let Some(localpart) = id::login_localpart(&request.identifier, &self.server_name) else {
            return Err(invalid());
        };
        self.limiter.check(Limit::LoginAccount, &localpart)?;
        if let Some(device_id) = &request.device_id {
            check_device_id(device_id)?;
        }
        let user = self.store.user(&localpart).await?;
        let hash = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.clone());
        let matches = self.passwords.verify(request.password, hash).await?;
        let user = match user {
            Some(user) if matches && user.password_hash.is_some() => user,
            _ => return Err(invalid()),
        };
        if user.deactivated {
            return Err(Error::UserDeactivated);
        }
        let (session, credentials) = self.new_session(
            &localpart,
            request.device_id,
            request.device_display_name,
            request.refresh_token,
            now_ms(),
            client,
        )?;
        self.store.create_session(&localpart, &session).await?;
        self.forget_sessions(&localpart, Some(&session.device_id));
        tracing::info!(user = %localpart, device = %credentials.device_id, "logged in");
        Ok(credentials)
    }

    /// `POST /refresh`: swaps a refresh token for a new access and refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Credentials> {
        let access_token = new_token("cvga_");
        let new_refresh = new_token("cvgr_");
        let now = now_ms();
        let expires_ts = now + self.refresh_lifetime.as_millis() as i64;
        let (localpart, device_id) = self
            .store
            .refresh_session(
                &hash_token(refresh_token),
                &hash_token(&access_token),
                &hash_token(&new_refresh),
                Some(expires_ts),
                now,
            )
            .await?
            .ok_or(Error::UnknownToken { soft_logout: false })?;
        self.forget_sessions(&localpart, Some(&device_id));
        Ok(Credentials {
            user_id: self.user_id(&localpart)?,
            device_id: device_id.into(),
            access_token,
            refresh_token: Some(new_refresh),
            expires_in: Some(self.refresh_lifetime),
        })
    }

    fn new_session(
        &self,
        localpart: &str,
        device_id: Option<String>,
        display_name: Option<String>,
        refreshable: bool,
        now: i64,
        client: Client,
    ) -> Result<(NewSession, Credentials)> {
        let device_id = device_id.unwrap_or_else(random_device_id);
        let access_token = new_token("cvga_");
        let refresh_token = refreshable.then(|| new_token("cvgr_"));
        let expires_in = refreshable.then_some(self.refresh_lifetime);
        let session = NewSession {
            device_id: device_id.clone(),
            display_name,
            access_token_hash: hash_token(&access_token),
            refresh_token_hash: refresh_token.as_deref().map(hash_token),
            expires_ts: expires_in.map(|d| now + d.as_millis() as i64),
            created_ts: now,
            ip: client.ip.map(|ip| ip.to_string()),
        };
        let credentials = Credentials {
            user_id: self.user_id(localpart)?,
            device_id: device_id.into(),
            access_token,
            refresh_token,
            expires_in,
        };
        Ok((session, credentials))
    }

    /// Drops cached sessions of `localpart` (of one device, or all), before the store ends
    /// them, so no request is let in on a token that is going away.
    fn forget_sessions(&self, localpart: &str, device_id: Option<&str>) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (session, _)| {
                !(session.localpart == localpart
                    && device_id.is_none_or(|d| session.device_id == d))
            });
    }

    /// `POST /logout`: ends the caller's session and deletes its device.
    pub async fn logout(&self, caller: &Caller) -> Result<()> {
        self.store
            .delete_devices(&caller.localpart, &[caller.device_id.to_string()])
            .await?;
        self.forget_sessions(&caller.localpart, Some(caller.device_id.as_str()));
        Ok(())
    }

    /// `POST /logout/all`: ends every session of the caller.
    pub async fn logout_all(&self, caller: &Caller) -> Result<()> {
        self.store
            .delete_other_devices(&caller.localpart, None)
            .await?;
        self.forget_sessions(&caller.localpart, None);
        Ok(())
    }

    /// Runs user-interactive authentication for `purpose`: checks the stage the client
    /// completed (if any) and answers with a 401 challenge until one of `flows` is done.
    async fn authenticate_interactively(
        &self,
        purpose: &str,
        flows: &[&[Stage]],
        auth: Option<AuthData>,
        caller: Option<&Caller>,
    ) -> Result<Proof> {
        let session = self
            .uia
            .session(purpose, auth.as_ref().and_then(AuthData::session))?;
        if let Some(auth) = auth {
            match self.check_stage(auth, flows, caller).await? {
                Ok(Some((stage, token))) => self.uia.complete_stage(&session, stage, token),
                // A fallback acknowledgement: nothing new was completed.
                Ok(None) => {}
                Err(reason) => {
                    return Err(self
                        .uia
                        .challenge(&session, flows, Some(("M_FORBIDDEN", reason))));
                }
            }
        }
        self.uia
            .finished(&session, flows)
            .ok_or_else(|| self.uia.challenge(&session, flows, None))
    }

    /// Checks one UIA stage. The inner error is the reason the stage failed.
    async fn check_stage(
        &self,
        auth: AuthData,
        flows: &[&[Stage]],
        caller: Option<&Caller>,
    ) -> Result<Result<Option<(Stage, Option<String>)>, &'static str>> {
        let offered = |stage: Stage| flows.iter().any(|flow| flow.contains(&stage));
        Ok(match auth {
            AuthData::Dummy(_) if offered(Stage::Dummy) => Ok(Some((Stage::Dummy, None))),
            AuthData::RegistrationToken(stage) if offered(Stage::RegistrationToken) => {
                let usable = self
                    .store
                    .registration_token(&stage.token)
                    .await?
                    .is_some_and(|t| t.usable_at(now_ms()));
                if usable {
                    Ok(Some((Stage::RegistrationToken, Some(stage.token))))
                } else {
                    Err("registration token is not valid")
                }
            }
            AuthData::Password(stage) if offered(Stage::Password) => {
                let Some(caller) = caller else {
                    return Ok(Err("no user to check a password for"));
                };
                let names_caller = match &stage.identifier {
                    UserIdentifier::Matrix(m) => {
                        id::login_localpart(&m.user, &self.server_name).as_deref()
                            == Some(caller.localpart.as_str())
                    }
                    _ => false,
                };
                let hash = self
                    .user(&caller.localpart)
                    .await?
                    .password_hash
                    .unwrap_or_else(|| self.dummy_hash.clone());
                if self.passwords.verify(stage.password, hash).await? && names_caller {
                    Ok(Some((Stage::Password, None)))
                } else {
                    Err("invalid password")
                }
            }
            AuthData::FallbackAcknowledgement(_) => Ok(None),
            _ => Err("this authentication stage is not offered"),
        })
    }

    /// Runs the password UIA for an operation of the caller's; returns the session to end
    /// once the operation went through.
    async fn confirm_password(
        &self,
        caller: &Caller,
        operation: &str,
        auth: Option<AuthData>,
    ) -> Result<String> {
        let purpose = format!("{operation}:{}", caller.user_id);
        let proof = self
            .authenticate_interactively(&purpose, &[&[Stage::Password]], auth, Some(caller))
            .await?;
        Ok(proof.session)
    }

    async fn user(&self, localpart: &str) -> Result<User> {
        self.store
            .user(localpart)
            .await?
            .ok_or_else(|| Error::NotFound("no such user".into()))
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
        let session = self.confirm_password(caller, "password", auth).await?;
        let hash = self.passwords.hash(new_password).await?;
        self.store
            .set_password_hash(&caller.localpart, &hash)
            .await?;
        if logout_devices {
            self.store
                .delete_other_devices(&caller.localpart, Some(caller.device_id.as_str()))
                .await?;
            self.forget_sessions(&caller.localpart, None);
        }
        self.uia.complete(&session);
        Ok(())
    }

    /// `POST /account/deactivate`.
    pub async fn deactivate(&self, caller: &Caller, auth: Option<AuthData>) -> Result<()> {
        let session = self.confirm_password(caller, "deactivate", auth).await?;
        self.store.deactivate_user(&caller.localpart).await?;
        self.forget_sessions(&caller.localpart, None);
        self.uia.complete(&session);
        // A deactivated user leaves every room and rejects every invite, as the spec asks.
        self.rooms.leave_all(caller.user_id.as_str()).await?;
        tracing::info!(user = %caller.localpart, "deactivated");
        Ok(())
    }

    /// `GET /devices`.
    pub async fn devices(&self, caller: &Caller) -> Result<Vec<Device>> {
        Ok(self.store.devices(&caller.localpart).await?)
    }

    /// `GET /devices/{deviceId}`.
    pub async fn device(&self, caller: &Caller, device_id: &str) -> Result<Device> {
        self.store
            .device(&caller.localpart, device_id)
            .await?
            .ok_or_else(|| Error::NotFound("no such device".into()))
    }

    /// `PUT /devices/{deviceId}`.
    pub async fn rename_device(
        &self,
        caller: &Caller,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<()> {
        if display_name.is_some_and(|n| n.chars().count() > MAX_DISPLAYNAME_CHARS) {
            return Err(Error::InvalidParam(format!(
                "display name longer than {MAX_DISPLAYNAME_CHARS} characters"
            )));
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
    pub async fn delete_devices(
        &self,
        caller: &Caller,
        device_ids: &[String],
        auth: Option<AuthData>,
    ) -> Result<()> {
        let session = self
            .confirm_password(caller, "delete_devices", auth)
            .await?;
        self.store
            .delete_devices(&caller.localpart, device_ids)
            .await?;
        for device_id in device_ids {
            self.forget_sessions(&caller.localpart, Some(device_id));
        }
        self.uia.complete(&session);
        Ok(())
    }

    /// `GET /profile/{userId}`.
    pub async fn profile(&self, user_id: &UserId) -> Result<Profile> {
        let missing = || Error::NotFound("no such user".into());
        let localpart = self.local_localpart(user_id).ok_or_else(missing)?;
        let user = self.store.user(localpart).await?.ok_or_else(missing)?;
        Ok(Profile {
            displayname: user.displayname,
            avatar_url: user.avatar_url,
        })
    }

    /// `PUT /profile/{userId}/displayname`.
    pub async fn set_displayname(
        &self,
        caller: &Caller,
        user_id: &UserId,
        value: Option<&str>,
    ) -> Result<()> {
        self.check_own_profile(caller, user_id)?;
        let value = value.filter(|v| !v.is_empty());
        if value.is_some_and(|v| v.chars().count() > MAX_DISPLAYNAME_CHARS) {
            return Err(Error::InvalidParam(format!(
                "display name longer than {MAX_DISPLAYNAME_CHARS} characters"
            )));
        }
        self.store.set_displayname(&caller.localpart, value).await?;
        self.rooms.update_profile(caller.user_id.as_str()).await
    }

    /// `PUT /profile/{userId}/avatar_url`.
    pub async fn set_avatar_url(
        &self,
        caller: &Caller,
        user_id: &UserId,
        value: Option<&str>,
    ) -> Result<()> {
        self.check_own_profile(caller, user_id)?;
        let value = value.filter(|v| !v.is_empty());
        if let Some(url) = value
            && (url.len() > MAX_AVATAR_URL_BYTES || <&ruma::MxcUri>::from(url).validate().is_err())
        {
            return Err(Error::InvalidParam(
                "avatar_url must be an mxc:// URI".into(),
            ));
        }
        self.store.set_avatar_url(&caller.localpart, value).await?;
        self.rooms.update_profile(caller.user_id.as_str()).await
    }

    fn check_own_profile(&self, caller: &Caller, user_id: &UserId) -> Result<()> {
        if user_id != caller.user_id {
            return Err(Error::forbidden("you can only change your own profile"));
        }
        Ok(())
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
        self.refuse_reserved(localpart)?;
        let password_hash = self.passwords.hash(password).await?;
        let user = NewUser {
            localpart: localpart.to_owned(),
            password_hash: Some(password_hash),
            is_admin,
            displayname: Some(localpart.to_owned()),
            created_ts: now_ms(),
        };
        self.store.create_user(&user, None, None).await?;
        self.user_id(localpart)
    }

    /// Creates a registration token usable `uses` times (unlimited if `None`) until
    /// `expires_in` from now (forever if `None`).
    pub async fn create_registration_token(
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
            token: random_string(16),
            uses_allowed: uses.map(i64::from),
            completed: 0,
            expiry_ts,
        };
        self.store.create_registration_token(&token, now).await?;
        Ok(token)
    }

    /// A registration token and how much of it is used.
    pub async fn registration_token(&self, token: &str) -> Result<RegistrationToken> {
        self.store
            .registration_token(token)
            .await?
            .ok_or_else(|| Error::NotFound("no such registration token".into()))
    }
}

fn check_device_id(device_id: &str) -> Result<()> {
    if device_id.is_empty()
        || device_id.len() > MAX_DEVICE_ID_BYTES
        || device_id.chars().any(char::is_control)
    {
        return Err(Error::InvalidParam(format!(
            "device_id must be 1 to {MAX_DEVICE_ID_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

/// SHA-256 of a token, as the store keeps it. Tokens carry 256 random bits, so a fast
/// hash is enough: there is nothing to brute-force.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new token: a prefix saying what it is, then 256 random bits in URL-safe base64.
fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A random string of lowercase letters and digits.
pub fn random_string(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char)
        .collect()
}

fn random_device_id() -> String {
    let mut rng = rand::rng();
    (0..10)
        .map(|_| (b'A' + (rng.next_u32() % 26) as u8) as char)
        .collect()
}

fn random_localpart() -> String {
    format!("u{}", random_string(11))
}
