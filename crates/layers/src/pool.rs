//! Pooling layers: PyTorch's `nn.MaxPool2d`, `nn.AvgPool2d` and `nn.AdaptiveAvgPool2d`.

use crate::layer::{expect_4d, label, Layer};
use crate::ops::{self, pool_output_hw, Pool2dParams, PoolDims};
use crate::summary;
use candle_core::{Module, Result, Tensor};

macro_rules! pool_layer {
    ($ty:ident, $kind:literal, $op:path, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $ty {
            params: Pool2dParams,
            name: Option<String>,
        }

        impl $ty {
            #[doc = concat!("A `k`x`k` window with stride `k` (PyTorch's `", $kind, "(k)`).")]
            pub fn new(k: usize) -> Self {
                Self::from_params(Pool2dParams::square(k, k))
            }
            #[doc = concat!("A `k`x`k` window with stride `s` (PyTorch's `", $kind, "(k, s)`).")]
            pub fn with_stride(k: usize, s: usize) -> Self {
                Self::from_params(Pool2dParams::square(k, s))
            }
            /// A layer with every pooling argument given.
            pub fn from_params(params: Pool2dParams) -> Self {
                Self { params, name: None }
            }
            /// The same layer with implicit padding `p` on every side.
            pub fn padding(mut self, p: usize) -> Self {
                self.params.padding = [p, p];
                self
            }
            /// The same layer with `ceil_mode` (output size rounded up).
            pub fn ceil_mode(mut self, ceil: bool) -> Self {
                self.params.ceil_mode = ceil;
                self
            }
            /// The same layer called `name` (in errors and summaries).
            pub fn named(mut self, name: impl Into<String>) -> Self {
                self.name = Some(name.into());
                self
            }
            /// The pooling arguments.
            pub fn params(&self) -> &Pool2dParams {
                &self.params
            }
            /// The output shape for an input of shape `[b, c, h, w]`, or the error of
            #[doc = concat!("[`", stringify!($ty), "::dims`].")]
            pub fn out_shape(&self, input: &[usize]) -> Result<[usize; 4]> {
                let d = self.dims(input)?;
                Ok([input[0], input[1], d.oh, d.ow])
            }
            /// The checked sizes of pooling an input of shape `[b, c, h, w]`, or an error
            /// naming the layer and the shapes when there are none: wrong rank, an empty
            /// channel or image dimension (PyTorch only allows an empty batch), or an image
            /// too small for the window (PyTorch's "output size is too small"). The one check
            /// of a forward.
            pub fn dims(&self, input: &[usize]) -> Result<PoolDims> {
                let &[b, c, h, w] = input else {
                    candle_core::bail!(
                        "{}: expected an input [batch, channels, height, width], found {input:?}",
                        label(self.name.as_deref(), $kind)
                    )
                };
                if c == 0 || h == 0 || w == 0 {
                    candle_core::bail!(
                        "{}: input {input:?} is empty; channels, height and width must be positive \
                         (only the batch may be 0)",
                        label(self.name.as_deref(), $kind)
                    )
                }
                let p = &self.params;
                // `padding <= kernel / 2` first, so that no size below can overflow.
                let fits = p.padding[0] <= p.kernel[0] / 2 && p.padding[1] <= p.kernel[1] / 2;
                match fits.then(|| pool_output_hw(input, p).ok()).flatten() {
                    Some((oh, ow)) => Ok(PoolDims { planes: b * c, h, w, oh, ow }),
                    None => candle_core::bail!(
                        "{}: input {input:?} is too small for (or does not fit) kernel {:?} with stride {:?}, \
                         padding {:?}, ceil_mode {} (kernel and stride must be > 0, padding at most half \
                         the kernel)",
                        label(self.name.as_deref(), $kind),
                        p.kernel,
                        p.stride,
                        p.padding,
                        p.ceil_mode
                    ),
                }
            }
        }

        impl Module for $ty {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                let d = self.dims(x.dims())?;
                let y = $op(x, &self.params, &d)?;
                summary::record(self.name.as_deref(), $kind, &y, &[], 0);
                Ok(y)
            }
        }

        impl Layer for $ty {
            fn kind(&self) -> &'static str {
                $kind
            }
            fn name(&self) -> Option<&str> {
                self.name.as_deref()
            }
            fn as_avg_pool2d(&self) -> Option<&AvgPool2d> {
                (&*self as &dyn std::any::Any).downcast_ref()
            }
            fn as_max_pool2d(&self) -> Option<&MaxPool2d> {
                (&*self as &dyn std::any::Any).downcast_ref()
            }
        }
    };
}

pool_layer!(
    MaxPool2d,
    "MaxPool2d",
    ops::max_pool2d_with,
    "Max pooling (PyTorch's `nn.MaxPool2d`); `MaxPool2d::new(k)` is `MaxPool2d(k)` (stride = kernel).\n\n\
     ```\n\
     use candle_core::{Device, Module, Tensor};\n\
     let x = Tensor::arange(0f32, 16., &Device::Cpu)?.reshape((1, 1, 4, 4))?;\n\
     let y = convnets_layers::MaxPool2d::new(2).forward(&x)?;\n\
     assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [5., 7., 13., 15.]);\n\
     # Ok::<(), candle_core::Error>(())\n\
     ```"
);

