//! Backfill reservations (EASY backfill by default, conservative with more than one).
//!
//! The highest-priority blocked jobs each get a reservation: the earliest time `at`
//! at which, as running jobs reach their walltimes, enough GPUs free up in one domain
//! (found by replaying job ends in order on a shadow of the free counts, with the
//! domain capacities updated incrementally), and the nodes it will use.
//!
//! On a reserved node, work that would still run at `at` may only take what the
//! reservation leaves spare: `projected_free(at) - reserved`. The index exposes just
//! that (`Cluster::set_index_cap`), so placing long jobs needs no extra checks.
//! Jobs that end before `at` may use reserved GPUs freely (`Core::reserved_fit`).
//! Either way a backfilled job never delays a reservation.
//!
//! Reservations are kept between passes, but every pass starts with all of them
//! suspended: jobs of higher priority than a reservation's owner may use its room.
//! When the pass reaches the owner, the reservation's start is worked out again from
//! what still runs on its nodes (jobs end before their walltimes, so it moves
//! earlier), and a fresh replay replaces it only if that starts sooner. One job holds
//! a reservation at a time by default (EASY backfill; `policy.reservations`).

use rustc_hash::FxHashMap;

use crate::cluster::Cluster;
use crate::core::{Core, NodeJob, ReservationView};
use crate::ids::{DomainIdx, FlavorIdx, JobIdx, NodeIdx, TenantIdx, Time};

/// Nodes and how many replicas (or GPUs) on each.
type NodePicks = Vec<(NodeIdx, u32)>;

/// Running and stopping jobs by expected end, per flavor, with the slots they hold
/// and the quota they are charged: what a reservation's replay of job ends walks,
/// in order, without reaching into the job table (a cache miss per job; the replay
/// may walk thousands).
#[derive(Clone, Debug, Default)]
pub(crate) struct FlavorEnds {
    by_flavor: Vec<EndsOfFlavor>,
}

/// What a running job gives back when it ends.
#[derive(Clone, Debug)]
pub(crate) struct Ending {
    pub(crate) tenant: TenantIdx,
    pub(crate) milli: u64,
    pub(crate) slots: EndingSlots,
}

/// A job's slots, the one of a single replica (most jobs) held inline: the
/// replay reads them end after end, and a pointer to follow each time is a
/// cache miss each time.
#[derive(Clone, Debug)]
pub(crate) enum EndingSlots {
    One(crate::cluster::Slot),
    Many(Box<[crate::cluster::Slot]>),
}

impl EndingSlots {
    pub(crate) fn of(slots: &[crate::cluster::Slot]) -> EndingSlots {
        match slots {
            [one] => EndingSlots::One(*one),
            many => EndingSlots::Many(many.into()),
        }
    }

    fn as_slice(&self) -> &[crate::cluster::Slot] {
        match self {
            EndingSlots::One(one) => std::slice::from_ref(one),
            EndingSlots::Many(many) => many,
        }
    }
}

/// (expected end, job slot) to what the job gives back.
type EndsOfFlavor = std::collections::BTreeMap<(Time, u32), Ending>;

impl FlavorEnds {
    pub(crate) fn insert(&mut self, f: FlavorIdx, end: Time, job: u32, ending: Ending) {
        if self.by_flavor.len() <= f.ix() {
            self.by_flavor.resize_with(f.ix() + 1, Default::default);
        }
        self.by_flavor[f.ix()].insert((end, job), ending);
    }

    pub(crate) fn remove(&mut self, f: FlavorIdx, end: Time, job: u32) -> Option<Ending> {
        self.by_flavor.get_mut(f.ix()).and_then(|m| m.remove(&(end, job)))
    }

    /// A job's expected end moved.
    pub(crate) fn moved(&mut self, f: FlavorIdx, old: Time, new: Time, job: u32) {
        if let Some(ending) = self.remove(f, old, job) {
            self.by_flavor[f.ix()].insert((new, job), ending);
        }
    }

    /// Jobs of flavor `f` in order of expected end, with what each gives back.
    fn of(&self, f: FlavorIdx) -> impl Iterator<Item = (&(Time, u32), &Ending)> {
        self.by_flavor.get(f.ix()).into_iter().flatten()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_flavor.iter().map(|m| m.len()).sum()
    }

    /// Whether job slot `job` is held to end at `end` on flavor `f`, charged `milli` to `tenant`.
    pub(crate) fn holds(&self, f: FlavorIdx, end: Time, job: u32, tenant: TenantIdx, milli: u64) -> bool {
        self.by_flavor.get(f.ix()).and_then(|m| m.get(&(end, job))).is_some_and(|e| e.tenant == tenant && e.milli == milli)
    }
}

