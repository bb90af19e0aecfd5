//! Strategies for the property tests: random small clusters, tenant trees with
//! consistent quotas, policies, jobs and event sequences.
//!
//! Events are generated as abstract `Op`s whose targets are indices resolved
//! against the core's state when the op runs (`Sim::step`), so that any sequence is
//! meaningful and shrinking stays useful.

use allot_core::config::{
    Config, FairShareConfig, FlavorConfig, NodeConfig, OrderPolicy, PlacementPolicy, PolicyConfig, QuotaConfig, TenantConfig,
    TopologyConfig,
};
use proptest::prelude::*;
use proptest::strategy::Union;

pub const LEVELS: [&str; 3] = ["site", "block", "leaf"];
pub const CLASSES: [&str; 3] = ["low", "normal", "high"];

// ----- cluster -----

/// One leaf: `nodes` nodes of `gpus` GPUs of flavor `F{flavor}`.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub nodes: u32,
    pub gpus: u32,
    pub flavor: usize,
}

/// sites > blocks > leaves.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub flavors: usize,
    pub sites: Vec<Vec<Vec<Leaf>>>,
}

impl ClusterSpec {
    pub fn leaves(&self) -> impl Iterator<Item = (String, &Leaf)> {
        self.sites.iter().enumerate().flat_map(|(s, blocks)| {
            blocks
                .iter()
                .enumerate()
                .flat_map(move |(b, leaves)| leaves.iter().enumerate().map(move |(l, leaf)| (format!("s{s}/b{b}/l{l}"), leaf)))
        })
    }

    pub fn flavor_names(&self) -> Vec<String> {
        (0..self.flavors).map(|f| format!("F{f}")).collect()
    }

    pub fn node_configs(&self) -> Vec<NodeConfig> {
        self.leaves()
            .map(|(at, leaf)| NodeConfig {
                name: format!("{}-n{{i}}", at.replace('/', "")),
                count: Some(leaf.nodes),
                at,
                flavor: format!("F{}", leaf.flavor),
                gpus: leaf.gpus,
                cpus: 64,
                memory_gib: 1024,
                labels: Default::default(),
            })
            .collect()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.leaves()
            .flat_map(|(at, leaf)| {
                let base = at.replace('/', "");
                (0..leaf.nodes).map(move |i| format!("{base}-n{i}"))
            })
            .collect()
    }

    /// GPUs of flavor `f`.
    pub fn capacity(&self, f: usize) -> u64 {
        self.leaves().filter(|(_, l)| l.flavor == f).map(|(_, l)| u64::from(l.nodes * l.gpus)).sum()
    }

    pub fn max_gpus(&self) -> u32 {
        self.leaves().map(|(_, l)| l.gpus).max().unwrap_or(1).max(1)
    }
}

pub fn cluster() -> impl Strategy<Value = ClusterSpec> {
    (1usize..=2).prop_flat_map(|nf| {
        let leaf =
            (1u32..=6, prop::sample::select(vec![1u32, 2, 4, 8]), 0..nf).prop_map(|(nodes, gpus, flavor)| Leaf { nodes, gpus, flavor });
        let sites = prop::collection::vec(prop::collection::vec(prop::collection::vec(leaf, 1..=3), 1..=3), 1..=3);
        sites.prop_map(move |sites| ClusterSpec { flavors: nf, sites })
    })
}

// ----- tenants -----

/// A node of the generated tenant tree. Quotas are derived, not drawn, so that the
/// children's nominals always fit in their parent's.
#[derive(Clone, Debug)]
pub struct TenantGen {
    /// Per flavor: this tenant's weight among its siblings (0..=4).
    pub weight: [u8; 2],
    /// Quarters of this tenant's nominal handed down to its children (0..=4).
    pub fill: u8,
    /// Borrowing limit in GPUs, if any.
    pub borrow: Option<u8>,
    /// Lending limit in quarters of the nominal, if any.
    pub lend: Option<u8>,
    pub children: Vec<TenantGen>,
}

#[derive(Clone, Debug)]
pub struct TenantsSpec {
    /// Quarters of the cluster handed to the top-level tenants.
    pub fill: u8,
    pub orgs: Vec<TenantGen>,
}

