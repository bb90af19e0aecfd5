//! Events: refused events return the right `EventError` and change nothing;
//! cancel, hold and release; nodes going down (their jobs stopped and requeued) and
//! drained nodes (no new work).

use allot_core::testkit::{JobSpecExt, TestEnv, job};
use allot_core::{Event, EventError, FlavorIdx, JobId, JobSpec, JobState, PendingReason, StopReason};

/// 16 H100 GPUs on two nodes of one leaf; `org` (16) with `org/a` and `org/b` (8 each).
fn env() -> TestEnv {
    TestEnv::builder()
        .nodes("s1/b1/l1", 2, 8, "H100")
        .tenant("org", &[("H100", 16.0)])
        .tenant("org/a", &[("H100", 8.0)])
        .tenant("org/b", &[("H100", 8.0)])
        .build()
}

const N0: &str = "s1-b1-l1-n0";
const N1: &str = "s1-b1-l1-n1";

fn field_is(e: &EventError, want: &str) -> bool {
    matches!(e, EventError::InvalidJob { job: JobId(1), field, .. } if *field == want)
}

#[test]
fn invalid_specs_are_refused_and_change_nothing() {
    struct Case {
        name: &'static str,
        spec: JobSpec,
        field: &'static str,
    }
    let cases = [
        Case { name: "0 GPUs in a gang (CPU-only jobs run one replica)", spec: job(1, "org/a").gpus(0).replicas(2), field: "gpus" },
        Case { name: "more GPUs than any node has", spec: job(1, "org/a").gpus(9), field: "gpus" },
        Case { name: "milli 1000 is a whole GPU", spec: job(1, "org/a").milli(1000), field: "gpu_milli" },
        Case { name: "milli 0", spec: job(1, "org/a").milli(0), field: "gpu_milli" },
        Case { name: "fraction with 2 replicas", spec: job(1, "org/a").milli(500).replicas(2), field: "gpu_milli" },
        Case { name: "0 replicas", spec: job(1, "org/a").replicas(0), field: "replicas" },
        Case { name: "unknown tenant", spec: job(1, "org/zz"), field: "tenant" },
        Case { name: "the root is not a tenant for jobs", spec: job(1, ""), field: "tenant" },
        Case { name: "unknown flavor", spec: job(1, "org/a").flavors(&["H100", "B200"]), field: "flavors" },
        Case { name: "unknown topology level", spec: job(1, "org/a").gpus(8).replicas(2).within("rack", true), field: "topology" },
        Case { name: "unknown priority class", spec: job(1, "org/a").class("urgent"), field: "class" },
        Case { name: "walltime 0", spec: job(1, "org/a").walltime_s(0), field: "walltime_s" },
    ];
    for c in &cases {
        let mut env = env();
        // Some state to keep: a running and a pending job.
        env.submit(job(10, "org/a").gpus(8));
        env.schedule();
        env.submit(job(11, "org/b").gpus(8).replicas(2));
        let before = format!("{:?}", env.core);
        let err = env.event_err(Event::JobSubmitted(c.spec.clone()));
        assert!(field_is(&err, c.field), "case `{}`: want InvalidJob on field `{}`, got {err:?}", c.name, c.field);
        assert!(!err.to_string().is_empty() && err.to_string().contains(c.field), "case `{}`: message names the field: {err}", c.name);
        assert_eq!(format!("{:?}", env.core), before, "case `{}`: a refused submission changes nothing", c.name);
        assert!(env.core.job(JobId(1)).is_none(), "case `{}`: job 1 stays unknown", c.name);
        // The id is still free for a valid submission.
        env.submit(job(1, "org/a"));
        env.want_pending(1);
    }
}

