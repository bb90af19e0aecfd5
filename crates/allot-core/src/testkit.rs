//! `TestEnv`: a tiny cluster DSL for tests of the core (and of its drivers). Every
//! step runs `check_invariants()` and panics with the violation, so a test that
//! drives the core through `TestEnv` checks the invariants after every event.
//!
//! ```
//! use allot_core::testkit::{JobSpecExt, TestEnv, job};
//! let mut env = TestEnv::builder()
//!     .nodes("s1/b1/l1", 2, 8, "H100")
//!     .tenant("org/a", &[("H100", 16.0)])
//!     .build();
//! env.submit(job(1, "org/a").gpus(8).replicas(2));
//! env.schedule();
//! env.want_placed(1);
//! ```

use crate::config::{Config, FlavorConfig, NodeConfig, PolicyConfig, PriorityClassConfig, QuotaConfig, TenantConfig, TopologyConfig};
use crate::core::{Core, Event, Plan};
use crate::ids::{JobId, MS_PER_S, NodeIdx, Time};
use crate::job::{GpuRequest, JobSpec, JobState, PendingReason, TopologyConstraint};

/// Builds the config of a test cluster.
#[derive(Clone, Debug)]
pub struct EnvBuilder {
    config: Config,
}

impl EnvBuilder {
    /// Declares a flavor before any node uses it (flavors are numbered in the
    /// order they are declared, which tie-breaks follow).
    pub fn flavor(mut self, name: &str) -> Self {
        if !self.config.flavors.iter().any(|f| f.name == name) {
            self.config.flavors.push(FlavorConfig { name: name.into(), memory_gib: 80, interconnect: "nvlink".into() });
        }
        self
    }

    /// `count` nodes of `gpus` GPUs of `flavor` at `at` (`site/block/leaf`), named
    /// `{leaf path with - for /}-n{i}`, 64 CPUs and 1 TiB each.
    pub fn nodes(mut self, at: &str, count: u32, gpus: u32, flavor: &str) -> Self {
        if !self.config.flavors.iter().any(|f| f.name == flavor) {
            self.config.flavors.push(FlavorConfig { name: flavor.into(), memory_gib: 80, interconnect: "nvlink".into() });
        }
        self.config.nodes.push(NodeConfig {
            name: format!("{}-n{{i}}", at.replace('/', "-")),
            count: Some(count),
            at: at.into(),
            flavor: flavor.into(),
            gpus,
            cpus: 64,
            memory_gib: 1024,
            labels: Default::default(),
        });
        self
    }

    /// A tenant with nominal quotas per flavor (unlimited borrowing and lending).
    pub fn tenant(self, path: &str, nominal: &[(&str, f64)]) -> Self {
        let q = nominal.iter().map(|&(f, n)| (f, n, None, None)).collect::<Vec<_>>();
        self.tenant_limits(path, &q)
    }

    /// A tenant with `(flavor, nominal, borrowing_limit, lending_limit)` quotas.
    pub fn tenant_limits(mut self, path: &str, quotas: &[(&str, f64, Option<f64>, Option<f64>)]) -> Self {
        self.config.tenants.push(TenantConfig {
            path: path.into(),
            weight: None,
            quota: quotas
                .iter()
                .map(|&(f, n, b, l)| QuotaConfig { flavor: f.into(), nominal: n, borrowing_limit: b, lending_limit: l })
                .collect(),
        });
        self
    }

    pub fn weight(mut self, path: &str, weight: f64) -> Self {
        if let Some(t) = self.config.tenants.iter_mut().find(|t| t.path == path) {
            t.weight = Some(weight);
        }
        self
    }

    pub fn class(mut self, name: &str, priority: i32, preempt_lower: bool, preemptible: bool) -> Self {
        let default = self.config.priority_classes.is_empty();
        self.config.priority_classes.push(PriorityClassConfig { name: name.into(), priority, preempt_lower, preemptible, default });
        self
    }

    pub fn policy(mut self, f: impl FnOnce(&mut PolicyConfig)) -> Self {
        f(&mut self.config.policy);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn build(self) -> TestEnv {
        let core = Core::new(&self.config).unwrap_or_else(|e| panic!("test cluster config: {e}"));
        core.check_invariants().unwrap_or_else(|e| panic!("invariant broken at start: {e}"));
        TestEnv { core, now: 0, last_plan: Plan::default() }
    }
}

/// A core under test, with a clock.
#[derive(Clone, Debug)]
pub struct TestEnv {
    pub core: Core,
    /// Milliseconds.
    pub now: Time,
    pub last_plan: Plan,
}

impl TestEnv {
    pub fn builder() -> EnvBuilder {
        EnvBuilder {
            config: Config {
                version: 1,
                flavors: vec![],
                topology: TopologyConfig { levels: vec!["site".into(), "block".into(), "leaf".into()] },
                nodes: vec![],
                tenants: vec![],
                fair_share: Default::default(),
                priority_classes: vec![],
                budgets: vec![],
                policy: Default::default(),
            },
        }
    }

    fn checked(&self, what: &str) {
        if let Err(e) = self.core.check_invariants() {
            panic!("invariant broken after {what} at t={}ms: {e}", self.now);
        }
    }

    /// Applies an event that must be accepted.
    pub fn event(&mut self, ev: Event) {
        let what = format!("{ev:?}");
        self.core.on_event(self.now, ev).unwrap_or_else(|e| panic!("{what} refused: {e}"));
        self.checked(&what);
    }

    /// Applies an event that must be refused; returns the error.
    pub fn event_err(&mut self, ev: Event) -> crate::error::EventError {
        let what = format!("{ev:?}");
        let err = self.core.on_event(self.now, ev).expect_err(&format!("{what} should be refused"));
        self.checked(&what);
        err
    }