#[derive(Clone, Debug)]
pub struct Reservation {
    pub job: JobIdx,
    pub at: Time,
    pub flavor: FlavorIdx,
    /// Nodes and the GPUs reserved on each.
    pub nodes: Vec<(NodeIdx, u32)>,
    /// A node it uses changed state; it must be computed anew.
    pub valid: bool,
    /// Confirmed in the current pass (its caps apply).
    pub active: bool,
    pub seen_pass: u64,
    /// When it was last confirmed.
    pub seen_at: Time,
    /// The turn (`Core::turns`) that last confirmed it.
    pub seen_turn: u64,
}

/// Per-round memo of one job shape, for `explain`: why its jobs decided without a
/// search (`Reservations::no_room_for`) wait.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShapeMemo {
    pub pass: u64,
    pub reason: crate::job::PendingReason,
}

#[derive(Clone, Debug)]
pub struct Reservations {
    list: Vec<Option<Reservation>>,
    free: Vec<usize>,
    by_job: FxHashMap<JobIdx, usize>,
    node_need: Vec<u32>,
    node_at: Vec<Time>,
    node_owner: Vec<u32>,
    pub(crate) memo: Vec<ShapeMemo>,
    /// Per (shape, flavor): (stamp, end): since `Core::room_stamp` was `stamp`, the
    /// shape found no room on the flavor for jobs ending at or after `end`. Per flavor, because a job may
    /// leave a flavor untried for its own tenant's quota: that says nothing about
    /// room for other tenants' jobs of the shape.
    no_room: Vec<(u64, Time, crate::job::PendingReason)>,
    flavors: usize,
    /// Per job slot: holds a reservation (dense, for the pass's hot loop).
    holder: Vec<bool>,
    shadow: Vec<u16>,
    stamp: Vec<u32>,
    generation: u32,
    caps: Vec<u64>,
    /// Nodes a fresh replay leaves out besides other reservations' (those a job
    /// stood for while it looked for room: `Core::stood_at`), sorted.
    pub(crate) left_out: Vec<NodeIdx>,
}

impl Reservations {
    pub fn new(nodes: usize) -> Reservations {
        Reservations {
            list: vec![],
            free: vec![],
            by_job: FxHashMap::default(),
            node_need: vec![0; nodes],
            node_at: vec![0; nodes],
            node_owner: vec![0; nodes],
            memo: vec![],
            no_room: vec![],
            flavors: 0,
            holder: vec![],
            shadow: vec![0; nodes],
            stamp: vec![0; nodes],
            generation: 0,
            caps: vec![],
            left_out: vec![],
        }
    }

    pub(crate) fn grow_shapes(&mut self, n: usize, flavors: usize) {
        self.memo.resize(n, ShapeMemo { pass: 0, reason: crate::job::PendingReason::New });
        if flavors != self.flavors {
            self.flavors = flavors;
            self.no_room.clear();
        }
        self.no_room.resize(n * flavors, (0, Time::MAX, crate::job::PendingReason::New));
    }

    /// Shape `shape` found no room on flavor `f` in round `pass` for jobs ending at
    /// or after `end`.
    pub(crate) fn note_no_room(&mut self, shape: usize, f: FlavorIdx, stamp: u64, end: Time, why: crate::job::PendingReason) {
        if let Some(e) = self.no_room.get_mut(shape * self.flavors + f.ix()) {
            if e.0 != stamp {
                *e = (stamp, end, why);
            } else if end < e.1 {
                e.1 = end;
            }
        }
    }

    /// Why shape `shape` found no room on flavor `f` (after `no_room_for` said so).
    pub(crate) fn no_room_reason(&self, shape: usize, f: FlavorIdx) -> crate::job::PendingReason {
        self.no_room.get(shape * self.flavors + f.ix()).map_or(crate::job::PendingReason::NoCapacity { flavor: Some(f) }, |e| e.2)
    }

    /// Whether a job of `shape` ending at `end` finds no room on any flavor of
    /// `mask`, as the round `pass` has already learnt.
    pub(crate) fn no_room_for(&self, shape: usize, mask: u64, stamp: u64, end: Time) -> bool {
        mask != 0
            && FlavorIdx::in_mask(mask).all(
                |f| matches!(self.no_room.get(shape * self.flavors + f.ix()), Some(&(p, fail_end, _)) if p == stamp && end >= fail_end),
            )
    }

    pub fn iter(&self) -> impl Iterator<Item = &Reservation> {
        self.list.iter().flatten()
    }

    /// Reservations whose caps apply now.
    pub fn active(&self) -> impl Iterator<Item = &Reservation> {
        self.iter().filter(|r| r.active)
    }

    pub fn len(&self) -> usize {
        self.by_job.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_job.is_empty()
    }

