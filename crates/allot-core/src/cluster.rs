//! GPU servers, flavors and the topology tree, with free capacity kept incrementally.
//!
//! Nodes are numbered in topology order, so every domain (site, block, leaf) owns a
//! contiguous range of nodes. For every domain and flavor a histogram counts the
//! schedulable nodes by their number of wholly free GPUs; from it "how many replicas
//! of g GPUs fit in this domain" is a sum over at most `max_gpus` buckets, so finding
//! the smallest domain that holds a gang is a descent of the tree, not a scan.
//!
//! Two views of free GPUs are kept per node: `whole_free`, what is physically free,
//! and `indexed_whole`, what new long-running work may take (free GPUs promised to a
//! backfill reservation are hidden from it). Indexes and histograms follow the latter.

use std::collections::BTreeSet;
use std::ops::Range;

use rustc_hash::FxHashMap;

use crate::config::Config;
use crate::error::ConfigError;
use crate::ids::{DomainIdx, FlavorIdx, NodeIdx};

/// Milli-GPU in one GPU.
pub const MILLI: u16 = 1000;
/// Most GPUs one node may have (GPU sets are kept in a `u64` mask).
pub const MAX_GPUS_PER_NODE: u32 = 64;

#[derive(Clone, Debug)]
pub struct Flavor {
    pub name: String,
    pub memory_gib: u32,
    pub interconnect: String,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub flavor: FlavorIdx,
    pub gpus: u32,
    pub cpus: u32,
    pub memory_mib: u64,
    pub labels: Vec<(String, String)>,
    pub leaf: DomainIdx,
    /// Offset of this node's GPUs in the per-GPU arrays.
    pub gpu_base: u32,
}

#[derive(Clone, Debug)]
pub struct Domain {
    /// Full path, `site-a/block-01/leaf-07`; empty for the root.
    pub name: String,
    /// 0 for the root, `i + 1` for `levels[i]`.
    pub level: u8,
    pub parent: Option<DomainIdx>,
    pub children: Vec<DomainIdx>,
    pub nodes: Range<u32>,
}

/// Health and administrative state of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub up: bool,
    pub drained: bool,
}

impl NodeStatus {
    pub fn schedulable(self) -> bool {
        self.up && !self.drained
    }
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub flavors: Vec<Flavor>,
    /// Configured level names; domain level `i + 1` is `levels[i]`.
    pub levels: Vec<String>,
    pub nodes: Vec<Node>,
    pub domains: Vec<Domain>,
    pub max_gpus: u32,
    /// The most CPUs of one node (scores normalise by the largest node).
    pub max_cpus: u32,
    node_by_name: FxHashMap<String, NodeIdx>,
    flavor_by_name: FxHashMap<String, FlavorIdx>,
    /// Per node, its domains from leaf up to the root.
    node_path: Vec<DomainIdx>,
    path_len: usize,
    stride: usize,
    // --- state ---
    gpu_free: Vec<u16>,
    whole_free: Vec<u16>,
    indexed_whole: Vec<u16>,
    index_cap: Vec<u16>,
    cpus_free: Vec<u32>,
    mem_free: Vec<u64>,
    status: Vec<NodeStatus>,
    version: Vec<u32>,
    hist: Vec<u32>,
    buckets: Vec<crate::nodeset::NodeSet>,
    /// While a preemption search tries victims out and back, nodes whose index
    /// entries wait for `flush_index` (a node moved many times between two
    /// placement checks is re-indexed once), and whether each is listed.
    deferring: bool,
    deferred: Vec<u32>,
    is_deferred: Vec<bool>,
    partial: Vec<BTreeSet<(u16, u32, u8)>>,
    capacity_gpus: Vec<u64>,
    /// The distinct (flavor, GPUs, CPUs, memory) of the nodes: "could any node
    /// ever hold this replica" without a walk over every node.
    node_kinds: Vec<(FlavorIdx, u32, u32, u64)>,
}

/// One replica's needs, for node picking.
struct ReplicaAsk {
    flavor: FlavorIdx,
    gpus: u32,
    cpus: u32,
    mem: u64,
}

