//! Seeded random initialisation: PyTorch's defaults, and re-initialisation by module kind.
//!
//! Layers take PyTorch's default initialisation when they are built (a `candle_nn::Init` hint
//! that the [`ParamStore`] samples with its seeded generator). To initialise differently, as
//! seed 003 does (`for m in model.modules(): if isinstance(m, nn.Conv2d): normal_(m.weight);
//! m.bias.fill_(0)`), walk the store with [`apply`] and a rule that picks an [`Init`] per
//! parameter from its module's kind:
//!
//! ```
//! use candle_core::Device;
//! use convnets_layers::init::{self, ModuleKind};
//! use convnets_layers::{conv2d, linear, Conv2dConfig, ParamStore};
//! let store = ParamStore::new(0, &Device::Cpu);
//! conv2d(3, 32, 3, Conv2dConfig::default().padding(1), store.vb().pp("layer1").pp("conv1"))?;
//! linear(2048, 512, store.vb().pp("layer4").pp("fc1"))?;
//! let n = init::apply(&store, |p| match (p.kind, p.param) {
//!     (ModuleKind::Conv2d, "weight") => Some(init::normal(0.0, 1.0)),
//!     (ModuleKind::Conv2d, "bias") => Some(init::zeros()),
//!     _ => None,
//! })?;
//! assert_eq!(n, 2);
//! let bias = store.get("layer1.conv1.bias").unwrap().to_vec1::<f32>()?;
//! assert!(bias.iter().all(|&b| b == 0.0));
//! # Ok::<(), candle_core::Error>(())
//! ```

use crate::store::{is_buffer, ParamStore};
use candle_core::{Result, Tensor};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::Init as Hint;
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// The bound `1/sqrt(fan_in)` of PyTorch's default initialisation for `Conv2d` and `Linear`.
///
/// PyTorch initialises the weight with `kaiming_uniform_(a = sqrt(5))`, whose bound is
/// `gain * sqrt(3 / fan_in)` with `gain = sqrt(2 / (1 + a^2)) = sqrt(1/3)`, i.e. `1/sqrt(fan_in)`,
/// and the bias uniformly in `[-1/sqrt(fan_in), 1/sqrt(fan_in)]`: both are this bound.
///
/// ```
/// assert_eq!(convnets_layers::pytorch_default_bound(25), 0.2);
/// ```
pub fn pytorch_default_bound(fan_in: usize) -> f64 {
    1.0 / (fan_in.max(1) as f64).sqrt()
}

/// PyTorch's default init for the weight and bias of a layer with `fan_in` inputs.
pub fn pytorch_default(fan_in: usize) -> Hint {
    let b = pytorch_default_bound(fan_in);
    Hint::Uniform { lo: -b, up: b }
}

