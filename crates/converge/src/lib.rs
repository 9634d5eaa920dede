//! The Converge server process: the configuration, and starting and stopping everything in
//! order — the store, the services, the gateways, the HTTP listeners.
//!
//! [`start`] opens the store, builds the services and gateways and serves the client API
//! (and, if enabled, metrics) until [`Server::shutdown`]. Tests call it with port 0.

pub mod config;

use std::net::SocketAddr;
use std::sync::Arc;

use converge_api::state::AppState;
use converge_gateways::Gateways;
use converge_service::Services;
use converge_service::config::Config;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use converge_api::app;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the services: {0}")]
    Services(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Opens the store and builds the services over it (without serving anything), as the
/// server and the command-line tools do.
pub async fn services(config: &Config) -> Result<Services, StartError> {
    Services::open(config, converge_gateways::reserved_prefixes())
        .await
        .map_err(StartError::Services)
}

/// Builds everything a request needs (services, gateways) without listening anywhere:
/// what [`start`] serves, and what tests drive in-process with [`app`].
pub async fn build(config: Config, base_url: String) -> Result<AppState, StartError> {
    let services = Arc::new(services(&config).await?);
    services.start_background();
    let gateways = Gateways::start(services.clone(), &config.gateways, &base_url)
        .await
        .map_err(|e| StartError::Services(format!("gateways: {e}")))?;
    Ok(AppState {
        base_url: base_url.into(),
        config: Arc::new(config),
        services,
        gateways,
        metrics: Arc::default(),
    })
}

/// Stops what [`build`] started: the long-polls, the gateways, then the store (after its
/// queued writes).
pub async fn stop(state: &AppState) {
    state.services.sync.close();
    state.gateways.shutdown().await;
    state.services.stop_background().await;
    state.services.close_store().await;
}

/// A running server.
pub struct Server {
    /// Where the client API listens (useful when the config asked for port 0).
    pub addr: SocketAddr,
    /// Where metrics are served, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

/// Starts serving with `config`.
pub async fn start(config: Config) -> Result<Server, StartError> {
    let listener = bind(config.listen).await?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let base_url = config.base_url(addr);
    let state = build(config, base_url).await?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![serve(listener, app(state.clone()), stopped.clone())];
    let mut metrics_addr = None;
    if state.config.metrics.enabled {
        let listener = bind(state.config.metrics.listen).await?;
        metrics_addr = listener.local_addr().ok();
        tasks.push(serve(
            listener,
            converge_api::ops::metrics_routes(state.clone()),
            stopped,
        ));
    }
    tracing::info!(%addr, metrics = ?metrics_addr, server_name = %state.config.server_name, "listening");
    Ok(Server {
        addr,
        metrics_addr,
        state,
        stop,
        tasks,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    })
}

impl Server {
    /// Stops accepting connections, lets in-flight requests finish, then finishes every
    /// queued write and closes the store.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // Long-polls end first, so the listeners' graceful shutdown need not wait for them.
        self.state.services.sync.close();
        for task in self.tasks {
            match task.await {
                Ok(Err(err)) => tracing::warn!(error = %err, "listener ended with an error"),
                Err(err) => tracing::warn!(error = %err, "listener task failed"),
                Ok(Ok(())) => {}
            }
        }
        stop(&self.state).await;
        tracing::info!("shut down");
    }
}
