//! Alibaba cluster-trace-gpu-v2023 "openb" (Weng et al., USENIX ATC'23).
//!
//! - node list: `sn,cpu_milli,memory_mib,gpu,model`;
//! - pod lists, full schema:
//!   `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time`,
//!   or the 5-column schema of the `multigpu*` files (`name,cpu_milli,memory_mib,num_gpu,gpu_milli`).
//!
//! CPUs are kept in milli-cores: the cluster built here declares node CPUs in
//! milli-cores too, so the core compares like with like.

use std::path::Path;

use allot_core::config::{FlavorConfig, NodeConfig, PolicyConfig, QuotaConfig, TenantConfig, TopologyConfig};
use allot_core::{Config, GpuRequest, JobSpec, MS_PER_S};

use super::ReadOptions;
use crate::error::TraceError;
use crate::workload::{Trace, TraceJob};

/// The tenant every openb pod belongs to (the trace has no tenant field).
pub const TENANT: &str = "openb";

/// One GPU server of the node list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenbNode {
    pub name: String,
    pub cpu_milli: u32,
    pub memory_mib: u64,
    pub gpus: u32,
    /// GPU model; empty for CPU-only nodes.
    pub model: String,
}

/// One pod of a pod list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenbPod {
    pub name: String,
    pub cpu_milli: u32,
    pub memory_mib: u64,
    /// 0, 1, 2, 4 or 8.
    pub num_gpu: u32,
    /// Share of one GPU when `num_gpu == 1` (1000 for a whole GPU), else 1000 or 0.
    pub gpu_milli: u32,
    /// Allowed GPU models; empty means any.
    pub gpu_spec: Vec<String>,
    /// Creation and deletion times in seconds (full schema only).
    pub creation_s: Option<i64>,
    pub deletion_s: Option<i64>,
}

impl OpenbPod {
    /// GPU milli the pod requests (`num_gpu * 1000`, or the fraction).
    pub fn gpu_request_milli(&self) -> u64 {
        if self.num_gpu == 1 { u64::from(self.gpu_milli) } else { u64::from(self.num_gpu) * 1000 }
    }
}

/// A CSV file read as string records, with the header's column positions.
struct Table {
    path: std::path::PathBuf,
    header: csv::StringRecord,
    rows: csv::StringRecordsIntoIter<std::fs::File>,
}

impl Table {
    fn open(path: &Path) -> Result<Table, TraceError> {
        let file = std::fs::File::open(path).map_err(|source| TraceError::Io { path: path.to_path_buf(), source })?;
        let mut rd = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(file);
        let header = rd.headers().map_err(|e| bad_csv(path, 1, e))?.clone();
        Ok(Table { path: path.to_path_buf(), header, rows: rd.into_records() })
    }

    fn column(&self, name: &str) -> Result<usize, TraceError> {
        self.header.iter().position(|h| h.trim() == name).ok_or_else(|| TraceError::MissingColumn {
            path: self.path.clone(),
            column: name.into(),
            header: self.header.iter().collect::<Vec<_>>().join(","),
        })
    }

    fn optional_column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h.trim() == name)
    }
}

fn bad_csv(path: &Path, line: u64, e: csv::Error) -> TraceError {
    let line = e.position().map(|p| p.line()).unwrap_or(line);
    TraceError::BadRow { path: path.to_path_buf(), line, column: "-".into(), reason: e.to_string() }
}

/// Reads field `col` (named `name`) of a row as a number.
fn field<T: std::str::FromStr>(t: &Table, row: &csv::StringRecord, line: u64, col: usize, name: &str) -> Result<T, TraceError>
where
    T::Err: std::fmt::Display,
{
    let raw = row.get(col).unwrap_or("").trim();
    let bad = |reason: String| TraceError::BadRow { path: t.path.clone(), line, column: name.into(), reason };
    if raw.is_empty() {
        return Err(bad("empty".into()));
    }
    raw.parse::<T>().map_err(|e| bad(format!("`{raw}` is not a valid number: {e}")))
}

