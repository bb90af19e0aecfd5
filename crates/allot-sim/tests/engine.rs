//! The discrete-event engine on hand-built traces: exact figures on small cases,
//! determinism, preemption and failure losses, invariants after every event.

use allot_core::rng::SeededRng;
use allot_core::testkit::TestEnv;
use allot_core::{Config, GpuRequest, JobSpec, MS_PER_S, TopologyConstraint};
use allot_sim::engine::{Cancellation, Engine, EngineOptions, NodeFailure, RandomFailures, WalltimeModel};
use allot_sim::metrics::Summary;
use allot_sim::{Trace, TraceJob};

const S: i64 = MS_PER_S;

fn job(id: u64, tenant: &str, gpus: u32, submit_s: i64, duration_s: i64) -> TraceJob {
    TraceJob { submit: submit_s * S, duration: duration_s * S, spec: JobSpec::new(id, tenant, GpuRequest::Whole(gpus)) }
}

fn trace(jobs: Vec<TraceJob>) -> Trace {
    Trace { jobs, skipped_rows: 0 }
}

fn opts() -> EngineOptions {
    EngineOptions { check_invariants: true, sample_interval_s: 10, min_pass_interval_ms: 0, ..EngineOptions::default() }
}

fn run(config: &Config, t: Trace, o: EngineOptions) -> Summary {
    Engine::new(config, t, o).expect("engine").run().expect("run").summary
}

/// Summaries minus the wall-clock figures.
fn comparable(mut s: Summary) -> Summary {
    s.wall_seconds = 0.0;
    s.events_per_s = 0.0;
    s
}

fn one_gpu_cluster() -> Config {
    TestEnv::builder()
        .nodes("s/b/l", 1, 1, "H100")
        .tenant("a", &[("H100", 1.0)])
        .policy(|p| p.order = allot_core::OrderPolicy::Fifo)
        .config()
        .clone()
}

#[test]
fn three_jobs_on_one_gpu_have_known_jcts() {
    let t = trace(vec![job(1, "a", 1, 0, 10), job(2, "a", 1, 1, 20), job(3, "a", 1, 2, 30)]);
    let s = run(&one_gpu_cluster(), t, opts());
    assert_eq!((s.jobs, s.completed, s.rejected, s.unfinished), (3, 3, 0, 0));
    // FIFO: 1 runs 0-10, 2 (submitted at 1 s) 10-30, 3 (at 2 s) 30-60.
    assert!((s.avg_jct_s - (10.0 + 29.0 + 58.0) / 3.0).abs() < 1e-9, "{s:?}");
    assert_eq!(s.p50_jct_s, 29.0);
    assert_eq!(s.p99_jct_s, 58.0);
    assert!((s.avg_wait_s - (0.0 + 9.0 + 28.0) / 3.0).abs() < 1e-9);
    assert_eq!(s.makespan_s, 60.0);
    assert!((s.utilization_pct - 100.0).abs() < 1e-9);
    // 3 arrivals, 3 starts, 3 completions.
    assert_eq!(s.events, 9);
    assert_eq!(s.preemptions, 0);
    assert_eq!(s.per_tenant["a"].jobs, 3);
}

#[test]
fn arrivals_later_leave_the_gpu_idle() {
    // One job 0-10 s, the next arrives at 20 s and runs 10 s: 20 of 30 s busy.
    let t = trace(vec![job(1, "a", 1, 0, 10), job(2, "a", 1, 20, 10)]);
    let s = run(&one_gpu_cluster(), t, opts());
    assert_eq!(s.completed, 2);
    assert_eq!(s.makespan_s, 30.0);
    assert!((s.utilization_pct - 200.0 / 3.0).abs() < 1e-9);
    assert_eq!(s.avg_wait_s, 0.0);
    assert_eq!(s.avg_jct_s, 10.0);
}

