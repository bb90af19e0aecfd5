//! The FGD experiment (Weng et al., "Beware of Fragmentation", USENIX ATC'23) on the
//! openb trace, driven through the very same `Core` the server runs.
//!
//! As in the paper's artifact: pods are sampled with replacement from the pod list
//! until the arrived GPU request reaches `tune` x the cluster's GPU capacity, in an
//! order fixed by the seed; each is submitted and placed at once (a pass per pod) or
//! fails; placed pods never leave. After each pod we record the arrived GPU request
//! (failed pods included), the allocated GPU milli and the fragmented GPU milli.
//!
//! Fragmentation of a node is FGD's measure: per task class of the workload's
//! profile, the node's free GPU milli that the class cannot use, weighted by the
//! class's popularity. The cluster's fragmentation ratio is the sum over nodes over
//! the cluster's GPU capacity.

use allot_core::config::PolicyConfig;
use allot_core::rng::SeededRng;
use allot_core::score::{NodeFree, node_fragment};
use allot_core::{Core, Event, JobId, PlacementPolicy, TaskClass, WorkloadProfile};

use crate::trace::openb::{self, OpenbNode, OpenbPod};

/// The paper's published allocated GPU % at 100% arrived workload on the default
/// trace (median of seeds 42-51, Fig. 7 of the paper).
pub const PUBLISHED_AT_100: &[(&str, f64)] =
    &[("random", 86.25), ("dotprod", 90.56), ("clustering", 91.58), ("packing", 91.80), ("bestfit", 92.91), ("fgd", 95.23)];

/// The paper's 17 workloads (pod list suffixes).
pub const PAPER_WORKLOADS: &[&str] = &[
    "default",
    "cpu050",
    "cpu100",
    "cpu200",
    "cpu250",
    "gpushare40",
    "gpushare60",
    "gpushare80",
    "gpushare100",
    "gpuspec10",
    "gpuspec20",
    "gpuspec25",
    "gpuspec33",
    "multigpu20",
    "multigpu30",
    "multigpu40",
    "multigpu50",
];

/// A placement policy of the experiment by name.
pub fn policy_by_name(name: &str) -> Option<PlacementPolicy> {
    Some(match name {
        "default" => PlacementPolicy::Default,
        "random" => PlacementPolicy::Random,
        "dotprod" => PlacementPolicy::Dotprod,
        "clustering" => PlacementPolicy::Clustering,
        "packing" => PlacementPolicy::Packing,
        "bestfit" => PlacementPolicy::Bestfit,
        "fgd" => PlacementPolicy::Fgd,
        _ => return None,
    })
}

/// FGD's target workload: task classes by (CPU, memory, whole GPUs, GPU milli,
/// allowed models) with their share of the pod list, models still by name. FGD as
/// published ignores memory (the core's `fgd` policy reads the classes without it);
/// the default policy uses it.
pub fn profile(pods: &[OpenbPod]) -> Vec<(TaskClass, Vec<String>)> {
    type ClassKey = (u32, u64, u32, u32, Vec<String>);
    let mut counts: std::collections::BTreeMap<ClassKey, u64> = Default::default();
    for p in pods {
        *counts.entry((p.cpu_milli, p.memory_mib, p.num_gpu, p.gpu_milli, p.gpu_spec.clone())).or_default() += 1;
    }
    let total = pods.len().max(1) as f64;
    let mut tasks: Vec<(TaskClass, Vec<String>)> = counts
        .into_iter()
        .map(|((cpus, mem_mib, num_gpu, milli, spec), n)| {
            let class = TaskClass {
                cpus,
                mem_mib,
                gpus: if num_gpu == 1 && milli < 1000 { 0 } else { num_gpu },
                milli: if num_gpu == 1 && milli < 1000 { milli as u16 } else { 0 },
                flavor_mask: 0,
                weight: n as f64 / total,
            };
            (class, spec)
        })
        .collect();
    // Most popular first: the order does not change the measure, but makes it
    // readable when printed.
    tasks.sort_by(|a, b| b.0.weight.total_cmp(&a.0.weight));
    tasks
}

/// Packing patterns of the profile's fractions (see `crate::patterns`), by their
/// share of the pods.
pub fn profile_patterns(classes: &[(TaskClass, Vec<String>)]) -> Vec<Vec<u16>> {
    let fractions: Vec<(u16, f64)> = classes.iter().filter(|(c, _)| c.milli > 0).map(|(c, _)| (c.milli, c.weight)).collect();
    crate::patterns::fraction_patterns(&fractions)
}

