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
    /// PostgreSQL schema of the store (default: the connection's search path).
    #[arg(long, requires = "database")]
    database_schema: Option<String>,
    /// High availability: lead only while holding the database's leader lock; until
    /// then stand by (answering 503). Needs --database.
    #[arg(long, requires = "database")]
    ha: bool,
    /// Serve HTTPS: certificate chain (PEM); overrides `tls` of --config.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Every node is run by an agent (`allot agent`); overrides `agents.required` of --config.
    #[arg(long)]
    agents_required: bool,
    /// Milliseconds of agent silence after which a node is lost; overrides
    /// `agents.node_timeout_ms` of --config (default 30000).
    #[arg(long)]
    node_timeout_ms: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    init_logging("info");
    let (listen, cluster, scheduler, limits, tls_files, mut agents) = match &args.config {
        Some(path) => {
            let cfg = ServerConfig::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let tls = cfg.tls.map(|t| (t.cert, t.key));
            (cfg.listen, args.cluster.clone().unwrap_or(cfg.cluster), cfg.scheduler, cfg.limits, tls, cfg.agents)
        }
        None => {
            let Some(cluster) = args.cluster.clone() else { bail!("give --cluster FILE (the cluster config) or --config FILE") };
            ("127.0.0.1:7070".to_string(), cluster, SchedulerConfig::default(), Limits::default(), None, Default::default())
        }
    };
    if args.agents_required {
        agents.required = true;
    }
    if let Some(ms) = args.node_timeout_ms {
        agents.node_timeout_ms = ms.max(100);
    }
    let tls_files = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ => tls_files,
    };
    let tls = tls_files.map(|(c, k)| allot_server::tls::server_config(&c, &k)).transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listen = args.listen.clone().unwrap_or(listen);
    let listen = listen.parse().with_context(|| format!("listen address `{listen}` is not HOST:PORT"))?;
    let text = std::fs::read_to_string(&cluster).with_context(|| format!("cannot read {}", cluster.display()))?;
    let cluster_cfg = allot_core::Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", cluster.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut stop = crate::signal::Stop::install();
        let schema = args.database_schema.as_deref();
        // With --ha: stand by until this process holds the leader lock.
        let mut lease = None;
        let mut listener = None;
        if let (true, Some(url)) = (args.ha, &args.database) {
            let standby = allot_server::ha::Standby::listen(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
            println!("allot server standing by on http://{}", standby.addr);
            let acquired = tokio::select! {
                l = allot_server::ha::LeaderLease::acquire(url, schema) => l.context("cannot wait for the leader lock")?,
                sig = stop.wait() => {
                    eprintln!("{sig}: stopping (standing by, nothing to hand over)");
                    return Ok(());
                }
            };
            lease = Some(acquired);
            listener = Some(standby.into_listener().await.context("cannot take over the standby socket")?);
        }
        let store: Arc<dyn Store> = match &args.database {
            Some(url) => Arc::new(PgStore::connect(url, schema).await.context("cannot open the PostgreSQL store")?),
            None => Arc::new(SqliteStore::open_dir(&args.data_dir).await.context("cannot open the SQLite store")?),
        };
        let backend = store.backend();
        let opts = allot_server::Options { store, cluster: cluster_cfg, listen, scheduler, limits, tls, agents };
        let running = match listener {
            Some(l) => allot_server::start_on(opts, l).await?,
            None => allot_server::start(opts).await?,
        };
        if let Some(token) = &running.admin_token {
            println!("admin token (shown once, stored hashed): {token}");
        }
        println!("allot server listening on {scheme}://{} ({backend} store)", running.addr);
        let lost = async move {
            match lease {
                Some(l) => l.lost().await,
                None => std::future::pending().await,
            }
        };
        let sig = tokio::select! {
            sig = stop.wait() => sig,
            e = lost => {
                // Another server may lead now: stop at once, acting on nothing more.
                eprintln!("error: lost the leader lock ({e}); exiting");
                std::process::exit(3);
            }
        };
        eprintln!("{sig}: shutting down");
        running.shutdown().await;
        Ok(())
    })
}

/// Logs to standard error; colours only on a terminal (a journal or a log file
/// would keep the escape codes as text).
pub fn init_logging(default_level: &str) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
        .try_init();
}
