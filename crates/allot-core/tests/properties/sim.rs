//! A small driver for the property tests: resolves generated `Op`s against the
//! core's state, applies them, and keeps a readable log of what was done (printed
//! with every failure, so a shrunk counterexample reads as a script).

use allot_core::{Core, Event, EventError, GpuRequest, JobId, JobSpec, JobState, Plan, StopReason, Time, TopologyConstraint};
use proptest::test_runner::TestCaseError;

use super::strategies::{BadQuota, CLASSES, GpuGen, Invalid, JobGen, JobOp, LEVELS, NodeOp, Op, World};

/// What one op did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Event {
        event: Event,
        result: Result<(), EventError>,
    },
    Plan(Plan),
    /// The op had no target (e.g. finish a running job when none runs).
    Skip,
}

#[derive(Clone)]
pub struct Sim {
    pub core: Core,
    pub world: World,
    /// The driver's clock (ms).
    pub now: Time,
    /// The latest time given to the core.
    pub core_now: Time,
    /// Every id ever submitted (accepted or not), in order.
    pub ids: Vec<JobId>,
    next_id: u64,
    pub log: Vec<String>,
}

pub const UNKNOWN_ID_BASE: u64 = 1_000_000;

impl Sim {
    pub fn new(world: &World) -> Sim {
        let core = Core::new(&world.config).unwrap_or_else(|e| panic!("generated config rejected: {e}\n{world:#?}"));
        let mut log = vec![format!("nodes: {}", describe_nodes(&core))];
        log.push(format!("tenants: {}", describe_tenants(world)));
        let p = &world.config.policy;
        log.push(format!(
            "policy: order={:?} placement={:?} backfill={} preemption={} reservations={} grace={}s seed={}",
            p.order, p.placement, p.backfill, p.preemption, p.reservations, p.grace_period_s, p.seed
        ));
        if p.victims_by_nodes {
            let last = log.last_mut().expect("the policy line");
            last.push_str(" victims_by_nodes=true");
        }
        Sim { core, world: world.clone(), now: 0, core_now: 0, ids: vec![], next_id: 1, log }
    }

    pub fn fail(&self, msg: impl AsRef<str>) -> TestCaseError {
        TestCaseError::fail(format!("{}\n--- what happened ---\n{}", msg.as_ref(), self.log.join("\n")))
    }

    pub fn note(&mut self, s: impl Into<String>) {
        self.log.push(s.into());
    }

