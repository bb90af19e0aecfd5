//! Replaying a property's counterexample from its log: the world (cluster, tenant
//! tree, policy) and the events, one line each, as `tests/properties/sim.rs`
//! prints them (with node names spelt as `TestEnv` builds them).
//!
//! World lines: `flavors <name> ...` (in the config's order), `nodes
//! <site/block/leaf> <count>x<gpus> <flavor>`, `tenant <path>
//! <flavor>=<nominal>[+borrow<limit>][/lend<limit>] ...` (a word a flavor) and
//! `policy order=<o> placement=<p> backfill=<b> preemption=<b> reservations=<n>
//! grace=<s>s seed=<n>`. Script lines: `<ms> submit j<id> <tenant>
//! <replicas>x<gpus>gpu|<milli>milli [flavors=<f>,<f>] [wall=<s>s]
//! [within=<level>(required)] [class=<c>] [preemptible=false] [ckpt=<s>s]`,
//! `<ms> finish|cancel j<id>`, `<ms> NodeDown|NodeDrained <node>`, `<ms> schedule`;
//! `<ms> refused j<id> ...` is a submission the core refuses (as the log shows).

#![allow(dead_code)]

use allot_core::testkit::{JobSpecExt, TestEnv, job};
use allot_core::{Event, JobId, JobSpec, OrderPolicy, PlacementPolicy, Plan};

/// The world `desc` describes (see the module's comment).
pub fn world(desc: &str) -> TestEnv {
    let mut b = TestEnv::builder();
    for line in desc.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        b = match w[0] {
            // The flavors in the config's order (else the first `nodes` line to name
            // one would make it the first, and flavor order breaks ties).
            "flavors" => w[1..].iter().fold(b, |b, f| b.flavor(f)),
            "nodes" => {
                let (count, gpus) = w[2].split_once('x').expect("count x gpus");
                b.nodes(w[1], count.parse().expect("count"), gpus.parse().expect("gpus"), w[3])
            }
            "tenant" => {
                let quotas: Vec<(&str, f64, Option<f64>, Option<f64>)> = w[2..]
                    .iter()
                    .map(|fq| {
                        let (flavor, q) = fq.split_once('=').expect("flavor=quota");
                        let (q, lend) = q.split_once("/lend").map_or((q, None), |(q, l)| (q, Some(l.parse().expect("lend"))));
                        let (nominal, borrow) = q.split_once("+borrow").map_or((q, None), |(n, b)| (n, Some(b.parse().expect("borrow"))));
                        (flavor, nominal.parse().expect("nominal"), borrow, lend)
                    })
                    .collect();
                b.tenant_limits(w[1], &quotas)
            }
            "policy" => {
                let settings: Vec<(String, String)> =
                    w[1..].iter().map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).expect("key=value")).collect();
                b.policy(move |p| {
                    for (k, v) in &settings {
                        match k.as_str() {
                            "order" => p.order = order(v),
                            "placement" => p.placement = placement(v),
                            "backfill" => p.backfill = v == "true",
                            "preemption" => p.preemption = v == "true",
                            "reservations" => p.reservations = v.parse().expect("reservations"),
                            "grace" => p.grace_period_s = v.trim_end_matches('s').parse().expect("grace seconds"),
                            "seed" => p.seed = v.parse().expect("seed"),
                            "victims_by_nodes" => p.victims_by_nodes = v == "true",
                            other => panic!("unknown policy setting {other:?}"),
                        }
                    }
                })
            }
            other => panic!("unknown world line {other:?}"),
        };
    }
    b.build()
}

fn order(v: &str) -> OrderPolicy {
    match v {
        "Default" => OrderPolicy::Default,
        "Fifo" => OrderPolicy::Fifo,
        "Sjf" => OrderPolicy::Sjf,
        "Las" => OrderPolicy::Las,
        other => panic!("unknown order {other:?}"),
    }
}

fn placement(v: &str) -> PlacementPolicy {
    match v {
        "Default" => PlacementPolicy::Default,
        "Random" => PlacementPolicy::Random,
        "Dotprod" => PlacementPolicy::Dotprod,
        "Clustering" => PlacementPolicy::Clustering,
        "Packing" => PlacementPolicy::Packing,
        "Bestfit" => PlacementPolicy::Bestfit,
        "Fgd" => PlacementPolicy::Fgd,
        other => panic!("unknown placement {other:?}"),
    }
}

/// One job of a script line's words after `submit`.
pub fn spec(words: &[&str]) -> JobSpec {
    let (id, tenant, shape) = (words[0].trim_start_matches('j').parse().expect("job id"), words[1], words[2]);
    let (replicas, gpu) = shape.split_once('x').expect("replicas x request");
    let mut spec = job(id, tenant).replicas(replicas.parse().expect("replicas"));
    spec = match gpu.strip_suffix("milli") {
        Some(m) => spec.milli(m.parse().expect("milli")),
        None => spec.gpus(gpu.trim_end_matches("gpu").parse().expect("gpus")),
    };
    spec.walltime_s = None;
    for opt in &words[3..] {
        let (k, v) = opt.split_once('=').expect("option=value");
        let secs = || v.trim_end_matches('s').parse::<u64>().expect("seconds");
        spec = match k {
            "wall" if v == "default" => spec,
            "wall" => spec.walltime_s(secs()),
            "ckpt" => spec.checkpoint_s(secs()),
            "flavors" => spec.flavors(&v.split(',').collect::<Vec<_>>()),
            "class" => spec.class(v),
            "preemptible" => spec.preemptible(v == "true"),
            "within" => {
                let (level, how) = v.trim_end_matches(')').split_once('(').expect("level(how)");
                spec.within(level, how == "required")
            }
            _ => panic!("unknown option {opt}"),
        };
    }
    spec
}

/// A script's lines, blank ones left out (to split a script where a test looks
/// between its parts).
pub fn script_lines(script: &str) -> Vec<&str> {
    script.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// Replays `script` on `env` and returns the plans of its passes. Submissions must
/// be accepted; finishes, cancels and node events may be refused, as in the
/// property's log.
pub fn replay(env: &mut TestEnv, script: &str) -> Vec<Plan> {
    let mut plans = vec![];
    for line in script_lines(script).into_iter().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        env.now = words[0].parse().expect("time in ms");
        let id = || JobId(words[2].trim_start_matches('j').parse().expect("job id"));
        let refusable = match words[1] {
            "schedule" => {
                plans.push(env.schedule());
                continue;
            }
            "submit" | "refused" => {
                let s = spec(&words[2..]);
                let id = s.id;
                let r = env.core.on_event(env.now, Event::JobSubmitted(s));
                assert_eq!(r.is_ok(), words[1] == "submit", "submit j{id}: {r:?}");
                continue;
            }
            "finish" => Event::JobFinished(id()),
            "cancel" => Event::JobCancelled(id()),
            "NodeDown" => Event::NodeDown(words[2].into()),
            "NodeDrained" => Event::NodeDrained(words[2].into()),
            other => panic!("unknown event {other} in {line:?}"),
        };
        let _ = env.core.on_event(env.now, refusable);
    }
    plans
}
