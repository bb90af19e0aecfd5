//! Failures, each a named test: a killed agent, an agent that comes back, a server
//! restart, an agent cut off from the network, an unhealthy GPU. Node timeout about
//! 1.5 s; every wait is bounded and no assertion is about time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use allot_api::*;
use allot_server::client::Client;
use common::*;

async fn node(c: &mut Client, name: &str) -> NodeView {
    c.get(&format!("/v1/nodes/{name}")).await.unwrap().ok().unwrap()
}

async fn wait_node(c: &mut Client, name: &str, what: &str, pred: impl Fn(&NodeView) -> bool) -> NodeView {
    for _ in 0..3000 {
        let n = node(c, name).await;
        if pred(&n) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("node {name} never became {what}: {:?}", node(c, name).await);
}

/// A job that writes `NODE PID` to `out/JOB.NODE` when it starts, then sleeps.
fn sleeper(out: &std::path::Path, secs: u32) -> JobSubmit {
    shell_job(&format!("echo \"$ALLOT_NODE $$\" > {}/$ALLOT_JOB_ID.$ALLOT_NODE; sleep {secs}", out.display()), 8, 1)
}

fn pid_in(p: &std::path::Path) -> u32 {
    std::fs::read_to_string(p).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_agent_loses_its_node_requeues_its_job_and_is_fenced_when_back() {
    let env = Env::start(2, 1500).await;
    let mut c = env.client();
    let out = env.out();
    // The job goes to n0: n1 is cordoned.
    assert_eq!(c.post_empty("/v1/nodes/n1/cordon").await.unwrap().status, 200);
    let a0 = env.agent("n0");
    env.wait_connected(1).await;
    let id = submit(&mut c, &sleeper(&out, 120)).await;
    let first = out.join(format!("{id}.n0"));
    wait_file(&first).await;
    let pid0 = pid_in(&first);
    // kill -9 of the agent: its processes stay, its node goes silent.
    a0.abort();
    let n0 = wait_node(&mut c, "n0", "down", |n| !n.up).await;
    assert!(n0.reason.as_deref().unwrap_or("").contains("agent"), "{n0:?}");
    // Requeued, and restarted on n1 once it takes work.
    let _a1 = env.agent("n1");
    assert_eq!(c.post_empty("/v1/nodes/n1/uncordon").await.unwrap().status, 200);
    let second = out.join(format!("{id}.n1"));
    wait_file(&second).await;
    let v = get_job(&mut c, id).await;
    assert_eq!(v.state, JobState::Running);
    assert_eq!(v.placement.unwrap().slots[0].node, "n1");
    assert!(alive(pid0), "nobody could stop n0's process while its agent was dead");
    // The agent comes back (same state folder): it adopts the old process, the
    // server says it was reassigned, the agent kills it.
    let _a0 = env.agent("n0");
    wait_node(&mut c, "n0", "up", |n| n.up).await;
    for _ in 0..3000 {
        if !alive(pid0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!alive(pid0), "fencing killed the reassigned replica");
    // The run on n1 goes on.
    assert!(alive(pid_in(&second)));
    assert_eq!(get_job(&mut c, id).await.state, JobState::Running);
    assert_eq!(c.post_empty(&format!("/v1/jobs/{id}/cancel")).await.unwrap().status, 200);
    wait_state(&mut c, id, JobState::Cancelled).await;
    assert!(!alive(pid_in(&second)), "cancel killed the process group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_restarted_within_the_timeout_keeps_its_jobs_running() {
    let env = Env::start(1, 3000).await;
    let mut c = env.client();
    let out = env.out();
    let a = env.agent("n0");
    env.wait_connected(1).await;
    let flag = out.join("go");
    let script = format!(
        "echo \"$ALLOT_NODE $$\" >> {o}/$ALLOT_JOB_ID.runs; while [ ! -f {f} ]; do sleep 0.05; done; exit 0",
        o = out.display(),
        f = flag.display()
    );
    let id = submit(&mut c, &shell_job(&script, 1, 1)).await;
    wait_file(&out.join(format!("{id}.runs"))).await;
    a.abort();
    let _b = env.agent("n0");
    env.wait_connected(1).await;
    std::fs::write(&flag, "").unwrap();
    wait_state(&mut c, id, JobState::Completed).await;
    let runs = std::fs::read_to_string(out.join(format!("{id}.runs"))).unwrap();
    assert_eq!(runs.lines().count(), 1, "ran once: {runs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_restart_keeps_jobs_running_and_agents_report_after_reconnecting() {
    let mut env = Env::start(2, 3000).await;
    let _agents = env.agents();
    env.wait_connected(2).await;
    let mut c = env.client();
    let out = env.out();
    let flag = out.join("go");
    let script = format!(
        "echo \"$ALLOT_NODE $$\" >> {o}/$ALLOT_JOB_ID.runs; while [ ! -f {f} ]; do sleep 0.05; done; exit 0",
        o = out.display(),
        f = flag.display()
    );
    let ids = [submit(&mut c, &shell_job(&script, 8, 1)).await, submit(&mut c, &shell_job(&script, 8, 1)).await];
    for id in ids {
        wait_file(&out.join(format!("{id}.runs"))).await;
    }
    env.restart_server().await;
    env.wait_connected(2).await;
    // The jobs ended while... no: they end now, and the agents report it.
    std::fs::write(&flag, "").unwrap();
    let mut c = env.client();
    for id in ids {
        wait_state(&mut c, id, JobState::Completed).await;
        let runs = std::fs::read_to_string(out.join(format!("{id}.runs"))).unwrap();
        assert_eq!(runs.lines().count(), 1, "job {id} ran once: {runs}");
    }
}

/// A TCP proxy that can black-hole every connection (drop its traffic, keep it open).
struct Proxy {
    addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
}

async fn proxy(upstream: std::net::SocketAddr) -> Proxy {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let c2 = cut.clone();
    tokio::spawn(async move {
        while let Ok((down, _)) = l.accept().await {
            let cut = c2.clone();
            tokio::spawn(async move {
                let Ok(up) = tokio::net::TcpStream::connect(upstream).await else { return };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                let dead = Arc::new(AtomicBool::new(false));
                tokio::spawn(pipe(dr, uw, cut.clone(), dead.clone()));
                pipe(ur, dw, cut, dead).await;
            });
        }
    });
    Proxy { addr, cut }
}

async fn pipe(mut r: tokio::net::tcp::OwnedReadHalf, mut w: tokio::net::tcp::OwnedWriteHalf, cut: Arc<AtomicBool>, dead: Arc<AtomicBool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.load(Ordering::Relaxed) {
            dead.store(true, Ordering::Relaxed);
        }
        if dead.load(Ordering::Relaxed) {
            continue; // dropped on the floor, forever
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_cut_off_is_a_lost_node_and_its_job_never_runs_twice() {
    let env = Env::start(2, 1500).await;
    let mut c = env.client();
    let out = env.out();
    let px = proxy(env.addr).await;
    assert_eq!(c.post_empty("/v1/nodes/n1/cordon").await.unwrap().status, 200);
    let _a0 = allot_agent::start(env.agent_opts("n0", None, &format!("http://{}", px.addr))).unwrap();
    let _a1 = env.agent("n1");
    env.wait_connected(2).await;
    let id = submit(&mut c, &sleeper(&out, 120)).await;
    let first = out.join(format!("{id}.n0"));
    wait_file(&first).await;
    let pid0 = pid_in(&first);
    // The network drops n0's traffic; n1 may take work.
    px.cut.store(true, Ordering::Relaxed);
    assert_eq!(c.post_empty("/v1/nodes/n1/uncordon").await.unwrap().status, 200);
    let second = out.join(format!("{id}.n1"));
    wait_file(&second).await;
    // By the time it started on n1, the agent on n0 had killed its copy itself.
    assert!(!alive(pid0), "the job ran on n0 and n1 at once");
    let n0 = node(&mut c, "n0").await;
    assert!(!n0.up && n0.reason.as_deref().unwrap_or("").contains("agent"), "{n0:?}");
    // The network heals: n0 comes back, the job stays on n1.
    px.cut.store(false, Ordering::Relaxed);
    wait_node(&mut c, "n0", "up again", |n| n.up && n.agent.as_ref().is_some_and(|a| a.connected)).await;
    let v = get_job(&mut c, id).await;
    assert_eq!(v.state, JobState::Running);
    assert_eq!(v.placement.unwrap().slots[0].node, "n1");
    assert!(alive(pid_in(&second)));
    assert_eq!(c.post_empty(&format!("/v1/jobs/{id}/cancel")).await.unwrap().status, 200);
    wait_state(&mut c, id, JobState::Cancelled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unhealthy_gpu_drains_its_node_and_the_api_says_why() {
    let env = Env::start(1, 3000).await;
    let mut c = env.client();
    let a = env.agents();
    env.wait_connected(1).await;
    a.nodes[0].set_gpu_health(3, false, Some("2 uncorrected ECC errors"));
    let n = wait_node(&mut c, "n0", "drained", |n| n.drained).await;
    let why = n.reason.unwrap_or_default();
    assert!(why.contains("GPU 3") && why.contains("ECC"), "{why}");
    assert!(!n.agent.unwrap().gpus[3].healthy);
    // No new work starts there.
    let id = submit(&mut c, &shell_job("true", 1, 1)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get_job(&mut c, id).await.state, JobState::Pending);
    // Healthy again: undrained, the job runs.
    a.nodes[0].set_gpu_health(3, true, None);
    wait_node(&mut c, "n0", "undrained", |n| !n.drained && n.reason.is_none()).await;
    wait_state(&mut c, id, JobState::Completed).await;
}
