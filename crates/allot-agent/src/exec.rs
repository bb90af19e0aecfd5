//! Running one replica: its own process group, its working directory, its env, its
//! log file, never as root; stopping it (SIGTERM, grace, SIGKILL of the group).
//!
//! The command runs under a small `sh` wrapper that writes the exit code to a file,
//! so an agent that restarts can learn how a replica it adopted ended. A record of
//! every replica (pid and start time) is kept in the node's `run/` folder until the
//! server has acknowledged its exit. The process is started by `spawn` (no copy of
//! the agent's memory, also when it changes the user).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use allot_api::agent::{Assignment, ExitInfo, ReplicaKey};
use serde::{Deserialize, Serialize};

use crate::config::{ContainerConfig, UserMap};

/// A user to run jobs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Looks up a user by name.
pub fn lookup_user(name: &str) -> Option<RunAs> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; `buf` outlives it.
    let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    Some(RunAs { name: name.to_string(), uid: pwd.pw_uid, gid: pwd.pw_gid })
}

/// The user a tenant's jobs run as when the agent is root: the most specific
/// mapping (a tenant or one of its ancestors), else the default account.
pub fn user_for(users: &UserMap, tenant: &str) -> Result<RunAs, String> {
    let mut t = tenant;
    let name = loop {
        if let Some(u) = users.tenants.get(t) {
            break u.clone();
        }
        match t.rfind('/') {
            Some(i) => t = &t[..i],
            None => break users.default.clone(),
        }
    };
    let u = lookup_user(&name).ok_or_else(|| format!("no user `{name}` on this node for tenant `{tenant}`"))?;
    if u.uid == 0 {
        return Err(format!("user `{name}` is root: jobs never run as root"));
    }
    Ok(u)
}

/// What is kept on disk about a replica while it runs (and until its exit is acknowledged).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub replica: ReplicaKey,
    pub pid: u32,
    /// Start time of the process (field 22 of /proc/PID/stat), against pid reuse.
    pub start_ticks: u64,
    pub started_ms: i64,
    pub exit_file: PathBuf,
}

pub fn record_path(run_dir: &Path, k: &ReplicaKey) -> PathBuf {
    run_dir.join(format!("{}-{}-{}.json", k.job, k.epoch, k.rank))
}

pub fn log_path(log_dir: &Path, job: u64, rank: u32) -> PathBuf {
    log_dir.join(format!("{job}.{rank}.log"))
}

/// Start time of a live process, `None` when it is gone (or a zombie).
pub fn proc_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Sends `sig` to the process group `pgid`.
pub fn signal_group(pgid: u32, sig: libc::c_int) {
    if pgid > 1 {
        // SAFETY: kill has no memory preconditions; a negative pid names the group.
        unsafe {
            libc::kill(-(pgid as libc::pid_t), sig);
        }
    }
}

/// SIGTERM now, SIGKILL after `grace` (both to the whole process group).
pub fn terminate_group(pgid: u32, grace: Duration) {
    signal_group(pgid, libc::SIGTERM);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        signal_group(pgid, libc::SIGKILL);
    });
}

/// Where a node keeps its files.
#[derive(Clone, Debug)]
pub struct Dirs {
    pub run: PathBuf,
    pub logs: PathBuf,
    pub work: PathBuf,
}

impl Dirs {
    pub fn create(root: &Path) -> std::io::Result<Dirs> {
        let d = Dirs { run: root.join("run"), logs: root.join("logs"), work: root.join("work") };
        for p in [&d.run, &d.logs, &d.work] {
            std::fs::create_dir_all(p)?;
        }
        Ok(d)
    }
}

/// Everything needed to start replicas on one node.
#[derive(Clone, Debug)]
pub struct Launcher {
    pub node: String,
    pub dirs: Dirs,
    pub users: UserMap,
    pub container: Option<ContainerConfig>,
    /// Environment every job gets before its own (PATH, LANG ...).
    pub base_env: BTreeMap<String, String>,
}

/// A started replica.
pub struct Spawned {
    pub child: Child,
    pub record: Record,
}

/// A replica's process, started by `spawn` (or by `std` where the kernel cannot).
pub enum Child {
    Clone(crate::spawn::Child),
    Std(tokio::process::Child),
}

impl Child {
    pub fn id(&self) -> u32 {
        match self {
            Child::Clone(c) => c.id(),
            Child::Std(c) => c.id().unwrap_or(0),
        }
    }

    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self {
            Child::Clone(c) => c.wait().await,
            Child::Std(c) => c.wait().await,
        }
    }
}

