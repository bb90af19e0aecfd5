//! The HTTP API under `/v1`, and `/healthz`, `/readyz`, `/metrics`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;

use allot_api::*;
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tokio::sync::{broadcast, oneshot};
use utoipa::OpenApi;

use crate::AppState;
use crate::auth::{Principal, hash_secret, in_subtree, new_secret};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::extract::{ApiJson, Auth, Params, Segment, parse_id};
use crate::sched::{Action, Cmd, NewJob, now_ms};
use crate::store::{JobQuery, JobRow, TokenRow};
use crate::tenancy::TenantCmd;
use crate::validate::{project_of, to_spec};
use crate::writer::{Prepared, SubmitReq};

pub fn router(state: AppState) -> Router {
    let limit = state.limits.max_body_bytes;
    let ui = crate::ui::router(&state);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/jobs", post(submit).get(list_jobs))
        .route("/v1/jobs/batch", post(submit_batch))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/jobs/{id}/hold", post(hold_job))
        .route("/v1/jobs/{id}/release", post(release_job))
        .route("/v1/jobs/{id}/finish", post(finish_job))
        .route("/v1/jobs/{id}/explain", get(explain_job))
        .route("/v1/jobs/{id}/logs", get(crate::agents::job_logs))
        .route("/v1/events", get(events))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{name}", get(get_node))
        .route("/v1/nodes/{name}/drain", post(drain_node))
        .route("/v1/nodes/{name}/undrain", post(undrain_node))
        .route("/v1/nodes/{name}/cordon", post(cordon_node))
        .route("/v1/nodes/{name}/uncordon", post(undrain_node))
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        // A tenant path has `/` in it: given as is or as `%2F`.
        .route("/v1/tenants/{*path}", get(get_tenant).patch(update_tenant).delete(delete_tenant))
        .route("/v1/quotas", get(list_quotas).put(set_quota))
        .route("/v1/budgets", get(list_budgets).post(grant_budget))
        .route("/v1/usage", get(usage))
        .route("/v1/tokens", post(create_token).get(list_tokens))
        .route("/v1/tokens/{id}", delete(revoke_token))
        .route(allot_api::agent::AGENT_CONNECT_PATH, get(crate::agents::connect))
        .merge(ui)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorKind::MethodNotAllowed, "method not allowed on this route")
}

