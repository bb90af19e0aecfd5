//! The scheduling model as configuration: versioned TOML, unknown fields rejected,
//! every error naming the field path that was wrong and why.
//!
//! `Config` is plain data; `crate::model::Model::from_config` validates it and turns
//! it into the dense structures the scheduler works on.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::ConfigError;

/// The config format version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// The whole scheduling model: flavors, topology, nodes, tenants, classes, budgets, policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Must be `1`.
    pub version: u32,
    #[serde(default)]
    pub flavors: Vec<FlavorConfig>,
    #[serde(default)]
    pub topology: TopologyConfig,
    #[serde(default)]
    pub nodes: Vec<NodeConfig>,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    #[serde(default)]
    pub fair_share: FairShareConfig,
    #[serde(default)]
    pub priority_classes: Vec<PriorityClassConfig>,
    #[serde(default)]
    pub budgets: Vec<BudgetConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
}

/// A GPU model with its memory and interconnect, e.g. `H100-80G`, `GB200` (NVL72).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlavorConfig {
    pub name: String,
    #[serde(default)]
    pub memory_gib: u32,
    /// Free text: `nvlink`, `nvl72`, `pcie`, ...
    #[serde(default)]
    pub interconnect: String,
}

/// Named levels of the topology tree, top to bottom, e.g. `["site", "block", "leaf"]`.
/// Nodes hang below the last level; an NVL72 rack is a leaf whose nodes share NVLink.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyConfig {
    pub levels: Vec<String>,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self { levels: vec!["site".into(), "block".into(), "leaf".into()] }
    }
}

/// One GPU server, or `count` identical ones when `count` is set (then `{i}` in
/// `name` is replaced by 0, 1, ...).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    #[serde(default)]
    pub count: Option<u32>,
    /// Position in the topology: one segment per level, `site-a/block-01/leaf-07`.
    pub at: String,
    pub flavor: String,
    pub gpus: u32,
    #[serde(default)]
    pub cpus: u32,
    #[serde(default)]
    pub memory_gib: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A node of the tenant tree, named by its path (`nation/ai-centre/fm`). Parents are
/// created implicitly when not listed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub path: String,
    /// Fair-share weight among siblings (default 1).
    #[serde(default)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub quota: Vec<QuotaConfig>,
}

/// Per-flavor quota of a tenant, in GPUs (fractions allowed), with Kueue's cohort
/// semantics: `nominal` is guaranteed; `borrowing_limit` caps use above nominal
/// (unset: unlimited); `lending_limit` caps how much of the unused nominal others may
/// borrow (unset: all of it).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    pub flavor: String,
    pub nominal: f64,
    #[serde(default)]
    pub borrowing_limit: Option<f64>,
    #[serde(default)]
    pub lending_limit: Option<f64>,
}

/// Slurm-style fair share: usage decays with this half-life.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairShareConfig {
    pub half_life_hours: f64,
}

impl Default for FairShareConfig {
    fn default() -> Self {
        Self { half_life_hours: 168.0 }
    }
}

/// A priority class. Jobs of a class that may `preempt_lower` can stop preemptible
/// jobs of lower classes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityClassConfig {
    pub name: String,
    pub priority: i32,
    #[serde(default)]
    pub preempt_lower: bool,
    /// Whether jobs of this class are preemptible unless they say otherwise.
    #[serde(default = "yes")]
    pub preemptible: bool,
    /// The class of jobs that name none (exactly one class may be the default).
    #[serde(default)]
    pub default: bool,
}

fn yes() -> bool {
    true
}

/// A GPU-hour grant to a tenant (usually a project), valid in `[start, expiry)`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    pub tenant: String,
    pub gpu_hours: f64,
    pub start: toml::value::Datetime,
    pub expiry: toml::value::Datetime,
}

/// How pending jobs are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderPolicy {
    /// Multifactor priority: class, fair share, age.
    #[default]
    Default,
    /// Submission order.
    Fifo,
    /// Shortest walltime estimate first.
    Sjf,
    /// Least attained GPU service first (Tiresias-style).
    Las,
}

/// How a node is chosen for single-replica jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlacementPolicy {
    /// Indexed best fit: fewest free GPUs that fit, lowest index; fractions packed.
    #[default]
    Default,
    Random,
    Dotprod,
    Clustering,
    Packing,
    Bestfit,
    Fgd,
}

/// Weights of the multifactor priority (each factor lies in `[0, 1]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityWeights {
    #[serde(default = "w_class")]
    pub class: f64,
    #[serde(default = "w_fair_share")]
    pub fair_share: f64,
    #[serde(default = "w_age")]
    pub age: f64,
}

fn w_class() -> f64 {
    10_000.0
}
fn w_fair_share() -> f64 {
    1_000.0
}
fn w_age() -> f64 {
    100.0
}

impl Default for PriorityWeights {
    fn default() -> Self {
        Self { class: w_class(), fair_share: w_fair_share(), age: w_age() }
    }
}

