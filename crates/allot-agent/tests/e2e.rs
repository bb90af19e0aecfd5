//! End to end: a server and emulated agents on loopback run real processes.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use allot_api::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_agents_run_a_job_and_serve_its_log() {
    let env = Env::start(4, 3000).await;
    let _agents = env.agents();
    env.wait_connected(4).await;
    let mut c = env.client();
    let id = submit(&mut c, &shell_job("echo hello from $ALLOT_JOB_ID; echo to-stderr >&2", 1, 1)).await;
    let v = wait_state(&mut c, id, JobState::Completed).await;
    assert!(v.ended_at_ms.is_some());
    let r = c.get(&format!("/v1/jobs/{id}/logs")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.contains(&format!("hello from {id}")) && text.contains("to-stderr"), "{text}");
    // Failing jobs fail, saying why.
    let id = submit(&mut c, &shell_job("exit 3", 1, 1)).await;
    let v = wait_state(&mut c, id, JobState::Failed).await;
    assert!(v.message.as_deref().unwrap_or("").contains("exit code 3"), "{v:?}");
    let m = c.get("/metrics").await.unwrap().text();
    assert!(m.contains("allot_agents{state=\"connected\"} 4"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gang_of_two_nodes_sees_a_consistent_torch_env() {
    let env = Env::start(4, 3000).await;
    let _agents = env.agents();
    env.wait_connected(4).await;
    let mut c = env.client();
    let out = env.out();
    let script = format!(
        "echo \"$RANK $WORLD_SIZE $LOCAL_RANK $NODE_RANK $MASTER_ADDR $MASTER_PORT $CUDA_VISIBLE_DEVICES $ALLOT_NODE $ALLOT_TENANT\" > {}/r$RANK",
        out.display()
    );
    let id = submit(&mut c, &shell_job(&script, 8, 2)).await;
    wait_state(&mut c, id, JobState::Completed).await;
    let mut ranks = HashSet::new();
    let mut masters = HashSet::new();
    let mut nodes = HashSet::new();
    let mut gpus = vec![];
    for r in 0..2 {
        let line = std::fs::read_to_string(out.join(format!("r{r}"))).unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 9, "{line}");
        ranks.insert(f[0].to_string());
        assert_eq!(f[1], "2", "world size: {line}");
        assert_eq!(f[2], "0", "one replica per node: local rank 0: {line}");
        assert_eq!(f[3], f[0], "node rank: {line}");
        masters.insert((f[4].to_string(), f[5].to_string()));
        gpus.push(f[6].to_string());
        nodes.insert(f[7].to_string());
        assert_eq!(f[8], "org/team");
    }
    assert_eq!(ranks.len(), 2, "distinct ranks");
    assert_eq!(masters.len(), 1, "same master: {masters:?}");
    assert_eq!(nodes.len(), 2, "two nodes");
    for g in &gpus {
        assert_eq!(g.split(',').count(), 8, "8 GPUs each: {g}");
    }
    // Disjoint GPU sets across the gang's (node, GPU) pairs.
    let pairs: HashSet<String> = nodes.iter().zip(&gpus).flat_map(|(n, g)| g.split(',').map(move |x| format!("{n}:{x}"))).collect();
    assert_eq!(pairs.len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_never_run_as_root() {
    if !allot_agent::exec::is_root() {
        eprintln!("skipped: the test process is not root, so the agent runs jobs as its own user");
        return;
    }
    let env = Env::start(1, 3000).await;
    let _agents = env.agents();
    env.wait_connected(1).await;
    let mut c = env.client();
    let out = env.out();
    let id = submit(&mut c, &shell_job(&format!("id -u > {}/uid; pwd > {}/pwd", out.display(), out.display()), 1, 1)).await;
    wait_state(&mut c, id, JobState::Completed).await;
    let uid: u32 = std::fs::read_to_string(out.join("uid")).unwrap().trim().parse().unwrap();
    let nobody = allot_agent::exec::lookup_user("nobody").expect("a nobody user");
    assert_eq!(uid, nobody.uid, "the job runs as the default unprivileged user");
    assert_ne!(uid, 0);
    let pwd = std::fs::read_to_string(out.join("pwd")).unwrap();
    assert!(pwd.contains(&format!("{id}-")), "a private working folder: {pwd}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_short_jobs_through_sixteen_nodes_none_lost_none_twice() {
    let env = Env::start(16, 5000).await;
    let _agents = env.agents();
    env.wait_connected(16).await;
    let mut c = env.client();
    let out = env.out();
    let job = shell_job(&format!(": > {}/$ALLOT_JOB_ID.$$", out.display()), 1, 1);
    let mut ids = vec![];
    for _ in 0..10 {
        let r = c.post("/v1/jobs/batch", &JobBatchSubmit { jobs: vec![job.clone(); 100] }).await.unwrap();
        ids.extend(r.ok::<BatchSubmitResponse>().unwrap().ids);
    }
    assert_eq!(ids.len(), 1000);
    // All completed.
    for _ in 0..12_000 {
        let r: JobList = c.get("/v1/jobs?state=completed&limit=1000").await.unwrap().ok().unwrap();
        if r.jobs.len() == 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done: JobList = c.get("/v1/jobs?state=completed&limit=1000").await.unwrap().ok().unwrap();
    assert_eq!(done.jobs.len(), 1000, "all completed");
    // One marker per job: none lost, none run twice.
    let mut per_job = std::collections::HashMap::<u64, usize>::new();
    for e in std::fs::read_dir(&out).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let id: u64 = name.split('.').next().unwrap().parse().unwrap();
        *per_job.entry(id).or_default() += 1;
    }
    assert_eq!(per_job.len(), 1000, "every job ran");
    assert!(per_job.values().all(|&n| n == 1), "no job ran twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_replica_tears_down_the_gang_and_restarts_are_limited() {
    let env = Env::start(2, 3000).await;
    let _agents = env.agents();
    env.wait_connected(2).await;
    let mut c = env.client();
    let out = env.out();
    // Rank 1 fails at once; rank 0 would sleep long: the gang goes down, twice
    // (one restart allowed), then the job fails.
    let script =
        format!("echo \"$ALLOT_EPOCH $$\" >> {o}/$ALLOT_JOB_ID.$RANK; if [ \"$RANK\" = 1 ]; then exit 7; fi; sleep 120", o = out.display());
    let job = JobSubmit { max_restarts: Some(1), ..shell_job(&script, 8, 2) };
    let id = submit(&mut c, &job).await;
    let v = wait_state(&mut c, id, JobState::Failed).await;
    let msg = v.message.unwrap_or_default();
    assert!(msg.contains("replica 1") && msg.contains("exit code 7"), "{msg}");
    let r0 = std::fs::read_to_string(out.join(format!("{id}.0"))).unwrap_or_default();
    let r1 = std::fs::read_to_string(out.join(format!("{id}.1"))).unwrap_or_default();
    assert_eq!(r1.lines().count(), 2, "two runs: {r1}");
    for line in r0.lines() {
        let pid: u32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(!alive(pid), "rank 0 was torn down with its gang");
    }
}
