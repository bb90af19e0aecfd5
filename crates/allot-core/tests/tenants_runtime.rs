//! The tenant tree changed at runtime: tenants added under a parent, their weight
//! changed, and removed once empty. Refused changes leave the core as it was.

use allot_core::testkit::{JobSpecExt, TestEnv, job};
use allot_core::{Event, EventError, PendingReason, TenantIdx};

/// 16 H100 GPUs on two nodes; `org` (nominal 16) with `org/a` (8) and `org/b` (0).
fn env() -> TestEnv {
    TestEnv::builder()
        .nodes("s1/b1/l1", 2, 8, "H100")
        .tenant("org", &[("H100", 16.0)])
        .tenant("org/a", &[("H100", 8.0)])
        .tenant("org/b", &[("H100", 0.0)])
        .build()
}

fn add(path: &str, weight: f64) -> Event {
    Event::TenantAdded { path: path.into(), weight }
}

fn quota(tenant: &str, nominal: f64, borrowing_limit: Option<f64>) -> Event {
    Event::QuotaChanged { tenant: tenant.into(), flavor: "H100".into(), nominal, borrowing_limit, lending_limit: None }
}

fn share(env: &TestEnv, path: &str) -> f64 {
    let t = env.core.tenants().index(path).unwrap_or_else(|| panic!("no tenant {path}"));
    env.core.tenants().tenants[t.ix()].norm_share
}

#[test]
fn an_added_tenant_takes_jobs_quota_and_budgets() {
    let mut env = env();
    env.event(add("org/c", 1.0));
    let t = env.core.tenants().index("org/c").expect("added");
    assert_eq!(env.core.tenants().tenants[t.ix()].parent, env.core.tenants().index("org"));
    // No quota yet: it borrows what is idle.
    env.submit(job(1, "org/c").gpus(2));
    env.schedule();
    env.want_placed(1);
    // Capped at 3 GPUs: a second 2-GPU job waits on its quota...
    env.event(quota("org/c", 3.0, Some(0.0)));
    env.submit(job(2, "org/c").gpus(2));
    env.schedule();
    env.want_pending_reason(2, |r| matches!(r, PendingReason::Quota { tenant, .. } if *tenant == t));
    // ...until the quota is raised.
    env.event(quota("org/c", 4.0, Some(0.0)));
    env.schedule();
    env.want_placed(2);
    // Budgets work on it too.
    env.event(Event::BudgetGranted { tenant: "org/c".into(), start: 0, expiry: 3_600_000_000, gpu_hours: 10.0 });
    assert!(env.core.budget_remaining_gpu_hours("org/c", env.now).is_some());
    // A child of the new tenant.
    env.event(add("org/c/x", 2.0));
    env.submit(job(3, "org/c/x").gpus(1));
    env.schedule();
    env.want_pending(3);
}

#[test]
fn weights_set_the_shares_down_the_tree() {
    let mut env = env();
    assert_eq!((share(&env, "org/a"), share(&env, "org/b")), (0.5, 0.5));
    env.event(Event::TenantWeightChanged { path: "org/b".into(), weight: 3.0 });
    assert_eq!((share(&env, "org/a"), share(&env, "org/b")), (0.25, 0.75));
    env.event(add("org/c", 4.0));
    assert_eq!((share(&env, "org/a"), share(&env, "org/b"), share(&env, "org/c")), (0.125, 0.375, 0.5));
    env.event(Event::TenantRemoved("org/c".into()));
    assert_eq!((share(&env, "org/a"), share(&env, "org/b")), (0.25, 0.75));
}

#[test]
fn a_removed_tenant_is_gone_and_its_path_can_be_reused() {
    let mut env = env();
    env.event(add("org/c", 1.0));
    env.event(quota("org/c", 4.0, None));
    env.submit(job(1, "org/c").gpus(2));
    env.schedule();
    env.want_placed(1);
    env.finish(1);
    let old = env.core.tenants().index("org/c").unwrap();
    env.event(Event::TenantRemoved("org/c".into()));
    assert_eq!(env.core.tenants().index("org/c"), None);
    assert!(env.core.tenants().tenants[old.ix()].removed);
    let org = env.core.tenants().index("org").unwrap();
    assert!(!env.core.tenants().tenants[org.ix()].children.contains(&old));
    assert!(env.core.quota("org/c", "H100").is_none());
    let err = env.event_err(Event::JobSubmitted(job(2, "org/c")));
    assert!(matches!(err, EventError::InvalidJob { field: "tenant", .. }), "{err:?}");
    // Its nominal went back to the parent: a sibling may take it.
    env.event(quota("org/b", 8.0, None));
    // The path again: a new tenant, with no quota.
    env.event(add("org/c", 1.0));
    assert_ne!(env.core.tenants().index("org/c"), Some(old));
    assert_eq!(env.core.quota("org/c", "H100").unwrap().0.nominal, 0);
    env.submit(job(3, "org/c"));
    env.schedule();
    env.want_placed(3);
}

/// Whether an error is the one a case expects.
type Expect = fn(&EventError) -> bool;

#[test]
fn refused_tenant_changes_change_nothing() {
    let mut env = env();
    env.submit(job(1, "org/a").gpus(8).replicas(3));
    env.schedule();
    env.want_pending(1);
    let cases: Vec<(&str, Event, Expect)> = vec![
        ("exists", add("org/a", 1.0), |e| matches!(e, EventError::TenantConflict(_))),
        ("parent unknown", add("nope/x", 1.0), |e| matches!(e, EventError::UnknownTenant(p) if p == "nope")),
        ("empty path", add("", 1.0), |e| matches!(e, EventError::InvalidTenant(_))),
        ("empty segment", add("org//x", 1.0), |e| matches!(e, EventError::InvalidTenant(_))),
        ("zero weight", add("org/x", 0.0), |e| matches!(e, EventError::InvalidTenant(_))),
        ("NaN weight", add("org/x", f64::NAN), |e| matches!(e, EventError::InvalidTenant(_))),
        ("infinite weight", Event::TenantWeightChanged { path: "org/a".into(), weight: f64::INFINITY }, |e| {
            matches!(e, EventError::InvalidTenant(_))
        }),
        ("weight of unknown", Event::TenantWeightChanged { path: "zz".into(), weight: 1.0 }, |e| matches!(e, EventError::UnknownTenant(_))),
        ("weight of the root", Event::TenantWeightChanged { path: "".into(), weight: 2.0 }, |e| matches!(e, EventError::InvalidTenant(_))),
        ("remove with children", Event::TenantRemoved("org".into()), |e| matches!(e, EventError::TenantConflict(m) if m.contains("child"))),
        (
            "remove with a live job",
            Event::TenantRemoved("org/a".into()),
            |e| matches!(e, EventError::TenantConflict(m) if m.contains("1 live job")),
        ),
        ("remove unknown", Event::TenantRemoved("zz".into()), |e| matches!(e, EventError::UnknownTenant(_))),
        ("remove the root", Event::TenantRemoved("".into()), |e| matches!(e, EventError::InvalidTenant(_))),
    ];
    for (name, ev, want) in cases {
        let before = format!("{:?}", env.core);
        let err = env.event_err(ev);
        assert!(want(&err), "case `{name}`: unexpected error {err:?}");
        assert_eq!(format!("{:?}", env.core), before, "case `{name}`: a refused change changes nothing");
    }
    assert_eq!(env.core.tenants().index(""), Some(TenantIdx(0)));
}
