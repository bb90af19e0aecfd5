//! Synthetic workloads, seeded and calibrated, written in allot's JSONL format.
//!
//! Two profiles:
//!
//! - `philly`: jobs drawn from the empirical distributions of Pollux's Philly trace
//!   (`philly.csv`, 82,247 jobs): GPU count from its histogram, duration from its
//!   quantiles within the job's size class (1, 2-4, 5-8, >8 GPUs), tenant from the VCs'
//!   job shares (or, with a cluster, from its leaf tenants weighted by nominal quota).
//!   `Calibration::from_trace` builds the same tables from any trace.
//! - `national`: the national scenario's mix (`NATIONAL_KINDS`): pre-training gangs of
//!   1,024-8,192 GPUs lasting days, fine-tuning of 8-256 GPUs for hours, batch
//!   inference of 1-8 GPUs, notebooks on fractional GPUs; tenants and flavors come from
//!   the cluster (its leaf tenants, each job on the flavors its tenant has quota for).
//!
//! Arrivals are uniform over the period (a Poisson process given the job count). The
//! job count is `--jobs`, or else as many jobs as fill `load` x the cluster's GPUs over
//! the period. Everything draws from one `SeededRng` in a fixed order: the same options
//! and cluster give the same workload, byte for byte.

use std::fmt;
use std::str::FromStr;

use allot_core::config::Config;
use allot_core::rng::SeededRng;
use allot_core::{GpuRequest, JobId, JobSpec, MS_PER_S, TopologyConstraint};

use super::{gang_shape, philly};
use crate::error::TraceError;
use crate::workload::{Trace, TraceJob};

/// Points of each duration quantile table (0%, 1%, ..., 100%).
pub const QUANTILES: usize = 101;

/// An empirical distribution as its values at evenly spaced quantiles.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantiles(pub Vec<f64>);

impl Quantiles {
    /// Nearest-rank quantiles of `values` at `points` evenly spaced levels.
    pub fn from_samples(values: &mut [f64], points: usize) -> Quantiles {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        if n == 0 || points < 2 {
            return Quantiles(vec![]);
        }
        Quantiles((0..points).map(|i| values[(i * (n - 1) + (points - 1) / 2) / (points - 1)]).collect())
    }

    /// The value at level `u` in `[0, 1)`, interpolated geometrically between the
    /// neighbouring quantiles (durations span decades). `None` when empty.
    pub fn sample(&self, u: f64) -> Option<f64> {
        let q = &self.0;
        match q.len() {
            0 => None,
            1 => Some(q[0]),
            n => {
                let x = u.clamp(0.0, 1.0) * (n - 1) as f64;
                let k = (x.floor() as usize).min(n - 2);
                let (a, b, f) = (q[k], q[k + 1], x - k as f64);
                Some(if a > 0.0 && b > 0.0 { a * (b / a).powf(f) } else { a + (b - a) * f })
            }
        }
    }
}

/// Size class of a job of `gpus` GPUs for the duration tables.
pub fn size_class(gpus: f64) -> usize {
    if gpus <= 1.0 {
        0
    } else if gpus <= 4.0 {
        1
    } else if gpus <= 8.0 {
        2
    } else {
        3
    }
}

/// What the `philly` profile draws from.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// Job GPU count (whole job) and its number of jobs, ascending by GPU count.
    pub sizes: Vec<(u32, f64)>,
    /// Duration quantiles in seconds per `size_class`.
    pub durations: [Quantiles; 4],
    /// Tenant path and its number of jobs, in path order.
    pub tenants: Vec<(String, f64)>,
}

impl Calibration {
    /// The distributions of a trace (fractional requests count as one GPU).
    pub fn from_trace(trace: &Trace) -> Calibration {
        let mut sizes = std::collections::BTreeMap::<u32, f64>::new();
        let mut tenants = std::collections::BTreeMap::<String, f64>::new();
        let mut by_class: [Vec<f64>; 4] = Default::default();
        for j in &trace.jobs {
            let gpus = total_gpus(&j.spec).max(1.0);
            *sizes.entry(gpus.ceil() as u32).or_default() += 1.0;
            *tenants.entry(j.spec.tenant.clone()).or_default() += 1.0;
            by_class[size_class(gpus)].push(j.duration as f64 / 1000.0);
        }
        Calibration {
            sizes: sizes.into_iter().collect(),
            durations: by_class.map(|mut v| Quantiles::from_samples(&mut v, QUANTILES)),
            tenants: tenants.into_iter().collect(),
        }
    }