/// Where one replica sits: whole GPUs (a mask of GPU numbers on the node) or a
/// fraction of one GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub node: NodeIdx,
    pub gpus: u64,
    pub frac_gpu: u8,
    pub milli: u16,
}

impl Cluster {
    /// Whether some node of a flavor in `flavor_mask` has at least `gpus` GPUs,
    /// `cpus` CPUs and `mem_mib` of memory (whatever is free now).
    pub fn some_node_holds(&self, flavor_mask: u64, gpus: u32, cpus: u32, mem_mib: u64) -> bool {
        self.node_kinds.iter().any(|&(f, g, c, m)| flavor_mask & (1 << f.0) != 0 && g >= gpus && c >= cpus && m >= mem_mib)
    }

    pub fn from_config(config: &Config) -> Result<Cluster, ConfigError> {
        let mut flavors = Vec::new();
        let mut flavor_by_name = FxHashMap::default();
        for (i, f) in config.flavors.iter().enumerate() {
            if f.name.trim().is_empty() {
                return Err(ConfigError::new(format!("flavors[{i}].name"), "must not be empty"));
            }
            if flavor_by_name.insert(f.name.clone(), FlavorIdx::from(i)).is_some() {
                return Err(ConfigError::new(format!("flavors[{i}].name"), format!("duplicate flavor `{}`", f.name)));
            }
            flavors.push(Flavor { name: f.name.clone(), memory_gib: f.memory_gib, interconnect: f.interconnect.clone() });
        }
        if flavors.len() > 64 {
            return Err(ConfigError::new("flavors", "at most 64 flavors are supported"));
        }
        let levels = config.topology.levels.clone();
        if levels.is_empty() || levels.len() > 8 {
            return Err(ConfigError::new("topology.levels", "needs between 1 and 8 levels"));
        }

        // Domains in order of first appearance; nodes attached to their leaf.
        let mut domains = vec![Domain { name: String::new(), level: 0, parent: None, children: vec![], nodes: 0..0 }];
        let mut domain_by_name: FxHashMap<String, DomainIdx> = FxHashMap::default();
        let mut leaf_nodes: FxHashMap<DomainIdx, Vec<Node>> = FxHashMap::default();
        let mut seen_names: FxHashMap<String, String> = FxHashMap::default();
        for (i, nc) in config.nodes.iter().enumerate() {
            let at = format!("nodes[{i}]");
            let flavor = *flavor_by_name
                .get(&nc.flavor)
                .ok_or_else(|| ConfigError::new(format!("{at}.flavor"), format!("unknown flavor `{}`", nc.flavor)))?;
            if nc.gpus == 0 || nc.gpus > MAX_GPUS_PER_NODE {
                return Err(ConfigError::new(format!("{at}.gpus"), format!("must be 1..={MAX_GPUS_PER_NODE}")));
            }
            let segs: Vec<&str> = nc.at.split('/').collect();
            if segs.len() != levels.len() || segs.iter().any(|s| s.trim().is_empty()) {
                return Err(ConfigError::new(
                    format!("{at}.at"),
                    format!("`{}` must name one domain per level ({})", nc.at, levels.join("/")),
                ));
            }
            let mut parent = DomainIdx(0);
            let mut path = String::new();
            for (depth, seg) in segs.iter().enumerate() {
                if depth > 0 {
                    path.push('/');
                }
                path.push_str(seg);
                let d = match domain_by_name.get(&path) {
                    Some(&d) => d,
                    None => {
                        let d = DomainIdx::from(domains.len());
                        domains.push(Domain {
                            name: path.clone(),
                            level: (depth + 1) as u8,
                            parent: Some(parent),
                            children: vec![],
                            nodes: 0..0,
                        });
                        domains[parent.ix()].children.push(d);
                        domain_by_name.insert(path.clone(), d);
                        d
                    }
                };
                parent = d;
            }
            let count = nc.count.unwrap_or(1);
            if count == 0 {
                return Err(ConfigError::new(format!("{at}.count"), "must be at least 1"));
            }
            if count > 1 && !nc.name.contains("{i}") {
                return Err(ConfigError::new(format!("{at}.name"), "with `count`, the name must contain `{i}`"));
            }
            let labels: Vec<(String, String)> = nc.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            for k in 0..count {
                let name = nc.name.replace("{i}", &k.to_string());
                if let Some(prev) = seen_names.insert(name.clone(), at.clone()) {
                    return Err(ConfigError::new(format!("{at}.name"), format!("node `{name}` is already defined by {prev}")));
                }
                leaf_nodes.entry(parent).or_default().push(Node {
                    name,
                    flavor,
                    gpus: nc.gpus,
                    cpus: nc.cpus,
                    memory_mib: nc.memory_gib * 1024,
                    labels: labels.clone(),
                    leaf: parent,
                    gpu_base: 0,
                });
            }
        }

        // Number nodes depth-first so that every domain owns a contiguous range.
        let mut nodes: Vec<Node> = Vec::new();
        fn visit(d: DomainIdx, domains: &mut Vec<Domain>, leaf_nodes: &mut FxHashMap<DomainIdx, Vec<Node>>, nodes: &mut Vec<Node>) {
            let start = nodes.len() as u32;
            if let Some(ns) = leaf_nodes.remove(&d) {
                nodes.extend(ns);
            }
            for c in domains[d.ix()].children.clone() {
                visit(c, domains, leaf_nodes, nodes);
            }
            domains[d.ix()].nodes = start..nodes.len() as u32;
        }
        visit(DomainIdx(0), &mut domains, &mut leaf_nodes, &mut nodes);

        let mut gpu_base = 0u32;
        let mut max_gpus = 1;
        let max_cpus = nodes.iter().map(|n| n.cpus).max().unwrap_or(0);
        let mut node_by_name = FxHashMap::default();
        for (i, n) in nodes.iter_mut().enumerate() {
            n.gpu_base = gpu_base;
            gpu_base += n.gpus;
            max_gpus = max_gpus.max(n.gpus);
            node_by_name.insert(n.name.clone(), NodeIdx::from(i));
        }
        let path_len = levels.len() + 1;
        let mut node_path = Vec::with_capacity(nodes.len() * path_len);
        for n in &nodes {
            let mut d = Some(n.leaf);
            while let Some(x) = d {
                node_path.push(x);
                d = domains[x.ix()].parent;
            }
        }
        let stride = max_gpus as usize + 1;
        let nf = flavors.len();
        let mut capacity_gpus = vec![0u64; nf];
        for n in &nodes {
            capacity_gpus[n.flavor.ix()] += u64::from(n.gpus);
        }
        let mut node_kinds: Vec<(FlavorIdx, u32, u32, u64)> = nodes.iter().map(|n| (n.flavor, n.gpus, n.cpus, n.memory_mib)).collect();
        node_kinds.sort_unstable();
        node_kinds.dedup();
        let mut cluster = Cluster {
            gpu_free: vec![MILLI; gpu_base as usize],
            whole_free: nodes.iter().map(|n| n.gpus as u16).collect(),
            indexed_whole: vec![0; nodes.len()],
            index_cap: vec![u16::MAX; nodes.len()],
            cpus_free: nodes.iter().map(|n| n.cpus).collect(),
            mem_free: nodes.iter().map(|n| n.memory_mib).collect(),
            status: vec![NodeStatus { up: true, drained: false }; nodes.len()],
            version: vec![0; nodes.len()],
            hist: vec![0; domains.len() * nf * stride],
            buckets: vec![crate::nodeset::NodeSet::with_bound(nodes.len()); nf * stride],
            deferring: false,
            deferred: Vec::new(),
            is_deferred: vec![false; nodes.len()],
            partial: vec![BTreeSet::new(); nf],
            flavors,
            levels,
            nodes,
            domains,
            max_gpus,
            max_cpus,
            node_by_name,
            flavor_by_name,
            node_path,
            path_len,
            stride,
            capacity_gpus,
            node_kinds,
        };
        for i in 0..cluster.nodes.len() {
            cluster.index_node(NodeIdx::from(i), 0, true);
        }
        Ok(cluster)
    }

