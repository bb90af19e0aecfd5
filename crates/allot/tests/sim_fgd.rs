//! Black-box tests of `allot sim fgd`: the JSON the target check reads, the files
//! `--out` writes, and errors that name what was wrong.

use std::path::{Path, PathBuf};
use std::process::Command;

fn allot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_allot"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("allot-sim-fgd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const NODES: &str = "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,8,G2\nn1,64000,262144,8,G2\nn2,32000,131072,2,T4\n";
const PODS: &str = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n\
p0,4000,8192,1,1000,,LS,Running,0,10,0\n\
p1,2000,4096,1,500,,LS,Running,1,10,1\n\
p2,8000,16384,2,1000,,BE,Running,2,10,2\n\
p3,1000,2048,0,0,,BE,Running,3,10,3\n\
p4,4000,8192,1,250,T4,LS,Running,4,10,4\n";

#[test]
fn json_has_one_curve_per_policy_with_every_arrived_percent() {
    let dir = temp_dir("json");
    let nodes = write(&dir, "nodes.csv", NODES);
    let pods = write(&dir, "pods.csv", PODS);
    let out = allot()
        .args(["sim", "fgd", "--nodes"])
        .arg(&nodes)
        .arg("--pods")
        .arg(&pods)
        .args(["--policies", "random,fgd,default", "--seeds", "1-3", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let d: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    assert_eq!(d["runs"], 9, "3 policies x 3 seeds");
    assert!(d["wall_seconds"].as_f64().unwrap() > 0.0);
    for p in ["random", "fgd", "default"] {
        let alloc = d["policies"][p]["alloc_pct"].as_object().unwrap();
        assert_eq!(alloc.len(), 131, "{p}: 0..=130");
        assert_eq!(alloc["0"], 0.0);
        let a100 = alloc["100"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&a100), "{p}: {a100}");
        assert_eq!(d["policies"][p]["frag_ratio_pct"].as_object().unwrap().len(), 131);
    }
}

#[test]
fn out_writes_curves_runs_and_plots() {
    let dir = temp_dir("out");
    let nodes = write(&dir, "nodes.csv", NODES);
    let pods = write(&dir, "openb_pod_list_tiny.csv", PODS);
    let out_dir = dir.join("out");
    let out = allot()
        .args(["sim", "fgd", "--nodes"])
        .arg(&nodes)
        .arg("--pods")
        .arg(&pods)
        .args(["--policies", "bestfit,default", "--seeds", "7"])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("bestfit") && table.contains("alloc@100"), "a summary table: {table}");
    let curves = std::fs::read_to_string(out_dir.join("tiny_curves.csv")).unwrap();
    assert!(curves.starts_with("policy,arrived_pct,alloc_pct,frag_ratio_pct\n"));
    assert!(curves.lines().any(|l| l.starts_with("default,100,")));
    let runs = std::fs::read_to_string(out_dir.join("tiny_runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 3, "header + one line per policy and seed");
    for f in ["tiny_alloc.svg", "tiny_alloc.png"] {
        let meta = std::fs::metadata(out_dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 1000, "{f} has a plot in it");
    }
}

#[test]
fn unknown_policy_and_bad_rows_are_named() {
    let dir = temp_dir("bad");
    let nodes = write(&dir, "nodes.csv", NODES);
    let pods = write(&dir, "pods.csv", PODS);
    let out = allot().args(["sim", "fgd", "--nodes"]).arg(&nodes).arg("--pods").arg(&pods).args(["--policies", "tetris"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown policy `tetris`"), "{err}");

    let bad = write(&dir, "bad.csv", &PODS.replace("p2,8000,16384,2,1000", "p2,8000,16384,two,1000"));
    let out = allot().args(["sim", "fgd", "--nodes"]).arg(&nodes).arg("--pods").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv:4") && err.contains("num_gpu") && err.contains("`two`"), "file, line, column, value: {err}");

    let out = allot()
        .args(["sim", "fgd", "--nodes"])
        .arg(&nodes)
        .arg("--pods")
        .arg(&bad)
        .args(["--skip-bad-rows", "--seeds", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "skipping the bad row lets the run go on: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped 1 bad rows"));
}
