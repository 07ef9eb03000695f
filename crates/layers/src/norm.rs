//! Normalisation layers: PyTorch's `nn.BatchNorm2d` and `nn.LocalResponseNorm` (AlexNet's LRN,
//! seed 002).

use crate::conv::Conv2d;
use crate::grad::param;
use crate::layer::{label, Layer};
use crate::summary;
use candle_core::{DType, Module, ModuleT, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

/// Configuration of a [`BatchNorm2d`], PyTorch's `nn.BatchNorm2d` arguments besides the number
/// of channels (`track_running_stats` is always on).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root (`1e-5`).
    pub eps: f64,
    /// Weight of the new batch statistics in the running averages (`0.1`):
    /// `running = (1 - momentum) · running + momentum · batch`.
    pub momentum: f64,
    /// Whether the layer has a learnable scale `weight` and shift `bias` (`true`).
    pub affine: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self {
            eps: 1e-5,
            momentum: 0.1,
            affine: true,
        }
    }
}

/// Batch normalisation over the channels of `[b, c, h, w]` (PyTorch's `nn.BatchNorm2d`).
///
/// Parameters (PyTorch's `state_dict()` keys and order): `weight` `[c]` (ones), `bias` `[c]`
/// (zeros) when affine, then the buffers `running_mean` `[c]` (zeros), `running_var` `[c]`
/// (ones) and `num_batches_tracked` `[]` (an f32 scalar here; PyTorch's int64 converts on load).
///
/// In training (`forward_t(x, true)`) the output is normalised with the batch's mean and
/// biased variance, and the running statistics are updated in place, PyTorch's rule:
/// `running_mean ← (1 - m)·running_mean + m·mean`,
/// `running_var ← (1 - m)·running_var + m·var·n/(n - 1)` (unbiased, `n = b·h·w`), and
/// `num_batches_tracked` grows by one. In eval mode the running statistics are used.
///
/// The buffers are the store's variables when the `VarBuilder` comes from a
/// [`ParamStore`](crate::ParamStore), so the updates are saved with the weights; with any other
/// `VarBuilder` the layer keeps private copies.
///
/// ```
/// use candle_core::{Device, ModuleT, Tensor};
/// use convnets_layers::{batch_norm2d, BatchNormConfig, ParamStore};
/// let store = ParamStore::new(0, &Device::Cpu);
/// let bn = batch_norm2d(2, BatchNormConfig::default(), store.vb().pp("bn1"))?;
/// let x = Tensor::new(&[1f32, 3., 10., 30.], &Device::Cpu)?.reshape((2, 2, 1, 1))?;
/// let y = bn.forward_t(&x, true)?;
/// // Channel 0 holds 1 and 10 (mean 5.5, biased var 20.25): normalised to about ±1.
/// assert!((y.flatten_all()?.to_vec1::<f32>()?[0] + 1.0).abs() < 1e-5);
/// // running_mean = 0.9·0 + 0.1·5.5
/// assert_eq!(store.get("bn1.running_mean").unwrap().to_vec1::<f32>()?[0], 0.55);
/// assert_eq!(store.names(), ["bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked"]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    name: Option<String>,
    num_features: usize,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: Var,
    cfg: BatchNormConfig,
}

/// Builds a [`BatchNorm2d`] over `c` channels, taking its parameters and buffers from `vb`
/// (named after its prefix).
pub fn batch_norm2d(c: usize, cfg: BatchNormConfig, vb: VarBuilder) -> Result<BatchNorm2d> {
    let name = vb.prefix();
    if c == 0 || cfg.eps.is_nan() || cfg.eps < 0.0 || !(0.0..=1.0).contains(&cfg.momentum) {
        candle_core::bail!(
            "{name}: BatchNorm2d needs channels > 0, eps >= 0 and momentum in [0, 1], got {c} channels and {cfg:?}"
        )
    }
    let (weight, bias) = if cfg.affine {
        (
            Some(vb.get_with_hints(c, "weight", Init::Const(1.0))?),
            Some(vb.get_with_hints(c, "bias", Init::Const(0.0))?),
        )
    } else {
        (None, None)
    };
    let running_mean =
        Var::from_tensor(&vb.get_with_hints(c, "running_mean", Init::Const(0.0))?)?;
    let running_var = Var::from_tensor(&vb.get_with_hints(c, "running_var", Init::Const(1.0))?)?;
    let num_batches_tracked =
        Var::from_tensor(&vb.get_with_hints((), "num_batches_tracked", Init::Const(0.0))?)?;
    Ok(BatchNorm2d {
        name: Some(name).filter(|n| !n.is_empty()),
        num_features: c,
        weight,
        bias,
        running_mean,
        running_var,
        num_batches_tracked,
        cfg,
    })
}

