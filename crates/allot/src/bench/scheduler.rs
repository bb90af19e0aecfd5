//! `allot bench scheduler`: the reference national cluster (260,000 GPUs by default),
//! 100,000 pending jobs of the national mix; fill the empty cluster from the queue,
//! then time steady passes (one completion and one submission each) on the full
//! cluster. Prints one JSON object with `--json`.

use std::time::Instant;

use allot_core::rng::SeededRng;
use allot_core::workload::{national_job, reference_cluster, reference_teams};
use allot_core::{Core, Event, JobId, JobState, MS_PER_S};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// GPUs in the reference cluster (8 per node).
    #[arg(long, default_value_t = 260_000)]
    gpus: u64,
    /// Pending jobs before the fill.
    #[arg(long, default_value_t = 100_000)]
    pending: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Steady-state passes to time.
    #[arg(long, default_value_t = 1_000)]
    passes: usize,
    /// Most passes to let reclaim settle after the fill, before timing.
    #[arg(long, default_value_t = 500)]
    settle_passes: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Write one CSV line per steady pass (ms, starts, stops, searches, ordered,
    /// rounds) to this file, to see what the slow passes do.
    #[arg(long, hide = true)]
    pass_trace: Option<std::path::PathBuf>,
}

#[derive(Serialize, Debug)]
struct Report {
    gpus: u64,
    nodes: usize,
    pending: u64,
    seed: u64,
    fill_passes: usize,
    fill_runs: usize,
    fill_jobs_started: usize,
    fill_gpus_allocated: f64,
    fill_alloc_pct: f64,
    fill_seconds: f64,
    fill_jobs_per_s: f64,
    settle_passes: usize,
    settle_preemptions: usize,
    settle_seconds: f64,
    steady_passes: usize,
    steady_pending_min: usize,
    steady_pass_p50_ms: f64,
    steady_pass_p99_ms: f64,
    steady_pass_max_ms: f64,
    steady_starts: usize,
    steady_preemptions: usize,
    steady_preemption_searches_per_pass: f64,
    steady_considered_per_pass: f64,
    steady_ordered_per_pass: f64,
    steady_decided_by_shape_per_pass: f64,
    /// GPUs allocated after each steady pass, as a share of all, averaged.
    steady_alloc_pct_mean: f64,
    peak_rss_mib: f64,
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// How many times the fill pass is timed (the median is reported).
const FILL_RUNS: usize = 5;

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = reference_cluster(args.gpus);
    let mut core = Core::new(&config).map_err(|e| anyhow::anyhow!("reference cluster: {e}"))?;
    let teams = reference_teams();
    let mut rng = SeededRng::new(args.seed);
    let total_gpus = core.cluster().total_gpus();
    // Submissions spread over the hour before the fill.
    let mut next_id = 1u64;
    for i in 0..args.pending {
        let now = (i as i64 * 3600 * MS_PER_S) / args.pending.max(1) as i64;
        let spec = national_job(&mut rng, next_id, &teams);
        next_id += 1;
        core.on_event(now, Event::JobSubmitted(spec))?;
    }
    let mut now = 3600 * MS_PER_S;

    // Fill: one pass over the empty cluster. It is a single call of ~70 ms on a
    // shared machine, so it is timed `FILL_RUNS` times, on copies of the core first
    // (each makes the same decisions), and the median is reported; the last run's
    // core goes on.
    let mut fill_times = Vec::with_capacity(FILL_RUNS);
    for _ in 1..FILL_RUNS {
        let mut copy = core.clone();
        let t = Instant::now();
        let plan = copy.schedule(now);
        fill_times.push((t.elapsed().as_secs_f64(), plan.starts.iter().filter(|s| s.after.is_empty()).count()));
    }
    let t = Instant::now();
    let plan = core.schedule(now);
    let elapsed = t.elapsed().as_secs_f64();
    let fill_passes = 1;
    // Starts that preempt belong to reclaim (the settle phase), not to the fill.
    let fill_started = plan.starts.iter().filter(|s| s.after.is_empty()).count();
    if let Some(&(_, other)) = fill_times.iter().find(|&&(_, started)| started != fill_started) {
        anyhow::bail!("the fill started {fill_started} jobs on the core and {other} on a copy of it: the core is not deterministic");
    }
    fill_times.push((elapsed, fill_started));
    fill_times.sort_by(|a, b| a.0.total_cmp(&b.0));
    let fill_seconds = fill_times[fill_times.len() / 2].0;
    let fill_stopped: Vec<JobId> = plan.stops.iter().map(|s| s.job).collect();
    // Settle: the fill ignores who lent what; reclaim brings tenants back to their
    // nominal. Stopped jobs report at once here; counted, not timed as steady state.
    let mut settle_passes = 0usize;
    let mut settle_preemptions = 0usize;
    let mut settle_seconds = 0.0;
    let mut to_finish: Vec<JobId> = fill_stopped;
    for _ in 0..args.settle_passes {
        now += MS_PER_S;
        for id in to_finish.drain(..) {
            let _ = core.on_event(now, Event::JobFinished(id));
        }
        let t = Instant::now();
        let plan = core.schedule(now);
        settle_seconds += t.elapsed().as_secs_f64();
        settle_passes += 1;
        settle_preemptions += plan.stops.len();
        to_finish.extend(plan.stops.iter().map(|s| s.job));
        if plan.stops.is_empty() && plan.starts.is_empty() {
            break;
        }
    }
    for id in to_finish.drain(..) {
        let _ = core.on_event(now, Event::JobFinished(id));
    }
    let allocated: f64 =
        (0..core.cluster().flavors.len()).map(|f| core.allocated_milli(allot_core::FlavorIdx::from(f)) as f64 / 1000.0).sum();