/// A seeded, platform-independent random generator (ChaCha8) for initialisation.
#[derive(Debug, Clone)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// The generator's state: its ChaCha key and word position (what a checkpoint keeps).
    pub fn state(&self) -> ([u8; 32], u128) {
        (self.0.get_seed(), self.0.get_word_pos())
    }

    /// A generator in the state `state` (from [`Rng::state`]): it continues the same stream.
    pub fn from_state(state: ([u8; 32], u128)) -> Self {
        let mut rng = ChaCha8Rng::from_seed(state.0);
        rng.set_word_pos(state.1);
        Self(rng)
    }

    /// `n` values drawn uniformly from `[lo, up)`.
    pub fn uniform(&mut self, n: usize, lo: f64, up: f64) -> Vec<f32> {
        (0..n)
            .map(|_| (lo + (up - lo) * self.0.random::<f64>()) as f32)
            .collect()
    }

    /// `n` values drawn from a normal distribution (Box–Muller).
    pub fn normal(&mut self, n: usize, mean: f64, std: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let u1: f64 = 1.0 - self.0.random::<f64>(); // (0, 1]
            let u2: f64 = self.0.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            out.push((mean + std * r * t.cos()) as f32);
            if out.len() < n {
                out.push((mean + std * r * t.sin()) as f32);
            }
        }
        out
    }

    /// Values for a tensor of `dims` following candle's init hint `init`.
    pub fn sample(&mut self, init: Hint, dims: &[usize]) -> Vec<f32> {
        let n: usize = dims.iter().product();
        match init {
            Hint::Const(v) => vec![v as f32; n],
            Hint::Uniform { lo, up } => self.uniform(n, lo, up),
            Hint::Randn { mean, stdev } => self.normal(n, mean, stdev),
            Hint::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let receptive: usize = dims.iter().skip(2).product();
                let fan = match (fan, dims) {
                    (_, [] | [_]) => n,
                    (FanInOut::FanIn, [_, i, ..]) => i * receptive,
                    (FanInOut::FanOut, [o, ..]) => o * receptive,
                };
                let gain = match non_linearity {
                    NonLinearity::ReLU => 2f64.sqrt(),
                    NonLinearity::Tanh => 5.0 / 3.0,
                    NonLinearity::Linear | NonLinearity::Sigmoid => 1.0,
                    NonLinearity::SELU => 0.75,
                    NonLinearity::ExplicitGain(g) => g,
                };
                let std = gain / (fan.max(1) as f64).sqrt();
                match dist {
                    NormalOrUniform::Normal => self.normal(n, 0.0, std),
                    NormalOrUniform::Uniform => {
                        let b = 3f64.sqrt() * std;
                        self.uniform(n, -b, b)
                    }
                }
            }
        }
    }
}

/// The kind of module a parameter belongs to, inferred from the parameters that share its
/// prefix: a `running_mean` makes a `BatchNorm2d`, else a 4-D `weight` a `Conv2d` and a 2-D
/// `weight` a `Linear`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleKind {
    /// `weight` `[c_out, c_in / groups, kh, kw]`, `bias` `[c_out]`.
    Conv2d,
    /// `weight` `[out, in]`, `bias` `[out]`.
    Linear,
    /// `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`.
    BatchNorm2d,
    /// Anything else.
    Other,
}

/// One tensor of a [`ParamStore`] as [`apply`] shows it to a rule.
#[derive(Clone, Copy, Debug)]
pub struct ModuleParam<'a> {
    /// The full name, `"layer1.conv1.weight"`.
    pub name: &'a str,
    /// The module's name, `"layer1.conv1"` (`""` at the top level).
    pub module: &'a str,
    /// The parameter's name within the module, `"weight"`.
    pub param: &'a str,
    /// The module's kind.
    pub kind: ModuleKind,
    /// The tensor's shape.
    pub shape: &'a [usize],
    /// The shape of the module's `weight`, if it has one (for a bias's fan-in).
    pub weight_shape: Option<&'a [usize]>,
    /// Whether it is a buffer (batch norm's running statistics), not a trainable parameter.
    pub is_buffer: bool,
}

/// The nonlinearity a gain is computed for (PyTorch's `nn.init.calculate_gain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonlinearity {
    /// Identity / linear / convolution: gain 1.
    Linear,
    /// Sigmoid: gain 1.
    Sigmoid,
    /// Tanh: gain 5/3.
    Tanh,
    /// ReLU: gain √2.
    Relu,
    /// Leaky ReLU with negative slope `a`: gain √(2 / (1 + a²)).
    LeakyRelu,
    /// SELU: gain 3/4.
    Selu,
}

/// PyTorch's `nn.init.calculate_gain(nonlinearity, param)`; `param` is the leaky ReLU's
/// negative slope (default 0.01).
///
/// ```
/// use convnets_layers::init::{calculate_gain, Nonlinearity};
/// assert_eq!(calculate_gain(Nonlinearity::Relu, None), 2f64.sqrt());
/// assert_eq!(calculate_gain(Nonlinearity::LeakyRelu, Some(5f64.sqrt())), (1.0f64 / 3.0).sqrt());
/// ```
pub fn calculate_gain(nonlinearity: Nonlinearity, param: Option<f64>) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu => {
            let a = param.unwrap_or(0.01);
            (2.0 / (1.0 + a * a)).sqrt()
        }
        Nonlinearity::Selu => 0.75,
    }
}

