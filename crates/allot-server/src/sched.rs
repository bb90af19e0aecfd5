//! The scheduling loop: one task owns the `Core`. It receives commands through a
//! channel, runs a pass when something changed (no more often than
//! `min_pass_interval_ms`, and at least every `max_pass_interval_ms`), persists the
//! plan's decisions with the job state changes, and only then publishes them.
//!
//! Jobs on nodes run by agents (see `agents`) start when the plan is persisted and
//! sent, and end when the agents report their exit. On a node no agent runs (a
//! server without agents, as the API tests use), a stop is taken as done as soon as
//! it is persisted and running jobs end through `POST /v1/jobs/{id}/finish`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_api::{
    BudgetGrant, BudgetView, ExplainView, JobEvent, JobState, NodeView, PlacementView, QuotaSet, QuotaView, SlotView, TenantView,
};
use allot_core::{Core, Event, EventError, JobId, JobSpec, PendingReason, StopReason};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::SchedulerConfig;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::store::{AccountingRecord, BudgetRow, Changes, Decision, JobRow, JobUpdate, QuotaRow, Store};

/// Milliseconds since the Unix epoch: the time the server gives the core.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A time for people: `2026-11-29T07:12:00Z (in 1h 32m)`, relative to `now_ms`.
fn when(at_ms: i64, now_ms: i64) -> String {
    let stamp = std::time::UNIX_EPOCH + Duration::from_millis(at_ms.max(0) as u64);
    let abs = humantime::format_rfc3339_seconds(stamp);
    let secs = (at_ms - now_ms) / 1000;
    let rel = humantime::format_duration(Duration::from_secs(secs.unsigned_abs() / 60 * 60));
    if secs >= 60 {
        format!("at {abs} (in {rel})")
    } else if secs <= -60 {
        format!("at {abs} ({rel} ago)")
    } else {
        format!("at {abs} (now)")
    }
}

/// A committed submission, on its way into the core.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub spec: JobSpec,
    pub project: String,
    pub submitted_ms: i64,
    /// The submission as stored (command, env, ... for the agents).
    pub submit: Option<Arc<allot_api::JobSubmit>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Cancel,
    Hold,
    Release,
    /// The job's processes are gone (the agent's report; an admin stands in for now).
    Finish,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Hold => "hold",
            Action::Release => "release",
            Action::Finish => "finish",
        }
    }
}

pub enum Cmd {
    Submitted(Vec<NewJob>),
    Act {
        id: u64,
        action: Action,
        reply: oneshot::Sender<ApiResult<JobState>>,
    },
    Explain {
        id: u64,
        reply: oneshot::Sender<Option<ExplainView>>,
    },
    /// Drained: nothing new starts there; `evict` also stops its running jobs (requeued).
    Drain {
        node: String,
        drained: bool,
        evict: bool,
        reply: oneshot::Sender<ApiResult<NodeView>>,
    },
    Quota {
        set: QuotaSet,
        reply: oneshot::Sender<ApiResult<QuotaView>>,
    },
    Budget {
        grant: BudgetGrant,
        reply: oneshot::Sender<ApiResult<BudgetView>>,
    },
    Nodes {
        name: Option<String>,
        reply: oneshot::Sender<Vec<NodeView>>,
    },
    Tenants {
        reply: oneshot::Sender<Vec<TenantView>>,
    },
    Quotas {
        reply: oneshot::Sender<Vec<QuotaView>>,
    },
    Metrics {
        reply: oneshot::Sender<String>,
    },
    /// From the agent link.
    Agent(crate::agents::AgentCmd),
    /// Tenants created, changed or deleted (see `tenancy`).
    Tenancy(crate::tenancy::TenantCmd),
}

/// What the loop keeps about a live job beyond the core.
pub(crate) struct Meta {
    pub(crate) tenant: String,
    pub(crate) project: String,
    pub(crate) user: String,
    /// Start of the current run (kept across a restart): the assignment epoch.
    pub(crate) started_ms: Option<i64>,
    pub(crate) cancelled: bool,
    pub(crate) submit: Option<Arc<allot_api::JobSubmit>>,
}

pub struct Sched {
    pub(crate) core: Core,
    pub(crate) meta: HashMap<u64, Meta>,
    pub(crate) store: Arc<dyn Store>,
    events: broadcast::Sender<JobEvent>,
    metrics: Arc<Metrics>,
    cfg: SchedulerConfig,
    pass: u64,
    pub(crate) dirty: bool,
    last_pass: Instant,
    pub(crate) link: crate::agents::Link,
    /// Restored running jobs and the nodes they ran on before the restart.
    pub(crate) restoring: HashMap<u64, Vec<String>>,
}

