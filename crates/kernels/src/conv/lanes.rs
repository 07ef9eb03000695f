//! Convolutions over small planes with the batch in the vector lanes.
//!
//! Per image, the implicit product over a small plane is short and wasteful: a 4x4 map
//! padded to 6x6 has 22 grid positions of which 16 are kept, a 16-float vector and a
//! masked one per row, and every image sets up its own blocks. With the batch innermost —
//! each thread copying its share of the images once into `[planes, hp, wp, images]` (the
//! padded "CHWN" layout) — a shift by a kernel tap moves every image alike, so output row
//! `r` of all those images is one product `[c_out, K] @ [K, ow * images]` whose right
//! operand's rows are contiguous runs of the copy (read in place by the AVX2 / AVX-512
//! kernels, gathered for `gemm` on the portable path; no grid columns dropped), and the
//! weight gradient is dot products of `ow * images` floats summed over the output rows
//! (on the portable path one `gemm` product per kernel tap over a channels-last copy,
//! [`weight_grad_taps`]). The copies in and out are 8 x 8 transposes. Each thread works on
//! its own images from copy to copy-back, with no barrier between the steps and its
//! operands in its own cache (splitting each step over the threads instead, with a barrier
//! after each, was 10-20 % slower over a seed 001 residual-net step).

use super::{weights, weights_flipped, zeroed_len_chunks, Dims};
use crate::gemm::{
    gemm_nt_gather, nt_gather_batches, sgemm_acc_col_major, with_scratch, Init, Lhs, Mat, NtBatch,
};
use crate::relu::relu1;
use crate::ConvGeometry;
use rayon::prelude::*;

/// The fewest images for the batch-in-lanes products (one AVX-512 vector of them).
const MIN_BATCH: usize = 16;
/// The fewest input channels: with one to three the products have too few rows to pay for
/// the copies (the first layers of LeNet-5, MnistNet, SimpleCNN and seed 001's nets: 1.5-3x
/// slower in lanes).
const MIN_CG: usize = 4;
/// The largest output plane (positions) of the forward and the input gradient in lanes. Up
/// to 12x12 they were as fast or faster (seed 001's 4x4 block 0.23 → 0.14-0.18 ms forward,
/// 0.25 → 0.17-0.20 input gradient; 8x8 planes of 64 channels 10-15 % faster; 12x12 "same"
/// layers level or faster); at 16x16 and 32x32 slower (ResNet-20's stage 2 3.25 → 3.45-3.55
/// ms forward, stage 1 3.3 → 4.4), where the per-image product already fills its vectors
/// and keeps its image in cache.
const MAX_PLANE: usize = 144;
/// The largest output plane of the weight gradient in lanes: at 16x16 still faster
/// (ResNet-20's stage 2 4.3-4.9 → 3.2-3.5 ms), at 32x32 slower (stage 1 3.6-3.9 → 4.0-4.1).
/// Measured with `cargo xtask bench kernels --paths avx512` and `--paths avx2` (batch
/// 64-128, two threads, AMD EPYC Zen 4, 2026-12-06, alternating runs).
const MAX_PLANE_DW: usize = 256;

/// The most input channels of an input gradient in lanes on the portable path, where the
/// product runs in `gemm` on rows gathered first: with 64 (ResNet-20's stage 3, SimpleCNN's
/// conv3) the per-image product stayed as fast or faster.
const PORTABLE_MAX_DX_CG: usize = 32;

/// The fewest input channels of a weight gradient in lanes on the portable path: they are
/// the rows of its `gemm` products, and with fewer the products are too thin (LeNet-5's
/// conv2, 6 channels: 1.5 → 2.0-2.1 ms; MnistNet's, 10 channels, 0.81 → 0.63-0.64 ms).
const PORTABLE_DW_MIN_CG: usize = 8;
/// Output channels of a weight gradient in lanes on the portable path: fewer than this.
/// With 64 and more the per-image products ([`super::bwd_weight_taps`]) already fill
/// `gemm`'s widest register block and stayed as fast or faster (ResNet-20's stage 3, 64 x
/// 8x8: 4.0 against 4.2-4.3 ms; SimpleCNN's conv3); with fewer the lanes products are
/// 1.2-2x faster (seed 001's Inception net: conv2 4.5-4.9 → 2.7-3.0 ms, 5x5 branch 2.1-2.3 →
/// 1.2 ms, 3x3 branch 0.75-0.86 → 0.44-0.46 ms; its residual net's 4x4 block 0.19 → 0.15 ms;
/// at 16x16 slower: ResNet-20's stage 2 3.5-3.8 → 4.5 ms; `cargo xtask bench kernels
/// --paths portable`, AMD EPYC Zen 4, 2026-12-06, alternating runs).
const PORTABLE_DW_MAX_OG: usize = 64;

