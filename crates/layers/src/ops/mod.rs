//! The tensor operations that the layers are built from.
//!
//! Every layer of `convnets-layers` calls these functions and nothing below them, so the
//! implementation behind an op can change (candle's reference composition, our own CPU
//! kernels, CUDA) without touching a layer or a model. The functions have PyTorch's
//! semantics (`torch.nn.functional.conv2d`, `max_pool2d`, `avg_pool2d`, `linear`,
//! `batch_norm`, `relu`, `cross_entropy`).
//!
//! Two implementations sit behind each op:
//! - [`native`]: our own CPU kernels as candle custom ops with their own backward, used for
//!   `f32` tensors on the CPU: convolutions as matrix products in AVX-512 or AVX2 + FMA
//!   register-blocked kernels that read the input in place (stride 1: shifted windows of the
//!   padded image; otherwise im2col), `gemm` on CPUs with neither ([`isa`] says which path
//!   runs, `CONVNETS_ISA=avx512|avx2|portable` forces one); pooling, batch norm (with an optional
//!   fused ReLU), ReLU, the residual `relu(a + b)`, linear and cross-entropy; all parallel
//!   over the batch with rayon.
//! - [`reference`]: a composition of differentiable candle ops that runs on every device and
//!   dtype; used everywhere else, and as the oracle the native kernels are tested against.
//!
//! [`set_kernels`] (or `CONVNETS_KERNELS=reference` in the environment) forces the reference
//! path everywhere.

use candle_core::{DType, Result, Tensor};
use std::sync::atomic::{AtomicU8, Ordering};

pub mod native;
pub mod reference;

pub use convnets_kernels::{
    conv_out_size, pool_output_hw, pool_output_size, Conv2dParams, ConvGeometry, Isa, KernelError,
    Pool2dParams, PoolDims,
};

/// The CPU kernel path the native ops run in this process: `"avx512"`, `"avx2"` or
/// `"portable"` (the `gemm` crate and plain loops).
///
/// Chosen on first use from the CPU's features; `CONVNETS_ISA=avx512|avx2|portable` forces a
/// path (one the CPU lacks falls back to the best below it, with a warning on stderr), and
/// `CONVNETS_NO_AVX512` (any value) means the best path other than AVX-512.
///
/// ```
/// let isa = convnets_layers::ops::isa();
/// assert!(["avx512", "avx2", "portable"].contains(&isa));
/// ```
pub fn isa() -> &'static str {
    native::isa().name()
}

/// 2-D convolution of `x` `[b, c_in, h, w]` with `w` `[c_out, c_in / groups, kh, kw]` plus an
/// optional `bias` `[c_out]`, giving `[b, c_out, h_out, w_out]`. The shapes are checked once,
/// by [`ConvGeometry::new`].
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Result<Tensor> {
    let g = ConvGeometry::new(x.dims(), w.dims(), bias.map(|b| b.dims()), p)
        .map_err(|e| native::shape_error("conv2d", e))?;
    conv2d_with(x, w, bias, &g)
}

/// [`conv2d`] on a geometry that [`ConvGeometry::new`] already made from these tensors' dims
/// (a layer checks them once, with its name in the errors): the shapes are only compared
/// with `g`, not validated again.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use convnets_layers::ops::{conv2d_with, Conv2dParams, ConvGeometry};
/// let x = Tensor::ones((1, 1, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let w = Tensor::ones((2, 1, 2, 2), candle_core::DType::F32, &Device::Cpu)?;
/// let g = ConvGeometry::new(x.dims(), w.dims(), None, &Conv2dParams::default())?;
/// assert_eq!(conv2d_with(&x, &w, None, &g)?.dims(), g.output_dims());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn conv2d_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
) -> Result<Tensor> {
    if native_conv(x, w, bias) {
        native::conv2d_with(x, w, bias, g)
    } else {
        reference::conv2d_with(x, w, bias, g)
    }
}

