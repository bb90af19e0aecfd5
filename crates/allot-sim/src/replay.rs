//! Time-based replay: a cluster (allot TOML, or a public machine list) and a trace
//! (any reader's format), run through the engine; the results as a `Summary`, CSV
//! time series and plots (SVG and PNG).
//!
//! A trace's tenants must exist in the cluster's config. When the config defines no
//! tenants, `Quotas` says how they are made: `share` (default) gives each trace
//! tenant a nominal quota on every flavor in proportion to its GPU time in the trace
//! (floored to whole GPUs, so the nominals fit in the cluster); `equal` splits every
//! flavor evenly; `none` adds them without quota (everything borrowed from the
//! cluster). Borrowing and lending stay unlimited. When the config defines tenants,
//! trace tenants it lacks are added without quota.

mod plot;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use allot_core::config::{QuotaConfig, TenantConfig};
use allot_core::{Config, OrderPolicy};

use crate::engine::{Engine, EngineError, EngineOptions, Progress, RunResult};
use crate::error::TraceError;
use crate::trace::{self, Mapping, ReadOptions, TraceFormat};
use crate::workload::Trace;

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plot {}: {message}", path.display())]
    Plot { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReplayError + '_ {
    move |source| ReplayError::Io { path: path.to_path_buf(), source }
}

/// Where the cluster comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterSource {
    /// allot's TOML config (nodes, tenants, classes, policy).
    Toml(PathBuf),
    /// A public machine list (openb node list, Philly machine list, PAI machine spec).
    Csv(PathBuf),
}

/// How tenants are made for a cluster that defines none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quotas {
    /// Nominal in proportion to the tenant's GPU time in the trace.
    #[default]
    Share,
    /// Every flavor split evenly.
    Equal,
    /// No quota.
    None,
}

impl std::str::FromStr for Quotas {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "share" => Ok(Quotas::Share),
            "equal" => Ok(Quotas::Equal),
            "none" => Ok(Quotas::None),
            _ => Err(format!("unknown quota rule `{s}` (known: share, equal, none)")),
        }
    }
}

/// Reads a cluster.
pub fn load_cluster(src: &ClusterSource) -> Result<Config, ReplayError> {
    match src {
        ClusterSource::Toml(path) => {
            let text = std::fs::read_to_string(path).map_err(io_err(path))?;
            Config::from_toml(&text).map_err(|e| ReplayError::Config { path: path.clone(), message: e.to_string() })
        }
        ClusterSource::Csv(path) => Ok(trace::read_cluster_csv(path)?),
    }
}

/// Reads a trace.
pub fn load_trace(path: &Path, format: TraceFormat, mapping: Option<&Mapping>, opts: ReadOptions) -> Result<Trace, ReplayError> {
    Ok(trace::read_trace(path, format, mapping, opts)?)
}

/// Makes sure every tenant of `trace` exists in `config` (see the module notes);
/// returns the paths added.
pub fn add_tenants(config: &mut Config, trace: &Trace, quotas: Quotas) -> Vec<String> {
    if !config.tenants.is_empty() || quotas == Quotas::None {
        return trace::add_missing_tenants(config, trace);
    }
    let gpu_time = trace::tenant_gpu_time(trace);
    // Paths that are parents of others get no quota of their own (their children's
    // nominals add up to theirs).
    let leaves: Vec<(&String, f64)> =
        gpu_time.iter().filter(|(p, _)| !gpu_time.keys().any(|o| o.starts_with(&format!("{p}/")))).map(|(p, t)| (p, *t)).collect();
    let total: f64 = leaves.iter().map(|l| l.1).sum();
    let mut capacity: BTreeMap<&str, f64> = BTreeMap::new();
    for n in &config.nodes {
        *capacity.entry(n.flavor.as_str()).or_insert(0.0) += f64::from(n.gpus) * f64::from(n.count.unwrap_or(1));
    }
    let mut added = Vec::new();
    let mut tenants = Vec::new();
    for (path, t) in &leaves {
        let frac = match quotas {
            Quotas::Share if total > 0.0 => t / total,
            _ => 1.0 / leaves.len() as f64,
        };
        let quota = capacity
            .iter()
            .map(|(f, c)| QuotaConfig { flavor: (*f).to_string(), nominal: (c * frac).floor(), borrowing_limit: None, lending_limit: None })
            .collect();
        tenants.push(TenantConfig { path: (*path).clone(), weight: None, quota });
        added.push((*path).clone());
    }
    config.tenants = tenants;
    added.extend(trace::add_missing_tenants(config, trace));
    added
}

