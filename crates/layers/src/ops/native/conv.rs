//! Convolution kernels: im2col / col2im + `gemm`, parallel over the batch.
//!
//! Per image and group, with `K = c_in / groups * kh * kw` and `N = oh * ow`:
//! - forward: `y[og, N] = w[og, K] @ col[K, N]` (+ bias, fused by pre-filling `y`);
//! - input gradient: `dcol[K, N] = w^T[K, og] @ dy[og, N]`, then col2im into `dx`;
//! - weight gradient: `dw[og, K] += dy[og, N] @ col^T[N, K]`, summed over the batch.
//!
//! A 1x1 convolution with stride 1 and no padding uses the input as `col` directly.

use super::gemm::{sgemm, with_scratch, Mat};
use crate::ops::ConvGeometry;
use gemm::Parallelism;
use rayon::prelude::*;

/// Derived sizes of a convolution.
#[derive(Clone, Copy)]
struct Dims {
    /// Input channels per group.
    cg: usize,
    /// Output channels per group.
    og: usize,
    /// Rows of `col`: `cg * kh * kw`.
    k: usize,
    /// Columns of `col`: `oh * ow`.
    n: usize,
    /// Input plane size `h * w`.
    hw: usize,
    /// `col` is the input itself (1x1, stride 1, no padding).
    pointwise: bool,
}

impl Dims {
    fn new(g: &ConvGeometry) -> Self {
        let cg = g.c_in / g.p.groups;
        let p = &g.p;
        Self {
            cg,
            og: g.c_out / p.groups,
            k: cg * g.kh * g.kw,
            n: g.oh * g.ow,
            hw: g.h * g.w,
            pointwise: g.kh == 1 && g.kw == 1 && p.stride == [1, 1] && p.padding == [0, 0],
        }
    }
}

/// How to split work: over images (each GEMM single-threaded) or inside each GEMM.
fn batch_parallel(g: &ConvGeometry) -> bool {
    g.b >= rayon::current_num_threads().min(2) && g.b > 1
}

fn gemm_par(batch_parallel: bool) -> Parallelism {
    if batch_parallel {
        Parallelism::None
    } else {
        Parallelism::Rayon(rayon::current_num_threads())
    }
}

/// For kernel offset `off = k * dilation - padding` along a dimension of length `len`, the
/// range of output positions `o` whose input `o * stride + off` lies inside `[0, len)`.
#[inline]
fn valid_range(off: isize, stride: usize, len: usize, out: usize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    let hi = if (len as isize) <= off {
        0
    } else {
        ((len as isize - off) + s - 1) / s
    };
    let lo = (lo as usize).min(out);
    let hi = (hi as usize).min(out).max(lo);
    (lo, hi)
}