/// The shapes the batch-in-lanes products take, output planes up to `max_plane`.
fn shape_takes(g: &ConvGeometry, d: &Dims, max_plane: usize) -> bool {
    g.p.groups == 1
        && g.p.stride == [1, 1]
        && !d.pointwise
        && g.b >= MIN_BATCH
        && d.cg >= MIN_CG
        && d.n <= max_plane
}

/// Whether the forward runs with the batch in the lanes.
pub(super) fn takes(g: &ConvGeometry, d: &Dims) -> bool {
    shape_takes(g, d, MAX_PLANE)
}

/// Whether the weight gradient runs with the batch in the lanes: up to 16x16 outputs with
/// the AVX2 / AVX-512 dot-product kernels ([`weight_grad_dots`]); on the portable path
/// ([`weight_grad_taps`], `gemm` products) up to 12x12, with [`PORTABLE_DW_MIN_CG`] to
/// [`PORTABLE_DW_MAX_OG`] channels.
pub(super) fn takes_weight_grad(g: &ConvGeometry, d: &Dims) -> bool {
    if nt_gather_batches() {
        shape_takes(g, d, MAX_PLANE_DW)
    } else {
        shape_takes(g, d, MAX_PLANE) && d.cg >= PORTABLE_DW_MIN_CG && d.og < PORTABLE_DW_MAX_OG
    }
}

/// Whether the input gradient runs with the batch in the lanes: [`takes`] and a "same"
/// padding (the flipped product's padding `(k - 1) * d - p` at most `p`: no product of
/// mostly zeros); on the portable path at most [`PORTABLE_MAX_DX_CG`] input channels.
pub(super) fn takes_input_grad(g: &ConvGeometry, d: &Dims) -> bool {
    let p = &g.p;
    let q = |k: usize, dil: usize| (k - 1) * dil;
    takes(g, d)
        && (nt_gather_batches() || d.cg <= PORTABLE_MAX_DX_CG)
        && q(g.kh, p.dilation[0]) <= 2 * p.padding[0]
        && q(g.kw, p.dilation[1]) <= 2 * p.padding[1]
}

/// 8 x 8 tiles of the layout copies: `dst[d[j] + i] = src[s[i] + j]` for `i, j < 8`
/// (with ReLU when `relu`), in AVX2 on the AVX2 and AVX-512 paths, scalar on the portable
/// one.
#[derive(Clone, Copy)]
struct Tiles {
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
}

impl Tiles {
    fn new() -> Self {
        Self {
            #[cfg(target_arch = "x86_64")]
            avx2: nt_gather_batches() && crate::isa::Isa::Avx2.supported(),
        }
    }

    #[inline]
    fn tile(self, src: &[f32], s: &[usize; 8], dst: &mut [f32], d: &[usize; 8], relu: bool) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            return crate::avx2::transpose8(src, s, dst, d, relu);
        }
        // Whole rows in and out as fixed-size arrays: one bounds check per row, not per
        // element (the tiles' share of seed 001's Inception step on this path 9.0 → 8.1 %,
        // `perf`).
        let mut t = [[0f32; 8]; 8];
        for (row, &s) in t.iter_mut().zip(s) {
            *row = *<&[f32; 8]>::try_from(&src[s..s + 8]).expect("8 floats");
        }
        for (j, &d) in d.iter().enumerate() {
            let out = <&mut [f32; 8]>::try_from(&mut dst[d..d + 8]).expect("8 floats");
            for (o, row) in out.iter_mut().zip(&t) {
                *o = if relu { relu1(row[j]) } else { row[j] };
            }
        }
    }
}

