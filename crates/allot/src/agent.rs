//! `allot agent`: the node agent (see the allot-agent crate).

use std::path::PathBuf;

use allot_agent::config::AgentConfig;
use allot_agent::gpu::EmulatedGpus;
use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Server URL(s), comma-separated (`http://host:7070`); the agent follows the leader.
    #[arg(long, value_delimiter = ',', required = true, env = "ALLOT_SERVER")]
    server: Vec<String>,
    /// A node token (`POST /v1/tokens` with role `node`, by an admin).
    #[arg(long, env = "ALLOT_NODE_TOKEN", hide_env_values = true)]
    token: String,
    /// Agent config (TOML, `version = 1`): name, addr, labels, users, container runtime.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Node name as in the server's cluster config (default: the config's, else the
    /// hostname); with --emulate-nodes a pattern with `{i}`.
    #[arg(long)]
    name: Option<String>,
    /// Emulate GPUs instead of asking NVML: `COUNTxMODEL`, e.g. `8xH200`.
    #[arg(long)]
    emulate_gpus: Option<EmulatedGpus>,
    /// Emulate this many nodes in one process (needs --emulate-gpus).
    #[arg(long, requires = "emulate_gpus")]
    emulate_nodes: Option<u32>,
    /// Folder of records, logs and job working folders (default /var/lib/allot-agent).
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    crate::server::init_logging("info");
    let config = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            AgentConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => AgentConfig { version: 1, ..Default::default() },
    };
    let opts = allot_agent::AgentOptions {
        servers: args.server,
        token: args.token,
        config,
        name: args.name,
        emulate_gpus: args.emulate_gpus,
        emulate_nodes: args.emulate_nodes,
        state_dir: args.state_dir,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut stop = crate::signal::Stop::install();
        let agent = allot_agent::start(opts)?;
        for n in &agent.nodes {
            let gpus: Vec<String> =
                n.gpus().iter().map(|g| format!("{} {} ({} MiB, {})", g.index, g.model, g.memory_mib, g.uuid)).collect();
            println!("node {}: {} GPUs: {}", n.name, gpus.len(), gpus.join("; "));
        }
        tokio::select! {
            signal = stop.wait() => {
                // Replicas keep running: a restarted agent adopts them.
                eprintln!("{signal}: agent stopping; its jobs keep running until the server reassigns them");
            }
            _ = agent.wait() => {}
        }
        Ok(())
    })
}
