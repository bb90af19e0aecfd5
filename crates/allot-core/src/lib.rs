//! allot-core: the pure scheduling core of allot.
//!
//! The model (flavors, topology, tenants with quotas and budgets, jobs) and the
//! scheduler (ordering, quota admission, placement, backfill, preemption), driven by
//! plain event functions with time passed in:
//!
//! ```
//! use allot_core::{Core, Event, GpuRequest, JobSpec};
//! let mut core = Core::from_toml(r#"
//! version = 1
//! flavors = [{ name = "H100" }]
//! [[nodes]]
//! name = "n{i}"
//! count = 2
//! at = "site/block/leaf"
//! flavor = "H100"
//! gpus = 8
//! "#).unwrap();
//! core.on_event(0, Event::JobSubmitted(JobSpec::new(1, "default", GpuRequest::Whole(8)))).unwrap();
//! let plan = core.schedule(0);
//! assert_eq!(plan.starts.len(), 1);
//! core.check_invariants().unwrap();
//! ```
//!
//! No I/O, no clock, no global randomness: the same events give the same plans.

pub mod backfill;
pub mod budget;
pub mod cluster;
pub mod config;
mod core;
pub mod error;
pub mod explain;
pub mod ids;
pub mod invariants;
pub mod job;
mod nodeset;
pub mod pass;
pub mod place;
pub mod preempt;
pub mod queue;
pub mod rng;
mod room;
pub mod score;
pub mod tenants;
pub mod testkit;
pub mod workload;

pub use crate::core::{Class, Core, Event, Plan, ReservationView, Start, Stop, StopReason};
pub use budget::BudgetBlock;
pub use config::{Config, OrderPolicy, PlacementPolicy};
pub use error::{ConfigError, EventError};
pub use explain::Explanation;
pub use ids::{ClassIdx, DomainIdx, FlavorIdx, JobId, JobIdx, MS_PER_H, MS_PER_S, NodeIdx, TenantIdx, Time};
pub use job::{GpuRequest, JobSpec, JobState, PendingReason, Shape, TopologyConstraint};
pub use score::{TaskClass, WorkloadProfile};