    /// Jobs holding a reservation (in no particular order).
    pub fn holders(&self) -> impl Iterator<Item = JobIdx> + '_ {
        self.by_job.keys().copied()
    }

    /// Whether job `j` holds a reservation.
    pub fn holds(&self, j: JobIdx) -> bool {
        self.holder.get(j.ix()).copied().unwrap_or(false)
    }

    /// Job `j`'s reservation if it was confirmed in round `pass` (the job is being
    /// looked at a second time in that round).
    pub(crate) fn confirmed_in(&self, j: JobIdx, pass: u64) -> Option<&Reservation> {
        self.of_job(j).filter(|r| r.active && r.seen_pass == pass)
    }

    pub fn of_job(&self, j: JobIdx) -> Option<&Reservation> {
        self.by_job.get(&j).and_then(|&r| self.list[r].as_ref())
    }

    /// Reserved GPUs on a node and the reservation's start, if an active one holds it.
    pub fn on_node(&self, n: NodeIdx) -> Option<(u32, Time)> {
        self.active_owner(n).map(|_| (self.node_need[n.ix()], self.node_at[n.ix()]))
    }

    /// Whether node `n` is held by job `j`'s reservation.
    pub(crate) fn owned_by(&self, n: NodeIdx, j: JobIdx) -> bool {
        let o = self.node_owner[n.ix()];
        o != 0 && self.list[o as usize - 1].as_ref().is_some_and(|r| r.job == j)
    }

    fn active_owner(&self, n: NodeIdx) -> Option<&Reservation> {
        let o = self.node_owner[n.ix()];
        if o == 0 {
            return None;
        }
        self.list[o as usize - 1].as_ref().filter(|r| r.active)
    }

    /// Recomputes what node `n` exposes to long-running work.
    pub(crate) fn refresh_node(&self, n: NodeIdx, cluster: &mut Cluster, node_jobs: &[Vec<NodeJob>]) {
        if self.active_owner(n).is_none() {
            return;
        }
        cluster.set_index_cap(n, Some(self.spare(n, cluster, node_jobs)));
    }

    /// GPUs of node `n` free at its reservation's start, by running jobs' walltimes
    /// (a shared GPU counts once every fraction on it has ended).
    fn free_at_start(&self, n: NodeIdx, cluster: &Cluster, node_jobs: &[Vec<NodeJob>]) -> u32 {
        free_by(n, self.node_at[n.ix()], cluster, node_jobs)
    }

    /// GPUs of node `n` that work running past the reservation may take.
    fn spare(&self, n: NodeIdx, cluster: &Cluster, node_jobs: &[Vec<NodeJob>]) -> u32 {
        self.free_at_start(n, cluster, node_jobs).saturating_sub(self.node_need[n.ix()])
    }

    /// Adds an active reservation; nodes held by suspended (lower-priority)
    /// reservations are taken over, and those reservations marked for recomputing.
    fn add(&mut self, r: Reservation, cluster: &mut Cluster, node_jobs: &[Vec<NodeJob>]) {
        let id = match self.free.pop() {
            Some(i) => i,
            None => {
                self.list.push(None);
                self.list.len() - 1
            }
        };
        for &(n, gpus) in &r.nodes {
            let prev = self.node_owner[n.ix()];
            if prev != 0
                && let Some(p) = self.list[prev as usize - 1].as_mut()
            {
                p.valid = false;
            }
            self.node_need[n.ix()] = gpus;
            self.node_at[n.ix()] = r.at;
            self.node_owner[n.ix()] = id as u32 + 1;
        }
        if self.holder.len() <= r.job.ix() {
            self.holder.resize(r.job.ix() + 1, false);
        }
        self.holder[r.job.ix()] = true;
        self.by_job.insert(r.job, id);
        let nodes: Vec<NodeIdx> = r.nodes.iter().map(|&(n, _)| n).collect();
        self.list[id] = Some(r);
        for n in nodes {
            self.refresh_node(n, cluster, node_jobs);
        }
    }

    /// Removes job `j`'s reservation, if any, and lifts its caps.
    pub(crate) fn drop_for_job(&mut self, j: JobIdx, cluster: &mut Cluster) {
        let Some(id) = self.by_job.remove(&j) else { return };
        self.holder[j.ix()] = false;
        let r = self.list[id].take().expect("reservation");
        for &(n, _) in &r.nodes {
            if self.node_owner[n.ix()] == id as u32 + 1 {
                self.node_need[n.ix()] = 0;
                self.node_owner[n.ix()] = 0;
                cluster.set_index_cap(n, None);
            }
        }
        self.free.push(id);
    }

    /// Start of a pass: every reservation is suspended and its caps lifted.
    pub(crate) fn suspend_all(&mut self, cluster: &mut Cluster) {
        for r in self.list.iter_mut().flatten() {
            if r.active {
                r.active = false;
                for &(n, _) in &r.nodes {
                    cluster.set_index_cap(n, None);
                }
            }
        }
    }

    /// Lifts the caps of job `j`'s active reservation while the job itself looks
    /// for room (its own reservation keeps nothing from it); returns its flavor.
    /// `resume_one` puts them back.
    pub(crate) fn suspend_one(&mut self, j: JobIdx, cluster: &mut Cluster) -> Option<FlavorIdx> {
        let &id = self.by_job.get(&j)?;
        let r = self.list[id].as_mut().filter(|r| r.active)?;
        r.active = false;
        for &(n, _) in &r.nodes {
            if self.node_owner[n.ix()] == id as u32 + 1 {
                cluster.set_index_cap(n, None);
            }
        }
        Some(r.flavor)
    }

    /// Puts back the caps `suspend_one` lifted (worked out from what runs now).
    pub(crate) fn resume_one(&mut self, j: JobIdx, cluster: &mut Cluster, node_jobs: &[Vec<NodeJob>]) {
        let Some(&id) = self.by_job.get(&j) else { return };
        let Some(r) = self.list[id].as_mut() else { return };
        r.active = true;
        let nodes: Vec<NodeIdx> = r.nodes.iter().map(|&(n, _)| n).filter(|n| self.node_owner[n.ix()] == id as u32 + 1).collect();
        for n in nodes {
            self.refresh_node(n, cluster, node_jobs);
        }
    }

    /// A node changed state: reservations on it must be recomputed.
    pub(crate) fn invalidate_node(&mut self, n: NodeIdx) {
        let owner = self.node_owner[n.ix()];
        if owner != 0
            && let Some(r) = self.list[owner as usize - 1].as_mut()
        {
            r.valid = false;
        }
    }

    /// Whether job `j` holds a reservation that can still be kept: valid, every
    /// node still its own and schedulable.
    pub(crate) fn sound(&self, j: JobIdx, cluster: &Cluster) -> bool {
        let Some(&id) = self.by_job.get(&j) else { return false };
        self.list[id].as_ref().is_some_and(|r| {
            r.valid && r.nodes.iter().all(|&(n, _)| self.node_owner[n.ix()] == id as u32 + 1 && cluster.status(n).schedulable())
        })
    }

    /// The room of every suspended reservation but job `j`'s (their holders' turns
    /// are still to come): per node it still holds, the GPUs reserved and the start.
    pub(crate) fn suspended_room_but(&self, j: JobIdx) -> Vec<(NodeIdx, u32, Time)> {
        let mut room = Vec::new();
        for (id, r) in self.list.iter().enumerate() {
            let Some(r) = r.as_ref().filter(|r| r.job != j && !r.active) else { continue };
            room.extend(r.nodes.iter().filter(|&&(n, _)| self.node_owner[n.ix()] == id as u32 + 1).map(|&(n, gpus)| (n, gpus, r.at)));
        }
        room
    }

    /// Lifts the caps of every reservation confirmed in round `pass` after turn
    /// `turn` (but job `j`'s): a job looked at again at the end of the round
    /// searches as in the next pass, where their holders' turns come after its own.
    /// Returns them, for `resume_later`.
    pub(crate) fn suspend_later(&mut self, j: JobIdx, pass: u64, turn: u64, cluster: &mut Cluster) -> Vec<JobIdx> {
        let later: Vec<JobIdx> =
            self.iter().filter(|r| r.job != j && r.active && r.seen_pass == pass && r.seen_turn > turn).map(|r| r.job).collect();
        for &h in &later {
            self.suspend_one(h, cluster);
        }
        later
    }

    /// Puts back what `suspend_later` lifted. A reservation whose GPUs the search's
    /// job took (they are no longer free by its start) is left to be worked out
    /// anew, as the next pass would.
    pub(crate) fn resume_later(&mut self, later: &[JobIdx], cluster: &mut Cluster, node_jobs: &[Vec<NodeJob>]) -> bool {
        let mut invalidated = false;
        for &h in later {
            let Some(&id) = self.by_job.get(&h) else { continue };
            let ok = self.list[id].as_ref().is_some_and(|r| {
                r.nodes.iter().all(|&(n, need)| self.node_owner[n.ix()] != id as u32 + 1 || free_by(n, r.at, cluster, node_jobs) >= need)
            });
            if let Some(r) = self.list[id].as_mut()
                && !ok
            {
                r.valid = false;
                invalidated = true;
            }
            self.resume_one(h, cluster, node_jobs);
        }
        invalidated
    }

    /// Jobs whose reservations were not confirmed in pass `pass`.
    pub(crate) fn unseen(&self, pass: u64) -> Vec<JobIdx> {
        self.iter().filter(|r| r.seen_pass != pass).map(|r| r.job).collect()
    }
}