    pub fn fresh_id(&mut self) -> JobId {
        let id = JobId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Applies an event at the driver's time and logs it.
    pub fn event(&mut self, event: Event) -> Outcome {
        let result = self.core.on_event(self.now, event.clone());
        self.core_now = self.core_now.max(self.now);
        let r = match &result {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("err: {e}"),
        };
        self.log.push(format!("t={}ms {} -> {r}", self.now, describe_event(&event)));
        Outcome::Event { event, result }
    }

    /// Runs a pass at the driver's time and logs its plan.
    pub fn schedule(&mut self) -> Plan {
        let plan = self.core.schedule(self.now);
        self.core_now = self.core_now.max(self.now);
        self.log.push(format!("t={}ms schedule -> {}", self.now, describe_plan(&self.core, &plan)));
        plan
    }

    pub fn submit(&mut self, spec: JobSpec) -> Outcome {
        self.ids.push(spec.id);
        self.event(Event::JobSubmitted(spec))
    }

    pub fn state(&self, id: JobId) -> Option<JobState> {
        self.core.job(id).map(|j| j.state)
    }

    /// Running and stopping jobs, in the core's slot order.
    pub fn active(&self) -> Vec<JobId> {
        self.core.jobs().filter(|j| matches!(j.state, JobState::Running | JobState::Stopping)).map(|j| j.id).collect()
    }

    /// The running or stopping job expected to end first, with its end.
    pub fn next_end(&self) -> Option<(Time, JobId)> {
        self.core.jobs().filter(|j| matches!(j.state, JobState::Running | JobState::Stopping)).map(|j| (j.expected_end(), j.id)).min()
    }

    pub fn step(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Submit(g) => {
                let id = self.fresh_id();
                let spec = job_spec(&self.world, id, g);
                self.submit(spec)
            }
            Op::Schedule => Outcome::Plan(self.schedule()),
            Op::NextEnd => match self.next_end() {
                Some((end, id)) => {
                    self.now = self.now.max(end);
                    self.event(Event::JobFinished(id))
                }
                None => Outcome::Skip,
            },
            Op::Advance(s) => {
                self.now += i64::from(*s) * 1000;
                Outcome::Skip
            }
            Op::Rewind(s) => {
                self.now -= i64::from(*s) * 1000;
                self.log.push(format!("(driver clock back to t={}ms)", self.now));
                Outcome::Skip
            }
            Op::FinishRunning(k) => {
                let active = self.active();
                if active.is_empty() {
                    return Outcome::Skip;
                }
                self.event(Event::JobFinished(active[k % active.len()]))
            }
            Op::Job(o, k) => {
                if self.ids.is_empty() {
                    return Outcome::Skip;
                }
                let id = self.ids[k % self.ids.len()];
                self.event(job_event(*o, id))
            }
            Op::Node(o, k) => {
                let name = self.world.nodes[k % self.world.nodes.len()].clone();
                self.event(node_event(*o, name))
            }
            Op::Duplicate(k, g) => {
                if self.ids.is_empty() {
                    return Outcome::Skip;
                }
                let id = self.ids[k % self.ids.len()];
                let spec = job_spec(&self.world, id, g);
                self.event(Event::JobSubmitted(spec))
            }
            Op::UnknownJob(o, k) => self.event(job_event(*o, JobId(UNKNOWN_ID_BASE + u64::from(*k)))),
            Op::UnknownNode(o) => self.event(node_event(*o, "no-such-node".into())),
            Op::Quota(q) => {
                let tenant = self.world.tenants[q.tenant % self.world.tenants.len()].clone();
                let flavor = self.world.flavors[q.flavor % self.world.flavors.len()].clone();
                let current = self.core.quota(&tenant, &flavor).map_or(0.0, |(q, _)| q.nominal as f64 / 1000.0);
                let quarters = f64::from(q.quarters);
                let nominal = match q.mode {
                    0 => current,
                    1 => (current * quarters / 4.0 * 2.0).floor() / 2.0,
                    _ => current + quarters / 2.0,
                };
                let lending_limit = q.lend.map(|l| (nominal * f64::from(l) / 4.0 * 2.0).floor() / 2.0);
                self.event(Event::QuotaChanged { tenant, flavor, nominal, borrowing_limit: q.borrow.map(f64::from), lending_limit })
            }
            Op::BadQuota(kind, t) => {
                let mut tenant = self.world.tenants[t % self.world.tenants.len()].clone();
                let mut flavor = self.world.flavors[0].clone();
                let (mut nominal, mut borrowing_limit, mut lending_limit) = (1.0, None, None);
                match kind {
                    BadQuota::UnknownTenant => tenant = "no/such/tenant".into(),
                    BadQuota::RootTenant => tenant = String::new(),
                    BadQuota::UnknownFlavor => flavor = "no-such-flavor".into(),
                    BadQuota::NegativeNominal => nominal = -1.0,
                    BadQuota::NanNominal => nominal = f64::NAN,
                    BadQuota::LendingAboveNominal => lending_limit = Some(2.0),
                    BadQuota::NanBorrowing => borrowing_limit = Some(f64::NAN),
                }
                self.event(Event::QuotaChanged { tenant, flavor, nominal, borrowing_limit, lending_limit })
            }
            Op::Invalid(g, how) => {
                let id = self.fresh_id();
                let mut spec = job_spec(&self.world, id, g);
                make_invalid(&mut spec, *how, &self.world);
                self.submit(spec)
            }
            Op::Budget(b) => {
                let tenant = self.world.tenants[b.tenant % self.world.tenants.len()].clone();
                let start = self.now + b.start_s * 1000;
                self.event(Event::BudgetGranted { tenant, start, expiry: start + b.len_s * 1000, gpu_hours: f64::from(b.gpu_hours) })
            }
        }
    }
}

pub fn job_event(o: JobOp, id: JobId) -> Event {
    match o {
        JobOp::Finish => Event::JobFinished(id),
        JobOp::Cancel => Event::JobCancelled(id),
        JobOp::Hold => Event::JobHeld(id),
        JobOp::Release => Event::JobReleased(id),
    }
}

