//! Starting a replica's process without copying the agent.
//!
//! `std::process::Command` starts a process through `posix_spawn` (which does not copy
//! the parent's memory) unless it must change the user, and an agent started as root
//! always does: then it forks, which copies the page tables of the whole agent (every
//! thread, its runtime and buffers) only for the copy to be thrown away by `exec` a
//! moment later, and every page the agent writes afterwards faults once. Measured on
//! `allot bench launch` (2 cores, agent as root): the fork, the exec of the copy and
//! those faults took about 30 % of all CPU time.
//!
//! This does what glibc's `posix_spawn` does, plus the user change: `clone` with
//! `CLONE_VM | CLONE_VFORK` (the child borrows the agent's memory and the calling
//! thread waits until it has called `exec`), and in the child only raw system calls
//! (no allocation, no locks: the agent's other threads keep running). `CLONE_PIDFD`
//! gives a file descriptor that becomes readable when the process ends, so the exit is
//! awaited without a SIGCHLD handler. Every replica starts this way, whoever runs the
//! agent (one path, tested either way); kernels without `CLONE_PIDFD` (before 5.2)
//! refuse the flag, and the caller then uses `std`.

use std::ffi::{CStr, CString, c_int, c_void};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// What to start.
pub struct Request<'a> {
    pub program: &'a CStr,
    /// Arguments, the program's name first.
    pub argv: &'a [CString],
    /// `KEY=VALUE` pairs: the whole environment.
    pub envp: &'a [CString],
    pub cwd: &'a CStr,
    /// Standard input, output and error of the process.
    pub stdio: [RawFd; 3],
    /// `(uid, gid)` to run as (supplementary groups dropped).
    pub user: Option<(u32, u32)>,
}

/// A started process: its own process group leader, our child.
#[derive(Debug)]
pub struct Child {
    pid: u32,
    pidfd: AsyncFd<OwnedFd>,
    reaped: Option<ExitStatus>,
}

/// Which step of the child failed, for the error message.
const STEPS: [&str; 8] = [
    "set the process group",
    "drop supplementary groups",
    "set the group id",
    "set the user id",
    "enter the working directory",
    "redirect stdio",
    "execute",
    "clear the signal mask",
];

#[repr(C)]
struct Ctx {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdio: [c_int; 3],
    user: Option<(u32, u32)>,
    /// Written by the child when a step fails: the step and errno.
    failed_step: c_int,
    errno: c_int,
}

/// Runs in the child, on its own stack, in the agent's memory: raw system calls only.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's `Ctx`, alive until this child execs or exits
    // (CLONE_VFORK suspends the parent's thread until then).
    let ctx = unsafe { &mut *(arg as *mut Ctx) };
    let fail = |ctx: &mut Ctx, step: c_int| -> c_int {
        ctx.failed_step = step;
        // SAFETY: errno of this task (the thread pointer is the parent thread's, which is suspended).
        ctx.errno = unsafe { *libc::__errno_location() };
        // SAFETY: ends this process only (exit_group of a task without CLONE_THREAD).
        unsafe { libc::_exit(127) }
    };
    // SAFETY: plain system calls on values prepared by the parent.
    unsafe {
        // Handlers are the agent's and must not run here; an ignored SIGPIPE (Rust
        // ignores it) must not reach the job. Signals are blocked until the exec.
        for sig in 1..=libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue; // glibc's own signals
            }
            if old.sa_sigaction != libc::SIG_DFL && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE) {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        for (to, &from) in ctx.stdio.iter().enumerate() {
            let to = to as c_int;
            let r = if from == to {
                // dup2 onto itself keeps close-on-exec: clear it.
                libc::fcntl(from, libc::F_SETFD, 0)
            } else {
                libc::dup2(from, to)
            };
            if r < 0 {
                return fail(ctx, 5);
            }
        }
        if let Some((uid, gid)) = ctx.user {
            // Raw system calls: glibc's wrappers would make every thread of the agent
            // change its ids (the setxid broadcast), since this child shares its memory.
            if libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0 {
                return fail(ctx, 1);
            }
            if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
                return fail(ctx, 2);
            }
            if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
                return fail(ctx, 3);
            }
        }
        if libc::chdir(ctx.cwd) != 0 {
            return fail(ctx, 4);
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(ctx, 0);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            return fail(ctx, 7);
        }
        libc::execve(ctx.program, ctx.argv, ctx.envp);
    }
    fail(ctx, 6)
}

