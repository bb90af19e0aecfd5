//! Microsoft Philly (Jeon et al., USENIX ATC'19), through its public derivatives:
//!
//! - Pollux's `philly.csv` (`timestamp,duration,num_gpus,gpu_time,cluster`): one row
//!   per job, `timestamp` a `YYYY-MM-DD HH:MM:SS` arrival (rows unsorted), `duration`
//!   in seconds, `cluster` the virtual cluster (VC), read as tenant `philly/<vc>`;
//! - RFold's `philly_trace.csv` (`#job id,arrival time (sec),topology,shape,size,duration (sec)`):
//!   `shape` is the per-node GPU split Philly gave the job (`2+2`); one tenant, `philly`;
//! - the revised machine list (`,machineId,number of GPUs`) as a cluster;
//! - Helios' `philly_vc.csv` (`vc,node num`) for VC quotas.
//!
//! Jobs ask for GPUs only (no CPUs or memory: the traces have none, and the
//! cluster's nodes declare none).

use std::collections::BTreeMap;
use std::path::Path;

use allot_core::config::{FlavorConfig, NodeConfig, PolicyConfig, QuotaConfig, TenantConfig, TopologyConfig};
use allot_core::{Config, GpuRequest, JobSpec, MS_PER_S};

use super::table::{Header, Table, parse_datetime_ms, secs_to_ms};
use super::{ReadOptions, gang_shape};
use crate::error::TraceError;
use crate::workload::{Trace, TraceJob};

/// Parent of the VC tenants, and the one tenant of RFold's trace (it has no VC).
pub const TENANT: &str = "philly";
/// The one GPU flavor of the Philly cluster (the machine list does not tell models apart).
pub const FLAVOR: &str = "philly-gpu";
/// Most GPUs on a Philly machine: larger jobs become gangs of nodes' worth.
pub const GPUS_PER_NODE: u32 = 8;
/// Nodes per leaf (rack) of the topology built for the machine list; Philly's real
/// racks are not published.
pub const NODES_PER_LEAF: usize = 16;

/// The tenant path of a Philly virtual cluster.
pub fn vc_tenant(vc: &str) -> String {
    format!("{TENANT}/{vc}")
}

/// A job of `gpus` GPUs as the core's spec: one replica up to a node's worth, else a
/// gang of nodes' worth (`gang_shape`).
pub fn job_spec(id: u64, tenant: &str, gpus: u32) -> JobSpec {
    let (replicas, per) = gang_shape(gpus, GPUS_PER_NODE);
    let mut spec = JobSpec::new(id, tenant, GpuRequest::Whole(per));
    spec.replicas = replicas;
    spec
}

/// A duration in seconds as trace milliseconds: zero (RFold has ten) becomes one
/// second, as in the openb reader, so that every job holds its GPUs for a moment.
fn duration_ms(s: f64) -> i64 {
    secs_to_ms(s).max(MS_PER_S)
}

fn gpus(t: &Table, row: &csv::StringRecord, line: u64, col: usize) -> Result<u32, TraceError> {
    let g: u32 = t.parse(row, line, col)?;
    if g == 0 || g > 100_000 {
        return Err(t.bad(line, &t.header[col], format!("{g} GPUs is not in 1..=100000")));
    }
    Ok(g)
}

/// Reads Pollux's `philly.csv`. Arrivals are milliseconds from the earliest row.
pub fn read_pollux(path: &Path, opts: ReadOptions) -> Result<Trace, TraceError> {
    let mut t = Table::open(path, b',', Header::FirstLine)?;
    let (ts, dur, ng, vc) = (t.column("timestamp")?, t.column("duration")?, t.column("num_gpus")?, t.column("cluster")?);
    let (rows, skipped) = t.read_rows(opts, |t, row, line| {
        let raw = t.text(row, line, ts)?;
        let at = parse_datetime_ms(raw).map_err(|e| t.bad(line, "timestamp", e))?;
        let duration = duration_ms(t.non_negative(row, line, dur)?);
        let g = gpus(t, row, line, ng)?;
        let vc = t.text(row, line, vc)?;
        if vc.is_empty() || vc.contains('/') {
            return Err(t.bad(line, "cluster", format!("`{vc}` is not a virtual cluster name")));
        }
        Ok((at, duration, g, vc.to_string()))
    })?;
    let origin = rows.iter().map(|r| r.0).min().unwrap_or(0);
    let mut trace = Trace { jobs: Vec::with_capacity(rows.len()), skipped_rows: skipped };
    for (i, (at, duration, g, vc)) in rows.into_iter().enumerate() {
        trace.jobs.push(TraceJob { submit: at - origin, duration, spec: job_spec(i as u64, &vc_tenant(&vc), g) });
    }
    trace.sort();
    Ok(trace)
}

