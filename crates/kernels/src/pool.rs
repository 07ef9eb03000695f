//! Pooling kernels, parallel over `[h, w]` planes.

use crate::error::{check_len, Result};
use crate::{Pool2dParams, PoolDims};
use rayon::prelude::*;

use super::portable;
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512, isa::isa, isa::Isa};

/// 2x2 max pooling of one row pair through the selected SIMD kernels (the portable one on
/// `wide`'s 4-lane vectors): the number of outputs done, from the first (the caller does the
/// rest).
fn simd_max2x2_row(r0: &[f32], r1: &[f32], out: &mut [f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    match isa() {
        Isa::Avx512 => {
            avx512::max2x2_row(r0, r1, out);
            return out.len();
        }
        Isa::Avx2 => {
            avx2::max2x2_row(r0, r1, out);
            return out.len();
        }
        Isa::Portable => {}
    }
    portable::max2x2_row(r0, r1, out)
}

/// Backward of [`simd_max2x2_row`]: the number of outputs done, from the first.
fn simd_max2x2_bwd_row(
    r0: &[f32],
    r1: &[f32],
    dy: &[f32],
    d0: &mut [f32],
    d1: &mut [f32],
) -> usize {
    #[cfg(target_arch = "x86_64")]
    match isa() {
        Isa::Avx512 => {
            avx512::max2x2_bwd_row(r0, r1, dy, d0, d1);
            return dy.len();
        }
        Isa::Avx2 => {
            avx2::max2x2_bwd_row(r0, r1, dy, d0, d1);
            return dy.len();
        }
        Isa::Portable => {}
    }
    portable::max2x2_bwd_row(r0, r1, dy, d0, d1)
}

/// 2x2 average pooling of one row pair through the selected SIMD kernels; `false` (nothing
/// done) on the portable path.
fn simd_avg2x2_row(r0: &[f32], r1: &[f32], out: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    match isa() {
        Isa::Avx512 => {
            avx512::avg2x2_row(r0, r1, out);
            return true;
        }
        Isa::Avx2 => {
            avx2::avg2x2_row(r0, r1, out);
            return true;
        }
        Isa::Portable => {}
    }
    let _ = (r0, r1, out);
    false
}

/// Backward of [`simd_avg2x2_row`]; `false` (nothing done) on the portable path.
fn simd_avg2x2_bwd_row(dy: &[f32], d0: &mut [f32], d1: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    match isa() {
        Isa::Avx512 => {
            avx512::avg2x2_bwd_row(dy, d0, d1);
            return true;
        }
        Isa::Avx2 => {
            avx2::avg2x2_bwd_row(dy, d0, d1);
            return true;
        }
        Isa::Portable => {}
    }
    let _ = (dy, d0, d1);
    false
}

/// The divisor of each output of average pooling, `[oh * ow]`, as PyTorch computes it
/// (the window's size, or only its part inside the input without `count_include_pad`).
pub fn avg_divisors(h: usize, w: usize, oh: usize, ow: usize, p: &Pool2dParams) -> Vec<f32> {
    let span = |o: usize, d: usize, i: usize| {
        let start = (o * p.stride[d]) as isize - p.padding[d] as isize;
        let end = (start + p.kernel[d] as isize).min((i + p.padding[d]) as isize);
        let with_pad = end - start;
        let inside = end.min(i as isize) - start.max(0);
        if p.count_include_pad {
            with_pad
        } else {
            inside
        }
    };
    let mut out = Vec::with_capacity(oh * ow);
    for y in 0..oh {
        for x in 0..ow {
            out.push((span(y, 0, h) * span(x, 1, w)) as f32);
        }
    }
    out
}

/// The input `[planes, h, w]` and output gradient `[planes, oh, ow]` lengths of `d`.
fn check_pool(x: Option<&[f32]>, dy: Option<&[f32]>, d: &PoolDims, op: &'static str) -> Result<()> {
    if let Some(x) = x {
        check_len(x, d.input_len(), op, "input")?;
    }
    if let Some(dy) = dy {
        check_len(dy, d.output_len(), op, "output gradient")?;
    }
    Ok(())
}

/// Planes per rayon task, so that each task has some work.
fn min_planes(d: &PoolDims) -> usize {
    (4096 / (d.h * d.w).max(1)).max(1)
}

/// The window of output `o` along one dimension, clipped to the input: `[start, end)`.
#[inline]
fn window(o: usize, d: usize, len: usize, p: &Pool2dParams) -> (usize, usize) {
    let start = (o * p.stride[d]) as isize - p.padding[d] as isize;
    let end = (start + p.kernel[d] as isize).min(len as isize);
    (start.max(0) as usize, end.max(0) as usize)
}

/// Index (in the plane) of the first maximum of the window of output `(oy, ox)`, PyTorch's
/// rule: scan row-major, take a value if it is greater than the best so far or NaN.
#[inline]
fn argmax(plane: &[f32], d: &PoolDims, p: &Pool2dParams, oy: usize, ox: usize) -> usize {
    let (y0, y1) = window(oy, 0, d.h, p);
    let (x0, x1) = window(ox, 1, d.w, p);
    let mut best = f32::NEG_INFINITY;
    let mut best_i = y0 * d.w + x0;
    for y in y0..y1 {
        let row = &plane[y * d.w..(y + 1) * d.w];
        for (x, &v) in row.iter().enumerate().take(x1).skip(x0) {
            if v > best || v.is_nan() {
                best = v;
                best_i = y * d.w + x;
            }
        }
    }
    best_i
}

/// Whether the windows tile the input without overlap, padding or clipping (the common
/// `MaxPool2d(k)` / `AvgPool2d(k)` case), which has simpler loops.
fn tiles(d: &PoolDims, p: &Pool2dParams) -> bool {
    p.kernel == p.stride
        && p.padding == [0, 0]
        && d.oh * p.kernel[0] <= d.h
        && d.ow * p.kernel[1] <= d.w
}

/// PyTorch's max-pool scan rule: a value replaces the best so far if greater, or NaN.
#[inline(always)]
fn takes(v: f32, best: f32) -> bool {
    (v > best) | v.is_nan()
}

/// Max pooling forward: `x` `[planes, h, w]` to `[planes, oh, ow]`, each output the first
/// maximum of its window (NaN wins), as PyTorch's `max_pool2d`.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `x` does not have the length
/// `d` implies.
pub fn max_fwd(x: &[f32], d: &PoolDims, p: &Pool2dParams) -> Result<Vec<f32>> {
    check_pool(Some(x), None, d, "max_pool2d")?;
    Ok(max_fwd_unchecked(x, d, p))
}

fn max_fwd_unchecked(x: &[f32], d: &PoolDims, p: &Pool2dParams) -> Vec<f32> {
    let mut y = vec![0f32; d.planes * d.oh * d.ow];
    if tiles(d, p) && p.kernel == [2, 2] {
        y.par_chunks_mut(d.oh * d.ow)
            .zip(x.par_chunks(d.h * d.w))
            .with_min_len(min_planes(d))
            .for_each(|(out, plane)| max2x2(plane, d, out));
        return y;
    }
    y.par_chunks_mut(d.oh * d.ow)
        .zip(x.par_chunks(d.h * d.w))
        .with_min_len(min_planes(d))
        .for_each(|(out, plane)| {
            for oy in 0..d.oh {
                for ox in 0..d.ow {
                    out[oy * d.ow + ox] = plane[argmax(plane, d, p, oy, ox)];
                }
            }
        });
    y
}

/// The value PyTorch's scan keeps after `best` when it meets `v`: `v` if greater or NaN.
#[inline(always)]
fn pick(v: f32, best: f32) -> f32 {
    if takes(v, best) {
        v
    } else {
        best
    }
}

/// 2x2 stride-2 max pooling of one plane whose windows all lie inside it. The loops walk
/// pairs of columns with no index arithmetic or bounds checks, so they vectorise.
fn max2x2(plane: &[f32], d: &PoolDims, out: &mut [f32]) {
    for (oy, out) in out.chunks_exact_mut(d.ow).enumerate() {
        let r0 = &plane[2 * oy * d.w..][..2 * d.ow];
        let r1 = &plane[(2 * oy + 1) * d.w..][..2 * d.ow];
        let done = simd_max2x2_row(r0, r1, out);
        for ((o, p0), p1) in out[done..]
            .iter_mut()
            .zip(r0[2 * done..].chunks_exact(2))
            .zip(r1[2 * done..].chunks_exact(2))
        {
            *o = pick(p1[1], pick(p1[0], pick(p0[1], p0[0])));
        }
    }
}

/// 2x2 stride-2 max pooling backward of one plane whose windows all lie inside it: the
/// gradient goes where PyTorch's row-major scan ends (the first maximum, or the last NaN),
/// found with selects rather than branches (the comparisons are unpredictable on real data),
/// and the loops walk pairs of columns with no bounds checks, so they vectorise. Every
/// element of every window is written.
fn max2x2_bwd(plane: &[f32], dy: &[f32], d: &PoolDims, dx: &mut [f32]) {
    for (oy, dy) in dy.chunks_exact(d.ow).enumerate() {
        let r0 = &plane[2 * oy * d.w..][..2 * d.ow];
        let r1 = &plane[(2 * oy + 1) * d.w..][..2 * d.ow];
        let (d0, rest) = dx[2 * oy * d.w..].split_at_mut(d.w);
        let (d0, d1) = (&mut d0[..2 * d.ow], &mut rest[..2 * d.ow]);
        let done = simd_max2x2_bwd_row(r0, r1, dy, d0, d1);
        for ((((&g, p0), p1), q0), q1) in dy[done..]
            .iter()
            .zip(r0[2 * done..].chunks_exact(2))
            .zip(r1[2 * done..].chunks_exact(2))
            .zip(d0[2 * done..].chunks_exact_mut(2))
            .zip(d1[2 * done..].chunks_exact_mut(2))
        {
            let (a, b, c, e) = (p0[0], p0[1], p1[0], p1[1]);
            let tb = takes(b, a);
            let m = if tb { b } else { a };
            let tc = takes(c, m);
            let m = if tc { c } else { m };
            let te = takes(e, m);
            // The last element the scan took wins.
            let we = te;
            let wc = tc & !te;
            let wb = tb & !(tc | te);
            let wa = !(tb | tc | te);
            q0[0] = if wa { g } else { 0.0 };
            q0[1] = if wb { g } else { 0.0 };
            q1[0] = if wc { g } else { 0.0 };
            q1[1] = if we { g } else { 0.0 };
        }
    }
}

/// Max pooling backward: the gradient of each output goes to the first maximum of its window.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `x` or `dy` does not have the
/// length `d` implies.
pub fn max_bwd(x: &[f32], dy: &[f32], d: &PoolDims, p: &Pool2dParams) -> Result<Vec<f32>> {
    check_pool(Some(x), Some(dy), d, "max_pool2d grad")?;
    Ok(max_bwd_unchecked(x, dy, d, p))
}

fn max_bwd_unchecked(x: &[f32], dy: &[f32], d: &PoolDims, p: &Pool2dParams) -> Vec<f32> {
    let mut dx = vec![0f32; d.planes * d.h * d.w];
    if tiles(d, p) && p.kernel == [2, 2] {
        dx.par_chunks_mut(d.h * d.w)
            .zip(x.par_chunks(d.h * d.w))
            .zip(dy.par_chunks(d.oh * d.ow))
            .with_min_len(min_planes(d))
            .for_each(|((dx, plane), dy)| max2x2_bwd(plane, dy, d, dx));
        return dx;
    }
    dx.par_chunks_mut(d.h * d.w)
        .zip(x.par_chunks(d.h * d.w))
        .zip(dy.par_chunks(d.oh * d.ow))
        .with_min_len(min_planes(d))
        .for_each(|((dx, plane), dy)| {
            for oy in 0..d.oh {
                for ox in 0..d.ow {
                    dx[argmax(plane, d, p, oy, ox)] += dy[oy * d.ow + ox];
                }
            }
        });
    dx
}

/// Average pooling forward: `x` `[planes, h, w]` to `[planes, oh, ow]`, each output its
/// window's sum over [`avg_divisors`], as PyTorch's `avg_pool2d`.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `x` does not have the length
/// `d` implies.
pub fn avg_fwd(x: &[f32], d: &PoolDims, p: &Pool2dParams) -> Result<Vec<f32>> {
    check_pool(Some(x), None, d, "avg_pool2d")?;
    Ok(avg_fwd_unchecked(x, d, p))
}

fn avg_fwd_unchecked(x: &[f32], d: &PoolDims, p: &Pool2dParams) -> Vec<f32> {
    let mut y = vec![0f32; d.planes * d.oh * d.ow];
    if tiles(d, p) {
        let inv = 1.0 / (p.kernel[0] * p.kernel[1]) as f32;
        let [kh, kw] = p.kernel;
        y.par_chunks_mut(d.oh * d.ow)
            .zip(x.par_chunks(d.h * d.w))
            .with_min_len(min_planes(d))
            .for_each(|(out, plane)| {
                for (oy, out) in out.chunks_exact_mut(d.ow).enumerate() {
                    if p.kernel == [2, 2] {
                        let r0 = &plane[2 * oy * d.w..][..2 * d.ow];
                        let r1 = &plane[(2 * oy + 1) * d.w..][..2 * d.ow];
                        if simd_avg2x2_row(r0, r1, out) {
                            continue;
                        }
                    }
                    for ky in 0..kh {
                        let row = &plane[(oy * kh + ky) * d.w..][..d.ow * kw];
                        if kw == 2 {
                            for (o, pair) in out.iter_mut().zip(row.chunks_exact(2)) {
                                *o += pair[0] + pair[1];
                            }
                        } else {
                            for (o, win) in out.iter_mut().zip(row.chunks_exact(kw)) {
                                *o += win.iter().sum::<f32>();
                            }
                        }
                    }
                    for o in out {
                        *o *= inv;
                    }
                }
            });
        return y;
    }
    let div = avg_divisors(d.h, d.w, d.oh, d.ow, p);
    y.par_chunks_mut(d.oh * d.ow)
        .zip(x.par_chunks(d.h * d.w))
        .with_min_len(min_planes(d))
        .for_each(|(out, plane)| {
            for oy in 0..d.oh {
                let (y0, y1) = window(oy, 0, d.h, p);
                for ox in 0..d.ow {
                    let (x0, x1) = window(ox, 1, d.w, p);
                    let mut s = 0f32;
                    for y in y0..y1 {
                        s += plane[y * d.w + x0..y * d.w + x1].iter().sum::<f32>();
                    }
                    out[oy * d.ow + ox] = s / div[oy * d.ow + ox];
                }
            }
        });
    y
}

/// Average pooling backward: each output's gradient, divided by its divisor, is added to
/// every input of its window.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `dy` does not have the length
/// `d` implies.
pub fn avg_bwd(dy: &[f32], d: &PoolDims, p: &Pool2dParams) -> Result<Vec<f32>> {
    check_pool(None, Some(dy), d, "avg_pool2d grad")?;
    Ok(avg_bwd_unchecked(dy, d, p))
}

fn avg_bwd_unchecked(dy: &[f32], d: &PoolDims, p: &Pool2dParams) -> Vec<f32> {
    let mut dx = vec![0f32; d.planes * d.h * d.w];
    if tiles(d, p) {
        let inv = 1.0 / (p.kernel[0] * p.kernel[1]) as f32;
        let [kh, kw] = p.kernel;
        dx.par_chunks_mut(d.h * d.w)
            .zip(dy.par_chunks(d.oh * d.ow))
            .with_min_len(min_planes(d))
            .for_each(|(dx, dy)| {
                for (oy, dy) in dy.chunks_exact(d.ow).enumerate() {
                    if p.kernel == [2, 2] {
                        let (d0, rest) = dx[2 * oy * d.w..].split_at_mut(d.w);
                        if simd_avg2x2_bwd_row(dy, &mut d0[..2 * d.ow], &mut rest[..2 * d.ow]) {
                            continue;
                        }
                    }
                    for ky in 0..kh {
                        let row = &mut dx[(oy * kh + ky) * d.w..][..d.ow * kw];
                        for (win, g) in row.chunks_exact_mut(kw).zip(dy) {
                            win.fill(g * inv);
                        }
                    }
                }
            });
        return dx;
    }
    let div = avg_divisors(d.h, d.w, d.oh, d.ow, p);
    dx.par_chunks_mut(d.h * d.w)
        .zip(dy.par_chunks(d.oh * d.ow))
        .with_min_len(min_planes(d))
        .for_each(|(dx, dy)| {
            for oy in 0..d.oh {
                let (y0, y1) = window(oy, 0, d.h, p);
                for ox in 0..d.ow {
                    let (x0, x1) = window(ox, 1, d.w, p);
                    let g = dy[oy * d.ow + ox] / div[oy * d.ow + ox];
                    for y in y0..y1 {
                        for v in &mut dx[y * d.w + x0..y * d.w + x1] {
                            *v += g;
                        }
                    }
                }
            }
        });
    dx
}