/// Runs a replay: applies the policy and seed overrides, then the engine.
pub fn run(config: &Config, trace: Trace, opts: EngineOptions, progress: &mut dyn FnMut(&Progress)) -> Result<RunResult, ReplayError> {
    let engine = Engine::new(config, trace, opts)?;
    Ok(engine.run_with_progress(progress)?)
}

/// Sets the job order (and the tie-break seed) of a config.
pub fn set_policy(config: &mut Config, order: Option<OrderPolicy>, seed: Option<u64>) {
    if let Some(o) = order {
        config.policy.order = o;
    }
    if let Some(s) = seed {
        config.policy.seed = s;
    }
}

/// Tenants reported in the summary (those that submitted jobs), with their index in
/// the samples.
fn reported_tenants(result: &RunResult) -> Vec<(usize, &str)> {
    result
        .tenants
        .iter()
        .enumerate()
        .filter(|(_, p)| result.summary.per_tenant.contains_key(p.as_str()))
        .map(|(i, p)| (i, p.as_str()))
        .collect()
}

/// Writes into `dir`: `summary.json`; `timeseries.csv` (per sample: seconds since the
/// first arrival, busy GPUs, utilisation %, pending and running jobs);
/// `tenants.csv` (GPUs busy per tenant per sample); `waits.csv` (job id, tenant, GPUs,
/// submission and wait of every completed job); and the plots `utilization`, `queue` and `wait_cdf`, each
/// as `.svg` and `.png`. Returns the files written and whether the plots have text
/// (PNG and SVG text needs a TrueType font; see `plot::font_note`).
pub fn write_outputs(dir: &Path, result: &RunResult) -> Result<(Vec<PathBuf>, bool), ReplayError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut written = Vec::new();
    let summary = dir.join("summary.json");
    let json = serde_json::to_string_pretty(&result.summary).map_err(|e| ReplayError::Io { path: summary.clone(), source: e.into() })?;
    std::fs::write(&summary, json + "\n").map_err(io_err(&summary))?;
    written.push(summary);

    let gpus = result.summary.gpus.max(f64::MIN_POSITIVE);
    let ts = dir.join("timeseries.csv");
    write_csv(&ts, |w| {
        writeln!(w, "t_s,busy_gpus,utilization_pct,pending_jobs,running_jobs")?;
        for s in &result.samples {
            writeln!(w, "{},{},{:.4},{},{}", s.t_s, s.busy_gpus, 100.0 * s.busy_gpus / gpus, s.pending_jobs, s.running_jobs)?;
        }
        Ok(())
    })?;
    written.push(ts);

    let tenants = reported_tenants(result);
    let tc = dir.join("tenants.csv");
    write_csv(&tc, |w| {
        write!(w, "t_s")?;
        for (_, p) in &tenants {
            write!(w, ",{}", csv_field(p))?;
        }
        writeln!(w)?;
        for s in &result.samples {
            write!(w, "{}", s.t_s)?;
            for (i, _) in &tenants {
                write!(w, ",{}", s.tenant_gpus.get(*i).copied().unwrap_or(0.0))?;
            }
            writeln!(w)?;
        }
        Ok(())
    })?;
    written.push(tc);

    let wc = dir.join("waits.csv");
    write_csv(&wc, |w| {
        writeln!(w, "job,tenant,gpus,submit_s,wait_s")?;
        for x in &result.waits {
            let p = result.tenants.get(x.tenant as usize).map_or("", String::as_str);
            writeln!(w, "{},{},{},{},{}", x.job, csv_field(p), x.milli as f64 / 1000.0, x.submit_s, x.wait_s)?;
        }
        Ok(())
    })?;
    written.push(wc);

    let text = plot::ensure_font();
    written.extend(plot::all(dir, result, &tenants, text)?);
    Ok((written, text))
}