/// Scheduler policy knobs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default)]
    pub order: OrderPolicy,
    #[serde(default)]
    pub placement: PlacementPolicy,
    /// Seed for every tie-break.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub weights: PriorityWeights,
    /// Age factor reaches 1 at this age.
    #[serde(default = "max_age_hours")]
    pub max_age_hours: f64,
    /// Enable backfill reservations for blocked jobs.
    #[serde(default = "yes")]
    pub backfill: bool,
    /// How many blocked jobs hold reservations at once (highest priority first). One
    /// by default (EASY backfill): in the national month more reservations made every
    /// size class wait longer (docs/core-design-notes.md 20).
    #[serde(default = "reservations")]
    pub reservations: u32,
    /// Reservations book the root's quota too (docs/core-design-notes.md 24): a
    /// backfilled job cannot then delay a reserved gang through other tenants'
    /// unlendable reserves. Off by default: over eight seeded national months it cut
    /// the 513+ GPU jobs' waits by 30% and GPU-weighted waits by 13%, raised the mean
    /// wait by 27% (small jobs wait behind the gangs' bookings), and the stability
    /// property fails on more seeds with it (15 of 4,800 against 5).
    #[serde(default)]
    pub book_root_quota: bool,
    /// A gang's preemption search also tries clearing whole nodes, those whose
    /// victims lose least work per replica of the gang, and takes whichever victim
    /// set loses less (docs/core-design-notes.md 31). Off by default: each choice
    /// loses less, but over six seeded national months 20% more work was lost to
    /// preemption in all (the bigger victims it stops come back and reclaim in
    /// turn), with 11% more preemptions; kept for research.
    #[serde(default)]
    pub victims_by_nodes: bool,
    /// Walltime assumed for jobs that declare none, in seconds.
    #[serde(default = "default_walltime_s")]
    pub default_walltime_s: u64,
    /// Enable preemption (reclaim of lent quota and priority preemption).
    #[serde(default = "yes")]
    pub preemption: bool,
    /// Grace period given to preempted jobs, in seconds.
    #[serde(default = "grace_period_s")]
    pub grace_period_s: u64,
    /// Most successful preemption searches in one pass.
    #[serde(default = "preemptions_per_pass")]
    pub preemptions_per_pass: u32,
    /// Most preemption searches that may fail in one pass before the pass stops
    /// trying (each is a search over running jobs on a snapshot with undo).
    #[serde(default = "failed_preemption_searches")]
    pub failed_preemption_searches_per_pass: u32,
}

fn max_age_hours() -> f64 {
    168.0
}
fn reservations() -> u32 {
    1
}
fn default_walltime_s() -> u64 {
    24 * 3600
}
fn grace_period_s() -> u64 {
    30
}
fn preemptions_per_pass() -> u32 {
    256
}
fn failed_preemption_searches() -> u32 {
    16
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            order: OrderPolicy::default(),
            placement: PlacementPolicy::default(),
            seed: 0,
            weights: PriorityWeights::default(),
            max_age_hours: max_age_hours(),
            backfill: true,
            reservations: reservations(),
            book_root_quota: false,
            victims_by_nodes: false,
            default_walltime_s: default_walltime_s(),
            preemption: true,
            grace_period_s: grace_period_s(),
            preemptions_per_pass: preemptions_per_pass(),
            failed_preemption_searches_per_pass: failed_preemption_searches(),
        }
    }
}

impl Config {
    /// Parses TOML text. Errors name the field path (`tenants[2].quota[0].nominal`)
    /// and the line, and say why.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::new("", toml_msg(&e)))?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ConfigError::new(path, toml_msg(e.inner()))
        })?;
        if config.version != CONFIG_VERSION {
            return Err(ConfigError::new(
                "version",
                format!("unsupported config version {} (this build reads {CONFIG_VERSION})", config.version),
            ));
        }
        Ok(config)
    }
}

/// toml's messages span several lines with a source excerpt; keep them on one line.
fn toml_msg(e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => format!("{msg} (at byte {})", span.start),
        None => msg,
    }
}

/// Converts a TOML datetime to milliseconds since the Unix epoch. A date alone means
/// midnight UTC; a datetime without offset is taken as UTC.
pub fn datetime_to_ms(dt: &toml::value::Datetime) -> Option<i64> {
    let date = dt.date?;
    let days = days_from_civil(i64::from(date.year), u32::from(date.month), u32::from(date.day));
    let mut secs = days * 86_400;
    let mut nanos = 0i64;
    if let Some(t) = dt.time {
        secs += i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second.unwrap_or(0));
        nanos = i64::from(t.nanosecond.unwrap_or(0));
    }
    if let Some(toml::value::Offset::Custom { minutes }) = dt.offset {
        secs -= i64::from(minutes) * 60;
    }
    Some(secs * 1000 + nanos / 1_000_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let text = r#"
version = 1
[[tenants]]
path = "a"
quota = [{ flavor = "H100", nominal = 8, borrow = 3 }]
"#;
        let err = Config::from_toml(text).unwrap_err();
        assert_eq!(err.path, "tenants[0].quota[0].borrow");
        assert!(err.message.contains("unknown field `borrow`"), "{err}");
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let text = "version = 1\n[[nodes]]\nname='n'\nat='s/b/l'\nflavor='H100'\ngpus='eight'\n";
        let err = Config::from_toml(text).unwrap_err();
        assert_eq!(err.path, "nodes[0].gpus");
    }

    #[test]
    fn version_is_checked() {
        let err = Config::from_toml("version = 2").unwrap_err();
        assert_eq!(err.path, "version");
        assert!(err.message.contains("unsupported config version 2"));
    }

    #[test]
    fn unknown_policy_name_is_rejected() {
        let err = Config::from_toml("version = 1\n[policy]\norder = 'lifo'\n").unwrap_err();
        assert_eq!(err.path, "policy.order");
        assert!(err.message.contains("lifo"), "{err}");
    }

    #[test]
    fn datetimes_convert_to_epoch_ms() {
        let dt: toml::value::Datetime = "1970-01-02T00:00:01Z".parse().unwrap();
        assert_eq!(datetime_to_ms(&dt), Some(86_401_000));
        let dt: toml::value::Datetime = "2026-01-01".parse().unwrap();
        assert_eq!(datetime_to_ms(&dt), Some(1_767_225_600_000));
        let dt: toml::value::Datetime = "1970-01-01T01:00:00+01:00".parse().unwrap();
        assert_eq!(datetime_to_ms(&dt), Some(0));
    }
}
