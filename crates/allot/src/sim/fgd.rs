//! `allot sim fgd`: the FGD experiment on openb (see `allot_sim::fgd`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use allot_core::PlacementPolicy;
use allot_sim::fgd::{self, Experiment, Run};
use allot_sim::fgd_plot;
use allot_sim::trace::ReadOptions;
use allot_sim::trace::openb;
use anyhow::{Context, bail};
use rayon::prelude::*;
use serde_json::{Value, json};

const ALL_POLICIES: &str = "random,dotprod,clustering,packing,bestfit,fgd,default";
/// Arrived workload is reported up to this percent of capacity.
const MAX_PCT: u32 = 130;

#[derive(clap::Args, Debug)]
pub struct FgdArgs {
    /// Node list CSV (`openb_node_list_gpu_node.csv`).
    #[arg(long)]
    nodes: PathBuf,
    /// Pod list CSV (`openb_pod_list_default.csv`, or any variant).
    #[arg(long, required_unless_present = "pods_dir")]
    pods: Option<PathBuf>,
    /// Directory of pod lists, with `--workloads`: runs each workload of the grid.
    #[arg(long, conflicts_with = "pods")]
    pods_dir: Option<PathBuf>,
    /// Workloads to run from `--pods-dir`: `paper` (the paper's 17) or names such as
    /// `default,cpu050` (files `openb_pod_list_<name>.csv`).
    #[arg(long, default_value = "paper", requires = "pods_dir")]
    workloads: String,
    /// Placement policies, comma separated.
    #[arg(long, default_value = ALL_POLICIES)]
    policies: String,
    /// Seeds: a range `42-51` or a list `42,43`.
    #[arg(long, default_value = "42-51")]
    seeds: String,
    /// Arrived GPU request to reach, as a multiple of cluster GPU capacity.
    #[arg(long, default_value_t = 1.3)]
    tune: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Write curves (CSV) and plots (SVG, PNG) into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Skip malformed rows (counted) instead of failing.
    #[arg(long)]
    skip_bad_rows: bool,
}

/// Parses `42-51` or `42,43,50`.
pub fn parse_seeds(s: &str) -> anyhow::Result<Vec<u64>> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        let a: u64 = a.trim().parse().with_context(|| format!("--seeds: `{a}` is not a number"))?;
        let b: u64 = b.trim().parse().with_context(|| format!("--seeds: `{b}` is not a number"))?;
        if b < a {
            bail!("--seeds: range {a}-{b} is empty");
        }
        if b - a >= 10_000 {
            bail!("--seeds: range {a}-{b} has more than 10,000 seeds");
        }
        return Ok((a..=b).collect());
    }
    s.split(',').map(|x| x.trim().parse::<u64>().with_context(|| format!("--seeds: `{x}` is not a number"))).collect()
}

/// Parses the policy list, keeping the given order.
pub fn parse_policies(s: &str) -> anyhow::Result<Vec<(String, PlacementPolicy)>> {
    let mut out: Vec<(String, PlacementPolicy)> = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let p = fgd::policy_by_name(name).with_context(|| format!("--policies: unknown policy `{name}` (known: {ALL_POLICIES})"))?;
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), p));
        }
    }
    if out.is_empty() {
        bail!("--policies: no policy given");
    }
    Ok(out)
}

