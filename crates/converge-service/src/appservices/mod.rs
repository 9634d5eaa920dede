//! Application services (bridges): their registrations, loaded from YAML files and reloaded
//! on demand; their tokens; the namespaces they own; and what the server asks of them
//! (pings, user and alias queries, third-party lookups). `sender.rs` delivers their
//! transactions.
//!
//! Spec: "Application Service API" (v1.16). An appservice authenticates with its
//! `as_token`, acts as any user in its namespaces (`?user_id=`), and is called with its
//! `hs_token`.

mod sender;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use converge_core::appservice::{AppService, Claim, Registration, check_together};
use converge_store::{AppServiceState, NewUser, Store, StoreError};
use ruma::thirdparty::{Location, Protocol, User};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::config::AppServicesConfig;
use crate::ephemeral::Ephemeral;
use crate::error::{Error, Result};
use crate::rooms::Rooms;

pub use sender::TxnStats;

/// The loaded registrations.
#[derive(Default)]
pub struct Registry {
    pub services: Vec<Arc<AppService>>,
    by_token: HashMap<String, Arc<AppService>>,
    /// Which file each came from, for messages.
    files: HashMap<String, PathBuf>,
}

impl Registry {
    /// The appservice an exclusive namespace gives `user_id` to, if any.
    pub fn exclusive_owner(&self, user_id: &str) -> Option<&Arc<AppService>> {
        self.services
            .iter()
            .find(|s| s.claims_user(user_id, Claim::Exclusive))
    }
}

/// The registrations in use, shared with the account and room services (token lookups,
/// exclusive names, queries about users and aliases an appservice may know) and replaced
/// whole on a reload.
pub struct Registrations {
    current: RwLock<Arc<Registry>>,
    http: reqwest::Client,
}

impl Registrations {
    pub fn new(timeout: Duration) -> std::result::Result<Self, String> {
        Ok(Self {
            current: RwLock::default(),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("the appservice HTTP client: {e}"))?,
        })
    }

    /// Refuses an alias an appservice owns exclusively to anyone but that appservice.
    pub fn refuse_alias(&self, alias: &str, caller: Option<&str>) -> Result<()> {
        let registry = self.get();
        let owner = registry
            .services
            .iter()
            .find(|s| s.claims_alias(alias, Claim::Exclusive));
        match owner {
            Some(owner) if caller != Some(owner.id()) => Err(Error::Exclusive(format!(
                "this alias belongs to the application service `{}`",
                owner.id()
            ))),
            _ => Ok(()),
        }
    }

    /// Asks the appservice that owns `user_id` whether the user exists (it makes them if
    /// so): `GET /_matrix/app/v1/users/{userId}`. `false` if nobody owns them or it said no.
    pub async fn query_user(&self, user_id: &str) -> bool {
        let owner = self
            .get()
            .services
            .iter()
            .find(|s| s.claims_user(user_id, Claim::Any) && s.registration.url.is_some())
            .cloned();
        match owner {
            Some(service) => self.query(&service, "users", user_id).await,
            None => false,
        }
    }

    /// Asks the appservice that owns `alias` whether it exists (it makes the room if so):
    /// `GET /_matrix/app/v1/rooms/{alias}`.
    pub async fn query_alias(&self, alias: &str) -> bool {
        let owner = self
            .get()
            .services
            .iter()
            .find(|s| s.claims_alias(alias, Claim::Any) && s.registration.url.is_some())
            .cloned();
        match owner {
            Some(service) => self.query(&service, "rooms", alias).await,
            None => false,
        }
    }

    async fn query(&self, service: &AppService, kind: &str, id: &str) -> bool {
        let Some(url) = &service.registration.url else {
            return false;
        };
        let url = format!(
            "{}/_matrix/app/v1/{kind}/{}",
            url.trim_end_matches('/'),
            encode(id)
        );
        match self
            .http
            .get(&url)
            .bearer_auth(&service.registration.hs_token)
            .send()
            .await
        {
            Ok(response) => response.status().is_success(),
            Err(err) => {
                tracing::warn!(appservice = service.id(), error = %err, "appservice query failed");
                false
            }
        }
    }

    /// The registrations now.
    pub fn get(&self) -> Arc<Registry> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, registry: Registry) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(registry);
    }

    /// The appservice whose `as_token` this is.
    pub fn by_token(&self, token: &str) -> Option<Arc<AppService>> {
        self.get().by_token.get(token).cloned()
    }

    /// Whether any appservice's namespaces hold this user ID.
    pub fn claims(&self, user_id: &str) -> bool {
        self.get()
            .services
            .iter()
            .any(|s| s.claims_user(user_id, Claim::Any))
    }

    /// Refuses a user ID an appservice owns exclusively, with `M_EXCLUSIVE`.
    pub fn refuse(&self, user_id: &str) -> Result<()> {
        if let Some(owner) = self.get().exclusive_owner(user_id) {
            return Err(Error::Exclusive(format!(
                "this user ID belongs to the application service `{}`",
                owner.id()
            )));
        }
        Ok(())
    }
}

