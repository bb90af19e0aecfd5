//! Trace readers on the real public traces (../shared/traces, see its README for the
//! figures checked here), on bad input, and the synthetic generator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use allot_core::{Core, Event, GpuRequest};
use allot_sim::trace::synth::{self, Calibration, GenerateOptions, Profile};
use allot_sim::trace::{self, Mapping, ReadOptions, TraceFormat, allot, gavel, generic, openb, pai, philly};
use allot_sim::{Trace, TraceError};

fn traces() -> PathBuf {
    allot_sim::trace::public_traces_dir().expect("the public traces (../shared/traces) were not found: set ALLOT_TRACES to their folder")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const STRICT: ReadOptions = ReadOptions { skip_bad_rows: false };
const SKIP: ReadOptions = ReadOptions { skip_bad_rows: true };

fn total_gpus(j: &allot_sim::TraceJob) -> f64 {
    f64::from(j.spec.replicas)
        * match j.spec.gpu {
            GpuRequest::Whole(g) => f64::from(g),
            GpuRequest::Milli(m) => f64::from(m) / 1000.0,
        }
}

fn gpu_histogram(t: &Trace) -> BTreeMap<u32, usize> {
    let mut h = BTreeMap::new();
    for j in &t.jobs {
        *h.entry(total_gpus(j) as u32).or_insert(0) += 1;
    }
    h
}

fn is_sorted(t: &Trace) -> bool {
    t.jobs.windows(2).all(|w| (w[0].submit, w[0].spec.id) <= (w[1].submit, w[1].spec.id))
}

/// A temp file unique to the test (tests run in parallel).
fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("allot-readers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Asserts a `BadRow` with this line and column, and that its message names the file.
fn assert_bad_row(e: TraceError, file: &Path, want_line: u64, want_column: &str, reason_has: &str) {
    let msg = e.to_string();
    match e {
        TraceError::BadRow { path, line, column, reason } => {
            assert_eq!(path, file, "{msg}");
            assert_eq!((line, column.as_str()), (want_line, want_column), "{msg}");
            assert!(reason.contains(reason_has), "reason `{reason}` lacks `{reason_has}`");
            assert!(msg.contains(&format!("{}:{want_line}: column `{want_column}`", file.display())), "{msg}");
        }
        other => panic!("expected a bad row, got {other:?}"),
    }
}

// ---------------------------------------------------------------- Philly

fn pollux() -> Trace {
    philly::read_pollux(&traces().join("philly/pollux/philly.csv"), STRICT).unwrap()
}

#[test]
fn pollux_philly_has_the_published_jobs_vcs_and_sizes() {
    let t = pollux();
    assert_eq!(t.jobs.len(), 82_247);
    assert_eq!(t.skipped_rows, 0);
    assert!(is_sorted(&t));
    let want: BTreeMap<u32, usize> =
        [(1, 76_627), (2, 1_818), (4, 1_870), (8, 1_643), (16, 199), (32, 67), (64, 6), (128, 3), (12, 7), (24, 7)].into();
    assert_eq!(gpu_histogram(&t), want);
    let mut per_vc = BTreeMap::<&str, usize>::new();
    for j in &t.jobs {
        *per_vc.entry(j.spec.tenant.as_str()).or_default() += 1;
    }
    assert_eq!(per_vc.len(), 15);
    assert_eq!(per_vc["philly/6214e9"], 41_226);
    assert_eq!(per_vc["philly/11cb48"], 16_091);
    assert_eq!(per_vc["philly/6c71a0"], 9_953);
    // 2017-09-04 10:30:41 is time zero; 2017-12-22 08:02:11 the last arrival.
    assert_eq!(t.jobs[0].submit, 0);
    let last = ((((30 - 4) + 31 + 30 + 22) * 86_400) + (8 * 3600 + 2 * 60 + 11) - (10 * 3600 + 30 * 60 + 41)) * 1000;
    assert_eq!(t.jobs.last().unwrap().submit, last);
    // Gangs above a node's 8 GPUs are whole 8-GPU (or 4-GPU) replicas.
    let big: Vec<_> = t.jobs.iter().filter(|j| total_gpus(j) > 8.0).collect();
    assert!(big.iter().all(|j| j.spec.replicas > 1 && matches!(j.spec.gpu, GpuRequest::Whole(4 | 8))));
    assert!(t.jobs.iter().all(|j| j.duration >= 1000));
}

#[test]
fn pollux_gpu_time_matches_the_file_column() {
    // gpu_time = duration x num_gpus on every row: the reader's durations and sizes
    // must give the file's own total.
    let text = std::fs::read_to_string(traces().join("philly/pollux/philly.csv")).unwrap();
    let want: f64 = text.lines().skip(1).filter(|l| !l.is_empty()).map(|l| l.split(',').nth(3).unwrap().parse::<f64>().unwrap()).sum();
    let got: f64 = pollux().jobs.iter().map(|j| total_gpus(j) * j.duration as f64 / 1000.0).sum();
    assert!((got - want).abs() < 1.0, "{got} vs {want}");
}

#[test]
fn rfold_philly_has_the_published_jobs_and_shapes() {
    let t = philly::read_rfold(&traces().join("philly/rfold/philly_trace.csv"), STRICT).unwrap();
    assert_eq!(t.jobs.len(), 111_549);
    assert!(is_sorted(&t));
    let h = gpu_histogram(&t);
    for (gpus, n) in [(1, 96_662), (4, 5_487), (8, 5_716), (2, 2_522), (16, 852), (32, 212)] {
        assert_eq!(h[&gpus], n, "{gpus} GPUs");
    }
    assert_eq!(h.keys().max(), Some(&128));
    assert!(t.jobs.iter().all(|j| j.spec.tenant == philly::TENANT));
    // `2+2` is a gang of two 2-GPU replicas (931 rows); `4` one 4-GPU replica (4,363).
    let count = |r: u32, g: u32| t.jobs.iter().filter(|j| j.spec.replicas == r && j.spec.gpu == GpuRequest::Whole(g)).count();
    assert_eq!(count(2, 2), 931);
    assert_eq!(count(1, 4), 4_363);
    assert_eq!(count(4, 8), 89);
    // Spans 129.4 days; ten zero durations read as one second.
    let days = t.jobs.last().unwrap().submit as f64 / 8.64e7;
    assert!((days - 129.4).abs() < 0.05, "{days}");
    assert_eq!(t.jobs.iter().filter(|j| j.duration == 1000).count(), t.jobs.iter().filter(|j| j.duration <= 1000).count());
    assert!(t.jobs.iter().filter(|j| j.duration == 1000).count() >= 10);
}

#[test]
fn gavel_msr_has_the_published_rows_and_calibrated_durations() {
    let t = gavel::read(&traces().join("philly/gavel/msr_seed0.tsv"), STRICT).unwrap();
    assert_eq!(t.jobs.len(), 15_264);
    assert!(is_sorted(&t));
    let mut per_vc = BTreeMap::<&str, usize>::new();
    for j in &t.jobs {
        *per_vc.entry(j.spec.tenant.as_str()).or_default() += 1;
    }
    assert_eq!(per_vc.len(), 15);
    assert!(per_vc.values().all(|&n| n <= 2000));
    assert_eq!(per_vc.values().filter(|&&n| n == 2000).count(), 5);
    let want: BTreeMap<u32, usize> =
        [(1, 10_480), (2, 463), (4, 2_044), (7, 2), (8, 1_916), (12, 6), (16, 255), (20, 1), (24, 5), (32, 91), (64, 1)].into();
    assert_eq!(gpu_histogram(&t), want);
    // Calibration: each job type's median duration is Philly's median (1,144 s).
    let text = std::fs::read_to_string(traces().join("philly/gavel/msr_seed0.tsv")).unwrap();
    let mut by_type = BTreeMap::<String, Vec<f64>>::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split('\t').collect();
        let steps: f64 = f[2].parse().unwrap();
        by_type.entry(f[1].to_string()).or_default().push(steps / gavel::steps_per_s(f[1]).unwrap());
    }
    assert_eq!(by_type.len(), 26);
    for (ty, mut d) in by_type {
        d.sort_by(f64::total_cmp);
        let n = d.len();
        let median = if n % 2 == 1 { d[n / 2] } else { (d[n / 2 - 1] + d[n / 2]) / 2.0 };
        assert!((median / gavel::PHILLY_MEDIAN_DURATION_S - 1.0).abs() < 0.001, "{ty}: median {median} s");
    }
}

#[test]
fn philly_machine_list_is_a_cluster_and_vcs_become_tenants() {
    let dir = traces().join("philly/cluster");
    let machines = philly::read_machines(&dir.join("revised_machine_list.csv"), STRICT).unwrap();
    assert_eq!(machines.len(), 552);
    let mut config = philly::cluster(&machines, Default::default());
    assert_eq!(config.nodes.len(), 539);
    let gpus: u32 = config.nodes.iter().map(|n| n.gpus).sum();
    assert_eq!(gpus, 3_205);
    let vcs = philly::read_vcs(&dir.join("philly_vc.csv")).unwrap();
    assert_eq!(vcs.len(), 11);
    assert_eq!(vcs.iter().map(|v| v.nodes).sum::<u32>(), 352);

    let trace = pollux();
    config.tenants = philly::vc_tenants(&philly::vc_gpu_time(&trace), &vcs, 3_205.0, philly::FLAVOR);
    assert_eq!(config.tenants.len(), 15);
    let nominal = |vc: &str| config.tenants.iter().find(|t| t.path == philly::vc_tenant(vc)).unwrap().quota[0].nominal;
    let total: f64 = config.tenants.iter().map(|t| t.quota[0].nominal).sum();
    assert!((3_205.0 - 15.0..=3_205.0).contains(&total), "{total}");
    // Listed VCs share by node count: 6214e9 (64 nodes) gets twice 6c71a0 (32), within flooring.
    assert!((nominal("6214e9") - 2.0 * nominal("6c71a0")).abs() <= 2.0);
    // Unlisted VCs (a few jobs each) get little.
    assert!(nominal("23dbec") < 5.0);

    // The whole thing is a valid model, and every trace job is accepted.
    let mut core = Core::new(&config).unwrap();
    assert_eq!(core.cluster().total_gpus(), 3_205);
    for j in trace.jobs.iter().take(2_000) {
        core.on_event(j.submit, Event::JobSubmitted(j.spec.clone())).unwrap();
    }
}

#[test]
fn missing_tenants_are_added_for_a_replay() {
    let machines = philly::read_machines(&traces().join("philly/cluster/revised_machine_list.csv"), STRICT).unwrap();
    let mut config = philly::cluster(&machines, Default::default());
    let trace = gavel::read(&traces().join("philly/gavel/msr_seed0.tsv"), STRICT).unwrap();
    let added = trace::add_missing_tenants(&mut config, &trace);
    assert_eq!(added.len(), 15);
    assert!(trace::add_missing_tenants(&mut config, &trace).is_empty());
    let mut core = Core::new(&config).unwrap();
    for j in trace.jobs.iter().take(2_000) {
        core.on_event(j.submit, Event::JobSubmitted(j.spec.clone())).unwrap();
    }
}

// ---------------------------------------------------------------- PAI and openb clusters

#[test]
fn pai_machine_spec_is_a_cluster_with_a_flavor_per_gpu_type() {
    let path = traces().join("alibaba-gpu-v2020-pai/pai_machine_spec.csv");
    let machines = pai::read_machines(&path, STRICT).unwrap();
    assert_eq!(machines.len(), 1_897);
    assert_eq!(machines.iter().filter(|m| m.gpus == 0).count(), 83);
    let config = pai::cluster(&machines, Default::default());
    let mut by_type = BTreeMap::<String, (usize, u32)>::new();
    for n in &config.nodes {
        let e = by_type.entry(n.flavor.clone()).or_default();
        e.0 += 1;
        e.1 += n.gpus;
    }
    let want: BTreeMap<String, (usize, u32)> = [
        ("MISC".to_string(), (280, 2_240)),
        ("P100".to_string(), (798, 1_596)),
        ("T4".to_string(), (497, 994)),
        ("V100".to_string(), (104, 832)),
        ("V100M32".to_string(), (135, 1_080)),
    ]
    .into();
    assert_eq!(by_type, want);
    let core = Core::new(&config).unwrap();
    assert_eq!(core.cluster().total_gpus(), 6_742);
    let v100_512 = machines.iter().filter(|m| m.gpu_type == "V100" && m.memory_gb == 512).count();
    assert_eq!(v100_512, 59);
}

#[test]
fn cluster_csvs_are_recognised_by_their_header() {
    let t = traces();
    let openb = trace::read_cluster_csv(&t.join("alibaba-gpu-v2023-openb/openb_node_list_all_node.csv")).unwrap();
    assert_eq!(openb.nodes.len(), 1_213);
    assert_eq!(openb.nodes.iter().map(|n| n.gpus).sum::<u32>(), 6_212);
    let philly = trace::read_cluster_csv(&t.join("philly/cluster/revised_machine_list.csv")).unwrap();
    assert_eq!(philly.nodes.iter().map(|n| n.gpus).sum::<u32>(), 3_205);
    assert_eq!(philly.flavors[0].name, philly::FLAVOR);
    let pai = trace::read_cluster_csv(&t.join("alibaba-gpu-v2020-pai/pai_machine_spec.csv")).unwrap();
    assert_eq!(pai.nodes.iter().map(|n| n.gpus).sum::<u32>(), 6_742);
    // The PAI spec with its header line prepended reads the same.
    let spec = std::fs::read_to_string(t.join("alibaba-gpu-v2020-pai/pai_machine_spec.csv")).unwrap();
    let with_header = temp("pai_with_header.csv", &format!("machine,gpu_type,cap_cpu,cap_mem,cap_gpu\n{spec}"));
    assert_eq!(trace::read_cluster_csv(&with_header).unwrap().nodes.len(), 1_814);
    for c in [&openb, &philly, &pai] {
        Core::new(c).unwrap();
    }
    let e = trace::read_cluster_csv(&t.join("philly/pollux/philly.csv")).unwrap_err().to_string();
    assert!(e.contains("not a known machine list") && e.contains("timestamp,duration"), "{e}");
}

#[test]
fn openb_reads_through_read_trace_and_the_five_column_files_cannot_be_replayed() {
    let dir = traces().join("alibaba-gpu-v2023-openb");
    let t = trace::read_trace(&dir.join("openb_pod_list_default.csv"), TraceFormat::Openb, None, STRICT).unwrap();
    assert_eq!(t.jobs.len(), 8_152);
    assert!(is_sorted(&t));
    let (pods, _) = openb::read_pods(&dir.join("openb_pod_list_multigpu20.csv"), STRICT).unwrap();
    assert_eq!(pods.len(), 8_324);
    assert_eq!(pods.iter().filter(|p| p.num_gpu > 1).count(), 247);
    let e = trace::read_trace(&dir.join("openb_pod_list_multigpu20.csv"), TraceFormat::Openb, None, STRICT).unwrap_err();
    assert!(e.to_string().contains("5-column"), "{e}");
}

#[test]
fn read_trace_dispatches_and_guards_the_mapping() {
    let t = traces();
    let n = |path: &str, f| trace::read_trace(&t.join(path), f, None, STRICT).unwrap().jobs.len();
    assert_eq!(n("philly/pollux/philly.csv", TraceFormat::PhillyPollux), 82_247);
    assert_eq!(n("philly/rfold/philly_trace.csv", TraceFormat::PhillyRfold), 111_549);
    assert_eq!(n("philly/gavel/msr_seed0.tsv", TraceFormat::Gavel), 15_264);
    let e = trace::read_trace(&t.join("philly/pollux/philly.csv"), TraceFormat::Generic, None, STRICT).unwrap_err();
    assert!(matches!(e, TraceError::Mapping(ref m) if m.contains("--map")), "{e}");
    let m = Mapping::from_pairs("submit=timestamp,duration=duration,gpus=num_gpus").unwrap();
    let e = trace::read_trace(&t.join("philly/pollux/philly.csv"), TraceFormat::Gavel, Some(&m), STRICT).unwrap_err();
    assert!(matches!(e, TraceError::Mapping(ref m) if m.contains("generic format only")), "{e}");
}

// ---------------------------------------------------------------- bad input

#[test]
fn a_bad_number_names_file_line_column_and_reason_or_is_skipped() {
    let text = "timestamp,duration,num_gpus,gpu_time,cluster\n\
                2017-10-09 07:01:55,66.0,1,66.0,11cb48\n\
                2017-10-09 07:02:55,abc,1,66.0,11cb48\n\
                2017-10-09 07:03:55,60.0,1,60.0,11cb48\n\
                2017-10-09 07:04:55,60.0,two,60.0,11cb48\n\
                2017-13-09 07:04:55,60.0,1,60.0,11cb48\n\
                2017-10-09 07:05:55,60.0,1,60.0\n";
    let p = temp("pollux_bad.csv", text);
    assert_bad_row(philly::read_pollux(&p, STRICT).unwrap_err(), &p, 3, "duration", "`abc` is not a valid number");
    let t = philly::read_pollux(&p, SKIP).unwrap();
    assert_eq!((t.jobs.len(), t.skipped_rows), (2, 4));
    // One by one, each later bad row is found where it is.
    let lines: Vec<&str> = text.lines().collect();
    let only = |bad: usize| temp(&format!("pollux_bad_{bad}.csv"), &format!("{}\n{}\n{}\n", lines[0], lines[1], lines[bad]));
    let p = only(4);
    assert_bad_row(philly::read_pollux(&p, STRICT).unwrap_err(), &p, 3, "num_gpus", "`two`");
    let p = only(5);
    assert_bad_row(philly::read_pollux(&p, STRICT).unwrap_err(), &p, 3, "timestamp", "not a datetime");
    let p = only(6);
    assert_bad_row(philly::read_pollux(&p, STRICT).unwrap_err(), &p, 3, "cluster", "the row has 4 fields, the header 5");
}

#[test]
fn a_missing_column_is_named() {
    let p = temp("pollux_nocol.csv", "timestamp,duration,gpu_time,cluster\n2017-10-09 07:01:55,66.0,66.0,11cb48\n");
    match philly::read_pollux(&p, STRICT).unwrap_err() {
        TraceError::MissingColumn { path, column, header } => {
            assert_eq!((path.as_path(), column.as_str()), (p.as_path(), "num_gpus"));
            assert_eq!(header, "timestamp,duration,gpu_time,cluster");
        }
        e => panic!("{e:?}"),
    }
    let p = temp("gavel_nocol.tsv", "vc\tjob_type\ttotal_steps\tscale_factor\n");
    let e = gavel::read(&p, STRICT).unwrap_err();
    assert!(matches!(e, TraceError::MissingColumn { ref column, .. } if column == "arrival_time_s"), "{e}");
}

#[test]
fn bad_rows_of_the_other_readers_are_located() {
    let p = temp(
        "rfold_bad.csv",
        "#job id,arrival time (sec),topology,shape,size,duration (sec)\n0,0.0,CLOS,2+2,4,10.0\n1,1.0,CLOS,2+x,4,10.0\n2,1.0,CLOS,2+2,5,10.0\n3,1.0,CLOS,1,1,-4",
    );
    assert_bad_row(philly::read_rfold(&p, STRICT).unwrap_err(), &p, 3, "shape", "2+x");
    let t = philly::read_rfold(&p, SKIP).unwrap();
    assert_eq!((t.jobs.len(), t.skipped_rows), (1, 3));
    let p = temp("rfold_size.csv", "#job id,arrival time (sec),topology,shape,size,duration (sec)\n2,1.0,CLOS,2+2,5,10.0\n");
    assert_bad_row(philly::read_rfold(&p, STRICT).unwrap_err(), &p, 2, "size", "not the sum of shape");
    let p = temp("rfold_neg.csv", "#job id,arrival time (sec),topology,shape,size,duration (sec)\n3,1.0,CLOS,1,1,-4\n");
    assert_bad_row(philly::read_rfold(&p, STRICT).unwrap_err(), &p, 2, "duration (sec)", "non-negative");

    let p =
        temp("gavel_bad.tsv", "vc\tjob_type\ttotal_steps\tarrival_time_s\tscale_factor\nab\tCycleGAN\t100\t0\t1\nab\tDoom\t100\t1\t1\n");
    assert_bad_row(gavel::read(&p, STRICT).unwrap_err(), &p, 3, "job_type", "unknown Gavel job type `Doom`");
    assert_eq!(gavel::read(&p, SKIP).unwrap().skipped_rows, 1);

    let p = temp("machines_bad.csv", ",machineId,number of GPUs\n0,m0,8\n1,m1\n");
    assert_bad_row(philly::read_machines(&p, STRICT).unwrap_err(), &p, 3, "number of GPUs", "missing");

    let p = temp("pai_bad.csv", "a,V100,96,512,8\nb,V100,96,512\nc,V100,96,lots,8\n");
    assert_bad_row(pai::read_machines(&p, STRICT).unwrap_err(), &p, 2, "cap_gpu", "the row has 4 fields, the header 5");
    assert_eq!(pai::read_machines(&p, SKIP).unwrap().len(), 1);
    let p = temp("pai_bad2.csv", "a,V100,96,512,8\nc,V100,96,lots,8\n");
    assert_bad_row(pai::read_machines(&p, STRICT).unwrap_err(), &p, 2, "cap_mem", "`lots`");
}

// ---------------------------------------------------------------- generic

#[test]
fn generic_mapping_reads_pollux_exactly_as_its_own_reader() {
    let m = Mapping::from_pairs(
        "submit=timestamp,time.format=%Y-%m-%d %H:%M:%S,duration=duration,gpus=num_gpus,tenant=cluster,tenant_prefix=philly/,time.origin=first",
    )
    .unwrap();
    let path = traces().join("philly/pollux/philly.csv");
    let generic = trace::read_trace(&path, TraceFormat::Generic, Some(&m), STRICT).unwrap();
    assert_eq!(generic, pollux());
}

#[test]
fn generic_examples_in_the_docs_read_as_documented() {
    let doc = std::fs::read_to_string(repo().join("docs/traces.md")).unwrap();
    let dir = repo().join("examples/traces");
    // The CSV example with its TOML mapping.
    assert!(doc.contains("--map examples/traces/jobs.mapping.toml"));
    let m = Mapping::from_file(&dir.join("jobs.mapping.toml")).unwrap();
    let t = generic::read(&dir.join("jobs.csv"), &m, STRICT).unwrap();
    type Row<'a> = (i64, i64, &'a str, &'a str, u32, GpuRequest, Option<&'a str>, Option<u64>);
    let got: Vec<Row> = t
        .jobs
        .iter()
        .map(|j| {
            (
                j.submit,
                j.duration,
                j.spec.tenant.as_str(),
                j.spec.user.as_str(),
                j.spec.replicas,
                j.spec.gpu,
                j.spec.class.as_deref(),
                j.spec.walltime_s,
            )
        })
        .collect();
    let want = vec![
        (0, 7_200_000, "lab/speech", "carol", 2, GpuRequest::Whole(8), Some("training"), Some(10_800)),
        (60_000, 3_600_000, "lab/vision", "alice", 1, GpuRequest::Whole(8), Some("training"), Some(5_400)),
        (390_000, 600_000, "lab/vision", "bob", 1, GpuRequest::Whole(1), None, None),
        (1_260_000, 1_800_000, "lab/speech", "dave", 1, GpuRequest::Milli(500), Some("interactive"), Some(3_600)),
        (3_660_000, 86_400_000, "lab/nlp", "erin", 8, GpuRequest::Whole(4), Some("training"), None),
        (3_660_000, 120_000, "lab/shared", "frank", 1, GpuRequest::Whole(2), None, Some(300)),
    ];
    assert_eq!(got, want);
    // The JSONL example with its pairs.
    let pairs = "submit=t,duration=secs,gpus=gpus,tenant=team,time.origin=zero";
    assert!(doc.contains(pairs));
    let t = trace::read_trace(&dir.join("jobs.jsonl"), TraceFormat::Generic, Some(&Mapping::from_pairs(pairs).unwrap()), STRICT).unwrap();
    let got: Vec<(i64, &str, u32, GpuRequest)> =
        t.jobs.iter().map(|j| (j.submit, j.spec.tenant.as_str(), j.spec.replicas, j.spec.gpu)).collect();
    assert_eq!(
        got,
        vec![
            (0, "vision", 1, GpuRequest::Whole(4)),
            (30_000, "speech", 1, GpuRequest::Milli(250)),
            (45_500, "vision", 2, GpuRequest::Whole(8))
        ]
    );
}

