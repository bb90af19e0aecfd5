//! The client config: where the server is, the token, the default tenant.
//!
//! Found, in order: `--config FILE` (or `ALLOT_CONFIG`); `.allot/client.toml` in the
//! current folder or the nearest folder above it (what `allot up` writes); then
//! `$XDG_CONFIG_HOME/allot/client.toml` (or `~/.config/allot/client.toml`).
//! `--server`, `--token` and their environment twins `ALLOT_SERVER` and
//! `ALLOT_TOKEN` win over the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The first line of a config that `allot up` wrote (and may write again).
pub const WRITTEN_BY_UP: &str = "# written by `allot up`";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// `http://HOST:PORT` (several, comma-separated, for HA servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Default tenant of `allot submit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// PEM file of the CA that signed an https server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

impl ClientConfig {
    pub fn parse(text: &str) -> Result<ClientConfig, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    pub fn load(path: &Path) -> Result<ClientConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut c = ClientConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let (Some(ca), Some(dir)) = (&c.ca_cert, path.parent())
            && ca.is_relative()
        {
            c.ca_cert = Some(dir.join(ca));
        }
        Ok(c)
    }

    /// Writes the file readable by its owner only (it holds a token).
    pub fn save(&self, path: &Path, header: &str) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let body = toml::to_string(self).map_err(std::io::Error::other)?;
        let text = format!("{header}\n{body}");
        let tmp = path.with_extension("toml.tmp");
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(text.as_bytes())?;
        }
        std::fs::rename(tmp, path)
    }
}

/// The user's config file: `$XDG_CONFIG_HOME/allot/client.toml` or `~/.config/allot/client.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("allot").join("client.toml"))
}

/// `.allot/client.toml` in `start` or the nearest folder above it.
pub fn find_local(start: &Path) -> Option<PathBuf> {
    start.ancestors().map(|d| d.join(".allot").join("client.toml")).find(|p| p.is_file())
}

/// The config file in force, if any.
pub fn discover(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::current_dir().ok().and_then(|d| find_local(&d)) {
        return Some(p);
    }
    user_config_path().filter(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unknown_fields() {
        let c = ClientConfig { server: Some("http://127.0.0.1:1".into()), token: Some("t".into()), tenant: None, ca_cert: None };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/.allot/client.toml");
        c.save(&p, WRITTEN_BY_UP).unwrap();
        assert_eq!(ClientConfig::load(&p).unwrap(), c);
        assert!(std::fs::read_to_string(&p).unwrap().starts_with(WRITTEN_BY_UP));
        let deeper = dir.path().join("a/b/c");
        std::fs::create_dir_all(&deeper).unwrap();
        assert_eq!(find_local(&deeper), Some(p));
        assert!(ClientConfig::parse("servr = 'x'").unwrap_err().contains("servr"));
    }
}
