//! Group commit of submissions: one task takes every queued submission, assigns ids,
//! writes them all in one transaction, and only after the commit hands them to the
//! scheduling loop and acknowledges each request.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::sched::{Cmd, NewJob};
use crate::store::{JobRow, Store};

/// A job ready to store: its spec for the core and its submission as JSON.
pub struct Prepared {
    pub job: NewJob,
    pub spec_json: String,
}

pub struct SubmitReq {
    pub jobs: Vec<Prepared>,
    pub reply: oneshot::Sender<ApiResult<Vec<u64>>>,
}

/// Most jobs in one transaction.
const MAX_GROUP_JOBS: usize = 20_000;

pub async fn run(
    store: Arc<dyn Store>,
    mut next_id: u64,
    mut rx: mpsc::Receiver<SubmitReq>,
    core: mpsc::UnboundedSender<Cmd>,
    metrics: Arc<Metrics>,
) {
    // Several groups may commit at once where the backend gains from it (PostgreSQL);
    // a group is acknowledged only after its own commit.
    let permits = Arc::new(tokio::sync::Semaphore::new(store.write_concurrency().max(1)));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let mut n = first.jobs.len();
        let mut group = vec![first];
        while n < MAX_GROUP_JOBS {
            match rx.try_recv() {
                Ok(r) => {
                    n += r.jobs.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        let mut rows = Vec::with_capacity(n);
        let mut ids: Vec<Vec<u64>> = Vec::with_capacity(group.len());
        for req in &mut group {
            let mut these = Vec::with_capacity(req.jobs.len());
            for p in &mut req.jobs {
                next_id += 1;
                p.job.spec.id = allot_core::JobId(next_id);
                these.push(next_id);
                let s = &p.job.spec;
                rows.push(JobRow::new(
                    next_id,
                    &s.tenant,
                    &p.job.project,
                    &s.user,
                    "pending",
                    std::mem::take(&mut p.spec_json),
                    p.job.submitted_ms,
                ));
            }
            ids.push(these);
        }
        let (store, core, metrics) = (store.clone(), core.clone(), metrics.clone());
        tokio::spawn(async move {
            commit(&*store, rows, group, ids, &core, &metrics).await;
            drop(permit);
        });
    }
}

async fn commit(
    store: &dyn Store,
    rows: Vec<JobRow>,
    mut group: Vec<SubmitReq>,
    ids: Vec<Vec<u64>>,
    core: &mpsc::UnboundedSender<Cmd>,
    metrics: &Metrics,
) {
    match store.insert_jobs(&rows).await {
        Ok(()) => {
            drop(rows);
            let jobs: Vec<NewJob> = group.iter_mut().flat_map(|r| r.jobs.drain(..).map(|p| p.job)).collect();
            metrics.submissions.fetch_add(jobs.len() as u64, Ordering::Relaxed);
            metrics.submit_requests.fetch_add(group.len() as u64, Ordering::Relaxed);
            metrics.set_store_ok(true);
            // The core learns of them before any client can act on the ids.
            let _ = core.send(Cmd::Submitted(jobs));
            for (req, ids) in group.into_iter().zip(ids) {
                let _ = req.reply.send(Ok(ids));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, jobs = rows.len(), "submission commit failed");
            metrics.set_store_ok(false);
            let err = ApiError::unavailable(format!("submission not stored: {e}"));
            for req in group {
                let _ = req.reply.send(Err(err.clone()));
            }
        }
    }
}
