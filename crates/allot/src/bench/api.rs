//! `allot bench api`: submission throughput of the server. Without `--server` it
//! starts a temporary server on loopback with a fresh SQLite data dir (or a fresh
//! schema of `--database`), then
//!
//! 1. **batch**: `--jobs` jobs in batches of `--batch`, two requests in flight;
//! 2. **single**: `--jobs` jobs, one per request, from `--clients` concurrent clients
//!    (each on its own kept-alive connection), timing every request.
//!
//! Prints one JSON object with `--json`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_api::{BatchSubmitResponse, JobBatchSubmit, JobSubmit, SubmitResponse};
use allot_server::client::Client;
use allot_server::config::{Limits, SchedulerConfig};
use allot_server::store::{PgStore, SqliteStore, Store};
use anyhow::{Context, bail};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// An already running server (http://HOST:PORT); needs --token.
    #[arg(long)]
    server: Option<String>,
    /// Token for --server.
    #[arg(long, env = "ALLOT_TOKEN")]
    token: Option<String>,
    /// PostgreSQL URL for the temporary server's store (a fresh schema, dropped after).
    #[arg(long)]
    database: Option<String>,
    /// Jobs submitted in each phase.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Concurrent clients of the single-job phase.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Jobs per batch request.
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    /// Tenant the jobs are submitted to (it must exist on --server).
    #[arg(long, default_value = "bench/a")]
    tenant: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug)]
struct Report {
    backend: String,
    jobs: usize,
    clients: usize,
    batch_size: usize,
    submit_batch_seconds: f64,
    submit_batch_per_s: f64,
    submit_single_seconds: f64,
    submit_single_per_s: f64,
    submit_single_p50_ms: f64,
    submit_single_p99_ms: f64,
    submit_single_max_ms: f64,
}

/// The temporary server's cluster: 64 nodes of 8 GPUs, two tenants.
pub(crate) const BENCH_CLUSTER: &str = r#"
version = 1
flavors = [{ name = "H100" }]

[[nodes]]
name = "n{i}"
count = 64
at = "site/block/leaf"
flavor = "H100"
gpus = 8
cpus = 128
memory_gib = 1024

[[tenants]]
path = "bench"

[[tenants]]
path = "bench/a"
quota = [{ flavor = "H100", nominal = 256 }]

