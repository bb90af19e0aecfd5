//! Preemption: reclaiming lent quota, and priority classes that may stop lower ones.
//!
//! A job may preempt when (a) its tenant is within its nominal quota for the request
//! (it only takes back what it lent), the victims being jobs of tenants that use more
//! than their nominal somewhere below the two tenants' common ancestor; or (b) its
//! class may preempt lower classes, the victims being preemptible jobs of lower
//! classes whose tenants would not be left entitled to reclaim the room straight
//! back (`would_reclaim_back`). When a tenant's limit (not the cluster's size) blocks the job, only jobs
//! inside that tenant's subtree can make room, so only they are candidates.
//!
//! Victims are tried on the live state with undo: removed one by one in order of
//! least lost work (time since last checkpoint x GPUs) until the job fits, then
//! those not needed are put back, most costly first. The survivors are told to stop
//! with a grace period and their resources pass to the job at once: the plan starts
//! it on them, after they have exited (`Start::after`). Nobody else can take the room
//! in between, and a tenant gets its nominal back within one pass.
//!
//! The candidates of a flavor are listed and sorted once per pass (lazily, on the
//! first search that needs them); each search walks that list.

use crate::cluster::Slot;
use crate::core::{Core, Start, StopReason};
use crate::ids::{FlavorIdx, JobIdx, NodeIdx, TenantIdx, Time};
use crate::job::JobState;
use crate::place::Pick;
use crate::rng::mix;

/// Most jobs one preemption search may take out before giving up.
const MAX_VICTIMS: usize = 1024;

/// No side (`Core::sides_of`): the job's tenant or one of its ancestors.
const NO_SIDE: u32 = u32::MAX;

/// How many times as far down the candidate list as the one by one search went a
/// gang's search by nodes reads (`Core::victims_by_nodes`).
const NODE_SEARCH_REACH: usize = 4;

/// A preemptible running job, as preemption searches see it.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    lost: f64,
    tiebreak: u64,
    job: u32,
    tenant: u32,
    priority: i32,
    milli: u64,
    /// A one-replica job's slot (the node, its whole GPUs or its fraction's GPU),
    /// CPUs and memory, so that searches need not read the job table, which they
    /// reach in random order (a cache miss or two per victim). Kept to one cache
    /// line.
    one_replica: bool,
    frac_gpu: u8,
    node: u32,
    gpu_mask: u64,
    cpus: u32,
    mem_mib: u64,
}

// What a search streams through per candidate: keep it to one cache line.
const _: () = assert!(std::mem::size_of::<Candidate>() <= 64);

impl Candidate {
    /// The slot of a one-replica job.
    fn slot(&self) -> Slot {
        let frac = self.gpu_mask == 0;
        Slot { node: NodeIdx(self.node), gpus: self.gpu_mask, frac_gpu: self.frac_gpu, milli: if frac { self.milli as u16 } else { 0 } }
    }
}

/// What nodes would have free once some victims are gone (a one-replica search
/// adds them one at a time), in buffers shared by the nodes a search touches.
#[derive(Default)]
struct NodesAfter {
    /// Per touched node, its entry in `nodes`.
    at: rustc_hash::FxHashMap<u32, usize>,
    nodes: Vec<NodeAfter>,
    /// The touched nodes' GPUs' free milli, node after node.
    free: Vec<u16>,
    /// Victims taken, each with the one taken before it on the same node (+ 1; 0:
    /// none).
    victims: Vec<(JobIdx, usize)>,
}

struct NodeAfter {
    /// Whether the node may take the job at all: up, not drained, and not reserved
    /// unless the job ends by the reservation's start (as `Core::reserved_fit` lets
    /// it; otherwise whether it may reclaim would depend on whether the reservation's
    /// holder came before it in the pass).
    usable: bool,
    /// Where its GPUs start in `NodesAfter::free`, and how many.
    free_at: usize,
    gpus: usize,
    cpus: u64,
    mem: u64,
    /// Its last victim (+ 1; 0: none) in `NodesAfter::victims`.
    last: usize,
}

impl NodesAfter {
    /// Node `n`'s entry, made on first touch from what the cluster has free now, for
    /// a job ending at `end`.
    fn node(&mut self, core: &Core, n: NodeIdx, end: Time) -> usize {
        if let Some(&i) = self.at.get(&n.0) {
            return i;
        }
        let gpus = core.cluster.gpu_free(n);
        self.nodes.push(NodeAfter {
            usable: core.cluster.status(n).schedulable() && core.resv.on_node(n).is_none_or(|(_, at)| end <= at),
            free_at: self.free.len(),
            gpus: gpus.len(),
            cpus: u64::from(core.cluster.cpus_free(n)),
            mem: core.cluster.mem_free(n),
            last: 0,
        });
        self.free.extend_from_slice(gpus);
        self.at.insert(n.0, self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    /// Victim `v` leaves node `i`.
    fn take(&mut self, i: usize, v: JobIdx) {
        self.victims.push((v, self.nodes[i].last));
        self.nodes[i].last = self.victims.len();
    }

    /// Counts one slot of a victim (of `cpus` and `mem` per slot) on node `i` as free.
    fn remove(&mut self, i: usize, s: &crate::cluster::Slot, cpus: u32, mem: u64) {
        let node = &mut self.nodes[i];
        free_slot(&mut self.free[node.free_at..node.free_at + node.gpus], s);
        node.cpus += u64::from(cpus);
        node.mem += mem;
    }

    /// Whether a one-replica job of `shape` fits on node `i`.
    fn fits(&self, i: usize, shape: &crate::job::Shape) -> bool {
        let node = &self.nodes[i];
        if !node.usable || node.cpus < u64::from(shape.cpus) || node.mem < shape.mem_mib {
            return false;
        }
        let free = &self.free[node.free_at..node.free_at + node.gpus];
        if shape.milli > 0 {
            free.iter().any(|&m| m >= shape.milli)
        } else {
            free.iter().filter(|&&m| m == crate::cluster::MILLI).count() as u32 >= shape.gpus
        }
    }

    /// How many replicas of a gang of `shape` (whole GPUs) node `i` holds.
    fn replicas(&self, i: usize, shape: &crate::job::Shape) -> u32 {
        let node = &self.nodes[i];
        if !node.usable || shape.gpus == 0 {
            return 0;
        }
        let free = &self.free[node.free_at..node.free_at + node.gpus];
        let by_gpus = free.iter().filter(|&&m| m == crate::cluster::MILLI).count() as u32 / shape.gpus;
        let at_most = |r: Option<u64>| r.map_or(u32::MAX, |r| u32::try_from(r).unwrap_or(u32::MAX));
        let by_cpus = at_most(node.cpus.checked_div(u64::from(shape.cpus)));
        let by_mem = at_most(node.mem.checked_div(shape.mem_mib));
        by_gpus.min(by_cpus).min(by_mem)
    }

    /// Node `i`'s victims, in the order taken.
    fn victims_of(&self, i: usize) -> Vec<JobIdx> {
        let mut out = Vec::new();
        let mut at = self.nodes[i].last;
        while at > 0 {
            let (v, prev) = self.victims[at - 1];
            out.push(v);
            at = prev;
        }
        out.reverse();
        out
    }
}

/// A one-replica job's slot (a placeholder for others, never read).
fn one_slot(job: &crate::job::Job) -> Slot {
    match job.alloc.as_ref().map(|a| a.slots.as_slice()) {
        Some([s]) if job.shape.replicas == 1 => *s,
        _ => Slot { node: NodeIdx(u32::MAX), gpus: 0, frac_gpu: 0, milli: 0 },
    }
}

/// Counts a slot's GPUs (or GPU fraction) as free in a node's per-GPU free milli.
fn free_slot(free: &mut [u16], s: &crate::cluster::Slot) {
    if s.milli > 0 {
        free[s.frac_gpu as usize] += s.milli;
    } else {
        for (g, m) in free.iter_mut().enumerate() {
            if s.gpus & (1 << g) != 0 {
                *m = crate::cluster::MILLI;
            }
        }
    }
}

/// What a one-replica reclaim's quota walk goes through (`Core::walk_for_quota`).
struct QuotaWalk<'a, I> {
    f: FlavorIdx,
    /// The victims that make room on a node (out already).
    first: &'a [(JobIdx, bool)],
    /// Candidates in order of lost work.
    list: I,
    qualifies: &'a dyn Fn(&Core, &Candidate) -> Option<bool>,
    live: &'a dyn Fn(&Candidate) -> bool,
    /// Forgets whether jobs are victims where a victim tenant's usage changed.
    forget: &'a dyn Fn(u32),
}

/// A preemption's victims (each with whether it is a reclaim), the preemptor's
/// placement on their room, and the candidates of the victims lifted by them.
type VictimSet = (Vec<(JobIdx, bool)>, Vec<Pick>, rustc_hash::FxHashMap<u32, Candidate>);

/// What a gang's search by nodes goes through (`Core::victims_by_nodes`).
struct NodeVictims<'a, I> {
    f: FlavorIdx,
    /// When the gang would end (a reserved node may take it only if it ends by then).
    end: Time,
    /// Candidates in order of lost work.
    list: I,
    qualifies: &'a dyn Fn(&Core, &Candidate) -> Option<bool>,
    live: &'a dyn Fn(&Candidate) -> bool,
    /// Forgets whether jobs are victims where a victim tenant's usage changed.
    forget: &'a dyn Fn(u32),
}

