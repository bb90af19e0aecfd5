//! One conformance suite for every store backend: each case runs against SQLite (a
//! fresh file) and PostgreSQL (a fresh schema in `ALLOT_TEST_DATABASE_URL`; skipped,
//! saying so, when the variable is unset).

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use allot_server::store::*;

async fn with_sqlite<F, Fut>(f: F)
where
    F: FnOnce(Box<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).await.unwrap();
    f(Box::new(store)).await;
}

static SEQ: AtomicU32 = AtomicU32::new(0);

async fn with_postgres<F, Fut>(f: F)
where
    F: FnOnce(Box<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Ok(url) = std::env::var("ALLOT_TEST_DATABASE_URL") else {
        eprintln!("ALLOT_TEST_DATABASE_URL is not set: skipping the PostgreSQL store suite");
        return;
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let schema = format!("allot_t_{}_{}_{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed), nanos);
    let store = PgStore::connect(&url, Some(&schema)).await.unwrap();
    f(Box::new(store)).await;
    PgStore::drop_schema(&url, &schema).await.unwrap();
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::with_sqlite(|s| async move { super::$name(&*s).await }).await; })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::with_postgres(|s| async move { super::$name(&*s).await }).await; })*
        }
    };
}

conformance!(
    jobs_insert_get_and_max_id,
    batch_insert_is_all_or_nothing,
    list_filters_and_cursor,
    subtree_visibility_is_by_path_segment,
    apply_updates_in_order_and_appends_accounting,
    active_jobs_are_the_unfinished_ones,
    tokens_by_hash_and_revoke,
    quotas_upsert_and_budgets,
    tenants_put_list_and_delete,
    drained_nodes_round_trip,
    reopen_keeps_nothing_lost,
);

fn job(id: u64, tenant: &str, user: &str) -> JobRow {
    JobRow::new(id, tenant, tenant.rsplit('/').next().unwrap(), user, "pending", format!("{{\"tenant\":\"{tenant}\"}}"), 1000 + id as i64)
}

async fn jobs_insert_get_and_max_id(s: &dyn Store) {
    assert_eq!(s.max_job_id().await.unwrap(), 0);
    let rows: Vec<JobRow> = (1..=1203).map(|i| job(i, "a/p", "u")).collect();
    s.insert_jobs(&rows).await.unwrap();
    assert_eq!(s.max_job_id().await.unwrap(), 1203);
    assert_eq!(s.get_job(17).await.unwrap().unwrap(), rows[16]);
    assert_eq!(s.get_job(5000).await.unwrap(), None);
    assert_eq!(s.get_job(u64::MAX).await.unwrap(), None);
    assert_eq!(s.count_by_state().await.unwrap(), vec![("pending".to_string(), 1203)]);
}

async fn batch_insert_is_all_or_nothing(s: &dyn Store) {
    s.insert_jobs(&[job(1, "a", "u")]).await.unwrap();
    // Id 1 again in the middle of a batch: the whole batch fails.
    let err = s.insert_jobs(&[job(2, "a", "u"), job(1, "a", "u"), job(3, "a", "u")]).await;
    assert!(err.is_err());
    assert_eq!(s.max_job_id().await.unwrap(), 1);
    assert_eq!(s.get_job(2).await.unwrap(), None);
}

async fn list_filters_and_cursor(s: &dyn Store) {
    let mut rows = vec![];
    for i in 1..=30u64 {
        let tenant = if i % 3 == 0 { "org-b/p" } else { "org-a/p" };
        let mut r = job(i, tenant, if i % 2 == 0 { "ann" } else { "bob" });
        if i % 5 == 0 {
            r.state = "held".into();
        }
        rows.push(r);
    }
    s.insert_jobs(&rows).await.unwrap();
    let q = JobQuery { subtrees: vec!["org-a".into()], limit: 7, ..Default::default() };
    let mut seen = vec![];
    let mut after = None;
    loop {
        let page = s.list_jobs(&JobQuery { after, ..q.clone() }).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        after = Some(page.last().unwrap().id);
        seen.extend(page.into_iter().map(|r| r.id));
    }
    let want: Vec<u64> = (1..=30).filter(|i| i % 3 != 0).collect();
    assert_eq!(seen, want);
    let q = JobQuery { user: Some("ann".into()), state: Some("held".into()), limit: 100, ..Default::default() };
    let ids: Vec<u64> = s.list_jobs(&q).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![10, 20, 30]);
    let q = JobQuery { project: Some("nope".into()), limit: 100, ..Default::default() };
    assert!(s.list_jobs(&q).await.unwrap().is_empty());
}

