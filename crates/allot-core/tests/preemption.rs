//! Preemption: a tenant below its nominal reclaims what it lent (victims are the
//! borrowers' preemptible jobs that lose the least work), and a class that may
//! preempt lower classes stops their preemptible jobs. The preempting job starts once
//! the victims have stopped.

use allot_core::testkit::{JobSpecExt, TestEnv, job};
use allot_core::{JobId, JobSpec, JobState, MS_PER_S, StopReason};

struct Case {
    name: &'static str,
    /// `(path, nominal H100 GPUs)`; 16 GPUs in all (2 nodes of 8).
    tenants: Vec<(&'static str, f64)>,
    preemption: bool,
    /// `(start second, job)`; each must start.
    running: Vec<(i64, JobSpec)>,
    /// When job 1 arrives.
    at_s: i64,
    job: JobSpec,
    want_victims: Vec<u64>,
    want_reclaim: bool,
}

fn cohort() -> Vec<(&'static str, f64)> {
    vec![("org", 16.0), ("org/a", 8.0), ("org/b", 8.0)]
}

fn reclaim(name: &'static str, running: Vec<(i64, JobSpec)>, at_s: i64, job: JobSpec, want_victims: Vec<u64>) -> Case {
    Case { name, tenants: cohort(), preemption: true, running, at_s, job, want_victims, want_reclaim: true }
}

fn priority(name: &'static str, running: Vec<(i64, JobSpec)>, at_s: i64, job: JobSpec, want_victims: Vec<u64>) -> Case {
    Case { name, tenants: vec![("t", 16.0)], preemption: true, running, at_s, job, want_victims, want_reclaim: false }
}

#[test]
fn victims_and_the_preempting_job_starting() {
    let cases = vec![
        reclaim(
            "reclaim: the job that checkpointed recently loses least",
            vec![(0, job(10, "org/b").gpus(8).checkpoint_s(600)), (0, job(11, "org/b").gpus(8))],
            1500,
            job(1, "org/a").gpus(8),
            vec![10],
        ),
        reclaim(
            "reclaim: the younger job loses least",
            vec![(0, job(10, "org/b").gpus(8)), (600, job(11, "org/b").gpus(8))],
            1800,
            job(1, "org/a").gpus(8),
            vec![11],
        ),
        reclaim(
            "reclaim: lost work is time x GPUs (4 GPUs for 25 min < 8 GPUs for 20 min)",
            vec![(0, job(11, "org/b").gpus(4)), (300, job(12, "org/b").gpus(4)), (600, job(10, "org/b").gpus(8))],
            1800,
            job(1, "org/a").gpus(4),
            vec![12],
        ),
        reclaim(
            "reclaim: a non-preemptible job is never a victim, even when it loses least",
            vec![(0, job(10, "org/b").gpus(8).checkpoint_s(600).preemptible(false)), (0, job(11, "org/b").gpus(8))],
            1500,
            job(1, "org/a").gpus(8),
            vec![11],
        ),
        reclaim(
            "reclaim: nothing preemptible, nothing stopped",
            vec![(0, job(10, "org/b").gpus(8).preemptible(false)), (0, job(11, "org/b").gpus(8).preemptible(false))],
            1500,
            job(1, "org/a").gpus(8),
            vec![],
        ),
        reclaim(
            "reclaim: a tenant at its nominal does not reclaim more",
            vec![(0, job(10, "org/a").gpus(4)), (0, job(11, "org/b").gpus(8)), (0, job(12, "org/b").gpus(4))],
            1800,
            job(1, "org/a").gpus(8),
            vec![],
        ),
        reclaim(
            "reclaim: a tenant takes back up to its nominal",
            vec![(0, job(10, "org/a").gpus(4)), (0, job(11, "org/b").gpus(8)), (0, job(12, "org/b").gpus(4))],
            1800,
            job(1, "org/a").gpus(4),
            vec![12],
        ),
        Case {
            name: "reclaim: only the borrower's jobs are victims, not a sibling at its nominal",
            tenants: vec![("org", 16.0), ("org/a", 4.0), ("org/b", 4.0), ("org/c", 8.0)],
            preemption: true,
            running: vec![(0, job(10, "org/b").gpus(8)), (1200, job(11, "org/c").gpus(8))],
            at_s: 1800,
            job: job(1, "org/a").gpus(4),
            want_victims: vec![10],
            want_reclaim: true,
        },
        Case {
            name: "reclaim: nothing is stopped when preemption is off",
            tenants: cohort(),
            preemption: false,
            running: vec![(0, job(10, "org/b").gpus(8)), (0, job(11, "org/b").gpus(8))],
            at_s: 1800,
            job: job(1, "org/a").gpus(8),
            want_victims: vec![],
            want_reclaim: true,
        },
        priority(
            "priority: high preempts the normal job that loses least",
            vec![(0, job(10, "t").gpus(8)), (600, job(11, "t").gpus(8))],
            1800,
            job(1, "t").gpus(8).class("high"),
            vec![11],
        ),
        priority(
            "priority: high preempts only lower classes",
            vec![(0, job(10, "t").gpus(8).class("low")), (600, job(11, "t").gpus(8).class("high").preemptible(true))],
            1800,
            job(1, "t").gpus(8).class("high"),
            vec![10],
        ),
        priority(
            "priority: high does not preempt high",
            vec![(0, job(10, "t").gpus(8).class("high").preemptible(true)), (0, job(11, "t").gpus(8).class("high").preemptible(true))],
            1800,
            job(1, "t").gpus(8).class("high"),
            vec![],
        ),
        priority(
            "priority: normal may not preempt low",
            vec![(0, job(10, "t").gpus(8).class("low")), (0, job(11, "t").gpus(8).class("low"))],
            1800,
            job(1, "t").gpus(8),
            vec![],
        ),
        priority(
            "priority: high takes two small low jobs for one 8-GPU job",
            vec![
                (0, job(10, "t").gpus(4).class("low")),
                (0, job(11, "t").gpus(4).class("low")),
                (0, job(12, "t").gpus(8).class("low").checkpoint_s(3000)),
            ],
            3300,
            job(1, "t").gpus(8).class("high"),
            vec![12],
        ),
    ];
    for c in &cases {
        let mut b = TestEnv::builder().nodes("s1/b1/l1", 2, 8, "H100");
        for &(path, nominal) in &c.tenants {
            b = b.tenant(path, &[("H100", nominal)]);
        }
        let mut env = b.policy(|p| p.preemption = c.preemption).build();
        for (s, spec) in &c.running {
            env.now = s * MS_PER_S;
            env.submit(spec.clone());
            env.schedule();
            assert_eq!(env.state(spec.id.0), Some(JobState::Running), "case `{}`: setup job {} should run", c.name, spec.id);
        }
        env.now = c.at_s * MS_PER_S;
        env.submit(c.job.clone());
        let plan = env.schedule();
        let mut got: Vec<u64> = plan.stops.iter().map(|s| s.job.0).collect();
        got.sort();
        assert_eq!(got, c.want_victims, "case `{}`: victims (stops {:?})", c.name, plan.stops);
        if c.want_victims.is_empty() {
            env.want_pending(1);
            continue;
        }
        // The victims' room passes to the job at once: it starts in the same plan,
        // after they have exited, on their nodes.
        for s in &plan.stops {
            assert_eq!(
                s.why,
                StopReason::Preempted { by: JobId(1), reclaim: c.want_reclaim },
                "case `{}`: why job {} stops",
                c.name,
                s.job
            );
            assert_eq!(s.grace_s, 30, "case `{}`: grace period", c.name);
            assert_eq!(env.state(s.job.0), Some(JobState::Stopping), "case `{}`: victim {} is stopping", c.name, s.job);
        }
        let start = plan.starts.iter().find(|s| s.job == JobId(1)).unwrap_or_else(|| panic!("case `{}`: job 1 starts: {plan:?}", c.name));
        let mut after: Vec<u64> = start.after.iter().map(|j| j.0).collect();
        after.sort();
        assert_eq!(after, c.want_victims, "case `{}`: job 1 starts after its victims", c.name);
        env.want_placed(1);
        // Another pass changes nothing: no second round of stops.
        env.advance_s(10);
        let again = env.schedule();
        assert!(again.stops.is_empty(), "case `{}`: no second round of stops: {:?}", c.name, again.stops);
        // Agents report the victims gone: they are requeued, and stay pending.
        env.advance_s(20);
        for s in &plan.stops {
            env.finish(s.job.0);
        }
        for &v in &c.want_victims {
            assert_eq!(env.state(v), Some(JobState::Pending), "case `{}`: victim {v} is requeued", c.name);
            assert_eq!(env.core.job(JobId(v)).unwrap().restarts, 1, "case `{}`: victim {v} restarts", c.name);
        }
        let plan = env.schedule();
        env.want_placed(1);
        assert!(plan.stops.is_empty(), "case `{}`: no more stops: {:?}", c.name, plan.stops);
    }
}

/// A borrower's running jobs stop at most once for a reclaim; several waiting jobs of
/// the lender do not take more than the lender's nominal back.
#[test]
fn reclaim_takes_back_no_more_than_the_lenders_nominal() {
    let mut env = TestEnv::builder()
        .nodes("s1/b1/l1", 4, 8, "H100")
        .tenant("org", &[("H100", 32.0)])
        .tenant("org/a", &[("H100", 8.0)])
        .tenant("org/b", &[("H100", 24.0)])
        .build();
    // a borrows 24 of b's idle GPUs (32 in all).
    for (i, s) in [0i64, 60, 120, 180].iter().enumerate() {
        env.now = s * MS_PER_S;
        env.submit(job(10 + i as u64, "org/a").gpus(8).walltime_s(86_400));
        env.schedule();
        env.want_placed(10 + i as u64);
    }
    env.now = 600 * MS_PER_S;
    // b wants its 24 GPUs back, as four jobs of 8 (the fourth would exceed its nominal).
    for id in 1..=4 {
        env.submit(job(id, "org/b").gpus(8));
    }
    let plan = env.schedule();
    let mut victims: Vec<u64> = plan.stops.iter().map(|s| s.job.0).collect();
    victims.sort();
    assert_eq!(victims, vec![11, 12, 13], "b reclaims 24 GPUs: a's three youngest jobs stop, a keeps its nominal");
    env.advance_s(30);
    env.complete_stops();
    env.schedule();
    let running: Vec<u64> = (1..=4).filter(|&id| env.state(id) == Some(JobState::Running)).collect();
    assert_eq!(running.len(), 3, "three of b's jobs run: {running:?}");
    env.want_placed(10);
    let (_, used_a) = env.core.quota("org/a", "H100").unwrap();
    let (_, used_b) = env.core.quota("org/b", "H100").unwrap();
    assert_eq!((used_a, used_b), (8000, 24_000), "everyone at its nominal");
}

/// The plain flow: a borrower fills the cluster, the lender submits, the plan stops a
/// borrower's job, the agent reports it gone (`complete_stops`), the next pass starts
/// the lender's job.
#[test]
fn reclaiming_job_runs_after_its_victims_stop() {
    let mut env = TestEnv::builder()
        .nodes("s1/b1/l1", 2, 8, "H100")
        .tenant("org", &[("H100", 16.0)])
        .tenant("org/a", &[("H100", 8.0)])
        .tenant("org/b", &[("H100", 8.0)])
        .build();
    env.submit(job(10, "org/b").gpus(8));
    env.submit(job(11, "org/b").gpus(8));
    env.schedule();
    env.want_placed(10);
    env.want_placed(11);
    env.advance_s(600);
    env.submit(job(1, "org/a").gpus(8));
    let plan = env.schedule();
    assert_eq!(plan.stops.len(), 1, "one 8-GPU job of the borrower stops: {:?}", plan.stops);
    assert!(matches!(plan.stops[0].why, StopReason::Preempted { by: JobId(1), reclaim: true }), "{:?}", plan.stops[0]);
    let victim = plan.stops[0].job.0;
    env.complete_stops();
    env.schedule();
    env.want_placed(1);
    env.want_pending(victim);
    let (_, used_a) = env.core.quota("org/a", "H100").unwrap();
    let (_, used_b) = env.core.quota("org/b", "H100").unwrap();
    assert_eq!((used_a, used_b), (8000, 8000));
}

/// The ids of the jobs a plan stops, sorted.
fn stopped(plan: &allot_core::Plan) -> Vec<u64> {
    let mut ids: Vec<u64> = plan.stops.iter().map(|s| s.job.0).collect();
    ids.sort();
    ids
}

/// Sixteen one-GPU jobs (each loses 1 GPU x 1 h at the reclaim) on two nodes, and
/// two eight-GPU jobs started later (each loses 8 GPUs x 30 min: more than one
/// small job, less than a node of them), all of org/b on org/a's lent GPUs; then
/// org/a submits a 2 x 8 GPU gang.
fn gang_reclaim_env(victims_by_nodes: bool) -> TestEnv {
    let mut env = TestEnv::builder()
        .nodes("s1/b1/l1", 4, 8, "H100")
        .tenant("org", &[("H100", 32.0)])
        .tenant("org/a", &[("H100", 16.0)])
        .tenant("org/b", &[("H100", 16.0)])
        .policy(|p| p.victims_by_nodes = victims_by_nodes)
        .build();
    for id in 100..116 {
        env.submit(job(id, "org/b").gpus(1).walltime_s(86_400));
    }
    env.schedule();
    env.advance_s(1800);
    env.submit(job(20, "org/b").gpus(8).walltime_s(86_400));
    env.submit(job(21, "org/b").gpus(8).walltime_s(86_400));
    env.schedule();
    for id in (100..116).chain([20, 21]) {
        env.want_placed(id);
    }
    env.advance_s(1800);
    env.submit(job(1, "org/a").gpus(8).replicas(2));
    env
}

/// With `policy.victims_by_nodes`, a gang reclaims whole nodes: the nodes whose
/// victims lose the least work in all, not the jobs that lose least one by one.
/// Taking one-GPU jobs in order of lost work scatters the victims; here it would
/// stop sixteen jobs where two will do (docs/core-design-notes.md 14 and 31).
#[test]
fn a_gang_reclaims_the_nodes_that_lose_least_not_the_cheapest_jobs_one_by_one() {
    let mut env = gang_reclaim_env(true);
    let plan = env.schedule();
    assert_eq!(stopped(&plan), vec![20, 21], "two nodes of 8 x 30 min each, not sixteen jobs of 1 x 60 min");
    let start = plan.starts.iter().find(|s| s.job == JobId(1)).expect("the gang starts on its victims' nodes");
    let mut after: Vec<u64> = start.after.iter().map(|j| j.0).collect();
    after.sort();
    assert_eq!(after, vec![20, 21]);
}

/// By default a gang takes its victims one by one in order of lost work (over six
/// national months that lost less work in all than victims by nodes: note 31).
#[test]
fn by_default_a_gang_takes_the_cheapest_jobs_one_by_one() {
    let mut env = gang_reclaim_env(false);
    let plan = env.schedule();
    assert_eq!(stopped(&plan), (100..116).collect::<Vec<u64>>(), "the sixteen one-GPU jobs, cheapest one by one");
    env.want_placed(1);
}

/// A job whose reclaim search failed is considered once more when a later start in
/// the round makes some tenant borrow; it keeps the reservation it got the first
/// time. It used to lose it (the second look found the round's reservations taken),
/// and jobs after it in the round could take its room: docs/core-design-notes.md, 14 (b).
#[test]
fn a_job_considered_again_in_a_round_keeps_its_reservation() {
    let mut env = TestEnv::builder()
        .nodes("s1/b1/l1", 3, 8, "H100")
        .tenant("org", &[("H100", 24.0)])
        .tenant("org/a", &[("H100", 12.0)])
        .tenant("org/b", &[("H100", 4.0)])
        .tenant("org/c", &[("H100", 8.0)])
        .policy(|p| p.reservations = 1)
        .build();
    // c at its nominal, b over it (nothing to reclaim: neither is preemptible), a on 4
    // GPUs of the third node.
    env.submit(job(20, "org/c").gpus(8).preemptible(false).walltime_s(7200));
    env.submit(job(30, "org/b").gpus(8).preemptible(false).walltime_s(7200));
    env.submit(job(40, "org/a").gpus(4).walltime_s(3600));
    env.schedule();
    for id in [20, 30, 40] {
        env.want_placed(id);
    }
    // a's 8-GPU job is within its nominal but finds no node: its reclaim search fails
    // and it reserves the third node (free when job 40 ends). c's short job backfills
    // there and takes c over its nominal.
    env.advance_s(60);
    env.submit(job(1, "org/a").gpus(8).walltime_s(3600));
    env.submit(job(50, "org/c").gpus(4).walltime_s(600));
    let plan = env.schedule();
    assert!(plan.starts.iter().any(|s| s.job == JobId(50)), "c's short job backfills: {plan:?}");
    let held: Vec<u64> = env.core.reservations().iter().map(|r| r.job.0).collect();
    assert_eq!(held, vec![1], "job 1 keeps its reservation after its second look");
    let at = env.core.reservations()[0].at;
    env.advance_s(10);
    env.schedule();
    assert_eq!(env.core.reservations().iter().map(|r| (r.job.0, r.at)).collect::<Vec<_>>(), vec![(1, at)], "and the next pass too");
}

/// From the stability property. A one-replica job of a class that may preempt
/// lower ones, refused by its tenant's limit alone (a node is free for it), found
/// no victims: the search only looked for nodes its candidates would free, and
/// none was on the free node. It now takes victims for quota alone (here j1, whose
/// two GPUs make the room under the limit), and starts on the free node.
#[test]
fn a_job_refused_by_quota_alone_preempts_for_quota_on_a_free_node() {
    let mut env = TestEnv::builder()
        .nodes("s0/b0/l0", 1, 2, "F0")
        .nodes("s0/b0/l1", 1, 4, "F0")
        .nodes("s0/b0/l2", 1, 1, "F0")
        .tenant_limits("a", &[("F0", 5.0, Some(0.0), None)])
        .policy(|p| p.grace_period_s = 0)
        .build();
    env.submit(job(1, "a").gpus(2).walltime_s(86_400));
    env.schedule();
    env.submit(job(2, "a").walltime_s(86_400));
    env.schedule();
    assert_eq!(env.nodes_of(1), vec!["s0-b0-l0-n0".to_string()]);
    assert_eq!(env.nodes_of(2), vec!["s0-b0-l2-n0".to_string()]);
    env.advance_s(60);
    env.submit(job(3, "a").gpus(4).class("high").walltime_s(86_400));
    let plan = env.schedule();
    assert_eq!(plan.stops.iter().map(|s| s.job).collect::<Vec<_>>(), vec![JobId(1)], "{plan:?}");
    env.want_placed(3);
    assert_eq!(env.nodes_of(3), vec!["s0-b0-l1-n0".to_string()]);
}