/// Wholly free GPUs node `n` will have at `at`, by running jobs' walltimes.
pub(crate) fn free_by(n: NodeIdx, at: Time, cluster: &Cluster, node_jobs: &[Vec<NodeJob>]) -> u32 {
    let jobs = &node_jobs[n.ix()];
    let whole: u32 = jobs.iter().filter(|nj| nj.end <= at && nj.frac_gpu.is_none()).map(|nj| nj.gpus).sum();
    let shared = cluster.gpu_free(n).iter().enumerate().filter(|&(g, &m)| {
        let mut fractions = jobs.iter().filter(|nj| nj.frac_gpu == Some(g as u8)).peekable();
        m < crate::cluster::MILLI && fractions.peek().is_some() && fractions.all(|nj| nj.end <= at)
    });
    cluster.whole_free(n) + whole + shared.count() as u32
}

/// Earliest time from `now` at which node `n` has `need` GPUs wholly free, by running
/// jobs' walltimes (`None` if it never will: it has fewer GPUs than that).
fn free_from(n: NodeIdx, need: u32, now: Time, cluster: &Cluster, node_jobs: &[Vec<NodeJob>]) -> Option<Time> {
    if free_by(n, now, cluster, node_jobs) >= need {
        return Some(now);
    }
    let mut ends: Vec<Time> = node_jobs[n.ix()].iter().map(|nj| nj.end).filter(|&e| e > now).collect();
    ends.sort_unstable();
    ends.dedup();
    ends.into_iter().find(|&t| free_by(n, t, cluster, node_jobs) >= need)
}

