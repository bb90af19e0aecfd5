//! allot-server: the control plane around `allot_core::Core`.
//!
//! - `store`: persistence behind a trait (SQLite, PostgreSQL);
//! - `sched`: the scheduling loop, the one owner of the `Core`;
//! - `writer`: group commit of submissions;
//! - `tenancy`: tenants created, changed and deleted at runtime;
//! - `api`: the HTTP API (axum), with its OpenAPI document;
//! - `client`: a small HTTP/1 client for tests, benchmarks and the CLI;
//! - `ui`: the web dashboard at `/` and the read endpoints it uses.

pub mod agents;
pub mod api;
pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod extract;
pub mod ha;
pub mod metrics;
pub mod sched;
pub mod store;
pub mod tenancy;
pub mod tls;
pub mod ui;
pub mod validate;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use allot_api::JobEvent;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::auth::TokenCache;
use crate::config::{AgentLinkConfig, Limits, SchedulerConfig};
use crate::metrics::Metrics;
use crate::sched::{Cmd, Sched};
use crate::store::{Store, StoreError, TokenRow};
use crate::validate::Validator;
use crate::writer::SubmitReq;

/// What every handler shares.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub validator: Validator,
    pub tokens: TokenCache,
    pub core: mpsc::UnboundedSender<Cmd>,
    pub writer: mpsc::Sender<SubmitReq>,
    pub events: broadcast::Sender<JobEvent>,
    pub metrics: Arc<Metrics>,
    pub ready: AtomicBool,
    /// Becomes true when the server shuts down: long-lived streams (agents) end.
    pub closing: tokio::sync::watch::Receiver<bool>,
    pub limits: Limits,
}

pub type AppState = Arc<Shared>;

/// How to start a server.
pub struct Options {
    pub store: Arc<dyn Store>,
    pub cluster: allot_core::Config,
    pub listen: SocketAddr,
    pub scheduler: SchedulerConfig,
    pub limits: Limits,
    /// Serve HTTPS with this config (see `tls::server_config`); plain HTTP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The agent link (node timeout; whether every node needs an agent).
    pub agents: AgentLinkConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cluster config: {0}")]
    Config(#[from] allot_core::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}

/// A started server.
pub struct Running {
    /// The address it listens on (the real port when asked for port 0).
    pub addr: SocketAddr,
    /// The admin token created at first start (shown once; `None` afterwards).
    pub admin_token: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    closing: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, finishes in-flight requests (at most 5 s: event streams
    /// never finish by themselves), and returns.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = self.closing.send(true);
            let _ = tx.send(());
        }
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task).await.is_err() {
            self.task.abort();
        }
    }

    /// Waits until the server stops (never, unless it fails).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Creates the first admin token when the store has none; returns its secret.
pub async fn ensure_admin_token(store: &dyn Store) -> Result<Option<String>, StartError> {
    if store.token_count().await? > 0 {
        return Ok(None);
    }
    let secret = auth::new_secret().map_err(|e| StartError::Other(e.message))?;
    let row = TokenRow {
        id: 0,
        hash: auth::hash_secret(&secret),
        name: "admin".into(),
        role: "admin".into(),
        tenant: None,
        user: "admin".into(),
        created_ms: sched::now_ms(),
        revoked: false,
    };
    store.insert_token(&row).await?;
    Ok(Some(secret))
}

/// Rebuilds the core from the store, then serves on `opts.listen`.
pub async fn start(opts: Options) -> Result<Running, StartError> {
    start_inner(opts, None).await
}

/// Rebuilds the core from the store, then serves on `listener` (a standby's socket).
pub async fn start_on(opts: Options, listener: tokio::net::TcpListener) -> Result<Running, StartError> {
    start_inner(opts, Some(listener)).await
}

async fn start_inner(opts: Options, listener: Option<tokio::net::TcpListener>) -> Result<Running, StartError> {
    let core = allot_core::Core::new(&opts.cluster)?;
    let validator = Validator::new(&opts.cluster)?;
    let store = opts.store;
    validator.apply_tenant_rows(&store.tenants().await?);
    let admin_token = ensure_admin_token(&*store).await?;
    let metrics = Arc::new(Metrics::default());
    let (events, _) = broadcast::channel(4096);
    let (core_tx, core_rx) = mpsc::unbounded_channel();
    let (writer_tx, writer_rx) = mpsc::channel(16_384);
    let mut sched = Sched::new(core, store.clone(), events.clone(), metrics.clone(), opts.scheduler);
    sched.link = agents::Link::new(opts.agents);
    sched.rebuild().await?;
    let next_id = store.max_job_id().await?;
    tokio::spawn(sched.run(core_rx));
    tokio::spawn(writer::run(store.clone(), next_id, writer_rx, core_tx.clone(), metrics.clone()));
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared {
        store,
        validator,
        tokens: TokenCache::default(),
        core: core_tx,
        writer: writer_tx,
        events,
        metrics,
        ready: AtomicBool::new(true),
        closing: closing_rx,
        limits: opts.limits,
    });
    let listener = match listener {
        Some(l) => l,
        None => tokio::net::TcpListener::bind(opts.listen).await.map_err(|source| StartError::Listen { addr: opts.listen, source })?,
    };
    let addr = listener.local_addr().map_err(|source| StartError::Listen { addr: opts.listen, source })?;
    let app = api::router(shared);
    let (tx, rx) = oneshot::channel::<()>();
    let tls = opts.tls;
    let task = tokio::spawn(async move {
        if let Some(cfg) = tls {
            tls::serve(listener, cfg, app, rx).await;
            return;
        }
        // TCP_NODELAY (as the TLS path sets): the agent link sends small messages
        // (assignments) in turn, which Nagle's algorithm would hold back for a delayed ACK.
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    tracing::info!(%addr, "allot server listening");
    Ok(Running { addr, admin_token, shutdown: Some(tx), closing, task })
}