/// `relu(conv2d_with(x, w, bias, g))` (PyTorch's `relu(conv(x))`, NaN kept) as one op: the
/// native kernel applies ReLU to each image's output while it is still in cache and masks
/// the gradient inside the convolution's backward, so autograd holds one activation-sized
/// tensor and one gradient for the pair instead of two. The reference is the two ops.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use convnets_layers::ops::{conv2d_relu_with, Conv2dParams, ConvGeometry};
/// let x = Tensor::new(&[[[[1f32, -2.], [3., -4.]]]], &Device::Cpu)?;
/// let w = Tensor::new(&[[[[1f32]]], [[[-1f32]]]], &Device::Cpu)?; // two 1x1 filters
/// let g = ConvGeometry::new(x.dims(), w.dims(), None, &Conv2dParams::default())?;
/// let y = conv2d_relu_with(&x, &w, None, &g)?.flatten_all()?.to_vec1::<f32>()?;
/// assert_eq!(y, [1., 0., 3., 0., 0., 2., 0., 4.]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn conv2d_relu_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
) -> Result<Tensor> {
    if native_conv(x, w, bias) {
        native::conv2d_relu_with(x, w, bias, g)
    } else {
        reference::relu(&reference::conv2d_with(x, w, bias, g)?)
    }
}

/// `max_pool2d(relu(conv2d_with(x, w, bias, g)), p)` (a convolution block of SimpleCNN,
/// AlexNet or ZFNet) with `d` the checked sizes of pooling the convolution's output. The
/// native kernel is one op: ReLU in the convolution's epilogue, then the pool; its backward
/// routes the pooled gradient to the window maxima, masks it with the ReLU and runs the
/// convolution's backward. Autograd then holds one tensor and accumulates one gradient for
/// the three layers (in candle 0.11 each gradient costs a zero fill and an add over it);
/// the values are those of the ops one after the other, bit for bit. The reference is the
/// three ops.
pub fn conv2d_relu_max_pool_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
    p: &Pool2dParams,
    d: &PoolDims,
) -> Result<Tensor> {
    if native_conv(x, w, bias) {
        native::conv2d_relu_max_pool_with(x, w, bias, g, p, d)
    } else {
        reference::max_pool2d_with(
            &reference::relu(&reference::conv2d_with(x, w, bias, g)?)?,
            p,
            d,
        )
    }
}

/// `avg_pool2d(conv2d_with(x, w, bias, g), pool)`, as one convolution on the native kernels
/// when [`ConvGeometry::fold_avg_pool`] finds a cheaper one: average pooling over
/// non-overlapping windows is linear, so it folds into the convolution's kernel (LeNet-5's
/// convolution + pool pairs: 36 % of the multiply-adds, no pooling pass, no full-size
/// activation or gradient for autograd; the result equals the pair's up to float
/// rounding). A weight that autograd tracks is folded with candle ops, so its gradient is
/// the folded convolution's carried back; an untracked one (inference, frozen layers) by
/// [`convnets_kernels::conv::avg_pool_folded_weight`]. Otherwise the two ops one after the
/// other.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use convnets_layers::ops::{avg_pool2d, conv2d_avg_pool_with, conv2d_with, Conv2dParams, ConvGeometry, Pool2dParams};
/// let x = Tensor::arange(0f32, 36., &Device::Cpu)?.reshape((1, 1, 6, 6))?;
/// let w = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu)?;
/// let g = ConvGeometry::new(x.dims(), w.dims(), None, &Conv2dParams::default())?;
/// let pool = Pool2dParams::square(2, 2);
/// let fused = conv2d_avg_pool_with(&x, &w, None, &g, &pool)?;
/// let pair = avg_pool2d(&conv2d_with(&x, &w, None, &g)?, &pool)?;
/// let diff = (fused - pair)?.abs()?.max_all()?.to_scalar::<f32>()?;
/// assert!(diff < 1e-4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn conv2d_avg_pool_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
    pool: &Pool2dParams,
) -> Result<Tensor> {
    check_geometry(x, w, bias, g)?;
    let folded = native_conv(x, w, bias)
        .then(|| g.fold_avg_pool(pool))
        .flatten();
    let Some(f) = folded else {
        return avg_pool2d(&conv2d_with(x, w, bias, g)?, pool);
    };
    let wf = if native::tracked(w) {
        avg_pool_folded_weight_tracked(w, g, &f)?
    } else {
        native::avg_pool_folded_weight(w, g, &f)?
    };
    conv2d_with(x, &wf, bias, &f)
}