/// How an RFold `shape` becomes a gang: the parts are the GPUs Philly gave the job on
/// each node. When all parts are equal (every row of the published file) the gang
/// keeps that split, `n` replicas of `part` GPUs, so a replay spreads the job as
/// Philly did; otherwise (not in the file, but possible in others) it becomes `size`
/// one-GPU replicas, which any split can hold.
pub fn rfold_gang(shape: &[u32], size: u32) -> (u32, u32) {
    match shape.first() {
        Some(&p) if shape.iter().all(|&x| x == p) => (shape.len() as u32, p),
        _ => (size, 1),
    }
}

/// Reads RFold's `philly_trace.csv`; every job belongs to tenant `philly`.
pub fn read_rfold(path: &Path, opts: ReadOptions) -> Result<Trace, TraceError> {
    let mut t = Table::open(path, b',', Header::FirstLine)?;
    let (id, arr, shape, size, dur) =
        (t.column("job id")?, t.column("arrival time (sec)")?, t.column("shape")?, t.column("size")?, t.column("duration (sec)")?);
    let (jobs, skipped) = t.read_rows(opts, |t, row, line| {
        let job_id: u64 = t.parse(row, line, id)?;
        let submit = secs_to_ms(t.non_negative(row, line, arr)?);
        let size = gpus(t, row, line, size)?;
        let raw = t.text(row, line, shape)?;
        let parts = raw
            .split('+')
            .map(|p| p.trim().parse::<u32>().ok().filter(|&g| g > 0 && g <= allot_core::cluster::MAX_GPUS_PER_NODE))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| t.bad(line, "shape", format!("`{raw}` is not GPUs per node joined by `+` (like 2+2)")))?;
        let sum: u64 = parts.iter().map(|&p| u64::from(p)).sum();
        if sum != u64::from(size) {
            return Err(t.bad(line, "size", format!("{size} is not the sum of shape `{raw}` ({sum})")));
        }
        let (replicas, per) = rfold_gang(&parts, size);
        let mut spec = JobSpec::new(job_id, TENANT, GpuRequest::Whole(per));
        spec.replicas = replicas;
        Ok(TraceJob { submit, duration: duration_ms(t.non_negative(row, line, dur)?), spec })
    })?;
    let mut trace = Trace { jobs, skipped_rows: skipped };
    trace.sort();
    Ok(trace)
}

/// One machine of the revised Philly machine list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhillyMachine {
    pub name: String,
    /// 0 for the machines that report no GPU.
    pub gpus: u32,
}

/// Reads `revised_machine_list.csv` (every row, 0-GPU machines included).
pub fn read_machines(path: &Path, opts: ReadOptions) -> Result<Vec<PhillyMachine>, TraceError> {
    let mut t = Table::open(path, b',', Header::FirstLine)?;
    let (id, ng) = (t.column("machineId")?, t.column("number of GPUs")?);
    let (machines, _) = t.read_rows(opts, |t, row, line| {
        let name = t.text(row, line, id)?;
        if name.is_empty() {
            return Err(t.bad(line, "machineId", "empty"));
        }
        let gpus: u32 = t.parse(row, line, ng)?;
        if gpus > allot_core::cluster::MAX_GPUS_PER_NODE {
            return Err(t.bad(line, "number of GPUs", format!("{gpus} GPUs on one machine (most is 64)")));
        }
        Ok(PhillyMachine { name: name.to_string(), gpus })
    })?;
    Ok(machines)
}

/// The cluster of a machine list: one flavor (`philly-gpu`), topology `site > leaf`
/// with `NODES_PER_LEAF` machines per leaf in file order, nodes without CPUs or
/// memory (the jobs ask for none), machines without GPUs left out, and no tenants
/// (add them with `vc_tenants` or `super::add_missing_tenants`).
pub fn cluster(machines: &[PhillyMachine], policy: PolicyConfig) -> Config {
    let nodes = machines
        .iter()
        .filter(|m| m.gpus > 0)
        .enumerate()
        .map(|(i, m)| NodeConfig {
            name: m.name.clone(),
            count: None,
            at: format!("{TENANT}/leaf-{:03}", i / NODES_PER_LEAF),
            flavor: FLAVOR.into(),
            gpus: m.gpus,
            cpus: 0,
            memory_gib: 0,
            labels: Default::default(),
        })
        .collect();
    Config {
        version: 1,
        flavors: vec![FlavorConfig { name: FLAVOR.into(), memory_gib: 0, interconnect: String::new() }],
        topology: TopologyConfig { levels: vec!["site".into(), "leaf".into()] },
        nodes,
        tenants: vec![],
        fair_share: Default::default(),
        priority_classes: vec![],
        budgets: vec![],
        policy,
    }
}

/// A VC of Helios' `philly_vc.csv` with its node count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhillyVc {
    pub vc: String,
    pub nodes: u32,
}