/// A resolved tenant: path and per-flavor (nominal, borrowing limit, lending limit)
/// in milli-GPU.
#[derive(Clone, Debug)]
pub struct TenantQuota {
    pub path: String,
    pub quotas: Vec<(u64, Option<u64>, Option<u64>)>,
}

fn tenant_gen(depth: u32, limits: bool) -> BoxedStrategy<TenantGen> {
    let kids: BoxedStrategy<Vec<TenantGen>> = match depth {
        0 => Just(vec![]).boxed(),
        1 => prop::collection::vec(tenant_gen(0, limits), 0..=2).boxed(),
        _ => prop::collection::vec(tenant_gen(depth - 1, limits), 1..=3).boxed(),
    };
    let borrow = if limits { prop::option::weighted(0.3, 0u8..=6).boxed() } else { Just(None).boxed() };
    let lend = if limits { prop::option::weighted(0.3, 0u8..=4).boxed() } else { Just(None).boxed() };
    (prop::array::uniform2(0u8..=4), 0u8..=4, borrow, lend, kids)
        .prop_map(|(weight, fill, borrow, lend, children)| TenantGen { weight, fill, borrow, lend, children })
        .boxed()
}

/// Two or three levels of tenants below the root.
pub fn tenants(limits: bool) -> impl Strategy<Value = TenantsSpec> {
    (1u8..=4, prop::collection::vec(tenant_gen(2, limits), 1..=3)).prop_map(|(fill, orgs)| TenantsSpec { fill, orgs })
}

const HALF: u64 = 500;

impl TenantsSpec {
    /// Paths and quotas, parents first. `capacity[f]` is in GPUs.
    pub fn resolve(&self, capacity: &[u64]) -> Vec<TenantQuota> {
        let mut out = Vec::new();
        let root: Vec<u64> = capacity.iter().map(|c| c * 1000).collect();
        resolve_children(&self.orgs, "", &root, self.fill, &mut out);
        out
    }
}

fn resolve_children(kids: &[TenantGen], prefix: &str, parent: &[u64], fill: u8, out: &mut Vec<TenantQuota>) {
    for (i, k) in kids.iter().enumerate() {
        let path = if prefix.is_empty() { format!("o{i}") } else { format!("{prefix}/t{i}") };
        let mut quotas = Vec::new();
        let mut nominals = Vec::new();
        for (f, &pn) in parent.iter().enumerate() {
            let sum_w: u64 = kids.iter().map(|c| u64::from(c.weight[f])).sum();
            let avail = pn * u64::from(fill) / 4;
            let n = (avail * u64::from(k.weight[f])).checked_div(sum_w).unwrap_or(0) / HALF * HALF;
            let borrow = k.borrow.map(|b| u64::from(b) * 1000);
            let lend = k.lend.map(|q| n * u64::from(q) / 4 / HALF * HALF);
            quotas.push((n, borrow, lend));
            nominals.push(n);
        }
        out.push(TenantQuota { path: path.clone(), quotas });
        resolve_children(&k.children, &path, &nominals, k.fill, out);
    }
}

// ----- policy -----

#[derive(Clone, Debug)]
pub struct PolicySpec {
    pub order: OrderPolicy,
    pub placement: PlacementPolicy,
    pub backfill: bool,
    pub preemption: bool,
    pub reservations: u32,
    pub grace_s: u64,
    pub seed: u64,
}

impl PolicySpec {
    pub fn default_policy() -> PolicySpec {
        let d = PolicyConfig::default();
        PolicySpec {
            order: d.order,
            placement: d.placement,
            backfill: d.backfill,
            preemption: d.preemption,
            reservations: d.reservations,
            grace_s: d.grace_period_s,
            seed: 0,
        }
    }

    fn apply(&self, p: &mut PolicyConfig) {
        p.order = self.order;
        p.placement = self.placement;
        p.backfill = self.backfill;
        p.preemption = self.preemption;
        p.reservations = self.reservations;
        p.grace_period_s = self.grace_s;
        p.seed = self.seed;
    }
}

