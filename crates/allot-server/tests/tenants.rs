//! Tenants created, changed and deleted through the API: who may, what is refused,
//! that a change is in effect from the next pass, and that it survives a restart.

mod common;

use std::time::Duration;

use allot_api::*;
use allot_server::client::{Client, Resp};
use common::*;

fn quota(flavor: &str, nominal: f64, borrowing_limit: Option<f64>) -> TenantQuota {
    TenantQuota { flavor: flavor.into(), nominal, borrowing_limit, lending_limit: None }
}

fn create(parent: Option<&str>, name: &str) -> TenantCreate {
    TenantCreate { parent: parent.map(String::from), name: name.into(), ..Default::default() }
}

#[track_caller]
fn error(r: &Resp, status: u16) -> ErrorBody {
    assert_eq!(r.status, status, "{}", r.text());
    r.json::<ErrorBody>().unwrap_or_else(|e| panic!("not a JSON error ({e}): {}", r.text()))
}

async fn get_tenant(c: &mut Client, path: &str) -> Option<TenantView> {
    let r = c.get(&format!("/v1/tenants/{path}")).await.unwrap();
    match r.status {
        200 => Some(r.json().unwrap()),
        404 => None,
        s => panic!("GET tenant {path}: {s} {}", r.text()),
    }
}

