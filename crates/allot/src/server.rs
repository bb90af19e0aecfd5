//! `allot server`: the control plane (HTTP API, store, scheduling loop).

use std::path::PathBuf;
use std::sync::Arc;

use allot_server::config::{Limits, SchedulerConfig, ServerConfig};
use allot_server::store::{PgStore, SqliteStore, Store};
use anyhow::{Context, bail};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Server config (TOML, `version = 1`): listen address, cluster config path,
    /// scheduler and limits.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The cluster and tenants config (the core's TOML); overrides `cluster` of --config.
    #[arg(long)]
    cluster: Option<PathBuf>,
    /// Folder of the embedded SQLite store (the default store).
    #[arg(long, default_value = "allot-data")]
    data_dir: PathBuf,
    /// A PostgreSQL URL (postgres://...) instead of the embedded store.
    #[arg(long, env = "ALLOT_DATABASE_URL")]
    database: Option<String>,
    /// Address to listen on; overrides `listen` of --config (default 127.0.0.1:7070).
    #[arg(long)]
    listen: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    init_logging();
    let (listen, cluster, scheduler, limits) = match &args.config {
        Some(path) => {
            let cfg = ServerConfig::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            (cfg.listen, args.cluster.clone().unwrap_or(cfg.cluster), cfg.scheduler, cfg.limits)
        }
        None => {
            let Some(cluster) = args.cluster.clone() else { bail!("give --cluster FILE (the cluster config) or --config FILE") };
            ("127.0.0.1:7070".to_string(), cluster, SchedulerConfig::default(), Limits::default())
        }
    };
    let listen = args.listen.clone().unwrap_or(listen);
    let listen = listen.parse().with_context(|| format!("listen address `{listen}` is not HOST:PORT"))?;
    let text = std::fs::read_to_string(&cluster).with_context(|| format!("cannot read {}", cluster.display()))?;
    let cluster_cfg = allot_core::Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", cluster.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let store: Arc<dyn Store> = match &args.database {
            Some(url) => Arc::new(PgStore::connect(url, None).await.context("cannot open the PostgreSQL store")?),
            None => Arc::new(SqliteStore::open_dir(&args.data_dir).await.context("cannot open the SQLite store")?),
        };
        let backend = store.backend();
        let running = allot_server::start(allot_server::Options { store, cluster: cluster_cfg, listen, scheduler, limits }).await?;
        if let Some(token) = &running.admin_token {
            println!("admin token (shown once, stored hashed): {token}");
        }
        println!("allot server listening on http://{} ({backend} store)", running.addr);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = std::future::pending::<()>() => {}
        }
        eprintln!("shutting down");
        running.shutdown().await;
        Ok(())
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
