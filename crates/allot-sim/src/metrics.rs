//! What a replay measured: time-weighted GPU use, job completion times and queueing
//! delays, fairness, quota guarantees, preemption losses, and the engine's speed.
//!
//! The engine feeds a `Recorder` as the simulated state changes (GPUs busy per tenant
//! and flavor, pending work per tenant, finished jobs); `Recorder::summary` turns it
//! into a `Summary` (the JSON object `allot sim replay --json` prints) and the time
//! series `Sample`s that `--out` writes.
//!
//! Definitions (all times in seconds, GPU quantities in GPUs, fractions counting as
//! fractions):
//!
//! - **utilisation**: GPUs busy (a job's processes running, from its real start to its
//!   exit, grace periods included) integrated over time, divided by the cluster's GPUs
//!   times the span from the first arrival to the last exit (`makespan_s`). Nodes that
//!   are down still count in the denominator.
//! - **JCT** (job completion time): completion minus submission. **Wait** (queueing
//!   delay): first start minus submission. Both over completed jobs, so that
//!   `avg_wait_s <= avg_jct_s`. Percentiles are nearest-rank: the p-th percentile of
//!   `n` sorted values is the value at rank `ceil(p/100 * n)` (1-based).
//! - **size classes**: by the job's total GPUs: `1` (one GPU or a fraction), `2-8`,
//!   `9-64`, `65-512`, `513+`.
//! - **share** of a tenant: its GPU-hours over all GPU-hours used (`share_pct`); its
//!   **normalised share** is its GPU-hours over its entitlement: its nominal quota
//!   (summed over flavors) times the makespan, or, for a tenant without a nominal, its
//!   fair-share fraction of the cluster (weights down the tenant tree) times the
//!   cluster's GPUs times the makespan. **Jain's fairness index** is
//!   `(sum x)^2 / (n * sum x^2)` over the normalised shares `x` of the tenants that
//!   submitted jobs (1 = equal normalised shares).
//! - **borrowed** GPU-hours of a tenant: per flavor, the integral of its use above its
//!   nominal. **Lent** GPU-hours: per flavor, the integral of its unused nominal times
//!   the fraction of all tenants' unused nominal that borrowers were using (so lending
//!   is attributed in proportion to idle guarantees, and total lent equals total
//!   borrowed while borrowers use less than the idle guarantees). Both are measured on
//!   leaf tenants (an inner tenant's nominal is its children's); a tenant with
//!   children counts as having no nominal of its own.
//! - **quota guarantee violations** of a tenant: the integral, while it uses less than
//!   its nominal (summed over flavors) and has pending work whose smallest job fits in
//!   the difference, of `min(nominal - use, pending GPUs)`: GPU-hours it was entitled to
//!   and waited for.
//! - **preemptions**: stops that requeue a job to make room for another; lost
//!   GPU-hours: GPUs x (work since the last checkpoint + the restart overhead). Node
//!   failures are counted apart (`failure_requeues`, `failure_lost_gpu_hours`).

use std::collections::BTreeMap;

use allot_core::{MS_PER_S, Time};
use serde::{Deserialize, Serialize};

/// The size classes, by total GPUs of a job.
pub const SIZE_CLASSES: [&str; 5] = ["1", "2-8", "9-64", "65-512", "513+"];

/// The size class of a job of `milli` milli-GPU in all.
pub fn size_class(milli: u64) -> usize {
    match milli {
        0..=1000 => 0,
        1001..=8000 => 1,
        8001..=64_000 => 2,
        64_001..=512_000 => 3,
        _ => 4,
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of sorted values; 0 for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Mean; 0 for none.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 }
}

/// Jain's fairness index `(sum x)^2 / (n sum x^2)`; `None` for no values or all zero.
pub fn jain_index(x: &[f64]) -> Option<f64> {
    let sum: f64 = x.iter().sum();
    let sq: f64 = x.iter().map(|v| v * v).sum();
    if x.is_empty() || sq <= 0.0 { None } else { Some(sum * sum / (x.len() as f64 * sq)) }
}

/// Mean and nearest-rank p50/p95/p99 of a set of values (seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Stats {
    /// Sorts `values` and computes the statistics.
    pub fn of(values: &mut [f64]) -> Stats {
        values.sort_by(f64::total_cmp);
        Stats { mean: mean(values), p50: percentile(values, 50.0), p95: percentile(values, 95.0), p99: percentile(values, 99.0) }
    }
}

/// How a job left the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Cancelled,
    /// The core refused it at submission (e.g. larger than any node).
    Rejected,
    /// Still pending or running when the simulation ended.
    Unfinished,
}

