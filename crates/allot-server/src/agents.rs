//! The agent link, server side.
//!
//! Agents connect out to `GET /v1/agent/connect` (a WebSocket on the API port) with
//! a `node` token, one connection per node; messages are `allot_api::agent`'s JSON.
//! The connection task only moves messages: every decision is taken in the
//! scheduling loop (`Sched`), which owns the core and, here, the state of every
//! node's link and of every run (a job's replicas on nodes run by agents).
//!
//! - A start of the plan (already persisted) becomes a `Run`: one `Assign` per
//!   replica, sent to each node's agent (or when it connects). The assignment epoch
//!   is the run's start time (`started_ms`, persisted, kept across restarts).
//! - A stop of the plan (cancel, preemption, lost node) becomes `Kill`s; the core
//!   learns the job ended (`JobFinished`) only when every replica has reported its
//!   exit (or its node is lost).
//! - A replica exiting non-zero tears the gang down; the job fails, or is submitted
//!   again while it has restarts left (`max_restarts`).
//! - A node silent for `node_timeout_ms` is lost (`NodeDown`): its replicas count as
//!   gone (its agent kills them itself after `fence_after_ms`, half the timeout, of
//!   silence), the rest of their gangs are killed, and the jobs are requeued. An
//!   agent that comes back lists what it runs; the server answers with the replicas
//!   it must kill (fencing by epoch) and sends what it should run.
//! - An unhealthy GPU drains its node (no new work); the node's `reason` says why.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use allot_api::agent::{AGENT_PROTOCOL, AgentMsg, Assignment, ExitInfo, GpuInfo, Register, ReplicaKey, ServerMsg};
use allot_api::{AgentView, JobEvent, JobState, Role};
use allot_core::{Event, JobId};
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::AppState;
use crate::config::AgentLinkConfig;
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::sched::{Cmd, Meta, Sched, now_ms};
use crate::store::{Changes, JobUpdate};

static CONN_SEQ: AtomicU64 = AtomicU64::new(1);

/// A piece of a followed log: text, or the end (with an error, if any).
#[derive(Debug)]
pub enum LogPiece {
    Data(String),
    End(Option<String>),
}

/// What the connection tasks and the logs endpoint tell the scheduling loop.
pub enum AgentCmd {
    Register { conn: u64, reg: Box<Register>, tx: mpsc::UnboundedSender<ServerMsg> },
    Msg { conn: u64, node: String, msg: Box<AgentMsg> },
    Gone { conn: u64, node: String },
    LogOpen { node: String, job: u64, rank: u32, follow: bool, reply: oneshot::Sender<ApiResult<mpsc::Receiver<LogPiece>>> },
}

// ----- the connection -----

/// `GET /v1/agent/connect`: the agent WebSocket (node or admin tokens).
pub async fn connect(
    State(s): State<AppState>,
    Auth(p): Auth,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    if !matches!(p.role, Role::Node | Role::Admin) {
        return Err(ApiError::forbidden("the agent link takes node tokens"));
    }
    let ws = ws.map_err(|e| ApiError::invalid("upgrade", format!("not a WebSocket request: {e}")))?;
    Ok(ws.max_message_size(64 << 20).on_upgrade(move |sock| serve(s, sock)))
}