/// Starts the process. `Ok(None)`: this kernel cannot (no `CLONE_PIDFD`); use `std`.
pub fn spawn(req: &Request) -> io::Result<Option<Child>> {
    let argv: Vec<*const libc::c_char> = req.argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> = req.envp.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let mut ctx = Ctx {
        program: req.program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: req.cwd.as_ptr(),
        stdio: req.stdio,
        user: req.user,
        failed_step: -1,
        errno: 0,
    };
    // The child's stack; the parent's thread is suspended while the child uses it.
    const STACK: usize = 256 * 1024;
    let mut stack = vec![0u8; STACK];
    // SAFETY: one past the end of the buffer, aligned down to 16 bytes (the ABI's).
    let top = unsafe { stack.as_mut_ptr().add(STACK) };
    let top = ((top as usize) & !15) as *mut c_void;
    let mut pidfd: c_int = -1;
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;
    // SAFETY: every signal blocked around the clone (restored right after) so that no
    // handler of the agent runs in the child before it resets them; the child only
    // reads `ctx` (and what it points to, alive here) and writes its error fields.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(child_main, top, flags, &mut ctx as *mut Ctx as *mut c_void, &mut pidfd as *mut c_int);
        let err = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return match err.raw_os_error() {
                Some(libc::EINVAL) | Some(libc::ENOSYS) => Ok(None),
                _ => Err(err),
            };
        }
        pid
    };
    drop(stack);
    // SAFETY: the kernel gave us this descriptor (CLONE_PIDFD) and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // SAFETY: the child is gone (exec or exit); what it wrote is visible after the clone.
    let (failed_step, errno) = unsafe { (std::ptr::read_volatile(&ctx.failed_step), std::ptr::read_volatile(&ctx.errno)) };
    if failed_step >= 0 {
        let mut st = 0;
        // SAFETY: reaps our own child, which has exited.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        let what = STEPS.get(failed_step as usize).copied().unwrap_or("start");
        let e = io::Error::from_raw_os_error(errno);
        return Err(io::Error::new(e.kind(), format!("cannot {what}: {e}")));
    }
    // SAFETY: `fd` is an open pidfd the AsyncFd owns (and closes) from here on.
    let pidfd = match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
        Ok(a) => a,
        Err(e) => {
            let e = io::Error::from(e);
            // Not reachable from a runtime: wait here rather than leave it unwatched.
            // SAFETY: kill and reap our own child.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                let mut st = 0;
                libc::waitpid(pid, &mut st, 0);
            }
            return Err(e);
        }
    };
    Ok(Some(Child { pid: pid as u32, pidfd, reaped: None }))
}

