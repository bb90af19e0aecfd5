//! `allot sim generate` (being built).

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {}

pub fn run(_args: GenerateArgs) -> anyhow::Result<()> {
    anyhow::bail!("`allot sim generate` is not built yet")
}
