//! Order of the default multifactor policy: priority class first, then fair share
//! (decayed usage against the tenant's share), then age (FIFO by submit time).
//! Observed as the order of `plan.starts` in a cluster large enough for every job,
//! and as who wins when only one job fits.

use allot_core::testkit::{JobSpecExt, TestEnv, job};
use allot_core::{Core, JobSpec, JobState, MS_PER_H, PendingReason, Plan, Time};

fn h(hours: f64) -> Time {
    (hours * MS_PER_H as f64).round() as Time
}

/// 32 H100 GPUs; top-level tenants `a` and `b` (16 each), default classes
/// (low 0, normal 100 (default), high 1000).
fn env(half_life_hours: f64, weights: (f64, f64)) -> TestEnv {
    let b = TestEnv::builder()
        .nodes("s1/b1/l1", 4, 8, "H100")
        .tenant("a", &[("H100", 16.0)])
        .tenant("b", &[("H100", 16.0)])
        .weight("a", weights.0)
        .weight("b", weights.1);
    let mut config = b.config().clone();
    config.fair_share.half_life_hours = half_life_hours;
    let core = Core::new(&config).expect("config");
    TestEnv { core, now: 0, last_plan: Plan::default() }
}

enum Step {
    /// Submit a job that must start at once.
    Run(Time, JobSpec),
    Finish(Time, u64),
    /// Submit a job without scheduling.
    Queue(Time, JobSpec),
}

struct Case {
    name: &'static str,
    half_life_hours: f64,
    weights: (f64, f64),
    steps: Vec<Step>,
    /// When the pass under test runs.
    at: Time,
    want_order: Vec<u64>,
}

#[test]
fn pass_order() {
    use Step::*;
    let base = |name, steps, at, want_order| Case { name, half_life_hours: 168.0, weights: (1.0, 1.0), steps, at, want_order };
    let cases = vec![
        base(
            "higher class first, whatever the submit order",
            vec![Queue(0, job(1, "a")), Queue(0, job(3, "b").class("low")), Queue(h(0.1), job(2, "a").class("high"))],
            h(0.2),
            vec![2, 1, 3],
        ),
        base(
            "FIFO by submit time within a tenant, not by id",
            vec![Queue(0, job(3, "a")), Queue(h(0.1), job(1, "a")), Queue(h(0.2), job(2, "a"))],
            h(0.3),
            vec![3, 1, 2],
        ),
        base("FIFO within a tenant holds after a long wait", vec![Queue(0, job(2, "a")), Queue(h(1.0), job(1, "a"))], h(500.0), vec![2, 1]),
        base(
            "equal usage: the older job first across tenants",
            vec![Queue(0, job(2, "b")), Queue(h(1.0), job(1, "a"))],
            h(2.0),
            vec![2, 1],
        ),
        base(
            "less decayed usage first: a ran 8 GPUs for an hour, b nothing",
            vec![Run(0, job(10, "a").gpus(8)), Finish(h(1.0), 10), Queue(h(1.0), job(1, "a")), Queue(h(1.1), job(2, "b"))],
            h(1.2),
            vec![2, 1],
        ),
        base(
            "usage of running jobs counts too",
            vec![Run(0, job(10, "a").gpus(8).walltime_s(86_400)), Queue(h(1.0), job(1, "a")), Queue(h(1.1), job(2, "b"))],
            h(1.2),
            vec![2, 1],
        ),
        base(
            "more usage loses even with an older job",
            vec![Run(0, job(10, "b").gpus(8)), Finish(h(1.0), 10), Queue(h(1.0), job(2, "b")), Queue(h(2.0), job(1, "a"))],
            h(3.0),
            vec![1, 2],
        ),
        base(
            "class beats fair share",
            vec![Run(0, job(10, "a").gpus(8)), Finish(h(1.0), 10), Queue(h(1.0), job(2, "b")), Queue(h(1.0), job(1, "a").class("high"))],
            h(1.1),
            vec![1, 2],
        ),
        base(
            "low class after normal of a tenant with much usage",
            vec![Run(0, job(10, "a").gpus(8).walltime_s(86_400)), Queue(h(1.0), job(2, "b").class("low")), Queue(h(1.0), job(1, "a"))],
            h(1.0),
            vec![1, 2],
        ),
        Case {
            name: "usage decays: older usage counts less (half-life 1h)",
            half_life_hours: 1.0,
            weights: (1.0, 1.0),
            steps: vec![
                Run(0, job(10, "a").gpus(8)),
                Finish(h(1.0), 10),
                Run(h(1.0), job(11, "b").gpus(8)),
                Finish(h(2.0), 11),
                Queue(h(2.0), job(2, "b")),
                Queue(h(2.0), job(1, "a")),
            ],
            at: h(2.0),
            want_order: vec![1, 2],
        },
        Case {
            name: "a larger weight goes first at equal usage",
            half_life_hours: 168.0,
            weights: (3.0, 1.0),
            steps: vec![
                Run(0, job(10, "a").gpus(8)),
                Run(0, job(11, "b").gpus(8)),
                Finish(h(1.0), 10),
                Finish(h(1.0), 11),
                Queue(h(1.0), job(2, "b")),
                Queue(h(1.1), job(1, "a")),
            ],
            at: h(1.2),
            want_order: vec![1, 2],
        },
    ];
    for c in &cases {
        let mut env = env(c.half_life_hours, c.weights);
        for step in &c.steps {
            match step {
                Run(at, spec) => {
                    env.now = *at;
                    env.submit(spec.clone());
                    env.schedule();
                    assert_eq!(env.state(spec.id.0), Some(JobState::Running), "case `{}`: setup job {} should run", c.name, spec.id);
                }
                Finish(at, id) => {
                    env.now = *at;
                    env.finish(*id);
                }
                Queue(at, spec) => {
                    env.now = *at;
                    env.submit(spec.clone());
                }
            }
        }
        env.now = c.at;
        let plan = env.schedule();
        let got: Vec<u64> = plan.starts.iter().map(|s| s.job.0).collect();
        assert_eq!(got, c.want_order, "case `{}`: start order", c.name);
    }
}

