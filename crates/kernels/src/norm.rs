//! Batch normalisation in training mode (batch statistics) for `[b, c, h, w]` tensors:
//! per-channel statistics, the normalisation, and its backward, each one pass over the data
//! (the backward's ReLU mask, when the forward had one, read in the same passes).
//! Sums are taken in an order fixed by the shapes alone, whatever the threads (deterministic:
//! from 32 images on, chunks of 8 images summed on one thread each in memory order and the
//! chunks' sums added in order), each plane in eight lanes of `f32` over blocks of 256 floats
//! added into `f64` sums across blocks.

use crate::error::{check_len, Result};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use wide::f32x4;

/// Floats per block of the sums below: eight lanes of 32 values each are summed in `f32`
/// (two 4-float vectors), then the block's lanes are added into eight `f64` sums. A lane's
/// `f32` sum of 32 terms is within about 32 ulps of its exact value (far below what the
/// `f32` results resolve), and the `f64` sums across blocks keep a plane of any size exact to
/// that; the `f32` additions run four to a vector on every path (SSE2 included), where
/// converting each float to `f64` first made the loops compute-bound at 12-15 GB/s.
const SUM_BLOCK: usize = 256;

/// Eight lanes (two vectors) of `f32` partial sums.
type Lanes8 = [f32x4; 2];

/// Reads 8 floats as two vectors.
#[inline(always)]
fn load8(v: &[f32]) -> Lanes8 {
    let v: &[f32; 8] = v.try_into().expect("8 floats");
    [
        f32x4::from([v[0], v[1], v[2], v[3]]),
        f32x4::from([v[4], v[5], v[6], v[7]]),
    ]
}

/// Adds the eight `f32` lanes of `acc` into the eight `f64` sums `to`, lane by lane.
#[inline(always)]
fn fold_into(to: &mut [f64; 8], acc: Lanes8) {
    let (lo, hi) = (acc[0].to_array(), acc[1].to_array());
    for j in 0..4 {
        to[j] += f64::from(lo[j]);
        to[j + 4] += f64::from(hi[j]);
    }
}

/// The eight `f64` lane sums added in a fixed order.
#[inline(always)]
fn fold8(s: [f64; 8]) -> f64 {
    ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
}

/// `(sum(g), sum(g * (x - mu)))` over one plane, where `g` is `dy`, or `dy` masked by ReLU's
/// output `y` (zero where `y <= 0`) when the forward had one: eight lanes summed in `f32`
/// over blocks of [`SUM_BLOCK`] floats and in `f64` across blocks, in a fixed order.
#[inline(always)]
fn sum_dy_dyx_body(dy: &[f32], x: &[f32], y: Option<&[f32]>, mu: f32) -> (f64, f64) {
    let (mut a, mut b) = ([0f64; 8], [0f64; 8]);
    let muv = f32x4::splat(mu);
    let mut tail = (0f64, 0f64);
    for (i, (gb, xb)) in dy.chunks(SUM_BLOCK).zip(x.chunks(SUM_BLOCK)).enumerate() {
        let yb = y.map(|y| &y[i * SUM_BLOCK..][..gb.len()]);
        let (mut sa, mut sb) = ([f32x4::ZERO; 2], [f32x4::ZERO; 2]);
        let full = gb.len() / 8 * 8;
        for p in (0..full).step_by(8) {
            let (mut g, v) = (load8(&gb[p..p + 8]), load8(&xb[p..p + 8]));
            if let Some(yb) = yb {
                let keep = load8(&yb[p..p + 8]);
                for (g, y) in g.iter_mut().zip(keep) {
                    // ReLU's gradient: keep `g` where `y > 0` or `y` is NaN (not `y <= 0`).
                    *g = y.simd_le(f32x4::ZERO).bitselect(f32x4::ZERO, *g);
                }
            }
            for j in 0..2 {
                sa[j] += g[j];
                sb[j] += g[j] * (v[j] - muv);
            }
        }
        fold_into(&mut a, sa);
        fold_into(&mut b, sb);
        for p in full..gb.len() {
            let g = match yb {
                Some(yb) => relu_masked(yb[p], gb[p]),
                None => gb[p],
            };
            tail.0 += f64::from(g);
            tail.1 += f64::from(g * (xb[p] - mu));
        }
    }
    (fold8(a) + tail.0, fold8(b) + tail.1)
}

/// ReLU's gradient: `g` where its output `y` is positive (or NaN), zero elsewhere, as
/// [`relu_bwd`](crate::relu::relu_bwd). Branch-free (a bit mask), so that it vectorises:
/// a branch on data that is half zeros mispredicts at every other element.
#[inline(always)]
fn relu_masked(y: f32, g: f32) -> f32 {
    let keep = u32::from(y > 0.0 || y.is_nan()).wrapping_neg();
    f32::from_bits(g.to_bits() & keep)
}

