//! The service layer: what the server does, independent of HTTP.
//!
//! Handlers and gateways call these services; only services hold the store. Each service
//! is a plain struct holding exactly what it needs, built once in [`Services::new`]; their
//! dependencies form no cycle.

pub mod account_data;
pub mod accounts;
pub mod admin;
pub mod analytics;
pub mod appservices;
pub mod backup;
pub mod caller;
pub mod calls;
pub mod config;
pub mod device_lists;
pub mod directory;
pub mod e2ee;
pub mod ephemeral;
pub mod error;
pub mod fetch;
pub mod filters;
pub mod history;
pub mod ids;
pub mod keys;
pub mod media;
pub mod notifier;
pub mod openid;
pub mod password;
pub mod push;
pub mod pushers;
pub mod ratelimit;
pub mod reports;
pub mod rooms;
pub mod sliding;
pub mod spaces;
pub mod stream;
pub mod sync;
pub mod third_party;
pub mod timeline;
pub mod token;
pub mod uia;

use std::sync::{Arc, Mutex};

use converge_store::{Migration, Store, StoreOptions, Tables};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use converge_store::WriterStats;

pub use caller::{Caller, Client, Masquerade};
pub use config::Config;
pub use error::{Error, Result};

use accounts::{AccountSecurity, Devices, Interactive, Profiles, Registration, Reserved, Sessions};

/// Every service, shared by all requests.
pub struct Services {
    pub sessions: Arc<Sessions>,
    pub registration: Arc<Registration>,
    pub devices: Devices,
    pub profiles: Profiles,
    pub security: Arc<AccountSecurity>,
    pub admin: admin::Admin,
    pub appservices: Arc<appservices::AppServices>,
    pub analytics: Arc<analytics::Analytics>,
    pub reserved: Arc<Reserved>,
    pub rooms: Arc<rooms::Rooms>,
    pub timeline: Arc<timeline::Timeline>,
    pub sync: Arc<sync::Sync>,
    pub sliding: sliding::SlidingSync,
    pub push: Arc<push::PushRules>,
    pub pushers: Arc<pushers::Pushers>,
    pub e2ee: Arc<e2ee::E2ee>,
    pub backup: backup::KeyBackup,
    pub ephemeral: Arc<ephemeral::Ephemeral>,
    pub account_data: account_data::AccountData,
    pub directory: directory::Directory,
    pub filters: filters::Filters,
    pub media: media::Media,
    pub stream: stream::EventStream,
    pub notifier: Arc<dyn notifier::Notifier>,
    pub limiter: Arc<ratelimit::RateLimiter>,
    pub calls: calls::Calls,
    pub third_party: third_party::ThirdParty,
    pub openid: openid::OpenId,
    pub reports: reports::Reports,
    pub spaces: spaces::Spaces,
    pub history: history::History,
    store: Store,
    /// Ends the background tasks ([`Services::start_background`]).
    stop: watch::Sender<bool>,
    background: Mutex<Vec<JoinHandle<()>>>,
}

