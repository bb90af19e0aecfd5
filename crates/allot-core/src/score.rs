//! Node scores for the research placement policies, each from its description:
//!
//! - `random`: a seeded hash of job and node;
//! - `dotprod`: Tetris-style alignment, the dot product of the job's demand and the
//!   node's free resources, each normalised by the node's capacity; highest wins;
//! - `clustering`: nodes already running replicas of the same GPU request first;
//! - `packing`: used GPUs first, then free GPUs on used nodes, then idle nodes;
//! - `bestfit`: the node left with the least free resources (normalised sum);
//! - `fgd`: fragmentation gradient descent (Weng et al., USENIX ATC'23): the node and
//!   GPU whose choice raises the node's expected fragmentation the least, measured
//!   against a workload profile (task shapes with their popularity).
//!
//! Every score is "higher is better"; ties go to a seeded hash, never to node order.

use crate::cluster::MILLI;
use crate::config::PlacementPolicy;
use crate::core::Core;
use crate::ids::{FlavorIdx, JobId, NodeIdx};
use crate::job::Shape;
use crate::rng::mix2;

/// A task shape and how often it occurs, for fragmentation measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TaskClass {
    pub cpus: u32,
    pub mem_mib: u64,
    /// Whole GPUs (0 for a fraction or a CPU-only task).
    pub gpus: u32,
    /// Milli-GPU of a fraction (0 otherwise).
    pub milli: u16,
    pub weight: f64,
}

/// The task mix fragmentation is measured against.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadProfile {
    pub tasks: Vec<TaskClass>,
}

/// Free resources of one node, as scores see them.
#[derive(Clone, Copy, Debug)]
pub struct NodeFree<'a> {
    pub gpu_free: &'a [u16],
    pub cpus_free: u32,
    pub mem_free: u64,
    pub gpus: u32,
    pub cpus: u32,
    pub mem: u64,
}

