//! `allot sim compare` (being built).

#[derive(clap::Args, Debug)]
pub struct CompareArgs {}

pub fn run(_args: CompareArgs) -> anyhow::Result<()> {
    anyhow::bail!("`allot sim compare` is not built yet")
}