/// Reads `philly_vc.csv` (`vc,node num`).
pub fn read_vcs(path: &Path) -> Result<Vec<PhillyVc>, TraceError> {
    let mut t = Table::open(path, b',', Header::FirstLine)?;
    let (vc, n) = (t.column("vc")?, t.column("node num")?);
    let (vcs, _) = t.read_rows(ReadOptions::default(), |t, row, line| {
        let name = t.text(row, line, vc)?;
        if name.is_empty() {
            return Err(t.bad(line, "vc", "empty"));
        }
        Ok(PhillyVc { vc: name.to_string(), nodes: t.parse(row, line, n)? })
    })?;
    Ok(vcs)
}

/// Tenants `philly/<vc>` for the VCs of a trace (`gpu_time`: VC name to its GPU time,
/// any unit), with nominal quotas of `flavor` that share out `capacity_gpus`:
///
/// - a VC listed in `listed` (from `philly_vc.csv`) weighs its node count;
/// - any other VC weighs its share of the trace's GPU time, converted to nodes at the
///   listed VCs' rate (their nodes per unit of GPU-time share), or its plain share when
///   no trace VC is listed;
/// - nominal = capacity x weight / total weight, floored to whole GPUs so that the
///   nominals never exceed the cluster.
///
/// Helios' file gives nodes, not GPUs, and Philly's nodes hold 2 to 8 GPUs, so node
/// counts are used as proportions, not converted to GPUs.
pub fn vc_tenants(gpu_time: &BTreeMap<String, f64>, listed: &[PhillyVc], capacity_gpus: f64, flavor: &str) -> Vec<TenantConfig> {
    let total_time: f64 = gpu_time.values().sum();
    let share = |vc: &str| if total_time > 0.0 { gpu_time.get(vc).copied().unwrap_or(0.0) / total_time } else { 0.0 };
    let listed_nodes = |vc: &str| listed.iter().find(|l| l.vc == vc).map(|l| f64::from(l.nodes));
    let (mut nodes_sum, mut share_sum) = (0.0, 0.0);
    for vc in gpu_time.keys() {
        if let Some(n) = listed_nodes(vc) {
            nodes_sum += n;
            share_sum += share(vc);
        }
    }
    let rate = if nodes_sum > 0.0 && share_sum > 0.0 { nodes_sum / share_sum } else { 1.0 };
    let weights: Vec<(&String, f64)> = gpu_time.keys().map(|vc| (vc, listed_nodes(vc).unwrap_or_else(|| share(vc) * rate))).collect();
    let total_weight: f64 = weights.iter().map(|w| w.1).sum();
    weights
        .into_iter()
        .map(|(vc, w)| {
            let nominal = if total_weight > 0.0 { (capacity_gpus * w / total_weight).floor() } else { 0.0 };
            TenantConfig {
                path: vc_tenant(vc),
                weight: None,
                quota: vec![QuotaConfig { flavor: flavor.into(), nominal, borrowing_limit: None, lending_limit: None }],
            }
        })
        .collect()
}

/// VC name to GPU time of a trace whose tenants are `philly/<vc>` (others ignored).
pub fn vc_gpu_time(trace: &Trace) -> BTreeMap<String, f64> {
    super::tenant_gpu_time(trace)
        .into_iter()
        .filter_map(|(path, t)| path.strip_prefix(&format!("{TENANT}/")).map(|vc| (vc.to_string(), t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfold_shapes_become_gangs() {
        assert_eq!(rfold_gang(&[2, 2], 4), (2, 2));
        assert_eq!(rfold_gang(&[8], 8), (1, 8));
        assert_eq!(rfold_gang(&[4, 2], 6), (6, 1));
    }

    #[test]
    fn vc_nominals_follow_node_counts_and_gpu_time() {
        let time: BTreeMap<String, f64> = [("a".into(), 50.0), ("b".into(), 25.0), ("c".into(), 25.0)].into();
        let listed =
            [PhillyVc { vc: "a".into(), nodes: 10 }, PhillyVc { vc: "b".into(), nodes: 30 }, PhillyVc { vc: "z".into(), nodes: 99 }];
        let t = vc_tenants(&time, &listed, 100.0, FLAVOR);
        // Listed a and b hold 75% of the time on 40 nodes: c's 25% weighs 40/0.75*0.25 nodes.
        let c: f64 = 40.0 / 0.75 * 0.25;
        let total: f64 = 40.0 + c;
        let nominal: Vec<f64> = t.iter().map(|t| t.quota[0].nominal).collect();
        assert_eq!(nominal, vec![(1000.0 / total).floor(), (3000.0 / total).floor(), (100.0 * c / total).floor()]);
        assert_eq!(t[2].path, "philly/c");
        assert!(nominal.iter().sum::<f64>() <= 100.0);
        // Nothing listed: plain GPU-time shares.
        let t = vc_tenants(&time, &[], 100.0, FLAVOR);
        assert_eq!(t.iter().map(|t| t.quota[0].nominal).collect::<Vec<_>>(), vec![50.0, 25.0, 25.0]);
    }
}
