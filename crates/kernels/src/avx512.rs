//! AVX-512 micro-kernels for the three matrix products of a convolution, reading the large
//! operand (the unfolded input or the output gradient) in place instead of repacking it on
//! every call the way a general GEMM does.
//!
//! - [`gemm_nn`]: `c[m, n] = a[m, k] @ b[k, n]` with `a` packed by `gemm::pack_a` in
//!   panels of [`MR`] rows (the small
//!   weight) and `b` row-major (the unfolded input, or the output gradient). Blocks of
//!   [`MR`] rows x 48 columns live in 24 registers; `b`'s rows are read with masked loads, so
//!   any `n` works without padding.
//! - [`dot_block`] (driven by `gemm::gemm_nt_dot`): the weight gradient `dy[og, N] @ col[K, N]^T` as register-blocked dot
//!   products along the rows (2 x 6 blocks of 12 accumulators), summed over several images
//!   before one horizontal reduction, reading the padded input's shifted windows in place.
//!
//! Only compiled on x86-64; the callers dispatch on [`super::isa::isa`] (`avx2.rs` has the
//! same kernels on 256-bit vectors; the portable path uses the `gemm` crate).

use super::gemm::{DotBlock, Init, DOT_MR, DOT_NR};
use std::arch::x86_64::*;

/// Rows of `a` per register block of [`gemm_nn`] (and per packed panel).
pub(crate) const MR: usize = 8;
/// 16-float vectors per row of a [`gemm_nn`] register block.
const NV: usize = 3;
/// Columns per register block of [`gemm_nn`].
const NR: usize = NV * 16;

/// Whether this CPU runs these kernels (AVX-512F), whatever path was selected: the
/// selection (`CONVNETS_ISA`, `CONVNETS_NO_AVX512`) is [`super::isa::isa`].
pub(crate) fn available() -> bool {
    super::isa::Isa::Avx512.supported()
}

#[inline(always)]
fn tail_mask(valid: usize) -> __mmask16 {
    if valid >= 16 {
        0xFFFF
    } else {
        ((1u32 << valid) - 1) as __mmask16
    }
}

/// One `R x (V * 16)` block of [`gemm_nn`]; the last vector of each row covers `last`.
///
/// # Safety
/// AVX-512F must be available; `ap` holds `k * R` floats; rows `0..k` of `b` (row `kk` at
/// `b + offs[kk]`)
/// and rows `0..R` of `c` (stride `ldc`) are readable (and `c` writable) for the
/// `(V - 1) * 16` columns plus those of `last`; for `RowBias`, `bias[row0 + R - 1]` exists.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn nn_block<const R: usize, const V: usize>(
    k: usize,
    ap: *const f32,
    b: *const f32,
    offs: *const usize,
    c: *mut f32,
    ldc: usize,
    last: __mmask16,
    init: Init<'_>,
    row0: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    // SAFETY (whole body): every pointer offset stays inside the ranges the caller vouches for.
    unsafe {
        match init {
            Init::Zero => {}
            Init::RowBias(bias) => {
                for (r, row) in acc.iter_mut().enumerate() {
                    let v = _mm512_set1_ps(*bias.get_unchecked(row0 + r));
                    for a in row.iter_mut() {
                        *a = v;
                    }
                }
            }
        }
        for kk in 0..k {
            let brow = b.add(*offs.add(kk));
            let mut bv = [_mm512_setzero_ps(); V];
            for (j, v) in bv.iter_mut().enumerate() {
                *v = if j + 1 == V {
                    _mm512_maskz_loadu_ps(last, brow.add(j * 16))
                } else {
                    _mm512_loadu_ps(brow.add(j * 16))
                };
            }
            let arow = ap.add(kk * R);
            for (r, row) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_ps(*arow.add(r));
                for (acc, b) in row.iter_mut().zip(&bv) {
                    *acc = _mm512_fmadd_ps(a, *b, *acc);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (j, a) in row.iter().enumerate() {
                let p = c.add(r * ldc + j * 16);
                if j + 1 == V {
                    _mm512_mask_storeu_ps(p, last, *a);
                } else {
                    _mm512_storeu_ps(p, *a);
                }
            }
        }
    }
}