/// One job's record, as the engine reports it at the end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JobRecord {
    /// Index into the recorder's tenants.
    pub tenant: u32,
    pub milli: u64,
    pub submit: Time,
    /// First start of its processes, if it ever started.
    pub first_start: Option<Time>,
    /// Completion (or cancellation) time.
    pub end: Option<Time>,
    pub outcome: Outcome,
    pub preemptions: u32,
}

/// A tenant as the recorder knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantInfo {
    pub path: String,
    /// Nominal quota per flavor, milli-GPU.
    pub nominal: Vec<u64>,
    /// Fraction of the cluster its fair-share weights imply.
    pub norm_share: f64,
}

/// The state at one sampling instant (for the CSV time series and the plots).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since the first arrival.
    pub t_s: f64,
    pub busy_gpus: f64,
    pub pending_jobs: u64,
    pub running_jobs: u64,
    /// GPUs busy per tenant (recorder order).
    pub tenant_gpus: Vec<f64>,
}

/// Integrals per tenant, in GPU-milliseconds (GPUs x ms).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct TenantAcc {
    gpu_ms: f64,
    borrowed: f64,
    lent: f64,
    violation: f64,
    preemptions: u64,
    lost_gpu_ms: f64,
    failure_requeues: u64,
    failure_lost_gpu_ms: f64,
}

/// Collects what the engine reports while it runs.
///
/// Integrals are kept lazily so that each change costs O(1) (plus O(flavors) per
/// clock step): a tenant's use, borrowing and violation rates only change when its
/// own state does, so they are integrated up to the change then; lending depends on
/// every tenant of a flavor through the borrowed-to-idle fraction, whose integral
/// over time is kept per flavor, so a tenant's lent GPU-hours are its idle nominal
/// times the growth of that integral while its idle nominal stayed the same.
#[derive(Clone, Debug)]
pub struct Recorder {
    tenants: Vec<TenantInfo>,
    nf: usize,
    total_gpus: f64,
    /// Milli-GPU busy per (tenant, flavor), and per tenant.
    busy: Vec<u64>,
    busy_tenant: Vec<u64>,
    busy_total: u64,
    running_jobs: u64,
    /// Pending work per tenant: sum and multiset of job sizes (milli).
    pending_sum: Vec<u64>,
    /// (size, count) sorted by size: few distinct sizes, so a sorted vector.
    pending_sizes: Vec<Vec<(u64, u32)>>,
    pending_jobs: u64,
    acc: Vec<TenantAcc>,
    busy_gpu_ms: f64,
    /// Per tenant: nominal summed over flavors (milli), current borrowing and
    /// violation rates (milli-GPU), and when its integrals were last brought up to date.
    nominal_tenant: Vec<u64>,
    borrow_rate: Vec<u64>,
    violation_rate: Vec<u64>,
    settled_at: Vec<Time>,
    /// Per flavor: milli-GPU borrowed (above nominal) and idle (unused nominal) over
    /// all tenants, and the integral over time of min(1, borrowed / idle).
    borrowed_f: Vec<u64>,
    idle_f: Vec<u64>,
    lend_integral: Vec<f64>,
    /// Per (tenant, flavor): `lend_integral` when its idle nominal last changed.
    lend_mark: Vec<f64>,
    origin: Option<Time>,
    last: Time,
    last_event: Time,
    sample_every: Time,
    next_sample: Time,
    samples: Vec<Sample>,
    max_samples: usize,
}

impl Recorder {
    /// A recorder for `tenants` on a cluster of `total_gpus` GPUs in `flavors`
    /// flavors, sampling every `sample_every_ms` (0: no samples).
    pub fn new(tenants: Vec<TenantInfo>, flavors: usize, total_gpus: f64, sample_every_ms: Time) -> Recorder {
        let nt = tenants.len();
        let mut tenants = tenants;
        for t in &mut tenants {
            t.nominal.resize(flavors, 0);
        }
        let nominal_tenant = tenants.iter().map(|t| t.nominal.iter().sum()).collect();
        let mut idle_f = vec![0u64; flavors];
        for t in &tenants {
            for (f, n) in t.nominal.iter().enumerate() {
                idle_f[f] += n;
            }
        }
        Recorder {
            nf: flavors,
            total_gpus,
            busy: vec![0; nt * flavors],
            busy_tenant: vec![0; nt],
            busy_total: 0,
            running_jobs: 0,
            pending_sum: vec![0; nt],
            pending_sizes: vec![Vec::new(); nt],
            pending_jobs: 0,
            acc: vec![TenantAcc::default(); nt],
            busy_gpu_ms: 0.0,
            nominal_tenant,
            borrow_rate: vec![0; nt],
            violation_rate: vec![0; nt],
            settled_at: vec![0; nt],
            borrowed_f: vec![0; flavors],
            idle_f,
            lend_integral: vec![0.0; flavors],
            lend_mark: vec![0.0; nt * flavors],
            origin: None,
            last: 0,
            last_event: 0,
            sample_every: sample_every_ms.max(0),
            next_sample: 0,
            samples: vec![],
            max_samples: 1_000_000,
            tenants,
        }
    }