/// Which fan Kaiming initialisation scales by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// `fan_in = shape[1] · receptive field` (preserves the forward pass's variance).
    FanIn,
    /// `fan_out = shape[0] · receptive field` (preserves the backward pass's variance).
    FanOut,
}

/// PyTorch's `_calculate_fan_in_and_fan_out`: `(shape[1] · r, shape[0] · r)` with `r` the
/// product of the dims after the second; `None` for fewer than 2 dims.
///
/// ```
/// assert_eq!(convnets_layers::init::fans(&[96, 3, 11, 11]), Some((363, 11616)));
/// assert_eq!(convnets_layers::init::fans(&[96]), None);
/// ```
pub fn fans(shape: &[usize]) -> Option<(usize, usize)> {
    match shape {
        [o, i, rest @ ..] => {
            let r: usize = rest.iter().product();
            Some((i * r, o * r))
        }
        _ => None,
    }
}

/// How to (re)initialise one tensor: PyTorch's `nn.init` functions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Every value `v` (`nn.init.constant_`, `zeros_`, `ones_`).
    Constant(f64),
    /// Uniform in `[lo, up)` (`nn.init.uniform_(a, b)`).
    Uniform {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        up: f64,
    },
    /// Normal (`nn.init.normal_(mean, std)`).
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// `nn.init.xavier_uniform_(gain)`: uniform in `±gain·√(6 / (fan_in + fan_out))`.
    XavierUniform {
        /// Gain.
        gain: f64,
    },
    /// `nn.init.xavier_normal_(gain)`: normal with std `gain·√(2 / (fan_in + fan_out))`.
    XavierNormal {
        /// Gain.
        gain: f64,
    },
    /// `nn.init.kaiming_uniform_(a, mode, nonlinearity)`: uniform in `±√3·gain/√fan`.
    KaimingUniform {
        /// Negative slope of the leaky ReLU (only used by [`Nonlinearity::LeakyRelu`]).
        a: f64,
        /// Which fan.
        mode: FanMode,
        /// Which gain.
        nonlinearity: Nonlinearity,
    },
    /// `nn.init.kaiming_normal_(a, mode, nonlinearity)`: normal with std `gain/√fan`.
    KaimingNormal {
        /// Negative slope of the leaky ReLU (only used by [`Nonlinearity::LeakyRelu`]).
        a: f64,
        /// Which fan.
        mode: FanMode,
        /// Which gain.
        nonlinearity: Nonlinearity,
    },
    /// What PyTorch's `reset_parameters()` does for the tensor's module: `Conv2d` / `Linear`
    /// weight and bias uniform in `±1/√fan_in` (the weight's fan-in), batch norm weight 1,
    /// bias 0, running mean 0, running var 1, batch count 0.
    PytorchDefault,
}

/// `Init::Normal { mean, std }` (`nn.init.normal_`).
pub fn normal(mean: f64, std: f64) -> Init {
    Init::Normal { mean, std }
}
/// `Init::Uniform { lo, up }` (`nn.init.uniform_`).
pub fn uniform(lo: f64, up: f64) -> Init {
    Init::Uniform { lo, up }
}
/// `Init::Constant(v)` (`nn.init.constant_`).
pub fn constant(v: f64) -> Init {
    Init::Constant(v)
}
/// `Init::Constant(0.0)` (`nn.init.zeros_`).
pub fn zeros() -> Init {
    Init::Constant(0.0)
}
/// `Init::Constant(1.0)` (`nn.init.ones_`).
pub fn ones() -> Init {
    Init::Constant(1.0)
}
/// `nn.init.xavier_uniform_(gain)`.
pub fn xavier_uniform(gain: f64) -> Init {
    Init::XavierUniform { gain }
}
/// `nn.init.xavier_normal_(gain)`.
pub fn xavier_normal(gain: f64) -> Init {
    Init::XavierNormal { gain }
}
/// `nn.init.kaiming_uniform_(a, mode, nonlinearity)`; PyTorch's defaults are
/// `(0, FanIn, LeakyRelu)` (gain √2).
pub fn kaiming_uniform(a: f64, mode: FanMode, nonlinearity: Nonlinearity) -> Init {
    Init::KaimingUniform {
        a,
        mode,
        nonlinearity,
    }
}
/// `nn.init.kaiming_normal_(a, mode, nonlinearity)`; PyTorch's defaults are
/// `(0, FanIn, LeakyRelu)` (gain √2).
pub fn kaiming_normal(a: f64, mode: FanMode, nonlinearity: Nonlinearity) -> Init {
    Init::KaimingNormal {
        a,
        mode,
        nonlinearity,
    }
}

