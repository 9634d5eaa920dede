//! The state every handler receives.

use std::sync::Arc;

use converge_gateways::Gateways;
use converge_service::Services;
use converge_service::config::Config;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub services: Arc<Services>,
    pub gateways: Arc<Gateways>,
    pub metrics: Arc<Metrics>,
    /// The URL clients should use, served in `/.well-known/matrix/client`.
    pub base_url: Arc<str>,
}