/// With room for one job only, the pass order decides who runs.
#[test]
fn only_the_first_in_order_starts_when_one_fits() {
    struct C {
        name: &'static str,
        first: JobSpec,
        second: JobSpec,
        want_running: u64,
        want_waiting: u64,
    }
    let cases = [
        C {
            name: "high beats an older normal",
            first: job(1, "a").gpus(8),
            second: job(2, "b").gpus(8).class("high"),
            want_running: 2,
            want_waiting: 1,
        },
        C {
            name: "normal beats an older low",
            first: job(1, "a").gpus(8).class("low"),
            second: job(2, "a").gpus(8),
            want_running: 2,
            want_waiting: 1,
        },
        C {
            name: "FIFO within a tenant and class",
            first: job(2, "a").gpus(8),
            second: job(1, "a").gpus(8),
            want_running: 2,
            want_waiting: 1,
        },
    ];
    for c in &cases {
        let mut env =
            TestEnv::builder().nodes("s1/b1/l1", 1, 8, "H100").tenant("a", &[("H100", 4.0)]).tenant("b", &[("H100", 4.0)]).build();
        env.submit(c.first.clone());
        env.advance_s(1);
        env.submit(c.second.clone());
        let plan = env.schedule();
        assert_eq!(plan.starts.len(), 1, "case `{}`: one start", c.name);
        assert_eq!(env.state(c.want_running), Some(JobState::Running), "case `{}`", c.name);
        assert_eq!(env.state(c.want_waiting), Some(JobState::Pending), "case `{}`", c.name);
        let r = env.reason(c.want_waiting);
        assert!(matches!(r, PendingReason::Reserved { .. } | PendingReason::NoCapacity { .. }), "case `{}`: {r:?}", c.name);
        let pos = env.core.explain(allot_core::JobId(c.want_waiting)).unwrap().position;
        assert_eq!(pos, Some(1), "case `{}`: position in the pass order", c.name);
    }
}

/// The same events give the same plans, bit for bit.
#[test]
fn same_events_same_plans() {
    let run = || {
        let mut env = env(168.0, (1.0, 1.0));
        let mut plans = Vec::new();
        for i in 0..20u64 {
            let t = if i % 2 == 0 { "a" } else { "b" };
            env.submit(job(i + 1, t).gpus(1 + (i % 4) as u32).walltime_s(600 + 60 * i));
            if i % 3 == 0 {
                plans.push(env.schedule());
            }
            env.advance_s(30);
        }
        for _ in 0..10 {
            env.advance_s(300);
            if let Some(id) = env.core.next_expected_end() {
                env.finish(id.0);
            }
            plans.push(env.schedule());
        }
        plans
    };
    assert_eq!(run(), run());
}
