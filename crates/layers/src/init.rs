//! Seeded random initialisation with PyTorch's defaults.

use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::Init;
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
pub fn pytorch_default(fan_in: usize) -> Init {
    let b = pytorch_default_bound(fan_in);
    Init::Uniform { lo: -b, up: b }
}

/// A seeded, platform-independent random generator (ChaCha8) for initialisation.
#[derive(Debug, Clone)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// `n` values drawn uniformly from `[lo, up)`.
    pub fn uniform(&mut self, n: usize, lo: f64, up: f64) -> Vec<f32> {
        (0..n).map(|_| (lo + (up - lo) * self.0.random::<f64>()) as f32).collect()
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
    pub fn sample(&mut self, init: Init, dims: &[usize]) -> Vec<f32> {
        let n: usize = dims.iter().product();
        match init {
            Init::Const(v) => vec![v as f32; n],
            Init::Uniform { lo, up } => self.uniform(n, lo, up),
            Init::Randn { mean, stdev } => self.normal(n, mean, stdev),
            Init::Kaiming { dist, fan, non_linearity } => {
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
