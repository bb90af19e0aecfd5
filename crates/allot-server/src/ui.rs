//! The web dashboard (plain HTML, CSS and JS embedded in the binary, served at `/`)
//! and the read endpoints it and the CLI use: `/v1/cluster` (capacity by site and
//! flavor, nodes, allocation over time), `/v1/queue` (pending jobs with reasons and
//! estimated starts, running and recent jobs) and `/v1/tenants/use` (use against
//! nominal, borrowed and lent, fair share, budget).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use allot_api::*;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};

use crate::api::{ask, job_view};
use crate::auth::in_subtree;
use crate::error::ApiResult;
use crate::extract::Auth;
use crate::sched::{Cmd, now_ms};
use crate::store::JobQuery;
use crate::{AppState, Shared};

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

/// Samples kept: an hour at one every 5 s.
const HISTORY: usize = 720;
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Pending jobs explained per `/v1/queue` answer (the rest are listed without).
const MAX_EXPLAINED: usize = 200;
/// Pending jobs listed per answer.
const MAX_QUEUED: usize = 1000;

#[derive(Default)]
struct History(Mutex<VecDeque<UtilSample>>);

impl History {
    fn push(&self, s: UtilSample) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(s);
    }

    fn all(&self) -> Vec<UtilSample> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }
}

/// The dashboard's routes; starts the allocation sampler (it stops with the server).
pub fn router(state: &AppState) -> Router<AppState> {
    let history = Arc::new(History::default());
    tokio::spawn(sample(Arc::downgrade(state), history.clone()));
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/app.css", get(app_css))
        .route("/v1/cluster", get(cluster))
        .route("/v1/queue", get(queue))
        .route("/v1/tenants/use", get(tenants_use))
        .layer(Extension(history))
}