impl BatchNorm2d {
    /// The number of channels.
    pub fn num_features(&self) -> usize {
        self.num_features
    }
    /// The configuration.
    pub fn config(&self) -> &BatchNormConfig {
        &self.cfg
    }
    /// The scale `[c]`, when affine.
    pub fn weight(&self) -> Option<&Tensor> {
        self.weight.as_ref()
    }
    /// The shift `[c]`, when affine.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
    /// The running mean `[c]` (a copy of the current values).
    pub fn running_mean(&self) -> Tensor {
        self.running_mean.as_tensor().detach()
    }
    /// The running (unbiased) variance `[c]` (a copy of the current values).
    pub fn running_var(&self) -> Tensor {
        self.running_var.as_tensor().detach()
    }
    /// How many training batches have updated the running statistics.
    pub fn num_batches_tracked(&self) -> Result<u64> {
        Ok(self
            .num_batches_tracked
            .as_tensor()
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()? as u64)
    }

    fn label(&self) -> String {
        label(self.name.as_deref(), "BatchNorm2d")
    }

    /// The affine parameters `(weight, bias)`, when the layer has them.
    fn affine(&self) -> Option<(&Tensor, &Tensor)> {
        self.weight.as_ref().zip(self.bias.as_ref())
    }

    fn normalise(&self, x: &Tensor, mean: &Tensor, var: &Tensor) -> Result<Tensor> {
        let c = self.num_features;
        let xhat = x
            .broadcast_sub(mean)?
            .broadcast_div(&(var + self.cfg.eps)?.sqrt()?)?;
        match (
            self.weight.as_ref().map(param),
            self.bias.as_ref().map(param),
        ) {
            (Some(w), Some(b)) => xhat
                .broadcast_mul(&w.reshape((1, c, 1, 1))?)?
                .broadcast_add(&b.reshape((1, c, 1, 1))?),
            _ => Ok(xhat),
        }
    }
}