async fn subtree_visibility_is_by_path_segment(s: &dyn Store) {
    s.insert_jobs(&[job(1, "org", "u"), job(2, "org/x", "u"), job(3, "org-2", "u"), job(4, "organ/x", "u"), job(5, "o_g", "u")])
        .await
        .unwrap();
    let ids = |subtrees: Vec<&str>| {
        let q = JobQuery { subtrees: subtrees.into_iter().map(String::from).collect(), limit: 100, ..Default::default() };
        async move { s.list_jobs(&q).await.unwrap().iter().map(|r| r.id).collect::<Vec<u64>>() }
    };
    assert_eq!(ids(vec!["org"]).await, vec![1, 2]);
    assert_eq!(ids(vec!["org", "org/x"]).await, vec![2]);
    assert_eq!(ids(vec!["o%"]).await, Vec::<u64>::new());
    assert_eq!(ids(vec!["o_g"]).await, vec![5]);
}

async fn apply_updates_in_order_and_appends_accounting(s: &dyn Store) {
    s.insert_jobs(&[job(1, "a", "u"), job(2, "a", "u")]).await.unwrap();
    let start = JobUpdate { started_ms: Some(5000), placement: Some("{\"flavor\":\"H100\"}".into()), ..JobUpdate::state(1, "running") };
    let done = JobUpdate { ended_ms: Some(9000), ..JobUpdate::state(1, "completed") };
    let rec = AccountingRecord {
        job: 1,
        tenant: "a".into(),
        project: "a".into(),
        user: "u".into(),
        flavor: "H100".into(),
        start_ms: 5000,
        end_ms: 9000,
        gpus: 8.0,
        gpu_seconds: 32.0,
    };
    let changes = Changes {
        decisions: vec![Decision { pass: 1, at_ms: 5000, kind: "start".into(), job: 1, detail: "{}".into() }],
        jobs: vec![start, JobUpdate::state(2, "held"), done],
        accounting: vec![rec.clone()],
    };
    s.apply(&changes).await.unwrap();
    let j = s.get_job(1).await.unwrap().unwrap();
    assert_eq!(j.state, "completed");
    assert_eq!((j.started_ms, j.ended_ms), (Some(5000), Some(9000)));
    assert_eq!(j.placement.as_deref(), Some("{\"flavor\":\"H100\"}"));
    assert_eq!(s.get_job(2).await.unwrap().unwrap().state, "held");
    // Unique ids take the bulk path on PostgreSQL.
    s.apply(&Changes { jobs: vec![JobUpdate::state(2, "pending"), JobUpdate::state(1, "failed")], ..Default::default() }).await.unwrap();
    assert_eq!(s.get_job(2).await.unwrap().unwrap().state, "pending");
    assert_eq!(s.get_job(1).await.unwrap().unwrap().placement.as_deref(), Some("{\"flavor\":\"H100\"}"));
    assert_eq!(s.decisions_for(1).await.unwrap().len(), 1);
    assert_eq!(s.accounting(0, 10_000).await.unwrap(), vec![rec.clone()]);
    assert_eq!(s.accounting(8999, 9001).await.unwrap().len(), 1);
    assert!(s.accounting(9000, 20_000).await.unwrap().is_empty());
    assert!(s.accounting(0, 5000).await.unwrap().is_empty());
    s.apply(&Changes { accounting: vec![rec.clone()], ..Default::default() }).await.unwrap();
    assert_eq!(s.accounting(0, 10_000).await.unwrap().len(), 2, "records are appended, never merged");
}