/// Tenants a and b have 4 GPUs each of one 8-GPU node. b's 8-GPU job (checkpoint
/// every 100 s, 1000 s of work) borrows a's half; at 250 s a submits a 4-GPU job of
/// 100 s and reclaims: b's job stops after the 30 s grace, at 280 s, having run 280 s
/// (saved 200 s, lost 80 s) and pays 60 s to restart: 860 s left. a's job runs
/// 280-380 s; b's restarts at 380 s and ends at 1240 s.
#[test]
fn preemption_loses_work_since_the_last_checkpoint() {
    let config =
        TestEnv::builder().nodes("s/b/l", 1, 8, "H100").tenant("a", &[("H100", 4.0)]).tenant("b", &[("H100", 4.0)]).config().clone();
    let mut big = job(1, "b", 8, 0, 1000);
    big.spec.checkpoint_interval_s = Some(100);
    let small = job(2, "a", 4, 250, 100);
    let o = EngineOptions { restart_overhead_s: 60, ..opts() };
    let s = run(&config, trace(vec![big, small]), o);
    assert_eq!(s.completed, 2, "{s:?}");
    assert_eq!(s.preemptions, 1);
    // Lost: 8 GPUs x (80 s + 60 s).
    assert!((s.preemption_lost_gpu_hours - 8.0 * 140.0 / 3600.0).abs() < 1e-9, "{}", s.preemption_lost_gpu_hours);
    let (a, b) = (&s.per_tenant["a"], &s.per_tenant["b"]);
    assert_eq!(b.avg_jct_s, 1240.0);
    assert_eq!(b.avg_wait_s, 0.0);
    assert_eq!(a.avg_wait_s, 30.0);
    assert_eq!(a.avg_jct_s, 130.0);
    assert_eq!(b.preemptions, 1);
    assert_eq!(s.makespan_s, 1240.0);
    // a waited 30 s below its nominal with a 4-GPU job: 4 GPUs x 30 s.
    assert!((a.quota_violation_gpu_hours - 4.0 * 30.0 / 3600.0).abs() < 1e-9, "{}", a.quota_violation_gpu_hours);
    // b borrowed 4 GPUs over 0-280 s and 380-1240 s.
    assert!((b.borrowed_gpu_hours - 4.0 * (280.0 + 860.0) / 3600.0).abs() < 1e-9, "{}", b.borrowed_gpu_hours);
    assert!((a.lent_gpu_hours - b.borrowed_gpu_hours).abs() < 1e-9);
}

/// Without a checkpoint interval a preempted job loses everything it did.
#[test]
fn preemption_without_checkpoints_loses_all_work() {
    let config =
        TestEnv::builder().nodes("s/b/l", 1, 8, "H100").tenant("a", &[("H100", 4.0)]).tenant("b", &[("H100", 4.0)]).config().clone();
    let t = trace(vec![job(1, "b", 8, 0, 1000), job(2, "a", 4, 250, 100)]);
    let s = run(&config, t, EngineOptions { restart_overhead_s: 0, ..opts() });
    assert_eq!(s.completed, 2);
    // Ran 280 s, lost it all: restarts at 380 s with 1000 s to go.
    assert_eq!(s.per_tenant["b"].avg_jct_s, 1380.0);
    assert!((s.preemption_lost_gpu_hours - 8.0 * 280.0 / 3600.0).abs() < 1e-9);
}

/// An 8-GPU job (checkpoint every 100 s, 1000 s of work) starts on the first of two
/// nodes; the node fails at 450 s: the job requeues with 600 s + 60 s left, restarts
/// at once on the other node and ends at 1110 s.
#[test]
fn node_failure_requeues_the_job() {
    let config = TestEnv::builder().nodes("s/b/l", 2, 8, "H100").tenant("a", &[("H100", 16.0)]).config().clone();
    let mut j = job(1, "a", 8, 0, 1000);
    j.spec.checkpoint_interval_s = Some(100);
    let node = Engine::new(&config, trace(vec![]), opts()).unwrap().core().cluster().nodes[0].name.clone();
    let o =
        EngineOptions { failures: vec![NodeFailure { node, at: 450 * S, repair_after: Some(3600 * S) }], restart_overhead_s: 60, ..opts() };
    let s = run(&config, trace(vec![j]), o);
    assert_eq!(s.completed, 1, "{s:?}");
    assert_eq!(s.failure_requeues, 1);
    assert_eq!(s.preemptions, 0);
    assert_eq!(s.avg_jct_s, 1110.0);
    assert!((s.failure_lost_gpu_hours - 8.0 * 110.0 / 3600.0).abs() < 1e-9);
}