fn cstring(what: &str, s: impl Into<Vec<u8>>) -> Result<std::ffi::CString, String> {
    std::ffi::CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

const WRAPPER: &str = r#""$@"; c=$?; echo "$c" > "$ALLOT_EXIT_FILE"; exit "$c""#;

impl Launcher {
    /// The environment of a replica: base, the job's, then allot's own variables.
    pub fn env(&self, a: &Assignment, private: &Path, exit_file: &Path) -> BTreeMap<String, String> {
        let mut env = self.base_env.clone();
        env.insert("HOME".into(), private.display().to_string());
        env.extend(a.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let gpus: Vec<String> = a.gpus.iter().map(|g| g.to_string()).collect();
        let k = &a.replica;
        for (key, val) in [
            ("CUDA_VISIBLE_DEVICES", gpus.join(",")),
            ("ALLOT_JOB_ID", k.job.to_string()),
            ("ALLOT_TENANT", a.tenant.clone()),
            ("ALLOT_NODE", self.node.clone()),
            ("ALLOT_EPOCH", k.epoch.to_string()),
            ("ALLOT_EXIT_FILE", exit_file.display().to_string()),
            ("WORLD_SIZE", a.world_size.to_string()),
            ("RANK", k.rank.to_string()),
            ("LOCAL_RANK", a.local_rank.to_string()),
            ("NODE_RANK", a.node_rank.to_string()),
            ("MASTER_ADDR", a.master_addr.clone()),
            ("MASTER_PORT", a.master_port.to_string()),
        ] {
            env.insert(key.into(), val);
        }
        env
    }

    /// The command line: the job's, or its container run through the configured runtime.
    fn command_line(&self, a: &Assignment, env: &BTreeMap<String, String>, workdir: &Path) -> Result<Vec<String>, String> {
        if a.command.is_empty() {
            return Err("the job has no command".into());
        }
        let (Some(image), Some(c)) = (&a.image, &self.container) else { return Ok(a.command.clone()) };
        let mut cmd = vec![c.runtime.clone()];
        let gpus: Vec<String> = a.gpus.iter().map(|g| g.to_string()).collect();
        let wd = workdir.display().to_string();
        match c.runtime.rsplit('/').next().unwrap_or("") {
            "apptainer" | "singularity" => {
                cmd.extend(["exec".into(), "--nv".into(), "--pwd".into(), wd.clone(), "--bind".into(), wd.clone()]);
                for (k, v) in env {
                    cmd.extend(["--env".into(), format!("{k}={v}")]);
                }
                cmd.push(image.clone());
            }
            _ => {
                // docker, podman
                cmd.extend(["run".into(), "--rm".into(), "--network".into(), "host".into(), "--ipc".into(), "host".into()]);
                if !gpus.is_empty() {
                    cmd.extend(["--gpus".into(), format!("\"device={}\"", gpus.join(","))]);
                }
                cmd.extend(["-v".into(), format!("{wd}:{wd}"), "-w".into(), wd.clone()]);
                for (k, v) in env {
                    cmd.extend(["-e".into(), format!("{k}={v}")]);
                }
                cmd.extend(c.extra_args.iter().cloned());
                cmd.push(image.clone());
            }
        }
        cmd.extend(a.command.iter().cloned());
        Ok(cmd)
    }

    /// Starts a replica. An error says why it could not start.
    pub fn spawn(&self, a: &Assignment) -> Result<Spawned, String> {
        let k = &a.replica;
        let user = if is_root() { Some(user_for(&self.users, &a.tenant)?) } else { None };
        let private = self.dirs.work.join(format!("{}-{}-{}", k.job, k.epoch, k.rank));
        std::fs::create_dir_all(&private).map_err(|e| format!("cannot create {}: {e}", private.display()))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700));
        if let Some(u) = &user {
            chown(&private, u)?;
        }
        let exit_file = private.join(".allot-exit");
        let _ = std::fs::remove_file(&exit_file);
        let workdir = match &a.workdir {
            Some(w) => PathBuf::from(w),
            None => private.clone(),
        };
        if !workdir.is_dir() {
            return Err(format!("working directory {} does not exist", workdir.display()));
        }
        let env = self.env(a, &private, &exit_file);
        let line = self.command_line(a, &env, &workdir)?;
        let log = log_path(&self.dirs.logs, k.job, k.rank);
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot open log {}: {e}", log.display()))?;
        {
            use std::io::Write;
            let _ = writeln!(out, "[allot] job {} replica {} epoch {} on {}", k.job, k.rank, k.epoch, self.node);
        }
        let child = self.start(&line, &env, &workdir, out, user.as_ref())?;
        let pid = child.id();
        let record =
            Record { replica: k.clone(), pid, start_ticks: proc_start_ticks(pid).unwrap_or(0), started_ms: crate::now_ms(), exit_file };
        let rp = record_path(&self.dirs.run, k);
        if let Ok(text) = serde_json::to_string(&record) {
            let _ = std::fs::write(&rp, text);
        }
        Ok(Spawned { child, record })
    }
}