    // ----- lookups -----

    pub fn node_index(&self, name: &str) -> Option<NodeIdx> {
        self.node_by_name.get(name).copied()
    }

    pub fn flavor_index(&self, name: &str) -> Option<FlavorIdx> {
        self.flavor_by_name.get(name).copied()
    }

    pub fn level_index(&self, name: &str) -> Option<u8> {
        self.levels.iter().position(|l| l == name).map(|i| (i + 1) as u8)
    }

    pub fn node(&self, n: NodeIdx) -> &Node {
        &self.nodes[n.ix()]
    }

    pub fn status(&self, n: NodeIdx) -> NodeStatus {
        self.status[n.ix()]
    }

    /// Domains of a node from its leaf up to the root.
    pub fn path(&self, n: NodeIdx) -> &[DomainIdx] {
        let s = n.ix() * self.path_len;
        &self.node_path[s..s + self.path_len]
    }

    /// The node's ancestor at `level` (0 = root).
    pub fn domain_at(&self, n: NodeIdx, level: u8) -> DomainIdx {
        self.path(n)[self.levels.len() - level as usize]
    }

    /// Total GPUs of a flavor in the cluster, schedulable or not.
    pub fn capacity_gpus(&self, f: FlavorIdx) -> u64 {
        self.capacity_gpus[f.ix()]
    }

