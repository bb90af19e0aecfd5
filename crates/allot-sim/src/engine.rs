//! The discrete-event engine: replays a `Trace` against the very same `Core` the
//! server runs.
//!
//! Events, in time order (ties: exits, completions, starts, repairs, failures,
//! cancellations, then arrivals; then by job):
//!
//! - **arrival**: the job is submitted to the core (`JobSubmitted`); a job the core
//!   refuses is counted as rejected;
//! - **start**: a `Start` of a plan; the job's processes begin at once, or, when it
//!   preempted others (`Start::after`), once they have exited (after their grace
//!   period);
//! - **completion**: the job has run its trace duration (plus what preemptions added):
//!   `JobFinished`;
//! - **stop / exit**: a `Stop` of a plan ends the job's processes after the grace
//!   period (a cancelled job, or one whose node failed, at once); the exit reports
//!   `JobFinished`, and the core requeues a preempted job. The requeued job keeps the
//!   work up to its last checkpoint (`checkpoint_interval_s`, or the engine's default;
//!   none: all is lost) and pays `restart_overhead_s` when it runs again, so its
//!   remaining duration grows by what was lost plus the overhead;
//! - **cancellation** (`EngineOptions::cancellations`): `JobCancelled`;
//! - **node failure / repair** (`EngineOptions::failures`, or a seeded random failure
//!   process): `NodeDown` / `NodeUp`; the core stops the node's jobs and they requeue.
//!
//! After each batch of same-time events the engine runs one scheduling pass,
//! `schedule(now)`, unless nothing that could change a decision happened since the
//! last one (no arrival, no resources freed, no node or cancellation change) or
//! nothing is pending and nothing must be stopped; and, like the server's loop, no
//! sooner than `min_pass_interval_ms` after the previous pass (the pass then runs
//! when the interval is up). A preempted job's exit does not by itself call for a
//! pass (its GPUs were handed over when it was stopped): it is requeued and looked
//! at by the next one. At most 64 passes run at one instant (`pass_limit_hits`
//! counts instants where the core kept changing its mind). Walltime estimates given to the
//! core are the trace's (declared), or the duration times a configurable factor and a
//! seeded noise. `check_invariants()` runs after every event and pass when
//! `EngineOptions::check_invariants` is set (the default in debug builds).
//!
//! Everything is deterministic given the trace, the config and the seed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use allot_core::rng::{SeededRng, mix};
use allot_core::{Config, ConfigError, Core, Event, JobId, JobState, MS_PER_S, Plan, StopReason, Time};

use crate::metrics::{JobRecord, Outcome, Recorder, RunInfo, Sample, Summary, TenantInfo};
use crate::workload::Trace;

/// How walltime estimates are made for jobs that do not declare one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WalltimeModel {
    /// Estimate = duration x `factor` x `exp(noise * u)`, `u` uniform in `[-1, 1]`
    /// (seeded per job); at least one second.
    pub factor: f64,
    pub noise: f64,
    /// Replace declared estimates too.
    pub replace_declared: bool,
}

impl Default for WalltimeModel {
    fn default() -> Self {
        WalltimeModel { factor: 1.0, noise: 0.0, replace_declared: false }
    }
}

/// An injected node failure.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeFailure {
    pub node: String,
    /// When it fails, ms (trace time).
    pub at: Time,
    /// How long until it is repaired, ms; `None`: never.
    pub repair_after: Option<Time>,
}

/// A seeded random failure process: each node fails after an exponential time of
/// mean `node_mtbf_hours` and comes back `repair_hours` later. It runs while there is
/// work left to arrive or running.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomFailures {
    pub node_mtbf_hours: f64,
    pub repair_hours: f64,
}

/// A job cancelled by its user at `at`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cancellation {
    pub job: JobId,
    pub at: Time,
}