pub struct AppServices {
    store: Store,
    server_name: String,
    config: AppServicesConfig,
    data_dir: PathBuf,
    registrations: Arc<Registrations>,
    /// Bumped on every reload, so the senders restart with the new registrations.
    generation: watch::Sender<u64>,
    /// Wakes the senders early (an appservice pinged: it is back).
    wake: tokio::sync::Notify,
    rooms: Arc<Rooms>,
    ephemeral: Arc<Ephemeral>,
    stats: Arc<Mutex<HashMap<String, TxnStats>>>,
}

/// How a registration file failed to load.
fn file_error(file: &Path, message: impl std::fmt::Display) -> String {
    format!("appservice registration {}: {message}", file.display())
}

impl AppServices {
    pub fn new(
        store: Store,
        server_name: String,
        config: AppServicesConfig,
        data_dir: PathBuf,
        registrations: Arc<Registrations>,
        rooms: Arc<Rooms>,
        ephemeral: Arc<Ephemeral>,
    ) -> std::result::Result<Self, String> {
        Ok(Self {
            store,
            server_name,
            config,
            data_dir,
            registrations,
            generation: watch::channel(0).0,
            wake: tokio::sync::Notify::new(),
            rooms,
            ephemeral,
            stats: Arc::default(),
        })
    }

    /// The registrations now.
    pub fn registry(&self) -> Arc<Registry> {
        self.registrations.get()
    }

