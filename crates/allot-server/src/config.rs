//! The server's own config: versioned TOML, unknown fields rejected. The cluster,
//! tenants, quotas, classes and budgets are the core's config (`allot_core::Config`),
//! in a file this one points to.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The server config format version this build reads.
pub const SERVER_CONFIG_VERSION: u32 = 1;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Must be `1`.
    pub version: u32,
    /// Address to listen on (default `127.0.0.1:7070`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The cluster and tenants config (the core's format), relative to this file.
    pub cluster: PathBuf,
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    #[serde(default)]
    pub limits: Limits,
    /// Serve HTTPS with this certificate chain and key (PEM files, relative to this file).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// The agent link.
    #[serde(default)]
    pub agents: AgentLinkConfig,
}

/// The agent link: how nodes are run by `allot agent`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentLinkConfig {
    /// A node whose agent is silent this long is lost: its jobs are requeued.
    #[serde(default = "node_timeout")]
    pub node_timeout_ms: u64,
    /// Every node is run by an agent: jobs placed on a node wait for its agent, and a
    /// node without one for `node_timeout_ms` is lost. When false (the default, for
    /// servers without agents), a node is run by an agent only once one registers
    /// for it; on other nodes a stop is done at once and `POST /v1/jobs/{id}/finish`
    /// reports a job ended.
    #[serde(default)]
    pub required: bool,
}

impl Default for AgentLinkConfig {
    fn default() -> Self {
        AgentLinkConfig { node_timeout_ms: node_timeout(), required: false }
    }
}

fn node_timeout() -> u64 {
    30_000
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// When the scheduling loop runs a pass.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// After a change, wait at least this long since the last pass (batches events).
    #[serde(default = "min_pass")]
    pub min_pass_interval_ms: u64,
    /// Run a pass at least this often, changed or not.
    #[serde(default = "max_pass")]
    pub max_pass_interval_ms: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig { min_pass_interval_ms: min_pass(), max_pass_interval_ms: max_pass() }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    #[serde(default = "max_body")]
    pub max_body_bytes: usize,
    /// Largest page of a job listing.
    #[serde(default = "max_page")]
    pub max_page: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_body_bytes: max_body(), max_page: max_page() }
    }
}

fn default_listen() -> String {
    "127.0.0.1:7070".into()
}
fn min_pass() -> u64 {
    20
}
fn max_pass() -> u64 {
    1000
}
fn max_body() -> usize {
    32 << 20
}
fn max_page() -> u32 {
    1000
}

/// A config error: the field path and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ServerConfigError {
    pub path: String,
    pub message: String,
}

impl ServerConfig {
    pub fn from_toml(text: &str) -> Result<ServerConfig, ServerConfigError> {
        let err = |path: String, message: String| ServerConfigError { path, message };
        let de = toml::Deserializer::parse(text).map_err(|e| err(String::new(), e.message().to_string()))?;
        let cfg: ServerConfig =
            serde_path_to_error::deserialize(de).map_err(|e| err(e.path().to_string(), e.inner().message().to_string()))?;
        if cfg.version != SERVER_CONFIG_VERSION {
            return Err(err(
                "version".into(),
                format!("unsupported server config version {} (this build reads {SERVER_CONFIG_VERSION})", cfg.version),
            ));
        }
        if cfg.agents.node_timeout_ms < 100 {
            return Err(err("agents.node_timeout_ms".into(), "must be at least 100".into()));
        }
        if cfg.scheduler.max_pass_interval_ms == 0 {
            return Err(err("scheduler.max_pass_interval_ms".into(), "must be positive".into()));
        }
        Ok(cfg)
    }

    /// Reads a server config file; `cluster` is resolved against its folder.
    pub fn load(path: &Path) -> Result<ServerConfig, ServerConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerConfigError { path: String::new(), message: format!("cannot read {}: {e}", path.display()) })?;
        let mut cfg = ServerConfig::from_toml(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if cfg.cluster.is_relative() {
            cfg.cluster = base.join(&cfg.cluster);
        }
        if let Some(t) = &mut cfg.tls {
            t.cert = base.join(&t.cert);
            t.key = base.join(&t.key);
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_takes_defaults() {
        let c = ServerConfig::from_toml("version = 1\ncluster = 'c.toml'\n").unwrap();
        assert_eq!(c.listen, "127.0.0.1:7070");
        assert_eq!(c.scheduler.max_pass_interval_ms, 1000);
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = ServerConfig::from_toml("version = 1\ncluster = 'c.toml'\n[scheduler]\npass_ms = 3\n").unwrap_err();
        assert_eq!(e.path, "scheduler.pass_ms");
        let e = ServerConfig::from_toml("version = 2\ncluster = 'c.toml'\n").unwrap_err();
        assert_eq!(e.path, "version");
    }
}