/// Knobs of a replay.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineOptions {
    /// Seeds walltime noise and random failures (the core's tie-breaks use the
    /// config's `policy.seed`).
    pub seed: u64,
    /// Sampling interval of the time series, seconds (0: none).
    pub sample_interval_s: u64,
    /// Added to a preempted (or failed) job's remaining duration when it restarts.
    pub restart_overhead_s: u64,
    /// Checkpoint interval of jobs that declare none; `None`: such jobs lose all
    /// their work when stopped.
    pub checkpoint_interval_s: Option<u64>,
    pub walltime: WalltimeModel,
    /// Run `check_invariants()` after every event and pass.
    pub check_invariants: bool,
    pub failures: Vec<NodeFailure>,
    pub random_failures: Option<RandomFailures>,
    pub cancellations: Vec<Cancellation>,
    /// Stop the simulation at this time (ms); jobs not done by then are unfinished.
    pub horizon: Option<Time>,
    /// After a change, no pass sooner than this after the last one (the server's
    /// `scheduler.min_pass_interval_ms`, 20 ms by default); 0: a pass after every
    /// batch of same-time events that changed something.
    pub min_pass_interval_ms: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            seed: 0,
            sample_interval_s: 300,
            restart_overhead_s: 60,
            checkpoint_interval_s: None,
            walltime: WalltimeModel::default(),
            check_invariants: cfg!(debug_assertions),
            failures: vec![],
            random_failures: None,
            cancellations: vec![],
            horizon: None,
            min_pass_interval_ms: 20,
        }
    }
}

/// Why a replay could not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cluster config: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Options(String),
    #[error("invariant broken at t={at_ms} ms after {after}: {message}")]
    Invariant { at_ms: Time, after: String, message: String },
    #[error("t={at_ms} ms: the core refused {event}: {message}")]
    Core { at_ms: Time, event: String, message: String },
}

/// Where the run is, for progress bars.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Simulated time, ms.
    pub now: Time,
    /// Jobs that arrived, and that are done (completed, cancelled or rejected).
    pub arrived: u64,
    pub done: u64,
    pub jobs: u64,
    pub events: u64,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub summary: Summary,
    pub samples: Vec<Sample>,
    /// Tenant paths in the samples' order.
    pub tenants: Vec<String>,
    /// Per completed job, in trace order: who waited how long.
    pub waits: Vec<JobWait>,
    /// The first few rejections, with the core's reasons.
    pub rejections: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    /// Not arrived yet.
    Future,
    Pending,
    /// Started by the core; processes begin when its victims have exited.
    Starting,
    Running,
    /// Told to stop; its processes end at the exit event.
    Stopping,
    Done,
    Cancelled,
    Rejected,
}

/// How long one completed job waited for its first start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JobWait {
    /// The job's id in the trace.
    pub job: JobId,
    /// Index into `RunResult::tenants`.
    pub tenant: u32,
    /// GPUs it asked for (all replicas), milli-GPU.
    pub milli: u64,
    /// Submission, seconds since the first arrival.
    pub submit_s: f64,
    pub wait_s: f64,
}

#[derive(Clone, Debug)]
struct SimJob {
    id: JobId,
    submit: Time,
    tenant: u32,
    milli: u64,
    /// Work left, ms.
    remaining: Time,
    /// Checkpoint interval, ms (0: none).
    checkpoint: Time,
    state: St,
    flavor: u32,
    /// When the current run's processes started (valid while they run).
    run_start: Time,
    /// Whether the current run's processes are running (counted busy).
    busy: bool,
    /// Scheduled exit of a stopping job.
    exit_at: Time,
    /// Bumped whenever the job's scheduled events become stale (mod 2^29).
    generation: u32,
    first_start: Option<Time>,
    end: Option<Time>,
    preemptions: u32,
    cancel_before_arrival: bool,
    /// Its current stop is a preemption (its GPUs already given back to the core).
    preempted: bool,
    /// (node, GPU mask) of its current placement (a fraction: its GPU's bit).
    slots: Vec<(u32, u64)>,
    /// Counted as waiting in the recorder (pending, or started but waiting for its
    /// victims to exit).
    queued: bool,
}

/// Most scheduling passes at one simulated instant (each follows events of that
/// instant that the previous pass caused, such as an immediate exit).
const MAX_PASSES_PER_INSTANT: u32 = 64;

// Event kinds, in processing order at equal times.
const EXIT: u8 = 0;
const COMPLETE: u8 = 1;
const BEGIN: u8 = 2;
const REPAIR: u8 = 3;
const FAIL: u8 = 4;
const CANCEL: u8 = 5;
/// A pass held back by `min_pass_interval_ms` is due.
const PASS: u8 = 6;

/// (time, kind, subject, generation) packed as (time, kind << 61 | subject << 29 |
/// generation mod 2^29): subject is a job index, or a node index for failures and
/// repairs (`u32::MAX` for the next random failure).
type Item = Reverse<(Time, u64)>;

const GEN_BITS: u32 = 29;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;

