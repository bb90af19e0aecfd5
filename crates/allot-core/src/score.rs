//! Node scores for single-replica placement, each from its published description:
//!
//! - `random`: any feasible node (a seeded hash of job and node decides);
//! - `dotprod`: Tetris-style alignment, the dot product of the job's demand and the
//!   node's free resources, each normalised by the node's capacity; highest wins;
//! - `clustering`: nodes already running jobs of the same kind of GPU request;
//! - `packing`: occupied GPUs first, then idle GPUs of occupied nodes, then idle
//!   nodes;
//! - `bestfit`: the node left with the least free resources (normalised sum);
//! - `fgd`: fragmentation gradient descent (Weng et al., USENIX ATC'23): the node and
//!   GPU whose choice raises the node's expected fragmentation the least, measured
//!   against a workload profile (task shapes with their popularity);
//! - `default`, once a workload profile is set: a fraction goes first where it
//!   continues one of the profile's packing patterns (see `pattern_residuals`), then
//!   onto an idle GPU, then anywhere; within that, FGD's gradient, with ties broken by
//!   best fit instead of chance (without a profile the default is the best-fit index).
//!
//! Every score is "higher is better". Remaining ties go to a seeded hash, never to
//! the order nodes are listed in: for `random` and `default` a hash of job and node
//! (a fresh draw per job), for the other research policies a hash of the node alone
//! (one random node order per seed, as the FGD artifact's scheduler breaks ties; see
//! `Core::ties_by_node_order`). Scores are cached per (request, node) until the node
//! changes.

use crate::cluster::MILLI;
use crate::config::PlacementPolicy;
use crate::core::Core;
use crate::ids::{FlavorIdx, JobId, NodeIdx};
use crate::job::Shape;
use crate::rng::{mix, mix2};

/// A task shape and how often it occurs, for fragmentation measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TaskClass {
    pub cpus: u32,
    pub mem_mib: u64,
    /// Whole GPUs (0 for a fraction or a CPU-only task).
    pub gpus: u32,
    /// Milli-GPU of a fraction (0 otherwise).
    pub milli: u16,
    /// Flavors the class may run on, as a bit mask of flavor indices (0: any). A
    /// node of another flavor is no use to it: all its free GPU is a fragment.
    pub flavor_mask: u64,
    pub weight: f64,
}

/// The task mix fragmentation is measured against.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadProfile {
    pub tasks: Vec<TaskClass>,
    /// How the mix's fractions are best packed onto GPUs: each pattern the milli-GPU
    /// of fractions that share one GPU (e.g. `[470, 470, 50]`), as an optimal packing
    /// of the mix's expected fractions uses them (allot-sim works them out with a
    /// linear programme). Empty: the default policy uses the gradient alone.
    pub fraction_patterns: Vec<Vec<u16>>,
}

/// For each free milli-GPU a GPU can be left with (0..=1000), whether some pattern
/// leaves exactly that much once part of it is placed: a fraction placed so that its
/// GPU's free milli stays in this set can still be completed as the pattern plans.
/// Empty when there are no patterns.
///
/// Why: whole GPUs run out long before fractions do, and from then on what is free
/// is the slivers that fractions left beside each other. An online rule that keeps
/// every partly used GPU on the way to a good packing (profile packing, as in
/// online bin packing with known item frequencies) leaves fewer slivers than best
/// fit or the gradient alone: on openb's default trace 95.80% -> about 96.1%.
pub fn pattern_residuals(patterns: &[Vec<u16>]) -> Vec<bool> {
    if patterns.is_empty() {
        return Vec::new();
    }
    let cap = usize::from(MILLI);
    let mut residual = vec![false; cap + 1];
    for p in patterns {
        // Sums of the pattern's non-empty sub-multisets, by subset-sum.
        let mut sums = vec![false; cap + 1];
        for &m in p {
            let m = usize::from(m);
            if m == 0 || m > cap {
                continue;
            }
            for v in (m..=cap).rev() {
                if sums[v - m] || v == m {
                    sums[v] = true;
                }
            }
        }
        for (v, _) in sums.iter().enumerate().filter(|(_, s)| **s) {
            residual[cap - v] = true;
        }
    }
    residual
}

