//! Trace readers. Each turns one public trace format (or allot's own) into a `Trace`
//! or a cluster `Config`; every bad row is an error naming file, line, column and
//! why, or is skipped and counted when `ReadOptions::skip_bad_rows` is set.

pub mod allot;
pub mod gavel;
pub mod generic;
pub mod openb;
pub mod pai;
pub mod philly;
pub mod synth;
mod table;

use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;
use std::path::Path;
use std::str::FromStr;

use allot_core::Config;
use allot_core::config::{PolicyConfig, TenantConfig};

pub use generic::Mapping;

use crate::error::TraceError;
use crate::workload::Trace;

/// How readers treat bad rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Skip malformed rows (counted in `Trace::skipped_rows`) instead of failing.
    pub skip_bad_rows: bool,
}

/// The trace formats `read_trace` knows, named as on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceFormat {
    /// Alibaba GPU v2023 pod list (`openb_pod_list_*.csv`, full schema).
    Openb,
    /// Pollux's Philly derivative (`philly.csv`).
    PhillyPollux,
    /// RFold's Philly derivative (`philly_trace.csv`).
    PhillyRfold,
    /// Gavel's MSR (Philly) trace projection (`msr_seed0.tsv`).
    Gavel,
    /// Any CSV/TSV/JSONL file, read through a column `Mapping`.
    Generic,
    /// allot's own JSONL workload format.
    Allot,
}

impl TraceFormat {
    pub const ALL: [TraceFormat; 6] = [
        TraceFormat::Openb,
        TraceFormat::PhillyPollux,
        TraceFormat::PhillyRfold,
        TraceFormat::Gavel,
        TraceFormat::Generic,
        TraceFormat::Allot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TraceFormat::Openb => "openb",
            TraceFormat::PhillyPollux => "philly-pollux",
            TraceFormat::PhillyRfold => "philly-rfold",
            TraceFormat::Gavel => "gavel",
            TraceFormat::Generic => "generic",
            TraceFormat::Allot => "allot",
        }
    }
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TraceFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown trace format `{s}` (known: {})", TraceFormat::ALL.map(|f| f.name()).join(", ")))
    }
}

/// Reads a trace in `format`. `mapping` is required by (and only allowed with)
/// `TraceFormat::Generic`.
pub fn read_trace(path: &Path, format: TraceFormat, mapping: Option<&Mapping>, opts: ReadOptions) -> Result<Trace, TraceError> {
    if mapping.is_some() && format != TraceFormat::Generic {
        return Err(TraceError::Mapping(format!("a column mapping applies to the generic format only, not to `{format}`")));
    }
    match format {
        TraceFormat::Openb => {
            let (pods, skipped) = openb::read_pods(path, opts)?;
            let mut trace = openb::to_trace(&pods)?;
            trace.skipped_rows = skipped;
            Ok(trace)
        }
        TraceFormat::PhillyPollux => philly::read_pollux(path, opts),
        TraceFormat::PhillyRfold => philly::read_rfold(path, opts),
        TraceFormat::Gavel => gavel::read(path, opts),
        TraceFormat::Generic => match mapping {
            Some(m) => generic::read(path, m, opts),
            None => Err(TraceError::Mapping("the generic format needs a column mapping (--map)".into())),
        },
        TraceFormat::Allot => allot::read(path, opts),
    }
}

/// Reads a cluster from a machine list, recognised by its first line: the openb node
/// list (`sn,cpu_milli,memory_mib,gpu,model`), the Philly machine list
/// (`,machineId,number of GPUs`) or the PAI machine spec (no header, 5 fields
/// `machine,gpu_type,cap_cpu,cap_mem,cap_gpu`, or with that header). The policy is
/// the default one; each reader's own `cluster` function takes another.
pub fn read_cluster_csv(path: &Path) -> Result<Config, TraceError> {
    let file = std::fs::File::open(path).map_err(|source| TraceError::Io { path: path.to_path_buf(), source })?;
    let mut first = String::new();
    std::io::BufReader::new(file).read_line(&mut first).map_err(|source| TraceError::Io { path: path.to_path_buf(), source })?;
    let cells: Vec<&str> = first.trim().split(',').map(str::trim).collect();
    let opts = ReadOptions::default();
    let policy = PolicyConfig::default();
    if cells.len() >= 4 && cells.contains(&"sn") && cells.contains(&"gpu") && cells.contains(&"cpu_milli") {
        return Ok(openb::cluster(&openb::read_nodes(path, opts)?, policy));
    }
    if cells.contains(&"machineId") && cells.contains(&"number of GPUs") {
        return Ok(philly::cluster(&philly::read_machines(path, opts)?, policy));
    }
    let numeric = |i: usize| cells.get(i).is_some_and(|c| c.parse::<f64>().is_ok());
    if cells == pai::COLUMNS || (cells.len() == 5 && numeric(2) && numeric(3) && numeric(4)) {
        return Ok(pai::cluster(&pai::read_machines(path, opts)?, policy));
    }
    Err(TraceError::Mapping(format!(
        "{}: not a known machine list (first line `{}`); expected the openb node list (sn,cpu_milli,memory_mib,gpu,model), \
         the Philly machine list (,machineId,number of GPUs) or the PAI machine spec (machine,gpu_type,cap_cpu,cap_mem,cap_gpu)",
        path.display(),
        first.trim()
    )))
}