impl Core {
    /// Confirms or creates the reservation of blocked job `j`; returns its start.
    /// A kept reservation starts no sooner than `quota_floor`, when quota admits
    /// the job (`quota_admits_at_reservation`, with the round's bookings if
    /// `booked`).
    pub(crate) fn reserve(&mut self, j: JobIdx, now: Time, quota_floor: Option<Time>, booked: bool) -> Option<Time> {
        let pass = self.pass;
        // The kept reservation unless a fresh replay finds a sooner start: moving costs
        // the room backfill has left it, so only for a real gain (docs/core-design-notes.md 20).
        // Kept where the root refuses the job now, it starts no sooner than the
        // root admits it; but no later than it was to (the jobs started in this
        // round after its turn would move it, as they cannot move its nodes' ends).
        let (root_floor, quota_floor, keep) = match self.resv.of_job(j).filter(|r| r.valid) {
            Some(r) => {
                let (f, at) = (r.flavor, r.at);
                let (tenant, need) = (self.job_at(j).tenant, self.job_at(j).shape.total_milli());
                match self.tenants.can_admit(tenant, f, need) {
                    Err(b) if b.tenant == TenantIdx(0) => {
                        (self.root_floor(tenant, f, need).map_or(at, |floor| floor.min(at)), quota_floor, true)
                    }
                    // Refused below the root, it is kept only where quota admits the
                    // job by the reservation's start, and starts no sooner: that is
                    // `quota_floor`, or worked out here where room blocked the holder
                    // on the flavor before quota was asked. Kept for room another
                    // flavor lacks, it started now against a quota that refused it,
                    // and the next pass dropped it (stability seed 15798).
                    Err(_) => {
                        let floor = quota_floor.or_else(|| self.quota_admits_at_reservation(j, f, booked));
                        (now, floor, floor.is_some())
                    }
                    Ok(()) => (now, quota_floor, true),
                }
            }
            None => (now, quota_floor, true),
        };
        let kept = if keep { self.kept_start(j, now, quota_floor.unwrap_or(now).max(root_floor)) } else { None };
        // Moving for a sooner start takes no other reservation's nodes (that would
        // trade its start for this one's); computing anew, when the kept one is
        // unsound, may take over those of lower priority, as a new one does.
        let fresh = self.fresh_reservation(j, now, kept.map(|(id, _)| id));
        if let Some((id, at)) = kept
            && fresh.as_ref().is_none_or(|f| f.0 >= at)
        {
            let r = self.resv.list[id].as_mut().expect("reservation");
            r.active = true;
            r.seen_pass = pass;
            r.seen_turn = self.turns;
            r.seen_at = now;
            r.at = at;
            let nodes: Vec<NodeIdx> = r.nodes.iter().map(|&(n, _)| n).collect();
            for n in nodes {
                self.resv.node_at[n.ix()] = at;
                self.resv.refresh_node(n, &mut self.cluster, &self.node_jobs);
            }
            return Some(at);
        }
        self.resv.drop_for_job(j, &mut self.cluster);
        let (at, flavor, picks) = fresh?;
        let g = self.job_at(j).shape.gpus.max(1);
        let nodes = picks.into_iter().map(|(n, count)| (n, count * g)).collect();
        let res =
            Reservation { job: j, at, flavor, nodes, valid: true, active: true, seen_pass: pass, seen_at: now, seen_turn: self.turns };
        self.resv.add(res, &mut self.cluster, &self.node_jobs);
        Some(at)
    }

    /// When job `j`, refused on flavor `f` by quota now, would be admitted, if it
    /// holds a reservation there from an earlier pass that quota admits by its start: with the
    /// usage of the jobs expected to end by then given back (jobs that run past a
    /// reservation's start were admitted against its booked quota, so only jobs
    /// ending before it can have taken that quota since it was made). It keeps the
    /// reservation: dropped, the jobs behind it would take its room, and whether it
    /// holds one would depend on which of them had started. The reservation then
    /// starts no sooner, even where its nodes free sooner.
    pub(crate) fn quota_admits_at_reservation(&mut self, j: JobIdx, f: FlavorIdx, booked: bool) -> Option<Time> {
        let at = self.resv.of_job(j).filter(|r| r.flavor == f && r.valid).map(|r| r.at)?;
        let (tenant, need) = (self.job_at(j).tenant, self.job_at(j).shape.total_milli());
        self.quota_admits_by(tenant, f, need, at, booked)
    }

