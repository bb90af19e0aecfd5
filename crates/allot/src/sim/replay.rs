//! `allot sim replay`: time-based replay of a trace on a cluster (see
//! `allot_sim::engine` and `allot_sim::replay`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use allot_core::{MS_PER_S, OrderPolicy};
use allot_sim::engine::{EngineOptions, NodeFailure, Progress, RandomFailures, RunResult, WalltimeModel};
use allot_sim::replay::{self, ClusterSource, Quotas};
use allot_sim::trace::{Mapping, ReadOptions, TraceFormat};
use anyhow::{Context, bail};

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Cluster config (allot TOML).
    #[arg(long, required_unless_present = "nodes", conflicts_with = "nodes")]
    cluster: Option<PathBuf>,
    /// Cluster from a machine list CSV: the openb node list, the Philly machine list
    /// or the PAI machine spec.
    #[arg(long)]
    nodes: Option<PathBuf>,
    /// The trace to replay.
    #[arg(long)]
    trace: PathBuf,
    /// Trace format: openb, philly-pollux, philly-rfold, gavel, generic, allot.
    #[arg(long)]
    format: TraceFormat,
    /// Column mapping of a generic trace: `key=column,...` pairs or a TOML file;
    /// repeatable, later keys win (keys: docs/traces.md).
    #[arg(long = "map")]
    map: Vec<String>,
    /// Skip malformed trace rows (counted) instead of failing.
    #[arg(long)]
    skip_bad_rows: bool,
    /// Job order: fifo, sjf, las or default (multifactor priority); default: the
    /// cluster config's.
    #[arg(long)]
    policy: Option<String>,
    /// Seed of walltime noise, random failures and the core's tie-breaks.
    #[arg(long)]
    seed: Option<u64>,
    /// Quotas of trace tenants when the cluster defines no tenants: share (nominal
    /// in proportion to their GPU time in the trace), equal, or none.
    #[arg(long, default_value = "share")]
    quotas: Quotas,
    /// After a change, run a pass no sooner than this many milliseconds after the
    /// last one (as the server's `scheduler.min_pass_interval_ms`); 0: after every
    /// batch of same-time events.
    #[arg(long, default_value_t = 20)]
    pass_interval_ms: u64,
    /// Sampling interval of the time series, seconds.
    #[arg(long, default_value_t = 300)]
    sample_interval: u64,
    /// Added to a preempted (or failed) job's remaining run time, seconds.
    #[arg(long, default_value_t = 60)]
    restart_overhead: u64,
    /// Checkpoint interval of jobs that declare none, seconds (default: none, such
    /// jobs lose all their work when stopped).
    #[arg(long)]
    checkpoint_interval: Option<u64>,
    /// Walltime estimate of jobs without one: duration x this factor ...
    #[arg(long, default_value_t = 1.0)]
    walltime_factor: f64,
    /// ... x exp(noise x u), u uniform in [-1, 1] (seeded).
    #[arg(long, default_value_t = 0.0)]
    walltime_noise: f64,
    /// Apply the walltime model to jobs that declare an estimate too.
    #[arg(long)]
    replace_walltimes: bool,
    /// Random node failures: mean hours between failures of one node.
    #[arg(long)]
    node_mtbf_hours: Option<f64>,
    /// Hours to repair a failed node (random failures and --fail without a repair time).
    #[arg(long, default_value_t = 4.0)]
    repair_hours: f64,
    /// Fail a node: `NODE@SECONDS` (trace time), repaired after --repair-hours;
    /// repeatable.
    #[arg(long = "fail")]
    fail: Vec<String>,
    /// Stop the simulation this many days after the first arrival.
    #[arg(long)]
    horizon_days: Option<f64>,
    /// Check the core's invariants after every event (slow; the default in debug builds).
    #[arg(long, conflicts_with = "no_check_invariants")]
    check_invariants: bool,
    /// Do not check invariants, even in a debug build.
    #[arg(long)]
    no_check_invariants: bool,
    /// Print one JSON object (the last line of standard output).
    #[arg(long)]
    json: bool,
    /// Write CSV time series and plots (SVG, PNG) into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar, no notes on standard error.
    #[arg(long)]
    quiet: bool,
}

fn parse_policy(s: &str) -> anyhow::Result<OrderPolicy> {
    Ok(match s {
        "fifo" => OrderPolicy::Fifo,
        "sjf" => OrderPolicy::Sjf,
        "las" => OrderPolicy::Las,
        "default" => OrderPolicy::Default,
        _ => bail!("unknown policy `{s}` (known: fifo, sjf, las, default)"),
    })
}