/// `c[m, n] = a[m, k] @ b[k, n]`: `ap` is `a` packed by `gemm::pack_a` in panels of
/// [`MR`] rows, row `kk` of `b` is
/// `b[offs[kk]..offs[kk] + n]` (a strided matrix, or shifted windows of one image for an
/// implicit convolution), `c` has row stride `ldc`; `init` says what `c` starts from.
///
/// # Panics
/// If AVX-512F is not available or a slice is too short for the sizes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_nn(
    m: usize,
    n: usize,
    k: usize,
    ap: &[f32],
    b: &[f32],
    offs: &[usize],
    c: &mut [f32],
    ldc: usize,
    init: Init<'_>,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(available(), "gemm_nn: AVX-512F is not available");
    super::gemm::check_gemm_nn(m, n, k, ap, b, offs, c, ldc, &init);
    for n0 in (0..n).step_by(NR) {
        let cols = (n - n0).min(NR);
        let v = cols.div_ceil(16);
        let last = tail_mask(cols - (v - 1) * 16);
        for m0 in (0..m).step_by(MR) {
            let rows = (m - m0).min(MR);
            // SAFETY: AVX-512F checked above; the panel of rows m0.. holds k * rows floats
            // from m0 * k (pack_a's layout); b's rows (at offs[kk] + n0) and c's rows
            // m0..m0 + rows cover columns n0..n0 + cols, inside the slices by the asserts.
            unsafe {
                const_dispatch!(
                    nn_block(
                        k,
                        ap.as_ptr().add(m0 * k),
                        b.as_ptr().add(n0),
                        offs.as_ptr(),
                        c.as_mut_ptr().add(m0 * ldc + n0),
                        ldc,
                        last,
                        init,
                        m0
                    ),
                    rows => [1, 2, 3, 4, 5, 6, 7, 8],
                    v => [1, 2, 3]
                )
            }
        }
    }
}

// 12 accumulators, the rows of `a` and one row of `b`: 15 registers. A 4 x 6 block (29 of
// the 32) had LLVM spill accumulators to the stack in the inner loop, at half the speed.
const _: () = assert!(DOT_MR * DOT_NR + DOT_MR < 16);

/// One `R x C` block of `gemm::gemm_nt_dot`: `c[r * ldc + j] += sum over images t of
/// a[t * a_img + r * lda..][..len] . b[t * b_img + offs[j]..][..len]`.
///
/// # Safety
/// AVX-512F must be available; for each image `t < imgs`, rows `0..R` of `a` (from
/// `t * a_img`, stride `lda`) and the `C` rows of `b` at `b + t * b_img + offs[j]` have `len`
/// readable floats; `c` rows `0..R` (stride `ldc`) have `C` writable floats.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_block<const R: usize, const C: usize>(
    len: usize,
    imgs: usize,
    a: *const f32,
    a_img: usize,
    lda: usize,
    b: *const f32,
    b_img: usize,
    offs: *const usize,
    c: *mut f32,
    ldc: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    let full = len / 16 * 16;
    let tail = tail_mask(len - full);
    // SAFETY (whole body): every pointer offset stays inside the ranges the caller vouches for.
    unsafe {
        for t in 0..imgs {
            let a = a.add(t * a_img);
            let brow: [*const f32; C] = std::array::from_fn(|j| b.add(t * b_img + *offs.add(j)));
            let mut p = 0;
            while p < full {
                let av: [__m512; R] = std::array::from_fn(|r| _mm512_loadu_ps(a.add(r * lda + p)));
                for (j, row) in brow.iter().enumerate() {
                    let bv = _mm512_loadu_ps(row.add(p));
                    for (acc, av) in acc.iter_mut().zip(&av) {
                        acc[j] = _mm512_fmadd_ps(*av, bv, acc[j]);
                    }
                }
                p += 16;
            }
            if full < len {
                let av: [__m512; R] =
                    std::array::from_fn(|r| _mm512_maskz_loadu_ps(tail, a.add(r * lda + full)));
                for (j, row) in brow.iter().enumerate() {
                    let bv = _mm512_maskz_loadu_ps(tail, row.add(full));
                    for (acc, av) in acc.iter_mut().zip(&av) {
                        acc[j] = _mm512_fmadd_ps(*av, bv, acc[j]);
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                *c.add(r * ldc + j) += _mm512_reduce_add_ps(*v);
            }
        }
    }
}

/// The [`dot_block`] of a `rows x cols` block (at most `DOT_MR x DOT_NR`), for
/// `gemm::gemm_nt_dot`.
///
/// # Panics
/// If AVX-512F is not available (calling the block would be unsound), or the block is
/// larger.
pub(crate) fn dot_block_for(rows: usize, cols: usize) -> DotBlock {
    assert!(available(), "dot_block_for: AVX-512F is not available");
    const_dispatch!(dot_block as DotBlock, rows => [1, 2], cols => [1, 2, 3, 4, 5, 6])
}

/// Lanes where PyTorch's max-pool scan takes `v` over `best`: greater, or NaN.
#[target_feature(enable = "avx512f")]
#[inline]
fn takes(v: __m512, best: __m512) -> __mmask16 {
    _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v)
}