/// The profile in a core's terms: allowed models as its flavor mask. A model the
/// cluster lacks allows nothing there. `patterns`: see `profile_patterns`.
pub fn profile_for(core: &Core, classes: &[(TaskClass, Vec<String>)], patterns: &[Vec<u16>]) -> WorkloadProfile {
    let cl = core.cluster();
    let tasks = classes
        .iter()
        .map(|(c, spec)| {
            let mask = spec.iter().filter_map(|m| cl.flavor_index(m)).fold(0u64, |acc, f| acc | (1 << f.0));
            // A class whose models all lie outside the cluster can run nowhere: an
            // empty mask would mean "anywhere", so give it a bit no node has.
            let mask = if !spec.is_empty() && mask == 0 { 1 << 63 } else { mask };
            TaskClass { flavor_mask: mask, ..*c }
        })
        .collect();
    WorkloadProfile { tasks, fraction_patterns: patterns.to_vec() }
}

/// The inputs of every run: the node list, the pod list and its profile.
#[derive(Clone, Debug)]
pub struct Experiment {
    pub nodes: Vec<OpenbNode>,
    pub pods: Vec<OpenbPod>,
    pub profile: Vec<(TaskClass, Vec<String>)>,
    /// The profile's packing patterns (worked out once: a linear programme).
    pub patterns: Vec<Vec<u16>>,
    /// Sum of the GPU nodes' GPUs, in milli-GPU.
    pub capacity_milli: u64,
    /// Arrived GPU request to reach, as a multiple of capacity (the paper: 1.3).
    pub tune: f64,
}

impl Experiment {
    pub fn new(nodes: Vec<OpenbNode>, pods: Vec<OpenbPod>, tune: f64) -> Experiment {
        let profile = profile(&pods);
        let patterns = profile_patterns(&profile);
        let capacity_milli = nodes.iter().map(|n| u64::from(n.gpus) * 1000).sum();
        Experiment { nodes, pods, profile, patterns, capacity_milli, tune }
    }

    /// The pods of one run, by index into `pods`: sampled with replacement in the
    /// seed's order until their GPU request reaches `tune` x capacity.
    pub fn sample(&self, seed: u64) -> Vec<usize> {
        let target = (self.tune * self.capacity_milli as f64).ceil() as u64;
        let gpu_pods = self.pods.iter().any(|p| p.gpu_request_milli() > 0);
        let mut rng = SeededRng::new(seed);
        let mut out = Vec::new();
        let mut arrived = 0u64;
        while arrived < target && gpu_pods && !self.pods.is_empty() {
            let i = rng.range(0, self.pods.len() as u64 - 1) as usize;
            arrived += self.pods[i].gpu_request_milli();
            out.push(i);
        }
        out
    }

    /// One run of `policy` with `seed`.
    pub fn run(&self, policy: PlacementPolicy, seed: u64) -> Run {
        let mut core = Core::new(&openb::cluster(&self.nodes, self.policy_config(policy, seed)))
            .expect("the openb cluster config is built valid by `openb::cluster`");
        let profile = profile_for(&core, &self.profile, &self.patterns);
        core.set_workload_profile(profile.clone());
        let order = self.sample(seed);
        let mut frag = FragTracker::new(&core, &profile);
        let mut points = Vec::with_capacity(order.len());
        let (mut arrived, mut allocated) = (0u64, 0u64);
        let mut failed = 0usize;
        for (k, &i) in order.iter().enumerate() {
            let pod = &self.pods[i];
            let id = JobId(k as u64);
            let now = k as i64;
            arrived += pod.gpu_request_milli();
            // A pod no node can ever hold is refused at submission: it failed.
            if core.on_event(now, Event::JobSubmitted(openb::job_spec(k as u64, pod))).is_err() {
                failed += 1;
            } else {
                let plan = core.schedule(now);
                match plan.starts.first() {
                    Some(start) => {
                        allocated += pod.gpu_request_milli();
                        for slot in &start.slots {
                            frag.refresh(&core, slot.node.ix());
                        }
                    }
                    None => {
                        failed += 1;
                        let _ = core.on_event(now, Event::JobCancelled(id));
                    }
                }
            }
            points.push(Point { arrived_milli: arrived, allocated_milli: allocated, fragmented_milli: frag.total });
            // The core's invariants after every pod on small clusters; on large ones
            // every 64th pod and the last (an O(cluster) check after each of 10,000
            // pods would be most of a debug run).
            #[cfg(debug_assertions)]
            if (self.nodes.len() <= 64 || k % 64 == 63 || k + 1 == order.len())
                && let Err(e) = core.check_invariants()
            {
                panic!("invariant broken after pod {k}: {e}");
            }
        }
        Run { policy, seed, pods: order.len(), failed, capacity_milli: self.capacity_milli, points }
    }