pub fn node_event(o: NodeOp, name: String) -> Event {
    match o {
        NodeOp::Down => Event::NodeDown(name),
        NodeOp::Up => Event::NodeUp(name),
        NodeOp::Drain => Event::NodeDrained(name),
        NodeOp::Undrain => Event::NodeUndrained(name),
    }
}

/// The spec of a generated job.
pub fn job_spec(world: &World, id: JobId, g: &JobGen) -> JobSpec {
    let gpu = match g.gpu {
        GpuGen::Whole(n) => GpuRequest::Whole(n),
        GpuGen::Milli(m) => GpuRequest::Milli(m),
    };
    let mut spec = JobSpec::new(id.0, &world.tenants[g.tenant % world.tenants.len()], gpu);
    spec.replicas = g.replicas;
    spec.class = (g.class > 0).then(|| CLASSES[(g.class as usize - 1) % 3].to_string());
    // Only name flavors that exist, so that flavor choice is not a source of errors.
    let f = &world.flavors;
    spec.flavors = match g.flavors {
        1 => vec![f[0].clone()],
        2 if f.len() > 1 => vec![f[1].clone()],
        3 if f.len() > 1 => vec![f[1].clone(), f[0].clone()],
        _ => vec![],
    };
    spec.topology = (g.topology > 0).then(|| {
        let t = g.topology - 1;
        TopologyConstraint { level: LEVELS[(t / 2) as usize % 3].to_string(), required: t.is_multiple_of(2) }
    });
    spec.walltime_s = g.walltime_s;
    spec.preemptible = g.preemptible;
    spec.checkpoint_interval_s = g.checkpoint_s;
    spec
}

fn make_invalid(spec: &mut JobSpec, how: Invalid, world: &World) {
    match how {
        Invalid::Replicas0 => spec.replicas = 0,
        Invalid::CpuOnlyGang => {
            spec.gpu = GpuRequest::Whole(0);
            spec.replicas = spec.replicas.max(2);
        }
        Invalid::Milli0 => spec.gpu = GpuRequest::Milli(0),
        Invalid::Milli1000 => spec.gpu = GpuRequest::Milli(1000),
        Invalid::FractionGang => {
            spec.gpu = GpuRequest::Milli(500);
            spec.replicas = 2;
        }
        Invalid::RootTenant => spec.tenant = String::new(),
        Invalid::UnknownTenant => spec.tenant = "no/such/tenant".into(),
        Invalid::UnknownClass => spec.class = Some("no-such-class".into()),
        Invalid::UnknownFlavor => spec.flavors = vec!["no-such-flavor".into()],
        Invalid::UnknownLevel => spec.topology = Some(TopologyConstraint { level: "rack".into(), required: true }),
        Invalid::Walltime0 => spec.walltime_s = Some(0),
        Invalid::TooManyGpus => spec.gpu = GpuRequest::Whole(world.max_gpus + 1),
    }
}

/// Whether the core should accept this spec (ids aside), from the world alone.
pub fn spec_is_valid(world: &World, s: &JobSpec) -> bool {
    let tenant_ok = world.tenants.iter().any(|t| t == s.tenant.trim_matches('/'));
    let class_ok = s.class.as_ref().is_none_or(|c| CLASSES.contains(&c.as_str()));
    let shape_ok = s.replicas >= 1
        && match s.gpu {
            GpuRequest::Whole(g) => g >= 1 && g <= world.max_gpus,
            GpuRequest::Milli(m) => (1..=999).contains(&m) && s.replicas == 1,
        };
    let flavors_ok = s.flavors.iter().all(|f| world.flavors.contains(f));
    let topo_ok = s.topology.as_ref().is_none_or(|t| LEVELS.contains(&t.level.as_str()));
    // Some node of an allowed flavor must hold one replica (GPUs, CPUs, memory).
    let per_replica = match s.gpu {
        GpuRequest::Whole(g) => g,
        GpuRequest::Milli(_) => 1,
    };
    let host_ok = world.config.nodes.iter().any(|n| {
        (s.flavors.is_empty() || s.flavors.contains(&n.flavor))
            && n.gpus >= per_replica
            && n.cpus >= s.cpus_per_replica
            && n.memory_gib * 1024 >= s.memory_mib_per_replica
    });
    tenant_ok && class_ok && shape_ok && flavors_ok && topo_ok && host_ok && s.walltime_s != Some(0)
}

