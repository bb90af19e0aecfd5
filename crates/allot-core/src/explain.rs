//! Why a job waits, in one structured answer (the same for the API, the CLI and the UI).

use crate::core::Core;
use crate::ids::{JobId, Time};
use crate::job::{JobState, PendingReason};

/// The answer to "why is this job not running?".
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub state: JobState,
    pub reason: PendingReason,
    /// Where backfill can tell: when it is expected to start.
    pub estimated_start: Option<Time>,
    /// 0-based position in the last pass's order (pending jobs only).
    pub position: Option<usize>,
}

impl Core {
    /// Explains a job's state. For a job decided together with earlier jobs of the
    /// same shape, the reason is that shape's.
    pub fn explain(&self, id: JobId) -> Option<Explanation> {
        let &j = self.by_id.get(&id)?;
        let job = self.job_at(j);
        let mut reason = job.reason;
        if job.state == JobState::Pending && job.reason_pass != self.pass {
            let hot = self.hot[j.ix()];
            let memo = self.resv.memo[hot.shape as usize];
            let quota = job
                .flavors
                .iter()
                .find_map(|f| self.quota_memo.get(&(hot.tenant, hot.shape, f.0)).filter(|m| m.0 == self.pass).map(|m| m.2));
            if memo.pass == self.pass && memo.pass != 0 {
                reason = memo.reason;
            } else if let Some(q) = quota {
                reason = q;
            }
        }
        let position = (job.state == JobState::Pending).then(|| self.order_buf.iter().position(|x| x.idx() == j)).flatten();
        Some(Explanation { state: job.state, reason, estimated_start: job.estimated_start, position })
    }
}
