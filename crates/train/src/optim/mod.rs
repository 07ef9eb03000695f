//! Optimizers with PyTorch's update rules, step for step: [`Sgd`] (`torch.optim.SGD`: momentum,
//! dampening, Nesterov, weight decay), [`Adam`] (`torch.optim.Adam`, with AMSGrad), [`AdamW`]
//! (`torch.optim.AdamW`), [`RmsProp`] (`torch.optim.RMSprop`, centered and with momentum); the
//! object-safe [`Optim`] trait the trainer drives, whose state goes into checkpoints under
//! PyTorch's buffer names; and [`OptimizerConfig`], the serialisable choice of one of them.
//!
//! Each follows PyTorch's single-tensor (`foreach=False`) implementation in the same order of
//! operations, so `float32` results agree with PyTorch's to rounding (tested at 1e-6 against
//! fixtures in `tests/golden/optim`). The hyper-parameters are validated more strictly than
//! PyTorch does: momentum, betas and RMSprop's alpha must lie in `[0, 1)`, and every value must
//! be finite.

mod adam;
mod common;
mod rmsprop;
mod sgd;

pub use adam::{Adam, AdamConfig, AdamW, AdamWConfig};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use sgd::{Sgd, SgdConfig};

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// An optimizer the trainer can drive: object safe (`Box<dyn Optim>`), and with a state that
/// a checkpoint saves and a resumed run restores exactly.
///
/// Every optimizer of this crate also implements [`candle_nn::Optimizer`], so it can be used in
/// a hand-written candle loop as well.
pub trait Optim: Send {
    /// Short name, as on the command line: `"sgd"`, `"adam"`, `"adamw"`, `"rmsprop"`.
    fn name(&self) -> &'static str;
    /// One update from the gradients in `grads`; parameters without a gradient are skipped.
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    /// The current learning rate.
    fn learning_rate(&self) -> f64;
    /// Changes the learning rate (schedules call this).
    fn set_learning_rate(&mut self, lr: f64);
    /// The parameters it updates, in order.
    fn vars(&self) -> &[Var];
    /// The optimizer's state as named, detached tensors: `"{index}.{buffer}"` with the
    /// parameter's index in [`Optim::vars`] and PyTorch's buffer name (`"3.momentum_buffer"`,
    /// `"3.exp_avg"`, `"3.step"`). Empty before the first step for stateless configurations.
    fn state(&self) -> Result<Vec<(String, Tensor)>>;
    /// Restores a state written by [`Optim::state`] for the same parameters in the same order.
    /// A missing, unexpected or mis-shaped entry is an error that names it.
    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()>;
}

/// Which optimizer, with its hyper-parameters; serialised with its name as a tag, e.g.
/// `{"name": "adamw", "lr": 0.001, "weight_decay": 0.05}` (absent hyper-parameters take
/// PyTorch's defaults, unknown ones are an error). The default is SGD with lr 0.01.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// `torch.optim.SGD`.
    Sgd(SgdConfig),
    /// `torch.optim.Adam`.
    Adam(AdamConfig),
    /// `torch.optim.AdamW`.
    #[serde(rename = "adamw")]
    AdamW(AdamWConfig),
    /// `torch.optim.RMSprop`.
    #[serde(rename = "rmsprop")]
    RmsProp(RmsPropConfig),
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self::Sgd(SgdConfig::default())
    }
}

impl OptimizerConfig {
    /// The optimizer over `vars`; errors, naming the parameter, on invalid hyper-parameters.
    pub fn build(&self, vars: Vec<Var>) -> Result<Box<dyn Optim>> {
        Ok(match *self {
            Self::Sgd(c) => Box::new(Sgd::new(vars, c)?),
            Self::Adam(c) => Box::new(Adam::new(vars, c)?),
            Self::AdamW(c) => Box::new(AdamW::new(vars, c)?),
            Self::RmsProp(c) => Box::new(RmsProp::new(vars, c)?),
        })
    }

