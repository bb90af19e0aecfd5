//! Placement: filter then score, for one job on one flavor.
//!
//! - fractions: the partially used GPU with the least room that holds it (packing
//!   shared GPUs), else a free GPU on the busiest node;
//! - one replica of whole GPUs: best fit over the free-GPU buckets;
//! - a CPU-only replica: the node with the fewest free GPUs that has the CPUs and
//!   memory (it wastes no GPU that a GPU job could use);
//! - gangs: the smallest topology domain that holds every replica (or one at the
//!   required level), nodes chosen to span the fewest leaves;
//! - other scoring policies (`random`, `dotprod`, `clustering`, `packing`, `bestfit`,
//!   `fgd`) score every feasible node for single-replica jobs (see `score`).
//!
//! A placement is a list of `(node, replicas, fraction GPU)`; nothing is taken until
//! `Core::start_job` commits it.

use crate::core::{Core, ShapeKey};
use crate::ids::{DomainIdx, FlavorIdx, JobId, NodeIdx, Time};

/// How many candidate domains a gang placement tries when CPUs or memory rule
/// out the best ones.
const DOMAIN_TRIES: usize = 8;

/// (node, replicas on it, GPU number for a fraction).
pub type Pick = (NodeIdx, u32, Option<u32>);

/// Why no placement was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceFail {
    Capacity,
    /// Enough GPUs, but not within one domain of this level.
    Topology(u8),
}

impl Core {
    /// Finds where a job of shape `sk` fits on flavor `f`, for a run ending at `end`.
    pub(crate) fn find_placement(&self, sk: &ShapeKey, f: FlavorIdx, end: Time, job: JobId) -> Result<Vec<Pick>, PlaceFail> {
        let s = sk.shape;
        if s.replicas == 1 {
            let found = if !self.scores_nodes() {
                if s.milli > 0 {
                    self.cluster.best_fit_fraction(f, s.milli, s.cpus, s.mem_mib).map(|(n, g)| (n, Some(g)))
                } else if s.gpus == 0 {
                    self.cluster.best_fit_host(f, s.cpus, s.mem_mib).map(|n| (n, None))
                } else {
                    self.cluster.best_fit_whole(f, s.gpus, s.cpus, s.mem_mib).map(|n| (n, None))
                }
            } else {
                self.scored_single(&[f], &s, job)
            };
            let found =
                found.or_else(|| if self.resv.is_empty() { None } else { self.reserved_fit(f, s.gpus, s.milli, s.cpus, s.mem_mib, end) });
            return found.map(|(n, g)| vec![(n, 1, g)]).ok_or(PlaceFail::Capacity);
        }
        let r = u64::from(s.replicas);
        let g = s.gpus;
        let levels: &[u8] = match sk.topology {
            Some((l, true)) => &[l, l],
            Some((l, false)) => &[l, 0],
            None => &[0, 0],
        };
        for &lvl in &levels[..if levels[0] == levels[1] { 1 } else { 2 }] {
            // GPUs decide the candidates; CPUs and memory may still rule one out, so
            // a few next-best domains are tried before giving up.
            for d in self.cluster.fitting_domains(f, r, g, lvl, DOMAIN_TRIES) {
                if let Some(p) = self.cluster.pick_in_domain(d, f, r, g, s.cpus, s.mem_mib) {
                    return Ok(p.into_iter().map(|(n, c)| (n, c, None)).collect());
                }
            }
        }
        match sk.topology {
            Some((l, true)) if self.cluster.replica_capacity(DomainIdx(0), f, g) >= r => Err(PlaceFail::Topology(l)),
            _ => Err(PlaceFail::Capacity),
        }
    }

    /// A single-replica job under a scoring policy: the best-scored node over all
    /// `flavors`, else room on reserved nodes for a job that ends in time.
    pub(crate) fn place_scored(&self, sk: &ShapeKey, flavors: &[FlavorIdx], end: Time, job: JobId) -> Option<(FlavorIdx, Vec<Pick>)> {
        let s = sk.shape;
        if let Some((n, g)) = self.scored_single(flavors, &s, job) {
            return Some((self.cluster.node(n).flavor, vec![(n, 1, g)]));
        }
        if self.resv.is_empty() {
            return None;
        }
        flavors.iter().find_map(|&f| self.reserved_fit(f, s.gpus, s.milli, s.cpus, s.mem_mib, end).map(|(n, g)| (f, vec![(n, 1, g)])))
    }

    /// Quick test that a shape cannot fit on flavor `f` whatever the node: compares
    /// with the root's free-GPU histogram. Never says no wrongly.
    pub(crate) fn surely_no_room(&self, sk: &ShapeKey, f: FlavorIdx) -> bool {
        let s = sk.shape;
        if !self.resv.is_empty() {
            return false;
        }
        if s.milli > 0 {
            return self.cluster.max_partial_free(f) < s.milli && self.cluster.max_whole_free(f) == 0;
        }
        if s.gpus == 0 {
            return false;
        }
        self.cluster.replica_capacity(DomainIdx(0), f, s.gpus) < u64::from(s.replicas)
    }
}
