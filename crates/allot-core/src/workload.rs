//! Reference clusters and synthetic job mixes, shared by `allot bench scheduler`, the
//! criterion benchmarks and tests. Deterministic given the seed.

use crate::config::{Config, FlavorConfig, NodeConfig, QuotaConfig, TenantConfig, TopologyConfig};
use crate::ids::JobId;
use crate::job::{GpuRequest, JobSpec, TopologyConstraint};
use crate::rng::SeededRng;

/// GPUs per node in the reference cluster.
pub const GPUS_PER_NODE: u32 = 8;
/// Nodes per leaf (rack / NVLink domain) and leaves per block.
pub const NODES_PER_LEAF: u32 = 16;
pub const LEAVES_PER_BLOCK: u32 = 32;

/// The three flavors of the reference cluster.
pub const FLAVORS: [&str; 3] = ["H100-80G", "H200-141G", "B200-192G"];

/// The reference national cluster scaled to `gpus`: five sites holding 50k, 50k,
/// 50k, 50k and 60k of every 260k GPUs, 8-GPU nodes, leaves of 16 nodes, blocks of
/// 32 leaves; site 1 (the national AI centre) is B200, sites 2 and 5 H200, 3 and 4
/// H100. 20 tenants: 4 organisations of 5 teams, nominal quotas summing to the
/// cluster, lending limits on half of the teams and borrowing limits on some.
pub fn reference_cluster(gpus: u64) -> Config {
    let site_share = [50.0, 50.0, 50.0, 50.0, 60.0];
    let site_flavor = [2usize, 1, 0, 0, 1];
    let total_nodes = (gpus / u64::from(GPUS_PER_NODE)).max(5);
    let mut nodes = Vec::new();
    let mut assigned = 0u64;
    let mut flavor_gpus = [0u64; 3];
    for (s, share) in site_share.iter().enumerate() {
        let n = if s == 4 { total_nodes - assigned } else { ((total_nodes as f64) * share / 260.0).round() as u64 };
        assigned += n;
        flavor_gpus[site_flavor[s]] += n * u64::from(GPUS_PER_NODE);
        let mut left = n;
        let mut leaf = 0u64;
        while left > 0 {
            let count = left.min(u64::from(NODES_PER_LEAF));
            let block = leaf / u64::from(LEAVES_PER_BLOCK);
            nodes.push(NodeConfig {
                name: format!("s{}-b{:02}-l{:02}-n{{i}}", s + 1, block, leaf % u64::from(LEAVES_PER_BLOCK)),
                count: Some(count as u32),
                at: format!("site-{}/block-{:02}/leaf-{:02}", s + 1, block, leaf % u64::from(LEAVES_PER_BLOCK)),
                flavor: FLAVORS[site_flavor[s]].into(),
                gpus: GPUS_PER_NODE,
                cpus: 224,
                memory_gib: 2048,
                labels: Default::default(),
            });
            left -= count;
            leaf += 1;
        }
    }
    // Organisations (weights) and their teams.
    let orgs = [("ai-centre", 0.40), ("industry", 0.30), ("research", 0.20), ("startups", 0.10)];
    let mut tenants = Vec::new();
    for (oi, (org, share)) in orgs.iter().enumerate() {
        let quota = |frac: f64, lend: Option<f64>, borrow: Option<f64>| -> Vec<QuotaConfig> {
            (0..3)
                .map(|f| {
                    let nominal = (flavor_gpus[f] as f64 * frac).floor();
                    QuotaConfig {
                        flavor: FLAVORS[f].into(),
                        nominal,
                        borrowing_limit: borrow.map(|b| (nominal * b).floor()),
                        lending_limit: lend.map(|l| (nominal * l).floor()),
                    }
                })
                .collect()
        };
        tenants.push(TenantConfig { path: format!("nation/{org}"), weight: Some(share * 10.0), quota: quota(*share, None, None) });
        for t in 0..5 {
            let frac = share / 5.0;
            let lend = if t % 2 == 0 { Some(0.5) } else { None };
            let borrow = if t == 4 { Some(0.5) } else { None };
            tenants.push(TenantConfig {
                path: format!("nation/{org}/team-{}", oi * 5 + t + 1),
                weight: Some(1.0),
                quota: quota(frac, lend, borrow),
            });
        }
    }
    tenants.insert(0, TenantConfig { path: "nation".into(), weight: None, quota: vec![] });
    // The nation holds the whole cluster.
    tenants[0].quota = (0..3)
        .map(|f| QuotaConfig { flavor: FLAVORS[f].into(), nominal: flavor_gpus[f] as f64, borrowing_limit: None, lending_limit: None })
        .collect();
    Config {
        version: 1,
        flavors: FLAVORS.iter().map(|f| FlavorConfig { name: (*f).into(), memory_gib: 0, interconnect: "nvlink".into() }).collect(),
        topology: TopologyConfig { levels: vec!["site".into(), "block".into(), "leaf".into()] },
        nodes,
        tenants,
        fair_share: Default::default(),
        priority_classes: vec![],
        budgets: vec![],
        policy: Default::default(),
    }
}

