//! Convolution kernels: matrix products in our AVX-512 or AVX2 kernels (or `gemm`), parallel
//! over the batch.
//!
//! Per image and group, with `K = c_in / groups * kh * kw` and `N = oh * ow`:
//! - forward: `y[og, N] = w[og, K] @ col[K, N]` (+ bias, fused by pre-filling `y`);
//! - input gradient: `dcol[K, N] = w^T[K, og] @ dy[og, N]`, then col2im into `dx`;
//! - weight gradient: `dw[og, K] += dy[og, N] @ col^T[N, K]`, summed over the batch.
//!
//! `col` is the unfolded input (im2col). The forward and the weight gradient skip it: the
//! products read shifted windows of the padded image instead (`Implicit`; a strided
//! convolution's image split into its stride phases first; on the AVX2 / AVX-512 paths one
//! product per output row where a row fills whole 16-column blocks, written straight into
//! the result, else one over the padded width, its extra columns dropped), and the input
//! gradient of a stride-1 convolution is a stride-1 convolution of the padded output
//! gradient (no col2im; strided ones still unfold). A 1x1 convolution with
//! stride 1 and no padding uses the input as `col` directly. When the weight is trained and
//! the batch's `col` is small (up to `MAX_KEPT_COL` (4 MiB)), the forward unfolds and keeps it for
//! the weight gradient, in buffers recycled across steps. On the portable path the forward
//! (and the input gradient of "same" convolutions) over planes of up to 32x32 gathers several
//! images side by side into one wider product (`side_by_side`). Small planes (up to 12x12
//! out; 16x16 for the weight gradient, which runs there with the AVX2 / AVX-512 kernels
//! only; at least 16 images and 4 input channels, stride 1) put the batch in the vector
//! lanes instead: each thread copies its share of the batch into `[channels, h, w, images]`
//! and makes one product per output row for all of them (`lanes`).

use super::gemm::{
    gemm_nt, gemm_nt_gather, nt_dot_pays, nt_gather_batches, relayout, sgemm_acc_col_major,
    with_scratch, Init, Lhs, Mat, NtBatch,
};
use crate::error::{check_len, Result};
use crate::relu::relu1;
use crate::ConvGeometry;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::Mutex;

mod lanes;

/// The largest unfolded input (in floats, 4 MiB) that the forward keeps for the backward.
/// Larger ones cost more to stream through memory and back than to unfold again image by
/// image in a cache-resident scratch buffer during the weight gradient (LeNet-5 trains 1.3x
/// faster with 4 MiB than with 32 MiB; MnistNet's 4 MiB batches are faster kept).
const MAX_KEPT_COL: usize = 1 << 20;

/// Unfolded-input buffers given back by the backward, for the next forward: no allocation
/// (and no page faults) per step. Their contents are stale; `im2col` writes every element.
static COL_POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of `len` floats with unspecified contents, from the pool when it has one.
fn take_col(len: usize) -> Vec<f32> {
    let mut v = COL_POOL
        .lock()
        .ok()
        .and_then(|mut pool| {
            let i = pool
                .iter()
                .position(|v| v.capacity() >= len)
                .or(pool.len().checked_sub(1))?;
            Some(pool.swap_remove(i))
        })
        .unwrap_or_default();
    v.resize(len, 0.0);
    v.truncate(len);
    v
}

/// Gives an unfolded input from [`conv2d_fwd`] back to the pool (which keeps at most 8), for
/// the next forward to reuse.
pub fn give_col(v: Vec<f32>) {
    if let Ok(mut pool) = COL_POOL.lock() {
        if pool.len() < 8 {
            pool.push(v);
        }
    }
}

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

/// `dst.copy_from_slice(src)` for the short rows of im2col (often 8 to 32 floats), inline:
/// fixed 8-float blocks instead of a `memcpy` call per row.
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[f32; 8] = s.try_into().unwrap_or(&[0.0; 8]);
        d.copy_from_slice(s);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// Unfolds one group of one image `src` `[cg, h, w]` into `col` `[K, N]`.