    /// Pollux's Philly trace, as `from_trace` gives it on `philly/pollux/philly.csv`
    /// (a test checks that it still does).
    pub fn philly() -> Calibration {
        Calibration {
            sizes: PHILLY_SIZES.to_vec(),
            durations: PHILLY_DURATIONS_S.map(|q| Quantiles(q.to_vec())),
            tenants: PHILLY_VCS.iter().map(|(vc, n)| (philly::vc_tenant(vc), *n)).collect(),
        }
    }
}

fn total_gpus(spec: &JobSpec) -> f64 {
    f64::from(spec.replicas)
        * match spec.gpu {
            GpuRequest::Whole(g) => f64::from(g),
            GpuRequest::Milli(m) => f64::from(m) / 1000.0,
        }
}

/// Which mix to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Philly,
    National,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Philly => "philly",
            Profile::National => "national",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "philly" => Ok(Profile::Philly),
            "national" => Ok(Profile::National),
            _ => Err(format!("unknown profile `{s}` (known: philly, national)")),
        }
    }
}

/// Options of a generation.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    pub profile: Profile,
    /// Number of jobs; `None`: as many as fill `load` over the period.
    pub jobs: Option<u64>,
    /// Length of the arrival period in days; `None`: with `jobs`, the period their
    /// GPU time fills at `load`; without, `DEFAULT_DAYS`.
    pub days: Option<f64>,
    /// Offered load: GPU time of the jobs / (cluster GPUs x period).
    pub load: f64,
    pub seed: u64,
}

/// Period when neither jobs nor days are given.
pub const DEFAULT_DAYS: f64 = 7.0;
/// Offered load when none is given.
pub const DEFAULT_LOAD: f64 = 0.85;
/// Most jobs one generation may hold, against runaway options.
pub const MAX_JOBS: u64 = 50_000_000;

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { profile: Profile::Philly, jobs: None, days: None, load: DEFAULT_LOAD, seed: 0 }
    }
}

/// One kind of work of the national mix.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JobKind {
    pub name: &'static str,
    /// Share of the offered GPU time.
    pub gpu_time_share: f64,
    /// Whole-job requests and their weights: GPUs, or milli-GPU when below 1,000 with `fraction`.
    pub sizes: &'static [(u32, f64)],
    /// Sizes are milli-GPU of one GPU.
    pub fraction: bool,
    /// Duration drawn log-uniformly between these, in seconds.
    pub min_s: f64,
    pub max_s: f64,
    pub checkpoint_interval_s: Option<u64>,
    pub preemptible: Option<bool>,
    /// Only tenants with at least this many GPUs of nominal quota submit it (all
    /// tenants when none has that much).
    pub min_tenant_gpus: f64,
    /// Class names tried in order against the cluster's priority classes (by
    /// substring); none matching leaves the class to the default.
    pub classes: &'static [&'static str],
    /// Topology preference: levels above the leaf (0 = the leaf level itself).
    pub topology_up: Option<usize>,
}

const H: f64 = 3600.0;
const DAY: f64 = 86_400.0;

