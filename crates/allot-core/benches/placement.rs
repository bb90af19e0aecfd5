//! Criterion micro-benchmarks of the placement stages: the indexed searches of
//! `Cluster` on the reference national cluster (260,000 GPUs, half full), and whole
//! `Core::schedule` passes on a small reference cluster.
//!
//! `cargo bench -p allot-core --bench placement`. Benchmarks only: nothing here asserts
//! a time.

use std::hint::black_box;
use std::time::Duration;

use allot_core::cluster::{Cluster, MILLI};
use allot_core::rng::SeededRng;
use allot_core::workload::{national_job, reference_cluster, reference_teams};
use allot_core::{Core, DomainIdx, Event, FlavorIdx, MS_PER_S, NodeIdx};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// CPUs and memory (MiB) the national mix asks per GPU.
const CPUS_PER_GPU: u32 = 16;
const MEM_PER_GPU: u64 = 128 * 1024;

/// The reference cluster of `gpus` GPUs, about half of its GPUs taken: every node
/// gets a seeded number of whole GPUs (0 to 8) taken, and one node in four gets a
/// quarter of one more GPU taken, so the bucket and partial-GPU indexes are all in use.
fn half_full(gpus: u64, seed: u64) -> Cluster {
    let mut cl = Cluster::from_config(&reference_cluster(gpus)).expect("reference cluster is valid");
    let mut rng = SeededRng::new(seed);
    for i in 0..cl.nodes.len() {
        let n = NodeIdx::from(i);
        let take = rng.range(0, u64::from(cl.node(n).gpus)) as u32;
        if take > 0 {
            cl.take_whole(n, take, take * CPUS_PER_GPU, u64::from(take) * MEM_PER_GPU);
        }
        if rng.range(0, 3) == 0
            && let Some(g) = cl.gpu_free(n).iter().position(|&m| m == MILLI)
        {
            cl.take_fraction(n, g as u32, 250, 4, 32 * 1024);
        }
    }
    cl
}

fn flavor(cl: &Cluster, name: &str) -> FlavorIdx {
    cl.flavor_index(name).expect("reference flavor")
}

fn cluster_stages(c: &mut Criterion) {
    let mut cl = half_full(260_000, 7);
    let h100 = flavor(&cl, "H100-80G");
    let h200 = flavor(&cl, "H200-141G");
    let root = DomainIdx(0);
    let leaf_level = cl.level_index("leaf").expect("reference levels");

    let mut g = c.benchmark_group("cluster_260k_half_full");
    g.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));

    for gpus in [1u32, 4, 8] {
        g.bench_function(format!("best_fit_whole/{gpus}gpu"), |b| {
            b.iter(|| cl.best_fit_whole(black_box(h200), black_box(gpus), gpus * CPUS_PER_GPU, u64::from(gpus) * MEM_PER_GPU))
        });
    }
    for milli in [250u16, 750] {
        g.bench_function(format!("best_fit_fraction/{milli}m"), |b| {
            b.iter(|| cl.best_fit_fraction(black_box(h200), black_box(milli), 4, 32 * 1024))
        });
    }
    g.bench_function("replica_capacity/root/8gpu", |b| b.iter(|| cl.replica_capacity(black_box(root), black_box(h100), 8)));
    for replicas in [16u64, 64, 512] {
        g.bench_function(format!("smallest_domain/{replicas}x8gpu"), |b| {
            b.iter(|| cl.smallest_domain(black_box(h100), black_box(replicas), 8, 0))
        });
    }
    // "All replicas in one leaf": 2 nodes are found by the descent; 8 wholly free nodes
    // in one leaf do not exist in the half-full cluster, so that search scans all leaves.
    for replicas in [2u64, 8] {
        g.bench_function(format!("smallest_domain/{replicas}x8gpu_required_leaf"), |b| {
            b.iter(|| cl.smallest_domain(black_box(h100), black_box(replicas), 8, leaf_level))
        });
    }
    for replicas in [64u64, 512] {
        if let Some(d) = cl.smallest_domain(h100, replicas, 8, 0) {
            g.bench_function(format!("pick_in_domain/{replicas}x8gpu"), |b| {
                b.iter(|| cl.pick_in_domain(black_box(d), h100, black_box(replicas), 8, 8 * CPUS_PER_GPU, 8 * MEM_PER_GPU))
            });
        }
    }
    // One take and its release: the incremental index maintenance along a node's path.
    g.bench_function("take_release_whole/4gpu", |b| {
        b.iter(|| {
            let n = cl.best_fit_whole(h200, 4, 0, 0).expect("room for 4 GPUs");
            let slot = cl.take_whole(n, 4, 0, 0);
            cl.release(black_box(&slot), 0, 0);
        })
    });
    g.finish();
}

/// A core on the reference cluster of `gpus` GPUs with `pending` jobs of the national
/// mix submitted over one hour, not yet scheduled.
fn queued_core(gpus: u64, pending: u64, seed: u64) -> (Core, SeededRng, u64) {
    let mut core = Core::new(&reference_cluster(gpus)).expect("reference cluster is valid");
    let teams = reference_teams();
    let mut rng = SeededRng::new(seed);
    for i in 0..pending {
        let now = (i as i64 * 3600 * MS_PER_S) / pending as i64;
        core.on_event(now, Event::JobSubmitted(national_job(&mut rng, i + 1, &teams))).expect("valid job");
    }
    (core, rng, pending + 1)
}

fn schedule_passes(c: &mut Criterion) {
    let teams = reference_teams();
    let (queued, mut rng, mut next_id) = queued_core(8_000, 2_000, 42);
    let now = 3600 * MS_PER_S;

    // The cluster filled from the queue, as the steady state starts from.
    let mut full = queued.clone();
    for _ in 0..20 {
        if full.schedule(now).starts.is_empty() {
            break;
        }
    }

    let mut g = c.benchmark_group("schedule_8k");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));

    // The first pass over an empty cluster and 2,000 pending jobs.
    g.bench_function("fill_pass/2000_pending", |b| {
        b.iter_batched(|| queued.clone(), |mut core| core.schedule(black_box(now)), BatchSize::LargeInput)
    });
    // One pass after one completion and one submission on the full cluster.
    g.bench_function("steady_pass", |b| {
        b.iter_batched(
            || {
                let mut core = full.clone();
                let t = now + MS_PER_S;
                if let Some(id) = core.next_expected_end() {
                    core.on_event(t, Event::JobFinished(id)).expect("running job finishes");
                }
                core.on_event(t, Event::JobSubmitted(national_job(&mut rng, next_id, &teams))).expect("valid job");
                next_id += 1;
                core
            },
            |mut core| core.schedule(black_box(now + MS_PER_S)),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, cluster_stages, schedule_passes);
criterion_main!(benches);
