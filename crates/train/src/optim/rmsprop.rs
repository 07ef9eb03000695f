//! RMSprop exactly as `torch.optim.RMSprop` computes it (the single-tensor path
//! `_single_tensor_rmsprop`, `foreach=False`, `maximize=False`, `capturable=False`).

use super::common::{lerp, non_negative, step_tensor, unit_open, StateReader};
use super::Optim;
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The hyper-parameters of [`RmsProp`]: `torch.optim.RMSprop`'s names and defaults (lr 1e-2,
/// alpha 0.99, eps 1e-8, weight_decay 0, momentum 0, centered false). In JSON, absent fields
/// take their default and unknown ones are an error.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmsPropConfig {
    /// Learning rate.
    pub lr: f64,
    /// Smoothing constant of the running average of the squared gradient.
    pub alpha: f64,
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Momentum factor (0 disables the momentum buffer).
    pub momentum: f64,
    /// Normalise by an estimate of the gradient's variance instead of its second moment.
    pub centered: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

impl RmsPropConfig {
    /// Checks the hyper-parameters (see [`RmsProp::new`]).
    pub fn validate(&self) -> Result<()> {
        non_negative("RMSprop", "lr", self.lr)?;
        unit_open("RMSprop", "alpha", self.alpha)?;
        non_negative("RMSprop", "eps", self.eps)?;
        non_negative("RMSprop", "weight_decay", self.weight_decay)?;
        unit_open("RMSprop", "momentum", self.momentum)
    }
}

/// Per-parameter state, created (at zero) by the parameter's first step.
#[derive(Debug)]
struct ParamState {
    step: u64,
    square_avg: Tensor,
    momentum_buffer: Option<Tensor>,
    grad_avg: Option<Tensor>,
}

/// RMSprop as in `torch.optim.RMSprop`, per parameter:
///
/// ```text
/// g = grad + weight_decay * p
/// v = alpha * v + (1 - alpha) * g * g
/// avg = sqrt(v) + eps                          (not centered)
/// m = lerp(m, g, 1 - alpha); avg = sqrt(v - m * m) + eps     (centered)
/// buf = momentum * buf + g / avg; p = p - lr * buf          (momentum > 0)
/// p = p - lr * g / avg                                       (momentum = 0)
/// ```
///
/// The state, in PyTorch's names, is `step`, `square_avg` (v), `momentum_buffer` (buf, only with
/// a momentum) and `grad_avg` (m, centered only). Every tensor it keeps is detached from the
/// autograd graph, so memory stays flat across steps.
#[derive(Debug)]
pub struct RmsProp {
    vars: Vec<Var>,
    states: Vec<Option<ParamState>>,
    cfg: RmsPropConfig,
}

impl RmsProp {
    /// An optimizer over `vars`. Errors, naming the parameter, on a learning rate, eps or
    /// weight decay that is negative or not finite, or an alpha or momentum outside `[0, 1)`
    /// (PyTorch accepts any alpha and momentum >= 0).
    pub fn new(vars: Vec<Var>, cfg: RmsPropConfig) -> Result<Self> {
        cfg.validate()?;
        let states = (0..vars.len()).map(|_| None).collect();
        Ok(Self { vars, states, cfg })
    }

    /// The hyper-parameters (with the current learning rate).
    pub fn config(&self) -> &RmsPropConfig {
        &self.cfg
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.cfg.lr
    }