/// Reads every row with `parse`, skipping bad ones when asked; returns the rows
/// and how many were skipped.
fn read_rows<T>(
    t: &mut Table,
    opts: ReadOptions,
    mut parse: impl FnMut(&Table, &csv::StringRecord, u64) -> Result<T, TraceError>,
) -> Result<(Vec<T>, u64), TraceError> {
    let mut out = Vec::new();
    let mut skipped = 0;
    let mut line = 1;
    while let Some(row) = t.rows.next() {
        line += 1;
        let parsed = match row {
            Ok(row) => {
                if let Some(p) = row.position() {
                    line = p.line();
                }
                parse(t, &row, line)
            }
            Err(e) => Err(bad_csv(&t.path, line, e)),
        };
        match parsed {
            Ok(v) => out.push(v),
            Err(_) if opts.skip_bad_rows => skipped += 1,
            Err(e) => return Err(e),
        }
    }
    Ok((out, skipped))
}

/// Reads a node list (`openb_node_list_*.csv`).
pub fn read_nodes(path: &Path, opts: ReadOptions) -> Result<Vec<OpenbNode>, TraceError> {
    let mut t = Table::open(path)?;
    let (sn, cpu, mem, gpu, model) =
        (t.column("sn")?, t.column("cpu_milli")?, t.column("memory_mib")?, t.column("gpu")?, t.column("model")?);
    let (nodes, _) = read_rows(&mut t, opts, |t, row, line| {
        let name = row.get(sn).unwrap_or("").trim().to_string();
        if name.is_empty() {
            return Err(TraceError::BadRow { path: t.path.clone(), line, column: "sn".into(), reason: "empty".into() });
        }
        let gpus: u32 = field(t, row, line, gpu, "gpu")?;
        let model = row.get(model).unwrap_or("").trim().to_string();
        if gpus > 0 && model.is_empty() {
            return Err(TraceError::BadRow {
                path: t.path.clone(),
                line,
                column: "model".into(),
                reason: "a node with GPUs needs a model".into(),
            });
        }
        if gpus > 64 {
            return Err(TraceError::BadRow {
                path: t.path.clone(),
                line,
                column: "gpu".into(),
                reason: format!("{gpus} GPUs on one node (most is 64)"),
            });
        }
        Ok(OpenbNode {
            name,
            cpu_milli: field(t, row, line, cpu, "cpu_milli")?,
            memory_mib: field(t, row, line, mem, "memory_mib")?,
            gpus,
            model,
        })
    })?;
    Ok(nodes)
}

/// Reads a pod list in either schema (`openb_pod_list_*.csv`).
pub fn read_pods(path: &Path, opts: ReadOptions) -> Result<(Vec<OpenbPod>, u64), TraceError> {
    let mut t = Table::open(path)?;
    let (name, cpu, mem, ngpu, gmilli) =
        (t.column("name")?, t.column("cpu_milli")?, t.column("memory_mib")?, t.column("num_gpu")?, t.column("gpu_milli")?);
    let spec = t.optional_column("gpu_spec");
    let created = t.optional_column("creation_time");
    let deleted = t.optional_column("deletion_time");
    read_rows(&mut t, opts, |t, row, line| {
        let bad = |column: &str, reason: String| TraceError::BadRow { path: t.path.clone(), line, column: column.into(), reason };
        let num_gpu: u32 = field(t, row, line, ngpu, "num_gpu")?;
        let gpu_milli: u32 = field(t, row, line, gmilli, "gpu_milli")?;
        if num_gpu > 64 {
            return Err(bad("num_gpu", format!("{num_gpu} GPUs for one pod (most is 64)")));
        }
        if gpu_milli > 1000 || (num_gpu > 0 && gpu_milli == 0) {
            return Err(bad("gpu_milli", format!("{gpu_milli} is not in 1..=1000 for a pod with GPUs")));
        }
        if num_gpu > 1 && gpu_milli != 1000 {
            return Err(bad("gpu_milli", format!("{gpu_milli}: a pod of {num_gpu} GPUs takes them whole (1000)")));
        }
        let time = |col: Option<usize>, what: &str| -> Result<Option<i64>, TraceError> {
            match col.map(|c| row.get(c).unwrap_or("").trim()) {
                None | Some("") => Ok(None),
                Some(raw) => raw.parse::<i64>().map(Some).map_err(|e| bad(what, format!("`{raw}` is not a whole number of seconds: {e}"))),
            }
        };
        Ok(OpenbPod {
            name: row.get(name).unwrap_or("").trim().to_string(),
            cpu_milli: field(t, row, line, cpu, "cpu_milli")?,
            memory_mib: field(t, row, line, mem, "memory_mib")?,
            num_gpu,
            gpu_milli: if num_gpu == 0 { 0 } else { gpu_milli },
            gpu_spec: spec
                .and_then(|c| row.get(c))
                .map(|s| s.split('|').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect())
                .unwrap_or_default(),
            creation_s: time(created, "creation_time")?,
            deletion_s: time(deleted, "deletion_time")?,
        })
    })
}

