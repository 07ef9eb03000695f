//! Adam and AdamW exactly as `torch.optim.Adam` / `torch.optim.AdamW` compute them (the
//! single-tensor path `_single_tensor_adam`, `foreach=False`, `maximize=False`,
//! `capturable=False`).

use super::common::{
    lerp, non_negative, same_place, scalar_like, step_tensor, unit_open, StateReader,
};
use super::Optim;
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The hyper-parameters of [`Adam`]: `torch.optim.Adam`'s names and defaults (lr 1e-3, betas
/// (0.9, 0.999), eps 1e-8, weight_decay 0, amsgrad false). In JSON, absent fields take their
/// default and unknown ones are an error.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay rates of the running averages of the gradient and of its square.
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// L2 penalty added to the gradient (coupled weight decay).
    pub weight_decay: f64,
    /// Use the running maximum of the squared-gradient average (AMSGrad).
    pub amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        }
    }
}

/// The hyper-parameters of [`AdamW`]: `torch.optim.AdamW`'s names and defaults (those of
/// [`AdamConfig`] but weight_decay 0.01, applied decoupled from the gradient).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay rates of the running averages of the gradient and of its square.
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// Decoupled weight decay: each step multiplies the parameters by `1 - lr * weight_decay`.
    pub weight_decay: f64,
    /// Use the running maximum of the squared-gradient average (AMSGrad).
    pub amsgrad: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
        }
    }
}

impl AdamConfig {
    /// Checks the hyper-parameters (see [`Adam::new`]).
    pub fn validate(&self) -> Result<()> {
        validate("Adam", self.lr, self.betas, self.eps, self.weight_decay)
    }
}

impl AdamWConfig {
    /// Checks the hyper-parameters (see [`AdamW::new`]).
    pub fn validate(&self) -> Result<()> {
        validate("AdamW", self.lr, self.betas, self.eps, self.weight_decay)
    }
}

fn validate(opt: &str, lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64) -> Result<()> {
    non_negative(opt, "lr", lr)?;
    unit_open(opt, "betas[0] (beta1)", betas.0)?;
    unit_open(opt, "betas[1] (beta2)", betas.1)?;
    non_negative(opt, "eps", eps)?;
    non_negative(opt, "weight_decay", weight_decay)
}

/// Per-parameter state, created by the parameter's first step.
#[derive(Debug)]
struct ParamState {
    step: u64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Option<Tensor>,
}

/// The update shared by Adam and AdamW.
#[derive(Debug)]
struct Core {
    name: &'static str,
    title: &'static str,
    vars: Vec<Var>,
    states: Vec<Option<ParamState>>,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    amsgrad: bool,
    decoupled: bool,
}

impl Core {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let (beta1, beta2) = self.betas;
        let lr = self.lr;
        let mut divisor_cache: Option<(u64, Tensor)> = None;
        for (var, slot) in self.vars.iter().zip(self.states.iter_mut()) {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let mut p = var.as_tensor().detach();
            let mut g = grad.detach();
            let st = match slot {
                Some(st) => st,
                None => slot.insert(ParamState {
                    step: 0,
                    exp_avg: p.zeros_like()?,
                    exp_avg_sq: p.zeros_like()?,
                    max_exp_avg_sq: if self.amsgrad {
                        Some(p.zeros_like()?)
                    } else {
                        None
                    },
                }),
            };
            st.step += 1;
            if self.weight_decay != 0.0 {
                if self.decoupled {
                    // param.mul_(1 - lr * weight_decay)
                    p = (&p * (1.0 - lr * self.weight_decay))?;
                } else {
                    // grad = grad.add(param, alpha=weight_decay)
                    g = (g + (&p * self.weight_decay)?)?;
                }
            }
            // exp_avg.lerp_(grad, 1 - beta1)
            let exp_avg = lerp(&st.exp_avg, &g, 1.0 - beta1)?;
            // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            let exp_avg_sq = ((&st.exp_avg_sq * beta2)? + ((&g * (1.0 - beta2))? * &g)?)?;
            // Scalars in double precision, as PyTorch computes them from Python floats.
            let t = st.step as f64;
            let bias_correction1 = 1.0 - beta1.powf(t);
            let bias_correction2 = 1.0 - beta2.powf(t);
            let step_size = lr / bias_correction1;
            let bias_correction2_sqrt = bias_correction2.powf(0.5);
            let second = match &st.max_exp_avg_sq {
                Some(max) => Some(max.maximum(&exp_avg_sq)?),
                None => None,
            };
            // denom = (v.sqrt() / bias_correction2_sqrt).add_(eps), a true division by the
            // scalar (as a one-element tensor, shared by the parameters at the same step).
            let v = second.as_ref().unwrap_or(&exp_avg_sq);
            let divisor = match &divisor_cache {
                Some((step, t)) if *step == st.step && same_place(t, v) => t.clone(),
                _ => {
                    let t = scalar_like(bias_correction2_sqrt, v)?;
                    divisor_cache = Some((st.step, t.clone()));
                    t
                }
            };
            let denom = (v.sqrt()?.broadcast_div(&divisor)? + self.eps)?;
            // param.addcdiv_(exp_avg, denom, value=-step_size)
            let p = (p + ((&exp_avg * -step_size)? / denom)?)?;
            var.set(&p.detach())?;
            st.exp_avg = exp_avg.detach();
            st.exp_avg_sq = exp_avg_sq.detach();
            if let Some(max) = second {
                st.max_exp_avg_sq = Some(max.detach());
            }
        }
        Ok(())
    }

    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (i, st) in self.states.iter().enumerate() {
            let Some(st) = st else { continue };
            let device = self.vars[i].device();
            out.push((format!("{i}.step"), step_tensor(st.step, device)?));
            out.push((format!("{i}.exp_avg"), st.exp_avg.detach()));
            out.push((format!("{i}.exp_avg_sq"), st.exp_avg_sq.detach()));
            if let Some(max) = &st.max_exp_avg_sq {
                out.push((format!("{i}.max_exp_avg_sq"), max.detach()));
            }
        }
        Ok(out)
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut reader = StateReader::new(self.title, state);
        let mut names = vec!["step", "exp_avg", "exp_avg_sq"];
        if self.amsgrad {
            names.push("max_exp_avg_sq");
        }
        let mut states = Vec::with_capacity(self.vars.len());
        for (i, var) in self.vars.iter().enumerate() {
            if !reader.has_any(i, &names) {
                states.push(None);
                continue;
            }
            states.push(Some(ParamState {
                step: reader.step(i)?,
                exp_avg: reader.buffer(i, "exp_avg", var)?,
                exp_avg_sq: reader.buffer(i, "exp_avg_sq", var)?,
                max_exp_avg_sq: if self.amsgrad {
                    Some(reader.buffer(i, "max_exp_avg_sq", var)?)
                } else {
                    None
                },
            }));
        }
        reader.finish()?;
        self.states = states;
        Ok(())
    }
}

