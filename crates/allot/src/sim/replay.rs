//! `allot sim replay` (being built).

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {}

pub fn run(_args: ReplayArgs) -> anyhow::Result<()> {
    anyhow::bail!("`allot sim replay` is not built yet")
}