async fn sample(state: Weak<Shared>, history: Arc<History>) {
    loop {
        {
            let Some(s) = state.upgrade() else { return };
            let Ok(nodes) = ask(&s, |reply| Cmd::Nodes { name: None, reply }).await else { return };
            let (gpus, allocated) = totals(&nodes);
            history.push(UtilSample { at_ms: now_ms(), allocated, gpus });
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

fn allocated_of(n: &NodeView) -> f64 {
    n.gpu_free_milli.iter().map(|&m| 1.0 - f64::from(m.min(1000)) / 1000.0).sum()
}

fn totals(nodes: &[NodeView]) -> (u32, f64) {
    nodes.iter().fold((0, 0.0), |(g, a), n| (g + n.gpus, a + allocated_of(n)))
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    page(INDEX_HTML, "text/html; charset=utf-8")
}

async fn app_js() -> Response {
    page(APP_JS, "text/javascript; charset=utf-8")
}

async fn app_css() -> Response {
    page(APP_CSS, "text/css; charset=utf-8")
}

/// Capacity by site and flavor, node states, every node, and allocation over time.
async fn cluster(State(s): State<AppState>, Auth(_): Auth, Extension(h): Extension<Arc<History>>) -> ApiResult<Json<ClusterSummary>> {
    let nodes = ask(&s, |reply| Cmd::Nodes { name: None, reply }).await?;
    Ok(Json(summarize(nodes, h.all(), now_ms())))
}

/// The summary of a node list (pure, for tests).
pub fn summarize(nodes: Vec<NodeView>, history: Vec<UtilSample>, at_ms: i64) -> ClusterSummary {
    let mut rows: BTreeMap<(String, String), CapacityRow> = BTreeMap::new();
    let (mut up, mut down, mut drained) = (0, 0, 0);
    for n in &nodes {
        let site = n.at.split('/').next().unwrap_or("").to_string();
        let r = rows.entry((site.clone(), n.flavor.clone())).or_insert_with(|| CapacityRow {
            site,
            flavor: n.flavor.clone(),
            nodes: 0,
            gpus: 0,
            allocated: 0.0,
            free: 0,
        });
        r.nodes += 1;
        r.gpus += n.gpus;
        r.allocated += allocated_of(n);
        if !n.up {
            down += 1;
        } else if n.drained {
            drained += 1;
        } else {
            up += 1;
            r.free += n.gpus_free;
        }
    }
    let (gpus, allocated) = totals(&nodes);
    ClusterSummary {
        at_ms,
        gpus,
        allocated,
        nodes_up: up,
        nodes_down: down,
        nodes_drained: drained,
        capacity: rows.into_values().collect(),
        history,
        nodes,
    }
}

/// Live jobs the caller may see: pending and held with reasons, running, and the
/// most recently ended.
async fn queue(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<QueueView>> {
    let mut live: Vec<_> = s.store.active_jobs().await?.into_iter().filter(|r| p.can_access_tenant(&r.tenant)).collect();
    live.sort_by_key(|r| r.id);
    let mut pending = vec![];
    let mut running = vec![];
    for r in live {
        let v = job_view(r);
        match v.state {
            JobState::Pending | JobState::Held => pending.push(v),
            _ => running.push(v),
        }
    }
    let mut queued = Vec::with_capacity(pending.len().min(MAX_QUEUED));
    for (i, job) in pending.into_iter().take(MAX_QUEUED).enumerate() {
        let id = job.id;
        let ex = if i < MAX_EXPLAINED { ask(&s, |reply| Cmd::Explain { id, reply }).await? } else { None };
        let (reason, message, position, estimated_start_ms) = match ex {
            Some(e) => (e.reason, e.message, e.position, e.estimated_start_ms),
            None if job.state == JobState::Held => ("held".into(), "held: release it to queue it again".into(), None, None),
            None => ("new".into(), "not yet considered by a scheduling pass".into(), None, None),
        };
        queued.push(QueuedJob { job, reason, message, position, estimated_start_ms });
    }
    queued.sort_by_key(|q| (q.position.unwrap_or(usize::MAX), q.job.id));
    // The last couple of hundred ids hold the recently ended jobs.
    let max = s.store.max_job_id().await?;
    let mut query = JobQuery { after: Some(max.saturating_sub(200)), limit: 200, ..Default::default() };
    if let Some(root) = p.scope() {
        query.subtrees.push(root.to_string());
    }
    let mut recent: Vec<JobView> = s.store.list_jobs(&query).await?.into_iter().map(job_view).filter(|j| j.state.is_terminal()).collect();
    recent.sort_by_key(|j| std::cmp::Reverse((j.ended_at_ms.unwrap_or(0), j.id)));
    recent.truncate(20);
    Ok(Json(QueueView { pending: queued, running, recent }))
}

/// Tenants' use against their quotas, borrowed and lent, fair share, budget.
async fn tenants_use(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<TenantUseList>> {
    let all = ask(&s, |reply| Cmd::Tenants { reply }).await?;
    let jobs = s.store.active_jobs().await?;
    let mut counts: HashMap<String, (u32, u32)> = HashMap::new();
    for j in &jobs {
        let e = counts.entry(j.tenant.clone()).or_default();
        if j.state == "running" || j.state == "stopping" {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    let mut list = tenant_use(&all);
    for t in &mut list {
        for (tenant, (r, q)) in &counts {
            if in_subtree(tenant, &t.path) {
                t.running_jobs += r;
                t.pending_jobs += q;
            }
        }
    }
    list.retain(|t| p.can_access_tenant(&t.path));
    Ok(Json(TenantUseList { tenants: list }))
}

/// Borrowed, lent, fair share and use share of every tenant (pure, for tests).
pub fn tenant_use(all: &[TenantView]) -> Vec<TenantUse> {
    // Siblings: tenants with the same parent.
    let mut siblings: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
    for (i, t) in all.iter().enumerate() {
        siblings.entry(t.parent.clone()).or_default().push(i);
    }
    let rows: Vec<Vec<TenantFlavorUse>> = all
        .iter()
        .map(|t| {
            t.quotas
                .iter()
                .map(|q| {
                    let idle = (q.nominal - q.used).max(0.0);
                    TenantFlavorUse {
                        flavor: q.flavor.clone(),
                        nominal: q.nominal,
                        used: q.used,
                        borrowed: (q.used - q.nominal).max(0.0),
                        lent: 0.0,
                        lendable: q.lending_limit.map_or(idle, |l| idle.min(l)),
                        borrowing_limit: q.borrowing_limit,
                        lending_limit: q.lending_limit,
                    }
                })
                .collect()
        })
        .collect();
    let mut out: Vec<TenantUse> = all
        .iter()
        .zip(rows)
        .map(|(t, flavors)| TenantUse {
            path: t.path.clone(),
            parent: t.parent.clone(),
            weight: t.weight,
            fair_share: 0.0,
            use_share: 0.0,
            flavors,
            budget_remaining_gpu_hours: t.budget_remaining_gpu_hours,
            running_jobs: 0,
            pending_jobs: 0,
        })
        .collect();
    for group in siblings.values() {
        let weights: f64 = group.iter().map(|&i| out[i].weight.max(0.0)).sum();
        let used: f64 = group.iter().map(|&i| out[i].flavors.iter().map(|f| f.used).sum::<f64>()).sum();
        for &i in group {
            out[i].fair_share = if weights > 0.0 { out[i].weight.max(0.0) / weights } else { 0.0 };
            let mine: f64 = out[i].flavors.iter().map(|f| f.used).sum();
            out[i].use_share = if used > 0.0 { mine / used } else { 0.0 };
        }
        // Per flavor: what the group borrows is spread over its lenders.
        let mut flavors: Vec<String> = group.iter().flat_map(|&i| out[i].flavors.iter().map(|f| f.flavor.clone())).collect();
        flavors.sort();
        flavors.dedup();
        for f in flavors {
            let get = |out: &Vec<TenantUse>, i: usize| out[i].flavors.iter().position(|x| x.flavor == f);
            let borrowed: f64 = group.iter().filter_map(|&i| get(&out, i).map(|k| out[i].flavors[k].borrowed)).sum();
            let lendable: f64 = group.iter().filter_map(|&i| get(&out, i).map(|k| out[i].flavors[k].lendable)).sum();
            if borrowed <= 0.0 || lendable <= 0.0 {
                continue;
            }
            let lent_total = borrowed.min(lendable);
            for &i in group {
                if let Some(k) = get(&out, i) {
                    let fl = &mut out[i].flavors[k];
                    fl.lent = lent_total * fl.lendable / lendable;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, at: &str, free: Vec<u16>, up: bool, drained: bool) -> NodeView {
        // Through serde: fields added later with defaults need no change here.
        serde_json::from_value(serde_json::json!({
            "name": name, "flavor": "H100", "at": at, "gpus": free.len(),
            "gpus_free": free.iter().filter(|&&m| m == 1000).count(), "gpu_free_milli": free,
            "cpus": 1, "memory_mib": 1, "labels": {}, "up": up, "drained": drained, "running_jobs": [],
        }))
        .unwrap()
    }

    #[test]
    fn summary_groups_by_site_and_flavor_and_counts_fractions() {
        let nodes = vec![
            node("a", "s1/b/l", vec![1000, 0, 500, 1000], true, false),
            node("b", "s1/b/l", vec![1000; 4], true, true),
            node("c", "s2/b/l", vec![0; 4], false, false),
        ];
        let s = summarize(nodes, vec![], 7);
        assert_eq!((s.gpus, s.allocated), (12, 5.5));
        assert_eq!((s.nodes_up, s.nodes_drained, s.nodes_down), (1, 1, 1));
        assert_eq!(s.capacity.len(), 2);
        assert_eq!((s.capacity[0].site.as_str(), s.capacity[0].gpus, s.capacity[0].free), ("s1", 8, 2));
        assert_eq!(s.capacity[0].allocated, 1.5);
    }

    fn tenant(path: &str, parent: Option<&str>, weight: f64, nominal: f64, used: f64, lending: Option<f64>) -> TenantView {
        TenantView {
            path: path.into(),
            parent: parent.map(String::from),
            weight,
            quotas: vec![QuotaView {
                tenant: path.into(),
                flavor: "H100".into(),
                nominal,
                borrowing_limit: None,
                lending_limit: lending,
                used,
            }],
            budget_remaining_gpu_hours: None,
        }
    }

    #[test]
    fn borrowing_is_spread_over_lenders_by_what_they_may_lend() {
        let all = vec![
            tenant("n", None, 1.0, 32.0, 24.0, None),
            tenant("n/a", Some("n"), 3.0, 8.0, 16.0, None),
            tenant("n/b", Some("n"), 1.0, 16.0, 8.0, Some(2.0)),
            tenant("n/c", Some("n"), 0.0, 8.0, 0.0, None),
        ];
        let u = tenant_use(&all);
        let f = |i: usize| &u[i].flavors[0];
        assert_eq!(f(1).borrowed, 8.0);
        assert_eq!((f(2).lendable, f(3).lendable), (2.0, 8.0));
        assert!((f(2).lent - 1.6).abs() < 1e-9 && (f(3).lent - 6.4).abs() < 1e-9, "{:?}", u);
        assert_eq!(u[1].fair_share, 0.75);
        assert!((u[1].use_share - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(u[0].fair_share, 1.0);
    }
}