/// A running preemptible job with what its lost work and a candidate need.
#[derive(Clone, Copy, Debug)]
struct RunningEntry {
    job: u32,
    tenant: u32,
    priority: i32,
    milli: u64,
    started: Time,
    /// Checkpoint interval, ms (0: none).
    checkpoint: Time,
    tiebreak: u64,
    replicas: u32,
    slot: Slot,
    cpus: u32,
    mem_mib: u64,
}

impl RunningEntry {
    /// As `Job::lost_work`: time since the last checkpoint x GPUs; `STARTED_NOW`
    /// for a job started at this instant.
    fn lost_work(&self, now: Time) -> f64 {
        let ran = (now - self.started).max(0);
        if ran == 0 {
            return STARTED_NOW;
        }
        let since = if self.checkpoint > 0 { ran % self.checkpoint } else { ran };
        since as f64 * (self.milli as f64 / 1000.0)
    }
}

/// Running preemptible jobs per flavor, kept dense (swap-remove) as jobs start and
/// stop.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunningSet {
    by_flavor: Vec<Vec<RunningEntry>>,
    /// Per job slot: (flavor, index in its list) + 1; 0: not listed.
    at: Vec<(u32, u32)>,
    /// Per flavor and tenant, the milli-GPU of its listed jobs.
    milli: Vec<Vec<u64>>,
}

impl RunningSet {
    fn insert(&mut self, flavor: FlavorIdx, e: RunningEntry) {
        if self.by_flavor.len() <= flavor.ix() {
            self.by_flavor.resize_with(flavor.ix() + 1, Vec::new);
        }
        if self.at.len() <= e.job as usize {
            self.at.resize(e.job as usize + 1, (0, 0));
        }
        if self.milli.len() <= flavor.ix() {
            self.milli.resize_with(flavor.ix() + 1, Vec::new);
        }
        let sums = &mut self.milli[flavor.ix()];
        if sums.len() <= e.tenant as usize {
            sums.resize(e.tenant as usize + 1, 0);
        }
        sums[e.tenant as usize] += e.milli;
        let list = &mut self.by_flavor[flavor.ix()];
        self.at[e.job as usize] = (flavor.0 + 1, list.len() as u32);
        list.push(e);
    }

    pub(crate) fn remove(&mut self, job: u32) {
        let Some(&(f1, i)) = self.at.get(job as usize) else { return };
        if f1 == 0 {
            return;
        }
        self.at[job as usize] = (0, 0);
        let list = &mut self.by_flavor[f1 as usize - 1];
        let e = list.swap_remove(i as usize);
        self.milli[f1 as usize - 1][e.tenant as usize] -= e.milli;
        if let Some(moved) = list.get(i as usize) {
            self.at[moved.job as usize] = (f1, i);
        }
    }

    fn of_flavor(&self, f: FlavorIdx) -> &[RunningEntry] {
        self.by_flavor.get(f.ix()).map_or(&[], Vec::as_slice)
    }

    /// What tenant `t`'s listed jobs of flavor `f` hold, milli-GPU.
    fn milli_of(&self, f: FlavorIdx, t: usize) -> u64 {
        self.milli.get(f.ix()).and_then(|m| m.get(t)).copied().unwrap_or(0)
    }
}

impl Core {
    /// Turns the preemption searches' shortcuts off or on (on by default). They
    /// change no decision, only how much work a search does: tests compare the two.
    #[doc(hidden)]
    pub fn set_fast_reclaim(&mut self, on: bool) {
        self.fast_reclaim = on;
    }

    /// The dense list of running preemptible jobs equals a recount.
    pub(crate) fn check_preemptible_running(&self) -> Result<(), String> {
        let set = &self.preemptible_running;
        let mut listed = 0;
        for (fi, list) in set.by_flavor.iter().enumerate() {
            for (i, e) in list.iter().enumerate() {
                if set.at.get(e.job as usize) != Some(&(fi as u32 + 1, i as u32)) {
                    return Err(format!("preemptible-running entry of job slot {} is not indexed", e.job));
                }
                let job = self.jobs.get(e.job as usize).and_then(Option::as_ref);
                let ok = job.is_some_and(|j| {
                    j.state == JobState::Running && j.preemptible && j.alloc.as_ref().is_some_and(|a| a.flavor.ix() == fi)
                });
                if !ok {
                    return Err(format!("job slot {} is listed as running preemptible on flavor {fi} but is not", e.job));
                }
                listed += 1;
            }
            for t in 0..self.tenants.len() {
                let held: u64 = list.iter().filter(|e| e.tenant as usize == t).map(|e| e.milli).sum();
                if set.milli_of(FlavorIdx::from(fi), t) != held {
                    return Err(format!(
                        "tenant {t}'s preemptible running jobs of flavor {fi} hold {held} milli-GPU, counted as {}",
                        set.milli_of(FlavorIdx::from(fi), t)
                    ));
                }
            }
        }
        let running = self.jobs.iter().flatten().filter(|j| j.state == JobState::Running && j.preemptible && j.alloc.is_some()).count();
        if running != listed {
            return Err(format!("{running} running preemptible jobs but {listed} listed for preemption"));
        }
        Ok(())
    }
}

/// Per-flavor candidate lists sorted by least lost work, made once per `schedule`
/// call (all its rounds share `now`, so the order of lost work holds) on the first
/// search that needs them.
#[derive(Clone, Debug, Default)]
pub(crate) struct CandidateCache {
    /// The `schedule` call the lists belong to.
    epoch: u64,
    by_flavor: Vec<Option<Vec<Candidate>>>,
    /// Per flavor, the round (`Core::pass`) its list was last sorted for: a new
    /// round merges the jobs started since into the list, as if it were made anew.
    sorted_in: Vec<u64>,
    /// Jobs started in this call after the list was made (lost work 0: they come
    /// first), per flavor.
    fresh: Vec<Vec<Candidate>>,
    /// Listed jobs preempted in this call: no longer candidates. (Nothing else
    /// stops a job during a pass.) Checked here rather than in the job table,
    /// which the lists reach in random order.
    stopped: rustc_hash::FxHashSet<u32>,
    /// Per flavor, the job slots of the last list made, in its order: the next
    /// call's list starts from it. Lost work moves little from one call to the
    /// next, so the sort then mostly finds it in order (most of a steady pass's
    /// search time went into sorting thousands of candidates afresh).
    last_order: Vec<Vec<u32>>,
    /// Per flavor and tenant, where its candidates sit in the flavor's list, in
    /// order: a walk that only some tenants' jobs can qualify in reads only theirs
    /// (`in_order_of`).
    by_tenant: Vec<Vec<Vec<u32>>>,
    /// Per job slot, the list making that last listed it (`making`).
    listed_in: Vec<u64>,
    making: u64,
    /// Room for `sort_fresh` to merge in, kept from search to search.
    merge_buf: Vec<Candidate>,
}

impl CandidateCache {
    /// A job started: once a list exists for this call, it must see the job too.
    pub(crate) fn started(&mut self, epoch: u64, flavor: FlavorIdx, c: Candidate) {
        if self.epoch == epoch && self.by_flavor.get(flavor.ix()).is_some_and(|l| l.is_some()) {
            // Appended: a search sorts them before reading them (`sort_fresh`).
            self.fresh[flavor.ix()].push(c);
        }
    }

