//! Persistence behind one trait, with SQLite and PostgreSQL backends.
//!
//! Every backend passes the same conformance suite (`tests/store.rs`). Writes that
//! belong together go in one transaction: a batch of submissions (group commit), and
//! a plan's decisions with the job state changes and accounting records they cause.

mod postgres;
mod sqlite;

use async_trait::async_trait;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// A store failure, with its source kept.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store: {0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A job as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub id: u64,
    pub tenant: String,
    pub project: String,
    pub user: String,
    /// `allot_api::JobState` name.
    pub state: String,
    /// `allot_api::JobSubmit` as JSON.
    pub spec: String,
    pub submitted_ms: i64,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    /// `allot_api::PlacementView` as JSON.
    pub placement: Option<String>,
    pub message: Option<String>,
}

impl JobRow {
    /// A freshly submitted job.
    pub fn new(id: u64, tenant: &str, project: &str, user: &str, state: &str, spec: String, submitted_ms: i64) -> JobRow {
        JobRow {
            id,
            tenant: tenant.into(),
            project: project.into(),
            user: user.into(),
            state: state.into(),
            spec,
            submitted_ms,
            started_ms: None,
            ended_ms: None,
            placement: None,
            message: None,
        }
    }
}

/// A state change of a job; `None` fields keep their stored value.
#[derive(Clone, Debug, PartialEq)]
pub struct JobUpdate {
    pub id: u64,
    pub state: String,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub placement: Option<String>,
    pub message: Option<String>,
}

impl JobUpdate {
    pub fn state(id: u64, state: &str) -> JobUpdate {
        JobUpdate { id, state: state.into(), started_ms: None, ended_ms: None, placement: None, message: None }
    }
}

/// One run of a job: append-only.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountingRecord {
    pub job: u64,
    pub tenant: String,
    pub project: String,
    pub user: String,
    pub flavor: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// GPUs held (fractions as fractions).
    pub gpus: f64,
    pub gpu_seconds: f64,
}

/// A plan decision, persisted before it is acted on.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub pass: u64,
    pub at_ms: i64,
    /// `start` or `stop`.
    pub kind: String,
    pub job: u64,
    /// JSON detail (placement, or why).
    pub detail: String,
}

/// What one step of the scheduling loop writes, in one transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    pub decisions: Vec<Decision>,
    pub jobs: Vec<JobUpdate>,
    pub accounting: Vec<AccountingRecord>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.decisions.is_empty() && self.jobs.is_empty() && self.accounting.is_empty()
    }
}

/// A job listing: filters, and the cursor (jobs with a larger id).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobQuery {
    /// Tenant subtrees the job must be in (all of them): visibility and filter.
    pub subtrees: Vec<String>,
    pub project: Option<String>,
    pub user: Option<String>,
    pub state: Option<String>,
    pub after: Option<u64>,
    pub limit: u32,
}

/// A token as stored: the hash of its secret, never the secret.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenRow {
    pub id: u64,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    pub name: String,
    pub role: String,
    pub tenant: Option<String>,
    pub user: String,
    pub created_ms: i64,
    pub revoked: bool,
}

/// A quota override set through the API.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaRow {
    pub tenant: String,
    pub flavor: String,
    pub nominal: f64,
    pub borrowing_limit: Option<f64>,
    pub lending_limit: Option<f64>,
    pub updated_ms: i64,
}

/// A tenant created, changed or deleted through the API: replayed over the config's
/// tree at start (created or reweighted when live, removed when deleted).
#[derive(Clone, Debug, PartialEq)]
pub struct TenantRow {
    pub path: String,
    pub weight: f64,
    pub deleted: bool,
    pub updated_ms: i64,
}

/// A budget granted through the API.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetRow {
    pub id: u64,
    pub tenant: String,
    pub gpu_hours: f64,
    pub start_ms: i64,
    pub expiry_ms: i64,
    pub granted_ms: i64,
}

