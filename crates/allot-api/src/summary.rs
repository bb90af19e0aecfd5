//! Read models for the dashboard and the CLI: a cluster summary, the queue with
//! reasons, and tenants' use against their quotas.

use serde::{Deserialize, Serialize};

use crate::{JobView, NodeView};

/// GPUs of one flavor at one site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CapacityRow {
    pub site: String,
    pub flavor: String,
    pub nodes: u32,
    pub gpus: u32,
    /// GPUs allocated (fractions counted as fractions).
    pub allocated: f64,
    /// Whole GPUs free on nodes that take work.
    pub free: u32,
}

/// One sample of the cluster's allocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UtilSample {
    pub at_ms: i64,
    pub allocated: f64,
    pub gpus: u32,
}

/// The whole cluster at a glance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterSummary {
    pub at_ms: i64,
    pub gpus: u32,
    pub allocated: f64,
    pub nodes_up: u32,
    pub nodes_down: u32,
    pub nodes_drained: u32,
    pub capacity: Vec<CapacityRow>,
    /// Allocation over the last hour or so, oldest first (sampled by the server).
    pub history: Vec<UtilSample>,
    pub nodes: Vec<NodeView>,
}

/// A pending job with why it waits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueuedJob {
    pub job: JobView,
    pub reason: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_start_ms: Option<i64>,
}

/// Live jobs: pending and held (with reasons), running and stopping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueView {
    pub pending: Vec<QueuedJob>,
    pub running: Vec<JobView>,
    /// Recently ended jobs, newest first.
    pub recent: Vec<JobView>,
}

/// A tenant's use of one flavor against its quota, in GPUs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantFlavorUse {
    pub flavor: String,
    pub nominal: f64,
    pub used: f64,
    /// Use above nominal (taken from what siblings lend).
    pub borrowed: f64,
    /// Unused nominal that siblings use now (an estimate: siblings' borrowing spread
    /// over the lenders in proportion to what each may lend).
    pub lent: f64,
    /// Unused nominal others may still borrow.
    pub lendable: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrowing_limit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lending_limit: Option<f64>,
}

/// A tenant's standing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantUse {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub weight: f64,
    /// Its weight among its siblings (0..1): the share fair share aims at.
    pub fair_share: f64,
    /// Its share of its siblings' current use (0..1).
    pub use_share: f64,
    pub flavors: Vec<TenantFlavorUse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_remaining_gpu_hours: Option<f64>,
    pub running_jobs: u32,
    pub pending_jobs: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantUseList {
    pub tenants: Vec<TenantUse>,
}
