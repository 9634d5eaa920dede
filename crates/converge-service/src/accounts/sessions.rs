//! Sessions: password login, access and refresh tokens, logout, and resolving a token to
//! its caller (with a short-lived cache, since every request does it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use converge_core::appservice::{AppService, Claim};
use converge_core::id;
use converge_store::{NewSession, Session, Store};
use ruma::{OwnedDeviceId, OwnedUserId};

use super::{check_device_id, user_id};
use crate::caller::{Caller, Client, Masquerade};
use crate::device_lists::DeviceLists;
use crate::error::{Error, Result};
use crate::ids::{hash_token, new_token, random_device_id};
use crate::now_ms;
use crate::password::Passwords;
use crate::ratelimit::{Limit, RateLimiter};

/// How long a resolved access token is trusted without asking the store again.
/// The device an application service acts on when it names none.
pub const APPSERVICE_DEVICE: &str = "APPSERVICE";
const SESSION_CACHE_TTL: Duration = Duration::from_secs(30);
/// Resolved tokens kept at most.
const MAX_CACHED_SESSIONS: usize = 100_000;
/// How often a device's "last seen" time is written at most.
const LAST_SEEN_INTERVAL_MS: i64 = 60_000;

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

pub struct Sessions {
    store: Store,
    server_name: String,
    refresh_lifetime: Duration,
    limiter: Arc<RateLimiter>,
    passwords: Arc<Passwords>,
    /// Ending a session deletes its device, which co-members' clients must learn.
    device_lists: Arc<DeviceLists>,
    /// Application services, whose `as_token`s are access tokens too.
    appservices: Arc<crate::appservices::Registrations>,
    /// Recently resolved access tokens, so most requests skip the store. Every path that
    /// ends sessions drops the affected entries; entries also expire, which bounds how long
    /// another node could honour a revoked token once there are several.
    cache: Mutex<HashMap<Vec<u8>, (Session, Instant)>>,
    /// When each token's device "last seen" was last written, to write it at most once a
    /// minute.
    last_seen: Mutex<HashMap<Vec<u8>, i64>>,
}

impl Sessions {
    pub fn new(
        store: Store,
        server_name: String,
        refresh_lifetime: Duration,
        limiter: Arc<RateLimiter>,
        passwords: Arc<Passwords>,
        device_lists: Arc<DeviceLists>,
        appservices: Arc<crate::appservices::Registrations>,
    ) -> Self {
        Self {
            store,
            server_name,
            refresh_lifetime,
            limiter,
            passwords,
            device_lists,
            appservices,
            cache: Mutex::default(),
            last_seen: Mutex::default(),
        }
    }