    pub fn submit(&mut self, spec: impl Into<JobSpec>) {
        self.event(Event::JobSubmitted(spec.into()));
    }

    pub fn finish(&mut self, id: u64) {
        self.event(Event::JobFinished(JobId(id)));
    }

    pub fn cancel(&mut self, id: u64) {
        self.event(Event::JobCancelled(JobId(id)));
    }

    /// Moves the clock forward.
    pub fn advance_s(&mut self, secs: i64) {
        self.now += secs * MS_PER_S;
    }

    /// Runs a pass; checks invariants; returns the plan.
    pub fn schedule(&mut self) -> Plan {
        let plan = self.core.schedule(self.now);
        self.checked("schedule");
        self.last_plan = plan.clone();
        plan
    }

    /// Finishes every job the last plan told to stop (as agents would report).
    pub fn complete_stops(&mut self) {
        let stops: Vec<JobId> = self.last_plan.stops.iter().map(|s| s.job).collect();
        for id in stops {
            if self.core.job(id).is_some_and(|j| j.state == JobState::Stopping) {
                self.event(Event::JobFinished(id));
            }
        }
    }

    pub fn state(&self, id: u64) -> Option<JobState> {
        self.core.job(JobId(id)).map(|j| j.state)
    }

    pub fn reason(&self, id: u64) -> PendingReason {
        self.core.explain(JobId(id)).unwrap_or_else(|| panic!("job {id} unknown")).reason
    }

    /// Node names a job runs on, in replica order.
    pub fn nodes_of(&self, id: u64) -> Vec<String> {
        let job = self.core.job(JobId(id)).unwrap_or_else(|| panic!("job {id} unknown"));
        job.alloc.as_ref().map(|a| a.slots.iter().map(|s| self.core.cluster().node(s.node).name.clone()).collect()).unwrap_or_default()
    }

    /// Leaves (full domain paths) a job's replicas sit in.
    pub fn leaves_of(&self, id: u64) -> Vec<String> {
        let job = self.core.job(JobId(id)).expect("job");
        let mut v: Vec<String> = job
            .alloc
            .as_ref()
            .map(|a| a.slots.iter().map(|s| self.core.cluster().domains[self.core.cluster().node(s.node).leaf.ix()].name.clone()).collect())
            .unwrap_or_default();
        v.dedup();
        v
    }

    pub fn node(&self, name: &str) -> NodeIdx {
        self.core.cluster().node_index(name).unwrap_or_else(|| panic!("node {name} unknown"))
    }

    #[track_caller]
    pub fn want_placed(&self, id: u64) {
        let st = self.state(id);
        assert_eq!(st, Some(JobState::Running), "job {id} should run; it is {st:?}, reason {:?}", self.core.explain(JobId(id)));
    }

    #[track_caller]
    pub fn want_pending(&self, id: u64) {
        let st = self.state(id);
        assert_eq!(st, Some(JobState::Pending), "job {id} should be pending; it is {st:?}");
    }

    /// The job is pending and its reason matches.
    #[track_caller]
    pub fn want_pending_reason(&self, id: u64, matches: impl Fn(&PendingReason) -> bool) {
        self.want_pending(id);
        let r = self.reason(id);
        assert!(matches(&r), "job {id} waits for an unexpected reason: {r:?}");
    }
}

/// Starts a `JobSpec` for the test DSL: one replica of one GPU.
pub fn job(id: u64, tenant: &str) -> JobSpec {
    let mut s = JobSpec::new(id, tenant, GpuRequest::Whole(1));
    s.walltime_s = Some(3600);
    s
}

/// Fluent setters on `JobSpec` for tests.
pub trait JobSpecExt {
    fn gpus(self, g: u32) -> Self;
    fn milli(self, m: u16) -> Self;
    fn replicas(self, r: u32) -> Self;
    fn walltime_s(self, s: u64) -> Self;
    fn class(self, c: &str) -> Self;
    fn flavors(self, f: &[&str]) -> Self;
    fn within(self, level: &str, required: bool) -> Self;
    fn preemptible(self, p: bool) -> Self;
    fn checkpoint_s(self, s: u64) -> Self;
    fn host(self, cpus: u32, mem_mib: u64) -> Self;
}

impl JobSpecExt for JobSpec {
    fn gpus(mut self, g: u32) -> Self {
        self.gpu = GpuRequest::Whole(g);
        self
    }
    fn milli(mut self, m: u16) -> Self {
        self.gpu = GpuRequest::Milli(m);
        self
    }
    fn replicas(mut self, r: u32) -> Self {
        self.replicas = r;
        self
    }
    fn walltime_s(mut self, s: u64) -> Self {
        self.walltime_s = Some(s);
        self
    }
    fn class(mut self, c: &str) -> Self {
        self.class = Some(c.into());
        self
    }
    fn flavors(mut self, f: &[&str]) -> Self {
        self.flavors = f.iter().map(|s| s.to_string()).collect();
        self
    }
    fn within(mut self, level: &str, required: bool) -> Self {
        self.topology = Some(TopologyConstraint { level: level.into(), required });
        self
    }
    fn preemptible(mut self, p: bool) -> Self {
        self.preemptible = Some(p);
        self
    }
    fn checkpoint_s(mut self, s: u64) -> Self {
        self.checkpoint_interval_s = Some(s);
        self
    }
    fn host(mut self, cpus: u32, mem_mib: u64) -> Self {
        self.cpus_per_replica = cpus;
        self.memory_mib_per_replica = mem_mib;
        self
    }
}