impl Sched {
    pub fn new(
        core: Core,
        store: Arc<dyn Store>,
        events: broadcast::Sender<JobEvent>,
        metrics: Arc<Metrics>,
        cfg: SchedulerConfig,
    ) -> Sched {
        Sched {
            core,
            meta: HashMap::new(),
            store,
            events,
            metrics,
            cfg,
            pass: 0,
            dirty: true,
            last_pass: Instant::now(),
            link: crate::agents::Link::new(Default::default()),
            restoring: HashMap::new(),
        }
    }

    /// Rebuilds the core from the store: tenants and quotas changed through the API,
    /// the other overrides, then jobs that were running (placed first, on the empty
    /// cluster), then pending and held jobs.
    pub async fn rebuild(&mut self) -> Result<(), crate::store::StoreError> {
        let now = now_ms();
        self.restore_tenancy(now).await?;
        for b in self.store.budgets().await? {
            let ev = Event::BudgetGranted { tenant: b.tenant.clone(), start: b.start_ms, expiry: b.expiry_ms, gpu_hours: b.gpu_hours };
            if let Err(e) = self.core.on_event(now, ev) {
                tracing::warn!(tenant = %b.tenant, error = %e, "stored budget no longer applies");
            }
        }
        for n in self.store.drained_nodes().await? {
            if let Err(e) = self.core.on_event(now, Event::NodeDrained(n.clone())) {
                tracing::warn!(node = %n, error = %e, "stored drain no longer applies");
            }
        }
        let jobs = self.store.active_jobs().await?;
        let mut failed = Changes::default();
        let (was_running, queued): (Vec<JobRow>, Vec<JobRow>) =
            jobs.into_iter().partition(|j| j.state == "running" || j.state == "stopping");
        let mut restored = vec![];
        for row in &was_running {
            if self.restore(row, &mut failed) {
                restored.push(row.id);
                let nodes = row
                    .placement
                    .as_deref()
                    .and_then(|p| serde_json::from_str::<PlacementView>(p).ok())
                    .map(|p| p.slots.into_iter().map(|s| s.node).collect())
                    .unwrap_or_default();
                self.restoring.insert(row.id, nodes);
            }
        }
        if !restored.is_empty() {
            self.run_pass().await;
            let mut ch = Changes::default();
            for id in restored {
                if self.core.job(JobId(id)).is_some_and(|j| j.state == allot_core::JobState::Pending) {
                    ch.jobs.push(JobUpdate::state(id, "pending"));
                    if let Some(m) = self.meta.get_mut(&id) {
                        m.started_ms = None;
                    }
                }
            }
            self.persist(&ch).await;
        }
        self.restoring.clear();
        for row in &queued {
            if self.restore(row, &mut failed) && row.state == "held" {
                let _ = self.core.on_event(now, Event::JobHeld(JobId(row.id)));
            }
        }
        self.persist(&failed).await;
        self.dirty = true;
        tracing::info!(jobs = self.meta.len(), pending = self.core.pending_count(), running = self.core.running_count(), "core rebuilt");
        Ok(())
    }

    fn restore(&mut self, row: &JobRow, failed: &mut Changes) -> bool {
        let submit = serde_json::from_str::<allot_api::JobSubmit>(&row.spec).ok().map(Arc::new);
        let spec = serde_json::from_str::<allot_api::JobSubmit>(&row.spec)
            .map_err(|e| e.to_string())
            .and_then(|s| crate::validate::to_spec(&s, &row.user, "").map_err(|e| e.message));
        let res = spec.and_then(|mut spec| {
            spec.id = JobId(row.id);
            self.core.on_event(row.submitted_ms, Event::JobSubmitted(spec)).map_err(|e| e.to_string())
        });
        match res {
            Ok(()) => {
                let started_ms = if row.state == "running" || row.state == "stopping" { row.started_ms } else { None };
                self.meta.insert(
                    row.id,
                    Meta {
                        tenant: row.tenant.clone(),
                        project: row.project.clone(),
                        user: row.user.clone(),
                        started_ms,
                        cancelled: false,
                        submit,
                    },
                );
                true
            }
            Err(why) => {
                tracing::warn!(job = row.id, %why, "stored job no longer fits the config: failed");
                failed.jobs.push(JobUpdate {
                    ended_ms: Some(now_ms()),
                    message: Some(format!("refused on restart: {why}")),
                    ..JobUpdate::state(row.id, "failed")
                });
                false
            }
        }
    }