#[test]
fn generic_mapping_errors_name_the_column() {
    let csv = temp("generic.csv", "arrival,run,g,vc\n0,10,1,a\n5,x,1,a\n7,10\n");
    // A mapped column the file lacks.
    let m = Mapping::from_pairs("submit=arrival,duration=run_s,gpus=g").unwrap();
    match generic::read(&csv, &m, STRICT).unwrap_err() {
        TraceError::MissingColumn { column, header, .. } => {
            assert_eq!(column, "run_s");
            assert_eq!(header, "arrival,run,g,vc");
        }
        e => panic!("{e:?}"),
    }
    // An unknown key.
    let e = Mapping::from_pairs("submit=arrival,durration=run").unwrap_err();
    assert!(matches!(e, TraceError::Mapping(ref m) if m.contains("`durration`")), "{e}");
    // A bad value and a short row.
    let m = Mapping::from_pairs("submit=arrival,duration=run,gpus=g,tenant=vc").unwrap();
    assert_bad_row(generic::read(&csv, &m, STRICT).unwrap_err(), &csv, 3, "run", "`x` is not a valid number");
    let t = generic::read(&csv, &m, SKIP).unwrap();
    assert_eq!((t.jobs.len(), t.skipped_rows), (1, 2));
    let short = temp("generic_short.csv", "arrival,run,g,vc\n7,10\n");
    assert_bad_row(generic::read(&short, &m, STRICT).unwrap_err(), &short, 2, "g", "the row has 2 fields, the header 4");
    // An end before the submit, a negative time at origin zero, gangs that do not split.
    let csv = temp("generic_end.csv", "s,e,g,n\n10,5,1,1\n-3,5,1,1\n0,5,6,4\n");
    let m = Mapping::from_pairs("submit=s,end=e,gpus=g,gpus_per_node=n,time.origin=zero").unwrap();
    assert_bad_row(generic::read(&csv, &m, STRICT).unwrap_err(), &csv, 2, "e", "ends before");
    let t = generic::read(&csv, &m, SKIP).unwrap();
    assert_eq!((t.jobs.len(), t.skipped_rows), (0, 3));
    let only = temp("generic_split.csv", "s,e,g,n\n0,5,6,4\n");
    assert_bad_row(generic::read(&only, &m, STRICT).unwrap_err(), &only, 2, "n", "do not split");
    // JSONL: a key the first record lacks is a missing column; a later bad record a bad row.
    let jl = temp("generic.jsonl", "{\"t\":0,\"d\":1,\"g\":1}\n\n{\"t\":1,\"d\":\"long\",\"g\":1}\n{\"t\":1\n");
    let m = Mapping::from_pairs("submit=t,duration=d,gpus=gpus").unwrap();
    let e = generic::read(&jl, &m, STRICT).unwrap_err();
    assert!(matches!(e, TraceError::MissingColumn { ref column, .. } if column == "gpus"), "{e}");
    let m = Mapping::from_pairs("submit=t,duration=d,gpus=g").unwrap();
    assert_bad_row(generic::read(&jl, &m, STRICT).unwrap_err(), &jl, 3, "d", "`long`");
    let t = generic::read(&jl, &m, SKIP).unwrap();
    assert_eq!((t.jobs.len(), t.skipped_rows), (1, 2));
    // A mapping file with an unknown key names the file and the key.
    let f = temp("bad_mapping.toml", "submit = 'a'\n[units]\ntme = 's'\n");
    let e = Mapping::from_file(&f).unwrap_err().to_string();
    assert!(e.contains("bad_mapping.toml") && e.contains("`units.tme`"), "{e}");
}