/// The national mix. GPU-time shares, not job counts: pre-training dominates the GPU
/// hours while notebooks dominate the job count.
pub const NATIONAL_KINDS: [JobKind; 4] = [
    JobKind {
        name: "pretrain",
        gpu_time_share: 0.575,
        sizes: &[(1024, 4.0), (2048, 3.0), (4096, 2.0), (8192, 1.0)],
        fraction: false,
        min_s: DAY,
        max_s: 10.0 * DAY,
        checkpoint_interval_s: Some(3600),
        preemptible: Some(false),
        min_tenant_gpus: 1024.0,
        classes: &["pretrain", "training", "train", "batch"],
        topology_up: Some(1),
    },
    JobKind {
        name: "finetune",
        gpu_time_share: 0.30,
        sizes: &[(8, 8.0), (16, 6.0), (32, 4.0), (64, 3.0), (128, 2.0), (256, 1.0)],
        fraction: false,
        min_s: H,
        max_s: 24.0 * H,
        checkpoint_interval_s: Some(1800),
        preemptible: None,
        min_tenant_gpus: 0.0,
        classes: &["finetune", "fine-tune", "training", "train", "batch"],
        topology_up: Some(0),
    },
    JobKind {
        name: "inference",
        gpu_time_share: 0.12,
        sizes: &[(1, 1.0), (2, 1.0), (4, 2.0), (8, 4.0)],
        fraction: false,
        min_s: H,
        max_s: 24.0 * H,
        checkpoint_interval_s: None,
        preemptible: Some(true),
        min_tenant_gpus: 0.0,
        classes: &["inference", "batch"],
        topology_up: None,
    },
    JobKind {
        name: "notebook",
        gpu_time_share: 0.005,
        sizes: &[(250, 3.0), (500, 3.0), (1000, 4.0)],
        fraction: true,
        min_s: 2.0 * H,
        max_s: 12.0 * H,
        checkpoint_interval_s: None,
        preemptible: None,
        min_tenant_gpus: 0.0,
        classes: &["interactive", "notebook", "dev"],
        topology_up: None,
    },
];

/// A weighted choice by cumulative weights.
struct Weighted<T> {
    items: Vec<T>,
    cum: Vec<f64>,
}

impl<T: Clone> Weighted<T> {
    /// Items with non-positive or non-finite weights are dropped; all zero means all equal.
    fn new(items: impl IntoIterator<Item = (T, f64)>) -> Weighted<T> {
        let all: Vec<(T, f64)> = items.into_iter().collect();
        let any_positive = all.iter().any(|(_, w)| w.is_finite() && *w > 0.0);
        let mut out = Weighted { items: vec![], cum: vec![] };
        let mut total = 0.0;
        for (item, w) in all {
            let w = if any_positive { if w.is_finite() && w > 0.0 { w } else { continue } } else { 1.0 };
            total += w;
            out.items.push(item);
            out.cum.push(total);
        }
        out
    }

    fn pick(&self, rng: &mut SeededRng) -> Option<T> {
        let total = *self.cum.last()?;
        let x = rng.next_f64() * total;
        let i = self.cum.partition_point(|&c| c <= x).min(self.items.len() - 1);
        Some(self.items[i].clone())
    }

    fn mean(&self, f: impl Fn(&T) -> f64) -> f64 {
        let mut prev = 0.0;
        let total = self.cum.last().copied().unwrap_or(0.0);
        if total <= 0.0 {
            return 0.0;
        }
        self.items
            .iter()
            .zip(&self.cum)
            .map(|(it, &c)| {
                let w = c - prev;
                prev = c;
                f(it) * w
            })
            .sum::<f64>()
            / total
    }
}

/// What the generator needs of a cluster.
struct ClusterView {
    capacity_gpus: f64,
    /// Flavor name, its GPUs, and the smallest node GPU count it has.
    flavors: Vec<(String, f64, u32)>,
    /// Leaf tenant path, its nominal per flavor.
    tenants: Vec<(String, Vec<(String, f64)>)>,
    levels: Vec<String>,
    classes: Vec<String>,
}

impl ClusterView {
    fn of(config: &Config) -> ClusterView {
        let mut flavors: Vec<(String, f64, u32)> = config.flavors.iter().map(|f| (f.name.clone(), 0.0, u32::MAX)).collect();
        for n in &config.nodes {
            if let Some(f) = flavors.iter_mut().find(|f| f.0 == n.flavor) {
                f.1 += f64::from(n.gpus) * f64::from(n.count.unwrap_or(1));
                f.2 = f.2.min(n.gpus);
            }
        }
        flavors.retain(|f| f.1 > 0.0);
        let paths: Vec<String> = config.tenants.iter().map(|t| t.path.trim_matches('/').to_string()).collect();
        let tenants = config
            .tenants
            .iter()
            .zip(&paths)
            .filter(|(_, p)| !paths.iter().any(|o| o.starts_with(&format!("{p}/"))))
            .map(|(t, p)| (p.clone(), t.quota.iter().map(|q| (q.flavor.clone(), q.nominal)).collect()))
            .collect();
        ClusterView {
            capacity_gpus: flavors.iter().map(|f| f.1).sum(),
            flavors,
            tenants,
            levels: config.topology.levels.clone(),
            classes: config.priority_classes.iter().map(|c| c.name.clone()).collect(),
        }
    }