    /// The loop: runs until every sender is gone.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let min = Duration::from_millis(self.cfg.min_pass_interval_ms);
        let max = Duration::from_millis(self.cfg.max_pass_interval_ms.max(1));
        loop {
            let due = if self.dirty { self.last_pass + min } else { self.last_pass + max };
            let due = due.min(self.link.next_check());
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.handle(cmd).await;
                    // Take what else is queued before deciding on a pass.
                    let mut n = 0;
                    while n < 4096 {
                        match rx.try_recv() {
                            Ok(cmd) => { self.handle(cmd).await; n += 1; }
                            Err(_) => break,
                        }
                    }
                    self.flush_link().await;
                }
                _ = tokio::time::sleep_until(due.into()) => {}
            }
            if Instant::now() >= self.link.next_check() {
                self.agents_tick().await;
                self.flush_link().await;
            }
            let since = self.last_pass.elapsed();
            if (self.dirty && since >= min) || since >= max {
                self.run_pass().await;
            }
        }
    }

    async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Submitted(jobs) => self.submitted(jobs).await,
            Cmd::Act { id, action, reply } => {
                let r = self.act(id, action).await;
                let _ = reply.send(r);
            }
            Cmd::Explain { id, reply } => {
                let _ = reply.send(self.explain(id));
            }
            Cmd::Drain { node, drained, evict, reply } => {
                let r = self.drain(&node, drained, evict).await;
                let _ = reply.send(r);
            }
            Cmd::Quota { set, reply } => {
                let r = self.set_quota(set).await;
                let _ = reply.send(r);
            }
            Cmd::Budget { grant, reply } => {
                let r = self.grant_budget(grant).await;
                let _ = reply.send(r);
            }
            Cmd::Nodes { name, reply } => {
                let _ = reply.send(self.nodes(name.as_deref()));
            }
            Cmd::Tenants { reply } => {
                let _ = reply.send(self.tenants());
            }
            Cmd::Quotas { reply } => {
                let _ = reply.send(self.tenants().into_iter().flat_map(|t| t.quotas).collect());
            }
            Cmd::Metrics { reply } => {
                let _ = reply.send(self.metrics_text());
            }
            Cmd::Agent(cmd) => self.agent_cmd(cmd).await,
            Cmd::Tenancy(cmd) => self.tenant_cmd(cmd).await,
        }
    }

    async fn submitted(&mut self, jobs: Vec<NewJob>) {
        let mut failed = Changes::default();
        let mut evs = Vec::with_capacity(jobs.len());
        for j in jobs {
            let id = j.spec.id.0;
            let (tenant, user) = (j.spec.tenant.clone(), j.spec.user.clone());
            match self.core.on_event(j.submitted_ms, Event::JobSubmitted(j.spec)) {
                Ok(()) => {
                    evs.push(JobEvent { id, tenant: tenant.clone(), state: JobState::Pending, at_ms: j.submitted_ms });
                    self.meta.insert(id, Meta { tenant, project: j.project, user, started_ms: None, cancelled: false, submit: j.submit });
                }
                Err(e) => {
                    // Checked before it was acknowledged; only a config drift lands here.
                    tracing::warn!(job = id, error = %e, "core refused a committed job");
                    failed.jobs.push(JobUpdate {
                        ended_ms: Some(now_ms()),
                        message: Some(e.to_string()),
                        ..JobUpdate::state(id, "failed")
                    });
                    evs.push(JobEvent { id, tenant, state: JobState::Failed, at_ms: now_ms() });
                }
            }
        }
        self.persist(&failed).await;
        self.publish(evs);
        self.dirty = true;
    }

    async fn act(&mut self, id: u64, action: Action) -> ApiResult<JobState> {
        let now = now_ms();
        let jid = JobId(id);
        let Some(job) = self.core.job(jid) else {
            return match self.store.get_job(id).await? {
                Some(row) => Err(ApiError::conflict(format!("job {id} is {}, cannot {}", row.state, action.name()))),
                None => Err(ApiError::not_found(format!("job {id} not found"))),
            };
        };
        let before = job.state;
        let mut ch = Changes::default();
        let mut evs = vec![];
        let state = match action {
            Action::Finish => {
                if !matches!(before, allot_core::JobState::Running | allot_core::JobState::Stopping) {
                    return Err(ApiError::conflict(format!("job {id} is {}, cannot finish", before.name())));
                }
                self.forget_run(id);
                self.finish_job(now, id, false, &mut ch, &mut evs)
            }
            _ => {
                let ev = match action {
                    Action::Cancel => Event::JobCancelled(jid),
                    Action::Hold => Event::JobHeld(jid),
                    _ => Event::JobReleased(jid),
                };
                self.core.on_event(now, ev).map_err(core_error)?;
                if action == Action::Cancel
                    && let Some(m) = self.meta.get_mut(&id)
                {
                    m.cancelled = true;
                }
                let state = match self.core.job(jid) {
                    None => {
                        ch.jobs.push(JobUpdate { ended_ms: Some(now), ..JobUpdate::state(id, "cancelled") });
                        self.meta.remove(&id);
                        JobState::Cancelled
                    }
                    Some(j) => api_state(j.state),
                };
                if api_state(before) != state && state != JobState::Cancelled {
                    ch.jobs.push(JobUpdate::state(id, state.as_str()));
                }
                if api_state(before) != state {
                    evs.push(JobEvent { id, tenant: self.tenant_of(id), state, at_ms: now });
                }
                state
            }
        };
        if let Some(e) = evs.first_mut()
            && e.tenant.is_empty()
        {
            e.tenant = self.store.get_job(id).await?.map(|r| r.tenant).unwrap_or_default();
        }
        self.persist(&ch).await;
        self.publish(evs);
        self.dirty = true;
        Ok(state)
    }

    pub(crate) fn tenant_of(&self, id: u64) -> String {
        self.meta.get(&id).map(|m| m.tenant.clone()).unwrap_or_default()
    }

    /// Ends a running or stopping job's run: accounts it and tells the core. Returns
    /// the job's state after (pending when requeued).
    pub(crate) fn finish_job(&mut self, now: i64, id: u64, stopped: bool, ch: &mut Changes, evs: &mut Vec<JobEvent>) -> JobState {
        let jid = JobId(id);
        let Some(job) = self.core.job(jid) else { return JobState::Completed };
        let flavor = job.alloc.as_ref().map(|a| self.core.cluster().flavors[a.flavor.ix()].name.clone());
        let gpus = job.shape.total_gpus();
        let core_started = job.started;
        let meta = self.meta.get(&id);
        let start = meta.and_then(|m| m.started_ms).unwrap_or(core_started);
        if let (Some(m), Some(flavor)) = (meta, flavor) {
            let secs = ((now - start).max(0) as f64) / 1000.0;
            ch.accounting.push(AccountingRecord {
                job: id,
                tenant: m.tenant.clone(),
                project: m.project.clone(),
                user: m.user.clone(),
                flavor,
                start_ms: start,
                end_ms: now,
                gpus,
                gpu_seconds: gpus * secs,
            });
        }
        if let Err(e) = self.core.on_event(now, Event::JobFinished(jid)) {
            tracing::warn!(job = id, error = %e, "finish refused");
            return self.core.job(jid).map(|j| api_state(j.state)).unwrap_or(JobState::Completed);
        }
        let tenant = self.tenant_of(id);
        let state = if self.core.job(jid).is_some() {
            if let Some(m) = self.meta.get_mut(&id) {
                m.started_ms = None;
            }
            ch.jobs.push(JobUpdate::state(id, "pending"));
            JobState::Pending
        } else {
            let cancelled = self.meta.remove(&id).is_some_and(|m| m.cancelled);
            let st = if cancelled || stopped { JobState::Cancelled } else { JobState::Completed };
            ch.jobs.push(JobUpdate { ended_ms: Some(now), ..JobUpdate::state(id, st.as_str()) });
            st
        };
        evs.push(JobEvent { id, tenant, state, at_ms: now });
        state
    }

    /// One pass: decide, persist, then act and publish.
    pub async fn run_pass(&mut self) {
        self.flush_link().await;
        let now = now_ms();
        let t0 = Instant::now();
        let plan = self.core.schedule(now);
        self.metrics.observe_pass(t0.elapsed());
        self.pass += 1;
        self.last_pass = Instant::now();
        self.dirty = false;
        if plan.starts.is_empty() && plan.stops.is_empty() {
            return;
        }
        let mut ch = Changes::default();
        let mut evs = vec![];
        let cluster = self.core.cluster();
        for s in &plan.starts {
            let id = s.job.0;
            let placement = PlacementView {
                flavor: cluster.flavors[s.flavor.ix()].name.clone(),
                slots: s
                    .slots
                    .iter()
                    .map(|sl| SlotView { node: cluster.node(sl.node).name.clone(), gpus: sl.gpus, milli: sl.milli })
                    .collect(),
            };
            let placement = serde_json::to_string(&placement).unwrap_or_default();
            let after: Vec<u64> = s.after.iter().map(|j| j.0).collect();
            ch.decisions.push(Decision {
                pass: self.pass,
                at_ms: now,
                kind: "start".into(),
                job: id,
                detail: format!("{{\"placement\":{placement},\"after\":{}}}", serde_json::to_string(&after).unwrap_or_default()),
            });
            let meta = self.meta.get_mut(&id);
            let started = meta.as_ref().and_then(|m| m.started_ms).unwrap_or(now);
            let tenant = meta.as_ref().map(|m| m.tenant.clone()).unwrap_or_default();
            if let Some(m) = meta {
                m.started_ms = Some(started);
            }
            ch.jobs.push(JobUpdate { started_ms: Some(started), placement: Some(placement), ..JobUpdate::state(id, "running") });
            evs.push(JobEvent { id, tenant, state: JobState::Running, at_ms: now });
        }
        for s in &plan.stops {
            let why = match s.why {
                StopReason::Preempted { by, reclaim } => format!("{{\"why\":\"preempted\",\"by\":{},\"reclaim\":{reclaim}}}", by.0),
                StopReason::NodeLost { node } => {
                    format!("{{\"why\":\"node_lost\",\"node\":{}}}", serde_json::to_string(&cluster.node(node).name).unwrap_or_default())
                }
                StopReason::Cancelled => "{\"why\":\"cancelled\"}".to_string(),
            };
            ch.decisions.push(Decision { pass: self.pass, at_ms: now, kind: "stop".into(), job: s.job.0, detail: why });
            ch.jobs.push(JobUpdate::state(s.job.0, "stopping"));
            evs.push(JobEvent { id: s.job.0, tenant: self.tenant_of(s.job.0), state: JobState::Stopping, at_ms: now });
        }
        // Persisted before anything is acted on.
        self.persist(&ch).await;
        self.publish(evs);
        // Stops first: a start may wait for the jobs it replaces to exit.
        let mut ch = Changes::default();
        let mut evs = vec![];
        let mut legacy = false;
        for s in &plan.stops {
            if !self.stop_run(s.job.0, s.grace_s, s.why == StopReason::Cancelled).await {
                // No agent runs it: a stop is done once decided.
                self.finish_job(now, s.job.0, s.why == StopReason::Cancelled, &mut ch, &mut evs);
                legacy = true;
            }
        }
        if legacy {
            self.persist(&ch).await;
            self.publish(evs);
            self.dirty = true;
        }
        for s in &plan.starts {
            self.start_run(s);
        }
        self.flush_link().await;
    }

    /// Writes changes, retrying while the store is down: nothing is acted on unsaved.
    pub(crate) async fn persist(&self, ch: &Changes) {
        if ch.is_empty() {
            return;
        }
        let mut delay = Duration::from_millis(50);
        loop {
            match self.store.apply(ch).await {
                Ok(()) => {
                    self.metrics.set_store_ok(true);
                    return;
                }
                Err(e) => {
                    self.metrics.set_store_ok(false);
                    tracing::error!(error = %e, "cannot persist scheduling changes; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    pub(crate) fn publish(&self, evs: Vec<JobEvent>) {
        if self.events.receiver_count() == 0 {
            return;
        }
        for e in evs {
            let _ = self.events.send(e);
        }
    }

    fn explain(&self, id: u64) -> Option<ExplainView> {
        let ex = self.core.explain(JobId(id))?;
        let state = api_state(ex.state);
        let (reason, message) = match ex.state {
            allot_core::JobState::Running => ("running".to_string(), "running".to_string()),
            allot_core::JobState::Stopping => ("stopping".to_string(), "told to stop, waiting for it to exit".to_string()),
            _ => self.reason_text(ex.reason),
        };
        Some(ExplainView { id, state, reason, message, position: ex.position, estimated_start_ms: ex.estimated_start })
    }

    fn reason_text(&self, r: PendingReason) -> (String, String) {
        let tenants = self.core.tenants();
        let cl = self.core.cluster();
        let tname = |t: allot_core::TenantIdx| {
            let p = &tenants.tenants[t.ix()].path;
            if p.is_empty() { "the root".to_string() } else { format!("`{p}`") }
        };
        let gpus = |m: u64| m as f64 / 1000.0;
        match r {
            PendingReason::New => ("new".into(), "not yet looked at by a scheduling pass".into()),
            PendingReason::Held => ("held".into(), "held by a user or admin".into()),
            PendingReason::Budget(allot_core::BudgetBlock::Exhausted { tenant, expiry }) => {
                ("budget".into(), format!("the GPU-hour budget of {} is spent (it expires {})", tname(tenant), when(expiry, now_ms())))
            }
            PendingReason::Budget(allot_core::BudgetBlock::NoneActive { tenant, next }) => (
                "budget".into(),
                match next {
                    Some(at) => format!("{} has no active GPU-hour budget; the next one starts {}", tname(tenant), when(at, now_ms())),
                    None => format!("{} has no active GPU-hour budget", tname(tenant)),
                },
            ),
            PendingReason::Quota { tenant, flavor, need_milli, room_milli } => (
                "quota".into(),
                format!(
                    "quota of {} for {}: needs {} GPUs, {} admissible",
                    tname(tenant),
                    cl.flavors[flavor.ix()].name,
                    gpus(need_milli),
                    gpus(room_milli)
                ),
            ),
            PendingReason::NoCapacity { flavor } => (
                "no_capacity".into(),
                match flavor {
                    Some(f) => format!("no free capacity of {} for it", cl.flavors[f.ix()].name),
                    None => "no free capacity of any allowed flavor for it".into(),
                },
            ),
            PendingReason::Topology { level } => (
                "topology".into(),
                format!(
                    "enough GPUs, but not within one `{}`",
                    cl.levels.get(level as usize).cloned().unwrap_or_else(|| level.to_string())
                ),
            ),
            PendingReason::Reserved { at } => {
                ("reserved".into(), format!("holds a backfill reservation, expected to start {}", when(at, now_ms())))
            }
            PendingReason::BehindReservation { job, at } => {
                ("behind_reservation".into(), format!("free capacity is promised to job {job}, expected to start {}", when(at, now_ms())))
            }
        }
    }

    async fn drain(&mut self, node: &str, drained: bool, evict: bool) -> ApiResult<NodeView> {
        let now = now_ms();
        let ev = if drained { Event::NodeDrained(node.into()) } else { Event::NodeUndrained(node.into()) };
        self.core.on_event(now, ev).map_err(core_error)?;
        if let Err(e) = self.store.set_node_drained(node, drained).await {
            let undo = if drained { Event::NodeUndrained(node.into()) } else { Event::NodeDrained(node.into()) };
            let _ = self.core.on_event(now, undo);
            return Err(e.into());
        }
        if drained && evict && self.nodes(Some(node)).first().is_some_and(|n| !n.running_jobs.is_empty()) {
            // The core has no eviction event: a node that goes down and comes back
            // (still drained) stops its jobs, and they are requeued.
            self.core.on_event(now, Event::NodeDown(node.into())).map_err(core_error)?;
            self.core.on_event(now, Event::NodeUp(node.into())).map_err(core_error)?;
        }
        self.dirty = true;
        self.nodes(Some(node)).pop().ok_or_else(|| ApiError::not_found(format!("node `{node}` not found")))
    }

    async fn set_quota(&mut self, q: QuotaSet) -> ApiResult<QuotaView> {
        let now = now_ms();
        let old = self.core.quota(&q.tenant, &q.flavor);
        let Some((old, _)) = old else {
            return Err(if self.core.tenants().index(&q.tenant).is_none() {
                ApiError::invalid("tenant", format!("unknown tenant `{}`", q.tenant))
            } else {
                ApiError::invalid("flavor", format!("unknown flavor `{}`", q.flavor))
            });
        };
        for (f, v) in [("nominal", Some(q.nominal)), ("borrowing_limit", q.borrowing_limit), ("lending_limit", q.lending_limit)] {
            if let Some(v) = v
                && !(v.is_finite() && (0.0..=1e9).contains(&v))
            {
                return Err(ApiError::invalid(f, "must be a number of GPUs between 0 and 1e9"));
            }
        }
        let ev = Event::QuotaChanged {
            tenant: q.tenant.clone(),
            flavor: q.flavor.clone(),
            nominal: q.nominal,
            borrowing_limit: q.borrowing_limit,
            lending_limit: q.lending_limit,
        };
        self.core.on_event(now, ev).map_err(|e| ApiError::invalid("nominal", e.to_string()))?;
        let row = QuotaRow {
            tenant: q.tenant.clone(),
            flavor: q.flavor.clone(),
            nominal: q.nominal,
            borrowing_limit: q.borrowing_limit,
            lending_limit: q.lending_limit,
            updated_ms: now,
        };
        if let Err(e) = self.store.put_quota(&row).await {
            let g = |m: u64| m as f64 / 1000.0;
            let undo = Event::QuotaChanged {
                tenant: q.tenant.clone(),
                flavor: q.flavor.clone(),
                nominal: g(old.nominal),
                borrowing_limit: (old.borrowing_limit != u64::MAX).then(|| g(old.borrowing_limit)),
                lending_limit: old.lending_limit.map(g),
            };
            let _ = self.core.on_event(now, undo);
            return Err(e.into());
        }
        self.dirty = true;
        self.quota_view(&q.tenant, &q.flavor).ok_or_else(|| ApiError::not_found("quota not found"))
    }

    async fn grant_budget(&mut self, b: BudgetGrant) -> ApiResult<BudgetView> {
        let now = now_ms();
        if self.core.tenants().index(&b.tenant).is_none() {
            return Err(ApiError::invalid("tenant", format!("unknown tenant `{}`", b.tenant)));
        }
        if !(b.gpu_hours.is_finite() && (0.0..=1e12).contains(&b.gpu_hours)) {
            return Err(ApiError::invalid("gpu_hours", "must be a non-negative number of GPU-hours"));
        }
        // Year 1970 to 9999: time arithmetic in the core never overflows.
        const MAX_MS: i64 = 253_402_300_799_999;
        for (f, v) in [("start_ms", b.start_ms), ("expiry_ms", b.expiry_ms)] {
            if !(0..=MAX_MS).contains(&v) {
                return Err(ApiError::invalid(f, "must be milliseconds since the epoch, before the year 10000"));
            }
        }
        if b.expiry_ms <= b.start_ms {
            return Err(ApiError::invalid("expiry_ms", "must be after start_ms"));
        }
        // Tried on a copy first: a grant the core refuses is never stored.
        let mut probe = self.core.clone();
        probe
            .on_event(
                now,
                Event::BudgetGranted { tenant: b.tenant.clone(), start: b.start_ms, expiry: b.expiry_ms, gpu_hours: b.gpu_hours },
            )
            .map_err(|e| ApiError::invalid("tenant", e.to_string()))?;
        drop(probe);
        let mut row = BudgetRow {
            id: 0,
            tenant: b.tenant.clone(),
            gpu_hours: b.gpu_hours,
            start_ms: b.start_ms,
            expiry_ms: b.expiry_ms,
            granted_ms: now,
        };
        row.id = self.store.add_budget(&row).await?;
        let _ = self
            .core
            .on_event(now, Event::BudgetGranted { tenant: b.tenant, start: b.start_ms, expiry: b.expiry_ms, gpu_hours: b.gpu_hours });
        self.dirty = true;
        Ok(budget_view(&row))
    }

    fn nodes(&self, only: Option<&str>) -> Vec<NodeView> {
        let cl = self.core.cluster();
        let mut running: HashMap<u32, Vec<u64>> = HashMap::new();
        for j in self.core.jobs() {
            if let Some(a) = &j.alloc {
                for s in &a.slots {
                    let v = running.entry(s.node.0).or_default();
                    if v.last() != Some(&j.id.0) {
                        v.push(j.id.0);
                    }
                }
            }
        }
        let idx: Vec<allot_core::NodeIdx> = match only {
            Some(name) => cl.node_index(name).into_iter().collect(),
            None => (0..cl.nodes.len()).map(allot_core::NodeIdx::from).collect(),
        };
        idx.into_iter()
            .map(|n| {
                let node = cl.node(n);
                let st = cl.status(n);
                let mut jobs = running.remove(&n.0).unwrap_or_default();
                jobs.sort_unstable();
                NodeView {
                    name: node.name.clone(),
                    flavor: cl.flavors[node.flavor.ix()].name.clone(),
                    at: cl.domains[node.leaf.ix()].name.clone(),
                    gpus: node.gpus,
                    gpus_free: cl.whole_free(n),
                    gpu_free_milli: cl.gpu_free(n).to_vec(),
                    cpus: node.cpus,
                    memory_mib: node.memory_mib,
                    labels: node.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
                    up: st.up,
                    drained: st.drained,
                    running_jobs: jobs,
                    reason: self.link.reason(&node.name),
                    agent: self.link.view(&node.name),
                }
            })
            .collect()
    }

    fn quota_view(&self, tenant: &str, flavor: &str) -> Option<QuotaView> {
        let (q, used) = self.core.quota(tenant, flavor)?;
        let g = |m: u64| m as f64 / 1000.0;
        Some(QuotaView {
            tenant: tenant.to_string(),
            flavor: flavor.to_string(),
            nominal: g(q.nominal),
            borrowing_limit: (q.borrowing_limit != u64::MAX).then(|| g(q.borrowing_limit)),
            lending_limit: q.lending_limit.map(g),
            used: g(used),
        })
    }

    pub(crate) fn tenants(&mut self) -> Vec<TenantView> {
        let now = now_ms();
        let list: Vec<(String, Option<String>, f64)> = self
            .core
            .tenants()
            .tenants
            .iter()
            .filter(|t| !t.path.is_empty() && !t.removed)
            .map(|t| {
                let parent = t.parent.map(|p| self.core.tenants().tenants[p.ix()].path.clone()).filter(|p| !p.is_empty());
                (t.path.clone(), parent, t.weight)
            })
            .collect();
        let flavors: Vec<String> = self.core.cluster().flavors.iter().map(|f| f.name.clone()).collect();
        list.into_iter()
            .map(|(path, parent, weight)| {
                let quotas = flavors.iter().filter_map(|f| self.quota_view(&path, f)).collect();
                let budget_remaining_gpu_hours = self.core.budget_remaining_gpu_hours(&path, now);
                TenantView { path, parent, weight, quotas, budget_remaining_gpu_hours }
            })
            .collect()
    }

    fn metrics_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let core = &self.core;
        let tenants = core.tenants();
        let cl = core.cluster();
        let mut counts: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        for t in tenants.tenants.iter().filter(|t| !t.path.is_empty() && !t.removed) {
            for st in ["pending", "held", "running", "stopping"] {
                counts.insert((t.path.clone(), st), 0);
            }
        }
        for j in core.jobs() {
            let path = &tenants.tenants[j.tenant.ix()].path;
            *counts.entry((path.clone(), j.state.name())).or_default() += 1;
        }
        let _ = writeln!(out, "# HELP allot_jobs Live jobs by tenant and state.\n# TYPE allot_jobs gauge");
        for ((t, st), n) in &counts {
            let _ = writeln!(out, "allot_jobs{{tenant=\"{}\",state=\"{st}\"}} {n}", esc(t));
        }
        let _ = writeln!(
            out,
            "# HELP allot_gpus_allocated GPUs allocated to the tenant's subtree, by flavor.\n# TYPE allot_gpus_allocated gauge"
        );
        let mut borrowed = String::new();
        let mut lent = String::new();
        for (ti, t) in tenants.tenants.iter().enumerate().filter(|(_, t)| !t.removed) {
            for (fi, f) in cl.flavors.iter().enumerate() {
                let (ti, fi) = (allot_core::TenantIdx::from(ti), allot_core::FlavorIdx::from(fi));
                let used = tenants.usage(ti, fi);
                let q = tenants.quota(ti, fi);
                let name = if t.path.is_empty() { "" } else { t.path.as_str() };
                let _ =
                    writeln!(out, "allot_gpus_allocated{{tenant=\"{}\",flavor=\"{}\"}} {}", esc(name), esc(&f.name), used as f64 / 1000.0);
                if !t.path.is_empty() {
                    let _ = writeln!(
                        borrowed,
                        "allot_gpus_borrowed{{tenant=\"{}\",flavor=\"{}\"}} {}",
                        esc(name),
                        esc(&f.name),
                        used.saturating_sub(q.nominal) as f64 / 1000.0
                    );
                    let _ = writeln!(
                        lent,
                        "allot_gpus_unused_nominal{{tenant=\"{}\",flavor=\"{}\"}} {}",
                        esc(name),
                        esc(&f.name),
                        q.nominal.saturating_sub(used) as f64 / 1000.0
                    );
                }
            }
        }
        let _ = writeln!(out, "# HELP allot_gpus_borrowed GPUs used above nominal quota.\n# TYPE allot_gpus_borrowed gauge");
        out.push_str(&borrowed);
        let _ =
            writeln!(out, "# HELP allot_gpus_unused_nominal Nominal quota not in use (lendable).\n# TYPE allot_gpus_unused_nominal gauge");
        out.push_str(&lent);
        let _ = writeln!(out, "# HELP allot_gpus_capacity GPUs in the cluster by flavor.\n# TYPE allot_gpus_capacity gauge");
        for (fi, f) in cl.flavors.iter().enumerate() {
            let _ =
                writeln!(out, "allot_gpus_capacity{{flavor=\"{}\"}} {}", esc(&f.name), cl.capacity_gpus(allot_core::FlavorIdx::from(fi)));
        }
        let _ = writeln!(out, "# HELP allot_nodes Nodes by state.\n# TYPE allot_nodes gauge");
        let (mut up, mut down, mut drained) = (0, 0, 0);
        for n in 0..cl.nodes.len() {
            let s = cl.status(allot_core::NodeIdx::from(n));
            if !s.up {
                down += 1;
            } else if s.drained {
                drained += 1;
            } else {
                up += 1;
            }
        }
        let _ = writeln!(
            out,
            "allot_nodes{{state=\"up\"}} {up}\nallot_nodes{{state=\"down\"}} {down}\nallot_nodes{{state=\"drained\"}} {drained}"
        );
        let _ = writeln!(
            out,
            "# HELP allot_agents Connected node agents by state.\n# TYPE allot_agents gauge\nallot_agents{{state=\"connected\"}} {}\nallot_agents{{state=\"lost\"}} {}",
            self.link.connected_count(),
            self.link.lost_count()
        );
        let _ = writeln!(out, "# HELP allot_scheduling_passes_total Scheduling passes run.\n# TYPE allot_scheduling_passes_total counter");
        let _ = writeln!(out, "allot_scheduling_passes_total {}", self.pass);
        self.metrics.render(&mut out);
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub fn budget_view(r: &BudgetRow) -> BudgetView {
    BudgetView {
        id: r.id,
        tenant: r.tenant.clone(),
        gpu_hours: r.gpu_hours,
        start_ms: r.start_ms,
        expiry_ms: r.expiry_ms,
        granted_at_ms: r.granted_ms,
    }
}

pub fn api_state(s: allot_core::JobState) -> JobState {
    match s {
        allot_core::JobState::Pending => JobState::Pending,
        allot_core::JobState::Held => JobState::Held,
        allot_core::JobState::Running => JobState::Running,
        allot_core::JobState::Stopping => JobState::Stopping,
    }
}

fn core_error(e: EventError) -> ApiError {
    match e {
        EventError::UnknownJob(_) | EventError::UnknownNode(_) => ApiError::not_found(e.to_string()),
        EventError::WrongState { .. } | EventError::DuplicateJob(_) => ApiError::conflict(e.to_string()),
        _ => ApiError::new(crate::error::ErrorKind::Invalid, e.to_string()),
    }
}