    /// Checks the hyper-parameters without building anything.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Sgd(c) => c.validate(),
            Self::Adam(c) => c.validate(),
            Self::AdamW(c) => c.validate(),
            Self::RmsProp(c) => c.validate(),
        }
    }

    /// The (initial) learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Self::Sgd(c) => c.lr,
            Self::Adam(c) => c.lr,
            Self::AdamW(c) => c.lr,
            Self::RmsProp(c) => c.lr,
        }
    }

    /// Replaces the learning rate.
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            Self::Sgd(c) => c.lr = lr,
            Self::Adam(c) => c.lr = lr,
            Self::AdamW(c) => c.lr = lr,
            Self::RmsProp(c) => c.lr = lr,
        }
    }

    /// The short name, as on the command line and in the JSON tag: `"sgd"`, `"adam"`,
    /// `"adamw"`, `"rmsprop"` (the same as [`Optim::name`] of what [`OptimizerConfig::build`]
    /// returns).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd(_) => "sgd",
            Self::Adam(_) => "adam",
            Self::AdamW(_) => "adamw",
            Self::RmsProp(_) => "rmsprop",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn config_json_is_tagged_by_name() -> anyhow::Result<()> {
        let all = [
            OptimizerConfig::default(),
            OptimizerConfig::Adam(AdamConfig::default()),
            OptimizerConfig::AdamW(AdamWConfig::default()),
            OptimizerConfig::RmsProp(RmsPropConfig {
                centered: true,
                momentum: 0.9,
                ..Default::default()
            }),
        ];
        for cfg in all {
            let json = serde_json::to_string(&cfg)?;
            assert!(
                json.contains(&format!("\"name\":\"{}\"", cfg.name())),
                "{json}"
            );
            let back: OptimizerConfig = serde_json::from_str(&json)?;
            assert_eq!(back, cfg);
            let v = Var::zeros(3, DType::F32, &Device::Cpu)?;
            assert_eq!(cfg.build(vec![v])?.name(), cfg.name());
        }
        let c: OptimizerConfig = serde_json::from_str(r#"{"name": "adamw", "lr": 0.003}"#)?;
        assert_eq!(
            c,
            OptimizerConfig::AdamW(AdamWConfig {
                lr: 0.003,
                ..Default::default()
            })
        );
        assert!(serde_json::from_str::<OptimizerConfig>(r#"{"name": "lion"}"#).is_err());
        assert!(serde_json::from_str::<OptimizerConfig>(r#"{"name": "sgd", "mom": 1}"#).is_err());
        Ok(())
    }

    #[test]
    fn lr_accessors() {
        let mut c = OptimizerConfig::RmsProp(RmsPropConfig::default());
        assert_eq!(c.lr(), 0.01);
        c.set_lr(0.5);
        assert_eq!(c.lr(), 0.5);
        assert_eq!(OptimizerConfig::default().lr(), 0.01);
    }

    #[test]
    fn sgd_validation_names_the_parameter() {
        let bad = [
            (
                SgdConfig {
                    lr: f64::NAN,
                    ..Default::default()
                },
                "lr",
            ),
            (
                SgdConfig {
                    momentum: 1.0,
                    ..Default::default()
                },
                "momentum",
            ),
            (
                SgdConfig {
                    momentum: f64::NAN,
                    ..Default::default()
                },
                "momentum",
            ),
            (
                SgdConfig {
                    dampening: 2.0,
                    ..Default::default()
                },
                "dampening",
            ),
            (
                SgdConfig {
                    weight_decay: -1e-4,
                    ..Default::default()
                },
                "weight_decay",
            ),
            (
                SgdConfig {
                    nesterov: true,
                    momentum: 0.9,
                    dampening: 0.1,
                    ..Default::default()
                },
                "nesterov",
            ),
        ];
        for (cfg, name) in bad {
            let err = OptimizerConfig::Sgd(cfg)
                .build(vec![])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(&format!("invalid {name}")), "{name}: {err}");
        }
    }

    #[test]
    fn state_errors_name_the_entry() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let v = Var::new(&[1f32, 2.0], &dev)?;
        let cfg = OptimizerConfig::Adam(AdamConfig::default());
        let mut opt = cfg.build(vec![v.clone()])?;
        let loss = v.as_tensor().sqr()?.sum_all()?;
        opt.step(&loss.backward()?)?;
        let state: HashMap<String, Tensor> = opt.state()?.into_iter().collect();
        let mut keys: Vec<_> = state.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["0.exp_avg", "0.exp_avg_sq", "0.step"]);

        let mut partial = state.clone();
        partial.remove("0.exp_avg_sq");
        let err = opt.load_state(&partial).unwrap_err().to_string();
        assert!(err.contains("`0.exp_avg_sq`"), "{err}");

        let mut extra = state.clone();
        extra.insert("1.exp_avg".into(), Tensor::zeros(2, DType::F32, &dev)?);
        let err = opt.load_state(&extra).unwrap_err().to_string();
        assert!(err.contains("`1.exp_avg`"), "{err}");

        let mut shaped = state.clone();
        shaped.insert("0.exp_avg".into(), Tensor::zeros(3, DType::F32, &dev)?);
        let err = opt.load_state(&shaped).unwrap_err().to_string();
        assert!(err.contains("`0.exp_avg`") && err.contains("[3]"), "{err}");

        let mut step = state.clone();
        step.insert("0.step".into(), Tensor::new(1.5f64, &dev)?);
        let err = opt.load_state(&step).unwrap_err().to_string();
        assert!(err.contains("`0.step`") && err.contains("1.5"), "{err}");

        opt.load_state(&state)?;
        opt.load_state(&HashMap::new())?;
        assert!(opt.state()?.is_empty());
        Ok(())
    }
}
