//! allot's own workload format: JSONL, one job per line, its submit time, its run
//! time and the fields of `JobSpec`. Unknown fields are rejected; fields at their
//! default may be left out (the writer leaves them out).
//!
//! ```text
//! {"id":0,"submit_s":0.0,"duration_s":3600.0,"tenant":"nation/ai-centre/fm-1","replicas":128,"gpus":8,"walltime_s":7200}
//! {"id":1,"submit_s":12.5,"duration_s":1800.0,"tenant":"nation/univ","gpu_milli":250,"class":"interactive"}
//! ```
//!
//! Times are seconds (fractions allowed, kept to the millisecond). A job asks for
//! `gpus` whole GPUs per replica, or a fraction of one GPU as `gpu_milli` (1..=999,
//! one replica); with neither it asks for no GPU.

use std::io::{BufRead, Write};
use std::path::Path;

use allot_core::{GpuRequest, JobId, JobSpec, TopologyConstraint};
use serde::{Deserialize, Serialize};

use super::ReadOptions;
use super::table::secs_to_ms;
use crate::error::TraceError;
use crate::workload::{Trace, TraceJob};

fn is_zero(v: &u32) -> bool {
    *v == 0
}
fn is_zero64(v: &u64) -> bool {
    *v == 0
}
fn is_one(v: &u32) -> bool {
    *v == 1
}
fn one() -> u32 {
    1
}
fn default_user() -> String {
    "user".into()
}
fn is_default_user(u: &str) -> bool {
    u == "user"
}

/// One line of the format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRecord {
    pub id: u64,
    /// Arrival, seconds from the workload's start.
    pub submit_s: f64,
    /// How long the job really runs once started, in seconds.
    pub duration_s: f64,
    pub tenant: String,
    #[serde(default = "default_user", skip_serializing_if = "is_default_user")]
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub replicas: u32,
    /// Whole GPUs per replica.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: u32,
    /// A fraction of one GPU, in milli-GPU (instead of `gpus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_milli: Option<u16>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cpus: u32,
    #[serde(default, skip_serializing_if = "is_zero64")]
    pub memory_mib: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flavors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<TopologyRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walltime_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemptible: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval_s: Option<u64>,
}

/// `TopologyConstraint` on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyRecord {
    pub level: String,
    #[serde(default)]
    pub required: bool,
}

impl JobRecord {
    /// The record of a trace job (times to seconds).
    pub fn from_job(job: &TraceJob) -> JobRecord {
        let s = &job.spec;
        let (gpus, gpu_milli) = match s.gpu {
            GpuRequest::Whole(g) => (g, None),
            GpuRequest::Milli(m) => (0, Some(m)),
        };
        JobRecord {
            id: s.id.0,
            submit_s: job.submit as f64 / 1000.0,
            duration_s: job.duration as f64 / 1000.0,
            tenant: s.tenant.clone(),
            user: s.user.clone(),
            class: s.class.clone(),
            replicas: s.replicas,
            gpus,
            gpu_milli,
            cpus: s.cpus_per_replica,
            memory_mib: s.memory_mib_per_replica,
            flavors: s.flavors.clone(),
            topology: s.topology.as_ref().map(|t| TopologyRecord { level: t.level.clone(), required: t.required }),
            walltime_s: s.walltime_s,
            preemptible: s.preemptible,
            checkpoint_interval_s: s.checkpoint_interval_s,
        }
    }

    /// The trace job of a record; the `Err` names the field and why.
    pub fn to_job(&self) -> Result<TraceJob, (&'static str, String)> {
        let time = |v: f64, field: &'static str| {
            if (0.0..1e13).contains(&v) { Ok(secs_to_ms(v)) } else { Err((field, format!("{v} is not a time in seconds >= 0"))) }
        };
        let submit = time(self.submit_s, "submit_s")?;
        let duration = time(self.duration_s, "duration_s")?;
        if duration == 0 {
            return Err(("duration_s", "a job must run for at least a millisecond".into()));
        }
        if self.tenant.trim_matches('/').split('/').any(|s| s.trim().is_empty()) {
            return Err(("tenant", format!("`{}` is not a tenant path", self.tenant)));
        }
        if self.replicas == 0 {
            return Err(("replicas", "a job has at least one replica".into()));
        }
        let gpu = match (self.gpus, self.gpu_milli) {
            (g, None) => GpuRequest::Whole(g),
            (0, Some(m)) if (1..=999).contains(&m) => GpuRequest::Milli(m),
            (0, Some(m)) => return Err(("gpu_milli", format!("{m} is not in 1..=999"))),
            (_, Some(_)) => return Err(("gpu_milli", "give `gpus` or `gpu_milli`, not both".into())),
        };
        if matches!(gpu, GpuRequest::Milli(_)) && self.replicas != 1 {
            return Err(("replicas", "a fractional-GPU job has one replica".into()));
        }
        let spec = JobSpec {
            id: JobId(self.id),
            tenant: self.tenant.clone(),
            user: self.user.clone(),
            class: self.class.clone(),
            replicas: self.replicas,
            gpu,
            cpus_per_replica: self.cpus,
            memory_mib_per_replica: self.memory_mib,
            flavors: self.flavors.clone(),
            topology: self.topology.as_ref().map(|t| TopologyConstraint { level: t.level.clone(), required: t.required }),
            walltime_s: self.walltime_s,
            preemptible: self.preemptible,
            checkpoint_interval_s: self.checkpoint_interval_s,
        };
        Ok(TraceJob { submit, duration, spec })
    }
}

