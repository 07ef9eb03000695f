//! Batch normalisation in training mode (batch statistics) for `[b, c, h, w]` tensors:
//! per-channel statistics, the normalisation, and its backward, each one pass over the data
//! (the backward's ReLU mask, when the forward had one, read in the same passes).
//! Sums are taken in `f64`, channel by channel in a fixed order (deterministic), with eight
//! accumulators per sum so that they vectorise instead of waiting on one long chain of adds.

use crate::error::{check_len, Result};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// `(sum(g), sum(g * (x - mu)))` over one plane in `f64`, eight interleaved partial sums each
/// added in a fixed order, where `g` is `dy`, or
/// `dy` masked by ReLU's output `y` (zero where `y <= 0`) when the forward had one.
#[inline(always)]
fn sum_dy_dyx_body(dy: &[f32], x: &[f32], y: Option<&[f32]>, mu: f64) -> (f64, f64) {
    let (mut a, mut b) = ([0f64; 8], [0f64; 8]);
    let fold = |s: [f64; 8]| ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    let (gc, xc) = (dy.chunks_exact(8), x.chunks_exact(8));
    let (gr, xr) = (gc.remainder(), xc.remainder());
    let mut tail = (0.0, 0.0);
    match y {
        None => {
            for (g, v) in gc.zip(xc) {
                for j in 0..8 {
                    let g = f64::from(g[j]);
                    a[j] += g;
                    b[j] += g * (f64::from(v[j]) - mu);
                }
            }
            for (&g, &v) in gr.iter().zip(xr) {
                tail.0 += f64::from(g);
                tail.1 += f64::from(g) * (f64::from(v) - mu);
            }
        }
        Some(y) => {
            let yc = y.chunks_exact(8);
            let yr = yc.remainder();
            for ((g, v), y) in gc.zip(xc).zip(yc) {
                for j in 0..8 {
                    let g = f64::from(relu_masked(y[j], g[j]));
                    a[j] += g;
                    b[j] += g * (f64::from(v[j]) - mu);
                }
            }
            for ((&g, &v), &y) in gr.iter().zip(xr).zip(yr) {
                let g = f64::from(relu_masked(y, g));
                tail.0 += g;
                tail.1 += g * (f64::from(v) - mu);
            }
        }
    }
    (fold(a) + tail.0, fold(b) + tail.1)
}

/// ReLU's gradient: `g` where its output `y` is positive (or NaN), zero elsewhere, as
/// [`relu_bwd`](crate::relu::relu_bwd). Branch-free (a bit mask), so that it vectorises:
/// a branch on data that is half zeros mispredicts at every other element.
#[inline(always)]
fn relu_masked(y: f32, g: f32) -> f32 {
    let keep = u32::from(y > 0.0 || y.is_nan()).wrapping_neg();
    f32::from_bits(g.to_bits() & keep)
}

/// `(sum(v - k), sum((v - k)^2))` over `xs` in `f64`, eight interleaved partial sums each,
/// added in a fixed order.
#[inline(always)]
fn sums_shifted_body(xs: &[f32], k: f64) -> (f64, f64) {
    let (mut a, mut b) = ([0f64; 8], [0f64; 8]);
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for j in 0..8 {
            let d = f64::from(c[j]) - k;
            a[j] += d;
            b[j] += d * d;
        }
    }
    let fold = |s: [f64; 8]| ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    let (mut sa, mut sb) = (fold(a), fold(b));
    for &v in chunks.remainder() {
        let d = f64::from(v) - k;
        sa += d;
        sb += d * d;
    }
    (sa, sb)
}

/// Whether the loops below run in their AVX2 + FMA build: on the AVX2 and AVX-512 paths. The
/// crate is compiled for baseline x86-64, where the `f64` sums get 2-lane SSE2 and are
/// compute-bound (ResNet-20's batch-norm backward 1.6x slower than the AVX2 build).
fn avx2_build() -> bool {
    matches!(crate::isa(), crate::Isa::Avx2 | crate::Isa::Avx512) && crate::Isa::Avx2.supported()
}