#[test]
fn time_units_and_datetimes_convert() {
    let csv = temp("units.csv", "at,run,wall,g\n1.5,2,3,1\n0.5,1,1,1\n");
    let m = Mapping::from_pairs("submit=at,duration=run,walltime=wall,gpus=g,units.time=h,units.duration=min,units.walltime=min").unwrap();
    let t = generic::read(&csv, &m, STRICT).unwrap();
    assert_eq!(t.jobs[0].submit, 0);
    assert_eq!(t.jobs[1].submit, 3_600_000);
    assert_eq!(t.jobs[1].duration, 120_000);
    assert_eq!(t.jobs[1].spec.walltime_s, Some(180));
    let m = Mapping::from_pairs("submit=at,duration=run,gpus=g,units.time=ms,time.origin=zero").unwrap();
    let t = generic::read(&csv, &m, STRICT).unwrap();
    assert_eq!((t.jobs[0].submit, t.jobs[0].duration), (1, 1000));
    let csv = temp("dates.csv", "start,stop,g\n2024-01-01 00:00:00,2024-01-02 00:00:00,1\n2023-12-31 23:00:00,2024-01-01T00:30:00Z,1\n");
    let m = Mapping::from_pairs("submit=start,end=stop,gpus=g,time.format=datetime").unwrap();
    let t = generic::read(&csv, &m, STRICT).unwrap();
    assert_eq!((t.jobs[0].submit, t.jobs[0].duration), (0, 5_400_000));
    assert_eq!((t.jobs[1].submit, t.jobs[1].duration), (3_600_000, 86_400_000));
}