    pub fn total_gpus(&self) -> u64 {
        self.capacity_gpus.iter().sum()
    }

    pub fn whole_free(&self, n: NodeIdx) -> u32 {
        u32::from(self.whole_free[n.ix()])
    }

    pub fn indexed_whole(&self, n: NodeIdx) -> u32 {
        debug_assert!(self.deferred.is_empty(), "the index is read while updates wait");
        u32::from(self.indexed_whole[n.ix()])
    }

    pub fn cpus_free(&self, n: NodeIdx) -> u32 {
        self.cpus_free[n.ix()]
    }

    pub fn mem_free(&self, n: NodeIdx) -> u64 {
        self.mem_free[n.ix()]
    }

    /// Free milli-GPU of each GPU of a node.
    pub fn gpu_free(&self, n: NodeIdx) -> &[u16] {
        let node = &self.nodes[n.ix()];
        &self.gpu_free[node.gpu_base as usize..(node.gpu_base + node.gpus) as usize]
    }

    /// Free GPU milli of a node, partial GPUs included.
    pub fn free_milli(&self, n: NodeIdx) -> u64 {
        self.gpu_free(n).iter().map(|&m| u64::from(m)).sum()
    }

    fn hist_at(&self, d: DomainIdx, f: FlavorIdx) -> &[u32] {
        debug_assert!(self.deferred.is_empty(), "the index is read while updates wait");
        let s = (d.ix() * self.flavors.len() + f.ix()) * self.stride;
        &self.hist[s..s + self.stride]
    }

    /// How many replicas of `g` whole GPUs fit in domain `d` on flavor `f`, counting
    /// only what the index exposes (GPUs only; CPU and memory are checked on nodes).
    pub fn replica_capacity(&self, d: DomainIdx, f: FlavorIdx, g: u32) -> u64 {
        let g = g.max(1) as usize;
        let h = self.hist_at(d, f);
        (g..h.len()).map(|k| u64::from(h[k]) * (k / g) as u64).sum()
    }

    /// The largest number of wholly free GPUs on one schedulable node of flavor `f`.
    pub fn max_whole_free(&self, f: FlavorIdx) -> u32 {
        let h = self.hist_at(DomainIdx(0), f);
        (0..h.len()).rev().find(|&k| h[k] > 0).unwrap_or(0) as u32
    }

    /// The largest free fraction on a partially used GPU of flavor `f`.
    pub fn max_partial_free(&self, f: FlavorIdx) -> u16 {
        self.partial[f.ix()].last().map_or(0, |e| e.0)
    }