impl BatchNorm2d {
    /// `relu(self.forward_t(x, train))`, fused into the normalisation on the CPU when
    /// training (one pass fewer each way, one gradient fewer for autograd to accumulate). The
    /// ResNets use it for their `relu(bn(conv(x)))`.
    pub fn forward_relu_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_impl(x, train, true)
    }

    fn forward_impl(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        let c = self.num_features;
        let &[b, xc, h, w] = x.dims() else {
            candle_core::bail!(
                "{}: expected an input [batch, {c}, height, width], found {:?}",
                self.label(),
                x.dims()
            )
        };
        if xc != c {
            candle_core::bail!(
                "{}: expected {c} input channels, found input {:?}",
                self.label(),
                x.dims()
            )
        }
        let y = if train {
            let n = b * h * w;
            if n < 2 {
                candle_core::bail!(
                    "{}: expected more than 1 value per channel when training, found input {:?}",
                    self.label(),
                    x.dims()
                )
            }
            let (y, mean, var) = match (
                self.weight.as_ref().map(param),
                self.bias.as_ref().map(param),
            ) {
                // One fused op (our CPU kernel, candle's composition elsewhere).
                (Some(wt), Some(bs)) if relu => {
                    crate::ops::batch_norm2d_relu_train(x, &wt, &bs, self.cfg.eps)?
                }
                (Some(wt), Some(bs)) => crate::ops::batch_norm2d_train(x, &wt, &bs, self.cfg.eps)?,
                _ => {
                    let mean = (x.sum_keepdim((0, 2, 3))? / n as f64)?; // [1, c, 1, 1]
                    let centred = x.broadcast_sub(&mean)?;
                    let var = (centred.sqr()?.sum_keepdim((0, 2, 3))? / n as f64)?; // biased
                    let y = self.normalise(x, &mean, &var)?;
                    (if relu { crate::ops::relu(&y)? } else { y }, mean, var)
                }
            };
            self.update_running(&mean, &var, n)?;
            y
        } else {
            let dt = x.dtype();
            let mean = self
                .running_mean
                .as_tensor()
                .detach()
                .to_dtype(dt)?
                .reshape((1, c, 1, 1))?;
            let var = self
                .running_var
                .as_tensor()
                .detach()
                .to_dtype(dt)?
                .reshape((1, c, 1, 1))?;
            let y = self.normalise(x, &mean, &var)?;
            if relu {
                crate::ops::relu(&y)?
            } else {
                y
            }
        };
        if summary::tracing() {
            let params: Vec<(&str, &Tensor)> = [
                ("weight", self.weight.as_ref()),
                ("bias", self.bias.as_ref()),
            ]
            .into_iter()
            .filter_map(|(n, t)| t.map(|t| (n, t)))
            .collect();
            summary::record(self.name.as_deref(), "BatchNorm2d", &y, &params, 0);
        }
        Ok(y)
    }
    /// PyTorch's running-statistics update from a batch's mean and biased variance over `n`
    /// values per channel: `running ← (1 - m)·running + m·batch`, the variance unbiased.
    fn update_running(&self, mean: &Tensor, var: &Tensor, n: usize) -> Result<()> {
        let m = self.cfg.momentum;
        let dt = self.running_mean.dtype();
        let batch_mean = mean.detach().flatten_all()?.to_dtype(dt)?;
        let batch_var =
            (var.detach().flatten_all()? * (n as f64 / (n - 1) as f64))?.to_dtype(dt)?;
        let rm = ((self.running_mean.as_tensor().detach() * (1.0 - m))? + (batch_mean * m)?)?;
        let rv = ((self.running_var.as_tensor().detach() * (1.0 - m))? + (batch_var * m)?)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)?;
        self.num_batches_tracked
            .set(&(self.num_batches_tracked.as_tensor().detach() + 1.0)?)
    }

    /// `self.forward_t(&conv.forward(x)?, train)`, ReLU applied when `relu` (as
    /// [`BatchNorm2d::forward_relu_t`]), the pair `bn(conv(x))` of a ResNet layer. When
    /// training an affine layer after a convolution without bias, it is one op
    /// ([`crate::ops::conv2d_batch_norm2d_train`]: one activation and one gradient less for
    /// autograd); otherwise, and while a summary is traced, the two layers one after the other.
    pub fn forward_conv_t(
        &self,
        conv: &Conv2d,
        x: &Tensor,
        train: bool,
        relu: bool,
    ) -> Result<Tensor> {
        match self.conv_fused(conv, x, train, relu, None)? {
            Some(y) => Ok(y),
            None => self.forward_impl(&conv.forward(x)?, train, relu),
        }
    }

    /// `relu(self.forward_t(&conv.forward(x)?, train) + residual)`: the end of a ResNet
    /// block, one op when training as for [`BatchNorm2d::forward_conv_t`]
    /// ([`crate::ops::conv2d_batch_norm2d_add_relu_train`]), the layers and
    /// [`crate::add_relu`] otherwise.
    pub fn forward_conv_add_relu_t(
        &self,
        conv: &Conv2d,
        x: &Tensor,
        residual: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        match self.conv_fused(conv, x, train, true, Some(residual))? {
            Some(y) => Ok(y),
            None => crate::ops::add_relu(
                &self.forward_impl(&conv.forward(x)?, train, false)?,
                residual,
            ),
        }
    }

    /// The fused training forward of `conv` then this layer (then `+ residual`, ReLU), with
    /// the running statistics updated; `None` where it does not apply (eval mode, a
    /// convolution with bias, no affine parameters, a summary being traced).
    fn conv_fused(
        &self,
        conv: &Conv2d,
        x: &Tensor,
        train: bool,
        relu: bool,
        residual: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        let affine = self.weight.as_ref().zip(self.bias.as_ref());
        let fused = train && conv.bias().is_none() && !summary::tracing();
        let (Some((wt, bs)), true) = (affine, fused) else {
            return Ok(None);
        };
        let g = conv.geometry(x.dims())?;
        if g.c_out != self.num_features {
            candle_core::bail!(
                "{}: expected {} input channels, found {} from the convolution's output {:?}",
                self.label(),
                self.num_features,
                g.c_out,
                g.output_dims()
            )
        }
        let n = g.b * g.oh * g.ow;
        if n < 2 {
            candle_core::bail!(
                "{}: expected more than 1 value per channel when training, found input {:?}",
                self.label(),
                g.output_dims()
            )
        }
        let (w, wt, bs) = (param(conv.weight()), param(wt), param(bs));
        let eps = self.cfg.eps;
        let (y, mean, var) = match residual {
            None => crate::ops::conv2d_batch_norm2d_train(x, &w, &g, &wt, &bs, eps, relu)?,
            Some(r) => crate::ops::conv2d_batch_norm2d_add_relu_train(x, &w, &g, &wt, &bs, eps, r)?,
        };
        self.update_running(&mean, &var, n)?;
        Ok(Some(y))
    }
}

