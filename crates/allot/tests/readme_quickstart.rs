//! The README's quick start, run as written. The commands come from README.md itself:
//! the ```sh block after `<!-- quickstart: run -->` (the set-up commands) and the one
//! after `<!-- quickstart: try -->` (what a newcomer types in a second terminal). If
//! the README's commands stop working, or the README changes them into something this
//! test does not know how to run, it fails.
//!
//! Two substitutions keep it fast and hermetic: `cargo run --release -p allot --` is
//! this build's `allot` (no second build in release mode), and `$PWD/target/release`
//! is the folder of that binary. `allot up` gets `--listen 127.0.0.1:0` (a free port)
//! and runs in a temporary folder with a temporary HOME, so the client config it writes
//! does not touch the user's own. `cargo test --workspace` is what runs this test: it
//! is checked to be there, not run again.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const README: &str = include_str!("../../../README.md");

/// What the try block's job prints; the README says so, and the log must show it.
const HELLO: &str = "hello from allot";

/// Longest wait for `allot up` to print its URL, and for the try block to finish.
const UP_TIMEOUT: Duration = Duration::from_secs(60);
const TRY_TIMEOUT: Duration = Duration::from_secs(90);

/// The lines of the ```sh block that follows `marker`.
fn block_after(marker: &str) -> Vec<String> {
    let at = README.find(marker).unwrap_or_else(|| panic!("README.md has no `{marker}` marker before its quick-start block"));
    let rest = &README[at + marker.len()..];
    let mut lines = rest.lines().skip_while(|l| l.trim().is_empty());
    let fence = lines.next().unwrap_or_default();
    assert_eq!(fence.trim(), "```sh", "`{marker}` must be followed by a ```sh block, found `{fence}`");
    let body: Vec<String> = lines.by_ref().take_while(|l| l.trim() != "```").map(str::to_string).collect();
    assert!(!body.is_empty(), "the block after `{marker}` is empty");
    body
}

/// Commands of a block: no blank lines, no comment lines.
fn commands(block: &[String]) -> Vec<String> {
    block.iter().map(|l| l.trim()).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

/// Ends `allot up` the way a person does (Ctrl-C) if the test stops early.
struct Up(Option<Child>);

impl Up {
    /// Ctrl-C, then its exit status (killed after a while: a hang is a failure).
    /// By design the jobs keep running when `allot up` stops (the next one adopts
    /// them); this test's demo jobs are ended here, so that none outlives it.
    fn interrupt(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.0.take()?;
        let replicas = replicas_below(child.id());
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let status = wait_or_kill(&mut child);
        end_replicas(&replicas);
        status
    }
}

fn wait_or_kill(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The job processes the agents of `allot up` (pid `up`) started: the descendants
/// that lead their own process group (each replica does) inside an agent's folder.
fn replicas_below(up: u32) -> Vec<(i32, std::path::PathBuf)> {
    let mut out = vec![];
    let mut todo = vec![up];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            todo.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        let Ok(cwd) = std::fs::read_link(format!("/proc/{p}/cwd")) else { continue };
        let leads_group = std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|st| st.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(2).map(|g| g == p.to_string())))
            .unwrap_or(false);
        if leads_group && cwd.components().any(|c| c.as_os_str() == "work") {
            out.push((p as i32, cwd));
        }
    }
    out
}

/// Kills the replicas' process groups, and removes the agents' folder when it lies
/// outside the test's temporary folder (`allot up` run by root keeps it in /tmp).
fn end_replicas(replicas: &[(i32, std::path::PathBuf)]) {
    let mut dirs = std::collections::BTreeSet::new();
    for (pgid, cwd) in replicas {
        // Only if it is still the same process (the pid was not reused).
        if std::fs::read_link(format!("/proc/{pgid}/cwd")).is_ok_and(|c| &c == cwd) {
            // SAFETY: kill(2) on a process group this test's `allot up` started.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        if let Some(base) = cwd.ancestors().find(|a| a.file_name().is_some_and(|n| n.to_string_lossy().starts_with("allot-up-agents-"))) {
            dirs.insert(base.to_path_buf());
        }
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.interrupt();
    }
}

