//! The sizes of convolutions and poolings: their arguments ([`Conv2dParams`],
//! [`Pool2dParams`]), the output-size formulas ([`conv_out_size`], [`pool_output_size`]) and
//! the checked geometries the kernels run on ([`ConvGeometry`], [`PoolDims`]). Defined once
//! here; `convnets-layers` re-exports them.

use crate::error::{KernelError, Result};

/// The output size of a convolution along one dimension, PyTorch's formula
/// `floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1`
/// (seed 000's `floor((W - F + 2P) / S) + 1` when `dilation = 1`).
///
/// Returns `None` when the (padded) input is smaller than the (dilated) kernel, the stride
/// is zero, or the sizes overflow `usize`.
///
/// ```
/// use convnets_kernels::conv_out_size;
/// assert_eq!(conv_out_size(227, 11, 4, 0, 1), Some(55)); // AlexNet conv1
/// assert_eq!(conv_out_size(5, 3, 2, 0, 1), Some(2));
/// assert_eq!(conv_out_size(2, 5, 1, 0, 1), None);
/// assert_eq!(conv_out_size(usize::MAX, 3, 1, 1, 1), None);
/// ```
pub fn conv_out_size(
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<usize> {
    let span = dilation.checked_mul(kernel.max(1) - 1)?.checked_add(1)?;
    let padded = padding.checked_mul(2)?.checked_add(size)?;
    if stride == 0 || padded < span {
        return None;
    }
    Some((padded - span) / stride + 1)
}

/// Arguments of a 2-D convolution, as `torch.nn.functional.conv2d` takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    /// Stride `(h, w)`.
    pub stride: [usize; 2],
    /// Zero padding added to both sides `(h, w)`.
    pub padding: [usize; 2],
    /// Spacing between kernel elements `(h, w)`.
    pub dilation: [usize; 2],
    /// Number of groups; input and output channels must be divisible by it.
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Self {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// The sizes of a convolution, checked against each other by [`ConvGeometry::new`], the one
/// place a convolution's shapes are validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size.
    pub b: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// The convolution's arguments.
    pub p: Conv2dParams,
}

impl ConvGeometry {
    /// Checks the dims of `x` `[b, c_in, h, w]`, `w` `[c_out, c_in / groups, kh, kw]` and the
    /// bias `[c_out]` against `p`, and works out the output size with [`conv_out_size`].
    ///
    /// PyTorch's rules: every weight dim and the groups positive, stride and dilation
    /// positive, the output channels divisible by the groups, the input channels
    /// `groups * (c_in / groups)`, a non-empty image, and the dilated kernel inside the
    /// padded input. A zero batch is fine.
    ///
    /// ```
    /// use convnets_kernels::{Conv2dParams, ConvGeometry};
    /// let p = Conv2dParams { padding: [1, 1], ..Conv2dParams::default() };
    /// let g = ConvGeometry::new(&[2, 3, 32, 32], &[16, 3, 3, 3], Some(&[16]), &p)?;
    /// assert_eq!(g.output_dims(), [2, 16, 32, 32]);
    /// assert!(ConvGeometry::new(&[2, 4, 32, 32], &[16, 3, 3, 3], None, &p).is_err());
    /// # Ok::<(), convnets_kernels::KernelError>(())
    /// ```
    pub fn new(x: &[usize], w: &[usize], bias: Option<&[usize]>, p: &Conv2dParams) -> Result<Self> {
        let &[c_out, cg, kh, kw] = w else {
            return Err(KernelError::ConvWeightRank { weight: w.to_vec() });
        };
        if [c_out, cg, kh, kw].contains(&0) || p.groups == 0 {
            return Err(KernelError::ConvEmptyWeight {
                weight: w.to_vec(),
                groups: p.groups,
            });
        }
        if p.stride.contains(&0) || p.dilation.contains(&0) {
            return Err(KernelError::ConvZeroStep {
                stride: p.stride,
                dilation: p.dilation,
            });
        }
        if !c_out.is_multiple_of(p.groups) {
            return Err(KernelError::ConvGroups {
                weight: w.to_vec(),
                c_out,
                groups: p.groups,
            });
        }
        let c_in = cg.saturating_mul(p.groups);
        let &[b, c, h, wd] = x else {
            return Err(KernelError::ConvInputRank {
                input: x.to_vec(),
                c_in,
            });
        };
        if c != c_in {
            return Err(KernelError::ConvChannels {
                input: x.to_vec(),
                weight: w.to_vec(),
                groups: p.groups,
                c_in,
            });
        }
        if let Some(bias) = bias {
            if bias != [c_out] {
                return Err(KernelError::ConvBias {
                    bias: bias.to_vec(),
                    weight: w.to_vec(),
                    c_out,
                });
            }
        }
        if h == 0 || wd == 0 {
            return Err(KernelError::ConvEmptyImage {
                input: x.to_vec(),
                h,
                w: wd,
            });
        }
        let size = |i: usize, k: usize, d: usize| {
            conv_out_size(i, k, p.stride[d], p.padding[d], p.dilation[d])
        };
        let (Some(oh), Some(ow)) = (size(h, kh, 0), size(wd, kw, 1)) else {
            return Err(KernelError::ConvTooSmall {
                input: x.to_vec(),
                kh,
                kw,
                params: *p,
            });
        };
        Ok(Self {
            b,
            c_in,
            h,
            w: wd,
            c_out,
            kh,
            kw,
            oh,
            ow,
            p: *p,
        })
    }

    /// The input's dims `[b, c_in, h, w]`.
    pub fn input_dims(&self) -> [usize; 4] {
        [self.b, self.c_in, self.h, self.w]
    }

    /// The weight's dims `[c_out, c_in / groups, kh, kw]`.
    pub fn weight_dims(&self) -> [usize; 4] {
        [self.c_out, self.c_in / self.p.groups, self.kh, self.kw]
    }

    /// The output's dims `[b, c_out, oh, ow]`.
    pub fn output_dims(&self) -> [usize; 4] {
        [self.b, self.c_out, self.oh, self.ow]
    }

    /// The one convolution that computes `avg_pool2d(conv(x), pool)`, when there is one and
    /// it costs fewer multiply-adds than the pair: average pooling over non-overlapping
    /// windows (`kernel == stride`, no padding, `floor` mode) is linear, so pooling the
    /// output of a convolution (stride `s`, no dilation) equals convolving with the kernel
    /// averaged over the window's shifts — a `kh + (k - 1) * s` kernel moving by `k * s`
    /// ([`crate::conv::avg_pool_folded_weight`] makes it). For LeNet-5's 5x5 convolutions
    /// and 2x2 pools that is 36 % of the multiply-adds and no pooling pass. `None` when the
    /// pool is not of that kind, the convolution is dilated, the pooled output would be
    /// empty, or the fold would not be cheaper (a 1x1 convolution with stride 2, say).
    ///
    /// ```
    /// use convnets_kernels::{Conv2dParams, ConvGeometry, Pool2dParams};
    /// let g = ConvGeometry::new(&[8, 1, 28, 28], &[6, 1, 5, 5], Some(&[6]), &Conv2dParams::default())?;
    /// let f = g.fold_avg_pool(&Pool2dParams::square(2, 2)).unwrap();
    /// assert_eq!((f.kh, f.kw, f.p.stride), (6, 6, [2, 2]));
    /// assert_eq!(f.output_dims(), [8, 6, 12, 12]); // what the pool of the 24x24 output gives
    /// assert!(g.fold_avg_pool(&Pool2dParams::square(3, 2)).is_none()); // overlapping windows
    /// # Ok::<(), convnets_kernels::KernelError>(())
    /// ```
    pub fn fold_avg_pool(&self, pool: &Pool2dParams) -> Option<ConvGeometry> {
        let [ph, pw] = pool.kernel;
        let plain = pool.kernel == pool.stride && pool.padding == [0, 0] && !pool.ceil_mode;
        if !plain || self.p.dilation != [1, 1] || ph == 0 || pw == 0 {
            return None;
        }
        let (oh, ow) = (self.oh / ph, self.ow / pw);
        if oh == 0 || ow == 0 {
            return None;
        }
        let [sh, sw] = self.p.stride;
        let kh = self.kh.checked_add((ph - 1).checked_mul(sh)?)?;
        let kw = self.kw.checked_add((pw - 1).checked_mul(sw)?)?;
        let p = Conv2dParams {
            stride: [sh.checked_mul(ph)?, sw.checked_mul(pw)?],
            ..self.p
        };
        let w = [self.c_out, self.c_in / self.p.groups, kh, kw];
        let folded = Self::new(&self.input_dims(), &w, None, &p).ok()?;
        let macs = |k: usize, n: usize| k.saturating_mul(n);
        let cheaper = macs(kh * kw, oh * ow) <= macs(self.kh * self.kw, self.oh * self.ow);
        (folded.oh == oh && folded.ow == ow && cheaper).then_some(folded)
    }
}

/// Arguments of a 2-D pooling, as `torch.nn.functional.max_pool2d` / `avg_pool2d` take them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dParams {
    /// Window size `(h, w)`.
    pub kernel: [usize; 2],
    /// Stride `(h, w)`.
    pub stride: [usize; 2],
    /// Implicit padding on both sides `(h, w)` (`-inf` for max, zeros for average).
    pub padding: [usize; 2],
    /// Use `ceil` instead of `floor` for the output size.
    pub ceil_mode: bool,
    /// Average pooling only: count padded zeros in the divisor.
    pub count_include_pad: bool,
}

