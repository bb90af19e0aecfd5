//! Black-box tests of `allot server`: the built binary on loopback, a fresh data dir,
//! and `kill -9` under load.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use allot_api::{BatchSubmitResponse, JobBatchSubmit, JobList, JobState, JobSubmit, JobView, SubmitResponse, UsageReport};
use allot_server::client::Client;

const CLUSTER: &str = r#"
version = 1
flavors = [{ name = "H100" }]
[[nodes]]
name = "n{i}"
count = 4
at = "site/block/leaf"
flavor = "H100"
gpus = 8
[[tenants]]
path = "org"
[[tenants]]
path = "org/p"
"#;

struct Server {
    child: Child,
    base: String,
    token: Option<String>,
}

/// Starts `allot server` on port 0 and reads its token (first start) and address.
fn start(dir: &Path) -> Server {
    let (child, mut lines) = spawn(dir, &["--data-dir".into(), dir.join("data").display().to_string()]);
    read_until_listening(child, &mut lines)
}

type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

fn spawn(dir: &Path, extra: &[String]) -> (Child, Lines) {
    spawn_logging(dir, extra, "warn", Stdio::null())
}

/// `allot server` with `RUST_LOG=level`, its standard error to `stderr`.
fn spawn_logging(dir: &Path, extra: &[String], level: &str, stderr: Stdio) -> (Child, Lines) {
    let cluster = dir.join("cluster.toml");
    std::fs::write(&cluster, CLUSTER).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["server", "--listen", "127.0.0.1:0", "--cluster"])
        .arg(&cluster)
        .args(extra)
        .env("RUST_LOG", level)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