    // ----- index maintenance -----

    /// Moves node `n` from histogram bucket `old` to its current indexed count.
    fn index_node(&mut self, n: NodeIdx, old: u16, fresh: bool) {
        let i = n.ix();
        let new = if self.status[i].schedulable() { self.whole_free[i].min(self.index_cap[i]) } else { 0 };
        if !fresh && new == old {
            return;
        }
        self.indexed_whole[i] = new;
        let f = self.nodes[i].flavor.ix();
        let nf = self.flavors.len();
        let stride = self.stride;
        let s = i * self.path_len;
        for p in 0..self.path_len {
            let d = self.node_path[s + p].ix();
            let base = (d * nf + f) * stride;
            if !fresh {
                self.hist[base + old as usize] -= 1;
            }
            self.hist[base + new as usize] += 1;
        }
        if !fresh && old > 0 {
            self.buckets[f * stride + old as usize].remove(i as u32);
        }
        if new > 0 {
            self.buckets[f * stride + new as usize].insert(i as u32);
        }
    }

    fn reindex(&mut self, n: NodeIdx) {
        self.version[n.ix()] = self.version[n.ix()].wrapping_add(1);
        if self.deferring {
            if !self.is_deferred[n.ix()] {
                self.is_deferred[n.ix()] = true;
                self.deferred.push(n.0);
            }
            return;
        }
        let old = self.indexed_whole[n.ix()];
        self.index_node(n, old, false);
    }

    /// Holds back index updates (`on`) until `flush_index`, or ends holding them
    /// back (flushing). Only resources move meanwhile: the index is not read.
    pub(crate) fn defer_index(&mut self, on: bool) {
        self.flush_index();
        self.deferring = on;
    }

    /// Brings the index up to date with every node moved since it was deferred.
    pub(crate) fn flush_index(&mut self) {
        let mut nodes = std::mem::take(&mut self.deferred);
        for &n in &nodes {
            self.is_deferred[n as usize] = false;
            let old = self.indexed_whole[n as usize];
            self.index_node(NodeIdx(n), old, false);
        }
        nodes.clear();
        self.deferred = nodes;
    }

    /// Bumped whenever anything of node `n` changes (resources, status, index cap):
    /// scores cached against it are stale once it moves.
    pub fn version(&self, n: NodeIdx) -> u32 {
        self.version[n.ix()]
    }

    /// The most wholly free GPUs node `n` exposes to long-running work (a
    /// reservation's cap; `u32::MAX` when none).
    pub fn index_cap(&self, n: NodeIdx) -> u32 {
        match self.index_cap[n.ix()] {
            u16::MAX => u32::MAX,
            c => u32::from(c),
        }
    }

    /// Whether a reservation caps what node `n` exposes to long-running work.
    pub fn capped(&self, n: NodeIdx) -> bool {
        self.index_cap[n.ix()] != u16::MAX
    }

    /// Caps what the index exposes of node `n` (reserved GPUs hidden); `None` lifts it.
    pub fn set_index_cap(&mut self, n: NodeIdx, cap: Option<u32>) {
        self.index_cap[n.ix()] = cap.map_or(u16::MAX, |c| c.min(u32::from(u16::MAX)) as u16);
        self.reindex(n);
    }

    pub fn set_status(&mut self, n: NodeIdx, status: NodeStatus) {
        let was = self.status[n.ix()].schedulable();
        self.status[n.ix()] = status;
        self.reindex(n);
        if was != status.schedulable() {
            let node = &self.nodes[n.ix()];
            let f = node.flavor.ix();
            for g in 0..node.gpus {
                let free = self.gpu_free[(node.gpu_base + g) as usize];
                if free > 0 && free < MILLI {
                    let key = (free, n.0, g as u8);
                    if status.schedulable() {
                        self.partial[f].insert(key);
                    } else {
                        self.partial[f].remove(&key);
                    }
                }
            }
        }
    }