/// `(sum(v - k), sum((v - k)^2))` over `xs`: eight lanes summed in `f32` over blocks of
/// [`SUM_BLOCK`] floats and in `f64` across blocks, in a fixed order.
#[inline(always)]
fn sums_shifted_body(xs: &[f32], k: f32) -> (f64, f64) {
    let (mut a, mut b) = ([0f64; 8], [0f64; 8]);
    let kv = f32x4::splat(k);
    let mut tail = (0f64, 0f64);
    for block in xs.chunks(SUM_BLOCK) {
        let (mut sa, mut sb) = ([f32x4::ZERO; 2], [f32x4::ZERO; 2]);
        let mut chunks = block.chunks_exact(8);
        for c in &mut chunks {
            let v = load8(c);
            for j in 0..2 {
                let d = v[j] - kv;
                sa[j] += d;
                sb[j] += d * d;
            }
        }
        fold_into(&mut a, sa);
        fold_into(&mut b, sb);
        for &v in chunks.remainder() {
            let d = v - k;
            tail.0 += f64::from(d);
            tail.1 += f64::from(d * d);
        }
    }
    (fold8(a) + tail.0, fold8(b) + tail.1)
}

/// Whether the loops below run in their AVX2 + FMA build: on the AVX2 and AVX-512 paths. The
/// crate is compiled for baseline x86-64 (SSE2), where the plane loops run 128 bits wide
/// (ResNet-20's batch-norm backward was 1.6x slower there, with the `f64` sums of the time).
#[cfg(target_arch = "x86_64")]
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
    fn sums_shifted(xs: &[f32], k: f32) -> (f64, f64) = sums_shifted_body
}

avx2_build! {
    /// [`sum_dy_dyx_body`] in the best build.
    fn sum_dy_dyx(dy: &[f32], x: &[f32], y: Option<&[f32]>, mu: f32) -> (f64, f64) = sum_dy_dyx_body
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
/// `x - k` and its square, shifted by the channel's first value `k` so that a large mean does
/// not cancel the variance away (in `f32` over blocks of 256 floats, in `f64` across them;
/// the variance within 1e-5 relative of two-pass `f64` sums, for planes of any size).
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `x` is not `b * c * hw` long.
pub fn channel_stats(x: &[f32], b: usize, c: usize, hw: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    check_len(x, b * c * hw, "batch_norm2d", "input")?;
    let m = (b * hw).max(1) as f64;
    // Each channel's shift: its first value (0 for an empty batch).
    let ks: Vec<f32> = (0..c)
        .map(|ch| x.get(ch * hw).copied().unwrap_or(0.0))
        .collect();
    let sums = channel_sums(b, c, |i, ch| {
        sums_shifted(&x[(i * c + ch) * hw..][..hw], ks[ch])
    });
    Ok(sums
        .into_iter()
        .zip(&ks)
        .map(|((s, sq), &k)| {
            let d = s / m;
            ((f64::from(k) + d) as f32, (sq / m - d * d).max(0.0) as f32)
        })
        .unzip())
}

/// Images per partial sum in [`channel_sums`].
const SUM_IMAGES: usize = 8;

/// Per channel `ch`, the sum over images `i` of the pairs `f(i, ch)` for a `[b, c, ..]`
/// batch, in a fixed order that depends on `b` alone (not on the threads). From 32 images
/// on, each chunk of [`SUM_IMAGES`] images is summed on one thread, image by image and
/// channel by channel in memory order, and the chunks' sums are added in order; with fewer
/// images, the channels run in parallel, each over the images in order.
fn channel_sums(
    b: usize,
    c: usize,
    f: impl Fn(usize, usize) -> (f64, f64) + Sync,
) -> Vec<(f64, f64)> {
    let add = |(a, b): (f64, f64), (x, y): (f64, f64)| (a + x, b + y);
    if b < 4 * SUM_IMAGES {
        return (0..c)
            .into_par_iter()
            .map(|ch| (0..b).map(|i| f(i, ch)).fold((0.0, 0.0), add))
            .collect();
    }
    let partial: Vec<Vec<(f64, f64)>> = (0..b.div_ceil(SUM_IMAGES))
        .into_par_iter()
        .map(|k| {
            let mut s = vec![(0.0, 0.0); c];
            for i in k * SUM_IMAGES..((k + 1) * SUM_IMAGES).min(b) {
                for (ch, s) in s.iter_mut().enumerate() {
                    *s = add(*s, f(i, ch));
                }
            }
            s
        })
        .collect();
    (0..c)
        .map(|ch| partial.iter().fold((0.0, 0.0), |s, p| add(s, p[ch])))
        .collect()
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
    let sums: Vec<(f64, f64)> = channel_sums(b, c, |i, ch| {
        let o = (i * c + ch) * hw;
        let y = relu_out.map(|y| &y[o..][..hw]);
        sum_dy_dyx(&dy[o..][..hw], &x[o..][..hw], y, mean[ch])
    })
    .into_iter()
    .enumerate()
    .map(|(ch, (a, d))| (a, d * f64::from(invstd[ch])))
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