/// Free resources of one node, as scores see them.
#[derive(Clone, Copy, Debug)]
pub struct NodeFree<'a> {
    pub gpu_free: &'a [u16],
    pub cpus_free: u32,
    pub mem_free: u64,
    /// The node's flavor index.
    pub flavor: u32,
    pub gpus: u32,
    pub cpus: u32,
    pub mem: u64,
}

/// Milli-GPU of node `nf` that task `t` cannot use (FGD's per-task fragmentation).
pub fn task_fragment(nf: &NodeFree, t: &TaskClass) -> u64 {
    let total: u64 = nf.gpu_free.iter().map(|&m| u64::from(m)).sum();
    let allowed = t.flavor_mask == 0 || (nf.flavor < 64 && t.flavor_mask & (1 << nf.flavor) != 0);
    if !allowed || nf.cpus_free < t.cpus || nf.mem_free < t.mem_mib {
        return total;
    }
    if t.milli > 0 {
        let usable = nf.gpu_free.iter().any(|&m| m >= t.milli);
        if !usable {
            return total;
        }
        return nf.gpu_free.iter().filter(|&&m| m < t.milli).map(|&m| u64::from(m)).sum();
    }
    if t.gpus > 0 {
        let whole = nf.gpu_free.iter().filter(|&&m| m == MILLI).count() as u32;
        if whole < t.gpus {
            return total;
        }
        return nf.gpu_free.iter().filter(|&&m| m < MILLI).map(|&m| u64::from(m)).sum();
    }
    // A CPU-only task that fits leaves every free GPU usable by others: no GPU of
    // the node is a fragment for it.
    0
}

/// Expected fragmentation of a node under a workload profile.
pub fn node_fragment(nf: &NodeFree, profile: &WorkloadProfile) -> f64 {
    profile.tasks.iter().map(|t| t.weight * task_fragment(nf, t) as f64).sum()
}

/// Weight of stranded GPUs (free GPUs their node's CPUs and memory cannot feed)
/// against fragmented ones in the default policy's measure. Chosen on the openb
/// default trace (1, 1.5, 2, 3 and 5 give 95.70-95.76% at 100% arrived).
const STRANDED_WEIGHT: f64 = 2.0;

/// Score given per tier of a fraction's GPU in the default policy when the profile
/// has packing patterns: 2 for a partly used GPU the fraction keeps on a pattern, 1
/// for an idle GPU, 0 for a partly used GPU it takes off every pattern. Large
/// enough that the tier decides before the gradient (which is in milli-GPU of
/// fragmentation, at most a few node capacities).
const PATTERN_TIER: f64 = 1e6;

/// Milli-GPU of gradient one GPU-milli taken on a flavor costs per unit of that
/// flavor's pressure (see `Core::flavor_pressure`). Chosen on openb gpuspec20/33
/// (0.5, 1 and 2 give 91-95% on gpuspec33, against 87% without).
const PRESSURE_WEIGHT: f64 = 2.0;

/// Scores of one request (CPUs, whole GPUs, milli) per node, each valid while the
/// node's version is the one it was computed at (`ver` holds version + 1; 0: never).
#[derive(Clone, Debug, Default)]
struct ShapeScores {
    ver: Vec<u32>,
    /// (primary, secondary); `NEG_INFINITY` primary: the request does not fit.
    score: Vec<(f64, f64)>,
    /// For a fraction: the GPU the score chose (`u8::MAX`: none).
    gpu: Vec<u8>,
}

/// Node scores kept between placements: a node's score for a request only changes
/// when the node does, and one placement changes one node. Scanning a cached score
/// per node is what makes scored placement affordable on thousands of nodes.
#[derive(Clone, Debug, Default)]
pub(crate) struct ScoreCache {
    slots: rustc_hash::FxHashMap<(u32, u32, u16), usize>,
    shapes: Vec<ShapeScores>,
    /// Per node: (version + 1, fragmentation) before any placement.
    frag_now: Vec<(u32, f64)>,
    /// Fragmentation by node state (CPUs, memory, sorted free GPU milli) for nodes of
    /// at most 8 GPUs: the same states recur on identical servers.
    frag_memo: rustc_hash::FxHashMap<(u32, u32, u64, [u16; 8]), f64>,
}

