//! Skipping jobs by room once every reservation is back (`room.rs`) is only a
//! shortcut: the counterexamples
//! `properties::skipping_jobs_once_reservations_are_back_changes_no_decision`
//! found, each replayed on a core that skips and on one that considers every job.
//! The worlds and scripts are the property's log of the shrunk counterexample,
//! one line each (`common/replay.rs` reads them).

#[path = "common/replay.rs"]
mod replay;

use allot_core::testkit::TestEnv;
use replay::{replay, world};

/// The policy the property runs (`skipping_world`: the multifactor order, default
/// placement, backfill with one reservation, preemption without grace).
const POLICY: &str = "policy order=Default placement=Default backfill=true preemption=true reservations=1 grace=0s seed=0";

/// Replays `script` on `env` as built and on a copy that considers every job, and
/// requires the same starts, stops and reservations from every pass.
fn same_with_and_without_skips(env: TestEnv, script: &str) {
    let mut with = env.clone();
    let mut without = env;
    without.core.set_strict_skips(false);
    let (a, b) = (replay(&mut with, script), replay(&mut without, script));
    assert_eq!(a.len(), b.len());
    for (i, (pa, pb)) in a.iter().zip(&b).enumerate() {
        assert!(
            pa.starts == pb.starts && pa.stops == pb.stops && pa.reservations == pb.reservations,
            "pass {i} differs:\n  with skips:    {pa:?}\n  without skips: {pb:?}"
        );
    }
}

/// From the property (seed 48), shrunk by proptest. In the pass before the last,
/// j10 (o0/t1, 2x8 GPUs) had no room and every reservation was taken: the merge
/// skipped it. The core that considers every job gave it its turn, where o0/t1
/// was still below its nominal, and fixed its place in the tier there; the last
/// pass at the same time kept that place, and j10 came before j16 for the one
/// reservation. The skipping core worked j10's place out afresh (o0/t1 at its
/// nominal by then: deferred) and reserved for j16. A turn `Strict` would skip
/// can neither start, reserve nor preempt, and fixes no place (note 26).
#[test]
fn a_turn_with_nothing_it_could_do_fixes_no_place_for_a_later_pass() {
    same_with_and_without_skips(world(&[POLICY, SKIPPED_TURN_WORLD].concat()), SKIPPED_TURN);
}

const SKIPPED_TURN_WORLD: &str = "
    nodes s0/b0/l0 4x1 F0
    nodes s0/b0/l1 4x2 F0
    nodes s0/b1/l0 2x1 F0
    nodes s1/b0/l0 5x8 F0
    nodes s1/b0/l1 4x1 F0
    nodes s1/b0/l2 3x2 F0
    nodes s1/b1/l0 2x2 F0
    nodes s2/b0/l0 1x4 F0
    tenant o0 F0=27
    tenant o0/t0 F0=3
    tenant o0/t0/t0 F0=0
    tenant o0/t1 F0=3
    tenant o0/t2 F0=0+borrow2
    tenant o0/t2/t0 F0=0
    tenant o1 F0=9
    tenant o1/t0 F0=4.5
    tenant o1/t1 F0=0
    tenant o2 F0=18
    tenant o2/t0 F0=9+borrow0
";

const SKIPPED_TURN: &str = "
    0 submit j1 o1 1x2gpu wall=default ckpt=60s
    0 submit j2 o1 1x1gpu wall=60s
    0 submit j3 o2/t0 1x2gpu wall=default
    0 schedule
    0 submit j4 o2/t0 8x1gpu within=leaf(required) wall=default
    0 submit j5 o0 1x1gpu wall=default
    0 submit j6 o0 1x2gpu wall=default
    0 submit j7 o0 1x100milli wall=1800s
    0 submit j8 o0 1x1gpu wall=default
    0 submit j9 o0/t2 1x4gpu wall=default
    0 schedule
    0 submit j10 o0/t1 2x8gpu wall=default
    0 submit j11 o0 8x4gpu wall=1800s class=high
    0 submit j12 o0 1x1gpu wall=60s
    60000 finish j2
    60000 submit j13 o0 1x1gpu wall=default
    60000 cancel j13
    60000 finish j3
    60000 finish j5
    60000 submit j14 o0 1x1gpu wall=1800s
    60000 submit j15 o1 8x1gpu wall=default
    60000 submit j16 o0 2x8gpu wall=default
    60000 NodeDrained s1-b0-l0-n0
    60000 finish j8
    60000 schedule
    60000 submit j17 o0 1x4gpu wall=1800s
    60000 submit j18 o0 1x100milli wall=default
    60000 submit j19 o0 1x1gpu wall=default
    60000 schedule
    60000 submit j20 o0 1x1gpu wall=60s
    60000 submit j21 o0 1x1gpu wall=default
    60000 submit j22 o2/t0 1x2gpu wall=default
    60000 finish j19
    120000 finish j12
    1800000 finish j7
    1800000 schedule
    1800000 submit j23 o0/t2 1x1gpu wall=default
    1800000 submit j24 o0 1x4gpu wall=60s
    1800000 submit j25 o0/t2 1x300milli wall=default
    1800000 submit j26 o1 8x2gpu wall=default class=high
    1800000 submit j27 o0 8x1gpu wall=default class=high
    1860000 finish j11
    1860000 finish j21
    1860000 schedule
    1860000 finish j14
    1860000 finish j17
    1860000 submit j28 o0 1x2gpu wall=default
    1860000 submit j29 o0/t2 1x1gpu wall=default
    1860000 finish j20
    1860000 submit j30 o0 2x1gpu wall=default
    1860000 submit j31 o0 1x100milli wall=default
    1860000 submit j32 o0/t1 1x8gpu wall=default class=high
    1860000 submit j33 o0/t2 1x1gpu wall=default
    1860000 submit j34 o0 1x1gpu wall=default
    1860000 schedule
    1860000 submit j35 o0 1x1gpu wall=default
    1860000 schedule
    1860000 schedule