/// `dst[dpos[p] + n] = src[n * img + p]` for `n < rows` (images), `p < dpos.len()`
/// (positions, `dpos` their offsets in `dst`): `src`'s rows are images with their positions
/// contiguous, and each position's images are contiguous in `dst`. With `flip`, the other
/// way round: `dst[n * img + p] = src[dpos[p] + n]`. 8 x 8 tiles in `tiles`, the edges scalar.
#[allow(clippy::too_many_arguments)]
fn scatter(
    tiles: Tiles,
    src: &[f32],
    img: usize,
    rows: usize,
    dpos: &[usize],
    dst: &mut [f32],
    flip: bool,
    relu: bool,
) {
    const T: usize = 8;
    let (np, full_n, full_p) = (dpos.len(), rows / T * T, dpos.len() / T * T);
    for n0 in (0..full_n).step_by(T) {
        for p0 in (0..full_p).step_by(T) {
            let by_img: [usize; 8] = std::array::from_fn(|i| (n0 + i) * img + p0);
            let by_pos: [usize; 8] = std::array::from_fn(|j| dpos[p0 + j] + n0);
            if flip {
                tiles.tile(src, &by_pos, dst, &by_img, relu);
            } else {
                tiles.tile(src, &by_img, dst, &by_pos, relu);
            }
        }
    }
    let act = |v: f32| if relu { relu1(v) } else { v };
    // The edges: images past the last full tile, positions past the last full tile.
    let edge = (0..rows)
        .flat_map(|n| (full_p..np).map(move |p| (n, p)))
        .chain((full_n..rows).flat_map(|n| (0..full_p).map(move |p| (n, p))));
    for (n, p) in edge {
        if flip {
            dst[n * img + p] = act(src[dpos[p] + n]);
        } else {
            dst[dpos[p] + n] = act(src[n * img + p]);
        }
    }
}

/// The padded lanes layout of `b` images of `planes` planes of `h x w`.
#[derive(Clone, Copy)]
struct Layout {
    b: usize,
    planes: usize,
    h: usize,
    w: usize,
    pad: [usize; 2],
    /// Zero columns after the right padding (the output gradient spread over the input's
    /// padded width).
    right: usize,
    /// The kernel `[kh, kw]` and its dilation, read over this layout.
    kernel: [usize; 2],
    dil: [usize; 2],
}

impl Layout {
    fn hp(&self) -> usize {
        self.h + 2 * self.pad[0]
    }
    fn wp(&self) -> usize {
        self.w + 2 * self.pad[1] + self.right
    }
    fn len(&self) -> usize {
        self.planes * self.hp() * self.wp() * self.b
    }

    /// `src` `[b, planes, h, w]` into `dst` `[planes, hp, wp, b]` (`len()` floats, any
    /// contents before), zero borders.
    fn fill(&self, src: &[f32], dst: &mut [f32]) {
        let (b, hw) = (self.b, self.h * self.w);
        let (img, pos, tiles) = (self.planes * hw, self.positions(b), Tiles::new());
        for (c, dst) in dst[..self.len()]
            .chunks_exact_mut(self.hp() * self.wp() * b)
            .enumerate()
        {
            self.zero_border(dst, b);
            scatter(tiles, &src[c * hw..], img, b, &pos, dst, false, false)
        }
    }

    /// `src` `[b, planes, h, w]` into `dst` `[hp, wp, b, planes]` (channels last, `len()`
    /// floats, any contents before), zero borders.
    fn fill_last(&self, src: &[f32], dst: &mut [f32]) {
        let (planes, hw) = (self.planes, self.h * self.w);
        let dst = &mut dst[..self.len()];
        self.zero_border(dst, self.b * planes);
        let (mut pos, tiles) = (self.positions(self.b * planes), Tiles::new());
        for img in src.chunks_exact(planes * hw).take(self.b) {
            scatter(tiles, img, hw, planes, &pos, dst, false, false);
            pos.iter_mut().for_each(|p| *p += planes);
        }
    }

    /// Offsets in one padded plane of the `h x w` positions, `unit` floats per position.
    fn positions(&self, unit: usize) -> Vec<usize> {
        let ([ph, pw], wp) = (self.pad, self.wp());
        (0..self.h * self.w)
            .map(|p| ((p / self.w + ph) * wp + p % self.w + pw) * unit)
            .collect()
    }

    /// Zeroes the border of one padded plane `dst`, `unit` floats per position: whole rows
    /// above and below, `pw` positions at the start of the rows between and `pw + right` at
    /// their end.
    fn zero_border(&self, dst: &mut [f32], unit: usize) {
        let ([ph, pw], row) = (self.pad, self.wp() * unit);
        let (left, right) = (pw * unit, (pw + self.right) * unit);
        dst[..ph * row].fill(0.0);
        dst[(ph + self.h) * row..].fill(0.0);
        if right > 0 {
            for r in dst[ph * row..(ph + self.h) * row].chunks_exact_mut(row) {
                r[..left].fill(0.0);
                r[row - right..].fill(0.0);
            }
        }
    }