    /// Resolves an access token to its caller: an application service's `as_token` acts as
    /// the user it names (`masquerade`), any other token as its own user.
    pub async fn authenticate(
        &self,
        token: &str,
        client: Client,
        masquerade: &Masquerade,
    ) -> Result<Caller> {
        if let Some(service) = self.appservices.by_token(token) {
            return self.appservice_caller(service, token, masquerade).await;
        }
        let token_hash = hash_token(token);
        let cached = self
            .cache
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
                let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= MAX_CACHED_SESSIONS {
                    cache.retain(|_, (_, at)| at.elapsed() < SESSION_CACHE_TTL);
                    if cache.len() >= MAX_CACHED_SESSIONS {
                        cache.clear();
                    }
                }
                cache.insert(token_hash.clone(), (session.clone(), Instant::now()));
                session
            }
        };
        let now = now_ms();
        if session.expires_ts.is_some_and(|expires| expires <= now) {
            return Err(Error::UnknownToken { soft_logout: true });
        }
        self.note_last_seen(&session, &token_hash, now, client)
            .await;
        Ok(Caller {
            user_id: user_id(&session.localpart, &self.server_name)?,
            localpart: session.localpart,
            device_id: session.device_id.into(),
            is_admin: session.is_admin,
            token_hash,
            appservice: None,
        })
    }

    /// The caller an application service acts as: its own user, or with `?user_id=` any
    /// user of its namespaces that it registered; on one of that user's devices with
    /// `?device_id=` (MSC3202/MSC4326).
    async fn appservice_caller(
        &self,
        service: Arc<AppService>,
        token: &str,
        masquerade: &Masquerade,
    ) -> Result<Caller> {
        let acting = masquerade
            .user_id
            .clone()
            .unwrap_or_else(|| service.sender.clone());
        let localpart = acting
            .strip_prefix('@')
            .and_then(|rest| rest.strip_suffix(&format!(":{}", self.server_name)))
            .filter(|_| service.claims_user(&acting, Claim::Any))
            .ok_or_else(|| {
                Error::NotInNamespace(format!(
                    "the application service `{}` may not act as {acting}",
                    service.id()
                ))
            })?;
        let user = match self.store.user(localpart).await?.filter(|u| !u.deactivated) {
            Some(user) => user,
            None if masquerade.registering && acting != service.sender => {
                let itself = Masquerade {
                    user_id: None,
                    ..masquerade.clone()
                };
                return Box::pin(self.appservice_caller(service, token, &itself)).await;
            }
            None => {
                return Err(Error::forbidden(format!(
                    "the application service has not registered {acting}"
                )));
            }
        };
        let device_id = match &masquerade.device_id {
            Some(device) => {
                if self.store.device(localpart, device).await?.is_none() {
                    return Err(Error::UnknownDevice(format!(
                        "{acting} has no device {device}"
                    )));
                }
                device.clone()
            }
            None => APPSERVICE_DEVICE.to_owned(),
        };
        Ok(Caller {
            user_id: user_id(localpart, &self.server_name)?,
            localpart: localpart.to_owned(),
            device_id: device_id.into(),
            is_admin: user.is_admin,
            token_hash: hash_token(token),
            appservice: Some(service),
        })
    }

    async fn note_last_seen(&self, session: &Session, token_hash: &[u8], now: i64, client: Client) {
        {
            let mut seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen
                .get(token_hash)
                .is_some_and(|&at| now - at < LAST_SEEN_INTERVAL_MS)
            {
                return;
            }
            if seen.len() > MAX_CACHED_SESSIONS {
                seen.retain(|_, at| now - *at < LAST_SEEN_INTERVAL_MS);
            }
            seen.insert(token_hash.to_vec(), now);
        }
        let ip = client.ip.map(|ip| ip.to_string());
        if let Err(err) = self
            .store
            .touch_device(&session.localpart, &session.device_id, now, ip.as_deref())
            .await
        {
            tracing::warn!(error = %err, "could not record device last seen");
        }
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
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let user = match user {
            Some(user)
                if self
                    .passwords
                    .verify_or_dummy(request.password, hash)
                    .await? =>
            {
                user
            }
            _ => return Err(invalid()),
        };
        if user.deactivated {
            return Err(Error::UserDeactivated);
        }
        let (session, credentials) = self.issue(
            &localpart,
            request.device_id,
            request.device_display_name,
            request.refresh_token,
            now_ms(),
            client,
        )?;
        self.store.create_session(&localpart, &session).await?;
        self.forget(&localpart, Some(&session.device_id));
        tracing::info!(user = %localpart, device = %credentials.device_id, "logged in");
        Ok(credentials)
    }

    /// `POST /login` with `m.login.application_service`: an application service logs one
    /// of its users in (a new device and token, as a password login would give).
    pub async fn login_for_appservice(
        &self,
        caller: &Caller,
        request: PasswordLogin,
        client: Client,
    ) -> Result<Credentials> {
        let Some(service) = &caller.appservice else {
            return Err(Error::forbidden(
                "only an application service's token logs in with m.login.application_service",
            ));
        };
        let Some(localpart) = id::login_localpart(&request.identifier, &self.server_name) else {
            return Err(Error::forbidden("not a user of this server"));
        };
        let full_id = id::user_id(&localpart, &self.server_name);
        if !service.claims_user(&full_id, Claim::Any) {
            return Err(Error::NotInNamespace(format!(
                "{full_id} is not in the namespaces of the application service `{}`",
                service.id()
            )));
        }
        if let Some(device_id) = &request.device_id {
            check_device_id(device_id)?;
        }
        match self.store.user(&localpart).await? {
            Some(user) if user.deactivated => return Err(Error::UserDeactivated),
            Some(_) => {}
            None => return Err(Error::forbidden(format!("{full_id} does not exist"))),
        }
        let (session, credentials) = self.issue(
            &localpart,
            request.device_id,
            request.device_display_name,
            request.refresh_token,
            now_ms(),
            client,
        )?;
        self.store.create_session(&localpart, &session).await?;
        self.forget(&localpart, Some(&session.device_id));
        tracing::info!(user = %localpart, appservice = service.id(), "logged in by an appservice");
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
        self.forget(&localpart, Some(&device_id));
        Ok(Credentials {
            user_id: user_id(&localpart, &self.server_name)?,
            device_id: device_id.into(),
            access_token,
            refresh_token: Some(new_refresh),
            expires_in: Some(self.refresh_lifetime),
        })
    }

    /// New tokens for a session on a device (a new one unless named); the caller stores the
    /// session. A refresh token is issued only to clients that asked for one: some (Element
    /// X on iOS) refuse a login answer that carries one they cannot use.
    pub(crate) fn issue(
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
            user_id: user_id(localpart, &self.server_name)?,
            device_id: device_id.into(),
            access_token,
            refresh_token,
            expires_in,
        };
        Ok((session, credentials))
    }

    /// Drops cached sessions of `localpart` (of one device, or all) once the store has ended
    /// them, so no request is let in on a token that went away.
    pub(crate) fn forget(&self, localpart: &str, device_id: Option<&str>) {
        self.cache
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
            .delete_devices(
                &caller.localpart,
                caller.user_id.as_str(),
                &[caller.device_id.to_string()],
            )
            .await?;
        self.forget(&caller.localpart, Some(caller.device_id.as_str()));
        self.device_lists.changed(caller.user_id.as_str()).await
    }

    /// `POST /logout/all`: ends every session of the caller.
    pub async fn logout_all(&self, caller: &Caller) -> Result<()> {
        self.store
            .delete_other_devices(&caller.localpart, caller.user_id.as_str(), None)
            .await?;
        self.forget(&caller.localpart, None);
        self.device_lists.changed(caller.user_id.as_str()).await
    }
}