    fn set_gpu_free(&mut self, n: NodeIdx, g: u32, new: u16) {
        let node = &self.nodes[n.ix()];
        let gi = (node.gpu_base + g) as usize;
        let f = node.flavor.ix();
        let old = self.gpu_free[gi];
        if old == new {
            return;
        }
        self.gpu_free[gi] = new;
        let schedulable = self.status[n.ix()].schedulable();
        if old > 0 && old < MILLI && schedulable {
            self.partial[f].remove(&(old, n.0, g as u8));
        }
        if new > 0 && new < MILLI && schedulable {
            self.partial[f].insert((new, n.0, g as u8));
        }
        if old == MILLI {
            self.whole_free[n.ix()] -= 1;
        }
        if new == MILLI {
            self.whole_free[n.ix()] += 1;
        }
    }

    // ----- allocation -----

    /// How many replicas of `g` GPUs (out of `gpus` usable), `cpus` and `mem` fit on `n`.
    pub fn replicas_fit(&self, n: NodeIdx, gpus: u32, g: u32, cpus: u32, mem: u64) -> u32 {
        let by_gpu = gpus / g.max(1);
        let by_cpu = self.cpus_free[n.ix()].checked_div(cpus).unwrap_or(u32::MAX);
        let by_mem = self.mem_free[n.ix()].checked_div(mem).map_or(u32::MAX, |v| v.min(u64::from(u32::MAX)) as u32);
        by_gpu.min(by_cpu).min(by_mem)
    }

    /// Whether node `n` has the CPUs and memory for one more replica.
    pub fn fits_host(&self, n: NodeIdx, cpus: u32, mem: u64) -> bool {
        self.cpus_free[n.ix()] >= cpus && self.mem_free[n.ix()] >= mem
    }

    /// Takes `count` wholly free GPUs (lowest numbers first) plus CPUs and memory.
    pub fn take_whole(&mut self, n: NodeIdx, count: u32, cpus: u32, mem: u64) -> Slot {
        let node = &self.nodes[n.ix()];
        let (base, ngpus) = (node.gpu_base as usize, node.gpus);
        let mut mask = 0u64;
        let mut left = count;
        for g in 0..ngpus {
            if left == 0 {
                break;
            }
            if self.gpu_free[base + g as usize] == MILLI {
                mask |= 1 << g;
                left -= 1;
            }
        }
        debug_assert_eq!(left, 0, "take_whole on a node without enough free GPUs");
        for g in 0..ngpus {
            if mask & (1 << g) != 0 {
                self.set_gpu_free(n, g, 0);
            }
        }
        self.cpus_free[n.ix()] -= cpus;
        self.mem_free[n.ix()] -= mem;
        self.reindex(n);
        Slot { node: n, gpus: mask, frac_gpu: 0, milli: 0 }
    }

    /// Takes `milli` of GPU `g` plus CPUs and memory.
    pub fn take_fraction(&mut self, n: NodeIdx, g: u32, milli: u16, cpus: u32, mem: u64) -> Slot {
        let free = self.gpu_free(n)[g as usize];
        debug_assert!(free >= milli);
        self.set_gpu_free(n, g, free - milli);
        self.cpus_free[n.ix()] -= cpus;
        self.mem_free[n.ix()] -= mem;
        self.reindex(n);
        Slot { node: n, gpus: 0, frac_gpu: g as u8, milli }
    }

    /// Takes exactly what `slot` describes again (undo of `release`).
    pub fn retake(&mut self, slot: &Slot, cpus: u32, mem: u64) {
        let n = slot.node;
        if slot.milli > 0 {
            let free = self.gpu_free(n)[slot.frac_gpu as usize];
            self.set_gpu_free(n, u32::from(slot.frac_gpu), free - slot.milli);
        } else {
            for g in 0..self.nodes[n.ix()].gpus {
                if slot.gpus & (1 << g) != 0 {
                    self.set_gpu_free(n, g, 0);
                }
            }
        }
        self.cpus_free[n.ix()] -= cpus;
        self.mem_free[n.ix()] -= mem;
        self.reindex(n);
    }

