//! `Linear` with PyTorch's default initialisation and a name.

use crate::grad::param;
use crate::init::pytorch_default;
use crate::layer::{label, Layer};
use crate::summary;
use candle_core::{Module, Result, Tensor, D};
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
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let (w, b) = (param(&self.weight), self.bias.as_ref().map(param));
        let y = if n_in == 0 || n_out == 0 {
            empty_linear(x, n_out, b.as_ref())?
        } else {
            crate::ops::linear(x, &w, b.as_ref())?
        };
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

/// A layer with no input or no output features, as PyTorch computes it: `[..., 0]` outputs
/// when `n_out = 0`, the bias alone (zeros without one) when `n_in = 0` (an empty sum). The
/// output stays attached to `x` (and to the bias) in the autograd graph, so their gradients
/// exist (zeros for `x`, the number of rows for each bias entry).
fn empty_linear(x: &Tensor, n_out: usize, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = if n_out == 0 {
        x.narrow(D::Minus1, 0, 0)?
    } else {
        let mut shape = x.dims().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = n_out;
        }
        x.sum_keepdim(D::Minus1)?
            .broadcast_as(shape)?
            .contiguous()?
    };
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
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
///
/// Zero features are allowed, as in PyTorch: `linear(c_in, 0, vb)` maps `[..., c_in]` to
/// `[..., 0]`, and `linear(0, c_out, vb)` maps `[..., 0]` to the bias (which PyTorch, and so
/// this function, initialises to zeros when `c_in = 0`).
pub fn linear_b(c_in: usize, c_out: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let init = pytorch_default(c_in);
    let weight = vb.get_with_hints((c_out, c_in), "weight", init)?;
    let bias = if bias {
        // PyTorch's bound is `1 / sqrt(fan_in)` if fan_in > 0 else 0.
        let bias_init = if c_in == 0 {
            candle_nn::Init::Const(0.0)
        } else {
            init
        };
        Some(vb.get_with_hints(c_out, "bias", bias_init)?)
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
        let err = fc
            .forward(&Tensor::ones((), DType::F32, &Device::Cpu)?)
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected an input [..., 4]"), "{err}");
        Ok(())
    }

    #[test]
    fn zero_features_work_as_in_pytorch() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let store = crate::ParamStore::new(0, &dev);
        // nn.Linear(3, 0): [2, 3] -> [2, 0]; the input still gets a (zero) gradient.
        let fc = linear(3, 0, store.vb().pp("to_none"))?;
        assert_eq!((fc.in_features(), fc.out_features()), (3, 0));
        let x = candle_core::Var::ones((2, 3), DType::F32, &dev)?;
        let y = fc.forward(&x)?;
        assert_eq!(y.dims(), &[2, 0]);
        let g = y.sum_all()?.backward()?;
        let gx = g.get(&x).map(|t| t.to_vec2::<f32>()).transpose()?;
        assert_eq!(gx, Some(vec![vec![0f32; 3]; 2]));
        // nn.Linear(0, 3): the bias is zeros and is the output; d sum / d bias = rows.
        let fc = linear(0, 3, store.vb().pp("from_none"))?;
        assert_eq!(
            fc.bias().map(|b| b.to_vec1::<f32>()).transpose()?,
            Some(vec![0f32; 3])
        );
        let y = fc.forward(&Tensor::zeros((2, 5, 0), DType::F32, &dev)?)?;
        assert_eq!(y.dims(), &[2, 5, 3]);
        let b = candle_core::Var::from_tensor(&Tensor::new(&[1f32, 2., 3.], &dev)?)?;
        let fc = Linear::new(
            Tensor::zeros((3, 0), DType::F32, &dev)?,
            Some(b.as_tensor().clone()),
        );
        let y = fc.forward(&Tensor::zeros((4, 0), DType::F32, &dev)?)?;
        assert_eq!(y.to_vec2::<f32>()?, vec![vec![1f32, 2., 3.]; 4]);
        let g = y.sum_all()?.backward()?;
        let gb = g.get(&b).map(|t| t.to_vec1::<f32>()).transpose()?;
        assert_eq!(gb, Some(vec![4f32; 3]));
        // Both zero, and no bias.
        let fc = linear_b(0, 0, false, store.vb().pp("none"))?;
        assert_eq!(
            fc.forward(&Tensor::zeros((2, 0), DType::F32, &dev)?)?
                .dims(),
            &[2, 0]
        );
        // A wrong width still fails clearly.
        let err = fc
            .forward(&Tensor::zeros((2, 1), DType::F32, &dev)?)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("none (Linear): expected an input [..., 0]"),
            "{err}"
        );
        Ok(())
    }
}
