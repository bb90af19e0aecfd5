//! Black-box tests of the client commands: `allot up` (no agents) in a scratch
//! folder, then `allot submit`, `jobs`, `show` ... run from that folder with no
//! flags, as a user would in another terminal.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

struct Up {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
    token: String,
}

impl Up {
    /// `allot up --emulate 2x8xH200 --no-agents` on a free port, in a fresh folder
    /// (its own HOME too, so no real user config is read or written).
    fn start() -> Up {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Up::start_in(dir)
    }

    fn start_in(dir: tempfile::TempDir) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
            .args(["up", "--emulate", "2x8xH200", "--no-agents", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env("HOME", dir.path().join("home"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("ALLOT_SERVER")
            .env_remove("ALLOT_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut token) = (None, None);
        while url.is_none() || token.is_none() {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("allot up exited before printing its URL and token");
            };
            if let Some(u) = line.trim().strip_prefix("dashboard:") {
                url = Some(u.trim().trim_end_matches('/').to_string());
            }
            if let Some(t) = line.trim().strip_prefix("admin token:") {
                token = Some(t.trim().to_string());
            }
        }
        // Keep draining stdout so that the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Up { child, dir, url: url.unwrap(), token: token.unwrap() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `allot ARGS` from the scratch folder, with no server flags.
    fn allot(&self, args: &[&str]) -> Output {
        self.allot_in(self.path(), args)
    }

    fn allot_in(&self, cwd: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_allot"))
            .args(args)
            .current_dir(cwd)
            .env("HOME", self.path().join("home"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("ALLOT_SERVER")
            .env_remove("ALLOT_TOKEN")
            .env_remove("ALLOT_CONFIG")
            .env_remove("ALLOT_TENANT")
            .output()
            .unwrap()
    }

    /// Stops it as Ctrl-C would (SIGINT) and waits.
    fn stop(self) -> tempfile::TempDir {
        self.stop_with("INT")
    }

    /// Stops it with `signal` (INT, TERM) and waits: it must exit cleanly (code 0).
    fn stop_with(mut self, signal: &str) -> tempfile::TempDir {
        let _ = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status();
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "allot up exits cleanly on SIG{signal}: {status}");
        self.dir
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed ({:?}): {}{}", o.status.code(), out(&o), err(&o));
    out(&o)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn json(o: Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).expect("one JSON document")
}

#[test]
fn submit_list_show_and_act_with_no_flags() {
    let up = Up::start();
    // The dashboard answers at the URL it printed.
    let page = Command::new("curl").args(["-fsS", &format!("{}/", up.url)]).output();
    if let Ok(p) = page
        && p.status.success()
    {
        assert!(out(&p).contains("allot"), "the dashboard page names allot");
    }
    // flags: quiet prints the id alone
    let id = ok(up.allot(&["submit", "--gpus", "8", "--name", "first", "--output", "quiet", "--", "sh", "-c", "echo hi"]));
    let id = id.trim().to_string();
    assert!(id.parse::<u64>().is_ok(), "quiet prints only the id: {id:?}");
    let j = json(up.allot(&["show", &id, "--output", "json"]));
    assert_eq!(j["id"].to_string(), id);
    assert!(["pending", "running"].contains(&j["state"].as_str().unwrap()), "{j}");
    assert_eq!(j["tenant"], "local", "the tenant comes from the client config");
    assert_eq!(j["spec"]["command"], serde_json::json!(["sh", "-c", "echo hi"]));
    // --gpus beyond one node is split over whole nodes; 3 nodes never fit 2: it waits
    let big = ok(up.allot(&["submit", "--gpus", "24", "--time", "1:00:00", "--output", "quiet", "--", "true"]));
    let big = big.trim();
    let j = json(up.allot(&["show", big, "--output", "json"]));
    assert_eq!((j["spec"]["replicas"].as_u64(), j["spec"]["gpus"].as_u64()), (Some(3), Some(8)));
    assert_eq!(j["spec"]["walltime_s"].as_u64(), Some(3600));
    // the table lists both
    let table = ok(up.allot(&["jobs"]));
    let head = table.lines().next().unwrap();
    for col in ["ID", "NAME", "TENANT", "STATE", "GPUS", "FLAVOR", "WAITED/RAN", "EST.START"] {
        assert!(head.contains(col), "{col} missing: {head}");
    }
    assert!(table.lines().any(|l| l.starts_with(&format!("{id} ")) && l.contains("first")), "{table}");
    assert!(table.lines().any(|l| l.starts_with(&format!("{big} ")) && l.contains("3x8") && l.contains("pending")), "{table}");
    let js = json(up.allot(&["jobs", "--output", "json"]));
    assert!(js["pending"].as_array().unwrap().iter().any(|p| p["job"]["id"].as_u64() == big.parse().ok()), "{js}");
    // explain says why and what would help
    let ex = ok(up.allot(&["explain", big]));
    assert!(ex.contains(&format!("job {big} is pending")) && ex.contains("what would help"), "{ex}");
    // hold, release, cancel
    assert!(ok(up.allot(&["hold", big])).contains("held"));
    assert_eq!(json(up.allot(&["show", big, "--output", "json"]))["state"], "held");
    assert!(ok(up.allot(&["release", big])).contains("pending"));
    assert!(ok(up.allot(&["cancel", big])).contains("cancelled"));
    let again = up.allot(&["cancel", big]);
    assert_eq!(code(&again), 7, "cancelling a cancelled job conflicts: {}", err(&again));
    assert!(err(&again).starts_with("error: "), "{}", err(&again));
    // all jobs, by state
    let all = ok(up.allot(&["jobs", "--all", "--output", "quiet"]));
    assert_eq!(all.lines().count(), 2, "{all}");
    let done = ok(up.allot(&["jobs", "--state", "cancelled", "--output", "quiet"]));
    assert_eq!(done.trim(), big);
    up.stop();
}

#[test]
fn files_scripts_and_errors() {
    let up = Up::start();
    let p = up.path();
    // a script with #SBATCH directives; unknown ones are warnings
    std::fs::write(
        p.join("train.sbatch"),
        "#!/bin/sh\n#SBATCH --job-name=train\n#SBATCH --nodes=2 --gpus-per-node=4\n#SBATCH --time=0-01:30:00\n#SBATCH --partition=H200-141G\n#SBATCH --qos=batch\n#SBATCH --mail-type=END\necho trained\n",
    )
    .unwrap();
    let o = up.allot(&["submit", "train.sbatch", "--output", "quiet"]);
    let id = ok(o.clone());
    assert!(err(&o).contains("warning:") && err(&o).contains("--mail-type=END"), "{}", err(&o));
    let j = json(up.allot(&["show", id.trim(), "--output", "json"]));
    assert_eq!(j["spec"]["name"], "train");
    assert_eq!((j["spec"]["replicas"].as_u64(), j["spec"]["gpus"].as_u64()), (Some(2), Some(4)));
    assert_eq!(j["spec"]["walltime_s"].as_u64(), Some(5400));
    assert_eq!(j["spec"]["flavors"], serde_json::json!(["H200-141G"]));
    assert_eq!(j["spec"]["class"], "batch");
    assert_eq!(j["spec"]["command"][0], "/bin/sh");
    // a TOML job file, a flag on top
    std::fs::write(p.join("job.toml"), "name = 'ft'\ngpu_fraction = 0.5\ncommand = 'echo ft'\nenv = { A = '1' }\n").unwrap();
    let id = ok(up.allot(&["submit", "job.toml", "--name", "ft2", "--output", "json"]));
    let id: serde_json::Value = serde_json::from_str(&id).unwrap();
    let j = json(up.allot(&["show", &id["id"].to_string(), "--output", "json"]));
    assert_eq!((j["spec"]["name"].as_str(), j["spec"]["gpu_milli"].as_u64()), (Some("ft2"), Some(500)));
    // errors: each names the problem, no Rust debug output, its own exit code
    let cases: &[(&[&str], i32, &str)] = &[
        (&["show", "999999"], 5, "not found"),
        (&["show", "abc"], 2, "not a job id"),
        (&["submit", "--gpus", "1", "--flavor", "nope", "--", "true"], 6, "flavor"),
        (&["submit", "--gpus", "1"], 2, "nothing to run"),
        (&["submit", "--time", "soon", "--", "true"], 2, "not a time"),
        (&["submit", "missing.toml"], 1, "cannot read"),
        (&["jobs", "--token", "allot_wrong"], 4, "token"),
        (&["jobs", "--server", "http://127.0.0.1:1"], 3, "cannot reach"),
        (&["drain", "no-such-node"], 5, "no-such-node"),
        (&["jobs", "--state", "sleeping"], 2, "unknown state"),
    ];
    for (args, want, text) in cases {
        let o = up.allot(args);
        assert_eq!(code(&o), *want, "{args:?}: {}", err(&o));
        let e = err(&o);
        assert!(e.contains(text) && e.starts_with("error: "), "{args:?}: {e}");
        assert!(!e.contains("Error {") && !e.contains("panicked"), "{args:?}: {e}");
    }
    // `allot up` also wrote the user's config: commands work from any folder
    assert!(up.path().join("home/.config/allot/client.toml").is_file());
    let elsewhere = tempfile::tempdir().unwrap();
    assert!(up.allot_in(elsewhere.path(), &["nodes"]).status.success());
    // no config anywhere: exit 3 and says how to get one
    let o = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["jobs"])
        .current_dir(elsewhere.path())
        .env("HOME", elsewhere.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("ALLOT_SERVER")
        .env_remove("ALLOT_CONFIG")
        .output()
        .unwrap();
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(err(&o).contains("allot up"), "{}", err(&o));
    // env twins win over the config
    let o = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["nodes", "--output", "quiet"])
        .current_dir(elsewhere.path())
        .env("HOME", elsewhere.path())
        .env("ALLOT_SERVER", &up.url)
        .env("ALLOT_TOKEN", &up.token)
        .output()
        .unwrap();
    assert_eq!(ok(o).lines().count(), 2);
    up.stop();
}

#[test]
fn admin_commands_and_restart_keeps_state() {
    let up = Up::start();
    let nodes = ok(up.allot(&["nodes"]));
    assert!(nodes.contains("node-0") && nodes.contains("H200-141G") && nodes.contains("idle"), "{nodes}");
    assert!(ok(up.allot(&["drain", "node-1"])).contains("drained"));
    assert!(ok(up.allot(&["nodes"])).lines().any(|l| l.starts_with("node-1") && l.contains("drained")));
    assert!(ok(up.allot(&["drain", "--undo", "node-1"])).contains("takes work again"));
    let q = ok(up.allot(&["quota"]));
    assert!(q.lines().next().unwrap().contains("BORROWED") && q.contains("local"), "{q}");
    let t = ok(up.allot(&["tenants"]));
    assert!(t.contains("FAIR SHARE") && t.contains("local"), "{t}");
    let csv = ok(up.allot(&["usage", "--csv"]));
    assert_eq!(csv.lines().next(), Some("tenant,gpu_hours,runs"));
    let made = ok(up.allot(&["tokens", "create", "ann", "--role", "user", "--tenant", "local", "--output", "quiet"]));
    assert!(made.trim().starts_with("allot_"));
    let list = ok(up.allot(&["tokens"]));
    assert!(list.contains("ann") && list.contains("user"), "{list}");
    // a user token submits as itself
    let o = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["submit", "--gpus", "1", "--output", "quiet", "--token", made.trim(), "--", "true"])
        .current_dir(up.path())
        .env("HOME", up.path().join("home"))
        .output()
        .unwrap();
    let id = ok(o);
    let j = json(up.allot(&["show", id.trim(), "--output", "json"]));
    assert_eq!(j["user"], "ann");
    let comp = ok(up.allot(&["completion", "bash"]));
    assert!(comp.contains("allot") && comp.contains("submit"));
    // stop (as systemd does: SIGTERM) and start again on the same folder: the job and the token stay
    let token = up.token.clone();
    let dir = up.stop_with("TERM");
    let up = Up::start_in(dir);
    assert_eq!(up.token, token, "the admin token is kept in the data dir");
    let j = json(up.allot(&["show", id.trim(), "--output", "json"]));
    assert_eq!(j["user"], "ann");
    up.stop();
}

#[test]
fn tenant_commands_create_update_and_delete() {
    let up = Up::start();
    let made = json(up.allot(&["tenants", "create", "local/lab", "--weight", "2", "--quota", "H200-141G=4,borrow=2", "--output", "json"]));
    assert_eq!((made["path"].as_str(), made["parent"].as_str(), made["weight"].as_f64()), (Some("local/lab"), Some("local"), Some(2.0)));
    assert_eq!((made["quotas"][0]["nominal"].as_f64(), made["quotas"][0]["borrowing_limit"].as_f64()), (Some(4.0), Some(2.0)));
    assert!(ok(up.allot(&["tenants"])).lines().any(|l| l.starts_with("local/lab")));
    let table = ok(up.allot(&["tenants", "update", "local/lab", "--quota", "H200-141G=6,lend=1"]));
    assert!(table.lines().next().unwrap().contains("LENDING LIMIT"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("local/lab") && l.contains('6')), "{table}");
    // Refusals exit with the API's codes and say why.
    let o = up.allot(&["tenants", "create", "local/lab"]);
    assert_eq!(code(&o), 7, "{}", err(&o));
    assert!(err(&o).contains("already exists"), "{}", err(&o));
    let o = up.allot(&["tenants", "create", "local/x", "--quota", "H200-141G=99"]);
    assert_eq!(code(&o), 6, "{}", err(&o));
    assert!(err(&o).contains("quotas[0].nominal"), "{}", err(&o));
    let o = up.allot(&["tenants", "create", "local/x", "--quota", "H200-141G"]);
    assert_eq!(code(&o), 2, "{}", err(&o));
    let o = up.allot(&["tenants", "update", "local/lab"]);
    assert_eq!(code(&o), 2, "{}", err(&o));
    let o = up.allot(&["tenants", "delete", "local"]);
    assert_eq!(code(&o), 7, "a tenant with children: {}", err(&o));
    assert_eq!(ok(up.allot(&["tenants", "delete", "local/lab", "--output", "quiet"])).trim(), "local/lab");
    assert!(!ok(up.allot(&["tenants"])).contains("local/lab"));
    assert_eq!(code(&up.allot(&["tenants", "delete", "local/lab"])), 5);
    up.stop();
}