// ---------------------------------------------------------------- allot format

#[test]
fn allot_format_round_trips_a_real_trace() {
    let t = pollux();
    let p = temp("pollux.jsonl", "");
    allot::write(&p, &t).unwrap();
    let back = trace::read_trace(&p, TraceFormat::Allot, None, STRICT).unwrap();
    assert_eq!(back, t);
}

#[test]
fn allot_format_bad_lines_name_line_and_field() {
    let p = temp(
        "bad.jsonl",
        "{\"id\":0,\"submit_s\":0,\"duration_s\":1,\"tenant\":\"a\",\"gpus\":1}\n\
         {\"id\":1,\"submit_s\":0,\"duration_s\":1,\"tenant\":\"a\",\"gpus\":1,\"gpu\":2}\n\
         {\"id\":2,\"submit_s\":0,\"duration_s\":1,\"tenant\":\"a\",\"replicas\":0}\n\
         not json\n",
    );
    assert_bad_row(allot::read(&p, STRICT).unwrap_err(), &p, 2, "gpu", "unknown field `gpu`");
    let t = allot::read(&p, SKIP).unwrap();
    assert_eq!((t.jobs.len(), t.skipped_rows), (1, 3));
    let p = temp("bad2.jsonl", "\n{\"id\":2,\"submit_s\":0,\"duration_s\":1,\"tenant\":\"a\",\"replicas\":0}\n");
    assert_bad_row(allot::read(&p, STRICT).unwrap_err(), &p, 2, "replicas", "at least one replica");
}

