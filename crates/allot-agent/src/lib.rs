//! allot-agent: runs on every GPU server. It connects out to the server (a
//! WebSocket on the server's HTTP port, `allot_api::agent`), registers its node and
//! GPUs, runs the replicas it is assigned as supervised process groups, reports
//! their start and exit, and keeps running them while the server is away.
//!
//! - Reports are kept until the server acknowledges them and are sent again after
//!   every reconnect (with backoff, over the list of server URLs).
//! - Fencing: when the server has been unreachable for `fence_after_ms` (half the
//!   server's node timeout, told at registration) the agent kills all its replicas:
//!   the server will have declared the node lost and may run them elsewhere. An
//!   agent that restarts adopts the replicas a previous agent left running (from
//!   the records in its state folder) and lists them at registration; the server
//!   answers with those it must kill.
//! - One process can emulate several nodes (`emulate_nodes`), each with its own
//!   connection and state folder.

pub mod config;
pub mod exec;
pub mod gpu;
pub mod spawn;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use allot_api::agent::{AGENT_CONNECT_PATH, AGENT_PROTOCOL, AgentMsg, Assignment, ExitInfo, GpuInfo, Register, ReplicaKey, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::config::AgentConfig;
use crate::exec::{Dirs, Launcher, Record};
use crate::gpu::EmulatedGpus;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Gpu(String),
    #[error("{0}")]
    Config(String),
    #[error("state folder {path}: {source}")]
    State { path: PathBuf, source: std::io::Error },
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// How to run an agent.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Server base URLs (`http://host:port`), tried in turn.
    pub servers: Vec<String>,
    pub token: String,
    pub config: AgentConfig,
    /// Node name (overrides the config); with `emulate_nodes`, a pattern with `{i}`
    /// (or a prefix: `NAME-{i}`).
    pub name: Option<String>,
    pub emulate_gpus: Option<EmulatedGpus>,
    pub emulate_nodes: Option<u32>,
    /// Where records, logs and private working folders go (overrides the config).
    pub state_dir: Option<PathBuf>,
}

/// A running node (for tests and the benchmark: change GPU health).
#[derive(Clone)]
pub struct NodeHandle {
    pub name: String,
    gpus: Arc<Mutex<Vec<GpuInfo>>>,
    changed: Arc<Notify>,
}

impl NodeHandle {
    /// Marks an (emulated) GPU healthy or not; the server hears of it at once.
    pub fn set_gpu_health(&self, index: u32, healthy: bool, reason: Option<&str>) {
        let mut g = self.gpus.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(gpu) = g.iter_mut().find(|g| g.index == index) {
            gpu.healthy = healthy;
            gpu.reason = reason.map(str::to_string);
        }
        drop(g);
        self.changed.notify_one();
    }