    /// Gives back what a slot took.
    pub fn release(&mut self, slot: &Slot, cpus: u32, mem: u64) {
        let n = slot.node;
        let ngpus = self.nodes[n.ix()].gpus;
        if slot.milli > 0 {
            let free = self.gpu_free(n)[slot.frac_gpu as usize];
            self.set_gpu_free(n, u32::from(slot.frac_gpu), free + slot.milli);
        } else {
            for g in 0..ngpus {
                if slot.gpus & (1 << g) != 0 {
                    self.set_gpu_free(n, g, MILLI);
                }
            }
        }
        self.cpus_free[n.ix()] += cpus;
        self.mem_free[n.ix()] += mem;
        self.reindex(n);
    }

    // ----- searches over the indexes -----

    /// Best fit for one replica of `g` whole GPUs: the schedulable node with the fewest
    /// indexed free GPUs that still fit, lowest index first (packs small jobs into
    /// low-numbered leaves and keeps whole nodes and leaves free for gangs).
    pub fn best_fit_whole(&self, f: FlavorIdx, g: u32, cpus: u32, mem: u64) -> Option<NodeIdx> {
        debug_assert!(self.deferred.is_empty(), "the index is read while updates wait");
        let base = f.ix() * self.stride;
        for k in g.max(1) as usize..self.stride {
            for n in self.buckets[base + k].iter() {
                if self.fits_host(NodeIdx(n), cpus, mem) {
                    return Some(NodeIdx(n));
                }
            }
        }
        None
    }

    /// Best fit for a CPU-only replica: the schedulable node with the CPUs and memory
    /// and the fewest free GPUs (fully used GPU servers first), lowest index first.
    /// A scan over the flavor's nodes: CPU-only tasks are rare on a GPU fleet.
    pub fn best_fit_host(&self, f: FlavorIdx, cpus: u32, mem: u64) -> Option<NodeIdx> {
        (0..self.nodes.len())
            .map(NodeIdx::from)
            .filter(|&n| self.nodes[n.ix()].flavor == f && self.status[n.ix()].schedulable() && self.fits_host(n, cpus, mem))
            .min_by_key(|&n| (self.gpu_free(n).iter().map(|&m| u32::from(m)).sum::<u32>(), n.0))
    }

    /// Best fit for a fraction: the partially used GPU with the least free milli that
    /// holds it; else a wholly free GPU on the busiest node that has one.
    pub fn best_fit_fraction(&self, f: FlavorIdx, milli: u16, cpus: u32, mem: u64) -> Option<(NodeIdx, u32)> {
        for &(_, n, g) in self.partial[f.ix()].range((milli, 0, 0)..) {
            // A reserved node's shared GPUs may be part of what the reservation counts
            // on (they become whole once their fractions end): long work stays off.
            if self.index_cap[n as usize] == u16::MAX && self.fits_host(NodeIdx(n), cpus, mem) {
                return Some((NodeIdx(n), u32::from(g)));
            }
        }
        let n = self.best_fit_whole(f, 1, cpus, mem)?;
        let g = self.gpu_free(n).iter().position(|&m| m == MILLI)? as u32;
        Some((n, g))
    }

    /// The node range of domain `d`.
    pub fn nodes_in(&self, d: DomainIdx) -> Range<u32> {
        self.domains[d.ix()].nodes.clone()
    }

    /// Domains that hold `r` replicas of `g` GPUs on flavor `f`, at level `min_level`
    /// or deeper, best first: the deepest level that has one (a leaf before a block),
    /// then the least spare capacity (best fit), then index. At most `limit` are
    /// returned. The walk skips every subtree whose root cannot hold the gang, so on a
    /// busy cluster it visits few domains.
    pub fn fitting_domains(&self, f: FlavorIdx, r: u64, g: u32, min_level: u8, limit: usize) -> Vec<DomainIdx> {
        let mut found: Vec<(u8, u64, DomainIdx)> = Vec::new();
        let mut stack = vec![DomainIdx(0)];
        while let Some(d) = stack.pop() {
            let cap = self.replica_capacity(d, f, g);
            if cap < r {
                continue;
            }
            let dom = &self.domains[d.ix()];
            if dom.level >= min_level {
                found.push((dom.level, cap, d));
            }
            stack.extend(dom.children.iter().copied());
        }
        found.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        found.truncate(limit);
        found.into_iter().map(|x| x.2).collect()
    }