#[test]
fn refused_events_return_the_right_error_and_change_nothing() {
    struct Case {
        name: &'static str,
        event: Event,
        want: fn(&EventError) -> bool,
    }
    let cases = [
        Case {
            name: "duplicate of a running job",
            event: Event::JobSubmitted(job(10, "org/a")),
            want: |e| *e == EventError::DuplicateJob(JobId(10)),
        },
        Case {
            name: "duplicate of a pending job",
            event: Event::JobSubmitted(job(11, "org/b")),
            want: |e| *e == EventError::DuplicateJob(JobId(11)),
        },
        Case {
            name: "duplicate of a held job",
            event: Event::JobSubmitted(job(12, "org/b")),
            want: |e| *e == EventError::DuplicateJob(JobId(12)),
        },
        Case { name: "cancel of an unknown job", event: Event::JobCancelled(JobId(99)), want: |e| *e == EventError::UnknownJob(JobId(99)) },
        Case { name: "finish of an unknown job", event: Event::JobFinished(JobId(99)), want: |e| *e == EventError::UnknownJob(JobId(99)) },
        Case { name: "hold of an unknown job", event: Event::JobHeld(JobId(99)), want: |e| *e == EventError::UnknownJob(JobId(99)) },
        Case { name: "release of an unknown job", event: Event::JobReleased(JobId(99)), want: |e| *e == EventError::UnknownJob(JobId(99)) },
        Case {
            name: "finish of a pending job",
            event: Event::JobFinished(JobId(11)),
            want: |e| *e == EventError::WrongState { job: JobId(11), state: "pending", action: "finish" },
        },
        Case {
            name: "finish of a held job",
            event: Event::JobFinished(JobId(12)),
            want: |e| *e == EventError::WrongState { job: JobId(12), state: "held", action: "finish" },
        },
        Case {
            name: "hold of a running job",
            event: Event::JobHeld(JobId(10)),
            want: |e| *e == EventError::WrongState { job: JobId(10), state: "running", action: "hold" },
        },
        Case {
            name: "release of a running job",
            event: Event::JobReleased(JobId(10)),
            want: |e| *e == EventError::WrongState { job: JobId(10), state: "running", action: "release" },
        },
        Case { name: "unknown node down", event: Event::NodeDown("nope".into()), want: |e| *e == EventError::UnknownNode("nope".into()) },
        Case { name: "unknown node up", event: Event::NodeUp("nope".into()), want: |e| *e == EventError::UnknownNode("nope".into()) },
        Case {
            name: "unknown node drained",
            event: Event::NodeDrained("nope".into()),
            want: |e| *e == EventError::UnknownNode("nope".into()),
        },
        Case {
            name: "unknown node undrained",
            event: Event::NodeUndrained("nope".into()),
            want: |e| *e == EventError::UnknownNode("nope".into()),
        },
        Case {
            name: "quota of an unknown tenant",
            event: Event::QuotaChanged {
                tenant: "nope".into(),
                flavor: "H100".into(),
                nominal: 1.0,
                borrowing_limit: None,
                lending_limit: None,
            },
            want: |e| *e == EventError::UnknownTenant("nope".into()),
        },
        Case {
            name: "quota of an unknown flavor",
            event: Event::QuotaChanged {
                tenant: "org/a".into(),
                flavor: "B200".into(),
                nominal: 1.0,
                borrowing_limit: None,
                lending_limit: None,
            },
            want: |e| *e == EventError::UnknownFlavor("B200".into()),
        },
        Case {
            name: "quota of the root",
            event: Event::QuotaChanged {
                tenant: "".into(),
                flavor: "H100".into(),
                nominal: 1.0,
                borrowing_limit: None,
                lending_limit: None,
            },
            want: |e| matches!(e, EventError::InvalidQuota(_)),
        },
        Case {
            name: "quota with an infinite borrowing limit",
            event: Event::QuotaChanged {
                tenant: "org/a".into(),
                flavor: "H100".into(),
                nominal: 1.0,
                borrowing_limit: Some(f64::INFINITY),
                lending_limit: None,
            },
            want: |e| matches!(e, EventError::InvalidQuota(_)),
        },
        Case {
            name: "parent quota below its children's nominals",
            event: Event::QuotaChanged {
                tenant: "org".into(),
                flavor: "H100".into(),
                nominal: 15.0,
                borrowing_limit: None,
                lending_limit: None,
            },
            want: |e| matches!(e, EventError::InvalidQuota(_)),
        },
        Case {
            name: "budget of an unknown tenant",
            event: Event::BudgetGranted { tenant: "nope".into(), start: 0, expiry: 1, gpu_hours: 1.0 },
            want: |e| *e == EventError::UnknownTenant("nope".into()),
        },
    ];
    for c in &cases {
        let mut env = env();
        env.submit(job(10, "org/a").gpus(8));
        env.schedule();
        env.want_placed(10);
        env.submit(job(11, "org/b").gpus(8).replicas(2));
        env.submit(job(12, "org/b"));
        env.event(Event::JobHeld(JobId(12)));
        env.schedule();
        let before = format!("{:?}", env.core);
        let err = env.event_err(c.event.clone());
        assert!((c.want)(&err), "case `{}`: unexpected error {err:?}", c.name);
        assert_eq!(format!("{:?}", env.core), before, "case `{}`: a refused event changes nothing", c.name);
        let msg = err.to_string();
        assert!(!msg.ends_with('.') && msg.chars().next().is_some_and(|ch| !ch.is_uppercase()), "case `{}`: message style: {msg}", c.name);
    }
}