/// The server's persistence.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// How many write transactions gain from running at once (1: serialize them).
    fn write_concurrency(&self) -> usize {
        1
    }

    /// Largest job id ever stored (0 when none).
    async fn max_job_id(&self) -> Result<u64>;
    /// Inserts jobs in one transaction: all or none.
    async fn insert_jobs(&self, jobs: &[JobRow]) -> Result<()>;
    async fn get_job(&self, id: u64) -> Result<Option<JobRow>>;
    /// Jobs matching the query, by id ascending, at most `limit`.
    async fn list_jobs(&self, q: &JobQuery) -> Result<Vec<JobRow>>;
    /// Jobs not yet over (pending, held, running, stopping), by id.
    async fn active_jobs(&self) -> Result<Vec<JobRow>>;
    /// Counts of jobs per state.
    async fn count_by_state(&self) -> Result<Vec<(String, u64)>>;

    /// Decisions, job updates and accounting records in one transaction.
    async fn apply(&self, changes: &Changes) -> Result<()>;
    /// Decisions about a job, oldest first.
    async fn decisions_for(&self, job: u64) -> Result<Vec<Decision>>;
    /// Accounting records whose run overlaps `[from_ms, to_ms)`.
    async fn accounting(&self, from_ms: i64, to_ms: i64) -> Result<Vec<AccountingRecord>>;

    /// Stores a token (its id is assigned) and returns the id.
    async fn insert_token(&self, token: &TokenRow) -> Result<u64>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>>;
    async fn get_token(&self, id: u64) -> Result<Option<TokenRow>>;
    async fn list_tokens(&self) -> Result<Vec<TokenRow>>;
    /// Marks a token revoked; false when there is no such token.
    async fn revoke_token(&self, id: u64) -> Result<bool>;
    async fn token_count(&self) -> Result<u64>;

    /// Inserts or replaces the quota of (tenant, flavor).
    async fn put_quota(&self, quota: &QuotaRow) -> Result<()>;
    async fn quotas(&self) -> Result<Vec<QuotaRow>>;
    /// Stores a budget grant and returns its id.
    async fn add_budget(&self, budget: &BudgetRow) -> Result<u64>;
    async fn budgets(&self) -> Result<Vec<BudgetRow>>;

    /// Stores a tenant as live (when given) and quotas, in one transaction.
    async fn put_tenant(&self, tenant: Option<&TenantRow>, quotas: &[QuotaRow]) -> Result<()>;
    /// Tenants changed through the API (live and deleted), by path.
    async fn tenants(&self) -> Result<Vec<TenantRow>>;
    /// In one transaction: marks a tenant deleted, drops its quotas and budgets, and
    /// revokes the tokens that belong to it; returns the ids of those tokens.
    async fn delete_tenant(&self, path: &str, at_ms: i64) -> Result<Vec<u64>>;

    async fn set_node_drained(&self, name: &str, drained: bool) -> Result<()>;
    /// Names of drained nodes.
    async fn drained_nodes(&self) -> Result<Vec<String>>;
}

/// Job states that are not over.
pub const ACTIVE_STATES: [&str; 4] = ["pending", "held", "running", "stopping"];

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("{v} does not fit a database integer")))
}

fn to_u64(v: i64) -> u64 {
    v.max(0) as u64
}

/// The migrations of a dialect, in order: (version, SQL).
fn migrations(dialect: &str) -> &'static [(i64, &'static str)] {
    match dialect {
        "sqlite" => {
            &[(1, include_str!("../../migrations/sqlite/0001_init.sql")), (2, include_str!("../../migrations/sqlite/0002_tenants.sql"))]
        }
        _ => {
            &[(1, include_str!("../../migrations/postgres/0001_init.sql")), (2, include_str!("../../migrations/postgres/0002_tenants.sql"))]
        }
    }
}

/// Column lists shared by both dialects.
const JOB_COLS: &str = "id, tenant, project, user_name, state, spec, submitted_ms, started_ms, ended_ms, placement, message";
const ACCOUNTING_COLS: &str = "job, tenant, project, user_name, flavor, start_ms, end_ms, gpus, gpu_seconds";
const TOKEN_COLS: &str = "id, hash, name, role, tenant, user_name, created_ms, revoked";

// Row mapping, the same for both backends (a macro: sqlx's row types differ).
macro_rules! job_from_row {
    ($row:expr) => {{
        let r = $row;
        JobRow {
            id: to_u64(r.try_get::<i64, _>("id")?),
            tenant: r.try_get("tenant")?,
            project: r.try_get("project")?,
            user: r.try_get("user_name")?,
            state: r.try_get("state")?,
            spec: r.try_get("spec")?,
            submitted_ms: r.try_get("submitted_ms")?,
            started_ms: r.try_get("started_ms")?,
            ended_ms: r.try_get("ended_ms")?,
            placement: r.try_get("placement")?,
            message: r.try_get("message")?,
        }
    }};
}

