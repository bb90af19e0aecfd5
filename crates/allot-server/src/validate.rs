//! Turns a submission into a core `JobSpec` and checks it exactly as the core will:
//! on a scratch core built from the same config (submit, then cancel), so that a
//! job is refused before it is acknowledged, never after.

use std::sync::Mutex;

use allot_api::JobSubmit;
use allot_core::{Config, ConfigError, Core, Event, EventError, GpuRequest, JobId, JobSpec, TopologyConstraint};

use crate::error::ApiError;

/// Longest name, user, project, image, working directory or tenant path.
const MAX_STR: usize = 1024;

pub struct Validator {
    scratch: Mutex<Core>,
}

impl Validator {
    pub fn new(config: &Config) -> Result<Validator, ConfigError> {
        Ok(Validator { scratch: Mutex::new(Core::new(config)?) })
    }

    /// Applies a change of the tenant tree, as the scheduling loop did.
    pub fn apply(&self, event: Event) -> Result<(), EventError> {
        self.scratch.lock().unwrap_or_else(|e| e.into_inner()).on_event(0, event)
    }

    /// Applies the tenant changes stored through the API (see `tenancy`).
    pub fn apply_tenant_rows(&self, rows: &[crate::store::TenantRow]) {
        let mut core = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        crate::tenancy::apply_tenant_rows(&mut core, rows, 0);
    }

    /// Whether jobs may be submitted to `path` (a tenant other than the root).
    pub fn has_tenant(&self, path: &str) -> bool {
        let core = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        core.tenants().index(path).is_some_and(|t| t != allot_core::TenantIdx(0))
    }

    /// Checks a spec against the cluster and tenants; `prefix` is prepended to the
    /// field path (`jobs[3].`).
    pub fn check(&self, spec: &JobSpec, prefix: &str) -> Result<(), ApiError> {
        let mut core = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let probe = JobSpec { id: JobId(u64::MAX), ..spec.clone() };
        match core.on_event(0, Event::JobSubmitted(probe)) {
            Ok(()) => {
                let _ = core.on_event(0, Event::JobCancelled(JobId(u64::MAX)));
                Ok(())
            }
            Err(EventError::InvalidJob { field, why, .. }) => Err(ApiError::invalid(format!("{prefix}{}", api_field(field)), why)),
            Err(e) => Err(ApiError::invalid(format!("{prefix}tenant"), e.to_string())),
        }
    }
}

fn api_field(core_field: &str) -> &str {
    match core_field {
        "replica" => "cpus_per_replica",
        f => f,
    }
}

/// The project a job is accounted to: as given, or the last segment of its tenant.
pub fn project_of(s: &JobSubmit) -> String {
    s.project.clone().unwrap_or_else(|| s.tenant.rsplit('/').next().unwrap_or("").to_string())
}

/// Converts a submission; `user` is the resolved submitting user.
pub fn to_spec(s: &JobSubmit, user: &str, prefix: &str) -> Result<JobSpec, ApiError> {
    let bad = |f: &str, m: &str| ApiError::invalid(format!("{prefix}{f}"), m);
    let long = |v: &Option<String>| v.as_ref().is_some_and(|x| x.len() > MAX_STR);
    if s.tenant.trim().is_empty() {
        return Err(bad("tenant", "must not be empty"));
    }
    if s.tenant.len() > MAX_STR {
        return Err(bad("tenant", "too long"));
    }
    for (f, v) in [("project", &s.project), ("name", &s.name), ("image", &s.image), ("workdir", &s.workdir), ("user", &s.user)] {
        if long(v) {
            return Err(bad(f, "too long"));
        }
    }
    if s.project.as_ref().is_some_and(|p| p.is_empty()) {
        return Err(bad("project", "must not be empty"));
    }
    let gpu = match (s.gpus, s.gpu_milli) {
        (Some(g), None) => GpuRequest::Whole(g),
        (None, Some(m)) => GpuRequest::Milli(m),
        (None, None) => return Err(bad("gpus", "one of `gpus` and `gpu_milli` is required")),
        (Some(_), Some(_)) => return Err(bad("gpu_milli", "give `gpus` or `gpu_milli`, not both")),
    };
    Ok(JobSpec {
        id: JobId(0),
        tenant: s.tenant.clone(),
        user: user.to_string(),
        class: s.class.clone(),
        replicas: s.replicas,
        gpu,
        cpus_per_replica: s.cpus_per_replica,
        memory_mib_per_replica: s.memory_mib_per_replica,
        flavors: s.flavors.clone(),
        topology: s.topology.as_ref().map(|t| TopologyConstraint { level: t.level.clone(), required: t.required }),
        walltime_s: s.walltime_s,
        preemptible: s.preemptible,
        checkpoint_interval_s: s.checkpoint_interval_s,
    })
}
