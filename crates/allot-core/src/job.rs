//! Jobs as drivers submit them (`JobSpec`, rich names) and as the core keeps them
//! (`Job`, dense indices), with the reasons a job waits.

use crate::budget::BudgetBlock;
use crate::cluster::Slot;
use crate::ids::{ClassIdx, FlavorIdx, JobId, TenantIdx, Time};

/// GPUs one replica asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuRequest {
    /// Whole GPUs on one node.
    Whole(u32),
    /// A fraction of one GPU in milli-GPU, 1..=999 (single-replica jobs only).
    Milli(u16),
}

/// Where the replicas of a gang must (or should) sit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyConstraint {
    /// A configured level name, e.g. `leaf`: all replicas within one domain of it.
    pub level: String,
    /// Required (wait until it fits) or preferred (fall back to anywhere).
    pub required: bool,
}

/// A job as submitted by a driver.
#[derive(Clone, Debug, PartialEq)]
pub struct JobSpec {
    pub id: JobId,
    /// Tenant path (usually a project), e.g. `nation/ai-centre/fm`.
    pub tenant: String,
    pub user: String,
    /// Priority class name; `None` for the default class.
    pub class: Option<String>,
    /// Gang size: all replicas start together or none does.
    pub replicas: u32,
    pub gpu: GpuRequest,
    pub cpus_per_replica: u32,
    pub memory_mib_per_replica: u64,
    /// Allowed flavors, in order of preference; empty means any.
    pub flavors: Vec<String>,
    pub topology: Option<TopologyConstraint>,
    /// Walltime estimate in seconds; `None` uses the policy's default.
    pub walltime_s: Option<u64>,
    /// `None` uses the class default.
    pub preemptible: Option<bool>,
    pub checkpoint_interval_s: Option<u64>,
}

impl JobSpec {
    /// A one-replica job of `gpus` whole GPUs for `tenant`, other fields defaulted.
    pub fn new(id: u64, tenant: &str, gpu: GpuRequest) -> JobSpec {
        JobSpec {
            id: JobId(id),
            tenant: tenant.into(),
            user: "user".into(),
            class: None,
            replicas: 1,
            gpu,
            cpus_per_replica: 0,
            memory_mib_per_replica: 0,
            flavors: vec![],
            topology: None,
            walltime_s: None,
            preemptible: None,
            checkpoint_interval_s: None,
        }
    }
}

/// Resources of one replica and the gang size, in the core's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub replicas: u32,
    /// Whole GPUs per replica (0 for a fraction).
    pub gpus: u32,
    /// Milli-GPU of a fractional replica (0 for whole GPUs).
    pub milli: u16,
    pub cpus: u32,
    pub mem_mib: u64,
}

impl Shape {
    /// Milli-GPU of the whole job, as quota counts it.
    pub fn total_milli(&self) -> u64 {
        u64::from(self.replicas) * if self.milli > 0 { u64::from(self.milli) } else { u64::from(self.gpus) * 1000 }
    }

    /// GPUs of the whole job (fractions count as fractions).
    pub fn total_gpus(&self) -> f64 {
        self.total_milli() as f64 / 1000.0
    }
}

/// Life cycle of a job inside the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Held,
    Running,
    /// Told to stop (preempted or its node lost); resources held until it reports.
    Stopping,
}

impl JobState {
    pub fn name(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Held => "held",
            JobState::Running => "running",
            JobState::Stopping => "stopping",
        }
    }
}

/// Why a pending job has not started, as of the last pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PendingReason {
    /// Not yet looked at by a pass.
    New,
    /// Held by a user or admin.
    Held,
    Budget(BudgetBlock),
    /// Admitting it would exceed the quota of `tenant` (nominal plus borrowing, or
    /// what the cohort lends) for every allowed flavor; the first flavor's block.
    /// `tenant` is the root when free GPUs are all held back by other tenants'
    /// unlendable guarantees.
    Quota {
        tenant: TenantIdx,
        flavor: FlavorIdx,
        need_milli: u64,
        room_milli: u64,
    },
    /// No allowed flavor has the free GPUs (or CPUs, memory) for it.
    NoCapacity {
        flavor: Option<FlavorIdx>,
    },
    /// Enough GPUs exist but not within one domain of the required topology level.
    Topology {
        level: u8,
    },
    /// It holds a backfill reservation and should start at `at`.
    Reserved {
        at: Time,
    },
    /// Capacity is free but promised to a higher-priority job's reservation.
    BehindReservation {
        job: JobId,
        at: Time,
    },
}

/// A job inside the core.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: JobId,
    pub tenant: TenantIdx,
    pub class: ClassIdx,
    pub user: Box<str>,
    pub shape: Shape,
    /// Allowed flavors as a bit mask, and in preference order.
    pub flavor_mask: u64,
    pub flavors: Box<[FlavorIdx]>,
    /// Topology level (0 root .. levels) and whether it is required.
    pub topology: Option<(u8, bool)>,
    pub walltime: Time,
    pub preemptible: bool,
    pub checkpoint_interval: Option<Time>,
    pub submitted: Time,
    pub tiebreak: u64,
    pub state: JobState,
    /// Set while running, and while stopping after a cancel or a lost node (a
    /// preempted job hands its resources over at once).
    pub alloc: Option<Allocation>,
    pub started: Time,
    /// Expected end of the current run (start + walltime, or the end of a grace period).
    pub run_end: Time,
    /// GPU-milliseconds received over earlier runs (LAS order, accounting).
    pub attained: f64,
    pub reason: PendingReason,
    pub estimated_start: Option<Time>,
    /// Pass that last set `reason`.
    pub reason_pass: u64,
    /// How many times it was preempted or requeued.
    pub restarts: u32,
}

/// Where a running job's replicas are.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    pub flavor: FlavorIdx,
    pub slots: Vec<Slot>,
}

impl Job {
    /// Expected end of the current run.
    pub fn expected_end(&self) -> Time {
        self.run_end
    }

    /// Work lost if stopped at `now`: time since the last checkpoint x GPUs, in GPU-ms.
    pub fn lost_work(&self, now: Time) -> f64 {
        let ran = (now - self.started).max(0);
        let since = match self.checkpoint_interval {
            Some(iv) if iv > 0 => ran % iv,
            _ => ran,
        };
        since as f64 * self.shape.total_gpus()
    }
}