    /// Offsets of the rows `(plane, ki, kj)` of the virtual unfolded operand.
    fn offsets(&self) -> Vec<usize> {
        let ([kh, kw], dil) = (self.kernel, self.dil);
        let (hp, wp) = (self.hp(), self.wp());
        let mut offs = Vec::with_capacity(self.planes * kh * kw);
        for c in 0..self.planes {
            for ki in 0..kh {
                for kj in 0..kw {
                    offs.push(((c * hp + ki * dil[0]) * wp + kj * dil[1]) * self.b);
                }
            }
        }
        offs
    }
}

/// Result rows `[rows, m, cols, b]` (row `r` of every plane of every image) into `dst`
/// `[b, m, rows, cols]`, with ReLU when `relu`.
fn unfill(src: &[f32], (m, rows, cols): (usize, usize, usize), relu: bool, dst: &mut [f32]) {
    let img = m * rows * cols;
    let b = dst.len() / img;
    let pos: Vec<usize> = (0..img)
        .map(|p| {
            let (o, r, x) = (p / (rows * cols), p / cols % rows, p % cols);
            ((r * m + o) * cols + x) * b
        })
        .collect();
    scatter(Tiles::new(), src, img, b, &pos, dst, true, relu)
}

/// The most images per chunk, so that a chunk's copies stay near the core's caches (a few
/// MB) at large batches: inference at batch 1000 had chunks of 500 images without it, and
/// ran seed 001's residual net at 23-27 against 36 x 10^3 images/s with it, its Inception
/// net at 8.7 against 11-12 x 10^3, SimpleCNN at 6.1-6.2 against 7.0-7.2 x 10^3 (`cargo
/// xtask bench --isa avx512 --no-torch`, two alternating runs); training (chunks of 32 and
/// 64 either way) the same.
const MAX_CHUNK: usize = 64;

/// Images per chunk: the batch split evenly over the threads, in whole 8-image tiles, at
/// most [`MAX_CHUNK`]. Each thread copies, multiplies and copies back its own chunks, in its
/// own cache, with no barrier between the steps.
fn chunk(b: usize) -> usize {
    b.div_ceil(rayon::current_num_threads().max(1))
        .next_multiple_of(8)
        .min(MAX_CHUNK)
}

/// `lhs` `[m, K]` over the virtual unfolded `ops` (layout `l`), one product per result row
/// (`rows x cols` results) into `out` `[rows, m, cols, b]`.
fn product(
    lhs: &Lhs,
    ops: &[f32],
    l: &Layout,
    (rows, cols): (usize, usize),
    init: Init<'_>,
    out: &mut [f32],
) {
    let offs = l.offsets();
    let (m, n) = (lhs.m(), cols * l.b);
    let step = l.wp() * l.b;
    for (r, out) in out[..rows * m * n].chunks_exact_mut(m * n).enumerate() {
        lhs.mul_offsets(n, &ops[r * step..], &offs, out, n, init, false);
    }
}

/// `lhs` over the batch-in-lanes copy of `src` (`[b, planes, h, w]`, padded by `pad`), the
/// `[b, m, rows, cols]` result with ReLU when `relu`: chunks of images in parallel.
#[allow(clippy::too_many_arguments)]
fn conv(
    lhs: &Lhs,
    src: &[f32],
    (b, planes, h, w): (usize, usize, usize, usize),
    pad: [usize; 2],
    (kernel, dil): ([usize; 2], [usize; 2]),
    (rows, cols): (usize, usize),
    init: Init<'_>,
    relu: bool,
) -> Vec<f32> {
    let (src_img, dst_img) = (planes * h * w, lhs.m() * rows * cols);
    let per = chunk(b);
    zeroed_len_chunks(b * dst_img, per * dst_img, true, |i, dst| {
        let l = Layout {
            b: dst.len() / dst_img,
            planes,
            h,
            w,
            pad,
            right: 0,
            kernel,
            dil,
        };
        with_scratch(l.len() + l.b * dst_img, |s| {
            let (ops, out) = s.split_at_mut(l.len());
            l.fill(&src[i * per * src_img..][..l.b * src_img], ops);
            product(lhs, ops, &l, (rows, cols), init, out);
            unfill(out, (lhs.m(), rows, cols), relu, dst);
        })
    })
}

