//! Helpers shared by the optimizers: hyper-parameter checks, PyTorch's `lerp`, and reading a
//! saved state back with errors that name the offending entry.

use candle_core::{DType, Device, Result, Tensor, Var};
use std::collections::{HashMap, HashSet};

/// Errors unless `value` is finite and `>= 0`.
pub(crate) fn non_negative(opt: &str, name: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value >= 0.0) {
        candle_core::bail!("{opt}: invalid {name}: expected a finite value >= 0, found {value}")
    }
    Ok(())
}

/// Errors unless `value` is in `[0, 1)` (so NaN and infinities are rejected too).
pub(crate) fn unit_open(opt: &str, name: &str, value: f64) -> Result<()> {
    if !(0.0..1.0).contains(&value) {
        candle_core::bail!("{opt}: invalid {name}: expected a value in [0, 1), found {value}")
    }
    Ok(())
}

/// Errors unless `value` is in `[0, 1]`.
pub(crate) fn unit_closed(opt: &str, name: &str, value: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&value) {
        candle_core::bail!("{opt}: invalid {name}: expected a value in [0, 1], found {value}")
    }
    Ok(())
}

/// `torch.lerp(start, end, weight)` with a scalar weight, in PyTorch's two-sided form:
/// `start + weight * (end - start)` for `|weight| < 0.5`, else
/// `end - (end - start) * (1 - weight)`.
pub(crate) fn lerp(start: &Tensor, end: &Tensor, weight: f64) -> Result<Tensor> {
    let diff = (end - start)?;
    if weight.abs() < 0.5 {
        start + (diff * weight)?
    } else {
        end - (diff * (1.0 - weight))?
    }
}

/// `value` as a 0-dim tensor of `like`'s dtype and device (rounded to the dtype as PyTorch
/// rounds a Python float), for a true division by a scalar rather than candle's multiplication
/// by its reciprocal.
pub(crate) fn scalar_like(value: f64, like: &Tensor) -> Result<Tensor> {
    Tensor::new(value, like.device())?.to_dtype(like.dtype())
}

/// Whether `a` and `b` have the same dtype and device.
pub(crate) fn same_place(a: &Tensor, b: &Tensor) -> bool {
    a.dtype() == b.dtype() && a.device().same_device(b.device())
}

/// A step counter as the state tensor PyTorch calls `step`: 0-dim, float64.
pub(crate) fn step_tensor(step: u64, device: &Device) -> Result<Tensor> {
    // Step counts stay far below 2^53, so the conversion is exact.
    Tensor::new(step as f64, device)
}

/// Reads entries `"{index}.{buffer}"` out of a saved state, checking shapes, and finally that
/// every entry was used.
pub(crate) struct StateReader<'a> {
    opt: &'static str,
    state: &'a HashMap<String, Tensor>,
    used: HashSet<String>,
}

impl<'a> StateReader<'a> {
    pub(crate) fn new(opt: &'static str, state: &'a HashMap<String, Tensor>) -> Self {
        Self {
            opt,
            state,
            used: HashSet::new(),
        }
    }

    /// Whether any of `buffers` of parameter `index` is present.
    pub(crate) fn has_any(&self, index: usize, buffers: &[&str]) -> bool {
        buffers
            .iter()
            .any(|b| self.state.contains_key(&format!("{index}.{b}")))
    }

    /// The buffer `"{index}.{name}"`, shaped like `var`, converted to its dtype and device;
    /// an error when it is absent or mis-shaped.
    pub(crate) fn buffer(&mut self, index: usize, name: &str, var: &Var) -> Result<Tensor> {
        let key = format!("{index}.{name}");
        let Some(t) = self.state.get(&key) else {
            candle_core::bail!(
                "{}: optimizer state is missing entry `{key}` (the other buffers of parameter \
                 {index} are present)",
                self.opt
            )
        };
        if t.dims() != var.dims() {
            candle_core::bail!(
                "{}: optimizer state entry `{key}`: expected shape {:?} (the parameter's), found {:?}",
                self.opt,
                var.dims(),
                t.dims()
            )
        }
        self.used.insert(key);
        t.to_dtype(var.dtype())?
            .to_device(var.device())?
            .contiguous()
            .map(|t| t.detach())
    }

    /// The step counter `"{index}.step"`: a 0-dim or one-element tensor holding a whole number.
    pub(crate) fn step(&mut self, index: usize) -> Result<u64> {
        let key = format!("{index}.step");
        let Some(t) = self.state.get(&key) else {
            candle_core::bail!(
                "{}: optimizer state is missing entry `{key}` (the other buffers of parameter \
                 {index} are present)",
                self.opt
            )
        };
        if t.elem_count() != 1 || t.rank() > 1 {
            candle_core::bail!(
                "{}: optimizer state entry `{key}`: expected a 0-dim or [1] tensor, found shape {:?}",
                self.opt,
                t.dims()
            )
        }
        let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?[0];
        // 2^53: every whole number up to it is exact in f64.
        if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_992.0) {
            candle_core::bail!(
                "{}: optimizer state entry `{key}`: expected a whole number of steps >= 0, found {v}",
                self.opt
            )
        }
        self.used.insert(key);
        Ok(v as u64)
    }

    /// Errors on the first entry (in sorted order) that was not read.
    pub(crate) fn finish(self) -> Result<()> {
        let mut unused: Vec<&String> = self
            .state
            .keys()
            .filter(|k| !self.used.contains(*k))
            .collect();
        unused.sort();
        if let Some(k) = unused.first() {
            candle_core::bail!(
                "{}: unexpected optimizer state entry `{k}` ({} unused in all): not a buffer this \
                 configuration keeps for its parameters",
                self.opt,
                unused.len()
            )
        }
        Ok(())
    }
}
