//! One scheduling pass, in named steps:
//!
//! 1. `order`: pending jobs in policy order (multifactor priority by default);
//! 2. for each job, `consider`: budget, then per allowed flavor quota admission and
//!    placement; a job that fits starts;
//! 3. a blocked job may `preempt` (reclaim or priority), and the first
//!    `policy.reservations` blocked jobs hold backfill reservations;
//! 4. reservations of jobs no longer among them are released.
//!
//! Every pending job is considered. When a job of some shape finds no room, later
//! jobs of the same shape that would run at least as long are decided at once (room
//! only shrinks during a pass), without a placement search.

use crate::backfill::ReservationKind;
use crate::config::OrderPolicy;
use crate::core::{Core, Plan};
use crate::ids::{JobIdx, TenantIdx, Time};
use crate::job::PendingReason;
use crate::place::PlaceFail;

struct PassState {
    reservations: u32,
    preempt_attempts: u32,
    /// Some tenant holds more than its nominal: there is quota to reclaim.
    someone_borrows: bool,
}

impl Core {
    /// Runs one scheduling pass at `now` and returns its decisions.
    pub fn schedule(&mut self, now: Time) -> Plan {
        self.advance_clock(now);
        let now = self.now;
        self.pass += 1;
        let mut plan = Plan { stops: std::mem::take(&mut self.outbox), ..Plan::default() };
        let mut order = std::mem::take(&mut self.order_buf);
        self.order(&mut order, now);
        let mut st = PassState { reservations: 0, preempt_attempts: 0, someone_borrows: self.someone_borrows() };
        for &j in &order {
            self.consider(j, now, &mut st, &mut plan);
        }
        plan.considered = order.len();
        self.order_buf = order;
        for j in self.resv.unseen(self.pass) {
            self.resv.drop_for_job(j, &mut self.cluster, &self.node_jobs);
        }
        // Preemption reservations lapse when their job could not start well after.
        let lapsed: Vec<JobIdx> = self
            .resv
            .iter()
            .filter(|r| r.kind == ReservationKind::Preemption && r.at + 10 * 60_000 < now)
            .map(|r| r.job)
            .collect();
        for j in lapsed {
            self.resv.drop_for_job(j, &mut self.cluster, &self.node_jobs);
        }
        plan.stops.append(&mut self.outbox);
        plan.reservations = self.reservations();
        plan
    }

    /// Step 1: pending jobs in policy order.
    fn order(&mut self, out: &mut Vec<JobIdx>, now: Time) {
        if self.policy.order != OrderPolicy::Default {
            self.queue.ordered(out, |_, _| 0.0);
            return;
        }
        self.tenants.update_factors();
        let w = &self.policy.weights;
        let (lo, hi) = self.classes.iter().fold((i32::MAX, i32::MIN), |(lo, hi), c| (lo.min(c.priority), hi.max(c.priority)));
        let class_factor: Vec<f64> = self
            .classes
            .iter()
            .map(|c| if hi > lo { f64::from(c.priority - lo) / f64::from(hi - lo) } else { 1.0 })
            .collect();
        let max_age = self.policy.max_age_hours * 3.6e6;
        let tenants = &self.tenants;
        let (wc, wf, wa) = (w.class, w.fair_share, w.age);
        self.queue.ordered(out, |g, k| {
            let base = wc * class_factor[g.class.ix()] + wf * tenants.fair_share_factor(g.tenant);
            let age = ((now - k.0) as f64 / max_age).clamp(0.0, 1.0);
            base + wa * age
        });
    }