impl Init {
    /// The standard deviation of a Kaiming init for `shape`, or an error for fewer than 2 dims.
    fn kaiming_std(
        p: &ModuleParam,
        a: f64,
        mode: FanMode,
        nonlinearity: Nonlinearity,
    ) -> Result<f64> {
        let (fan_in, fan_out) = fans_of(p)?;
        let fan = match mode {
            FanMode::FanIn => fan_in,
            FanMode::FanOut => fan_out,
        };
        Ok(calculate_gain(nonlinearity, Some(a)) / (fan.max(1) as f64).sqrt())
    }

    /// Values for the tensor `p`, drawn from `rng`; an error names the tensor when the init
    /// needs fans it does not have (Xavier / Kaiming on fewer than 2 dims).
    pub fn sample(&self, p: &ModuleParam, rng: &mut Rng) -> Result<Vec<f32>> {
        let n: usize = p.shape.iter().product();
        Ok(match *self {
            Init::Constant(v) => vec![v as f32; n],
            Init::Uniform { lo, up } => rng.uniform(n, lo, up),
            Init::Normal { mean, std } => rng.normal(n, mean, std),
            Init::XavierUniform { gain } => {
                let (fi, fo) = fans_of(p)?;
                let b = gain * (6.0 / (fi + fo).max(1) as f64).sqrt();
                rng.uniform(n, -b, b)
            }
            Init::XavierNormal { gain } => {
                let (fi, fo) = fans_of(p)?;
                rng.normal(n, 0.0, gain * (2.0 / (fi + fo).max(1) as f64).sqrt())
            }
            Init::KaimingUniform {
                a,
                mode,
                nonlinearity,
            } => {
                let b = 3f64.sqrt() * Self::kaiming_std(p, a, mode, nonlinearity)?;
                rng.uniform(n, -b, b)
            }
            Init::KaimingNormal {
                a,
                mode,
                nonlinearity,
            } => rng.normal(n, 0.0, Self::kaiming_std(p, a, mode, nonlinearity)?),
            Init::PytorchDefault => match (p.kind, p.param) {
                (ModuleKind::BatchNorm2d, "weight" | "running_var") => vec![1.0; n],
                (ModuleKind::BatchNorm2d, _) => vec![0.0; n],
                (_, "running_var") => vec![1.0; n],
                (_, "running_mean" | "num_batches_tracked") => vec![0.0; n],
                _ => {
                    let w = p
                        .weight_shape
                        .filter(|w| w.len() >= 2)
                        .or(Some(p.shape).filter(|s| s.len() >= 2));
                    let Some((fan_in, _)) = w.and_then(fans) else {
                        candle_core::bail!(
                            "init: `{}` {:?}: PyTorch's default init needs the fan-in of a weight with 2 or more dims",
                            p.name,
                            p.shape
                        )
                    };
                    let b = pytorch_default_bound(fan_in);
                    rng.uniform(n, -b, b)
                }
            },
        })
    }
}

fn fans_of(p: &ModuleParam) -> Result<(usize, usize)> {
    match fans(p.shape) {
        Some(f) => Ok(f),
        None => candle_core::bail!(
            "init: `{}` has shape {:?}; fan in and fan out can not be computed for a tensor with fewer than 2 dimensions",
            p.name,
            p.shape
        ),
    }
}