impl Services {
    /// Opens the store the configuration names (creating the data directory for SQLite)
    /// and builds the services over it.
    pub async fn open(
        config: &Config,
        reserved_prefixes: Vec<String>,
    ) -> std::result::Result<Self, String> {
        let url = config.store_url();
        if url.starts_with("sqlite:") {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                format!(
                    "cannot create the data directory {}: {e}",
                    config.data_dir.display()
                )
            })?;
        }
        let options = StoreOptions {
            max_connections: config.limits.max_db_connections,
            ..StoreOptions::default()
        };
        let store = Store::open(&url, options)
            .await
            .map_err(|e| format!("cannot open the store: {e}"))?;
        Self::new(config, store, reserved_prefixes).await
    }

    /// Builds the services over `store`. `reserved_prefixes` are the localpart prefixes of
    /// the gateways' virtual users, which nobody may register.
    pub async fn new(
        config: &Config,
        store: Store,
        reserved_prefixes: Vec<String>,
    ) -> std::result::Result<Self, String> {
        let key = keys::load_or_create(&config.data_dir)?;
        let limiter = Arc::new(ratelimit::RateLimiter::new(&config.rate_limits));
        let notifier: Arc<dyn notifier::Notifier> = Arc::new(notifier::LocalNotifier::default());
        let server_name = config.server_name.clone();
        let passwords = Arc::new(password::Passwords::default());
        let registrations = Arc::new(appservices::Registrations::new(config.appservices.timeout)?);
        let reserved = Arc::new(Reserved::new(
            store.clone(),
            server_name.clone(),
            config.gateways.bot.clone(),
            reserved_prefixes,
            registrations.clone(),
        ));
        let push = Arc::new(push::PushRules::new(
            store.clone(),
            notifier.clone(),
            reserved.clone(),
        ));
        let rooms = Arc::new(rooms::Rooms::new(
            store.clone(),
            server_name.clone(),
            key,
            notifier.clone(),
            push.clone(),
            registrations.clone(),
        ));
        let ephemeral = Arc::new(ephemeral::Ephemeral::default());
        let device_lists = Arc::new(device_lists::DeviceLists::new(
            store.clone(),
            notifier.clone(),
        ));
        let sessions = Arc::new(Sessions::new(
            store.clone(),
            server_name.clone(),
            config.auth.refreshable_token_lifetime,
            limiter.clone(),
            passwords.clone(),
            device_lists.clone(),
            registrations.clone(),
        ));
        let interactive = Arc::new(Interactive::new(
            store.clone(),
            server_name.clone(),
            passwords.clone(),
        ));
        let e2ee = Arc::new(e2ee::E2ee::new(
            store.clone(),
            server_name.clone(),
            device_lists.clone(),
            interactive.clone(),
            notifier.clone(),
        ));
        let pushers = Arc::new(pushers::Pushers::new(
            store.clone(),
            rooms.clone(),
            &config.push,
        )?);
        let timeline = Arc::new(timeline::Timeline::new(store.clone(), rooms.clone()));
        let sync = Arc::new(sync::Sync::new(
            store.clone(),
            rooms.clone(),
            ephemeral.clone(),
            notifier.clone(),
            push.clone(),
            e2ee.clone(),
        ));
        let registration = Arc::new(Registration {
            store: store.clone(),
            server_name: server_name.clone(),
            mode: config.registration.mode,
            limiter: limiter.clone(),
            passwords: passwords.clone(),
            sessions: sessions.clone(),
            interactive: interactive.clone(),
            reserved: reserved.clone(),
        });
        let security = Arc::new(AccountSecurity::new(
            store.clone(),
            passwords.clone(),
            sessions.clone(),
            interactive.clone(),
            rooms.clone(),
            device_lists.clone(),
        ));
        let appservices = Arc::new(appservices::AppServices::new(
            store.clone(),
            server_name.clone(),
            config.appservices.clone(),
            config.data_dir.clone(),
            registrations.clone(),
            rooms.clone(),
            ephemeral.clone(),
        )?);
        appservices.load().await?;
        let admin = admin::Admin::new(
            store.clone(),
            server_name.clone(),
            config.registration.mode,
            registration.clone(),
            security.clone(),
            sessions.clone(),
            rooms.clone(),
        );
        Ok(Self {
            calls: calls::Calls::new(config.calls.turn.clone()),
            third_party: third_party::ThirdParty,
            openid: openid::OpenId::new(store.clone(), server_name.clone()),
            reports: reports::Reports::new(store.clone(), rooms.clone(), timeline.clone()),
            spaces: spaces::Spaces::new(store.clone(), rooms.clone()),
            history: history::History::new(store.clone(), timeline.clone()),
            devices: Devices::new(
                store.clone(),
                sessions.clone(),
                interactive.clone(),
                device_lists.clone(),
            ),
            profiles: Profiles::new(
                store.clone(),
                server_name.clone(),
                rooms.clone(),
                registrations.clone(),
            ),
            security,
            admin,
            appservices,
            analytics: Arc::new(analytics::Analytics::new(store.clone(), rooms.clone())),
            registration,
            sessions,
            reserved,
            timeline,
            sliding: sliding::SlidingSync::new(
                store.clone(),
                rooms.clone(),
                ephemeral.clone(),
                notifier.clone(),
                push.clone(),
                e2ee.clone(),
                sync.clone(),
            ),
            sync,
            account_data: account_data::AccountData::new(
                store.clone(),
                rooms.clone(),
                notifier.clone(),
            ),
            directory: directory::Directory::new(store.clone(), rooms.clone(), server_name),
            filters: filters::Filters::new(store.clone()),
            media: media::Media::new(config, store.clone(), limiter.clone()).await?,
            stream: stream::EventStream::new(store.clone()),
            backup: backup::KeyBackup::new(store.clone()),
            push,
            pushers,
            e2ee,
            rooms,
            ephemeral,
            notifier,
            limiter,
            store,
            stop: watch::channel(false).0,
            background: Mutex::default(),
        })
    }

    /// Starts what runs in the background: delivering notifications to pushers, and storing
    /// the counted gateway traffic.
    pub fn start_background(&self) {
        let tasks = vec![
            tokio::spawn(self.pushers.clone().run(self.stop.subscribe())),
            tokio::spawn(self.analytics.clone().run(self.stop.subscribe())),
            tokio::spawn(self.appservices.clone().run(self.stop.subscribe())),
        ];
        self.background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(tasks);
    }

    /// Stops the background tasks and waits for them.
    pub async fn stop_background(&self) {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.background.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            if let Err(err) = task.await {
                tracing::warn!(error = %err, "a background task failed");
            }
        }
    }

    /// The tables of a component (a gateway), after applying its pending migrations.
    pub async fn component_tables(
        &self,
        name: &'static str,
        migrations: &[Migration],
    ) -> Result<Tables> {
        Ok(self.store.tables(name, migrations).await?)
    }

    /// The store's backend (`sqlite` or `postgres`) and whether it answers now.
    pub async fn store_health(&self) -> (&'static str, bool) {
        let ok = match self.store.ping().await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err, "health check: the store does not answer");
                false
            }
        };
        (self.store.backend_name(), ok)
    }

    /// What the ordered writer has committed so far.
    pub fn writer_stats(&self) -> WriterStats {
        self.store.writer_stats()
    }

    /// Finishes every queued write and closes the store; called last at shutdown, after
    /// the long-polls ended (`sync.close()`) and the gateways stopped.
    pub async fn close_store(&self) {
        self.store.close().await;
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