#[test]
fn cancel_hold_and_release() {
    let mut env = env();

    // Cancel a pending job: forgotten at once.
    env.submit(job(1, "org/a").gpus(8).replicas(3));
    env.schedule();
    env.want_pending(1);
    env.cancel(1);
    assert!(env.core.job(JobId(1)).is_none(), "a cancelled pending job is forgotten");
    assert_eq!(env.core.pending_count(), 0);
    assert!(env.core.reservations().is_empty(), "its reservation goes with it");

    // Hold a pending job: never started while held, even with room.
    env.submit(job(2, "org/a").gpus(8));
    env.event(Event::JobHeld(JobId(2)));
    env.event(Event::JobHeld(JobId(2))); // idempotent
    let plan = env.schedule();
    assert!(plan.starts.is_empty(), "a held job does not start: {:?}", plan.starts);
    assert_eq!(env.state(2), Some(JobState::Held));
    assert_eq!(env.reason(2), PendingReason::Held);
    assert_eq!(env.core.held_count(), 1);
    // Release: it starts at the next pass.
    env.event(Event::JobReleased(JobId(2)));
    env.event(Event::JobReleased(JobId(2))); // idempotent on a pending job
    env.want_pending(2);
    env.schedule();
    env.want_placed(2);
    assert_eq!(env.core.held_count(), 0);

    // Cancel a running job: told to stop without grace; GPUs held until it is gone.
    env.cancel(2);
    assert_eq!(env.state(2), Some(JobState::Stopping));
    assert_eq!(env.core.allocated_milli(FlavorIdx(0)), 8000, "GPUs are held until the job reports it ended");
    let plan = env.schedule();
    assert_eq!(plan.stops.len(), 1);
    assert_eq!((plan.stops[0].job, plan.stops[0].why, plan.stops[0].grace_s), (JobId(2), StopReason::Cancelled, 0));
    env.finish(2);
    assert!(env.core.job(JobId(2)).is_none(), "a cancelled job is forgotten when it ends, not requeued");
    assert_eq!(env.core.allocated_milli(FlavorIdx(0)), 0);

    // Cancel a held job.
    env.submit(job(3, "org/a"));
    env.event(Event::JobHeld(JobId(3)));
    env.cancel(3);
    assert!(env.core.job(JobId(3)).is_none());
    assert_eq!(env.core.held_count(), 0);

    // A job that finishes on its own is forgotten.
    env.submit(job(4, "org/a"));
    env.schedule();
    env.want_placed(4);
    env.finish(4);
    assert!(env.core.job(JobId(4)).is_none());
    assert_eq!(env.core.running_count(), 0);
}

