//! GPU-hour budgets (`Event::BudgetGranted`, times in ms): a tenant with budgets
//! starts new jobs only inside an active, unspent budget window; running jobs are
//! never stopped by a budget.

use allot_core::budget::BudgetBlock;
use allot_core::testkit::{JobSpecExt, TestEnv, job};
use allot_core::{Event, EventError, JobId, JobSpec, JobState, MS_PER_H, PendingReason, Time};

fn h(hours: f64) -> Time {
    (hours * MS_PER_H as f64).round() as Time
}

/// 8 H100 GPUs; `org` (8) with children `org/a` and `org/b` (4 each).
fn env() -> TestEnv {
    TestEnv::builder()
        .nodes("s1/b1/l1", 1, 8, "H100")
        .tenant("org", &[("H100", 8.0)])
        .tenant("org/a", &[("H100", 4.0)])
        .tenant("org/b", &[("H100", 4.0)])
        .build()
}

fn grant(env: &mut TestEnv, tenant: &str, start: Time, expiry: Time, gpu_hours: f64) {
    env.event(Event::BudgetGranted { tenant: tenant.into(), start, expiry, gpu_hours });
}

enum Step {
    /// At this time, submit a job that must start.
    Start(Time, JobSpec),
    /// At this time, the job's processes end.
    Finish(Time, u64),
}

