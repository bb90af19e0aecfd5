//! Black-box tests of `allot sim replay` and `allot sim compare` on small hand-built
//! traces, with figures computed by hand.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn allot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_allot")).args(args).output().expect("the allot binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// A scratch directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sim_replay").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write scratch file");
    p.to_string_lossy().into_owned()
}

/// The last line of stdout as JSON.
fn json(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", stderr(out));
    let text = stdout(out);
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {text}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("`{key}` missing or not a number in {v}"))
}

/// One 8-GPU node; tenants a and b with 4 GPUs each, borrowing allowed.
const CLUSTER: &str = r#"
version = 1
flavors = [{ name = "H100" }]
[[nodes]]
name = "n{i}"
count = 1
at = "s/b/l"
flavor = "H100"
gpus = 8
[[tenants]]
path = "org/a"
quota = [{ flavor = "H100", nominal = 4 }]
[[tenants]]
path = "org/b"
quota = [{ flavor = "H100", nominal = 4 }]
[policy]
order = "fifo"
"#;

/// a's 8-GPU job (not preemptible) runs 0-100 s; b's two 4-GPU jobs (arriving at
/// 10 and 20 s) wait for it and run 100-150 s.
const TRACE: &str = r#"{"id": 1, "submit_s": 0, "duration_s": 100, "tenant": "org/a", "gpus": 8, "preemptible": false}
{"id": 2, "submit_s": 10, "duration_s": 50, "tenant": "org/b", "gpus": 4}
{"id": 3, "submit_s": 20, "duration_s": 50, "tenant": "org/b", "gpus": 4}
"#;

#[test]
fn replay_json_has_the_hand_computed_figures() {
    let dir = scratch("json");
    let cluster = write(&dir, "cluster.toml", CLUSTER);
    let trace = write(&dir, "trace.jsonl", TRACE);
    let out = allot(&["sim", "replay", "--cluster", &cluster, "--trace", &trace, "--format", "allot", "--json", "--quiet"]);
    let d = json(&out);
    // a's job is not preemptible: b's jobs wait for it. JCTs 100, 140, 130 s; waits
    // 0, 90, 80 s; the node is busy all 150 s.
    assert_eq!(f(&d, "jobs"), 3.0);
    assert_eq!(f(&d, "completed"), 3.0);
    assert!((f(&d, "avg_jct_s") - 370.0 / 3.0).abs() < 1e-6, "{d}");
    assert!((f(&d, "avg_wait_s") - 170.0 / 3.0).abs() < 1e-6, "{d}");
    assert_eq!(f(&d, "p99_jct_s"), 140.0);
    assert_eq!(f(&d, "p99_wait_s"), 90.0);
    assert_eq!(f(&d, "makespan_s"), 150.0);
    assert!((f(&d, "utilization_pct") - 100.0).abs() < 1e-6);
    assert_eq!(f(&d, "events"), 9.0);
    assert!(f(&d, "events_per_s") > 0.0 && f(&d, "wall_seconds") >= 0.0);
    let b = &d["per_tenant"]["org/b"];
    assert_eq!(f(b, "jobs"), 2.0);
    assert_eq!(f(b, "avg_wait_s"), 85.0);
    // b waited below its nominal with 4-GPU jobs for 90 s (10-100 s): 4 x 90 GPU-s.
    assert!((f(b, "quota_violation_gpu_hours") - 4.0 * 90.0 / 3600.0).abs() < 1e-9, "{b}");
    let a = &d["per_tenant"]["org/a"];
    assert!((f(a, "borrowed_gpu_hours") - 4.0 * 100.0 / 3600.0).abs() < 1e-9, "{a}");
    assert!((f(b, "lent_gpu_hours") - 4.0 * 100.0 / 3600.0).abs() < 1e-9, "{b}");
    assert_eq!(stdout(&out).lines().count(), 1, "--json prints one line");
}