fn im2col(g: &ConvGeometry, d: &Dims, src: &[f32], col: &mut [f32]) {
    let (p, ld) = (&g.p, d.n);
    let (sh, sw) = (p.stride[0], p.stride[1]);
    for c in 0..d.cg {
        let plane = &src[c * d.hw..(c + 1) * d.hw];
        for ki in 0..g.kh {
            let off_h = (ki * p.dilation[0]) as isize - p.padding[0] as isize;
            let (y_lo, y_hi) = valid_range(off_h, sh, g.h, g.oh);
            for kj in 0..g.kw {
                let off_w = (kj * p.dilation[1]) as isize - p.padding[1] as isize;
                let (x_lo, x_hi) = valid_range(off_w, sw, g.w, g.ow);
                let row = &mut col[((c * g.kh + ki) * g.kw + kj) * ld..][..d.n];
                row[..y_lo * g.ow].fill(0.0);
                row[y_hi * g.ow..].fill(0.0);
                for oy in y_lo..y_hi {
                    let iy = (oy * sh) as isize + off_h;
                    let srow = &plane[iy as usize * g.w..][..g.w];
                    let out = &mut row[oy * g.ow..(oy + 1) * g.ow];
                    // Padding leaves a float or two at each end: a loop, not a `memset` call.
                    let (head, rest) = out.split_at_mut(x_lo);
                    for o in head.iter_mut().chain(&mut rest[x_hi - x_lo..]) {
                        *o = 0.0;
                    }
                    if x_hi > x_lo {
                        let ix0 = (x_lo * sw) as isize + off_w;
                        let ix0 = ix0 as usize;
                        if sw == 1 {
                            copy_short(&mut out[x_lo..x_hi], &srow[ix0..ix0 + (x_hi - x_lo)]);
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
    let (p, ld) = (&g.p, d.n);
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
                let row = &col[((c * g.kh + ki) * g.kw + kj) * ld..][..d.n];
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

/// The weight of each group as a left operand: `[og, K]` for the forward, or transposed,
/// `[K, og]`, for the input gradient.
fn weights(g: &ConvGeometry, d: &Dims, w: &[f32], transposed: bool) -> Vec<Lhs> {
    (0..g.p.groups)
        .map(|grp| {
            let data = &w[grp * d.og * d.k..(grp + 1) * d.og * d.k];
            if transposed {
                // w^T: element (i, j) of [K, og] is w[j, i].
                Lhs::new(
                    d.k,
                    d.og,
                    Mat {
                        data,
                        rs: 1,
                        cs: d.k,
                    },
                )
            } else {
                Lhs::new(
                    d.og,
                    d.k,
                    Mat {
                        data,
                        rs: d.k,
                        cs: 1,
                    },
                )
            }
        })
        .collect()
}

/// `c = lhs @ b (init)`, on this thread or with the rows split over all of them.
#[allow(clippy::too_many_arguments)]
fn mul(lhs: &Lhs, n: usize, b: &[f32], c: &mut [f32], init: Init<'_>, threads: bool) {
    let offs: Vec<usize> = (0..lhs.k()).map(|kk| kk * n).collect();
    lhs.mul_offsets(n, b, &offs, c, n, init, threads)
}

/// A convolution as an implicit GEMM: with the input zero-padded to `hp x wp`, row
/// `(c, ki, kj)` of the unfolded input is the padded image itself shifted by
/// `c * hp * wp + ki * dh * wp + kj * dw`, so the product reads it in place (no im2col). The
/// output is computed on the padded width: `n_grid = (oh - 1) * wp + ow` positions, whose
/// columns `ow..wp` of each row are dropped afterwards. The input gradient is the same kind
/// of product: a stride-1 convolution of the output gradient padded by `(k - 1) * d - p`
/// with the flipped, transposed weight.
///
/// With a stride `s > 1` the padded plane is split into its `sh x sw` phases (padded row
/// `y` goes to phase `y % sh`, row `y / sh`; likewise columns), each an `hs x ws` plane: tap
/// `(ki, kj)` then reads phase `(ki * dh % sh, kj * dw % sw)` shifted by
/// `(ki * dh / sh, kj * dw / sw)`, and output `(oy, ox)` sits at `oy * ws + ox` of every
/// window, a stride-1 product again (no FLOP on the zeros a phase-split weight would have).
struct Implicit {
    /// Padding of the operand on each side, `[top/bottom, left/right]`.
    pad: [usize; 2],
    /// Stride, `[rows, columns]`.
    stride: [usize; 2],
    /// Padded operand size (before the phase split).
    hp: usize,
    wp: usize,
    /// Size of one phase plane (`hp x wp` itself at stride 1).
    hs: usize,
    ws: usize,
    /// Result rows and columns (`oh x ow` forward, `h x w` for the input gradient).
    rows: usize,
    cols: usize,
    /// Positions computed on the phase width.
    n_grid: usize,
    /// Offset of each row of the virtual unfolded operand in the padded operand.
    offs: Vec<usize>,
}

impl Implicit {
    /// `planes` planes of `h x w` padded by `pad`, convolved with a `kh x kw` kernel.
    fn new(
        planes: usize,
        (h, w): (usize, usize),
        pad: [usize; 2],
        (kh, kw): (usize, usize),
        dil: [usize; 2],
        stride: [usize; 2],
    ) -> Self {
        let (hp, wp) = (h + 2 * pad[0], w + 2 * pad[1]);
        let (sh, sw) = (stride[0], stride[1]);
        let (hs, ws) = (hp.div_ceil(sh), wp.div_ceil(sw));
        let (rows, cols) = (
            (hp - (kh - 1) * dil[0] - 1) / sh + 1,
            (wp - (kw - 1) * dil[1] - 1) / sw + 1,
        );
        let phase = hs * ws;
        let mut offs = Vec::with_capacity(planes * kh * kw);
        for c in 0..planes {
            for ki in 0..kh {
                for kj in 0..kw {
                    let (y, x) = (ki * dil[0], kj * dil[1]);
                    offs.push(
                        (c * sh * sw + (y % sh) * sw + x % sw) * phase + (y / sh) * ws + x / sw,
                    );
                }
            }
        }
        Self {
            pad,
            stride,
            hp,
            wp,
            hs,
            ws,
            rows,
            cols,
            n_grid: (rows - 1) * ws + cols,
            offs,
        }
    }

    /// The forward of a convolution that is not pointwise.
    fn forward(g: &ConvGeometry, d: &Dims) -> Option<Self> {
        (!d.pointwise).then(|| Self::of_input(g, d))
    }

    /// The forward's operand of any convolution, pointwise included (the side-by-side
    /// product gathers its rows too).
    fn of_input(g: &ConvGeometry, d: &Dims) -> Self {
        Self::new(
            d.cg,
            (g.h, g.w),
            g.p.padding,
            (g.kh, g.kw),
            g.p.dilation,
            g.p.stride,
        )
    }

    /// The input gradient of a stride-1, non-pointwise convolution whose padding is at most
    /// `(k - 1) * d` on each side.
    fn input_grad(g: &ConvGeometry, d: &Dims) -> Option<Self> {
        let p = &g.p;
        let q = |k: usize, dil: usize, pad: usize| ((k - 1) * dil).checked_sub(pad);
        match (
            q(g.kh, p.dilation[0], p.padding[0]),
            q(g.kw, p.dilation[1], p.padding[1]),
        ) {
            (Some(qh), Some(qw)) if p.stride == [1, 1] && !d.pointwise => Some(Self::new(
                d.og,
                (g.oh, g.ow),
                [qh, qw],
                (g.kh, g.kw),
                p.dilation,
                [1, 1],
            )),
            _ => None,
        }
    }

    /// Whether the operand is the input itself (no padding, stride 1).
    fn in_place(&self) -> bool {
        self.pad == [0, 0] && self.stride == [1, 1]
    }

    /// Floats of the padded (and phase-split) operand.
    fn padded_len(&self, planes: usize) -> usize {
        planes * self.stride[0] * self.stride[1] * self.hs * self.ws
    }

    /// `src` (`planes` planes of `(hp - 2 * pad) x (wp - 2 * pad)`) zero-padded, and split
    /// into phases when strided, into `dst`.
    fn pad_into(&self, src: &[f32], planes: usize, dst: &mut [f32]) {
        let (h, w) = (self.hp - 2 * self.pad[0], self.wp - 2 * self.pad[1]);
        let [sh, sw] = self.stride;
        if [sh, sw] == [1, 1] {
            // Each plane: the rows above and below zeroed, each row between copied with its
            // `pad` zeros on either side; nothing written twice.
            let ([ph, pw], wp) = (self.pad, self.wp);
            let planes_out = dst[..planes * self.hp * wp].chunks_exact_mut(self.hp * wp);
            for (out, plane) in planes_out.zip(src.chunks_exact(h * w)) {
                let (top, rest) = out.split_at_mut(ph * wp);
                let (mid, bottom) = rest.split_at_mut(h * wp);
                top.fill(0.0);
                bottom.fill(0.0);
                for (o, row) in mid.chunks_exact_mut(wp).zip(plane.chunks_exact(w)) {
                    o[..pw].fill(0.0);
                    copy_short(&mut o[pw..pw + w], row);
                    o[pw + w..].fill(0.0);
                }
            }
            return;
        }
        dst.fill(0.0);
        let (phase, ws, pw) = (self.hs * self.ws, self.ws, self.pad[1]);
        for (c, plane) in src.chunks_exact(h * w).take(planes).enumerate() {
            for (y, row) in plane.chunks_exact(w).enumerate() {
                let py = y + self.pad[0];
                // The phase rows this input row goes to: phase column rx at `o + rx * phase`.
                let o = (c * sh * sw + (py % sh) * sw) * phase + (py / sh) * ws;
                let out = &mut dst[o..o + (sw - 1) * phase + ws];
                if sw == 2 {
                    // Pairs of columns: x = 2t goes to phase (2t + pw) % 2, x = 2t + 1 to the
                    // other, at column (x + pw) / 2.
                    let (r0, r1) = (pw % 2, (pw + 1) % 2);
                    for (t, pair) in row.chunks_exact(2).enumerate() {
                        out[r0 * phase + t + pw / 2] = pair[0];
                        out[r1 * phase + t + pw.div_ceil(2)] = pair[1];
                    }
                    if w % 2 == 1 {
                        let x = w - 1;
                        out[((x + pw) % 2) * phase + (x + pw) / 2] = row[x];
                    }
                } else {
                    for (x, &v) in row.iter().enumerate() {
                        let px = x + pw;
                        out[(px % sw) * phase + px / sw] = v;
                    }
                }
            }
        }
    }

    /// `dst[m, rows * cols] (init) lhs @ unfolded(src)`, `src` holding `planes` planes of
    /// the unpadded operand.
    #[allow(clippy::too_many_arguments)]
    fn mul(
        &self,
        lhs: &Lhs,
        src: &[f32],
        planes: usize,
        dst: &mut [f32],
        m: usize,
        init: Init<'_>,
        threads: bool,
    ) {
        let n = self.rows * self.cols;
        let padded = !self.in_place();
        with_scratch(if padded { self.padded_len(planes) } else { 0 }, |xp| {
            let xs: &[f32] = if padded {
                self.pad_into(src, planes, xp);
                xp
            } else {
                src
            };
            if self.ws == self.cols {
                return lhs.mul_offsets(n, xs, &self.offs, dst, n, init, threads);
            }
            if !threads && lhs.row_products_pay(self.cols) {
                // Row `r` of the result is a stride-1 run of every window at `r * ws`: one
                // product per row, written in place, no grid columns computed and dropped.
                for r in 0..self.rows {
                    let (b, c) = (&xs[r * self.ws..], &mut dst[r * self.cols..]);
                    lhs.mul_offsets(self.cols, b, &self.offs, c, n, init, false);
                }
                return;
            }
            with_scratch(m * self.n_grid, |grid| {
                lhs.mul_offsets(
                    self.n_grid,
                    xs,
                    &self.offs,
                    grid,
                    self.n_grid,
                    init,
                    threads,
                );
                for (out, grid) in dst.chunks_exact_mut(n).zip(grid.chunks_exact(self.n_grid)) {
                    for (o, r) in out.chunks_exact_mut(self.cols).enumerate() {
                        copy_short(r, &grid[o * self.ws..o * self.ws + self.cols]);
                    }
                }
            })
        })
    }
}

/// The weight of each group flipped and transposed for the implicit input gradient:
/// `[cg, og * kh * kw]` with element `(c, (o, ki, kj))` = `w[o, c, kh - 1 - ki, kw - 1 - kj]`.
fn weights_flipped(g: &ConvGeometry, d: &Dims, w: &[f32]) -> Vec<Lhs> {
    let khw = g.kh * g.kw;
    (0..g.p.groups)
        .map(|grp| {
            let wg = &w[grp * d.og * d.k..(grp + 1) * d.og * d.k];
            let mut a = vec![0f32; d.cg * d.og * khw];
            for c in 0..d.cg {
                for o in 0..d.og {
                    for t in 0..khw {
                        a[(c * d.og + o) * khw + t] = wg[o * d.k + c * khw + (khw - 1 - t)];
                    }
                }
            }
            Lhs::new(
                d.cg,
                d.og * khw,
                Mat {
                    data: &a,
                    rs: d.og * khw,
                    cs: 1,
                },
            )
        })
        .collect()
}

/// Forward of one image: `x` `[c_in, h, w]` into `y` `[c_out, N]`. `kept`, when given, is
/// this image's `[groups, K, N]` slice of the kept `col` (filled here); otherwise the
/// implicit product when there is one, or im2col into a scratch buffer. `threads`: split
/// each product over the rayon threads.
#[allow(clippy::too_many_arguments)]
fn fwd_image(
    g: &ConvGeometry,
    d: &Dims,
    x: &[f32],
    w: &[Lhs],
    bias: Option<&[f32]>,
    y: &mut [f32],
    kept: Option<&mut [f32]>,
    implicit: Option<&Implicit>,
    threads: bool,
) {
    match (kept, implicit) {
        (Some(cols), _) => fwd_image_with(g, d, x, w, bias, y, cols, d.k * d.n, threads),
        (None, Some(im)) => {
            for (grp, w) in w.iter().enumerate() {
                let src = &x[grp * d.cg * d.hw..(grp + 1) * d.cg * d.hw];
                let dst = &mut y[grp * d.og * d.n..(grp + 1) * d.og * d.n];
                let init = match bias {
                    Some(b) => Init::RowBias(&b[grp * d.og..(grp + 1) * d.og]),
                    None => Init::Zero,
                };
                im.mul(w, src, d.cg, dst, d.og, init, threads);
            }
        }
        (None, None) => {
            let scratch = if d.pointwise { 0 } else { d.k * d.n };
            with_scratch(scratch, |col| {
                fwd_image_with(g, d, x, w, bias, y, col, 0, threads)
            })
        }
    }
}

/// [`fwd_image`] with `col` holding group `grp`'s unfolded input at `grp * col_step`.
#[allow(clippy::too_many_arguments)]
fn fwd_image_with(
    g: &ConvGeometry,
    d: &Dims,
    x: &[f32],
    w: &[Lhs],
    bias: Option<&[f32]>,
    y: &mut [f32],
    cols: &mut [f32],
    col_step: usize,
    threads: bool,
) {
    for (grp, w) in w.iter().enumerate() {
        let src = &x[grp * d.cg * d.hw..(grp + 1) * d.cg * d.hw];
        let rhs = if d.pointwise {
            src
        } else {
            let col = &mut cols[grp * col_step..][..d.k * d.n];
            im2col(g, d, src, col);
            &*col
        };
        let dst = &mut y[grp * d.og * d.n..(grp + 1) * d.og * d.n];
        let init = match bias {
            Some(b) => Init::RowBias(&b[grp * d.og..(grp + 1) * d.og]),
            None => Init::Zero,
        };
        mul(w, d.n, rhs, dst, init, threads);
    }
}

/// The lengths of the input, the weight and the output of `g`.
fn lens(g: &ConvGeometry) -> (usize, usize, usize) {
    let len = |d: [usize; 4]| d.iter().product::<usize>();
    (
        len(g.input_dims()),
        len(g.weight_dims()),
        len(g.output_dims()),
    )
}

/// The weight of the convolution [`ConvGeometry::fold_avg_pool`] made from `g` and a
/// `pool` `(ph, pw)` window: `w` `[c_out, cg, kh, kw]` averaged over the window's shifts,
/// `wf[o, c, y, x] = sum over (qy, qx) of w[o, c, y - qy * sh, x - qx * sw] / (ph * pw)`
/// (terms outside `w` are zero), `[c_out, cg, kh + (ph - 1) * sh, kw + (pw - 1) * sw]`. The
/// bias stays as it is (the average of a constant).
///
/// ```
/// use convnets_kernels::{conv, Conv2dParams, ConvGeometry};
/// // A 1x1 kernel of 4 under a 2x2 average pool: a 2x2 kernel of ones with stride 2.
/// let g = ConvGeometry::new(&[1, 1, 4, 4], &[1, 1, 1, 1], None, &Conv2dParams::default())?;
/// assert_eq!(conv::avg_pool_folded_weight(&g, [2, 2], &[4.0])?, [1.0; 4]);
/// # Ok::<(), convnets_kernels::KernelError>(())
/// ```
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `w` does not have the length `g`
/// implies.
pub fn avg_pool_folded_weight(g: &ConvGeometry, pool: [usize; 2], w: &[f32]) -> Result<Vec<f32>> {
    let (_, w_len, _) = lens(g);
    check_len(w, w_len, "conv2d_avg_pool", "weight")?;
    let ([ph, pw], [sh, sw]) = (pool, g.p.stride);
    let (kh, kw) = (g.kh, g.kw);
    let (fh, fw) = (kh + (ph - 1) * sh, kw + (pw - 1) * sw);
    let scale = 1.0 / (ph * pw) as f32;
    let mut out = vec![0f32; w_len / (kh * kw) * fh * fw];
    for (src, dst) in w.chunks_exact(kh * kw).zip(out.chunks_exact_mut(fh * fw)) {
        for (qy, qx) in (0..ph).flat_map(|qy| (0..pw).map(move |qx| (qy, qx))) {
            for (y, row) in src.chunks_exact(kw).enumerate() {
                let at = (y + qy * sh) * fw + qx * sw;
                for (d, &v) in dst[at..at + kw].iter_mut().zip(row) {
                    *d += v * scale;
                }
            }
        }
    }
    Ok(out)
}

/// Convolution forward: `x` `[b, c_in, h, w]`, `w` `[c_out, cg, kh, kw]`, optional bias,
/// giving `[b, c_out, oh, ow]`. With `keep_col` (and unless the convolution is pointwise)
/// also returns the unfolded input `[b, groups, K, N]`, for [`conv2d_bwd_weight`] to reuse
/// (and then to [`give_col`]).
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when a slice does not have the
/// length `g` implies.
pub fn conv2d_fwd(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    keep_col: bool,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    conv2d_fwd_act(g, x, w, bias, keep_col, false)
}

/// [`conv2d_fwd`] followed by ReLU when `relu` (`max(y, 0)`, NaN kept, as
/// [`relu_fwd`](crate::relu::relu_fwd)): applied to each image's output right after its
/// product, while it is still in cache, instead of in a second pass over the whole batch.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when a slice does not have the
/// length `g` implies.
pub fn conv2d_fwd_act(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    keep_col: bool,
    relu: bool,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    let (x_len, w_len, _) = lens(g);
    check_len(x, x_len, "conv2d", "input")?;
    check_len(w, w_len, "conv2d", "weight")?;
    if let Some(b) = bias {
        check_len(b, g.c_out, "conv2d", "bias")?;
    }
    let d = Dims::new(g);
    if lanes::takes(g, &d) {
        return Ok((lanes::forward(g, &d, x, w, bias, relu), None));
    }
    let (x_img, y_img) = (g.c_in * d.hw, g.c_out * d.n);
    let col_img = g.p.groups * d.k * d.n;
    let keep = keep_col && !d.pointwise && g.b * col_img <= MAX_KEPT_COL;
    // Unfold only when the weight gradient will reuse the unfolded input; otherwise read the
    // input in place when the convolution allows it (several images per product where
    // `side_by_side` says so).
    let implicit = if keep {
        None
    } else {
        let im = Implicit::of_input(g, &d);
        if let Some(imgs) = side_by_side(g, d.n, &im) {
            return Ok((fwd_side_by_side(g, &d, &im, imgs, x, w, bias, relu), None));
        }
        Some(im).filter(|_| {
            !d.pointwise
                && (nt_gather_batches() || d.cg > PORTABLE_IMPLICIT_MIN_CG || g.p.stride != [1, 1])
        })
    };
    let im = implicit.as_ref();
    let mut kept = keep.then(|| take_col(g.b * col_img));
    let w = weights(g, &d, w, false);
    let w = &w[..];
    let act = |y: &mut [f32]| {
        if relu {
            for v in y {
                *v = relu1(*v);
            }
        }
    };
    let par = batch_parallel(g);
    let y = match &mut kept {
        Some(cols) => {
            let mut y = vec![0f32; g.b * y_img];
            if par {
                y.par_chunks_mut(y_img)
                    .zip(x.par_chunks(x_img))
                    .zip(cols.par_chunks_mut(col_img))
                    .for_each(|((y, x), c)| {
                        fwd_image(g, &d, x, w, bias, y, Some(c), im, false);
                        act(y);
                    });
            } else {
                for ((y, x), c) in y
                    .chunks_mut(y_img)
                    .zip(x.chunks(x_img))
                    .zip(cols.chunks_mut(col_img))
                {
                    fwd_image(g, &d, x, w, bias, y, Some(c), im, true);
                    act(y);
                }
            }
            y
        }
        None => zeroed_chunks(g.b, y_img, par, |i, y| {
            fwd_image(g, &d, &x[i * x_img..][..x_img], w, bias, y, None, im, !par);
            act(y);
        }),
    };
    Ok((y, kept))
}

/// Lanes of `gemm`'s widest `f32` vectors (AVX-512): a product whose column count is a
/// multiple of this, read from a row-major right operand, runs without `gemm` copying that
/// operand into packed panels first.
const GEMM_LANES: usize = 16;

/// Columns (output positions) the portable forward gathers into one product: see
/// [`side_by_side`].
const SIDE_BY_SIDE_COLS: usize = 256;

/// The largest output plane (positions) [`side_by_side`] takes: up to 32x32, where one image
/// fills a product and the gain is `gemm` reading the gathered rows without packing them
/// (forward at batch 64-256, two threads: LeNet-5's first layer 0.74 → 0.52 ms, MnistNet's
/// 0.24 → 0.19, SimpleCNN's 1.9 → 1.8, ResNet-20's stage 1 4.7 → 4.0; `cargo xtask bench
/// kernels --paths portable`, AMD EPYC Zen 4, 2026-12-06). Larger planes, not measured, keep
/// the per-image product.
const SIDE_BY_SIDE_MAX_N: usize = 1024;

/// Images per [`side_by_side_product`] for the portable forward (or input gradient, see
/// [`SIDE_BY_SIDE_DX_MAX_K`]) whose result planes have `out_plane` positions, the operand
/// read through `im`, or `None` where the convolution keeps its per-image products (AVX2 /
/// AVX-512 kernels, groups, planes over [`SIDE_BY_SIDE_MAX_N`] positions, one image per
/// thread or fewer).
///
/// Per image, a product over a small plane is narrow (LeNet-5's folded convolutions: 6 and
/// 16 output channels over 222 and 33 grid positions) and `gemm` spends as much time packing
/// its operands and dispatching as multiplying. Gathering several images' rows side by side
/// into one `[K, ld]` matrix makes one product of at least [`SIDE_BY_SIDE_COLS`] columns,
/// `ld` a multiple of [`GEMM_LANES`], which `gemm` reads in place (LeNet-5 inference 2.0-2.2
/// → 2.6-2.8 x 10^5 images/s).
fn side_by_side(g: &ConvGeometry, out_plane: usize, im: &Implicit) -> Option<usize> {
    let threads = rayon::current_num_threads().max(1);
    if nt_gather_batches() || g.p.groups != 1 || out_plane > SIDE_BY_SIDE_MAX_N || g.b < 2 * threads
    {
        return None;
    }
    Some(
        SIDE_BY_SIDE_COLS
            .div_ceil(im.n_grid)
            .min(g.b.div_ceil(threads)),
    )
}

/// The forward of [`side_by_side`]: see [`side_by_side_product`].
#[allow(clippy::too_many_arguments)]
fn fwd_side_by_side(
    g: &ConvGeometry,
    d: &Dims,
    im: &Implicit,
    imgs: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    // One group: `side_by_side` takes no other.
    let lhs = weights(g, d, w, false);
    let bias = |o: usize| bias.map_or(0.0, |b| b[o]);
    side_by_side_product(im, g.b, imgs, x, g.c_in, &lhs[0], &bias, relu)
}

/// `b` products of `lhs` `[m, K]` with the virtual unfolded operand of each image of `src`
/// (`planes` planes per image, padded and phase-split by `im`), `imgs` images at a time: each
/// image's `K` shifted rows of `n_grid` positions gathered at columns `i * n_grid` of one
/// `[K, ld]` matrix (`ld` rounded up to whole vectors, the extra columns zero), one product
/// `[m, ld]`, then `+ bias(row)` (and ReLU when `relu`) and the copy of each image's valid
/// positions into its `[m, rows * cols]`. Groups of images run in parallel.
#[allow(clippy::too_many_arguments)]
fn side_by_side_product(
    im: &Implicit,
    b: usize,
    imgs: usize,
    src: &[f32],
    planes: usize,
    lhs: &Lhs,
    bias: &(dyn Fn(usize) -> f32 + Sync),
    relu: bool,
) -> Vec<f32> {
    let (m, k, grid) = (lhs.m(), lhs.k(), im.n_grid);
    let (plane_in, n_out) = (
        (im.hp - 2 * im.pad[0]) * (im.wp - 2 * im.pad[1]),
        im.rows * im.cols,
    );
    let (src_img, dst_img) = (planes * plane_in, m * n_out);
    let ld = (imgs * grid).next_multiple_of(GEMM_LANES);
    let padded = if im.in_place() {
        0
    } else {
        im.padded_len(planes)
    };
    let offs: Vec<usize> = (0..k).map(|kk| kk * ld).collect();
    zeroed_len_chunks(b * dst_img, imgs * dst_img, true, |grp, y| {
        let count = y.len() / dst_img;
        let first = grp * imgs;
        with_scratch(k * ld + m * ld + padded, |s| {
            let (col, s) = s.split_at_mut(k * ld);
            let (out, xp) = s.split_at_mut(m * ld);
            for i in 0..count {
                let src = &src[(first + i) * src_img..][..src_img];
                let xs: &[f32] = if padded > 0 {
                    im.pad_into(src, planes, xp);
                    xp
                } else {
                    src
                };
                for (row, &o) in col.chunks_exact_mut(ld).zip(&im.offs) {
                    row[i * grid..][..grid].copy_from_slice(&xs[o..o + grid]);
                }
            }
            let cols = (count * grid).next_multiple_of(GEMM_LANES);
            for row in col.chunks_exact_mut(ld) {
                row[count * grid..cols].fill(0.0);
            }
            lhs.mul_offsets(cols, col, &offs, out, ld, Init::Zero, false);
            for (i, y) in y.chunks_exact_mut(dst_img).enumerate() {
                for (o, y) in y.chunks_exact_mut(n_out).enumerate() {
                    let b = bias(o);
                    let out = &out[o * ld + i * grid..][..grid];
                    for (y, src) in y.chunks_exact_mut(im.cols).zip(out.chunks(im.ws)) {
                        for (y, &v) in y.iter_mut().zip(&src[..im.cols]) {
                            *y = if relu { relu1(v + b) } else { v + b };
                        }
                    }
                }
            }
        })
    })
}

/// A batch output of `n` chunks of `chunk` floats, chunk `i` zeroed and then filled by
/// `f(i, chunk)` on the thread that runs it (in parallel when `par`): the zeros go into
/// lines the kernel is about to write, in its cache, instead of a `calloc` memset of the
/// whole batch on the calling thread first (a serial pass over memory while the other
/// threads wait: 10 % of a ResNet-20 step in `perf` when this VM's memory fills were slow;
/// no difference measurable when they were not).
fn zeroed_chunks(
    n: usize,
    chunk: usize,
    par: bool,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    zeroed_len_chunks(n * chunk, chunk, par, f)
}

/// [`zeroed_chunks`] of `len` floats in all: the last chunk holds what is left, `len % chunk`
/// floats when that is not 0.
fn zeroed_len_chunks(
    len: usize,
    chunk: usize,
    par: bool,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    assert!(chunk > 0 || len == 0, "zeroed_len_chunks: empty chunks");
    let mut v: Vec<f32> = Vec::with_capacity(len);
    if chunk > 0 {
        let fill = |(i, c): (usize, &mut [MaybeUninit<f32>])| {
            for e in c.iter_mut() {
                e.write(0.0);
            }
            // SAFETY: every element of `c` was written just above; `MaybeUninit<f32>` and
            // `f32` have the same layout.
            let c = unsafe { &mut *(c as *mut [MaybeUninit<f32>] as *mut [f32]) };
            f(i, c)
        };
        let spare = &mut v.spare_capacity_mut()[..len];
        if par {
            spare.par_chunks_mut(chunk).enumerate().for_each(fill);
        } else {
            spare.chunks_mut(chunk).enumerate().for_each(fill);
        }
    }
    // SAFETY: the chunks cover the first `len` elements and each was written in full above
    // (with `chunk == 0`, `len` is 0, asserted); a panic in `f` leaves `v` empty and unwinds past this.
    unsafe { v.set_len(len) };
    v
}

/// Input gradient of one image: `dy` `[c_out, N]` into `dx` `[c_in, h, w]` (overwritten);
/// `wt` is the transposed weight of each group.
fn bwd_input_image(
    g: &ConvGeometry,
    d: &Dims,
    dy: &[f32],
    wt: &[Lhs],
    dx: &mut [f32],
    threads: bool,
) {
    let scratch = if d.pointwise { 0 } else { d.k * d.n };
    if !d.pointwise {
        dx.fill(0.0);
    }
    with_scratch(scratch, |col| {
        for (grp, wt) in wt.iter().enumerate() {
            let dst = &mut dx[grp * d.cg * d.hw..(grp + 1) * d.cg * d.hw];
            let dy = &dy[grp * d.og * d.n..(grp + 1) * d.og * d.n];
            if d.pointwise {
                mul(wt, d.n, dy, dst, Init::Zero, threads);
            } else {
                mul(wt, d.n, dy, col, Init::Zero, threads);
                col2im(g, d, col, dst);
            }
        }
    })
}

/// Gradient of the convolution with respect to its input: `dy` `[b, c_out, oh, ow]` and
/// `w` give `dx` `[b, c_in, h, w]`.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when a slice does not have the
/// length `g` implies.
pub fn conv2d_bwd_input(g: &ConvGeometry, dy: &[f32], w: &[f32]) -> Result<Vec<f32>> {
    let (_, w_len, y_len) = lens(g);
    check_len(dy, y_len, "conv2d input grad", "output gradient")?;
    check_len(w, w_len, "conv2d input grad", "weight")?;
    let d = Dims::new(g);
    if lanes::takes_input_grad(g, &d) {
        return Ok(lanes::input_grad(g, &d, dy, w));
    }
    let (x_img, y_img) = (g.c_in * d.hw, g.c_out * d.n);
    // The implicit product when the padding it needs is no larger than the convolution's
    // own (3x3 "same"); with less padding (a 5x5 "valid" convolution) it would mostly
    // multiply zeros, and im2col + col2im is cheaper.
    let implicit = Implicit::input_grad(g, &d)
        .filter(|im| im.pad[0] <= g.p.padding[0] && im.pad[1] <= g.p.padding[1]);
    // The portable path's products over several images (see `side_by_side`), where they
    // pay (see `SIDE_BY_SIDE_DX_MAX_K`).
    let dx_sbs = d.og * g.kh * g.kw <= SIDE_BY_SIDE_DX_MAX_K && d.cg > PORTABLE_IMPLICIT_MIN_CG;
    if let Some(im) = implicit.as_ref().filter(|_| dx_sbs) {
        if let Some(imgs) = side_by_side(g, d.hw, im) {
            let wf = weights_flipped(g, &d, w);
            let dx = side_by_side_product(im, g.b, imgs, dy, g.c_out, &wf[0], &|_| 0.0, false);
            return Ok(dx);
        }
    }
    let implicit = implicit.filter(|_| {
        nt_gather_batches()
            || (d.cg > PORTABLE_IMPLICIT_MIN_CG && d.hw >= PORTABLE_IMPLICIT_DX_MIN_HW)
    });
    let par = batch_parallel(g);
    if let Some(im) = &implicit {
        let wf = weights_flipped(g, &d, w);
        let image = |(dx, dy): (&mut [f32], &[f32]), threads: bool| {
            for (grp, wf) in wf.iter().enumerate() {
                let src = &dy[grp * d.og * d.n..(grp + 1) * d.og * d.n];
                let dst = &mut dx[grp * d.cg * d.hw..(grp + 1) * d.cg * d.hw];
                im.mul(wf, src, d.og, dst, d.cg, Init::Zero, threads);
            }
        };
        return Ok(zeroed_chunks(g.b, x_img, par, |i, dx| {
            image((dx, &dy[i * y_img..][..y_img]), !par)
        }));
    }
    let wt = weights(g, &d, w, true);
    Ok(zeroed_chunks(g.b, x_img, par, |i, dx| {
        bwd_input_image(g, &d, &dy[i * y_img..][..y_img], &wt, dx, !par)
    }))
}

/// The input gradient on the portable path runs as [`side_by_side_product`]s (the
/// flipped weight `[c_in, c_out * kh * kw]` over the padded output gradient) where the
/// gathered operand has at most this many rows and the result more than
/// [`PORTABLE_IMPLICIT_MIN_CG`] channels: ResNet-20's stage 1 and 2 (4.7 → 4.1 and 4.5 → 3.9
/// ms at batch 128), seed 001's 12x12 layers (10-20 % faster). With 64 or more output
/// channels (576+ rows: ResNet-20's stage 3, SimpleCNN's conv2 and conv3) the unfolded
/// product and `col2im` stayed faster, 5-30 %; with 3 input channels (SimpleCNN's first
/// layer) the product of 3 rows was twice as slow (`cargo xtask bench kernels --paths
/// portable`, two alternating runs, AMD EPYC Zen 4, 2026-12-06).
const SIDE_BY_SIDE_DX_MAX_K: usize = 288;

/// On the portable path the implicit product is not in place: `gemm` wants one row stride,
/// so the virtual unfolded rows are gathered (on the padded width, with the columns past the
/// image computed and dropped), and only where that beats im2col does it run. Forward: more
/// than this many input channels per group, or strided (im2col's strided copies are scalar:
/// LeNet-5's folded 6x6 stride-2 first layer made inference 25 % slower unfolded). Stride 1
/// and few channels unfold: SimpleCNN's first layer, 3 channels, 2.4 → 1.9 ms at batch 128;
/// MnistNet's first 0.27 → 0.24 ms; ResNet-20's 3x3 layers stay implicit, 10-40 % faster.
const PORTABLE_IMPLICIT_MIN_CG: usize = 4;

/// Input gradient on the portable path: implicit (see [`PORTABLE_IMPLICIT_MIN_CG`]) only
/// for input planes of at least this many positions, where im2col's unfolded gradient no
/// longer fits the cache (ResNet-20's stage 1, 32x32, 5.2 → 4.1 ms). At 16x16 and 8x8 the
/// unfolded product and `col2im` were as fast or up to 1.3x faster: SimpleCNN's conv2 and
/// conv3 9.0 → 7.0 and 8.5 → 6.6 ms, ResNet-20's stage 3 4.4 → 3.8 ms (`cargo xtask bench
/// kernels --paths portable`, two runs each way, AMD EPYC Zen 4, 2026-12-05).
const PORTABLE_IMPLICIT_DX_MIN_HW: usize = 1024;

/// Floats of padded input plus spread output gradient that one call of [`gemm_nt_gather`]
/// sums over (several images where the kernel takes them): about 512 KiB, within L2.
const NT_CHUNK_FLOATS: usize = 1 << 17;

/// [`bwd_weight_images`] without unfolding: each image is padded once and the product reads
/// its shifted windows (see [`Implicit`]), with the output gradient spread over the padded
/// width (zeros in the dropped columns). Returns `false`, doing nothing, where the dot
/// kernels do not pay ([`nt_dot_pays`]: shapes on the portable path; the caller unfolds
/// instead).
fn bwd_weight_implicit(
    g: &ConvGeometry,
    d: &Dims,
    im: &Implicit,
    x: &[f32],
    dy: &[f32],
    (i0, i1): (usize, usize),
    dw: &mut [f32],
) -> bool {
    let (x_img, y_img) = (g.c_in * d.hw, g.c_out * d.n);
    let (ws, ow) = (im.ws, im.cols);
    let padded = !im.in_place();
    if !nt_dot_pays(d.k) {
        return false;
    }
    let (xp_len, dyg_len) = (im.padded_len(d.cg), d.og * im.n_grid);
    // Images per product: as many as fit the chunk (the horizontal reductions and block
    // set-up then happen once per chunk, not per image).
    let chunk = (NT_CHUNK_FLOATS / (xp_len + dyg_len)).clamp(1, (i1 - i0).max(1));
    with_scratch(if padded { chunk * xp_len } else { 0 }, |xp| {
        with_scratch(chunk * dyg_len, |dyg| {
            // The dropped columns stay zero; every image overwrites the others.
            dyg.fill(0.0);
            for grp in 0..g.p.groups {
                for c0 in (i0..i1).step_by(chunk) {
                    let cnt = (i1 - c0).min(chunk);
                    for t in 0..cnt {
                        let i = c0 + t;
                        if padded {
                            let src = &x[i * x_img + grp * d.cg * d.hw..][..d.cg * d.hw];
                            im.pad_into(src, d.cg, &mut xp[t * xp_len..(t + 1) * xp_len]);
                        }
                        let dy = &dy[i * y_img + grp * d.og * d.n..][..d.og * d.n];
                        let spread = &mut dyg[t * dyg_len..(t + 1) * dyg_len];
                        for (row, dy) in
                            spread.chunks_exact_mut(im.n_grid).zip(dy.chunks_exact(d.n))
                        {
                            for (r, dy) in row.chunks_mut(ws).zip(dy.chunks_exact(ow)) {
                                r[..ow].copy_from_slice(dy);
                            }
                        }
                    }
                    let (xs, b_img): (&[f32], usize) = if padded {
                        (&xp[..cnt * xp_len], xp_len)
                    } else {
                        (&x[c0 * x_img + grp * d.cg * d.hw..], x_img)
                    };
                    let batch = NtBatch {
                        imgs: cnt,
                        a_img: dyg_len,
                        b_img,
                    };
                    let dw = &mut dw[grp * d.og * d.k..(grp + 1) * d.og * d.k];
                    gemm_nt_gather(
                        d.og, d.k, im.n_grid, batch, dyg, im.n_grid, xs, &im.offs, dw, d.k,
                    );
                }
            }
        })
    });
    true
}

/// The fewest input channels (per group) for [`bwd_weight_taps`]: each tap's product has
/// that many columns, and with fewer the many small products cost more than unfolding
/// (LeNet-5's folded 6x6 layers, 1 and 6 channels over 36 taps: its portable training step
/// 1.6x slower by taps).
const TAP_MIN_CG: usize = 8;

/// [`bwd_weight_images`] on the portable path without unfolding: one `gemm` product per
/// kernel tap, `dw[:, :, tap] += dy @ window(tap)^T`, whose rows (one per input plane) lie
/// in the padded input at one stride, read in place. The output gradient goes in transposed
/// (`[positions, c_out]`, `gemm`'s fast layout) and spread over the padded width (zeros in
/// the dropped columns). Returns `false`, doing nothing, on the vector paths, for shapes the
/// dot kernels take ([`nt_dot_pays`]) and for fewer than [`TAP_MIN_CG`] input channels.
fn bwd_weight_taps(
    g: &ConvGeometry,
    d: &Dims,
    im: &Implicit,
    x: &[f32],
    dy: &[f32],
    (i0, i1): (usize, usize),
    dw: &mut [f32],
) -> bool {
    if nt_dot_pays(d.k) || d.cg < TAP_MIN_CG {
        return false;
    }
    let (x_img, y_img) = (g.c_in * d.hw, g.c_out * d.n);
    let taps = g.kh * g.kw;
    // A tap's rows, one per input plane (at least TAP_MIN_CG of them), lie this far apart.
    let stride = im.offs[taps] - im.offs[0];
    let padded = !im.in_place();
    let (xp_len, n_grid, ow) = (im.padded_len(d.cg), im.n_grid, im.cols);
    with_scratch(if padded { xp_len } else { 0 }, |xp| {
        with_scratch(n_grid * d.og + taps * d.cg * d.og, |scratch| {
            let (dyt, acc) = scratch.split_at_mut(n_grid * d.og);
            // The dropped columns stay zero; every image overwrites the rest.
            dyt.fill(0.0);
            for grp in 0..g.p.groups {
                acc.fill(0.0);
                for i in i0..i1 {
                    let src = &x[i * x_img + grp * d.cg * d.hw..][..d.cg * d.hw];
                    let xs: &[f32] = if padded {
                        im.pad_into(src, d.cg, xp);
                        xp
                    } else {
                        src
                    };
                    let dy = &dy[i * y_img + grp * d.og * d.n..][..d.og * d.n];
                    // Row r of the output, [og, ow], transposed to positions r * ws.. of dyt.
                    for r in 0..im.rows {
                        let src = Mat {
                            data: &dy[r * ow..],
                            rs: 1,
                            cs: d.n,
                        };
                        relayout(src, ow, d.og, &mut dyt[r * im.ws * d.og..][..ow * d.og]);
                    }
                    let lhs = Mat {
                        data: dyt,
                        rs: 1,
                        cs: d.og,
                    };
                    for (t, acc) in acc.chunks_exact_mut(d.cg * d.og).enumerate() {
                        let rhs = Mat {
                            data: &xs[im.offs[t]..],
                            rs: 1,
                            cs: stride,
                        };
                        sgemm_acc_col_major(d.og, d.cg, n_grid, acc, lhs, rhs);
                    }
                }
                // acc[tap][c][o] into dw[o][c][tap].
                let dw = &mut dw[grp * d.og * d.k..(grp + 1) * d.og * d.k];
                for (t, acc) in acc.chunks_exact(d.cg * d.og).enumerate() {
                    for (c, acc) in acc.chunks_exact(d.og).enumerate() {
                        for (o, v) in acc.iter().enumerate() {
                            dw[o * d.k + c * taps + t] += *v;
                        }
                    }
                }
            }
        })
    });
    true
}

/// Adds the weight gradient of images `i0..i1` into `dw` `[c_out, K]`; `kept` is the
/// forward's unfolded input `[b, groups, K, N]` when it kept it.
#[allow(clippy::too_many_arguments)]
fn bwd_weight_images(
    g: &ConvGeometry,
    d: &Dims,
    x: &[f32],
    dy: &[f32],
    kept: Option<&[f32]>,
    (i0, i1): (usize, usize),
    dw: &mut [f32],
) {
    let (x_img, y_img) = (g.c_in * d.hw, g.c_out * d.n);
    let col_img = g.p.groups * d.k * d.n;
    if kept.is_none() {
        if let Some(im) = Implicit::forward(g, d) {
            if bwd_weight_implicit(g, d, &im, x, dy, (i0, i1), dw)
                || bwd_weight_taps(g, d, &im, x, dy, (i0, i1), dw)
            {
                return;
            }
        }
    }
    let unfold = !d.pointwise && kept.is_none();
    with_scratch(if unfold { d.k * d.n } else { 0 }, |scratch| {
        for i in i0..i1 {
            let x = &x[i * x_img..(i + 1) * x_img];
            let dy = &dy[i * y_img..(i + 1) * y_img];
            for grp in 0..g.p.groups {
                let col: &[f32] = if d.pointwise {
                    &x[grp * d.cg * d.hw..(grp + 1) * d.cg * d.hw]
                } else if let Some(kept) = kept {
                    &kept[i * col_img + grp * d.k * d.n..][..d.k * d.n]
                } else {
                    im2col(
                        g,
                        d,
                        &x[grp * d.cg * d.hw..(grp + 1) * d.cg * d.hw],
                        scratch,
                    );
                    &*scratch
                };
                let dy = &dy[grp * d.og * d.n..(grp + 1) * d.og * d.n];
                let dw = &mut dw[grp * d.og * d.k..(grp + 1) * d.og * d.k];
                gemm_nt(d.og, d.k, d.n, dy, d.n, col, d.n, dw, d.k);
            }
        }
    })
}

/// Gradient of the convolution with respect to its weight: `x` and `dy` give `dw`
/// `[c_out, cg, kh, kw]`. `kept` is the unfolded input [`conv2d_fwd`] returned, if any
/// (one of another length is ignored).
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when a slice does not have the
/// length `g` implies.
pub fn conv2d_bwd_weight(
    g: &ConvGeometry,
    x: &[f32],
    dy: &[f32],
    kept: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let (x_len, _, y_len) = lens(g);
    check_len(x, x_len, "conv2d weight grad", "input")?;
    check_len(dy, y_len, "conv2d weight grad", "output gradient")?;
    let d = Dims::new(g);
    if lanes::takes_weight_grad(g, &d) {
        return Ok(lanes::weight_grad(g, &d, x, dy));
    }
    let col_img = g.p.groups * d.k * d.n;
    let kept = kept.filter(|c| !d.pointwise && c.len() == g.b * col_img);
    let dw_len = g.c_out * d.k;
    // Each thread sums a contiguous range of images; the partial sums are added in order,
    // so the result does not depend on scheduling.
    let parts = rayon::current_num_threads().min(g.b).max(1);
    let per = g.b.div_ceil(parts);
    let partials: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let mut dw = vec![0f32; dw_len];
            let range = (part * per, ((part + 1) * per).min(g.b));
            bwd_weight_images(g, &d, x, dy, kept, range, &mut dw);
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
    Ok(dw)
}

/// Gradient of the bias: `dy` `[b, c_out, oh, ow]` summed over batch and positions.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `dy` does not have the length
/// `g` implies.
pub fn conv2d_bwd_bias(g: &ConvGeometry, dy: &[f32]) -> Result<Vec<f32>> {
    check_len(dy, lens(g).2, "conv2d bias grad", "output gradient")?;
    let n = g.oh * g.ow;
    let y_img = g.c_out * n;
    let sum_image = |dy: &[f32]| -> Vec<f32> {
        dy.chunks_exact(n)
            .map(|row| row.iter().sum::<f32>())
            .collect()
    };
    // Per-image sums in parallel, then added in image order: the same numbers on every run
    // (a rayon `reduce` would associate them in an order that depends on work stealing).
    let per_image: Vec<Vec<f32>> = dy.par_chunks(y_img).map(sum_image).collect();
    let mut db = vec![0f32; g.c_out];
    for s in &per_image {
        for (a, b) in db.iter_mut().zip(s) {
            *a += *b;
        }
    }
    Ok(db)
}
