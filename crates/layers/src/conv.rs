//! `Conv2d` with PyTorch's arguments and default initialisation.

use crate::grad::param;
use crate::init::pytorch_default;
use crate::layer::{label, Layer};
use crate::ops::{self, Conv2dParams, ConvGeometry};
use crate::summary;
use crate::{AvgPool2d, MaxPool2d};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Configuration of a [`Conv2d`], PyTorch's `nn.Conv2d` arguments besides the channels and
/// kernel size: the convolution's arguments ([`Conv2dParams`], the type the ops and the
/// kernels take) and whether there is a bias.
///
/// ```
/// use convnets_layers::Conv2dConfig;
/// let cfg = Conv2dConfig::default().stride(2).padding(1).bias(false);
/// assert_eq!((cfg.params.stride, cfg.params.padding, cfg.bias), ([2, 2], [1, 1], false));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Stride, padding, dilation and groups.
    pub params: Conv2dParams,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self {
            params: Conv2dParams::default(),
            bias: true,
        }
    }
}

impl Conv2dConfig {
    /// The same configuration with square `stride`.
    pub fn stride(mut self, s: usize) -> Self {
        self.params.stride = [s, s];
        self
    }
    /// The same configuration with square `padding`.
    pub fn padding(mut self, p: usize) -> Self {
        self.params.padding = [p, p];
        self
    }
    /// The same configuration with square `dilation`.
    pub fn dilation(mut self, d: usize) -> Self {
        self.params.dilation = [d, d];
        self
    }
    /// The same configuration with `groups`.
    pub fn groups(mut self, g: usize) -> Self {
        self.params.groups = g;
        self
    }
    /// The same configuration with or without bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

/// A 2-D convolution layer (PyTorch's `nn.Conv2d`): weight `[c_out, c_in / groups, kh, kw]`,
/// optional bias `[c_out]`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    name: String,
    weight: Tensor,
    bias: Option<Tensor>,
    cfg: Conv2dConfig,
}

impl Conv2d {
    /// A layer from existing tensors; `name` is used in error messages.
    pub fn new(
        name: impl Into<String>,
        weight: Tensor,
        bias: Option<Tensor>,
        cfg: Conv2dConfig,
    ) -> Self {
        Self {
            name: name.into(),
            weight,
            bias,
            cfg,
        }
    }
    /// The weight `[c_out, c_in / groups, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    /// The bias `[c_out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
    /// The configuration.
    pub fn config(&self) -> &Conv2dConfig {
        &self.cfg
    }
    /// The layer's name (its `VarBuilder` prefix).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn own_name(&self) -> Option<&str> {
        Some(self.name.as_str()).filter(|n| !n.is_empty())
    }

    fn label(&self) -> String {
        label(self.own_name(), "Conv2d")
    }

    /// The checked sizes of convolving an input of shape `[b, c, h, w]` with this layer, or an
    /// error naming the layer and the shapes when the input does not fit: wrong rank or
    /// channels, an empty image (`h = 0` or `w = 0`, which PyTorch refuses too: "only zero
    /// batch or zero channel inputs are supported"), or an image smaller than the kernel
    /// (PyTorch's "kernel size can't be greater than actual input size"). A zero batch is
    /// fine. The one check of a forward ([`ConvGeometry::new`]).
    pub fn geometry(&self, input: &[usize]) -> Result<ConvGeometry> {
        let bias = self.bias.as_ref().map(|b| b.dims());
        ConvGeometry::new(input, self.weight.dims(), bias, &self.cfg.params)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", self.label())).bt())
    }

    /// The output shape for an input of shape `[b, c, h, w]`, or the error of
    /// [`Conv2d::geometry`].
    pub fn out_shape(&self, input: &[usize]) -> Result<[usize; 4]> {
        Ok(self.geometry(input)?.output_dims())
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.geometry(x.dims())?;
        let (w, b) = (param(&self.weight), self.bias.as_ref().map(param));
        let y = ops::conv2d_with(x, &w, b.as_ref(), &g)?;
        if summary::tracing() {
            let mut params = vec![("weight", &self.weight)];
            if let Some(b) = &self.bias {
                params.push(("bias", b));
            }
            let macs = y.elem_count() as u64 * (g.c_in / g.p.groups * g.kh * g.kw) as u64;
            summary::record(self.own_name(), "Conv2d", &y, &params, macs);
        }
        Ok(y)
    }
}

