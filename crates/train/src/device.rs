//! Choosing a device at run time.

use crate::{Result, TrainError};
use candle_core::Device;

/// Parses `cpu`, `cuda` or `cuda:N` into a device. Asking for CUDA in a build without the
/// `cuda` feature is an error that says how to enable it.
///
/// ```
/// assert!(convnets_train::parse_device("cpu").unwrap().is_cpu());
/// assert!(convnets_train::parse_device("tpu").is_err());
/// ```
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    let ordinal = match spec.as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" | "gpu" => 0,
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(TrainError::Config(format!(
                    "unknown device `{spec}` (use cpu, cuda or cuda:N)"
                )))
            }
        },
    };
    if !cfg!(feature = "cuda") {
        return Err(TrainError::Config(format!(
            "device `{spec}` needs a build with the `cuda` feature (cargo build --release --features cuda)"
        )));
    }
    Device::new_cuda(ordinal)
        .map_err(|e| TrainError::Config(format!("cannot open CUDA device {ordinal}: {e}")))
}