/// `fn $name(args) -> ret`: calls `$body(args)` (an `#[inline(always)]` function) compiled
/// for AVX2 + FMA where [`avx2_build`], as it is otherwise.
macro_rules! avx2_build {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:ident) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            if avx2_build() {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                // SAFETY: `avx2_build` checked that the CPU has AVX2 and FMA.
                return unsafe { avx2($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}

avx2_build! {
    /// [`sums_shifted_body`] in the best build.
    fn sums_shifted(xs: &[f32], k: f64) -> (f64, f64) = sums_shifted_body
}

avx2_build! {
    /// [`sum_dy_dyx_body`] in the best build.
    fn sum_dy_dyx(dy: &[f32], x: &[f32], y: Option<&[f32]>, mu: f64) -> (f64, f64) = sum_dy_dyx_body
}

avx2_build! {
    /// [`scale_shift_plane_body`] in the best build.
    fn scale_shift_plane(y: &mut [MaybeUninit<f32>], x: &[f32], s: f32, t: f32, relu: bool) -> () = scale_shift_plane_body
}

avx2_build! {
    /// [`dx_plane_body`] in the best build.
    fn dx_plane(dx: &mut [MaybeUninit<f32>], x: &[f32], dy: &[f32], y: Option<&[f32]>, k: [f32; 5]) -> () = dx_plane_body
}

/// `y = x * s + t`, then ReLU (NaN kept) when `relu`, over one plane.
#[inline(always)]
fn scale_shift_plane_body(y: &mut [MaybeUninit<f32>], x: &[f32], s: f32, t: f32, relu: bool) {
    if relu {
        for (o, &v) in y.iter_mut().zip(x) {
            o.write(super::relu::relu1(v * s + t));
        }
    } else {
        for (o, &v) in y.iter_mut().zip(x) {
            o.write(v * s + t);
        }
    }
}

/// One plane of the batch-norm input gradient, `k = [mean, invstd, gamma * invstd,
/// mean(g), mean(g * xhat)]`: `dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat))`
/// with `g` = `dy`, masked by ReLU's output `y` when given.
#[inline(always)]
fn dx_plane_body(
    dx: &mut [MaybeUninit<f32>],
    x: &[f32],
    dy: &[f32],
    y: Option<&[f32]>,
    [mu, is, kk, a, bb]: [f32; 5],
) {
    match y {
        None => {
            for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                o.write(kk * (g - a - (v - mu) * is * bb));
            }
        }
        Some(y) => {
            for (((o, &v), &g), &y) in dx.iter_mut().zip(x).zip(dy).zip(y) {
                let g = relu_masked(y, g);
                o.write(kk * (g - a - (v - mu) * is * bb));
            }
        }
    }
}

/// Per channel of `x` `[b, c, hw]`: the mean and the biased variance, in one pass: sums of
/// `x - k` and its square in `f64`, shifted by the channel's first value `k` so that a large
/// mean does not cancel the variance away (with `f64` sums of `f32` data the result is exact
/// to `f32` precision unless `|mean - k| / std` exceeds about 10^4).
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `x` is not `b * c * hw` long.
pub fn channel_stats(x: &[f32], b: usize, c: usize, hw: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    check_len(x, b * c * hw, "batch_norm2d", "input")?;
    let m = (b * hw).max(1) as f64;
    let stats: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let k = x.get(ch * hw).map_or(0.0, |&v| f64::from(v));
            let (s, sq) = (0..b)
                .map(|i| sums_shifted(&x[(i * c + ch) * hw..][..hw], k))
                .fold((0.0, 0.0), |(a, b), (c, d)| (a + c, b + d));
            let d = s / m;
            ((k + d) as f32, (sq / m - d * d).max(0.0) as f32)
        })
        .collect();
    Ok(stats.into_iter().unzip())
}

/// A vector of `len` floats, every one written by `fill` (given the uninitialised storage):
/// the outputs of the elementwise kernels, without zeroing memory that is overwritten anyway.
fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: `fill` wrote all `len` elements (each caller's loops cover every index of the
    // chunks they are given, and the chunks partition `0..len`).
    unsafe { v.set_len(len) };
    v
}

/// `y = x * scale[ch] + shift[ch]`, then `max(y, 0)` (NaN kept) when `relu`, parallel over
/// images; `x` is `[b, c, hw]`.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `scale` or `shift` is not `c`
/// long, or `x` not a whole number of `[c, hw]` images.
pub fn scale_shift(
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    c: usize,
    hw: usize,
    relu: bool,
) -> Result<Vec<f32>> {
    check_len(scale, c, "batch_norm2d", "scale")?;
    check_len(shift, c, "batch_norm2d", "shift")?;
    let img = (c * hw).max(1);
    check_len(x, x.len() / img * img, "batch_norm2d", "input")?;
    let y = written(x.len(), |y| {
        y.par_chunks_mut(c * hw)
            .zip(x.par_chunks(c * hw))
            .for_each(|(y, x)| {
                for ch in 0..c {
                    let (y, x) = (&mut y[ch * hw..][..hw], &x[ch * hw..][..hw]);
                    scale_shift_plane(y, x, scale[ch], shift[ch], relu);
                }
            })
    });
    Ok(y)
}