    fn class_for(&self, kind: &JobKind) -> Option<String> {
        kind.classes.iter().find_map(|want| self.classes.iter().find(|c| c.to_ascii_lowercase().contains(want)).cloned())
    }
}

fn invalid(msg: impl Into<String>) -> TraceError {
    TraceError::Generate(msg.into())
}

/// Generates a workload. `cluster` gives the capacity, tenants, flavors, topology
/// levels and classes; without one the `philly` profile uses the Philly cluster
/// (3,205 GPUs) and its VCs, and `national` the reference national cluster of
/// `allot_core::workload::reference_cluster(260_000)`.
pub fn generate(opts: &GenerateOptions, cluster: Option<&Config>) -> Result<Trace, TraceError> {
    match opts.profile {
        Profile::Philly => generate_philly(opts, &Calibration::philly(), cluster),
        Profile::National => {
            let reference;
            let config = match cluster {
                Some(c) => c,
                None => {
                    reference = allot_core::workload::reference_cluster(260_000);
                    &reference
                }
            };
            generate_national(opts, config)
        }
    }
}

fn check_options(opts: &GenerateOptions) -> Result<(), TraceError> {
    if !(opts.load.is_finite() && opts.load > 0.0 && opts.load <= 100.0) {
        return Err(invalid(format!("load {} is not in (0, 100]", opts.load)));
    }
    if let Some(d) = opts.days
        && !(d.is_finite() && d > 0.0 && d <= 3650.0)
    {
        return Err(invalid(format!("days {d} is not in (0, 3650]")));
    }
    if opts.jobs == Some(0) || opts.jobs.is_some_and(|n| n > MAX_JOBS) {
        return Err(invalid(format!("jobs must be in 1..={MAX_JOBS}")));
    }
    Ok(())
}

/// `jobs` jobs, or (without a count) jobs until their GPU time reaches `budget`
/// GPU-ms. The job that would cross the budget is kept only if it ends nearer to it
/// (less than half of it past), so that a few huge jobs (pre-training gangs on a small
/// cluster) miss the budget by at most half a job either way.
fn draw_until(jobs: Option<u64>, budget: f64, mut draw: impl FnMut() -> Result<TraceJob, TraceError>) -> Result<Vec<TraceJob>, TraceError> {
    let mut out = Vec::new();
    let mut filled = 0.0;
    loop {
        match jobs {
            Some(n) if out.len() as u64 >= n => break,
            None if filled >= budget => break,
            _ => {}
        }
        if out.len() as u64 >= MAX_JOBS {
            return Err(invalid(format!("more than {MAX_JOBS} jobs would be needed: lower the load or the period")));
        }
        let j = draw()?;
        let work = total_gpus(&j.spec) * j.duration as f64;
        if jobs.is_none() && filled + work / 2.0 > budget {
            break;
        }
        filled += work;
        out.push(j);
    }
    Ok(out)
}

/// Gives every job a uniform arrival in the period and numbers them in arrival order.
fn arrive(mut jobs: Vec<TraceJob>, span_ms: f64, rng: &mut SeededRng) -> Trace {
    for j in &mut jobs {
        j.submit = (rng.next_f64() * span_ms).floor() as i64;
    }
    // Stable: equal arrivals keep draw order.
    jobs.sort_by_key(|j| j.submit);
    for (i, j) in jobs.iter_mut().enumerate() {
        j.spec.id = JobId(i as u64);
    }
    Trace { jobs, skipped_rows: 0 }
}