/// Splits `2 * cnt` floats at `p` (`cnt <= 16`) into their even and odd elements.
///
/// # Safety
/// AVX-512F must be available and `2 * cnt` floats readable at `p`.
#[inline(always)]
unsafe fn deinterleave(p: *const f32, cnt: usize) -> (__m512, __m512) {
    // SAFETY: masked loads of the 2 * cnt floats the caller vouches for.
    unsafe {
        let lo = _mm512_maskz_loadu_ps(tail_mask(2 * cnt), p);
        let hi = _mm512_maskz_loadu_ps(tail_mask((2 * cnt).saturating_sub(16)), p.add(16));
        let even = _mm512_loadu_si512(
            [0i32, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30]
                .as_ptr()
                .cast(),
        );
        let odd = _mm512_loadu_si512(
            [1i32, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31]
                .as_ptr()
                .cast(),
        );
        (
            _mm512_permutex2var_ps(lo, even, hi),
            _mm512_permutex2var_ps(lo, odd, hi),
        )
    }
}

/// Interleaves `cnt` floats of `even` and `odd` into `2 * cnt` floats at `p`.
///
/// # Safety
/// AVX-512F must be available and `2 * cnt` floats writable at `p`.
#[inline(always)]
unsafe fn interleave(p: *mut f32, even: __m512, odd: __m512, cnt: usize) {
    // SAFETY: masked stores of the 2 * cnt floats the caller vouches for.
    unsafe {
        let lo = _mm512_loadu_si512(
            [0i32, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23]
                .as_ptr()
                .cast(),
        );
        let hi = _mm512_loadu_si512(
            [
                8i32, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31,
            ]
            .as_ptr()
            .cast(),
        );
        _mm512_mask_storeu_ps(p, tail_mask(2 * cnt), _mm512_permutex2var_ps(even, lo, odd));
        _mm512_mask_storeu_ps(
            p.add(16),
            tail_mask((2 * cnt).saturating_sub(16)),
            _mm512_permutex2var_ps(even, hi, odd),
        );
    }
}

/// One output row of 2x2 stride-2 max pooling: `out[j]` is the maximum of `r0[2j..2j + 2]`
/// and `r1[2j..2j + 2]` under PyTorch's scan rule (first maximum; NaN wins).
///
/// # Panics
/// If AVX-512F is not available or `r0`/`r1` are shorter than `2 * out.len()`.
pub(crate) fn max2x2_row(r0: &[f32], r1: &[f32], out: &mut [f32]) {
    let ow = out.len();
    assert!(available(), "max2x2_row: AVX-512F is not available");
    assert!(
        r0.len() >= 2 * ow && r1.len() >= 2 * ow,
        "max2x2_row: input rows too short"
    );
    // SAFETY: AVX-512F checked; chunk o0..o0 + cnt reads 2 * cnt floats from 2 * o0 of
    // each input row and writes cnt floats from o0 of `out`, inside the slices.
    unsafe { max2x2_row_imp(r0.as_ptr(), r1.as_ptr(), out.as_mut_ptr(), ow) }
}