    /// Step 2 and 3 for one job.
    fn consider(&mut self, j: JobIdx, now: Time, st: &mut PassState, plan: &mut Plan) {
        let hot = self.hot[j.ix()];
        let sid = hot.shape as usize;
        let end = now + hot.walltime;
        let pass = self.pass;
        let may_reserve = self.policy.backfill && st.reservations < self.policy.reservations;
        let holds_resv = self.resv.of_job(j).is_some();
        let memo = self.resv.memo[sid];
        if memo.pass == pass && end >= memo.fail_end && !may_reserve && !holds_resv && !self.may_try_preempt(j, st) {
            plan.decided_by_shape += 1;
            return;
        }
        if let Err(b) = self.budgets.check(&self.tenants, TenantIdx(hot.tenant), now) {
            self.set_reason(j, PendingReason::Budget(b), None);
            return;
        }
        // Its own reservation's GPUs are its to use.
        let own = self.resv.of_job(j).map(|r| (r.kind, r.at));
        if own.is_some() {
            self.lift_own_reservation(j);
        }
        let job = self.job_at(j);
        let tenant = job.tenant;
        let id = job.id;
        let need = job.shape.total_milli();
        let flavors = job.flavors.clone();
        let sk = self.shapes[sid].clone();
        let mut reason: Option<PendingReason> = None;
        let mut capacity_blocked = false;
        for &f in flavors.iter() {
            if let Err(q) = self.tenants.can_admit(tenant, f, need) {
                reason.get_or_insert(PendingReason::Quota { tenant: q.tenant, flavor: q.flavor, need_milli: q.need, room_milli: q.room });
                continue;
            }
            if self.surely_no_room(&sk, f) {
                capacity_blocked = true;
                reason = Some(PendingReason::NoCapacity { flavor: Some(f) });
                continue;
            }
            match self.find_placement(&sk, f, end, id) {
                Ok(picks) => {
                    let start = self.start_job(j, f, &picks, now);
                    plan.starts.push(start);
                    return;
                }
                Err(PlaceFail::Capacity) => {
                    capacity_blocked = true;
                    if !matches!(reason, Some(PendingReason::Topology { .. })) {
                        reason = Some(PendingReason::NoCapacity { flavor: Some(f) });
                    }
                }
                Err(PlaceFail::Topology(level)) => {
                    capacity_blocked = true;
                    reason = Some(PendingReason::Topology { level });
                }
            }
        }
        let mut reason = reason.unwrap_or(PendingReason::NoCapacity { flavor: None });
        let mut estimate = None;
        // A job waiting on its victims keeps waiting; its hold is restored.
        if let Some((ReservationKind::Preemption, at)) = own {
            self.restore_own_reservation(j);
            self.set_reason(j, PendingReason::WaitingForPreemption { victims: 0 }, Some(at));
            return;
        }
        if own.is_some() {
            self.restore_own_reservation(j);
        }
        if self.may_try_preempt(j, st) {
            st.preempt_attempts += 1;
            let victims = self.try_preempt(j, now);
            if !victims.is_empty() {
                let at = self.resv.of_job(j).map(|r| r.at);
                self.set_reason(j, PendingReason::WaitingForPreemption { victims: victims.len() as u32 }, at);
                return;
            }
        }
        if capacity_blocked {
            let m = &mut self.resv.memo[sid];
            if m.pass != pass {
                *m = crate::backfill::ShapeMemo { pass, fail_end: end, reason };
            } else if end < m.fail_end {
                m.fail_end = end;
            }
            if may_reserve {
                st.reservations += 1;
                if let Some(at) = self.reserve(j, now) {
                    reason = PendingReason::Reserved { at };
                    estimate = Some(at);
                }
            } else if let Some(r) = self.resv.iter().filter(|r| r.kind == ReservationKind::Backfill).min_by_key(|r| r.at) {
                if self.job_at(j).shape.total_milli() <= self.free_physical_milli(&flavors) {
                    reason = PendingReason::BehindReservation { job: self.job_at(r.job).id, at: r.at };
                }
            }
        }
        self.set_reason(j, reason, estimate);
    }

    fn may_try_preempt(&self, j: JobIdx, st: &PassState) -> bool {
        if !self.policy.preemption || st.preempt_attempts >= self.policy.preemption_attempts_per_pass || self.awaiting_preemption(j) {
            return false;
        }
        let hot = self.hot[j.ix()];
        if self.classes[hot.class as usize].preempt_lower {
            return true;
        }
        if !st.someone_borrows {
            return false;
        }
        let tenant = TenantIdx(hot.tenant);
        let mask = self.shapes[hot.shape as usize].flavor_mask;
        (0..self.cluster.flavors.len()).filter(|f| mask & (1 << f) != 0).any(|f| {
            let f = crate::ids::FlavorIdx::from(f);
            self.tenants.held(tenant, f) + hot.milli <= self.tenants.quota(tenant, f).nominal
        })
    }

    /// Whether any tenant holds more than its nominal (there is something to reclaim).
    fn someone_borrows(&self) -> bool {
        (1..self.tenants.len()).any(|t| {
            (0..self.cluster.flavors.len()).any(|f| {
                let (t, f) = (TenantIdx::from(t), crate::ids::FlavorIdx::from(f));
                self.tenants.held(t, f) > self.tenants.quota(t, f).nominal
            })
        })
    }

    fn free_physical_milli(&self, flavors: &[crate::ids::FlavorIdx]) -> u64 {
        flavors
            .iter()
            .map(|&f| (self.cluster.capacity_gpus(f) * 1000).saturating_sub(self.tenants.usage(TenantIdx(0), f)))
            .max()
            .unwrap_or(0)
    }

    fn set_reason(&mut self, j: JobIdx, reason: PendingReason, estimate: Option<Time>) {
        let pass = self.pass;
        let job = self.job_mut(j);
        job.reason = reason;
        job.estimated_start = estimate;
        job.reason_pass = pass;
    }

    fn lift_own_reservation(&mut self, j: JobIdx) {
        self.resv.suspend(j, &mut self.cluster);
    }

    fn restore_own_reservation(&mut self, j: JobIdx) {
        self.resv.resume(j, &mut self.cluster, &self.node_jobs);
    }
}