/// The period (ms): given, else the one the jobs' GPU time fills at `load`.
fn span_ms(opts: &GenerateOptions, capacity: f64, jobs: &[TraceJob]) -> f64 {
    match opts.days {
        Some(d) => d * DAY * 1000.0,
        None => {
            let work: f64 = jobs.iter().map(|j| total_gpus(&j.spec) * j.duration as f64).sum();
            (work / (opts.load * capacity)).max(1000.0)
        }
    }
}

/// The `philly` profile from any calibration.
pub fn generate_philly(opts: &GenerateOptions, cal: &Calibration, cluster: Option<&Config>) -> Result<Trace, TraceError> {
    check_options(opts)?;
    let view = cluster.map(ClusterView::of);
    let capacity = match &view {
        Some(v) if v.capacity_gpus > 0.0 => v.capacity_gpus,
        Some(_) => return Err(invalid("the cluster has no GPUs")),
        None => PHILLY_GPUS,
    };
    let tenants: Weighted<String> = match &view {
        Some(v) if !v.tenants.is_empty() => Weighted::new(v.tenants.iter().map(|(p, q)| (p.clone(), q.iter().map(|x| x.1).sum()))),
        Some(_) => Weighted::new([("default".to_string(), 1.0)]),
        None => Weighted::new(cal.tenants.iter().cloned()),
    };
    let per_node = view.as_ref().and_then(|v| v.flavors.iter().map(|f| f.2).min()).unwrap_or(philly::GPUS_PER_NODE);
    let sizes = Weighted::new(cal.sizes.iter().copied().filter(|(g, _)| f64::from(*g) <= capacity));
    if sizes.items.is_empty() || cal.durations.iter().all(|q| q.0.is_empty()) {
        return Err(invalid("the calibration has no job sizes or durations that fit the cluster"));
    }
    let mut rng = SeededRng::new(opts.seed);
    let budget = match opts.days {
        Some(d) => opts.load * capacity * d * DAY * 1000.0,
        None => opts.load * capacity * DEFAULT_DAYS * DAY * 1000.0,
    };
    let jobs = draw_until(opts.jobs, budget, || {
        let gpus = sizes.pick(&mut rng).unwrap_or(1);
        let class = size_class(f64::from(gpus));
        // A class without data borrows the nearest one that has some.
        let q = (0..4).map(|d| &cal.durations[(class + d) % 4]).find(|q| !q.0.is_empty()).unwrap_or(&cal.durations[0]);
        let secs = q.sample(rng.next_f64()).unwrap_or(1.0);
        let tenant = tenants.pick(&mut rng).unwrap_or_else(|| "default".into());
        let (replicas, per) = gang_shape(gpus, per_node);
        let mut spec = JobSpec::new(0, &tenant, GpuRequest::Whole(per));
        spec.replicas = replicas;
        Ok(TraceJob { submit: 0, duration: ((secs * 1000.0).round() as i64).max(MS_PER_S), spec })
    })?;
    let span = match (opts.days, opts.jobs) {
        (None, None) => DEFAULT_DAYS * DAY * 1000.0,
        _ => span_ms(opts, capacity, &jobs),
    };
    Ok(arrive(jobs, span, &mut rng))
}

/// GPUs of the Philly cluster (revised machine list), the `philly` profile's default.
pub const PHILLY_GPUS: f64 = 3205.0;

/// The `national` profile on a cluster.
pub fn generate_national(opts: &GenerateOptions, config: &Config) -> Result<Trace, TraceError> {
    generate_mix(opts, config, &NATIONAL_KINDS)
}

