//! Tenants created, changed and deleted at runtime.
//!
//! The scheduling loop applies a change to a copy of the core first (so a refused
//! change touches nothing), persists it, and only then swaps the copy in: the change
//! is in effect from the next pass. At start the stored changes are replayed over
//! the config's tree (`restore_tenancy`), and the validator's scratch core gets the
//! same tree (`apply_tenant_rows`).

use allot_api::{TenantQuota, TenantView};
use allot_core::{Core, Event, EventError};
use tokio::sync::oneshot;

use crate::error::{ApiError, ApiResult};
use crate::sched::{Sched, now_ms};
use crate::store::{QuotaRow, StoreError, TenantRow};

/// Longest tenant name (one path segment) and tenant path.
pub const MAX_NAME: usize = 64;
pub const MAX_PATH: usize = 512;
/// Largest fair-share weight and quota (GPUs) the API takes.
const MAX_WEIGHT: f64 = 1e6;
const MAX_GPUS: f64 = 1e9;

pub enum TenantCmd {
    Create {
        path: String,
        weight: f64,
        quotas: Vec<TenantQuota>,
        reply: oneshot::Sender<ApiResult<TenantView>>,
    },
    Update {
        path: String,
        weight: Option<f64>,
        quotas: Vec<TenantQuota>,
        reply: oneshot::Sender<ApiResult<TenantView>>,
    },
    /// Answers the ids of the tokens revoked with the tenant.
    Delete {
        path: String,
        reply: oneshot::Sender<ApiResult<Vec<u64>>>,
    },
}

/// Checks a new tenant's name: one path segment of a conservative alphabet, so that
/// it needs no escaping in URLs, metrics labels or CSV.
pub fn check_name(name: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(ApiError::invalid("name", format!("must be 1 to {MAX_NAME} characters")));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) || name.chars().all(|c| c == '.') {
        return Err(ApiError::invalid("name", "letters, digits, `-`, `_` and `.` only (not only dots)"));
    }
    Ok(())
}

pub fn check_weight(weight: f64) -> ApiResult<()> {
    if weight.is_finite() && weight > 0.0 && weight <= MAX_WEIGHT {
        Ok(())
    } else {
        Err(ApiError::invalid("weight", format!("must be a number above 0 and at most {MAX_WEIGHT}")))
    }
}

/// Checks quotas as far as they can be without the tree: numbers, one per flavor.
pub fn check_quotas(quotas: &[TenantQuota]) -> ApiResult<()> {
    for (i, q) in quotas.iter().enumerate() {
        let at = |f: &str| format!("quotas[{i}].{f}");
        if q.flavor.is_empty() {
            return Err(ApiError::invalid(at("flavor"), "must not be empty"));
        }
        if quotas[..i].iter().any(|o| o.flavor == q.flavor) {
            return Err(ApiError::invalid(at("flavor"), format!("flavor `{}` is given twice", q.flavor)));
        }
        for (f, v) in [("nominal", Some(q.nominal)), ("borrowing_limit", q.borrowing_limit), ("lending_limit", q.lending_limit)] {
            if let Some(v) = v
                && !(v.is_finite() && (0.0..=MAX_GPUS).contains(&v))
            {
                return Err(ApiError::invalid(at(f), format!("must be a number of GPUs between 0 and {MAX_GPUS}")));
            }
        }
        if q.lending_limit.is_some_and(|l| l > q.nominal) {
            return Err(ApiError::invalid(at("lending_limit"), "cannot exceed nominal"));
        }
    }
    Ok(())
}

fn quota_event(tenant: &str, q: &TenantQuota) -> Event {
    Event::QuotaChanged {
        tenant: tenant.to_string(),
        flavor: q.flavor.clone(),
        nominal: q.nominal,
        borrowing_limit: q.borrowing_limit,
        lending_limit: q.lending_limit,
    }
}

