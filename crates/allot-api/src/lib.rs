//! allot's wire types: what the server, the agent and the CLI send each other.
//!
//! Serde only (plus OpenAPI schemas behind the `openapi` feature). Requests reject
//! unknown fields; times are milliseconds since the Unix epoch (`*_ms`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod agent;
pub mod summary;
pub use summary::*;

/// The API version prefix.
pub const API_PREFIX: &str = "/v1";

/// Most jobs in one batch submission.
pub const MAX_BATCH: usize = 10_000;

// ----- errors -----

/// Every 4xx and 5xx answer: a stable machine code, a lowercase message, and the
/// offending request field where there is one (`jobs[3].gpus`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// `invalid`, `unauthorized`, `forbidden`, `not_found`, `conflict`, `too_large`,
    /// `unavailable`, `internal`, `method_not_allowed`, `unsupported_media_type`.
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

// ----- jobs -----

/// Topology constraint of a gang: all replicas inside one domain of `level`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    /// A configured level name, e.g. `leaf`.
    pub level: String,
    /// Required (wait until it fits, the default) or preferred.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

/// A job submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobSubmit {
    /// Tenant path the job is charged to, e.g. `nation/ai-centre/fm`.
    pub tenant: String,
    /// Project label for accounting (default: the last segment of `tenant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Submitting user; a user token may only name itself (default: the token's user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Priority class (default: the configured default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Gang size: all replicas start together or none does.
    #[serde(default = "one")]
    pub replicas: u32,
    /// Whole GPUs per replica. Exactly one of `gpus` and `gpu_milli`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// A fraction of one GPU in milli-GPU, 1..=999 (single replica only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_milli: Option<u16>,
    #[serde(default)]
    pub cpus_per_replica: u32,
    #[serde(default)]
    pub memory_mib_per_replica: u64,
    /// Allowed flavors in order of preference; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flavors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<TopologySpec>,
    /// Walltime estimate in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walltime_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemptible: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// How often a failed run (non-zero exit of any replica) is started again
    /// before the job fails (default 0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
}

impl Default for JobSubmit {
    /// One replica, nothing else set (a valid submission needs `tenant` and `gpus`
    /// or `gpu_milli`).
    fn default() -> Self {
        JobSubmit {
            tenant: String::new(),
            project: None,
            user: None,
            name: None,
            class: None,
            replicas: 1,
            gpus: None,
            gpu_milli: None,
            cpus_per_replica: 0,
            memory_mib_per_replica: 0,
            flavors: vec![],
            topology: None,
            walltime_s: None,
            preemptible: None,
            checkpoint_interval_s: None,
            command: vec![],
            env: BTreeMap::new(),
            image: None,
            workdir: None,
            max_restarts: None,
        }
    }
}

/// Up to 10,000 jobs in one request, committed together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobBatchSubmit {
    pub jobs: Vec<JobSubmit>,
}

/// A committed submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitResponse {
    pub id: u64,
}

/// A committed batch: ids in the order of the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchSubmitResponse {
    pub ids: Vec<u64>,
}

/// Life cycle of a job as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Held,
    Running,
    Stopping,
    Completed,
    Cancelled,
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Pending,
        JobState::Held,
        JobState::Running,
        JobState::Stopping,
        JobState::Completed,
        JobState::Cancelled,
        JobState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Held => "held",
            JobState::Running => "running",
            JobState::Stopping => "stopping",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the job is over (nothing more will happen to it).
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Completed | JobState::Cancelled | JobState::Failed)
    }
}

/// One replica's place.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlotView {
    pub node: String,
    /// Whole GPUs (0 for a fraction).
    pub gpus: u64,
    /// Milli-GPU of a fraction (0 for whole GPUs).
    pub milli: u16,
}

/// Where a running job is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlacementView {
    pub flavor: String,
    pub slots: Vec<SlotView>,
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobView {
    pub id: u64,
    pub tenant: String,
    pub project: String,
    pub user: String,
    pub state: JobState,
    pub spec: JobSubmit,
    pub submitted_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementView>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A page of jobs; pass `next_cursor` as `cursor` for the next page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobList {
    pub jobs: Vec<JobView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Why a job is not running, as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExplainView {
    pub id: u64,
    pub state: JobState,
    /// `new`, `held`, `budget`, `quota`, `no_capacity`, `topology`, `reserved`,
    /// `behind_reservation`, `running`, or the terminal state.
    pub reason: String,
    /// The reason in words.
    pub message: String,
    /// 0-based position in the last pass's order (pending jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_start_ms: Option<i64>,
}

/// A job state change, as the event stream sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobEvent {
    pub id: u64,
    pub tenant: String,
    pub state: JobState,
    pub at_ms: i64,
}

// ----- nodes -----

/// A GPU server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeView {
    pub name: String,
    pub flavor: String,
    /// Topology path, `site/block/leaf`.
    pub at: String,
    pub gpus: u32,
    /// Whole GPUs free.
    pub gpus_free: u32,
    /// Free milli-GPU of each GPU (1000: wholly free; less: shared by fractions).
    pub gpu_free_milli: Vec<u16>,
    pub cpus: u32,
    pub memory_mib: u64,
    pub labels: BTreeMap<String, String>,
    pub up: bool,
    pub drained: bool,
    pub running_jobs: Vec<u64>,
    /// Why the node is drained or down, where allot knows (an unhealthy GPU, a lost agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The node agent, when one has registered since the server started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentView>,
}