[[tenants]]
path = "bench/b"
quota = [{ flavor = "H100", nominal = 256 }]
"#;

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.jobs == 0 || args.clients == 0 || args.batch == 0 || args.batch > allot_api::MAX_BATCH {
        bail!("--jobs and --clients must be positive, --batch in 1..={}", allot_api::MAX_BATCH);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = rt.block_on(bench(&args))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

async fn bench(args: &Args) -> anyhow::Result<Report> {
    if let Some(url) = &args.server {
        let token = args.token.as_deref().context("--server needs --token (or ALLOT_TOKEN)")?;
        let mut c = Client::new(url, Some(token))?;
        let ready = c.get("/readyz").await?;
        let backend = serde_json::from_slice::<serde_json::Value>(&ready.body)
            .ok()
            .and_then(|v| v["backend"].as_str().map(String::from))
            .unwrap_or_else(|| "unknown".into());
        return load(args, url, token, backend).await;
    }
    // A temporary server on loopback.
    let tmp = std::env::temp_dir().join(format!("allot-bench-{}-{}", std::process::id(), nanos()));
    let schema = format!("allot_bench_{}_{}", std::process::id(), nanos());
    let store: Arc<dyn Store> = match &args.database {
        Some(url) => Arc::new(PgStore::connect(url, Some(&schema)).await.context("cannot open the PostgreSQL store")?),
        None => Arc::new(SqliteStore::open_dir(&tmp).await.context("cannot open the SQLite store")?),
    };
    let backend = store.backend().to_string();
    let opts = allot_server::Options {
        store,
        cluster: allot_core::Config::from_toml(BENCH_CLUSTER).map_err(|e| anyhow::anyhow!("bench cluster: {e}"))?,
        listen: "127.0.0.1:0".parse()?,
        scheduler: SchedulerConfig::default(),
        limits: Limits::default(),
        tls: None,
        agents: Default::default(),
    };
    let running = allot_server::start(opts).await?;
    let token = running.admin_token.clone().context("a fresh store has an admin token")?;
    let url = format!("http://{}", running.addr);
    let report = load(args, &url, &token, backend).await;
    running.shutdown().await;
    if let Some(db) = &args.database {
        let _ = PgStore::drop_schema(db, &schema).await;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    report
}

pub(crate) fn nanos() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
}

fn job(tenant: &str, i: usize) -> JobSubmit {
    JobSubmit {
        tenant: tenant.to_string(),
        name: Some(format!("bench-{i}")),
        gpus: Some(1),
        walltime_s: Some(3600),
        command: vec!["sleep".into(), "3600".into()],
        ..JobSubmit::default()
    }
}

async fn load(args: &Args, url: &str, token: &str, backend: String) -> anyhow::Result<Report> {
    // Phase 1: batches, two requests in flight.
    let body_of = |start: usize, n: usize| -> anyhow::Result<Vec<u8>> {
        let jobs = (start..start + n).map(|i| job(&args.tenant, i)).collect();
        Ok(serde_json::to_vec(&JobBatchSubmit { jobs })?)
    };
    let batches: Vec<(usize, usize)> = (0..args.jobs).step_by(args.batch).map(|s| (s, args.batch.min(args.jobs - s))).collect();
    let bodies = batches.iter().map(|&(s, n)| body_of(s, n)).collect::<anyhow::Result<Vec<_>>>()?;
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let t0 = Instant::now();
    let mut tasks = vec![];
    for _ in 0..2 {
        let queue = queue.clone();
        let mut c = Client::new(url, Some(token))?;
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            loop {
                let Some(body) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else { break };
                let r = c.raw("POST", "/v1/jobs/batch", Some((body, "application/json"))).await?;
                done += r.ok::<BatchSubmitResponse>()?.ids.len();
            }
            anyhow::Ok(done)
        }));
    }
    let mut batch_done = 0;
    for t in tasks {
        batch_done += t.await??;
    }
    let batch_s = t0.elapsed().as_secs_f64();
    if batch_done != args.jobs {
        bail!("batch phase acknowledged {batch_done} of {} jobs", args.jobs);
    }

    // Phase 2: one job per request from concurrent clients.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = vec![];
    for _ in 0..args.clients {
        let next = next.clone();
        let mut c = Client::new(url, Some(token))?;
        let total = args.jobs;
        let tenant = args.tenant.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(total / 8 + 1);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let body = serde_json::to_vec(&job(&tenant, args_offset(total, i)))?;
                let t = Instant::now();
                let r = c.raw("POST", "/v1/jobs", Some((body, "application/json"))).await?;
                lat.push(t.elapsed());
                r.ok::<SubmitResponse>()?;
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat: Vec<Duration> = vec![];
    for t in tasks {
        lat.extend(t.await??);
    }
    let single_s = t0.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let round = |v: f64| (v * 100.0).round() / 100.0;
    Ok(Report {
        backend,
        jobs: args.jobs,
        clients: args.clients,
        batch_size: args.batch,
        submit_batch_seconds: round(batch_s),
        submit_batch_per_s: round(args.jobs as f64 / batch_s),
        submit_single_seconds: round(single_s),
        submit_single_per_s: round(lat.len() as f64 / single_s),
        submit_single_p50_ms: round(pct(0.50)),
        submit_single_p99_ms: round(pct(0.99)),
        submit_single_max_ms: round(lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)),
    })
}

/// Job numbers of the single phase follow the batch phase's.
fn args_offset(total: usize, i: usize) -> usize {
    total + i
}