    /// Changes the learning rate (schedules call this).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// One update from the gradients of `grads`; parameters without a gradient are skipped
    /// (and their step counter does not advance).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let c = self.cfg;
        for (var, slot) in self.vars.iter().zip(self.states.iter_mut()) {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let p = var.as_tensor().detach();
            let mut g = grad.detach();
            let st = match slot {
                Some(st) => st,
                None => slot.insert(ParamState {
                    step: 0,
                    square_avg: p.zeros_like()?,
                    momentum_buffer: if c.momentum > 0.0 {
                        Some(p.zeros_like()?)
                    } else {
                        None
                    },
                    grad_avg: if c.centered {
                        Some(p.zeros_like()?)
                    } else {
                        None
                    },
                }),
            };
            st.step += 1;
            if c.weight_decay != 0.0 {
                // grad = grad.add(param, alpha=weight_decay)
                g = (g + (&p * c.weight_decay)?)?;
            }
            // square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
            let square_avg = ((&st.square_avg * c.alpha)? + ((&g * (1.0 - c.alpha))? * &g)?)?;
            let (avg, grad_avg) = match &st.grad_avg {
                Some(ga) => {
                    // grad_avg.lerp_(grad, 1 - alpha)
                    // avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
                    let ga = lerp(ga, &g, 1.0 - c.alpha)?;
                    let avg = (&square_avg + ((&ga * -1.0)? * &ga)?)?.sqrt()?;
                    (avg, Some(ga))
                }
                None => (square_avg.sqrt()?, None),
            };
            let avg = (avg + c.eps)?;
            let p = match &st.momentum_buffer {
                Some(buf) => {
                    // buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
                    let buf = ((buf * c.momentum)? + (&g / &avg)?)?;
                    let p = (p + (&buf * -c.lr)?)?;
                    st.momentum_buffer = Some(buf.detach());
                    p
                }
                // param.addcdiv_(grad, avg, value=-lr)
                None => (p + ((&g * -c.lr)? / &avg)?)?,
            };
            var.set(&p.detach())?;
            st.square_avg = square_avg.detach();
            if let Some(ga) = grad_avg {
                st.grad_avg = Some(ga.detach());
            }
        }
        Ok(())
    }
}

impl Optim for RmsProp {
    fn name(&self) -> &'static str {
        "rmsprop"
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        RmsProp::step(self, grads)
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

    /// `"{i}.step"` (0-dim f64), `"{i}.square_avg"`, and `"{i}.momentum_buffer"` (momentum > 0)
    /// and `"{i}.grad_avg"` (centered) for every parameter that has taken a step.
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (i, st) in self.states.iter().enumerate() {
            let Some(st) = st else { continue };
            out.push((
                format!("{i}.step"),
                step_tensor(st.step, self.vars[i].device())?,
            ));
            out.push((format!("{i}.square_avg"), st.square_avg.detach()));
            if let Some(b) = &st.momentum_buffer {
                out.push((format!("{i}.momentum_buffer"), b.detach()));
            }
            if let Some(m) = &st.grad_avg {
                out.push((format!("{i}.grad_avg"), m.detach()));
            }
        }
        Ok(out)
    }

    /// A parameter with none of its entries starts afresh (as before its first step); one with
    /// only some of them is an error.
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let c = self.cfg;
        let mut reader = StateReader::new("RMSprop", state);
        let mut names = vec!["step", "square_avg"];
        if c.momentum > 0.0 {
            names.push("momentum_buffer");
        }
        if c.centered {
            names.push("grad_avg");
        }
        let mut states = Vec::with_capacity(self.vars.len());
        for (i, var) in self.vars.iter().enumerate() {
            if !reader.has_any(i, &names) {
                states.push(None);
                continue;
            }
            states.push(Some(ParamState {
                step: reader.step(i)?,
                square_avg: reader.buffer(i, "square_avg", var)?,
                momentum_buffer: if c.momentum > 0.0 {
                    Some(reader.buffer(i, "momentum_buffer", var)?)
                } else {
                    None
                },
                grad_avg: if c.centered {
                    Some(reader.buffer(i, "grad_avg", var)?)
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

impl candle_nn::Optimizer for RmsProp {
    type Config = RmsPropConfig;

    fn new(vars: Vec<Var>, config: RmsPropConfig) -> Result<Self> {
        RmsProp::new(vars, config)
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        RmsProp::step(self, grads)
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

    #[test]
    fn each_invalid_parameter_is_named() {
        let bad = [
            (
                RmsPropConfig {
                    lr: -0.1,
                    ..Default::default()
                },
                "lr",
            ),
            (
                RmsPropConfig {
                    alpha: 1.5,
                    ..Default::default()
                },
                "alpha",
            ),
            (
                RmsPropConfig {
                    eps: f64::NAN,
                    ..Default::default()
                },
                "eps",
            ),
            (
                RmsPropConfig {
                    weight_decay: f64::INFINITY,
                    ..Default::default()
                },
                "weight_decay",
            ),
            (
                RmsPropConfig {
                    momentum: 1.0,
                    ..Default::default()
                },
                "momentum",
            ),
        ];
        for (cfg, name) in bad {
            let err = RmsProp::new(vec![], cfg).unwrap_err().to_string();
            assert!(
                err.contains(&format!("invalid {name}")) && err.contains("RMSprop"),
                "{name}: {err}"
            );
        }
    }
}
