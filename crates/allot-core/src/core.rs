//! `Core`: the scheduler's state and its event functions.
//!
//! Drivers feed events with `on_event(now, event)` and ask for decisions with
//! `schedule(now)`. Nothing here reads a clock or a global random source: the same
//! events in the same order give the same plans, bit for bit.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use crate::backfill::Reservations;
use crate::budget::{Budget, Budgets};
use crate::cluster::{Cluster, NodeStatus, Slot};
use crate::config::{Config, OrderPolicy, PolicyConfig};
use crate::error::{ConfigError, EventError};
use crate::ids::{ClassIdx, FlavorIdx, JobId, JobIdx, MS_PER_S, NodeIdx, TenantIdx, Time};
use crate::job::{GpuRequest, Job, JobSpec, JobState, PendingReason, Shape};
use crate::queue::{Key, Queue};
use crate::rng::mix;
use crate::score::WorkloadProfile;
use crate::tenants::{Quota, Tenants};

/// A priority class.
/// Per job slot, a yes or no kept for one instant (`Core::deferred_at`): read for
/// every job a round takes, so kept dense rather than hashed (a steady pass takes
/// tens of thousands), and emptied by moving to a new stamp, not by a write per slot.
#[derive(Clone, Debug, Default)]
pub(crate) struct PlacesAt {
    /// Per job slot: the stamp it was set under, times two, plus the answer.
    of: Vec<u32>,
    stamp: u32,
}

impl PlacesAt {
    pub(crate) fn get(&self, job: u32) -> Option<bool> {
        let v = *self.of.get(job as usize)?;
        (self.stamp > 0 && v >> 1 == self.stamp).then_some(v & 1 == 1)
    }

    /// The answer kept for `job`, or `v`, kept from now on.
    pub(crate) fn get_or_keep(&mut self, job: u32, v: bool) -> bool {
        if let Some(kept) = self.get(job) {
            return kept;
        }
        if self.stamp == 0 {
            self.stamp = 1;
        }
        let i = job as usize;
        if self.of.len() <= i {
            self.of.resize(i + 1, 0);
        }
        self.of[i] = self.stamp << 1 | u32::from(v);
        v
    }

    /// Forgets every answer.
    pub(crate) fn clear(&mut self) {
        // Stamps fill 31 bits; past that, start over from a zeroed table.
        if self.stamp >= u32::MAX >> 1 {
            self.of.iter_mut().for_each(|v| *v = 0);
            self.stamp = 0;
        }
        self.stamp += 1;
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Class {
    pub name: String,
    pub priority: i32,
    pub preempt_lower: bool,
    pub preemptible: bool,
}

/// Something that happened, as a driver reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    JobSubmitted(JobSpec),
    /// Pending or held: forgotten. Running: told to stop (a `Stop` in the next plan).
    JobCancelled(JobId),
    /// A running or stopping job's processes are gone. A job stopped by preemption or
    /// a lost node goes back to the queue; any other is forgotten.
    JobFinished(JobId),
    JobHeld(JobId),
    JobReleased(JobId),
    /// The node stopped answering: its jobs are stopped and requeued.
    NodeDown(String),
    NodeUp(String),
    NodeDrained(String),
    NodeUndrained(String),
    QuotaChanged {
        tenant: String,
        flavor: String,
        nominal: f64,
        borrowing_limit: Option<f64>,
        lending_limit: Option<f64>,
    },
    BudgetGranted {
        tenant: String,
        start: Time,
        expiry: Time,
        gpu_hours: f64,
    },
    /// A tenant created under an existing parent, with no quota (nominal 0, borrowing
    /// unlimited) until a `QuotaChanged` gives it one.
    TenantAdded {
        path: String,
        weight: f64,
    },
    /// A tenant's fair-share weight.
    TenantWeightChanged {
        path: String,
        weight: f64,
    },
    /// A tenant with no children and no live jobs (pending, held, running, stopping)
    /// is removed with its quotas and budgets.
    TenantRemoved(String),
}

/// Why the core asks a running job to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// To make room for `by`: reclaiming lent quota, or a higher priority class.
    Preempted {
        by: JobId,
        reclaim: bool,
    },
    NodeLost {
        node: NodeIdx,
    },
    Cancelled,
}

/// Start a job on these slots (one per replica), once the jobs in `after` (stopped
/// by this plan to make room) have exited.
#[derive(Clone, Debug, PartialEq)]
pub struct Start {
    pub job: JobId,
    pub flavor: FlavorIdx,
    pub slots: Vec<Slot>,
    pub after: Vec<JobId>,
}

/// Stop a job, after a grace period.
#[derive(Clone, Debug, PartialEq)]
pub struct Stop {
    pub job: JobId,
    pub why: StopReason,
    pub grace_s: u64,
}

/// A backfill reservation: `job` is expected to start at `at` on these nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct ReservationView {
    pub job: JobId,
    pub at: Time,
    pub nodes: Vec<NodeIdx>,
}

/// What one pass decided. Why every pending job waits is kept in the core and read
/// with `Core::explain` (copying 100,000 reasons into every plan would cost more than
/// the pass).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub starts: Vec<Start>,
    pub stops: Vec<Stop>,
    pub reservations: Vec<ReservationView>,
    /// Pending jobs the pass looked at (all of them).
    pub considered: usize,
    /// Of those, how many were put in priority order (the rest had no room for
    /// their shape at the start of the pass and could not matter).
    pub ordered: usize,
    /// Pending jobs decided by their shape, without a placement search: left out of
    /// the order, or after an earlier job of the same shape found no room.
    pub decided_by_shape: usize,
    /// Preemption searches run (successful or not).
    pub preemption_searches: usize,
    /// Rounds over the queue (see `Core::schedule`).
    pub rounds: usize,
}