/// Re-initialises the tensors of `store` (parameters and buffers, in creation order) that
/// `rule` picks an [`Init`] for, drawing from the store's own seeded generator, so the result
/// is determined by the store's seed. Returns how many tensors were set. See the
/// [module docs](self) for seed 003's example.
pub fn apply(store: &ParamStore, rule: impl Fn(&ModuleParam) -> Option<Init>) -> Result<usize> {
    let named = store.named_vars();
    store.with_rng(|rng| apply_to(&named, rng, rule))
}

/// [`apply`] drawing from `rng` instead of the store's generator.
pub fn apply_with(
    store: &ParamStore,
    rng: &mut Rng,
    rule: impl Fn(&ModuleParam) -> Option<Init>,
) -> Result<usize> {
    apply_to(&store.named_vars(), rng, rule)
}

fn apply_to(
    named: &[(String, candle_core::Var)],
    rng: &mut Rng,
    rule: impl Fn(&ModuleParam) -> Option<Init>,
) -> Result<usize> {
    let split = |name: &str| -> (String, String) {
        match name.rsplit_once('.') {
            Some((m, p)) => (m.to_string(), p.to_string()),
            None => (String::new(), name.to_string()),
        }
    };
    // Per module: its weight's shape and whether it has running statistics.
    let mut weights: HashMap<String, Vec<usize>> = HashMap::new();
    let mut has_stats: HashMap<String, bool> = HashMap::new();
    for (name, var) in named {
        let (m, p) = split(name);
        match p.as_str() {
            "weight" => {
                weights.insert(m, var.dims().to_vec());
            }
            "running_mean" => {
                has_stats.insert(m, true);
            }
            _ => {}
        }
    }
    let mut count = 0;
    for (name, var) in named {
        let (module, param) = split(name);
        let weight_shape = weights.get(&module).map(|w| w.as_slice());
        let kind = if has_stats.get(&module).copied().unwrap_or(false) {
            ModuleKind::BatchNorm2d
        } else {
            match weight_shape.map(|w| w.len()) {
                Some(4) => ModuleKind::Conv2d,
                Some(2) => ModuleKind::Linear,
                _ => ModuleKind::Other,
            }
        };
        let p = ModuleParam {
            name,
            module: &module,
            param: &param,
            kind,
            shape: var.dims(),
            weight_shape,
            is_buffer: is_buffer(name),
        };
        if let Some(init) = rule(&p) {
            let data = init.sample(&p, rng)?;
            let t = Tensor::from_vec(data, var.shape(), var.device())?.to_dtype(var.dtype())?;
            var.set(&t)?;
            count += 1;
        }
    }
    Ok(count)
}

/// Resets every tensor of `store` to PyTorch's default initialisation
/// ([`Init::PytorchDefault`]), drawing from the store's generator.
pub fn reset_to_pytorch_defaults(store: &ParamStore) -> Result<usize> {
    apply(store, |_| Some(Init::PytorchDefault))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_and_bounds_hold() {
        let a = Rng::new(7).uniform(1000, -0.2, 0.2);
        let b = Rng::new(7).uniform(1000, -0.2, 0.2);
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (-0.2..0.2).contains(v)));
        assert_ne!(a, Rng::new(8).uniform(1000, -0.2, 0.2));
    }

    #[test]
    fn normal_has_requested_moments() {
        let v = Rng::new(1).normal(100_001, 1.0, 2.0);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.03, "std {}", var.sqrt());
    }

    #[test]
    fn pytorch_default_matches_kaiming_uniform_a_sqrt5() {
        // kaiming_uniform_(a=sqrt(5)): gain = sqrt(2/(1+5)), bound = gain*sqrt(3/fan_in).
        let fan_in = 150;
        let gain = (2.0f64 / 6.0).sqrt();
        let bound = gain * (3.0 / fan_in as f64).sqrt();
        assert!((pytorch_default_bound(fan_in) - bound).abs() < 1e-12);
    }
}