pub fn run(args: FgdArgs) -> anyhow::Result<()> {
    let seeds = parse_seeds(&args.seeds)?;
    let policies = parse_policies(&args.policies)?;
    if !(args.tune > 0.0 && args.tune <= 10.0) {
        bail!("--tune: {} is not in (0, 10]", args.tune);
    }
    let opts = ReadOptions { skip_bad_rows: args.skip_bad_rows };
    let nodes = openb::read_nodes(&args.nodes, opts)?;
    if nodes.iter().all(|n| n.gpus == 0) {
        bail!("{}: no node has a GPU", args.nodes.display());
    }
    let workloads: Vec<(String, PathBuf)> = match (&args.pods, &args.pods_dir) {
        (Some(p), _) => vec![(workload_name(p), p.clone())],
        (None, Some(dir)) => {
            let names: Vec<String> = if args.workloads == "paper" {
                fgd::PAPER_WORKLOADS.iter().map(|s| s.to_string()).collect()
            } else {
                args.workloads.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
            };
            names.into_iter().map(|n| (n.clone(), dir.join(format!("openb_pod_list_{n}.csv")))).collect()
        }
        (None, None) => bail!("give --pods FILE or --pods-dir DIR"),
    };
    let mut experiments = Vec::new();
    for (name, path) in &workloads {
        let (pods, skipped) = openb::read_pods(path, opts)?;
        if skipped > 0 {
            eprintln!("{}: skipped {skipped} bad rows", path.display());
        }
        if pods.is_empty() {
            bail!("{}: no pods", path.display());
        }
        experiments.push((name.clone(), Experiment::new(nodes.clone(), pods, args.tune)));
    }

    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.threads.unwrap_or(0)).build().context("cannot start worker threads")?;
    let mut jobs: Vec<(usize, usize, u64)> = Vec::new();
    for w in 0..experiments.len() {
        for p in 0..policies.len() {
            jobs.extend(seeds.iter().map(|&s| (w, p, s)));
        }
    }
    let started = Instant::now();
    let runs: Vec<Run> = pool.install(|| jobs.par_iter().map(|&(w, p, s)| experiments[w].1.run(policies[p].1, s)).collect());
    let wall = started.elapsed().as_secs_f64();

    // Results by workload, then policy.
    let mut results: Results = BTreeMap::new();
    for w in 0..experiments.len() {
        for (p, (name, _)) in policies.iter().enumerate() {
            let rs: Vec<&Run> = jobs.iter().zip(&runs).filter(|((jw, jp, _), _)| *jw == w && *jp == p).map(|(_, r)| r).collect();
            let mut failed: Vec<f64> = rs.iter().map(|r| r.failed as f64).collect();
            let failed = fgd::median(&mut failed).unwrap_or(0.0);
            results.entry(w).or_default().push((name.clone(), fgd::median_curves(&rs, MAX_PCT), failed));
        }
    }

    if let Some(dir) = &args.out {
        write_out(dir, &experiments, &results, &runs, &jobs, &policies)?;
    }
    let by_policy = |w: usize| -> Value {
        let mut obj = serde_json::Map::new();
        for (name, curve, _) in &results[&w] {
            let pct = |k: usize| {
                curve.iter().enumerate().filter_map(move |(i, c)| c.map(|c| (i.to_string(), json!(round2(if k == 0 { c.0 } else { c.1 })))))
            };
            obj.insert(
                name.clone(),
                json!({
                    "alloc_pct": pct(0).collect::<serde_json::Map<_, _>>(),
                    "frag_ratio_pct": pct(1).collect::<serde_json::Map<_, _>>(),
                }),
            );
        }
        Value::Object(obj)
    };
    if args.json {
        let out = if experiments.len() == 1 && args.pods.is_some() {
            json!({"runs": runs.len(), "wall_seconds": wall, "threads": pool.current_num_threads(), "policies": by_policy(0)})
        } else {
            let ws: serde_json::Map<String, Value> =
                experiments.iter().enumerate().map(|(w, (name, _))| (name.clone(), json!({"policies": by_policy(w)}))).collect();
            json!({"runs": runs.len(), "wall_seconds": wall, "threads": pool.current_num_threads(), "workloads": ws})
        };
        println!("{out}");
        return Ok(());
    }
    for (w, (name, exp)) in experiments.iter().enumerate() {
        println!(
            "workload {name}: {} nodes, {} GPUs, {} pods in the list; {} seeds x {} policies",
            exp.nodes.iter().filter(|n| n.gpus > 0).count(),
            exp.capacity_milli / 1000,
            exp.pods.len(),
            seeds.len(),
            policies.len()
        );
        println!("{:<12} {:>14} {:>10} {:>8} {:>14} {:>14}", "policy", "alloc@100 (%)", "published", "diff", "frag@100 (%)", "failed pods");
        for (pname, curve, failed) in &results[&w] {
            let at = curve.get(100).copied().flatten();
            let published = fgd::PUBLISHED_AT_100.iter().find(|(n, _)| n == pname).map(|p| p.1);
            let (pub_s, diff_s) = match (published, at, name.as_str()) {
                (Some(v), Some(a), "default") => (format!("{v:.2}"), format!("{:+.2}", a.0 - v)),
                _ => ("-".into(), "-".into()),
            };
            println!(
                "{:<12} {:>14} {:>10} {:>8} {:>14} {:>14.0}",
                pname,
                at.map_or("-".into(), |a| format!("{:.2}", a.0)),
                pub_s,
                diff_s,
                at.map_or("-".into(), |a| format!("{:.2}", a.1)),
                failed
            );
        }
        println!();
    }
    println!(
        "{} runs in {:.2} s on {} threads ({:.3} s per run)",
        runs.len(),
        wall,
        pool.current_num_threads(),
        wall / runs.len().max(1) as f64
    );
    Ok(())
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// `openb_pod_list_cpu050.csv` → `cpu050`.
fn workload_name(p: &Path) -> String {
    let stem = p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    stem.strip_prefix("openb_pod_list_").map(str::to_string).unwrap_or(stem)
}