    /// The files registrations are read from: the configured ones, then
    /// `<data_dir>/appservices/*.yaml` in name order.
    fn files(&self) -> Vec<PathBuf> {
        let mut files = self.config.registration_files.clone();
        let dir = self.data_dir.join("appservices");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        }
        files
    }

    /// Reads and checks every registration file, then puts them in use (a failure leaves
    /// the registrations in use as they were). Errors name the file and the key.
    pub async fn load(&self) -> std::result::Result<usize, String> {
        let mut services = Vec::new();
        let mut files = HashMap::new();
        for file in self.files() {
            let text = std::fs::read_to_string(&file).map_err(|e| file_error(&file, e))?;
            let service = parse(&text, &self.server_name).map_err(|e| file_error(&file, e))?;
            files.insert(service.id().to_owned(), file);
            services.push(service);
        }
        check_together(&services).map_err(|(id, err)| {
            let file = files.get(&id).cloned().unwrap_or_default();
            file_error(&file, err)
        })?;
        for service in &services {
            let file = &files[service.id()];
            self.check_existing_users(service)
                .await
                .map_err(|e| file_error(file, e))?;
            self.ensure_sender(service)
                .await
                .map_err(|e| file_error(file, e))?;
        }
        let start = *self.store.stream_position().borrow();
        for service in &services {
            // A new appservice's stream starts now, not at the server's first event.
            self.store
                .appservice_state(service.id(), start)
                .await
                .map_err(|e| e.to_string())?;
        }
        let services: Vec<Arc<AppService>> = services.into_iter().map(Arc::new).collect();
        let by_token = services
            .iter()
            .map(|s| (s.registration.as_token.clone(), s.clone()))
            .collect();
        let count = services.len();
        self.registrations.set(Registry {
            services,
            by_token,
            files,
        });
        self.generation.send_modify(|g| *g += 1);
        tracing::info!(appservices = count, "appservice registrations loaded");
        Ok(count)
    }

    /// Refuses an exclusive user namespace that covers users who exist and were not made
    /// by this appservice, unless the configuration allows it.
    async fn check_existing_users(&self, service: &AppService) -> std::result::Result<(), String> {
        if self.config.allow_existing_users {
            return Ok(());
        }
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_users("", after.as_deref(), 1000)
                .await
                .map_err(|e| e.to_string())?;
            for user in &page {
                let user_id = converge_core::id::user_id(&user.user.localpart, &self.server_name);
                if service.claims_user(&user_id, Claim::Exclusive)
                    && user.user.appservice_id.as_deref() != Some(service.id())
                {
                    return Err(format!(
                        "namespaces.users: the exclusive namespace covers the existing user \
                         {user_id}; set [appservices] allow_existing_users = true to allow it"
                    ));
                }
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.user.localpart.clone()),
                _ => return Ok(()),
            }
        }
    }

    /// Makes the appservice's own user (its `sender_localpart`) if it does not exist.
    async fn ensure_sender(&self, service: &AppService) -> std::result::Result<(), String> {
        let localpart = &service.registration.sender_localpart;
        match self.store.user(localpart).await {
            Ok(Some(user)) if user.appservice_id.as_deref() == Some(service.id()) => Ok(()),
            Ok(Some(_)) if self.config.allow_existing_users => Ok(()),
            Ok(Some(_)) => Err(format!(
                "sender_localpart: the user @{localpart}:{} exists and is not this appservice's",
                self.server_name
            )),
            Ok(None) => self
                .create_user(service, localpart)
                .await
                .map_err(|e| e.to_string()),
            Err(err) => Err(err.to_string()),
        }
    }

    /// Creates a user for an appservice (no password: only the appservice acts as it).
    pub(crate) async fn create_user(&self, service: &AppService, localpart: &str) -> Result<()> {
        let user = NewUser {
            localpart: localpart.to_owned(),
            password_hash: None,
            is_admin: false,
            displayname: Some(localpart.to_owned()),
            created_ts: crate::now_ms(),
            appservice_id: Some(service.id().to_owned()),
        };
        match self.store.create_user(&user, None, None).await {
            Ok(()) => Ok(()),
            Err(StoreError::UserExists) => Err(Error::UserInUse),
            Err(err) => Err(err.into()),
        }
    }

    /// `POST /_matrix/client/v1/appservice/{appserviceId}/ping` by the appservice itself:
    /// calls its `POST /_matrix/app/v1/ping` and says how long that took.
    pub async fn ping(
        &self,
        caller: &AppService,
        appservice_id: &str,
        transaction_id: Option<&str>,
    ) -> Result<u64> {
        if caller.id() != appservice_id {
            return Err(Error::forbidden("an appservice may only ping itself"));
        }
        let Some(url) = &caller.registration.url else {
            return Err(Error::UrlNotSet);
        };
        let url = format!("{}/_matrix/app/v1/ping", url.trim_end_matches('/'));
        let mut body = json!({});
        if let Some(txn) = transaction_id {
            body["transaction_id"] = json!(txn);
        }
        let started = Instant::now();
        let answer = self
            .registrations
            .http
            .post(&url)
            .bearer_auth(&caller.registration.hs_token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => {
                let took = started.elapsed().as_millis() as u64;
                // It is up: what waits for it goes now rather than after its backoff.
                self.store.appservice_retry_now(caller.id()).await?;
                self.wake.notify_waiters();
                Ok(took)
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                Err(Error::BadStatus {
                    status,
                    body: body.chars().take(1000).collect(),
                })
            }
            Err(err) if err.is_timeout() => Err(Error::ConnectionTimeout),
            Err(err) => Err(Error::ConnectionFailed(err.to_string())),
        }
    }

    /// `GET /thirdparty/protocols`: the protocols the appservices declare, each as its
    /// appservice describes it.
    pub async fn protocols(&self) -> BTreeMap<String, Protocol> {
        let mut out = BTreeMap::new();
        for service in self.registry().services.iter() {
            for protocol in &service.registration.protocols {
                let path = format!("thirdparty/protocol/{}", encode(protocol));
                if let Some(answer) = self.third_party(service, &path, &[]).await
                    && let Ok(described) = serde_json::from_value(answer)
                {
                    out.insert(protocol.clone(), described);
                }
            }
        }
        out
    }

    /// `GET /thirdparty/protocol/{protocol}`, from the appservice that declares it.
    pub async fn protocol(&self, protocol: &str) -> Result<Protocol> {
        let service = self
            .declaring(protocol)
            .ok_or_else(|| unknown_protocol(protocol))?;
        let path = format!("thirdparty/protocol/{}", encode(protocol));
        self.third_party(&service, &path, &[])
            .await
            .and_then(|answer| serde_json::from_value(answer).ok())
            .ok_or_else(|| unknown_protocol(protocol))
    }

    /// `GET /thirdparty/location/{protocol}?fields` (`Some`) or `/thirdparty/location?alias=`
    /// (`None`): portal rooms, from the appservices.
    pub async fn locations(
        &self,
        protocol: Option<&str>,
        fields: &[(String, String)],
    ) -> Result<Vec<Location>> {
        let found = self.lookup("location", protocol, fields).await?;
        if found.is_empty() {
            return Err(Error::NotFound("no portal rooms were found".into()));
        }
        Ok(found)
    }

    /// `GET /thirdparty/user/{protocol}?fields` (`Some`) or `/thirdparty/user?userid=`
    /// (`None`): third-party users, from the appservices.
    pub async fn users(
        &self,
        protocol: Option<&str>,
        fields: &[(String, String)],
    ) -> Result<Vec<User>> {
        let found = self.lookup("user", protocol, fields).await?;
        if found.is_empty() {
            return Err(Error::NotFound("no users were found".into()));
        }
        Ok(found)
    }

    async fn lookup<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        protocol: Option<&str>,
        fields: &[(String, String)],
    ) -> Result<Vec<T>> {
        let services: Vec<Arc<AppService>> = match protocol {
            Some(protocol) => vec![
                self.declaring(protocol)
                    .ok_or_else(|| unknown_protocol(protocol))?,
            ],
            None => self
                .registry()
                .services
                .iter()
                .filter(|s| !s.registration.protocols.is_empty())
                .cloned()
                .collect(),
        };
        let path = match protocol {
            Some(protocol) => format!("thirdparty/{kind}/{}", encode(protocol)),
            None => format!("thirdparty/{kind}"),
        };
        let mut out = Vec::new();
        for service in services {
            if let Some(Value::Array(items)) = self.third_party(&service, &path, fields).await {
                // Items the appservice got wrong are left out rather than failing the lookup.
                out.extend(
                    items
                        .into_iter()
                        .filter_map(|item| serde_json::from_value(item).ok()),
                );
            }
        }
        Ok(out)
    }

    fn declaring(&self, protocol: &str) -> Option<Arc<AppService>> {
        self.registry()
            .services
            .iter()
            .find(|s| s.registration.protocols.iter().any(|p| p == protocol))
            .cloned()
    }

    async fn third_party(
        &self,
        service: &AppService,
        path: &str,
        fields: &[(String, String)],
    ) -> Option<Value> {
        let url = format!(
            "{}/_matrix/app/v1/{path}",
            service.registration.url.as_deref()?.trim_end_matches('/')
        );
        let response = self
            .registrations
            .http
            .get(&url)
            .bearer_auth(&service.registration.hs_token)
            .query(fields)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let bytes = response.bytes().await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Each appservice with its delivery state, for the admin API and health.
    pub async fn status(&self) -> Result<Vec<Value>> {
        let states: HashMap<String, AppServiceState> = self
            .store
            .appservice_states()
            .await?
            .into_iter()
            .map(|s| (s.as_id.clone(), s))
            .collect();
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = Vec::new();
        for service in self.registry().services.iter() {
            let state = states.get(service.id());
            let queued = self.store.appservice_queue_len(service.id()).await?;
            let stats = stats.get(service.id()).cloned().unwrap_or_default();
            out.push(json!({
                "id": service.id(),
                "url": service.registration.url,
                "sender": service.sender,
                "file": self.registry().files.get(service.id()),
                "queued": queued,
                "failures": state.map_or(0, |s| s.failures),
                "last_error": state.and_then(|s| s.last_error.clone()),
                "last_success_ts": state.and_then(|s| s.last_success_ts),
                "transactions_sent": stats.sent,
                "transactions_failed": stats.failed,
                "mean_latency_ms": stats.mean_latency_ms(),
                "up": state.is_none_or(|s| s.failures == 0),
            }));
        }
        Ok(out)
    }

    /// `GET /_converge/admin/v1/appservices`: each appservice and its delivery state.
    pub async fn list(&self, caller: &crate::Caller) -> Result<Vec<Value>> {
        crate::admin::require_admin(caller)?;
        self.status().await
    }

    /// `POST /_converge/admin/v1/appservices/reload`: reads the registrations again.
    pub async fn reload(&self, caller: &crate::Caller) -> Result<usize> {
        crate::admin::require_admin(caller)?;
        self.load().await.map_err(Error::InvalidParam)
    }

    /// For the public health check: each appservice's ID, whether it takes transactions,
    /// and how much waits for it (no URLs or errors).
    pub async fn health(&self) -> Result<serde_json::Map<String, Value>> {
        let states: HashMap<String, AppServiceState> = self
            .store
            .appservice_states()
            .await?
            .into_iter()
            .map(|s| (s.as_id.clone(), s))
            .collect();
        let mut out = serde_json::Map::new();
        for service in self.registry().services.iter() {
            let state = states.get(service.id());
            out.insert(
                service.id().to_owned(),
                json!({
                    "up": state.is_none_or(|s| s.failures == 0),
                    "queued": self.store.appservice_queue_len(service.id()).await?,
                }),
            );
        }
        Ok(out)
    }

    /// Per-appservice counters for `/metrics`: (id, sent, failed, latency seconds sum).
    pub fn metrics(&self) -> Vec<(String, TxnStats)> {
        let mut out: Vec<(String, TxnStats)> = self
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Delivers every appservice's transactions until `stop`: one sender per appservice
    /// with a URL, restarted with the new registrations after a reload.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut generation = self.generation.subscribe();
        while !*stop.borrow() {
            generation.borrow_and_update();
            let (done_tx, _) = watch::channel(false);
            let mut tasks = Vec::new();
            for service in self.registry().services.iter().cloned() {
                if service.registration.url.is_none() {
                    continue;
                }
                let sender = sender::Sender::new(self.clone(), service);
                let done = done_tx.subscribe();
                tasks.push(tokio::spawn(sender.run(done)));
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = generation.changed() => {}
            }
            done_tx.send_replace(true);
            for task in tasks {
                let _ = task.await;
            }
        }
    }
}

fn unknown_protocol(protocol: &str) -> Error {
    Error::NotFound(format!("no bridge serves the protocol {protocol:?}"))
}

/// Parses and checks one registration.
pub fn parse(text: &str, server_name: &str) -> std::result::Result<AppService, String> {
    let registration: Registration =
        serde_saphyr::from_str(text).map_err(|e| format!("not a valid registration: {e}"))?;
    AppService::new(registration, server_name).map_err(|e| e.to_string())
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// How long to wait before retrying after `failures` failures in a row.
fn backoff(failures: i64, max: Duration) -> Duration {
    let seconds = 1u64 << failures.clamp(0, 16);
    Duration::from_secs(seconds).min(max)
}
