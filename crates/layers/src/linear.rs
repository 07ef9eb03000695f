//! `Linear` with PyTorch's default initialisation and a name.

use crate::grad::param;
use crate::init::pytorch_default;
use crate::layer::{label, Layer};
use crate::summary;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A fully connected layer `y = x W^T + b` (PyTorch's `nn.Linear`): weight `[out, in]`,
/// optional bias `[out]`. The input is `[..., in]`; every leading dimension is kept.
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// use convnets_layers::Linear;
/// let w = Tensor::new(&[[1f32, 2.], [3., 4.], [5., 6.]], &Device::Cpu)?;
/// let fc = Linear::new(w, None).named("fc");
/// let y = fc.forward(&Tensor::new(&[[10f32, 100.]], &Device::Cpu)?)?;
/// assert_eq!(y.to_vec2::<f32>()?, [[210., 430., 650.]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Linear {
    name: Option<String>,
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// A layer from existing tensors: `weight` `[out, in]`, `bias` `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            name: None,
            weight,
            bias,
        }
    }
    /// The same layer called `name` (in errors and summaries).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.weight.dims().get(1).copied().unwrap_or(0)
    }
    /// Number of output features.
    pub fn out_features(&self) -> usize {
        self.weight.dims().first().copied().unwrap_or(0)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n_in, n_out) = (self.in_features(), self.out_features());
        let dims = x.dims();
        if dims.last() != Some(&n_in) {
            candle_core::bail!(
                "{}: expected an input [..., {n_in}] ({n_in} features), found {dims:?}",
                label(self.name.as_deref(), "Linear")
            )
        }
        let rows = x.elem_count() / n_in.max(1);
        let (w, b) = (param(&self.weight), self.bias.as_ref().map(param));
        let y = crate::ops::linear(x, &w, b.as_ref())?;
        if summary::tracing() {
            let mut params = vec![("weight", &self.weight)];
            if let Some(b) = &self.bias {
                params.push(("bias", b));
            }
            summary::record(
                self.name.as_deref(),
                "Linear",
                &y,
                &params,
                (rows * n_in * n_out) as u64,
            );
        }
        Ok(y)
    }
}

impl Layer for Linear {
    fn kind(&self) -> &'static str {
        "Linear"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// Builds a fully connected layer `y = x W^T + b` with weight `[c_out, c_in]` and bias
/// `[c_out]`, initialised as PyTorch's `nn.Linear` (uniform in `±1/sqrt(c_in)`), named after
/// the prefix of `vb`.
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// let store = convnets_layers::ParamStore::new(0, &Device::Cpu);
/// let fc = convnets_layers::linear(256, 320, store.vb().pp("fc1"))?;
/// let y = fc.forward(&Tensor::zeros((2, 256), candle_core::DType::F32, &Device::Cpu)?)?;
/// assert_eq!(y.dims(), &[2, 320]);
/// assert_eq!(store.num_params(), 256 * 320 + 320);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn linear(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Linear> {
    linear_b(c_in, c_out, true, vb)
}

/// [`linear`] with or without a bias.
pub fn linear_b(c_in: usize, c_out: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let init = pytorch_default(c_in);
    let weight = vb.get_with_hints((c_out, c_in), "weight", init)?;
    let bias = if bias {
        Some(vb.get_with_hints(c_out, "bias", init)?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias).named(vb.prefix()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn shapes_and_errors() -> anyhow::Result<()> {
        let store = crate::ParamStore::new(0, &Device::Cpu);
        let fc = linear(4, 3, store.vb().pp("classifier").pp(1))?;
        assert_eq!(fc.name(), Some("classifier.1"));
        let x = Tensor::ones((2, 5, 4), DType::F32, &Device::Cpu)?;
        let y = fc.forward(&x)?;
        assert_eq!(y.dims(), &[2, 5, 3]);
        // Same as row by row.
        let y0 = fc.forward(&x.get(0)?.get(0)?)?;
        assert_eq!(y.get(1)?.get(2)?.to_vec1::<f32>()?, y0.to_vec1::<f32>()?);
        let err = fc
            .forward(&Tensor::ones((2, 5), DType::F32, &Device::Cpu)?)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("classifier.1 (Linear): expected an input [..., 4]")
                && err.contains("[2, 5]"),
            "{err}"
        );
        let nb = linear_b(4, 3, false, store.vb().pp("nb"))?;
        assert!(nb.bias().is_none());
        Ok(())
    }
}
