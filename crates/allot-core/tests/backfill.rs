//! Backfill: a blocked job holds a reservation starting when running jobs' walltimes
//! free enough room; later jobs may use reserved GPUs only if they end by then; the
//! reserved job starts when the room is free.

#[path = "common/replay.rs"]
mod replay;

use allot_core::testkit::{JobSpecExt, TestEnv, job};
use allot_core::{FlavorIdx, JobId, JobSpec, JobState, MS_PER_S, PendingReason, Time};

const H: Time = 3_600_000;

fn node_names(env: &TestEnv, nodes: &[allot_core::NodeIdx]) -> Vec<String> {
    nodes.iter().map(|&n| env.core.cluster().node(n).name.clone()).collect()
}

fn start_all(env: &mut TestEnv, case: &str, jobs: &[JobSpec]) {
    for spec in jobs {
        env.submit(spec.clone());
        env.schedule();
        assert_eq!(env.state(spec.id.0), Some(JobState::Running), "case `{case}`: setup job {} should run", spec.id);
    }
}

#[test]
fn reservation_starts_when_walltimes_free_enough_room() {
    struct Case {
        name: &'static str,
        cluster: &'static [(&'static str, u32)],
        running: Vec<JobSpec>,
        blocked: JobSpec,
        want_at: Time,
        want_nodes: &'static [&'static str],
    }
    let cases = vec![
        Case {
            name: "gang needing the whole cluster waits for the last end",
            cluster: &[("s1/b1/l1", 2)],
            running: vec![job(10, "t").gpus(8).walltime_s(3600), job(11, "t").gpus(4).walltime_s(7200)],
            blocked: job(1, "t").gpus(8).replicas(2),
            want_at: 2 * H,
            want_nodes: &["s1-b1-l1-n0", "s1-b1-l1-n1"],
        },
        Case {
            name: "the second end already frees two nodes",
            cluster: &[("s1/b1/l1", 3)],
            running: vec![
                job(10, "t").gpus(8).walltime_s(3600),
                job(11, "t").gpus(8).walltime_s(3 * 3600),
                job(12, "t").gpus(8).walltime_s(2 * 3600),
            ],
            blocked: job(1, "t").gpus(8).replicas(2),
            want_at: 2 * H,
            want_nodes: &["s1-b1-l1-n0", "s1-b1-l1-n2"],
        },
        Case {
            name: "a small job ending first frees enough on a shared node",
            cluster: &[("s1/b1/l1", 1)],
            running: vec![job(10, "t").gpus(4).walltime_s(3600), job(11, "t").gpus(2).walltime_s(2 * 3600)],
            blocked: job(1, "t").gpus(6),
            want_at: H,
            want_nodes: &["s1-b1-l1-n0"],
        },
        Case {
            name: "a job needing both ends waits for the later one",
            cluster: &[("s1/b1/l1", 1)],
            running: vec![job(10, "t").gpus(4).walltime_s(3600), job(11, "t").gpus(2).walltime_s(2 * 3600)],
            blocked: job(1, "t").gpus(7),
            want_at: 2 * H,
            want_nodes: &["s1-b1-l1-n0"],
        },
        Case {
            name: "no constraint: nodes freed first in two leaves",
            cluster: &[("s1/b1/l1", 2), ("s1/b1/l2", 2)],
            running: vec![
                job(10, "t").gpus(8).walltime_s(3600),
                job(11, "t").gpus(8).walltime_s(4 * 3600),
                job(12, "t").gpus(8).walltime_s(2 * 3600),
                job(13, "t").gpus(8).walltime_s(3 * 3600),
            ],
            blocked: job(1, "t").gpus(8).replicas(2),
            want_at: 2 * H,
            want_nodes: &["s1-b1-l1-n0", "s1-b1-l2-n0"],
        },
        Case {
            name: "required leaf: waits until one leaf is free",
            cluster: &[("s1/b1/l1", 2), ("s1/b1/l2", 2)],
            running: vec![
                job(10, "t").gpus(8).walltime_s(3600),
                job(11, "t").gpus(8).walltime_s(4 * 3600),
                job(12, "t").gpus(8).walltime_s(2 * 3600),
                job(13, "t").gpus(8).walltime_s(3 * 3600),
            ],
            blocked: job(1, "t").gpus(8).replicas(2).within("leaf", true),
            want_at: 3 * H,
            want_nodes: &["s1-b1-l2-n0", "s1-b1-l2-n1"],
        },
    ];
    for c in &cases {
        let mut b = TestEnv::builder();
        let mut total = 0;
        for &(at, n) in c.cluster {
            b = b.nodes(at, n, 8, "H100");
            total += n * 8;
        }
        let mut env = b.tenant("t", &[("H100", f64::from(total))]).build();
        start_all(&mut env, c.name, &c.running);
        env.submit(c.blocked.clone());
        let plan = env.schedule();
        let id = c.blocked.id;
        assert_eq!(env.reason(id.0), PendingReason::Reserved { at: c.want_at }, "case `{}`: reason", c.name);
        assert_eq!(env.core.explain(id).unwrap().estimated_start, Some(c.want_at), "case `{}`: estimated start", c.name);
        let r = plan.reservations.iter().find(|r| r.job == id).unwrap_or_else(|| panic!("case `{}`: reservation in the plan", c.name));
        assert_eq!(r.at, c.want_at, "case `{}`: reservation start", c.name);
        let mut got = node_names(&env, &r.nodes);
        got.sort();
        assert_eq!(got, c.want_nodes, "case `{}`: reserved nodes", c.name);
    }
}