    /// The best domain of `fitting_domains`.
    pub fn smallest_domain(&self, f: FlavorIdx, r: u64, g: u32, min_level: u8) -> Option<DomainIdx> {
        self.fitting_domains(f, r, g, min_level, 1).first().copied()
    }

    /// Chooses nodes for `r` replicas of `g` GPUs inside domain `d`: children with the
    /// most capacity first (fewest leaves spanned), nodes in order within a leaf.
    /// Returns (node, replicas on it), or `None` when CPUs or memory fall short.
    pub fn pick_in_domain(&self, d: DomainIdx, f: FlavorIdx, r: u64, g: u32, cpus: u32, mem: u64) -> Option<Vec<(NodeIdx, u32)>> {
        let mut out = Vec::new();
        let mut left = r;
        self.pick_rec(d, &ReplicaAsk { flavor: f, gpus: g, cpus, mem }, &mut left, &mut out);
        (left == 0).then_some(out)
    }

    fn pick_rec(&self, d: DomainIdx, ask: &ReplicaAsk, left: &mut u64, out: &mut Vec<(NodeIdx, u32)>) {
        let (f, g, cpus, mem) = (ask.flavor, ask.gpus, ask.cpus, ask.mem);
        let dom = &self.domains[d.ix()];
        if dom.children.is_empty() {
            for n in dom.nodes.clone() {
                if *left == 0 {
                    return;
                }
                let ni = NodeIdx(n);
                if self.nodes[n as usize].flavor != f {
                    continue;
                }
                let fit = self.replicas_fit(ni, self.indexed_whole(ni), g, cpus, mem);
                let take = u64::from(fit).min(*left) as u32;
                if take > 0 {
                    out.push((ni, take));
                    *left -= u64::from(take);
                }
            }
            return;
        }
        let mut kids: Vec<(u64, DomainIdx)> =
            dom.children.iter().map(|&c| (self.replica_capacity(c, f, g), c)).filter(|&(cap, _)| cap > 0).collect();
        // Most capacity first; ties by index for determinism.
        kids.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, c) in kids {
            if *left == 0 {
                return;
            }
            self.pick_rec(c, ask, left, out);
        }
    }

    // ----- checks -----

    /// Recomputes every index from the per-GPU state and compares.
    pub fn check_indexes(&self) -> Result<(), String> {
        let nf = self.flavors.len();
        let mut hist = vec![0u32; self.domains.len() * nf * self.stride];
        for (i, node) in self.nodes.iter().enumerate() {
            let n = NodeIdx::from(i);
            let whole = self.gpu_free(n).iter().filter(|&&m| m == MILLI).count() as u16;
            if whole != self.whole_free[i] {
                return Err(format!("node {}: whole_free {} but {} GPUs wholly free", node.name, self.whole_free[i], whole));
            }
            let want = if self.status[i].schedulable() { whole.min(self.index_cap[i]) } else { 0 };
            if want != self.indexed_whole[i] {
                return Err(format!("node {}: indexed {} want {}", node.name, self.indexed_whole[i], want));
            }
            for &d in self.path(n) {
                hist[(d.ix() * nf + node.flavor.ix()) * self.stride + want as usize] += 1;
            }
            for k in 1..self.stride {
                let inb = self.buckets[node.flavor.ix() * self.stride + k].contains(i as u32);
                if inb != (k == want as usize) {
                    return Err(format!("node {}: bucket {k} membership wrong", node.name));
                }
            }
            if self.cpus_free[i] > node.cpus || self.mem_free[i] > node.memory_mib {
                return Err(format!("node {}: more CPUs or memory free than it has", node.name));
            }
        }
        if hist != self.hist {
            return Err("domain histograms differ from a recount".into());
        }
        Ok(())
    }
}