    /// A listed or fresh job of `flavor` was preempted in this call.
    fn stopped(&mut self, job: u32) {
        self.stopped.insert(job);
    }
}

/// `x`'s bits as an integer that orders as `f64::total_cmp` orders `x`.
fn ordered_bits(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 { !b } else { b | 1 << 63 }
}

/// The `f64` whose `ordered_bits` are `b`.
fn from_ordered_bits(b: u64) -> f64 {
    f64::from_bits(if b >> 63 == 1 { b & !(1 << 63) } else { !b })
}

/// The lost work of a job started at this instant: -0.0, which sorts before the
/// 0.0 of a job that just checkpointed. A job started in this very `schedule`
/// call has not even launched, so it is the cheapest victim of all; and a later
/// call at the same instant must order it where this one did (among the other
/// jobs started at this instant, by tie-break), or it would pick other victims.
const STARTED_NOW: f64 = -0.0;

/// Least lost work first; ties by the seeded tie-break.
fn by_lost_work(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    a.lost.total_cmp(&b.lost).then(a.tiebreak.cmp(&b.tiebreak))
}

/// Two candidate lists sorted by `by_lost_work`, walked as one: the jobs started
/// in this call among those listed before it that were started at the same
/// instant (by an earlier call), as the next call's one list will have them.
fn in_order<'a>(a: &'a [Candidate], b: &'a [Candidate]) -> impl Iterator<Item = &'a Candidate> {
    let (mut i, mut k) = (0, 0);
    std::iter::from_fn(move || {
        let next = match (a.get(i), b.get(k)) {
            (Some(x), Some(y)) if by_lost_work(x, y) != std::cmp::Ordering::Greater => x,
            (Some(x), None) => x,
            (_, Some(y)) => {
                k += 1;
                return Some(y);
            }
            (None, None) => return None,
        };
        i += 1;
        Some(next)
    })
}

/// Sorts the jobs started in this call by `by_lost_work`. `started` appends them,
/// so the list is sorted up to the jobs started since the last search: those are
/// sorted on their own and merged in (a sort of the whole list would cost
/// O(n log n) per search, or with a stable sort a scratch buffer as long as the
/// list; inserting each in place, O(n) per start, dominated the fill).
fn sort_fresh(fresh: &mut Vec<Candidate>, buf: &mut Vec<Candidate>) {
    let sorted = fresh.windows(2).position(|w| by_lost_work(&w[0], &w[1]) == std::cmp::Ordering::Greater).map_or(fresh.len(), |i| i + 1);
    if sorted == fresh.len() {
        return;
    }
    fresh[sorted..].sort_unstable_by(by_lost_work);
    buf.clear();
    buf.extend(in_order(&fresh[..sorted], &fresh[sorted..]).copied());
    std::mem::swap(fresh, buf);
}

/// Per tenant, the positions of its candidates in `list`, in order.
fn index_by_tenant(list: &[Candidate], tenants: usize, out: &mut Vec<Vec<u32>>) {
    out.iter_mut().for_each(Vec::clear);
    out.resize_with(out.len().max(tenants), Vec::new);
    for (i, c) in list.iter().enumerate() {
        if let Some(at) = out.get_mut(c.tenant as usize) {
            at.push(i as u32);
        }
    }
}

/// `in_order` of the candidates of the tenants in `tenants` only (by tenant),
/// `at` being where each tenant's sit in `cached` (`index_by_tenant`): the same
/// walk with the other tenants' candidates left out, without reading them.
fn in_order_of<'a>(
    fresh: &'a [Candidate],
    cached: &'a [Candidate],
    at: &'a [Vec<u32>],
    tenants: Vec<bool>,
) -> impl Iterator<Item = &'a Candidate> {
    let mut heads: Vec<(&'a [u32], usize)> = at
        .iter()
        .enumerate()
        .filter(|&(t, p)| !p.is_empty() && tenants.get(t).copied().unwrap_or(false))
        .map(|(_, p)| (&p[..], 0))
        .collect();
    let fresh = fresh.iter().filter(move |c| tenants.get(c.tenant as usize).copied().unwrap_or(false));
    // Each chosen tenant's next position (above); the least comes next.
    let listed = std::iter::from_fn(move || {
        let (k, _) = heads.iter().enumerate().filter(|(_, h)| h.1 < h.0.len()).min_by_key(|(_, h)| h.0[h.1])?;
        let h = &mut heads[k];
        let pos = h.0[h.1];
        h.1 += 1;
        cached.get(pos as usize)
    });
    let (mut fresh, mut listed) = (fresh.peekable(), listed.peekable());
    std::iter::from_fn(move || match (fresh.peek(), listed.peek()) {
        (Some(x), Some(y)) if by_lost_work(x, y) != std::cmp::Ordering::Greater => fresh.next(),
        (Some(_), None) => fresh.next(),
        (_, Some(_)) => listed.next(),
        (None, None) => None,
    })
}

impl Core {
    /// Whether `victim_tenant` uses borrowed quota as seen from `tenant`: some tenant on
    /// its path below their common ancestor holds more than its nominal.
    fn borrows_from(&self, victim_tenant: TenantIdx, tenant: TenantIdx, f: FlavorIdx) -> bool {
        let mut x = Some(victim_tenant);
        while let Some(v) = x {
            if self.tenants.is_ancestor_or_self(v, tenant) {
                return false;
            }
            if self.tenants.held(v, f) > self.tenants.quota(v, f).nominal {
                return true;
            }
            x = self.tenants.tenants[v.ix()].parent;
        }
        false
    }