// ---------------------------------------------------------------- generator

fn bytes(trace: &Trace) -> Vec<u8> {
    let mut out = Vec::new();
    allot::write_to(&mut out, &trace.jobs).unwrap();
    out
}

#[test]
fn embedded_philly_calibration_is_the_trace_s() {
    assert_eq!(Calibration::from_trace(&pollux()), Calibration::philly());
}

#[test]
fn generator_is_deterministic() {
    for profile in [Profile::Philly, Profile::National] {
        let opts = GenerateOptions { profile, jobs: Some(3_000), days: Some(10.0), seed: 42, ..Default::default() };
        let a = bytes(&synth::generate(&opts, None).unwrap());
        let b = bytes(&synth::generate(&opts, None).unwrap());
        assert_eq!(a, b, "{profile}");
        let c = bytes(&synth::generate(&GenerateOptions { seed: 43, ..opts.clone() }, None).unwrap());
        assert_ne!(a, c, "{profile}");
    }
}

#[test]
fn philly_profile_follows_the_trace_s_distributions() {
    let source = pollux();
    let opts = GenerateOptions { profile: Profile::Philly, jobs: Some(40_000), days: Some(30.0), seed: 7, ..Default::default() };
    let generated = synth::generate(&opts, None).unwrap();
    assert_eq!(generated.jobs.len(), 40_000);
    assert!(is_sorted(&generated));
    assert!(generated.jobs.iter().enumerate().all(|(i, j)| j.spec.id.0 == i as u64));
    assert!(generated.jobs.last().unwrap().submit < 30 * 86_400_000);
    let share = |t: &Trace, g: u32| t.jobs.iter().filter(|j| total_gpus(j) as u32 == g).count() as f64 / t.jobs.len() as f64;
    for g in [1, 2, 4, 8, 16, 32] {
        let (a, b) = (share(&source, g), share(&generated, g));
        // Four binomial standard deviations of the generated share.
        let tolerance = 4.0 * (a * (1.0 - a) / generated.jobs.len() as f64).sqrt() + 1e-4;
        assert!((a - b).abs() < tolerance, "{g} GPUs: source {a:.4}, generated {b:.4}");
    }
    let quantile = |t: &Trace, q: f64| {
        let mut d: Vec<i64> = t.jobs.iter().map(|j| j.duration).collect();
        d.sort_unstable();
        d[((d.len() - 1) as f64 * q) as usize] as f64
    };
    for q in [0.25, 0.5, 0.75, 0.9] {
        let (a, b) = (quantile(&source, q), quantile(&generated, q));
        assert!((b / a - 1.0).abs() < 0.1, "p{}: source {a}, generated {b}", q * 100.0);
    }
    let vc = |t: &Trace| t.jobs.iter().filter(|j| j.spec.tenant == "philly/6214e9").count() as f64 / t.jobs.len() as f64;
    assert!((vc(&source) - vc(&generated)).abs() < 0.02);
    // Every generated job runs on the Philly cluster with its VCs.
    let machines = philly::read_machines(&traces().join("philly/cluster/revised_machine_list.csv"), STRICT).unwrap();
    let mut config = philly::cluster(&machines, Default::default());
    trace::add_missing_tenants(&mut config, &generated);
    let mut core = Core::new(&config).unwrap();
    for j in generated.jobs.iter().take(5_000) {
        core.on_event(j.submit, Event::JobSubmitted(j.spec.clone())).unwrap();
    }
}

