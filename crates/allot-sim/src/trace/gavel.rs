//! Gavel's MSR (Philly) trace, as the column projection `msr_seed0.tsv`:
//! tab-separated `vc,job_type,total_steps,arrival_time_s,scale_factor`.
//!
//! - `vc` is the Philly virtual cluster: tenant `philly/<vc>`, as in the Pollux reader,
//!   so that `philly::vc_tenants` serves both;
//! - `arrival_time_s` is seconds from the trace's start (each VC's file starts at 0);
//! - `scale_factor` is the GPU count (a gang of nodes' worth above 8, see `gang_shape`).
//!
//! **Durations are an approximation.** The file has no duration: Gavel gives a job
//! `total_steps` and runs it at a measured per-model throughput. Gavel's generator sets
//! `total_steps = duration x throughput(job_type)`, and the MSR traces' `job_type` is
//! assigned synthetically, independently of the Philly job (README: seeds differ only in
//! `job_type` and `total_steps`). So each job type's median of `total_steps /
//! throughput` should be the same Philly median duration. `STEPS_PER_S` holds, per
//! job type, its median `total_steps` in seed 0 divided by the median job duration of
//! the Pollux Philly trace (1,144 s): with it every job type's median duration is the
//! Philly median, and durations within a type keep the trace's spread. These rates are
//! calibration constants, not hardware throughputs.

use std::path::Path;

use super::ReadOptions;
use super::philly::{job_spec, vc_tenant};
use super::table::{Header, Table};
use crate::error::TraceError;
use crate::workload::{Trace, TraceJob};

/// Median duration of a Philly job in Pollux's `philly.csv`, in seconds: the anchor of
/// `STEPS_PER_S`.
pub const PHILLY_MEDIAN_DURATION_S: f64 = 1144.0;

/// Steps per second of each Gavel job type (see the module doc: calibrated so that
/// each type's median duration is `PHILLY_MEDIAN_DURATION_S`).
pub const STEPS_PER_S: [(&str, f64); 26] = [
    ("A3C", 113.398),
    ("CycleGAN", 69.095),
    ("LM (batch size 5)", 2355.789),
    ("LM (batch size 10)", 1907.922),
    ("LM (batch size 20)", 1382.035),
    ("LM (batch size 40)", 1612.075),
    ("LM (batch size 80)", 813.080),
    ("Recommendation (batch size 512)", 4.590),
    ("Recommendation (batch size 1024)", 6.374),
    ("Recommendation (batch size 2048)", 8.454),
    ("Recommendation (batch size 4096)", 7.731),
    ("Recommendation (batch size 8192)", 7.622),
    ("ResNet-18 (batch size 16)", 985.289),
    ("ResNet-18 (batch size 32)", 837.638),
    ("ResNet-18 (batch size 64)", 736.168),
    ("ResNet-18 (batch size 128)", 673.791),
    ("ResNet-18 (batch size 256)", 237.385),
    ("ResNet-50 (batch size 16)", 251.344),
    ("ResNet-50 (batch size 32)", 188.061),
    ("ResNet-50 (batch size 64)", 76.788),
    ("ResNet-50 (batch size 128)", 48.757),
    ("Transformer (batch size 16)", 201.224),
    ("Transformer (batch size 32)", 163.269),
    ("Transformer (batch size 64)", 150.629),
    ("Transformer (batch size 128)", 80.698),
    ("Transformer (batch size 256)", 26.907),
];

/// The calibrated rate of a job type, if Gavel knows it.
pub fn steps_per_s(job_type: &str) -> Option<f64> {
    STEPS_PER_S.iter().find(|(t, _)| *t == job_type).map(|(_, r)| *r)
}

/// Reads `msr_seed0.tsv` (or any seed's projection with the same columns).
pub fn read(path: &Path, opts: ReadOptions) -> Result<Trace, TraceError> {
    let mut t = Table::open(path, b'\t', Header::FirstLine)?;
    let (vc, jt, steps, arr, sf) =
        (t.column("vc")?, t.column("job_type")?, t.column("total_steps")?, t.column("arrival_time_s")?, t.column("scale_factor")?);
    let mut id = 0u64;
    let (jobs, skipped) = t.read_rows(opts, |t, row, line| {
        let vc = t.text(row, line, vc)?;
        if vc.is_empty() || vc.contains('/') {
            return Err(t.bad(line, "vc", format!("`{vc}` is not a virtual cluster name")));
        }
        let job_type = t.text(row, line, jt)?;
        let rate = steps_per_s(job_type).ok_or_else(|| t.bad(line, "job_type", format!("unknown Gavel job type `{job_type}`")))?;
        let total_steps: u64 = t.parse(row, line, steps)?;
        let submit = super::table::secs_to_ms(t.non_negative(row, line, arr)?);
        let gpus: u32 = t.parse(row, line, sf)?;
        if gpus == 0 || gpus > 100_000 {
            return Err(t.bad(line, "scale_factor", format!("{gpus} GPUs is not in 1..=100000")));
        }
        let secs = total_steps as f64 / rate;
        if secs > super::table::MAX_VALUE {
            return Err(t.bad(line, "total_steps", format!("{total_steps} steps take {secs:e} s, too long")));
        }
        let duration = super::table::secs_to_ms(secs).max(allot_core::MS_PER_S);
        let job = TraceJob { submit, duration, spec: job_spec(id, &vc_tenant(vc), gpus) };
        id += 1;
        Ok(job)
    })?;
    let mut trace = Trace { jobs, skipped_rows: skipped };
    trace.sort();
    Ok(trace)
}