/// Mostly the default policy, sometimes another order or placement policy.
pub fn policy() -> impl Strategy<Value = PolicySpec> {
    use OrderPolicy as O;
    use PlacementPolicy as P;
    (
        prop::sample::select(vec![O::Default, O::Default, O::Default, O::Fifo, O::Sjf, O::Las]),
        prop::sample::select(vec![
            P::Default,
            P::Default,
            P::Default,
            P::Default,
            P::Bestfit,
            P::Packing,
            P::Fgd,
            P::Dotprod,
            P::Clustering,
            P::Random,
        ]),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.9),
        1u32..=4,
        prop::sample::select(vec![0u64, 30, 30, 120]),
        0u64..4,
    )
        .prop_map(|(order, placement, backfill, preemption, reservations, grace_s, seed)| PolicySpec {
            order,
            placement,
            backfill,
            preemption,
            reservations,
            grace_s,
            seed,
        })
}

// ----- the world: config plus the names events refer to -----

#[derive(Clone)]
pub struct World {
    pub config: Config,
    /// Non-root tenant paths, parents first.
    pub tenants: Vec<String>,
    pub nodes: Vec<String>,
    pub flavors: Vec<String>,
    pub max_gpus: u32,
}

impl World {
    pub fn new(cluster: &ClusterSpec, tenants: &[TenantQuota], policy: &PolicySpec) -> World {
        let flavors = cluster.flavor_names();
        let mut config = Config {
            version: 1,
            flavors: flavors.iter().map(|n| FlavorConfig { name: n.clone(), memory_gib: 80, interconnect: "nvlink".into() }).collect(),
            topology: TopologyConfig { levels: LEVELS.iter().map(|s| s.to_string()).collect() },
            nodes: cluster.node_configs(),
            tenants: tenants
                .iter()
                .map(|t| TenantConfig {
                    path: t.path.clone(),
                    weight: None,
                    quota: t
                        .quotas
                        .iter()
                        .enumerate()
                        .map(|(f, &(n, b, l))| QuotaConfig {
                            flavor: flavors[f].clone(),
                            nominal: n as f64 / 1000.0,
                            borrowing_limit: b.map(|b| b as f64 / 1000.0),
                            lending_limit: l.map(|l| l as f64 / 1000.0),
                        })
                        .collect(),
                })
                .collect(),
            fair_share: FairShareConfig::default(),
            priority_classes: vec![],
            budgets: vec![],
            policy: PolicyConfig::default(),
        };
        policy.apply(&mut config.policy);
        World {
            config,
            tenants: tenants.iter().map(|t| t.path.clone()).collect(),
            nodes: cluster.node_names(),
            flavors,
            max_gpus: cluster.max_gpus(),
        }
    }
}

/// Compact, for proptest's "minimal failing input" (the sim's log has the rest).
impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<String> =
            self.config.nodes.iter().map(|n| format!("{} x{} {}gpu {}", n.at, n.count.unwrap_or(1), n.gpus, n.flavor)).collect();
        let tenants: Vec<String> = self
            .config
            .tenants
            .iter()
            .map(|t| {
                let q: Vec<String> =
                    t.quota.iter().map(|q| format!("{}={}/{:?}/{:?}", q.flavor, q.nominal, q.borrowing_limit, q.lending_limit)).collect();
                format!("{} [{}]", t.path, q.join(" "))
            })
            .collect();
        let p = &self.config.policy;
        f.debug_struct("World")
            .field("nodes", &nodes)
            .field("tenants (nominal/borrowing/lending)", &tenants)
            .field(
                "policy",
                &format!(
                    "{:?} {:?} backfill={} preemption={} reservations={} grace={} seed={}",
                    p.order, p.placement, p.backfill, p.preemption, p.reservations, p.grace_period_s, p.seed
                ),
            )
            .finish()
    }
}

/// A random world. `limits`: tenants may have borrowing and lending limits.
pub fn world(limits: bool) -> impl Strategy<Value = World> {
    (cluster(), tenants(limits), policy()).prop_map(|(c, t, p)| {
        let caps: Vec<u64> = (0..c.flavors).map(|f| c.capacity(f)).collect();
        World::new(&c, &t.resolve(&caps), &p)
    })
}

// ----- jobs -----

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GpuGen {
    Whole(u32),
    Milli(u16),
}