fn parse_failure(s: &str, repair_ms: i64) -> anyhow::Result<NodeFailure> {
    let (node, at) = s.rsplit_once('@').with_context(|| format!("--fail `{s}`: expected NODE@SECONDS"))?;
    let at: f64 = at
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0 && *v < 1e13)
        .with_context(|| format!("--fail `{s}`: `{at}` is not a time in seconds"))?;
    if node.is_empty() {
        bail!("--fail `{s}`: no node name");
    }
    Ok(NodeFailure { node: node.to_string(), at: (at * MS_PER_S as f64) as i64, repair_after: Some(repair_ms) })
}

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let order = args.policy.as_deref().map(parse_policy).transpose()?;
    let hours = |h: f64, what: &str| -> anyhow::Result<f64> {
        if (0.0..1e6).contains(&h) { Ok(h) } else { bail!("{what} {h} is not a number of hours in [0, 1e6)") }
    };
    let repair_hours = hours(args.repair_hours, "--repair-hours")?;
    let repair_ms = (repair_hours * 3.6e6) as i64;
    let random_failures = match args.node_mtbf_hours {
        Some(m) if hours(m, "--node-mtbf-hours")? > 0.0 => Some(RandomFailures { node_mtbf_hours: m, repair_hours }),
        Some(_) => bail!("--node-mtbf-hours must be positive"),
        None => None,
    };
    let failures = args.fail.iter().map(|f| parse_failure(f, repair_ms)).collect::<anyhow::Result<Vec<_>>>()?;
    for (v, what) in [(args.walltime_factor, "--walltime-factor"), (args.walltime_noise, "--walltime-noise")] {
        if !(v.is_finite() && (0.0..=1e6).contains(&v)) {
            bail!("{what} {v} is not a number in [0, 1e6]");
        }
    }
    if args.walltime_factor == 0.0 {
        bail!("--walltime-factor must be positive");
    }
    let horizon = match args.horizon_days {
        Some(d) if d.is_finite() && d > 0.0 && d <= 36_500.0 => Some(d),
        Some(d) => bail!("--horizon-days {d} is not in (0, 36500]"),
        None => None,
    };

    let source = match (&args.cluster, &args.nodes) {
        (Some(p), _) => ClusterSource::Toml(p.clone()),
        (None, Some(p)) => ClusterSource::Csv(p.clone()),
        (None, None) => bail!("give --cluster or --nodes"),
    };
    let mapping = if args.map.is_empty() {
        None
    } else {
        let mut m = Mapping::default();
        for a in &args.map {
            m.apply_arg(a)?;
        }
        Some(m)
    };
    let note = |msg: String| {
        if !args.quiet {
            eprintln!("{msg}");
        }
    };
    let mut config = replay::load_cluster(&source)?;
    let read = ReadOptions { skip_bad_rows: args.skip_bad_rows };
    let trace = replay::load_trace(&args.trace, args.format, mapping.as_ref(), read)?;
    if trace.skipped_rows > 0 {
        note(format!("skipped {} bad rows of {}", trace.skipped_rows, args.trace.display()));
    }
    let configured = !config.tenants.is_empty();
    let added = replay::add_tenants(&mut config, &trace, args.quotas);
    if !added.is_empty() {
        let how = if configured { "without quota" } else { "with quotas by the `--quotas` rule" };
        note(format!("added {} trace tenants to the cluster {how}", added.len()));
    }
    replay::set_policy(&mut config, order, args.seed);
    let first = trace.jobs.iter().map(|j| j.submit).min().unwrap_or(0);
    let opts = EngineOptions {
        seed: args.seed.unwrap_or(0),
        sample_interval_s: args.sample_interval,
        restart_overhead_s: args.restart_overhead,
        checkpoint_interval_s: args.checkpoint_interval,
        walltime: WalltimeModel { factor: args.walltime_factor, noise: args.walltime_noise, replace_declared: args.replace_walltimes },
        check_invariants: args.check_invariants || (!args.no_check_invariants && cfg!(debug_assertions)),
        failures,
        random_failures,
        cancellations: vec![],
        horizon: horizon.map(|d| first + (d * 8.64e7) as i64),
        min_pass_interval_ms: args.pass_interval_ms,
    };
    let jobs = trace.jobs.len() as u64;
    let show = !args.quiet && std::io::stderr().is_terminal();
    let bar = if show { indicatif::ProgressBar::new(jobs) } else { indicatif::ProgressBar::hidden() };
    if show {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} jobs done, ETA {eta} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    let mut progress = |p: &Progress| {
        bar.set_position(p.done);
        bar.set_message(format!("(day {:.1}, {} events)", (p.now - first) as f64 / 8.64e7, p.events));
    };
    let result = replay::run(&config, trace, opts, &mut progress)?;
    bar.finish_and_clear();
    if !result.rejections.is_empty() {
        note(format!("{} jobs rejected by the core, e.g.:", result.summary.rejected));
        for r in result.rejections.iter().take(5) {
            note(format!("  {r}"));
        }
    }
    if result.summary.pass_limit_hits > 0 {
        note(format!(
            "warning: at {} instants the core kept changing its decisions without time passing; passes there were cut at 64",
            result.summary.pass_limit_hits
        ));
    }
    if let Some(dir) = &args.out {
        let (files, text) = replay::write_outputs(dir, &result)?;
        note(format!("wrote {} files to {}", files.len(), dir.display()));
        if !text {
            note(replay::font_note());
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&result.summary)?);
    } else {
        print_table(&result);
    }
    Ok(())
}