async fn active_jobs_are_the_unfinished_ones(s: &dyn Store) {
    let states = ["pending", "held", "running", "stopping", "completed", "cancelled", "failed"];
    let rows: Vec<JobRow> = states
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let mut r = job(i as u64 + 1, "a", "u");
            r.state = st.to_string();
            r
        })
        .collect();
    s.insert_jobs(&rows).await.unwrap();
    let active: Vec<String> = s.active_jobs().await.unwrap().into_iter().map(|r| r.state).collect();
    assert_eq!(active, vec!["pending", "held", "running", "stopping"]);
}

async fn tokens_by_hash_and_revoke(s: &dyn Store) {
    assert_eq!(s.token_count().await.unwrap(), 0);
    let t = TokenRow {
        id: 0,
        hash: "ab".repeat(32),
        name: "ci".into(),
        role: "user".into(),
        tenant: Some("a".into()),
        user: "ci".into(),
        created_ms: 7,
        revoked: false,
    };
    let id = s.insert_token(&t).await.unwrap();
    let got = s.token_by_hash(&t.hash).await.unwrap().unwrap();
    assert_eq!(got, TokenRow { id, ..t.clone() });
    assert!(s.insert_token(&t).await.is_err(), "hashes are unique");
    assert_eq!(s.token_by_hash("00").await.unwrap(), None);
    assert!(s.revoke_token(id).await.unwrap());
    assert!(!s.revoke_token(id + 100).await.unwrap());
    assert!(s.get_token(id).await.unwrap().unwrap().revoked);
    assert_eq!(s.list_tokens().await.unwrap().len(), 1);
    assert_eq!(s.token_count().await.unwrap(), 1);
}

async fn quotas_upsert_and_budgets(s: &dyn Store) {
    let q = QuotaRow {
        tenant: "a".into(),
        flavor: "H100".into(),
        nominal: 8.0,
        borrowing_limit: None,
        lending_limit: Some(2.0),
        updated_ms: 1,
    };
    s.put_quota(&q).await.unwrap();
    let q2 = QuotaRow { nominal: 16.0, borrowing_limit: Some(4.0), updated_ms: 2, ..q.clone() };
    s.put_quota(&q2).await.unwrap();
    assert_eq!(s.quotas().await.unwrap(), vec![q2]);
    let b = BudgetRow { id: 0, tenant: "a".into(), gpu_hours: 100.5, start_ms: 0, expiry_ms: 10, granted_ms: 3 };
    let id = s.add_budget(&b).await.unwrap();
    assert_eq!(s.budgets().await.unwrap(), vec![BudgetRow { id, ..b }]);
}

