//! Stopping on request: Ctrl-C (SIGINT) and SIGTERM, what systemd, Docker and
//! Kubernetes send to stop a service, lead to the same clean shutdown.

/// The stop signals, watched from `install` on: a signal that comes before `wait`
/// is polled is kept for it, instead of killing the process half-started.
pub struct Stop {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Stop {
    /// Installs the handlers; needs a running Tokio runtime.
    pub fn install() -> Stop {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let watch = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("warning: cannot watch {name} ({e}); it will stop this process without a clean shutdown");
                    None
                }
            };
            Stop { int: watch(SignalKind::interrupt(), "SIGINT"), term: watch(SignalKind::terminate(), "SIGTERM") }
        }
        #[cfg(not(unix))]
        Stop {}
    }

    /// Until a stop signal comes; returns its name.
    pub async fn wait(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                // A watch that cannot be made, or has ended, never fires.
                if let Some(s) = s
                    && s.recv().await.is_some()
                {
                    return;
                }
                std::future::pending::<()>().await
            }
            tokio::select! {
                _ = recv(&mut self.int) => "SIGINT",
                _ = recv(&mut self.term) => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }
}
