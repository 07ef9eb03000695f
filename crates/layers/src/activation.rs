//! Parameter-free layers: `Relu`, `Flatten` and `Dropout` (PyTorch's `nn.ReLU`, `nn.Flatten`,
//! `nn.Dropout`), and the seeded generator behind dropout.

use crate::init::Rng;
use crate::layer::{label, Layer, Named};
use crate::summary;
use candle_core::{Module, ModuleT, Result, Tensor};
use std::sync::Mutex;

/// `max(x, 0)` elementwise (PyTorch's `nn.ReLU`), through [`crate::ops::relu`].
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// let y = convnets_layers::Relu.forward(&Tensor::new(&[-1f32, 2.], &Device::Cpu)?)?;
/// assert_eq!(y.to_vec1::<f32>()?, [0., 2.]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relu;

impl Module for Relu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = crate::ops::relu(x)?;
        summary::record(None, "ReLU", &y, &[], 0);
        Ok(y)
    }
}

impl Relu {
    /// This layer called `name` (in errors and summaries): a [`Named`] wrapper, as `Relu` is a
    /// unit struct.
    pub fn named(self, name: impl Into<String>) -> Named<Self> {
        Named::new(name, self)
    }
}

impl Layer for Relu {
    fn kind(&self) -> &'static str {
        "ReLU"
    }
}

/// Flattens every dimension after the first, `[b, ...] -> [b, prod(...)]` (PyTorch's
/// `nn.Flatten()`, start dim 1).
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// let x = Tensor::zeros((2, 256, 6, 6), DType::F32, &Device::Cpu)?;
/// assert_eq!(convnets_layers::Flatten.forward(&x)?.dims(), &[2, 9216]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() < 2 {
            candle_core::bail!(
                "{}: expected an input [batch, ...] with 2 or more dimensions, found {:?}",
                label(None, "Flatten"),
                x.dims()
            )
        }
        let y = x.flatten_from(1)?;
        summary::record(None, "Flatten", &y, &[], 0);
        Ok(y)
    }
}

impl Flatten {
    /// This layer called `name` (in errors and summaries): a [`Named`] wrapper, as `Flatten`
    /// is a unit struct.
    pub fn named(self, name: impl Into<String>) -> Named<Self> {
        Named::new(name, self)
    }
}

impl Layer for Flatten {
    fn kind(&self) -> &'static str {
        "Flatten"
    }
}

/// The process-wide generator of the random layers ([`Dropout`]), seeded with 0 until
/// [`set_seed`] is called.
static RNG: Mutex<Option<Rng>> = Mutex::new(None);

/// Seeds the process-wide generator behind [`Dropout`] masks, so that a run is reproducible:
/// the same seed and the same sequence of calls give the same masks.
pub fn set_seed(seed: u64) {
    *RNG.lock().unwrap_or_else(|e| e.into_inner()) = Some(Rng::new(seed));
}

/// The state of the process-wide generator behind [`Dropout`] (its ChaCha key and word
/// position), for checkpoints; see [`set_rng_state`].
pub fn rng_state() -> ([u8; 32], u128) {
    RNG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(|| Rng::new(0))
        .state()
}

/// Puts the process-wide generator behind [`Dropout`] in a state saved by [`rng_state`], so
/// a resumed run draws the masks an uninterrupted run would.
pub fn set_rng_state(seed: [u8; 32], word_pos: u128) {
    *RNG.lock().unwrap_or_else(|e| e.into_inner()) = Some(Rng::from_state((seed, word_pos)));
}

/// `n` draws from `[0, 1)` from the process-wide generator.
fn uniform(n: usize) -> Vec<f32> {
    let mut guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .get_or_insert_with(|| Rng::new(0))
        .uniform(n, 0.0, 1.0)
}