#[test]
fn generated_load_matches_the_target() {
    // Without --jobs, the period's GPU time at the load decides the count.
    let opts = GenerateOptions { profile: Profile::Philly, days: Some(60.0), load: 0.5, seed: 3, ..Default::default() };
    let t = synth::generate(&opts, None).unwrap();
    let work: f64 = t.jobs.iter().map(|j| total_gpus(j) * j.duration as f64).sum();
    let offered = work / (synth::PHILLY_GPUS * 60.0 * 8.64e7);
    assert!((0.48..0.55).contains(&offered), "{offered}");
    // With --jobs alone, the period is what they fill.
    let opts = GenerateOptions { profile: Profile::Philly, jobs: Some(5_000), load: 0.8, seed: 3, ..Default::default() };
    let t = synth::generate(&opts, None).unwrap();
    let work: f64 = t.jobs.iter().map(|j| total_gpus(j) * j.duration as f64).sum();
    let span = t.jobs.last().unwrap().submit as f64;
    let offered = work / (synth::PHILLY_GPUS * span);
    assert!((0.75..0.9).contains(&offered), "{offered}");
    for bad in [GenerateOptions { load: 0.0, ..Default::default() }, GenerateOptions { jobs: Some(0), ..Default::default() }] {
        assert!(matches!(synth::generate(&bad, None), Err(TraceError::Generate(_))));
    }
}