/// Adam as in `torch.optim.Adam`, per parameter and step `t` (weight decay coupled: added to the
/// gradient):
///
/// ```text
/// g = grad + weight_decay * p
/// m = lerp(m, g, 1 - beta1)                    (m + (1 - beta1) * (g - m))
/// v = beta2 * v + (1 - beta2) * g * g
/// v_max = max(v_max, v)                        (amsgrad; then v_max replaces v below)
/// denom = sqrt(v) / sqrt(1 - beta2^t) + eps
/// p = p - lr / (1 - beta1^t) * m / denom
/// ```
///
/// The state, in PyTorch's names, is `step`, `exp_avg` (m), `exp_avg_sq` (v) and
/// `max_exp_avg_sq` (v_max, amsgrad only), created at zero by each parameter's first step. Every
/// tensor it keeps is detached from the autograd graph, so memory stays flat across steps.
#[derive(Debug)]
pub struct Adam {
    core: Core,
}

impl Adam {
    /// An optimizer over `vars`. Errors, naming the parameter, on a learning rate, eps or
    /// weight decay that is negative or not finite, or a beta outside `[0, 1)`.
    pub fn new(vars: Vec<Var>, cfg: AdamConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            core: Core {
                name: "adam",
                title: "Adam",
                states: (0..vars.len()).map(|_| None).collect(),
                vars,
                lr: cfg.lr,
                betas: cfg.betas,
                eps: cfg.eps,
                weight_decay: cfg.weight_decay,
                amsgrad: cfg.amsgrad,
                decoupled: false,
            },
        })
    }

    /// The hyper-parameters (with the current learning rate).
    pub fn config(&self) -> AdamConfig {
        let c = &self.core;
        AdamConfig {
            lr: c.lr,
            betas: c.betas,
            eps: c.eps,
            weight_decay: c.weight_decay,
            amsgrad: c.amsgrad,
        }
    }

    /// One update from the gradients of `grads`; parameters without a gradient are skipped
    /// (and their step counter does not advance).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.core.step(grads)
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.core.lr
    }

    /// Changes the learning rate (schedules call this).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.core.lr = lr;
    }
}

/// AdamW as in `torch.optim.AdamW`: [`Adam`]'s update with the weight decay decoupled from the
/// gradient, applied first as `p = p * (1 - lr * weight_decay)`. Same state as [`Adam`].
#[derive(Debug)]
pub struct AdamW {
    core: Core,
}

impl AdamW {
    /// An optimizer over `vars`. Errors, naming the parameter, on a learning rate, eps or
    /// weight decay that is negative or not finite, or a beta outside `[0, 1)`.
    pub fn new(vars: Vec<Var>, cfg: AdamWConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            core: Core {
                name: "adamw",
                title: "AdamW",
                states: (0..vars.len()).map(|_| None).collect(),
                vars,
                lr: cfg.lr,
                betas: cfg.betas,
                eps: cfg.eps,
                weight_decay: cfg.weight_decay,
                amsgrad: cfg.amsgrad,
                decoupled: true,
            },
        })
    }

    /// The hyper-parameters (with the current learning rate).
    pub fn config(&self) -> AdamWConfig {
        let c = &self.core;
        AdamWConfig {
            lr: c.lr,
            betas: c.betas,
            eps: c.eps,
            weight_decay: c.weight_decay,
            amsgrad: c.amsgrad,
        }
    }

    /// One update from the gradients of `grads`; parameters without a gradient are skipped
    /// (and their step counter does not advance).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.core.step(grads)
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.core.lr
    }

    /// Changes the learning rate (schedules call this).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.core.lr = lr;
    }
}