    /// When quota would first admit `need` milli-GPU of flavor `f` for `tenant` (which
    /// it refuses now), by `until` at the latest: the running jobs' usage given back
    /// in the order of their expected ends. At the root, whose limit is the cluster's
    /// size, this is when the GPUs that other tenants' unlendable reserves leave the
    /// job are free (`root_floor`).
    pub(crate) fn quota_admits_by(&mut self, tenant: TenantIdx, f: FlavorIdx, need: u64, until: Time, booked: bool) -> Option<Time> {
        let ends = self.flavor_ends.of(f).map(|(&(end, _), e)| (end, e.tenant, e.milli)).take_while(|&(end, _, _)| end <= until);
        let floor = self.tenants.first_admitted_as_ends_pass(tenant, f, need, booked, ends);
        floor.map(|e| e.max(self.now))
    }

    /// When the root would first admit job `j`'s need of flavor `f`, if it refuses it
    /// now although it would on an idle cluster (`Core::capacity_is_the_block`): a
    /// reservation there starts no sooner, whatever its nodes free. `Some(now)`
    /// where the root admits it now; `None` where it never would while the jobs
    /// running now run.
    pub(crate) fn root_floor(&mut self, tenant: TenantIdx, f: FlavorIdx, need: u64) -> Option<Time> {
        match self.tenants.can_admit(tenant, f, need) {
            Ok(()) => Some(self.now),
            Err(b) if b.tenant == TenantIdx(0) => self.quota_admits_by(tenant, f, need, Time::MAX, false),
            Err(_) => None,
        }
    }

    /// What the root will hold of flavor `f` at `at`, with `need` more for `tenant`,
    /// beyond what it holds now (the running jobs that end by then given back): the
    /// root booking of a reservation starting then. With no unlendable reserves
    /// this is at most the reservation's GPUs free now, so it refuses no job that
    /// fits on other nodes without running into the reservation's start.
    pub(crate) fn root_booking(&mut self, tenant: TenantIdx, f: FlavorIdx, at: Time, need: u64) -> u64 {
        // Given back per tenant, not per job (a far start sees most running jobs
        // end; what a tenant holds moves by their sum either way).
        let mut by_tenant: Vec<u64> = vec![0; self.tenants.len()];
        for (_, e) in self.flavor_ends.of(f).take_while(|((end, _), _)| *end <= at) {
            by_tenant[e.tenant.ix()] += e.milli;
        }
        let ending: Vec<(TenantIdx, u64)> =
            by_tenant.iter().enumerate().filter(|&(_, &m)| m > 0).map(|(t, &m)| (TenantIdx::from(t), m)).collect();
        let before = self.tenants.held(TenantIdx(0), f);
        for &(t, m) in &ending {
            self.tenants.charge(t, f, m, false);
        }
        self.tenants.charge(tenant, f, need, true);
        let after = self.tenants.held(TenantIdx(0), f);
        self.tenants.charge(tenant, f, need, false);
        for &(t, m) in ending.iter().rev() {
            self.tenants.charge(t, f, m, true);
        }
        after.saturating_sub(before)
    }

    /// When job `j`'s reservation, if it has one, can start on its own nodes: each
    /// still its own and freeing the GPUs it needs by its start. Jobs end before their
    /// walltimes, so that may be sooner than first computed, never later (then it is
    /// computed anew). Returns the reservation's slot and the start.
    fn kept_start(&self, j: JobIdx, now: Time, floor: Time) -> Option<(usize, Time)> {
        let &id = self.resv.by_job.get(&j)?;
        let r = self.resv.list[id].as_ref().expect("reservation");
        if !r.valid || !r.nodes.iter().all(|&(n, _)| self.resv.node_owner[n.ix()] == id as u32 + 1 && self.cluster.status(n).schedulable())
        {
            return None;
        }
        let at = r
            .nodes
            .iter()
            .try_fold(now.max(floor), |at, &(n, need)| Some(at.max(free_from(n, need, now, &self.cluster, &self.node_jobs)?)))?;
        // A start already due (jobs on its nodes ran past their walltimes) is worked
        // out anew, where other nodes may free first; but not at the instant it was
        // confirmed: nothing has ended since, and the same start could pick other
        // nodes than the ones backfill was just told of (the next pass at the same
        // time would undo what this one let backfill do).
        let due_again = at <= now && r.seen_at == now;
        ((at > now && at <= r.at) || due_again).then_some((id, at))
    }