#[derive(Clone, Debug)]
pub struct JobGen {
    /// Index into `World::tenants`.
    pub tenant: usize,
    /// 0: default class, 1..=3: `CLASSES[c - 1]`.
    pub class: u8,
    pub replicas: u32,
    pub gpu: GpuGen,
    /// 0: any, 1: F0, 2: F1, 3: F1 then F0.
    pub flavors: u8,
    /// 0: none, 1..=6: (level, required).
    pub topology: u8,
    pub walltime_s: Option<u64>,
    pub preemptible: Option<bool>,
    pub checkpoint_s: Option<u64>,
}

pub fn gpu_gen() -> impl Strategy<Value = GpuGen> {
    prop_oneof![
        6 => prop::sample::select(vec![1u32, 1, 2, 4, 8]).prop_map(GpuGen::Whole),
        2 => prop::sample::select(vec![100u16, 250, 300, 500, 750, 999]).prop_map(GpuGen::Milli),
    ]
}

pub fn job_gen() -> impl Strategy<Value = JobGen> {
    (
        0usize..16,
        prop::sample::select(vec![0u8, 0, 0, 1, 2, 3]),
        prop::sample::select(vec![1u32, 1, 1, 1, 2, 3, 4, 8]),
        gpu_gen(),
        prop::sample::select(vec![0u8, 0, 0, 1, 2, 3]),
        prop::sample::select(vec![0u8, 0, 0, 0, 1, 2, 3, 4, 5, 6]),
        prop::option::weighted(0.95, prop::sample::select(vec![60u64, 300, 600, 1800, 3600, 7200, 14_400])),
        prop::option::weighted(0.4, any::<bool>()),
        prop::option::weighted(0.4, prop::sample::select(vec![60u64, 300, 900])),
    )
        .prop_map(|(tenant, class, replicas, gpu, flavors, topology, walltime_s, preemptible, checkpoint_s)| {
            // Fractions are for single replicas; keep most generated jobs valid.
            let replicas = if matches!(gpu, GpuGen::Milli(_)) { 1 } else { replicas };
            JobGen { tenant, class, replicas, gpu, flavors, topology, walltime_s, preemptible, checkpoint_s }
        })
}

/// Ways to make a job spec invalid.
#[derive(Clone, Copy, Debug)]
pub enum Invalid {
    Replicas0,
    CpuOnlyGang,
    Milli0,
    Milli1000,
    FractionGang,
    RootTenant,
    UnknownTenant,
    UnknownClass,
    UnknownFlavor,
    UnknownLevel,
    Walltime0,
    TooManyGpus,
}

pub fn invalid() -> impl Strategy<Value = Invalid> {
    use Invalid::*;
    prop::sample::select(vec![
        Replicas0,
        CpuOnlyGang,
        Milli0,
        Milli1000,
        FractionGang,
        RootTenant,
        UnknownTenant,
        UnknownClass,
        UnknownFlavor,
        UnknownLevel,
        Walltime0,
        TooManyGpus,
    ])
}

// ----- events -----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeOp {
    Down,
    Up,
    Drain,
    Undrain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOp {
    Finish,
    Cancel,
    Hold,
    Release,
}

/// A runtime quota change of a tenant, relative to its current nominal (so that
/// most are valid): 0: same nominal; 1: `quarters`/4 of it; 2: plus `quarters`/2
/// GPUs. Lending limit in quarters of the new nominal, borrowing limit in GPUs.
#[derive(Clone, Debug)]
pub struct QuotaGen {
    pub tenant: usize,
    pub flavor: usize,
    pub mode: u8,
    pub quarters: u8,
    pub borrow: Option<u8>,
    pub lend: Option<u8>,
}

/// Quota changes that must be refused.
#[derive(Clone, Copy, Debug)]
pub enum BadQuota {
    UnknownTenant,
    RootTenant,
    UnknownFlavor,
    NegativeNominal,
    NanNominal,
    LendingAboveNominal,
    NanBorrowing,
}

#[derive(Clone, Debug)]
pub struct BudgetGen {
    pub tenant: usize,
    pub start_s: i64,
    pub len_s: i64,
    pub gpu_hours: i16,
}