/// A node's agent as the server knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentView {
    pub connected: bool,
    pub hostname: String,
    pub addr: String,
    pub version: String,
    pub emulated: bool,
    /// Milliseconds since the epoch of the last message from it.
    pub last_seen_ms: i64,
    pub gpus: Vec<agent::GpuInfo>,
}

// ----- tenants, quotas, budgets -----

/// A tenant's quota of one flavor, in GPUs, and its use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaView {
    pub tenant: String,
    pub flavor: String,
    pub nominal: f64,
    /// Cap of use above nominal; absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrowing_limit: Option<f64>,
    /// Cap of unused nominal others may borrow; absent: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lending_limit: Option<f64>,
    /// GPUs in use by the tenant's subtree.
    pub used: f64,
}

/// A node of the tenant tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantView {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub weight: f64,
    pub quotas: Vec<QuotaView>,
    /// Remaining GPU-hours of the active budget, where one applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_remaining_gpu_hours: Option<f64>,
}

/// A tenant's quota of one flavor, in GPUs, as given when creating or updating it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantQuota {
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub flavor: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1e9))]
    pub nominal: f64,
    /// Cap of use above nominal; absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1e9))]
    pub borrowing_limit: Option<f64>,
    /// Cap of unused nominal others may borrow (at most `nominal`); absent: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1e9))]
    pub lending_limit: Option<f64>,
}

/// Creates a tenant `parent/name` (admin; a tenant admin inside its subtree). Its
/// nominal quotas must fit in what the parent's nominal leaves to its children.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    /// Path of an existing tenant; absent: a top-level tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// One path segment: letters, digits, `-`, `_` and `.` (not only dots), at most 64
    /// characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*$"))]
    pub name: String,
    /// Fair-share weight among its siblings; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 1e6))]
    pub weight: Option<f64>,
    /// One per flavor at most; flavors not listed have no nominal quota.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<TenantQuota>,
}

/// Changes a tenant's weight and quotas; what is absent stays as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 1e6))]
    pub weight: Option<f64>,
    /// One per flavor at most; each replaces that flavor's quota.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<TenantQuota>,
}

/// Sets a tenant's quota of one flavor (admin; a tenant admin inside its subtree).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QuotaSet {
    pub tenant: String,
    pub flavor: String,
    pub nominal: f64,
    #[serde(default)]
    pub borrowing_limit: Option<f64>,
    #[serde(default)]
    pub lending_limit: Option<f64>,
}

/// Grants GPU-hours to a tenant over `[start_ms, expiry_ms)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BudgetGrant {
    pub tenant: String,
    pub gpu_hours: f64,
    pub start_ms: i64,
    pub expiry_ms: i64,
}

/// A granted budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetView {
    pub id: u64,
    pub tenant: String,
    pub gpu_hours: f64,
    pub start_ms: i64,
    pub expiry_ms: i64,
    pub granted_at_ms: i64,
}

// ----- tokens -----

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Jobs, tokens, quotas and budgets inside its tenant's subtree.
    TenantAdmin,
    /// Its tenant's jobs (the tenant's subtree).
    User,
    /// A node agent: connects to the agent link, nothing else.
    Node,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::TenantAdmin => "tenant_admin",
            Role::User => "user",
            Role::Node => "node",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Admin, Role::TenantAdmin, Role::User, Role::Node].into_iter().find(|r| r.as_str() == s)
    }
}

/// Creates a token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    pub name: String,
    pub role: Role,
    /// Required for `tenant_admin` and `user`; none for `admin` and `node`.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The user a `user` token acts as (default: `name`).
    #[serde(default)]
    pub user: Option<String>,
}

/// A token, without its secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: u64,
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub user: String,
    pub created_at_ms: i64,
    pub revoked: bool,
}

/// A new token: the secret is shown this once and stored hashed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    pub token: String,
    pub info: TokenView,
}

/// A list of tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

// ----- usage -----

/// One group of GPU use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageRow {
    /// The tenant, project, user or flavor.
    pub key: String,
    pub gpu_hours: f64,
    /// Accounting records (job runs) that overlap the range.
    pub runs: u64,
}

/// GPU-hours over `[from_ms, to_ms)` grouped by `by`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageReport {
    pub by: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub rows: Vec<UsageRow>,
}

// ----- lists -----

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeList {
    pub nodes: Vec<NodeView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantList {
    pub tenants: Vec<TenantView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaList {
    pub quotas: Vec<QuotaView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BudgetList {
    pub budgets: Vec<BudgetView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_rejects_unknown_fields() {
        let err = serde_json::from_str::<JobSubmit>(r#"{"tenant":"a","gpus":1,"gpu":2}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `gpu`"), "{err}");
    }

    #[test]
    fn submit_defaults_and_round_trip() {
        let s: JobSubmit = serde_json::from_str(r#"{"tenant":"a","gpus":8}"#).unwrap();
        assert_eq!(s.replicas, 1);
        assert_eq!(s.gpus, Some(8));
        let back: JobSubmit = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn states_and_roles_round_trip_by_name() {
        for st in JobState::ALL {
            assert_eq!(JobState::parse(st.as_str()), Some(st));
            assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{}\"", st.as_str()));
        }
        for r in [Role::Admin, Role::TenantAdmin, Role::User, Role::Node] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn error_body_omits_absent_field() {
        let e = ErrorBody { code: "not_found".into(), message: "job 9 not found".into(), field: None };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"code":"not_found","message":"job 9 not found"}"#);
    }
}