/// One job as a line (without the newline).
pub fn to_line(job: &TraceJob) -> String {
    // A struct of plain fields always serialises.
    serde_json::to_string(&JobRecord::from_job(job)).unwrap_or_default()
}

/// Parses one line; the `Err` is (column, reason).
pub fn parse_line(text: &str) -> Result<TraceJob, (String, String)> {
    let mut de = serde_json::Deserializer::from_str(text);
    let rec: JobRecord = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let reason = e.inner().to_string();
        let mut column = e.path().to_string();
        // Missing fields are reported at their parent; name the field itself.
        if let Some(name) = reason.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            column = name.to_string();
        }
        if column == "." || column.is_empty() {
            column = "-".into();
        }
        (column, reason)
    })?;
    de.end().map_err(|e| ("-".to_string(), e.to_string()))?;
    rec.to_job().map_err(|(c, r)| (c.to_string(), r))
}

/// Writes jobs, one line each.
pub fn write_to(mut w: impl Write, jobs: &[TraceJob]) -> std::io::Result<()> {
    for j in jobs {
        w.write_all(to_line(j).as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// Writes a trace's jobs to a file.
pub fn write(path: &Path, trace: &Trace) -> Result<(), TraceError> {
    let io = |source| TraceError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::create(path).map_err(io)?;
    write_to(std::io::BufWriter::new(file), &trace.jobs).map_err(io)
}

/// Reads a workload file. A bad line is an error naming file, line, field and serde's
/// reason (or is skipped and counted); jobs come back sorted by submit time, then id.
pub fn read(path: &Path, opts: ReadOptions) -> Result<Trace, TraceError> {
    let file = std::fs::File::open(path).map_err(|source| TraceError::Io { path: path.to_path_buf(), source })?;
    let mut trace = Trace::default();
    for (i, text) in std::io::BufReader::new(file).lines().enumerate() {
        let text = text.map_err(|source| TraceError::Io { path: path.to_path_buf(), source })?;
        if text.trim().is_empty() {
            continue;
        }
        match parse_line(&text) {
            Ok(job) => trace.jobs.push(job),
            Err(_) if opts.skip_bad_rows => trace.skipped_rows += 1,
            Err((column, reason)) => return Err(TraceError::BadRow { path: path.to_path_buf(), line: i as u64 + 1, column, reason }),
        }
    }
    trace.sort();
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_survives_a_round_trip() {
        let mut spec = JobSpec::new(7, "nation/ai/fm", GpuRequest::Whole(8));
        spec.replicas = 16;
        spec.class = Some("training".into());
        spec.flavors = vec!["B200".into()];
        spec.topology = Some(TopologyConstraint { level: "block".into(), required: false });
        spec.walltime_s = Some(7200);
        spec.preemptible = Some(true);
        spec.checkpoint_interval_s = Some(600);
        spec.cpus_per_replica = 96;
        spec.memory_mib_per_replica = 1 << 20;
        let job = TraceJob { submit: 12_345, duration: 3_600_001, spec };
        assert_eq!(parse_line(&to_line(&job)), Ok(job.clone()));
        let frac = TraceJob { submit: 0, duration: 1000, spec: JobSpec::new(1, "t", GpuRequest::Milli(250)) };
        let line = to_line(&frac);
        assert_eq!(line, r#"{"id":1,"submit_s":0.0,"duration_s":1.0,"tenant":"t","gpu_milli":250}"#);
        assert_eq!(parse_line(&line), Ok(frac));
    }

    #[test]
    fn bad_lines_name_the_field() {
        let e = parse_line(r#"{"id":1,"submit_s":0,"duration_s":1,"tenant":"t","gpus":1,"colour":"red"}"#).unwrap_err();
        assert_eq!(e.0, "colour");
        assert!(e.1.contains("unknown field `colour`"), "{e:?}");
        let e = parse_line(r#"{"id":1,"submit_s":0,"duration_s":1,"gpus":1}"#).unwrap_err();
        assert_eq!(e.0, "tenant");
        let e = parse_line(r#"{"id":1,"submit_s":0,"duration_s":1,"tenant":"t","gpus":"eight"}"#).unwrap_err();
        assert_eq!(e.0, "gpus");
        assert!(e.1.contains("invalid type"), "{e:?}");
        let e = parse_line(r#"{"id":1,"submit_s":-5,"duration_s":1,"tenant":"t"}"#).unwrap_err();
        assert_eq!(e.0, "submit_s");
        let e = parse_line(r#"{"id":1,"submit_s":0,"duration_s":1,"tenant":"t","gpus":1,"gpu_milli":500}"#).unwrap_err();
        assert_eq!(e.0, "gpu_milli");
        let e = parse_line(r#"{"id":1,"submit_s":0,"duration_s":1,"tenant":"t"} trailing"#).unwrap_err();
        assert_eq!(e.0, "-");
    }
}
