//! Reference implementations composed from differentiable candle ops.
//!
//! They run on every device and dtype and carry candle's backward, so they are the fallback
//! for CUDA and the oracle the native kernels are tested against. Options that candle's own
//! ops lack (unequal `(h, w)` arguments, padding and `ceil_mode` for pooling, pooling windows
//! that overlap) are built from padding, strided slices (narrow + reshape) and matmul.

use super::native::shape_error;
use super::{Conv2dParams, ConvGeometry, Pool2dParams, PoolDims};
use candle_core::{Result, Tensor};
pub use convnets_kernels::pool::avg_divisors;

/// Convolution: `candle_core::Tensor::conv2d` when stride, padding and dilation are equal in
/// `(h, w)` (and candle's backward handles the sizes), otherwise an im2col composition (pad,
/// strided slices, batched matmul).
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Result<Tensor> {
    let g = ConvGeometry::new(x.dims(), w.dims(), bias.map(|b| b.dims()), p)
        .map_err(|e| shape_error("conv2d", e))?;
    conv2d_with(x, w, bias, &g)
}

/// [`conv2d`] on a geometry [`ConvGeometry::new`] already checked (see
/// [`crate::ops::conv2d_with`]).
pub fn conv2d_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
) -> Result<Tensor> {
    super::check_geometry(x, w, bias, g)?;
    let (g, p) = (*g, &g.p);
    let square = p.stride[0] == p.stride[1]
        && p.padding[0] == p.padding[1]
        && p.dilation[0] == p.dilation[1];
    // candle's conv2d backward derives the transposed conv's output padding from the height
    // alone: use it only when the width leaves the same remainder.
    let rem = |i: usize, k: usize, d: usize| {
        (i + 2 * p.padding[d] - (p.dilation[d] * (k - 1) + 1)) % p.stride[d]
    };
    // Its backward also computes the transposed conv's size as
    // `(o - 1) * stride + dilation * (k - 1) + 1 - 2 * padding` in unsigned arithmetic, which
    // underflows (a panic) when the padding is wider than what the output reaches back into:
    // those geometries take the im2col path too.
    let reaches = |o: usize, k: usize, d: usize| {
        (o - 1) * p.stride[d] + p.dilation[d] * (k - 1) + 1 >= 2 * p.padding[d]
    };
    let square = square
        && rem(g.h, g.kh, 0) == rem(g.w, g.kw, 1)
        && reaches(g.oh, g.kh, 0)
        && reaches(g.ow, g.kw, 1);
    let y = if square {
        x.conv2d(w, p.padding[0], p.stride[0], p.dilation[0], p.groups)?
    } else {
        conv2d_im2col(x, w, &g)?
    };
    match bias {
        None => Ok(y),
        Some(b) => y.broadcast_add(&b.reshape((1, g.c_out, 1, 1))?),
    }
}

/// Convolution as im2col + batched matmul, every option supported, no bias.
pub fn conv2d_im2col(x: &Tensor, w: &Tensor, g: &ConvGeometry) -> Result<Tensor> {
    let p = &g.p;
    let xp = x
        .pad_with_zeros(2, p.padding[0], p.padding[0])?
        .pad_with_zeros(3, p.padding[1], p.padding[1])?;
    let mut cols = Vec::with_capacity(g.kh * g.kw);
    for ki in 0..g.kh {
        let rows = strided(&xp, 2, ki * p.dilation[0], g.oh, p.stride[0])?;
        for kj in 0..g.kw {
            cols.push(strided(&rows, 3, kj * p.dilation[1], g.ow, p.stride[1])?);
        }
    }
    // [b, c_in, kh * kw, oh, ow]: the row index (c, ki, kj) matches the weight's layout.
    let cols = Tensor::stack(&cols, 2)?;
    let k = g.c_in / p.groups * g.kh * g.kw;
    let cols = cols.reshape((g.b, p.groups, k, g.oh * g.ow))?;
    let wg = w
        .reshape((1, p.groups, g.c_out / p.groups, k))?
        .broadcast_as((g.b, p.groups, g.c_out / p.groups, k))?;
    let y = wg.contiguous()?.matmul(&cols)?; // [b, groups, c_out / groups, oh * ow]
    y.reshape((g.b, g.c_out, g.oh, g.ow))
}