fn nominal(t: &TenantView, flavor: &str) -> f64 {
    t.quotas.iter().find(|q| q.flavor == flavor).map(|q| q.nominal).unwrap_or_else(|| panic!("no {flavor} quota in {t:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_create_update_and_delete_tenants() {
    let s = TestServer::start().await;
    let mut c = s.admin();
    let req = TenantCreate { weight: Some(2.0), quotas: vec![quota("H100", 2.0, Some(1.0))], ..create(Some("org-a"), "new") };
    let r = c.post("/v1/tenants", &req).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let v: TenantView = r.json().unwrap();
    assert_eq!((v.path.as_str(), v.parent.as_deref(), v.weight), ("org-a/new", Some("org-a"), 2.0));
    let q = v.quotas.iter().find(|q| q.flavor == "H100").unwrap();
    assert_eq!((q.nominal, q.borrowing_limit, q.used), (2.0, Some(1.0), 0.0));
    // Addressed with its `/` as is or encoded, and listed.
    assert_eq!(get_tenant(&mut c, "org-a/new").await.as_ref(), Some(&v));
    assert_eq!(get_tenant(&mut c, "org-a%2Fnew").await.as_ref(), Some(&v));
    let list: TenantList = c.get("/v1/tenants").await.unwrap().ok().unwrap();
    assert!(list.tenants.contains(&v));
    // A top-level tenant.
    let top: TenantView = c.post("/v1/tenants", &create(None, "lab")).await.unwrap().ok().unwrap();
    assert_eq!((top.path.as_str(), top.parent, top.weight), ("lab", None, 1.0));

    // Refused: nothing is created.
    let e = error(&c.post("/v1/tenants", &req).await.unwrap(), 409);
    assert_eq!(e.code, "conflict");
    assert!(e.message.contains("already exists"), "{e:?}");
    for (name, body, field) in [
        ("unknown parent", create(Some("nope"), "x"), "parent"),
        ("slash in the name", create(Some("org-a"), "x/y"), "name"),
        ("empty name", create(Some("org-a"), ""), "name"),
        ("dots", create(Some("org-a"), ".."), "name"),
        ("space", create(Some("org-a"), "x y"), "name"),
        ("long name", create(Some("org-a"), &"x".repeat(65)), "name"),
        ("reserved at the top", create(None, "use"), "name"),
        ("zero weight", TenantCreate { weight: Some(0.0), ..create(Some("org-a"), "x") }, "weight"),
        ("huge weight", TenantCreate { weight: Some(1e300), ..create(Some("org-a"), "x") }, "weight"),
        ("negative nominal", TenantCreate { quotas: vec![quota("H100", -1.0, None)], ..create(Some("org-a"), "x") }, "quotas[0].nominal"),
        (
            "overcommits the parent",
            TenantCreate { quotas: vec![quota("H100", 7.0, None)], ..create(Some("org-a"), "x") },
            "quotas[0].nominal",
        ),
        ("unknown flavor", TenantCreate { quotas: vec![quota("TPU", 1.0, None)], ..create(Some("org-a"), "x") }, "quotas[0].flavor"),
        (
            "a flavor twice",
            TenantCreate { quotas: vec![quota("H100", 1.0, None), quota("H100", 1.0, None)], ..create(Some("org-a"), "x") },
            "quotas[1].flavor",
        ),
        (
            "lending above nominal",
            TenantCreate {
                quotas: vec![TenantQuota { lending_limit: Some(2.0), ..quota("H100", 1.0, None) }],
                ..create(Some("org-a"), "x")
            },
            "quotas[0].lending_limit",
        ),
    ] {
        let e = error(&c.post("/v1/tenants", &body).await.unwrap(), 400);
        assert_eq!(e.field.as_deref(), Some(field), "{name}: {e:?}");
    }
    let r = c.raw("POST", "/v1/tenants", Some((br#"{"name":"x","colour":"red"}"#.to_vec(), "application/json"))).await.unwrap();
    assert!(error(&r, 400).message.contains("unknown field `colour`"));
    assert_eq!(get_tenant(&mut c, "org-a/x").await, None, "refused creations store nothing");

    // Update.
    let upd = TenantUpdate { weight: Some(3.0), quotas: vec![quota("H100", 4.0, None)] };
    let v: TenantView = c.patch("/v1/tenants/org-a/new", &upd).await.unwrap().ok().unwrap();
    assert_eq!((v.weight, nominal(&v, "H100")), (3.0, 4.0));
    assert_eq!(v.quotas[0].borrowing_limit, None);
    let e = error(
        &c.patch("/v1/tenants/org-a/new", &TenantUpdate { quotas: vec![quota("H100", 9.0, None)], ..Default::default() }).await.unwrap(),
        400,
    );
    assert_eq!(e.field.as_deref(), Some("quotas[0].nominal"));
    let e = error(&c.patch("/v1/tenants/org-a/new", &TenantUpdate { weight: Some(0.0), ..Default::default() }).await.unwrap(), 400);
    assert_eq!(e.field.as_deref(), Some("weight"));
    assert_eq!(get_tenant(&mut c, "org-a/new").await.unwrap(), v, "refused updates change nothing");
    error(&c.patch("/v1/tenants/org-a/none", &upd).await.unwrap(), 404);
    // A config tenant's weight.
    let v: TenantView =
        c.patch("/v1/tenants/org-b", &TenantUpdate { weight: Some(5.0), ..Default::default() }).await.unwrap().ok().unwrap();
    assert_eq!(v.weight, 5.0);

    // Jobs and tokens may use the new tenant at once.
    let id = submit(&mut c, &job("org-a/new", 1)).await;
    let tok = s.token(Role::User, Some("org-a/new"), "newbie").await;
    let mut newbie = s.client(&tok);
    assert_eq!(newbie.get("/v1/jobs").await.unwrap().status, 200);

    // Delete: only once it has no children and no live jobs.
    let e = error(&c.delete("/v1/tenants/org-a/new").await.unwrap(), 409);
    assert!(e.message.contains("live job"), "{e:?}");
    let e = error(&c.delete("/v1/tenants/org-a").await.unwrap(), 409);
    assert!(e.message.contains("child"), "{e:?}");
    error(&c.delete("/v1/tenants/org-a/none").await.unwrap(), 404);
    assert_eq!(c.post_empty(&format!("/v1/jobs/{id}/cancel")).await.unwrap().status, 200);
    // A job that had started is stopping (live) until the next pass ends it (no
    // agent runs it here); deleting in between is refused, as above.
    wait_state(&mut c, id, JobState::Cancelled).await;
    let r = c.delete("/v1/tenants/org-a/new").await.unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(get_tenant(&mut c, "org-a/new").await, None);
    let e = error(&c.post("/v1/jobs", &job("org-a/new", 1)).await.unwrap(), 400);
    assert_eq!(e.field.as_deref(), Some("tenant"));
    assert_eq!(newbie.get("/v1/jobs").await.unwrap().status, 401, "the tenant's tokens are revoked with it");
    // Its nominal went back to the parent.
    let r = c.post("/v1/tenants", &TenantCreate { quotas: vec![quota("H100", 8.0, None)], ..create(Some("org-a"), "big") }).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    // Its history stays: the cancelled job is still there.
    assert_eq!(get_job(&mut c, id).await.state, JobState::Cancelled);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_admins_manage_their_subtree_and_users_nothing() {
    let s = TestServer::start().await;
    let ta = s.token(Role::TenantAdmin, Some("org-a"), "a-admin").await;
    let mut c = s.client(&ta);
    // Inside its subtree, at any depth.
    let r = c.post("/v1/tenants", &TenantCreate { quotas: vec![quota("H100", 2.0, None)], ..create(Some("org-a"), "team") }).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(c.post("/v1/tenants", &create(Some("org-a/team"), "sub")).await.unwrap().status, 201);
    assert_eq!(c.post("/v1/tenants", &create(Some("/org-a/proj/"), "sub")).await.unwrap().status, 201);
    let v: TenantView =
        c.patch("/v1/tenants/org-a/team", &TenantUpdate { weight: Some(4.0), ..Default::default() }).await.unwrap().ok().unwrap();
    assert_eq!(v.weight, 4.0);
    assert_eq!(c.delete("/v1/tenants/org-a/team/sub").await.unwrap().status, 204);
    // Outside it: another tenant's subtree, the top level, and its own tenant.
    let e = error(&c.post("/v1/tenants", &create(Some("org-b"), "x")).await.unwrap(), 403);
    assert_eq!(e.field.as_deref(), Some("parent"));
    error(&c.post("/v1/tenants", &create(Some("org-b/proj"), "x")).await.unwrap(), 403);
    error(&c.post("/v1/tenants", &create(None, "x")).await.unwrap(), 403);
    error(&c.post("/v1/tenants", &create(Some("org-ab"), "x")).await.unwrap(), 403);
    let w = TenantUpdate { weight: Some(9.0), ..Default::default() };
    for path in ["org-b", "org-b/proj", "org-a"] {
        error(&c.patch(&format!("/v1/tenants/{path}"), &w).await.unwrap(), 403);
        error(&c.delete(&format!("/v1/tenants/{path}")).await.unwrap(), 403);
    }
    assert_eq!(get_tenant(&mut c, "org-b").await, None, "another subtree is not visible");
    // Users manage nothing, not even inside their tenant.
    let u = s.token(Role::User, Some("org-a"), "alice").await;
    let mut cu = s.client(&u);
    error(&cu.post("/v1/tenants", &create(Some("org-a"), "y")).await.unwrap(), 403);
    error(&cu.patch("/v1/tenants/org-a/team", &w).await.unwrap(), 403);
    error(&cu.delete("/v1/tenants/org-a/team").await.unwrap(), 403);
    assert!(get_tenant(&mut cu, "org-a/team").await.is_some(), "users see their subtree");
    // Nothing changed outside the tenant admin's subtree.
    let mut admin = s.admin();
    let list: TenantList = admin.get("/v1/tenants").await.unwrap().ok().unwrap();
    let paths: Vec<&str> = list.tenants.iter().map(|t| t.path.as_str()).collect();
    assert_eq!(paths, vec!["org-a", "org-a/proj", "org-a/other", "org-b", "org-b/proj", "org-a/team", "org-a/proj/sub"]);
    assert!(list.tenants.iter().filter(|t| t.path.starts_with("org-b")).all(|t| t.weight == 1.0));
    assert!(list.tenants.iter().find(|t| t.path == "org-a").is_some_and(|t| t.weight == 1.0));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_deleted_and_created_again_is_listed_once() {
    let s = TestServer::start().await;
    let mut c = s.admin();
    for _ in 0..2 {
        assert_eq!(c.post("/v1/tenants", &create(Some("org-b"), "again")).await.unwrap().status, 201);
        assert_eq!(c.delete("/v1/tenants/org-b/again").await.unwrap().status, 204);
    }
    assert_eq!(c.post("/v1/tenants", &create(Some("org-b"), "again")).await.unwrap().status, 201);
    let list: TenantList = c.get("/v1/tenants").await.unwrap().ok().unwrap();
    assert_eq!(list.tenants.iter().filter(|t| t.path == "org-b/again").count(), 1);
    let metrics = s.anon().get("/metrics").await.unwrap().text();
    for series in ["allot_gpus_allocated{tenant=\"org-b/again\",flavor=\"H100\"}", "allot_jobs{tenant=\"org-b/again\",state=\"pending\"}"] {
        assert_eq!(metrics.lines().filter(|l| l.starts_with(series)).count(), 1, "{series} in\n{metrics}");
    }
    s.stop().await;
}

/// Waits (bounded) until a pending job's explanation gives `reason`.
async fn wait_reason(c: &mut Client, id: u64, reason: &str) -> ExplainView {
    for _ in 0..3000 {
        let ex: ExplainView = c.get(&format!("/v1/jobs/{id}/explain")).await.unwrap().ok().unwrap();
        if ex.reason == reason {
            return ex;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never waited for `{reason}`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_on_quota_starts_once_the_quota_is_raised() {
    let s = TestServer::start().await;
    let mut c = s.admin();
    let r = c
        .post("/v1/tenants", &TenantCreate { quotas: vec![quota("H100", 1.0, Some(0.0))], ..create(Some("org-a"), "small") })
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let id = submit(&mut c, &job("org-a/small", 2)).await;
    let ex = wait_reason(&mut c, id, "quota").await;
    assert!(ex.message.contains("org-a/small"), "{ex:?}");
    let up = TenantUpdate { quotas: vec![quota("H100", 2.0, Some(0.0))], ..Default::default() };
    assert_eq!(c.patch("/v1/tenants/org-a/small", &up).await.unwrap().status, 200);
    wait_state(&mut c, id, JobState::Running).await;
    // A new tenant's jobs start on the next pass too.
    let r = c.post("/v1/tenants", &create(Some("org-b"), "fresh")).await.unwrap();
    assert_eq!(r.status, 201);
    let id = submit(&mut c, &job("org-b/fresh", 1)).await;
    wait_state(&mut c, id, JobState::Running).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_changes_survive_a_restart() {
    survives_restart(TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_changes_survive_a_restart_on_postgres() {
    if let Some(s) = TestServer::start_pg().await {
        survives_restart(s).await;
    }
}

/// Flavor, nominal and borrowing limit of a quota.
type QuotaLimits = (String, f64, Option<f64>);

async fn survives_restart(mut s: TestServer) {
    let mut c = s.admin();
    // A parent's nominal raised, then a new child given part of it: replayed in an
    // order where each fits.
    let up = TenantUpdate { weight: Some(5.0), quotas: vec![quota("H100", 4.0, None)] };
    assert_eq!(c.patch("/v1/tenants/org-a/proj", &up).await.unwrap().status, 200);
    let r = c
        .post("/v1/tenants", &TenantCreate { weight: Some(2.0), quotas: vec![quota("H100", 3.0, None)], ..create(Some("org-a/proj"), "x") })
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    // Lowered after the child's was set: replayed oldest first, the child's no longer
    // fits the config's nominal of its parent until the parent's is in.
    let lower = TenantUpdate { quotas: vec![quota("H100", 3.5, None)], ..Default::default() };
    assert_eq!(c.patch("/v1/tenants/org-a/proj", &lower).await.unwrap().status, 200);
    assert_eq!(c.post("/v1/tenants", &create(Some("org-b"), "gone")).await.unwrap().status, 201);
    assert_eq!(c.delete("/v1/tenants/org-b/gone").await.unwrap().status, 204);
    assert_eq!(c.delete("/v1/tenants/org-b/proj").await.unwrap().status, 204, "a config tenant");
    let tok = s.token(Role::User, Some("org-a/proj/x"), "xavier").await;
    let id = submit(&mut s.client(&tok), &job("org-a/proj/x", 1)).await;
    let before: TenantList = c.get("/v1/tenants").await.unwrap().ok().unwrap();

    assert_eq!(s.restart().await, None);
    let mut c = s.admin();
    let after: TenantList = c.get("/v1/tenants").await.unwrap().ok().unwrap();
    let strip = |l: &TenantList| -> Vec<(String, f64, Vec<QuotaLimits>)> {
        let mut v: Vec<_> = l
            .tenants
            .iter()
            .map(|t| (t.path.clone(), t.weight, t.quotas.iter().map(|q| (q.flavor.clone(), q.nominal, q.borrowing_limit)).collect()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(strip(&after), strip(&before), "the tree after the restart is the tree before");
    let x = get_tenant(&mut c, "org-a/proj/x").await.expect("created tenant restored");
    assert_eq!((x.weight, nominal(&x, "H100")), (2.0, 3.0));
    let proj = get_tenant(&mut c, "org-a/proj").await.unwrap();
    assert_eq!((proj.weight, nominal(&proj, "H100")), (5.0, 3.5));
    assert_eq!(get_tenant(&mut c, "org-b/gone").await, None);
    assert_eq!(get_tenant(&mut c, "org-b/proj").await, None, "a deleted config tenant stays deleted");
    error(&c.post("/v1/jobs", &job("org-b/proj", 1)).await.unwrap(), 400);
    // The job and the token of the created tenant came back with it.
    wait_state(&mut c, id, JobState::Running).await;
    let mut cx = s.client(&tok);
    let mine: JobList = cx.get("/v1/jobs").await.unwrap().ok().unwrap();
    assert_eq!(mine.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    submit(&mut cx, &job("org-a/proj/x", 1)).await;
    s.stop().await;
}

/// Found by schemathesis: serde takes a struct from a JSON array of its fields, so
/// `PATCH /v1/tenants/{path}` with the body `[]` was a 200 (an empty update).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_schemathesis_array_bodies_are_not_objects() {
    let s = TestServer::start().await;
    let mut c = s.admin();
    let send = |method: &'static str, path: &'static str, body: &'static str| (method, path, body);
    for (method, field) in [
        (send("PATCH", "/v1/tenants/org-a/proj", "[]"), None),
        (send("PATCH", "/v1/tenants/org-a/proj", "[2.0]"), None),
        (send("POST", "/v1/tenants", r#"["x"]"#), None),
        (send("POST", "/v1/tenants", r#"{"parent":"org-a","name":"x","quotas":[["H100",1.0]]}"#), Some("quotas[0]")),
        (send("POST", "/v1/jobs", r#"["org-a"]"#), None),
        (send("POST", "/v1/jobs", r#"{"tenant":"org-a","gpus":1,"topology":["leaf",true]}"#), Some("topology")),
        (send("POST", "/v1/jobs/batch", r#"{"jobs":[{"tenant":"org-a","gpus":1},["org-a"]]}"#), Some("jobs[1]")),
        (send("PUT", "/v1/quotas", r#"["org-a/proj","H100",1.0]"#), None),
        (send("POST", "/v1/budgets", r#"["org-a/proj",1.0,0,10]"#), None),
        (send("POST", "/v1/tokens", r#"["x","user","org-a"]"#), None),
    ] {
        let (method, path, body) = method;
        let r = c.raw(method, path, Some((body.as_bytes().to_vec(), "application/json"))).await.unwrap();
        let e = error(&r, 400);
        assert_eq!(e.field.as_deref(), field, "{method} {path} {body}: {e:?}");
        assert!(e.message.contains("expected a JSON object") || e.message.contains("expected struct"), "{e:?}");
    }
    let t = get_tenant(&mut c, "org-a/proj").await.unwrap();
    assert_eq!(t.weight, 1.0);
    let jobs: JobList = c.get("/v1/jobs").await.unwrap().ok().unwrap();
    assert!(jobs.jobs.is_empty(), "nothing was submitted");
    s.stop().await;
}
