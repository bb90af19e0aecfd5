//! Preemption: reclaiming lent quota, and priority classes that may stop lower ones.
//!
//! A job may preempt when (a) its tenant is within its nominal quota for the request
//! (it only takes back what it lent), the victims being jobs of tenants that use more
//! than their nominal somewhere below the two tenants' common ancestor; or (b) its
//! class may preempt lower classes, the victims being preemptible jobs of lower
//! classes. Victims are tried on the live state with undo: removed one by one in
//! order of least lost work (time since last checkpoint x GPUs) until the job fits,
//! then those not needed are put back, most costly first. The survivors are told to
//! stop with a grace period, and the room is held for the job by a reservation.

use crate::backfill::ReservationKind;
use crate::core::{Core, StopReason};
use crate::ids::{FlavorIdx, JobIdx, MS_PER_S, TenantIdx, Time};
use crate::job::JobState;
use crate::place::Pick;
use crate::rng::mix;

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

    /// Tries to make room for pending job `j` by preemption. Returns the victims told
    /// to stop (empty: nothing to be done).
    pub(crate) fn try_preempt(&mut self, j: JobIdx, now: Time) -> Vec<JobIdx> {
        let job = self.job_at(j);
        let (tenant, class, id) = (job.tenant, job.class, job.id);
        let need = job.shape.total_milli();
        let end = now + job.walltime;
        let shape_id = self.hot[j.ix()].shape as usize;
        let sk = self.shapes[shape_id].clone();
        let prio = self.classes[class.ix()].priority;
        let may_preempt_lower = self.classes[class.ix()].preempt_lower;
        for f in job.flavors.clone() {
            let q = self.tenants.quota(tenant, f);
            let entitled = self.tenants.held(tenant, f) + need <= q.nominal;
            if !entitled && !may_preempt_lower {
                continue;
            }
            // Candidates with their cost.
            let mut cands: Vec<(f64, u64, JobIdx, bool)> = Vec::new();
            for t in 1..self.tenants.len() {
                let tv = TenantIdx::from(t);
                if self.tenant_running[t].is_empty() {
                    continue;
                }
                let reclaimable = entitled && self.borrows_from(tv, tenant, f);
                for &v in &self.tenant_running[t] {
                    let vj = self.jobs[v as usize].as_ref().expect("running job");
                    if vj.state != JobState::Running || !vj.preemptible || vj.alloc.as_ref().is_none_or(|a| a.flavor != f) {
                        continue;
                    }
                    let lower = may_preempt_lower && self.classes[vj.class.ix()].priority < prio;
                    if reclaimable || lower {
                        cands.push((vj.lost_work(now), mix(self.policy.seed, vj.id.0), JobIdx(v), reclaimable));
                    }
                }
            }
            if cands.is_empty() {
                continue;
            }
            cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            // Remove in order until the job fits.
            let mut removed: Vec<usize> = Vec::new();
            let mut placed: Option<Vec<Pick>> = None;
            for (i, c) in cands.iter().enumerate() {
                self.lift(c.2, true);
                removed.push(i);
                if self.tenants.can_admit(tenant, f, need).is_ok()
                    && let Ok(p) = self.find_placement(&sk, f, end, id)
                {
                    placed = Some(p);
                    break;
                }
            }
            let Some(mut picks) = placed else {
                for &i in removed.iter().rev() {
                    self.lift(cands[i].2, false);
                }
                continue;
            };
            // Put back victims that are not needed, costliest first.
            let mut victims = Vec::new();
            for &i in removed.iter().rev() {
                let v = cands[i].2;
                self.lift(v, false);
                let still = if self.tenants.can_admit(tenant, f, need).is_ok() { self.find_placement(&sk, f, end, id).ok() } else { None };
                match still {
                    Some(p) => picks = p,
                    None => {
                        self.lift(v, true);
                        victims.push(i);
                    }
                }
            }
            // Victims keep their resources until they stop.
            for &i in &victims {
                self.lift(cands[i].2, false);
            }
            let grace = self.policy.grace_period_s;
            for &i in &victims {
                let (_, _, v, reclaim) = cands[i];
                self.begin_stop(v, StopReason::Preempted { by: id, reclaim }, grace);
            }
            let at = now + grace as i64 * MS_PER_S;
            self.reserve_for_preemption(j, f, &picks, at);
            return victims.into_iter().map(|i| cands[i].2).collect();
        }
        Vec::new()
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

    /// Whether job `j` waits on a preemption it already caused.
    pub(crate) fn awaiting_preemption(&self, j: JobIdx) -> bool {
        self.resv.of_job(j).is_some_and(|r| r.kind == ReservationKind::Preemption)
    }
}