/// Hot fields of a job, packed for the pass loop.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Hot {
    pub tenant: u32,
    pub shape: u32,
    pub class: u32,
    pub walltime: Time,
}

/// A job shape as far as placement cares, interned so a pass can remember "this
/// shape found no room" and decide later jobs of the same shape at once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ShapeKey {
    pub shape: Shape,
    pub flavor_mask: u64,
    pub topology: Option<(u8, bool)>,
}

/// One entry of a node's running-job list.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct NodeJob {
    pub job: JobIdx,
    /// Whole GPUs it holds on the node.
    pub gpus: u32,
    /// For a fraction: the GPU it shares.
    pub frac_gpu: Option<u8>,
    pub end: Time,
}

#[derive(Clone, Debug)]
pub struct Core {
    pub(crate) cluster: Cluster,
    pub(crate) tenants: Tenants,
    pub(crate) budgets: Budgets,
    pub(crate) classes: Vec<Class>,
    pub(crate) default_class: ClassIdx,
    pub(crate) policy: PolicyConfig,
    pub(crate) jobs: Vec<Option<Job>>,
    pub(crate) hot: Vec<Hot>,
    free_slots: Vec<u32>,
    pub(crate) by_id: FxHashMap<JobId, JobIdx>,
    pub(crate) queue: Queue,
    pub(crate) stop_reason: FxHashMap<JobIdx, StopReason>,
    /// Running and stopping jobs by expected end.
    pub(crate) ends: BTreeSet<(Time, u32)>,
    /// The same, per flavor, with each job's slots (for reservations' replays).
    pub(crate) flavor_ends: crate::backfill::FlavorEnds,
    pub(crate) node_jobs: Vec<Vec<NodeJob>>,
    pub(crate) tenant_running: Vec<BTreeSet<u32>>,
    pub(crate) shapes: Vec<ShapeKey>,
    /// Queued jobs per shape: a pass looks for room only for shapes someone waits with.
    pub(crate) shape_pending: Vec<u32>,
    shape_ids: FxHashMap<ShapeKey, u32>,
    pub(crate) resv: Reservations,
    pub(crate) outbox: Vec<Stop>,
    pub(crate) pass: u64,
    pub(crate) now: Time,
    pub(crate) order_buf: Vec<Key>,
    /// Step 1's picked jobs, kept for their buffer.
    pub(crate) picked: crate::queue::Picked,
    /// Step 1's working buffers, kept between rounds (a round with few jobs would
    /// otherwise spend most of its time allocating them).
    pub(crate) pick_scratch: crate::pass::PickScratch,
    /// A merge's buffers, kept between rounds.
    pub(crate) merge_spare: crate::queue::Merge,
    /// Whether a round may skip jobs by `room::Strict` (off only to test that doing
    /// so changes no decision).
    pub(crate) strict_skips: bool,
    /// How often a round may work `Strict` out (`room::MAX_SWITCHES`; fewer only
    /// in tests, to reach the rest of a round after the last switch).
    pub(crate) strict_switches: usize,
    /// Whether preemption searches take their shortcuts (a gang's dry run, a
    /// one-replica reclaim's quota walk, put-back in runs); off only to test that
    /// they change no decision.
    pub(crate) fast_reclaim: bool,
    /// The last preemption search refused some victim because its tenant would
    /// reclaim it back (`would_reclaim_back`).
    pub(crate) search_objected: bool,
    pub(crate) deferred_buf: Vec<(f64, Key)>,
    /// Events accepted: with the time, what says that nothing happened between two
    /// passes.
    pub(crate) events_seen: u64,
    /// The instant (time, `events_seen`) that `deferred_at` belongs to.
    pub(crate) order_instant: (Time, u64),
    /// Per job slot, whether the merge deferred it to the end of its tier at its
    /// first turn at this instant (its tenant then held its nominal on every flavor
    /// it allows). Later rounds and passes at the same instant keep that place:
    /// worked out again, the starts of jobs that came after it would move it, and a
    /// second pass would consider jobs in another order than the first. A turn
    /// that `room::Strict` skips (or would skip) fixes nothing: the job could do
    /// nothing there, and its place is worked out afresh at its next turn.
    pub(crate) deferred_at: PlacesAt,
    /// Per job slot, the other reservations' room that stands while the job looks
    /// for room to start at this instant (node, GPUs reserved, start): recorded at
    /// its first turn, if it then held a reservation, as the reservations whose
    /// holders' turns were still to come (else nothing). Starting sooner than its
    /// reservation is moving it, and a reservation moves onto no other one's nodes
    /// (note 20); kept for the instant, as which reservations stand and whether the
    /// job holds one change within a pass (note 28).
    pub(crate) stood_at: FxHashMap<u32, Vec<(NodeIdx, u32, Time)>>,
    /// Job slots that picking counted at this instant among their family's first
    /// blocked jobs (kept for reservations; `Core::order`). Such a job that came to
    /// hold a reservation still counts at later rounds and passes of the instant:
    /// else its kept place would go to the next job of its family, which could take
    /// a reservation slot before another holder's turn (stability seed 7279).
    pub(crate) kept_blocked_at: rustc_hash::FxHashSet<u32>,
    /// Turns given in every round so far (a job's `consider`), numbering them.
    pub(crate) turns: u64,
    /// While a job is looked at again at the end of a round: the number of its
    /// first turn in the round (reservations confirmed after it stand aside while
    /// it searches for something to preempt).
    pub(crate) second_look: Option<u64>,
    /// Nodes capped for the turn of a job in `stood_at` (`Core::stand_for`).
    pub(crate) stood_nodes: Vec<NodeIdx>,
    pub(crate) tier_bufs: Vec<Vec<Key>>,
    /// Per class, its tier (0: highest priority; classes are fixed at start).
    pub(crate) tier_of_class: Vec<usize>,
    /// Per queue group, its class's tier (groups are only ever added).
    pub(crate) group_tier: Vec<usize>,
    /// Per tenant: a quota limit there held a job back in this round.
    pub(crate) quota_blocked: Vec<bool>,
    /// Per (tenant, shape, flavor): (round, end, reason): in that round the
    /// tenant's quota refused the shape on the flavor for jobs ending at or after
    /// `end` (quota only shrinks in a round; a round after a preemption gave some
    /// back starts afresh).
    pub(crate) quota_memo: FxHashMap<(u32, u32, u32), (u64, Time, PendingReason)>,
    /// Stamps what the round has learnt about room (`Reservations::no_room_for`):
    /// new each round, and whenever a preemption frees more than its job takes
    /// (room grows then, so what was learnt no longer holds).
    pub(crate) room_stamp: u64,
    pub(crate) workload: WorkloadProfile,
    pub(crate) score_cache: crate::score::ScoreCell,
    /// CPUs and memory the profile's GPU tasks ask per milli-GPU (for `default`).
    pub(crate) host_per_milli: Vec<(f64, f64)>,
    /// The profile with each class weighted by the GPU it asks for (for `default`).
    pub(crate) workload_by_gpu: WorkloadProfile,
    /// Per flavor: how much the profile's tasks that may only run on some flavors
    /// (including this one) ask of them, over those flavors' share of the GPUs.
    pub(crate) flavor_pressure: Vec<f64>,
    /// Indexed by free milli-GPU (0..=1000): whether a GPU left with that much free
    /// still belongs to one of the profile's packing patterns (for `default`; empty
    /// when the profile has none). See `score::pattern_residuals`.
    pub(crate) pattern_residual: Vec<bool>,
    pub(crate) flavor_nodes: Vec<Vec<u32>>,
    counts: Counts,
    pub(crate) preempt_cache: crate::preempt::CandidateCache,
    /// Counts `schedule` calls (a pass may run several rounds).
    pub(crate) epoch: u64,
    /// Running preemptible jobs per flavor, dense, so preemption's candidate lists
    /// are made without reaching into the job table.
    pub(crate) preemptible_running: crate::preempt::RunningSet,
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    pending: usize,
    held: usize,
    running: usize,
    stopping: usize,
}