enum Want {
    Placed,
    NoneActive { tenant: &'static str, next: Option<Time> },
    Exhausted { tenant: &'static str, expiry: Time },
}

struct Case {
    name: &'static str,
    /// `(tenant, start, expiry, gpu_hours)`.
    grants: Vec<(&'static str, Time, Time, f64)>,
    history: Vec<Step>,
    /// When job 1 (1 GPU of `org/a`) is submitted and scheduled.
    at: Time,
    want: Want,
}

#[test]
fn budgets_hold_new_jobs_only() {
    use Step::*;
    let cases = vec![
        Case {
            name: "active budget with hours left",
            grants: vec![("org/a", 0, h(10.0), 100.0)],
            history: vec![],
            at: 0,
            want: Want::Placed,
        },
        Case { name: "tenant without budgets is not held", grants: vec![], history: vec![], at: 0, want: Want::Placed },
        Case {
            name: "budget not yet started",
            grants: vec![("org/a", h(1.0), h(10.0), 100.0)],
            history: vec![],
            at: 0,
            want: Want::NoneActive { tenant: "org/a", next: Some(h(1.0)) },
        },
        Case {
            name: "budget window starts inclusive",
            grants: vec![("org/a", h(1.0), h(10.0), 100.0)],
            history: vec![],
            at: h(1.0),
            want: Want::Placed,
        },
        Case {
            name: "budget expired",
            grants: vec![("org/a", 0, h(1.0), 100.0)],
            history: vec![],
            at: h(2.0),
            want: Want::NoneActive { tenant: "org/a", next: None },
        },
        Case {
            name: "budget expiry is exclusive",
            grants: vec![("org/a", 0, h(1.0), 100.0)],
            history: vec![],
            at: h(1.0),
            want: Want::NoneActive { tenant: "org/a", next: None },
        },
        Case {
            name: "between two budgets the next start is named",
            grants: vec![("org/a", 0, h(1.0), 100.0), ("org/a", h(2.0), h(3.0), 100.0)],
            history: vec![],
            at: h(1.5),
            want: Want::NoneActive { tenant: "org/a", next: Some(h(2.0)) },
        },
        Case {
            name: "exhausted by a running job",
            grants: vec![("org/a", 0, h(10.0), 1.0)],
            history: vec![Start(0, job(10, "org/a").gpus(1).walltime_s(86_400))],
            at: h(1.0),
            want: Want::Exhausted { tenant: "org/a", expiry: h(10.0) },
        },
        Case {
            name: "not yet exhausted just before the grant is spent",
            grants: vec![("org/a", 0, h(10.0), 1.0)],
            history: vec![Start(0, job(10, "org/a").gpus(1).walltime_s(86_400))],
            at: h(0.99),
            want: Want::Placed,
        },
        Case {
            name: "two GPUs spend twice as fast",
            grants: vec![("org/a", 0, h(10.0), 2.0)],
            history: vec![
                Start(0, job(10, "org/a").gpus(1).walltime_s(86_400)),
                Start(h(1.0), job(11, "org/a").gpus(1).walltime_s(86_400)),
            ],
            at: h(1.5),
            want: Want::Exhausted { tenant: "org/a", expiry: h(10.0) },
        },
        Case {
            name: "two GPUs: not exhausted before 1.5h",
            grants: vec![("org/a", 0, h(10.0), 2.0)],
            history: vec![
                Start(0, job(10, "org/a").gpus(1).walltime_s(86_400)),
                Start(h(1.0), job(11, "org/a").gpus(1).walltime_s(86_400)),
            ],
            at: h(1.49),
            want: Want::Placed,
        },
        Case {
            name: "a multi-GPU job spends GPU-hours",
            grants: vec![("org/a", 0, h(10.0), 4.0)],
            history: vec![Start(0, job(10, "org/a").gpus(4).walltime_s(86_400))],
            at: h(1.0),
            want: Want::Exhausted { tenant: "org/a", expiry: h(10.0) },
        },
        Case {
            name: "finished jobs stop spending",
            grants: vec![("org/a", 0, h(10.0), 1.0)],
            history: vec![Start(0, job(10, "org/a").gpus(1).walltime_s(86_400)), Finish(h(0.5), 10)],
            at: h(2.0),
            want: Want::Placed,
        },
        Case {
            name: "a new window is not charged for use before it started",
            grants: vec![("org/a", 0, h(1.0), 1.0), ("org/a", h(1.0), h(10.0), 1.0)],
            history: vec![Start(0, job(10, "org/a").gpus(1).walltime_s(86_400))],
            at: h(1.5),
            want: Want::Placed,
        },
        Case {
            name: "a parent's budget holds its children's jobs",
            grants: vec![("org", h(1.0), h(10.0), 100.0)],
            history: vec![],
            at: 0,
            want: Want::NoneActive { tenant: "org", next: Some(h(1.0)) },
        },
        Case {
            name: "a parent's budget is spent by all its children",
            grants: vec![("org", 0, h(10.0), 2.0)],
            history: vec![Start(0, job(10, "org/b").gpus(2).walltime_s(86_400))],
            at: h(1.0),
            want: Want::Exhausted { tenant: "org", expiry: h(10.0) },
        },
        Case {
            name: "a sibling's budget does not hold",
            grants: vec![("org/b", h(1.0), h(10.0), 100.0)],
            history: vec![],
            at: 0,
            want: Want::Placed,
        },
        Case {
            name: "a sibling's spending does not count",
            grants: vec![("org/a", 0, h(10.0), 1.0)],
            history: vec![Start(0, job(10, "org/b").gpus(4).walltime_s(86_400))],
            at: h(1.0),
            want: Want::Placed,
        },
    ];
    for c in &cases {
        let mut env = env();
        for &(t, start, expiry, hours) in &c.grants {
            grant(&mut env, t, start, expiry, hours);
        }
        let mut running: Vec<u64> = Vec::new();
        for step in &c.history {
            match step {
                Start(at, spec) => {
                    env.now = *at;
                    env.submit(spec.clone());
                    env.schedule();
                    let id = spec.id.0;
                    assert_eq!(
                        env.state(id),
                        Some(JobState::Running),
                        "case `{}`: setup job {id}: {:?}",
                        c.name,
                        env.core.explain(spec.id)
                    );
                    running.push(id);
                }
                Finish(at, id) => {
                    env.now = *at;
                    env.finish(*id);
                    running.retain(|r| r != id);
                }
            }
        }
        env.now = c.at;
        env.submit(job(1, "org/a").gpus(1));
        let plan = env.schedule();
        assert!(plan.stops.is_empty(), "case `{}`: budgets never stop running jobs: {:?}", c.name, plan.stops);
        for &id in &running {
            assert_eq!(env.state(id), Some(JobState::Running), "case `{}`: job {id} keeps running", c.name);
        }
        let tenant_idx = |p: &str| env.core.tenants().index(p).unwrap();
        let want = match c.want {
            Want::Placed => {
                assert_eq!(env.state(1), Some(JobState::Running), "case `{}`: should start: {:?}", c.name, env.core.explain(JobId(1)));
                continue;
            }
            Want::NoneActive { tenant, next } => BudgetBlock::NoneActive { tenant: tenant_idx(tenant), next },
            Want::Exhausted { tenant, expiry } => BudgetBlock::Exhausted { tenant: tenant_idx(tenant), expiry },
        };
        assert_eq!(env.state(1), Some(JobState::Pending), "case `{}`: should wait", c.name);
        assert_eq!(env.reason(1), PendingReason::Budget(want), "case `{}`: reason", c.name);
    }
}

#[test]
fn held_job_starts_when_its_budget_window_opens_and_running_jobs_outlive_the_budget() {
    let mut env = env();
    grant(&mut env, "org/a", h(1.0), h(2.0), 1.0);
    env.submit(job(1, "org/a").gpus(1).walltime_s(10 * 3600));
    env.schedule();
    env.want_pending_reason(1, |r| matches!(r, PendingReason::Budget(BudgetBlock::NoneActive { next: Some(n), .. }) if *n == h(1.0)));

    env.now = h(1.0);
    env.schedule();
    env.want_placed(1);
    let left = env.core.budget_remaining_gpu_hours("org/a", env.now).unwrap();
    assert!((left - 1.0).abs() < 1e-9, "the full grant is left at its start: {left}");

    env.now = h(1.25);
    let left = env.core.budget_remaining_gpu_hours("org/a", env.now).unwrap();
    assert!((left - 0.75).abs() < 1e-9, "one GPU for 15 minutes spends 0.25 GPU-h: {left}");

    // Spent at 2h and expired: job 1 keeps running; a new job waits.
    env.now = h(3.0);
    env.submit(job(2, "org/a").gpus(1));
    let plan = env.schedule();
    env.want_placed(1);
    assert!(plan.stops.is_empty(), "{:?}", plan.stops);
    env.want_pending_reason(2, |r| matches!(r, PendingReason::Budget(BudgetBlock::NoneActive { next: None, .. })));
    assert_eq!(env.core.budget_remaining_gpu_hours("org/a", env.now), None, "no budget is active");
    assert_eq!(env.core.budget_remaining_gpu_hours("org/b", env.now), None, "org/b has no budget");
}

#[test]
fn invalid_budget_grants_are_refused_and_change_nothing() {
    struct BCase {
        name: &'static str,
        tenant: &'static str,
        start: Time,
        expiry: Time,
        gpu_hours: f64,
        want: fn(&EventError) -> bool,
    }
    let cases = [
        BCase {
            name: "unknown tenant",
            tenant: "nope",
            start: 0,
            expiry: h(1.0),
            gpu_hours: 1.0,
            want: |e| matches!(e, EventError::UnknownTenant(t) if t == "nope"),
        },
        BCase {
            name: "expiry before start",
            tenant: "org/a",
            start: h(2.0),
            expiry: h(1.0),
            gpu_hours: 1.0,
            want: |e| matches!(e, EventError::InvalidQuota(_)),
        },
        BCase {
            name: "empty window",
            tenant: "org/a",
            start: h(1.0),
            expiry: h(1.0),
            gpu_hours: 1.0,
            want: |e| matches!(e, EventError::InvalidQuota(_)),
        },
        BCase {
            name: "negative hours",
            tenant: "org/a",
            start: 0,
            expiry: h(1.0),
            gpu_hours: -1.0,
            want: |e| matches!(e, EventError::InvalidQuota(_)),
        },
        BCase {
            name: "NaN hours",
            tenant: "org/a",
            start: 0,
            expiry: h(1.0),
            gpu_hours: f64::NAN,
            want: |e| matches!(e, EventError::InvalidQuota(_)),
        },
        BCase {
            name: "overlaps the existing budget",
            tenant: "org/a",
            start: h(4.0),
            expiry: h(6.0),
            gpu_hours: 1.0,
            want: |e| matches!(e, EventError::InvalidQuota(_)),
        },
    ];
    for c in &cases {
        let mut env = env();
        grant(&mut env, "org/a", h(5.0), h(10.0), 1.0);
        let before = format!("{:?}", env.core);
        let err = env.event_err(Event::BudgetGranted { tenant: c.tenant.into(), start: c.start, expiry: c.expiry, gpu_hours: c.gpu_hours });
        assert!((c.want)(&err), "case `{}`: unexpected error {err:?}", c.name);
        assert_eq!(format!("{:?}", env.core), before, "case `{}`: a refused grant changes nothing", c.name);
        // The existing budget still holds org/a until 5h.
        env.submit(job(1, "org/a"));
        env.schedule();
        env.want_pending_reason(1, |r| matches!(r, PendingReason::Budget(BudgetBlock::NoneActive { next: Some(n), .. }) if *n == h(5.0)));
    }
}