// ----- descriptions -----

pub fn describe_spec(s: &JobSpec) -> String {
    let gpu = match s.gpu {
        GpuRequest::Whole(g) => format!("{}x{}gpu", s.replicas, g),
        GpuRequest::Milli(m) => format!("{}x{}milli", s.replicas, m),
    };
    let mut out = format!("j{} tenant={:?} {gpu}", s.id, s.tenant);
    if !s.flavors.is_empty() {
        out += &format!(" flavors={:?}", s.flavors);
    }
    if let Some(t) = &s.topology {
        out += &format!(" within={}{}", t.level, if t.required { "(required)" } else { "(preferred)" });
    }
    match s.walltime_s {
        Some(w) => out += &format!(" wall={w}s"),
        None => out += " wall=default",
    }
    if let Some(c) = &s.class {
        out += &format!(" class={c}");
    }
    if let Some(p) = s.preemptible {
        out += &format!(" preemptible={p}");
    }
    if let Some(c) = s.checkpoint_interval_s {
        out += &format!(" ckpt={c}s");
    }
    out
}

pub fn describe_event(e: &Event) -> String {
    match e {
        Event::JobSubmitted(s) => format!("submit {}", describe_spec(s)),
        Event::JobCancelled(id) => format!("cancel j{id}"),
        Event::JobFinished(id) => format!("finish j{id}"),
        Event::JobHeld(id) => format!("hold j{id}"),
        Event::JobReleased(id) => format!("release j{id}"),
        other => format!("{other:?}"),
    }
}

pub fn describe_plan(core: &Core, plan: &Plan) -> String {
    let node = |n: allot_core::NodeIdx| core.cluster().node(n).name.clone();
    let starts: Vec<String> = plan
        .starts
        .iter()
        .map(|s| {
            let slots: Vec<String> = s
                .slots
                .iter()
                .map(|sl| {
                    if sl.milli > 0 {
                        format!("{}:gpu{}({}m)", node(sl.node), sl.frac_gpu, sl.milli)
                    } else {
                        format!("{}:{:#b}", node(sl.node), sl.gpus)
                    }
                })
                .collect();
            format!("j{} on [{}]", s.job, slots.join(" "))
        })
        .collect();
    let stops: Vec<String> = plan
        .stops
        .iter()
        .map(|s| match s.why {
            StopReason::Preempted { by, reclaim } => {
                format!("j{} (preempted by j{by}{}, grace {}s)", s.job, if reclaim { ", reclaim" } else { "" }, s.grace_s)
            }
            StopReason::NodeLost { node: n } => format!("j{} (node {} lost)", s.job, node(n)),
            StopReason::Cancelled => format!("j{} (cancelled)", s.job),
        })
        .collect();
    let resv: Vec<String> = plan
        .reservations
        .iter()
        .map(|r| {
            let nodes: Vec<String> = r.nodes.iter().map(|&n| node(n)).collect();
            format!("j{} at {}ms on [{}]", r.job, r.at, nodes.join(" "))
        })
        .collect();
    format!("starts {{{}}} stops {{{}}} reservations {{{}}}", starts.join(", "), stops.join(", "), resv.join(", "))
}

fn describe_nodes(core: &Core) -> String {
    let c = core.cluster();
    let parts: Vec<String> = c.nodes.iter().map(|n| format!("{}({}x{})", n.name, n.gpus, c.flavors[n.flavor.ix()].name)).collect();
    parts.join(" ")
}

fn describe_tenants(world: &World) -> String {
    let parts: Vec<String> = world
        .config
        .tenants
        .iter()
        .map(|t| {
            let q: Vec<String> = t
                .quota
                .iter()
                .map(|q| {
                    let mut s = format!("{}:{}", q.flavor, q.nominal);
                    if let Some(b) = q.borrowing_limit {
                        s += &format!("+borrow{b}");
                    }
                    if let Some(l) = q.lending_limit {
                        s += &format!("/lend{l}");
                    }
                    s
                })
                .collect();
            format!("{}[{}]", t.path, q.join(","))
        })
        .collect();
    parts.join(" ")
}