/// A workload of the given kinds of work on a cluster (the `national` profile is
/// `NATIONAL_KINDS`); `opts.profile` is not looked at.
pub fn generate_mix(opts: &GenerateOptions, config: &Config, mix: &[JobKind]) -> Result<Trace, TraceError> {
    check_options(opts)?;
    let view = ClusterView::of(config);
    if view.capacity_gpus <= 0.0 {
        return Err(invalid("the cluster has no GPUs"));
    }
    let tenants: Vec<(String, Vec<(String, f64)>)> =
        if view.tenants.is_empty() { vec![("default".into(), vec![])] } else { view.tenants.clone() };
    let largest_flavor = view.flavors.iter().map(|f| f.1).fold(0.0, f64::max);
    let days = opts.days.unwrap_or(if opts.jobs.is_some() { f64::NAN } else { 30.0 });
    let mut rng = SeededRng::new(opts.seed);

    struct Prepared<'a> {
        kind: &'a JobKind,
        sizes: Weighted<u32>,
        tenants: Weighted<usize>,
        class: Option<String>,
        mean_gpu_s: f64,
    }
    let mut kinds = Vec::new();
    for kind in mix {
        let fits = |g: u32| if kind.fraction { g <= 1000 } else { f64::from(g) <= largest_flavor };
        let sizes = Weighted::new(kind.sizes.iter().copied().filter(|(g, _)| fits(*g)));
        if sizes.items.is_empty() {
            continue;
        }
        let nominal = |i: usize| tenants[i].1.iter().map(|q| q.1).sum::<f64>();
        let eligible: Vec<usize> = (0..tenants.len()).filter(|&i| nominal(i) >= kind.min_tenant_gpus).collect();
        let eligible = if eligible.is_empty() { (0..tenants.len()).collect() } else { eligible };
        let tw = Weighted::new(eligible.into_iter().map(|i| (i, nominal(i))));
        let gpus_of = |g: &u32| if kind.fraction { f64::from(*g) / 1000.0 } else { f64::from(*g) };
        let mean_s = (kind.max_s - kind.min_s) / (kind.max_s / kind.min_s).ln();
        let mean_gpu_s = sizes.mean(gpus_of) * mean_s;
        kinds.push(Prepared { kind, sizes, tenants: tw, class: view.class_for(kind), mean_gpu_s });
    }
    let share_total: f64 = kinds.iter().map(|k| k.kind.gpu_time_share).sum();
    if kinds.is_empty() || share_total <= 0.0 {
        return Err(invalid("no kind of national work fits the cluster"));
    }

    // Per kind: a GPU-time budget (from the period) or a job count (from --jobs, split
    // so that the kinds keep their GPU-time shares).
    let per_job_weight: Vec<f64> = kinds.iter().map(|k| k.kind.gpu_time_share / share_total / k.mean_gpu_s).collect();
    let weight_total: f64 = per_job_weight.iter().sum();
    let mut all = Vec::new();
    let mut assigned = 0u64;
    for (ki, k) in kinds.iter().enumerate() {
        let count = opts.jobs.map(|n| {
            if ki + 1 == kinds.len() {
                n - assigned
            } else {
                let c = ((n as f64) * per_job_weight[ki] / weight_total).round() as u64;
                let c = c.min(n - assigned);
                assigned += c;
                c
            }
        });
        let budget = opts.load * view.capacity_gpus * days * DAY * 1000.0 * k.kind.gpu_time_share / share_total;
        let jobs = draw_until(count, budget, || {
            let size = k.sizes.pick(&mut rng).unwrap_or(1);
            let ti = k.tenants.pick(&mut rng).unwrap_or(0);
            let (tenant, quota) = &tenants[ti];
            let total = if k.kind.fraction { 1.0 } else { f64::from(size) };
            // The flavors the tenant has quota for that could hold the job, most quota first.
            let mut flavors: Vec<(String, f64)> =
                quota.iter().filter(|q| q.1 > 0.0 && view.flavors.iter().any(|f| f.0 == q.0 && f.1 >= total)).cloned().collect();
            flavors.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let names: Vec<String> = flavors.into_iter().map(|f| f.0).collect();
            let per_node =
                view.flavors.iter().filter(|f| f.1 >= total && (names.is_empty() || names.contains(&f.0))).map(|f| f.2).min().unwrap_or(8);
            let (replicas, gpu) = if k.kind.fraction && size < 1000 {
                (1, GpuRequest::Milli(size as u16))
            } else if k.kind.fraction {
                (1, GpuRequest::Whole(1))
            } else {
                let (r, g) = gang_shape(size, per_node);
                (r, GpuRequest::Whole(g))
            };
            let secs = k.kind.min_s * (k.kind.max_s / k.kind.min_s).powf(rng.next_f64());
            let mut spec = JobSpec::new(0, tenant, gpu);
            spec.replicas = replicas;
            spec.flavors = names;
            spec.class = k.class.clone();
            spec.preemptible = k.kind.preemptible;
            spec.checkpoint_interval_s = k.kind.checkpoint_interval_s;
            // Users overestimate: 1.2-3x the run time, rounded up to a quarter hour.
            let estimate = secs * (1.2 + 1.8 * rng.next_f64());
            spec.walltime_s = Some(((estimate / 900.0).ceil() * 900.0) as u64);
            if let Some(up) = k.kind.topology_up
                && replicas > 1
                && view.levels.len() > up
            {
                let level = view.levels[view.levels.len() - 1 - up].clone();
                spec.topology = Some(TopologyConstraint { level, required: false });
            }
            Ok(TraceJob { submit: 0, duration: ((secs * 1000.0).round() as i64).max(MS_PER_S), spec })
        })?;
        all.extend(jobs);
    }
    let span = if days.is_nan() { span_ms(opts, view.capacity_gpus, &all) } else { days * DAY * 1000.0 };
    Ok(arrive(all, span, &mut rng))
}

