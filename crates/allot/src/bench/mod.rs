//! `allot bench ...`: the project's own benchmarks.

mod api;
mod launch;
mod restart;
mod scheduler;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Scheduling core at national scale: fill an empty cluster, then steady passes.
    Scheduler(scheduler::Args),
    /// Server submission throughput: batches, then single jobs from concurrent clients.
    Api(api::Args),
    /// Server restart: time to ready with a big store (1,000,000 jobs, 100,000 pending).
    Restart(restart::Args),
    /// Job launch through the agent link: a server and emulated agents on loopback run short jobs.
    Launch(launch::Args),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Scheduler(args) => scheduler::run(args),
        BenchCommand::Api(args) => api::run(args),
        BenchCommand::Restart(args) => restart::run(args),
        BenchCommand::Launch(args) => launch::run(args),
    }
}
