//! GPU discovery: NVML (loaded at run time through nvml-wrapper), or emulated GPUs
//! for machines without any (`--emulate-gpus 8xH200`).

use allot_api::agent::GpuInfo;

use crate::AgentError;

/// `COUNTxMODEL`, e.g. `8xH200`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmulatedGpus {
    pub count: u32,
    pub model: String,
}

impl std::str::FromStr for EmulatedGpus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (n, model) = s.split_once(['x', 'X']).ok_or_else(|| format!("`{s}` is not COUNTxMODEL (e.g. 8xH200)"))?;
        let count: u32 = n.trim().parse().map_err(|_| format!("`{n}` is not a GPU count"))?;
        if count == 0 || count > 64 {
            return Err(format!("{count} GPUs: must be 1 to 64"));
        }
        let model = model.trim();
        if model.is_empty() {
            return Err("the GPU model is empty".into());
        }
        Ok(EmulatedGpus { count, model: model.to_string() })
    }
}

/// Memory of well-known models, MiB (emulation only).
fn model_memory_mib(model: &str) -> u64 {
    let m = model.to_ascii_uppercase();
    if m.contains("B200") || m.contains("GB200") {
        183_359
    } else if m.contains("H200") {
        143_771
    } else if m.contains("H100") || m.contains("A100") {
        81_559
    } else if m.contains("RTX") {
        97_887
    } else {
        81_920
    }
}

pub fn emulated(node: &str, e: &EmulatedGpus) -> Vec<GpuInfo> {
    (0..e.count)
        .map(|i| GpuInfo {
            index: i,
            uuid: format!("GPU-emulated-{node}-{i}"),
            model: e.model.clone(),
            memory_mib: model_memory_mib(&e.model),
            healthy: true,
            reason: None,
        })
        .collect()
}

/// The GPUs NVML sees, with health (uncorrected volatile ECC errors, where the GPU
/// counts them). An error when NVML cannot be loaded (no NVIDIA driver).
pub fn discover() -> Result<Vec<GpuInfo>, AgentError> {
    use nvml_wrapper::Nvml;
    use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError};
    let nvml = Nvml::init().map_err(|e| AgentError::Gpu(format!("cannot load NVML ({e}): no NVIDIA driver here? use --emulate-gpus")))?;
    let n = nvml.device_count().map_err(|e| AgentError::Gpu(format!("NVML device count: {e}")))?;
    let mut out = vec![];
    for i in 0..n {
        let d = nvml.device_by_index(i).map_err(|e| AgentError::Gpu(format!("NVML device {i}: {e}")))?;
        let uuid = d.uuid().unwrap_or_else(|_| format!("GPU-unknown-{i}"));
        let model = d.name().unwrap_or_else(|_| "unknown".into());
        let memory_mib = d.memory_info().map(|m| m.total / (1 << 20)).unwrap_or(0);
        let (healthy, reason) = match d.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile) {
            Ok(0) | Err(_) => (true, None),
            Ok(k) => (false, Some(format!("{k} uncorrected ECC errors"))),
        };
        out.push(GpuInfo { index: i, uuid, model, memory_mib, healthy, reason });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulated_spec_parses_and_refuses_junk() {
        assert_eq!("8xH200".parse::<EmulatedGpus>().unwrap(), EmulatedGpus { count: 8, model: "H200".into() });
        assert!("x".parse::<EmulatedGpus>().is_err());
        assert!("0xH100".parse::<EmulatedGpus>().is_err());
        assert!("99xH100".parse::<EmulatedGpus>().is_err());
        assert!("8x".parse::<EmulatedGpus>().is_err());
        let g = emulated("n0", &"2xH100".parse().unwrap());
        assert_eq!(g.len(), 2);
        assert!(g[0].uuid != g[1].uuid && g.iter().all(|g| g.healthy));
    }
}
