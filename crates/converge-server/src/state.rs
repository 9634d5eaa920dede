//! The state every handler receives.

use std::sync::Arc;

use crate::config::Config;
use crate::gateways::Gateways;
use crate::metrics::Metrics;
use crate::service::Services;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub services: Arc<Services>,
    pub gateways: Arc<Gateways>,
    pub metrics: Arc<Metrics>,
    /// The URL clients should use, served in `/.well-known/matrix/client`.
    pub base_url: Arc<str>,
}