type Results = BTreeMap<usize, Vec<(String, Vec<Option<(f64, f64)>>, f64)>>;

/// Writes `<workload>_curves.csv` (median curves per policy), `<workload>_runs.csv`
/// (alloc % at 100 per seed) and the plots.
fn write_out(
    dir: &Path,
    experiments: &[(String, Experiment)],
    results: &Results,
    runs: &[Run],
    jobs: &[(usize, usize, u64)],
    policies: &[(String, PlacementPolicy)],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (w, (name, _)) in experiments.iter().enumerate() {
        let mut csv = String::from("policy,arrived_pct,alloc_pct,frag_ratio_pct\n");
        for (pname, curve, _) in &results[&w] {
            for (k, c) in curve.iter().enumerate() {
                if let Some((a, f)) = c {
                    csv.push_str(&format!("{pname},{k},{a:.4},{f:.4}\n"));
                }
            }
        }
        let path = dir.join(format!("{name}_curves.csv"));
        std::fs::write(&path, csv).with_context(|| format!("cannot write {}", path.display()))?;
        let mut per_seed = String::from("policy,seed,pods,failed,alloc_pct_at_100\n");
        for ((jw, jp, seed), run) in jobs.iter().zip(runs) {
            if *jw == w {
                let at = run.by_arrived_pct(100)[100].map_or(f64::NAN, |c| c.0);
                per_seed.push_str(&format!("{},{seed},{},{},{at:.4}\n", policies[*jp].0, run.pods, run.failed));
            }
        }
        let path = dir.join(format!("{name}_runs.csv"));
        std::fs::write(&path, per_seed).with_context(|| format!("cannot write {}", path.display()))?;
        let curves: Vec<fgd_plot::Curve> = results[&w]
            .iter()
            .map(|(pname, curve, _)| fgd_plot::Curve {
                policy: pname,
                points: curve.iter().enumerate().filter_map(|(k, c)| c.map(|(a, f)| (k as f64, a, f))).collect(),
            })
            .collect();
        fgd_plot::plot(dir, name, &curves)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_as_range_or_list() {
        assert_eq!(parse_seeds("42-45").unwrap(), vec![42, 43, 44, 45]);
        assert_eq!(parse_seeds("1,5, 9").unwrap(), vec![1, 5, 9]);
        assert!(parse_seeds("9-1").unwrap_err().to_string().contains("empty"));
        assert!(parse_seeds("a-3").unwrap_err().to_string().contains("`a`"));
    }

    #[test]
    fn policies_parse_in_order_and_unknown_is_named() {
        let p = parse_policies("fgd,random,fgd").unwrap();
        assert_eq!(p.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), vec!["fgd", "random"]);
        assert!(parse_policies("best").unwrap_err().to_string().contains("`best`"));
    }

    #[test]
    fn workload_name_strips_the_list_prefix() {
        assert_eq!(workload_name(Path::new("/x/openb_pod_list_cpu050.csv")), "cpu050");
        assert_eq!(workload_name(Path::new("pods.csv")), "pods");
    }
}