/// Milli-GPU of node `nf` that task `t` cannot use (FGD's per-task fragmentation).
pub fn task_fragment(nf: &NodeFree, t: &TaskClass) -> u64 {
    let total: u64 = nf.gpu_free.iter().map(|&m| u64::from(m)).sum();
    if nf.cpus_free < t.cpus || nf.mem_free < t.mem_mib {
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
    // A CPU-only task uses no GPU: for it every free GPU is idle capacity.
    total
}

/// Expected fragmentation of a node under a workload profile.
pub fn node_fragment(nf: &NodeFree, profile: &WorkloadProfile) -> f64 {
    profile.tasks.iter().map(|t| t.weight * task_fragment(nf, t) as f64).sum()
}

impl Core {
    /// Scores every feasible node of `flavors` for a single-replica job; returns the
    /// best node and, for a fraction, the GPU.
    pub(crate) fn scored_single(&self, flavors: &[FlavorIdx], s: &Shape, job: JobId) -> Option<(NodeIdx, Option<u32>)> {
        let seed = self.policy.seed;
        let mut best: Option<(f64, u64, NodeIdx, Option<u32>)> = None;
        let mut buf: Vec<u16> = Vec::new();
        for &n in flavors.iter().flat_map(|f| &self.flavor_nodes[f.ix()]) {
            let ni = NodeIdx(n);
            if !self.cluster.status(ni).schedulable() || !self.cluster.fits_host(ni, s.cpus, s.mem_mib) {
                continue;
            }
            let node = self.cluster.node(ni);
            let free = self.cluster.gpu_free(ni);
            let nf = NodeFree {
                gpu_free: free,
                cpus_free: self.cluster.cpus_free(ni),
                mem_free: self.cluster.mem_free(ni),
                gpus: node.gpus,
                cpus: node.cpus,
                mem: node.memory_mib,
            };
            let Some((score, gpu)) = self.score_node(&nf, s, self.cluster.indexed_whole(ni), ni, job, &mut buf) else { continue };
            let tie = mix2(seed, job.0, u64::from(n));
            if best.as_ref().is_none_or(|b| score > b.0 || (score == b.0 && tie < b.1)) {
                best = Some((score, tie, ni, gpu));
            }
        }
        best.map(|b| (b.2, b.3))
    }

    /// Score of one node, or `None` when the job does not fit on it.
    fn score_node(
        &self,
        nf: &NodeFree,
        s: &Shape,
        indexed_whole: u32,
        n: NodeIdx,
        job: JobId,
        buf: &mut Vec<u16>,
    ) -> Option<(f64, Option<u32>)> {
        // Candidate GPUs for a fraction: a whole-free GPU only if the index allows it;
        // a shared one not on a reserved node (it may be what the reservation counts on).
        let capped = self.cluster.capped(n);
        let frac_ok = |m: u16| m >= s.milli && ((m < MILLI && !capped) || (m == MILLI && indexed_whole >= 1));
        if s.milli > 0 {
            if !nf.gpu_free.iter().any(|&m| frac_ok(m)) {
                return None;
            }
        } else if indexed_whole < s.gpus {
            return None;
        }
        let cap_gpu = f64::from(nf.gpus.max(1)) * 1000.0;
        let req_gpu = if s.milli > 0 { f64::from(s.milli) } else { f64::from(s.gpus) * 1000.0 };
        let free_gpu: f64 = nf.gpu_free.iter().map(|&m| f64::from(m)).sum();
        let norm = |v: f64, c: f64| if c > 0.0 { v / c } else { 0.0 };
        // For fractions, the GPU each policy prefers.
        let tightest =
            || nf.gpu_free.iter().enumerate().filter(|(_, m)| frac_ok(**m)).min_by_key(|(i, m)| (**m, *i)).map(|(i, _)| i as u32);
        let gpu = if s.milli > 0 { tightest() } else { None };
        let score = match self.policy.placement {
            PlacementPolicy::Random | PlacementPolicy::Default => mix2(self.policy.seed, job.0, u64::from(n.0)) as f64,
            PlacementPolicy::Dotprod => {
                norm(req_gpu, cap_gpu) * norm(free_gpu, cap_gpu)
                    + norm(f64::from(s.cpus), f64::from(nf.cpus)) * norm(f64::from(nf.cpus_free), f64::from(nf.cpus))
                    + norm(s.mem_mib as f64, nf.mem as f64) * norm(nf.mem_free as f64, nf.mem as f64)
            }
            PlacementPolicy::Clustering => {
                let same = self.node_jobs[n.ix()]
                    .iter()
                    .filter(|nj| self.jobs[nj.job.ix()].as_ref().is_some_and(|j| j.shape.gpus == s.gpus && j.shape.milli == s.milli))
                    .count();
                same as f64 * 1e6 - free_gpu
            }
            PlacementPolicy::Packing => {
                let used_node = free_gpu < cap_gpu;
                let tier = if s.milli > 0 && gpu.is_some_and(|g| nf.gpu_free[g as usize] < MILLI) {
                    3.0
                } else if used_node {
                    2.0
                } else {
                    1.0
                };
                tier * 1e7 - free_gpu
            }
            PlacementPolicy::Bestfit => {
                -(norm(free_gpu - req_gpu, cap_gpu)
                    + norm(f64::from(nf.cpus_free - s.cpus), f64::from(nf.cpus))
                    + norm((nf.mem_free - s.mem_mib) as f64, nf.mem as f64))
            }
            PlacementPolicy::Fgd => {
                let before = node_fragment(nf, &self.workload);
                let mut best: Option<(f64, Option<u32>)> = None;
                buf.clear();
                buf.extend_from_slice(nf.gpu_free);
                let choices: Vec<u32> = if s.milli > 0 {
                    (0..nf.gpu_free.len() as u32).filter(|&g| frac_ok(nf.gpu_free[g as usize])).collect()
                } else {
                    vec![u32::MAX]
                };
                for g in choices {
                    let mut after = buf.clone();
                    if g == u32::MAX {
                        let mut left = s.gpus;
                        for m in after.iter_mut() {
                            if left > 0 && *m == MILLI {
                                *m = 0;
                                left -= 1;
                            }
                        }
                    } else {
                        after[g as usize] -= s.milli;
                    }
                    let nf2 = NodeFree { gpu_free: &after, cpus_free: nf.cpus_free - s.cpus, mem_free: nf.mem_free - s.mem_mib, ..*nf };
                    let delta = node_fragment(&nf2, &self.workload) - before;
                    if best.is_none_or(|b| -delta > b.0) {
                        best = Some((-delta, (g != u32::MAX).then_some(g)));
                    }
                }
                return best;
            }
        };
        Some((score, gpu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nf(gpu_free: &[u16]) -> NodeFree<'_> {
        NodeFree { gpu_free, cpus_free: 64, mem_free: 1 << 20, gpus: gpu_free.len() as u32, cpus: 64, mem: 1 << 20 }
    }

    #[test]
    fn fraction_task_fragments_gpus_too_small_for_it() {
        let t = TaskClass { cpus: 1, mem_mib: 1, gpus: 0, milli: 500, weight: 1.0 };
        assert_eq!(task_fragment(&nf(&[1000, 300, 0, 600]), &t), 300);
    }

    #[test]
    fn whole_gpu_task_fragments_partial_gpus() {
        let t = TaskClass { cpus: 1, mem_mib: 1, gpus: 1, milli: 0, weight: 1.0 };
        assert_eq!(task_fragment(&nf(&[1000, 300, 0, 600]), &t), 900);
        let t2 = TaskClass { gpus: 2, ..t };
        // Only one whole GPU: the task cannot run here, all free GPU is fragmented.
        assert_eq!(task_fragment(&nf(&[1000, 300, 0, 600]), &t2), 1900);
    }

    #[test]
    fn task_without_host_resources_fragments_everything() {
        let t = TaskClass { cpus: 128, mem_mib: 1, gpus: 1, milli: 0, weight: 1.0 };
        assert_eq!(task_fragment(&nf(&[1000, 1000]), &t), 2000);
    }
}