    pub fn tenants(&self) -> &[TenantInfo] {
        &self.tenants
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    pub fn take_samples(&mut self) -> Vec<Sample> {
        std::mem::take(&mut self.samples)
    }

    /// Starts the clock at `t` (the first arrival); earlier calls to `advance` are ignored.
    pub fn start(&mut self, t: Time) {
        if self.origin.is_none() {
            self.origin = Some(t);
            self.last = t;
            self.last_event = t;
            self.next_sample = t;
            self.settled_at.iter_mut().for_each(|x| *x = t);
        }
    }

    /// Moves the clock to `to`: integrates over `[last, to)` and takes the samples
    /// due in it (the state did not change in between).
    pub fn advance(&mut self, to: Time) {
        let Some(origin) = self.origin else { return };
        if to <= self.last {
            return;
        }
        if self.sample_every > 0 {
            while self.next_sample < to && self.samples.len() < self.max_samples {
                self.samples.push(Sample {
                    t_s: (self.next_sample - origin) as f64 / MS_PER_S as f64,
                    busy_gpus: self.busy_total as f64 / 1000.0,
                    pending_jobs: self.pending_jobs,
                    running_jobs: self.running_jobs,
                    tenant_gpus: self.busy_tenant.iter().map(|&b| b as f64 / 1000.0).collect(),
                });
                self.next_sample += self.sample_every;
            }
        }
        let dt = (to - self.last) as f64;
        self.busy_gpu_ms += self.busy_total as f64 / 1000.0 * dt;
        for f in 0..self.nf {
            if self.borrowed_f[f] > 0 && self.idle_f[f] > 0 {
                self.lend_integral[f] += (self.borrowed_f[f] as f64 / self.idle_f[f] as f64).min(1.0) * dt;
            }
        }
        self.last = to;
    }

    /// Brings tenant `t`'s use, borrowing and violation integrals up to the clock.
    fn settle(&mut self, t: usize) {
        let dt = (self.last - self.settled_at[t]) as f64;
        if dt > 0.0 {
            let a = &mut self.acc[t];
            a.gpu_ms += self.busy_tenant[t] as f64 / 1000.0 * dt;
            a.borrowed += self.borrow_rate[t] as f64 / 1000.0 * dt;
            a.violation += self.violation_rate[t] as f64 / 1000.0 * dt;
        }
        self.settled_at[t] = self.last;
    }

    /// Brings tenant `t`'s lent integral on flavor `f` up to the clock.
    fn settle_lent(&mut self, t: usize, f: usize) {
        let i = t * self.nf + f;
        let idle = self.tenants[t].nominal[f].saturating_sub(self.busy[i]);
        let grown = self.lend_integral[f] - self.lend_mark[i];
        if idle > 0 && grown > 0.0 {
            self.acc[t].lent += idle as f64 / 1000.0 * grown;
        }
        self.lend_mark[i] = self.lend_integral[f];
    }

    fn update_violation_rate(&mut self, t: usize) {
        let room = self.nominal_tenant[t].saturating_sub(self.busy_tenant[t]);
        let smallest = self.pending_sizes[t].first().map(|e| e.0);
        self.violation_rate[t] = match smallest {
            Some(s) if s <= room => room.min(self.pending_sum[t]),
            _ => 0,
        };
    }

    /// A job's processes started (`add`) or ended on `milli` GPUs of flavor `flavor`.
    pub fn busy(&mut self, tenant: u32, flavor: usize, milli: u64, add: bool) {
        let t = tenant as usize;
        if t >= self.tenants.len() || flavor >= self.nf {
            return;
        }
        self.settle(t);
        self.settle_lent(t, flavor);
        let i = t * self.nf + flavor;
        let n = self.tenants[t].nominal[flavor];
        let before = self.busy[i];
        let after = if add { before + milli } else { before.saturating_sub(milli) };
        self.busy[i] = after;
        self.busy_tenant[t] = self.busy_tenant[t] - before.min(self.busy_tenant[t]) + after;
        if add {
            self.busy_total += milli;
            self.running_jobs += 1;
        } else {
            self.busy_total = self.busy_total.saturating_sub(milli);
            self.running_jobs = self.running_jobs.saturating_sub(1);
        }
        let (b0, b1) = (before.saturating_sub(n), after.saturating_sub(n));
        let (i0, i1) = (n.saturating_sub(before), n.saturating_sub(after));
        self.borrowed_f[flavor] = self.borrowed_f[flavor] - b0.min(self.borrowed_f[flavor]) + b1;
        self.idle_f[flavor] = self.idle_f[flavor] - i0.min(self.idle_f[flavor]) + i1;
        self.borrow_rate[t] = self.borrow_rate[t] - b0.min(self.borrow_rate[t]) + b1;
        self.update_violation_rate(t);
    }

    /// A job of `milli` milli-GPU entered (`add`) or left the queue.
    pub fn pending(&mut self, tenant: u32, milli: u64, add: bool) {
        let t = tenant as usize;
        if t >= self.tenants.len() {
            return;
        }
        self.settle(t);
        if add {
            self.pending_sum[t] += milli;
            let sizes = &mut self.pending_sizes[t];
            match sizes.binary_search_by_key(&milli, |e| e.0) {
                Ok(i) => sizes[i].1 += 1,
                Err(i) => sizes.insert(i, (milli, 1)),
            }
            self.pending_jobs += 1;
        } else {
            self.pending_sum[t] = self.pending_sum[t].saturating_sub(milli);
            let sizes = &mut self.pending_sizes[t];
            if let Ok(i) = sizes.binary_search_by_key(&milli, |e| e.0) {
                sizes[i].1 -= 1;
                if sizes[i].1 == 0 {
                    sizes.remove(i);
                }
            }
            self.pending_jobs = self.pending_jobs.saturating_sub(1);
        }
        self.update_violation_rate(t);
    }

    /// A job was stopped and requeued, losing `lost_gpu_ms` of work (preemption or
    /// node failure).
    pub fn requeued(&mut self, tenant: u32, lost_gpu_ms: f64, failure: bool) {
        let Some(a) = self.acc.get_mut(tenant as usize) else { return };
        if failure {
            a.failure_requeues += 1;
            a.failure_lost_gpu_ms += lost_gpu_ms;
        } else {
            a.preemptions += 1;
            a.lost_gpu_ms += lost_gpu_ms;
        }
    }

    /// Notes the time of an event that ends the makespan (a completion or an exit).
    pub fn mark_end(&mut self, t: Time) {
        self.last_event = self.last_event.max(t);
    }

    /// Builds the summary from the job records and the engine's counters.
    pub fn summary(&mut self, jobs: &[JobRecord], run: &RunInfo) -> Summary {
        let origin = self.origin.unwrap_or(0);
        // The makespan ends with the last completion or exit; when work is left (a
        // horizon), with the clock.
        let busy_or_waiting = self.running_jobs > 0 || self.pending_jobs > 0;
        let end = if busy_or_waiting { self.last.max(self.last_event) } else { self.last_event }.max(origin);
        self.advance(end);
        for t in 0..self.tenants.len() {
            self.settle(t);
            for f in 0..self.nf {
                self.settle_lent(t, f);
            }
        }
        let span_ms = (end - origin) as f64;
        let makespan_s = span_ms / MS_PER_S as f64;
        let nt = self.tenants.len();
        let to_s = |ms: Time| ms as f64 / MS_PER_S as f64;
        let mut jct = Vec::new();
        let mut wait = Vec::new();
        let mut t_jct: Vec<Vec<f64>> = vec![vec![]; nt];
        let mut t_wait: Vec<Vec<f64>> = vec![vec![]; nt];
        let mut c_jct: Vec<Vec<f64>> = vec![vec![]; SIZE_CLASSES.len()];
        let mut c_wait: Vec<Vec<f64>> = vec![vec![]; SIZE_CLASSES.len()];
        let mut t_jobs = vec![0u64; nt];
        let mut t_done = vec![0u64; nt];
        let mut c_jobs = vec![0u64; SIZE_CLASSES.len()];
        let mut c_gpu_ms = vec![0.0f64; SIZE_CLASSES.len()];
        // Jobs of a class that never started by the end, and the longest such wait:
        // wait statistics cover completed jobs only, and would not show starvation.
        let mut c_never = vec![0u64; SIZE_CLASSES.len()];
        let mut c_oldest_ms = vec![0 as Time; SIZE_CLASSES.len()];
        let (mut completed, mut cancelled, mut rejected, mut unfinished) = (0u64, 0u64, 0u64, 0u64);
        for j in jobs {
            let t = j.tenant as usize;
            let c = size_class(j.milli);
            t_jobs[t] += 1;
            c_jobs[c] += 1;
            match j.outcome {
                Outcome::Completed => {
                    completed += 1;
                    t_done[t] += 1;
                    let (Some(s), Some(e)) = (j.first_start, j.end) else { continue };
                    let (jc, w) = (to_s(e - j.submit), to_s(s - j.submit));
                    jct.push(jc);
                    wait.push(w);
                    t_jct[t].push(jc);
                    t_wait[t].push(w);
                    c_jct[c].push(jc);
                    c_wait[c].push(w);
                    c_gpu_ms[c] += j.milli as f64 / 1000.0 * (e - s) as f64;
                }
                Outcome::Cancelled => cancelled += 1,
                Outcome::Rejected => rejected += 1,
                Outcome::Unfinished => {
                    unfinished += 1;
                    if j.first_start.is_none() {
                        c_never[c] += 1;
                        c_oldest_ms[c] = c_oldest_ms[c].max(end - j.submit);
                    }
                }
            }
        }
        let jct_s = Stats::of(&mut jct);
        let wait_s = Stats::of(&mut wait);
        let h = |gpu_ms: f64| gpu_ms / 3.6e6;
        let mut per_tenant = BTreeMap::new();
        let mut norm = Vec::new();
        let total_gpu_ms = self.busy_gpu_ms;
        for t in 0..nt {
            if t_jobs[t] == 0 {
                continue;
            }
            let info = &self.tenants[t];
            let a = self.acc[t];
            let nominal_gpus = info.nominal.iter().sum::<u64>() as f64 / 1000.0;
            let entitled_gpus = if nominal_gpus > 0.0 { nominal_gpus } else { info.norm_share * self.total_gpus };
            let normalised = if entitled_gpus > 0.0 && span_ms > 0.0 { a.gpu_ms / (entitled_gpus * span_ms) } else { 0.0 };
            norm.push(normalised);
            let w = Stats::of(&mut t_wait[t]);
            let jc = Stats::of(&mut t_jct[t]);
            per_tenant.insert(
                info.path.clone(),
                TenantSummary {
                    jobs: t_jobs[t],
                    completed: t_done[t],
                    avg_wait_s: w.mean,
                    p50_wait_s: w.p50,
                    p95_wait_s: w.p95,
                    p99_wait_s: w.p99,
                    avg_jct_s: jc.mean,
                    p50_jct_s: jc.p50,
                    p95_jct_s: jc.p95,
                    p99_jct_s: jc.p99,
                    gpu_hours: h(a.gpu_ms),
                    share_pct: if total_gpu_ms > 0.0 { 100.0 * a.gpu_ms / total_gpu_ms } else { 0.0 },
                    nominal_gpus,
                    nominal_utilization_pct: (nominal_gpus > 0.0 && span_ms > 0.0).then(|| 100.0 * a.gpu_ms / (nominal_gpus * span_ms)),
                    normalized_share: normalised,
                    borrowed_gpu_hours: h(a.borrowed),
                    lent_gpu_hours: h(a.lent),
                    quota_violation_gpu_hours: h(a.violation),
                    preemptions: a.preemptions,
                    preemption_lost_gpu_hours: h(a.lost_gpu_ms),
                },
            );
        }
        let per_size_class = SIZE_CLASSES
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let w = Stats::of(&mut c_wait[c]);
                let jc = Stats::of(&mut c_jct[c]);
                (
                    (*name).to_string(),
                    ClassSummary {
                        jobs: c_jobs[c],
                        completed: c_jct[c].len() as u64,
                        never_started: c_never[c],
                        longest_unstarted_wait_s: to_s(c_oldest_ms[c]),
                        avg_wait_s: w.mean,
                        p50_wait_s: w.p50,
                        p95_wait_s: w.p95,
                        p99_wait_s: w.p99,
                        avg_jct_s: jc.mean,
                        p50_jct_s: jc.p50,
                        p95_jct_s: jc.p95,
                        p99_jct_s: jc.p99,
                        gpu_hours: h(c_gpu_ms[c]),
                    },
                )
            })
            .collect();
        let sum = |f: fn(&TenantAcc) -> f64| self.acc.iter().map(f).sum::<f64>();
        Summary {
            jobs: jobs.len() as u64,
            completed,
            cancelled,
            rejected,
            unfinished,
            gpus: self.total_gpus,
            avg_jct_s: jct_s.mean,
            p50_jct_s: jct_s.p50,
            p95_jct_s: jct_s.p95,
            p99_jct_s: jct_s.p99,
            avg_wait_s: wait_s.mean,
            p50_wait_s: wait_s.p50,
            p95_wait_s: wait_s.p95,
            p99_wait_s: wait_s.p99,
            utilization_pct: if span_ms > 0.0 && self.total_gpus > 0.0 { 100.0 * total_gpu_ms / (self.total_gpus * span_ms) } else { 0.0 },
            gpu_hours: h(total_gpu_ms),
            makespan_s,
            preemptions: self.acc.iter().map(|a| a.preemptions).sum(),
            max_job_preemptions: jobs.iter().map(|j| j.preemptions).max().unwrap_or(0),
            preemption_lost_gpu_hours: h(sum(|a| a.lost_gpu_ms)),
            failure_requeues: self.acc.iter().map(|a| a.failure_requeues).sum(),
            failure_lost_gpu_hours: h(sum(|a| a.failure_lost_gpu_ms)),
            jain_fairness: jain_index(&norm),
            quota_violation_gpu_hours: h(sum(|a| a.violation)),
            borrowed_gpu_hours: h(sum(|a| a.borrowed)),
            events: run.events,
            events_per_s: if run.wall_seconds > 0.0 { run.events as f64 / run.wall_seconds } else { 0.0 },
            wall_seconds: run.wall_seconds,
            passes: run.passes,
            pass_limit_hits: run.pass_limit_hits,
            seed: run.seed,
            policy: run.policy.clone(),
            per_tenant,
            per_size_class,
        }
    }
}

