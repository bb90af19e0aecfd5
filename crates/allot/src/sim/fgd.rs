//! `allot sim fgd` (being built).

#[derive(clap::Args, Debug)]
pub struct FgdArgs {}

pub fn run(_args: FgdArgs) -> anyhow::Result<()> {
    anyhow::bail!("`allot sim fgd` is not built yet")
}