    /// Whether stopping a victim of `victim_tenant` (`victim_milli`, of which
    /// `out` is still counted in its tenants' usage) for a job of `tenant` (`need`,
    /// whose lowest tenant over its nominal with the job is `over`) could let the
    /// victim's side reclaim the room straight back. It could when the job's line
    /// borrows below the two tenants' common ancestor and either
    /// - the victim's tenant is on another branch, and the tenant just below that
    ///   ancestor on its path would be under its nominal: some job under it may be
    ///   entitled (not asked: whether such a job waits); or
    /// - the victim's tenant is an ancestor of the job's (the job borrows its
    ///   quota), and the victim itself, requeued, would fit within its nominal
    ///   next to the job. Another of its waiting jobs might still reclaim: a known
    ///   gap (docs/core-design-notes.md 21).
    ///
    /// A priority class may not take such a victim: a tenant's guarantee outranks
    /// other tenants' classes (as in Kueue's cohorts), and a preemption undone in
    /// the next pass only loses both jobs' work.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn would_reclaim_back(
        &self,
        victim_tenant: TenantIdx,
        victim_milli: u64,
        out: u64,
        tenant: TenantIdx,
        need: u64,
        over: Option<TenantIdx>,
        f: FlavorIdx,
    ) -> bool {
        if over.is_none_or(|o| self.tenants.is_ancestor_or_self(o, victim_tenant)) {
            return false;
        }
        let ts = &self.tenants;
        if ts.is_ancestor_or_self(victim_tenant, tenant) {
            return victim_tenant == TenantIdx(0)
                || ts.held(victim_tenant, f).saturating_sub(out) + victim_milli + need <= ts.quota(victim_tenant, f).nominal;
        }
        let mut side = victim_tenant;
        while let Some(p) = ts.tenants[side.ix()].parent
            && !ts.is_ancestor_or_self(p, tenant)
        {
            side = p;
        }
        ts.held(side, f).saturating_sub(out) < ts.quota(side, f).nominal
    }

    /// The sorted candidate list of flavor `f` for this `schedule` call.
    fn candidates(&mut self, f: FlavorIdx, now: Time) -> Vec<Candidate> {
        let cache = &mut self.preempt_cache;
        if cache.epoch != self.epoch {
            cache.epoch = self.epoch;
            cache.by_flavor = vec![None; self.cluster.flavors.len()];
            cache.fresh = vec![vec![]; self.cluster.flavors.len()];
            cache.sorted_in = vec![0; self.cluster.flavors.len()];
            cache.stopped.clear();
            cache.by_tenant.resize_with(self.cluster.flavors.len(), Vec::new);
        }
        let tenants = self.tenants.len();
        if let Some(mut list) = cache.by_flavor[f.ix()].take() {
            if cache.sorted_in[f.ix()] != self.pass {
                cache.sorted_in[f.ix()] = self.pass;
                let stopped = &cache.stopped;
                list.retain(|c| !stopped.contains(&c.job));
                list.append(&mut cache.fresh[f.ix()]);
                list.sort_by(by_lost_work);
                index_by_tenant(&list, tenants, &mut cache.by_tenant[f.ix()]);
            }
            return list;
        }
        cache.sorted_in[f.ix()] = self.pass;
        let running = &self.preemptible_running;
        let candidate = |e: &RunningEntry, lost: f64| Candidate {
            lost,
            tiebreak: e.tiebreak,
            job: e.job,
            tenant: e.tenant,
            priority: e.priority,
            milli: e.milli,
            one_replica: e.replicas == 1,
            frac_gpu: e.slot.frac_gpu,
            node: e.slot.node.0,
            gpu_mask: e.slot.gpus,
            cpus: e.cpus,
            mem_mib: e.mem_mib,
        };
        // Sorted as 16-byte keys (lost work's bits, tie-break) with each entry's
        // index, not as candidates (a whole cache line each), then listed. The keys
        // are distinct (the tie-break is the job's), so whatever order they start
        // in, they end in the one order; they start in the last list's, then the
        // jobs it did not have, and a stable sort (which finds runs) is quick on it.
        let entries = running.of_flavor(f);
        let key = |e: &RunningEntry| (u128::from(ordered_bits(e.lost_work(now))) << 64) | u128::from(e.tiebreak);
        cache.making += 1;
        let making = cache.making;
        if cache.last_order.len() < cache.by_flavor.len() {
            cache.last_order.resize_with(cache.by_flavor.len(), Vec::new);
        }
        if cache.listed_in.len() < running.at.len() {
            cache.listed_in.resize(running.at.len(), 0);
        }
        // Keys worked out in the entries' order (reading each entry once, in
        // turn), then gathered in the last list's order.
        let by_entry: Vec<u128> = entries.iter().map(key).collect();
        let mut keys: Vec<(u128, u32)> = Vec::with_capacity(entries.len());
        for &job in &cache.last_order[f.ix()] {
            if let Some(&(f1, i)) = running.at.get(job as usize)
                && f1 == f.0 + 1
                && cache.listed_in[job as usize] != making
            {
                cache.listed_in[job as usize] = making;
                keys.push((by_entry[i as usize], i));
            }
        }
        for (i, e) in entries.iter().enumerate() {
            if cache.listed_in[e.job as usize] != making {
                cache.listed_in[e.job as usize] = making;
                keys.push((by_entry[i], i as u32));
            }
        }
        keys.sort_by_key(|k| k.0);
        let order = &mut cache.last_order[f.ix()];
        order.clear();
        order.extend(keys.iter().map(|&(_, i)| entries[i as usize].job));
        let list: Vec<Candidate> =
            keys.iter().map(|&(k, i)| candidate(&entries[i as usize], from_ordered_bits((k >> 64) as u64))).collect();
        index_by_tenant(&list, tenants, &mut self.preempt_cache.by_tenant[f.ix()]);
        list
    }

    /// Tries to make room for pending job `j` by preemption. On success the victims
    /// are stopping and `j` is started on their room; returns its `Start`, and
    /// whether the victims freed more than `j` took (room other jobs may use), and
    /// the victims' tenants (they got quota back).
    /// With `booked`, admission counts the quota this round's reservations booked
    /// (the job would still run when one of them starts).
    pub(crate) fn try_preempt(&mut self, j: JobIdx, now: Time, booked: bool) -> Option<(Start, bool, Vec<TenantIdx>)> {
        self.search_objected = false;
        let objected = std::cell::Cell::new(false);
        let job = self.job_at(j);
        let (tenant, class, id) = (job.tenant, job.class, job.id);
        let need = job.shape.total_milli();
        let end = now + job.walltime;
        let shape_id = self.hot[j.ix()].shape as usize;
        let sk = self.shapes[shape_id].clone();
        let prio = self.classes[class.ix()].priority;
        let may_preempt_lower = self.classes[class.ix()].preempt_lower;
        for f in job.flavors.clone() {
            // Reclaim is the job's own tenant taking back what it lent. It must stay
            // within its nominal, and so must every ancestor up to where the victim's
            // line joins: the lowest tenant on the path that would go over (`over`)
            // bounds where victims may come from, or the reclaim would only make that
            // ancestor a borrower for its siblings to reclaim from in turn.
            let over = self.first_over_nominal(tenant, f, need);
            let entitled = over != Some(tenant);
            if !entitled && !may_preempt_lower {
                continue;
            }
            let admits = |core: &Core| {
                if booked { core.tenants.can_admit_booked(tenant, f, need) } else { core.tenants.can_admit(tenant, f, need) }
            };
            let (scope, room) = match admits(self) {
                Err(b) if b.tenant != TenantIdx(0) => (b.tenant, b.room),
                _ => {
                    let cap = self.cluster.capacity_gpus(f) * 1000;
                    (TenantIdx(0), cap.saturating_sub(self.tenants.total_usage(f)))
                }
            };
            let in_scope: Vec<bool> =
                (0..self.tenants.len()).map(|t| self.tenants.is_ancestor_or_self(scope, TenantIdx::from(t))).collect();
            let reclaims_from = |core: &Core, t: TenantIdx| {
                entitled && over.is_none_or(|o| core.tenants.is_ancestor_or_self(o, t)) && core.borrows_from(t, tenant, f)
            };
            // Whether a tenant's jobs may be victims now: a walk only takes victims
            // out, and taking usage out never makes a tenant borrow, so no other
            // tenant's ever is in this search.
            let may_qualify = |core: &Core| -> Vec<bool> {
                (0..core.tenants.len()).map(|t| in_scope[t] && (may_preempt_lower || reclaims_from(core, TenantIdx::from(t)))).collect()
            };
            if self.fast_reclaim {
                // What those tenants' candidates hold bounds what any walk could
                // take. Kept per tenant as jobs start and stop, so a search these
                // settle makes no candidate list.
                let q = may_qualify(self);
                let out =
                    || (0..self.tenants.len()).filter(|&t| q[t]).map(|t| (TenantIdx::from(t), self.preemptible_running.milli_of(f, t)));
                if out().map(|(_, m)| m).sum::<u64>() + room < need {
                    continue;
                }
                // Admission only grows as usage falls: a job that quota refuses with
                // all of them out is refused whichever victims a walk would take.
                // (Not for a class that preempts lower ones: its walks may find a
                // victim's tenant objecting, which the round goes on to use.)
                if !may_preempt_lower && admits(self).is_err() && !self.tenants.admits_with_out(tenant, f, need, booked, out()) {
                    continue;
                }
            }
            let cached = self.candidates(f, now);
            // Jobs started in this call first (they lose no work), then the rest.
            // The lists are taken out of the cache for the search and put back
            // before anything starts or stops (`restore`).
            let mut fresh = std::mem::take(&mut self.preempt_cache.fresh[f.ix()]);
            sort_fresh(&mut fresh, &mut self.preempt_cache.merge_buf);
            let stopped = std::mem::take(&mut self.preempt_cache.stopped);
            let live = |c: &Candidate| !stopped.contains(&c.job);
            let list = || in_order(&fresh, &cached);
            let at = std::mem::take(&mut self.preempt_cache.by_tenant[f.ix()]);
            // Whether a candidate may be taken now: a reclaim victim only while its
            // tenant still borrows (re-checked as victims are taken out, so reclaim
            // stops at the borrower's nominal instead of swinging past it).
            // Whether a tenant's jobs are reclaim victims depends on the tenant alone
            // (and on usage, which changes only as victims are taken out): worked out
            // once per tenant, forgotten for its side after each victim
            // (`forget_victims`). 0: not known yet, 1: yes, 2: no.
            let reclaimable: Vec<std::cell::Cell<u8>> = vec![std::cell::Cell::new(0); self.tenants.len()];
            // A change in what tenant `u` holds changes the answer only for the
            // tenants on its side: those below the same child of the common
            // ancestor of `u` and the job's tenant (whether a tenant borrows is read
            // on its path up to there); none for a tenant on the job's own path.
            let sides = self.sides_of(tenant);
            let forget_victims = |u: u32| {
                let side = sides[u as usize];
                if side != NO_SIDE {
                    reclaimable.iter().zip(&sides).filter(|&(_, &s)| s == side).for_each(|(r, _)| r.set(0));
                }
            };
            let qualifies = |core: &Core, c: &Candidate| -> Option<bool> {
                let t = c.tenant as usize;
                if !in_scope[t] {
                    return None;
                }
                let r = &reclaimable[t];
                if r.get() == 0 {
                    r.set(if reclaims_from(core, TenantIdx(c.tenant)) { 1 } else { 2 });
                }
                if r.get() == 1 {
                    Some(true)
                } else if may_preempt_lower && c.priority < prio {
                    if core.would_reclaim_back(TenantIdx(c.tenant), c.milli, c.milli, tenant, need, over, f) {
                        objected.set(true);
                        return None;
                    }
                    Some(false)
                } else {
                    None
                }
            };
            let reclaim_of =
                |core: &Core, v: JobIdx| -> bool { reclaims_from(core, core.jobs[v.ix()].as_ref().map_or(TenantIdx(0), |vj| vj.tenant)) };
            // The walks below read only the candidates of tenants whose jobs may
            // qualify when the walk begins (`may_qualify`).
            let list_of = |core: &Core| {
                let tenants = if core.fast_reclaim { may_qualify(core) } else { vec![true; core.tenants.len()] };
                in_order_of(&fresh, &cached, &at, tenants)
            };
            let mut picked: Vec<(JobIdx, bool)> = Vec::new();
            let mut cand_milli = 0u64;
            for c in list_of(self) {
                if cand_milli + room >= need {
                    break;
                }
                if qualifies(self, c).is_some() && live(c) {
                    cand_milli += c.milli;
                }
            }
            // Not even every candidate together would make room: don't search.
            if cand_milli + room < need {
                self.restore_candidates(f, cached, fresh, stopped, at);
                continue;
            }
            let mut placed: Option<Vec<Pick>> = None;
            // A one-replica job needs room on one node: first find the node made
            // fit by the cheapest victims (candidates come in order of lost work, so
            // the first node to fit has the smallest largest loss), take those.
            let mut first: Vec<(JobIdx, bool)> = Vec::new();
            if sk.shape.replicas == 1 {
                // Per node: the victims on it so far and what they would leave free.
                let mut per_node = NodesAfter::default();
                'search: for c in list_of(self) {
                    let Some(reclaim) = qualifies(self, c) else { continue };
                    let v = JobIdx(c.job);
                    if !live(c) {
                        continue;
                    }
                    let one = [c.slot()];
                    let slots = if c.one_replica {
                        &one[..]
                    } else {
                        let Some(alloc) = self.jobs[v.ix()].as_ref().and_then(|vj| vj.alloc.as_ref()) else { continue };
                        alloc.slots.as_slice()
                    };
                    let mut last = None;
                    for s in slots {
                        let n = s.node;
                        if last == Some(n) {
                            continue;
                        }
                        last = Some(n);
                        let acc = per_node.node(self, n, end);
                        per_node.take(acc, v);
                        for vs in slots.iter().filter(|vs| vs.node == n) {
                            per_node.remove(acc, vs, c.cpus, c.mem_mib);
                        }
                        if per_node.fits(acc, &sk.shape) {
                            let chosen = per_node.victims_of(acc);
                            first = chosen.iter().map(|&x| (x, reclaim_of(self, x))).collect();
                            let _ = reclaim;
                            break 'search;
                        }
                    }
                }
                for &(v, _) in &first {
                    self.lift(v, true);
                }
                // The node's victims were picked one by one against usage with none
                // of them out: together they may leave a tenant below its guarantee
                // that a priority victim alone would not.
                if first.iter().any(|&(v, reclaim)| {
                    let vj = self.job_at(v);
                    !reclaim && self.would_reclaim_back(vj.tenant, vj.shape.total_milli(), 0, tenant, need, over, f)
                }) {
                    objected.set(true);
                    for &(v, _) in first.iter().rev() {
                        self.lift(v, false);
                    }
                    first.clear();
                }
                reclaimable.iter().for_each(|r| r.set(0));
                picked.extend(first.iter().copied());
                if !picked.is_empty()
                    && admits(self).is_ok()
                    && let Ok(p) = self.find_placement(&sk, f, end, id)
                {
                    placed = Some(p);
                }
            }
            // A one-replica job whose node the cheapest victims free but whose quota
            // still refuses it needs victims for quota alone (most candidates give
            // nothing back where the job is refused: a tenant below its guarantee
            // absorbs what its borrowing team frees). While `first` stays out the job
            // can always be placed, so which of those victims the search below would
            // keep depends on quota alone: the walk charges tenants only, and only
            // the victims it keeps leave the cluster.
            // A one-replica job that some node holds as things are, refused by quota
            // alone, needs victims for quota only (no candidate's node need be the
            // one: the search above found none to free).
            let fits_now = sk.shape.replicas == 1 && first.is_empty() && self.find_placement(&sk, f, end, id).is_ok();
            let mut kept_for_quota: Vec<(JobIdx, bool)> = Vec::new();
            if self.fast_reclaim
                && placed.is_none()
                && (!first.is_empty() || fits_now)
                && admits(self).is_err()
                && self.find_placement(&sk, f, end, id).is_ok()
            {
                let walk = QuotaWalk { f, first: &first, list: list_of(self), qualifies: &qualifies, live: &live, forget: &forget_victims };
                let walked = self.walk_for_quota(walk, &|core: &Core| admits(core).is_ok());
                if let Some(kept) = &walked {
                    for &(v, _) in kept {
                        self.lift_slots(v, true);
                    }
                    placed = self.find_placement(&sk, f, end, id).ok();
                    debug_assert!(placed.is_some(), "room made by the first victims was lost");
                }
                kept_for_quota = walked.unwrap_or_default();
                if placed.is_none() {
                    for &(v, _) in kept_for_quota.iter().chain(first.iter()).rev() {
                        self.lift(v, false);
                    }
                    self.restore_candidates(f, cached, fresh, stopped, at);
                    continue;
                }
            }
            // A one-replica job that no node can hold even without its candidates
            // cannot be helped; otherwise (gangs, or quota still short) take more
            // victims in order of lost work, testing after batches of doubling size
            // (the put-back below trims the excess).
            let mut hopeless = sk.shape.replicas == 1 && first.is_empty() && !fits_now;
            // A gang whose search cannot succeed (most that start fail) would lift up
            // to `MAX_VICTIMS` jobs off the cluster and put them back; a dry run on
            // GPU counts says so first, at a tenth of the cost, and leaves the search
            // to the real thing when it may succeed (so decisions are the same).
            if self.fast_reclaim && placed.is_none() && !hopeless && sk.shape.replicas > 1 && sk.shape.milli == 0 && picked.is_empty() {
                let victim = |core: &Core, c: &Candidate| if live(c) { qualifies(core, c) } else { None };
                let within = sk.topology.filter(|t| t.1).map(|t| t.0);
                hopeless = !self.gang_may_place(&sk.shape, within, f, list_of(self), &victim, &forget_victims);
            }
            // The general search's victims by job slot: lifting a one-replica job
            // by its candidate spares a read of the job table per trial.
            let mut known: rustc_hash::FxHashMap<u32, Candidate> = Default::default();
            if placed.is_none() && !hopeless && kept_for_quota.is_empty() {
                let mut next_check = picked.len() + 1;
                let mut in_picked: rustc_hash::FxHashSet<u32> = picked.iter().map(|p| p.0.0).collect();
                self.cluster.defer_index(true);
                for c in list_of(self) {
                    if picked.len() >= MAX_VICTIMS {
                        break;
                    }
                    let Some(reclaim) = qualifies(self, c) else { continue };
                    let v = JobIdx(c.job);
                    if !live(c) || !in_picked.insert(v.0) {
                        continue;
                    }
                    self.lift_known(v, true, f, Some(c));
                    known.insert(c.job, *c);
                    forget_victims(c.tenant);
                    picked.push((v, reclaim));
                    if picked.len() < next_check {
                        continue;
                    }
                    next_check = picked.len() * 2;
                    self.cluster.flush_index();
                    if admits(self).is_ok()
                        && let Ok(p) = self.find_placement(&sk, f, end, id)
                    {
                        placed = Some(p);
                        break;
                    }
                }
                self.cluster.defer_index(false);
                if placed.is_none()
                    && !picked.is_empty()
                    && admits(self).is_ok()
                    && let Ok(p) = self.find_placement(&sk, f, end, id)
                {
                    placed = Some(p);
                }
            }
            let Some(picks) = placed else {
                self.restore_candidates(f, cached, fresh, stopped, at);
                self.cluster.defer_index(true);
                for &(v, _) in picked.iter().rev() {
                    self.lift_known(v, false, f, known.get(&v.0));
                }
                self.cluster.defer_index(false);
                continue;
            };
            let fits = |core: &Core| if admits(core).is_ok() { core.find_placement(&sk, f, end, id).ok() } else { None };
            let (mut victims, mut picks) = self.put_back_unneeded(&picked, kept_for_quota, picks, f, &known, &fits);
            // A gang takes its victims one by one in order of lost work, which may
            // scatter them over many nodes; clearing the nodes that lose least per
            // replica may lose less. With `policy.victims_by_nodes` the cheaper set
            // is taken (only where the one by one search succeeded: a gang preempts
            // no more often than without).
            if self.policy.victims_by_nodes && sk.shape.replicas > 1 && sk.shape.milli == 0 {
                let by_nodes = NodeVictims { f, end, list: list(), qualifies: &qualifies, live: &live, forget: &forget_victims };
                if let Some(better) = self.victims_by_nodes(&sk, &victims, picked.len(), &known, by_nodes, &fits) {
                    (victims, picks, known) = better;
                }
            }
            self.restore_candidates(f, cached, fresh, stopped, at);
            // The victims' resources pass to the job: put them back for the
            // bookkeeping of the stop, then stop them and start the job.
            for &(v, _) in &victims {
                self.lift_known(v, false, f, known.get(&v.0));
            }
            let grace = self.policy.grace_period_s;
            let mut after = Vec::with_capacity(victims.len());
            // Per node, what the victims free; the job's start takes its share back
            // below. It may sit partly on other nodes: what is left is surplus room.
            let mut freed: rustc_hash::FxHashMap<NodeIdx, i64> = Default::default();
            for &(v, _) in &victims {
                for s in self.job_at(v).alloc.as_ref().map_or(&[][..], |a| a.slots.as_slice()) {
                    *freed.entry(s.node).or_default() += slot_milli(s);
                }
            }
            let victim_tenants: Vec<TenantIdx> = victims.iter().map(|&(v, _)| self.job_at(v).tenant).collect();
            for &(v, reclaim) in &victims {
                after.push(self.job_at(v).id);
                self.preempt_now(v, StopReason::Preempted { by: id, reclaim }, grace);
                self.preempt_cache.stopped(v.0);
            }
            let mut start = self.start_job(j, f, &picks, now);
            start.after = after;
            for s in &start.slots {
                if let Some(m) = freed.get_mut(&s.node) {
                    *m -= slot_milli(s);
                }
            }
            let surplus = freed.values().any(|&m| m > 0);
            return Some((start, surplus, victim_tenants));
        }
        self.search_objected = objected.get();
        None
    }

    /// The quota part of a one-replica reclaim (see `try_preempt`): takes the
    /// walk's candidates out of their tenants' usage, in order, until `admits`, then
    /// puts back, costliest first, those admission does not need. Returns those
    /// kept (still out of their tenants' usage, still on the cluster), in the order
    /// they were kept; `None` (usage restored) when no `MAX_VICTIMS` victims make
    /// admission. Exactly what the general search would keep: with the first
    /// victims out, each of its placement checks succeeds.
    fn walk_for_quota<'a>(
        &mut self,
        w: QuotaWalk<'a, impl Iterator<Item = &'a Candidate>>,
        admits: &dyn Fn(&Core) -> bool,
    ) -> Option<Vec<(JobIdx, bool)>> {
        let mut taken: Vec<(JobIdx, bool, TenantIdx, u64)> = Vec::new();
        let mut seen: rustc_hash::FxHashSet<u32> = w.first.iter().map(|p| p.0.0).collect();
        let mut admitted = false;
        for c in w.list {
            if w.first.len() + taken.len() >= MAX_VICTIMS {
                break;
            }
            let Some(reclaim) = (w.qualifies)(self, c) else { continue };
            if !(w.live)(c) || !seen.insert(c.job) {
                continue;
            }
            self.tenants.charge(TenantIdx(c.tenant), w.f, c.milli, false);
            (w.forget)(c.tenant);
            taken.push((JobIdx(c.job), reclaim, TenantIdx(c.tenant), c.milli));
            if admits(self) {
                admitted = true;
                break;
            }
        }
        if !admitted {
            for &(_, _, t, m) in taken.iter().rev() {
                self.tenants.charge(t, w.f, m, true);
                (w.forget)(t.0);
            }
            return None;
        }
        let mut kept = Vec::new();
        for &(v, reclaim, t, m) in taken.iter().rev() {
            self.tenants.charge(t, w.f, m, true);
            if !admits(self) {
                self.tenants.charge(t, w.f, m, false);
                kept.push((v, reclaim));
            }
        }
        Some(kept)
    }

    /// Whether the victim search for a gang of whole-GPU `shape` replicas on flavor
    /// `f` may place it: the search's own sequence of victims (`victim` says whether a
    /// candidate is one, as tenants' usage falls), with its checks after 1, 2, 4, ...
    /// victims, on GPU counts alone, within one domain of level `within` if the gang
    /// requires one (an upper bound: reserved nodes' caps, CPUs, memory and quota
    /// only rule more out). Tenants' usage is lowered as the search would and
    /// restored before returning; the cluster is not touched.
    fn gang_may_place<'a>(
        &mut self,
        shape: &crate::job::Shape,
        within: Option<u8>,
        f: FlavorIdx,
        cands: impl Iterator<Item = &'a Candidate>,
        victim: &dyn Fn(&Core, &Candidate) -> Option<bool>,
        forget: &dyn Fn(u32),
    ) -> bool {
        let g = shape.gpus.max(1);
        let need = u64::from(shape.replicas);
        // Replicas the index could expose (in the best domain of level `within`: no
        // domain untouched by victims holds the gang, unless one does already), per
        // touched domain what it could, and per touched node its GPUs' free milli and
        // its part of that.
        let within = within.filter(|&l| l > 0);
        let mut bound = match within {
            None => self.cluster.replica_capacity(crate::ids::DomainIdx(0), f, g),
            Some(l) if self.cluster.smallest_domain(f, need, g, l).is_some() => need,
            Some(_) => 0,
        };
        let mut domains: rustc_hash::FxHashMap<u32, u64> = Default::default();
        // Per touched node: where its GPUs' free milli start in `free`, and its part.
        let mut nodes: rustc_hash::FxHashMap<u32, (usize, u64)> = Default::default();
        let mut free: Vec<u16> = Vec::new();
        let mut taken: Vec<(TenantIdx, u64)> = Vec::new();
        let mut seen: rustc_hash::FxHashSet<u32> = Default::default();
        let mut next_check = 1;
        let mut may = false;
        for c in cands {
            if taken.len() >= MAX_VICTIMS {
                break;
            }
            if victim(self, c).is_none() || !seen.insert(c.job) {
                continue;
            }
            let one = [c.slot()];
            let slots = if c.one_replica {
                Some(&one[..])
            } else {
                self.jobs.get(c.job as usize).and_then(Option::as_ref).and_then(|j| j.alloc.as_ref()).map(|a| a.slots.as_slice())
            };
            if let Some(slots) = slots {
                for s in slots {
                    let n = s.node;
                    if !self.cluster.status(n).schedulable() {
                        continue;
                    }
                    let cluster = &self.cluster;
                    let gpus = cluster.gpu_free(n);
                    let (at, part) = nodes.entry(n.0).or_insert_with(|| {
                        free.extend_from_slice(gpus);
                        (free.len() - gpus.len(), u64::from(cluster.indexed_whole(n) / g))
                    });
                    let node_free = &mut free[*at..*at + gpus.len()];
                    free_slot(node_free, s);
                    let whole = node_free.iter().filter(|&&m| m == crate::cluster::MILLI).count() as u64;
                    let whole = whole.min(u64::from(cluster.index_cap(n)));
                    let now = (whole / u64::from(g)).max(*part);
                    let more = now - *part;
                    *part = now;
                    match within {
                        None => bound += more,
                        Some(l) if more > 0 => {
                            let d = cluster.domain_at(n, l);
                            let cap = domains.entry(d.0).or_insert_with(|| cluster.replica_capacity(d, f, g));
                            *cap += more;
                            bound = bound.max(*cap);
                        }
                        Some(_) => {}
                    }
                }
            }
            self.tenants.charge(TenantIdx(c.tenant), f, c.milli, false);
            taken.push((TenantIdx(c.tenant), c.milli));
            forget(c.tenant);
            if (taken.len() as u64) < next_check {
                continue;
            }
            next_check = taken.len() as u64 * 2;
            if bound >= need {
                may = true;
                break;
            }
        }
        may |= !taken.is_empty() && bound >= need;
        for &(t, m) in taken.iter().rev() {
            self.tenants.charge(t, f, m, true);
            forget(t.0);
        }
        may
    }

    /// Puts a search's candidate lists back into the cache.
    /// Puts back the victims in `picked` that the job does not need, costliest
    /// first (those in `victims`, kept for quota, are decided already), all out on
    /// entry with the job placed at `picks` (`fits` says where it fits, if it
    /// does). Returns the victims that must stay out (still out) and the job's
    /// placement. The job fits with more victims out whenever it fits with fewer
    /// (but for the placement search's limit on domains tried), so a run of
    /// victims that can all go back together would each have gone back alone:
    /// runs of doubling length are tried, halved on failure down to the one victim
    /// that must stay out.
    fn put_back_unneeded(
        &mut self,
        picked: &[(JobIdx, bool)],
        mut victims: Vec<(JobIdx, bool)>,
        mut picks: Vec<Pick>,
        f: FlavorIdx,
        known: &rustc_hash::FxHashMap<u32, Candidate>,
        fits: &dyn Fn(&Core) -> Option<Vec<Pick>>,
    ) -> (Vec<(JobIdx, bool)>, Vec<Pick>) {
        let back: Vec<(JobIdx, bool)> = picked.iter().rev().copied().collect();
        let (mut i, mut run) = (0, 1);
        self.cluster.defer_index(true);
        while i < back.len() {
            let to = (i + run).min(back.len());
            for &(v, _) in &back[i..to] {
                self.lift_known(v, false, f, known.get(&v.0));
            }
            self.cluster.flush_index();
            if let Some(p) = fits(self) {
                picks = p;
                i = to;
                if self.fast_reclaim {
                    run *= 2;
                }
                continue;
            }
            for &(v, _) in back[i..to].iter().rev() {
                self.lift_known(v, true, f, known.get(&v.0));
            }
            if to - i == 1 {
                victims.push(back[i]);
                i += 1;
                if !self.fast_reclaim {
                    run = 1;
                }
            } else {
                run = (to - i) / 2;
            }
        }
        self.cluster.defer_index(false);
        (victims, picks)
    }

    /// The gang's other victim set (see `try_preempt`): the nodes its candidates
    /// run on, ranked by the work their victims would lose per replica of the gang
    /// the node would then hold, are cleared in that order until the gang fits;
    /// the victims it does not need go back (`put_back_unneeded`). Entered and
    /// left with `victims` out; returns the other set (out, with the gang's
    /// placement and the candidates it lifted) when it loses less work.
    fn victims_by_nodes<'a>(
        &mut self,
        sk: &crate::core::ShapeKey,
        victims: &[(JobIdx, bool)],
        walked: usize,
        known: &rustc_hash::FxHashMap<u32, Candidate>,
        by: NodeVictims<'a, impl Iterator<Item = &'a Candidate>>,
        fits: &dyn Fn(&Core) -> Option<Vec<Pick>>,
    ) -> Option<VictimSet> {
        let f = by.f;
        let lost = |c: Option<&Candidate>| c.map_or(f64::INFINITY, |c| c.lost.max(0.0));
        let one_by_one: f64 = victims.iter().map(|&(v, _)| lost(known.get(&v.0))).sum();
        if one_by_one <= 0.0 || !one_by_one.is_finite() {
            return None;
        }
        self.cluster.defer_index(true);
        for &(v, _) in victims.iter().rev() {
            self.lift_known(v, false, f, known.get(&v.0));
        }
        self.cluster.defer_index(false);
        for &(v, _) in victims {
            (by.forget)(self.job_at(v).tenant.0);
        }
        // Per node: the candidates on it (by their index in `cands`) and the work
        // they lose together, from what the cluster has free now.
        // The candidates a few times as far down the list as the one by one search
        // went: a node is cleared of those only (its other jobs stay), which bounds
        // the search's cost by the one by one search's.
        let reach = (walked * NODE_SEARCH_REACH).min(MAX_VICTIMS * NODE_SEARCH_REACH);
        let cands: Vec<Candidate> = by.list.filter(|c| (by.live)(c) && (by.qualifies)(self, c).is_some()).take(reach).copied().collect();
        let mut per_node = NodesAfter::default();
        let mut cost: Vec<f64> = Vec::new();
        for (ci, c) in cands.iter().enumerate() {
            let nodes: Vec<NodeIdx> = if c.one_replica {
                vec![NodeIdx(c.node)]
            } else {
                let Some(alloc) = self.jobs[c.job as usize].as_ref().and_then(|vj| vj.alloc.as_ref()) else { continue };
                let mut n: Vec<NodeIdx> = alloc.slots.iter().map(|s| s.node).collect();
                n.dedup();
                n
            };
            for n in nodes {
                let i = per_node.node(self, n, by.end);
                cost.resize(per_node.nodes.len(), 0.0);
                per_node.take(i, JobIdx(ci as u32));
                cost[i] += c.lost.max(0.0);
                if c.one_replica {
                    per_node.remove(i, &c.slot(), c.cpus, c.mem_mib);
                } else if let Some(alloc) = self.jobs[c.job as usize].as_ref().and_then(|vj| vj.alloc.as_ref()) {
                    for s in alloc.slots.iter().filter(|s| s.node == n) {
                        per_node.remove(i, s, c.cpus, c.mem_mib);
                    }
                }
            }
        }
        let mut ranked: Vec<(f64, u32, usize)> = per_node
            .at
            .iter()
            .filter_map(|(&n, &i)| {
                let r = per_node.replicas(i, &sk.shape);
                (r > 0).then(|| (cost[i] / f64::from(r), n, i))
            })
            .collect();
        ranked.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        // Clear node after node (victims re-checked as others go out, as the one by
        // one search does), looking for the gang's room after 1, 2, 4, ... nodes.
        let mut picked: Vec<(JobIdx, bool)> = Vec::new();
        let mut lifted: rustc_hash::FxHashMap<u32, Candidate> = Default::default();
        let mut placed = None;
        let mut next_check = 1;
        self.cluster.defer_index(true);
        for (tried, &(_, _, i)) in ranked.iter().enumerate() {
            if picked.len() >= MAX_VICTIMS {
                break;
            }
            for ci in per_node.victims_of(i) {
                let c = cands[ci.ix()];
                if lifted.contains_key(&c.job) {
                    continue;
                }
                let Some(reclaim) = (by.qualifies)(self, &c) else { continue };
                self.lift_known(JobIdx(c.job), true, f, Some(&c));
                (by.forget)(c.tenant);
                lifted.insert(c.job, c);
                picked.push((JobIdx(c.job), reclaim));
            }
            if tried + 1 < next_check && tried + 1 < ranked.len() {
                continue;
            }
            next_check = (tried + 1) * 2;
            self.cluster.flush_index();
            placed = fits(self);
            if placed.is_some() {
                break;
            }
        }
        self.cluster.defer_index(false);
        let restore = |core: &mut Core, out: &[(JobIdx, bool)], lifted: &rustc_hash::FxHashMap<u32, Candidate>| {
            core.cluster.defer_index(true);
            for &(v, _) in out.iter().rev() {
                core.lift_known(v, false, f, lifted.get(&v.0));
            }
            for &(v, _) in victims {
                core.lift_known(v, true, f, known.get(&v.0));
            }
            core.cluster.defer_index(false);
        };
        let Some(picks) = placed else {
            restore(self, &picked, &lifted);
            return None;
        };
        let (kept, picks) = self.put_back_unneeded(&picked, Vec::new(), picks, f, &lifted, fits);
        let by_nodes: f64 = kept.iter().map(|&(v, _)| lost(lifted.get(&v.0))).sum();
        if by_nodes < one_by_one {
            return Some((kept, picks, lifted));
        }
        restore(self, &kept, &lifted);
        None
    }

    fn restore_candidates(
        &mut self,
        f: FlavorIdx,
        cached: Vec<Candidate>,
        fresh: Vec<Candidate>,
        stopped: rustc_hash::FxHashSet<u32>,
        at: Vec<Vec<u32>>,
    ) {
        let cache = &mut self.preempt_cache;
        cache.by_flavor[f.ix()] = Some(cached);
        cache.by_tenant[f.ix()] = at;
        cache.fresh[f.ix()] = fresh;
        cache.stopped = stopped;
    }

    /// Per tenant, its side as seen from `tenant`: the child of their common
    /// ancestor on its path (`NO_SIDE` for `tenant`'s ancestors and itself).
    fn sides_of(&self, tenant: TenantIdx) -> Vec<u32> {
        let ts = &self.tenants;
        (0..ts.len())
            .map(|t| {
                let mut side = TenantIdx::from(t);
                if ts.is_ancestor_or_self(side, tenant) {
                    return NO_SIDE;
                }
                while let Some(p) = ts.tenants[side.ix()].parent
                    && !ts.is_ancestor_or_self(p, tenant)
                {
                    side = p;
                }
                side.0
            })
            .collect()
    }

    /// The lowest tenant on `t`'s path (the root excluded) whose nominal of `f` the
    /// job's `need` would exceed.
    fn first_over_nominal(&self, t: TenantIdx, f: FlavorIdx, need: u64) -> Option<TenantIdx> {
        let mut x = Some(t);
        while let Some(a) = x {
            if a == TenantIdx(0) {
                return None;
            }
            if self.tenants.held(a, f) + need > self.tenants.quota(a, f).nominal {
                return Some(a);
            }
            x = self.tenants.tenants[a.ix()].parent;
        }
        None
    }

    /// Records a job started in this pass for later preemption searches.
    pub(crate) fn note_started_for_preemption(&mut self, j: JobIdx) {
        let job = self.job_at(j);
        let Some(flavor) = job.alloc.as_ref().map(|a| a.flavor) else { return };
        if !job.preemptible {
            return;
        }
        let slot = one_slot(job);
        let c = Candidate {
            lost: STARTED_NOW,
            tiebreak: mix(self.policy.seed, job.id.0),
            job: j.0,
            tenant: job.tenant.0,
            priority: self.classes[job.class.ix()].priority,
            milli: job.shape.total_milli(),
            one_replica: job.shape.replicas == 1,
            frac_gpu: slot.frac_gpu,
            node: slot.node.0,
            gpu_mask: slot.gpus,
            cpus: job.shape.cpus,
            mem_mib: job.shape.mem_mib,
        };
        let epoch = self.epoch;
        self.preempt_cache.started(epoch, flavor, c);
    }

    /// Lists a job that began running for preemption searches of later passes.
    pub(crate) fn note_running_for_preemption(&mut self, j: JobIdx) {
        let job = self.job_at(j);
        let Some(flavor) = job.alloc.as_ref().map(|a| a.flavor) else { return };
        if !job.preemptible || job.state != JobState::Running {
            return;
        }
        let e = RunningEntry {
            job: j.0,
            tenant: job.tenant.0,
            priority: self.classes[job.class.ix()].priority,
            milli: job.shape.total_milli(),
            started: job.started,
            checkpoint: job.checkpoint_interval.filter(|&iv| iv > 0).unwrap_or(0),
            tiebreak: mix(self.policy.seed, job.id.0),
            replicas: job.shape.replicas,
            slot: one_slot(job),
            cpus: job.shape.cpus,
            mem_mib: job.shape.mem_mib,
        };
        self.preemptible_running.insert(flavor, e);
    }

    /// `lift` on the cluster only (the job's tenant is charged apart).
    fn lift_slots(&mut self, v: JobIdx, out: bool) {
        let job = self.jobs[v.ix()].as_ref().expect("job");
        let alloc = job.alloc.as_ref().expect("running job has an allocation");
        for slot in &alloc.slots {
            if out {
                self.cluster.release(slot, job.shape.cpus, job.shape.mem_mib);
            } else {
                self.cluster.retake(slot, job.shape.cpus, job.shape.mem_mib);
            }
        }
    }

    /// `lift` of victim `v` on flavor `f`, by its candidate `c` when it has one
    /// replica (the same change, without reading the job table).
    fn lift_known(&mut self, v: JobIdx, out: bool, f: FlavorIdx, c: Option<&Candidate>) {
        let Some(c) = c.filter(|c| c.one_replica) else { return self.lift(v, out) };
        debug_assert_eq!(c.job, v.0);
        let slot = c.slot();
        debug_assert!(
            self.jobs[v.ix()].as_ref().and_then(|j| j.alloc.as_ref()).is_some_and(|a| a.slots == [slot]),
            "a candidate's slot is its job's"
        );
        if out {
            self.cluster.release(&slot, c.cpus, c.mem_mib);
        } else {
            self.cluster.retake(&slot, c.cpus, c.mem_mib);
        }
        self.tenants.charge(TenantIdx(c.tenant), f, c.milli, !out);
    }

    /// Temporarily takes a running job's resources out (`out`) or puts them back.
    fn lift(&mut self, v: JobIdx, out: bool) {
        self.lift_slots(v, out);
        let job = self.job_at(v);
        let (tenant, milli) = (job.tenant, job.shape.total_milli());
        let flavor = job.alloc.as_ref().expect("running job has an allocation").flavor;
        self.tenants.charge(tenant, flavor, milli, !out);
    }
}

