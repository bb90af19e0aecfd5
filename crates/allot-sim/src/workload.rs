//! A workload to replay: jobs as the core takes them (`JobSpec`), with when they
//! arrive and how long they really run.

use allot_core::{JobSpec, Time};

/// One job of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceJob {
    /// Arrival, in milliseconds from the trace's origin.
    pub submit: Time,
    /// How long it really runs once started, in milliseconds (the trace's duration).
    pub duration: Time,
    /// What the job asks for. `spec.walltime_s` is the user's estimate, if the trace
    /// (or a noise model) gives one.
    pub spec: JobSpec,
}

/// A workload: jobs sorted by `submit`, then by id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    pub jobs: Vec<TraceJob>,
    /// Rows skipped as bad (only with `skip_bad_rows`).
    pub skipped_rows: u64,
}

impl Trace {
    /// Sorts jobs by submit time, then id, as the engine expects.
    pub fn sort(&mut self) {
        self.jobs.sort_by_key(|j| (j.submit, j.spec.id));
    }
}