#[test]
fn national_profile_makes_the_scenario_s_kinds_of_work() {
    let config = allot_core::workload::reference_cluster(260_000);
    let opts = GenerateOptions { profile: Profile::National, days: Some(2.0), seed: 1, ..Default::default() };
    let t = synth::generate(&opts, Some(&config)).unwrap();
    assert!(is_sorted(&t));
    assert!(t.jobs.last().unwrap().submit < 2 * 86_400_000);
    let work: f64 = t.jobs.iter().map(|j| total_gpus(j) * j.duration as f64).sum();
    let offered = work / (260_000.0 * 2.0 * 8.64e7);
    assert!((offered / synth::DEFAULT_LOAD - 1.0).abs() < 0.05, "{offered}");
    let pretrain: Vec<_> = t.jobs.iter().filter(|j| total_gpus(j) >= 1024.0).collect();
    assert!(!pretrain.is_empty());
    assert!(pretrain.iter().all(|j| total_gpus(j) <= 8192.0 && j.duration >= 86_400_000 && j.spec.checkpoint_interval_s.is_some()));
    let finetune = t.jobs.iter().filter(|j| (8.0..=256.0).contains(&total_gpus(j)) && j.spec.replicas > 1).count();
    assert!(finetune > 0);
    let notebooks = t.jobs.iter().filter(|j| matches!(j.spec.gpu, GpuRequest::Milli(_))).count();
    assert!(notebooks > 0);
    assert!(t.jobs.iter().all(|j| j.spec.walltime_s.is_some_and(|w| w * 1000 >= j.duration as u64)));
    // Every job names a tenant, flavors and topology level of the cluster.
    let mut core = Core::new(&config).unwrap();
    for j in &t.jobs {
        core.on_event(j.submit, Event::JobSubmitted(j.spec.clone())).unwrap();
    }
}