    fn policy_config(&self, placement: PlacementPolicy, seed: u64) -> PolicyConfig {
        PolicyConfig { placement, seed, backfill: false, preemption: false, ..PolicyConfig::default() }
    }
}

/// The cluster's fragmentation, kept per node and refreshed where pods land.
struct FragTracker<'a> {
    profile: &'a WorkloadProfile,
    per_node: Vec<f64>,
    total: f64,
}

impl<'a> FragTracker<'a> {
    fn new(core: &Core, profile: &'a WorkloadProfile) -> Self {
        let mut t = FragTracker { profile, per_node: vec![0.0; core.cluster().nodes.len()], total: 0.0 };
        for n in 0..t.per_node.len() {
            t.refresh(core, n);
        }
        t
    }

    fn refresh(&mut self, core: &Core, n: usize) {
        let cl = core.cluster();
        let ni = allot_core::NodeIdx::from(n);
        let node = &cl.nodes[n];
        let nf = NodeFree {
            gpu_free: cl.gpu_free(ni),
            cpus_free: cl.cpus_free(ni),
            // The published measure: CPUs and GPUs only.
            mem_free: u64::MAX,
            flavor: node.flavor.0,
            gpus: node.gpus,
            cpus: node.cpus,
            mem: node.memory_mib,
        };
        let v = node_fragment(&nf, self.profile);
        self.total += v - self.per_node[n];
        self.per_node[n] = v;
    }
}

/// The state after one pod.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub arrived_milli: u64,
    pub allocated_milli: u64,
    pub fragmented_milli: f64,
}

/// One run's curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub policy: PlacementPolicy,
    pub seed: u64,
    pub pods: usize,
    pub failed: usize,
    pub capacity_milli: u64,
    pub points: Vec<Point>,
}

impl Run {
    /// At each integer arrived percent `0..=max_pct`: the point after the first pod
    /// whose arrived request reaches it (the start state for 0), as
    /// `(allocated %, fragmented %)` of capacity. `None` past the end of the run.
    pub fn by_arrived_pct(&self, max_pct: u32) -> Vec<Option<(f64, f64)>> {
        let cap = self.capacity_milli.max(1) as f64;
        let mut out = Vec::with_capacity(max_pct as usize + 1);
        let mut i = 0;
        for pct in 0..=max_pct {
            let need = (f64::from(pct) / 100.0 * cap).ceil() as u64;
            if pct == 0 {
                let frag0 = self.points.first().map_or(0.0, |p| p.fragmented_milli);
                out.push(Some((0.0, 100.0 * frag0 / cap)));
                continue;
            }
            while i < self.points.len() && self.points[i].arrived_milli < need {
                i += 1;
            }
            out.push(self.points.get(i).map(|p| (100.0 * p.allocated_milli as f64 / cap, 100.0 * p.fragmented_milli / cap)));
        }
        out
    }
}

/// Median of a non-empty slice (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 })
}

/// The median over runs at each arrived percent: `(alloc_pct, frag_ratio_pct)`.
pub fn median_curves(runs: &[&Run], max_pct: u32) -> Vec<Option<(f64, f64)>> {
    let curves: Vec<_> = runs.iter().map(|r| r.by_arrived_pct(max_pct)).collect();
    (0..=max_pct as usize)
        .map(|k| {
            let mut a: Vec<f64> = curves.iter().filter_map(|c| c[k].map(|p| p.0)).collect();
            let mut f: Vec<f64> = curves.iter().filter_map(|c| c[k].map(|p| p.1)).collect();
            Some((median(&mut a)?, median(&mut f)?))
        })
        .collect()
}