    pub fn gpus(&self) -> Vec<GpuInfo> {
        self.gpus.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A started agent: one task per node.
pub struct Agent {
    pub nodes: Vec<NodeHandle>,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Stops the agent as `kill -9` would: connections drop, replicas keep running
    /// (a later agent with the same state folder adopts them).
    pub fn abort(self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Waits until every node task ends (never, unless they fail).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

/// Node names: one, or `count` from a pattern with `{i}` (else `NAME-{i}`).
pub fn node_names(name: &str, count: Option<u32>) -> Vec<String> {
    match count {
        None => vec![name.to_string()],
        Some(n) => {
            let pat = if name.contains("{i}") { name.to_string() } else { format!("{name}-{{i}}") };
            (0..n).map(|i| pat.replace("{i}", &i.to_string())).collect()
        }
    }
}

/// Starts the agent's nodes (in the current tokio runtime).
pub fn start(opts: AgentOptions) -> Result<Agent, AgentError> {
    if opts.servers.is_empty() {
        return Err(AgentError::Config("no server URL".into()));
    }
    for s in &opts.servers {
        if !(s.starts_with("http://") || s.starts_with("ws://")) {
            return Err(AgentError::Config(format!(
                "server URL `{s}`: this agent speaks http:// (ws://) only; put TLS in front of the agent link with a local proxy"
            )));
        }
    }
    let host = hostname();
    let base = opts.name.clone().or_else(|| opts.config.name.clone()).unwrap_or_else(|| host.clone());
    let names = node_names(&base, opts.emulate_nodes);
    if opts.emulate_nodes.is_some() && opts.emulate_gpus.is_none() {
        return Err(AgentError::Config("--emulate-nodes needs --emulate-gpus".into()));
    }
    let real = match &opts.emulate_gpus {
        Some(_) => None,
        None => Some(gpu::discover()?),
    };
    let state_dir =
        opts.state_dir.clone().or_else(|| opts.config.state_dir.clone()).unwrap_or_else(|| PathBuf::from("/var/lib/allot-agent"));
    let mut base_env = BTreeMap::new();
    for k in ["PATH", "LANG", "LC_ALL", "TZ"] {
        if let Ok(v) = std::env::var(k) {
            base_env.insert(k.to_string(), v);
        }
    }
    base_env.entry("PATH".into()).or_insert_with(|| "/usr/local/bin:/usr/bin:/bin".into());
    let common = Arc::new(Common {
        servers: opts.servers.clone(),
        token: opts.token.clone(),
        hostname: host.clone(),
        addr: opts.config.addr.clone().unwrap_or_else(|| host.clone()),
        cpus: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
        memory_mib: memory_mib(),
        labels: opts.config.labels.clone(),
        at: opts.config.at.clone(),
        emulated: opts.emulate_gpus.is_some(),
    });
    let mut nodes = vec![];
    let mut tasks = vec![];
    for name in names {
        let dirs = Dirs::create(&state_dir.join(&name)).map_err(|source| AgentError::State { path: state_dir.join(&name), source })?;
        let gpus = match (&opts.emulate_gpus, &real) {
            (Some(e), _) => gpu::emulated(&name, e),
            (None, Some(r)) => r.clone(),
            (None, None) => vec![],
        };
        let handle = NodeHandle { name: name.clone(), gpus: Arc::new(Mutex::new(gpus)), changed: Arc::new(Notify::new()) };
        let launcher = Launcher {
            node: name.clone(),
            dirs,
            users: opts.config.users.clone(),
            container: opts.config.container.clone(),
            base_env: base_env.clone(),
        };
        let node = Node::new(name, common.clone(), launcher, handle.clone());
        tasks.push(tokio::spawn(node.run()));
        if real.is_some() {
            tasks.push(tokio::spawn(watch_health(handle.clone())));
        }
        nodes.push(handle);
    }
    Ok(Agent { nodes, tasks })
}

/// Polls NVML health every 30 s.
async fn watch_health(h: NodeHandle) {
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let Ok(Ok(now)) = tokio::task::spawn_blocking(gpu::discover).await else { continue };
        let mut g = h.gpus.lock().unwrap_or_else(|e| e.into_inner());
        if *g != now {
            *g = now;
            drop(g);
            h.changed.notify_one();
        }
    }
}

struct Common {
    servers: Vec<String>,
    token: String,
    hostname: String,
    addr: String,
    cpus: u32,
    memory_mib: u64,
    labels: BTreeMap<String, String>,
    at: Option<String>,
    emulated: bool,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

enum Ev {
    Exited(ReplicaKey, ExitInfo),
    /// A message to send if connected (log pieces).
    Send(AgentMsg),
    LogDone(u64),
}

struct Proc {
    kill: mpsc::UnboundedSender<u64>,
}

struct Node {
    name: String,
    common: Arc<Common>,
    launcher: Launcher,
    handle: NodeHandle,
    procs: HashMap<ReplicaKey, Proc>,
    /// Recently ended replicas (an assignment seen again is not run twice).
    done: HashMap<ReplicaKey, ExitInfo>,
    done_order: VecDeque<ReplicaKey>,
    /// Unacknowledged reports by sequence number, with the replica whose record
    /// goes once an exit is acknowledged.
    outbox: BTreeMap<u64, (AgentMsg, Option<ReplicaKey>)>,
    next_seq: u64,
    ev_tx: mpsc::UnboundedSender<Ev>,
    ev_rx: mpsc::UnboundedReceiver<Ev>,
    heartbeat: Duration,
    fence_after: Duration,
    last_contact: Instant,
    logs: HashMap<u64, JoinHandle<()>>,
    running: Arc<Mutex<HashSet<(u64, u32)>>>,
    server_ix: usize,
}

const DONE_KEEP: usize = 20_000;

impl Node {
    fn new(name: String, common: Arc<Common>, launcher: Launcher, handle: NodeHandle) -> Node {
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        Node {
            name,
            common,
            launcher,
            handle,
            procs: HashMap::new(),
            done: HashMap::new(),
            done_order: VecDeque::new(),
            outbox: BTreeMap::new(),
            next_seq: 1,
            ev_tx,
            ev_rx,
            heartbeat: Duration::from_secs(5),
            fence_after: Duration::from_secs(15),
            last_contact: Instant::now(),
            logs: HashMap::new(),
            running: Arc::new(Mutex::new(HashSet::new())),
            server_ix: 0,
        }
    }

    /// Takes over the replicas a previous agent left (records in `run/`).
    fn adopt(&mut self) {
        let Ok(rd) = std::fs::read_dir(&self.launcher.dirs.run) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let Some(r) = std::fs::read_to_string(&p).ok().and_then(|t| serde_json::from_str::<Record>(&t).ok()) else {
                let _ = std::fs::remove_file(&p);
                continue;
            };
            let alive = r.start_ticks != 0 && exec::proc_start_ticks(r.pid) == Some(r.start_ticks);
            if alive {
                tracing::info!(node = %self.name, job = r.replica.job, rank = r.replica.rank, pid = r.pid, "adopted a running replica");
                self.supervise_adopted(r);
            } else {
                let exit = exec::exit_of_adopted(&r, "exited");
                self.finished(r.replica, exit);
            }
        }
    }

    fn supervise_adopted(&mut self, r: Record) {
        let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
        let key = r.replica.clone();
        self.running.lock().unwrap_or_else(|e| e.into_inner()).insert((key.job, key.rank));
        self.procs.insert(key.clone(), Proc { kill: tx });
        let ev = self.ev_tx.clone();
        tokio::spawn(async move {
            let mut reason = "exited";
            let wait = exec::wait_adopted(r.pid, r.start_ticks);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut wait => break,
                    g = rx.recv() => match g {
                        Some(grace) => {
                            reason = "killed";
                            exec::terminate_group(r.pid, Duration::from_secs(grace));
                        }
                        None => std::future::pending::<()>().await,
                    },
                }
            }
            exec::signal_group(r.pid, libc::SIGKILL);
            let _ = ev.send(Ev::Exited(key, exec::exit_of_adopted(&r, reason)));
        });
    }

    fn supervise(&mut self, a: &Assignment, sp: exec::Spawned) {
        let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
        let key = a.replica.clone();
        self.running.lock().unwrap_or_else(|e| e.into_inner()).insert((key.job, key.rank));
        self.procs.insert(key.clone(), Proc { kill: tx });
        let ev = self.ev_tx.clone();
        let mut child = sp.child;
        let pgid = sp.record.pid;
        let start = Instant::now();
        let deadline = exec::deadline(start, a.walltime_s);
        let grace = a.grace_s;
        tokio::spawn(async move {
            let mut reason = "exited";
            let status = loop {
                let walltime = async {
                    match deadline {
                        Some(d) if reason == "exited" => tokio::time::sleep_until(d.into()).await,
                        _ => std::future::pending().await,
                    }
                };
                tokio::select! {
                    st = child.wait() => break st,
                    g = rx.recv() => match g {
                        Some(g) => {
                            if reason == "exited" {
                                reason = "killed";
                            }
                            exec::terminate_group(pgid, Duration::from_secs(g));
                        }
                        None => std::future::pending::<()>().await,
                    },
                    _ = walltime => {
                        reason = "walltime";
                        exec::terminate_group(pgid, Duration::from_secs(grace));
                    }
                }
            };
            // Whatever the leader left behind in its group goes with it.
            exec::signal_group(pgid, libc::SIGKILL);
            let exit = match status {
                Ok(st) => exec::exit_of(st, start.elapsed(), reason),
                Err(e) => ExitInfo {
                    code: None,
                    signal: None,
                    runtime_ms: start.elapsed().as_millis() as u64,
                    reason: "lost".into(),
                    message: Some(format!("cannot wait for it: {e}")),
                },
            };
            let _ = ev.send(Ev::Exited(key, exit));
        });
    }

    /// A replica ended: remembered, reported (kept until acknowledged).
    fn finished(&mut self, key: ReplicaKey, exit: ExitInfo) {
        self.procs.remove(&key);
        self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&(key.job, key.rank));
        self.remember(key.clone(), exit.clone());
        let seq = self.seq();
        self.outbox.insert(seq, (AgentMsg::Exited { seq, replica: key.clone(), exit, at_ms: now_ms() }, Some(key)));
    }

