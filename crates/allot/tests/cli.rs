//! Black-box tests of the `allot` binary: run it as a user would and check what it
//! prints and how it exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn allot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_allot")).args(args).output().expect("the allot binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// The repository root (two levels above this crate).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes `text` to a file of this test's own in Cargo's scratch directory.
fn scratch_file(name: &str, text: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).expect("write scratch file");
    path
}

#[test]
fn help_lists_the_subcommands() {
    let out = allot(&["--help"]);
    assert!(out.status.success(), "allot --help failed: {}", stderr(&out));
    let text = stdout(&out);
    for sub in ["bench", "check"] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(sub)), "`{sub}` missing from --help:\n{text}");
    }
}

#[test]
fn bench_help_lists_the_scheduler_benchmark_and_its_options() {
    let out = allot(&["bench", "scheduler", "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for opt in ["--gpus", "--pending", "--seed", "--passes", "--json"] {
        assert!(text.contains(opt), "`{opt}` missing from `allot bench scheduler --help`:\n{text}");
    }
}

#[test]
fn token_roles_are_listed_in_help_and_checked() {
    let out = allot(&["tokens", "create", "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for role in ["admin:", "tenant_admin:", "user:", "node:"] {
        assert!(text.contains(role), "role `{role}` missing from `allot tokens create --help`:\n{text}");
    }
    let out = allot(&["tokens", "create", "x", "--role", "root", "--server", "http://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2), "an unknown role is a usage error: {}", stderr(&out));
    assert!(stderr(&out).contains("possible values: admin, tenant_admin, user, node"), "{}", stderr(&out));
}

#[test]
fn no_subcommand_is_a_usage_error() {
    let out = allot(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Usage"), "{}", stderr(&out));
}

#[test]
fn check_accepts_the_small_cluster_example_and_prints_its_size() {
    let path = repo_root().join("examples/small-cluster.toml");
    let out = allot(&["check", path.to_str().unwrap()]);
    assert!(out.status.success(), "check failed: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("12 nodes"), "{text}");
    assert!(text.contains("96 GPUs"), "{text}");
    assert!(text.contains("2 flavors"), "{text}");
    assert!(text.contains("4 tenants"), "{text}");
}

#[test]
fn every_toml_example_passes_check() {
    let dir = repo_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = allot(&["check", path.to_str().unwrap()]);
            assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
            checked += 1;
        }
    }
    assert!(checked > 0, "no TOML examples under {}", dir.display());
}

#[test]
fn check_rejects_an_unknown_field_and_names_its_path() {
    let path = scratch_file(
        "unknown-field.toml",
        r#"
version = 1
flavors = [{ name = "H100" }]

[[nodes]]
name = "n0"
at = "s/b/l"
flavor = "H100"
gpus = 8

[[tenants]]
path = "org"
quota = [{ flavor = "H100", nominal = 8, borrow = 3 }]
"#,
    );
    let out = allot(&["check", path.to_str().unwrap()]);
    assert!(!out.status.success(), "an unknown field was accepted: {}", stdout(&out));
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("tenants[0].quota[0]"), "error does not name the field path: {err}");
    assert!(err.contains("borrow"), "error does not name the field: {err}");
    assert!(stdout(&out).is_empty(), "nothing is printed on stdout on error");
}

#[test]
fn check_rejects_a_semantic_error_and_names_its_path() {
    let path = scratch_file(
        "unknown-flavor.toml",
        r#"
version = 1
flavors = [{ name = "H100" }]

[[nodes]]
name = "n0"
at = "s/b/l"
flavor = "B200"
gpus = 8
"#,
    );
    let out = allot(&["check", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("nodes[0].flavor"), "{err}");
    assert!(err.contains("B200"), "{err}");
}

#[test]
fn check_of_a_missing_file_fails() {
    let out = allot(&["check", "/nonexistent/allot-cluster.toml"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/nonexistent/allot-cluster.toml"), "{}", stderr(&out));
}

#[test]
fn bench_scheduler_json_prints_one_object_with_the_documented_fields() {
    let out = allot(&["bench", "scheduler", "--gpus", "8000", "--pending", "2000", "--passes", "20", "--json"]);
    assert!(out.status.success(), "bench failed: {}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "--json prints exactly one line:\n{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("stdout is one JSON value");
    let obj = v.as_object().expect("a JSON object");

    let num = |k: &str| -> f64 {
        obj.get(k).unwrap_or_else(|| panic!("field `{k}` missing in {text}")).as_f64().unwrap_or_else(|| panic!("`{k}` is not a number"))
    };
    for k in [
        "gpus",
        "nodes",
        "pending",
        "fill_jobs_started",
        "fill_gpus_allocated",
        "fill_seconds",
        "fill_jobs_per_s",
        "steady_pass_p50_ms",
        "steady_pass_p99_ms",
        "peak_rss_mib",
    ] {
        let x = num(k);
        assert!(x.is_finite() && x >= 0.0, "`{k}` = {x}");
    }
    // The sizes asked for come back; the rest is consistent. No timing is asserted.
    assert_eq!(num("gpus"), 8000.0);
    assert_eq!(num("nodes"), 1000.0);
    assert_eq!(num("pending"), 2000.0);
    assert!(num("fill_jobs_started") >= 1.0);
    assert!(num("fill_jobs_started") <= 2000.0);
    assert!(num("fill_gpus_allocated") <= 8000.0);
    assert!(num("steady_pass_p50_ms") <= num("steady_pass_p99_ms"));
    if let Some(passes) = obj.get("steady_passes") {
        assert_eq!(passes.as_u64(), Some(20));
    }
}

#[test]
fn bench_scheduler_is_deterministic_in_what_it_schedules() {
    let run = || {
        let out = allot(&["bench", "scheduler", "--gpus", "4000", "--pending", "500", "--passes", "5", "--seed", "3", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
        (v["fill_jobs_started"].clone(), v["fill_gpus_allocated"].clone())
    };
    assert_eq!(run(), run());
}

#[test]
fn readme_documents_every_bench_scheduler_field() {
    let out = allot(&["bench", "scheduler", "--gpus", "4000", "--pending", "500", "--passes", "5", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let printed: std::collections::BTreeSet<String> = v.as_object().unwrap().keys().cloned().collect();

    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md at the root");
    let section = readme.split("## The scheduler benchmark").nth(1).expect("README has a scheduler benchmark section");
    // Up to the next section: later sections have tables of their own.
    let section = section.split("\n## ").next().unwrap_or(section);
    let documented: std::collections::BTreeSet<String> =
        section.lines().filter_map(|l| l.strip_prefix("| `")).filter_map(|l| l.split('`').next()).map(str::to_string).collect();
    let undocumented: Vec<_> = printed.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&printed).collect();
    assert!(undocumented.is_empty(), "fields printed but not in the README table: {undocumented:?}");
    assert!(missing.is_empty(), "fields in the README table but not printed: {missing:?}");
}

/// `allot ... | head` must not panic when `head` has read enough: found with
/// `allot sim compare a.json b.json | head`, which panicked in `println!`.
#[test]
#[cfg(unix)]
fn a_closed_stdout_ends_the_command_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["completion", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the allot binary runs");
    // The reader goes before the command writes a line.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("allot exits");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success() || out.status.signal() == Some(libc::SIGPIPE), "{:?}: {err}", out.status);
}
