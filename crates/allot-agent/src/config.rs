//! The agent's config file (TOML, `version = 1`, unknown fields rejected).
//!
//! ```toml
//! version = 1
//! name = "gpu-017"               # node name in the cluster config (default: hostname)
//! addr = "10.0.3.17"             # MASTER_ADDR other replicas use (default: hostname)
//! at = "dc1/spine-a/rack-03"     # topology position (informational; the server's config decides)
//! state_dir = "/var/lib/allot-agent"
//! labels = { nvlink = "true" }
//!
//! [users]                        # when the agent runs as root: who runs each tenant's jobs
//! default = "allot-job"          # default `nobody`
//! tenants = { "nation/ai-centre" = "aic-jobs" }
//!
//! [container]                    # optional: jobs with an `image` run in a container
//! runtime = "podman"             # docker, podman or apptainer
//! extra_args = ["--device", "nvidia.com/gpu=all"]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub version: u32,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub addr: Option<String>,
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub users: UserMap,
    #[serde(default)]
    pub container: Option<ContainerConfig>,
}

/// Which unprivileged user runs a tenant's jobs (when the agent is root).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserMap {
    #[serde(default = "nobody")]
    pub default: String,
    /// Tenant path (or an ancestor) to user name.
    #[serde(default)]
    pub tenants: BTreeMap<String, String>,
}

impl Default for UserMap {
    fn default() -> Self {
        UserMap { default: nobody(), tenants: BTreeMap::new() }
    }
}

fn nobody() -> String {
    "nobody".into()
}

/// A container runtime for jobs that name an `image`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    pub runtime: String,
    #[serde(default)]
    pub extra_args: Vec<String>,
}

impl AgentConfig {
    pub fn from_toml(text: &str) -> Result<AgentConfig, String> {
        let cfg: AgentConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if cfg.version != 1 {
            return Err(format!("version: unsupported agent config version {} (this build reads 1)", cfg.version));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").strip_prefix(' ').unwrap_or("")))
            .collect();
        let c = AgentConfig::from_toml(&example).unwrap();
        assert_eq!(c.users.default, "allot-job");
        assert_eq!(c.container.unwrap().runtime, "podman");
    }

    #[test]
    fn unknown_fields_and_versions_are_refused() {
        assert!(AgentConfig::from_toml("version = 1\nnmae = 'x'\n").is_err());
        assert!(AgentConfig::from_toml("version = 2\n").is_err());
        assert_eq!(AgentConfig::from_toml("version = 1\n").unwrap().users.default, "nobody");
    }
}
