//! One scheduling pass, in named steps:
//!
//! 1. `order`: the pending jobs that can matter this pass, picked group by group;
//! 2. merged into policy order (multifactor priority by default), and for each job,
//!    `consider`: budget, then per allowed flavor quota admission and placement; a
//!    job that fits starts;
//! 3. a blocked job may `preempt` (reclaim or priority), and the first
//!    `policy.reservations` blocked jobs hold backfill reservations;
//! 4. reservations of jobs no longer among them are released.
//!
//! Every pending job is considered. When a job of some shape finds no room, later
//! jobs of the same shape that would run at least as long are decided at once (room
//! only shrinks during a pass), without a placement search; once every reservation
//! is back, jobs whose only room is reserved are skipped in the merge (`room.rs`).

use crate::config::OrderPolicy;
use crate::core::{Core, Plan};
use crate::ids::{JobIdx, TenantIdx, Time};
use crate::job::PendingReason;
use crate::place::PlaceFail;
use crate::queue::{Admit, Key};

/// How many jobs of one (tenant, class) with no room a pass keeps in order
/// because they may preempt: the pass's preemption searches are bounded anyway
/// (`policy.failed_preemption_searches_per_pass`), so later ones could not be tried.
const PREEMPTORS_PER_FAMILY: usize = 32;

/// Marks a (tenant and class, shape) entry of step 1's admissible flavors as worked out.
const KNOWN: u64 = 1 << 63;

/// What step 1 worked out for the rest of the round.
pub(crate) struct Picking {
    /// Pending jobs not picked (decided by their shape).
    pub left_out: usize,
    /// Per group, the priority all its jobs share (class and fair share).
    pub base: Vec<f64>,
    /// Class tiers with picked jobs, highest first.
    pub tiers: Vec<usize>,
    /// Per group: taken whole with no reservation holder, so that `Strict` may ask
    /// of a stand-in for its jobs that ends soonest (`Core::floor_of`) instead.
    pub floor: Vec<bool>,
}

/// How step 1 takes a queue group.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Take {
    /// Every job: its shape has room its tenant's quota admits (read in place).
    All,
    /// Only the jobs kept anyway (see `Core::order`).
    Some,
    /// Job by job (the one group of orders other than the multifactor one).
    #[default]
    EachJob,
}

/// Step 1's working buffers (see `Core::pick_scratch`).
#[derive(Clone, Debug, Default)]
pub(crate) struct PickScratch {
    take: Vec<Take>,
    holders_in: Vec<usize>,
    /// Per group, its holders taken without counting (`Core::kept_blocked_at`).
    free_holders_in: Vec<usize>,
    walked: Vec<usize>,
    left: Vec<(usize, usize)>,
    kept: Vec<(usize, Key)>,
    holder_keys: Vec<(usize, Key)>,
    admissible: Vec<u64>,
    kept_blocked: Vec<usize>,
    kept_preempting: Vec<usize>,
    /// Per group, where its keys start and end in `kept` (sorted by group).
    kept_at: Vec<(u32, u32)>,
    /// The family walk's heap of group heads, its allocation kept.
    heads: Vec<std::cmp::Reverse<Head>>,
}

/// A group's first key not yet walked, as the family walk orders it (a `Key`'s
/// order without the rest, which the group gives back when it is popped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Head {
    k1: i64,
    k2: i64,
    tiebreak: u64,
    job: u32,
    group: u32,
}

impl Head {
    fn of(k: &Key, group: usize) -> Head {
        Head { k1: k.k1, k2: k.k2, tiebreak: k.tiebreak, job: k.job, group: group as u32 }
    }
}

pub(crate) struct PassState {
    pub(crate) reservations: u32,
    pub(crate) preemptions: u32,
    pub(crate) failed_preemptions: u32,
    /// (shape, tenant) whose preemption search failed in this pass.
    pub(crate) failed_shapes: rustc_hash::FxHashSet<(u32, u32)>,
    /// Some tenant holds more than its nominal: there is quota to reclaim.
    pub(crate) someone_borrows: bool,
    /// A preemption freed more than its preemptor took.
    pub(crate) freed_surplus: bool,
    /// Jobs of this round may search for something to preempt (`PREEMPTING_ROUNDS`).
    pub(crate) preempting: bool,
    /// Jobs whose preemption search failed in this round (or that would have
    /// searched had anyone borrowed), each with the bookings of the round as its
    /// turn left them (see `Turn`).
    pub(crate) failed_reclaims: Vec<(Key, Option<Turn>)>,
    /// A start made some tenant borrow after a preemption search failed.
    pub(crate) borrowing_began: bool,
    /// A preemption search of the round failed with some victim refused because
    /// its tenant would reclaim it back (`Core::would_reclaim_back`).
    pub(crate) objected: bool,
    /// A start came after such a search: it may have lifted the objection.
    pub(crate) started_after_objection: bool,
    /// The highest class priority among jobs of classes that preempt lower ones
    /// whose search failed in this round.
    pub(crate) failed_priority: Option<i32>,
    /// A preemptible job of a lower class than that started after the search: a
    /// victim it may take (the cheapest, started at this instant).
    pub(crate) victim_started: bool,
    /// What each reservation made in this round booked at the root.
    pub(crate) root_bookings: Vec<(JobIdx, usize)>,
    /// The earliest start of a reservation that booked quota in this round: jobs
    /// that would run past it are admitted against the booked quota.
    pub(crate) first_booked_at: Time,
}

/// The round's quota bookings as a job's turn left them: how many reservations
/// had booked quota (`Tenants::bookings_len`, its own included) and the earliest
/// start among them. A job tried again at the end of the round is admitted
/// against these alone: reservations made after its turn would come after it in
/// the next pass too.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Turn {
    bookings: usize,
    first_booked_at: Time,
    /// Its number (`Core::turns`).
    turn: u64,
}

/// What tenants held below nominal when job `k`'s turn came in its tier's merge:
/// after the last start before it (`history` is in merged order).
fn below_at_turn<'a>(history: &'a [((f64, Key), Vec<u64>)], tier_below: &'a [u64], k: &(f64, Key)) -> &'a [u64] {
    let n = history.partition_point(|(h, _)| crate::queue::better(h, k));
    if n == 0 { tier_below } else { &history[n - 1].1 }
}