macro_rules! accounting_from_row {
    ($row:expr) => {{
        let r = $row;
        AccountingRecord {
            job: to_u64(r.try_get::<i64, _>("job")?),
            tenant: r.try_get("tenant")?,
            project: r.try_get("project")?,
            user: r.try_get("user_name")?,
            flavor: r.try_get("flavor")?,
            start_ms: r.try_get("start_ms")?,
            end_ms: r.try_get("end_ms")?,
            gpus: r.try_get("gpus")?,
            gpu_seconds: r.try_get("gpu_seconds")?,
        }
    }};
}

macro_rules! token_from_row {
    ($row:expr) => {{
        let r = $row;
        TokenRow {
            id: to_u64(r.try_get::<i64, _>("id")?),
            hash: r.try_get("hash")?,
            name: r.try_get("name")?,
            role: r.try_get("role")?,
            tenant: r.try_get("tenant")?,
            user: r.try_get("user_name")?,
            created_ms: r.try_get("created_ms")?,
            revoked: r.try_get("revoked")?,
        }
    }};
}

macro_rules! quota_from_row {
    ($row:expr) => {{
        let r = $row;
        QuotaRow {
            tenant: r.try_get("tenant")?,
            flavor: r.try_get("flavor")?,
            nominal: r.try_get("nominal")?,
            borrowing_limit: r.try_get("borrowing_limit")?,
            lending_limit: r.try_get("lending_limit")?,
            updated_ms: r.try_get("updated_ms")?,
        }
    }};
}

macro_rules! budget_from_row {
    ($row:expr) => {{
        let r = $row;
        BudgetRow {
            id: to_u64(r.try_get::<i64, _>("id")?),
            tenant: r.try_get("tenant")?,
            gpu_hours: r.try_get("gpu_hours")?,
            start_ms: r.try_get("start_ms")?,
            expiry_ms: r.try_get("expiry_ms")?,
            granted_ms: r.try_get("granted_ms")?,
        }
    }};
}

macro_rules! tenant_from_row {
    ($row:expr) => {{
        let r = $row;
        TenantRow {
            path: r.try_get("path")?,
            weight: r.try_get("weight")?,
            deleted: r.try_get("deleted")?,
            updated_ms: r.try_get("updated_ms")?,
        }
    }};
}

macro_rules! decision_from_row {
    ($row:expr) => {{
        let r = $row;
        Decision {
            pass: to_u64(r.try_get::<i64, _>("pass")?),
            at_ms: r.try_get("at_ms")?,
            kind: r.try_get("kind")?,
            job: to_u64(r.try_get::<i64, _>("job")?),
            detail: r.try_get("detail")?,
        }
    }};
}

use {accounting_from_row, budget_from_row, decision_from_row, job_from_row, quota_from_row, tenant_from_row, token_from_row};

/// The WHERE clause of a job listing, with placeholders made by `ph(n)` (1-based),
/// and the string binds in order (the cursor and limit follow them).
fn job_query_sql(q: &JobQuery, ph: impl Fn(usize) -> String) -> (String, Vec<String>) {
    let mut conds = Vec::new();
    let mut binds: Vec<String> = Vec::new();
    for t in &q.subtrees {
        binds.push(t.clone());
        let a = ph(binds.len());
        let prefix = format!("{t}/");
        let len = prefix.chars().count();
        binds.push(prefix);
        let b = ph(binds.len());
        conds.push(format!("(tenant = {a} OR substr(tenant, 1, {len}) = {b})"));
    }
    for (col, v) in [("project", &q.project), ("user_name", &q.user), ("state", &q.state)] {
        if let Some(v) = v {
            binds.push(v.clone());
            conds.push(format!("{col} = {}", ph(binds.len())));
        }
    }
    let cursor = ph(binds.len() + 1);
    let limit = ph(binds.len() + 2);
    conds.push(format!("id > {cursor}"));
    (format!("SELECT {JOB_COLS} FROM jobs WHERE {} ORDER BY id LIMIT {limit}", conds.join(" AND ")), binds)
}