impl Pool2dParams {
    /// A `k`x`k` window moving by `s`, no padding (PyTorch's `MaxPool2d(k, s)`).
    pub fn square(k: usize, s: usize) -> Self {
        Self {
            kernel: [k, k],
            stride: [s, s],
            padding: [0, 0],
            ceil_mode: false,
            count_include_pad: true,
        }
    }
}

/// The output size of pooling along one dimension, with PyTorch's rule: `floor` (or `ceil`)
/// of `(input + 2 * padding - kernel) / stride + 1`, and in `ceil` mode the last window must
/// start inside the input or the left padding.
///
/// ```
/// use convnets_kernels::pool_output_size;
/// assert_eq!(pool_output_size(28, 2, 2, 0, false), Some(14));
/// assert_eq!(pool_output_size(5, 2, 2, 0, true), Some(3));
/// assert_eq!(pool_output_size(1, 2, 2, 0, false), None);
/// ```
pub fn pool_output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    ceil_mode: bool,
) -> Option<usize> {
    if kernel == 0 || stride == 0 || 2 * padding > kernel || input + 2 * padding < kernel {
        return None;
    }
    let num = input + 2 * padding - kernel;
    let mut out = if ceil_mode {
        num.div_ceil(stride) + 1
    } else {
        num / stride + 1
    };
    if ceil_mode && (out - 1) * stride >= input + padding {
        out -= 1;
    }
    Some(out)
}