impl Core {
    /// Builds a core from a validated config. Every error names the field.
    pub fn new(config: &Config) -> Result<Core, ConfigError> {
        let cluster = Cluster::from_config(config)?;
        let tenants = Tenants::from_config(config, &cluster)?;
        let budgets = Budgets::from_config(config, &tenants)?;
        let (classes, default_class) = classes_from(config)?;
        let tier_of_class = crate::pass::class_tiers(&classes);
        let policy = config.policy.clone();
        if policy.max_age_hours.is_nan() || policy.max_age_hours <= 0.0 {
            return Err(ConfigError::new("policy.max_age_hours", "must be positive"));
        }
        let n_nodes = cluster.nodes.len();
        let mut flavor_nodes = vec![vec![]; cluster.flavors.len()];
        for (i, n) in cluster.nodes.iter().enumerate() {
            flavor_nodes[n.flavor.ix()].push(i as u32);
        }
        Ok(Core {
            resv: Reservations::new(n_nodes),
            node_jobs: vec![vec![]; n_nodes],
            tenant_running: vec![BTreeSet::new(); tenants.len()],
            queue: Queue::new(policy.order),
            cluster,
            tenants,
            budgets,
            classes,
            default_class,
            policy,
            jobs: vec![],
            hot: vec![],
            free_slots: vec![],
            by_id: FxHashMap::default(),
            stop_reason: FxHashMap::default(),
            ends: BTreeSet::new(),
            flavor_ends: Default::default(),
            shapes: vec![],
            shape_ids: FxHashMap::default(),
            shape_pending: Vec::new(),
            outbox: vec![],
            pass: 0,
            now: 0,
            order_buf: vec![],
            picked: Default::default(),
            pick_scratch: Default::default(),
            merge_spare: Default::default(),
            strict_skips: true,
            strict_switches: crate::room::MAX_SWITCHES,
            fast_reclaim: true,
            search_objected: false,
            deferred_buf: vec![],
            events_seen: 0,
            order_instant: (Time::MIN, 0),
            deferred_at: PlacesAt::default(),
            stood_at: FxHashMap::default(),
            kept_blocked_at: rustc_hash::FxHashSet::default(),
            stood_nodes: Vec::new(),
            turns: 0,
            second_look: None,
            tier_bufs: vec![],
            tier_of_class,
            group_tier: vec![],
            quota_blocked: vec![],
            quota_memo: FxHashMap::default(),
            room_stamp: 0,
            workload: WorkloadProfile::default(),
            score_cache: Default::default(),
            host_per_milli: Vec::new(),
            workload_by_gpu: WorkloadProfile::default(),
            flavor_pressure: Vec::new(),
            pattern_residual: Vec::new(),
            flavor_nodes,
            counts: Counts::default(),
            preempt_cache: Default::default(),
            epoch: 0,
            preemptible_running: Default::default(),
        })
    }

    /// Parses TOML and builds a core.
    pub fn from_toml(text: &str) -> Result<Core, ConfigError> {
        Core::new(&Config::from_toml(text)?)
    }