/// The cluster of a node list: one flavor per GPU model, one site (`openb`) with one
/// leaf per model, node CPUs in milli-cores, one tenant (`openb`) owning everything.
/// CPU-only nodes are left out (the core schedules GPU servers).
pub fn cluster(nodes: &[OpenbNode], policy: PolicyConfig) -> Config {
    let mut models: Vec<&str> = nodes.iter().filter(|n| n.gpus > 0).map(|n| n.model.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    let flavors = models.iter().map(|m| FlavorConfig { name: m.to_string(), memory_gib: 0, interconnect: String::new() }).collect();
    let nodes_cfg: Vec<NodeConfig> = nodes
        .iter()
        .filter(|n| n.gpus > 0)
        .map(|n| NodeConfig {
            name: n.name.clone(),
            count: None,
            at: format!("openb/{}", n.model),
            flavor: n.model.clone(),
            gpus: n.gpus,
            cpus: n.cpu_milli,
            memory_gib: n.memory_mib.div_ceil(1024),
            labels: Default::default(),
        })
        .collect();
    let quota = models
        .iter()
        .map(|m| QuotaConfig {
            flavor: m.to_string(),
            nominal: nodes.iter().filter(|n| n.model == *m).map(|n| f64::from(n.gpus)).sum(),
            borrowing_limit: None,
            lending_limit: None,
        })
        .collect();
    Config {
        version: 1,
        flavors,
        topology: TopologyConfig { levels: vec!["site".into(), "model".into()] },
        nodes: nodes_cfg,
        tenants: vec![TenantConfig { path: TENANT.into(), weight: None, quota }],
        fair_share: Default::default(),
        priority_classes: vec![],
        budgets: vec![],
        policy,
    }
}

/// A pod as the core's job spec (id given by the caller: pods are resampled).
pub fn job_spec(id: u64, pod: &OpenbPod) -> JobSpec {
    let gpu = match (pod.num_gpu, pod.gpu_milli) {
        (0, _) => GpuRequest::Whole(0),
        (1, m) if m < 1000 => GpuRequest::Milli(m as u16),
        (g, _) => GpuRequest::Whole(g),
    };
    let mut spec = JobSpec::new(id, TENANT, gpu);
    spec.cpus_per_replica = pod.cpu_milli;
    spec.memory_mib_per_replica = pod.memory_mib;
    spec.flavors = pod.gpu_spec.clone();
    spec
}

/// The pods as a time-based trace: arrival at `creation_time`, running until
/// `deletion_time`. Pods without both times (the 5-column schema) cannot be replayed.
pub fn to_trace(pods: &[OpenbPod]) -> Result<Trace, TraceError> {
    let mut trace = Trace::default();
    for (i, p) in pods.iter().enumerate() {
        let (Some(c), Some(d)) = (p.creation_s, p.deletion_s) else {
            return Err(TraceError::Mapping(format!(
                "pod `{}` has no creation_time/deletion_time: the 5-column openb schema has no times to replay",
                p.name
            )));
        };
        trace.jobs.push(TraceJob { submit: c * MS_PER_S, duration: (d - c).max(1) * MS_PER_S, spec: job_spec(i as u64, p) });
    }
    trace.sort();
    Ok(trace)
}