/// Tenant paths of the reference cluster's 20 teams.
pub fn reference_teams() -> Vec<String> {
    let orgs = ["ai-centre", "industry", "research", "startups"];
    (0..20).map(|i| format!("nation/{}/team-{}", orgs[i / 5], i + 1)).collect()
}

fn log_uniform(rng: &mut SeededRng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.next_f64() * (hi.ln() - lo.ln())).exp()
}

/// One job of the national mix: about 60% 1-GPU, 15% fractional, 15% 8-GPU, 7%
/// 16-128-GPU gangs and 3% 256-4,096-GPU gangs, with walltimes; teams weighted by
/// their organisation's share; 30% pinned to one flavor; 2% high and 20% low class.
pub fn national_job(rng: &mut SeededRng, id: u64, teams: &[String]) -> JobSpec {
    let team_weights = [0.40, 0.30, 0.20, 0.10];
    let mut x = rng.next_f64();
    let mut org = 3;
    for (i, w) in team_weights.iter().enumerate() {
        if x < *w {
            org = i;
            break;
        }
        x -= w;
    }
    let team = &teams[org * 5 + rng.range(0, 4) as usize];
    let kind = rng.next_f64();
    let (replicas, gpu, wall_h, topology) = if kind < 0.60 {
        (1, GpuRequest::Whole(1), log_uniform(rng, 0.1, 8.0), None)
    } else if kind < 0.75 {
        let milli = [100u16, 250, 500, 750][rng.range(0, 3) as usize];
        (1, GpuRequest::Milli(milli), log_uniform(rng, 0.5, 24.0), None)
    } else if kind < 0.90 {
        (1, GpuRequest::Whole(8), log_uniform(rng, 1.0, 24.0), None)
    } else if kind < 0.97 {
        let r = [2u32, 4, 8, 16][rng.range(0, 3) as usize];
        (r, GpuRequest::Whole(8), log_uniform(rng, 2.0, 48.0), Some(TopologyConstraint { level: "leaf".into(), required: false }))
    } else {
        let r = [32u32, 64, 128, 256, 512][rng.range(0, 4) as usize];
        (r, GpuRequest::Whole(8), log_uniform(rng, 12.0, 72.0), Some(TopologyConstraint { level: "block".into(), required: false }))
    };
    let flavors = if rng.next_f64() < 0.3 { vec![FLAVORS[rng.range(0, 2) as usize].to_string()] } else { vec![] };
    let c = rng.next_f64();
    let class = if c < 0.02 {
        Some("high".to_string())
    } else if c < 0.22 {
        Some("low".to_string())
    } else {
        None
    };
    let gpus_per_replica = match gpu {
        GpuRequest::Whole(g) => g,
        GpuRequest::Milli(_) => 1,
    };
    JobSpec {
        id: JobId(id),
        tenant: team.clone(),
        user: format!("u{}", rng.range(1, 500)),
        class,
        replicas,
        gpu,
        cpus_per_replica: 16 * gpus_per_replica,
        memory_mib_per_replica: 128 * 1024 * u64::from(gpus_per_replica),
        flavors,
        topology,
        walltime_s: Some((wall_h * 3600.0).max(60.0) as u64),
        preemptible: None,
        checkpoint_interval_s: Some(1800),
    }
}