macro_rules! impl_traits {
    ($ty:ident, $cfg:ident) => {
        impl Optim for $ty {
            fn name(&self) -> &'static str {
                self.core.name
            }

            fn step(&mut self, grads: &GradStore) -> Result<()> {
                self.core.step(grads)
            }

            fn learning_rate(&self) -> f64 {
                self.core.lr
            }

            fn set_learning_rate(&mut self, lr: f64) {
                self.core.lr = lr;
            }

            fn vars(&self) -> &[Var] {
                &self.core.vars
            }

            /// `"{i}.step"` (0-dim f64), `"{i}.exp_avg"`, `"{i}.exp_avg_sq"` and, with amsgrad,
            /// `"{i}.max_exp_avg_sq"` for every parameter that has taken a step.
            fn state(&self) -> Result<Vec<(String, Tensor)>> {
                self.core.state()
            }

            /// A parameter with none of its entries starts afresh (as before its first step);
            /// one with only some of them is an error.
            fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
                self.core.load_state(state)
            }
        }

        impl candle_nn::Optimizer for $ty {
            type Config = $cfg;

            fn new(vars: Vec<Var>, config: $cfg) -> Result<Self> {
                $ty::new(vars, config)
            }

            fn step(&mut self, grads: &GradStore) -> Result<()> {
                self.core.step(grads)
            }

            fn learning_rate(&self) -> f64 {
                self.core.lr
            }

            fn set_learning_rate(&mut self, lr: f64) {
                self.core.lr = lr;
            }
        }
    };
}

impl_traits!(Adam, AdamConfig);
impl_traits!(AdamW, AdamWConfig);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// One Adam step moves every coordinate by about `lr` against the gradient's sign:
    /// m = 0.1 g, v = 0.001 g^2, m / (1 - 0.9) = g, sqrt(v / (1 - 0.999)) = |g|.
    #[test]
    fn first_step_is_lr_times_sign() -> anyhow::Result<()> {
        let p = Var::new(&[1f32, -2.0, 0.5], &Device::Cpu)?;
        let mut adam = Adam::new(vec![p.clone()], AdamConfig::default())?;
        let loss = (p.as_tensor() * &Tensor::new(&[3f32, -0.5, 0.0], &Device::Cpu)?)?.sum_all()?;
        adam.step(&loss.backward()?)?;
        let v = p.to_vec1::<f32>()?;
        for (got, want) in v.iter().zip([0.999f32, -1.999, 0.5]) {
            assert!((got - want).abs() < 1e-6, "{v:?}");
        }
        Ok(())
    }

    #[test]
    fn each_invalid_parameter_is_named() {
        let bad = [
            (
                AdamConfig {
                    lr: -1.0,
                    ..Default::default()
                },
                "lr",
            ),
            (
                AdamConfig {
                    lr: f64::NAN,
                    ..Default::default()
                },
                "lr",
            ),
            (
                AdamConfig {
                    betas: (1.0, 0.999),
                    ..Default::default()
                },
                "beta1",
            ),
            (
                AdamConfig {
                    betas: (0.9, -0.1),
                    ..Default::default()
                },
                "beta2",
            ),
            (
                AdamConfig {
                    eps: f64::INFINITY,
                    ..Default::default()
                },
                "eps",
            ),
            (
                AdamConfig {
                    weight_decay: -0.1,
                    ..Default::default()
                },
                "weight_decay",
            ),
        ];
        for (cfg, name) in bad {
            let err = Adam::new(vec![], cfg).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains("Adam"), "{name}: {err}");
            let w = AdamWConfig {
                lr: cfg.lr,
                betas: cfg.betas,
                eps: cfg.eps,
                weight_decay: cfg.weight_decay,
                amsgrad: false,
            };
            let err = AdamW::new(vec![], w).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains("AdamW"), "{name}: {err}");
        }
    }

    #[test]
    fn defaults_are_pytorchs() -> anyhow::Result<()> {
        let a: AdamConfig = serde_json::from_str("{}")?;
        assert_eq!(a, AdamConfig::default());
        assert_eq!(a.weight_decay, 0.0);
        let w: AdamWConfig = serde_json::from_str(r#"{"lr": 0.01}"#)?;
        assert_eq!(w.weight_decay, 0.01);
        assert_eq!(w.lr, 0.01);
        assert!(serde_json::from_str::<AdamConfig>(r#"{"learning_rate": 0.1}"#).is_err());
        Ok(())
    }
}