async fn tenants_put_list_and_delete(s: &dyn Store) {
    assert!(s.tenants().await.unwrap().is_empty());
    let q = |tenant: &str, nominal: f64, at: i64| QuotaRow {
        tenant: tenant.into(),
        flavor: "H100".into(),
        nominal,
        borrowing_limit: Some(1.5),
        lending_limit: None,
        updated_ms: at,
    };
    let t = |path: &str, weight: f64, at: i64| TenantRow { path: path.into(), weight, deleted: false, updated_ms: at };
    s.put_tenant(Some(&t("org/x", 2.0, 10)), &[q("org/x", 4.0, 10)]).await.unwrap();
    s.put_tenant(Some(&t("org/y", 1.0, 11)), &[]).await.unwrap();
    assert_eq!(s.tenants().await.unwrap(), vec![t("org/x", 2.0, 10), t("org/y", 1.0, 11)]);
    assert_eq!(s.quotas().await.unwrap(), vec![q("org/x", 4.0, 10)]);
    // Changing it replaces the row and the quota of that flavor.
    s.put_tenant(Some(&t("org/x", 3.5, 12)), &[q("org/x", 6.0, 12)]).await.unwrap();
    assert_eq!(s.tenants().await.unwrap()[0], t("org/x", 3.5, 12));
    assert_eq!(s.quotas().await.unwrap(), vec![q("org/x", 6.0, 12)]);
    // Quotas alone (a config tenant's): no tenant row.
    s.put_tenant(None, &[q("org", 9.0, 12)]).await.unwrap();
    assert_eq!(s.tenants().await.unwrap().len(), 2);
    assert_eq!(s.quotas().await.unwrap().len(), 2);
    // Deleting takes its quotas, budgets and tokens with it, nobody else's.
    s.put_quota(&q("org/y", 1.0, 13)).await.unwrap();
    let b = |tenant: &str| BudgetRow { id: 0, tenant: tenant.into(), gpu_hours: 5.0, start_ms: 0, expiry_ms: 10, granted_ms: 13 };
    s.add_budget(&b("org/x")).await.unwrap();
    let keep = s.add_budget(&b("org/y")).await.unwrap();
    let tok = |hash: &str, tenant: &str| TokenRow {
        id: 0,
        hash: hash.repeat(32),
        name: "t".into(),
        role: "user".into(),
        tenant: Some(tenant.into()),
        user: "u".into(),
        created_ms: 1,
        revoked: false,
    };
    let tx = s.insert_token(&tok("aa", "org/x")).await.unwrap();
    let ty = s.insert_token(&tok("bb", "org/y")).await.unwrap();
    let tx_child = s.insert_token(&tok("cc", "org/x2")).await.unwrap();
    assert_eq!(s.delete_tenant("org/x", 20).await.unwrap(), vec![tx]);
    assert_eq!(s.tenants().await.unwrap(), vec![TenantRow { deleted: true, updated_ms: 20, ..t("org/x", 3.5, 12) }, t("org/y", 1.0, 11)]);
    assert_eq!(s.quotas().await.unwrap(), vec![q("org", 9.0, 12), q("org/y", 1.0, 13)]);
    assert_eq!(s.budgets().await.unwrap().iter().map(|b| b.id).collect::<Vec<_>>(), vec![keep]);
    assert!(s.get_token(tx).await.unwrap().unwrap().revoked);
    assert!(!s.get_token(ty).await.unwrap().unwrap().revoked);
    assert!(!s.get_token(tx_child).await.unwrap().unwrap().revoked, "a path prefix is not the tenant");
    // A tenant deleted although never stored (one of the config's) is remembered as deleted.
    assert!(s.delete_tenant("cfg", 21).await.unwrap().is_empty());
    assert!(s.tenants().await.unwrap().iter().any(|r| r.path == "cfg" && r.deleted));
    // Created again: live, with the new weight.
    s.put_tenant(Some(&t("org/x", 1.0, 22)), &[]).await.unwrap();
    assert_eq!(s.tenants().await.unwrap()[1], t("org/x", 1.0, 22));
}

async fn drained_nodes_round_trip(s: &dyn Store) {
    s.set_node_drained("n1", true).await.unwrap();
    s.set_node_drained("n2", true).await.unwrap();
    s.set_node_drained("n1", false).await.unwrap();
    assert_eq!(s.drained_nodes().await.unwrap(), vec!["n2".to_string()]);
}

async fn reopen_keeps_nothing_lost(s: &dyn Store) {
    // Within one handle: what was acknowledged is readable at once by every reader.
    for i in 1..=50u64 {
        s.insert_jobs(&[job(i, "a", "u")]).await.unwrap();
        assert!(s.get_job(i).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn sqlite_file_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SqliteStore::open_dir(dir.path()).await.unwrap();
        s.insert_jobs(&[job(1, "a", "u"), job(2, "a", "u")]).await.unwrap();
    }
    let s = SqliteStore::open_dir(dir.path()).await.unwrap();
    assert_eq!(s.max_job_id().await.unwrap(), 2);
    assert_eq!(s.active_jobs().await.unwrap().len(), 2);
}