/// The folded weight of [`conv2d_avg_pool_with`] as candle ops on `w`, so that autograd
/// carries the folded convolution's weight gradient back to `w`: `w` zero-padded at each of
/// the window's shifts, summed, divided by the window's size.
fn avg_pool_folded_weight_tracked(
    w: &Tensor,
    g: &ConvGeometry,
    folded: &ConvGeometry,
) -> Result<Tensor> {
    let [sh, sw] = g.p.stride;
    let (ph, pw) = (folded.p.stride[0] / sh, folded.p.stride[1] / sw);
    let mut sum: Option<Tensor> = None;
    for qy in 0..ph {
        for qx in 0..pw {
            let t = w
                .pad_with_zeros(2, qy * sh, (ph - 1 - qy) * sh)?
                .pad_with_zeros(3, qx * sw, (pw - 1 - qx) * sw)?;
            sum = Some(match sum {
                Some(s) => (s + t)?,
                None => t,
            });
        }
    }
    let sum = sum.ok_or_else(|| candle_core::Error::Msg("conv2d_avg_pool: empty pool".into()))?;
    sum * (1.0 / (ph * pw) as f64)
}

/// Whether the native kernels take this convolution: selected, on the CPU, all `f32`.
fn native_conv(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> bool {
    kernels() == Kernels::Native
        && x.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && bias.is_none_or(|b| b.dtype() == DType::F32)
}

/// Whether `g` is the geometry of these tensors (an error naming both when not).
fn check_geometry(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: &ConvGeometry) -> Result<()> {
    let bias_ok = bias.is_none_or(|b| b.dims() == [g.c_out]);
    if x.dims() != g.input_dims() || w.dims() != g.weight_dims() || !bias_ok {
        candle_core::bail!(
            "conv2d: input {:?}, weight {:?} and bias {:?} are not those of geometry {g:?}",
            x.dims(),
            w.dims(),
            bias.map(|b| b.dims())
        )
    }
    Ok(())
}

/// Max pooling of `x` `[b, c, h, w]`. The shape is checked once, by [`PoolDims::new`].
pub fn max_pool2d(x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
    max_pool2d_with(x, p, &pool_dims(x, p)?)
}

/// [`max_pool2d`] on sizes that [`PoolDims::new`] (or a layer's own check) already made from
/// `x`'s dims and `p`: the shape is only compared with `d`, not validated again.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use convnets_layers::ops::{max_pool2d_with, Pool2dParams, PoolDims};
/// let x = Tensor::arange(0f32, 16., &Device::Cpu)?.reshape((1, 1, 4, 4))?;
/// let p = Pool2dParams::square(2, 2);
/// let d = PoolDims::new(x.dims(), &p)?;
/// assert_eq!(max_pool2d_with(&x, &p, &d)?.flatten_all()?.to_vec1::<f32>()?, [5., 7., 13., 15.]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn max_pool2d_with(x: &Tensor, p: &Pool2dParams, d: &PoolDims) -> Result<Tensor> {
    check_pool_dims(x, d)?;
    if use_native_pool(x) {
        native::max_pool2d_with(x, p, d)
    } else {
        reference::max_pool2d_with(x, p, d)
    }
}

/// Average pooling of `x` `[b, c, h, w]`. The shape is checked once, by [`PoolDims::new`].
pub fn avg_pool2d(x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
    avg_pool2d_with(x, p, &pool_dims(x, p)?)
}

/// [`avg_pool2d`] on sizes already checked (see [`max_pool2d_with`]).
pub fn avg_pool2d_with(x: &Tensor, p: &Pool2dParams, d: &PoolDims) -> Result<Tensor> {
    check_pool_dims(x, d)?;
    if use_native_pool(x) {
        native::avg_pool2d_with(x, p, d)
    } else {
        reference::avg_pool2d_with(x, p, d)
    }
}

/// The checked sizes of pooling `x` with `p` (an error naming the shapes when there are none).
fn pool_dims(x: &Tensor, p: &Pool2dParams) -> Result<PoolDims> {
    PoolDims::new(x.dims(), p).map_err(|e| native::shape_error("pool2d", e))
}

/// Whether `d` is the sizes of pooling `x` (an error naming both when not).
fn check_pool_dims(x: &Tensor, d: &PoolDims) -> Result<()> {
    match *x.dims() {
        [b, c, h, w] if b * c == d.planes && h == d.h && w == d.w => Ok(()),
        _ => candle_core::bail!("pool2d: input {:?} does not have the sizes {d:?}", x.dims()),
    }
}

/// `max(x, 0)` elementwise (`torch.relu`). The native kernel is one pass forward and one
/// pass backward, `dy * (y > 0)` from the output (PyTorch's rule: no gradient at 0); the
/// reference is candle's `relu` (whose gradient is `dy * (x >= 0)`).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if use_native_pool(x) {
        native::relu(x)
    } else {
        reference::relu(x)
    }
}

