//! allot-sim: drives the very same `allot_core::Core` the server runs, from traces.
//!
//! - `trace`: readers for public cluster traces and allot's own workload format, each
//!   producing a `Trace` (jobs with submit times and durations) or a cluster `Config`;
//! - `fgd`: the FGD experiment (Weng et al., USENIX ATC'23) on the openb trace;
//! - `patterns`: packing patterns of a workload's GPU fractions (for `default`);
//! - `engine` / `replay`: the time-based discrete-event replay and its metrics.

pub mod engine;
pub mod error;
pub mod fgd;
pub mod fgd_plot;
pub mod font;
pub mod metrics;
pub mod patterns;
pub mod replay;
pub mod trace;
pub mod workload;

pub use error::TraceError;
pub use workload::{Trace, TraceJob};
