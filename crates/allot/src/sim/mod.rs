//! `allot sim ...`: the simulator's commands.

mod compare;
mod fgd;
mod generate;
mod replay;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// The FGD experiment (Weng et al., USENIX ATC'23): place openb pods one by one.
    Fgd(fgd::FgdArgs),
    /// Time-based replay of a trace on a cluster.
    Replay(replay::ReplayArgs),
    /// Compares two replay results (JSON files written by `sim replay --json`).
    Compare(compare::CompareArgs),
    /// Writes a synthetic workload (allot's JSONL format).
    Generate(generate::GenerateArgs),
}

pub fn run(cmd: SimCommand) -> anyhow::Result<()> {
    match cmd {
        SimCommand::Fgd(a) => fgd::run(a),
        SimCommand::Replay(a) => replay::run(a),
        SimCommand::Compare(a) => compare::run(a),
        SimCommand::Generate(a) => generate::run(a),
    }
}