fn quota_row(tenant: &str, q: &TenantQuota, now: i64) -> QuotaRow {
    QuotaRow {
        tenant: tenant.to_string(),
        flavor: q.flavor.clone(),
        nominal: q.nominal,
        borrowing_limit: q.borrowing_limit,
        lending_limit: q.lending_limit,
        updated_ms: now,
    }
}

/// The API error for a refused quota `i`.
fn quota_error(i: usize, e: EventError) -> ApiError {
    match e {
        EventError::UnknownFlavor(f) => ApiError::invalid(format!("quotas[{i}].flavor"), format!("unknown flavor `{f}`")),
        e => ApiError::invalid(format!("quotas[{i}].nominal"), e.to_string()),
    }
}

/// The API error for a refused tenant event.
fn tenant_error(e: EventError, field: &str) -> ApiError {
    match e {
        EventError::TenantConflict(m) => ApiError::conflict(m),
        EventError::UnknownTenant(t) => ApiError::not_found(format!("tenant `{t}` not found")),
        e => ApiError::invalid(field, e.to_string()),
    }
}

/// The parent path of `path` ("" for a top-level tenant).
pub fn parent_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// Replays stored tenant rows over a core built from the config: live ones created
/// (parents first) or reweighted, deleted ones removed (children first). Returns a
/// line for each row that no longer applies (the config changed under it).
pub fn apply_tenant_rows(core: &mut Core, rows: &[TenantRow], now: i64) -> Vec<String> {
    let depth = |r: &&TenantRow| r.path.matches('/').count();
    let mut warnings = vec![];
    let mut live: Vec<&TenantRow> = rows.iter().filter(|r| !r.deleted).collect();
    live.sort_by_key(depth);
    for r in live {
        let ev = if core.tenants().index(&r.path).is_some() {
            Event::TenantWeightChanged { path: r.path.clone(), weight: r.weight }
        } else {
            Event::TenantAdded { path: r.path.clone(), weight: r.weight }
        };
        if let Err(e) = core.on_event(now, ev) {
            warnings.push(format!("stored tenant `{}` no longer applies: {e}", r.path));
        }
    }
    let mut dead: Vec<&TenantRow> = rows.iter().filter(|r| r.deleted).collect();
    dead.sort_by_key(|r| std::cmp::Reverse(depth(r)));
    for r in dead {
        if core.tenants().index(&r.path).is_some()
            && let Err(e) = core.on_event(now, Event::TenantRemoved(r.path.clone()))
        {
            warnings.push(format!("stored deletion of tenant `{}` no longer applies: {e}", r.path));
        }
    }
    warnings
}

impl Sched {
    /// Replays tenants, then quotas, changed through the API. A quota may only fit
    /// once another is in (a parent's nominal raised before a child's), so they are
    /// applied until no more do.
    pub(crate) async fn restore_tenancy(&mut self, now: i64) -> Result<(), StoreError> {
        let rows = self.store.tenants().await?;
        for w in apply_tenant_rows(&mut self.core, &rows, now) {
            tracing::warn!("{w}");
        }
        let mut left: Vec<(QuotaRow, Option<EventError>)> = self.store.quotas().await?.into_iter().map(|q| (q, None)).collect();
        loop {
            let before = left.len();
            left.retain_mut(|(q, err)| {
                let ev = Event::QuotaChanged {
                    tenant: q.tenant.clone(),
                    flavor: q.flavor.clone(),
                    nominal: q.nominal,
                    borrowing_limit: q.borrowing_limit,
                    lending_limit: q.lending_limit,
                };
                match self.core.on_event(now, ev) {
                    Ok(()) => false,
                    Err(e) => {
                        *err = Some(e);
                        true
                    }
                }
            });
            if left.is_empty() || left.len() == before {
                break;
            }
        }
        for (q, e) in left {
            let e = e.map(|e| e.to_string()).unwrap_or_default();
            tracing::warn!(tenant = %q.tenant, flavor = %q.flavor, error = %e, "stored quota no longer applies");
        }
        Ok(())
    }