/// Counters of the engine that go into the summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunInfo {
    pub events: u64,
    pub passes: u64,
    pub pass_limit_hits: u64,
    pub wall_seconds: f64,
    pub seed: u64,
    pub policy: String,
}

/// One tenant's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantSummary {
    pub jobs: u64,
    pub completed: u64,
    pub avg_wait_s: f64,
    pub p50_wait_s: f64,
    pub p95_wait_s: f64,
    pub p99_wait_s: f64,
    pub avg_jct_s: f64,
    pub p50_jct_s: f64,
    pub p95_jct_s: f64,
    pub p99_jct_s: f64,
    pub gpu_hours: f64,
    /// Of all GPU-hours used, in percent.
    pub share_pct: f64,
    /// Nominal quota summed over flavors.
    pub nominal_gpus: f64,
    /// GPU-hours over nominal GPU-hours in the makespan (`None` without a nominal).
    pub nominal_utilization_pct: Option<f64>,
    pub normalized_share: f64,
    pub borrowed_gpu_hours: f64,
    pub lent_gpu_hours: f64,
    pub quota_violation_gpu_hours: f64,
    pub preemptions: u64,
    pub preemption_lost_gpu_hours: f64,
}

/// One size class's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    pub jobs: u64,
    pub completed: u64,
    /// Jobs still waiting at the end that never started (wait statistics cover
    /// completed jobs only).
    #[serde(default)]
    pub never_started: u64,
    /// The longest of their waits so far, s.
    #[serde(default)]
    pub longest_unstarted_wait_s: f64,
    pub avg_wait_s: f64,
    pub p50_wait_s: f64,
    pub p95_wait_s: f64,
    pub p99_wait_s: f64,
    pub avg_jct_s: f64,
    pub p50_jct_s: f64,
    pub p95_jct_s: f64,
    pub p99_jct_s: f64,
    pub gpu_hours: f64,
}