#[test]
fn node_down_requeues_its_jobs() {
    struct Case {
        name: &'static str,
        jobs: Vec<JobSpec>,
        down: &'static str,
        want_stopped: Vec<u64>,
        /// Where the stopped jobs run after requeue (None: they wait).
        want_after: Vec<(u64, Option<Vec<&'static str>>)>,
    }
    let cases = vec![
        Case {
            name: "job on the lost node moves to the other node",
            jobs: vec![job(1, "org/a").gpus(8)],
            down: N0,
            want_stopped: vec![1],
            want_after: vec![(1, Some(vec![N1]))],
        },
        Case {
            name: "a job on another node is untouched",
            jobs: vec![job(1, "org/a").gpus(8)],
            down: N1,
            want_stopped: vec![],
            want_after: vec![(1, Some(vec![N0]))],
        },
        Case {
            name: "a gang with one replica on the lost node stops whole, and waits",
            jobs: vec![job(1, "org/a").gpus(8).replicas(2)],
            down: N1,
            want_stopped: vec![1],
            want_after: vec![(1, None)],
        },
        Case {
            name: "every job of the lost node stops; they share the surviving node",
            jobs: vec![job(1, "org/a").gpus(4), job(2, "org/b").gpus(2), job(3, "org/b").milli(500)],
            down: N0,
            want_stopped: vec![1, 2, 3],
            want_after: vec![(1, Some(vec![N1])), (2, Some(vec![N1])), (3, Some(vec![N1]))],
        },
    ];
    for c in &cases {
        let mut env = env();
        for spec in &c.jobs {
            env.submit(spec.clone());
            env.schedule();
            env.want_placed(spec.id.0);
        }
        let down = env.node(c.down);
        env.event(Event::NodeDown(c.down.into()));
        let plan = env.schedule();
        let mut stopped: Vec<u64> = plan.stops.iter().map(|s| s.job.0).collect();
        stopped.sort();
        assert_eq!(stopped, c.want_stopped, "case `{}`: stops", c.name);
        for s in &plan.stops {
            assert_eq!(s.why, StopReason::NodeLost { node: down }, "case `{}`: why {} stops", c.name, s.job);
            assert_eq!(env.state(s.job.0), Some(JobState::Stopping), "case `{}`", c.name);
        }
        env.complete_stops();
        for &id in &c.want_stopped {
            assert_eq!(env.state(id), Some(JobState::Pending), "case `{}`: job {id} is requeued", c.name);
            assert_eq!(env.core.job(JobId(id)).unwrap().restarts, 1, "case `{}`: job {id} restarts", c.name);
        }
        env.schedule();
        for (id, want) in &c.want_after {
            match want {
                Some(nodes) => {
                    assert_eq!(env.state(*id), Some(JobState::Running), "case `{}`: job {id}: {:?}", c.name, env.core.explain(JobId(*id)));
                    assert_eq!(env.nodes_of(*id), *nodes, "case `{}`: job {id} nodes", c.name);
                }
                None => assert_eq!(env.state(*id), Some(JobState::Pending), "case `{}`: job {id} waits", c.name),
            }
        }
        // Back up: the node takes work again.
        env.event(Event::NodeUp(c.down.into()));
        env.schedule();
        for (id, _) in &c.want_after {
            assert_eq!(env.state(*id), Some(JobState::Running), "case `{}`: job {id} runs once the node is back", c.name);
        }
    }
}

#[test]
fn a_stopping_job_that_is_cancelled_is_forgotten_not_requeued() {
    let mut env = env();
    env.submit(job(1, "org/a").gpus(8));
    env.schedule();
    env.event(Event::NodeDown(N0.into()));
    env.schedule();
    assert_eq!(env.state(1), Some(JobState::Stopping));
    env.cancel(1);
    env.finish(1);
    assert!(env.core.job(JobId(1)).is_none());
}

#[test]
fn drained_nodes_get_no_new_work() {
    let mut env = env();
    env.submit(job(1, "org/a").gpus(2));
    env.schedule();
    assert_eq!(env.nodes_of(1), vec![N0]);
    env.event(Event::NodeDrained(N0.into()));
    // The running job keeps running.
    let plan = env.schedule();
    assert!(plan.stops.is_empty(), "draining stops nothing: {:?}", plan.stops);
    env.want_placed(1);
    // A 1-GPU job would best-fit onto n0 (6 free); drained, it goes to n1.
    env.submit(job(2, "org/a").gpus(1));
    env.schedule();
    assert_eq!(env.nodes_of(2), vec![N1], "new work avoids the drained node");
    // A fraction does not use the drained node either.
    env.submit(job(3, "org/a").milli(500));
    env.schedule();
    assert_eq!(env.nodes_of(3), vec![N1]);
    env.submit(job(4, "org/b").gpus(6));
    env.schedule();
    assert_eq!(env.nodes_of(4), vec![N1]);
    // n1 is full: a 6-GPU job waits although the drained n0 has 6 GPUs free.
    env.submit(job(5, "org/b").gpus(6));
    env.schedule();
    env.want_pending(5);
    env.event(Event::NodeUndrained(N0.into()));
    env.schedule();
    env.want_placed(5);
    assert_eq!(env.nodes_of(5), vec![N0]);
}