fn item(at: Time, kind: u8, subject: u32, generation: u32) -> Item {
    Reverse((at, u64::from(kind) << 61 | u64::from(subject) << GEN_BITS | u64::from(generation & GEN_MASK)))
}

fn unpack(x: u64) -> (u8, u32, u32) {
    ((x >> 61) as u8, (x >> GEN_BITS) as u32, (x as u32) & GEN_MASK)
}

/// The id the core knows job `j` by.
fn cid(j: usize) -> JobId {
    JobId(j as u64)
}

/// A fast hasher for `u64` job ids (deterministic; ids come from the trace).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = allot_core::rng::splitmix64(self.0 ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = allot_core::rng::splitmix64(x);
    }
}

type IdMap = HashMap<u64, u32, BuildHasherDefault<IdHasher>>;

/// The engine: a core, the trace's jobs and the event heap.
pub struct Engine {
    core: Core,
    opts: EngineOptions,
    jobs: Vec<SimJob>,
    specs: Vec<Option<allot_core::JobSpec>>,
    by_id: IdMap,
    heap: BinaryHeap<Item>,
    next_arrival: usize,
    rec: Recorder,
    node_names: Vec<String>,
    failure_plan: Vec<(Time, u32, Option<Time>)>,
    /// Per node: GPUs the core has given back but a preempted job's processes still
    /// hold, (job, GPU mask, until its exit).
    ghosts: Vec<Vec<(u32, u64, Time)>>,
    rng: SeededRng,
    now: Time,
    events: u64,
    passes: u64,
    pass_limit_hits: u64,
    /// When the last pass ran, and the time of a pending `PASS` event.
    last_pass: Time,
    pass_timer: Option<Time>,
    /// Something changed that a pass should look at.
    dirty: bool,
    /// The core holds stops to hand out (cancels, node failures).
    force: bool,
    done: u64,
    arrived: u64,
    rejections: Vec<String>,
    policy_name: String,
}