impl ScoreCache {
    pub(crate) fn clear(&mut self) {
        *self = ScoreCache::default();
    }
}

/// The cache behind a lock, so that placement (which reads the core) can fill it
/// and the core stays `Sync` for drivers that share it. Uncontended: one pass at a
/// time uses it.
#[derive(Debug, Default)]
pub(crate) struct ScoreCell(std::sync::Mutex<ScoreCache>);

impl ScoreCell {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ScoreCache> {
        // A panic while holding it leaves a cache that may be half written: start over.
        self.0.lock().unwrap_or_else(|poisoned| {
            let mut g = poisoned.into_inner();
            g.clear();
            g
        })
    }

    pub(crate) fn clear(&mut self) {
        self.lock().clear();
    }
}

impl Clone for ScoreCell {
    fn clone(&self) -> Self {
        ScoreCell(std::sync::Mutex::new(self.lock().clone()))
    }
}

impl Core {
    /// Whether single-replica jobs are placed by scoring nodes (a research policy,
    /// or the default policy once a workload profile makes fragmentation measurable)
    /// rather than by the best-fit index.
    pub(crate) fn scores_nodes(&self) -> bool {
        self.policy.placement != PlacementPolicy::Default || !self.workload.tasks.is_empty()
    }

    /// Scores every feasible node of `flavors` for a single-replica job; returns the
    /// best node and, for a fraction, the GPU. Ties go to a seeded hash (see
    /// `ties_by_node_order`).
    pub(crate) fn scored_single(&self, flavors: &[FlavorIdx], s: &Shape, job: JobId) -> Option<(NodeIdx, Option<u32>)> {
        let mut cache = self.score_cache.lock();
        let cache = &mut *cache;
        let nn = self.cluster.nodes.len();
        let key = (s.cpus, s.gpus, s.milli);
        let slot = match cache.slots.get(&key) {
            Some(&i) => i,
            None => {
                cache.shapes.push(ShapeScores { ver: vec![0; nn], score: vec![(f64::NEG_INFINITY, 0.0); nn], gpu: vec![u8::MAX; nn] });
                cache.slots.insert(key, cache.shapes.len() - 1);
                cache.shapes.len() - 1
            }
        };
        if cache.frag_now.len() != nn {
            cache.frag_now = vec![(0, 0.0); nn];
        }
        let mut buf: Vec<u16> = Vec::new();
        let mut best: Option<(f64, f64)> = None;
        for &n in flavors.iter().flat_map(|f| &self.flavor_nodes[f.ix()]) {
            let ni = NodeIdx(n);
            let i = n as usize;
            let v = self.cluster.version(ni).wrapping_add(1).max(1);
            if cache.shapes[slot].ver[i] != v {
                let (score, gpu) = self.score_fresh(ni, s, &mut cache.frag_now, &mut cache.frag_memo, &mut buf);
                let sc = &mut cache.shapes[slot];
                sc.ver[i] = v;
                sc.score[i] = score;
                sc.gpu[i] = gpu.map_or(u8::MAX, |g| g as u8);
            }
            let sc = cache.shapes[slot].score[i];
            // Memory is not part of the cache key (few requests share it): checked here.
            if sc.0 == f64::NEG_INFINITY || self.cluster.mem_free(ni) < s.mem_mib {
                continue;
            }
            if best.is_none_or(|b| sc > b) {
                best = Some(sc);
            }
        }
        let best = best?;
        let seed = self.policy.seed;
        let by_node = self.ties_by_node_order();
        let mut pick: Option<(u64, u32)> = None;
        for &n in flavors.iter().flat_map(|f| &self.flavor_nodes[f.ix()]) {
            let sc = &cache.shapes[slot];
            if sc.score[n as usize] != best || self.cluster.mem_free(NodeIdx(n)) < s.mem_mib {
                continue;
            }
            let tie = if by_node { mix(seed, u64::from(n)) } else { mix2(seed, job.0, u64::from(n)) };
            if pick.is_none_or(|p| tie < p.0) {
                pick = Some((tie, n));
            }
        }
        let (_, n) = pick?;
        let g = cache.shapes[slot].gpu[n as usize];
        Some((NodeIdx(n), (g != u8::MAX).then_some(u32::from(g))))
    }