#[test]
fn preemptible_work_is_reclaimed() {
    let dir = scratch("reclaim");
    let cluster = write(&dir, "cluster.toml", CLUSTER);
    // a's job checkpoints every 30 s: reclaimed at 10 s (exits at 40 s after the 30 s
    // grace), it keeps 30 s of work and pays the restart overhead (0 here).
    let trace = write(&dir, "trace.jsonl", &TRACE.replace(r#""preemptible": false"#, r#""checkpoint_interval_s": 30"#));
    let out = allot(&[
        "sim",
        "replay",
        "--cluster",
        &cluster,
        "--trace",
        &trace,
        "--format",
        "allot",
        "--json",
        "--quiet",
        "--restart-overhead",
        "0",
    ]);
    let d = json(&out);
    assert_eq!(f(&d, "completed"), 3.0);
    assert!(f(&d, "preemptions") >= 1.0, "{d}");
    assert!(f(&d, "preemption_lost_gpu_hours") > 0.0);
}

#[test]
fn summary_table_and_outputs() {
    let dir = scratch("table");
    let cluster = write(&dir, "cluster.toml", CLUSTER);
    let trace = write(&dir, "trace.jsonl", TRACE);
    let out_dir = dir.join("out");
    let out = allot(&[
        "sim",
        "replay",
        "--cluster",
        &cluster,
        "--trace",
        &trace,
        "--format",
        "allot",
        "--out",
        out_dir.to_str().unwrap(),
        "--sample-interval",
        "10",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("org/a") && text.contains("org/b") && text.contains("utilisation 100.0%"), "{text}");
    for name in [
        "summary.json",
        "timeseries.csv",
        "tenants.csv",
        "waits.csv",
        "utilization.svg",
        "utilization.png",
        "queue.svg",
        "queue.png",
        "wait_cdf.svg",
        "wait_cdf.png",
    ] {
        assert!(out_dir.join(name).is_file(), "{name} not written");
    }
    let ts = std::fs::read_to_string(out_dir.join("timeseries.csv")).unwrap();
    // Samples at 0, 10, ..., 140 s.
    assert_eq!(ts.lines().count(), 1 + 15, "{ts}");
    // No progress bar when stderr is not a terminal.
    assert!(!stderr(&out).contains("ETA"), "{}", stderr(&out));
}

#[test]
fn philly_style_trace_on_a_cluster_without_tenants() {
    let dir = scratch("philly");
    let machines = write(&dir, "machines.csv", ",machineId,number of GPUs\n0,m0,8\n1,m1,8\n2,m2,0\n");
    let trace = write(
        &dir,
        "philly.csv",
        "timestamp,duration,num_gpus,gpu_time,cluster\n\
         2017-10-01 00:00:20,50,8,400,vc2\n\
         2017-10-01 00:00:00,100,16,1600,vc1\n\
         2017-10-01 00:00:10,50,8,400,vc2\n",
    );
    let out = allot(&["sim", "replay", "--nodes", &machines, "--trace", &trace, "--format", "philly-pollux", "--policy", "fifo", "--json"]);
    let d = json(&out);
    // The 16-GPU gang holds both nodes 0-100 s; vc2's jobs then run 100-150 s.
    assert_eq!(f(&d, "completed"), 3.0);
    assert!((f(&d, "avg_jct_s") - (100.0 + 140.0 + 130.0) / 3.0).abs() < 1e-6, "{d}");
    assert_eq!(f(&d, "gpus"), 16.0);
    let tenants: Vec<&String> = d["per_tenant"].as_object().unwrap().keys().collect();
    assert_eq!(tenants, ["philly/vc1", "philly/vc2"]);
    assert!(stderr(&out).contains("added 2 trace tenants"), "{}", stderr(&out));
}

#[test]
fn same_seed_same_result() {
    let dir = scratch("seed");
    let cluster = write(&dir, "cluster.toml", CLUSTER);
    let trace = write(&dir, "trace.jsonl", TRACE);
    let run = |seed: &str| {
        let mut d = json(&allot(&[
            "sim",
            "replay",
            "--cluster",
            &cluster,
            "--trace",
            &trace,
            "--format",
            "allot",
            "--json",
            "--quiet",
            "--seed",
            seed,
            "--walltime-noise",
            "1",
            "--replace-walltimes",
        ]));
        for k in ["wall_seconds", "events_per_s"] {
            d.as_object_mut().unwrap().remove(k);
        }
        d
    };
    assert_eq!(run("5"), run("5"));
}

#[test]
fn compare_prints_per_tenant_differences() {
    let dir = scratch("compare");
    let cluster = write(&dir, "cluster.toml", CLUSTER);
    let bigger = write(&dir, "bigger.toml", &CLUSTER.replace("count = 1", "count = 2").replace("nominal = 4", "nominal = 8"));
    let trace = write(&dir, "trace.jsonl", TRACE);
    let mut files = vec![];
    for (c, name) in [(&cluster, "a.json"), (&bigger, "b.json")] {
        let out = allot(&["sim", "replay", "--cluster", c, "--trace", &trace, "--format", "allot", "--json", "--quiet"]);
        assert!(out.status.success(), "{}", stderr(&out));
        files.push(write(&dir, name, &stdout(&out)));
    }
    let out = allot(&["sim", "compare", &files[0], &files[1], "--json"]);
    let d = json(&out);
    // With a second node b's jobs start at once: its mean wait drops from 85 s to 0.
    assert_eq!(d["per_tenant"]["org/b"]["avg_wait_s"]["a"], 85.0);
    assert_eq!(d["per_tenant"]["org/b"]["avg_wait_s"]["b"], 0.0);
    assert_eq!(d["per_tenant"]["org/b"]["avg_wait_s"]["delta"], -85.0);
    assert_eq!(d["overall"]["gpus"]["delta"], 8.0);
    let out = allot(&["sim", "compare", &files[0], &files[1]]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("org/b") && text.contains("85 s -> 0 s"), "{text}");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dir = scratch("bad");
    let cluster = write(&dir, "cluster.toml", CLUSTER);
    let trace = write(&dir, "trace.jsonl", TRACE);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--cluster", &cluster, "--trace", "/nonexistent/t.jsonl", "--format", "allot"], "/nonexistent/t.jsonl"),
        (vec!["--cluster", "/nonexistent/c.toml", "--trace", &trace, "--format", "allot"], "/nonexistent/c.toml"),
        (vec!["--cluster", &cluster, "--trace", &trace, "--format", "nope"], "philly-pollux"),
        (vec!["--cluster", &cluster, "--trace", &trace, "--format", "allot", "--policy", "lifo"], "unknown policy `lifo`"),
        (vec!["--cluster", &cluster, "--trace", &trace, "--format", "allot", "--fail", "ghost@10"], "ghost"),
        (vec!["--cluster", &cluster, "--trace", &trace, "--format", "allot", "--fail", "n0@soon"], "soon"),
        (vec!["--cluster", &cluster, "--trace", &trace, "--format", "allot", "--walltime-factor", "NaN"], "walltime-factor"),
        (vec!["--cluster", &cluster, "--trace", &trace, "--format", "allot", "--node-mtbf-hours=-1"], "mtbf"),
        (vec!["--cluster", &cluster, "--trace", &trace, "--format", "philly-pollux"], "trace.jsonl"),
    ];
    for (args, want) in cases {
        let mut all = vec!["sim", "replay"];
        all.extend(args.iter().copied());
        let out = allot(&all);
        let err = stderr(&out);
        assert!(!out.status.success(), "{all:?} succeeded");
        assert!(!err.contains("panicked"), "{all:?} panicked: {err}");
        assert!(err.to_lowercase().contains(&want.to_lowercase()), "{all:?}: `{want}` not in: {err}");
    }
    let bad = write(&dir, "bad.json", "not json");
    let out = allot(&["sim", "compare", &bad, &bad]);
    assert!(!out.status.success() && stderr(&out).contains("bad.json"), "{}", stderr(&out));
}

#[test]
fn node_failure_from_the_command_line_requeues() {
    let dir = scratch("fail");
    let cluster = write(&dir, "cluster.toml", CLUSTER);
    let trace = write(&dir, "trace.jsonl", TRACE);
    let out = allot(&[
        "sim",
        "replay",
        "--cluster",
        &cluster,
        "--trace",
        &trace,
        "--format",
        "allot",
        "--json",
        "--quiet",
        "--fail",
        "n0@50",
        "--repair-hours",
        "0.01",
    ]);
    let d = json(&out);
    assert_eq!(f(&d, "completed"), 3.0, "{d}");
    assert_eq!(f(&d, "failure_requeues"), 1.0, "{d}");
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The national example: both cluster files pass `check` with their sizes, and a
/// small generated workload on it replays to the end.
#[test]
fn national_example_checks_and_replays() {
    let dir = scratch("national");
    let root = repo_root().join("examples/national");
    for (file, want) in
        [("cluster.toml", "34300 nodes, 260000 GPUs in 5 flavors"), ("cluster-plus-10k.toml", "35550 nodes, 270000 GPUs in 5 flavors")]
    {
        let out = allot(&["check", root.join(file).to_str().unwrap()]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        assert!(stdout(&out).contains(want), "{file}: {}", stdout(&out));
    }
    let cluster = root.join("cluster.toml");
    let work = dir.join("work.jsonl");
    let out = allot(&[
        "sim",
        "generate",
        "--profile",
        "national",
        "--cluster",
        cluster.to_str().unwrap(),
        "--jobs",
        "300",
        "--days",
        "1",
        "--seed",
        "3",
        "--out",
        work.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = allot(&[
        "sim",
        "replay",
        "--cluster",
        cluster.to_str().unwrap(),
        "--trace",
        work.to_str().unwrap(),
        "--format",
        "allot",
        "--json",
        "--quiet",
        "--no-check-invariants",
    ]);
    let d = json(&out);
    assert_eq!((f(&d, "jobs"), f(&d, "completed"), f(&d, "rejected")), (300.0, 300.0, 0.0), "{d}");
    assert_eq!(f(&d, "gpus"), 260_000.0);
    assert!(d["per_tenant"].as_object().unwrap().keys().all(|t| t.starts_with("nation/")));
}