#[test]
fn unknown_failure_node_is_an_error() {
    let o = EngineOptions { failures: vec![NodeFailure { node: "nope".into(), at: 0, repair_after: None }], ..opts() };
    let err = Engine::new(&one_gpu_cluster(), trace(vec![]), o).err().expect("error");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn cancellations_of_pending_and_running_jobs() {
    // 1 runs 0-100 but is cancelled at 40; 2 waits behind it and is cancelled at 20;
    // 3 (submitted at 2 s) starts when 1 is gone (40 s) and runs 10 s; 4 is cancelled
    // before it arrives.
    let t = trace(vec![job(1, "a", 1, 0, 100), job(2, "a", 1, 1, 10), job(3, "a", 1, 2, 10), job(4, "a", 1, 500, 10)]);
    let cancel = |id: u64, at: i64| Cancellation { job: allot_core::JobId(id), at: at * S };
    let o = EngineOptions { cancellations: vec![cancel(1, 40), cancel(2, 20), cancel(4, 100)], ..opts() };
    let s = run(&one_gpu_cluster(), t, o);
    assert_eq!((s.completed, s.cancelled, s.unfinished), (1, 3, 0), "{s:?}");
    assert_eq!(s.avg_jct_s, 48.0);
    assert_eq!(s.avg_wait_s, 38.0);
}

#[test]
fn jobs_the_core_refuses_are_counted_as_rejected() {
    let t = trace(vec![job(1, "a", 2, 0, 10), job(2, "nobody", 1, 0, 10), job(3, "a", 1, 0, 10)]);
    let r = Engine::new(&one_gpu_cluster(), t, opts()).unwrap().run().unwrap();
    assert_eq!((r.summary.jobs, r.summary.completed, r.summary.rejected), (3, 1, 2));
    assert_eq!(r.rejections.len(), 2);
}

#[test]
fn duplicate_ids_are_an_error() {
    let t = trace(vec![job(1, "a", 1, 0, 10), job(1, "a", 1, 5, 10)]);
    assert!(Engine::new(&one_gpu_cluster(), t, opts()).is_err());
}

/// A mixed workload on a small two-flavor cluster with three tenants, gangs,
/// fractions, priority classes and declared or noisy walltimes.
fn mixed(seed: u64, n: u64) -> (Config, Trace) {
    let config = TestEnv::builder()
        .nodes("s1/b1/l1", 4, 8, "H100")
        .nodes("s1/b1/l2", 4, 8, "H100")
        .nodes("s2/b1/l1", 4, 4, "B200")
        .tenant("org/a", &[("H100", 32.0), ("B200", 8.0)])
        .tenant("org/b", &[("H100", 16.0), ("B200", 8.0)])
        .tenant("org/c", &[("H100", 16.0)])
        .class("low", 0, false, true)
        .class("normal", 100, false, true)
        .class("high", 1000, true, false)
        .config()
        .clone();
    let mut rng = SeededRng::new(seed);
    let tenants = ["org/a", "org/b", "org/c"];
    let mut jobs = Vec::new();
    let mut t = 0;
    for id in 1..=n {
        t += rng.range(0, 120) as i64 * S;
        let tenant = tenants[rng.range(0, 2) as usize];
        let kind = rng.range(0, 9);
        let (replicas, gpu) = match kind {
            0..=3 => (1, GpuRequest::Whole(1)),
            4 => (1, GpuRequest::Milli(250)),
            5 | 6 => (1, GpuRequest::Whole(4)),
            7 | 8 => (rng.range(2, 4) as u32, GpuRequest::Whole(8)),
            _ => (1, GpuRequest::Whole(8)),
        };
        let mut spec = JobSpec::new(id, tenant, gpu);
        spec.replicas = replicas;
        if replicas > 1 {
            spec.topology = Some(TopologyConstraint { level: "leaf".into(), required: false });
            spec.flavors = vec!["H100".into()];
        }
        spec.class = Some(["low", "normal", "normal", "high"][rng.range(0, 3) as usize].to_string());
        if rng.range(0, 1) == 0 {
            spec.checkpoint_interval_s = Some(300);
        }
        let duration = rng.range(60, 4 * 3600) as i64 * S;
        if rng.range(0, 3) == 0 {
            spec.walltime_s = Some((duration / S) as u64 * 2);
        }
        jobs.push(TraceJob { submit: t, duration, spec });
    }
    (config, trace(jobs))
}

#[test]
fn same_trace_and_seed_give_identical_metrics() {
    let (config, t) = mixed(7, 300);
    let o = EngineOptions {
        seed: 3,
        walltime: WalltimeModel { factor: 1.5, noise: 0.5, replace_declared: false },
        random_failures: Some(RandomFailures { node_mtbf_hours: 200.0, repair_hours: 2.0 }),
        ..opts()
    };
    let a = Engine::new(&config, t.clone(), o.clone()).unwrap().run().unwrap();
    let b = Engine::new(&config, t.clone(), o.clone()).unwrap().run().unwrap();
    assert_eq!(comparable(a.summary.clone()), comparable(b.summary.clone()));
    assert_eq!(a.samples, b.samples);
    // Another seed changes walltime noise and failures.
    let c = Engine::new(&config, t, EngineOptions { seed: 4, ..o }).unwrap().run().unwrap();
    assert_ne!(comparable(a.summary), comparable(c.summary));
}

#[test]
fn every_job_completes_and_invariants_hold_under_preemption_failures_and_cancels() {
    let (config, t) = mixed(11, 400);
    let cancels: Vec<Cancellation> =
        (1..=400).step_by(37).map(|id| Cancellation { job: allot_core::JobId(id), at: (id as i64 * 50 + 600) * S }).collect();
    let o = EngineOptions {
        random_failures: Some(RandomFailures { node_mtbf_hours: 100.0, repair_hours: 1.0 }),
        cancellations: cancels,
        checkpoint_interval_s: Some(600),
        ..opts()
    };
    let r = Engine::new(&config, t, o).unwrap().run().unwrap();
    let s = &r.summary;
    assert_eq!(s.rejected, 0, "{:?}", r.rejections);
    assert_eq!(s.unfinished, 0);
    assert_eq!(s.completed + s.cancelled, s.jobs);
    assert!(s.cancelled > 0 && s.cancelled <= 11);
    assert!(s.failure_requeues > 0, "{s:?}");
    assert!(s.preemptions > 0, "{s:?}");
    assert!(s.utilization_pct > 0.0 && s.utilization_pct <= 100.0);
    assert!(s.avg_wait_s <= s.avg_jct_s);
    let per_tenant: u64 = s.per_tenant.values().map(|t| t.jobs).sum();
    assert_eq!(per_tenant, s.jobs);
    let gpu_h: f64 = s.per_tenant.values().map(|t| t.gpu_hours).sum();
    assert!((gpu_h - s.gpu_hours).abs() < 1e-6 * s.gpu_hours.max(1.0));
}

#[test]
fn policies_all_finish_the_work() {
    for order in
        [allot_core::OrderPolicy::Fifo, allot_core::OrderPolicy::Sjf, allot_core::OrderPolicy::Las, allot_core::OrderPolicy::Default]
    {
        let (mut config, t) = mixed(5, 200);
        config.policy.order = order;
        let s = run(&config, t, opts());
        assert_eq!(s.completed, s.jobs, "{order:?}");
    }
}

#[test]
fn horizon_leaves_jobs_unfinished() {
    let t = trace(vec![job(1, "a", 1, 0, 10), job(2, "a", 1, 1, 1000)]);
    let s = run(&one_gpu_cluster(), t, EngineOptions { horizon: Some(100 * S), ..opts() });
    assert_eq!((s.completed, s.unfinished), (1, 1));
}

#[test]
fn an_empty_trace_is_fine() {
    let s = run(&one_gpu_cluster(), trace(vec![]), opts());
    assert_eq!((s.jobs, s.completed, s.events), (0, 0, 0));
    assert_eq!(s.utilization_pct, 0.0);
}

/// The core hands a preempted job's GPUs back at once; a job placed on them (not
/// only the preemptor) starts when the victim's processes have exited. As in
/// `preemption_loses_work_since_the_last_checkpoint`, b's 4-GPU job at 250 s
/// reclaims a's 8-GPU job (exit at 280 s); b's 2-GPU job at 260 s gets two of the
/// other four GPUs, still held by a's processes until 280 s.
#[test]
fn jobs_on_a_preempted_jobs_gpus_wait_for_its_exit() {
    let config =
        TestEnv::builder().nodes("s/b/l", 1, 8, "H100").tenant("a", &[("H100", 4.0)]).tenant("b", &[("H100", 4.0)]).config().clone();
    let mut big = job(1, "a", 8, 0, 1000);
    big.spec.checkpoint_interval_s = Some(100);
    let t = trace(vec![big, job(2, "b", 4, 250, 100), job(3, "b", 2, 260, 50)]);
    let r = Engine::new(&config, t, EngineOptions { sample_interval_s: 1, ..opts() }).unwrap().run().unwrap();
    let s = &r.summary;
    assert_eq!(s.completed, 3, "{s:?}");
    // Waits: 30 s and 20 s.
    assert_eq!(s.per_tenant["b"].avg_wait_s, 25.0, "{s:?}");
    assert!(r.samples.iter().all(|x| x.busy_gpus <= 8.0), "GPUs double-booked");
    // a's job restarts when b's are done (380 s) with 860 s to go.
    assert_eq!(s.per_tenant["a"].avg_jct_s, 1240.0);
}

/// With a pass interval, a pass waits until the interval since the last one is up:
/// the second job, arriving 1 s after the first started, starts at 10 s.
#[test]
fn passes_are_no_more_frequent_than_the_interval() {
    let config = TestEnv::builder().nodes("s/b/l", 1, 2, "H100").tenant("a", &[("H100", 2.0)]).config().clone();
    let t = trace(vec![job(1, "a", 1, 0, 100), job(2, "a", 1, 1, 100)]);
    let s = run(&config, t.clone(), EngineOptions { min_pass_interval_ms: 10_000, ..opts() });
    assert_eq!(s.per_tenant["a"].avg_wait_s, 4.5, "{s:?}");
    assert_eq!(s.passes, 2);
    let s = run(&config, t, opts());
    assert_eq!(s.per_tenant["a"].avg_wait_s, 0.0);
}
