//! `allot sim generate`: writes a synthetic workload in allot's JSONL format.

use std::io::Write;
use std::path::PathBuf;

use allot_sim::trace::{allot, synth};
use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Mix of work: `philly` (calibrated on Pollux's Philly trace) or `national`
    /// (pre-training gangs, fine-tuning, batch inference, notebooks).
    #[arg(long, default_value = "philly")]
    profile: synth::Profile,
    /// Number of jobs (default: as many as fill --load over the period).
    #[arg(long)]
    jobs: Option<u64>,
    /// Length of the arrival period in days (default: 7 for philly, 30 for national;
    /// with --jobs alone, the period those jobs fill at --load).
    #[arg(long)]
    days: Option<f64>,
    /// Offered load: the jobs' GPU time over the cluster's GPU time in the period.
    #[arg(long, default_value_t = synth::DEFAULT_LOAD)]
    load: f64,
    /// Seed: the same seed and options give the same file, byte for byte.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Cluster config (TOML) whose GPUs, tenants, flavors, topology levels and classes
    /// the jobs use (default: the Philly cluster for philly, the reference national
    /// cluster for national).
    #[arg(long)]
    cluster: Option<PathBuf>,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let cluster = match &args.cluster {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(allot_core::Config::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let opts = synth::GenerateOptions { profile: args.profile, jobs: args.jobs, days: args.days, load: args.load, seed: args.seed };
    let trace = synth::generate(&opts, cluster.as_ref())?;
    match &args.out {
        Some(path) => allot::write(path, &trace)?,
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            allot::write_to(&mut w, &trace.jobs).context("cannot write to standard output")?;
            w.flush()?;
        }
    }
    let gpu_hours: f64 = trace
        .jobs
        .iter()
        .map(|j| {
            let g = match j.spec.gpu {
                allot_core::GpuRequest::Whole(g) => f64::from(g),
                allot_core::GpuRequest::Milli(m) => f64::from(m) / 1000.0,
            };
            g * f64::from(j.spec.replicas) * j.duration as f64 / 3.6e6
        })
        .sum();
    let last = trace.jobs.last().map(|j| j.submit).unwrap_or(0);
    eprintln!(
        "{} jobs ({} profile, seed {}), {:.0} GPU-hours, arrivals over {:.2} days{}",
        trace.jobs.len(),
        args.profile,
        args.seed,
        gpu_hours,
        last as f64 / 8.64e7,
        args.out.as_ref().map(|p| format!(", written to {}", p.display())).unwrap_or_default()
    );
    Ok(())
}
