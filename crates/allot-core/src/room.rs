//! What room the rest of a round can still find, once every reservation is back.
//!
//! A round picks its jobs (step 1) while reservations are suspended, so a job whose
//! only room is a reservation's is picked: it could come before the reservation's
//! holder. In a full cluster that is most of the queue (tens of thousands of small
//! jobs fit the GPUs a reservation keeps idle). Once every holder has had its turn
//! and no more reservations can be made, such a job can only start where no
//! reservation is, or on reserved room if it ends before the reservation starts;
//! `Strict` tells which shapes still can, and the merge skips the rest without a
//! turn. Room only shrinks in a round except where a preemption stops jobs: then
//! the merge goes back to what was picked (`pass::consider_in_merge`).

use crate::core::Core;
use crate::ids::{FlavorIdx, JobId, Time};
use crate::pass::PassState;
use crate::queue::Key;

/// How often a round may work out `Strict` (again after a preemption): each costs
/// a placement search per waiting shape.
pub(crate) const MAX_SWITCHES: usize = 16;

/// Room outside reservations, per shape, and how long a job may run on reserved room.
pub(crate) struct Strict {
    /// Per shape: flavors with room outside reservations.
    unreserved: Vec<u64>,
    /// Per (shape, flavor): the latest end by which a single replica of the shape
    /// may use some reservation's room (`Time::MIN`: none).
    until: Vec<Time>,
    flavors: usize,
    /// The round's preemptions when worked out (a stop gives room back).
    pub preemptions: u32,
}

impl Core {
    /// Turns skipping by `Strict` off or on (on by default). Off, the jobs it would
    /// skip are taken and considered all the same (their turns fix no place in the
    /// order, as skipped turns do not: `Core::deferred_at`). It changes no decision,
    /// only how much work a pass does: tests compare the two.
    #[doc(hidden)]
    pub fn set_strict_skips(&mut self, on: bool) {
        self.strict_skips = on;
    }

    /// Sets how often a round may work `Strict` out (`MAX_SWITCHES` by default):
    /// in the small clusters of property tests rounds seldom run out of switches,
    /// as reclaim waves at national scale do, and every turn after the last one
    /// fixes its place.
    #[doc(hidden)]
    pub fn set_strict_switches(&mut self, n: usize) {
        self.strict_switches = n;
    }

    /// Whether the rest of the round may skip jobs by `Strict`: every reservation is
    /// back (its holder had its turn) and no more can be made in the round.
    pub(crate) fn may_go_strict(&self, st: &PassState) -> bool {
        !self.scores_nodes()
            && !self.resv.is_empty()
            && (!self.policy.backfill || st.reservations >= self.policy.reservations)
            && self.resv.iter().all(|r| r.active)
    }

    /// Works out `Strict` now; shapes left with no room at all get that as their
    /// pass's reason (what `explain` says of their skipped jobs).
    pub(crate) fn strict_room(&mut self, st: &PassState) -> Strict {
        let nf = self.cluster.flavors.len();
        // Per active reservation, the most one of its nodes offers: whole GPUs, and
        // milli on one GPU. (CPUs and memory are left out: that only admits more.)
        let reserved: Vec<(FlavorIdx, Time, u32, u16)> = self
            .resv
            .active()
            .map(|r| {
                let (mut whole, mut milli) = (0, 0);
                for &(n, _) in &r.nodes {
                    if self.cluster.status(n).schedulable() {
                        whole = whole.max(self.cluster.whole_free(n));
                        milli = milli.max(self.cluster.gpu_free(n).iter().copied().max().unwrap_or(0));
                    }
                }
                (r.flavor, r.at, whole, milli)
            })
            .collect();
        let mut unreserved = vec![0u64; self.shapes.len()];
        let mut until = vec![Time::MIN; self.shapes.len() * nf];
        let pass = self.pass;
        for (sid, sk) in self.shapes.iter().enumerate() {
            if self.shape_pending[sid] == 0 {
                continue;
            }
            let s = sk.shape;
            for f in FlavorIdx::in_mask(sk.flavor_mask) {
                if self.find_placement(sk, f, Time::MAX, JobId(0)).is_ok() {
                    unreserved[sid] |= 1 << f.0;
                }
                if s.replicas == 1 {
                    for &(rf, at, whole, milli) in &reserved {
                        let u = &mut until[sid * nf + f.ix()];
                        if rf != f {
                            continue;
                        }
                        if s.milli > 0 && (milli >= s.milli || whole > 0) {
                            // A fraction ending before the reservation may start on a
                            // reserved GPU; what it leaves of the GPU is then shared room
                            // that a fraction of any length may take.
                            *u = Time::MAX;
                        } else if s.milli == 0 && whole >= s.gpus {
                            *u = (*u).max(at);
                        }
                    }
                }
            }
            if unreserved[sid] == 0 && self.resv.memo[sid].pass != pass {
                let mask = sk.flavor_mask;
                let flavor = (mask.count_ones() == 1).then(|| FlavorIdx(mask.trailing_zeros()));
                self.resv.memo[sid] = crate::backfill::ShapeMemo { pass, reason: crate::job::PendingReason::NoCapacity { flavor } };
            }
        }
        Strict { unreserved, until, flavors: nf, preemptions: st.preemptions }
    }

    /// Whether picked job `k` may still start, reserve or preempt in
    /// this round (when in doubt, yes).
    pub(crate) fn strict_admits(&self, s: &Strict, k: &Key, st: &PassState, now: Time) -> bool {
        let sid = k.shape as usize;
        if self.resv.holds(k.idx()) {
            return true;
        }
        // Every allowed flavor, not only those quota admitted when the round began: a
        // preemption gives quota back.
        let flavors = self.shapes[sid].flavor_mask;
        let end = now.saturating_add(k.walltime);
        // Room only shrinks in a round until a preemption (which ends `Strict`): what
        // the round learnt from earlier jobs of the shape holds for this one too.
        let room = s.unreserved[sid] & flavors != 0 || FlavorIdx::in_mask(flavors).any(|f| s.until[sid * s.flavors + f.ix()] >= end);
        if room && !self.decided_at_once(k, end, st.first_booked_at) {
            return true;
        }
        // Borrowing may begin later in the round: assume it has.
        self.may_preempt(k, st, true)
    }
}
