//! The API end to end: an in-process server on loopback with a fresh SQLite dir.

mod common;

use allot_api::*;
use allot_server::config::Limits;
use common::*;
use http_body_util::BodyExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_get_list_and_run() {
    let s = TestServer::start().await;
    let mut c = s.admin();
    let id = submit(&mut c, &job("org-a/proj", 8)).await;
    let v = get_job(&mut c, id).await;
    assert_eq!((v.tenant.as_str(), v.project.as_str(), v.user.as_str()), ("org-a/proj", "proj", "admin"));
    let v = wait_state(&mut c, id, JobState::Running).await;
    let p = v.placement.expect("a running job has a placement");
    assert_eq!(p.flavor, "H100");
    assert_eq!(p.slots.len(), 1);
    assert!(v.started_at_ms.is_some());
    let list: JobList = c.get("/v1/jobs?state=running").await.unwrap().ok().unwrap();
    assert_eq!(list.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    let node: NodeView = c.get(&format!("/v1/nodes/{}", p.slots[0].node)).await.unwrap().ok().unwrap();
    assert_eq!(node.running_jobs, vec![id]);
    assert_eq!(node.gpus_free, 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_is_all_or_nothing_and_names_the_bad_job() {
    let s = TestServer::start().await;
    let mut c = s.admin();
    let jobs: Vec<JobSubmit> = (0..500).map(|_| JobSubmit { gpu_milli: Some(100), ..job("org-b/proj", 0) }).collect();
    let bad = JobBatchSubmit { jobs: jobs.iter().cloned().map(|j| JobSubmit { gpus: None, ..j }).collect() };
    let r: BatchSubmitResponse = c.post("/v1/jobs/batch", &bad).await.unwrap().ok().unwrap();
    assert_eq!(r.ids.len(), 500);
    assert!(r.ids.windows(2).all(|w| w[1] == w[0] + 1), "ids follow the request order");
    let mut jobs2 = bad.jobs.clone();
    jobs2[3].gpus = Some(1000);
    jobs2[3].gpu_milli = None;
    let r = c.post("/v1/jobs/batch", &JobBatchSubmit { jobs: jobs2 }).await.unwrap();
    assert_eq!(r.status, 400);
    let e: ErrorBody = r.json().unwrap();
    assert_eq!(e.field.as_deref(), Some("jobs[3].gpus"), "{e:?}");
    let list: JobList = c.get("/v1/jobs?limit=1000").await.unwrap().ok().unwrap();
    assert_eq!(list.jobs.len(), 500, "the refused batch stored nothing");
    let empty = c.post("/v1/jobs/batch", &JobBatchSubmit { jobs: vec![] }).await.unwrap();
    assert_eq!(empty.status, 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_paginates_with_a_cursor_and_filters() {
    let s = TestServer::start().await;
    let mut c = s.admin();
    let jobs: Vec<JobSubmit> = (0..25)
        .map(|i| JobSubmit {
            user: Some(if i % 2 == 0 { "ann" } else { "bob" }.into()),
            ..job(if i % 5 == 0 { "org-b/proj" } else { "org-a/proj" }, 64 / 8)
        })
        .collect();
    let ids = c.post("/v1/jobs/batch", &JobBatchSubmit { jobs }).await.unwrap().ok::<BatchSubmitResponse>().unwrap().ids;
    let mut seen = vec![];
    let mut path = "/v1/jobs?tenant=org-a&limit=4".to_string();
    loop {
        let page: JobList = c.get(&path).await.unwrap().ok().unwrap();
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next_cursor {
            Some(cur) => path = format!("/v1/jobs?tenant=org-a&limit=4&cursor={cur}"),
            None => break,
        }
    }
    let want: Vec<u64> = ids.iter().enumerate().filter(|(i, _)| i % 5 != 0).map(|(_, id)| *id).collect();
    assert_eq!(seen, want);
    let bobs: JobList = c.get("/v1/jobs?user=bob&project=proj&limit=100").await.unwrap().ok().unwrap();
    assert_eq!(bobs.jobs.len(), 12);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_one_tenant_cannot_touch_another_tenants_jobs() {
    let s = TestServer::start().await;
    let a = s.token(Role::User, Some("org-a"), "alice").await;
    let b = s.token(Role::User, Some("org-b"), "bert").await;
    let (mut ca, mut cb) = (s.client(&a), s.client(&b));
    // three 8-GPU replicas never fit two 8-GPU nodes: it stays pending
    let ja = submit(&mut ca, &JobSubmit { replicas: 3, ..job("org-a/proj", 8) }).await;
    assert_eq!(get_job(&mut ca, ja).await.user, "alice");
    // read
    assert_eq!(cb.get(&format!("/v1/jobs/{ja}")).await.unwrap().status, 404);
    assert_eq!(cb.get(&format!("/v1/jobs/{ja}/explain")).await.unwrap().status, 404);
    // act
    for action in ["cancel", "hold", "release"] {
        assert_eq!(cb.post_empty(&format!("/v1/jobs/{ja}/{action}")).await.unwrap().status, 404, "{action}");
    }
    assert_eq!(get_job(&mut ca, ja).await.state, JobState::Pending, "B's cancel did nothing");
    // list: B sees none of A's jobs, even when asking for A's tenant
    let l: JobList = cb.get("/v1/jobs").await.unwrap().ok().unwrap();
    assert!(l.jobs.is_empty());
    let l: JobList = cb.get("/v1/jobs?tenant=org-a").await.unwrap().ok().unwrap();
    assert!(l.jobs.is_empty());
    let l: JobList = ca.get("/v1/jobs").await.unwrap().ok().unwrap();
    assert_eq!(l.jobs.len(), 1);
    // submit into another tenant, or as another user
    let r = cb.post("/v1/jobs", &job("org-a/proj", 1)).await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.json::<ErrorBody>().unwrap().field.as_deref(), Some("tenant"));
    let r = cb.post("/v1/jobs", &JobSubmit { user: Some("alice".into()), ..job("org-b/proj", 1) }).await.unwrap();
    assert_eq!(r.status, 403);
    // admin-only and manager-only actions
    assert_eq!(cb.post_empty("/v1/nodes/n0/drain").await.unwrap().status, 403);
    assert_eq!(cb.post_empty(&format!("/v1/jobs/{ja}/finish")).await.unwrap().status, 404);
    let t = TokenCreate { name: "x".into(), role: Role::User, tenant: Some("org-b".into()), user: None };
    assert_eq!(cb.post("/v1/tokens", &t).await.unwrap().status, 403);
    let q = QuotaSet { tenant: "org-b/proj".into(), flavor: "H100".into(), nominal: 8.0, borrowing_limit: None, lending_limit: None };
    assert_eq!(cb.put("/v1/quotas", &q).await.unwrap().status, 403);
    // tenants, quotas and tokens are filtered too
    let tl: TenantList = cb.get("/v1/tenants").await.unwrap().ok().unwrap();
    assert!(tl.tenants.iter().all(|t| t.path.starts_with("org-b")), "{tl:?}");
    let tokens: TokenList = cb.get("/v1/tokens").await.unwrap().ok().unwrap();
    assert_eq!(tokens.tokens.len(), 1);
    assert_eq!(tokens.tokens[0].name, "bert");
    // A's own actions work
    let v: JobView = ca.post_empty(&format!("/v1/jobs/{ja}/cancel")).await.unwrap().ok().unwrap();
    assert_eq!(v.state, JobState::Cancelled);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_admins_act_inside_their_subtree_only() {
    let s = TestServer::start().await;
    let ta = s.token(Role::TenantAdmin, Some("org-a"), "a-admin").await;
    let mut c = s.client(&ta);
    let mut admin = s.admin();
    let jb = submit(&mut admin, &job("org-b/proj", 1)).await;
    let ja = submit(&mut admin, &job("org-a/other", 1)).await;
    assert_eq!(c.get(&format!("/v1/jobs/{jb}")).await.unwrap().status, 404);
    assert_eq!(c.get(&format!("/v1/jobs/{ja}")).await.unwrap().status, 200);
    let q = |t: &str| QuotaSet { tenant: t.into(), flavor: "H100".into(), nominal: 4.0, borrowing_limit: Some(2.0), lending_limit: None };
    assert_eq!(c.put("/v1/quotas", &q("org-a/proj")).await.unwrap().status, 200);
    assert_eq!(c.put("/v1/quotas", &q("org-a")).await.unwrap().status, 403, "not its own quota");
    assert_eq!(c.put("/v1/quotas", &q("org-b/proj")).await.unwrap().status, 403);
    // user tokens of its tenant, tenant-admin tokens strictly below it
    let mk = |role, tenant: &str| TokenCreate { name: "t".into(), role, tenant: Some(tenant.into()), user: None };
    assert_eq!(c.post("/v1/tokens", &mk(Role::User, "org-a")).await.unwrap().status, 201);
    assert_eq!(c.post("/v1/tokens", &mk(Role::TenantAdmin, "org-a/proj")).await.unwrap().status, 201);
    assert_eq!(c.post("/v1/tokens", &mk(Role::TenantAdmin, "org-a")).await.unwrap().status, 403);
    assert_eq!(c.post("/v1/tokens", &mk(Role::User, "org-b")).await.unwrap().status, 403);
    let admin_tok = TokenCreate { name: "root".into(), role: Role::Admin, tenant: None, user: None };
    assert_eq!(c.post("/v1/tokens", &admin_tok).await.unwrap().status, 403);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_json_error() {
    let s = TestServer::start_with(Limits { max_body_bytes: 4096, ..Limits::default() }).await;
    let mut c = s.admin();
    let err = |r: allot_server::client::Resp| -> (u16, ErrorBody) {
        let body: ErrorBody = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not a JSON error ({e}): {}", r.text()));
        (r.status, body)
    };
    let (st, e) =
        err(c.raw("POST", "/v1/jobs", Some((br#"{"tenant":"org-a","gpus":1,"gpuz":2}"#.to_vec(), "application/json"))).await.unwrap());
    assert_eq!((st, e.code.as_str()), (400, "invalid"));
    assert!(e.message.contains("unknown field `gpuz`"), "{e:?}");
    let (st, e) =
        err(c.raw("POST", "/v1/jobs", Some((br#"{"tenant":"org-a","gpus":"eight"}"#.to_vec(), "application/json"))).await.unwrap());
    assert_eq!((st, e.field.as_deref()), (400, Some("gpus")));
    let (st, e) = err(c.raw("POST", "/v1/jobs", Some((b"{".to_vec(), "application/json"))).await.unwrap());
    assert_eq!((st, e.code.as_str()), (400, "invalid"));
    let (st, _) = err(c.raw("POST", "/v1/jobs", Some((br#"{"tenant":"org-a","gpus":1}"#.to_vec(), "text/plain"))).await.unwrap());
    assert_eq!(st, 415);
    let big = format!(r#"{{"tenant":"org-a","gpus":1,"name":"{}"}}"#, "x".repeat(8000));
    let (st, e) = err(c.raw("POST", "/v1/jobs", Some((big.into_bytes(), "application/json"))).await.unwrap());
    assert_eq!((st, e.code.as_str()), (413, "too_large"));
    // the core's own checks, before acknowledging
    let (st, e) = err(c.post("/v1/jobs", &job("nowhere", 1)).await.unwrap());
    assert_eq!((st, e.field.as_deref()), (400, Some("tenant")));
    let (st, e) = err(c.post("/v1/jobs", &JobSubmit { flavors: vec!["TPU".into()], ..job("org-a", 1) }).await.unwrap());
    assert_eq!((st, e.field.as_deref()), (400, Some("flavors")));
    let (st, e) = err(c.post("/v1/jobs", &JobSubmit { class: Some("urgent".into()), ..job("org-a", 1) }).await.unwrap());
    assert_eq!((st, e.field.as_deref()), (400, Some("class")));
    let (st, e) = err(c.post("/v1/jobs", &JobSubmit { gpus: None, ..job("org-a", 1) }).await.unwrap());
    assert_eq!((st, e.field.as_deref()), (400, Some("gpus")));
    // unknown ids and routes are 404
    for path in [
        "/v1/jobs/999999",
        "/v1/jobs/abc",
        "/v1/jobs/-1/explain",
        "/v1/nodes/nope",
        "/v1/jobs/%FF",
        "/v1/nodes/%FF%FE",
        "/v1/nothing",
        "/nothing",
    ] {
        let (st, e) = err(c.get(path).await.unwrap());
        assert_eq!((st, e.code.as_str()), (404, "not_found"), "{path}");
    }
    assert_eq!(err(c.post_empty("/v1/jobs/424242/cancel").await.unwrap()).0, 404);
    assert_eq!(err(c.delete("/v1/tokens/9999").await.unwrap()).0, 404);
    assert_eq!(err(c.delete("/v1/jobs").await.unwrap()).0, 405);
    // query parameters
    for path in [
        "/v1/jobs?state=sleeping",
        "/v1/jobs?limit=0",
        "/v1/jobs?limit=x",
        "/v1/jobs?cursor=x",
        "/v1/jobs?color=red",
        "/v1/usage?by=planet",
        "/v1/usage?from=yesterday",
    ] {
        assert_eq!(err(c.get(path).await.unwrap()).0, 400, "{path}");
    }
    // authentication
    assert_eq!(err(s.anon().get("/v1/jobs").await.unwrap()), (401, err(s.anon().get("/v1/jobs").await.unwrap()).1));
    assert_eq!(err(s.client("allot_nope").get("/v1/jobs").await.unwrap()).0, 401);
    let mut raw = s.anon();
    let r = raw.raw("GET", "/v1/jobs", None).await.unwrap();
    assert_eq!(r.status, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_stop_working_at_once() {
    let s = TestServer::start().await;
    let mut admin = s.admin();
    let r: TokenCreated = admin
        .post("/v1/tokens", &TokenCreate { name: "ci".into(), role: Role::User, tenant: Some("org-a".into()), user: Some("ci-bot".into()) })
        .await
        .unwrap()
        .ok()
        .unwrap();
    let mut c = s.client(&r.token);
    assert_eq!(c.get("/v1/jobs").await.unwrap().status, 200);
    let listed: TokenList = admin.get("/v1/tokens").await.unwrap().ok().unwrap();
    assert_eq!(listed.tokens.len(), 2);
    assert!(!String::from_utf8_lossy(&admin.get("/v1/tokens").await.unwrap().body).contains(&r.token), "secrets are never listed");
    let v: TokenView = admin.delete(&format!("/v1/tokens/{}", r.info.id)).await.unwrap().ok().unwrap();
    assert!(v.revoked);
    assert_eq!(c.get("/v1/jobs").await.unwrap().status, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_release_cancel_and_explain() {
    let s = TestServer::start().await;
    let mut c = s.admin();
    // fill the cluster, then a job that must wait
    let big = submit(&mut c, &JobSubmit { replicas: 2, ..job("org-a/proj", 8) }).await;
    wait_state(&mut c, big, JobState::Running).await;
    let id = submit(&mut c, &job("org-b/proj", 8)).await;
    let held: JobView = c.post_empty(&format!("/v1/jobs/{id}/hold")).await.unwrap().ok().unwrap();
    assert_eq!(held.state, JobState::Held);
    let ex: ExplainView = c.get(&format!("/v1/jobs/{id}/explain")).await.unwrap().ok().unwrap();
    assert_eq!(ex.reason, "held");
    let rel: JobView = c.post_empty(&format!("/v1/jobs/{id}/release")).await.unwrap().ok().unwrap();
    assert_eq!(rel.state, JobState::Pending);
    let mut reason = String::new();
    for _ in 0..200 {
        let ex: ExplainView = c.get(&format!("/v1/jobs/{id}/explain")).await.unwrap().ok().unwrap();
        reason = ex.reason;
        if reason != "new" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(["no_capacity", "reserved", "quota", "behind_reservation"].contains(&reason.as_str()), "{reason}");
    let v: JobView = c.post_empty(&format!("/v1/jobs/{id}/cancel")).await.unwrap().ok().unwrap();
    assert_eq!(v.state, JobState::Cancelled);
    assert!(v.ended_at_ms.is_some());
    let again = c.post_empty(&format!("/v1/jobs/{id}/cancel")).await.unwrap();
    assert_eq!(again.status, 409);
    let ex: ExplainView = c.get(&format!("/v1/jobs/{id}/explain")).await.unwrap().ok().unwrap();
    assert_eq!(ex.state, JobState::Cancelled);
    // a running job told to stop ends as cancelled and is accounted
    c.post_empty(&format!("/v1/jobs/{big}/cancel")).await.unwrap();
    wait_state(&mut c, big, JobState::Cancelled).await;
    let u: UsageReport = c.get("/v1/usage?by=tenant").await.unwrap().ok().unwrap();
    assert_eq!(u.rows.len(), 1);
    assert_eq!(u.rows[0].key, "org-a/proj");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_runs_are_accounted_by_every_dimension() {
    accounted(TestServer::start().await).await;
}

async fn accounted(s: TestServer) {
    let mut c = s.admin();
    let a = submit(&mut c, &JobSubmit { user: Some("ann".into()), ..job("org-a/proj", 4) }).await;
    let b = submit(&mut c, &JobSubmit { user: Some("bob".into()), project: Some("llm".into()), ..job("org-b/proj", 2) }).await;
    wait_state(&mut c, a, JobState::Running).await;
    wait_state(&mut c, b, JobState::Running).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for id in [a, b] {
        let v: JobView = c.post_empty(&format!("/v1/jobs/{id}/finish")).await.unwrap().ok().unwrap();
        assert_eq!(v.state, JobState::Completed);
    }
    for (by, keys) in [
        ("tenant", vec!["org-a/proj", "org-b/proj"]),
        ("project", vec!["llm", "proj"]),
        ("user", vec!["ann", "bob"]),
        ("flavor", vec!["H100"]),
    ] {
        let u: UsageReport = c.get(&format!("/v1/usage?by={by}")).await.unwrap().ok().unwrap();
        assert_eq!(u.rows.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), keys, "{by}");
        assert!(u.rows.iter().all(|r| r.gpu_hours > 0.0));
    }
    let csv = c.get("/v1/usage?by=user&format=csv&from=2020-01-01").await.unwrap();
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.starts_with("text/csv"));
    let text = csv.text();
    assert!(text.starts_with("user,gpu_hours,runs\nann,"), "{text}");
    let none: UsageReport = c.get("/v1/usage?from=2020-01-01&to=2020-02-01").await.unwrap().ok().unwrap();
    assert!(none.rows.is_empty());
    // a user sees only its tenant's usage
    let tb = s.token(Role::User, Some("org-b"), "bert").await;
    let u: UsageReport = s.client(&tb).get("/v1/usage").await.unwrap().ok().unwrap();
    assert_eq!(u.rows.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), vec!["org-b/proj"]);
    assert_eq!(c.post_empty(&format!("/v1/jobs/{a}/finish")).await.unwrap().status, 409);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_from_the_store() {
    restart_rebuilds(TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebuilds_from_the_store_on_postgres() {
    if let Some(s) = TestServer::start_pg().await {
        restart_rebuilds(s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_accounted_on_postgres() {
    if let Some(s) = TestServer::start_pg().await {
        accounted(s).await;
    }
}

async fn restart_rebuilds(mut s: TestServer) {
    let mut c = s.admin();
    let running = submit(&mut c, &job("org-a/proj", 8)).await;
    wait_state(&mut c, running, JobState::Running).await;
    let started = get_job(&mut c, running).await.started_at_ms;
    let held = submit(&mut c, &JobSubmit { replicas: 3, ..job("org-b/proj", 8) }).await;
    assert_eq!(c.post_empty(&format!("/v1/jobs/{held}/hold")).await.unwrap().status, 200);
    let waiting = submit(&mut c, &JobSubmit { replicas: 2, ..job("org-b/proj", 8) }).await;
    let q = QuotaSet { tenant: "org-b/proj".into(), flavor: "H100".into(), nominal: 2.0, borrowing_limit: Some(0.0), lending_limit: None };
    assert_eq!(c.put("/v1/quotas", &q).await.unwrap().status, 200);
    c.post_empty("/v1/nodes/n1/drain").await.unwrap();
    assert_eq!(s.restart().await, None, "the admin token is created once");
    let mut c = s.admin();
    let v = wait_state(&mut c, running, JobState::Running).await;
    assert_eq!(v.started_at_ms, started, "a rebuilt running job keeps its start");
    assert_eq!(get_job(&mut c, held).await.state, JobState::Held);
    assert_eq!(get_job(&mut c, waiting).await.state, JobState::Pending);
    let next = submit(&mut c, &job("org-a/proj", 1)).await;
    assert!(next > waiting, "ids are never reused");
    let quotas: QuotaList = c.get("/v1/quotas").await.unwrap().ok().unwrap();
    let qv = quotas.quotas.iter().find(|x| x.tenant == "org-b/proj").unwrap();
    assert_eq!((qv.nominal, qv.borrowing_limit), (2.0, Some(0.0)));
    let n1: NodeView = c.get("/v1/nodes/n1").await.unwrap().ok().unwrap();
    assert!(n1.drained);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_drain_and_undrain() {
    let s = TestServer::start().await;
    let mut c = s.admin();
    let nodes: NodeList = c.get("/v1/nodes").await.unwrap().ok().unwrap();
    assert_eq!(nodes.nodes.len(), 2);
    assert_eq!(nodes.nodes[0].at, "site/block/leaf");
    let n: NodeView = c.post_empty("/v1/nodes/n0/drain").await.unwrap().ok().unwrap();
    assert!(n.drained);
    let n: NodeView = c.post_empty("/v1/nodes/n0/undrain").await.unwrap().ok().unwrap();
    assert!(!n.drained);
    assert_eq!(c.post_empty("/v1/nodes/zz/drain").await.unwrap().status, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_and_budgets_are_managed_by_admins() {
    let s = TestServer::start().await;
    let mut c = s.admin();
    let q = QuotaSet { tenant: "org-a/proj".into(), flavor: "H100".into(), nominal: 4.0, borrowing_limit: None, lending_limit: Some(1.0) };
    let v: QuotaView = c.put("/v1/quotas", &q).await.unwrap().ok().unwrap();
    assert_eq!((v.nominal, v.lending_limit), (4.0, Some(1.0)));
    let bad = QuotaSet { nominal: -1.0, ..q.clone() };
    assert_eq!(c.put("/v1/quotas", &bad).await.unwrap().status, 400);
    let bad = QuotaSet { flavor: "TPU".into(), ..q.clone() };
    assert_eq!(c.put("/v1/quotas", &bad).await.unwrap().status, 400);
    let g = BudgetGrant { tenant: "org-a/proj".into(), gpu_hours: 100.0, start_ms: 0, expiry_ms: 4_102_444_800_000 };
    let r = c.post("/v1/budgets", &g).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let list: BudgetList = c.get("/v1/budgets").await.unwrap().ok().unwrap();
    assert_eq!(list.budgets.len(), 1);
    let tenants: TenantList = c.get("/v1/tenants").await.unwrap().ok().unwrap();
    let t = tenants.tenants.iter().find(|t| t.path == "org-a/proj").unwrap();
    assert_eq!(t.parent.as_deref(), Some("org-a"));
    assert!(t.budget_remaining_gpu_hours.is_some());
    for bad in [
        BudgetGrant { expiry_ms: -5, ..g.clone() },
        BudgetGrant { start_ms: i64::MIN, ..g.clone() },
        BudgetGrant { expiry_ms: i64::MAX, ..g.clone() },
        BudgetGrant { gpu_hours: -1.0, ..g.clone() },
        BudgetGrant { tenant: "nope".into(), ..g.clone() },
    ] {
        assert_eq!(c.post("/v1/budgets", &bad).await.unwrap().status, 400, "{bad:?}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_sends_visible_job_changes() {
    let s = TestServer::start().await;
    let a = s.token(Role::User, Some("org-a"), "alice").await;
    let ca = s.client(&a);
    let (status, mut body) = ca.stream("/v1/events").await.unwrap();
    assert_eq!(status, 200);
    let mut admin = s.admin();
    submit(&mut admin, &job("org-b/proj", 1)).await;
    let id = submit(&mut admin, &job("org-a/proj", 1)).await;
    let mut text = String::new();
    for _ in 0..100 {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame()).await.expect("an event").unwrap().unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
        if text.contains("\"running\"") {
            break;
        }
    }
    assert!(text.contains("event: job"), "{text}");
    assert!(text.contains(&format!("\"id\":{id}")), "{text}");
    assert!(!text.contains("org-b"), "another tenant's events are not sent: {text}");
    drop(body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_openapi() {
    let s = TestServer::start().await;
    let mut anon = s.anon();
    assert_eq!(anon.get("/healthz").await.unwrap().status, 200);
    assert_eq!(anon.get("/readyz").await.unwrap().status, 200);
    let mut c = s.admin();
    let id = submit(&mut c, &job("org-a/proj", 1)).await;
    wait_state(&mut c, id, JobState::Running).await;
    let m = anon.get("/metrics").await.unwrap();
    assert_eq!(m.status, 200);
    let text = m.text();
    for want in [
        "allot_jobs{tenant=\"org-a/proj\",state=\"running\"} 1",
        "allot_gpus_allocated{tenant=\"org-a/proj\",flavor=\"H100\"} 1",
        "allot_scheduling_pass_seconds_bucket{le=\"+Inf\"}",
        "allot_jobs_submitted_total 1",
        "allot_gpus_borrowed",
        "allot_agents",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
    let doc: serde_json::Value = anon.get("/v1/openapi.json").await.unwrap().json().unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in ["/v1/jobs", "/v1/jobs/batch", "/v1/jobs/{id}/explain", "/v1/usage", "/v1/tokens", "/v1/events"] {
        assert!(doc["paths"].get(p).is_some(), "no {p} in the OpenAPI document");
    }
    assert!(doc["components"]["schemas"].get("JobSubmit").is_some());
    s.stop().await;
}