#[test]
fn generator_uses_the_cluster_s_leaf_tenants_and_exact_counts() {
    let text = std::fs::read_to_string(repo().join("examples/small-cluster.toml")).unwrap();
    let config = allot_core::Config::from_toml(&text).unwrap();
    let paths: Vec<&str> = config.tenants.iter().map(|t| t.path.as_str()).collect();
    let leaves: Vec<&str> = paths.iter().copied().filter(|p| !paths.iter().any(|o| o.starts_with(&format!("{p}/")))).collect();
    assert!(leaves.len() >= 2);
    for profile in [Profile::Philly, Profile::National] {
        let opts = GenerateOptions { profile, jobs: Some(2_000), days: Some(3.0), seed: 5, ..Default::default() };
        let t = synth::generate(&opts, Some(&config)).unwrap();
        assert_eq!(t.jobs.len(), 2_000, "{profile}");
        let used: std::collections::BTreeSet<&str> = t.jobs.iter().map(|j| j.spec.tenant.as_str()).collect();
        assert_eq!(used, leaves.iter().copied().collect(), "{profile}");
        let mut core = Core::new(&config).unwrap();
        for j in &t.jobs {
            core.on_event(j.submit, Event::JobSubmitted(j.spec.clone())).unwrap();
        }
    }
}

#[test]
fn absurd_numbers_are_bad_rows_not_overflows() {
    let p = temp("rfold_huge.csv", "#job id,arrival time (sec),topology,shape,size,duration (sec)\n0,1e300,CLOS,1,1,10\n");
    assert_bad_row(philly::read_rfold(&p, STRICT).unwrap_err(), &p, 2, "arrival time (sec)", "too large");
    let p = temp("generic_huge.csv", "s,d,g\n-1e300,1,1\n1e300,1,1\n");
    let m = Mapping::from_pairs("submit=s,duration=d,gpus=g").unwrap();
    assert_bad_row(generic::read(&p, &m, STRICT).unwrap_err(), &p, 2, "s", "too far from zero");
    let p = temp(
        "gavel_huge.tsv",
        "vc\tjob_type\ttotal_steps\tarrival_time_s\tscale_factor\nab\tRecommendation (batch size 512)\t18446744073709551615\t0\t1\n",
    );
    assert_bad_row(gavel::read(&p, STRICT).unwrap_err(), &p, 2, "total_steps", "too long");
}