/// `max(a + b, 0)` for two tensors of the same shape: the join of a residual block. The
/// native kernel is one pass forward and one backward (the same masked gradient for both
/// inputs); the reference is candle's `(a + b).relu()`.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if use_native_pool(a) && b.dtype() == DType::F32 && b.device().is_cpu() {
        native::add_relu(a, b)
    } else {
        reference::relu(&(a + b)?)
    }
}

/// Mean cross-entropy of `logits` `[b, classes]` against integer class `labels` `[b]`
/// (`u8`, `u32` or `i64`): `torch.nn.functional.cross_entropy` with the default mean
/// reduction, as a scalar. The native kernel fuses log-softmax and the negative log-likelihood
/// (forward and backward); the reference is `candle_nn::loss::cross_entropy`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    if use_native_pool(logits) {
        native::cross_entropy(logits, labels)
    } else {
        reference::cross_entropy(logits, labels)
    }
}

/// Fully connected layer: `x` `[..., in]` times `w` `[out, in]` transposed, plus an optional
/// `bias` `[out]`, giving `[..., out]` (`torch.nn.functional.linear`). The native kernel runs
/// its GEMMs (forward and backward) on all rayon threads.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let native = use_native_pool(x)
        && w.dtype() == DType::F32
        && bias.is_none_or(|b| b.dtype() == DType::F32);
    if native {
        native::linear(x, w, bias)
    } else {
        reference::linear(x, w, bias)
    }
}

/// Batch normalisation in training mode (`torch.nn.functional.batch_norm` with
/// `training=True`) of `x` `[b, c, h, w]` with per-channel `weight` and `bias` `[c]`: returns
/// `(y, batch_mean, batch_var)`, the variance biased (divided by `b * h * w`); the statistics
/// are detached, for the caller's running averages. The native kernel is one pass each for
/// the statistics, the normalisation and the backward; the reference is candle's composition.
pub fn batch_norm2d_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    if native_batch_norm(x, weight, bias) {
        native::batch_norm2d_train(x, weight, bias, eps)
    } else {
        reference::batch_norm2d_train(x, weight, bias, eps)
    }
}

/// [`batch_norm2d_train`] followed by ReLU: `(relu(y), batch_mean, batch_var)`. On the CPU
/// it is one op (the ReLU inside the normalisation pass, its gradient mask inside the
/// backward), which saves a pass over the activation each way and a gradient for autograd to
/// accumulate; elsewhere the composition.
pub fn batch_norm2d_relu_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    if native_batch_norm(x, weight, bias) {
        native::batch_norm2d_relu_train(x, weight, bias, eps)
    } else {
        let (y, mean, var) = reference::batch_norm2d_train(x, weight, bias, eps)?;
        Ok((y.relu()?, mean, var))
    }
}

/// A convolution without bias followed by batch normalisation with the batch's statistics
/// (training mode), ReLU applied when `relu`: `(y, batch_mean, batch_var)` as
/// [`batch_norm2d_train`] returns for `conv2d_with(x, w, None, g)`. On the CPU it is one op
/// (the pair of every ResNet layer): autograd holds one activation-sized tensor for the pair
/// and accumulates one gradient fewer (in candle 0.11 each costs a zero fill and an add over
/// the activation). Elsewhere the composition.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_batch_norm2d_train(
    x: &Tensor,
    w: &Tensor,
    g: &ConvGeometry,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    if native_conv(x, w, None) && native_batch_norm(x, gamma, beta) {
        native::conv2d_batch_norm2d_train(x, w, g, gamma, beta, eps, relu)
    } else {
        let y = conv2d_with(x, w, None, g)?;
        if relu {
            batch_norm2d_relu_train(&y, gamma, beta, eps)
        } else {
            batch_norm2d_train(&y, gamma, beta, eps)
        }
    }
}

/// [`conv2d_batch_norm2d_train`] joined with a residual: `(relu(bn(conv(x)) + residual),
/// batch_mean, batch_var)`, the end of a ResNet block as one op on the CPU (one activation
/// and one accumulated gradient fewer than normalising and then [`add_relu`]); elsewhere
/// the composition.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_batch_norm2d_add_relu_train(
    x: &Tensor,
    w: &Tensor,
    g: &ConvGeometry,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    residual: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let native = native_conv(x, w, None)
        && native_batch_norm(x, gamma, beta)
        && residual.dtype() == DType::F32
        && residual.device().is_cpu();
    if native {
        native::conv2d_batch_norm2d_add_relu_train(x, w, g, gamma, beta, eps, residual)
    } else {
        let (y, mean, var) = conv2d_batch_norm2d_train(x, w, g, gamma, beta, eps, false)?;
        Ok((add_relu(&y, residual)?, mean, var))
    }
}