impl Conv2d {
    /// `relu(self.forward(x))` as one op ([`ops::conv2d_relu_with`]): ReLU applied in the
    /// convolution's epilogue, the gradient masked inside its backward.
    /// While a summary is traced, the two ops one after the other (the convolution records
    /// its row).
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        if summary::tracing() {
            return ops::relu(&self.forward(x)?);
        }
        let g = self.geometry(x.dims())?;
        let (w, b) = (param(&self.weight), self.bias.as_ref().map(param));
        ops::conv2d_relu_with(x, &w, b.as_ref(), &g)
    }
}

impl Conv2d {
    /// `pool.forward(&self.forward(x))` — a convolution followed by average pooling, as in
    /// LeNet-5 — computed as one convolution when the pool folds into the kernel
    /// ([`ops::conv2d_avg_pool_with`]: non-overlapping windows, no padding; LeNet-5's pairs
    /// take 36 % of the multiply-adds and no pooling pass), training or not (the gradient
    /// reaches the weight through the fold). The two layers one after the other otherwise,
    /// and while a summary is traced (both record their rows). Errors name this layer or
    /// the pool, as the two forwards would.
    ///
    /// ```
    /// use candle_core::{DType, Device, Module, Tensor};
    /// use convnets_layers::{conv2d, no_grad, AvgPool2d, Conv2dConfig, ParamStore};
    /// let store = ParamStore::new(0, &Device::Cpu);
    /// let conv = conv2d(1, 6, 5, Conv2dConfig::default(), store.vb().pp("conv1"))?;
    /// let pool = AvgPool2d::new(2);
    /// let x = Tensor::randn(0f32, 1., (2, 1, 28, 28), &Device::Cpu)?;
    /// let pair = pool.forward(&conv.forward(&x)?)?;
    /// let fused = no_grad(|| conv.forward_avg_pool(&x, &pool))?;
    /// assert_eq!(fused.dims(), [2, 6, 12, 12]);
    /// assert!((fused - pair)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn forward_avg_pool(&self, x: &Tensor, pool: &AvgPool2d) -> Result<Tensor> {
        match self.forward_avg_pool_t(x, pool, false) {
            Some(y) => y,
            None => pool.forward(&self.forward(x)?),
        }
    }
}

impl Conv2d {
    /// `pool.forward(&relu(&self.forward(x)?)?)` — a convolution block of SimpleCNN, AlexNet
    /// or ZFNet — as one op ([`ops::conv2d_relu_max_pool_with`]: ReLU in the convolution's
    /// epilogue, then the pool; one tensor and one gradient for autograd instead of three),
    /// with the same values and gradients. While a summary is traced, the three layers one
    /// after the other. Errors name this layer or the pool, as their forwards would.
    ///
    /// ```
    /// use candle_core::{Device, Module, Tensor};
    /// use convnets_layers::{conv2d, relu, Conv2dConfig, MaxPool2d, ParamStore};
    /// let store = ParamStore::new(0, &Device::Cpu);
    /// let conv = conv2d(3, 8, 3, Conv2dConfig::default().padding(1), store.vb().pp("conv1"))?;
    /// let pool = MaxPool2d::new(2);
    /// let x = Tensor::randn(0f32, 1., (2, 3, 8, 8), &Device::Cpu)?;
    /// let fused = conv.forward_relu_max_pool(&x, &pool)?;
    /// let three = pool.forward(&relu(&conv.forward(&x)?)?)?;
    /// assert_eq!(fused.dims(), [2, 8, 4, 4]);
    /// assert!((fused - three)?.abs()?.max_all()?.to_scalar::<f32>()? == 0.0);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn forward_relu_max_pool(&self, x: &Tensor, pool: &MaxPool2d) -> Result<Tensor> {
        match self.forward_relu_max_pool_t(x, pool, true) {
            Some(y) => y,
            None => pool.forward(&ops::relu(&self.forward(x)?)?),
        }
    }
}

