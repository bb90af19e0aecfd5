//! `allot`: one binary with role subcommands.

mod agent;
mod bench;
mod cli;
mod server;
mod signal;
mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// allot: a multi-tenant GPU cluster scheduler.
#[derive(Parser, Debug)]
#[command(name = "allot", version, about, propagate_version = true, after_help = cli::EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Benchmarks of allot's own components.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The simulator: trace replay, the FGD experiment, capacity questions.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// The control plane: HTTP API, store (SQLite by default, or PostgreSQL), scheduling loop.
    Server(server::Args),
    /// The node agent: registers a GPU server with the server and runs its jobs.
    Agent(agent::Args),
    /// Validates a cluster config (TOML) and prints a summary.
    Check {
        /// Path to the config file.
        config: std::path::PathBuf,
    },
    #[command(flatten)]
    Client(cli::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Server(_) | Command::Agent(_)) {
        quiet_on_closed_stdout();
    }
    let result = match cli.command {
        Command::Bench(cmd) => bench::run(cmd),
        Command::Sim(cmd) => sim::run(cmd),
        Command::Check { config } => check(&config),
        Command::Server(args) => server::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Client(cmd) => return cli::run(cmd, <Cli as clap::CommandFactory>::command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A command whose output goes into `head` stops quietly when the reader is gone, as
/// Unix tools do, instead of panicking in `println!` (Rust ignores SIGPIPE, so the
/// write fails). Not for the server and the agent: their peers' closed sockets must
/// be errors they handle, not the end of the process.
fn quiet_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn check(path: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let core = allot_core::Core::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let cl = core.cluster();
    println!(
        "{}: {} nodes, {} GPUs in {} flavors, {} domains, {} tenants",
        path.display(),
        cl.nodes.len(),
        cl.total_gpus(),
        cl.flavors.len(),
        cl.domains.len() - 1,
        core.tenants().len() - 1
    );
    Ok(())
}