/// Sends a command to the scheduling loop and waits for its answer.
pub(crate) async fn ask<T>(state: &AppState, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> ApiResult<T> {
    let (tx, rx) = oneshot::channel();
    state.core.send(make(tx)).map_err(|_| ApiError::unavailable("scheduler stopped"))?;
    rx.await.map_err(|_| ApiError::unavailable("scheduler stopped"))
}

// ----- health -----

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "the process is up")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "ready"), (status = 503, body = ErrorBody)))]
async fn readyz(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    if !s.ready.load(Ordering::Relaxed) {
        return Err(ApiError::unavailable("rebuilding the scheduler from the store"));
    }
    if !s.metrics.store_ok() {
        return Err(ApiError::unavailable("the store is failing"));
    }
    Ok(Json(serde_json::json!({"status": "ready", "backend": s.store.backend()})))
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(s): State<AppState>) -> ApiResult<Response> {
    let text = ask(&s, |reply| Cmd::Metrics { reply }).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

// ----- jobs -----

fn prepare(state: &AppState, p: &Principal, s: &JobSubmit, prefix: &str, now: i64) -> ApiResult<Prepared> {
    if !p.can_access_tenant(&s.tenant) {
        return Err(ApiError::forbidden(format!("no access to tenant `{}`", s.tenant)).with_field(format!("{prefix}tenant")));
    }
    let user = match (&s.user, p.role) {
        (Some(u), Role::User) if *u != p.user => {
            return Err(ApiError::forbidden("a user token submits as its own user").with_field(format!("{prefix}user")));
        }
        (Some(u), _) => u.clone(),
        (None, _) => p.user.clone(),
    };
    if user.is_empty() {
        return Err(ApiError::invalid(format!("{prefix}user"), "must not be empty"));
    }
    let spec = to_spec(s, &user, prefix)?;
    state.validator.check(&spec, prefix)?;
    let project = project_of(s);
    let stored = JobSubmit { user: Some(user), project: Some(project.clone()), ..s.clone() };
    let spec_json = serde_json::to_string(&stored).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    let submit = Some(std::sync::Arc::new(stored));
    Ok(Prepared { job: NewJob { spec, project, submitted_ms: now, submit }, spec_json })
}

async fn commit(state: &AppState, jobs: Vec<Prepared>) -> ApiResult<Vec<u64>> {
    let (reply, rx) = oneshot::channel();
    state.writer.send(SubmitReq { jobs, reply }).await.map_err(|_| ApiError::unavailable("store writer stopped"))?;
    rx.await.map_err(|_| ApiError::unavailable("store writer stopped"))?
}

/// Submits one job; answered once it is committed.
#[utoipa::path(post, path = "/v1/jobs", request_body = JobSubmit, security(("bearer" = [])),
    responses((status = 201, body = SubmitResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn submit(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<JobSubmit>,
) -> ApiResult<(StatusCode, Json<SubmitResponse>)> {
    let prepared = prepare(&s, &p, &req, "", now_ms())?;
    let ids = commit(&s, vec![prepared]).await?;
    let id = ids.first().copied().ok_or_else(|| ApiError::new(ErrorKind::Internal, "no id assigned"))?;
    Ok((StatusCode::CREATED, Json(SubmitResponse { id })))
}

/// Submits up to 10,000 jobs, committed together (all or none).
#[utoipa::path(post, path = "/v1/jobs/batch", request_body = JobBatchSubmit, security(("bearer" = [])),
    responses((status = 201, body = BatchSubmitResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn submit_batch(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<JobBatchSubmit>,
) -> ApiResult<(StatusCode, Json<BatchSubmitResponse>)> {
    if req.jobs.is_empty() {
        return Err(ApiError::invalid("jobs", "must not be empty"));
    }
    if req.jobs.len() > MAX_BATCH {
        return Err(ApiError::invalid("jobs", format!("{} jobs, at most {MAX_BATCH} per batch", req.jobs.len())));
    }
    let now = now_ms();
    let mut prepared = Vec::with_capacity(req.jobs.len());
    for (i, j) in req.jobs.iter().enumerate() {
        prepared.push(prepare(&s, &p, j, &format!("jobs[{i}]."), now)?);
    }
    let ids = commit(&s, prepared).await?;
    Ok((StatusCode::CREATED, Json(BatchSubmitResponse { ids })))
}

pub(crate) fn job_view(r: JobRow) -> JobView {
    let spec: JobSubmit = serde_json::from_str(&r.spec).unwrap_or_else(|_| JobSubmit { tenant: r.tenant.clone(), ..Default::default() });
    JobView {
        id: r.id,
        state: JobState::parse(&r.state).unwrap_or(JobState::Failed),
        spec,
        submitted_at_ms: r.submitted_ms,
        started_at_ms: r.started_ms,
        ended_at_ms: r.ended_ms,
        placement: r.placement.as_deref().and_then(|p| serde_json::from_str(p).ok()),
        message: r.message,
        tenant: r.tenant,
        project: r.project,
        user: r.user,
    }
}

/// A job the caller may see, or 404 (another tenant's job does not exist for it).
pub(crate) async fn visible_job(s: &AppState, p: &Principal, raw: &str) -> ApiResult<JobRow> {
    let id = parse_id(raw, "job")?;
    match s.store.get_job(id).await? {
        Some(r) if p.can_access_tenant(&r.tenant) => Ok(r),
        _ => Err(ApiError::not_found(format!("job {id} not found"))),
    }
}

/// Lists jobs the caller may see, by id; pass `next_cursor` back as `cursor`.
#[utoipa::path(get, path = "/v1/jobs", security(("bearer" = [])),
    params(("tenant" = Option<String>, Query, description = "tenant subtree"), ("project" = Option<String>, Query), ("user" = Option<String>, Query),
           ("state" = Option<JobState>, Query), ("cursor" = Option<String>, Query), ("limit" = Option<u32>, Query, description = "page size, default 100")),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_jobs(State(s): State<AppState>, Auth(p): Auth, mut q: Params) -> ApiResult<Json<JobList>> {
    let mut query = JobQuery { limit: 100, ..Default::default() };
    if let Some(root) = p.scope() {
        query.subtrees.push(root.to_string());
    }
    if let Some(t) = q.take("tenant") {
        query.subtrees.push(t.trim_matches('/').to_string());
    }
    query.project = q.take("project");
    query.user = q.take("user");
    if let Some(st) = q.take("state") {
        let parsed = JobState::parse(&st).ok_or_else(|| ApiError::invalid("state", format!("unknown state `{st}`")))?;
        query.state = Some(parsed.as_str().to_string());
    }
    query.after = q.take_parsed::<u64>("cursor", "a cursor")?;
    if let Some(limit) = q.take_parsed::<u32>("limit", "a page size")? {
        if limit == 0 || limit > s.limits.max_page {
            return Err(ApiError::invalid("limit", format!("must be in 1..={}", s.limits.max_page)));
        }
        query.limit = limit;
    }
    q.finish()?;
    let rows = s.store.list_jobs(&query).await?;
    let next_cursor = (rows.len() == query.limit as usize).then(|| rows.last().map(|r| r.id.to_string())).flatten();
    Ok(Json(JobList { jobs: rows.into_iter().map(job_view).collect(), next_cursor }))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
async fn get_job(State(s): State<AppState>, Auth(p): Auth, Segment(id): Segment) -> ApiResult<Json<JobView>> {
    Ok(Json(job_view(visible_job(&s, &p, &id).await?)))
}

async fn act(s: AppState, p: Principal, raw: String, action: Action) -> ApiResult<Json<JobView>> {
    let row = visible_job(&s, &p, &raw).await?;
    if action == Action::Finish {
        p.require_admin()?;
    }
    ask(&s, |reply| Cmd::Act { id: row.id, action, reply }).await??;
    let row = s.store.get_job(row.id).await?.ok_or_else(|| ApiError::not_found(format!("job {} not found", row.id)))?;
    Ok(Json(job_view(row)))
}

/// Cancels a job: a pending or held job at once, a running one is stopped.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_job(State(s): State<AppState>, Auth(p): Auth, Segment(id): Segment) -> ApiResult<Json<JobView>> {
    act(s, p, id, Action::Cancel).await
}

#[utoipa::path(post, path = "/v1/jobs/{id}/hold", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn hold_job(State(s): State<AppState>, Auth(p): Auth, Segment(id): Segment) -> ApiResult<Json<JobView>> {
    act(s, p, id, Action::Hold).await
}

#[utoipa::path(post, path = "/v1/jobs/{id}/release", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn release_job(State(s): State<AppState>, Auth(p): Auth, Segment(id): Segment) -> ApiResult<Json<JobView>> {
    act(s, p, id, Action::Release).await
}

/// Reports a running job's processes gone (admin; the node agent's report, until
/// the agent link exists). Its run is accounted.
#[utoipa::path(post, path = "/v1/jobs/{id}/finish", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = JobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn finish_job(State(s): State<AppState>, Auth(p): Auth, Segment(id): Segment) -> ApiResult<Json<JobView>> {
    act(s, p, id, Action::Finish).await
}

/// Why a job is not running: reason, position in the queue, estimated start.
#[utoipa::path(get, path = "/v1/jobs/{id}/explain", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = ExplainView), (status = 404, body = ErrorBody)))]
async fn explain_job(State(s): State<AppState>, Auth(p): Auth, Segment(id): Segment) -> ApiResult<Json<ExplainView>> {
    let row = visible_job(&s, &p, &id).await?;
    let id = row.id;
    if let Some(v) = ask(&s, |reply| Cmd::Explain { id, reply }).await? {
        return Ok(Json(v));
    }
    let state = JobState::parse(&row.state).unwrap_or(JobState::Failed);
    let message = row.message.clone().unwrap_or_else(|| format!("job is {}", state.as_str()));
    Ok(Json(ExplainView { id, state, reason: state.as_str().to_string(), message, position: None, estimated_start_ms: None }))
}

/// Server-Sent Events: `job` events (`JobEvent`) of the jobs the caller may see.
#[utoipa::path(get, path = "/v1/events", security(("bearer" = [])), params(("tenant" = Option<String>, Query, description = "tenant subtree")),
    responses((status = 200, description = "text/event-stream of JobEvent", content_type = "text/event-stream")))]