/// 2 nodes of 8: job 10 (8 GPUs, 1h) on n0, job 11 (4 GPUs, 2h) on n1; job 3, a 2x8
/// gang, is reserved at 2h on both nodes. One minute later a job `probe` arrives.
fn reserved_env(reservations: u32) -> TestEnv {
    let mut env =
        TestEnv::builder().nodes("s1/b1/l1", 2, 8, "H100").tenant("t", &[("H100", 16.0)]).policy(|p| p.reservations = reservations).build();
    start_all(&mut env, "setup", &[job(10, "t").gpus(8).walltime_s(3600), job(11, "t").gpus(4).walltime_s(7200)]);
    env.submit(job(3, "t").gpus(8).replicas(2).walltime_s(3600));
    env.schedule();
    assert_eq!(env.reason(3), PendingReason::Reserved { at: 2 * H });
    env.advance_s(60);
    env
}

#[test]
fn later_jobs_use_reserved_room_only_if_they_end_before_it_starts() {
    enum Want {
        Runs(&'static str),
        Waits(PendingReason),
    }
    struct Case {
        name: &'static str,
        reservations: u32,
        probe: JobSpec,
        want: Want,
    }
    let no_capacity = PendingReason::NoCapacity { flavor: Some(FlavorIdx(0)) };
    let behind = PendingReason::BehindReservation { job: JobId(3), at: 2 * H };
    let cases = vec![
        Case {
            name: "short job ending well before the reservation backfills",
            reservations: 4,
            probe: job(4, "t").gpus(4).walltime_s(1800),
            want: Want::Runs("s1-b1-l1-n1"),
        },
        Case {
            name: "job ending exactly at the reservation start backfills",
            reservations: 4,
            probe: job(4, "t").gpus(4).walltime_s(2 * 3600 - 60),
            want: Want::Runs("s1-b1-l1-n1"),
        },
        Case {
            name: "job ending one second after the reservation start waits",
            reservations: 4,
            probe: job(4, "t").gpus(4).walltime_s(2 * 3600 - 59),
            want: Want::Waits(no_capacity),
        },
        Case {
            name: "long job waits (its own reservation finds no room)",
            reservations: 4,
            probe: job(4, "t").gpus(4).walltime_s(3 * 3600),
            want: Want::Waits(no_capacity),
        },
        Case {
            name: "long job waits behind the reservation when it may not reserve",
            reservations: 1,
            probe: job(4, "t").gpus(4).walltime_s(3 * 3600),
            want: Want::Waits(behind),
        },
        Case {
            name: "short job larger than the free GPUs waits",
            reservations: 1,
            probe: job(4, "t").gpus(8).walltime_s(600),
            want: Want::Waits(no_capacity),
        },
        Case {
            name: "short fraction backfills on reserved room",
            reservations: 4,
            probe: job(4, "t").milli(500).walltime_s(600),
            want: Want::Runs("s1-b1-l1-n1"),
        },
        Case {
            name: "long fraction may not take reserved room",
            reservations: 4,
            probe: job(4, "t").milli(500).walltime_s(3 * 3600),
            want: Want::Waits(no_capacity),
        },
    ];
    for c in &cases {
        let mut env = reserved_env(c.reservations);
        env.submit(c.probe.clone());
        env.schedule();
        match &c.want {
            Want::Runs(node) => {
                assert_eq!(env.state(4), Some(JobState::Running), "case `{}`: should backfill: {:?}", c.name, env.core.explain(JobId(4)));
                assert_eq!(env.nodes_of(4), vec![node.to_string()], "case `{}`: node", c.name);
            }
            Want::Waits(reason) => {
                assert_eq!(env.state(4), Some(JobState::Pending), "case `{}`: should wait", c.name);
                assert_eq!(env.reason(4), *reason, "case `{}`: reason (job 3 waits {:?})", c.name, env.reason(3));
            }
        }
        // Either way the reservation is kept and its start does not move.
        assert_eq!(
            env.reason(3),
            PendingReason::Reserved { at: 2 * H },
            "case `{}`: the reserved job keeps its start (see long_small_jobs_do_not_starve_a_reserved_gang)",
            c.name
        );
    }
}

#[test]
fn reserved_job_starts_when_room_frees() {
    struct Case {
        name: &'static str,
        /// `(seconds, job)` ends reported by agents, in order.
        ends: Vec<(i64, u64)>,
        /// When the last pass runs.
        at_s: i64,
        want_running: bool,
    }
    let cases = vec![
        Case {
            name: "starts once both running jobs have ended at their walltimes",
            ends: vec![(3600, 10), (7200, 11)],
            at_s: 7200,
            want_running: true,
        },
        Case { name: "starts earlier when the jobs end early", ends: vec![(1200, 10), (1800, 11)], at_s: 1800, want_running: true },
        Case { name: "still waits with only one node free", ends: vec![(3600, 10)], at_s: 3600, want_running: false },
        Case { name: "still waits when the running job overruns its walltime", ends: vec![(3600, 10)], at_s: 7300, want_running: false },
    ];
    for c in &cases {
        let mut env = reserved_env(4);
        // A short backfilled job that ends before the reservation, on reserved room.
        env.submit(job(4, "t").gpus(4).walltime_s(600));
        env.schedule();
        env.want_placed(4);
        env.advance_s(300);
        env.finish(4);
        env.schedule();
        for &(s, id) in &c.ends {
            env.now = s * MS_PER_S;
            env.finish(id);
            env.schedule();
        }
        env.now = c.at_s * MS_PER_S;
        env.schedule();
        if c.want_running {
            assert_eq!(env.state(3), Some(JobState::Running), "case `{}`: {:?}", c.name, env.core.explain(JobId(3)));
            let mut nodes = env.nodes_of(3);
            nodes.sort();
            assert_eq!(nodes, vec!["s1-b1-l1-n0", "s1-b1-l1-n1"], "case `{}`", c.name);
            assert!(env.core.reservations().is_empty(), "case `{}`: reservation released", c.name);
        } else {
            assert_eq!(env.state(3), Some(JobState::Pending), "case `{}`", c.name);
            let r = env.reason(3);
            assert!(
                matches!(r, PendingReason::Reserved { at } if at >= env.now),
                "case `{}`: still reserved, not in the past: {r:?}",
                c.name
            );
        }
    }
}

/// Jobs end before their walltimes: a kept reservation starts when its own nodes
/// free what it needs, by what still runs there, and backfill is held to that.
#[test]
fn a_reservation_moves_forward_when_jobs_on_its_nodes_end_early() {
    let mut env = reserved_env(4);
    // A short job backfills on n1's free half (it ends at 0:31, before 2:00).
    env.submit(job(4, "t").gpus(4).walltime_s(1800));
    env.schedule();
    env.want_placed(4);
    // Job 11 (n1, walltime 2:00) ends at 0:10: n1 is then free when job 4 ends, and n0
    // when job 10 ends at 1:00.
    env.now = 10 * 60 * MS_PER_S;
    env.finish(11);
    env.schedule();
    assert_eq!(env.reason(3), PendingReason::Reserved { at: H }, "the start moves to job 10's end on the same nodes");
    let r = &env.core.reservations()[0];
    let mut nodes = node_names(&env, &r.nodes);
    nodes.sort();
    assert_eq!(nodes, vec!["s1-b1-l1-n0", "s1-b1-l1-n1"]);
    // A job that would have ended before 2:00 but not before 1:00 may no longer take
    // n1's free GPUs; one ending by 1:00 still may.
    env.submit(job(5, "t").gpus(4).walltime_s(3600));
    env.schedule();
    env.want_pending(5);
    env.submit(job(6, "t").gpus(4).walltime_s(1800));
    env.schedule();
    env.want_placed(6);
    assert_eq!(env.reason(3), PendingReason::Reserved { at: H }, "the backfilled job ends by then");
    // It never moves later than it was: job 10 ending on time starts the gang.
    env.now = H;
    env.finish(4);
    env.finish(6);
    env.finish(10);
    env.schedule();
    env.want_placed(3);
}

/// A stream of long 1-GPU jobs never starves a reserved gang: none of them takes the
/// reserved GPUs, the gang keeps its reservation, and it starts when the running jobs end.
#[test]
fn long_small_jobs_do_not_starve_a_reserved_gang() {
    let mut env = reserved_env(4);
    for i in 0..20u64 {
        env.submit(job(100 + i, "t").gpus(1).walltime_s(10 * 3600));
        env.schedule();
        let r = env.reason(3);
        assert_eq!(
            r,
            PendingReason::Reserved { at: 2 * H },
            "BUG: after {} younger 1-GPU jobs of the same tenant, the older blocked 2x8 gang (job 3) lost its reservation. \
             pass::schedule now considers jobs that would take their tenant above its nominal (would_borrow counts the \
             tenant's running jobs, so the gang qualifies) after all others; the younger jobs use up policy.reservations \
             (PassState::reservations counts even reserve() calls that find nothing) and the gang's reservation is dropped \
             as unseen",
            i + 1
        );
        for k in 0..=i {
            assert_eq!(
                env.state(100 + k),
                Some(JobState::Pending),
                "BUG: long job {} (10h) took GPUs reserved for job 3 at 2h; job 3 now waits {:?}",
                100 + k,
                env.reason(3)
            );
        }
        env.advance_s(60);
    }
    env.now = 2 * H;
    env.finish(10);
    env.finish(11);
    env.schedule();
    env.want_placed(3);
}

/// Once every reservation is back, the pass skips jobs that cannot start, a group
/// of same-shaped jobs at once when its shortest walltime cannot backfill. The
/// stand-in for that must be the group's shortest job: here long 1-GPU jobs are
/// skipped (they would end after the reservation), but a short one submitted after
/// them, in the same group (tenant, class and shape), still backfills.
#[test]
fn a_short_job_behind_long_ones_of_its_shape_still_backfills() {
    // Without preemption, nothing but backfill could start a job that has no room.
    let mut env = TestEnv::builder()
        .nodes("s1/b1/l1", 1, 8, "H100")
        .tenant("t", &[("H100", 8.0)])
        .policy(|p| {
            p.reservations = 1;
            p.preemption = false;
        })
        .build();
    start_all(&mut env, "setup", &[job(10, "t").gpus(6).walltime_s(2 * 3600)]);
    // Submitted in this order (the order they are considered in): the reservation
    // first, then two long jobs and a short one of one shape.
    for spec in [
        job(1, "t").gpus(8).walltime_s(3600),
        job(2, "t").gpus(1).walltime_s(5 * 3600),
        job(3, "t").gpus(1).walltime_s(5 * 3600),
        job(4, "t").gpus(1).walltime_s(1800),
    ] {
        env.advance_s(1);
        env.submit(spec);
    }
    env.schedule();
    assert!(env.core.reservations().iter().any(|r| r.job == JobId(1)), "the 8-GPU job holds the reservation");
    for id in 1..=3 {
        env.want_pending(id);
    }
    env.want_placed(4);
}

/// Blocked jobs are kept for reservations per tenant and class across the groups of
/// their shapes, whatever order the queue lists those groups in: here the gang's
/// group comes first after the 8-GPU group empties and fills again.
#[test]
fn blocked_jobs_of_several_shapes_all_get_reservations() {
    let mut env = TestEnv::builder().nodes("s1/b1/l1", 3, 8, "H100").tenant("t", &[("H100", 24.0)]).policy(|p| p.reservations = 4).build();
    start_all(&mut env, "setup", &[job(10, "t").gpus(8).replicas(3).walltime_s(3600)]);
    env.advance_s(1);
    env.submit(job(1, "t").gpus(8).walltime_s(3600));
    env.advance_s(1);
    env.submit(job(2, "t").gpus(8).replicas(2).walltime_s(3600));
    env.cancel(1);
    env.advance_s(1);
    env.submit(job(3, "t").gpus(8).walltime_s(3600));
    env.schedule();
    let holders: Vec<JobId> = env.core.reservations().iter().map(|r| r.job).collect();
    assert!(holders.contains(&JobId(2)) && holders.contains(&JobId(3)), "both blocked jobs hold reservations: {holders:?}");
}

/// The case at its scale, under the default policy: a 4,096-GPU gang behind a
/// stream of 1-GPU jobs starts once the jobs running when it arrived are done (half of
/// them end early), while short jobs keep backfilling and long ones never take its room.
#[test]
fn a_4096_gpu_gang_behind_a_stream_of_one_gpu_jobs_starts() {
    let mut b = TestEnv::builder();
    for leaf in 0..32 {
        b = b.nodes(&format!("s1/b1/l{leaf}"), 16, 8, "H100");
    }
    let mut env = b.tenant("t", &[("H100", 4096.0)]).build();
    // The cluster full of 1-GPU jobs of 1-4 h.
    let mut ends: Vec<(Time, u64)> = Vec::new();
    for id in 1000..1000 + 4096u64 {
        let walltime = 3600 * (1 + id % 4) as i64;
        env.submit(job(id, "t").gpus(1).walltime_s(walltime as u64));
        // Every other job ends at half its walltime.
        ends.push((walltime * MS_PER_S / if id % 2 == 0 { 2 } else { 1 }, id));
    }
    env.schedule();
    let free: u32 = (0..512).map(|n| env.core.cluster().whole_free(allot_core::NodeIdx(n))).sum();
    assert_eq!(free, 0, "the cluster is full");
    env.advance_s(60);
    env.submit(job(1, "t").gpus(8).replicas(512).walltime_s(10 * 3600));
    env.schedule();
    env.want_pending_reason(1, |r| matches!(r, PendingReason::Reserved { at } if *at <= 4 * H));
    env.advance_s(60);
    let mut next = 100_000u64;
    let mut backfilled = 0;
    while env.now <= 4 * H + 60 * MS_PER_S && env.state(1) != Some(JobState::Running) {
        let now = env.now;
        for &(end, id) in ends.iter().filter(|&&(end, _)| end <= now) {
            debug_assert!(end <= now);
            if env.state(id) == Some(JobState::Running) {
                env.finish(id);
            }
        }
        ends.retain(|&(end, _)| end > now);
        // Each minute, ten 1-GPU jobs of 8 h (they would hold the gang's room past its
        // start) and ten of 5 min (they may use it until then).
        for k in 0..20 {
            let walltime = if k < 10 { 8 * 3600 } else { 300 };
            env.submit(job(next, "t").gpus(1).walltime_s(walltime));
            next += 1;
        }
        let plan = env.schedule();
        for s in &plan.starts {
            let long = s.job.0 >= 100_000 && (s.job.0 - 100_000) % 20 < 10;
            assert!(
                !long,
                "an 8 h job {} started on room the gang needs at t={} min; the gang: {:?}",
                s.job,
                env.now / 60_000,
                env.core.explain(JobId(1))
            );
            if s.job.0 >= 100_000 {
                backfilled += 1;
                ends.push((now + 300 * MS_PER_S, s.job.0));
            }
        }
        env.advance_s(60);
    }
    assert_eq!(env.state(1), Some(JobState::Running), "the gang starts by the last walltime (4 h): {:?}", env.core.explain(JobId(1)));
    assert!(backfilled > 0, "short jobs backfill meanwhile");
}

/// From `backfill_never_delays_a_reservation_with_few_slots` (seed 20220), under
/// shortest-job-first with two reservations. j1 (4 x 1 GPU, 600 s) held nodes n0,
/// l1-n0 and l2-n0 for 300 s (a high-class fraction runs on l1-n0 until then); j2
/// (1 GPU, the default walltime: after j1) was reserved l1-n1 for 60 s, when a
/// short fraction there ends. A reservation that moves takes no other one's nodes
/// (note 20), so j1's stayed at 300 s; but at 60 s j1's turn came before j2's
/// reservation was confirmed, and it started at once on j2's node, pushing j2 back
/// to 300 s. Starting sooner is moving the reservation, and takes no later
/// holder's room now: what a holder leaves alone is recorded at its first turn at
/// an instant, and stands at every later turn then (`Core::stood_at`, note 28).
#[test]
fn a_holder_starting_before_its_reservation_takes_no_later_reservations_room() {
    let mut env = TestEnv::builder()
        .nodes("s0/b0/l0", 1, 2, "F0")
        .nodes("s0/b0/l1", 2, 1, "F0")
        .nodes("s0/b0/l2", 1, 1, "F0")
        .tenant("o0", &[("F0", 0.0)])
        .policy(|p| {
            p.order = allot_core::OrderPolicy::Sjf;
            p.preemption = false;
            p.reservations = 2;
        })
        .build();
    let mut j2 = job(2, "o0");
    j2.walltime_s = None;
    env.submit(job(1, "o0").replicas(4).walltime_s(600));
    env.submit(j2);
    env.submit(job(3, "o0").replicas(2).walltime_s(300));
    env.submit(job(4, "o0").walltime_s(300));
    env.submit(job(5, "o0").walltime_s(60));
    env.schedule();
    for done in [3, 4, 5] {
        env.finish(done);
    }
    env.submit(job(6, "o0").milli(300).walltime_s(60));
    env.submit(job(7, "o0").milli(750).walltime_s(300).class("high"));
    let plan = env.schedule();
    let at = |id: u64| plan.reservations.iter().find(|r| r.job == JobId(id)).map(|r| r.at);
    assert_eq!((at(1), at(2)), (Some(300 * MS_PER_S), Some(60 * MS_PER_S)), "reservations: {:?}", plan.reservations);
    env.advance_s(60);
    env.finish(6);
    env.schedule();
    env.want_placed(2);
    env.want_pending(1);
}

/// The same under FIFO with three reservations (seed 30116 of the property): j10
/// (low class, 3 x 2 GPUs within a block) held three nodes for 300 s, j15 (low
/// class, 8 x 1 GPU, after j10) two 8-GPU nodes and more for 60 s, when a gang
/// there ends. At 60 s j10's turn came first and it started on j15's nodes. It
/// stands for j15's room now.
#[test]
fn under_fifo_a_holder_takes_no_later_holders_room_either() {
    let mut env = replay::world(FIFO_THREE_WORLD);
    let lines = replay::script_lines(FIFO_THREE);
    let split = lines.iter().position(|l| l.trim().starts_with("60000")).expect("the events at 60 s");
    replay::replay(&mut env, &lines[..split].join("\n"));
    assert_eq!(env.reason(15), PendingReason::Reserved { at: 60 * MS_PER_S }, "j15 is reserved for 60 s");
    assert_eq!(env.reason(10), PendingReason::Reserved { at: 300 * MS_PER_S }, "j10 is reserved for 300 s");
    replay::replay(&mut env, &lines[split..].join("\n"));
    env.want_placed(15);
}

const FIFO_THREE_WORLD: &str = "
    nodes s0/b0/l0 1x1 F0
    nodes s0/b1/l0 6x2 F0
    nodes s0/b1/l1 6x1 F0
    nodes s1/b0/l0 1x8 F1
    nodes s2/b0/l0 1x1 F1
    nodes s2/b0/l1 2x8 F0
    nodes s2/b1/l0 2x2 F0
    nodes s2/b1/l1 1x1 F0
    nodes s2/b1/l2 1x2 F0
    tenant o0 F0=0 F1=0
    tenant o0/t0 F0=0 F1=0
    policy order=Fifo placement=Default backfill=true preemption=false reservations=3 grace=0s seed=0
";

const FIFO_THREE: &str = "
    0 submit j1 o0 1x1gpu wall=default
    0 schedule
    0 schedule
    0 schedule
    0 submit j2 o0 1x100milli wall=default
    0 submit j3 o0 1x1gpu wall=default
    0 submit j4 o0 1x100milli wall=default
    0 submit j5 o0 1x4gpu wall=default
    0 submit j6 o0 3x4gpu wall=60s
    0 submit j7 o0 8x1gpu wall=300s
    0 schedule
    0 submit j8 o0 1x1gpu wall=default
    0 schedule
    0 submit j9 o0 1x1gpu wall=default
    0 submit j10 o0 3x2gpu flavors=F0 within=block(required) wall=default class=low
    0 submit j11 o0 1x1gpu wall=default
    0 finish j8
    0 submit j12 o0 1x1gpu wall=default
    0 submit j13 o0 8x1gpu wall=default
    0 submit j14 o0 3x2gpu flavors=F0 wall=default
    0 submit j15 o0 8x1gpu flavors=F0 wall=default class=low
    0 schedule
    60000 finish j6
    60000 schedule
";