/// A residual block with an identity shortcut, `relu(bn2(conv2(relu(bn1(conv1(x))))) + x)`
/// (ResNet's `BasicBlock` when its shape does not change), with each normalisation's running
/// statistics updated when training. When training affine normalisations after convolutions
/// without bias that keep the input's shape, it is one op
/// ([`crate::ops::basic_block_train`]: one gradient contribution for the block's input
/// instead of two, none for its inner activation); otherwise, and while a summary is traced,
/// [`BatchNorm2d::forward_conv_t`] then [`BatchNorm2d::forward_conv_add_relu_t`]. The values
/// are the same either way.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use convnets_layers::{basic_block_t, batch_norm2d, conv2d, BatchNormConfig, Conv2dConfig, ParamStore};
/// let store = ParamStore::new(0, &Device::Cpu);
/// let vb = store.vb();
/// let cfg = Conv2dConfig::default().padding(1).bias(false);
/// let (conv1, conv2) = (conv2d(8, 8, 3, cfg, vb.pp("conv1"))?, conv2d(8, 8, 3, cfg, vb.pp("conv2"))?);
/// let bn1 = batch_norm2d(8, BatchNormConfig::default(), vb.pp("bn1"))?;
/// let bn2 = batch_norm2d(8, BatchNormConfig::default(), vb.pp("bn2"))?;
/// let x = Tensor::randn(0f32, 1., (4, 8, 6, 6), &Device::Cpu)?;
/// let y = basic_block_t(&conv1, &bn1, &conv2, &bn2, &x, true)?;
/// assert_eq!(y.dims(), [4, 8, 6, 6]);
/// assert_eq!(bn2.num_batches_tracked()?, 1);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn basic_block_t(
    conv1: &Conv2d,
    bn1: &BatchNorm2d,
    conv2: &Conv2d,
    bn2: &BatchNorm2d,
    x: &Tensor,
    train: bool,
) -> Result<Tensor> {
    if let Some(y) = basic_block_fused(conv1, bn1, conv2, bn2, x, train)? {
        return Ok(y);
    }
    let y = bn1.forward_conv_t(conv1, x, train, true)?;
    bn2.forward_conv_add_relu_t(conv2, &y, x, train)
}

