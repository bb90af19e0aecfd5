//! Preemption: reclaiming lent quota, and priority classes that may stop lower ones.
//!
//! A job may preempt when (a) its tenant is within its nominal quota for the request
//! (it only takes back what it lent), the victims being jobs of tenants that use more
//! than their nominal somewhere below the two tenants' common ancestor; or (b) its
//! class may preempt lower classes, the victims being preemptible jobs of lower
//! classes. When a tenant's limit (not the cluster's size) blocks the job, only jobs
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

use crate::core::{Core, Start, StopReason};
use crate::ids::{FlavorIdx, JobIdx, NodeIdx, TenantIdx, Time};
use crate::job::JobState;
use crate::place::Pick;
use crate::rng::mix;

/// Most jobs one preemption search may take out before giving up.
const MAX_VICTIMS: usize = 1024;

/// A preemptible running job, as preemption searches see it.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    lost: f64,
    tiebreak: u64,
    job: u32,
    tenant: u32,
    priority: i32,
    milli: u64,
}

/// Per-pass, per-flavor candidate lists sorted by least lost work.
#[derive(Clone, Debug, Default)]
pub(crate) struct CandidateCache {
    pass: u64,
    by_flavor: Vec<Option<Vec<Candidate>>>,
    /// Jobs started in this pass after the list was made (lost work 0: they come
    /// first), per flavor.
    fresh: Vec<Vec<Candidate>>,
}

impl CandidateCache {
    /// A job started: once a list exists for this pass, it must see the job too.
    pub(crate) fn started(&mut self, pass: u64, flavor: FlavorIdx, c: Candidate) {
        if self.pass == pass && self.by_flavor.get(flavor.ix()).is_some_and(|l| l.is_some()) {
            let fresh = &mut self.fresh[flavor.ix()];
            let at = fresh.partition_point(|x| x.tiebreak < c.tiebreak);
            fresh.insert(at, c);
        }
    }
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

    /// The sorted candidate list of flavor `f` for this pass.
    fn candidates(&mut self, f: FlavorIdx, now: Time) -> Vec<Candidate> {
        let cache = &mut self.preempt_cache;
        if cache.pass != self.pass {
            cache.pass = self.pass;
            cache.by_flavor = vec![None; self.cluster.flavors.len()];
            cache.fresh = vec![vec![]; self.cluster.flavors.len()];
        }
        if let Some(list) = cache.by_flavor[f.ix()].take() {
            return list;
        }
        let mut list = Vec::new();
        for running in &self.tenant_running {
            for &v in running {
                let vj = self.jobs[v as usize].as_ref().expect("running job");
                if vj.state != JobState::Running || !vj.preemptible || vj.alloc.as_ref().is_none_or(|a| a.flavor != f) {
                    continue;
                }
                list.push(Candidate {
                    lost: vj.lost_work(now),
                    tiebreak: mix(self.policy.seed, vj.id.0),
                    job: v,
                    tenant: vj.tenant.0,
                    priority: self.classes[vj.class.ix()].priority,
                    milli: vj.shape.total_milli(),
                });
            }
        }
        list.sort_unstable_by(|a, b| a.lost.total_cmp(&b.lost).then(a.tiebreak.cmp(&b.tiebreak)));
        list
    }