impl Engine {
    /// Builds the engine. Every tenant the trace names must exist in `config`.
    pub fn new(config: &Config, trace: Trace, opts: EngineOptions) -> Result<Engine, EngineError> {
        let core = Core::new(config)?;
        let mut trace = trace;
        trace.sort();
        let tenants = core.tenants();
        let nf = core.cluster().flavors.len();
        // Recorder tenants are the core's, by index.
        let mut infos = Vec::new();
        for t in 0..tenants.len() {
            let ti = allot_core::TenantIdx::from(t);
            infos.push(TenantInfo {
                path: if t == 0 { "(root)".to_string() } else { tenants.tenants[t].path.clone() },
                nominal: (0..nf).map(|f| tenants.quota(ti, allot_core::FlavorIdx::from(f)).nominal).collect(),
                norm_share: tenants.tenants[t].norm_share,
            });
        }
        // Borrowing and lending are measured on leaf tenants: an inner tenant's
        // nominal is its children's (and the root's the cluster), so counting it too
        // would count the same guarantee twice.
        for (t, info) in infos.iter_mut().enumerate() {
            if t == 0 || !tenants.tenants[t].children.is_empty() {
                info.nominal = vec![0; nf];
            }
        }
        let total_gpus = core.cluster().total_gpus() as f64;
        let rec = Recorder::new(infos, nf, total_gpus, (opts.sample_interval_s as i64).saturating_mul(MS_PER_S));
        let mut jobs = Vec::with_capacity(trace.jobs.len());
        let mut specs = Vec::with_capacity(trace.jobs.len());
        let mut by_id = IdMap::default();
        for (i, tj) in trace.jobs.into_iter().enumerate() {
            let mut spec = tj.spec;
            if by_id.insert(spec.id.0, i as u32).is_some() {
                return Err(EngineError::Options(format!("job id {} appears twice in the trace", spec.id)));
            }
            let trace_id = spec.id;
            // The core knows jobs by their index in the (sorted) trace: plans map back
            // without a lookup.
            spec.id = JobId(i as u64);
            let duration = tj.duration.max(0);
            let w = &opts.walltime;
            if spec.walltime_s.is_none() || w.replace_declared {
                let u = SeededRng::new(mix(opts.seed, trace_id.0)).next_f64() * 2.0 - 1.0;
                let est = duration as f64 / MS_PER_S as f64 * w.factor * (w.noise * u).exp();
                let est = if est.is_finite() { est.ceil().clamp(1.0, 10.0 * 365.0 * 86_400.0) } else { 86_400.0 };
                spec.walltime_s = Some(est as u64);
            }
            let milli = match spec.gpu {
                allot_core::GpuRequest::Whole(g) => u64::from(g) * 1000 * u64::from(spec.replicas),
                allot_core::GpuRequest::Milli(m) => u64::from(m) * u64::from(spec.replicas),
            };
            let tenant = core.tenants().index(&spec.tenant).map_or(0, |t| t.0);
            let checkpoint = spec.checkpoint_interval_s.or(opts.checkpoint_interval_s).unwrap_or(0);
            jobs.push(SimJob {
                id: trace_id,
                submit: tj.submit,
                tenant,
                milli,
                remaining: duration,
                checkpoint: (checkpoint.min(10 * 365 * 86_400) as i64) * MS_PER_S,
                state: St::Future,
                flavor: 0,
                run_start: 0,
                busy: false,
                exit_at: 0,
                generation: 0,
                first_start: None,
                end: None,
                preemptions: 0,
                cancel_before_arrival: false,
                queued: false,
                preempted: false,
                slots: Vec::new(),
            });
            specs.push(Some(spec));
        }
        let node_names: Vec<String> = core.cluster().nodes.iter().map(|n| n.name.clone()).collect();
        let node_names_len = node_names.len();
        let mut failure_plan = Vec::new();
        for f in &opts.failures {
            let n =
                core.cluster().node_index(&f.node).ok_or_else(|| EngineError::Options(format!("failure of unknown node `{}`", f.node)))?;
            failure_plan.push((f.at, n.0, f.repair_after));
        }
        if let Some(rf) = opts.random_failures
            && !(rf.node_mtbf_hours > 0.0 && rf.node_mtbf_hours.is_finite() && rf.repair_hours >= 0.0 && rf.repair_hours.is_finite())
        {
            return Err(EngineError::Options("random failures need a positive MTBF and a non-negative repair time".into()));
        }
        let policy_name = format!("{:?}", config.policy.order).to_lowercase();
        Ok(Engine {
            rng: SeededRng::new(mix(opts.seed, 0xfa11)),
            core,
            opts,
            jobs,
            specs,
            by_id,
            heap: BinaryHeap::new(),
            next_arrival: 0,
            rec,
            node_names,
            failure_plan,
            ghosts: vec![Vec::new(); node_names_len],
            now: 0,
            events: 0,
            passes: 0,
            pass_limit_hits: 0,
            last_pass: Time::MIN,
            pass_timer: None,
            dirty: false,
            force: false,
            done: 0,
            arrived: 0,
            rejections: vec![],
            policy_name,
        })
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The engine's index of a job the core names.
    fn index(&self, id: JobId) -> Option<usize> {
        usize::try_from(id.0).ok().filter(|&j| j < self.jobs.len())
    }

    /// Runs to the end (or the horizon) and returns the metrics.
    pub fn run(self) -> Result<RunResult, EngineError> {
        self.run_with_progress(&mut |_| {})
    }

    /// Runs, calling `progress` every few thousand batches.
    pub fn run_with_progress(mut self, progress: &mut dyn FnMut(&Progress)) -> Result<RunResult, EngineError> {
        let wall = Instant::now();
        let origin = self.jobs.first().map_or(0, |j| j.submit);
        self.now = origin;
        self.rec.start(origin);
        for i in 0..self.failure_plan.len() {
            let (at, n, _) = self.failure_plan[i];
            self.heap.push(item(at, FAIL, n, i as u32));
        }
        for c in std::mem::take(&mut self.opts.cancellations) {
            if let Some(&j) = self.by_id.get(&c.job.0) {
                self.heap.push(item(c.at, CANCEL, j, 0));
            }
        }
        if let Some(rf) = self.opts.random_failures {
            let next = origin + self.exp_ms(rf.node_mtbf_hours / self.node_names.len().max(1) as f64);
            self.heap.push(item(next, FAIL, u32::MAX, 0));
        }
        let mut batches = 0u64;
        let (mut instant, mut passes_here) = (Time::MIN, 0u32);
        let interval = (self.opts.min_pass_interval_ms.min(86_400_000)) as Time;
        let horizon = self.opts.horizon.unwrap_or(Time::MAX);
        loop {
            // The next batch time: the earliest of the heap and the next arrival.
            let t_heap = self.heap.peek().map(|Reverse(e)| e.0);
            let t_arr = self.jobs.get(self.next_arrival).map(|j| j.submit);
            let t = match (t_heap, t_arr) {
                (None, None) => break,
                (Some(a), None) | (None, Some(a)) => a,
                (Some(a), Some(b)) => a.min(b),
            };
            if t > horizon {
                break;
            }
            // Only random failures left: nothing will complete or arrive any more.
            if t_arr.is_none() && self.only_random_failures_left() {
                break;
            }
            self.rec.advance(t);
            self.now = t;
            while let Some(&Reverse((et, packed))) = self.heap.peek() {
                if et != t {
                    break;
                }
                self.heap.pop();
                let (kind, subject, generation) = unpack(packed);
                self.handle(kind, subject, generation)?;
            }
            while self.next_arrival < self.jobs.len() && self.jobs[self.next_arrival].submit == t {
                let j = self.next_arrival;
                self.next_arrival += 1;
                self.arrive(j)?;
            }
            if t != instant {
                instant = t;
                passes_here = 0;
            }
            if self.dirty && (self.force || self.core.pending_count() > 0) {
                let due = self.last_pass.saturating_add(interval);
                if t < due {
                    // Like the server: no pass sooner than the interval after the last.
                    if self.pass_timer != Some(due) {
                        self.pass_timer = Some(due);
                        self.heap.push(item(due, PASS, 0, 0));
                    }
                } else if passes_here < MAX_PASSES_PER_INSTANT {
                    passes_here += 1;
                    self.last_pass = t;
                    self.pass()?;
                } else if passes_here == MAX_PASSES_PER_INSTANT {
                    // The core keeps changing its mind at one instant: leave the rest
                    // to the next event (dirty stays set).
                    passes_here += 1;
                    self.pass_limit_hits += 1;
                }
            }
            batches += 1;
            if batches.is_multiple_of(4096) {
                progress(&Progress {
                    now: self.now,
                    arrived: self.arrived,
                    done: self.done,
                    jobs: self.jobs.len() as u64,
                    events: self.events,
                });
            }
        }
        let wall_seconds = wall.elapsed().as_secs_f64();
        // The engine and the core must agree that all is done.
        if self.done == self.jobs.len() as u64 {
            let left = self.core.pending_count() + self.core.running_count() + self.core.stopping_count() + self.core.held_count();
            if left > 0 {
                return Err(EngineError::Core {
                    at_ms: self.now,
                    event: "the end of the run".into(),
                    message: format!("every job is done, but the core still holds {left}"),
                });
            }
        }
        progress(&Progress { now: self.now, arrived: self.arrived, done: self.done, jobs: self.jobs.len() as u64, events: self.events });
        Ok(self.finish(wall_seconds))
    }

    fn only_random_failures_left(&self) -> bool {
        self.heap.iter().all(|Reverse(e)| {
            let (kind, subject, _) = unpack(e.1);
            kind == FAIL && subject == u32::MAX
        })
    }

    fn exp_ms(&mut self, mean_hours: f64) -> Time {
        let u = self.rng.next_f64();
        let h = -mean_hours * (1.0 - u).ln();
        (h * 3.6e6).clamp(1.0, 1e15) as Time
    }

    fn check(&self, after: impl FnOnce() -> String) -> Result<(), EngineError> {
        if self.opts.check_invariants
            && let Err(message) = self.core.check_invariants()
        {
            return Err(EngineError::Invariant { at_ms: self.now, after: after(), message });
        }
        Ok(())
    }

    /// Applies an event the core must accept.
    fn apply(&mut self, event: Event) -> Result<(), EngineError> {
        let now = self.now;
        // Never a submission (those go through `arrive`): cheap to copy.
        let shown = event.clone();
        if let Err(e) = self.core.on_event(now, event) {
            return Err(EngineError::Core { at_ms: now, event: format!("{shown:?}"), message: e.to_string() });
        }
        self.check(|| format!("{shown:?}"))
    }

    fn arrive(&mut self, j: usize) -> Result<(), EngineError> {
        self.events += 1;
        self.arrived += 1;
        if self.jobs[j].cancel_before_arrival {
            self.jobs[j].state = St::Cancelled;
            self.jobs[j].end = Some(self.now);
            self.done += 1;
            return Ok(());
        }
        let Some(spec) = self.specs[j].take() else { return Ok(()) };
        let now = self.now;
        match self.core.on_event(now, Event::JobSubmitted(spec)) {
            Ok(()) => {
                self.jobs[j].state = St::Pending;
                self.set_queued(j, true);
                self.dirty = true;
                let id = self.jobs[j].id;
                self.check(|| format!("arrival of job {id}"))
            }
            Err(e) => {
                let job = &mut self.jobs[j];
                job.state = St::Rejected;
                self.done += 1;
                if self.rejections.len() < 20 {
                    let why = match e {
                        allot_core::EventError::InvalidJob { field, why, .. } => format!("{field}: {why}"),
                        other => other.to_string(),
                    };
                    self.rejections.push(format!("job {}: {why}", job.id));
                }
                Ok(())
            }
        }
    }

    fn handle(&mut self, kind: u8, subject: u32, generation: u32) -> Result<(), EngineError> {
        match kind {
            EXIT => self.on_exit(subject as usize, generation),
            COMPLETE => self.on_complete(subject as usize, generation),
            BEGIN => {
                let j = subject as usize;
                if self.jobs[j].generation & GEN_MASK == generation && self.jobs[j].state == St::Starting {
                    self.begin(j);
                }
                Ok(())
            }
            FAIL => self.on_failure(subject, generation),
            REPAIR => {
                self.events += 1;
                let name = self.node_names[subject as usize].clone();
                self.apply(Event::NodeUp(name))?;
                self.dirty = true;
                Ok(())
            }
            CANCEL => self.on_cancel(subject as usize),
            PASS => {
                self.pass_timer = None;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_failure(&mut self, subject: u32, index: u32) -> Result<(), EngineError> {
        let (node, repair_after) = if subject == u32::MAX {
            let Some(rf) = self.opts.random_failures else { return Ok(()) };
            let n = self.rng.range(0, self.node_names.len().saturating_sub(1) as u64) as u32;
            let next = self.now + self.exp_ms(rf.node_mtbf_hours / self.node_names.len().max(1) as f64);
            self.heap.push(item(next, FAIL, u32::MAX, 0));
            (n, Some((rf.repair_hours * 3.6e6) as Time))
        } else {
            (subject, self.failure_plan.get(index as usize).and_then(|f| f.2))
        };
        if node as usize >= self.node_names.len() || !self.core.cluster().status(allot_core::NodeIdx(node)).up {
            return Ok(());
        }
        self.events += 1;
        let name = self.node_names[node as usize].clone();
        self.apply(Event::NodeDown(name))?;
        if let Some(r) = repair_after {
            self.heap.push(item(self.now.saturating_add(r.max(0)), REPAIR, node, 0));
        }
        self.dirty = true;
        self.force = true;
        Ok(())
    }

    fn on_cancel(&mut self, j: usize) -> Result<(), EngineError> {
        let job = &mut self.jobs[j];
        match job.state {
            St::Future => job.cancel_before_arrival = true,
            St::Pending | St::Starting | St::Running | St::Stopping => {
                self.events += 1;
                let (id, was_pending) = (cid(j), job.state == St::Pending);
                self.apply(Event::JobCancelled(id))?;
                if was_pending {
                    self.set_queued(j, false);
                    let job = &mut self.jobs[j];
                    job.state = St::Cancelled;
                    job.end = Some(self.now);
                    job.generation += 1;
                    self.done += 1;
                }
                self.dirty = true;
                self.force = true;
            }
            St::Done | St::Cancelled | St::Rejected => {}
        }
        Ok(())
    }

    /// The job's processes are gone: its GPUs are free for whoever waits on them.
    fn clear_ghosts(&mut self, j: usize) {
        if self.jobs[j].state != St::Stopping {
            return;
        }
        for &(n, _) in &self.jobs[j].slots {
            if let Some(g) = self.ghosts.get_mut(n as usize) {
                g.retain(|x| x.0 != j as u32);
            }
        }
    }

    /// Counts the job as waiting (or not) in the recorder.
    fn set_queued(&mut self, j: usize, queued: bool) {
        let job = &mut self.jobs[j];
        if job.queued != queued {
            job.queued = queued;
            let (tenant, milli) = (job.tenant, job.milli);
            self.rec.pending(tenant, milli, queued);
        }
    }

    /// The job's processes start now.
    fn begin(&mut self, j: usize) {
        self.events += 1;
        self.set_queued(j, false);
        let now = self.now;
        let job = &mut self.jobs[j];
        job.state = St::Running;
        job.run_start = now;
        job.busy = true;
        job.first_start.get_or_insert(now);
        let (tenant, flavor, milli) = (job.tenant, job.flavor as usize, job.milli);
        let end = now.saturating_add(job.remaining);
        self.heap.push(item(end, COMPLETE, j as u32, job.generation));
        self.rec.busy(tenant, flavor, milli, true);
    }

    /// Ends the current run's processes at `now`; returns the GPU-ms of work lost
    /// (since the last checkpoint, plus the restart overhead) when `requeue`.
    fn end_run(&mut self, j: usize, requeue: bool) -> f64 {
        let now = self.now;
        let overhead = (self.opts.restart_overhead_s as i64).saturating_mul(MS_PER_S);
        self.clear_ghosts(j);
        let job = &mut self.jobs[j];
        let mut lost_ms = 0;
        let ran_now = job.busy;
        if job.busy {
            job.busy = false;
            let ran = (now - job.run_start).max(0).min(job.remaining);
            let saved = if job.checkpoint > 0 { ran - ran % job.checkpoint } else { 0 };
            job.remaining -= saved;
            lost_ms = ran - saved;
            let (tenant, flavor, milli) = (job.tenant, job.flavor as usize, job.milli);
            self.rec.busy(tenant, flavor, milli, false);
        }
        let job = &mut self.jobs[j];
        // A job stopped before its processes began pays no restart overhead.
        if requeue && ran_now {
            job.remaining = job.remaining.saturating_add(overhead);
            (lost_ms + overhead) as f64 * job.milli as f64 / 1000.0
        } else {
            0.0
        }
    }

    fn on_complete(&mut self, j: usize, generation: u32) -> Result<(), EngineError> {
        let job = &self.jobs[j];
        if job.generation & GEN_MASK != generation || !matches!(job.state, St::Running | St::Stopping) {
            return Ok(());
        }
        self.events += 1;
        let id = cid(j);
        self.end_run(j, false);
        self.apply(Event::JobFinished(id))?;
        // A job that completes during its grace period was being preempted: the core
        // requeued it; it is done, so take it out.
        if self.core.job(id).is_some() {
            self.apply(Event::JobCancelled(id))?;
        }
        let now = self.now;
        let job = &mut self.jobs[j];
        job.state = St::Done;
        job.remaining = 0;
        job.end = Some(now);
        job.generation += 1;
        self.done += 1;
        self.rec.mark_end(now);
        self.dirty = true;
        Ok(())
    }

    fn on_exit(&mut self, j: usize, generation: u32) -> Result<(), EngineError> {
        let job = &self.jobs[j];
        if job.generation & GEN_MASK != generation || job.state != St::Stopping {
            return Ok(());
        }
        self.events += 1;
        let id = cid(j);
        let lost = self.end_run(j, true);
        self.apply(Event::JobFinished(id))?;
        let now = self.now;
        self.rec.mark_end(now);
        // A preempted job's GPUs went back to the core when it was told to stop: its
        // exit only requeues it, which the next pass (at the next arrival or
        // completion) looks at. Not passing at once also keeps two jobs that the core
        // would preempt back and forth from doing so endlessly at one instant.
        if !self.jobs[j].preempted {
            self.dirty = true;
        }
        let requeued = self.core.job(id).map(|cj| cj.state == JobState::Pending);
        let job = &mut self.jobs[j];
        job.generation += 1;
        match requeued {
            Some(true) => {
                job.state = St::Pending;
                let tenant = job.tenant;
                let failure = job.exit_at == Time::MIN;
                if !failure {
                    job.preemptions += 1;
                }
                self.rec.requeued(tenant, lost, failure);
                self.set_queued(j, true);
            }
            Some(false) => {
                return Err(EngineError::Core {
                    at_ms: now,
                    event: format!("JobFinished({id})"),
                    message: "the job neither requeued nor forgotten".into(),
                });
            }
            None => {
                job.state = St::Cancelled;
                job.end = Some(now);
                self.done += 1;
                self.set_queued(j, false);
            }
        }
        Ok(())
    }

    fn pass(&mut self) -> Result<(), EngineError> {
        self.dirty = false;
        self.force = false;
        self.passes += 1;
        let now = self.now;
        let plan: Plan = self.core.schedule(now);
        self.check(|| "a scheduling pass".to_string())?;
        // A job started and stopped by the same pass (a later job of the pass
        // preempted it) never runs: it exits at once and requeues.
        if !plan.stops.is_empty() {
            for st in &plan.starts {
                if plan.stops.iter().any(|s| s.job == st.job)
                    && let Some(j) = self.index(st.job)
                    && self.jobs[j].state == St::Pending
                {
                    let job = &mut self.jobs[j];
                    job.state = St::Starting;
                    job.flavor = st.flavor.0;
                    job.generation += 1;
                }
            }
        }
        // Stops first: a start that preempted waits for its victims' exits.
        for s in &plan.stops {
            let Some(j) = self.index(s.job) else { continue };
            self.events += 1;
            let job = &mut self.jobs[j];
            match job.state {
                St::Running | St::Starting => {
                    // Processes of a cancelled job or on a lost node end at once;
                    // a failure is marked by `exit_at == Time::MIN`.
                    let (at, mark) = match s.why {
                        StopReason::NodeLost { .. } => (now, Time::MIN),
                        StopReason::Cancelled => (now, now),
                        StopReason::Preempted { .. } => {
                            let at = now.saturating_add((s.grace_s.min(365 * 86_400) as i64) * MS_PER_S);
                            (at, at)
                        }
                    };
                    let at = if job.busy { at } else { now };
                    job.state = St::Stopping;
                    job.exit_at = mark;
                    job.preempted = matches!(s.why, StopReason::Preempted { .. });
                    self.heap.push(item(at, EXIT, j as u32, job.generation));
                    // A preempted job's GPUs go back to the core at once, but its
                    // processes hold them until it exits: whoever gets them waits.
                    if job.busy && at > now && matches!(s.why, StopReason::Preempted { .. }) {
                        for &(n, mask) in &job.slots {
                            if let Some(g) = self.ghosts.get_mut(n as usize) {
                                g.push((j as u32, mask, at));
                            }
                        }
                    }
                }
                // The core stops a job once; a stopping job's later fate (cancel,
                // node lost) only changes what its exit does.
                _ => {}
            }
        }
        for s in plan.starts {
            let Some(j) = self.index(s.job) else { continue };
            if self.jobs[j].state != St::Pending {
                continue;
            }
            let slots: Vec<(u32, u64)> =
                s.slots.iter().map(|sl| (sl.node.0, if sl.milli > 0 { 1u64 << (sl.frac_gpu % 64) } else { sl.gpus })).collect();
            // Processes begin once every preempted job still on these GPUs has exited.
            let mut begin = now;
            for &(n, mask) in &slots {
                if let Some(g) = self.ghosts.get(n as usize) {
                    for &(_, m, until) in g {
                        if m & mask != 0 {
                            begin = begin.max(until);
                        }
                    }
                }
            }
            let job = &mut self.jobs[j];
            job.flavor = s.flavor.0;
            job.slots = slots;
            job.generation += 1;
            if begin <= now {
                self.begin(j);
            } else {
                let job = &mut self.jobs[j];
                job.state = St::Starting;
                self.heap.push(item(begin, BEGIN, j as u32, job.generation));
            }
        }
        Ok(())
    }

    fn finish(mut self, wall_seconds: f64) -> RunResult {
        let records: Vec<JobRecord> = self
            .jobs
            .iter()
            .map(|j| JobRecord {
                tenant: j.tenant,
                milli: j.milli,
                submit: j.submit,
                first_start: j.first_start,
                end: j.end,
                outcome: match j.state {
                    St::Done => Outcome::Completed,
                    St::Cancelled => Outcome::Cancelled,
                    St::Rejected => Outcome::Rejected,
                    _ => Outcome::Unfinished,
                },
                preemptions: j.preemptions,
            })
            .collect();
        let run = RunInfo {
            events: self.events,
            passes: self.passes,
            pass_limit_hits: self.pass_limit_hits,
            wall_seconds,
            seed: self.opts.seed,
            policy: self.policy_name.clone(),
        };
        let summary = self.rec.summary(&records, &run);
        let origin = self.jobs.iter().map(|j| j.submit).min().unwrap_or(0);
        let waits = records
            .iter()
            .zip(&self.jobs)
            .filter(|(r, _)| r.outcome == Outcome::Completed)
            .filter_map(|(r, j)| {
                Some(JobWait {
                    job: j.id,
                    tenant: r.tenant,
                    milli: r.milli,
                    submit_s: (r.submit - origin) as f64 / MS_PER_S as f64,
                    wait_s: (r.first_start? - r.submit) as f64 / MS_PER_S as f64,
                })
            })
            .collect();
        RunResult {
            summary,
            tenants: self.rec.tenants().iter().map(|t| t.path.clone()).collect(),
            samples: self.rec.take_samples(),
            waits,
            rejections: self.rejections,
        }
    }
}