    // ----- read access -----

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }

    pub fn classes(&self) -> &[Class] {
        &self.classes
    }

    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    pub fn job(&self, id: JobId) -> Option<&Job> {
        self.by_id.get(&id).map(|&j| self.job_at(j))
    }

    pub(crate) fn job_at(&self, j: JobIdx) -> &Job {
        self.jobs[j.ix()].as_ref().expect("live job slot")
    }

    pub(crate) fn job_mut(&mut self, j: JobIdx) -> &mut Job {
        self.jobs[j.ix()].as_mut().expect("live job slot")
    }

    /// All live jobs (pending, held, running, stopping), in slot order.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.iter().flatten()
    }

    pub fn pending_count(&self) -> usize {
        self.counts.pending
    }

    pub fn running_count(&self) -> usize {
        self.counts.running
    }

    pub fn held_count(&self) -> usize {
        self.counts.held
    }

    pub fn stopping_count(&self) -> usize {
        self.counts.stopping
    }

    /// GPUs (milli) allocated to running and stopping jobs, per flavor.
    pub fn allocated_milli(&self, f: FlavorIdx) -> u64 {
        self.tenants.usage(TenantIdx(0), f)
    }

    /// The running job expected to end first (by walltime).
    pub fn next_expected_end(&self) -> Option<JobId> {
        self.ends.iter().map(|&(_, j)| self.job_at(JobIdx(j))).find(|j| j.state == JobState::Running).map(|j| j.id)
    }

    /// Sets the task mix that fragmentation-aware placement (`fgd`) measures against.
    pub fn set_workload_profile(&mut self, profile: WorkloadProfile) {
        // Per flavor: CPUs and memory per milli-GPU of the GPU tasks that may run there.
        self.host_per_milli = (0..self.cluster.flavors.len())
            .map(|f| {
                let (mut cpu, mut mem, mut milli) = (0.0, 0.0, 0.0);
                for t in
                    profile.tasks.iter().filter(|t| (t.gpus > 0 || t.milli > 0) && (t.flavor_mask == 0 || t.flavor_mask & (1 << f) != 0))
                {
                    cpu += t.weight * f64::from(t.cpus);
                    mem += t.weight * t.mem_mib as f64;
                    milli += t.weight * if t.milli > 0 { f64::from(t.milli) } else { f64::from(t.gpus) * 1000.0 };
                }
                if milli > 0.0 { (cpu / milli, mem / milli) } else { (0.0, 0.0) }
            })
            .collect();
        let gpu_of = |t: &crate::score::TaskClass| if t.milli > 0 { f64::from(t.milli) } else { f64::from(t.gpus) * 1000.0 };
        let total: f64 = profile.tasks.iter().map(|t| t.weight * gpu_of(t)).sum();
        self.workload_by_gpu = WorkloadProfile {
            tasks: profile
                .tasks
                .iter()
                .filter(|t| gpu_of(t) > 0.0)
                .map(|t| crate::score::TaskClass { weight: t.weight * gpu_of(t) / total, ..*t })
                .collect(),
            fraction_patterns: Vec::new(),
        };
        let nf = self.cluster.flavors.len();
        let cap: Vec<f64> = (0..nf).map(|f| self.cluster.capacity_gpus(FlavorIdx::from(f)) as f64).collect();
        let cap_total: f64 = cap.iter().sum();
        let demand_total: f64 = profile.tasks.iter().map(|t| t.weight * gpu_of(t)).sum();
        self.flavor_pressure = vec![0.0; nf];
        if cap_total > 0.0 && demand_total > 0.0 {
            for t in profile.tasks.iter().filter(|t| t.flavor_mask != 0 && gpu_of(t) > 0.0) {
                let allowed: Vec<usize> = (0..nf.min(63)).filter(|&f| t.flavor_mask & (1 << f) != 0).collect();
                let share: f64 = allowed.iter().map(|&f| cap[f]).sum::<f64>() / cap_total;
                if share > 0.0 {
                    let p = t.weight * gpu_of(t) / demand_total / share;
                    for f in allowed {
                        self.flavor_pressure[f] += p;
                    }
                }
            }
        }
        self.pattern_residual = crate::score::pattern_residuals(&profile.fraction_patterns);
        self.workload = profile;
        self.score_cache.clear();
    }

    /// Remaining GPU-hours of a tenant's active budget (`None`: no budget applies).
    pub fn budget_remaining_gpu_hours(&mut self, tenant: &str, now: Time) -> Option<f64> {
        let t = self.tenants.index(tenant)?;
        self.budgets.remaining_gpu_hours(t, now)
    }

    /// Quota of a tenant for a flavor, and its usage, in milli-GPU.
    pub fn quota(&self, tenant: &str, flavor: &str) -> Option<(Quota, u64)> {
        let t = self.tenants.index(tenant)?;
        let f = self.cluster.flavor_index(flavor)?;
        Some((self.tenants.quota(t, f), self.tenants.usage(t, f)))
    }

    // ----- events -----

    /// Applies one event. On error the state is unchanged.
    pub fn on_event(&mut self, now: Time, event: Event) -> Result<(), EventError> {
        let taken = self.apply_event(now, event);
        if taken.is_ok() {
            self.events_seen += 1;
        }
        taken
    }

    fn apply_event(&mut self, now: Time, event: Event) -> Result<(), EventError> {
        self.advance_clock(now);
        match event {
            Event::JobSubmitted(spec) => self.submit(now, spec),
            Event::JobCancelled(id) => self.cancel(id),
            Event::JobFinished(id) => self.finish(now, id),
            Event::JobHeld(id) => self.hold(id),
            Event::JobReleased(id) => self.release(id),
            Event::NodeDown(name) => self.node_status(&name, |s| s.up = false),
            Event::NodeUp(name) => self.node_status(&name, |s| s.up = true),
            Event::NodeDrained(name) => self.node_status(&name, |s| s.drained = true),
            Event::NodeUndrained(name) => self.node_status(&name, |s| s.drained = false),
            Event::QuotaChanged { tenant, flavor, nominal, borrowing_limit, lending_limit } => {
                let t = self.tenants.index(&tenant).ok_or(EventError::UnknownTenant(tenant))?;
                let f = self.cluster.flavor_index(&flavor).ok_or(EventError::UnknownFlavor(flavor))?;
                let milli = |v: f64| -> Result<u64, EventError> {
                    if v >= 0.0 && v.is_finite() {
                        Ok((v * 1000.0).round() as u64)
                    } else {
                        Err(EventError::InvalidQuota(format!("{v} is not a number of GPUs")))
                    }
                };
                let q = Quota {
                    nominal: milli(nominal)?,
                    borrowing_limit: borrowing_limit.map(milli).transpose()?.unwrap_or(u64::MAX),
                    lending_limit: lending_limit.map(milli).transpose()?,
                };
                self.tenants.set_quota(t, f, q).map_err(EventError::InvalidQuota)
            }
            Event::BudgetGranted { tenant, start, expiry, gpu_hours } => {
                let t = self.tenants.index(&tenant).ok_or(EventError::UnknownTenant(tenant))?;
                if !(gpu_hours >= 0.0 && gpu_hours.is_finite()) {
                    return Err(EventError::InvalidQuota("gpu_hours must be a non-negative number".into()));
                }
                self.budgets.grant(t, Budget::new(start, expiry, gpu_hours)).map_err(EventError::InvalidQuota)
            }
            Event::TenantAdded { path, weight } => {
                self.tenants.add(&path, weight)?;
                self.budgets.add_tenant(self.now);
                self.tenant_running.push(BTreeSet::new());
                Ok(())
            }
            Event::TenantWeightChanged { path, weight } => {
                let t = self.tenants.index(&path).ok_or(EventError::UnknownTenant(path))?;
                self.tenants.set_weight(t, weight)
            }
            Event::TenantRemoved(path) => {
                let t = self.tenants.index(&path).ok_or_else(|| EventError::UnknownTenant(path.clone()))?;
                let live = self.jobs().filter(|j| j.tenant == t).count();
                if live > 0 && t != TenantIdx(0) {
                    return Err(EventError::TenantConflict(format!(
                        "tenant `{}` has {live} live job(s) (pending, held, running or stopping): cancel them or let them end first",
                        path.trim_matches('/')
                    )));
                }
                self.tenants.remove(t)?;
                self.budgets.remove_tenant(t);
                Ok(())
            }
        }
    }

    /// Time only moves forward inside the core; an older `now` is taken as the last.
    pub(crate) fn advance_clock(&mut self, now: Time) {
        if now > self.now {
            self.tenants.decay_to(now);
            self.now = now;
        }
    }

    fn intern_shape(&mut self, key: ShapeKey) -> u32 {
        if let Some(&s) = self.shape_ids.get(&key) {
            return s;
        }
        let s = self.shapes.len() as u32;
        self.shapes.push(key.clone());
        self.shape_pending.push(0);
        self.shape_ids.insert(key, s);
        self.resv.grow_shapes(self.shapes.len(), self.cluster.flavors.len());
        s
    }

    /// Validates a spec and turns it into a `Job`.
    fn resolve(&self, now: Time, spec: &JobSpec) -> Result<Job, EventError> {
        let id = spec.id;
        let bad = |field: &'static str, why: String| EventError::InvalidJob { job: id, field, why };
        let tenant = self.tenants.index(&spec.tenant).ok_or_else(|| bad("tenant", format!("unknown tenant `{}`", spec.tenant)))?;
        if tenant == TenantIdx(0) {
            return Err(bad("tenant", "jobs belong to a tenant, not to the root".into()));
        }
        let class = match &spec.class {
            None => self.default_class,
            Some(name) => ClassIdx::from(
                self.classes
                    .iter()
                    .position(|c| &c.name == name)
                    .ok_or_else(|| bad("class", format!("unknown priority class `{name}`")))?,
            ),
        };
        if spec.replicas == 0 {
            return Err(bad("replicas", "must be at least 1".into()));
        }
        let (gpus, milli) = match spec.gpu {
            // A CPU-only task (data loading, evaluation drivers): it holds CPUs and
            // memory of a GPU server but no GPU, and counts nothing against GPU quota.
            GpuRequest::Whole(0) if spec.replicas != 1 => {
                return Err(bad("gpus", "a job without GPUs runs one replica (gangs need GPUs)".into()));
            }
            GpuRequest::Whole(0) => (0, 0),
            GpuRequest::Whole(g) if g > self.cluster.max_gpus => {
                return Err(bad("gpus", format!("{g} GPUs per replica, but no node has more than {}", self.cluster.max_gpus)));
            }
            GpuRequest::Whole(g) => (g, 0),
            GpuRequest::Milli(m) if m == 0 || m >= 1000 => return Err(bad("gpu_milli", format!("{m} is not in 1..=999"))),
            GpuRequest::Milli(_) if spec.replicas != 1 => {
                return Err(bad("gpu_milli", "fractional GPUs are for single-replica jobs".into()));
            }
            GpuRequest::Milli(m) => (0, m),
        };
        let mut flavors = Vec::new();
        for name in &spec.flavors {
            let f = self.cluster.flavor_index(name).ok_or_else(|| bad("flavors", format!("unknown flavor `{name}`")))?;
            if !flavors.contains(&f) {
                flavors.push(f);
            }
        }
        if flavors.is_empty() {
            flavors = (0..self.cluster.flavors.len()).map(FlavorIdx::from).collect();
        }
        let flavor_mask = flavors.iter().fold(0u64, |m, f| m | (1 << f.0));
        // Some node of an allowed flavor must be able to hold one replica, or the job
        // would wait forever: refuse it now, saying why.
        let per_replica_gpus = gpus.max(1);
        if !self.cluster.some_node_holds(flavor_mask, per_replica_gpus, spec.cpus_per_replica, spec.memory_mib_per_replica) {
            return Err(bad(
                "replica",
                format!(
                    "no node of {} has {} GPUs, {} CPUs and {} MiB of memory for one replica",
                    if spec.flavors.is_empty() { "any flavor".to_string() } else { spec.flavors.join(", ") },
                    per_replica_gpus,
                    spec.cpus_per_replica,
                    spec.memory_mib_per_replica
                ),
            ));
        }
        let topology = match &spec.topology {
            None => None,
            Some(tc) => Some((
                self.cluster
                    .level_index(&tc.level)
                    .ok_or_else(|| bad("topology", format!("unknown level `{}` (levels: {})", tc.level, self.cluster.levels.join(", "))))?,
                tc.required,
            )),
        };
        let walltime_s = spec.walltime_s.unwrap_or(self.policy.default_walltime_s);
        if walltime_s == 0 {
            return Err(bad("walltime_s", "must be at least 1 second".into()));
        }
        let cls = &self.classes[class.ix()];
        Ok(Job {
            id,
            tenant,
            class,
            user: spec.user.clone().into_boxed_str(),
            shape: Shape { replicas: spec.replicas, gpus, milli, cpus: spec.cpus_per_replica, mem_mib: spec.memory_mib_per_replica },
            flavor_mask,
            flavors: flavors.into_boxed_slice(),
            topology,
            walltime: (walltime_s.min(10 * 365 * 86_400) as i64) * MS_PER_S,
            preemptible: spec.preemptible.unwrap_or(cls.preemptible),
            checkpoint_interval: spec.checkpoint_interval_s.map(|s| (s.min(10 * 365 * 86_400) as i64) * MS_PER_S),
            submitted: now,
            tiebreak: mix(self.policy.seed, id.0),
            state: JobState::Pending,
            alloc: None,
            started: 0,
            run_end: 0,
            attained: 0.0,
            reason: PendingReason::New,
            estimated_start: None,
            reason_pass: 0,
            restarts: 0,
        })
    }

    fn submit(&mut self, now: Time, spec: JobSpec) -> Result<(), EventError> {
        if self.by_id.contains_key(&spec.id) {
            return Err(EventError::DuplicateJob(spec.id));
        }
        let job = self.resolve(now, &spec)?;
        let shape = self.intern_shape(ShapeKey { shape: job.shape, flavor_mask: job.flavor_mask, topology: job.topology });
        let hot = Hot { tenant: job.tenant.0, shape, class: job.class.0, walltime: job.walltime };
        let j = match self.free_slots.pop() {
            Some(s) => {
                self.jobs[s as usize] = Some(job);
                self.hot[s as usize] = hot;
                JobIdx(s)
            }
            None => {
                self.jobs.push(Some(job));
                self.hot.push(hot);
                JobIdx::from(self.jobs.len() - 1)
            }
        };
        self.by_id.insert(spec.id, j);
        self.enqueue(j);
        Ok(())
    }

    pub(crate) fn queue_key(&self, j: JobIdx) -> Key {
        let job = self.job_at(j);
        let tb = job.tiebreak;
        let mut key = match self.policy.order {
            OrderPolicy::Default | OrderPolicy::Fifo => Key::new(job.submitted, 0, tb, j.0),
            OrderPolicy::Sjf => Key::new(job.walltime, job.submitted, tb, j.0),
            OrderPolicy::Las => Key::new(job.attained as i64, job.submitted, tb, j.0),
        };
        let hot = self.hot[j.ix()];
        key.shape = hot.shape;
        key.tenant = hot.tenant;
        key.class = hot.class;
        key.walltime = hot.walltime;
        key
    }

    pub(crate) fn enqueue(&mut self, j: JobIdx) {
        let key = self.queue_key(j);
        let job = self.job_mut(j);
        job.state = JobState::Pending;
        job.reason = PendingReason::New;
        job.estimated_start = None;
        let (t, c) = (job.tenant, job.class);
        self.shape_pending[key.shape as usize] += 1;
        self.queue.insert(t, c, key);
        self.counts.pending += 1;
    }

    pub(crate) fn dequeue(&mut self, j: JobIdx) {
        let key = self.queue_key(j);
        let job = self.job_at(j);
        self.queue.remove(job.tenant, job.class, key);
        self.shape_pending[key.shape as usize] -= 1;
        self.counts.pending -= 1;
        self.resv.drop_for_job(j, &mut self.cluster);
    }

    fn lookup(&self, id: JobId) -> Result<JobIdx, EventError> {
        self.by_id.get(&id).copied().ok_or(EventError::UnknownJob(id))
    }

    fn forget(&mut self, j: JobIdx) {
        let id = self.job_at(j).id;
        self.by_id.remove(&id);
        self.jobs[j.ix()] = None;
        self.free_slots.push(j.0);
    }

    fn cancel(&mut self, id: JobId) -> Result<(), EventError> {
        let j = self.lookup(id)?;
        match self.job_at(j).state {
            JobState::Pending => {
                self.dequeue(j);
                self.forget(j);
            }
            JobState::Held => {
                self.counts.held -= 1;
                self.forget(j);
            }
            JobState::Running => self.begin_stop(j, StopReason::Cancelled, 0),
            JobState::Stopping => {
                // Already stopping: it will be forgotten rather than requeued.
                self.stop_reason.insert(j, StopReason::Cancelled);
            }
        }
        Ok(())
    }

    fn hold(&mut self, id: JobId) -> Result<(), EventError> {
        let j = self.lookup(id)?;
        match self.job_at(j).state {
            JobState::Pending => {
                self.dequeue(j);
                let job = self.job_mut(j);
                job.state = JobState::Held;
                job.reason = PendingReason::Held;
                job.estimated_start = None;
                self.counts.held += 1;
                Ok(())
            }
            JobState::Held => Ok(()),
            s => Err(EventError::WrongState { job: id, state: s.name(), action: "hold" }),
        }
    }

    fn release(&mut self, id: JobId) -> Result<(), EventError> {
        let j = self.lookup(id)?;
        match self.job_at(j).state {
            JobState::Held => {
                self.counts.held -= 1;
                self.enqueue(j);
                Ok(())
            }
            JobState::Pending => Ok(()),
            s => Err(EventError::WrongState { job: id, state: s.name(), action: "release" }),
        }
    }

    fn finish(&mut self, now: Time, id: JobId) -> Result<(), EventError> {
        let j = self.lookup(id)?;
        let state = self.job_at(j).state;
        match state {
            JobState::Running | JobState::Stopping => {
                self.release_allocation(j, now);
                let why = self.stop_reason.remove(&j);
                if state == JobState::Running {
                    self.counts.running -= 1;
                } else {
                    self.counts.stopping -= 1;
                }
                match why {
                    Some(StopReason::Preempted { .. }) | Some(StopReason::NodeLost { .. }) => {
                        self.job_mut(j).restarts += 1;
                        self.enqueue(j);
                    }
                    _ => self.forget(j),
                }
                Ok(())
            }
            s => Err(EventError::WrongState { job: id, state: s.name(), action: "finish" }),
        }
    }

    fn node_status(&mut self, name: &str, change: impl FnOnce(&mut NodeStatus)) -> Result<(), EventError> {
        let n = self.cluster.node_index(name).ok_or_else(|| EventError::UnknownNode(name.to_string()))?;
        let mut status = self.cluster.status(n);
        let was_up = status.up;
        change(&mut status);
        self.cluster.set_status(n, status);
        self.resv.invalidate_node(n);
        if was_up && !status.up {
            let victims: Vec<JobIdx> = self.node_jobs[n.ix()].iter().map(|nj| nj.job).collect();
            for j in victims {
                if self.job_at(j).state == JobState::Running {
                    self.begin_stop(j, StopReason::NodeLost { node: n }, 0);
                } else {
                    self.stop_reason.insert(j, StopReason::NodeLost { node: n });
                }
            }
        }
        Ok(())
    }

    /// Marks a running job as stopping; its resources stay held until it finishes.
    pub(crate) fn begin_stop(&mut self, j: JobIdx, why: StopReason, grace_s: u64) {
        let now = self.now;
        self.preemptible_running.remove(j.0);
        let job = self.job_mut(j);
        debug_assert_eq!(job.state, JobState::Running);
        job.state = JobState::Stopping;
        let old_end = job.expected_end();
        let id = job.id;
        // A stopping job is expected gone after its grace period.
        let new_end = now + grace_s as i64 * MS_PER_S;
        job.run_end = new_end;
        let nodes: Vec<NodeIdx> = job.alloc.as_ref().map(|a| a.slots.iter().map(|s| s.node).collect()).unwrap_or_default();
        let flavor = job.alloc.as_ref().map(|a| a.flavor);
        self.ends.remove(&(old_end, j.0));
        self.ends.insert((new_end, j.0));
        if let Some(f) = flavor {
            self.flavor_ends.moved(f, old_end, new_end, j.0);
        }
        for n in nodes {
            for nj in self.node_jobs[n.ix()].iter_mut().filter(|nj| nj.job == j) {
                nj.end = new_end;
            }
            self.resv.refresh_node(n, &mut self.cluster, &self.node_jobs);
        }
        self.counts.running -= 1;
        self.counts.stopping += 1;
        self.stop_reason.insert(j, why);
        self.outbox.push(Stop { job: id, why, grace_s });
    }

    /// Stops a running job for preemption: its resources go at once (to the job it
    /// makes room for, which starts after it has exited); it is requeued when it
    /// reports finished.
    pub(crate) fn preempt_now(&mut self, j: JobIdx, why: StopReason, grace_s: u64) {
        let now = self.now;
        self.release_allocation(j, now);
        let job = self.job_mut(j);
        debug_assert_eq!(job.state, JobState::Running);
        job.state = JobState::Stopping;
        let id = job.id;
        self.counts.running -= 1;
        self.counts.stopping += 1;
        self.stop_reason.insert(j, why);
        self.outbox.push(Stop { job: id, why, grace_s });
    }

    /// Commits a placement: takes the resources, charges quota, marks it running.
    pub(crate) fn start_job(&mut self, j: JobIdx, flavor: FlavorIdx, picks: &[(NodeIdx, u32, Option<u32>)], now: Time) -> Start {
        self.dequeue(j);
        let job = self.job_at(j);
        let shape = job.shape;
        let (tenant, id) = (job.tenant, job.id);
        let end = now + job.walltime;
        let mut slots = Vec::with_capacity(shape.replicas as usize);
        for &(n, count, frac_gpu) in picks {
            for _ in 0..count {
                let slot = match frac_gpu {
                    Some(g) => self.cluster.take_fraction(n, g, shape.milli, shape.cpus, shape.mem_mib),
                    None => self.cluster.take_whole(n, shape.gpus, shape.cpus, shape.mem_mib),
                };
                slots.push(slot);
            }
            self.node_jobs[n.ix()].push(NodeJob { job: j, gpus: count * shape.gpus, frac_gpu: frac_gpu.map(|g| g as u8), end });
            self.resv.refresh_node(n, &mut self.cluster, &self.node_jobs);
        }
        debug_assert_eq!(slots.len(), shape.replicas as usize);
        let milli = shape.total_milli();
        self.tenants.charge_job(tenant, flavor, milli, true, end);
        self.tenants.add_rate(tenant, milli as f64 / 1000.0);
        self.budgets.add_rate(&self.tenants, tenant, milli as f64 / 1000.0, now);
        self.tenant_running[tenant.ix()].insert(j.0);
        self.ends.insert((end, j.0));
        self.flavor_ends.insert(
            flavor,
            end,
            j.0,
            crate::backfill::Ending { tenant, milli, slots: crate::backfill::EndingSlots::of(&slots) },
        );
        let job = self.job_mut(j);
        job.state = JobState::Running;
        job.started = now;
        job.run_end = end;
        job.reason = PendingReason::New;
        job.estimated_start = None;
        job.alloc = Some(crate::job::Allocation { flavor, slots: slots.clone() });
        self.counts.running += 1;
        self.note_started_for_preemption(j);
        self.note_running_for_preemption(j);
        Start { job: id, flavor, slots, after: vec![] }
    }

    /// Gives back a running or stopping job's resources and stops its accounting.
    pub(crate) fn release_allocation(&mut self, j: JobIdx, now: Time) {
        let job = self.job_mut(j);
        let Some(alloc) = job.alloc.take() else { return };
        let shape = job.shape;
        let tenant = job.tenant;
        let end = job.expected_end();
        let ran = (now - job.started).max(0) as f64;
        job.attained += ran * shape.total_gpus();
        for slot in &alloc.slots {
            self.cluster.release(slot, shape.cpus, shape.mem_mib);
        }
        let mut nodes: Vec<NodeIdx> = alloc.slots.iter().map(|s| s.node).collect();
        nodes.dedup();
        for n in nodes {
            self.node_jobs[n.ix()].retain(|nj| nj.job != j);
            self.resv.refresh_node(n, &mut self.cluster, &self.node_jobs);
        }
        let milli = shape.total_milli();
        self.tenants.charge_job(tenant, alloc.flavor, milli, false, end);
        self.tenants.add_rate(tenant, -(milli as f64) / 1000.0);
        self.budgets.add_rate(&self.tenants, tenant, -(milli as f64) / 1000.0, now);
        self.tenant_running[tenant.ix()].remove(&j.0);
        self.preemptible_running.remove(j.0);
        self.ends.remove(&(end, j.0));
        self.flavor_ends.remove(alloc.flavor, end, j.0);
    }
}