/// Unfolds one group of one image `src` `[cg, h, w]` into `col` `[K, N]`.
fn im2col(g: &ConvGeometry, d: &Dims, src: &[f32], col: &mut [f32]) {
    let p = &g.p;
    let (sh, sw) = (p.stride[0], p.stride[1]);
    for c in 0..d.cg {
        let plane = &src[c * d.hw..(c + 1) * d.hw];
        for ki in 0..g.kh {
            let off_h = (ki * p.dilation[0]) as isize - p.padding[0] as isize;
            let (y_lo, y_hi) = valid_range(off_h, sh, g.h, g.oh);
            for kj in 0..g.kw {
                let off_w = (kj * p.dilation[1]) as isize - p.padding[1] as isize;
                let (x_lo, x_hi) = valid_range(off_w, sw, g.w, g.ow);
                let row = &mut col[((c * g.kh + ki) * g.kw + kj) * d.n..][..d.n];
                row[..y_lo * g.ow].fill(0.0);
                row[y_hi * g.ow..].fill(0.0);
                for oy in y_lo..y_hi {
                    let iy = (oy * sh) as isize + off_h;
                    let srow = &plane[iy as usize * g.w..][..g.w];
                    let out = &mut row[oy * g.ow..(oy + 1) * g.ow];
                    out[..x_lo].fill(0.0);
                    out[x_hi..].fill(0.0);
                    if x_hi > x_lo {
                        let ix0 = (x_lo * sw) as isize + off_w;
                        let ix0 = ix0 as usize;
                        if sw == 1 {
                            out[x_lo..x_hi].copy_from_slice(&srow[ix0..ix0 + (x_hi - x_lo)]);
                        } else {
                            for (o, v) in out[x_lo..x_hi]
                                .iter_mut()
                                .zip(srow[ix0..].iter().step_by(sw))
                            {
                                *o = *v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Folds `col` `[K, N]` back into one group of one image `dst` `[cg, h, w]`, adding.
fn col2im(g: &ConvGeometry, d: &Dims, col: &[f32], dst: &mut [f32]) {
    let p = &g.p;
    let (sh, sw) = (p.stride[0], p.stride[1]);
    for c in 0..d.cg {
        let plane = &mut dst[c * d.hw..(c + 1) * d.hw];
        for ki in 0..g.kh {
            let off_h = (ki * p.dilation[0]) as isize - p.padding[0] as isize;
            let (y_lo, y_hi) = valid_range(off_h, sh, g.h, g.oh);
            for kj in 0..g.kw {
                let off_w = (kj * p.dilation[1]) as isize - p.padding[1] as isize;
                let (x_lo, x_hi) = valid_range(off_w, sw, g.w, g.ow);
                if x_hi <= x_lo {
                    continue;
                }
                let row = &col[((c * g.kh + ki) * g.kw + kj) * d.n..][..d.n];
                for oy in y_lo..y_hi {
                    let iy = ((oy * sh) as isize + off_h) as usize;
                    let drow = &mut plane[iy * g.w..][..g.w];
                    let src = &row[oy * g.ow + x_lo..oy * g.ow + x_hi];
                    let ix0 = ((x_lo * sw) as isize + off_w) as usize;
                    if sw == 1 {
                        for (o, v) in drow[ix0..ix0 + src.len()].iter_mut().zip(src) {
                            *o += *v;
                        }
                    } else {
                        for (o, v) in drow[ix0..].iter_mut().step_by(sw).zip(src) {
                            *o += *v;
                        }
                    }
                }
            }
        }
    }
}

/// Forward of one image: `x` `[c_in, h, w]` into `y` `[c_out, N]`.
fn fwd_image(
    g: &ConvGeometry,
    d: &Dims,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    par: Parallelism,
) {
    let scratch = if d.pointwise { 0 } else { d.k * d.n };
    with_scratch(scratch, |col| {
        for grp in 0..g.p.groups {
            let src = &x[grp * d.cg * d.hw..(grp + 1) * d.cg * d.hw];
            let rhs = if d.pointwise {
                src
            } else {
                im2col(g, d, src, col);
                &*col
            };
            let dst = &mut y[grp * d.og * d.n..(grp + 1) * d.og * d.n];
            if let Some(bias) = bias {
                for (o, row) in dst.chunks_exact_mut(d.n).enumerate() {
                    row.fill(bias[grp * d.og + o]);
                }
            }
            let lhs = Mat {
                data: &w[grp * d.og * d.k..(grp + 1) * d.og * d.k],
                rs: d.k,
                cs: 1,
            };
            let rhs = Mat {
                data: rhs,
                rs: d.n,
                cs: 1,
            };
            sgemm(d.og, d.n, d.k, dst, d.n, bias.is_some(), lhs, rhs, par);
        }
    })
}

/// Convolution forward: `x` `[b, c_in, h, w]`, `w` `[c_out, cg, kh, kw]`, optional bias,
/// giving `[b, c_out, oh, ow]`.
pub(crate) fn conv2d_fwd(g: &ConvGeometry, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let d = Dims::new(g);
    let (x_img, y_img) = (g.c_in * d.hw, g.c_out * d.n);
    let mut y = vec![0f32; g.b * y_img];
    if batch_parallel(g) {
        y.par_chunks_mut(y_img)
            .zip(x.par_chunks(x_img))
            .for_each(|(y, x)| fwd_image(g, &d, x, w, bias, y, Parallelism::None));
    } else {
        for (y, x) in y.chunks_mut(y_img).zip(x.chunks(x_img)) {
            fwd_image(g, &d, x, w, bias, y, gemm_par(false));
        }
    }
    y
}

/// Input gradient of one image: `dy` `[c_out, N]` into `dx` `[c_in, h, w]` (overwritten).
fn bwd_input_image(
    g: &ConvGeometry,
    d: &Dims,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    par: Parallelism,
) {
    let scratch = if d.pointwise { 0 } else { d.k * d.n };
    if !d.pointwise {
        dx.fill(0.0);
    }
    with_scratch(scratch, |col| {
        for grp in 0..g.p.groups {
            let dst = &mut dx[grp * d.cg * d.hw..(grp + 1) * d.cg * d.hw];
            // w^T: element (i, j) of [K, og] is w[j, i].
            let lhs = Mat {
                data: &w[grp * d.og * d.k..(grp + 1) * d.og * d.k],
                rs: 1,
                cs: d.k,
            };
            let rhs = Mat {
                data: &dy[grp * d.og * d.n..(grp + 1) * d.og * d.n],
                rs: d.n,
                cs: 1,
            };
            if d.pointwise {
                sgemm(d.k, d.n, d.og, dst, d.n, false, lhs, rhs, par);
            } else {
                sgemm(d.k, d.n, d.og, col, d.n, false, lhs, rhs, par);
                col2im(g, d, col, dst);
            }
        }
    })
}

/// Gradient of the convolution with respect to its input: `dy` `[b, c_out, oh, ow]` and
/// `w` give `dx` `[b, c_in, h, w]`.
pub(crate) fn conv2d_bwd_input(g: &ConvGeometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let d = Dims::new(g);
    let (x_img, y_img) = (g.c_in * d.hw, g.c_out * d.n);
    let mut dx = vec![0f32; g.b * x_img];
    if batch_parallel(g) {
        dx.par_chunks_mut(x_img)
            .zip(dy.par_chunks(y_img))
            .for_each(|(dx, dy)| bwd_input_image(g, &d, dy, w, dx, Parallelism::None));
    } else {
        for (dx, dy) in dx.chunks_mut(x_img).zip(dy.chunks(y_img)) {
            bwd_input_image(g, &d, dy, w, dx, gemm_par(false));
        }
    }
    dx
}

/// Adds the weight gradient of one image into `dw` `[c_out, K]`.
fn bwd_weight_image(
    g: &ConvGeometry,
    d: &Dims,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    par: Parallelism,
) {
    let scratch = if d.pointwise { 0 } else { d.k * d.n };
    with_scratch(scratch, |col| {
        for grp in 0..g.p.groups {
            let src = &x[grp * d.cg * d.hw..(grp + 1) * d.cg * d.hw];
            let col: &[f32] = if d.pointwise {
                src
            } else {
                im2col(g, d, src, col);
                &*col
            };
            let lhs = Mat {
                data: &dy[grp * d.og * d.n..(grp + 1) * d.og * d.n],
                rs: d.n,
                cs: 1,
            };
            // col^T: element (i, j) of [N, K] is col[j, i].
            let rhs = Mat {
                data: col,
                rs: 1,
                cs: d.n,
            };
            let dst = &mut dw[grp * d.og * d.k..(grp + 1) * d.og * d.k];
            sgemm(d.og, d.k, d.n, dst, d.k, true, lhs, rhs, par);
        }
    })
}

/// Gradient of the convolution with respect to its weight: `x` and `dy` give `dw`
/// `[c_out, cg, kh, kw]`.
pub(crate) fn conv2d_bwd_weight(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let d = Dims::new(g);
    let (x_img, y_img) = (g.c_in * d.hw, g.c_out * d.n);
    let dw_len = g.c_out * d.k;
    if batch_parallel(g) {
        let parts = rayon::current_num_threads().min(g.b);
        let per = g.b.div_ceil(parts);
        let partials: Vec<Vec<f32>> = (0..parts)
            .into_par_iter()
            .map(|part| {
                let mut dw = vec![0f32; dw_len];
                let (i0, i1) = (part * per, ((part + 1) * per).min(g.b));
                for i in i0..i1 {
                    let x = &x[i * x_img..(i + 1) * x_img];
                    let dy = &dy[i * y_img..(i + 1) * y_img];
                    bwd_weight_image(g, &d, x, dy, &mut dw, Parallelism::None);
                }
                dw
            })
            .collect();
        let mut iter = partials.into_iter();
        let mut dw = iter.next().unwrap_or_else(|| vec![0f32; dw_len]);
        for part in iter {
            for (a, b) in dw.iter_mut().zip(&part) {
                *a += *b;
            }
        }
        dw
    } else {
        let mut dw = vec![0f32; dw_len];
        for (x, dy) in x.chunks(x_img).zip(dy.chunks(y_img)) {
            bwd_weight_image(g, &d, x, dy, &mut dw, gemm_par(false));
        }
        dw
    }
}

/// Gradient of the bias: `dy` `[b, c_out, oh, ow]` summed over batch and positions.
pub(crate) fn conv2d_bwd_bias(g: &ConvGeometry, dy: &[f32]) -> Vec<f32> {
    let n = g.oh * g.ow;
    let y_img = g.c_out * n;
    let sum_image = |dy: &[f32]| -> Vec<f32> {
        dy.chunks_exact(n)
            .map(|row| row.iter().sum::<f32>())
            .collect()
    };
    dy.par_chunks(y_img).map(sum_image).reduce(
        || vec![0f32; g.c_out],
        |mut a, b| {
            for (a, b) in a.iter_mut().zip(&b) {
                *a += *b;
            }
            a
        },
    )
}