async fn events(State(s): State<AppState>, Auth(p): Auth, mut q: Params) -> ApiResult<impl IntoResponse> {
    let filter = q.take("tenant");
    q.finish()?;
    let rx = s.events.subscribe();
    let stream = futures_util::stream::unfold((rx, p, filter), |(mut rx, p, filter)| async move {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    if !p.can_access_tenant(&ev.tenant) || filter.as_deref().is_some_and(|f| !in_subtree(&ev.tenant, f)) {
                        continue;
                    }
                    let data = serde_json::to_string(&ev).unwrap_or_default();
                    return Some((Ok::<_, Infallible>(SseEvent::default().event("job").data(data)), (rx, p, filter)));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Some((Ok(SseEvent::default().event("lagged").data(n.to_string())), (rx, p, filter)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

// ----- nodes -----

#[utoipa::path(get, path = "/v1/nodes", security(("bearer" = [])), responses((status = 200, body = NodeList)))]
async fn list_nodes(State(s): State<AppState>, Auth(_): Auth) -> ApiResult<Json<NodeList>> {
    let nodes = ask(&s, |reply| Cmd::Nodes { name: None, reply }).await?;
    Ok(Json(NodeList { nodes }))
}

#[utoipa::path(get, path = "/v1/nodes/{name}", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 200, body = NodeView), (status = 404, body = ErrorBody)))]
async fn get_node(State(s): State<AppState>, Auth(_): Auth, Segment(name): Segment) -> ApiResult<Json<NodeView>> {
    let n = name.clone();
    let mut nodes = ask(&s, |reply| Cmd::Nodes { name: Some(n), reply }).await?;
    nodes.pop().map(Json).ok_or_else(|| ApiError::not_found(format!("node `{name}` not found")))
}

async fn set_drain(s: AppState, p: Principal, name: String, drained: bool, evict: bool) -> ApiResult<Json<NodeView>> {
    p.require_admin()?;
    Ok(Json(ask(&s, |reply| Cmd::Drain { node: name, drained, evict, reply }).await??))
}

/// Drains a node (admin): nothing new starts there and its running jobs are
/// stopped and requeued.
#[utoipa::path(post, path = "/v1/nodes/{name}/drain", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 200, body = NodeView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn drain_node(State(s): State<AppState>, Auth(p): Auth, Segment(name): Segment) -> ApiResult<Json<NodeView>> {
    set_drain(s, p, name, true, true).await
}

/// Cordons a node (admin): nothing new starts there; running jobs stay.
#[utoipa::path(post, path = "/v1/nodes/{name}/cordon", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 200, body = NodeView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn cordon_node(State(s): State<AppState>, Auth(p): Auth, Segment(name): Segment) -> ApiResult<Json<NodeView>> {
    set_drain(s, p, name, true, false).await
}

/// Undrains or uncordons a node (admin): it takes new work again.
#[utoipa::path(post, path = "/v1/nodes/{name}/undrain", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 200, body = NodeView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn undrain_node(State(s): State<AppState>, Auth(p): Auth, Segment(name): Segment) -> ApiResult<Json<NodeView>> {
    set_drain(s, p, name, false, false).await
}

// ----- tenants, quotas, budgets -----

fn sees_tenant(p: &Principal, t: &str) -> bool {
    p.can_access_tenant(t)
}

#[utoipa::path(get, path = "/v1/tenants", security(("bearer" = [])), responses((status = 200, body = TenantList)))]
async fn list_tenants(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<TenantList>> {
    let all = ask(&s, |reply| Cmd::Tenants { reply }).await?;
    Ok(Json(TenantList { tenants: all.into_iter().filter(|t| sees_tenant(&p, &t.path)).collect() }))
}

/// A tenant path from a URL or a body: without leading or trailing `/`.
fn tenant_path(raw: &str) -> String {
    raw.trim_matches('/').to_string()
}

/// One tenant (visible to the caller).
#[utoipa::path(get, path = "/v1/tenants/{path}", security(("bearer" = [])),
    params(("path" = String, Path, description = "tenant path; its `/` as is or as `%2F`")),
    responses((status = 200, body = TenantView), (status = 404, body = ErrorBody)))]
async fn get_tenant(State(s): State<AppState>, Auth(p): Auth, Segment(raw): Segment) -> ApiResult<Json<TenantView>> {
    let path = tenant_path(&raw);
    let all = ask(&s, |reply| Cmd::Tenants { reply }).await?;
    all.into_iter()
        .find(|t| t.path == path && sees_tenant(&p, &t.path))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("tenant `{path}` not found")))
}