impl Child {
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Waits until the process has ended and reaps it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(st) = self.reaped {
            return Ok(st);
        }
        loop {
            let mut guard = self.pidfd.readable().await?;
            let mut st: c_int = 0;
            // SAFETY: our own child, not yet reaped (only this reaps it).
            let r = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut st, libc::WNOHANG) };
            if r == self.pid as libc::pid_t {
                let st = ExitStatus::from_raw(st);
                self.reaped = Some(st);
                return Ok(st);
            }
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            guard.clear_ready();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            // Not waited for (the agent is going away): reap it if it has ended, else
            // it is left running, as `std` leaves a child it is not told to kill.
            let mut st: c_int = 0;
            // SAFETY: our own child; WNOHANG never blocks.
            unsafe { libc::waitpid(self.pid as libc::pid_t, &mut st, libc::WNOHANG) };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    fn devnull() -> std::fs::File {
        std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").unwrap()
    }

    #[tokio::test]
    async fn runs_waits_and_reports_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(dir.path().join("out")).unwrap();
        let null = devnull();
        let argv = [c("/bin/sh"), c("-c"), c("echo \"$FOO $(pwd) $$ $(cut -d' ' -f5 /proc/$$/stat)\"; exit 7")];
        let envp = [c("FOO=bar"), c("PATH=/usr/bin:/bin")];
        let cwd = CString::new(dir.path().to_str().unwrap()).unwrap();
        let req = Request {
            program: &argv[0],
            argv: &argv,
            envp: &envp,
            cwd: &cwd,
            stdio: [null.as_raw_fd(), out.as_raw_fd(), out.as_raw_fd()],
            user: None,
        };
        let Some(mut child) = spawn(&req).unwrap() else { return };
        let st = child.wait().await.unwrap();
        assert_eq!(st.code(), Some(7));
        let text = std::fs::read_to_string(dir.path().join("out")).unwrap();
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(fields[0], "bar");
        assert_eq!(std::path::Path::new(fields[1]).canonicalize().unwrap(), dir.path().canonicalize().unwrap());
        assert_eq!(fields[2], child.id().to_string());
        assert_eq!(fields[3], child.id().to_string(), "its own process group");
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_not_a_child() {
        let null = devnull();
        let argv = [c("/nonexistent/allot-test")];
        let req = Request { program: &argv[0], argv: &argv, envp: &[], cwd: c"/", stdio: [null.as_raw_fd(); 3], user: None };
        match spawn(&req) {
            Ok(None) => {}
            Ok(Some(_)) => panic!("started a program that does not exist"),
            Err(e) => assert!(e.to_string().contains("cannot execute"), "{e}"),
        }
    }

    #[tokio::test]
    async fn a_signal_ends_it_and_is_reported() {
        let null = devnull();
        let argv = [c("/bin/sh"), c("-c"), c("kill -TERM $$; sleep 5")];
        let req = Request { program: &argv[0], argv: &argv, envp: &[], cwd: c"/", stdio: [null.as_raw_fd(); 3], user: None };
        let Some(mut child) = spawn(&req).unwrap() else { return };
        let st = child.wait().await.unwrap();
        assert_eq!(st.signal(), Some(libc::SIGTERM));
    }

    #[tokio::test]
    async fn the_job_gets_default_signals_and_an_empty_mask() {
        let dir = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(dir.path().join("out")).unwrap();
        let null = devnull();
        // grep reads its own status (a shell would change its mask itself).
        let argv = [c("/bin/grep"), c("-E"), c("^Sig(Blk|Ign)"), c("/proc/self/status")];
        let req = Request {
            program: &argv[0],
            argv: &argv,
            envp: &[],
            cwd: c"/",
            stdio: [null.as_raw_fd(), out.as_raw_fd(), out.as_raw_fd()],
            user: None,
        };
        let Some(mut child) = spawn(&req).unwrap() else { return };
        assert_eq!(child.wait().await.unwrap().code(), Some(0));
        let text = std::fs::read_to_string(dir.path().join("out")).unwrap();
        let mask = |name: &str| {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        assert_eq!(mask("SigBlk:"), 0, "{text}");
        // Rust ignores SIGPIPE; the job must not inherit that.
        assert_eq!(mask("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "{text}");
    }

    #[tokio::test]
    async fn as_root_it_runs_as_the_given_user_without_extra_groups() {
        if !crate::exec::is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(dir.path().join("out")).unwrap();
        let null = devnull();
        let argv = [c("/bin/sh"), c("-c"), c("grep -E '^(Uid|Gid|Groups)' /proc/$$/status")];
        let req = Request {
            program: &argv[0],
            argv: &argv,
            envp: &[],
            cwd: c"/",
            stdio: [null.as_raw_fd(), out.as_raw_fd(), out.as_raw_fd()],
            user: Some((65534, 65533)),
        };
        let Some(mut child) = spawn(&req).unwrap() else { return };
        assert_eq!(child.wait().await.unwrap().code(), Some(0));
        let text = std::fs::read_to_string(dir.path().join("out")).unwrap();
        let fields = |name: &str| -> Vec<String> {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().skip(1).map(str::to_string).collect()
        };
        assert_eq!(fields("Uid:"), vec!["65534"; 4], "{text}");
        assert_eq!(fields("Gid:"), vec!["65533"; 4], "{text}");
        assert!(fields("Groups:").is_empty(), "{text}");
        // The agent (this process) is still root.
        assert!(crate::exec::is_root());
    }
}
