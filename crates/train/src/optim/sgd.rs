//! Stochastic gradient descent exactly as `torch.optim.SGD` computes it (the single-tensor
//! path, `foreach=False`, `maximize=False`).

use super::common::{non_negative, unit_closed, unit_open, StateReader};
use super::Optim;
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The hyper-parameters of [`Sgd`], PyTorch's names and defaults (`lr` 0.01 here: PyTorch's
/// is 1e-3 since 2.2). In JSON, absent fields take their default and unknown ones are an error.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0 disables the momentum buffer).
    pub momentum: f64,
    /// Dampening for momentum.
    pub dampening: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 0.01,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// SGD with momentum, dampening, weight decay and Nesterov, as in PyTorch:
///
/// ```text
/// g = grad + weight_decay * p
/// buf = g                                         (first step)
/// buf = momentum * buf + (1 - dampening) * g      (later steps)
/// g = g + momentum * buf  if nesterov  else  buf
/// p = p - lr * g
/// ```
///
/// Every tensor it keeps is detached from the autograd graph, so no step's graph outlives the
/// step and memory stays flat across epochs.
#[derive(Debug)]
pub struct Sgd {
    vars: Vec<Var>,
    buffers: Vec<Option<Tensor>>,
    cfg: SgdConfig,
}

impl Sgd {
    /// An optimizer over `vars`. Errors, naming the parameter, on a learning rate, dampening or
    /// weight decay that is negative or not finite, a momentum outside `[0, 1)` (PyTorch accepts
    /// `momentum >= 1`, which diverges), a dampening above 1, or Nesterov momentum without a
    /// momentum or with a dampening (as PyTorch does).
    pub fn new(vars: Vec<Var>, cfg: SgdConfig) -> Result<Self> {
        cfg.validate()?;
        let buffers = vec![None; vars.len()];
        Ok(Self { vars, buffers, cfg })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &SgdConfig {
        &self.cfg
    }

    /// Changes the learning rate (for schedules).
    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.cfg.lr
    }

    /// Changes the learning rate (the same as [`Sgd::set_lr`]).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// One update from the gradients of `grads`; parameters without a gradient are skipped.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let c = self.cfg;
        for (var, buf) in self.vars.iter().zip(self.buffers.iter_mut()) {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let p = var.as_tensor().detach();
            let mut d = grad.detach();
            if c.weight_decay != 0.0 {
                d = (d + (&p * c.weight_decay)?)?;
            }
            if c.momentum != 0.0 {
                let b = match buf.take() {
                    None => d.clone(),
                    Some(b) => ((b * c.momentum)? + (&d * (1.0 - c.dampening))?)?,
                };
                d = if c.nesterov {
                    (d + (&b * c.momentum)?)?
                } else {
                    b.clone()
                };
                *buf = Some(b.detach());
            }
            var.set(&(p - (d * c.lr)?)?.detach())?;
        }
        Ok(())
    }
}

impl SgdConfig {
    /// Checks the hyper-parameters (see [`Sgd::new`]).
    pub fn validate(&self) -> Result<()> {
        non_negative("SGD", "lr", self.lr)?;
        unit_open("SGD", "momentum", self.momentum)?;
        unit_closed("SGD", "dampening", self.dampening)?;
        non_negative("SGD", "weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            candle_core::bail!(
                "SGD: invalid nesterov: Nesterov momentum requires a momentum > 0 and zero \
                 dampening, found momentum {} and dampening {}",
                self.momentum,
                self.dampening
            )
        }
        Ok(())
    }
}

impl Optim for Sgd {
    fn name(&self) -> &'static str {
        "sgd"
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        Sgd::step(self, grads)
    }

    fn learning_rate(&self) -> f64 {
        self.cfg.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// `"{i}.momentum_buffer"` for every parameter that has one (momentum > 0, after its first
    /// step). SGD keeps no step counter, as in PyTorch.
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(self
            .buffers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                b.as_ref()
                    .map(|b| (format!("{i}.momentum_buffer"), b.detach()))
            })
            .collect())
    }

    /// A parameter without a `momentum_buffer` entry starts afresh (as before its first step).
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut reader = StateReader::new("SGD", state);
        let mut buffers = vec![None; self.vars.len()];
        if self.cfg.momentum != 0.0 {
            for (i, (var, buf)) in self.vars.iter().zip(buffers.iter_mut()).enumerate() {
                if reader.has_any(i, &["momentum_buffer"]) {
                    *buf = Some(reader.buffer(i, "momentum_buffer", var)?);
                }
            }
        }
        reader.finish()?;
        self.buffers = buffers;
        Ok(())
    }
}

impl candle_nn::Optimizer for Sgd {
    type Config = SgdConfig;

    fn new(vars: Vec<Var>, config: SgdConfig) -> Result<Self> {
        Sgd::new(vars, config)
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        Sgd::step(self, grads)
    }

    fn learning_rate(&self) -> f64 {
        self.cfg.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Hand-computed: p = 1, grads 1 then 2, lr 0.1, momentum 0.9, weight decay 0.5:
    /// step 1: g = 1 + 0.5*1 = 1.5, buf = 1.5, p = 1 - 0.15 = 0.85;
    /// step 2: g = 2 + 0.425 = 2.425, buf = 0.9*1.5 + 2.425 = 3.775, p = 0.85 - 0.3775 = 0.4725.
    #[test]
    fn momentum_weight_decay_by_hand() -> anyhow::Result<()> {
        let p = Var::new(&[1f32], &Device::Cpu)?;
        let cfg = SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.5,
            ..Default::default()
        };
        let mut sgd = Sgd::new(vec![p.clone()], cfg)?;
        for g in [1f32, 2.0] {
            let loss = (p.as_tensor() * g as f64)?.sum_all()?;
            sgd.step(&loss.backward()?)?;
        }
        let v = p.to_vec1::<f32>()?[0];
        assert!((v - 0.4725).abs() < 1e-6, "{v}");
        Ok(())
    }

    #[test]
    fn rejects_bad_config() {
        let p = Var::new(&[1f32], &Device::Cpu).unwrap();
        let cfg = SgdConfig {
            nesterov: true,
            ..Default::default()
        };
        assert!(Sgd::new(vec![p], cfg)
            .unwrap_err()
            .to_string()
            .contains("Nesterov"));
    }
}