impl Conv2d {
    /// What a fusion of this layer with the pool after it needs: `None` while a summary is
    /// traced or when the pool does not fit the output (the layers then run one by one and
    /// the pool's own forward names the error); this layer's error for a bad input; else
    /// the geometry and the pool's sizes (`pool_dims` of the output's shape).
    fn pool_fusion(
        &self,
        x: &Tensor,
        pool_dims: impl Fn(&[usize]) -> Result<ops::PoolDims>,
    ) -> Option<Result<(ConvGeometry, ops::PoolDims)>> {
        if summary::tracing() {
            return None;
        }
        let g = match self.geometry(x.dims()) {
            Ok(g) => g,
            Err(e) => return Some(Err(e)),
        };
        let d = pool_dims(&g.output_dims()).ok()?;
        Some(Ok((g, d)))
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "Conv2d"
    }
    fn forward_relu_t(&self, x: &Tensor, _train: bool) -> Option<Result<Tensor>> {
        Some(self.forward_relu(x))
    }
    fn forward_relu_max_pool_t(
        &self,
        x: &Tensor,
        pool: &MaxPool2d,
        _train: bool,
    ) -> Option<Result<Tensor>> {
        let (g, d) = match self.pool_fusion(x, |o| pool.dims(o))? {
            Ok(gd) => gd,
            Err(e) => return Some(Err(e)),
        };
        let (w, b) = (param(&self.weight), self.bias.as_ref().map(param));
        Some(ops::conv2d_relu_max_pool_with(
            x,
            &w,
            b.as_ref(),
            &g,
            pool.params(),
            &d,
        ))
    }
    fn forward_avg_pool_t(
        &self,
        x: &Tensor,
        pool: &AvgPool2d,
        _train: bool,
    ) -> Option<Result<Tensor>> {
        let g = match self.pool_fusion(x, |o| pool.dims(o))? {
            Ok((g, _)) => g,
            Err(e) => return Some(Err(e)),
        };
        let (w, b) = (param(&self.weight), self.bias.as_ref().map(param));
        Some(ops::conv2d_avg_pool_with(
            x,
            &w,
            b.as_ref(),
            &g,
            pool.params(),
        ))
    }
    fn name(&self) -> Option<&str> {
        self.own_name()
    }
}

/// Builds a [`Conv2d`] with a square `kernel`, taking `weight` and `bias` from `vb` with
/// PyTorch's default initialisation (uniform in `±1/sqrt(c_in / groups * kh * kw)`).
pub fn conv2d(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder,
) -> Result<Conv2d> {
    conv2d_rect(c_in, c_out, [kernel, kernel], cfg, vb)
}

