//! Alibaba PAI GPU v2020 (Weng et al., NSDI'22): the machine spec as a cluster.
//!
//! `pai_machine_spec.csv` has no header; its columns are those of
//! `pai_machine_spec.header`: `machine,gpu_type,cap_cpu,cap_mem,cap_gpu` (CPUs in
//! cores, memory in GB, GPUs). The published file also reads with that header line
//! prepended.

use std::path::Path;

use allot_core::Config;
use allot_core::config::{FlavorConfig, NodeConfig, PolicyConfig, QuotaConfig, TenantConfig, TopologyConfig};

use super::ReadOptions;
use super::table::{Header, Table};
use crate::error::TraceError;

/// The columns of the machine spec, from `pai_machine_spec.header`.
pub const COLUMNS: [&str; 5] = ["machine", "gpu_type", "cap_cpu", "cap_mem", "cap_gpu"];
/// The one tenant owning the cluster (the spec has no tenants).
pub const TENANT: &str = "pai";
/// Machines per leaf of the topology built here; PAI's racks are not published.
pub const NODES_PER_LEAF: usize = 16;

/// One machine of the spec.
#[derive(Clone, Debug, PartialEq)]
pub struct PaiMachine {
    pub name: String,
    /// `CPU` for CPU-only machines, else the GPU model (`MISC` is unnamed).
    pub gpu_type: String,
    pub cpus: u32,
    pub memory_gb: u64,
    pub gpus: u32,
}

/// Reads the machine spec, with or without its header line.
pub fn read_machines(path: &Path, opts: ReadOptions) -> Result<Vec<PaiMachine>, TraceError> {
    let mut t = Table::open(path, b',', Header::Given(&COLUMNS))?;
    let (name, ty, cpu, mem, gpu) =
        (t.column("machine")?, t.column("gpu_type")?, t.column("cap_cpu")?, t.column("cap_mem")?, t.column("cap_gpu")?);
    let (machines, _) = t.read_rows(opts, |t, row, line| {
        let cells: Vec<&str> = row.iter().map(str::trim).collect();
        if line == 1 && cells == COLUMNS {
            return Ok(None);
        }
        let machine = t.text(row, line, name)?;
        if machine.is_empty() {
            return Err(t.bad(line, "machine", "empty"));
        }
        let gpu_type = t.text(row, line, ty)?;
        let gpus: u32 = t.parse(row, line, gpu)?;
        if gpus > allot_core::cluster::MAX_GPUS_PER_NODE {
            return Err(t.bad(line, "cap_gpu", format!("{gpus} GPUs on one machine (most is 64)")));
        }
        if gpus > 0 && (gpu_type.is_empty() || gpu_type == "CPU") {
            return Err(t.bad(line, "gpu_type", format!("a machine with {gpus} GPUs needs a GPU type, not `{gpu_type}`")));
        }
        Ok(Some(PaiMachine {
            name: machine.to_string(),
            gpu_type: gpu_type.to_string(),
            cpus: t.non_negative(row, line, cpu)?.round() as u32,
            memory_gb: t.non_negative(row, line, mem)?.round() as u64,
            gpus,
        }))
    })?;
    Ok(machines.into_iter().flatten().collect())
}

/// The cluster of a machine spec: one flavor per GPU type, topology `site > leaf` with
/// each leaf holding up to `NODES_PER_LEAF` machines of one type, node CPUs in cores and
/// memory in GiB as given, CPU-only machines left out, one tenant (`pai`) whose nominal
/// quota is the whole cluster.
pub fn cluster(machines: &[PaiMachine], policy: PolicyConfig) -> Config {
    let gpu_machines: Vec<&PaiMachine> = machines.iter().filter(|m| m.gpus > 0).collect();
    let mut types: Vec<&str> = gpu_machines.iter().map(|m| m.gpu_type.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    let mut nodes = Vec::with_capacity(gpu_machines.len());
    for ty in &types {
        for (i, m) in gpu_machines.iter().filter(|m| m.gpu_type == *ty).enumerate() {
            nodes.push(NodeConfig {
                name: m.name.clone(),
                count: None,
                at: format!("{TENANT}/{ty}-{:03}", i / NODES_PER_LEAF),
                flavor: ty.to_string(),
                gpus: m.gpus,
                cpus: m.cpus,
                memory_gib: m.memory_gb,
                labels: Default::default(),
            });
        }
    }
    let quota = types
        .iter()
        .map(|ty| QuotaConfig {
            flavor: ty.to_string(),
            nominal: gpu_machines.iter().filter(|m| m.gpu_type == *ty).map(|m| f64::from(m.gpus)).sum(),
            borrowing_limit: None,
            lending_limit: None,
        })
        .collect();
    Config {
        version: 1,
        flavors: types.iter().map(|t| FlavorConfig { name: t.to_string(), memory_gib: 0, interconnect: String::new() }).collect(),
        topology: TopologyConfig { levels: vec!["site".into(), "leaf".into()] },
        nodes,
        tenants: vec![TenantConfig { path: TENANT.into(), weight: None, quota }],
        fair_share: Default::default(),
        priority_classes: vec![],
        budgets: vec![],
        policy,
    }
}