#[target_feature(enable = "avx512f")]
unsafe fn max2x2_row_imp(r0: *const f32, r1: *const f32, out: *mut f32, ow: usize) {
    // SAFETY: see max2x2_row.
    unsafe {
        for o0 in (0..ow).step_by(16) {
            let cnt = (ow - o0).min(16);
            let (a, b) = deinterleave(r0.add(2 * o0), cnt);
            let (c, e) = deinterleave(r1.add(2 * o0), cnt);
            let mut m = a;
            for v in [b, c, e] {
                m = _mm512_mask_mov_ps(m, takes(v, m), v);
            }
            _mm512_mask_storeu_ps(out.add(o0), tail_mask(cnt), m);
        }
    }
}

/// Backward of [`max2x2_row`]: each `dy[j]` goes to the element of its window the forward
/// picked (the last one PyTorch's scan took), zeros elsewhere; writes `2 * dy.len()` floats
/// of `d0` and `d1`.
///
/// # Panics
/// If AVX-512F is not available or a row is shorter than `2 * dy.len()`.
pub(crate) fn max2x2_bwd_row(r0: &[f32], r1: &[f32], dy: &[f32], d0: &mut [f32], d1: &mut [f32]) {
    let ow = dy.len();
    assert!(available(), "max2x2_bwd_row: AVX-512F is not available");
    assert!(
        r0.len() >= 2 * ow && r1.len() >= 2 * ow && d0.len() >= 2 * ow && d1.len() >= 2 * ow,
        "max2x2_bwd_row: rows too short"
    );
    // SAFETY: AVX-512F checked; chunk o0..o0 + cnt touches 2 * cnt floats from 2 * o0 of
    // each row and cnt floats from o0 of `dy`, inside the slices.
    unsafe {
        max2x2_bwd_row_imp(
            r0.as_ptr(),
            r1.as_ptr(),
            dy.as_ptr(),
            d0.as_mut_ptr(),
            d1.as_mut_ptr(),
            ow,
        )
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn max2x2_bwd_row_imp(
    r0: *const f32,
    r1: *const f32,
    dy: *const f32,
    d0: *mut f32,
    d1: *mut f32,
    ow: usize,
) {
    // SAFETY: see max2x2_bwd_row.
    unsafe {
        for o0 in (0..ow).step_by(16) {
            let cnt = (ow - o0).min(16);
            let (a, b) = deinterleave(r0.add(2 * o0), cnt);
            let (c, e) = deinterleave(r1.add(2 * o0), cnt);
            let tb = takes(b, a);
            let m = _mm512_mask_mov_ps(a, tb, b);
            let tc = takes(c, m);
            let m = _mm512_mask_mov_ps(m, tc, c);
            let te = takes(e, m);
            // The last element the scan took wins.
            let (we, wc, wb) = (te, tc & !te, tb & !(tc | te));
            let wa = !(tb | tc | te);
            let g = _mm512_maskz_loadu_ps(tail_mask(cnt), dy.add(o0));
            let q = |w: __mmask16| _mm512_maskz_mov_ps(w, g);
            interleave(d0.add(2 * o0), q(wa), q(wb), cnt);
            interleave(d1.add(2 * o0), q(wc), q(we), cnt);
        }
    }
}

/// One output row of 2x2 stride-2 average pooling: `out[j] = ((r0[2j] + r0[2j + 1]) +
/// (r1[2j] + r1[2j + 1])) * 0.25`, the same association as the scalar loop.
///
/// # Panics
/// If AVX-512F is not available or `r0`/`r1` are shorter than `2 * out.len()`.
pub(crate) fn avg2x2_row(r0: &[f32], r1: &[f32], out: &mut [f32]) {
    let ow = out.len();
    assert!(available(), "avg2x2_row: AVX-512F is not available");
    assert!(
        r0.len() >= 2 * ow && r1.len() >= 2 * ow,
        "avg2x2_row: input rows too short"
    );
    // SAFETY: AVX-512F checked; chunk o0..o0 + cnt reads 2 * cnt floats from 2 * o0 of
    // each input row and writes cnt floats from o0 of `out`, inside the slices.
    unsafe { avg2x2_row_imp(r0.as_ptr(), r1.as_ptr(), out.as_mut_ptr(), ow) }
}

#[target_feature(enable = "avx512f")]
unsafe fn avg2x2_row_imp(r0: *const f32, r1: *const f32, out: *mut f32, ow: usize) {
    // SAFETY: see avg2x2_row.
    unsafe {
        let quarter = _mm512_set1_ps(0.25);
        for o0 in (0..ow).step_by(16) {
            let cnt = (ow - o0).min(16);
            let (a, b) = deinterleave(r0.add(2 * o0), cnt);
            let (c, e) = deinterleave(r1.add(2 * o0), cnt);
            let s = _mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, e));
            _mm512_mask_storeu_ps(out.add(o0), tail_mask(cnt), _mm512_mul_ps(s, quarter));
        }
    }
}