async fn serve(s: AppState, sock: WebSocket) {
    let (mut sink, mut stream) = sock.split();
    let conn = CONN_SEQ.fetch_add(1, Ordering::Relaxed);
    // The first message registers the node.
    let first = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
    let reg = match first {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<AgentMsg>(t.as_str()) {
            Ok(AgentMsg::Register(r)) => r,
            Ok(_) => return refuse(&mut sink, "the first message must be `register`").await,
            Err(e) => return refuse(&mut sink, &format!("bad register message: {e}")).await,
        },
        _ => return,
    };
    let node = reg.node.clone();
    let (tx, mut rx) = mpsc::unbounded_channel::<ServerMsg>();
    if s.core.send(Cmd::Agent(AgentCmd::Register { conn, reg: Box::new(reg), tx })).is_err() {
        return;
    }
    let mut closing = s.closing.clone();
    loop {
        tokio::select! {
            _ = async { closing.wait_for(|c| *c).await.is_ok() } => break,
            m = stream.next() => match m {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<AgentMsg>(t.as_str()) {
                    Ok(msg) => {
                        if s.core.send(Cmd::Agent(AgentCmd::Msg { conn, node: node.clone(), msg: Box::new(msg) })).is_err() {
                            break;
                        }
                    }
                    Err(e) => tracing::warn!(%node, error = %e, "bad message from agent; ignored"),
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => {
                let Some(first) = out else { break };
                let mut done = matches!(first, ServerMsg::Refused { .. });
                let mut ok = feed(&mut sink, &first).await;
                while ok && !done {
                    match rx.try_recv() {
                        Ok(m) => {
                            done = matches!(m, ServerMsg::Refused { .. });
                            ok = feed(&mut sink, &m).await;
                        }
                        Err(_) => break,
                    }
                }
                if !ok || sink.flush().await.is_err() || done {
                    break;
                }
            }
        }
    }
    let _ = sink.close().await;
    let _ = s.core.send(Cmd::Agent(AgentCmd::Gone { conn, node }));
}

async fn feed(sink: &mut futures_util::stream::SplitSink<WebSocket, Message>, m: &ServerMsg) -> bool {
    match serde_json::to_string(m) {
        Ok(text) => sink.feed(Message::Text(text.into())).await.is_ok(),
        Err(_) => true,
    }
}

async fn refuse(sink: &mut futures_util::stream::SplitSink<WebSocket, Message>, message: &str) {
    let _ = feed(sink, &ServerMsg::Refused { message: message.to_string() }).await;
    let _ = sink.flush().await;
    let _ = sink.close().await;
}

// ----- state kept by the scheduling loop -----

#[derive(Clone, Debug, PartialEq)]
enum RepState {
    /// Decided; `sent` once the assignment went to a connected agent.
    Assigned {
        sent: bool,
    },
    Started,
    Exited(ExitInfo),
}

#[derive(Clone, Debug)]
struct Rep {
    node: String,
    gpus: Vec<u32>,
    local_rank: u32,
    node_rank: u32,
    state: RepState,
}

/// A job's current run on agent nodes.
#[derive(Debug)]
struct Run {
    epoch: i64,
    reps: Vec<Rep>,
    master_node: String,
    master_addr: String,
    master_port: u16,
    /// Jobs this run replaces; it is sent once they have exited.
    after: HashSet<u64>,
    /// After a restart: nodes that ran it before and must come back (or be lost)
    /// before it is sent elsewhere.
    blocked_by: HashSet<String>,
    /// The core asked to stop it (`Some(cancelled)`).
    stop: Option<bool>,
    /// A replica failed: the gang is being torn down.
    failing: bool,
    /// The replica whose failure tore the gang down, and how it ended.
    first_failure: Option<(usize, ExitInfo)>,
    grace_s: u64,
}

impl Run {
    fn held(&self) -> bool {
        !self.after.is_empty() || !self.blocked_by.is_empty()
    }

    fn all_exited(&self) -> bool {
        self.reps.iter().all(|r| matches!(r.state, RepState::Exited(_)))
    }
}

#[derive(Debug)]
struct NodeLink {
    conn: Option<(u64, mpsc::UnboundedSender<ServerMsg>)>,
    info: Option<Box<Register>>,
    last_seen: Instant,
    last_seen_ms: i64,
    /// Declared lost (`NodeDown` sent to the core).
    lost: bool,
    /// Drained by allot because a GPU is unhealthy.
    health_drained: bool,
    reason: Option<String>,
}

impl NodeLink {
    fn new(now: Instant) -> NodeLink {
        NodeLink { conn: None, info: None, last_seen: now, last_seen_ms: now_ms(), lost: false, health_drained: false, reason: None }
    }

    fn send(&self, m: ServerMsg) -> bool {
        self.conn.as_ref().is_some_and(|(_, tx)| tx.send(m).is_ok())
    }
}

/// The agent link's state in the scheduling loop.
pub struct Link {
    cfg: AgentLinkConfig,
    nodes: HashMap<String, NodeLink>,
    runs: HashMap<u64, Run>,
    ports: HashMap<String, BTreeSet<u16>>,
    logs: HashMap<u64, (String, mpsc::Sender<LogPiece>)>,
    next_stream: u64,
    failures: HashMap<u64, u32>,
    started: Instant,
    next_check: Instant,
    initialized: bool,
    /// Changes from reports, persisted together (then published and acknowledged).
    pending: Changes,
    pending_evs: Vec<JobEvent>,
    pending_acks: HashMap<String, u64>,
}

impl Link {
    pub fn new(cfg: AgentLinkConfig) -> Link {
        let now = Instant::now();
        Link {
            cfg,
            nodes: HashMap::new(),
            runs: HashMap::new(),
            ports: HashMap::new(),
            logs: HashMap::new(),
            next_stream: 1,
            failures: HashMap::new(),
            started: now,
            next_check: now,
            initialized: false,
            pending: Changes::default(),
            pending_evs: vec![],
            pending_acks: HashMap::new(),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.node_timeout_ms.max(100))
    }

    /// When the loop should next look for silent nodes.
    pub fn next_check(&self) -> Instant {
        self.next_check
    }

    fn managed(&self, node: &str) -> bool {
        self.cfg.required || self.nodes.contains_key(node)
    }

    pub fn connected_count(&self) -> usize {
        self.nodes.values().filter(|n| n.conn.is_some()).count()
    }

    pub fn lost_count(&self) -> usize {
        self.nodes.values().filter(|n| n.lost).count()
    }

    pub fn reason(&self, node: &str) -> Option<String> {
        self.nodes.get(node).and_then(|n| n.reason.clone())
    }

    pub fn view(&self, node: &str) -> Option<AgentView> {
        let n = self.nodes.get(node)?;
        let info = n.info.as_ref()?;
        Some(AgentView {
            connected: n.conn.is_some(),
            hostname: info.hostname.clone(),
            addr: info.addr.clone(),
            version: info.agent_version.clone(),
            emulated: info.emulated,
            last_seen_ms: n.last_seen_ms,
            gpus: info.gpus.clone(),
        })
    }

    fn take_port(&mut self, node: &str) -> u16 {
        let used = self.ports.entry(node.to_string()).or_default();
        let port = (29_500u16..60_000).find(|p| !used.contains(p)).unwrap_or(29_500);
        used.insert(port);
        port
    }

    fn free_port(&mut self, node: &str, port: u16) {
        if let Some(u) = self.ports.get_mut(node) {
            u.remove(&port);
        }
    }
}

fn assignment(run: &Run, key: ReplicaKey, rep: &Rep, meta: Option<&Meta>) -> Assignment {
    let submit = meta.and_then(|m| m.submit.clone());
    let s = submit.as_deref();
    Assignment {
        replica: key,
        tenant: meta.map(|m| m.tenant.clone()).unwrap_or_default(),
        command: s.map(|s| s.command.clone()).unwrap_or_default(),
        env: s.map(|s| s.env.clone()).unwrap_or_default(),
        workdir: s.and_then(|s| s.workdir.clone()),
        image: s.and_then(|s| s.image.clone()),
        world_size: run.reps.len() as u32,
        local_rank: rep.local_rank,
        node_rank: rep.node_rank,
        master_addr: run.master_addr.clone(),
        master_port: run.master_port,
        gpus: rep.gpus.clone(),
        walltime_s: s.and_then(|s| s.walltime_s),
        grace_s: run.grace_s,
    }
}

fn lost_exit(why: &str) -> ExitInfo {
    ExitInfo { code: None, signal: None, runtime_ms: 0, reason: "lost".into(), message: Some(why.to_string()) }
}

fn describe(e: &ExitInfo) -> String {
    let how = match (e.code, e.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => return format!("{}: {}", e.reason, e.message.as_deref().unwrap_or("no exit code")),
    };
    match &e.message {
        Some(m) => format!("{how} ({}: {m})", e.reason),
        None if e.reason != "exited" => format!("{how} ({})", e.reason),
        None => how,
    }
}

impl Sched {
    /// After the plan is persisted: a start on agent nodes becomes a run.
    pub(crate) fn start_run(&mut self, s: &allot_core::Start) {
        let cluster = self.core.cluster();
        let names: Vec<String> = s.slots.iter().map(|sl| cluster.node(sl.node).name.clone()).collect();
        if !names.iter().any(|n| self.link.managed(n)) {
            return;
        }
        let id = s.job.0;
        let epoch = self.meta.get(&id).and_then(|m| m.started_ms).unwrap_or_else(now_ms);
        let mut node_order: Vec<&str> = vec![];
        let mut reps = Vec::with_capacity(s.slots.len());
        for (sl, name) in s.slots.iter().zip(&names) {
            let gpus: Vec<u32> =
                if sl.milli > 0 { vec![u32::from(sl.frac_gpu)] } else { (0..64).filter(|g| sl.gpus & (1u64 << g) != 0).collect() };
            let node_rank = match node_order.iter().position(|n| *n == name) {
                Some(p) => p,
                None => {
                    node_order.push(name);
                    node_order.len() - 1
                }
            } as u32;
            let local_rank = reps.iter().filter(|r: &&Rep| r.node == *name).count() as u32;
            reps.push(Rep { node: name.clone(), gpus, local_rank, node_rank, state: RepState::Assigned { sent: false } });
        }
        let master_node = names[0].clone();
        let master_addr =
            self.link.nodes.get(&master_node).and_then(|n| n.info.as_ref()).map(|i| i.addr.clone()).unwrap_or(master_node.clone());
        let master_port = self.link.take_port(&master_node);
        let after: HashSet<u64> = s.after.iter().map(|j| j.0).filter(|j| self.link.runs.contains_key(j)).collect();
        let blocked_by: HashSet<String> = match self.restoring.get(&id) {
            Some(before) if *before != names => {
                before.iter().filter(|n| self.link.nodes.get(*n).is_none_or(|l| l.conn.is_none() && !l.lost)).cloned().collect()
            }
            _ => HashSet::new(),
        };
        let grace_s = self.meta.get(&id).and_then(|m| m.submit.as_ref()).map_or(10, |_| 10);
        let run = Run {
            epoch,
            reps,
            master_node,
            master_addr,
            master_port,
            after,
            blocked_by,
            stop: None,
            failing: false,
            first_failure: None,
            grace_s,
        };
        self.link.runs.insert(id, run);
        self.dispatch(id);
    }

    /// Sends the run's assignments to the connected agents (unless it is held).
    fn dispatch(&mut self, id: u64) {
        let Some(run) = self.link.runs.get(&id) else { return };
        if run.held() || run.stop.is_some() || run.failing {
            return;
        }
        let meta = self.meta.get(&id);
        let mut sent = vec![];
        for (rank, rep) in run.reps.iter().enumerate() {
            if rep.state != (RepState::Assigned { sent: false }) {
                continue;
            }
            let Some(n) = self.link.nodes.get(&rep.node) else { continue };
            let key = ReplicaKey { job: id, epoch: run.epoch, rank: rank as u32 };
            if n.send(ServerMsg::Assign(Box::new(assignment(run, key, rep, meta)))) {
                sent.push(rank);
            }
        }
        if let Some(run) = self.link.runs.get_mut(&id) {
            for r in sent {
                run.reps[r].state = RepState::Assigned { sent: true };
            }
        }
    }

    /// A stop of the plan: `false` when no agent runs the job (done at once then).
    pub(crate) async fn stop_run(&mut self, id: u64, grace_s: u64, cancelled: bool) -> bool {
        let Some(run) = self.link.runs.get_mut(&id) else { return false };
        run.stop = Some(cancelled);
        self.kill_run(id, grace_s, if cancelled { "cancelled" } else { "stopped by the scheduler" });
        self.check_done(id).await;
        true
    }

    /// Kills every replica of the run not known gone; replicas never sent count as exited.
    fn kill_run(&mut self, id: u64, grace_s: u64, reason: &str) {
        let Some(run) = self.link.runs.get_mut(&id) else { return };
        let epoch = run.epoch;
        for (rank, rep) in run.reps.iter_mut().enumerate() {
            let key = ReplicaKey { job: id, epoch, rank: rank as u32 };
            match rep.state {
                RepState::Exited(_) => {}
                RepState::Assigned { sent: false } => {
                    rep.state = RepState::Exited(ExitInfo {
                        code: None,
                        signal: None,
                        runtime_ms: 0,
                        reason: "killed".into(),
                        message: Some("stopped before it started".into()),
                    });
                }
                _ => {
                    let node = self.link.nodes.get(&rep.node);
                    match node {
                        Some(n) if !n.lost => {
                            // Sent now, or on reconnect (see `register`).
                            n.send(ServerMsg::Kill { replica: key, grace_s, reason: reason.to_string() });
                        }
                        _ => rep.state = RepState::Exited(lost_exit("its node is lost")),
                    }
                }
            }
        }
    }

    /// Drops the run of a job an admin reported finished (killing what is left).
    pub(crate) fn forget_run(&mut self, id: u64) {
        if self.link.runs.contains_key(&id) {
            self.kill_run(id, 0, "finished by an admin");
            if let Some(run) = self.link.runs.remove(&id) {
                let (node, port) = (run.master_node.clone(), run.master_port);
                self.link.free_port(&node, port);
            }
            self.release_waiting(id);
        }
    }

    /// Ends the job once every replica is gone, as the core's state says.
    pub(crate) async fn check_done(&mut self, id: u64) {
        let Some(run) = self.link.runs.get(&id) else { return };
        if !run.all_exited() {
            return;
        }
        let state = self.core.job(JobId(id)).map(|j| j.state);
        if state == Some(allot_core::JobState::Stopping) && run.stop.is_none() {
            return; // the plan's stop comes next pass
        }
        let now = now_ms();
        let mut ch = std::mem::take(&mut self.link.pending);
        let mut evs = std::mem::take(&mut self.link.pending_evs);
        match state {
            Some(allot_core::JobState::Stopping) => {
                let cancelled = run.stop.unwrap_or(false);
                self.finish_job(now, id, cancelled, &mut ch, &mut evs);
            }
            Some(allot_core::JobState::Running) => {
                let failed = run.first_failure.clone().or_else(|| {
                    run.reps.iter().enumerate().find_map(|(rank, r)| match &r.state {
                        RepState::Exited(e) if !e.success() => Some((rank, e.clone())),
                        _ => None,
                    })
                });
                match failed {
                    None => {
                        self.finish_job(now, id, false, &mut ch, &mut evs);
                    }
                    Some((rank, e)) => self.fail_run(now, id, rank, &e, &mut ch, &mut evs),
                }
            }
            _ => {}
        }
        if let Some(run) = self.link.runs.remove(&id) {
            self.link.free_port(&run.master_node, run.master_port);
        }
        // Persisted with the other reports of this round (`flush_link`).
        self.link.pending = ch;
        self.link.pending_evs = evs;
        self.dirty = true;
        self.release_waiting(id);
    }

    /// Persists what reports changed, then publishes it and acknowledges the reports.
    pub(crate) async fn flush_link(&mut self) {
        if self.link.pending.is_empty() && self.link.pending_evs.is_empty() && self.link.pending_acks.is_empty() {
            return;
        }
        let ch = std::mem::take(&mut self.link.pending);
        let evs = std::mem::take(&mut self.link.pending_evs);
        self.persist(&ch).await;
        self.publish(evs);
        for (node, seq) in std::mem::take(&mut self.link.pending_acks) {
            if let Some(n) = self.link.nodes.get(&node) {
                n.send(ServerMsg::Ack { seq });
            }
        }
    }

    /// A run failed: the job fails, or is submitted again while it has restarts left.
    fn fail_run(&mut self, now: i64, id: u64, rank: usize, e: &ExitInfo, ch: &mut Changes, evs: &mut Vec<JobEvent>) {
        let jid = JobId(id);
        let submitted = self.core.job(jid).map(|j| j.submitted).unwrap_or(now);
        let meta = self.meta.get(&id).map(|m| (m.tenant.clone(), m.project.clone(), m.user.clone(), m.submit.clone()));
        self.finish_job(now, id, false, ch, evs);
        let why = format!("replica {rank} failed: {}", describe(e));
        let max = meta.as_ref().and_then(|m| m.3.as_ref()).and_then(|s| s.max_restarts).unwrap_or(0);
        let n = self.link.failures.entry(id).or_insert(0);
        *n += 1;
        let n = *n;
        let mut state = JobState::Failed;
        let mut message = why.clone();
        if n <= max
            && let Some((tenant, project, user, Some(submit))) = meta
        {
            match crate::validate::to_spec(&submit, &user, "") {
                Ok(mut spec) => {
                    spec.id = jid;
                    if self.core.on_event(submitted, Event::JobSubmitted(spec)).is_ok() {
                        self.meta.insert(id, Meta { tenant, project, user, started_ms: None, cancelled: false, submit: Some(submit) });
                        state = JobState::Pending;
                        message = format!("{why}; restarting ({n} of {max})");
                    }
                }
                Err(err) => message = format!("{why}; cannot restart: {}", err.message),
            }
        }
        if state == JobState::Failed {
            self.link.failures.remove(&id);
        }
        if let Some(u) = ch.jobs.iter_mut().rev().find(|u| u.id == id) {
            u.state = state.as_str().to_string();
            u.message = Some(message);
            if state == JobState::Pending {
                u.ended_ms = None;
            }
        } else {
            ch.jobs.push(JobUpdate { message: Some(message), ..JobUpdate::state(id, state.as_str()) });
        }
        if let Some(ev) = evs.iter_mut().rev().find(|ev| ev.id == id) {
            ev.state = state;
        }
    }

    /// Runs waiting for `done` to exit may go now.
    fn release_waiting(&mut self, done: u64) {
        let ready: Vec<u64> = self.link.runs.iter_mut().filter_map(|(id, r)| (r.after.remove(&done) && !r.held()).then_some(*id)).collect();
        for id in ready {
            self.dispatch(id);
        }
    }

    /// Runs held until `node` came back (or was lost) may go now.
    fn release_blocked(&mut self, node: &str) {
        let ready: Vec<u64> =
            self.link.runs.iter_mut().filter_map(|(id, r)| (r.blocked_by.remove(node) && !r.held()).then_some(*id)).collect();
        for id in ready {
            self.dispatch(id);
        }
    }

    pub(crate) async fn agent_cmd(&mut self, cmd: AgentCmd) {
        match cmd {
            AgentCmd::Register { conn, reg, tx } => self.register(conn, reg, tx).await,
            AgentCmd::Msg { conn, node, msg } => {
                let Some(n) = self.link.nodes.get_mut(&node) else { return };
                if n.conn.as_ref().is_none_or(|(c, _)| *c != conn) {
                    return; // a replaced connection
                }
                n.last_seen = Instant::now();
                n.last_seen_ms = now_ms();
                self.agent_msg(&node, *msg).await;
            }
            AgentCmd::Gone { conn, node } => {
                if let Some(n) = self.link.nodes.get_mut(&node)
                    && n.conn.as_ref().is_some_and(|(c, _)| *c == conn)
                {
                    n.conn = None;
                    tracing::info!(%node, "agent disconnected");
                }
            }
            AgentCmd::LogOpen { node, job, rank, follow, reply } => {
                let (tx, rx) = mpsc::channel(64);
                let stream = self.link.next_stream;
                self.link.next_stream += 1;
                let sent = self.link.nodes.get(&node).is_some_and(|n| n.send(ServerMsg::Log { stream, job, rank, offset: 0, follow }));
                if sent {
                    self.link.logs.insert(stream, (node, tx));
                    let _ = reply.send(Ok(rx));
                } else {
                    let _ = reply.send(Err(ApiError::unavailable(format!("the agent of node `{node}` is not connected"))));
                }
            }
        }
    }

    async fn register(&mut self, conn: u64, reg: Box<Register>, tx: mpsc::UnboundedSender<ServerMsg>) {
        let node = reg.node.clone();
        if reg.protocol != AGENT_PROTOCOL {
            let _ =
                tx.send(ServerMsg::Refused { message: format!("agent protocol {} is not this server's ({AGENT_PROTOCOL})", reg.protocol) });
            return;
        }
        let Some(idx) = self.core.cluster().node_index(&node) else {
            let _ = tx.send(ServerMsg::Refused { message: format!("node `{node}` is not in the cluster config") });
            return;
        };
        let cfg_gpus = self.core.cluster().node(idx).gpus;
        if reg.gpus.len() as u32 != cfg_gpus {
            tracing::warn!(%node, reported = reg.gpus.len(), configured = cfg_gpus, "agent reports another GPU count than the config");
        }
        let now = Instant::now();
        let was_lost = self.link.nodes.get(&node).is_some_and(|n| n.lost);
        let link = self.link.nodes.entry(node.clone()).or_insert_with(|| NodeLink::new(now));
        link.conn = Some((conn, tx));
        link.last_seen = now;
        link.last_seen_ms = now_ms();
        tracing::info!(%node, hostname = %reg.hostname, gpus = reg.gpus.len(), running = reg.running.len(), "agent registered");
        // Fencing: what it runs that is not (or no longer) its own is killed.
        let running: HashSet<ReplicaKey> = reg.running.iter().cloned().collect();
        let mut kill = vec![];
        for key in &reg.running {
            let ok = self.link.runs.get(&key.job).is_some_and(|r| {
                r.epoch == key.epoch
                    && r.reps.get(key.rank as usize).is_some_and(|rep| rep.node == node && !matches!(rep.state, RepState::Exited(_)))
            });
            if ok {
                if let Some(rep) = self.link.runs.get_mut(&key.job).and_then(|r| r.reps.get_mut(key.rank as usize)) {
                    rep.state = RepState::Started;
                }
            } else {
                kill.push(key.clone());
            }
        }
        let timeout = self.link.cfg.node_timeout_ms;
        let link = self.link.nodes.get_mut(&node).expect("inserted above");
        link.send(ServerMsg::Welcome { heartbeat_ms: (timeout / 6).max(20), fence_after_ms: (timeout / 2).max(50), kill });
        let gpus = reg.gpus.clone();
        link.info = Some(reg);
        // What it should run: unsent or unconfirmed assignments; kills of stopping runs.
        let mut resend: Vec<(u64, usize)> = vec![];
        for (id, run) in &self.link.runs {
            for (rank, rep) in run.reps.iter().enumerate() {
                if rep.node != node {
                    continue;
                }
                let key = ReplicaKey { job: *id, epoch: run.epoch, rank: rank as u32 };
                if matches!(rep.state, RepState::Assigned { .. }) && !running.contains(&key) {
                    resend.push((*id, rank));
                }
            }
        }
        for (id, rank) in resend {
            if let Some(run) = self.link.runs.get_mut(&id) {
                run.reps[rank].state = RepState::Assigned { sent: false };
            }
        }
        let ids: Vec<u64> = self.link.runs.iter().filter(|(_, r)| r.reps.iter().any(|p| p.node == node)).map(|(id, _)| *id).collect();
        for id in &ids {
            let (stop, failing, grace) = {
                let r = &self.link.runs[id];
                (r.stop, r.failing, r.grace_s)
            };
            if stop.is_some() || failing {
                self.kill_run(*id, grace, "stopped while the agent was away");
            } else {
                self.dispatch(*id);
            }
        }
        for id in ids {
            self.check_done(id).await;
        }
        if was_lost {
            if let Some(l) = self.link.nodes.get_mut(&node) {
                l.lost = false;
                l.reason = None;
            }
            if let Err(e) = self.core.on_event(now_ms(), Event::NodeUp(node.clone())) {
                tracing::warn!(%node, error = %e, "node up refused");
            }
            self.dirty = true;
        }
        self.release_blocked(&node);
        self.gpu_health(&node, &gpus);
    }

    async fn agent_msg(&mut self, node: &str, msg: AgentMsg) {
        match msg {
            AgentMsg::Register(_) => tracing::warn!(%node, "second register on one connection; ignored"),
            AgentMsg::Heartbeat { .. } => {
                if let Some(n) = self.link.nodes.get(node) {
                    n.send(ServerMsg::Pong { at_ms: now_ms() });
                }
            }
            AgentMsg::Gpus { gpus } => {
                if let Some(info) = self.link.nodes.get_mut(node).and_then(|n| n.info.as_mut()) {
                    info.gpus = gpus.clone();
                }
                self.gpu_health(node, &gpus);
            }
            AgentMsg::Started { seq, replica, .. } => {
                let ours = self.link.runs.get_mut(&replica.job).and_then(|r| {
                    (r.epoch == replica.epoch).then_some(())?;
                    r.reps.get_mut(replica.rank as usize).filter(|rep| rep.node == node)
                });
                match ours {
                    Some(rep) => {
                        if matches!(rep.state, RepState::Assigned { .. }) {
                            rep.state = RepState::Started;
                        }
                    }
                    None => {
                        // Not its assignment (any more): fenced.
                        if let Some(n) = self.link.nodes.get(node) {
                            n.send(ServerMsg::Kill { replica, grace_s: 0, reason: "not assigned to this node".into() });
                        }
                    }
                }
                self.ack(node, seq);
            }
            AgentMsg::Exited { seq, replica, exit, .. } => {
                let id = replica.job;
                let mut teardown = None;
                if let Some(run) = self.link.runs.get_mut(&id)
                    && run.epoch == replica.epoch
                    && let Some(rep) = run.reps.get_mut(replica.rank as usize)
                    && rep.node == node
                    && !matches!(rep.state, RepState::Exited(_))
                {
                    let failed = !exit.success();
                    if failed && run.stop.is_none() && !run.failing {
                        run.first_failure = Some((replica.rank as usize, exit.clone()));
                    }
                    rep.state = RepState::Exited(exit);
                    if failed && run.stop.is_none() && !run.failing {
                        run.failing = true;
                        teardown = Some(run.grace_s);
                    }
                }
                if let Some(grace) = teardown {
                    self.kill_run(id, grace, "another replica of the gang failed");
                }
                self.check_done(id).await;
                self.ack(node, seq);
            }
            AgentMsg::Log { stream, data, eof, error } => {
                let Some((_, tx)) = self.link.logs.get(&stream) else { return };
                let mut gone = false;
                if !data.is_empty() {
                    gone = tx.try_send(LogPiece::Data(data)).is_err() && tx.is_closed();
                }
                if eof {
                    let _ = tx.try_send(LogPiece::End(error));
                    self.link.logs.remove(&stream);
                } else if gone || tx.is_closed() {
                    self.link.logs.remove(&stream);
                    if let Some(n) = self.link.nodes.get(node) {
                        n.send(ServerMsg::LogCancel { stream });
                    }
                }
            }
        }
    }

    /// Acknowledged once what it changed is persisted (`flush_link`).
    fn ack(&mut self, node: &str, seq: u64) {
        let a = self.link.pending_acks.entry(node.to_string()).or_insert(0);
        *a = (*a).max(seq);
    }

    /// Drains a node with an unhealthy GPU (no new work), undrains it when healthy again.
    fn gpu_health(&mut self, node: &str, gpus: &[GpuInfo]) {
        let bad: Vec<String> = gpus
            .iter()
            .filter(|g| !g.healthy)
            .map(|g| format!("GPU {} ({}): {}", g.index, g.uuid, g.reason.as_deref().unwrap_or("unhealthy")))
            .collect();
        let Some(idx) = self.core.cluster().node_index(node) else { return };
        let drained = self.core.cluster().status(idx).drained;
        let Some(link) = self.link.nodes.get_mut(node) else { return };
        if !bad.is_empty() {
            let reason = format!("drained: unhealthy {}", bad.join("; "));
            if link.health_drained || !drained {
                link.reason = Some(reason);
            }
            if !drained {
                link.health_drained = true;
                tracing::warn!(%node, "unhealthy GPU: node drained");
                let _ = self.core.on_event(now_ms(), Event::NodeDrained(node.to_string()));
                self.dirty = true;
            }
        } else if link.health_drained {
            link.health_drained = false;
            link.reason = None;
            let _ = self.core.on_event(now_ms(), Event::NodeUndrained(node.to_string()));
            self.dirty = true;
        }
    }

    /// Declares silent nodes lost.
    pub(crate) async fn agents_tick(&mut self) {
        let now = Instant::now();
        let timeout = self.link.timeout();
        self.link.next_check = now + (timeout / 8).max(Duration::from_millis(20));
        if self.link.cfg.required && !self.link.initialized {
            self.link.initialized = true;
            let start = self.link.started;
            let names: Vec<String> = self.core.cluster().nodes.iter().map(|n| n.name.clone()).collect();
            for name in names {
                self.link.nodes.entry(name).or_insert_with(|| NodeLink::new(start));
            }
        }
        let silent: Vec<String> = self
            .link
            .nodes
            .iter()
            .filter(|(_, n)| !n.lost && now.duration_since(n.last_seen) >= timeout)
            .map(|(name, _)| name.clone())
            .collect();
        for node in silent {
            let Some(link) = self.link.nodes.get_mut(&node) else { continue };
            link.lost = true;
            link.conn = None;
            let secs = timeout.as_secs_f64();
            link.reason = Some(format!("down: no word from its agent for {secs:.1} s"));
            tracing::warn!(%node, "agent silent past the node timeout: node lost");
            let ids: Vec<u64> = self.link.runs.iter().filter(|(_, r)| r.reps.iter().any(|p| p.node == node)).map(|(id, _)| *id).collect();
            for id in &ids {
                if let Some(run) = self.link.runs.get_mut(id) {
                    for rep in run.reps.iter_mut().filter(|r| r.node == node) {
                        if !matches!(rep.state, RepState::Exited(_)) {
                            rep.state = RepState::Exited(lost_exit("its node is lost"));
                        }
                    }
                }
            }
            if let Err(e) = self.core.on_event(now_ms(), Event::NodeDown(node.clone())) {
                tracing::warn!(%node, error = %e, "node down refused");
            }
            self.dirty = true;
            for id in ids {
                // The core stops them (lost node): the rest of each gang is killed
                // when the plan's stop arrives; check_done waits for it.
                self.check_done(id).await;
            }
            self.release_blocked(&node);
        }
        // Drop log streams whose reader went away.
        let closed: Vec<u64> = self.link.logs.iter().filter(|(_, (_, tx))| tx.is_closed()).map(|(s, _)| *s).collect();
        for s in closed {
            if let Some((node, _)) = self.link.logs.remove(&s)
                && let Some(n) = self.link.nodes.get(&node)
            {
                n.send(ServerMsg::LogCancel { stream: s });
            }
        }
    }
}

// ----- logs -----

/// `GET /v1/jobs/{id}/logs?rank=0&follow=true`: a replica's stdout and stderr, from
/// the agent of the node it ran on (text; with `follow`, until it has exited).
pub async fn job_logs(
    State(s): State<AppState>,
    Auth(p): Auth,
    crate::extract::Segment(raw): crate::extract::Segment,
    mut q: crate::extract::Params,
) -> ApiResult<Response> {
    let follow = match q.take("follow").as_deref() {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(v) => return Err(ApiError::invalid("follow", format!("`{v}` is not true or false"))),
    };
    let rank = q.take_parsed::<u32>("rank", "a replica rank")?.unwrap_or(0);
    q.finish()?;
    let row = crate::api::visible_job(&s, &p, &raw).await?;
    let placement: allot_api::PlacementView = row
        .placement
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(|| ApiError::not_found(format!("job {} has not run", row.id)))?;
    let node = placement
        .slots
        .get(rank as usize)
        .ok_or_else(|| ApiError::invalid("rank", format!("job {} has {} replicas", row.id, placement.slots.len())))?
        .node
        .clone();
    let (reply, rx) = oneshot::channel();
    s.core
        .send(Cmd::Agent(AgentCmd::LogOpen { node, job: row.id, rank, follow, reply }))
        .map_err(|_| ApiError::unavailable("scheduler stopped"))?;
    let rx = rx.await.map_err(|_| ApiError::unavailable("scheduler stopped"))??;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Some(LogPiece::Data(d)) => Some((Ok::<_, std::convert::Infallible>(bytes::Bytes::from(d)), rx)),
            Some(LogPiece::End(Some(err))) => Some((Ok(bytes::Bytes::from(format!("\n[allot: {err}]\n"))), rx)),
            _ => None,
        }
    });
    Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(axum::body::Body::from_stream(stream))
        .map_err(|e| ApiError::new(crate::error::ErrorKind::Internal, e.to_string()))
}