pool_layer!(
    AvgPool2d,
    "AvgPool2d",
    ops::avg_pool2d_with,
    "Average pooling (PyTorch's `nn.AvgPool2d`); `AvgPool2d::new(k)` is `AvgPool2d(k)` (stride = kernel).\n\n\
     ```\n\
     use candle_core::{Device, Module, Tensor};\n\
     let x = Tensor::arange(0f32, 16., &Device::Cpu)?.reshape((1, 1, 4, 4))?;\n\
     let y = convnets_layers::AvgPool2d::new(2).forward(&x)?;\n\
     assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [2.5, 4.5, 10.5, 12.5]);\n\
     # Ok::<(), candle_core::Error>(())\n\
     ```"
);

impl AvgPool2d {
    /// The same layer with or without the padded zeros counted in the divisor.
    pub fn count_include_pad(mut self, include: bool) -> Self {
        self.params.count_include_pad = include;
        self
    }
}

/// Adaptive average pooling to a fixed output size (PyTorch's `nn.AdaptiveAvgPool2d`).
///
/// Output cell `(i, j)` averages input rows `floor(i·h/oh) .. ceil((i+1)·h/oh)` and columns
/// `floor(j·w/ow) .. ceil((j+1)·w/ow)`, PyTorch's windows. When the output size divides the
/// input size this is an ordinary [`AvgPool2d`] (kernel = stride = input / output); otherwise
/// it is two matrix products with averaging matrices, so it is differentiable on every device.
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// use convnets_layers::AdaptiveAvgPool2d;
/// let x = Tensor::arange(0f32, 5., &Device::Cpu)?.reshape((1, 1, 1, 5))?;
/// let y = AdaptiveAvgPool2d::new([1, 3]).forward(&x)?;
/// // windows 0..2, 1..4, 3..5
/// assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [0.5, 2.0, 3.5]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d {
    output: [usize; 2],
    name: Option<String>,
}

impl AdaptiveAvgPool2d {
    /// Pooling to `[oh, ow]`.
    pub fn new(output: [usize; 2]) -> Self {
        Self { output, name: None }
    }
    /// The same layer called `name` (in errors and summaries).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// The output size `[oh, ow]`.
    pub fn output_size(&self) -> [usize; 2] {
        self.output
    }
}

/// PyTorch's adaptive pooling window `[start, end)` of output `i` of `out` over `len` inputs.
pub fn adaptive_window(i: usize, len: usize, out: usize) -> (usize, usize) {
    (i * len / out, ((i + 1) * len).div_ceil(out))
}

/// The `[out, len]` averaging matrix: row `i` holds `1/n` on the `n` inputs of window `i`.
fn averaging_matrix(len: usize, out: usize, like: &Tensor) -> Result<Tensor> {
    let mut m = vec![0f32; out * len];
    for i in 0..out {
        let (s, e) = adaptive_window(i, len, out);
        let v = 1.0 / (e - s) as f32;
        m[i * len + s..i * len + e].fill(v);
    }
    Tensor::from_vec(m, (out, len), like.device())?.to_dtype(like.dtype())
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let kind = "AdaptiveAvgPool2d";
        expect_4d(x, self.name.as_deref(), kind)?;
        let (b, c, h, w) = x.dims4()?;
        let [oh, ow] = self.output;
        if oh == 0 || ow == 0 || h == 0 || w == 0 {
            candle_core::bail!(
                "{}: cannot pool input {:?} to output size {:?} (sizes must be positive)",
                label(self.name.as_deref(), kind),
                x.dims(),
                self.output
            )
        }
        let y = if h % oh == 0 && w % ow == 0 {
            let (kh, kw) = (h / oh, w / ow);
            if kh == 1 && kw == 1 {
                x.clone()
            } else {
                let p = Pool2dParams {
                    kernel: [kh, kw],
                    stride: [kh, kw],
                    ..Pool2dParams::square(1, 1)
                };
                ops::avg_pool2d(x, &p)?
            }
        } else {
            let x = x.contiguous()?;
            let ph = averaging_matrix(h, oh, &x)?; // [oh, h]
            let pw = averaging_matrix(w, ow, &x)?.t()?.contiguous()?; // [w, ow]
            let rows = ph.broadcast_left((b, c))?.contiguous()?.matmul(&x)?; // [b, c, oh, w]
            rows.matmul(&pw.broadcast_left((b, c))?.contiguous()?)? // [b, c, oh, ow]
        };
        summary::record(self.name.as_deref(), kind, &y, &[], 0);
        Ok(y)
    }
}

