//! Pooling kernels, parallel over `[h, w]` planes.

use crate::ops::reference::avg_divisors;
use crate::ops::Pool2dParams;
use rayon::prelude::*;

/// Sizes of a pooling: `planes = b * c` planes of `h x w` pooled to `oh x ow`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolDims {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
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

/// Max pooling forward.
pub(crate) fn max_fwd(x: &[f32], d: &PoolDims, p: &Pool2dParams) -> Vec<f32> {
    let mut y = vec![0f32; d.planes * d.oh * d.ow];
    if p.kernel == [2, 2] && p.stride == [2, 2] && p.padding == [0, 0] {
        // The common case (fast path): whole windows, no clipping.
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

/// 2x2 stride-2 max pooling of one plane (windows may be clipped only by `ceil_mode`, which
/// this path excludes since `padding == 0` and windows starting inside fit unless the input
/// is odd and `ceil_mode` is on: handle that by the general rule).
fn max2x2(plane: &[f32], d: &PoolDims, out: &mut [f32]) {
    for oy in 0..d.oh {
        let y0 = 2 * oy;
        for ox in 0..d.ow {
            let x0 = 2 * ox;
            if y0 + 1 < d.h && x0 + 1 < d.w {
                let r0 = &plane[y0 * d.w + x0..y0 * d.w + x0 + 2];
                let r1 = &plane[(y0 + 1) * d.w + x0..(y0 + 1) * d.w + x0 + 2];
                let mut best = r0[0];
                for v in [r0[1], r1[0], r1[1]] {
                    if v > best || v.is_nan() {
                        best = v;
                    }
                }
                out[oy * d.ow + ox] = best;
            } else {
                let p = Pool2dParams::square(2, 2);
                out[oy * d.ow + ox] = plane[argmax(plane, d, &p, oy, ox)];
            }
        }
    }
}

/// Max pooling backward: the gradient of each output goes to the first maximum of its window.
pub(crate) fn max_bwd(x: &[f32], dy: &[f32], d: &PoolDims, p: &Pool2dParams) -> Vec<f32> {
    let mut dx = vec![0f32; d.planes * d.h * d.w];
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

/// Average pooling forward.
pub(crate) fn avg_fwd(x: &[f32], d: &PoolDims, p: &Pool2dParams) -> Vec<f32> {
    let div = avg_divisors(d.h, d.w, d.oh, d.ow, p);
    let mut y = vec![0f32; d.planes * d.oh * d.ow];
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
pub(crate) fn avg_bwd(dy: &[f32], d: &PoolDims, p: &Pool2dParams) -> Vec<f32> {
    let div = avg_divisors(d.h, d.w, d.oh, d.ow, p);
    let mut dx = vec![0f32; d.planes * d.h * d.w];
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
