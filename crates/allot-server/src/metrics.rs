//! Counters and histograms shared by the handlers and the scheduling loop, rendered
//! in Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the pass-latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0];

pub struct Metrics {
    pass_buckets: [AtomicU64; BUCKETS.len()],
    pass_count: AtomicU64,
    pass_sum_us: AtomicU64,
    pub submissions: AtomicU64,
    pub submit_requests: AtomicU64,
    store_ok: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            pass_buckets: Default::default(),
            pass_count: AtomicU64::new(0),
            pass_sum_us: AtomicU64::new(0),
            submissions: AtomicU64::new(0),
            submit_requests: AtomicU64::new(0),
            store_ok: AtomicBool::new(true),
        }
    }
}

impl Metrics {
    pub fn observe_pass(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.pass_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.pass_count.fetch_add(1, Ordering::Relaxed);
        self.pass_sum_us.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn set_store_ok(&self, ok: bool) {
        self.store_ok.store(ok, Ordering::Relaxed);
    }

    pub fn store_ok(&self) -> bool {
        self.store_ok.load(Ordering::Relaxed)
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP allot_scheduling_pass_seconds Time of one scheduling pass.");
        let _ = writeln!(out, "# TYPE allot_scheduling_pass_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "allot_scheduling_pass_seconds_bucket{{le=\"{b}\"}} {}", self.pass_buckets[i].load(Ordering::Relaxed));
        }
        let n = self.pass_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "allot_scheduling_pass_seconds_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(out, "allot_scheduling_pass_seconds_sum {}", self.pass_sum_us.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "allot_scheduling_pass_seconds_count {n}");
        let _ =
            writeln!(out, "# HELP allot_jobs_submitted_total Jobs acknowledged (committed).\n# TYPE allot_jobs_submitted_total counter");
        let _ = writeln!(out, "allot_jobs_submitted_total {}", self.submissions.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP allot_submit_requests_total Submission requests acknowledged.\n# TYPE allot_submit_requests_total counter"
        );
        let _ = writeln!(out, "allot_submit_requests_total {}", self.submit_requests.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP allot_store_up Whether the last store write succeeded.\n# TYPE allot_store_up gauge");
        let _ = writeln!(out, "allot_store_up {}", u8::from(self.store_ok()));
    }
}