    /// The earliest start of job `j` over the flavors it allows, by replaying running
    /// jobs' ends, and the nodes (replicas on each).
    ///
    /// With `moving_from`, nodes of every other reservation (active or not) are left
    /// out, not only those of the reservations already confirmed in this pass.
    fn fresh_reservation(&mut self, j: JobIdx, now: Time, moving_from: Option<usize>) -> Option<(Time, FlavorIdx, NodePicks)> {
        let job = self.job_at(j);
        let shape = job.shape;
        let (min_level, required) = job.topology.unwrap_or((0, false));
        let min_level = if required { min_level } else { 0 };
        let g = shape.gpus.max(1);
        let r = u64::from(shape.replicas);
        let need_milli = shape.total_milli();
        let tenant = job.tenant;
        let mut best: Option<(Time, FlavorIdx, NodePicks)> = None;
        for f in job.flavors.clone() {
            if !self.capacity_is_the_block(tenant, f, need_milli) {
                continue;
            }
            // Refused at the root for other tenants' unlendable reserves, the job
            // starts no sooner than running jobs' ends make the root admit it,
            // wherever its nodes free sooner (on nodes with room now, even).
            // (Jobs past their walltimes end "by now" and still hold the root.)
            let refused_now = self.tenants.can_admit(tenant, f, need_milli).is_err();
            let Some(floor) = self.root_floor(tenant, f, need_milli) else { continue };
            if let Some((at, picks)) = self.earliest(f, r, g, min_level, now, moving_from, refused_now)
                && best.as_ref().is_none_or(|b| at.max(floor) < b.0)
            {
                best = Some((at.max(floor), f, picks));
            }
        }
        best
    }