/// Batch normalisation forward with fixed statistics: `y = (x - mean) * invstd * gamma +
/// beta` per channel of `x` `[b, c, hw]` (then `max(y, 0)` when `relu`), through
/// [`scale_shift`].
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when a slice does not have the
/// length the sizes imply.
pub fn bn_fwd(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    invstd: &[f32],
    (b, c, hw): (usize, usize, usize),
    relu: bool,
) -> Result<Vec<f32>> {
    let op = "batch_norm2d";
    check_len(x, b * c * hw, op, "input")?;
    check_len(gamma, c, op, "weight")?;
    check_len(beta, c, op, "bias")?;
    check_len(mean, c, op, "mean")?;
    check_len(invstd, c, op, "inverse standard deviation")?;
    let scale: Vec<f32> = (0..c).map(|ch| gamma[ch] * invstd[ch]).collect();
    let shift: Vec<f32> = (0..c).map(|ch| beta[ch] - mean[ch] * scale[ch]).collect();
    scale_shift(x, &scale, &shift, c, hw, relu)
}

/// Gradients of `y = (x - mean) * invstd * gamma + beta` with batch statistics: returns
/// `(dx, dgamma, dbeta)`; `x` and `dy` are `[b, c, hw]`, the others `[c]`. With `relu_out`
/// (the forward's output when it applied ReLU, `[b, c, hw]`), `dy` is first masked by ReLU's
/// gradient (zero where the output is not positive), read in the same passes.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when a slice does not have the
/// length the sizes imply.
#[allow(clippy::too_many_arguments)]
pub fn bn_bwd(
    x: &[f32],
    dy: &[f32],
    relu_out: Option<&[f32]>,
    mean: &[f32],
    invstd: &[f32],
    gamma: &[f32],
    (b, c, hw): (usize, usize, usize),
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let op = "batch_norm2d backward";
    check_len(x, b * c * hw, op, "input")?;
    check_len(dy, b * c * hw, op, "output gradient")?;
    if let Some(y) = relu_out {
        check_len(y, b * c * hw, op, "output")?;
    }
    check_len(mean, c, op, "mean")?;
    check_len(invstd, c, op, "inverse standard deviation")?;
    check_len(gamma, c, op, "weight")?;
    let m = (b * hw).max(1) as f64;
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mu, is) = (f64::from(mean[ch]), f64::from(invstd[ch]));
            let (mut sdy, mut sdyx) = (0f64, 0f64);
            for i in 0..b {
                let o = (i * c + ch) * hw;
                let y = relu_out.map(|y| &y[o..][..hw]);
                let (a, d) = sum_dy_dyx(&dy[o..][..hw], &x[o..][..hw], y, mu);
                sdy += a;
                sdyx += d;
            }
            (sdy, sdyx * is)
        })
        .collect();
    let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
    // dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
    let k: Vec<f32> = (0..c).map(|ch| gamma[ch] * invstd[ch]).collect();
    let mdy: Vec<f32> = sums.iter().map(|s| (s.0 / m) as f32).collect();
    let mdyx: Vec<f32> = sums.iter().map(|s| (s.1 / m) as f32).collect();
    let img = c * hw;
    let dx = written(x.len(), |dx| {
        dx.par_chunks_mut(img.max(1))
            .enumerate()
            .for_each(|(i, dx)| {
                let (x, dy) = (&x[i * img..][..dx.len()], &dy[i * img..][..dx.len()]);
                let y = relu_out.map(|y| &y[i * img..][..dx.len()]);
                for ch in 0..c {
                    let r = ch * hw..(ch + 1) * hw;
                    let consts = [mean[ch], invstd[ch], k[ch], mdy[ch], mdyx[ch]];
                    let y = y.map(|y| &y[r.clone()]);
                    dx_plane(&mut dx[r.clone()], &x[r.clone()], &dy[r], y, consts);
                }
            })
    });
    Ok((dx, dgamma, dbeta))
}