/// Everything a replay measured; `allot sim replay --json` prints it as one object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub jobs: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub rejected: u64,
    pub unfinished: u64,
    /// GPUs of the cluster.
    pub gpus: f64,
    pub avg_jct_s: f64,
    pub p50_jct_s: f64,
    pub p95_jct_s: f64,
    pub p99_jct_s: f64,
    pub avg_wait_s: f64,
    pub p50_wait_s: f64,
    pub p95_wait_s: f64,
    pub p99_wait_s: f64,
    pub utilization_pct: f64,
    pub gpu_hours: f64,
    pub makespan_s: f64,
    pub preemptions: u64,
    /// The most times one job was preempted (churn: a job stopped over and over).
    #[serde(default)]
    pub max_job_preemptions: u32,
    pub preemption_lost_gpu_hours: f64,
    pub failure_requeues: u64,
    pub failure_lost_gpu_hours: f64,
    pub jain_fairness: Option<f64>,
    pub quota_violation_gpu_hours: f64,
    pub borrowed_gpu_hours: f64,
    /// Arrivals, starts, completions, stops, exits, cancellations, node failures and
    /// repairs handled by the event loop.
    pub events: u64,
    pub events_per_s: f64,
    /// Wall-clock seconds of the event loop (reading the trace not included).
    pub wall_seconds: f64,
    /// Scheduling passes run.
    pub passes: u64,
    /// Instants at which the engine stopped running passes after 64 of them: the
    /// core kept changing its decisions without time passing (e.g. two jobs
    /// preempting each other). Should be 0.
    #[serde(default)]
    pub pass_limit_hits: u64,
    pub seed: u64,
    pub policy: String,
    pub per_tenant: BTreeMap<String, TenantSummary>,
    pub per_size_class: BTreeMap<String, ClassSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Time = MS_PER_S;

    fn tenant(path: &str, nominal: f64) -> TenantInfo {
        TenantInfo { path: path.into(), nominal: vec![(nominal * 1000.0) as u64], norm_share: 0.5 }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 5.0);
        assert_eq!(percentile(&v, 95.0), 10.0);
        assert_eq!(percentile(&v, 10.0), 1.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
    }

    #[test]
    fn jain_index_of_known_vectors() {
        assert_eq!(jain_index(&[1.0, 1.0, 1.0, 1.0]), Some(1.0));
        // One of n gets everything: 1/n.
        assert_eq!(jain_index(&[1.0, 0.0, 0.0, 0.0]), Some(0.25));
        // (1+2+3)^2 / (3 * (1+4+9)) = 36/42.
        assert!((jain_index(&[1.0, 2.0, 3.0]).unwrap() - 36.0 / 42.0).abs() < 1e-12);
        assert_eq!(jain_index(&[]), None);
        assert_eq!(jain_index(&[0.0, 0.0]), None);
    }

    #[test]
    fn size_classes() {
        assert_eq!(size_class(500), 0);
        assert_eq!(size_class(1000), 0);
        assert_eq!(size_class(2000), 1);
        assert_eq!(size_class(8000), 1);
        assert_eq!(size_class(9000), 2);
        assert_eq!(size_class(64_000), 2);
        assert_eq!(size_class(128_000), 3);
        assert_eq!(size_class(1_024_000), 4);
    }

    /// A 16-GPU job submitted at 10 s on a 1-GPU cluster whose GPU a running job
    /// holds: at the end (100 s) it has never started. Wait statistics cover
    /// completed jobs only (none here); the class says one job never started,
    /// after 90 s so far.
    #[test]
    fn a_job_that_never_starts_shows_in_its_size_class() {
        let mut r = Recorder::new(vec![tenant("a", 1.0)], 1, 1.0, 0);
        r.start(0);
        r.busy(0, 0, 1000, true);
        r.advance(10 * S);
        r.pending(0, 16_000, true);
        r.advance(100 * S);
        r.mark_end(100 * S);
        let jobs = [
            JobRecord { tenant: 0, milli: 1000, submit: 0, first_start: Some(0), end: None, outcome: Outcome::Unfinished, preemptions: 0 },
            JobRecord {
                tenant: 0,
                milli: 16_000,
                submit: 10 * S,
                first_start: None,
                end: None,
                outcome: Outcome::Unfinished,
                preemptions: 0,
            },
        ];
        let s = r.summary(&jobs, &RunInfo::default());
        assert_eq!(s.unfinished, 2);
        let big = &s.per_size_class["9-64"];
        assert_eq!((big.jobs, big.completed, big.never_started), (1, 0, 1));
        assert_eq!(big.longest_unstarted_wait_s, 90.0);
        let small = &s.per_size_class["1"];
        assert_eq!((small.never_started, small.longest_unstarted_wait_s), (0, 0.0));
    }

    /// Three one-GPU jobs on one 1-GPU node, all submitted at 0, running 10, 20 and
    /// 30 s back to back: JCTs 10, 30, 60; waits 0, 10, 30; the GPU is busy the
    /// whole 60 s.
    #[test]
    fn three_jobs_on_one_gpu() {
        let mut r = Recorder::new(vec![tenant("a", 1.0)], 1, 1.0, 10 * S);
        r.start(0);
        for _ in 0..3 {
            r.pending(0, 1000, true);
        }
        let mut jobs = vec![];
        let mut t = 0;
        for d in [10, 20, 30] {
            r.advance(t);
            r.pending(0, 1000, false);
            r.busy(0, 0, 1000, true);
            jobs.push(JobRecord {
                tenant: 0,
                milli: 1000,
                submit: 0,
                first_start: Some(t),
                end: Some(t + d * S),
                outcome: Outcome::Completed,
                preemptions: 0,
            });
            t += d * S;
            r.advance(t);
            r.busy(0, 0, 1000, false);
            r.mark_end(t);
        }
        let s = r.summary(&jobs, &RunInfo { events: 9, wall_seconds: 0.5, ..Default::default() });
        assert_eq!(s.jobs, 3);
        assert_eq!(s.completed, 3);
        assert!((s.avg_jct_s - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.p50_jct_s, 30.0);
        assert_eq!(s.p99_jct_s, 60.0);
        assert!((s.avg_wait_s - 40.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.p99_wait_s, 30.0);
        assert_eq!(s.makespan_s, 60.0);
        assert!((s.utilization_pct - 100.0).abs() < 1e-9);
        assert!((s.gpu_hours - 60.0 / 3600.0).abs() < 1e-12);
        assert_eq!(s.events_per_s, 18.0);
        let a = &s.per_tenant["a"];
        assert_eq!(a.jobs, 3);
        assert!((a.share_pct - 100.0).abs() < 1e-9);
        assert_eq!(a.nominal_utilization_pct, Some(100.0));
        assert_eq!(a.borrowed_gpu_hours, 0.0);
        // Below nominal with work waiting: never (the GPU was always busy).
        assert_eq!(a.quota_violation_gpu_hours, 0.0);
        assert_eq!(s.jain_fairness, Some(1.0));
        assert_eq!(s.per_size_class["1"].jobs, 3);
        // Samples at 0, 10, ..., 50 s: always one GPU busy; queue 2, 1, 1, 0, 0, 0.
        let q: Vec<u64> = r.samples().iter().map(|x| x.pending_jobs).collect();
        assert_eq!(q, vec![2, 1, 1, 0, 0, 0]);
        assert!(r.samples().iter().all(|x| x.busy_gpus == 1.0));
    }

    /// Two tenants with nominal 1 GPU each on a 2-GPU cluster. For 100 s `b` uses
    /// both GPUs (borrows one from idle `a`); then `a` submits a job that waits 30 s
    /// for it back: `a` is below nominal with entitled work waiting for 30 s.
    #[test]
    fn borrowing_lending_and_violations() {
        let mut r = Recorder::new(vec![tenant("a", 1.0), tenant("b", 1.0)], 1, 2.0, 0);
        r.start(0);
        r.busy(1, 0, 2000, true);
        r.advance(100 * S);
        r.pending(0, 1000, true);
        r.advance(130 * S);
        r.busy(1, 0, 2000, false);
        r.busy(1, 0, 1000, true);
        r.pending(0, 1000, false);
        r.busy(0, 0, 1000, true);
        r.advance(200 * S);
        r.mark_end(200 * S);
        let jobs = [
            JobRecord {
                tenant: 0,
                milli: 1000,
                submit: 100 * S,
                first_start: Some(130 * S),
                end: Some(200 * S),
                outcome: Outcome::Completed,
                preemptions: 0,
            },
            JobRecord { tenant: 1, milli: 2000, submit: 0, first_start: Some(0), end: None, outcome: Outcome::Unfinished, preemptions: 0 },
        ];
        let s = r.summary(&jobs, &RunInfo::default());
        let (a, b) = (&s.per_tenant["a"], &s.per_tenant["b"]);
        assert!((b.borrowed_gpu_hours - 130.0 / 3600.0).abs() < 1e-12);
        assert!((a.lent_gpu_hours - 130.0 / 3600.0).abs() < 1e-12);
        assert_eq!(b.lent_gpu_hours, 0.0);
        assert!((a.quota_violation_gpu_hours - 30.0 / 3600.0).abs() < 1e-12);
        assert_eq!(b.quota_violation_gpu_hours, 0.0);
        // a: 70 GPU-s, b: 330 GPU-s, both entitled to 1 GPU x 200 s.
        assert!((a.normalized_share - 0.35).abs() < 1e-12);
        assert!((b.normalized_share - 1.65).abs() < 1e-12);
        let x = [0.35, 1.65];
        assert!((s.jain_fairness.unwrap() - jain_index(&x).unwrap()).abs() < 1e-12);
        assert!((s.utilization_pct - 100.0).abs() < 1e-9);
        assert_eq!(s.unfinished, 1);
    }
}