/// The output size `(h, w)` of pooling `x` `[b, c, h, w]` with `p`, or an error that says why
/// there is none.
pub fn pool_output_hw(dims: &[usize], p: &Pool2dParams) -> Result<(usize, usize)> {
    let &[_, _, h, w] = dims else {
        return Err(KernelError::PoolRank {
            input: dims.to_vec(),
        });
    };
    let size = |i, d: usize| {
        pool_output_size(i, p.kernel[d], p.stride[d], p.padding[d], p.ceil_mode).ok_or_else(|| {
            KernelError::PoolSize {
                input: dims.to_vec(),
                params: *p,
            }
        })
    };
    Ok((size(h, 0)?, size(w, 1)?))
}

/// Sizes of a pooling: `planes = b * c` planes of `h x w` pooled to `oh x ow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolDims {
    /// Planes: batch times channels.
    pub planes: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl PoolDims {
    /// The sizes of pooling `x` `[b, c, h, w]` with `p`, checked by [`pool_output_hw`].
    pub fn new(dims: &[usize], p: &Pool2dParams) -> Result<Self> {
        let (oh, ow) = pool_output_hw(dims, p)?;
        Ok(Self {
            planes: dims[0] * dims[1],
            h: dims[2],
            w: dims[3],
            oh,
            ow,
        })
    }

    /// Elements of the input.
    pub fn input_len(&self) -> usize {
        self.planes * self.h * self.w
    }

    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.planes * self.oh * self.ow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_errors_name_the_shapes() {
        let p = Conv2dParams::default();
        let e = ConvGeometry::new(&[1, 3, 4, 4], &[2, 2, 3, 3], None, &p).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("[1, 3, 4, 4]") && s.contains("[2, 2, 3, 3]"),
            "{s}"
        );
        let e = ConvGeometry::new(&[1, 2, 2, 2], &[2, 2, 3, 3], None, &p).unwrap_err();
        assert!(matches!(e, KernelError::ConvTooSmall { .. }), "{e}");
        let e = ConvGeometry::new(&[1, 2, 0, 2], &[2, 2, 1, 1], None, &p).unwrap_err();
        assert!(matches!(e, KernelError::ConvEmptyImage { .. }), "{e}");
        let e = ConvGeometry::new(&[1, 2, 5, 5], &[2, 2, 1, 1], Some(&[3]), &p).unwrap_err();
        assert!(matches!(e, KernelError::ConvBias { c_out: 2, .. }), "{e}");
        let g = ConvGeometry::new(
            &[0, 2, 5, 5],
            &[4, 1, 3, 3],
            None,
            &Conv2dParams {
                groups: 2,
                stride: [2, 1],
                ..p
            },
        )
        .unwrap();
        assert_eq!(g.output_dims(), [0, 4, 2, 3]);
        assert_eq!(g.weight_dims(), [4, 1, 3, 3]);
    }

    #[test]
    fn conv_out_size_does_not_overflow() {
        assert_eq!(
            conv_out_size(usize::MAX / 2 + 1, 3, 1, usize::MAX / 2, 1),
            None
        );
        assert_eq!(conv_out_size(5, usize::MAX, 1, 0, 2), None);
        assert_eq!(conv_out_size(5, 3, 0, 0, 1), None);
    }

    #[test]
    fn pool_sizes() {
        let p = Pool2dParams::square(2, 2);
        let d = PoolDims::new(&[2, 3, 5, 4], &p).unwrap();
        assert_eq!((d.planes, d.oh, d.ow), (6, 2, 2));
        assert!(matches!(
            PoolDims::new(&[2, 3, 1, 4], &p),
            Err(KernelError::PoolSize { .. })
        ));
        assert!(matches!(
            PoolDims::new(&[3, 1, 4], &p),
            Err(KernelError::PoolRank { .. })
        ));
    }
}