/// [`basic_block_t`] as one op, with the running statistics updated; `None` where it does
/// not apply.
fn basic_block_fused(
    conv1: &Conv2d,
    bn1: &BatchNorm2d,
    conv2: &Conv2d,
    bn2: &BatchNorm2d,
    x: &Tensor,
    train: bool,
) -> Result<Option<Tensor>> {
    let plain = |c: &Conv2d| c.bias().is_none();
    if !train || summary::tracing() || !plain(conv1) || !plain(conv2) {
        return Ok(None);
    }
    let (Some((g1, b1)), Some((g2, b2))) = (bn1.affine(), bn2.affine()) else {
        return Ok(None);
    };
    let g = conv1.geometry(x.dims())?;
    let same = g.output_dims() == g.input_dims()
        && conv2.geometry(x.dims()).ok() == Some(g)
        && bn1.num_features == g.c_out
        && bn2.num_features == g.c_out
        && bn1.cfg.eps == bn2.cfg.eps
        && g.b * g.oh * g.ow >= 2;
    if !same {
        return Ok(None);
    }
    let (w1, w2) = (param(conv1.weight()), param(conv2.weight()));
    let (g1, b1, g2, b2) = (param(g1), param(b1), param(g2), param(b2));
    let (y, [(m1, v1), (m2, v2)]) =
        crate::ops::basic_block_train(x, &g, &w1, &g1, &b1, &w2, &g2, &b2, bn1.cfg.eps)?;
    let n = g.b * g.oh * g.ow;
    bn1.update_running(&m1, &v1, n)?;
    bn2.update_running(&m2, &v2, n)?;
    Ok(Some(y))
}

impl ModuleT for BatchNorm2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_impl(x, train, false)
    }
}

impl Layer for BatchNorm2d {
    fn kind(&self) -> &'static str {
        "BatchNorm2d"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// Local response normalisation across channels (PyTorch's `nn.LocalResponseNorm`, AlexNet's
/// LRN): `b_c = a_c / (k + alpha/n · Σ_{c'} a_{c'}²)^beta` where the sum runs over the `n = size`
/// channels `c - size/2 ..= c + (size-1)/2`, channels outside `[0, C)` counting as zeros.
///
/// Built from differentiable tensor ops, so it trains on every device.
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// use convnets_layers::LocalResponseNorm;
/// let lrn = LocalResponseNorm::new(3, 3.0, 1.0, 1.0);
/// // Channels 1, 2: b_0 = 1 / (1 + 3/3·(0 + 1 + 4)) = 1/6, b_1 = 2 / (1 + (1 + 4 + 0)) = 1/3
/// let x = Tensor::new(&[1f32, 2.], &Device::Cpu)?.reshape((1, 2, 1, 1))?;
/// let y = lrn.forward(&x)?.flatten_all()?.to_vec1::<f32>()?;
/// assert!((y[0] - 1.0 / 6.0).abs() < 1e-6 && (y[1] - 1.0 / 3.0).abs() < 1e-6);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LocalResponseNorm {
    /// Number of neighbouring channels summed over (`n`).
    pub size: usize,
    /// Scale `alpha`.
    pub alpha: f64,
    /// Exponent `beta`.
    pub beta: f64,
    /// Additive constant `k`.
    pub k: f64,
    name: Option<String>,
}

impl LocalResponseNorm {
    /// PyTorch's `nn.LocalResponseNorm(size, alpha, beta, k)`.
    pub fn new(size: usize, alpha: f64, beta: f64, k: f64) -> Self {
        Self {
            size,
            alpha,
            beta,
            k,
            name: None,
        }
    }
    /// AlexNet's setting (Krizhevsky et al. 2012, §3.3): `size 5, alpha 1e-4, beta 0.75, k 2`.
    pub fn alexnet() -> Self {
        Self::new(5, 1e-4, 0.75, 2.0)
    }
    /// The same layer called `name` (in errors and summaries).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl Default for LocalResponseNorm {
    /// [`LocalResponseNorm::alexnet`].
    fn default() -> Self {
        Self::alexnet()
    }
}

impl Module for LocalResponseNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let kind = "LocalResponseNorm";
        if x.rank() < 3 {
            candle_core::bail!(
                "{}: expected an input [batch, channels, ...] with 3 or more dimensions, found {:?}",
                label(self.name.as_deref(), kind),
                x.dims()
            )
        }
        if self.size == 0 {
            candle_core::bail!(
                "{}: size must be positive",
                label(self.name.as_deref(), kind)
            )
        }
        let c = x.dim(1)?;
        let padded = x
            .sqr()?
            .pad_with_zeros(1, self.size / 2, (self.size - 1) / 2)?;
        let mut sum = padded.narrow(1, 0, c)?;
        for j in 1..self.size {
            sum = (sum + padded.narrow(1, j, c)?)?;
        }
        let div = ((sum * (self.alpha / self.size as f64))? + self.k)?.powf(self.beta)?;
        let y = (x / div)?;
        summary::record(self.name.as_deref(), kind, &y, &[], 0);
        Ok(y)
    }
}