#[derive(Clone, Debug)]
pub enum Op {
    Submit(JobGen),
    Schedule,
    /// Advance to the earliest expected end of a running or stopping job and report
    /// that job finished (as an agent would).
    NextEnd,
    Advance(u32),
    /// Finish the k-th running or stopping job.
    FinishRunning(usize),
    /// A job event on the k-th id ever submitted, whatever its state (maybe forgotten).
    Job(JobOp, usize),
    Node(NodeOp, usize),
    /// Submit again an id already used.
    Duplicate(usize, JobGen),
    /// A job event on an id never submitted.
    UnknownJob(JobOp, u8),
    UnknownNode(NodeOp),
    Quota(QuotaGen),
    BadQuota(BadQuota, usize),
    Invalid(JobGen, Invalid),
    Budget(BudgetGen),
    /// Move the driver's clock back (the core keeps the later time).
    Rewind(u32),
}

/// Which kinds of ops a sequence may hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mix {
    pub nodes: bool,
    pub quota: bool,
    pub garbage: bool,
}

fn job_op() -> impl Strategy<Value = JobOp> {
    prop::sample::select(vec![JobOp::Finish, JobOp::Cancel, JobOp::Hold, JobOp::Release])
}

fn node_op() -> impl Strategy<Value = NodeOp> {
    prop::sample::select(vec![NodeOp::Down, NodeOp::Up, NodeOp::Drain, NodeOp::Undrain])
}

pub fn op(mix: Mix) -> BoxedStrategy<Op> {
    let mut v: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (30, job_gen().prop_map(Op::Submit).boxed()),
        (14, Just(Op::Schedule).boxed()),
        (10, Just(Op::NextEnd).boxed()),
        (6, prop::sample::select(vec![0u32, 1, 30, 60, 600, 1800, 3600, 7200]).prop_map(Op::Advance).boxed()),
        (6, (0usize..32).prop_map(Op::FinishRunning).boxed()),
        (8, (job_op(), 0usize..32).prop_map(|(o, k)| Op::Job(o, k)).boxed()),
        (1, (0usize..32, job_gen()).prop_map(|(k, j)| Op::Duplicate(k, j)).boxed()),
        (1, (job_op(), any::<u8>()).prop_map(|(o, k)| Op::UnknownJob(o, k)).boxed()),
    ];
    if mix.nodes {
        v.push((5, (node_op(), 0usize..64).prop_map(|(o, n)| Op::Node(o, n)).boxed()));
        v.push((1, node_op().prop_map(Op::UnknownNode).boxed()));
    }
    if mix.quota {
        let q = (0usize..16, 0usize..2, 0u8..3, 0u8..=4, prop::option::weighted(0.3, 0u8..=6), prop::option::weighted(0.5, 0u8..=4))
            .prop_map(|(tenant, flavor, mode, quarters, borrow, lend)| QuotaGen { tenant, flavor, mode, quarters, borrow, lend });
        v.push((8, q.prop_map(Op::Quota).boxed()));
    }
    if mix.garbage {
        v.push((5, (job_gen(), invalid()).prop_map(|(j, i)| Op::Invalid(j, i)).boxed()));
        let bad = prop::sample::select(vec![
            BadQuota::UnknownTenant,
            BadQuota::RootTenant,
            BadQuota::UnknownFlavor,
            BadQuota::NegativeNominal,
            BadQuota::NanNominal,
            BadQuota::LendingAboveNominal,
            BadQuota::NanBorrowing,
        ]);
        v.push((2, (bad, 0usize..16).prop_map(|(b, t)| Op::BadQuota(b, t)).boxed()));
        let b = (0usize..16, -3600i64..=7200, -600i64..=7200, -2i16..=20).prop_map(|(tenant, start_s, len_s, gpu_hours)| BudgetGen {
            tenant,
            start_s,
            len_s,
            gpu_hours,
        });
        v.push((2, b.prop_map(Op::Budget).boxed()));
        v.push((2, prop::sample::select(vec![1u32, 60, 3600]).prop_map(Op::Rewind).boxed()));
        v.push((3, (0usize..32, job_gen()).prop_map(|(k, j)| Op::Duplicate(k, j)).boxed()));
        v.push((4, (job_op(), any::<u8>()).prop_map(|(o, k)| Op::UnknownJob(o, k)).boxed()));
    }
    Union::new_weighted(v).boxed()
}

pub fn ops(max: usize, mix: Mix) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(mix), 1..=max)
}