    /// Whether ties among the best-scored nodes go to one node order fixed by the seed
    /// (the same node wins every tie it is part of) rather than to a fresh draw per job.
    ///
    /// The research policies reproduce the FGD artifact (hkust-adsl/
    /// kubernetes-scheduler-simulator), whose scheduler breaks score ties by node
    /// name after prefixing every node's name with its place in a seeded random
    /// permutation: a fixed random node order per seed. Its `random` policy is a score
    /// plugin that gives one node drawn per pod the top score, hence a fresh draw.
    /// `default` draws per job as well (its ties are rare: best fit breaks them first).
    pub(crate) fn ties_by_node_order(&self) -> bool {
        !matches!(self.policy.placement, PlacementPolicy::Random | PlacementPolicy::Default)
    }

    /// Fragmentation of a node state, memoised for small nodes.
    fn fragment_of(&self, nf: &NodeFree, memo: &mut rustc_hash::FxHashMap<(u32, u32, u64, [u16; 8]), f64>) -> f64 {
        // FGD as published measures CPUs and GPUs only; the default policy also sees
        // memory, which strands GPUs as surely as CPUs do.
        let fgd = self.policy.placement == PlacementPolicy::Fgd;
        let nf = &NodeFree { mem_free: if fgd { u64::MAX } else { nf.mem_free }, ..*nf };
        let measure = |nf: &NodeFree| {
            let f = node_fragment(nf, if fgd { &self.workload } else { &self.workload_by_gpu });
            if fgd { f } else { f + STRANDED_WEIGHT * self.stranded(nf) }
        };
        if nf.gpu_free.len() > 8 {
            return measure(nf);
        }
        let mut key = [0u16; 8];
        key[..nf.gpu_free.len()].copy_from_slice(nf.gpu_free);
        key.sort_unstable();
        *memo.entry((nf.flavor, nf.cpus_free, nf.mem_free, key)).or_insert_with(|| measure(nf))
    }

    /// Free GPU milli of a node that its free CPUs and memory cannot feed, at the
    /// CPUs and memory the workload's GPU tasks ask per milli-GPU: the GPUs a
    /// myopic measure does not yet see stranded, but that the next tasks will find so.
    fn stranded(&self, nf: &NodeFree) -> f64 {
        let free: f64 = nf.gpu_free.iter().map(|&m| f64::from(m)).sum();
        let (c, m) = self.host_per_milli.get(nf.flavor as usize).copied().unwrap_or((0.0, 0.0));
        let by_cpu = if c > 0.0 { f64::from(nf.cpus_free) / c } else { f64::INFINITY };
        let by_mem = if m > 0.0 { nf.mem_free as f64 / m } else { f64::INFINITY };
        (free - by_cpu.min(by_mem)).max(0.0)
    }

    /// Tier of placing a fraction of `milli` on a GPU with `free` milli (see
    /// `PATTERN_TIER`); 0 for every GPU when the profile has no patterns.
    fn pattern_tier(&self, free: u16, milli: u16) -> f64 {
        if self.pattern_residual.is_empty() || self.policy.placement != PlacementPolicy::Default {
            0.0
        } else if free == MILLI {
            1.0
        } else if self.pattern_residual.get(usize::from(free - milli)).copied().unwrap_or(false) {
            2.0
        } else {
            0.0
        }
    }