    /// Earliest time `r` replicas of `g` GPUs of flavor `f` fit in one domain at level
    /// `min_level` or below, replaying running jobs' ends on a shadow; and the nodes.
    /// With `room_now_is_the_start`, nodes with room now make a start now (quota, not
    /// room, holds the job back); otherwise room now means something else than GPUs
    /// blocks it, and there is no reservation to make.
    #[allow(clippy::too_many_arguments)]
    fn earliest(
        &mut self,
        f: FlavorIdx,
        r: u64,
        g: u32,
        min_level: u8,
        now: Time,
        moving_from: Option<usize>,
        room_now_is_the_start: bool,
    ) -> Option<(Time, Vec<(NodeIdx, u32)>)> {
        let left_out = std::mem::take(&mut self.resv.left_out);
        let taken = |resv: &Reservations, n: NodeIdx| {
            (match moving_from {
                None => resv.active_owner(n).is_some(),
                Some(own) => {
                    let o = resv.node_owner[n.ix()];
                    o != 0 && o as usize != own + 1
                }
            }) || !left_out.is_empty() && left_out.binary_search(&n).is_ok()
        };
        let nd = self.cluster.domains.len();
        let mut caps = std::mem::take(&mut self.resv.caps);
        caps.clear();
        caps.extend((0..nd).map(|d| self.cluster.replica_capacity(DomainIdx::from(d), f, g)));
        // Nodes another reservation holds are left out of the replay and of the
        // picks: their free GPUs come out of the domains' counts too, or a domain
        // would seem to fit on room no pick may take.
        for (id, res) in self.resv.list.iter().enumerate() {
            let Some(res) = res else { continue };
            for &(n, _) in &res.nodes {
                if self.resv.node_owner[n.ix()] as usize != id + 1
                    || !taken(&self.resv, n)
                    || self.cluster.node(n).flavor != f
                    || !self.cluster.status(n).schedulable()
                {
                    continue;
                }
                let c = u64::from(self.cluster.indexed_whole(n) / g);
                if c > 0 {
                    for &d in self.cluster.path(n) {
                        caps[d.ix()] -= c;
                    }
                }
            }
        }
        // Left-out nodes no reservation holds (those held were counted above).
        for &n in &left_out {
            if self.resv.node_owner[n.ix()] != 0 || self.cluster.node(n).flavor != f || !self.cluster.status(n).schedulable() {
                continue;
            }
            let c = u64::from(self.cluster.indexed_whole(n) / g);
            if c > 0 {
                for &d in self.cluster.path(n) {
                    caps[d.ix()] -= c;
                }
            }
        }
        let fits = |d: usize, caps: &[u64], cluster: &Cluster| caps[d] >= r && cluster.domains[d].level >= min_level;
        self.resv.generation = self.resv.generation.wrapping_add(1);
        if self.resv.generation == 0 {
            self.resv.stamp.iter_mut().for_each(|s| *s = 0);
            self.resv.generation = 1;
        }
        let generation = self.resv.generation;
        // Room by GPU count now means something else (CPUs, memory) blocks the job:
        // replaying GPU releases cannot say when it will fit.
        let mut found: Option<(Time, DomainIdx)> = None;
        if let Some(d) = (0..nd).find(|&d| fits(d, &caps, &self.cluster)) {
            if !room_now_is_the_start {
                self.resv.caps = caps;
                self.resv.left_out = left_out;
                return None;
            }
            found = Some((now, DomainIdx::from(d)));
        }
        // Nodes held by higher-priority reservations (already confirmed in this pass)
        // are left out: a node carries one reservation.
        let mut frac_left: FxHashMap<(u32, u8), u32> = FxHashMap::default();
        'ends: for (&(end, _), ending) in self.flavor_ends.of(f).take_while(|_| found.is_none()) {
            let mut hit: Option<DomainIdx> = None;
            for slot in ending.slots.as_slice() {
                let n = slot.node;
                if taken(&self.resv, n) || !self.cluster.status(n).schedulable() {
                    continue;
                }
                // A shared GPU frees when its last fraction ends.
                let freed = if slot.milli > 0 {
                    let left = frac_left
                        .entry((n.0, slot.frac_gpu))
                        .or_insert_with(|| self.node_jobs[n.ix()].iter().filter(|nj| nj.frac_gpu == Some(slot.frac_gpu)).count() as u32);
                    *left -= 1;
                    u32::from(*left == 0)
                } else {
                    slot.gpus.count_ones()
                };
                if freed == 0 {
                    continue;
                }
                let i = n.ix();
                let cur = if self.resv.stamp[i] == generation { u32::from(self.resv.shadow[i]) } else { self.cluster.indexed_whole(n) };
                let new = cur + freed;
                self.resv.shadow[i] = new as u16;
                self.resv.stamp[i] = generation;
                let delta = u64::from(new / g - cur / g);
                if delta > 0 {
                    for &d in self.cluster.path(n) {
                        caps[d.ix()] += delta;
                        if hit.is_none() && fits(d.ix(), &caps, &self.cluster) {
                            hit = Some(d);
                        }
                    }
                }
            }
            if let Some(d) = hit {
                found = Some((end.max(now), d));
                break 'ends;
            }
        }
        // Narrow to the smallest fitting domain below the hit (descend best fit).
        let result = found.and_then(|(at, mut d)| {
            loop {
                let next = self.cluster.domains[d.ix()]
                    .children
                    .iter()
                    .copied()
                    .filter(|c| fits(c.ix(), &caps, &self.cluster))
                    .min_by_key(|c| (caps[c.ix()], c.0));
                match next {
                    Some(c) => d = c,
                    None => break,
                }
            }
            let mut picks = Vec::new();
            let mut left = r;
            // Node by node in order, through the domains below `d` that hold a
            // replica at `at` (`caps` counts them; one that holds none has no node
            // to pick, and a site holds thousands of nodes).
            let mut domains = vec![d];
            while let Some(x) = domains.pop() {
                if left == 0 {
                    break;
                }
                if caps[x.ix()] == 0 {
                    continue;
                }
                let children = &self.cluster.domains[x.ix()].children;
                if !children.is_empty() {
                    domains.extend(children.iter().rev().copied());
                    continue;
                }
                for n in self.cluster.nodes_in(x) {
                    if left == 0 {
                        break;
                    }
                    let ni = NodeIdx(n);
                    if self.cluster.node(ni).flavor != f || taken(&self.resv, ni) || !self.cluster.status(ni).schedulable() {
                        continue;
                    }
                    let v = if self.resv.stamp[n as usize] == generation {
                        u32::from(self.resv.shadow[n as usize])
                    } else {
                        self.cluster.indexed_whole(ni)
                    };
                    let take = u64::from(v / g).min(left) as u32;
                    if take > 0 {
                        picks.push((ni, take));
                        left -= u64::from(take);
                    }
                }
            }
            (left == 0).then_some((at, picks))
        });
        self.resv.caps = caps;
        self.resv.left_out = left_out;
        result
    }

    /// For a job ending by a reservation's start: a reserved node that holds it now.
    pub(crate) fn reserved_fit(
        &self,
        f: FlavorIdx,
        gpus: u32,
        milli: u16,
        cpus: u32,
        mem: u64,
        end: Time,
    ) -> Option<(NodeIdx, Option<u32>)> {
        for r in self.resv.active() {
            if r.at < end || r.flavor != f {
                continue;
            }
            for &(n, _) in &r.nodes {
                if !self.cluster.status(n).schedulable() || !self.cluster.fits_host(n, cpus, mem) {
                    continue;
                }
                if milli > 0 {
                    if let Some(g) = self.cluster.gpu_free(n).iter().position(|&m| m >= milli) {
                        return Some((n, Some(g as u32)));
                    }
                } else if self.cluster.whole_free(n) >= gpus {
                    return Some((n, None));
                }
            }
        }
        None
    }

    /// Reservations as drivers see them.
    pub fn reservations(&self) -> Vec<ReservationView> {
        let mut v: Vec<ReservationView> = self
            .resv
            .iter()
            .map(|r| ReservationView { job: self.job_at(r.job).id, at: r.at, nodes: r.nodes.iter().map(|&(n, _)| n).collect() })
            .collect();
        v.sort_by_key(|r| (r.at, r.job));
        v
    }
}