/// Forward `x` `[b, c_in, h, w]` → `[b, c_out, oh, ow]` (+ bias, ReLU when `relu`).
pub(super) fn forward(
    g: &ConvGeometry,
    d: &Dims,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    let lhs = weights(g, d, w, false);
    let init = bias.map_or(Init::Zero, Init::RowBias);
    conv(
        &lhs[0],
        x,
        (g.b, g.c_in, g.h, g.w),
        g.p.padding,
        ([g.kh, g.kw], g.p.dilation),
        (g.oh, g.ow),
        init,
        relu,
    )
}

/// Input gradient `dy` `[b, c_out, oh, ow]` → `[b, c_in, h, w]` ([`takes_input_grad`]).
pub(super) fn input_grad(g: &ConvGeometry, d: &Dims, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let p = &g.p;
    let pad = [
        (g.kh - 1) * p.dilation[0] - p.padding[0],
        (g.kw - 1) * p.dilation[1] - p.padding[1],
    ];
    let wf = weights_flipped(g, d, w);
    conv(
        &wf[0],
        dy,
        (g.b, g.c_out, g.oh, g.ow),
        pad,
        ([g.kh, g.kw], p.dilation),
        (g.h, g.w),
        Init::Zero,
        false,
    )
}

/// Weight gradient of `x` `[b, c_in, h, w]` and `dy` `[b, c_out, oh, ow]`: `[c_out, K]`,
/// each chunk of images summed on its thread ([`weight_grad_dots`] on the AVX2 / AVX-512
/// paths, [`weight_grad_taps`] on the portable one), the chunks' sums added in order (the
/// same result on every run).
pub(super) fn weight_grad(g: &ConvGeometry, d: &Dims, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (x_img, y_img) = (g.c_in * d.hw, g.c_out * d.n);
    let per = chunk(g.b);
    let dots = nt_gather_batches();
    let partials: Vec<Vec<f32>> = (0..g.b.div_ceil(per))
        .into_par_iter()
        .map(|i| {
            let count = per.min(g.b - i * per);
            let x = &x[i * per * x_img..][..count * x_img];
            let dy = &dy[i * per * y_img..][..count * y_img];
            let mut dw = vec![0f32; g.c_out * d.k];
            if dots {
                weight_grad_dots(g, d, x, dy, count, &mut dw);
            } else {
                weight_grad_taps(g, d, x, dy, count, &mut dw);
            }
            dw
        })
        .collect();
    let mut iter = partials.into_iter();
    let mut dw = iter.next().unwrap_or_else(|| vec![0f32; g.c_out * d.k]);
    for part in iter {
        for (a, b) in dw.iter_mut().zip(&part) {
            *a += *b;
        }
    }
    dw
}

/// The lanes layout of the input of a weight gradient over `b` images.
fn input_layout(g: &ConvGeometry, b: usize) -> Layout {
    Layout {
        b,
        planes: g.c_in,
        h: g.h,
        w: g.w,
        pad: g.p.padding,
        right: 0,
        kernel: [g.kh, g.kw],
        dil: g.p.dilation,
    }
}

/// Adds the weight gradient of the `b` images of `x` and `dy` into `dw` `[c_out, K]`: dot
/// products of `ow * b` floats, one per output row, between the lanes copies of `dy` and of
/// `x` (the AVX2 / AVX-512 dot kernels of [`gemm_nt_gather`]).
fn weight_grad_dots(g: &ConvGeometry, d: &Dims, x: &[f32], dy: &[f32], b: usize, dw: &mut [f32]) {
    let l = input_layout(g, b);
    let ly = Layout {
        planes: g.c_out,
        h: g.oh,
        w: g.ow,
        pad: [0, 0],
        ..l
    };
    let offs = l.offsets();
    let row = g.ow * b;
    with_scratch(l.len() + ly.len(), |s| {
        let (xt, dyt) = s.split_at_mut(l.len());
        l.fill(x, xt);
        ly.fill(dy, dyt);
        let batch = NtBatch {
            imgs: g.oh,
            a_img: row,
            b_img: l.wp() * b,
        };
        gemm_nt_gather(
            g.c_out,
            d.k,
            row,
            batch,
            dyt,
            g.oh * row,
            xt,
            &offs,
            dw,
            d.k,
        );
    });
}