fn write_csv(path: &Path, body: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>) -> Result<(), ReplayError> {
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let mut w = std::io::BufWriter::new(file);
    body(&mut w).and_then(|()| w.flush()).map_err(io_err(path))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

pub use plot::font_note;

#[cfg(test)]
mod tests {
    use super::*;
    use allot_core::{GpuRequest, JobSpec};

    fn tj(id: u64, tenant: &str, gpus: u32, dur_s: i64) -> crate::TraceJob {
        crate::TraceJob { submit: 0, duration: dur_s * 1000, spec: JobSpec::new(id, tenant, GpuRequest::Whole(gpus)) }
    }

    fn cluster() -> Config {
        Config::from_toml(
            "version = 1\nflavors = [{ name = \"A\" }, { name = \"B\" }]\n\
             [[nodes]]\nname = \"a{i}\"\ncount = 4\nat = \"s/b/l\"\nflavor = \"A\"\ngpus = 8\n\
             [[nodes]]\nname = \"b{i}\"\ncount = 1\nat = \"s/b/m\"\nflavor = \"B\"\ngpus = 4\n",
        )
        .unwrap()
    }

    #[test]
    fn share_quotas_follow_gpu_time() {
        let trace = Trace { jobs: vec![tj(1, "x/a", 1, 300), tj(2, "x/b", 1, 100), tj(3, "x/a", 1, 0)], skipped_rows: 0 };
        let mut c = cluster();
        let added = add_tenants(&mut c, &trace, Quotas::Share);
        assert_eq!(added, vec!["x/a", "x/b"]);
        let a = c.tenants.iter().find(|t| t.path == "x/a").unwrap();
        let nominal: Vec<(String, f64)> = a.quota.iter().map(|q| (q.flavor.clone(), q.nominal)).collect();
        assert_eq!(nominal, vec![("A".to_string(), 24.0), ("B".to_string(), 3.0)]);
        allot_core::Core::new(&c).expect("valid config");
    }

    #[test]
    fn equal_and_no_quotas() {
        let trace = Trace { jobs: vec![tj(1, "a", 1, 300), tj(2, "b", 1, 100), tj(3, "c", 1, 1)], skipped_rows: 0 };
        let mut c = cluster();
        add_tenants(&mut c, &trace, Quotas::Equal);
        assert!(c.tenants.iter().all(|t| t.quota[0].nominal == 10.0 && t.quota[1].nominal == 1.0));
        let mut c = cluster();
        add_tenants(&mut c, &trace, Quotas::None);
        assert!(c.tenants.iter().all(|t| t.quota.is_empty()));
        assert_eq!(c.tenants.len(), 3);
    }

    #[test]
    fn configured_tenants_are_kept() {
        let mut c = cluster();
        c.tenants.push(TenantConfig { path: "org/a".into(), weight: None, quota: vec![] });
        let trace = Trace { jobs: vec![tj(1, "org/a", 1, 300), tj(2, "org/b", 1, 100)], skipped_rows: 0 };
        let added = add_tenants(&mut c, &trace, Quotas::Share);
        assert_eq!(added, vec!["org/b"]);
    }

    #[test]
    fn outputs_are_written() {
        let mut c = cluster();
        let trace =
            Trace { jobs: (0..20).map(|i| tj(i, if i % 2 == 0 { "a" } else { "b,c" }, 4, 100 + i as i64 * 10)).collect(), skipped_rows: 0 };
        add_tenants(&mut c, &trace, Quotas::Share);
        let opts = EngineOptions { sample_interval_s: 10, ..Default::default() };
        let r = run(&c, trace, opts, &mut |_| {}).unwrap();
        assert_eq!(r.summary.completed, 20);
        let dir = std::env::temp_dir().join(format!("allot-replay-out-{}", std::process::id()));
        let (files, _) = write_outputs(&dir, &r).unwrap();
        for name in [
            "summary.json",
            "timeseries.csv",
            "tenants.csv",
            "waits.csv",
            "utilization.svg",
            "utilization.png",
            "queue.svg",
            "queue.png",
            "wait_cdf.svg",
            "wait_cdf.png",
        ] {
            let p = dir.join(name);
            assert!(files.contains(&p), "{name} not listed");
            assert!(std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false), "{name} empty or missing");
        }
        let tenants = std::fs::read_to_string(dir.join("tenants.csv")).unwrap();
        assert!(tenants.starts_with("t_s,a,\"b,c\"\n"), "{tenants}");
        let waits = std::fs::read_to_string(dir.join("waits.csv")).unwrap();
        assert_eq!(waits.lines().count(), 21);
        assert!(waits.starts_with("job,tenant,gpus,submit_s,wait_s\n"), "{waits}");
        for line in waits.lines().skip(1) {
            let wait: f64 = line.rsplit(',').next().and_then(|w| w.parse().ok()).unwrap_or(-1.0);
            assert!(wait >= 0.0, "a wait per line: {line}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