/// Elements `start, start + step, ..., start + (count - 1) * step` of `dim`, through
/// differentiable ops (narrow, zero padding to a multiple of `step`, reshape, narrow).
pub fn strided(t: &Tensor, dim: usize, start: usize, count: usize, step: usize) -> Result<Tensor> {
    if step == 1 {
        return t.narrow(dim, start, count);
    }
    let len = (count - 1) * step + 1;
    let t = t
        .narrow(dim, start, len)?
        .pad_with_zeros(dim, 0, step - 1)?;
    let mut split = t.dims().to_vec();
    split[dim] = count;
    split.insert(dim + 1, step);
    let t = t.reshape(split)?.narrow(dim + 1, 0, 1)?;
    t.squeeze(dim + 1)
}

/// Pads `dim` of `t` with `left` and `right` copies of `value` (a differentiable concatenation).
fn pad_with(t: &Tensor, dim: usize, left: usize, right: usize, value: f64) -> Result<Tensor> {
    if left == 0 && right == 0 {
        return Ok(t.clone());
    }
    let mut parts = Vec::with_capacity(3);
    let mut dims = t.dims().to_vec();
    if left > 0 {
        dims[dim] = left;
        parts.push(Tensor::full(value, dims.as_slice(), t.device())?.to_dtype(t.dtype())?);
    }
    parts.push(t.clone());
    if right > 0 {
        dims[dim] = right;
        parts.push(Tensor::full(value, dims.as_slice(), t.device())?.to_dtype(t.dtype())?);
    }
    Tensor::cat(&parts, dim)
}

/// The checked sizes of pooling `x` with `p`.
fn pool_dims(x: &Tensor, p: &Pool2dParams) -> Result<PoolDims> {
    PoolDims::new(x.dims(), p).map_err(|e| shape_error("pool2d", e))
}

/// The `kh * kw` strided window views `[b, c, oh, ow]` of `x` padded with `value`.
fn pool_windows(x: &Tensor, p: &Pool2dParams, d: &PoolDims, value: f64) -> Result<Vec<Tensor>> {
    let (h, w, oh, ow) = (d.h, d.w, d.oh, d.ow);
    // The windows reach padded index (o - 1) * s + k - 1; pad the right side up to that.
    let right_h = ((oh - 1) * p.stride[0] + p.kernel[0]).saturating_sub(h + p.padding[0]);
    let right_w = ((ow - 1) * p.stride[1] + p.kernel[1]).saturating_sub(w + p.padding[1]);
    let xp = pad_with(x, 2, p.padding[0], right_h, value)?;
    let xp = pad_with(&xp, 3, p.padding[1], right_w, value)?;
    let mut wins = Vec::with_capacity(p.kernel[0] * p.kernel[1]);
    for ki in 0..p.kernel[0] {
        let rows = strided(&xp, 2, ki, oh, p.stride[0])?;
        for kj in 0..p.kernel[1] {
            wins.push(strided(&rows, 3, kj, ow, p.stride[1])?);
        }
    }
    Ok(wins)
}

/// Max pooling with PyTorch's semantics: padding is `-inf`, and the gradient goes to the
/// first maximum of each window in row-major order.
///
/// Always a composition: candle 0.11's own `max_pool2d` backward refuses kernel != stride and,
/// even for kernel == stride, scales the gradient of a unique maximum by `1 / (kh * kw)`.
pub fn max_pool2d(x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
    max_pool2d_with(x, p, &pool_dims(x, p)?)
}