    /// Tries to make room for pending job `j` by preemption. On success the victims
    /// are stopping and `j` is started on their room; returns its `Start`, and
    /// whether the victims freed more than `j` took (room other jobs may use), and
    /// the victims' tenants (they got quota back).
    /// With `booked`, admission counts the quota this round's reservations booked
    /// (the job would still run when one of them starts).
    pub(crate) fn try_preempt(&mut self, j: JobIdx, now: Time, booked: bool) -> Option<(Start, bool, Vec<TenantIdx>)> {
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
            let cached = self.candidates(f, now);
            // Jobs started in this pass first (they lose no work), then the rest.
            let mut list = self.preempt_cache.fresh[f.ix()].clone();
            let fresh_len = list.len();
            list.extend_from_slice(&cached);
            // Whether a candidate may be taken now: a reclaim victim only while its
            // tenant still borrows (re-checked as victims are taken out, so reclaim
            // stops at the borrower's nominal instead of swinging past it).
            let qualifies = |core: &Core, c: &Candidate| -> Option<bool> {
                let t = c.tenant as usize;
                if !in_scope[t] {
                    return None;
                }
                if entitled
                    && over.is_none_or(|o| core.tenants.is_ancestor_or_self(o, TenantIdx(c.tenant)))
                    && core.borrows_from(TenantIdx(c.tenant), tenant, f)
                {
                    Some(true)
                } else if may_preempt_lower && c.priority < prio {
                    Some(false)
                } else {
                    None
                }
            };
            let reclaim_of = |core: &Core, v: JobIdx| -> bool {
                let vt = core.jobs[v.ix()].as_ref().map_or(TenantIdx(0), |vj| vj.tenant);
                entitled && over.is_none_or(|o| core.tenants.is_ancestor_or_self(o, vt)) && core.borrows_from(vt, tenant, f)
            };
            let mut picked: Vec<(JobIdx, bool)> = Vec::new();
            let mut cand_milli = 0u64;
            for c in &list {
                if qualifies(self, c).is_some() && self.jobs[c.job as usize].as_ref().is_some_and(|v| v.state == JobState::Running) {
                    cand_milli += c.milli;
                }
            }
            // Not even every candidate together would make room: don't search.
            if cand_milli + room < need {
                self.preempt_cache.by_flavor[f.ix()] = Some(list.split_off(fresh_len));
                continue;
            }
            let mut placed: Option<Vec<Pick>> = None;
            // A one-replica job needs room on one node: first find the node made
            // fit by the cheapest victims (candidates come in order of lost work, so
            // the first node to fit has the smallest largest loss), take those.
            let mut first: Vec<(JobIdx, bool)> = Vec::new();
            if sk.shape.replicas == 1 {
                let mut per_node: rustc_hash::FxHashMap<u32, Vec<JobIdx>> = Default::default();
                'search: for c in &list {
                    let Some(reclaim) = qualifies(self, c) else { continue };
                    let v = JobIdx(c.job);
                    let Some(vj) = self.jobs[v.ix()].as_ref().filter(|vj| vj.state == JobState::Running) else { continue };
                    let mut nodes: Vec<u32> = vj.alloc.as_ref().map(|a| a.slots.iter().map(|s| s.node.0).collect()).unwrap_or_default();
                    nodes.dedup();
                    for n in nodes {
                        let list_n = per_node.entry(n).or_default();
                        list_n.push(v);
                        if self.fits_after_removing(NodeIdx(n), list_n, &sk.shape) {
                            let chosen = list_n.clone();
                            first = chosen.iter().map(|&x| (x, reclaim_of(self, x))).collect();
                            let _ = reclaim;
                            break 'search;
                        }
                    }
                }
                for &(v, _) in &first {
                    self.lift(v, true);
                }
                picked.extend(first.iter().copied());
                if !picked.is_empty()
                    && admits(self).is_ok()
                    && let Ok(p) = self.find_placement(&sk, f, end, id)
                {
                    placed = Some(p);
                }
            }
            // A one-replica job that no node can hold even without its candidates
            // cannot be helped; otherwise (gangs, or quota still short) take more
            // victims in order of lost work, testing after batches of doubling size
            // (the put-back below trims the excess).
            let hopeless = sk.shape.replicas == 1 && first.is_empty();
            if placed.is_none() && !hopeless {
                let mut next_check = picked.len() + 1;
                for c in &list {
                    if picked.len() >= MAX_VICTIMS {
                        break;
                    }
                    let Some(reclaim) = qualifies(self, c) else { continue };
                    let v = JobIdx(c.job);
                    if self.jobs[v.ix()].as_ref().is_none_or(|vj| vj.state != JobState::Running) || picked.iter().any(|p| p.0 == v) {
                        continue;
                    }
                    self.lift(v, true);
                    picked.push((v, reclaim));
                    if picked.len() < next_check {
                        continue;
                    }
                    next_check = picked.len() * 2;
                    if admits(self).is_ok()
                        && let Ok(p) = self.find_placement(&sk, f, end, id)
                    {
                        placed = Some(p);
                        break;
                    }
                }
                if placed.is_none()
                    && !picked.is_empty()
                    && admits(self).is_ok()
                    && let Ok(p) = self.find_placement(&sk, f, end, id)
                {
                    placed = Some(p);
                }
            }
            self.preempt_cache.by_flavor[f.ix()] = Some(list.split_off(fresh_len));
            let Some(mut picks) = placed else {
                for &(v, _) in picked.iter().rev() {
                    self.lift(v, false);
                }
                continue;
            };
            // Put back victims that are not needed, costliest first.
            let mut victims = Vec::new();
            for &(v, reclaim) in picked.iter().rev() {
                self.lift(v, false);
                let still = if admits(self).is_ok() { self.find_placement(&sk, f, end, id).ok() } else { None };
                match still {
                    Some(p) => picks = p,
                    None => {
                        self.lift(v, true);
                        victims.push((v, reclaim));
                    }
                }
            }
            // The victims' resources pass to the job: put them back for the
            // bookkeeping of the stop, then stop them and start the job.
            for &(v, _) in &victims {
                self.lift(v, false);
            }
            let grace = self.policy.grace_period_s;
            let mut after = Vec::with_capacity(victims.len());
            let freed: u64 = victims.iter().map(|&(v, _)| self.job_at(v).shape.total_milli()).sum();
            let victim_tenants: Vec<TenantIdx> = victims.iter().map(|&(v, _)| self.job_at(v).tenant).collect();
            for &(v, reclaim) in &victims {
                after.push(self.job_at(v).id);
                self.preempt_now(v, StopReason::Preempted { by: id, reclaim }, grace);
            }
            let mut start = self.start_job(j, f, &picks, now);
            start.after = after;
            return Some((start, freed > need, victim_tenants));
        }
        None
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

    /// Whether a one-replica job of `shape` fits on node `n` once `victims` are gone.
    fn fits_after_removing(&self, n: NodeIdx, victims: &[JobIdx], shape: &crate::job::Shape) -> bool {
        if !self.cluster.status(n).schedulable() || self.resv.on_node(n).is_some() {
            return false;
        }
        let mut free: Vec<u16> = self.cluster.gpu_free(n).to_vec();
        let mut cpus = u64::from(self.cluster.cpus_free(n));
        let mut mem = self.cluster.mem_free(n);
        for &v in victims {
            let Some(vj) = self.jobs[v.ix()].as_ref() else { continue };
            let Some(alloc) = vj.alloc.as_ref() else { continue };
            for s in alloc.slots.iter().filter(|s| s.node == n) {
                if s.milli > 0 {
                    free[s.frac_gpu as usize] += s.milli;
                } else {
                    for (g, m) in free.iter_mut().enumerate() {
                        if s.gpus & (1 << g) != 0 {
                            *m = crate::cluster::MILLI;
                        }
                    }
                }
                cpus += u64::from(vj.shape.cpus);
                mem += vj.shape.mem_mib;
            }
        }
        if cpus < u64::from(shape.cpus) || mem < shape.mem_mib {
            return false;
        }
        if shape.milli > 0 {
            free.iter().any(|&m| m >= shape.milli)
        } else {
            free.iter().filter(|&&m| m == crate::cluster::MILLI).count() as u32 >= shape.gpus
        }
    }

    /// Records a job started in this pass for later preemption searches.
    pub(crate) fn note_started_for_preemption(&mut self, j: JobIdx) {
        let job = self.job_at(j);
        let Some(flavor) = job.alloc.as_ref().map(|a| a.flavor) else { return };
        if !job.preemptible {
            return;
        }
        let c = Candidate {
            lost: 0.0,
            tiebreak: mix(self.policy.seed, job.id.0),
            job: j.0,
            tenant: job.tenant.0,
            priority: self.classes[job.class.ix()].priority,
            milli: job.shape.total_milli(),
        };
        let pass = self.pass;
        self.preempt_cache.started(pass, flavor, c);
    }

    /// Temporarily takes a running job's resources out (`out`) or puts them back.
    fn lift(&mut self, v: JobIdx, out: bool) {
        let job = self.jobs[v.ix()].as_ref().expect("job");
        let alloc = job.alloc.as_ref().expect("running job has an allocation");
        let (shape, tenant, flavor) = (job.shape, job.tenant, alloc.flavor);
        for slot in alloc.slots.clone() {
            if out {
                self.cluster.release(&slot, shape.cpus, shape.mem_mib);
            } else {
                self.cluster.retake(&slot, shape.cpus, shape.mem_mib);
            }
        }
        self.tenants.charge(tenant, flavor, shape.total_milli(), !out);
    }
}
