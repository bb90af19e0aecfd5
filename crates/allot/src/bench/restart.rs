//! `allot bench restart`: how long a server takes to be ready on a big store. Fills a
//! fresh store with `--jobs` jobs (`--pending` of them pending, the rest completed),
//! then times `allot_server::start` (rebuilding the core from the store) until it
//! answers `/readyz`.

use std::sync::Arc;
use std::time::Instant;

use allot_api::JobSubmit;
use allot_server::client::Client;
use allot_server::config::{Limits, SchedulerConfig};
use allot_server::store::{JobRow, PgStore, SqliteStore, Store};
use anyhow::Context;
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Jobs in the store.
    #[arg(long, default_value_t = 1_000_000)]
    jobs: u64,
    /// Of those, pending.
    #[arg(long, default_value_t = 100_000)]
    pending: u64,
    /// PostgreSQL URL (a fresh schema, dropped after) instead of a fresh SQLite dir.
    #[arg(long)]
    database: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug)]
struct Report {
    backend: String,
    jobs: u64,
    pending: u64,
    fill_seconds: f64,
    ready_seconds: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = rt.block_on(bench(&args))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

async fn open(args: &Args, dir: &std::path::Path, schema: &str) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &args.database {
        Some(url) => Arc::new(PgStore::connect(url, Some(schema)).await.context("cannot open the PostgreSQL store")?),
        None => Arc::new(SqliteStore::open_dir(dir).await.context("cannot open the SQLite store")?),
    })
}

async fn bench(args: &Args) -> anyhow::Result<Report> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("allot-bench-restart-{}-{nanos}", std::process::id()));
    let schema = format!("allot_bench_restart_{}_{nanos}", std::process::id());
    let store = open(args, &dir, &schema).await?;
    let backend = store.backend().to_string();
    let t0 = Instant::now();
    let pending = args.pending.min(args.jobs);
    let spec = |tenant: &str| {
        serde_json::to_string(&JobSubmit {
            tenant: tenant.into(),
            project: Some("a".into()),
            user: Some("bench".into()),
            gpus: Some(1),
            walltime_s: Some(3600),
            ..JobSubmit::default()
        })
    };
    let spec = spec("bench/a")?;
    let mut id = 0u64;
    while id < args.jobs {
        let n = 20_000.min(args.jobs - id);
        let rows: Vec<JobRow> = (id + 1..=id + n)
            .map(|i| {
                let state = if i > args.jobs - pending { "pending" } else { "completed" };
                JobRow::new(i, "bench/a", "a", "bench", state, spec.clone(), i as i64)
            })
            .collect();
        store.insert_jobs(&rows).await?;
        id += n;
    }
    drop(store);
    let fill = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let store = open(args, &dir, &schema).await?;
    let opts = allot_server::Options {
        store,
        cluster: allot_core::Config::from_toml(super::api::BENCH_CLUSTER).map_err(|e| anyhow::anyhow!("bench cluster: {e}"))?,
        listen: "127.0.0.1:0".parse()?,
        scheduler: SchedulerConfig::default(),
        limits: Limits::default(),
        tls: None,
        agents: Default::default(),
    };
    let running = allot_server::start(opts).await?;
    let mut c = Client::new(&format!("http://{}", running.addr), None)?;
    let ok = c.get("/readyz").await?.status == 200;
    let ready = t0.elapsed().as_secs_f64();
    running.shutdown().await;
    if let Some(db) = &args.database {
        let _ = PgStore::drop_schema(db, &schema).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(ok, "the server did not become ready");
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    Ok(Report { backend, jobs: args.jobs, pending, fill_seconds: round(fill), ready_seconds: round(ready) })
}
