//! A server (SQLite in a temp dir) and emulated agents, all in this process on
//! loopback; helpers to submit jobs and wait for them (bounded waits, no timing
//! assertions).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use allot_agent::{Agent, AgentOptions};
use allot_api::*;
use allot_server::client::Client;
use allot_server::config::{AgentLinkConfig, Limits, SchedulerConfig};
use allot_server::store::SqliteStore;

pub fn cluster_toml(nodes: u32) -> String {
    let gpus = nodes * 8;
    format!(
        r#"
version = 1
flavors = [{{ name = "H200" }}]

[[nodes]]
name = "n{{i}}"
count = {nodes}
at = "site/block/leaf"
flavor = "H200"
gpus = 8
cpus = 64
memory_gib = 512

[[tenants]]
path = "org"
quota = [{{ flavor = "H200", nominal = {gpus} }}]

[[tenants]]
path = "org/team"
"#
    )
}

pub struct Env {
    pub server: Option<allot_server::Running>,
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub admin: String,
    pub node_token: String,
    pub nodes: u32,
    pub timeout_ms: u64,
    pub data: tempfile::TempDir,
    pub state: tempfile::TempDir,
    pub out: tempfile::TempDir,
}

pub async fn server(data: &Path, nodes: u32, timeout_ms: u64, listen: &str) -> allot_server::Running {
    let store = SqliteStore::open_dir(data).await.unwrap();
    let opts = allot_server::Options {
        store: Arc::new(store),
        cluster: allot_core::Config::from_toml(&cluster_toml(nodes)).unwrap(),
        listen: listen.parse().unwrap(),
        scheduler: SchedulerConfig { min_pass_interval_ms: 2, max_pass_interval_ms: 100 },
        limits: Limits::default(),
        tls: None,
        agents: AgentLinkConfig { node_timeout_ms: timeout_ms, required: true },
    };
    allot_server::start(opts).await.unwrap()
}

impl Env {
    /// A server for `nodes` nodes of 8 GPUs (agents required, node timeout `timeout_ms`).
    pub async fn start(nodes: u32, timeout_ms: u64) -> Env {
        let data = tempfile::tempdir().unwrap();
        let running = server(data.path(), nodes, timeout_ms, "127.0.0.1:0").await;
        let admin = running.admin_token.clone().unwrap();
        let addr = running.addr;
        let base = format!("http://{addr}");
        let mut c = Client::new(&base, Some(&admin)).unwrap();
        let req = TokenCreate { name: "agents".into(), role: Role::Node, tenant: None, user: None };
        let r = c.post("/v1/tokens", &req).await.unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
        let node_token = r.json::<TokenCreated>().unwrap().token;
        Env {
            server: Some(running),
            addr,
            base,
            admin,
            node_token,
            nodes,
            timeout_ms,
            data,
            state: tempfile::tempdir().unwrap(),
            out: tempfile::tempdir().unwrap(),
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base, Some(&self.admin)).unwrap()
    }

    pub fn agent_opts(&self, name: &str, count: Option<u32>, base: &str) -> AgentOptions {
        AgentOptions {
            servers: vec![base.to_string()],
            token: self.node_token.clone(),
            config: allot_agent::config::AgentConfig { version: 1, addr: Some("127.0.0.1".into()), ..Default::default() },
            name: Some(name.to_string()),
            emulate_gpus: Some("8xH200".parse().unwrap()),
            emulate_nodes: count,
            state_dir: Some(self.state.path().to_path_buf()),
        }
    }

    /// One agent process emulating every node `n0..`.
    pub fn agents(&self) -> Agent {
        allot_agent::start(self.agent_opts("n{i}", Some(self.nodes), &self.base)).unwrap()
    }

    /// One agent for node `name`.
    pub fn agent(&self, name: &str) -> Agent {
        allot_agent::start(self.agent_opts(name, None, &self.base)).unwrap()
    }

    /// Waits until `n` agents are connected.
    pub async fn wait_connected(&self, n: usize) {
        let mut c = self.client();
        for _ in 0..2000 {
            let nodes: NodeList = c.get("/v1/nodes").await.unwrap().ok().unwrap();
            if nodes.nodes.iter().filter(|n| n.agent.as_ref().is_some_and(|a| a.connected)).count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("agents never connected");
    }

    /// A folder every job may write to (jobs run as `nobody` when the tests are root).
    pub fn out(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(self.out.path(), std::fs::Permissions::from_mode(0o777));
        self.out.path().to_path_buf()
    }

    pub async fn stop_server(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Starts the server again on the same address and data dir.
    pub async fn restart_server(&mut self) {
        self.stop_server().await;
        let mut last = None;
        for _ in 0..200 {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => {
                    drop(l);
                    let r = server(self.data.path(), self.nodes, self.timeout_ms, &self.addr.to_string()).await;
                    self.server = Some(r);
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("cannot bind {} again: {last:?}", self.addr);
    }
}

/// A job of `gpus` GPUs x `replicas` running `sh -c script`.
pub fn shell_job(script: &str, gpus: u32, replicas: u32) -> JobSubmit {
    JobSubmit {
        tenant: "org/team".into(),
        gpus: Some(gpus),
        replicas,
        walltime_s: Some(600),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

pub async fn submit(c: &mut Client, j: &JobSubmit) -> u64 {
    let r = c.post("/v1/jobs", j).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    r.json::<SubmitResponse>().unwrap().id
}

pub async fn get_job(c: &mut Client, id: u64) -> JobView {
    let r = c.get(&format!("/v1/jobs/{id}")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().unwrap()
}

/// Waits (bounded, generously) until `pred` holds for the job.
pub async fn wait_job(c: &mut Client, id: u64, what: &str, pred: impl Fn(&JobView) -> bool) -> JobView {
    for _ in 0..6000 {
        let v = get_job(c, id).await;
        if pred(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never became {what}: {:?}", get_job(c, id).await);
}

pub async fn wait_state(c: &mut Client, id: u64, st: JobState) -> JobView {
    let v = wait_job(c, id, st.as_str(), |v| v.state == st || v.state.is_terminal()).await;
    assert_eq!(v.state, st, "job {id}: {v:?}");
    v
}

/// Waits until a file exists.
pub async fn wait_file(p: &Path) {
    for _ in 0..6000 {
        if p.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never appeared", p.display());
}

/// Lines of every file in `dir` whose name starts with `prefix`.
pub fn markers(dir: &Path, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Whether a process with this pid is alive (not a zombie).
pub fn alive(pid: u32) -> bool {
    allot_agent::exec::proc_start_ticks(pid).is_some()
}