// Calibration tables of Pollux's `philly.csv` (job counts by GPU count, by VC, and duration
// quantiles in seconds per size class), as `Calibration::from_trace` computes them.
pub(crate) const PHILLY_SIZES: [(u32, f64); 10] =
    [(1, 76627.0), (2, 1818.0), (4, 1870.0), (8, 1643.0), (12, 7.0), (16, 199.0), (24, 7.0), (32, 67.0), (64, 6.0), (128, 3.0)];
pub(crate) const PHILLY_VCS: [(&str, f64); 15] = [
    ("0e4a51", 1435.0),
    ("103959", 1934.0),
    ("11cb48", 16091.0),
    ("23dbec", 8.0),
    ("2869ce", 422.0),
    ("51b7ef", 4.0),
    ("6214e9", 41226.0),
    ("6c71a0", 9953.0),
    ("795a4c", 3.0),
    ("7f04ca", 723.0),
    ("925e2b", 3.0),
    ("b436b2", 7423.0),
    ("e13805", 374.0),
    ("ed69ec", 1137.0),
    ("ee9e8c", 1511.0),
];
pub(crate) const PHILLY_DURATIONS_S: [[f64; QUANTILES]; 4] = [
    [
        1.0, 30.0, 42.0, 46.0, 49.0, 52.0, 55.0, 57.0, 59.0, 61.0, 62.0, 64.0, 65.0, 66.0, 67.0, 69.0, 70.0, 71.0, 72.0, 74.0, 76.0, 79.0,
        83.0, 92.0, 105.0, 122.0, 141.0, 162.0, 179.0, 198.0, 215.0, 248.0, 284.0, 313.0, 339.0, 385.0, 458.0, 510.0, 544.0, 570.0, 600.0,
        643.0, 689.0, 740.0, 799.0, 855.0, 894.0, 935.0, 988.0, 1052.0, 1117.0, 1180.0, 1239.0, 1312.0, 1391.0, 1446.0, 1484.0, 1521.0,
        1567.0, 1629.0, 1728.0, 1819.0, 1881.0, 1945.0, 2002.0, 2054.0, 2115.0, 2203.0, 2325.0, 2407.0, 2464.0, 2517.0, 2563.0, 2606.0,
        2657.0, 2716.0, 2783.0, 2933.0, 3347.0, 3519.0, 3754.0, 3992.0, 4148.0, 4534.0, 5073.0, 5342.0, 5597.0, 5823.0, 6028.0, 6725.0,
        8512.0, 9297.0, 10714.0, 12340.0, 14534.0, 19137.0, 26416.0, 44229.0, 68245.0, 135404.0, 3256045.0,
    ],
    [
        2.0, 6.0, 8.0, 10.0, 10.0, 11.0, 12.0, 13.0, 13.0, 14.0, 15.0, 15.0, 16.0, 16.0, 16.0, 17.0, 17.0, 18.0, 18.0, 18.0, 19.0, 19.0,
        20.0, 20.0, 21.0, 21.0, 22.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 29.0, 31.0, 33.0, 36.0, 42.0, 53.0, 70.0, 85.0, 98.0, 105.0,
        116.0, 131.0, 149.0, 158.0, 176.0, 194.0, 264.0, 367.0, 494.0, 640.0, 741.0, 921.0, 1208.0, 1696.0, 2544.0, 4009.0, 4609.0, 5581.0,
        6765.0, 8729.0, 11771.0, 12912.0, 14327.0, 15718.0, 17677.0, 19886.0, 22585.0, 25432.0, 28212.0, 31470.0, 35113.0, 38702.0,
        45359.0, 51646.0, 58751.0, 64893.0, 71883.0, 79264.0, 82628.0, 87469.0, 90016.0, 94207.0, 99995.0, 108145.0, 119448.0, 131895.0,
        149337.0, 166086.0, 177721.0, 182703.0, 188758.0, 205102.0, 233725.0, 271466.0, 347975.0, 467342.0, 747114.0, 2750674.0,
    ],
    [
        1.0, 33.0, 68.0, 75.0, 82.0, 125.0, 149.0, 163.0, 181.0, 196.0, 216.0, 247.0, 307.0, 329.0, 416.0, 463.0, 510.0, 534.0, 581.0,
        663.0, 783.0, 904.0, 1007.0, 1171.0, 1346.0, 1881.0, 2113.0, 2477.0, 3214.0, 3546.0, 4059.0, 4365.0, 4760.0, 5604.0, 6249.0,
        7268.0, 7753.0, 9406.0, 10845.0, 11570.0, 12390.0, 12720.0, 13519.0, 14223.0, 15025.0, 16653.0, 18937.0, 20587.0, 21976.0, 22785.0,
        23683.0, 25664.0, 28449.0, 31599.0, 34765.0, 36588.0, 46514.0, 50435.0, 54928.0, 58728.0, 64753.0, 71089.0, 81463.0, 92620.0,
        99041.0, 105906.0, 112530.0, 118338.0, 126828.0, 133642.0, 140659.0, 147180.0, 155776.0, 164951.0, 169140.0, 173288.0, 177292.0,
        182513.0, 189460.0, 197592.0, 203140.0, 206942.0, 217000.0, 225692.0, 231337.0, 242280.0, 252120.0, 266591.0, 287037.0, 323569.0,
        352409.0, 369790.0, 386997.0, 423965.0, 482781.0, 525631.0, 591972.0, 670069.0, 792895.0, 1066894.0, 4628226.0,
    ],
    [
        1.0, 4.0, 4.0, 21.0, 34.0, 35.0, 41.0, 42.0, 50.0, 55.0, 73.0, 87.0, 118.0, 124.0, 191.0, 210.0, 272.0, 288.0, 296.0, 326.0, 345.0,
        362.0, 387.0, 422.0, 465.0, 566.0, 614.0, 682.0, 812.0, 829.0, 880.0, 930.0, 1182.0, 1257.0, 1302.0, 1571.0, 2107.0, 2464.0,
        2510.0, 2753.0, 3165.0, 4196.0, 4619.0, 6352.0, 7878.0, 8846.0, 10607.0, 12928.0, 14262.0, 16262.0, 21137.0, 28456.0, 31183.0,
        39481.0, 42987.0, 45047.0, 46944.0, 47708.0, 50430.0, 52774.0, 53862.0, 54928.0, 55625.0, 56414.0, 57659.0, 58735.0, 62366.0,
        64338.0, 67748.0, 71469.0, 73728.0, 78055.0, 87565.0, 94427.0, 98970.0, 104218.0, 115792.0, 122504.0, 137911.0, 149221.0, 158329.0,
        161326.0, 162030.0, 167762.0, 177257.0, 181596.0, 190224.0, 198333.0, 213302.0, 234522.0, 246825.0, 265227.0, 308335.0, 340881.0,
        353444.0, 446126.0, 471182.0, 511238.0, 610860.0, 891298.0, 1710643.0,
    ],
];