/// Splits a request of `gpus` GPUs into a gang of (replicas, GPUs per replica) for
/// nodes of at most `per_node` GPUs, since traces give only a total: one replica
/// when it fits on a node; else whole nodes' worth (`per_node`, then `per_node/2`,
/// ... GPUs each) when that divides the total; else one GPU per replica.
pub fn gang_shape(gpus: u32, per_node: u32) -> (u32, u32) {
    let per_node = per_node.max(1);
    if gpus <= per_node {
        return (1, gpus);
    }
    let mut g = per_node;
    while g > 1 {
        if gpus.is_multiple_of(g) {
            return (gpus / g, g);
        }
        g /= 2;
    }
    (gpus, 1)
}

/// Per tenant path of a trace, its GPU time in GPU-milliseconds (fractions count as
/// fractions), in path order.
pub fn tenant_gpu_time(trace: &Trace) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for j in &trace.jobs {
        let per_replica = match j.spec.gpu {
            allot_core::GpuRequest::Whole(g) => f64::from(g),
            allot_core::GpuRequest::Milli(m) => f64::from(m) / 1000.0,
        };
        *out.entry(j.spec.tenant.clone()).or_insert(0.0) += per_replica * f64::from(j.spec.replicas) * j.duration as f64;
    }
    out
}

/// Adds to `config` every tenant of `trace` it lacks, with no quota (it borrows what
/// others lend), so that a replay can submit every job. Returns the paths added.
pub fn add_missing_tenants(config: &mut Config, trace: &Trace) -> Vec<String> {
    let known: std::collections::BTreeSet<String> = config.tenants.iter().map(|t| t.path.trim_matches('/').to_string()).collect();
    let mut added = Vec::new();
    for path in tenant_gpu_time(trace).into_keys() {
        // A parent of a configured tenant exists implicitly; a tenant that is a parent
        // of configured ones must not be added as a leaf with its own quota either.
        let is_parent = known.iter().any(|k| k.starts_with(&format!("{path}/")));
        if !known.contains(&path) && !is_parent {
            config.tenants.push(TenantConfig { path: path.clone(), weight: None, quota: vec![] });
            added.push(path);
        }
    }
    added
}

/// Where the public traces (`shared/traces` beside the repository, see its README)
/// are: `ALLOT_TRACES` if set, else a `shared/traces` folder in an ancestor of this
/// crate's source or of the current directory, else `/work/shared/traces`.
pub fn public_traces_dir() -> Option<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    let ok = |p: &Path| p.join("README.md").is_file();
    if let Some(p) = std::env::var_os("ALLOT_TRACES").map(PathBuf::from) {
        return ok(&p).then_some(p);
    }
    let from = |start: &Path| start.ancestors().map(|a| a.join("shared/traces")).find(|p| ok(p));
    from(Path::new(env!("CARGO_MANIFEST_DIR")))
        .or_else(|| std::env::current_dir().ok().and_then(|d| from(&d)))
        .or_else(|| Some(PathBuf::from("/work/shared/traces")).filter(|p| ok(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_through_their_names() {
        for f in TraceFormat::ALL {
            assert_eq!(f.name().parse::<TraceFormat>(), Ok(f));
            assert_eq!(f.to_string(), f.name());
        }
        let err = "philly".parse::<TraceFormat>().unwrap_err();
        assert!(err.contains("unknown trace format `philly`") && err.contains("philly-pollux"), "{err}");
    }

    #[test]
    fn gangs_are_shaped_for_the_node_size() {
        assert_eq!(gang_shape(1, 8), (1, 1));
        assert_eq!(gang_shape(7, 8), (1, 7));
        assert_eq!(gang_shape(8, 8), (1, 8));
        assert_eq!(gang_shape(16, 8), (2, 8));
        assert_eq!(gang_shape(128, 8), (16, 8));
        assert_eq!(gang_shape(12, 8), (3, 4));
        assert_eq!(gang_shape(20, 8), (5, 4));
        assert_eq!(gang_shape(24, 8), (3, 8));
        assert_eq!(gang_shape(9, 8), (9, 1));
        assert_eq!(gang_shape(0, 8), (1, 0));
        assert_eq!(gang_shape(5, 0), (5, 1));
    }
}