impl Layer for AdaptiveAvgPool2d {
    fn kind(&self) -> &'static str {
        "AdaptiveAvgPool2d"
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
    fn windows_are_pytorch_s() {
        // 10 -> 4: [0,3) [2,5) [5,8) [7,10)
        let w: Vec<_> = (0..4).map(|i| adaptive_window(i, 10, 4)).collect();
        assert_eq!(w, [(0, 3), (2, 5), (5, 8), (7, 10)]);
        // 2 -> 3 (output larger than input): [0,1) [0,2) [1,2)
        let w: Vec<_> = (0..3).map(|i| adaptive_window(i, 2, 3)).collect();
        assert_eq!(w, [(0, 1), (0, 2), (1, 2)]);
    }

    #[test]
    fn adaptive_matches_windows_by_hand() -> anyhow::Result<()> {
        let x = Tensor::arange(0f32, 2. * 7. * 5., &Device::Cpu)?.reshape((1, 2, 7, 5))?;
        let y = AdaptiveAvgPool2d::new([3, 2]).forward(&x)?;
        assert_eq!(y.dims(), &[1, 2, 3, 2]);
        let xv = x.to_dtype(DType::F64)?.squeeze(0)?.to_vec3::<f64>()?;
        let yv = y.squeeze(0)?.to_vec3::<f32>()?;
        for (c, (xc, yc)) in xv.iter().zip(&yv).enumerate() {
            for (i, yrow) in yc.iter().enumerate() {
                for (j, &got) in yrow.iter().enumerate() {
                    let (hs, he) = adaptive_window(i, 7, 3);
                    let (ws, we) = adaptive_window(j, 5, 2);
                    let s: f64 = xc[hs..he]
                        .iter()
                        .map(|row| row[ws..we].iter().sum::<f64>())
                        .sum();
                    let want = s / ((he - hs) * (we - ws)) as f64;
                    assert!(
                        (got as f64 - want).abs() < 1e-5,
                        "{c} {i} {j}: {got} vs {want}"
                    );
                }
            }
        }
        // Divisible: plain average pooling; equal: identity.
        let x = Tensor::arange(0f32, 36., &Device::Cpu)?.reshape((1, 1, 6, 6))?;
        let y = AdaptiveAvgPool2d::new([3, 3]).forward(&x)?;
        let v = |t: Tensor| t.flatten_all()?.to_vec1::<f32>();
        assert_eq!(v(y)?, v(AvgPool2d::new(2).forward(&x)?)?);
        assert_eq!(v(AdaptiveAvgPool2d::new([6, 6]).forward(&x)?)?, v(x)?);
        Ok(())
    }

    #[test]
    fn errors_name_the_layer_and_shapes() -> anyhow::Result<()> {
        let x = Tensor::zeros((1, 3, 2, 2), DType::F32, &Device::Cpu)?;
        let err = MaxPool2d::with_stride(3, 2)
            .named("pool1")
            .forward(&x)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pool1 (MaxPool2d): input [1, 3, 2, 2] is too small"),
            "{err}"
        );
        let err = AvgPool2d::new(2)
            .forward(&Tensor::zeros((3, 4), DType::F32, &Device::Cpu)?)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "AvgPool2d: expected an input [batch, channels, height, width], found [3, 4]"
            ),
            "{err}"
        );
        for (pool, shape, want) in [
            (
                MaxPool2d::new(2).padding(1),
                [1, 3, 0, 0],
                "MaxPool2d: input [1, 3, 0, 0] is empty",
            ),
            (
                MaxPool2d::new(2),
                [1, 0, 4, 4],
                "MaxPool2d: input [1, 0, 4, 4] is empty",
            ),
            (
                MaxPool2d::new(2),
                [1, 3, 1, 1],
                "MaxPool2d: input [1, 3, 1, 1] is too small",
            ),
            (
                MaxPool2d::new(2).padding(usize::MAX),
                [1, 3, 4, 4],
                "does not fit",
            ),
            (MaxPool2d::with_stride(2, 0), [1, 3, 4, 4], "does not fit"),
            (MaxPool2d::new(0), [1, 3, 4, 4], "does not fit"),
        ] {
            let err = pool.forward(&Tensor::zeros(&shape, DType::F32, &Device::Cpu)?);
            let err = err.unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let err = AvgPool2d::new(2)
            .padding(1)
            .named("avg")
            .forward(&Tensor::zeros((2, 3, 5, 0), DType::F32, &Device::Cpu)?)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("avg (AvgPool2d): input [2, 3, 5, 0] is empty"),
            "{err}"
        );
        let err = AdaptiveAvgPool2d::new([2, 2])
            .forward(&Tensor::zeros((1, 3, 0, 0), DType::F32, &Device::Cpu)?)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot pool input [1, 3, 0, 0]"), "{err}");
        // An empty batch is fine, as in PyTorch.
        let empty = Tensor::zeros((0, 3, 4, 4), DType::F32, &Device::Cpu)?;
        assert_eq!(MaxPool2d::new(2).forward(&empty)?.dims(), &[0, 3, 2, 2]);
        assert_eq!(AvgPool2d::new(2).forward(&empty)?.dims(), &[0, 3, 2, 2]);
        let err = AdaptiveAvgPool2d::new([0, 1])
            .forward(&x)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AdaptiveAvgPool2d: cannot pool input [1, 3, 2, 2] to output size [0, 1]"),
            "{err}"
        );
        Ok(())
    }
}