/// Builds a [`Conv2d`] with a rectangular `kernel` `(kh, kw)`; see [`conv2d`].
pub fn conv2d_rect(
    c_in: usize,
    c_out: usize,
    kernel: [usize; 2],
    cfg: Conv2dConfig,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let name = vb.prefix();
    if c_in == 0 || c_out == 0 {
        candle_core::bail!(
            "{name}: in_channels ({c_in}) and out_channels ({c_out}) must be positive"
        )
    }
    let p = &cfg.params;
    if p.groups == 0 || !c_in.is_multiple_of(p.groups) || !c_out.is_multiple_of(p.groups) {
        candle_core::bail!(
            "{name}: in_channels ({c_in}) and out_channels ({c_out}) must be divisible by groups ({})",
            p.groups
        )
    }
    if kernel.contains(&0) || p.stride.contains(&0) || p.dilation.contains(&0) {
        candle_core::bail!(
            "{name}: kernel {kernel:?}, stride {:?} and dilation {:?} must be positive",
            p.stride,
            p.dilation
        )
    }
    let fan_in = c_in / p.groups * kernel[0] * kernel[1];
    let init = pytorch_default(fan_in);
    let weight = vb.get_with_hints(
        (c_out, c_in / p.groups, kernel[0], kernel[1]),
        "weight",
        init,
    )?;
    let bias = if cfg.bias {
        Some(vb.get_with_hints(c_out, "bias", init)?)
    } else {
        None
    };
    Ok(Conv2d::new(name, weight, bias, cfg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamStore;
    use candle_core::{DType, Device};

    #[test]
    fn seed_004_shapes_and_errors() -> anyhow::Result<()> {
        let store = ParamStore::new(0, &Device::Cpu);
        let conv = conv2d(5, 10, 3, Conv2dConfig::default(), store.vb().pp("conv"))?;
        let x = Tensor::zeros((1, 5, 100, 100), DType::F32, &Device::Cpu)?;
        assert_eq!(conv.forward(&x)?.dims(), &[1, 10, 98, 98]);
        assert_eq!(conv.weight().dims(), &[10, 5, 3, 3]);

        let bad = Tensor::zeros((1, 3, 100, 100), DType::F32, &Device::Cpu)?;
        let err = conv.forward(&bad).unwrap_err().to_string();
        assert!(
            err.contains("conv (Conv2d): expected 5 input channels")
                && err.contains("[1, 3, 100, 100]"),
            "{err}"
        );
        let small = Tensor::zeros((1, 5, 2, 2), DType::F32, &Device::Cpu)?;
        let err = conv.forward(&small).unwrap_err().to_string();
        assert!(err.contains("too small for kernel 3x3"), "{err}");

        let err = conv2d(
            6,
            9,
            3,
            Conv2dConfig::default().groups(4),
            store.vb().pp("g"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("g: in_channels (6) and out_channels (9) must be divisible by groups (4)"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn empty_or_too_small_inputs_are_errors_not_panics() -> anyhow::Result<()> {
        let store = ParamStore::new(0, &Device::Cpu);
        let plain = conv2d(3, 4, 3, Conv2dConfig::default(), store.vb().pp("plain"))?;
        let padded = conv2d(
            3,
            4,
            3,
            Conv2dConfig::default().padding(2),
            store.vb().pp("pad"),
        )?;
        let z = |s: &[usize]| Tensor::zeros(s, DType::F32, &Device::Cpu);
        for (conv, shape, want) in [
            (
                &plain,
                &[1, 3, 0, 0][..],
                "plain (Conv2d): input [1, 3, 0, 0] has an empty image (0x0)",
            ),
            (
                &padded,
                &[1, 3, 0, 0],
                "pad (Conv2d): input [1, 3, 0, 0] has an empty image (0x0)",
            ),
            (
                &padded,
                &[2, 3, 0, 1],
                "pad (Conv2d): input [2, 3, 0, 1] has an empty image (0x1)",
            ),
            (
                &plain,
                &[1, 3, 2, 2],
                "plain (Conv2d): input [1, 3, 2, 2] is too small for kernel 3x3",
            ),
            (
                &plain,
                &[1, 3, 9, 2],
                "plain (Conv2d): input [1, 3, 9, 2] is too small for kernel 3x3",
            ),
            (
                &plain,
                &[1, 3, 4],
                "plain (Conv2d): expected an input [batch, 3, h, w], found [1, 3, 4]",
            ),
        ] {
            let err = conv.forward(&z(shape)?).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        // A zero batch is fine, as in PyTorch.
        assert_eq!(padded.forward(&z(&[0, 3, 5, 5])?)?.dims(), &[0, 4, 7, 7]);
        // Zero channels: refused when building, and for a layer made from an empty weight.
        let err = conv2d(0, 4, 3, Conv2dConfig::default(), store.vb().pp("c0"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c0: in_channels (0) and out_channels (4) must be positive"),
            "{err}"
        );
        assert!(conv2d(3, 0, 3, Conv2dConfig::default(), store.vb().pp("o0")).is_err());
        let empty = Conv2d::new("e", z(&[0, 3, 3, 3])?, None, Conv2dConfig::default());
        let err = empty.forward(&z(&[1, 3, 5, 5])?).unwrap_err().to_string();
        assert!(
            err.contains("e (Conv2d): cannot convolve with an empty weight [0, 3, 3, 3]"),
            "{err}"
        );
        let bad = Conv2d::new(
            "s0",
            z(&[4, 3, 3, 3])?,
            None,
            Conv2dConfig::default().stride(0),
        );
        assert!(bad.forward(&z(&[1, 3, 5, 5])?).is_err());
        Ok(())
    }

    #[test]
    fn default_init_within_pytorch_bound() -> anyhow::Result<()> {
        let store = ParamStore::new(0, &Device::Cpu);
        let conv = conv2d(6, 16, 5, Conv2dConfig::default(), store.vb().pp("c"))?;
        let bound = crate::pytorch_default_bound(6 * 25) as f32;
        let w = conv.weight().flatten_all()?.to_vec1::<f32>()?;
        assert!(w.iter().all(|v| v.abs() <= bound));
        // Spread close to the bound: max |w| over 2400 samples is within 1% of it.
        let max = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max > 0.99 * bound, "max {max} bound {bound}");
        Ok(())
    }
}