";

/// From the property in CI (random seed), shrunk by proptest. In the last pass
/// j33 (o1/t1, 8x1 GPU) had no room outside the reservations, which were all
/// taken: the merge skipped it. Given its turn, it was refused at the root (the
/// pass's earlier starts had taken what the root admits) and marked the root as
/// a limit that held a job back; the later preemption of o0's j24 then ran another round,
/// in which j33 reserved. A quota limit marks itself only for a job that finds
/// room (quota given back would not start one that does not).
#[test]
fn a_job_with_no_room_marks_no_quota_limit_for_another_round() {
    same_with_and_without_skips(world(&[POLICY, NO_ROOM_WORLD].concat()), NO_ROOM);
}

const NO_ROOM_WORLD: &str = "
    nodes s0/b0/l0 4x8 F0
    nodes s0/b0/l1 4x2 F0
    nodes s0/b0/l2 6x1 F0
    nodes s0/b1/l0 1x1 F0
    nodes s0/b1/l1 5x8 F0
    nodes s0/b2/l0 1x8 F0
    nodes s0/b2/l1 1x8 F0
    tenant o0 F0=25.5
    tenant o0/t0 F0=0
    tenant o0/t0/t0 F0=0
    tenant o0/t0/t1 F0=0
    tenant o1 F0=25.5
    tenant o1/t0 F0=8.5
    tenant o1/t1 F0=0
    tenant o1/t1/t0 F0=0
    tenant o1/t2 F0=4
    tenant o1/t2/t0 F0=0
    tenant o1/t2/t1 F0=1/lend0
";

const NO_ROOM: &str = "
    0 submit j1 o0 1x1gpu wall=default
    0 submit j2 o0 1x1gpu wall=300s
    0 schedule
    0 finish j1
    0 submit j3 o0 1x1gpu wall=300s
    0 submit j4 o0 1x1gpu wall=default
    0 submit j5 o0/t0/t0 1x1gpu wall=14400s
    0 submit j6 o0 1x1gpu wall=14400s
    0 submit j7 o0 1x1gpu wall=60s
    0 schedule
    60000 finish j7
    60000 finish j4
    60000 submit j8 o1 1x750milli wall=default
    60000 submit j9 o0 1x1gpu wall=default
    300000 finish j2
    300000 finish j3
    300000 submit j10 o0 1x1gpu wall=default
    14400000 finish j5
    14400000 schedule
    14400000 finish j6
    14400000 finish j10
    14400000 submit j11 o0 1x1gpu wall=default
    14400000 submit j12 o0 1x1gpu wall=default
    14400000 submit j13 o0 1x1gpu wall=60s
    14400000 submit j14 o0 1x2gpu wall=default
    14400000 submit j15 o0 1x1gpu wall=default
    14400000 submit j16 o0 1x100milli wall=60s
    14400000 schedule
    14400000 finish j12
    14400000 submit j17 o1 1x1gpu wall=60s
    14400000 submit j18 o1 8x2gpu wall=default
    14400000 submit j19 o1 1x4gpu wall=default
    14400000 submit j20 o0 1x100milli wall=default
    14400000 submit j21 o0 1x8gpu wall=default
    14400000 submit j22 o1/t1 3x8gpu wall=default preemptible=false
    14400000 schedule
    14400000 submit j23 o0 2x8gpu wall=default
    14400000 submit j24 o0 2x8gpu wall=default
    14460000 finish j8
    14460000 submit j25 o0 1x1gpu wall=default
    14460000 NodeDown s0-b0-l0-n0
    14460000 schedule
    14460000 submit j26 o0 1x4gpu wall=default
    14460000 finish j9
    14460000 schedule
    14460000 submit j27 o0 1x100milli wall=default
    14460000 submit j28 o0 1x8gpu wall=default class=high
    14460000 submit j29 o0 1x1gpu wall=default
    14460000 submit j30 o0 1x1gpu wall=default
    14460000 NodeDrained s0-b0-l0-n3
    14460000 finish j13
    14460000 schedule
    14460000 submit j31 o0 1x1gpu wall=default
    14460000 cancel j1
    14460000 submit j32 o0 1x2gpu wall=default class=high
    14460000 submit j33 o1/t1 8x1gpu wall=default
    14460000 submit j34 o1 2x8gpu wall=default class=high
    14460000 submit j1 o0/t0/t1 4x1gpu wall=default preemptible=false
    14460000 submit j35 o0 1x1gpu wall=default
    14460000 submit j36 o0 1x1gpu wall=default
    14460000 submit j37 o0 1x1gpu wall=default
    14460000 submit j38 o0 1x1gpu wall=default
    14460000 schedule
";