fn classes_from(config: &Config) -> Result<(Vec<Class>, ClassIdx), ConfigError> {
    if config.priority_classes.is_empty() {
        let classes = vec![
            Class { name: "low".into(), priority: 0, preempt_lower: false, preemptible: true },
            Class { name: "normal".into(), priority: 100, preempt_lower: false, preemptible: true },
            Class { name: "high".into(), priority: 1000, preempt_lower: true, preemptible: false },
        ];
        return Ok((classes, ClassIdx(1)));
    }
    let mut classes = Vec::new();
    let mut default = None;
    for (i, c) in config.priority_classes.iter().enumerate() {
        if c.name.trim().is_empty() {
            return Err(ConfigError::new(format!("priority_classes[{i}].name"), "must not be empty"));
        }
        if classes.iter().any(|o: &Class| o.name == c.name) {
            return Err(ConfigError::new(format!("priority_classes[{i}].name"), format!("duplicate class `{}`", c.name)));
        }
        if c.default {
            if default.is_some() {
                return Err(ConfigError::new(format!("priority_classes[{i}].default"), "only one class can be the default"));
            }
            default = Some(ClassIdx::from(i));
        }
        classes.push(Class { name: c.name.clone(), priority: c.priority, preempt_lower: c.preempt_lower, preemptible: c.preemptible });
    }
    let default = default.unwrap_or_else(|| {
        // The lowest-priority class when none is marked.
        ClassIdx::from(classes.iter().enumerate().min_by_key(|(_, c)| c.priority).map(|(i, _)| i).unwrap_or(0))
    });
    Ok((classes, default))
}

#[cfg(test)]
mod tests {
    use super::PlacesAt;

    #[test]
    fn places_keep_the_first_answer_until_cleared() {
        let mut p = PlacesAt::default();
        assert_eq!(p.get(7), None);
        assert!(p.get_or_keep(7, true));
        assert!(p.get_or_keep(7, false), "the first answer stands");
        assert!(!p.get_or_keep(3, false));
        assert_eq!(p.get(3), Some(false));
        p.clear();
        assert_eq!(p.get(7), None);
        assert_eq!(p.get(3), None);
        assert!(!p.get_or_keep(7, false));
    }

    #[test]
    fn places_are_forgotten_when_stamps_run_out() {
        let mut p = PlacesAt::default();
        assert!(p.get_or_keep(2, true));
        p.stamp = u32::MAX >> 1;
        p.of[2] = p.stamp << 1 | 1;
        assert_eq!(p.get(2), Some(true));
        p.clear();
        assert_eq!(p.stamp, 1);
        assert_eq!(p.get(2), None, "an answer from the last stamp before the wrap is gone");
        assert!(!p.get_or_keep(2, false));
    }
}