    // Steady state: each pass follows one completion and one submission.
    let mut times = Vec::with_capacity(args.passes);
    let mut steady_starts = 0;
    let mut preemptions = 0;
    let mut considered = 0usize;
    let mut searches = 0usize;
    let mut ordered = 0usize;
    let mut decided = 0usize;
    let mut pending_min = usize::MAX;
    let mut alloc_sum = 0.0;
    let mut stopping: Vec<(i64, JobId)> = Vec::new();
    let mut trace = String::from("ms,starts,stops,searches,ordered,rounds\n");
    for _ in 0..args.passes {
        now += MS_PER_S;
        // Preempted jobs whose grace has passed report back (as agents would).
        stopping.retain(|&(at, id)| {
            if at <= now {
                let _ = core.on_event(now, Event::JobFinished(id));
                false
            } else {
                true
            }
        });
        // The running job expected to end first completes.
        if let Some(id) = first_running(&core) {
            core.on_event(now, Event::JobFinished(id))?;
        }
        let spec = national_job(&mut rng, next_id, &teams);
        next_id += 1;
        core.on_event(now, Event::JobSubmitted(spec))?;
        pending_min = pending_min.min(core.pending_count());
        let t = Instant::now();
        let plan = core.schedule(now);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if args.pass_trace.is_some() {
            use std::fmt::Write as _;
            let ms = times.last().copied().unwrap_or(0.0);
            let _ = writeln!(
                trace,
                "{ms:.3},{},{},{},{},{}",
                plan.starts.len(),
                plan.stops.len(),
                plan.preemption_searches,
                plan.ordered,
                plan.rounds
            );
        }
        steady_starts += plan.starts.len();
        alloc_sum +=
            (0..core.cluster().flavors.len()).map(|f| core.allocated_milli(allot_core::FlavorIdx::from(f)) as f64 / 1000.0).sum::<f64>();
        considered += plan.considered;
        searches += plan.preemption_searches;
        ordered += plan.ordered;
        decided += plan.decided_by_shape;
        for s in &plan.stops {
            preemptions += 1;
            stopping.push((now + s.grace_s as i64 * MS_PER_S, s.job));
        }
    }
    if let Some(path) = &args.pass_trace {
        std::fs::write(path, trace).map_err(|e| anyhow::anyhow!("--pass-trace {}: {e}", path.display()))?;
    }
    times.sort_by(f64::total_cmp);
    let report = Report {
        gpus: total_gpus,
        nodes: core.cluster().nodes.len(),
        pending: args.pending,
        seed: args.seed,
        fill_passes,
        fill_runs: FILL_RUNS,
        fill_jobs_started: fill_started,
        fill_gpus_allocated: allocated,
        fill_alloc_pct: 100.0 * allocated / total_gpus as f64,
        fill_seconds,
        fill_jobs_per_s: fill_started as f64 / fill_seconds.max(1e-9),
        settle_passes,
        settle_preemptions,
        settle_seconds,
        steady_passes: times.len(),
        steady_pending_min: if pending_min == usize::MAX { 0 } else { pending_min },
        steady_pass_p50_ms: percentile(&times, 0.50),
        steady_pass_p99_ms: percentile(&times, 0.99),
        steady_pass_max_ms: times.last().copied().unwrap_or(0.0),
        steady_starts,
        steady_preemptions: preemptions,
        steady_preemption_searches_per_pass: searches as f64 / times.len().max(1) as f64,
        steady_considered_per_pass: considered as f64 / times.len().max(1) as f64,
        steady_ordered_per_pass: ordered as f64 / times.len().max(1) as f64,
        steady_decided_by_shape_per_pass: decided as f64 / times.len().max(1) as f64,
        steady_alloc_pct_mean: 100.0 * alloc_sum / times.len().max(1) as f64 / total_gpus as f64,
        peak_rss_mib: peak_rss_mib(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// The running job with the earliest expected end.
fn first_running(core: &Core) -> Option<JobId> {
    core.next_expected_end().filter(|&id| core.job(id).is_some_and(|j| j.state == JobState::Running))
}