/// Milli-GPU a slot holds: whole GPUs by its mask, or its fraction of a shared one.
fn slot_milli(s: &Slot) -> i64 {
    if s.milli > 0 { i64::from(s.milli) } else { i64::from(s.gpus.count_ones()) * 1000 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_bits_order_as_total_cmp_and_round_trip() {
        let xs = [f64::NEG_INFINITY, -3.5, -0.0, 0.0, 1e-300, 0.25, 1.0, 7.5e12, f64::INFINITY, f64::NAN];
        for &a in &xs {
            assert_eq!(from_ordered_bits(ordered_bits(a)).to_bits(), a.to_bits(), "{a} round trip");
            for &b in &xs {
                assert_eq!(ordered_bits(a).cmp(&ordered_bits(b)), a.total_cmp(&b), "{a} against {b}");
            }
        }
    }

    fn fresh_job(job: u32) -> Candidate {
        Candidate {
            lost: STARTED_NOW,
            tiebreak: mix(7, u64::from(job)),
            job,
            tenant: job % 3,
            priority: 0,
            milli: 1000,
            one_replica: true,
            frac_gpu: 0,
            node: job,
            gpu_mask: 1,
            cpus: 1,
            mem_mib: 1,
        }
    }

    #[test]
    fn fresh_jobs_appended_after_a_search_sort_as_a_whole_sort_would() {
        let jobs = |r: std::ops::Range<u32>| r.map(fresh_job).collect::<Vec<_>>();
        let mut buf = Vec::new();
        // Sorted by an earlier search, then more started: appended.
        for (before, after) in [(0, 5), (40, 0), (40, 1), (40, 17), (1, 40)] {
            let mut fresh = jobs(0..before);
            sort_fresh(&mut fresh, &mut buf);
            fresh.extend(jobs(before..before + after));
            let mut want = fresh.clone();
            want.sort_by(by_lost_work);
            sort_fresh(&mut fresh, &mut buf);
            let ids = |l: &[Candidate]| l.iter().map(|c| c.job).collect::<Vec<_>>();
            assert_eq!(ids(&fresh), ids(&want), "{before} sorted, {after} appended");
        }
    }
}