/// A residual block with an identity shortcut in training mode,
/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + x)` (ResNet's `BasicBlock` where the shape does not
/// change): both convolutions of geometry `g` without bias (so `g`'s output has `x`'s
/// shape), both normalisations with the batch's statistics. Returns the output and each
/// normalisation's `(batch_mean, batch_var)` (biased variance, detached). On the CPU it is
/// one op: the block's input gets one gradient contribution instead of two and its inner
/// activation none, which saves candle 0.11's zero fill and add over each (7 of 11 passes
/// over an activation per block); the values are those of the two fused ops bit for bit.
/// Elsewhere the composition of [`conv2d_batch_norm2d_train`] and
/// [`conv2d_batch_norm2d_add_relu_train`].
#[allow(clippy::too_many_arguments)]
pub fn basic_block_train(
    x: &Tensor,
    g: &ConvGeometry,
    w1: &Tensor,
    gamma1: &Tensor,
    beta1: &Tensor,
    w2: &Tensor,
    gamma2: &Tensor,
    beta2: &Tensor,
    eps: f64,
) -> Result<(Tensor, [(Tensor, Tensor); 2])> {
    let native = native_conv(x, w1, None)
        && native_conv(x, w2, None)
        && native_batch_norm(x, gamma1, beta1)
        && native_batch_norm(x, gamma2, beta2);
    if native {
        return native::basic_block_train(x, g, w1, gamma1, beta1, w2, gamma2, beta2, eps);
    }
    let (h, m1, v1) = conv2d_batch_norm2d_train(x, w1, g, gamma1, beta1, eps, true)?;
    let (y, m2, v2) = conv2d_batch_norm2d_add_relu_train(&h, w2, g, gamma2, beta2, eps, x)?;
    Ok((y, [(m1, v1), (m2, v2)]))
}

/// Whether batch normalisation of these tensors runs on the native kernel.
fn native_batch_norm(x: &Tensor, weight: &Tensor, bias: &Tensor) -> bool {
    use_native_pool(x)
        && weight.dtype() == DType::F32
        && bias.dtype() == DType::F32
        && x.rank() == 4
}

fn use_native_pool(x: &Tensor) -> bool {
    kernels() == Kernels::Native && x.device().is_cpu() && x.dtype() == DType::F32
}

/// Which implementation [`conv2d`], [`max_pool2d`], [`avg_pool2d`], [`linear`], [`relu`] and
/// [`cross_entropy`] use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// Our CPU kernels for `f32` tensors on the CPU, the reference composition elsewhere.
    Native,
    /// The reference composition of candle ops everywhere.
    Reference,
}

const KERNELS_UNSET: u8 = 0;
const KERNELS_NATIVE: u8 = 1;
const KERNELS_REFERENCE: u8 = 2;
static KERNELS: AtomicU8 = AtomicU8::new(KERNELS_UNSET);

/// Selects the implementation behind the ops for the whole process.
pub fn set_kernels(k: Kernels) {
    let v = match k {
        Kernels::Native => KERNELS_NATIVE,
        Kernels::Reference => KERNELS_REFERENCE,
    };
    KERNELS.store(v, Ordering::Relaxed);
}

/// The implementation in use: [`Kernels::Native`] unless [`set_kernels`] said otherwise or the
/// environment variable `CONVNETS_KERNELS` was `reference` when first asked.
pub fn kernels() -> Kernels {
    match KERNELS.load(Ordering::Relaxed) {
        KERNELS_NATIVE => Kernels::Native,
        KERNELS_REFERENCE => Kernels::Reference,
        _ => {
            let from_env = match std::env::var("CONVNETS_KERNELS") {
                Ok(s) if s.eq_ignore_ascii_case("reference") => KERNELS_REFERENCE,
                _ => KERNELS_NATIVE,
            };
            // Keep a value set concurrently by `set_kernels`.
            let _ = KERNELS.compare_exchange(
                KERNELS_UNSET,
                from_env,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            if KERNELS.load(Ordering::Relaxed) == KERNELS_REFERENCE {
                Kernels::Reference
            } else {
                Kernels::Native
            }
        }
    }
}