/// Dropout (PyTorch's `nn.Dropout(p)`): in training each element is zeroed with probability
/// `p` and the rest are scaled by `1/(1 - p)`; in eval mode it is the identity. Masks come from
/// the seeded process-wide generator (see [`set_seed`]).
///
/// ```
/// use candle_core::{DType, Device, ModuleT, Tensor};
/// use convnets_layers::Dropout;
/// convnets_layers::set_seed(1);
/// let x = Tensor::ones((1, 1000), DType::F32, &Device::Cpu)?;
/// let d = Dropout::new(0.5)?;
/// assert_eq!(d.forward_t(&x, false)?.to_vec2::<f32>()?, x.to_vec2::<f32>()?);
/// let y = d.forward_t(&x, true)?.flatten_all()?.to_vec1::<f32>()?;
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// assert!(Dropout::new(1.5).is_err());
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Dropout {
    p: f32,
    name: Option<String>,
}

impl Dropout {
    /// Dropout with probability `p` (PyTorch's default is 0.5).
    ///
    /// Fails, as PyTorch's `nn.Dropout(p)` does, when `p` is outside `[0, 1]`: "dropout
    /// probability has to be between 0 and 1, but got {p}". A NaN `p` is refused too (PyTorch
    /// lets it through, then every output is NaN in training).
    pub fn new(p: f32) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            candle_core::bail!(
                "Dropout: dropout probability has to be between 0 and 1, but got {p}"
            )
        }
        Ok(Self { p, name: None })
    }
    /// The same layer called `name` (in errors and summaries).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }
}

impl Default for Dropout {
    /// Dropout with `p = 0.5`, PyTorch's default.
    fn default() -> Self {
        Self { p: 0.5, name: None }
    }
}

impl ModuleT for Dropout {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = if !train || self.p == 0.0 {
            x.clone()
        } else if self.p >= 1.0 {
            x.zeros_like()?
        } else {
            let keep = 1.0 - self.p;
            let scale = 1.0 / keep;
            let mask: Vec<f32> = uniform(x.elem_count())
                .into_iter()
                .map(|u| if u < keep { scale } else { 0.0 })
                .collect();
            let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
            (x * mask)?
        };
        summary::record(self.name.as_deref(), "Dropout", &y, &[], 0);
        Ok(y)
    }
}

impl Layer for Dropout {
    fn kind(&self) -> &'static str {
        "Dropout"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn dropout_is_seeded_and_keeps_the_expectation() -> anyhow::Result<()> {
        let x = Tensor::ones((100, 100), DType::F32, &Device::Cpu)?;
        let d = Dropout::new(0.3)?;
        // No other unit test of this crate draws from the shared generator.
        set_seed(42);
        let a = d.forward_t(&x, true)?.flatten_all()?.to_vec1::<f32>()?;
        set_seed(42);
        let b = d.forward_t(&x, true)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(a, b);
        let kept = a.iter().filter(|&&v| v != 0.0).count();
        assert!((6700..7300).contains(&kept), "kept {kept} of 10000");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
        assert_eq!(
            Dropout::new(1.0)?
                .forward_t(&x, true)?
                .sum_all()?
                .to_scalar::<f32>()?,
            0.0
        );
        assert_eq!(
            Dropout::new(0.0)?
                .forward_t(&x, true)?
                .sum_all()?
                .to_scalar::<f32>()?,
            10000.0
        );
        Ok(())
    }

    #[test]
    fn dropout_probability_outside_0_1_is_an_error() -> anyhow::Result<()> {
        for p in [-0.1f32, 1.1, f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let err = Dropout::new(p).unwrap_err().to_string();
            assert!(
                err.contains(&format!(
                    "Dropout: dropout probability has to be between 0 and 1, but got {p}"
                )),
                "{err}"
            );
        }
        for p in [0.0f32, 0.5, 1.0] {
            assert_eq!(Dropout::new(p)?.p(), p);
        }
        assert_eq!(Dropout::default(), Dropout::new(0.5)?);
        Ok(())
    }

    #[test]
    fn flatten_error() {
        let x = Tensor::ones(3, DType::F32, &Device::Cpu).unwrap();
        let err = Flatten.forward(&x).unwrap_err().to_string();
        assert!(
            err.contains("Flatten: expected an input [batch, ...]") && err.contains("[3]"),
            "{err}"
        );
    }
}