fn h(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 2.0 * 86_400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

fn print_table(r: &RunResult) {
    let s = &r.summary;
    println!(
        "jobs {}  completed {}  cancelled {}  rejected {}  unfinished {}  on {} GPUs  ({} policy)",
        s.jobs, s.completed, s.cancelled, s.rejected, s.unfinished, s.gpus, s.policy
    );
    println!(
        "utilisation {:.1}%  makespan {}  GPU-hours {:.0}  preemptions {} ({:.0} GPU-h lost)  node-failure requeues {}",
        s.utilization_pct,
        h(s.makespan_s),
        s.gpu_hours,
        s.preemptions,
        s.preemption_lost_gpu_hours,
        s.failure_requeues
    );
    println!(
        "Jain fairness {}  quota guarantee violations {:.1} GPU-h  borrowed {:.0} GPU-h",
        s.jain_fairness.map_or("-".to_string(), |j| format!("{j:.3}")),
        s.quota_violation_gpu_hours,
        s.borrowed_gpu_hours
    );
    println!("{} events in {:.3} s ({:.0} events/s), {} passes", s.events, s.wall_seconds, s.events_per_s, s.passes);
    println!();
    let nw = s.per_tenant.keys().map(|n| n.chars().count()).max().unwrap_or(11).clamp(11, 60);
    println!(
        "{:<nw$} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7} {:>11} {:>11}",
        "", "jobs", "wait avg", "wait p50", "wait p99", "JCT avg", "JCT p99", "share", "borrowed", "lent"
    );
    let row = |name: &str, jobs: u64, w: (f64, f64, f64), j: (f64, f64), share: String, b: String, l: String| {
        println!(
            "{:<nw$} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7} {:>11} {:>11}",
            name,
            jobs,
            h(w.0),
            h(w.1),
            h(w.2),
            h(j.0),
            h(j.1),
            share,
            b,
            l
        );
    };
    row("all", s.jobs, (s.avg_wait_s, s.p50_wait_s, s.p99_wait_s), (s.avg_jct_s, s.p99_jct_s), "100%".into(), "".into(), "".into());
    for (name, t) in &s.per_tenant {
        let short: String = name.chars().take(nw).collect();
        row(
            &short,
            t.jobs,
            (t.avg_wait_s, t.p50_wait_s, t.p99_wait_s),
            (t.avg_jct_s, t.p99_jct_s),
            format!("{:.1}%", t.share_pct),
            format!("{:.0} h", t.borrowed_gpu_hours),
            format!("{:.0} h", t.lent_gpu_hours),
        );
    }
    println!();
    println!(
        "{:<nw$} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>14}",
        "size (GPUs)", "jobs", "wait avg", "wait p50", "wait p99", "JCT avg", "JCT p99", "never started"
    );
    for name in allot_sim::metrics::SIZE_CLASSES {
        if let Some(c) = s.per_size_class.get(name)
            && c.jobs > 0
        {
            // Waits are of started jobs; those still waiting at the end are counted
            // apart, with the longest wait so far.
            let never =
                if c.never_started > 0 { format!("{} ({} max)", c.never_started, h(c.longest_unstarted_wait_s)) } else { "0".into() };
            println!(
                "{:<nw$} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>14}",
                name,
                c.jobs,
                h(c.avg_wait_s),
                h(c.p50_wait_s),
                h(c.p99_wait_s),
                h(c.avg_jct_s),
                h(c.p99_jct_s),
                never
            );
        }
    }
}