    fn remember(&mut self, key: ReplicaKey, exit: ExitInfo) {
        if self.done.insert(key.clone(), exit).is_none() {
            self.done_order.push_back(key);
        }
        while self.done_order.len() > DONE_KEEP {
            if let Some(k) = self.done_order.pop_front() {
                self.done.remove(&k);
            }
        }
    }

    fn seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn register_msg(&self) -> AgentMsg {
        let mut running: Vec<ReplicaKey> = self.procs.keys().cloned().collect();
        running.sort();
        AgentMsg::Register(Register {
            protocol: AGENT_PROTOCOL,
            node: self.name.clone(),
            hostname: self.common.hostname.clone(),
            addr: self.common.addr.clone(),
            cpus: self.common.cpus,
            memory_mib: self.common.memory_mib,
            labels: self.common.labels.clone(),
            at: self.common.at.clone(),
            gpus: self.handle.gpus(),
            running,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            emulated: self.common.emulated,
        })
    }

    async fn try_connect(&mut self) -> Result<Ws, String> {
        let n = self.common.servers.len();
        let url = self.common.servers[self.server_ix % n].clone();
        self.server_ix += 1;
        let ws_url = format!("{}{AGENT_CONNECT_PATH}", url.trim_end_matches('/').replacen("http://", "ws://", 1));
        let mut req = ws_url.as_str().into_client_request().map_err(|e| format!("{url}: {e}"))?;
        let auth = format!("Bearer {}", self.common.token).parse().map_err(|_| "the token is not a valid header value".to_string())?;
        req.headers_mut().insert("authorization", auth);
        // TCP_NODELAY: reports are small messages; Nagle's algorithm would hold one
        // back until the server acknowledges the previous (up to a delayed-ACK timeout).
        let (mut ws, _) = tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::connect_async_with_config(req, None, true))
            .await
            .map_err(|_| format!("{url}: connect timed out"))?
            .map_err(|e| format!("{url}: {e}"))?;
        send_raw(&mut ws, &self.register_msg()).await.map_err(|e| format!("{url}: {e}"))?;
        // The answer: welcome or refused.
        let first = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.map_err(|_| format!("{url}: no welcome"))?;
        let text = match first {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(m)) => return Err(format!("{url}: unexpected {m:?}")),
            Some(Err(e)) => return Err(format!("{url}: {e}")),
            None => return Err(format!("{url}: closed")),
        };
        match serde_json::from_str::<ServerMsg>(text.as_str()) {
            Ok(ServerMsg::Welcome { heartbeat_ms, fence_after_ms, kill }) => {
                self.heartbeat = Duration::from_millis(heartbeat_ms.max(10));
                self.fence_after = Duration::from_millis(fence_after_ms.max(20));
                self.last_contact = Instant::now();
                for k in kill {
                    tracing::warn!(node = %self.name, job = k.job, rank = k.rank, "fenced: reassigned while away; killing");
                    if let Some(p) = self.procs.get(&k) {
                        let _ = p.kill.send(0);
                    }
                }
                Ok(ws)
            }
            Ok(ServerMsg::Refused { message }) => Err(format!("{url} refused node `{}`: {message}", self.name)),
            Ok(other) => Err(format!("{url}: expected welcome, got {other:?}")),
            Err(e) => Err(format!("{url}: bad answer: {e}")),
        }
    }

    async fn run(mut self) {
        self.adopt();
        let mut ws: Option<Ws> = None;
        let mut backoff = Duration::from_millis(50);
        let mut next_try = Instant::now();
        let mut last_hb = Instant::now();
        let mut fenced_at: Option<Instant> = None;
        loop {
            if ws.is_none() && Instant::now() >= next_try {
                match self.try_connect().await {
                    Ok(mut w) => {
                        tracing::info!(node = %self.name, "connected to the server");
                        backoff = Duration::from_millis(50);
                        fenced_at = None;
                        let pending: Vec<AgentMsg> = self.outbox.values().map(|(m, _)| m.clone()).collect();
                        let mut ok = true;
                        for m in &pending {
                            if send_raw(&mut w, m).await.is_err() {
                                ok = false;
                                break;
                            }
                        }
                        if ok {
                            ws = Some(w);
                            last_hb = Instant::now();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(node = %self.name, error = %e, "cannot reach the server; retrying");
                        // Jitter from the clock's low bits: nodes do not retry in step.
                        let jitter = Duration::from_millis((now_ms() as u64) % 50);
                        next_try = Instant::now() + backoff + jitter;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            let tick = if ws.is_some() { self.heartbeat.min(Duration::from_millis(200)) } else { Duration::from_millis(50) };
            tokio::select! {
                ev = self.ev_rx.recv() => {
                    if let Some(ev) = ev {
                        self.on_event(ev, &mut ws).await;
                    }
                }
                m = next_msg(&mut ws) => match m {
                    Some(text) => {
                        self.last_contact = Instant::now();
                        match serde_json::from_str::<ServerMsg>(&text) {
                            Ok(msg) => self.on_server(msg, &mut ws).await,
                            Err(e) => tracing::warn!(node = %self.name, error = %e, "bad message from the server; ignored"),
                        }
                    }
                    None => {
                        tracing::warn!(node = %self.name, "lost the server connection");
                        ws = None;
                    }
                },
                _ = self.handle.changed.notified() => {
                    let gpus = self.handle.gpus();
                    send(&mut ws, &AgentMsg::Gpus { gpus }).await;
                }
                _ = tokio::time::sleep(tick) => {}
            }
            if ws.is_some() && last_hb.elapsed() >= self.heartbeat {
                last_hb = Instant::now();
                send(&mut ws, &AgentMsg::Heartbeat { at_ms: now_ms() }).await;
            }
            let silent = self.last_contact.elapsed();
            if ws.is_some() && silent >= (self.fence_after / 2).max(self.heartbeat * 3) {
                tracing::warn!(node = %self.name, "no word from the server; reconnecting");
                ws = None;
            }
            if silent >= self.fence_after && !self.procs.is_empty() && fenced_at.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                tracing::warn!(node = %self.name, replicas = self.procs.len(), "server unreachable past the fence timeout: killing all replicas");
                fenced_at = Some(Instant::now());
                for p in self.procs.values() {
                    let _ = p.kill.send(0);
                }
            }
        }
    }

    async fn on_event(&mut self, ev: Ev, ws: &mut Option<Ws>) {
        match ev {
            Ev::Exited(key, exit) => {
                self.finished(key, exit);
                let seq = self.next_seq - 1;
                if let Some((m, _)) = self.outbox.get(&seq) {
                    let m = m.clone();
                    send(ws, &m).await;
                }
            }
            Ev::Send(m) => send(ws, &m).await,
            Ev::LogDone(stream) => {
                self.logs.remove(&stream);
            }
        }
    }

    async fn report(&mut self, msg: AgentMsg, key: Option<ReplicaKey>, ws: &mut Option<Ws>) {
        let seq = match &msg {
            AgentMsg::Started { seq, .. } | AgentMsg::Exited { seq, .. } => *seq,
            _ => return,
        };
        self.outbox.insert(seq, (msg.clone(), key));
        send(ws, &msg).await;
    }

    async fn on_server(&mut self, msg: ServerMsg, ws: &mut Option<Ws>) {
        match msg {
            ServerMsg::Welcome { .. } | ServerMsg::Pong { .. } => {}
            ServerMsg::Assign(a) => self.assign(*a, ws).await,
            ServerMsg::Kill { replica, grace_s, reason } => {
                if let Some(p) = self.procs.get(&replica) {
                    tracing::info!(node = %self.name, job = replica.job, rank = replica.rank, %reason, "kill");
                    let _ = p.kill.send(grace_s);
                } else if let Some(exit) = self.done.get(&replica).cloned() {
                    let seq = self.seq();
                    self.report(AgentMsg::Exited { seq, replica, exit, at_ms: now_ms() }, None, ws).await;
                } else {
                    let exit = ExitInfo {
                        code: None,
                        signal: None,
                        runtime_ms: 0,
                        reason: "killed".into(),
                        message: Some("not running on this node".into()),
                    };
                    self.remember(replica.clone(), exit.clone());
                    let seq = self.seq();
                    self.report(AgentMsg::Exited { seq, replica, exit, at_ms: now_ms() }, None, ws).await;
                }
            }
            ServerMsg::Ack { seq } => {
                let acked: Vec<u64> = self.outbox.range(..=seq).map(|(s, _)| *s).collect();
                for s in acked {
                    if let Some((_, Some(key))) = self.outbox.remove(&s) {
                        let _ = std::fs::remove_file(exec::record_path(&self.launcher.dirs.run, &key));
                    }
                }
            }
            ServerMsg::Log { stream, job, rank, offset, follow } => {
                let path = exec::log_path(&self.launcher.dirs.logs, job, rank);
                let t = tokio::spawn(follow_log(path, stream, offset, follow, job, rank, self.running.clone(), self.ev_tx.clone()));
                self.logs.insert(stream, t);
            }
            ServerMsg::LogCancel { stream } => {
                if let Some(t) = self.logs.remove(&stream) {
                    t.abort();
                }
            }
            ServerMsg::Refused { message } => {
                tracing::error!(node = %self.name, %message, "the server refused this node");
                *ws = None;
            }
        }
    }

    async fn assign(&mut self, a: Assignment, ws: &mut Option<Ws>) {
        let key = a.replica.clone();
        if self.procs.contains_key(&key) {
            return;
        }
        if let Some(exit) = self.done.get(&key).cloned() {
            // Seen before: never run twice; say again how it ended.
            let seq = self.seq();
            self.report(AgentMsg::Exited { seq, replica: key, exit, at_ms: now_ms() }, None, ws).await;
            return;
        }
        // Another run of the same replica still here is stale: it goes.
        for (k, p) in &self.procs {
            if k.job == key.job && k.rank == key.rank {
                let _ = p.kill.send(0);
            }
        }
        match self.launcher.spawn(&a) {
            Ok(sp) => {
                let pid = sp.record.pid;
                self.supervise(&a, sp);
                let seq = self.seq();
                self.report(AgentMsg::Started { seq, replica: key, pid, at_ms: now_ms() }, None, ws).await;
            }
            Err(message) => {
                tracing::warn!(node = %self.name, job = key.job, rank = key.rank, %message, "cannot start replica");
                let exit = ExitInfo { code: None, signal: None, runtime_ms: 0, reason: "spawn_failed".into(), message: Some(message) };
                self.remember(key.clone(), exit.clone());
                let seq = self.seq();
                self.report(AgentMsg::Exited { seq, replica: key, exit, at_ms: now_ms() }, None, ws).await;
            }
        }
    }
}

async fn next_msg(ws: &mut Option<Ws>) -> Option<String> {
    let Some(w) = ws.as_mut() else { return std::future::pending().await };
    loop {
        match w.next().await {
            Some(Ok(Message::Text(t))) => return Some(t.as_str().to_string()),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn send_raw(ws: &mut Ws, m: &AgentMsg) -> Result<(), String> {
    let text = serde_json::to_string(m).map_err(|e| e.to_string())?;
    ws.send(Message::Text(text.into())).await.map_err(|e| e.to_string())
}

async fn send(ws: &mut Option<Ws>, m: &AgentMsg) {
    if let Some(w) = ws.as_mut()
        && send_raw(w, m).await.is_err()
    {
        *ws = None;
    }
}

/// Sends a log file from `offset`; with `follow`, until its replica has ended and
/// all is read.
#[allow(clippy::too_many_arguments)]
async fn follow_log(
    path: PathBuf,
    stream: u64,
    offset: u64,
    follow: bool,
    job: u64,
    rank: u32,
    running: Arc<Mutex<HashSet<(u64, u32)>>>,
    ev: mpsc::UnboundedSender<Ev>,
) {
    let end = |error: Option<String>| AgentMsg::Log { stream, data: String::new(), eof: true, error };
    let mut f = match open_log(&path).await {
        Ok(f) => f,
        Err(e) => {
            let _ = ev.send(Ev::Send(end(Some(format!("no log: {e}")))));
            let _ = ev.send(Ev::LogDone(stream));
            return;
        }
    };
    if f.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
        let _ = ev.send(Ev::Send(end(Some("cannot seek in the log".into()))));
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = vec![];
    loop {
        let n = f.read(&mut buf).await.unwrap_or(0);
        if n > 0 {
            carry.extend_from_slice(&buf[..n]);
            // Send whole UTF-8 characters only.
            let cut = match std::str::from_utf8(&carry) {
                Ok(_) => carry.len(),
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => carry.len(),
            };
            let data = String::from_utf8_lossy(&carry[..cut]).into_owned();
            carry.drain(..cut);
            if ev.send(Ev::Send(AgentMsg::Log { stream, data, eof: false, error: None })).is_err() {
                return;
            }
            continue;
        }
        let alive = running.lock().unwrap_or_else(|e| e.into_inner()).contains(&(job, rank));
        if !follow || !alive {
            // One last read after it ended, then the end.
            let mut rest = vec![];
            let _ = f.read_to_end(&mut rest).await;
            carry.extend_from_slice(&rest);
            if !carry.is_empty() {
                let data = String::from_utf8_lossy(&carry).into_owned();
                let _ = ev.send(Ev::Send(AgentMsg::Log { stream, data, eof: false, error: None }));
            }
            let _ = ev.send(Ev::Send(end(None)));
            let _ = ev.send(Ev::LogDone(stream));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn open_log(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::File::open(path).await
}