/// A GET of `url` (http://host:port/path) over plain TCP: status line and body.
fn http_get(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("the dashboard URL is http");
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = std::net::TcpStream::connect(host).unwrap_or_else(|e| panic!("cannot connect to the dashboard at {host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// Runs `script` with bash in `dir`, killed after `limit`: (success, stdout, stderr).
fn run_script(script: &str, dir: &Path, home: &Path, limit: Duration) -> (bool, String, String) {
    let mut child = clean(&mut Command::new("bash"))
        .args(["-e", "-o", "pipefail", "-c", script])
        .current_dir(dir)
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (t_out.join().unwrap(), t_err.join().unwrap());
    match status {
        Some(st) => (st.success(), stdout, stderr),
        None => panic!("the quick start's second block did not finish in {limit:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"),
    }
}

/// Clears what would point the CLI elsewhere (the flags' environment twins, the
/// config locations), as on a fresh machine.
fn clean(cmd: &mut Command) -> &mut Command {
    for v in ["ALLOT_SERVER", "ALLOT_TOKEN", "ALLOT_CONFIG", "ALLOT_TENANT", "ALLOT_CA_CERT", "XDG_CONFIG_HOME"] {
        cmd.env_remove(v);
    }
    cmd
}

#[test]
fn the_readme_quick_start_runs_as_written() {
    let bin = Path::new(env!("CARGO_BIN_EXE_allot"));
    let bin_dir = bin.parent().expect("the binary is in a folder");

    // 1. The set-up block: `allot up` (run here) and the test command (what runs this).
    let run = commands(&block_after("<!-- quickstart: run -->"));
    let mut up_args: Option<Vec<String>> = None;
    let mut saw_test = false;
    for cmd in &run {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        match words.as_slice() {
            ["cargo", "run", "--release", "-p", "allot", "--", "up", rest @ ..] => {
                assert!(up_args.is_none(), "the quick start starts `allot up` twice");
                assert!(
                    rest.iter().all(|w| !w.contains(['\'', '"', '$', '|', '&', ';'])),
                    "this test passes `{cmd}` to allot without a shell: keep it free of quotes and shell syntax"
                );
                up_args = Some(std::iter::once("up").chain(rest.iter().copied()).map(str::to_string).collect());
            }
            ["cargo", "test", "--workspace"] => saw_test = true,
            _ => panic!("the quick start's set-up block has a command this test does not know how to run: `{cmd}`"),
        }
    }
    let up_args = up_args.expect("the quick start's set-up block starts `cargo run --release -p allot -- up ...`");
    assert!(saw_test, "the quick start's set-up block gives the test command `cargo test --workspace`");
    assert!(
        !up_args.iter().any(|a| a == "--listen" || a.starts_with("--listen=") || a == "--data-dir" || a.starts_with("--data-dir=")),
        "the quick start's `allot up` names --listen or --data-dir; this test chooses them"
    );

    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("allot");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let mut child = clean(&mut Command::new(bin))
        .args(&up_args)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(&repo)
        .env("HOME", &home)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("allot up starts");
    let stdout = child.stdout.take().unwrap();
    let mut up = Up(Some(child));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut url, mut token, mut printed) = (String::new(), String::new(), String::new());
    let deadline = Instant::now() + UP_TIMEOUT;
    while url.is_empty() || token.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("`allot {}` did not print its dashboard URL and admin token:\n{printed}", up_args.join(" ")));
        printed.push_str(&line);
        printed.push('\n');
        if let Some(u) = line.trim().strip_prefix("dashboard:") {
            url = u.trim().to_string();
        }
        if let Some(t) = line.trim().strip_prefix("admin token:") {
            token = t.trim().to_string();
        }
    }
    assert!(token.starts_with("allot_"), "admin token: {token}");
    // The dashboard answers at the printed URL.
    let (status, body) = http_get(&url);
    assert!(status.contains(" 200"), "GET {url}: {status}");
    assert!(body.contains("<html") || body.contains("<!doctype html") || body.contains("<!DOCTYPE html"), "GET {url} is not a page");
    // The client config that lets the CLI run without flags, here and in HOME.
    assert!(repo.join(".allot/client.toml").is_file(), "allot up wrote no .allot/client.toml:\n{printed}");
    assert!(home.join(".config/allot/client.toml").is_file(), "allot up wrote no ~/.config/allot/client.toml:\n{printed}");

    // 2. The second terminal, as written, with `allot` being this build.
    let try_block = block_after("<!-- quickstart: try -->");
    let script = try_block.join("\n");
    assert!(
        script.contains("$PWD/target/release"),
        "the quick start's second block puts `$PWD/target/release` on PATH; this test maps that folder to this build's binary"
    );
    assert!(script.contains(HELLO), "the quick start's job prints `{HELLO}` (this test looks for it in the log)");
    let script = script.replace("$PWD/target/release", &bin_dir.display().to_string());
    let (ok, out, err) = run_script(&script, &repo, &home, TRY_TIMEOUT);
    assert!(ok, "the quick start's second block failed\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("TENANT") && out.contains("local"), "`allot jobs` listed no job of tenant local:\n{out}");
    assert!(out.lines().any(|l| l.trim() == HELLO), "the job's log does not show `{HELLO}`:\nstdout:\n{out}\nstderr:\n{err}");

    // The job is done, and it is the only one of tenant `local`.
    let jobs = clean(&mut Command::new(bin))
        .args(["jobs", "--all", "--tenant", "local", "--output", "json"])
        .current_dir(&repo)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(jobs.status.success(), "allot jobs: {}", String::from_utf8_lossy(&jobs.stderr));
    let list: serde_json::Value = serde_json::from_slice(&jobs.stdout).expect("allot jobs --output json prints JSON");
    let list = list.as_array().expect("a JSON array of jobs");
    assert_eq!(list.len(), 1, "one job of tenant local: {list:?}");
    assert_eq!(list[0]["state"], "completed", "{:?}", list[0]);

    // Ctrl-C stops it cleanly.
    let status = up.interrupt().expect("allot up stops on Ctrl-C");
    assert!(status.success(), "allot up exited with {status} after Ctrl-C");
}
