//! Stochastic gradient descent exactly as `torch.optim.SGD` computes it.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

/// The hyper-parameters of [`Sgd`], PyTorch's names and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
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
    /// An optimizer over `vars`. Errors on invalid hyper-parameters (as PyTorch does).
    pub fn new(vars: Vec<Var>, cfg: SgdConfig) -> Result<Self> {
        let valid = |v: f64| v.is_finite() && v >= 0.0;
        if !valid(cfg.lr) || !valid(cfg.momentum) || !valid(cfg.weight_decay) {
            candle_core::bail!("SGD: lr, momentum and weight_decay must be >= 0, got {cfg:?}")
        }
        if cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0) {
            candle_core::bail!(
                "SGD: Nesterov momentum requires a momentum and zero dampening, got {cfg:?}"
            )
        }
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