fn read_until_listening(mut child: Child, lines: &mut Lines) -> Server {
    let mut token = None;
    loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server exited before printing its address");
        };
        if let Some(t) = line.strip_prefix("admin token (shown once, stored hashed): ") {
            token = Some(t.to_string());
        }
        if let Some(rest) = line.strip_prefix("allot server listening on ") {
            let base = rest.split_whitespace().next().unwrap().to_string();
            return Server { child, base, token };
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_standby_takes_over_when_the_leader_is_killed() {
    let Ok(url) = std::env::var("ALLOT_TEST_DATABASE_URL") else {
        eprintln!("ALLOT_TEST_DATABASE_URL is not set: skipping the high-availability test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let schema = format!("allot_ha_{}_{nanos}", std::process::id());
    let extra = ["--ha".to_string(), "--database".into(), url.clone(), "--database-schema".into(), schema.clone()];
    let (a, mut a_lines) = spawn(dir.path(), &extra);
    let mut a = read_until_listening(a, &mut a_lines);
    let token = a.token.clone().expect("the first leader creates the admin token");
    // The second server stands by: alive, not ready, refusing work.
    let (b, mut b_lines) = spawn(dir.path(), &extra);
    let standby = b_lines.next().unwrap().unwrap();
    let b_base = standby.strip_prefix("allot server standing by on ").expect("a standby line").to_string();
    let mut cb = Client::new(&b_base, Some(&token)).unwrap();
    assert_eq!(cb.get("/healthz").await.unwrap().status, 200);
    assert_eq!(cb.get("/readyz").await.unwrap().status, 503);
    assert_eq!(cb.post("/v1/jobs", &job()).await.unwrap().status, 503);
    // A client given both servers follows the leader.
    let mut both = Client::new(&format!("{b_base},{}", a.base), Some(&token)).unwrap();
    assert_eq!(both.post("/v1/jobs", &job()).await.unwrap().status, 201);
    assert_eq!(format!("http://{}", both.host()), a.base);
    // Load on the leader, then kill -9 it mid-load.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![];
    for _ in 0..4 {
        let stop = stop.clone();
        let mut c = Client::new(&a.base, Some(&token)).unwrap();
        tasks.push(tokio::spawn(async move {
            let mut acked = vec![];
            while !stop.load(Ordering::Relaxed) {
                match c.post("/v1/jobs", &job()).await.map(|r| r.ok::<SubmitResponse>()) {
                    Ok(Ok(r)) => acked.push(r.id),
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut acked = vec![];
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(!acked.is_empty());
    // The standby takes over (bounded wait) and has every acknowledged job.
    let b = tokio::task::spawn_blocking(move || read_until_listening(b, &mut b_lines));
    let mut b = tokio::time::timeout(std::time::Duration::from_secs(30), b).await.expect("the standby took over").unwrap();
    assert_eq!(b.base, b_base, "it serves on the address it stood by on");
    let mut cb = Client::new(&b.base, Some(&token)).unwrap();
    assert_eq!(cb.get("/readyz").await.unwrap().status, 200);
    for id in &acked {
        assert_eq!(cb.get(&format!("/v1/jobs/{id}")).await.unwrap().status, 200, "acknowledged job {id} lost");
    }
    let id = cb.post("/v1/jobs", &job()).await.unwrap().ok::<SubmitResponse>().unwrap().id;
    assert!(acked.iter().all(|a| *a < id), "ids continue after the takeover");
    // The two-server client moves on from the dead leader.
    let _ = both.get("/readyz").await;
    assert_eq!(both.post("/v1/jobs", &job()).await.unwrap().status, 201);
    assert_eq!(format!("http://{}", both.host()), b_base);
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    allot_server::store::PgStore::drop_schema(&url, &schema).await.unwrap();
}

fn job() -> JobSubmit {
    JobSubmit { tenant: "org/p".into(), gpus: Some(1), walltime_s: Some(3600), ..JobSubmit::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_serves_and_prints_the_admin_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path());
    let token = s.token.clone().expect("first start prints the admin token");
    assert!(token.starts_with("allot_") && token.len() == 70, "{token}");
    let mut c = Client::new(&s.base, Some(&token)).unwrap();
    assert_eq!(c.get("/healthz").await.unwrap().status, 200);
    let id = c.post("/v1/jobs", &job()).await.unwrap().ok::<SubmitResponse>().unwrap().id;
    let v: JobView = c.get(&format!("/v1/jobs/{id}")).await.unwrap().ok().unwrap();
    assert_eq!(v.tenant, "org/p");
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let mut s2 = start(dir.path());
    assert_eq!(s2.token, None, "the token is printed once");
    let mut c = Client::new(&s2.base, Some(&token)).unwrap();
    assert_eq!(c.get(&format!("/v1/jobs/{id}")).await.unwrap().status, 200, "the stored token still works");
    s2.child.kill().unwrap();
    s2.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_submission_or_accounting_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path());
    let token = s.token.clone().unwrap();
    // Some runs finished (and accounted) before the load.
    let mut c = Client::new(&s.base, Some(&token)).unwrap();
    let mut finished = vec![];
    for _ in 0..5 {
        let id = c.post("/v1/jobs", &job()).await.unwrap().ok::<SubmitResponse>().unwrap().id;
        for _ in 0..3000 {
            let v: JobView = c.get(&format!("/v1/jobs/{id}")).await.unwrap().ok().unwrap();
            if v.state == JobState::Running {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let v: JobView = c.post_empty(&format!("/v1/jobs/{id}/finish")).await.unwrap().ok().unwrap();
        assert_eq!(v.state, JobState::Completed);
        finished.push(id);
    }
    // Load: single submissions and batches until the kill; record every acknowledgement.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = vec![];
    for k in 0..6 {
        let stop = stop.clone();
        let mut c = Client::new(&s.base, Some(&token)).unwrap();
        tasks.push(tokio::spawn(async move {
            let mut acked = vec![];
            while !stop.load(Ordering::Relaxed) {
                let r = if k == 0 {
                    c.post("/v1/jobs/batch", &JobBatchSubmit { jobs: vec![job(); 200] })
                        .await
                        .map(|r| r.ok::<BatchSubmitResponse>().map(|b| b.ids))
                } else {
                    c.post("/v1/jobs", &job()).await.map(|r| r.ok::<SubmitResponse>().map(|b| vec![b.id]))
                };
                match r {
                    Ok(Ok(ids)) => acked.extend(ids),
                    _ => break, // the server is gone: unacknowledged, may or may not be stored
                }
            }
            acked
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut acked: Vec<u64> = vec![];
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(acked.len() > 10, "the load ran ({} acknowledged)", acked.len());
    let mut s2 = start(dir.path());
    let mut c = Client::new(&s2.base, Some(&token)).unwrap();
    let mut stored = std::collections::HashSet::new();
    let mut path = "/v1/jobs?limit=1000".to_string();
    loop {
        let page: JobList = c.get(&path).await.unwrap().ok().unwrap();
        stored.extend(page.jobs.iter().map(|j| j.id));
        match page.next_cursor {
            Some(cur) => path = format!("/v1/jobs?limit=1000&cursor={cur}"),
            None => break,
        }
    }
    let lost: Vec<&u64> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged jobs lost, e.g. {:?}", lost.len(), acked.len(), &lost[..lost.len().min(5)]);
    for id in &finished {
        let v: JobView = c.get(&format!("/v1/jobs/{id}")).await.unwrap().ok().unwrap();
        assert_eq!(v.state, JobState::Completed);
    }
    let u: UsageReport = c.get("/v1/usage?by=tenant").await.unwrap().ok().unwrap();
    assert_eq!(u.rows.iter().map(|r| r.runs).sum::<u64>(), finished.len() as u64, "every accounting record survived");
    s2.child.kill().unwrap();
    s2.child.wait().unwrap();
}

/// Sends `sig` to the child and waits for it to exit (killed after a minute: a hang
/// is a failure, not a slow machine).
fn signal_and_wait(child: &mut Child, sig: libc::c_int) -> std::process::ExitStatus {
    // SAFETY: kill(2) on our own child, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0, "cannot signal the server");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not stop after signal {sig}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_cleanly_and_the_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Its log goes to a file, as under systemd: no terminal, so no colour codes.
    let log = dir.path().join("server.log");
    let data = ["--data-dir".to_string(), dir.path().join("data").display().to_string()];
    let (child, mut lines) = spawn_logging(dir.path(), &data, "info", Stdio::from(std::fs::File::create(&log).unwrap()));
    let mut s = read_until_listening(child, &mut lines);
    let token = s.token.clone().unwrap();
    let mut c = Client::new(&s.base, Some(&token)).unwrap();
    let id = c.post("/v1/jobs", &job()).await.unwrap().ok::<SubmitResponse>().unwrap().id;
    let big = c.post("/v1/jobs", &JobSubmit { gpus: Some(8), replicas: 5, ..job() }).await.unwrap().ok::<SubmitResponse>().unwrap().id;
    let held: JobView = c.post_empty(&format!("/v1/jobs/{big}/hold")).await.unwrap().ok().unwrap();
    assert_eq!(held.state, JobState::Held);
    // As systemd stops a service: SIGTERM, then the exit status.
    let status = signal_and_wait(&mut s.child, libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "the server exits cleanly (code 0) on SIGTERM, not killed by it: {status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("SIGTERM: shutting down"), "the log says why it stops:\n{text}");
    assert!(text.contains("INFO"), "the log has info lines:\n{text}");
    assert!(!text.contains('\x1b'), "no terminal colour codes in a log file:\n{text}");
    let mut s2 = start(dir.path());
    let mut c = Client::new(&s2.base, Some(&token)).unwrap();
    let v: JobView = c.get(&format!("/v1/jobs/{id}")).await.unwrap().ok().unwrap();
    assert_eq!(v.tenant, "org/p");
    assert!(matches!(v.state, JobState::Pending | JobState::Running), "the job is still to run after the restart: {:?}", v.state);
    let v: JobView = c.get(&format!("/v1/jobs/{big}")).await.unwrap().ok().unwrap();
    assert_eq!(v.state, JobState::Held, "the hold survives the restart");
    // Ctrl-C stops it the same way.
    let status = signal_and_wait(&mut s2.child, libc::SIGINT);
    assert_eq!(status.code(), Some(0), "the server exits cleanly on SIGINT: {status}");
}
