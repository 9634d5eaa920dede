//! The service layer: what the server does, independent of HTTP.
//!
//! Handlers and gateways call these services; only services touch the store. Each service
//! is a plain struct holding exactly what it needs, built once in [`Services::new`].

pub mod account_data;
pub mod accounts;
pub mod directory;
pub mod ephemeral;
pub mod fetch;
pub mod filters;
pub mod keys;
pub mod media;
pub mod notifier;
pub mod password;
pub mod ratelimit;
pub mod rooms;
pub mod sync;
pub mod timeline;
pub mod token;
pub mod uia;

use std::sync::Arc;

use converge_store::Store;

use crate::config::Config;

/// Every service, shared by all requests.
pub struct Services {
    pub accounts: accounts::Accounts,
    pub rooms: Arc<rooms::Rooms>,
    pub timeline: timeline::Timeline,
    pub sync: sync::Sync,
    pub ephemeral: Arc<ephemeral::Ephemeral>,
    pub account_data: account_data::AccountData,
    pub directory: directory::Directory,
    pub filters: filters::Filters,
    pub media: media::Media,
    pub notifier: Arc<dyn notifier::Notifier>,
    pub limiter: Arc<ratelimit::RateLimiter>,
    pub store: Store,
}

impl Services {
    pub async fn new(config: &Config, store: Store) -> Result<Self, String> {
        let key = keys::load_or_create(&config.data_dir)?;
        let limiter = Arc::new(ratelimit::RateLimiter::new(&config.rate_limits));
        let notifier: Arc<dyn notifier::Notifier> = Arc::new(notifier::LocalNotifier::default());
        let server_name = config.server_name.clone();
        let rooms = Arc::new(rooms::Rooms::new(
            store.clone(),
            server_name.clone(),
            key,
            notifier.clone(),
        ));
        let ephemeral = Arc::new(ephemeral::Ephemeral::default());
        Ok(Self {
            accounts: accounts::Accounts::new(
                config,
                store.clone(),
                limiter.clone(),
                rooms.clone(),
            )
            .await,
            timeline: timeline::Timeline::new(store.clone(), rooms.clone()),
            sync: sync::Sync::new(
                store.clone(),
                rooms.clone(),
                ephemeral.clone(),
                notifier.clone(),
            ),
            account_data: account_data::AccountData::new(
                store.clone(),
                rooms.clone(),
                notifier.clone(),
            ),
            directory: directory::Directory::new(store.clone(), rooms.clone(), server_name),
            filters: filters::Filters::new(store.clone()),
            media: media::Media::new(config, store.clone(), limiter.clone()).await?,
            rooms,
            ephemeral,
            notifier,
            limiter,
            store,
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