impl Layer for LocalResponseNorm {
    fn kind(&self) -> &'static str {
        "LocalResponseNorm"
    }
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamStore;
    use candle_core::Device;

    #[test]
    fn buffers_are_the_store_s_variables_and_errors_name_the_layer() -> anyhow::Result<()> {
        let store = ParamStore::new(0, &Device::Cpu);
        let bn = batch_norm2d(
            3,
            BatchNormConfig::default(),
            store.vb().pp("layer1").pp("bn"),
        )?;
        let x = Tensor::arange(0f32, 24., &Device::Cpu)?.reshape((2, 3, 2, 2))?;
        bn.forward_t(&x, true)?;
        bn.forward_t(&x, true)?;
        assert_eq!(bn.num_batches_tracked()?, 2);
        let in_store = store
            .get("layer1.bn.num_batches_tracked")
            .map(|v| v.to_scalar::<f32>())
            .transpose()?;
        assert_eq!(in_store, Some(2.0));
        assert_eq!(
            store
                .get("layer1.bn.running_mean")
                .map(|v| v.to_vec1::<f32>())
                .transpose()?,
            Some(bn.running_mean().to_vec1::<f32>()?)
        );
        // Only weight and bias are trainable.
        assert_eq!(store.trainable_vars().len(), 2);
        // Eval leaves the statistics alone.
        let before = bn.running_var().to_vec1::<f32>()?;
        bn.forward_t(&x, false)?;
        assert_eq!(bn.running_var().to_vec1::<f32>()?, before);

        let err = bn
            .forward_t(&x.narrow(1, 0, 2)?, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("layer1.bn (BatchNorm2d): expected 3 input channels")
                && err.contains("[2, 2, 2, 2]"),
            "{err}"
        );
        let one = Tensor::ones((1, 3, 1, 1), DType::F32, &Device::Cpu)?;
        let err = bn.forward_t(&one, true).unwrap_err().to_string();
        assert!(err.contains("more than 1 value per channel"), "{err}");
        let err = bn
            .forward_t(&Tensor::ones((2, 3), DType::F32, &Device::Cpu)?, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected an input [batch, 3, height, width], found [2, 3]"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn not_affine_has_only_buffers() -> anyhow::Result<()> {
        let store = ParamStore::new(0, &Device::Cpu);
        let cfg = BatchNormConfig {
            affine: false,
            ..Default::default()
        };
        let bn = batch_norm2d(2, cfg, store.vb().pp("bn"))?;
        assert!(bn.weight().is_none());
        assert_eq!(
            store.names(),
            [
                "bn.running_mean",
                "bn.running_var",
                "bn.num_batches_tracked"
            ]
        );
        let x = Tensor::arange(0f32, 8., &Device::Cpu)?.reshape((2, 2, 2, 1))?;
        let y = bn.forward_t(&x, true)?;
        // Normalised per channel: mean 0.
        let m = y.sum_keepdim((0, 2, 3))?.flatten_all()?.to_vec1::<f32>()?;
        assert!(m.iter().all(|v| v.abs() < 1e-5), "{m:?}");
        Ok(())
    }

    #[test]
    fn lrn_errors() -> anyhow::Result<()> {
        let err = LocalResponseNorm::alexnet()
            .named("norm1")
            .forward(&Tensor::ones((2, 3), DType::F32, &Device::Cpu)?);
        let err = err.unwrap_err().to_string();
        assert!(
            err.contains("norm1 (LocalResponseNorm): expected an input [batch, channels, ...]")
                && err.contains("[2, 3]"),
            "{err}"
        );
        Ok(())
    }
}