    pub(crate) async fn tenant_cmd(&mut self, cmd: TenantCmd) {
        match cmd {
            TenantCmd::Create { path, weight, quotas, reply } => {
                let r = self.create_tenant(path, weight, quotas).await;
                let _ = reply.send(r);
            }
            TenantCmd::Update { path, weight, quotas, reply } => {
                let r = self.update_tenant(path, weight, quotas).await;
                let _ = reply.send(r);
            }
            TenantCmd::Delete { path, reply } => {
                let r = self.delete_tenant(path).await;
                let _ = reply.send(r);
            }
        }
    }

    fn tenant_view(&mut self, path: &str) -> ApiResult<TenantView> {
        self.tenants().into_iter().find(|t| t.path == path).ok_or_else(|| ApiError::not_found(format!("tenant `{path}` not found")))
    }

    /// Applies quota changes to `probe`, naming the refused one.
    fn probe_quotas(probe: &mut Core, path: &str, quotas: &[TenantQuota], now: i64) -> ApiResult<()> {
        for (i, q) in quotas.iter().enumerate() {
            probe.on_event(now, quota_event(path, q)).map_err(|e| quota_error(i, e))?;
        }
        Ok(())
    }

    async fn create_tenant(&mut self, path: String, weight: f64, quotas: Vec<TenantQuota>) -> ApiResult<TenantView> {
        let now = now_ms();
        if self.core.tenants().index(&path).is_some() {
            return Err(ApiError::conflict(format!("tenant `{path}` already exists")));
        }
        let parent = parent_of(&path);
        if !parent.is_empty() && self.core.tenants().index(parent).is_none() {
            return Err(ApiError::invalid("parent", format!("unknown tenant `{parent}`")));
        }
        let mut probe = self.core.clone();
        probe.on_event(now, Event::TenantAdded { path: path.clone(), weight }).map_err(|e| tenant_error(e, "name"))?;
        Self::probe_quotas(&mut probe, &path, &quotas, now)?;
        let row = TenantRow { path: path.clone(), weight, deleted: false, updated_ms: now };
        let rows: Vec<QuotaRow> = quotas.iter().map(|q| quota_row(&path, q, now)).collect();
        self.store.put_tenant(Some(&row), &rows).await?;
        self.core = probe;
        self.dirty = true;
        self.tenant_view(&path)
    }

    async fn update_tenant(&mut self, path: String, weight: Option<f64>, quotas: Vec<TenantQuota>) -> ApiResult<TenantView> {
        let now = now_ms();
        if self.core.tenants().index(&path).is_none() {
            return Err(ApiError::not_found(format!("tenant `{path}` not found")));
        }
        if weight.is_none() && quotas.is_empty() {
            return self.tenant_view(&path);
        }
        let mut probe = self.core.clone();
        if let Some(w) = weight {
            probe.on_event(now, Event::TenantWeightChanged { path: path.clone(), weight: w }).map_err(|e| tenant_error(e, "weight"))?;
        }
        Self::probe_quotas(&mut probe, &path, &quotas, now)?;
        let row = weight.map(|weight| TenantRow { path: path.clone(), weight, deleted: false, updated_ms: now });
        let rows: Vec<QuotaRow> = quotas.iter().map(|q| quota_row(&path, q, now)).collect();
        self.store.put_tenant(row.as_ref(), &rows).await?;
        self.core = probe;
        self.dirty = true;
        self.tenant_view(&path)
    }

    async fn delete_tenant(&mut self, path: String) -> ApiResult<Vec<u64>> {
        let now = now_ms();
        if self.core.tenants().index(&path).is_none() {
            return Err(ApiError::not_found(format!("tenant `{path}` not found")));
        }
        let mut probe = self.core.clone();
        probe.on_event(now, Event::TenantRemoved(path.clone())).map_err(|e| tenant_error(e, "path"))?;
        let revoked = self.store.delete_tenant(&path, now).await?;
        self.core = probe;
        self.dirty = true;
        Ok(revoked)
    }
}
