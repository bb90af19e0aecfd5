#[path = "common/replay.rs"]
mod replay;
use allot_core::JobId;
use replay::{replay, world};
const WORLD: &str = "
    nodes s0/b0/l0 4x2 F0
    nodes s0/b0/l1 1x1 F0
    nodes s0/b1/l0 2x8 F0
    tenant o0 F0=0
    tenant o0/t0 F0=0
    policy order=Default placement=Default backfill=true preemption=false reservations=2 grace=0s seed=1
";

const SCRIPT: &str = "
    0 submit j1 o0 2x8gpu wall=default class=high
    0 submit j2 o0 2x1gpu wall=default
    0 submit j3 o0 4x1gpu wall=60s
    0 submit j4 o0/t0 3x4gpu wall=default
    0 submit j5 o0 1x300milli wall=default
    0 submit j6 o0 1x999milli wall=default
    0 schedule
    0 schedule
    0 submit j7 o0 2x1gpu wall=default
    0 NodeDown s0-b0-l0-n0
    0 submit j8 o0 2x1gpu wall=default
    0 submit j9 o0 1x1gpu wall=60s
    0 submit j10 o0 1x250milli wall=default class=high
    0 submit j11 o0 1x1gpu wall=default class=low
    0 submit j12 o0 1x1gpu wall=default
    0 submit j13 o0/t0 2x2gpu wall=default
    0 submit j14 o0/t0 1x1gpu wall=default
    0 schedule
    0 schedule
    0 submit j15 o0 1x1gpu wall=default
    0 submit j16 o0 1x1gpu wall=default
    0 submit j17 o0/t0 8x1gpu wall=default
    0 finish j2
    60000 finish j3
    60000 schedule
    60000 schedule
";

#[test]
fn scratch() {
    let mut env = world(WORLD);
    let lines: Vec<&str> = SCRIPT.lines().filter(|l| !l.trim().is_empty()).collect();
    let n = lines.len();
    let plans = replay(&mut env, &lines[..n - 1].join("\n"));
    eprintln!("pass1 {:?}", plans.last());
    for id in 1..18 {
        eprintln!("j{id}: {:?}", env.core.explain(JobId(id)));
    }
    let p = env.schedule();
    eprintln!("pass2 {:?}", p);
}