impl Launcher {
    /// Starts the wrapper with the command line, output to `out`.
    fn start(
        &self,
        line: &[String],
        env: &BTreeMap<String, String>,
        workdir: &Path,
        out: std::fs::File,
        user: Option<&RunAs>,
    ) -> Result<Child, String> {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        let null = std::fs::File::open("/dev/null").map_err(|e| format!("cannot open /dev/null: {e}"))?;
        let mut argv = vec![cstring("the shell", "/bin/sh")?, cstring("the shell", "-c")?, cstring("the wrapper", WRAPPER)?];
        argv.push(cstring("the wrapper", "allot-job")?);
        for a in line {
            argv.push(cstring("the command", a.as_str())?);
        }
        let envp = env.iter().map(|(k, v)| cstring("the environment", format!("{k}={v}"))).collect::<Result<Vec<_>, _>>()?;
        let cwd = cstring("the working directory", workdir.as_os_str().as_bytes())?;
        let req = crate::spawn::Request {
            program: &argv[0],
            argv: &argv,
            envp: &envp,
            cwd: &cwd,
            stdio: [null.as_raw_fd(), out.as_raw_fd(), out.as_raw_fd()],
            user: user.map(|u| (u.uid, u.gid)),
        };
        match crate::spawn::spawn(&req) {
            Ok(Some(c)) => return Ok(Child::Clone(c)),
            Ok(None) => {}
            Err(e) => return Err(format!("cannot start {:?}: {e}", line.first())),
        }
        let err = out.try_clone().map_err(|e| format!("log: {e}"))?;
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c").arg(WRAPPER).arg("allot-job").args(line);
        cmd.env_clear().envs(env).current_dir(workdir);
        cmd.stdin(std::process::Stdio::null()).stdout(out).stderr(err);
        cmd.process_group(0);
        cmd.kill_on_drop(false);
        if let Some(u) = user {
            // std drops the supplementary groups (setgroups) before setuid.
            cmd.uid(u.uid).gid(u.gid);
        }
        cmd.spawn().map(Child::Std).map_err(|e| format!("cannot start {:?}: {e}", line.first()))
    }
}

fn chown(p: &Path, u: &RunAs) -> Result<(), String> {
    std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid)).map_err(|e| format!("cannot give {} to {}: {e}", p.display(), u.name))
}

/// How a waited-for process ended.
pub fn exit_of(status: std::process::ExitStatus, runtime: Duration, reason: &str) -> ExitInfo {
    use std::os::unix::process::ExitStatusExt;
    ExitInfo {
        code: status.code(),
        signal: status.signal(),
        runtime_ms: runtime.as_millis() as u64,
        reason: reason.to_string(),
        message: None,
    }
}

/// How an adopted process (not our child) ended: its exit file, or unknown.
pub fn exit_of_adopted(r: &Record, reason: &str) -> ExitInfo {
    let runtime_ms = (crate::now_ms() - r.started_ms).max(0) as u64;
    match std::fs::read_to_string(&r.exit_file).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
        Some(code) => ExitInfo { code: Some(code), signal: None, runtime_ms, reason: reason.to_string(), message: None },
        None => ExitInfo {
            code: None,
            signal: None,
            runtime_ms,
            reason: if reason == "exited" { "lost".into() } else { reason.to_string() },
            message: Some("ended while the agent was away, killed (no exit code)".into()),
        },
    }
}

/// Waits until an adopted process is gone.
pub async fn wait_adopted(pid: u32, ticks: u64) {
    loop {
        match proc_start_ticks(pid) {
            Some(t) if t == ticks => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => return,
        }
    }
}

/// A deadline `d` from `start`, `None` for none.
pub fn deadline(start: Instant, secs: Option<u64>) -> Option<Instant> {
    secs.map(|s| start + Duration::from_secs(s.min(10 * 365 * 86_400)))
}