/// Adds the weight gradient of the `b` images of `x` and `dy` into `dw` `[c_out, K]` with
/// `gemm`: one product per kernel tap (and output row), `dw[:, c, tap]^T += x(tap)[c_in,
/// positions] @ dy[positions, c_out]` over all `b` images at once. `x` is copied channels
/// last (`[hp, wp, b, c_in]`: `gemm`'s fast column-major left operand, a tap's shift one
/// offset into it), `dy` into `[c_out, oh, ow, b]`. Where the padding adds at most a third
/// to the row, `dy` is spread over the padded width (zeros in the columns past `ow`) and a
/// tap's positions of all output rows are one run of both operands: one product per tap
/// (seed 001's 5x5 "same" branch 1.7 → 1.1-1.2 ms against a product per row); otherwise one
/// product per tap and output row, no multiply by zeros (its "valid" 5x5 conv2, rows 12 wide
/// for 8 outputs: 3.3 → 2.7-3.2 ms).
fn weight_grad_taps(g: &ConvGeometry, d: &Dims, x: &[f32], dy: &[f32], b: usize, dw: &mut [f32]) {
    let l = input_layout(g, b);
    let wp = l.wp();
    let spread = 3 * (wp - g.ow) <= g.ow;
    let ly = Layout {
        planes: g.c_out,
        h: g.oh,
        w: g.ow,
        pad: [0, 0],
        right: if spread { wp - g.ow } else { 0 },
        ..l
    };
    let (taps, (ci, co)) = (g.kh * g.kw, (g.c_in, g.c_out));
    let (per_call, yw) = if spread { (g.oh, wp) } else { (1, g.ow) };
    // Spread, the run is every output row but the last over `wp` (its zero columns meet the
    // input's next row) and the last over `ow`, so it ends at the copy's end.
    let k = ((per_call - 1) * wp + g.ow) * b;
    let [dh, dwl] = g.p.dilation;
    with_scratch(l.len() + ly.len() + taps * ci * co, |s| {
        let (xt, rest) = s.split_at_mut(l.len());
        let (dyt, acc) = rest.split_at_mut(ly.len());
        l.fill_last(x, xt);
        ly.fill(dy, dyt);
        acc.fill(0.0);
        for r0 in (0..g.oh).step_by(per_call) {
            let rhs = Mat {
                data: &dyt[r0 * yw * b..],
                rs: 1,
                cs: g.oh * yw * b,
            };
            for (t, acc) in acc.chunks_exact_mut(ci * co).enumerate() {
                let (ki, kj) = (t / g.kw, t % g.kw);
                let lhs = Mat {
                    data: &xt[((r0 + ki * dh) * wp + kj * dwl) * b * ci..],
                    rs: 1,
                    cs: ci,
                };
                sgemm_acc_col_major(ci, co, k, acc, lhs, rhs);
            }
        }
        // acc[tap][o][c] into dw[o][c][tap].
        for (t, acc) in acc.chunks_exact(ci * co).enumerate() {
            for (o, acc) in acc.chunks_exact(ci).enumerate() {
                for (c, v) in acc.iter().enumerate() {
                    dw[o * d.k + c * taps + t] += *v;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both tile kernels (AVX2 where the CPU has it, the scalar one always) give the
    /// definition, through `scatter` both ways, with edges of images and positions.
    #[test]
    fn scatter_transposes() {
        let (img, rows) = (21, 19);
        let src: Vec<f32> = (0..img * rows).map(|i| i as f32 - 100.0).collect();
        // Position p goes to offset 3 * p * rows (gaps between the positions' runs).
        let dpos: Vec<usize> = (0..img).map(|p| 3 * p * rows).collect();
        let kernels = [
            Tiles {
                #[cfg(target_arch = "x86_64")]
                avx2: false,
            },
            Tiles::new(),
        ];
        for tiles in kernels {
            for relu in [false, true] {
                let act = |v: f32| if relu { v.max(0.0) } else { v };
                let mut dst = vec![f32::NAN; 3 * img * rows];
                scatter(tiles, &src, img, rows, &dpos, &mut dst, false, relu);
                for n in 0..rows {
                    for (p, &o) in dpos.iter().enumerate() {
                        assert_eq!(dst[o + n], act(src[n * img + p]), "image {n}, position {p}");
                    }
                }
                let mut back = vec![0f32; img * rows];
                scatter(tiles, &dst, img, rows, &dpos, &mut back, true, false);
                let want: Vec<f32> = src.iter().map(|&v| act(v)).collect();
                assert_eq!(back, want);
            }
        }
    }
}
