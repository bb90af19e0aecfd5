//! Typed errors of the core.

use thiserror::Error;

use crate::ids::JobId;

/// A config that cannot be used: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ConfigError {
    /// Field path, e.g. `tenants[2].quota[0].nominal`; empty for the whole document.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

/// An event the core refused. The core's state is unchanged when one is returned.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EventError {
    #[error("job {0} is already known")]
    DuplicateJob(JobId),
    #[error("job {0} is not known")]
    UnknownJob(JobId),
    #[error("node `{0}` is not known")]
    UnknownNode(String),
    #[error("tenant `{0}` is not known")]
    UnknownTenant(String),
    #[error("flavor `{0}` is not known")]
    UnknownFlavor(String),
    #[error("job {job}: {field}: {why}")]
    InvalidJob { job: JobId, field: &'static str, why: String },
    #[error("job {job} is {state}, cannot {action}")]
    WrongState { job: JobId, state: &'static str, action: &'static str },
    #[error("quota: {0}")]
    InvalidQuota(String),
    /// A tenant path or weight that cannot be used.
    #[error("tenant: {0}")]
    InvalidTenant(String),
    /// The tenant tree's state forbids it: the tenant exists already, or still has
    /// children or live jobs.
    #[error("{0}")]
    TenantConflict(String),
}
