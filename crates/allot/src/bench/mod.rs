//! `allot bench ...`: the project's own benchmarks.

mod scheduler;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Scheduling core at national scale: fill an empty cluster, then steady passes.
    Scheduler(scheduler::Args),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Scheduler(args) => scheduler::run(args),
    }
}