/// Creates a tenant under an existing parent (admin; a tenant admin inside its
/// subtree), with its weight and quotas. Persisted, and in effect from the next pass.
#[utoipa::path(post, path = "/v1/tenants", request_body = TenantCreate, security(("bearer" = [])),
    responses((status = 201, body = TenantView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the tenant exists")))]
async fn create_tenant(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<TenantCreate>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    p.require_manager()?;
    crate::tenancy::check_name(&req.name)?;
    let parent = tenant_path(req.parent.as_deref().unwrap_or(""));
    if parent.len() > crate::tenancy::MAX_PATH {
        return Err(ApiError::invalid("parent", "too long"));
    }
    let path = if parent.is_empty() { req.name.clone() } else { format!("{parent}/{}", req.name) };
    if path == "use" {
        // `/v1/tenants/use` is the dashboard's tenant-use route.
        return Err(ApiError::invalid("name", "`use` is reserved at the top level"));
    }
    if !p.can_manage_tenant(&path) {
        return Err(ApiError::forbidden(format!("cannot create tenants under `{}`", if parent.is_empty() { "/" } else { &parent }))
            .with_field("parent"));
    }
    let weight = req.weight.unwrap_or(1.0);
    crate::tenancy::check_weight(weight)?;
    crate::tenancy::check_quotas(&req.quotas)?;
    let quotas = req.quotas;
    let view = ask(&s, |reply| Cmd::Tenancy(TenantCmd::Create { path: path.clone(), weight, quotas, reply })).await??;
    // The validator's tree follows, so that jobs may be submitted to the new tenant.
    if let Err(e) = s.validator.apply(allot_core::Event::TenantAdded { path, weight }) {
        tracing::warn!(error = %e, "validator refused a tenant the scheduler took");
    }
    Ok((StatusCode::CREATED, Json(view)))
}

/// Changes a tenant's weight and quotas (admin; a tenant admin strictly inside its
/// subtree). Persisted, and in effect from the next pass.
#[utoipa::path(patch, path = "/v1/tenants/{path}", request_body = TenantUpdate, security(("bearer" = [])),
    params(("path" = String, Path, description = "tenant path; its `/` as is or as `%2F`")),
    responses((status = 200, body = TenantView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_tenant(
    State(s): State<AppState>,
    Auth(p): Auth,
    Segment(raw): Segment,
    ApiJson(req): ApiJson<TenantUpdate>,
) -> ApiResult<Json<TenantView>> {
    p.require_manager()?;
    let path = tenant_path(&raw);
    if !p.can_manage_tenant(&path) {
        return Err(ApiError::forbidden(format!("cannot manage tenant `{path}`")));
    }
    if let Some(w) = req.weight {
        crate::tenancy::check_weight(w)?;
    }
    crate::tenancy::check_quotas(&req.quotas)?;
    let (weight, quotas) = (req.weight, req.quotas);
    Ok(Json(ask(&s, |reply| Cmd::Tenancy(TenantCmd::Update { path, weight, quotas, reply })).await??))
}

/// Deletes a tenant that has no child tenants and no live jobs (admin; a tenant admin
/// strictly inside its subtree), with its quotas and budgets; its tokens are revoked.
#[utoipa::path(delete, path = "/v1/tenants/{path}", security(("bearer" = [])),
    params(("path" = String, Path, description = "tenant path; its `/` as is or as `%2F`")),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the tenant has child tenants or live jobs")))]
async fn delete_tenant(State(s): State<AppState>, Auth(p): Auth, Segment(raw): Segment) -> ApiResult<StatusCode> {
    p.require_manager()?;
    let path = tenant_path(&raw);
    if !p.can_manage_tenant(&path) {
        return Err(ApiError::forbidden(format!("cannot manage tenant `{path}`")));
    }
    let p2 = path.clone();
    let revoked = ask(&s, |reply| Cmd::Tenancy(TenantCmd::Delete { path: p2, reply })).await??;
    for id in revoked {
        s.tokens.forget_token(id);
    }
    if let Err(e) = s.validator.apply(allot_core::Event::TenantRemoved(path)) {
        tracing::warn!(error = %e, "validator refused a tenant removal the scheduler took");
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/quotas", security(("bearer" = [])), responses((status = 200, body = QuotaList)))]
async fn list_quotas(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<QuotaList>> {
    let all = ask(&s, |reply| Cmd::Quotas { reply }).await?;
    Ok(Json(QuotaList { quotas: all.into_iter().filter(|q| sees_tenant(&p, &q.tenant)).collect() }))
}

/// Sets a tenant's quota of one flavor (admin; tenant admins below their tenant).
/// Persisted, and in effect from the next pass.
#[utoipa::path(put, path = "/v1/quotas", request_body = QuotaSet, security(("bearer" = [])),
    responses((status = 200, body = QuotaView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn set_quota(State(s): State<AppState>, Auth(p): Auth, ApiJson(q): ApiJson<QuotaSet>) -> ApiResult<Json<QuotaView>> {
    p.require_manager()?;
    if !p.can_manage_tenant(&q.tenant) {
        return Err(ApiError::forbidden(format!("cannot manage tenant `{}`", q.tenant)).with_field("tenant"));
    }
    Ok(Json(ask(&s, |reply| Cmd::Quota { set: q, reply }).await??))
}

#[utoipa::path(get, path = "/v1/budgets", security(("bearer" = [])), responses((status = 200, body = BudgetList)))]
async fn list_budgets(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<BudgetList>> {
    let rows = s.store.budgets().await?;
    let budgets = rows.iter().filter(|b| sees_tenant(&p, &b.tenant)).map(crate::sched::budget_view).collect();
    Ok(Json(BudgetList { budgets }))
}

/// Grants GPU-hours to a tenant (admin; tenant admins below their tenant).
#[utoipa::path(post, path = "/v1/budgets", request_body = BudgetGrant, security(("bearer" = [])),
    responses((status = 201, body = BudgetView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn grant_budget(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<BudgetGrant>,
) -> ApiResult<(StatusCode, Json<BudgetView>)> {
    p.require_manager()?;
    if !p.can_manage_tenant(&b.tenant) {
        return Err(ApiError::forbidden(format!("cannot manage tenant `{}`", b.tenant)).with_field("tenant"));
    }
    Ok((StatusCode::CREATED, Json(ask(&s, |reply| Cmd::Budget { grant: b, reply }).await??)))
}

// ----- usage -----

/// Milliseconds since the epoch from `1767225600000`, `2026-01-01` or `2026-01-01T00:00:00Z`.
fn parse_time(key: &str, v: &str) -> ApiResult<i64> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    v.parse::<toml::value::Datetime>()
        .ok()
        .and_then(|dt| allot_core::config::datetime_to_ms(&dt))
        .ok_or_else(|| ApiError::invalid(key, format!("`{v}` is not a time (milliseconds since the epoch, or RFC 3339)")))
}

/// GPU-hours over `[from, to)` grouped by tenant, project, user or flavor; JSON, or CSV with `format=csv`.
#[utoipa::path(get, path = "/v1/usage", security(("bearer" = [])),
    params(("by" = Option<String>, Query, description = "tenant (default), project, user or flavor"), ("from" = Option<String>, Query), ("to" = Option<String>, Query),
           ("tenant" = Option<String>, Query, description = "tenant subtree"), ("format" = Option<String>, Query, description = "json (default) or csv")),
    responses((status = 200, body = UsageReport), (status = 400, body = ErrorBody)))]
async fn usage(State(s): State<AppState>, Auth(p): Auth, mut q: Params) -> ApiResult<Response> {
    let by = q.take("by").unwrap_or_else(|| "tenant".into());
    if !["tenant", "project", "user", "flavor"].contains(&by.as_str()) {
        return Err(ApiError::invalid("by", format!("`{by}` is not one of tenant, project, user, flavor")));
    }
    let from = q.take("from").map(|v| parse_time("from", &v)).transpose()?.unwrap_or(0);
    let to = q.take("to").map(|v| parse_time("to", &v)).transpose()?.unwrap_or_else(now_ms);
    if to <= from {
        return Err(ApiError::invalid("to", "must be after `from`"));
    }
    let tenant = q.take("tenant");
    let format = q.take("format").unwrap_or_else(|| "json".into());
    if format != "json" && format != "csv" {
        return Err(ApiError::invalid("format", "must be json or csv"));
    }
    q.finish()?;
    let records = s.store.accounting(from, to).await?;
    let mut groups: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for r in records {
        if !p.can_access_tenant(&r.tenant) || tenant.as_deref().is_some_and(|t| !in_subtree(&r.tenant, t)) {
            continue;
        }
        let overlap_ms = (r.end_ms.min(to) - r.start_ms.max(from)).max(0) as f64;
        let key = match by.as_str() {
            "tenant" => r.tenant,
            "project" => r.project,
            "user" => r.user,
            _ => r.flavor,
        };
        let g = groups.entry(key).or_default();
        g.0 += r.gpus * overlap_ms / 3_600_000.0;
        g.1 += 1;
    }
    let rows: Vec<UsageRow> = groups.into_iter().map(|(key, (gpu_hours, runs))| UsageRow { key, gpu_hours, runs }).collect();
    if format == "csv" {
        let mut out = format!("{by},gpu_hours,runs\n");
        for r in &rows {
            let key = if r.key.contains([',', '"', '\n']) { format!("\"{}\"", r.key.replace('"', "\"\"")) } else { r.key.clone() };
            out.push_str(&format!("{key},{},{}\n", r.gpu_hours, r.runs));
        }
        return Ok(([(header::CONTENT_TYPE, "text/csv")], out).into_response());
    }
    Ok(Json(UsageReport { by, from_ms: from, to_ms: to, rows }).into_response())
}

// ----- tokens -----

fn token_view(r: &TokenRow) -> TokenView {
    TokenView {
        id: r.id,
        name: r.name.clone(),
        role: Role::parse(&r.role).unwrap_or(Role::User),
        tenant: r.tenant.clone(),
        user: r.user.clone(),
        created_at_ms: r.created_ms,
        revoked: r.revoked,
    }
}

/// Whether `p` may see or revoke token `t`.
fn may_manage_token(p: &Principal, t: &TokenRow) -> bool {
    match p.role {
        Role::Admin => true,
        Role::TenantAdmin => t.id == p.token_id || t.tenant.as_deref().is_some_and(|tt| p.can_access_tenant(tt)) && t.role != "admin",
        Role::User | Role::Node => t.id == p.token_id,
    }
}

/// Creates a token; its secret is in this answer only.
#[utoipa::path(post, path = "/v1/tokens", request_body = TokenCreate, security(("bearer" = [])),
    responses((status = 201, body = TokenCreated), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_token(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(req): ApiJson<TokenCreate>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    p.require_manager()?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 256 {
        return Err(ApiError::invalid("name", "must be 1 to 256 characters"));
    }
    let tenant = match (req.role, req.tenant.as_deref()) {
        (Role::Admin, None) => None,
        (Role::Admin, Some(_)) => return Err(ApiError::invalid("tenant", "admin tokens belong to no tenant")),
        (Role::Node, None) => None,
        (Role::Node, Some(_)) => return Err(ApiError::invalid("tenant", "node tokens belong to no tenant")),
        (_, None) => return Err(ApiError::invalid("tenant", "required for tenant_admin and user tokens")),
        (_, Some(t)) => {
            let t = t.trim_matches('/').to_string();
            if !s.validator.has_tenant(&t) {
                return Err(ApiError::invalid("tenant", format!("unknown tenant `{t}`")));
            }
            Some(t)
        }
    };
    let allowed = match (p.role, req.role, &tenant) {
        (Role::Admin, _, _) => true,
        (_, Role::Node, _) => false,
        (Role::TenantAdmin, Role::User, Some(t)) => p.can_access_tenant(t),
        (Role::TenantAdmin, Role::TenantAdmin, Some(t)) => p.can_manage_tenant(t),
        _ => false,
    };
    if !allowed {
        return Err(ApiError::forbidden("cannot create a token of that role or tenant"));
    }
    let user = req.user.clone().unwrap_or_else(|| name.to_string());
    if user.is_empty() || user.len() > 256 {
        return Err(ApiError::invalid("user", "must be 1 to 256 characters"));
    }
    let secret = new_secret()?;
    let mut row = TokenRow {
        id: 0,
        hash: hash_secret(&secret),
        name: name.to_string(),
        role: req.role.as_str().to_string(),
        tenant,
        user,
        created_ms: now_ms(),
        revoked: false,
    };
    row.id = s.store.insert_token(&row).await?;
    Ok((StatusCode::CREATED, Json(TokenCreated { token: secret, info: token_view(&row) })))
}

#[utoipa::path(get, path = "/v1/tokens", security(("bearer" = [])), responses((status = 200, body = TokenList)))]
async fn list_tokens(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<TokenList>> {
    let rows = s.store.list_tokens().await?;
    Ok(Json(TokenList { tokens: rows.iter().filter(|t| may_manage_token(&p, t)).map(token_view).collect() }))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", security(("bearer" = [])), params(("id" = u64, Path)),
    responses((status = 200, body = TokenView), (status = 404, body = ErrorBody)))]
async fn revoke_token(State(s): State<AppState>, Auth(p): Auth, Segment(raw): Segment) -> ApiResult<Json<TokenView>> {
    let id = parse_id(&raw, "token")?;
    let row = s
        .store
        .get_token(id)
        .await?
        .filter(|t| may_manage_token(&p, t))
        .ok_or_else(|| ApiError::not_found(format!("token {id} not found")))?;
    if id == p.token_id {
        return Err(ApiError::conflict("cannot revoke the token this request uses (use another one)"));
    }
    s.store.revoke_token(id).await?;
    s.tokens.forget_token(id);
    Ok(Json(token_view(&TokenRow { revoked: true, ..row })))
}

// ----- OpenAPI -----

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
        // Every operation may answer these errors, all as `ErrorBody`.
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for (write, op) in
                [(false, &mut item.get), (true, &mut item.put), (true, &mut item.post), (true, &mut item.patch), (true, &mut item.delete)]
            {
                let Some(op) = op.as_mut() else { continue };
                let mut codes =
                    vec![("400", "bad input"), ("404", "no such resource"), ("405", "method not allowed"), ("503", "unavailable")];
                if op.security.is_some() {
                    codes.extend([("401", "no or bad token"), ("403", "not allowed")]);
                }
                if write {
                    codes.push(("409", "conflicts with the resource's state"));
                }
                if op.request_body.is_some() {
                    codes.extend([("413", "body too large"), ("415", "not application/json")]);
                }
                for (code, what) in codes {
                    op.responses.responses.entry(code.to_string()).or_insert_with(|| error(what).into());
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "allot", description = "allot's control-plane API: jobs, nodes, tenants, quotas, budgets, usage, tokens."),
    paths(
        healthz, readyz, metrics, submit, submit_batch, list_jobs, get_job, cancel_job, hold_job, release_job, finish_job, explain_job,
        events, list_nodes, get_node, drain_node, cordon_node, undrain_node, list_tenants, get_tenant, create_tenant, update_tenant,
        delete_tenant, list_quotas, set_quota, list_budgets, grant_budget,
        usage, create_token, list_tokens, revoke_token
    ),
    components(schemas(ErrorBody, JobSubmit, JobBatchSubmit, TopologySpec, JobState, JobView, JobEvent, Role)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;