    /// Score of node `n` for a request, from scratch: `NEG_INFINITY` when it does not
    /// fit (memory aside), and the GPU chosen for a fraction.
    fn score_fresh(
        &self,
        n: NodeIdx,
        s: &Shape,
        frag_now: &mut [(u32, f64)],
        memo: &mut rustc_hash::FxHashMap<(u32, u32, u64, [u16; 8]), f64>,
        buf: &mut Vec<u16>,
    ) -> ((f64, f64), Option<u32>) {
        const NO: ((f64, f64), Option<u32>) = ((f64::NEG_INFINITY, 0.0), None);
        if !self.cluster.status(n).schedulable() || self.cluster.cpus_free(n) < s.cpus {
            return NO;
        }
        let node = self.cluster.node(n);
        let nf = NodeFree {
            gpu_free: self.cluster.gpu_free(n),
            cpus_free: self.cluster.cpus_free(n),
            mem_free: self.cluster.mem_free(n),
            flavor: node.flavor.0,
            gpus: node.gpus,
            cpus: node.cpus,
            mem: node.memory_mib,
        };
        let indexed_whole = self.cluster.indexed_whole(n);
        // Candidate GPUs for a fraction: a whole-free GPU only if the index allows it;
        // a shared one not on a reserved node (it may be what the reservation counts on).
        let capped = self.cluster.capped(n);
        let frac_ok = |m: u16| m >= s.milli && ((m < MILLI && !capped) || (m == MILLI && indexed_whole >= 1));
        if s.milli > 0 {
            if !nf.gpu_free.iter().any(|&m| frac_ok(m)) {
                return NO;
            }
        } else if indexed_whole < s.gpus {
            return NO;
        }
        let cap_gpu = f64::from(nf.gpus.max(1)) * 1000.0;
        let req_gpu = if s.milli > 0 { f64::from(s.milli) } else { f64::from(s.gpus) * 1000.0 };
        let free_gpu: f64 = nf.gpu_free.iter().map(|&m| f64::from(m)).sum();
        let norm = |v: f64, c: f64| if c > 0.0 { v / c } else { 0.0 };
        let max_gpu_milli = i64::from(self.cluster.max_gpus) * 1000;
        // For fractions, the GPU each policy prefers: the tightest that holds it.
        let tightest =
            || nf.gpu_free.iter().enumerate().filter(|(_, m)| frac_ok(**m)).min_by_key(|(i, m)| (**m, *i)).map(|(i, _)| i as u32);
        let gpu = if s.milli > 0 { tightest() } else { None };
        // Best fit: least resources left, each dimension relative to the node's size.
        let bestfit = || {
            -(norm(free_gpu - req_gpu, cap_gpu)
                + norm(f64::from(nf.cpus_free - s.cpus), f64::from(nf.cpus))
                + norm(nf.mem_free.saturating_sub(s.mem_mib) as f64, nf.mem as f64))
        };
        let score = match self.policy.placement {
            PlacementPolicy::Random => (0.0, 0.0),
            PlacementPolicy::Dotprod => (
                norm(req_gpu, cap_gpu) * norm(free_gpu, cap_gpu)
                    + norm(f64::from(s.cpus), f64::from(nf.cpus)) * norm(f64::from(nf.cpus_free), f64::from(nf.cpus))
                    + norm(s.mem_mib as f64, nf.mem as f64) * norm(nf.mem_free as f64, nf.mem as f64),
                0.0,
            ),
            PlacementPolicy::Clustering => {
                // GPU requests already on the node ("affinities": any fraction, or a
                // whole-GPU count): a node holding only this kind first, then one
                // holding it among others, then an idle node, then the rest; fuller nodes first within a tier. Integer
                // points out of 100, as a Kubernetes score plugin gives them.
                if s.gpus == 0 && s.milli == 0 {
                    return ((0.0, 0.0), gpu);
                }
                let (mut same, mut other) = (false, false);
                for nj in &self.node_jobs[n.ix()] {
                    if let Some(j) = self.jobs[nj.job.ix()].as_ref() {
                        if j.shape.gpus == 0 && j.shape.milli == 0 {
                            continue;
                        }
                        // The artifact's "GPU affinity": every fraction is one kind
                        // (`share-gpu`), whole GPUs a kind per count (`<n>-gpu`).
                        let same_kind = if s.milli > 0 { j.shape.milli > 0 } else { j.shape.milli == 0 && j.shape.gpus == s.gpus };
                        if same_kind {
                            same = true;
                        } else {
                            other = true;
                        }
                    }
                }
                let tier = match (same, other) {
                    (true, false) => 75,
                    (true, true) => 50,
                    (false, false) => 25,
                    (false, true) => 0,
                };
                let fullness = 25 * (max_gpu_milli - free_gpu as i64).max(0) / max_gpu_milli.max(1);
                ((tier + fullness) as f64, 0.0)
            }
            PlacementPolicy::Packing => {
                // Integer points out of 100: a shared GPU that holds the fraction
                // (fewer points the more it has left), else idle GPUs of a used node
                // (fewer the more it takes), else an idle node (fewer the more GPUs
                // it has). CPU-only requests score alike everywhere (the artifact's
                // plugin gives them its minimum score): the tie order places them,
                // on the first node of the seed's order that fits.
                if s.gpus == 0 && s.milli == 0 {
                    return ((0.0, 0.0), gpu);
                }
                let whole_free = nf.gpu_free.iter().filter(|&&m| m == MILLI).count() as i64;
                let points = if whole_free == i64::from(nf.gpus) {
                    (33 - whole_free).max(whole_free)
                } else if s.milli > 0 && gpu.is_some_and(|g| nf.gpu_free[g as usize] < MILLI) {
                    let left_pct = i64::from(gpu.map_or(0, |g| nf.gpu_free[g as usize])) * 100 / 1000;
                    (100 - left_pct / 10).max(50)
                } else {
                    let takes = if s.milli > 0 { 1 } else { i64::from(s.gpus) };
                    (50 - takes).max(33)
                };
                (points as f64, 0.0)
            }
            PlacementPolicy::Bestfit => {
                // Half CPU, half GPU left after placing, each over the largest node's
                // size; fewer left is better; integer points out of 100.
                let left = 0.5 * f64::from(nf.cpus_free - s.cpus) / f64::from(self.cluster.max_cpus.max(1))
                    + 0.5 * (free_gpu - req_gpu) / max_gpu_milli.max(1) as f64;
                (((1.0 - left) * 100.0).trunc(), 0.0)
            }
            PlacementPolicy::Fgd | PlacementPolicy::Default => {
                let i = n.ix();
                let v = self.cluster.version(n).wrapping_add(1).max(1);
                if frag_now[i].0 != v {
                    frag_now[i] = (v, self.fragment_of(&nf, memo));
                }
                let before = frag_now[i].1;
                // FGD as published turns the gradient into integer points out of 100
                // (a sigmoid of -delta/1000), so near-equal nodes tie and chance picks
                // among them; the default policy compares the gradients themselves.
                let published = self.policy.placement == PlacementPolicy::Fgd;
                let gradient = |delta: f64| if published { (100.0 / (1.0 + (delta / 1000.0).exp())).trunc() } else { -delta };
                buf.clear();
                buf.extend_from_slice(nf.gpu_free);
                let after_state = |buf: &mut Vec<u16>, g: Option<usize>| {
                    if let Some(g) = g {
                        buf[g] -= s.milli;
                    } else {
                        let mut left = s.gpus;
                        for m in buf.iter_mut() {
                            if left > 0 && *m == MILLI {
                                *m = 0;
                                left -= 1;
                            }
                        }
                    }
                };
                let (cpus_after, mem_after) = (nf.cpus_free - s.cpus, nf.mem_free.saturating_sub(s.mem_mib));
                let mut nf_after = |buf: &[u16]| -> f64 {
                    let after = NodeFree { gpu_free: buf, cpus_free: cpus_after, mem_free: mem_after, ..nf };
                    self.fragment_of(&after, memo)
                };
                let mut best: Option<(f64, Option<u32>)> = None;
                if s.milli > 0 {
                    // GPUs with the same free milli give the same state: try each value once.
                    let mut tried: [u16; 8] = [u16::MAX; 8];
                    let mut ntried = 0;
                    for g in 0..nf.gpu_free.len() {
                        let m = nf.gpu_free[g];
                        if !frac_ok(m) || tried[..ntried.min(8)].contains(&m) {
                            continue;
                        }
                        if ntried < 8 {
                            tried[ntried] = m;
                        }
                        ntried += 1;
                        buf.clear();
                        buf.extend_from_slice(nf.gpu_free);
                        after_state(buf, Some(g));
                        let value = gradient(nf_after(buf) - before) + PATTERN_TIER * self.pattern_tier(m, s.milli);
                        if best.is_none_or(|b| value > b.0) {
                            best = Some((value, Some(g as u32)));
                        }
                    }
                } else {
                    after_state(buf, None);
                    best = Some((gradient(nf_after(buf) - before), None));
                }
                let Some((primary, gpu)) = best else { return NO };
                // The default policy also keeps flavors that some tasks cannot do
                // without for those tasks: a GPU taken there costs its pressure.
                let primary = if published {
                    primary
                } else {
                    primary - PRESSURE_WEIGHT * self.flavor_pressure.get(nf.flavor as usize).copied().unwrap_or(0.0) * req_gpu
                };
                // The default policy breaks fragmentation ties by best fit, where FGD
                // (as published) leaves them to chance.
                let secondary = if published { 0.0 } else { bestfit() };
                return ((primary, secondary), gpu);
            }
        };
        (score, gpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nf(gpu_free: &[u16]) -> NodeFree<'_> {
        NodeFree { gpu_free, cpus_free: 64, mem_free: 1 << 20, flavor: 0, gpus: gpu_free.len() as u32, cpus: 64, mem: 1 << 20 }
    }

    #[test]
    fn fraction_task_fragments_gpus_too_small_for_it() {
        let t = TaskClass { cpus: 1, mem_mib: 1, gpus: 0, milli: 500, flavor_mask: 0, weight: 1.0 };
        assert_eq!(task_fragment(&nf(&[1000, 300, 0, 600]), &t), 300);
    }

    #[test]
    fn whole_gpu_task_fragments_partial_gpus() {
        let t = TaskClass { cpus: 1, mem_mib: 1, gpus: 1, milli: 0, flavor_mask: 0, weight: 1.0 };
        assert_eq!(task_fragment(&nf(&[1000, 300, 0, 600]), &t), 900);
        let t2 = TaskClass { gpus: 2, ..t };
        // Only one whole GPU: the task cannot run here, all free GPU is fragmented.
        assert_eq!(task_fragment(&nf(&[1000, 300, 0, 600]), &t2), 1900);
    }

    /// The research policies break ties by one node order fixed by the seed, as the
    /// FGD artifact's scheduler does: under `packing`, CPU-only pods (which score
    /// alike everywhere) all go to the first node of that order that fits, and so
    /// does the next GPU pod (every node is idle GPU-wise, so the order decides).
    #[test]
    fn packing_puts_cpu_only_pods_on_the_seeds_first_node_that_fits() {
        use crate::testkit::{JobSpecExt, TestEnv, job};
        for seed in [1, 2, 3] {
            let mut env = TestEnv::builder()
                .nodes("s1/b1/l1", 4, 8, "H100")
                .tenant("t", &[("H100", 32.0)])
                .policy(|p| {
                    p.placement = PlacementPolicy::Packing;
                    p.seed = seed;
                })
                .build();
            for id in 1..=4 {
                env.submit(job(id, "t").gpus(0).host(8, 1024));
                env.schedule();
                env.want_placed(id);
            }
            let first = env.nodes_of(1);
            for id in 2..=4 {
                assert_eq!(env.nodes_of(id), first, "seed {seed}: CPU-only pod {id} joins pod 1");
            }
            env.submit(job(5, "t").gpus(1));
            env.schedule();
            assert_eq!(env.nodes_of(5), first, "seed {seed}: the GPU pod's tie goes the same way");
        }
    }

    /// `clustering` groups pods by the artifact's GPU affinity: every fraction is one
    /// kind, whatever its milli, and whole GPUs a kind per count.
    #[test]
    fn clustering_puts_fractions_of_any_size_together() {
        use crate::testkit::{JobSpecExt, TestEnv, job};
        let mut env = TestEnv::builder()
            .nodes("s1/b1/l1", 2, 8, "H100")
            .tenant("t", &[("H100", 16.0)])
            .policy(|p| p.placement = PlacementPolicy::Clustering)
            .build();
        env.submit(job(1, "t").milli(300));
        env.schedule();
        // A whole GPU prefers the idle node to one holding another kind.
        env.submit(job(2, "t").gpus(1));
        env.schedule();
        assert_ne!(env.nodes_of(2), env.nodes_of(1));
        // A 500-milli fraction joins the 300 (same kind), not the fuller whole-GPU node.
        env.submit(job(3, "t").milli(500));
        env.schedule();
        assert_eq!(env.nodes_of(3), env.nodes_of(1));
    }

    /// `random` draws afresh for every pod: CPU-only pods spread over the nodes.
    #[test]
    fn random_draws_a_node_per_pod() {
        use crate::testkit::{JobSpecExt, TestEnv, job};
        let mut env = TestEnv::builder()
            .nodes("s1/b1/l1", 4, 8, "H100")
            .tenant("t", &[("H100", 32.0)])
            .policy(|p| {
                p.placement = PlacementPolicy::Random;
                p.seed = 1;
            })
            .build();
        let mut used = std::collections::BTreeSet::new();
        for id in 1..=16 {
            env.submit(job(id, "t").gpus(0).host(1, 1024));
            env.schedule();
            used.extend(env.nodes_of(id));
        }
        assert!(used.len() > 1, "16 pods drawn independently over 4 nodes use more than one: {used:?}");
    }

    #[test]
    fn pattern_residuals_are_what_part_of_a_pattern_leaves() {
        let r = pattern_residuals(&[vec![470, 470, 50], vec![810]]);
        let good: Vec<usize> = (0..=1000).filter(|&v| r[v]).collect();
        // 470 -> 530, 50 -> 950, 470+50 -> 480, 470+470 -> 60, all three -> 10; 810 -> 190.
        assert_eq!(good, vec![10, 60, 190, 480, 530, 950]);
        assert!(pattern_residuals(&[]).is_empty());
    }

    /// With packing patterns, the default policy keeps a partly used GPU for the
    /// fraction its pattern plans: a 300 beside a 300 would leave 400, which no
    /// pattern of a mix of 700s and 300s completes, so the second 300 opens the idle
    /// GPU and the first one's GPU waits for a 700. Without patterns the gradient
    /// stacks the two 300s, to keep the idle GPU whole for the mix's whole-GPU tasks.
    #[test]
    fn default_keeps_partly_used_gpus_on_their_pattern() {
        use crate::testkit::{JobSpecExt, TestEnv, job};
        let tasks = vec![
            TaskClass { cpus: 1, mem_mib: 1024, gpus: 1, milli: 0, flavor_mask: 0, weight: 0.7 },
            TaskClass { cpus: 1, mem_mib: 1024, gpus: 0, milli: 700, flavor_mask: 0, weight: 0.2 },
            TaskClass { cpus: 1, mem_mib: 1024, gpus: 0, milli: 300, flavor_mask: 0, weight: 0.1 },
        ];
        let gpus_used = |patterns: Vec<Vec<u16>>| {
            let mut env = TestEnv::builder().nodes("s1/b1/l1", 1, 2, "H100").tenant("t", &[("H100", 2.0)]).build();
            env.core.set_workload_profile(WorkloadProfile { tasks: tasks.clone(), fraction_patterns: patterns });
            for id in 1..=2 {
                env.submit(job(id, "t").milli(300).host(1, 1024));
                env.schedule();
                env.want_placed(id);
            }
            let n = env.node("s1-b1-l1-n0");
            env.core.cluster().gpu_free(n).iter().filter(|&&m| m < MILLI).count()
        };
        assert_eq!(gpus_used(vec![vec![700, 300]]), 2, "with patterns the second 300 takes the idle GPU");
        assert_eq!(gpus_used(vec![]), 1, "without, the gradient stacks them");
    }

    #[test]
    fn task_without_host_resources_fragments_everything() {
        let t = TaskClass { cpus: 128, mem_mib: 1, gpus: 1, milli: 0, flavor_mask: 0, weight: 1.0 };
        assert_eq!(task_fragment(&nf(&[1000, 1000]), &t), 2000);
    }
}