/// [`max_pool2d`] on sizes already checked (see [`crate::ops::max_pool2d_with`]).
pub fn max_pool2d_with(x: &Tensor, p: &Pool2dParams, d: &PoolDims) -> Result<Tensor> {
    let wins = pool_windows(x, p, d, f64::NEG_INFINITY)?;
    let mut max = wins[0].detach();
    for win in &wins[1..] {
        max = max.maximum(&win.detach())?;
    }
    // Select the first window element equal to the max so the gradient routes like PyTorch.
    let zeros = max.zeros_like()?;
    let mut found = zeros.clone();
    let mut out = zeros.clone();
    for win in &wins {
        let hit = win.eq(&max)?.to_dtype(x.dtype())?;
        let first = (hit * found.affine(-1.0, 1.0)?)?;
        found = (found + &first)?;
        out = (out + first.gt(0.5)?.where_cond(win, &zeros)?)?;
    }
    Ok(out)
}

/// Average pooling with PyTorch's semantics: zero padding, and a divisor that counts the
/// window clipped to the padded input (`count_include_pad`) or to the input only.
pub fn avg_pool2d(x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
    avg_pool2d_with(x, p, &pool_dims(x, p)?)
}

/// [`avg_pool2d`] on sizes already checked (see [`crate::ops::avg_pool2d_with`]).
pub fn avg_pool2d_with(x: &Tensor, p: &Pool2dParams, d: &PoolDims) -> Result<Tensor> {
    let (h, w, oh, ow) = (d.h, d.w, d.oh, d.ow);
    let tiles = h % p.stride[0] == 0 && w % p.stride[1] == 0;
    if p.padding == [0, 0] && !p.ceil_mode && p.kernel == p.stride && tiles {
        return x.avg_pool2d_with_stride((p.kernel[0], p.kernel[1]), (p.stride[0], p.stride[1]));
    }
    let wins = pool_windows(x, p, d, 0.0)?;
    let mut sum = wins[0].clone();
    for win in &wins[1..] {
        sum = (sum + win)?;
    }
    let div = avg_divisors(h, w, oh, ow, p);
    let div = Tensor::from_vec(div, (1, 1, oh, ow), x.device())?.to_dtype(x.dtype())?;
    sum.broadcast_div(&div)
}

/// Mean cross-entropy of `logits` `[b, classes]` against integer `labels` `[b]`.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    candle_nn::loss::cross_entropy(logits, labels)
}

/// `max(x, 0)`: candle's `relu`.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.relu()
}

/// Fully connected layer `x W^T + b` for `x` `[..., in]`, `w` `[out, in]`, `bias` `[out]`.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n_out, n_in) = w.dims2()?;
    let dims = x.dims();
    if dims.last() != Some(&n_in) {
        candle_core::bail!(
            "linear: input {dims:?} does not end in the weight's {n_in} input features (weight {:?})",
            w.dims()
        )
    }
    let rows = x.elem_count() / n_in.max(1);
    let y = x.reshape((rows, n_in))?.matmul(&w.t()?)?;
    let y = match bias {
        None => y,
        Some(b) => y.broadcast_add(b)?,
    };
    let mut out_dims = dims.to_vec();
    if let Some(last) = out_dims.last_mut() {
        *last = n_out;
    }
    y.reshape(out_dims)
}

/// Batch normalisation with the batch's statistics: `(y, batch_mean, biased batch_var)`.
pub fn batch_norm2d_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, c, h, w) = x.dims4()?;
    let n = (b * h * w) as f64;
    let mean = (x.sum_keepdim((0, 2, 3))? / n)?; // [1, c, 1, 1]
    let centred = x.broadcast_sub(&mean)?;
    let var = (centred.sqr()?.sum_keepdim((0, 2, 3))? / n)?;
    let y = centred
        .broadcast_div(&(&var + eps)?.sqrt()?)?
        .broadcast_mul(&weight.reshape((1, c, 1, 1))?)?
        .broadcast_add(&bias.reshape((1, c, 1, 1))?)?;
    Ok((y, mean.detach().flatten_all()?, var.detach().flatten_all()?))
}