/// Puts a list in merged order.
fn sort_in_order(v: &mut [(f64, Key)]) {
    v.sort_by(|a, b| {
        if crate::queue::better(a, b) {
            std::cmp::Ordering::Less
        } else if crate::queue::better(b, a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
}

/// Two lists in merged order, merged.
fn merge_in_order(a: &[(f64, Key)], b: &[(f64, Key)]) -> Vec<(f64, Key)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if j == b.len() || (i < a.len() && crate::queue::better(&a[i], &b[j])) {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out
}

/// Per class, its tier: 0 for the highest priority, classes of equal priority
/// sharing one.
pub(crate) fn class_tiers(classes: &[crate::core::Class]) -> Vec<usize> {
    let mut prios: Vec<i32> = classes.iter().map(|c| c.priority).collect();
    prios.sort_unstable_by(|a, b| b.cmp(a));
    prios.dedup();
    classes.iter().map(|c| prios.iter().position(|&p| p == c.priority).unwrap_or(0)).collect()
}

/// Empties `v` and fills it with `n` copies of `x`, keeping its allocation.
fn reset<T: Clone>(v: &mut Vec<T>, n: usize, x: T) {
    v.clear();
    v.resize(n, x);
}

/// Rounds of a pass in which jobs may preempt (see `Core::schedule`).
const PREEMPTING_ROUNDS: usize = 2;

/// Most rounds one pass runs: the preempting ones, then one that only starts jobs
/// on the room they freed (a round without preemptions frees nothing).
const MAX_ROUNDS: usize = PREEMPTING_ROUNDS + 1;

impl Core {
    /// Runs one scheduling pass at `now` and returns its decisions.
    ///
    /// A pass is one or more rounds over the queue: when a preemption frees more
    /// than its preemptor takes (a victim bigger than the need), jobs considered
    /// before it may now fit, so another round runs (up to `MAX_ROUNDS`) and the
    /// plan holds the decisions of all of them. A second `schedule` at the same
    /// time then finds nothing to do, but for what a preemption in the last
    /// round would have freed: rounds after the second start jobs without
    /// preempting (each preemption could free room for another in a next round,
    /// and reclaim waves then ran on round after round; note 23).
    pub fn schedule(&mut self, now: Time) -> Plan {
        self.advance_clock(now);
        self.epoch += 1;
        let now = self.now;
        if self.order_instant != (now, self.events_seen) {
            self.order_instant = (now, self.events_seen);
            self.deferred_at.clear();
            self.stood_at.clear();
            self.kept_blocked_at.clear();
        }
        let mut plan = Plan { stops: std::mem::take(&mut self.outbox), ..Plan::default() };
        let mut freed = self.round(now, &mut plan, true);
        let mut rounds = 1;
        while freed && rounds < MAX_ROUNDS {
            let mut more = Plan::default();
            freed = self.round(now, &mut more, rounds < PREEMPTING_ROUNDS);
            rounds += 1;
            plan.preemption_searches += more.preemption_searches;
            let started = !more.starts.is_empty();
            plan.starts.append(&mut more.starts);
            if !started {
                break;
            }
        }
        plan.rounds = rounds;
        plan.stops.append(&mut self.outbox);
        plan.reservations = self.reservations();
        plan
    }

    /// One round over the pending jobs; returns whether a preemption in it freed
    /// room beyond what its preemptor took.
    fn round(&mut self, now: Time, plan: &mut Plan, preempting: bool) -> bool {
        self.pass += 1;
        self.room_stamp += 1;
        // Reservations are re-confirmed in priority order as the pass reaches them.
        self.resv.suspend_all(&mut self.cluster);
        self.tenants.clear_bookings();
        self.quota_blocked.clear();
        self.quota_blocked.resize(self.tenants.len(), false);
        self.quota_memo.clear();
        let mut st = PassState {
            reservations: 0,
            preemptions: 0,
            failed_preemptions: 0,
            failed_shapes: Default::default(),
            someone_borrows: self.someone_borrows(),
            freed_surplus: false,
            preempting,
            first_booked_at: Time::MAX,
            root_bookings: Vec::new(),
            failed_reclaims: Vec::new(),
            borrowing_began: false,
            objected: false,
            started_after_objection: false,
            failed_priority: None,
            victim_started: false,
        };
        let mut order = std::mem::take(&mut self.order_buf);
        order.clear();
        let mut picked = std::mem::take(&mut self.picked);
        let picking = self.order(&mut picked);
        plan.considered = picked.count() + picking.left_out;
        let mut deferred = std::mem::take(&mut self.deferred_buf);
        let skipped = if self.policy.order == OrderPolicy::Default {
            self.consider_in_merge(now, &mut st, plan, &picked, &picking, &mut order, &mut deferred)
        } else {
            self.consider_in_order(now, &mut st, plan, &picked, &picking, &mut order);
            0
        };
        plan.ordered = order.len();
        plan.decided_by_shape += picking.left_out + skipped;
        // Jobs that found nothing to reclaim may find it now that later starts made
        // their tenants borrow, or raised what a victim's tenant holds so that it
        // would no longer reclaim the victim back: one more search each, in order
        // (so a second pass does not find what this one could have).
        if st.borrowing_began || st.started_after_objection || st.victim_started {
            st.failed_shapes.clear();
            st.failed_preemptions = 0;
            for (k, turn) in std::mem::take(&mut st.failed_reclaims) {
                if self.job_at(k.idx()).state == crate::job::JobState::Pending {
                    let turn = turn.unwrap_or(Turn { bookings: usize::MAX, first_booked_at: st.first_booked_at, turn: u64::MAX });
                    let later = self.tenants.take_bookings_after(turn.bookings);
                    let first_booked_at = std::mem::replace(&mut st.first_booked_at, turn.first_booked_at);
                    self.second_look = Some(turn.turn);
                    self.consider(&k, now, &mut st, plan);
                    self.second_look = None;
                    st.first_booked_at = st.first_booked_at.min(first_booked_at);
                    self.tenants.rebook(later);
                }
            }
        }
        self.deferred_buf = deferred;
        self.picked = picked;
        self.order_buf = order;
        for j in self.resv.unseen(self.pass) {
            self.resv.drop_for_job(j, &mut self.cluster);
        }
        st.freed_surplus
    }

    /// Steps 2 and 3 under the multifactor order: the picked jobs merged one class
    /// tier at a time and taken one by one (every job of a higher class is
    /// considered before any of a lower one, so a job is never started in a round
    /// only to be preempted by a higher class later in it). Returns how many picked
    /// jobs were skipped without a turn.
    ///
    /// Within a tier, jobs of tenants within their nominal quota go first, then
    /// those of tenants already at or above it (as Kueue prefers workloads that need
    /// not borrow): borrowers only get what no tenant needs within its guarantee, so
    /// reclaim does not swing capacity back and forth.
    ///
    /// Picking counts reserved room as free (reservations are suspended until their
    /// holders' turns). Once every reservation is back and no more can be made, the
    /// merge admits only jobs that can still matter (`room::Strict`): the thousands
    /// whose only room was a reservation's are skipped, not merged and considered.
    #[allow(clippy::too_many_arguments)]
    fn consider_in_merge(
        &mut self,
        now: Time,
        st: &mut PassState,
        plan: &mut Plan,
        picked: &crate::queue::Picked,
        picking: &Picking,
        order: &mut Vec<Key>,
        deferred: &mut Vec<(f64, Key)>,
    ) -> usize {
        let (wa, inv_max_age) = (self.policy.weights.age, 1.0 / (self.policy.max_age_hours * 3.6e6));
        let age = move |k: &Key| wa * ((now - k.k1) as f64 * inv_max_age).clamp(0.0, 1.0);
        let base = &picking.base;
        let mut strict: Option<crate::room::Strict> = None;
        let mut switches = 0;
        // Per tenant, the flavors on which it holds less than its nominal; worked out
        // again only after a start (nothing else in a round changes what tenants hold:
        // a preemption comes with its preemptor's start), before the merge asks for
        // the next job (the same for the job taken as for those it skips).
        let mut below: Vec<u64> = Vec::new();
        let mut below_at = usize::MAX;
        let mut skipped = 0;
        // Jobs `Strict` skipped in this tier (group, index in `picked`), and what
        // tenants held below nominal after each start of the tier's merge: when a
        // preemption gives room back, the skipped jobs whose turn came before it and
        // that waited at the end of the tier for their tenant's borrowing are
        // considered there after all, as if never skipped.
        let mut skipped_log: Vec<(usize, usize, bool)> = Vec::new();
        // With skipping turned off (`set_strict_skips`), the jobs `Strict` would have
        // skipped: taken all the same, but their turns fix no place (see `deferred_at`).
        let mut unfixed: rustc_hash::FxHashSet<u32> = Default::default();
        let mut history: Vec<((f64, Key), Vec<u64>)> = Vec::new();
        let mut late: Vec<(f64, Key)> = Vec::new();
        let mut spare = std::mem::take(&mut self.merge_spare);
        for &tier in &picking.tiers {
            self.refresh_below(&mut below, &mut below_at, plan.starts.len());
            let tier_below = below.clone();
            skipped_log.clear();
            history.clear();
            late.clear();
            let in_tier = |g: usize| self.group_tier[g] == tier;
            let mut merge = std::mem::take(&mut spare).renew(picked.src(&self.queue), base, age, in_tier, |g, i, k| {
                self.admit_or_log(strict.as_ref(), k, st, now, (g, i), picking.floor[g], (&mut skipped_log, &mut unfixed))
            });
            let in_merge: usize = picked.groups.iter().filter(|&&g| in_tier(g)).map(|&g| picked.ranges[g].1 - picked.ranges[g].0).sum();
            deferred.clear();
            loop {
                self.refresh_below(&mut below, &mut below_at, plan.starts.len());
                let next = merge.next(picked.src(&self.queue), base, age, |g, i, k| {
                    self.admit_or_log(strict.as_ref(), k, st, now, (g, i), picking.floor[g], (&mut skipped_log, &mut unfixed))
                });
                let Some((_, score, k)) = next else { break };
                order.push(k);
                let defer_now = below[k.tenant as usize] & self.shapes[k.shape as usize].flavor_mask == 0;
                // A job keeps the place its first turn at this instant gave it, unless
                // `Strict` skips that turn: one that can neither start, reserve nor
                // preempt leaves nothing hanging on its place, and a place fixed then
                // would carry a stale deferral into later rounds (its tenant may have
                // reached its nominal since, and it would borrow ahead of tenants below
                // theirs; note 26).
                let defer = if unfixed.remove(&k.job) {
                    self.deferred_at.get(k.job).unwrap_or(defer_now)
                } else {
                    self.deferred_at.get_or_keep(k.job, defer_now)
                };
                if defer {
                    deferred.push((score, k));
                    continue;
                }
                let starts = plan.starts.len();
                self.consider(&k, now, st, plan);
                let mut baseline = false;
                match &strict {
                    // A stop gives room and quota back. Skipped jobs after this one
                    // are asked again; those before it had their turn already.
                    Some(s) if s.preemptions != st.preemptions => {
                        strict = None;
                        unfixed.clear();
                        let at = (score, k);
                        let due =
                            self.unskip_deferred(&mut skipped_log, &at, true, picked.src(&self.queue), base, &age, &history, &tier_below);
                        late = merge_in_order(&late, &due);
                        merge.rewind(picked.src(&self.queue), base, age, |g, _, key| {
                            if crate::queue::better(&(base[g] + age(key), *key), &at) { Admit::Skip } else { Admit::Take }
                        });
                    }
                    None if switches < self.strict_switches && self.may_go_strict(st) => {
                        strict = Some(self.strict_room(st));
                        switches += 1;
                        baseline = true;
                    }
                    _ => {}
                }
                // Only jobs skipped while `Strict` holds need to know, and their turns
                // come after it began.
                if strict.is_some() && (baseline || plan.starts.len() != starts) {
                    self.refresh_below(&mut below, &mut below_at, plan.starts.len());
                    history.push(((score, k), below.clone()));
                }
            }
            skipped += in_merge - merge.taken;
            spare = merge;
            // The tier's deferred jobs, in order, with skipped ones brought back.
            let mut seq = merge_in_order(deferred, &late);
            let mut i = 0;
            while i < seq.len() {
                let (score, k) = seq[i];
                self.consider(&k, now, st, plan);
                if strict.as_ref().is_some_and(|s| s.preemptions != st.preemptions) {
                    strict = None;
                    unfixed.clear();
                    let at = (score, k);
                    let after =
                        self.unskip_deferred(&mut skipped_log, &at, false, picked.src(&self.queue), base, &age, &history, &tier_below);
                    let tail = merge_in_order(&seq[i + 1..], &after);
                    seq.truncate(i + 1);
                    seq.extend(tail);
                }
                i += 1;
            }
            let more_tiers = picking.tiers.last() != Some(&tier);
            if more_tiers && strict.is_none() && switches < self.strict_switches && self.may_go_strict(st) {
                strict = Some(self.strict_room(st));
                switches += 1;
            }
        }
        self.merge_spare = spare;
        skipped
    }

    /// Per tenant, the flavors on which it holds less than its nominal, worked out
    /// again when starts (`starts`) happened since `at`.
    fn refresh_below(&self, below: &mut Vec<u64>, at: &mut usize, starts: usize) {
        if *at != starts {
            *below = self.flavors_below_nominal();
            *at = starts;
        }
    }

    /// Whether the merge takes job `k` (always, without `strict`); a job skipped is
    /// logged by its place in `picked` (group, index, and whether the rest of the
    /// group's picks went with it: when `Strict` refuses the group's `floor` too).
    #[allow(clippy::too_many_arguments)]
    fn admit_or_log(
        &self,
        strict: Option<&crate::room::Strict>,
        k: &Key,
        st: &PassState,
        now: Time,
        (g, i): (usize, usize),
        floor: bool,
        (log, unfixed): (&mut Vec<(usize, usize, bool)>, &mut rustc_hash::FxHashSet<u32>),
    ) -> Admit {
        let Some(s) = strict else { return Admit::Take };
        if self.strict_admits(s, k, st, now) {
            return Admit::Take;
        }
        if !self.strict_skips {
            unfixed.insert(k.job);
            return Admit::Take;
        }
        let rest = floor && !self.strict_admits(s, &self.floor_of(g), st, now);
        log.push((g, i, rest));
        if rest { Admit::SkipRest } else { Admit::Skip }
    }

    /// A stand-in for the jobs of queue group `g` (one shape): the group's tenant,
    /// class and shape, and its shortest walltime, so it ends no later than any of
    /// them. Whether `Strict` admits a job only falls with its end, so when it
    /// refuses the stand-in it refuses every job of the group (none holding a
    /// reservation), and the merge skips the rest of the group at once.
    fn floor_of(&self, g: usize) -> Key {
        let grp = &self.queue.groups[g];
        let mut k = Key::new(i64::MIN, i64::MIN, 0, u32::MAX);
        (k.shape, k.tenant, k.class, k.walltime) = (grp.shape.unwrap_or(0), grp.tenant.0, grp.class.0, grp.min_walltime);
        k
    }

    /// A preemption at job `at` gives room back. Of the jobs `Strict` skipped (the
    /// log is emptied), those whose tenant's borrowing deferred them to the end of the
    /// tier when their turn came, and whose turn came before `at` (`before`) or after
    /// it: in merged order.
    #[allow(clippy::too_many_arguments)]
    fn unskip_deferred(
        &self,
        skipped_log: &mut Vec<(usize, usize, bool)>,
        at: &(f64, Key),
        before: bool,
        src: crate::queue::Src<'_>,
        base: &[f64],
        age: &impl Fn(&Key) -> f64,
        history: &[((f64, Key), Vec<u64>)],
        tier_below: &[u64],
    ) -> Vec<(f64, Key)> {
        let mut out = Vec::new();
        let skipped =
            skipped_log.iter().flat_map(|&(g, idx, rest)| (idx..if rest { src.picked.ranges[g].1 } else { idx + 1 }).map(move |i| (g, i)));
        for (g, idx) in skipped {
            let key = *src.key(g, idx);
            let sk = (base[g] + age(&key), key);
            if crate::queue::better(&sk, at) == before
                && below_at_turn(history, tier_below, &sk)[key.tenant as usize] & self.shapes[key.shape as usize].flavor_mask == 0
            {
                out.push(sk);
            }
        }
        skipped_log.clear();
        sort_in_order(&mut out);
        out
    }

    /// Steps 2 and 3 under the other orders (one group holds every job): the picked
    /// jobs in policy order, class tier by class tier.
    fn consider_in_order(
        &mut self,
        now: Time,
        st: &mut PassState,
        plan: &mut Plan,
        picked: &crate::queue::Picked,
        picking: &Picking,
        order: &mut Vec<Key>,
    ) {
        let src = crate::queue::Src { picked, groups: &self.queue.groups };
        let mut merge = crate::queue::Merge::new(src, &picking.base, |_| 0.0, |_| true, |_, _, _| Admit::Take);
        while let Some((_, _, k)) = merge.next(src, &picking.base, |_| 0.0, |_, _, _| Admit::Take) {
            order.push(k);
        }
        let tier_of_class = std::mem::take(&mut self.tier_of_class);
        let ntiers = tier_of_class.iter().copied().max().map_or(1, |t| t + 1);
        if ntiers > 1 {
            let mut tiers = std::mem::take(&mut self.tier_bufs);
            tiers.resize_with(ntiers, Vec::new);
            tiers.iter_mut().for_each(Vec::clear);
            for k in order.iter() {
                tiers[tier_of_class[k.class as usize]].push(*k);
            }
            order.clear();
            for t in &tiers[..ntiers] {
                order.extend_from_slice(t);
            }
            self.tier_bufs = tiers;
        }
        self.tier_of_class = tier_of_class;
        for k in order.iter() {
            self.consider(k, now, st, plan);
        }
    }

    /// Step 1: the pending jobs that can matter this pass, picked into `picked`
    /// group by group (the merge into policy order comes with step 2).
    ///
    /// A job is left out (decided without a search) when its shape finds no GPUs on
    /// any allowed flavor at the start of the pass (`no_room_shapes`): room only
    /// shrinks during a pass, so it cannot start. It is kept anyway when it holds a
    /// reservation, when it could be among the first blocked jobs that get
    /// reservations (the first few of each tenant and class), or when it may preempt.
    fn order(&mut self, picked: &mut crate::queue::Picked) -> Picking {
        if self.policy.order == OrderPolicy::Default {
            self.tenants.update_factors();
        }
        let room = self.room_by_shape();
        let pass = self.pass;
        for (sid, &flavors) in room.iter().enumerate() {
            let mask = self.shapes[sid].flavor_mask;
            // (A required topology may fail for its domain rather than for room:
            // its jobs' searches tell which.)
            let none = if matches!(self.shapes[sid].topology, Some((_, true))) { 0 } else { mask & !flavors };
            for f in crate::ids::FlavorIdx::in_mask(none) {
                self.resv.note_no_room(sid, f, self.room_stamp, Time::MIN, PendingReason::NoCapacity { flavor: Some(f) });
            }
            if flavors == 0 {
                let flavor = (mask.count_ones() == 1).then(|| crate::ids::FlavorIdx(mask.trailing_zeros()));
                self.resv.memo[sid] = crate::backfill::ShapeMemo { pass, reason: PendingReason::NoCapacity { flavor } };
            }
        }
        let keep_blocked = if self.policy.backfill { self.policy.reservations as usize } else { 0 };
        let tier_of = &self.tier_of_class;
        let have = self.group_tier.len();
        self.group_tier.extend(self.queue.groups[have..].iter().map(|g| tier_of.get(g.class.ix()).copied().unwrap_or(0)));
        let preemption = self.policy.preemption;
        let nf = self.cluster.flavors.len();
        // Per class: may its jobs preempt lower classes.
        let class_may_preempt: Vec<bool> = self.classes.iter().map(|c| preemption && c.preempt_lower).collect();
        // Per tenant: its room below nominal (what it may reclaim). Per tenant
        // rather than per group: orders other than the multifactor one keep all jobs
        // in one group. Kept even while no one borrows: a start in the round may
        // make someone borrow, and the jobs that would then reclaim search at its
        // end (`note_may_reclaim_later`).
        let tenant_room: Vec<u64> = (0..self.tenants.len())
            .map(|t| {
                let t = TenantIdx::from(t);
                if !preemption || t == TenantIdx(0) {
                    return 0;
                }
                (0..nf)
                    .map(|f| {
                        let f = crate::ids::FlavorIdx::from(f);
                        self.tenants.quota(t, f).nominal.saturating_sub(self.tenants.held(t, f))
                    })
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        self.queue.compact();
        let mut scratch = std::mem::take(&mut self.pick_scratch);
        let PickScratch {
            take,
            holders_in,
            free_holders_in,
            walked,
            left,
            kept,
            holder_keys,
            admissible,
            kept_blocked,
            kept_preempting,
            kept_at,
            heads,
        } = &mut scratch;
        // Pending reservation holders, with their groups.
        holder_keys.clear();
        for j in self.resv.holders() {
            let job = self.job_at(j);
            if job.state != crate::job::JobState::Pending {
                continue;
            }
            let key = self.queue_key(j);
            if let Some(g) = self.queue.group_of(job.tenant, job.class, key.shape) {
                holder_keys.push((g, key));
            }
        }
        let groups = &self.queue.groups;
        // What a job's turn is kept for, counted per (tenant, class) (a "family": the
        // groups of its shapes) in submission order: the first few blocked jobs (they
        // may get reservations) and then the first few that may preempt. Orders
        // other than the multifactor one keep every job in one group, whose jobs
        // make one family per class (`family_of_key`): classes are tiers, so a
        // higher class's blocked jobs come first for reservations whatever their
        // place in the group.
        let ncls = self.classes.len().max(1);
        let family = |g: usize| match groups[g].shape {
            Some(_) => groups[g].tenant.ix() * ncls + groups[g].class.ix(),
            None => self.tenants.len() * ncls,
        };
        let family_of_key = |fam: usize, k: &Key| if fam == self.tenants.len() * ncls { fam + k.class as usize } else { fam };
        let nfamilies = (self.tenants.len() + 1) * ncls;
        reset(kept_blocked, nfamilies, 0);
        reset(kept_preempting, nfamilies, 0);
        let resv = &self.resv;
        // Per (family, shape): flavors on which the tenant's quota admits the shape
        // (bit 63 set once computed). Quota room, like GPUs, only shrinks in a pass.
        let nshapes = self.shapes.len();
        reset(admissible, nfamilies * nshapes, 0);
        let tenants = &self.tenants;
        let shapes = &self.shapes;
        let by_tenant = self.policy.order == OrderPolicy::Default;
        let quota_blocked = &mut self.quota_blocked;
        let cluster = &self.cluster;
        let mut admits = |fam: usize, tenant: TenantIdx, shape: u32| -> u64 {
            let a = &mut admissible[fam * nshapes + shape as usize];
            if *a == 0 {
                let mask = shapes[shape as usize].flavor_mask;
                *a = KNOWN;
                for f in (0..nf).filter(|f| mask & (1 << f) != 0) {
                    // Only the multifactor order groups jobs by tenant; other orders
                    // keep one group, so quota is left to the job's own check.
                    if !by_tenant {
                        *a |= 1 << f;
                        continue;
                    }
                    let (fi, need) = (crate::ids::FlavorIdx::from(f), shapes[shape as usize].shape.total_milli());
                    match tenants.can_admit(tenant, fi, need) {
                        Ok(()) => *a |= 1 << f,
                        // At the root, a refusal an idle cluster would not make is
                        // room (`capacity_is_the_block`); unless the GPUs are short,
                        // a reclaim may give the root what the job lacks.
                        Err(b) if b.tenant == TenantIdx(0) && tenants.root_admits_when_idle(tenant, fi, need) => {
                            quota_blocked[0] |= !gpus_short(tenants, cluster, fi, need);
                        }
                        Err(b) => quota_blocked[b.tenant.ix()] = true,
                    }
                }
            }
            *a
        };
        let may_preempt = |tenant: u32, class: u32, shape: u32| {
            class_may_preempt[class as usize] || shapes[shape as usize].shape.total_milli() <= tenant_room[tenant as usize]
        };
        // A job is taken when it holds a reservation, when its shape has room on a
        // flavor its tenant's quota admits, or as one of its family's first blocked
        // jobs or first would-be preemptors; otherwise it is decided without a turn.
        // A one-shape group is taken or left whole; only left groups are walked,
        // family by family in submission order, for the few jobs kept anyway.
        let live = self.queue.live();
        reset(take, groups.len(), Take::EachJob);
        reset(holders_in, groups.len(), 0);
        let counted_at = &mut self.kept_blocked_at;
        reset(free_holders_in, groups.len(), 0);
        for &(g, k) in holder_keys.iter() {
            holders_in[g] += 1;
            if !counted_at.contains(&k.job) {
                free_holders_in[g] += 1;
            }
        }
        for &g in live {
            let (g, grp) = (g as usize, &groups[g as usize]);
            let Some(shape) = grp.shape else { continue };
            // A group of reservation holders only is taken whole without asking quota.
            let asks = grp.keys().len() > free_holders_in[g];
            take[g] =
                if !asks || room[shape as usize] & admits(family(g), grp.tenant, shape) & !KNOWN != 0 { Take::All } else { Take::Some };
        }
        // Keys kept of left groups (with their group), and how far its family's walk
        // read each.
        kept.clear();
        reset(walked, groups.len(), 0);
        left.clear();
        left.extend(live.iter().map(|&g| g as usize).filter(|&g| take[g] == Take::Some).map(|g| (family(g), g)));
        left.sort_unstable();
        for fam_groups in left.chunk_by(|a, b| a.0 == b.0) {
            let fam = fam_groups[0].0;
            let mut buf = std::mem::take(heads);
            buf.clear();
            buf.extend(fam_groups.iter().filter_map(|&(_, g)| groups[g].keys().first().map(|k| std::cmp::Reverse(Head::of(k, g)))));
            let mut heap = std::collections::BinaryHeap::from(buf);
            let mut blocked_phase = true;
            loop {
                if blocked_phase && kept_blocked[fam] >= keep_blocked {
                    // From here on only would-be preemptors are kept: walk only the
                    // groups whose shape may preempt.
                    blocked_phase = false;
                    heap.retain(|std::cmp::Reverse(h)| {
                        let k = &groups[h.group as usize].keys()[walked[h.group as usize]];
                        may_preempt(k.tenant, k.class, k.shape)
                    });
                }
                if !blocked_phase && kept_preempting[fam] >= PREEMPTORS_PER_FAMILY {
                    break;
                }
                let Some(std::cmp::Reverse(h)) = heap.pop() else { break };
                let g = h.group as usize;
                let keys = groups[g].keys();
                let k = keys[walked[g]];
                walked[g] += 1;
                if let Some(next) = keys.get(walked[g]) {
                    heap.push(std::cmp::Reverse(Head::of(next, g)));
                }
                let holds = resv.holds(k.idx());
                if !holds || blocked_phase && counted_at.contains(&k.job) {
                    if blocked_phase {
                        kept_blocked[fam] += 1;
                        counted_at.insert(k.job);
                    } else {
                        kept_preempting[fam] += 1;
                    }
                }
                kept.push((g, k));
            }
            *heads = heap.into_vec();
        }
        // Reservation holders in left groups beyond the walks.
        for &(g, key) in holder_keys.iter() {
            if take[g] == Take::Some
                && let Ok(at) = groups[g].keys().binary_search(&key)
                && at >= walked[g]
            {
                kept.push((g, key));
            }
        }
        let mut floor = vec![false; groups.len()];
        for &g in live {
            let g = g as usize;
            floor[g] = groups[g].shape.is_some() && take[g] == Take::All && holders_in[g] == 0;
        }
        kept.sort_unstable();
        reset(kept_at, groups.len(), (0, 0));
        let mut at = 0;
        for run in kept.chunk_by(|a, b| a.0 == b.0) {
            kept_at[run[0].0] = (at as u32, (at + run.len()) as u32);
            at += run.len();
        }
        picked.reset(groups.len());
        let mut left_out = 0;
        for &g in live {
            let (g, grp) = (g as usize, &groups[g as usize]);
            let from = picked.keys.len();
            match take[g] {
                Take::All => {
                    picked.set_whole(groups, g);
                    continue;
                }
                Take::Some => {
                    let (lo, hi) = kept_at[g];
                    picked.keys.extend(kept[lo as usize..hi as usize].iter().map(|&(_, k)| k));
                    left_out += grp.keys().len() - (picked.keys.len() - from);
                }
                Take::EachJob => {
                    let group_fam = family(g);
                    for k in grp.keys() {
                        let fam = family_of_key(group_fam, k);
                        let holds = resv.holds(k.idx());
                        let include = holds && !counted_at.contains(&k.job)
                            || room[k.shape as usize] & admits(fam, grp.tenant, k.shape) & !KNOWN != 0
                            || {
                                if kept_blocked[fam] < keep_blocked {
                                    kept_blocked[fam] += 1;
                                    counted_at.insert(k.job);
                                    true
                                } else if kept_preempting[fam] < PREEMPTORS_PER_FAMILY && may_preempt(k.tenant, k.class, k.shape) {
                                    kept_preempting[fam] += 1;
                                    true
                                } else {
                                    holds
                                }
                            };
                        if include {
                            picked.keys.push(*k);
                        } else {
                            left_out += 1;
                        }
                    }
                }
            }
            picked.set_range(g, from);
        }
        self.pick_scratch = scratch;
        let base: Vec<f64> = if self.policy.order != OrderPolicy::Default {
            vec![0.0; self.queue.groups.len()]
        } else {
            let w = &self.policy.weights;
            let (lo, hi) = self.classes.iter().fold((i32::MAX, i32::MIN), |(lo, hi), c| (lo.min(c.priority), hi.max(c.priority)));
            let class_factor: Vec<f64> =
                self.classes.iter().map(|c| if hi > lo { f64::from(c.priority - lo) / f64::from(hi - lo) } else { 1.0 }).collect();
            let mut base = vec![0.0; self.queue.groups.len()];
            for &g in &picked.groups {
                let grp = &self.queue.groups[g];
                base[g] = w.class * class_factor.get(grp.class.ix()).copied().unwrap_or(0.0)
                    + w.fair_share * self.tenants.fair_share_factor(grp.tenant);
            }
            base
        };
        // Groups are (tenant, class, shape): merged one class tier at a time, the order
        // comes out in tiers. Only tiers with picked jobs cost a merge.
        let mut tiers: Vec<usize> = Vec::new();
        for &g in &picked.groups {
            if !tiers.contains(&self.group_tier[g]) {
                tiers.push(self.group_tier[g]);
            }
        }
        tiers.sort_unstable();
        Picking { left_out, base, tiers, floor }
    }

    /// Per shape, the allowed flavors that have room for it now (whole or
    /// fractional GPUs, counting what short jobs may use of reservations).
    fn room_by_shape(&self) -> Vec<u64> {
        let nf = self.cluster.flavors.len();
        let mut resv_whole = vec![0u32; nf];
        let mut resv_partial = vec![0u16; nf];
        for r in self.resv.iter() {
            for &(n, _) in &r.nodes {
                if !self.cluster.status(n).schedulable() {
                    continue;
                }
                let f = self.cluster.node(n).flavor.ix();
                resv_whole[f] = resv_whole[f].max(self.cluster.whole_free(n));
                let part = self.cluster.gpu_free(n).iter().copied().filter(|&m| m < crate::cluster::MILLI).max().unwrap_or(0);
                resv_partial[f] = resv_partial[f].max(part);
            }
        }
        // With the default placement a real search per shape is cheap and sees CPUs
        // and memory too; scoring policies scan every node, so they use the GPU
        // counts alone.
        let probe = !self.scores_nodes();
        let probe_end = self.now + 1;
        self.shapes
            .iter()
            .zip(&self.shape_pending)
            .map(|(sk, &waiting)| {
                if waiting == 0 {
                    return 0;
                }
                let s = sk.shape;
                let no_room = |fi: usize| {
                    let f = crate::ids::FlavorIdx::from(fi);
                    if probe {
                        self.find_placement(sk, f, probe_end, crate::ids::JobId(0)).is_err()
                    } else if s.milli > 0 {
                        self.cluster.max_partial_free(f) < s.milli
                            && self.cluster.max_whole_free(f) == 0
                            && resv_partial[fi] < s.milli
                            && resv_whole[fi] == 0
                    } else if s.gpus == 0 {
                        false
                    } else {
                        self.cluster.replica_capacity(crate::ids::DomainIdx(0), f, s.gpus) < u64::from(s.replicas)
                            && (s.replicas > 1 || resv_whole[fi] < s.gpus)
                    }
                };
                (0..nf).filter(|&f| sk.flavor_mask & (1 << f) != 0 && !no_room(f)).fold(0u64, |m, f| m | (1 << f))
            })
            .collect()
    }

    /// Step 2 and 3 for one job.
    fn consider(&mut self, k: &Key, now: Time, st: &mut PassState, plan: &mut Plan) {
        self.turns += 1;
        let this_turn = self.turns;
        let j = k.idx();
        let sid = k.shape as usize;
        let end = now + k.walltime;
        let pass = self.pass;
        let may_reserve = self.policy.backfill && st.reservations < self.policy.reservations;
        let holds_resv = self.resv.holds(j);
        if self.decided_at_once(k, end, st.first_booked_at) && !may_reserve && !holds_resv && !self.may_try_preempt(k, st) {
            plan.decided_by_shape += 1;
            self.note_may_reclaim_later(k, st);
            return;
        }
        if let Err(b) = self.budgets.check(&self.tenants, TenantIdx(k.tenant), now) {
            self.resv.drop_for_job(j, &mut self.cluster);
            self.set_reason(j, PendingReason::Budget(b), None);
            return;
        }
        let job = self.job_at(j);
        let tenant = job.tenant;
        let id = job.id;
        let need = job.shape.total_milli();
        // Flavors where the tenant stays within its nominal come first (in the job's
        // order of preference), then those where it would borrow: a flexible job
        // does not borrow one flavor while its guarantee on another sits unused.
        let mut flavors = job.flavors.to_vec();
        if flavors.len() > 1 {
            flavors.sort_by_key(|&f| self.tenants.held(tenant, f) + need > self.tenants.quota(tenant, f).nominal);
        }
        let sk = self.shapes[sid].clone();
        // A job whose reserved room is free starts there, leaving other jobs' room alone.
        if holds_resv && let Some((f, picks)) = self.reserved_room_free(j, end > st.first_booked_at) {
            let start = self.start_job(j, f, &picks, now);
            self.note_borrowing(j, tenant, f, st);
            plan.starts.push(start);
            return;
        }
        self.stand_for(j, end);
        let mut reason: Option<PendingReason> = None;
        let mut capacity_blocked = false;
        // Refused on some flavor by a reservation's root booking: it would run into
        // the reservation's start, and takes nobody's room for that.
        let mut booked_at_root = false;
        // Scoring policies compare nodes of every admissible flavor at once (as a
        // cluster-wide scorer would), rather than taking the first flavor with room.
        let scored_single = self.scores_nodes() && sk.shape.replicas == 1;
        let mut scored_flavors = Vec::new();
        let past_booking = end > st.first_booked_at;
        // Flavors on which the shape found no room (whoever's job it is).
        let mut no_room: u64 = 0;
        // Refused by quota now, a job keeps the reservation it holds where quota
        // admits it by the reservation's start, starting no sooner than that
        // (`quota_admits_at_reservation`).
        let mut quota_floor: Option<Time> = None;
        let mut keeps_for_quota = |core: &mut Core, f: crate::ids::FlavorIdx| {
            let at = if holds_resv { core.quota_admits_at_reservation(j, f, past_booking) } else { None };
            quota_floor = quota_floor.or(at);
            at.is_some()
        };
        for &f in flavors.iter() {
            if let Some(why) = self.quota_refused(k, f, end) {
                capacity_blocked |= keeps_for_quota(self, f);
                reason.get_or_insert(why);
                continue;
            }
            if holds_resv && let Some(why) = self.no_room_memo(sid, f, end) {
                blocked_for_room(why, f, &mut capacity_blocked, &mut no_room, &mut reason);
                continue;
            }
            if past_booking
                && let Err(q) = self.tenants.can_admit_booked(tenant, f, need)
                && self.tenants.can_admit(tenant, f, need).is_ok()
            {
                // Free quota, but booked by a reservation that starts before this
                // job would end (and so would any job of the tenant's ending later).
                // At the root, the booking is the reservation's GPUs: the job would
                // run into its start, as on its nodes (room, not quota; no shape
                // memo, as one ending sooner may pass).
                if q.tenant == TenantIdx(0) && self.tenants.admits_but_for_root_bookings(tenant, f, need) {
                    capacity_blocked = true;
                    booked_at_root = true;
                    if !matches!(reason, Some(PendingReason::Topology { .. })) {
                        reason = Some(PendingReason::NoCapacity { flavor: Some(f) });
                    }
                    continue;
                }
                // A root refusal an idle cluster would not make is room (note 25),
                // booked or not: as the next pass would see it once later starts
                // take what the booking left (stability seed 16882).
                if q.tenant == TenantIdx(0) && self.capacity_is_the_block(tenant, f, need) {
                    capacity_blocked = true;
                    if gpus_short(&self.tenants, &self.cluster, f, need) {
                        no_room |= 1 << f.0;
                    }
                    if !matches!(reason, Some(PendingReason::Topology { .. })) {
                        reason = Some(PendingReason::NoCapacity { flavor: Some(f) });
                    }
                    continue;
                }
                self.note_quota_block_if_room(q.tenant, &sk, sid, f, end, id, &mut no_room);
                let why = PendingReason::Quota { tenant: q.tenant, flavor: q.flavor, need_milli: q.need, room_milli: q.room };
                self.quota_memo.insert((k.tenant, k.shape, f.0), (pass, end, why));
                capacity_blocked |= keeps_for_quota(self, f);
                reason.get_or_insert(why);
                continue;
            }
            if let Err(q) = self.tenants.can_admit(tenant, f, need) {
                if self.capacity_is_the_block(tenant, f, need) {
                    capacity_blocked = true;
                    // While the GPUs are short, no job of the shape fits anywhere
                    // (and only a reclaim freeing surplus room, which runs another
                    // round anyway, changes that). Otherwise the refusal is this
                    // tenant's (others' unused reserves count at the root; a tenant
                    // within its own adds nothing there): another's job of the
                    // shape may start, and a reclaim of any tenant gives the root
                    // back what this one lacks, so the root is a limit that held a
                    // job back (another round after a reclaim).
                    if gpus_short(&self.tenants, &self.cluster, f, need) {
                        no_room |= 1 << f.0;
                    } else if !self.quota_blocked.get(q.tenant.ix()).copied().unwrap_or(true) {
                        self.note_quota_block_if_room(q.tenant, &sk, sid, f, end, id, &mut no_room);
                    }
                    reason = Some(PendingReason::NoCapacity { flavor: Some(f) });
                } else {
                    self.note_quota_block_if_room(q.tenant, &sk, sid, f, end, id, &mut no_room);
                    let why = PendingReason::Quota { tenant: q.tenant, flavor: q.flavor, need_milli: q.need, room_milli: q.room };
                    self.quota_memo.insert((k.tenant, k.shape, f.0), (pass, Time::MIN, why));
                    capacity_blocked |= keeps_for_quota(self, f);
                    reason.get_or_insert(why);
                }
                continue;
            }
            // A job its quota refuses that holds no reservation gets none for want
            // of room, whether or not the round has learnt yet that its shape finds
            // none (stability seed 13025: it had learnt in the second pass, not in
            // the first); a holder is asked about room first, and keeps its
            // reservation while room blocks it (seed 15798).
            if !holds_resv && let Some(why) = self.no_room_memo(sid, f, end) {
                blocked_for_room(why, f, &mut capacity_blocked, &mut no_room, &mut reason);
                continue;
            }
            if self.surely_no_room(&sk, f) {
                capacity_blocked = true;
                no_room |= 1 << f.0;
                reason = Some(PendingReason::NoCapacity { flavor: Some(f) });
                continue;
            }
            if scored_single {
                scored_flavors.push(f);
                continue;
            }
            match self.find_placement(&sk, f, end, id) {
                Ok(picks) => {
                    self.unstand();
                    let start = self.start_job(j, f, &picks, now);
                    self.note_borrowing(j, tenant, f, st);
                    plan.starts.push(start);
                    return;
                }
                Err(PlaceFail::Capacity) => {
                    capacity_blocked = true;
                    no_room |= 1 << f.0;
                    if !matches!(reason, Some(PendingReason::Topology { .. })) {
                        reason = Some(PendingReason::NoCapacity { flavor: Some(f) });
                    }
                }
                Err(PlaceFail::Topology(level)) => {
                    capacity_blocked = true;
                    no_room |= 1 << f.0;
                    reason = Some(PendingReason::Topology { level });
                }
            }
        }
        if !scored_flavors.is_empty() {
            match self.place_scored(&sk, &scored_flavors, end, id) {
                Some((f, picks)) => {
                    self.unstand();
                    let start = self.start_job(j, f, &picks, now);
                    self.note_borrowing(j, tenant, f, st);
                    plan.starts.push(start);
                    return;
                }
                None => {
                    capacity_blocked = true;
                    no_room |= scored_flavors.iter().fold(0, |m, f| m | 1 << f.0);
                    reason = Some(PendingReason::NoCapacity { flavor: scored_flavors.last().copied() });
                }
            }
        }
        let mut reason = reason.unwrap_or(PendingReason::NoCapacity { flavor: None });
        let mut estimate = None;
        if !booked_at_root && self.may_try_preempt(k, st) {
            plan.preemption_searches += 1;
            // Looked at again after a failed search, the job may hold a reservation
            // confirmed earlier in the round: it searches as it will in the next
            // pass, where it comes before its reservation is made (its reserved
            // nodes open to it, its booked quota not counted against it).
            let own = if holds_resv && self.resv.confirmed_in(j, pass).is_some() {
                let f = self.resv.suspend_one(j, &mut self.cluster);
                if let Some(f) = f {
                    self.tenants.unbook(tenant, f, need);
                    if let Some(&(_, id)) = st.root_bookings.iter().find(|(x, _)| *x == j) {
                        self.tenants.unbook_root(id);
                    }
                }
                f
            } else {
                None
            };
            let later = match self.second_look {
                Some(turn) => self.resv.suspend_later(j, pass, turn, &mut self.cluster),
                None => Vec::new(),
            };
            let found = self.try_preempt(j, now, past_booking);
            if self.resv.resume_later(&later, &mut self.cluster, &self.node_jobs) {
                // Their holders' turns are to be taken again, as in the next pass.
                st.freed_surplus = true;
            }
            self.unstand();
            if found.is_none()
                && let Some(f) = own
            {
                self.resv.resume_one(j, &mut self.cluster, &self.node_jobs);
                self.tenants.book(tenant, f, need);
                if let Some(&(_, id)) = st.root_bookings.iter().find(|(x, _)| *x == j) {
                    self.tenants.rebook_root(id);
                }
            }
            match found {
                Some((start, surplus, victim_tenants)) => {
                    st.preemptions += 1;
                    // The victims' tenants gave quota back: what it refused may fit now;
                    // and room beyond the job's need is free for others.
                    self.quota_memo.clear();
                    if surplus {
                        self.room_stamp += 1;
                    }
                    // Jobs decided earlier in the round may now start: on surplus
                    // room, or on quota the victims gave back under a limit that
                    // held some job back.
                    st.freed_surplus |=
                        surplus || victim_tenants.iter().any(|&v| self.limit_freed_for_blocked(v) || self.may_reclaim_now(v, start.flavor));
                    self.note_borrowing(j, tenant, start.flavor, st);
                    plan.starts.push(start);
                    return;
                }
                None => {
                    let class = &self.classes[k.class as usize];
                    if class.preempt_lower {
                        st.failed_priority = st.failed_priority.max(Some(class.priority));
                    }
                    st.objected |= self.search_objected;
                    st.failed_reclaims.push((*k, None));
                    st.failed_preemptions += 1;
                    st.failed_shapes.insert((k.shape, k.tenant));
                }
            }
        } else {
            self.note_may_reclaim_later(k, st);
        }
        self.unstand();
        let mut reserved = false;
        if capacity_blocked {
            // Later jobs of the shape find no room on these flavors either when they
            // end no sooner (room only shrinks in a round), nor when they end after
            // every reservation of the flavor has begun (only a single replica that
            // ends before a reservation starts may use reserved room; a gang never
            // does).
            for f in crate::ids::FlavorIdx::in_mask(no_room) {
                let fail_end = if sk.shape.replicas > 1 {
                    Time::MIN
                } else {
                    let last_resv = self.resv.active().filter(|r| r.flavor == f).map(|r| r.at).max();
                    end.min(last_resv.map_or(Time::MIN, |at| at.saturating_add(1)))
                };
                let why = match reason {
                    PendingReason::Topology { .. } => reason,
                    _ => PendingReason::NoCapacity { flavor: Some(f) },
                };
                self.resv.note_no_room(sid, f, self.room_stamp, fail_end, why);
            }
            if self.resv.memo[sid].pass != pass {
                self.resv.memo[sid] = crate::backfill::ShapeMemo { pass, reason };
            }
            // Looked at again in the round, a job keeps the reservation it confirmed
            // earlier in it (worked out again, its own nodes would count as another's).
            let confirmed = self.resv.confirmed_in(j, pass).map(|r| r.at);
            if let Some(at) = confirmed {
                reserved = true;
                reason = PendingReason::Reserved { at };
                estimate = Some(at);
            } else if may_reserve {
                // Its reservation, too, leaves alone the room it stood for.
                let stood = self.stood_at.get(&j.0).filter(|s| !s.is_empty());
                let mut left_out: Vec<crate::ids::NodeIdx> = stood.map_or_else(Vec::new, |s| s.iter().map(|&(n, _, _)| n).collect());
                left_out.sort_unstable();
                left_out.dedup();
                self.resv.left_out = left_out;
                let reserved_at = self.reserve(j, now, quota_floor, past_booking);
                self.resv.left_out.clear();
                if let Some(at) = reserved_at {
                    if let Some(f) = self.resv.of_job(j).map(|r| r.flavor) {
                        self.tenants.book(tenant, f, need);
                        if self.policy.book_root_quota {
                            let rb = self.root_booking(tenant, f, at, need);
                            let id = self.tenants.book_root(f, at, rb);
                            st.root_bookings.push((j, id));
                        }
                        st.first_booked_at = st.first_booked_at.min(at);
                    }
                    st.reservations += 1;
                    reserved = true;
                    reason = PendingReason::Reserved { at };
                    estimate = Some(at);
                }
            } else if let Some(r) = self.resv.active().min_by_key(|r| r.at)
                && need <= self.free_physical_milli(&flavors)
            {
                reason = PendingReason::BehindReservation { job: self.job_at(r.job).id, at: r.at };
            }
        }
        // A reservation confirmed earlier in this round stands (the job is looked at
        // again after a reclaim search failed, when the round's reservations are taken).
        if !reserved && holds_resv && self.resv.confirmed_in(j, pass).is_none() {
            self.resv.drop_for_job(j, &mut self.cluster);
        }
        // The bookings as this turn leaves them, for the job's second look (if it
        // gets one).
        if let Some((last, turn @ None)) = st.failed_reclaims.last_mut()
            && last.job == k.job
        {
            *turn = Some(Turn { bookings: self.tenants.bookings_len(), first_booked_at: st.first_booked_at, turn: this_turn });
        }
        self.set_reason(j, reason, estimate);
    }

    /// What the round has learnt of shape `sid`'s room on flavor `f` for a job
    /// ending at `end`: the reason it finds none, if it does not.
    fn no_room_memo(&self, sid: usize, f: crate::ids::FlavorIdx, end: Time) -> Option<PendingReason> {
        self.resv.no_room_for(sid, 1 << f.0, self.room_stamp, end).then(|| self.resv.no_room_reason(sid, f))
    }

    /// Before job `j` (ending at `end`) looks for room to start: the room of the
    /// reservations it is to leave alone (`stood_at`, recorded at its first turn at
    /// this instant) is hidden from it, as their caps would hide it, unless it ends
    /// by their start. `unstand` lifts that.
    fn stand_for(&mut self, j: JobIdx, end: Time) {
        // Only a sound reservation moves: one computed anew (a node of it went down,
        // or another took it over) may take later ones' room, as a new one does.
        let (resv, cluster) = (&self.resv, &self.cluster);
        let stood =
            self.stood_at.entry(j.0).or_insert_with(|| if resv.sound(j, cluster) { resv.suspended_room_but(j) } else { Vec::new() });
        if stood.is_empty() {
            return;
        }
        let stood = stood.clone();
        for &(n, need, at) in &stood {
            if end <= at {
                continue;
            }
            let spare = crate::backfill::free_by(n, at, &self.cluster, &self.node_jobs).saturating_sub(need);
            let cap = spare.min(self.cluster.index_cap(n));
            self.cluster.set_index_cap(n, Some(cap));
            self.stood_nodes.push(n);
        }
    }

    /// Lifts the caps `stand_for` set (each node back to its own reservation's, if
    /// active). What the round learnt about room meanwhile was learnt with less
    /// room than others see: forgotten.
    fn unstand(&mut self) {
        if self.stood_nodes.is_empty() {
            return;
        }
        for n in std::mem::take(&mut self.stood_nodes) {
            self.cluster.set_index_cap(n, None);
            self.resv.refresh_node(n, &mut self.cluster, &self.node_jobs);
        }
        self.room_stamp += 1;
    }

    /// Job `j`'s reserved nodes, if they hold it now (and quota admits it there).
    /// With `booked`, quota is asked with the round's bookings counted (the job would
    /// still run when a reservation booked earlier in the round starts).
    fn reserved_room_free(&self, j: JobIdx, booked: bool) -> Option<(crate::ids::FlavorIdx, Vec<crate::place::Pick>)> {
        let r = self.resv.of_job(j)?;
        let job = self.job_at(j);
        let s = job.shape;
        let admits = if booked {
            self.tenants.can_admit_booked(job.tenant, r.flavor, s.total_milli())
        } else {
            self.tenants.can_admit(job.tenant, r.flavor, s.total_milli())
        };
        // Only while the reservation is intact: a higher-priority one may have taken
        // some of its nodes over in this pass.
        if !r.valid || s.milli > 0 || admits.is_err() {
            return None;
        }
        if !r.nodes.iter().all(|&(n, _)| self.resv.owned_by(n, j)) {
            return None;
        }
        let mut left = s.replicas;
        let mut picks = Vec::new();
        for &(n, _) in &r.nodes {
            if left == 0 {
                break;
            }
            if !self.cluster.status(n).schedulable() {
                return None;
            }
            let fit = self.cluster.replicas_fit(n, self.cluster.whole_free(n), s.gpus, s.cpus, s.mem_mib);
            let take = fit.min(left);
            if take > 0 {
                picks.push((n, take, None));
                left -= take;
            }
        }
        (left == 0).then_some((r.flavor, picks))
    }

    /// Whether a job of `tenant` needing `need` milli-GPU of flavor `f` is held back by
    /// capacity (or nothing) rather than by quota: it is admissible, or refused only
    /// at the root, whose limit is the cluster's size, and would not be on an idle
    /// cluster: running jobs hold the GPUs it needs, and it waits for them to end
    /// (a reservation there starts no sooner than the root admits it: `root_floor`).
    /// A refusal that would stand on an idle cluster is for other tenants'
    /// unlendable reserves: quota, however full the cluster is now. Whether GPUs
    /// are free now does not decide it: the round's own starts change that, and
    /// whether the job may reserve a flavor would turn on how many had started.
    pub(crate) fn capacity_is_the_block(&self, tenant: TenantIdx, f: crate::ids::FlavorIdx, need: u64) -> bool {
        match self.tenants.can_admit(tenant, f, need) {
            Ok(()) => true,
            Err(b) => b.tenant == TenantIdx(0) && self.tenants.root_admits_when_idle(tenant, f, need),
        }
    }

    /// After job `started` started: borrowing may have begun, which gives later jobs
    /// something to reclaim (and jobs whose reclaim failed earlier in the round a
    /// second try); or it may be a victim for a higher class whose search failed.
    fn note_borrowing(&self, started: JobIdx, tenant: TenantIdx, f: crate::ids::FlavorIdx, st: &mut PassState) {
        st.started_after_objection |= st.objected;
        if let Some(p) = st.failed_priority
            && !st.victim_started
        {
            let job = self.job_at(started);
            st.victim_started = job.preemptible && self.classes[job.class.ix()].priority < p;
        }
        if st.someone_borrows && (st.failed_reclaims.is_empty() || st.borrowing_began) {
            return;
        }
        let mut x = Some(tenant);
        while let Some(t) = x {
            if t != TenantIdx(0) && self.tenants.held(t, f) > self.tenants.quota(t, f).nominal {
                st.someone_borrows = true;
                st.borrowing_began |= !st.failed_reclaims.is_empty();
                return;
            }
            x = self.tenants.tenants[t.ix()].parent;
        }
    }

    /// A blocked job that would search for something to reclaim, but for no tenant
    /// borrowing yet in the round, gets its search at the round's end should a
    /// later start make one borrow (as one whose search failed does): the next
    /// pass would find what the start lent.
    fn note_may_reclaim_later(&self, k: &Key, st: &mut PassState) {
        if !st.someone_borrows && self.may_preempt(k, st, true) {
            st.failed_reclaims.push((*k, None));
        }
    }

    fn may_try_preempt(&self, k: &Key, st: &PassState) -> bool {
        self.may_preempt(k, st, st.someone_borrows)
    }

    /// Whether job `k` may search for something to preempt, were `someone_borrows`.
    pub(crate) fn may_preempt(&self, k: &Key, st: &PassState, someone_borrows: bool) -> bool {
        if !self.policy.preemption
            || !st.preempting
            || st.preemptions >= self.policy.preemptions_per_pass
            || st.failed_preemptions >= self.policy.failed_preemption_searches_per_pass
        {
            return false;
        }
        if st.failed_shapes.contains(&(k.shape, k.tenant)) {
            return false;
        }
        if self.classes[k.class as usize].preempt_lower {
            return true;
        }
        if !someone_borrows {
            return false;
        }
        let tenant = TenantIdx(k.tenant);
        let mask = self.shapes[k.shape as usize].flavor_mask;
        let need = self.shapes[k.shape as usize].shape.total_milli();
        (0..self.cluster.flavors.len()).filter(|f| mask & (1 << f) != 0).any(|f| {
            let f = crate::ids::FlavorIdx::from(f);
            self.tenants.held(tenant, f) + need <= self.tenants.quota(tenant, f).nominal
        })
    }

    /// Whether this round already knows that job `k`, ending at `end`, can start on
    /// none of its flavors: no room for its shape, its tenant's quota refused it,
    /// or the root refuses it for other tenants' reserves (`root_holds_back`).
    pub(crate) fn decided_at_once(&self, k: &Key, end: Time, first_booked_at: Time) -> bool {
        let sid = k.shape as usize;
        let mask = self.shapes[sid].flavor_mask;
        if self.resv.no_room_for(sid, mask, self.room_stamp, end) {
            return true;
        }
        if mask == 0 {
            return false;
        }
        let need = self.shapes[sid].shape.total_milli();
        // Once a job of the shape had its turn in this round: it left the reason
        // that `explain` gives the shape's jobs decided without one.
        let shape_seen = self.resv.memo[sid].pass == self.pass;
        crate::ids::FlavorIdx::in_mask(mask).all(|f| {
            self.quota_refused(k, f, end).is_some()
                || self.resv.no_room_for(sid, 1 << f.0, self.room_stamp, end)
                || shape_seen && self.root_holds_back(TenantIdx(k.tenant), f, need, end > first_booked_at)
        })
    }

    /// Whether `consider` would find a job of `tenant` needing `need` of flavor `f`
    /// (ending past the round's first booked reservation start if `past_booking`)
    /// held back there by the root alone, with nothing to note: refused for other
    /// tenants' reserves or a reservation's root booking while the GPUs are there
    /// (room, not quota, note 25), with the root already marked as a limit that held
    /// a job back. Worked out anew, not remembered: a job's turn takes a few
    /// walks up the tenant tree this way, a placement search or two otherwise (in
    /// a steady pass thousands of one-GPU jobs were taken one by one for this).
    fn root_holds_back(&self, tenant: TenantIdx, f: crate::ids::FlavorIdx, need: u64, past_booking: bool) -> bool {
        let short = || gpus_short(&self.tenants, &self.cluster, f, need);
        if past_booking
            && let Err(q) = self.tenants.can_admit_booked(tenant, f, need)
            && self.tenants.can_admit(tenant, f, need).is_ok()
        {
            return q.tenant == TenantIdx(0)
                && (self.tenants.admits_but_for_root_bookings(tenant, f, need) || self.capacity_is_the_block(tenant, f, need) && !short());
        }
        match self.tenants.can_admit(tenant, f, need) {
            Err(q) => {
                q.tenant == TenantIdx(0)
                    && self.capacity_is_the_block(tenant, f, need)
                    && !short()
                    && self.quota_blocked.get(q.tenant.ix()).copied().unwrap_or(false)
            }
            Ok(()) => false,
        }
    }

    /// Why this round's quota memo refuses job `k`, ending at `end`, on flavor `f`.
    fn quota_refused(&self, k: &Key, f: crate::ids::FlavorIdx, end: Time) -> Option<PendingReason> {
        self.quota_memo.get(&(k.tenant, k.shape, f.0)).and_then(|&(p, qend, why)| (p == self.pass && end >= qend).then_some(why))
    }

    /// A quota limit at tenant `t` held a job back in this round.
    fn note_quota_block(&mut self, t: TenantIdx) {
        if let Some(b) = self.quota_blocked.get_mut(t.ix()) {
            *b = true;
        }
    }

    /// A quota limit at tenant `t` refused job `id` of shape `sk` (`sid`), ending at
    /// `end`, on flavor `f`: it held the job back only if the job finds room there
    /// (quota aside). A job with no room marks no limit (quota given back would not
    /// start it), so what a round marks does not hang on whether it looked at such
    /// jobs at all (`room::Strict` skips them); its flavor goes into `no_room`.
    #[allow(clippy::too_many_arguments)]
    fn note_quota_block_if_room(
        &mut self,
        t: TenantIdx,
        sk: &crate::core::ShapeKey,
        sid: usize,
        f: crate::ids::FlavorIdx,
        end: Time,
        id: crate::ids::JobId,
        no_room: &mut u64,
    ) {
        let room = !self.resv.no_room_for(sid, 1 << f.0, self.room_stamp, end)
            && !self.surely_no_room(sk, f)
            && self.find_placement(sk, f, end, id).is_ok();
        if room {
            self.note_quota_block(t);
        } else {
            *no_room |= 1 << f.0;
        }
    }

    /// Whether usage given back by tenant `v` lowers a limit (at `v` or an
    /// ancestor) that held a job back in this round. The root counts when it
    /// refused a job while the GPUs were not short (`consider` marks it only then;
    /// while they are short, only surplus room helps, which the surplus check covers).
    fn limit_freed_for_blocked(&self, v: TenantIdx) -> bool {
        let mut x = Some(v);
        while let Some(t) = x {
            if self.quota_blocked.get(t.ix()).copied().unwrap_or(false) {
                return true;
            }
            x = self.tenants.tenants[t.ix()].parent;
        }
        false
    }

    /// Whether tenant `v`, having lost jobs to a preemption, or one of its
    /// ancestors, now has room below its nominal on `f` for one of its waiting jobs
    /// (a job of that tenant or below it): it may reclaim in turn (from a sibling
    /// that borrows), and a job of it decided earlier in the round, when it had no
    /// such room, would do so in the next pass at the same time. Under the orders
    /// that keep every job in one group, any room counts.
    fn may_reclaim_now(&self, v: TenantIdx, f: crate::ids::FlavorIdx) -> bool {
        if !self.policy.preemption {
            return false;
        }
        let mut at = Some(v);
        while let Some(a) = at.filter(|&a| a != TenantIdx(0)) {
            at = self.tenants.tenants[a.ix()].parent;
            let room = self.tenants.quota(a, f).nominal.saturating_sub(self.tenants.held(a, f));
            if room == 0 {
                continue;
            }
            if self.policy.order != OrderPolicy::Default {
                return true;
            }
            let waits = self.queue.live().iter().any(|&g| {
                let grp = &self.queue.groups[g as usize];
                self.tenants.is_ancestor_or_self(a, grp.tenant)
                    && grp.shape.is_some_and(|sid| {
                        let sk = &self.shapes[sid as usize];
                        sk.flavor_mask & (1 << f.0) != 0 && sk.shape.total_milli() <= room
                    })
            });
            if waits {
                return true;
            }
        }
        false
    }

    /// Per tenant, a mask of the flavors on which it holds less than its nominal (a
    /// job allowing none of them can only borrow, and is considered after those that
    /// need not).
    fn flavors_below_nominal(&self) -> Vec<u64> {
        let nf = self.cluster.flavors.len();
        (0..self.tenants.len())
            .map(|t| {
                let t = TenantIdx::from(t);
                (0..nf).fold(0u64, |m, f| {
                    let f = crate::ids::FlavorIdx::from(f);
                    if self.tenants.held(t, f) < self.tenants.quota(t, f).nominal { m | 1 << f.0 } else { m }
                })
            })
            .collect()
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
        flavors.iter().map(|&f| (self.cluster.capacity_gpus(f) * 1000).saturating_sub(self.tenants.total_usage(f))).max().unwrap_or(0)
    }

    fn set_reason(&mut self, j: JobIdx, reason: PendingReason, estimate: Option<Time>) {
        let pass = self.pass;
        let job = self.job_mut(j);
        job.reason = reason;
        job.estimated_start = estimate;
        job.reason_pass = pass;
    }
}

/// What the round learnt of a job's shape (no room on flavor `f`, for `why`)
/// blocks the job there for room; a topology reason outranks the others.
fn blocked_for_room(
    why: PendingReason,
    f: crate::ids::FlavorIdx,
    capacity_blocked: &mut bool,
    no_room: &mut u64,
    reason: &mut Option<PendingReason>,
) {
    *capacity_blocked = true;
    *no_room |= 1 << f.0;
    if matches!(why, PendingReason::Topology { .. }) || !matches!(reason, Some(PendingReason::Topology { .. })) {
        *reason = Some(why);
    }
}

/// Whether `need` milli-GPU of flavor `f` more than the cluster holds are in use:
/// no job of that size fits anywhere on the flavor, whoever's it is.
fn gpus_short(tenants: &crate::tenants::Tenants, cluster: &crate::cluster::Cluster, f: crate::ids::FlavorIdx, need: u64) -> bool {
    tenants.total_usage(f) + need > cluster.capacity_gpus(f) * 1000
}