/// Backward of [`avg2x2_row`]: `dy[j] * 0.25` into the four elements of window `j` (writes
/// `2 * dy.len()` floats of `d0` and `d1`).
///
/// # Panics
/// If AVX-512F is not available or a row is shorter than `2 * dy.len()`.
pub(crate) fn avg2x2_bwd_row(dy: &[f32], d0: &mut [f32], d1: &mut [f32]) {
    let ow = dy.len();
    assert!(available(), "avg2x2_bwd_row: AVX-512F is not available");
    assert!(
        d0.len() >= 2 * ow && d1.len() >= 2 * ow,
        "avg2x2_bwd_row: rows too short"
    );
    // SAFETY: AVX-512F checked; chunk o0..o0 + cnt reads cnt floats from o0 of `dy` and
    // writes 2 * cnt floats from 2 * o0 of each row, inside the slices.
    unsafe { avg2x2_bwd_row_imp(dy.as_ptr(), d0.as_mut_ptr(), d1.as_mut_ptr(), ow) }
}

#[target_feature(enable = "avx512f")]
unsafe fn avg2x2_bwd_row_imp(dy: *const f32, d0: *mut f32, d1: *mut f32, ow: usize) {
    // SAFETY: see avg2x2_bwd_row.
    unsafe {
        let quarter = _mm512_set1_ps(0.25);
        for o0 in (0..ow).step_by(16) {
            let cnt = (ow - o0).min(16);
            let g = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail_mask(cnt), dy.add(o0)), quarter);
            interleave(d0.add(2 * o0), g, g, cnt);
            interleave(d1.add(2 * o0), g, g, cnt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack_a(m: usize, k: usize, data: &[f32], rs: usize, cs: usize, out: &mut [f32]) {
        super::super::gemm::pack_a(MR, m, k, data, rs, cs, out)
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 20) as f32 / 4096.0
                    - 0.5
            })
            .collect()
    }

    /// Every block shape and tail: against a plain triple loop, each initialisation.
    #[test]
    fn nn_matches_loops() {
        if !available() {
            return;
        }
        for (m, n, k) in [
            (1, 1, 1),
            (8, 48, 5),
            (6, 784, 25),
            (9, 17, 3),
            (16, 100, 150),
            (25, 49, 0),
            (13, 97, 33),
        ] {
            let a = data(m * k, 1);
            let (ldb, ldc) = (n + 3, n + 1);
            let bias = data(m, 3);
            let mut ap = vec![0.0; m * k];
            pack_a(m, k, &a, k, 1, &mut ap);
            for init in [Init::Zero, Init::RowBias(&bias)] {
                let start = data(m * ldc, 4);
                let mut c = start.clone();
                let bb = data(k * ldb, 2);
                let offs: Vec<usize> = (0..k).map(|kk| kk * ldb).collect();
                gemm_nn(m, n, k, &ap, &bb, &offs, &mut c, ldc, init);
                for i in 0..m {
                    for j in 0..ldc {
                        let got = c[i * ldc + j];
                        if j >= n {
                            assert_eq!(got, start[i * ldc + j], "column {j} past n written");
                            continue;
                        }
                        let mut want = match init {
                            Init::Zero => 0.0,
                            Init::RowBias(bias) => bias[i],
                        };
                        for kk in 0..k {
                            want += a[i * k + kk] * bb[kk * ldb + j];
                        }
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                            "({m},{n},{k}) {init:?} c[{i},{j}] = {got}, want {want}"
                        );
                    }
                }
            }
        }
    }

    /// Transposed packing: `a` read column-major gives the same panels as its transpose.
    #[test]
    fn pack_a_strided() {
        let (m, k) = (11, 7);
        let a = data(m * k, 5);
        let mut t = vec![0.0; m * k];
        for i in 0..m {
            for j in 0..k {
                t[j * m + i] = a[i * k + j];
            }
        }
        let (mut p1, mut p2) = (vec![0.0; m * k], vec![0.0; m * k]);
        pack_a(m, k, &a, k, 1, &mut p1);
        pack_a(m, k, &t, 1, m, &mut p2);
        assert_eq!(p1, p2);
        assert_eq!(
            p1[..MR],
            [
                a[0],
                a[k],
                a[2 * k],
                a[3 * k],
                a[4 * k],
                a[5 * k],
                a[6 * k],
                a[7 * k]
            ]
        );
    }

    /// Max pooling rows with ties, NaNs and infinities against PyTorch's scan, written out.
    #[test]
    fn max2x2_rows_follow_the_scan() {
        if !available() {
            return;
        }
        let vals = [
            0.0,
            1.0,
            -1.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.0,
            0.5,
        ];
        for ow in [1usize, 3, 8, 16, 17, 33] {
            let pick = |i: usize, s: usize| vals[(i * 7 + s * 3 + i / 5) % vals.len()];
            let r0: Vec<f32> = (0..2 * ow).map(|i| pick(i, 1)).collect();
            let r1: Vec<f32> = (0..2 * ow).map(|i| pick(i, 2)).collect();
            let dy: Vec<f32> = (0..ow).map(|j| j as f32 + 1.0).collect();
            let mut out = vec![7.0; ow];
            max2x2_row(&r0, &r1, &mut out);
            let (mut d0, mut d1) = (vec![7.0; 2 * ow], vec![7.0; 2 * ow]);
            max2x2_bwd_row(&r0, &r1, &dy, &mut d0, &mut d1);
            for j in 0..ow {
                let win = [r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]];
                let (mut best, mut at) = (win[0], 0);
                for (i, &v) in win.iter().enumerate().skip(1) {
                    if v > best || v.is_nan() {
                        (best, at) = (v, i);
                    }
                }
                assert!(
                    out[j] == best || (out[j].is_nan() && best.is_nan()),
                    "ow {ow} out[{j}]"
                );
                let got = [d0[2 * j], d0[2 * j + 1], d1[2 * j], d1[2 * j + 1]];
                for (i, g) in got.iter().enumerate() {
                    assert_eq!(
                        *g,
                        if i == at { dy[j] } else { 0.0 },
                        "ow {ow} window {j} element {i}"
                    );
                }
            }
        }
    }

    /// Average pooling rows against the scalar formula, odd widths included.
    #[test]
    fn avg2x2_rows() {
        if !available() {
            return;
        }
        for ow in [1usize, 5, 16, 17, 40] {
            let r0 = data(2 * ow, 21);
            let r1 = data(2 * ow, 22);
            let mut out = vec![7.0; ow];
            avg2x2_row(&r0, &r1, &mut out);
            let dy = data(ow, 23);
            let (mut d0, mut d1) = (vec![7.0; 2 * ow + 1], vec![7.0; 2 * ow + 1]);
            avg2x2_bwd_row(&dy, &mut d0, &mut d1);
            for j in 0..ow {
                let want = ((r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1])) * 0.25;
                assert_eq!(out[j], want, "ow {ow} out[{j}]");
                for d in [&d0, &d1] {
                    assert_eq!(d[2 * j], dy[j] * 0.25);
                    assert_eq!(d[2 * j + 1], dy[j] * 0.25);
                }
            }
            assert_eq!(
                (d0[2 * ow], d1[2 * ow]),
                (7.0, 7.0),
                "wrote past the window"
            );
        }
    }
}
