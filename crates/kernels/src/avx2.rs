//! AVX2 + FMA micro-kernels: the algorithms of `avx512.rs` on 256-bit vectors, for the CPUs
//! without AVX-512 (Zen 1-3, Intel client cores before and after Ice Lake).
//!
//! - [`gemm_nn`]: `c[m, n] = a[m, k] @ b[k, n]` with `a` packed in panels of `mr` rows
//!   (`gemm::pack_a`) and `b` read in place, row `kk` at `b[offs[kk]..]`. The register block
//!   is [`MR`] x 16 (two vectors per row), see [`MR`].
//! - [`dot_block`] (driven by `gemm::gemm_nt_dot`): the weight gradient `dy @ col^T` as register-blocked dot products
//!   along the rows, summed over several images before one horizontal reduction, reading
//!   the padded input's shifted windows in place (no unfolding, no transpose).
//! - 2x2 stride-2 max and average pooling rows, forward and backward, with PyTorch's scan
//!   rule for the maximum (first maximum; NaN wins).
//!
//! AVX2 has no mask registers: partial vectors at the right edge are read and written with
//! `vmaskmovps` (`_mm256_maskload_ps` / `_mm256_maskstore_ps`, which never touch the lanes
//! outside the mask), full vectors with plain unaligned loads and stores.
//!
//! Only compiled on x86-64; the callers dispatch on [`super::isa::isa`].

use super::gemm::{DotBlock, Init, DOT_MR, DOT_NR};
use super::isa::Isa;
use std::arch::x86_64::*;

/// Whether this CPU runs these kernels (AVX2 and FMA), whatever path was selected.
pub(crate) fn available() -> bool {
    Isa::Avx2.supported()
}

/// Floats per vector.
const L: usize = 8;

/// Rows per panel of `a`: the register block is `MR x 16` (two vectors per row).
///
/// Why: AVX2 has 16 `ymm` registers. A block of `mr x nv` vectors needs `mr * nv`
/// accumulators, `nv` registers for the row of `b` and one for the broadcast element of `a`:
/// 6 x 2 takes 15, with 12 accumulators, enough independent chains to keep two FMA pipes
/// with a 4-cycle latency busy (at least 8). The other 12-accumulator block, 4 x 3, needs all
/// 16 registers, and LLVM then rotates the accumulators through `vmovaps` chains and spills
/// one to the stack in every iteration of the inner loop: measured at half the speed of
/// 6 x 2 (`cargo xtask bench kernels --paths avx2`, ResNet-20's convolutions 41 against
/// 81 GFLOP/s on one Zen 4 thread). Channel counts that are multiples of 4 but not 6 (16, 32,
/// 64) end in a thinner block (4 or 2 rows), which costs less than the spills.
pub(crate) const MR: usize = 6;

/// Vectors per row of the register block.
const NV: usize = 2;

// Accumulators, the row of `b` and the broadcast element of `a`: at most 15 of the 16
// registers (all 16 make LLVM spill, see `MR`).
const _: () = assert!(MR * NV + NV + 1 < 16);

/// A mask of the first `valid` (at most 8) lanes, for `vmaskmovps`.
///
/// # Safety
/// AVX must be available.
#[inline(always)]
unsafe fn mask(valid: usize) -> __m256i {
    const WINDOW: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: 8 - min(valid, 8) + 8 <= 16 elements of WINDOW are read.
    unsafe { _mm256_loadu_si256(WINDOW.as_ptr().add(L - valid.min(L)).cast()) }
}

/// The first `valid` floats at `p` (the other lanes zero).
///
/// # Safety
/// AVX must be available and `valid` (at most 8) floats readable at `p`.
#[inline(always)]
unsafe fn load(p: *const f32, valid: usize) -> __m256 {
    // SAFETY: a full load reads the 8 floats the caller vouches for; a masked one only the
    // `valid` first.
    unsafe {
        if valid >= L {
            _mm256_loadu_ps(p)
        } else {
            _mm256_maskload_ps(p, mask(valid))
        }
    }
}

/// Writes the first `valid` lanes of `v` to `p`.
///
/// # Safety
/// AVX must be available and `valid` (at most 8) floats writable at `p`.
#[inline(always)]
unsafe fn store(p: *mut f32, v: __m256, valid: usize) {
    // SAFETY: as for `load`.
    unsafe {
        if valid >= L {
            _mm256_storeu_ps(p, v)
        } else {
            _mm256_maskstore_ps(p, mask(valid), v)
        }
    }
}

/// One `R x (V * 8)` block of [`gemm_nn`]; the last vector of each row covers `last`
/// (1..=8) columns.
///
/// # Safety
/// AVX2 and FMA must be available; `ap` holds `k * R` floats; rows `0..k` of `b` (row `kk`
/// at `b + offs[kk]`) and rows `0..R` of `c` (stride `ldc`) are readable (and `c` writable)
/// for the `(V - 1) * 8 + last` columns; for `RowBias`, `bias[row0 + R - 1]` exists.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn nn_block<const R: usize, const V: usize>(
    k: usize,
    ap: *const f32,
    b: *const f32,
    offs: *const usize,
    c: *mut f32,
    ldc: usize,
    last: usize,
    init: Init<'_>,
    row0: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); V]; R];
    let width = |j: usize| if j + 1 == V { last } else { L };
    // SAFETY (whole body): every pointer offset stays inside the ranges the caller vouches for.
    unsafe {
        match init {
            Init::Zero => {}
            Init::RowBias(bias) => {
                for (r, row) in acc.iter_mut().enumerate() {
                    let v = _mm256_set1_ps(*bias.get_unchecked(row0 + r));
                    for a in row.iter_mut() {
                        *a = v;
                    }
                }
            }
        }
        if last == L {
            for kk in 0..k {
                let brow = b.add(*offs.add(kk));
                let mut bv = [_mm256_setzero_ps(); V];
                for (j, v) in bv.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(brow.add(j * L));
                }
                let arow = ap.add(kk * R);
                for (r, row) in acc.iter_mut().enumerate() {
                    let a = _mm256_broadcast_ss(&*arow.add(r));
                    for (acc, b) in row.iter_mut().zip(&bv) {
                        *acc = _mm256_fmadd_ps(a, *b, *acc);
                    }
                }
            }
        } else {
            let tail = mask(last);
            for kk in 0..k {
                let brow = b.add(*offs.add(kk));
                let mut bv = [_mm256_setzero_ps(); V];
                for (j, v) in bv.iter_mut().enumerate() {
                    *v = if j + 1 == V {
                        _mm256_maskload_ps(brow.add(j * L), tail)
                    } else {
                        _mm256_loadu_ps(brow.add(j * L))
                    };
                }
                let arow = ap.add(kk * R);
                for (r, row) in acc.iter_mut().enumerate() {
                    let a = _mm256_broadcast_ss(&*arow.add(r));
                    for (acc, b) in row.iter_mut().zip(&bv) {
                        *acc = _mm256_fmadd_ps(a, *b, *acc);
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (j, a) in row.iter().enumerate() {
                store(c.add(r * ldc + j * L), *a, width(j));
            }
        }
    }
}

/// `c[m, n] = a[m, k] @ b[k, n]`: `ap` is `a` packed by `gemm::pack_a` in panels of
/// [`MR`] rows, row `kk` of `b` is `b[offs[kk]..offs[kk] + n]`, `c` has row stride `ldc`;
/// `init` says what `c` starts from.
///
/// # Panics
/// If AVX2 or FMA is not available or a slice is too short.
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
    assert!(available(), "gemm_nn: AVX2 and FMA are not available");
    super::gemm::check_gemm_nn(m, n, k, ap, b, offs, c, ldc, &init);
    let (mr, nr) = (MR, NV * L);
    for n0 in (0..n).step_by(nr) {
        let cols = (n - n0).min(nr);
        let v = cols.div_ceil(L);
        let last = cols - (v - 1) * L;
        for m0 in (0..m).step_by(mr) {
            let rows = (m - m0).min(mr);
            // SAFETY: AVX2 and FMA checked above; the panel of rows m0.. holds k * rows
            // floats from m0 * k (pack_a's layout); b's rows (at offs[kk] + n0) and c's rows
            // m0..m0 + rows cover columns n0..n0 + cols, inside the slices by the asserts;
            // (rows, v) is a block the dispatch has: rows <= 6, v <= 2.
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
                    rows => [1, 2, 3, 4, 5, 6],
                    v => [1, 2]
                )
            }
        }
    }
}

// 12 accumulators, the two rows of `a` and one row of `b`: 15 registers.
const _: () = assert!(DOT_MR * DOT_NR + DOT_MR + 1 < 16);

/// The sum of the 8 lanes of `v`.
#[target_feature(enable = "avx2")]
#[inline]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// One `R x C` block of `gemm::gemm_nt_dot`: `c[r * ldc + j] += sum over images t of
/// a[t * a_img + r * lda..][..len] . b[t * b_img + offs[j]..][..len]`.
///
/// # Safety
/// AVX2 and FMA must be available; for each image `t < imgs`, rows `0..R` of `a` (from
/// `t * a_img`, stride `lda`) and the `C` rows of `b` at `b + t * b_img + offs[j]` have `len`
/// readable floats; `c` rows `0..R` (stride `ldc`) have `C` writable floats.
#[target_feature(enable = "avx2,fma")]
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
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    // SAFETY (whole body): every pointer offset stays inside the ranges the caller vouches for.
    unsafe {
        for t in 0..imgs {
            let a = a.add(t * a_img);
            let brow: [*const f32; C] = std::array::from_fn(|j| b.add(t * b_img + *offs.add(j)));
            let full = len / L * L;
            let mut p = 0;
            while p < full {
                let av: [__m256; R] = std::array::from_fn(|r| _mm256_loadu_ps(a.add(r * lda + p)));
                for (j, row) in brow.iter().enumerate() {
                    let bv = _mm256_loadu_ps(row.add(p));
                    for (acc, av) in acc.iter_mut().zip(&av) {
                        acc[j] = _mm256_fmadd_ps(*av, bv, acc[j]);
                    }
                }
                p += L;
            }
            if full < len {
                let tail = mask(len - full);
                let av: [__m256; R] =
                    std::array::from_fn(|r| _mm256_maskload_ps(a.add(r * lda + full), tail));
                for (j, row) in brow.iter().enumerate() {
                    let bv = _mm256_maskload_ps(row.add(full), tail);
                    for (acc, av) in acc.iter_mut().zip(&av) {
                        acc[j] = _mm256_fmadd_ps(*av, bv, acc[j]);
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                *c.add(r * ldc + j) += hsum(*v);
            }
        }
    }
}

/// The [`dot_block`] of a `rows x cols` block (at most `DOT_MR x DOT_NR`), for
/// `gemm::gemm_nt_dot`.
///
/// # Panics
/// If AVX2 and FMA are not available (calling the block would be unsound), or the block is
/// larger.
pub(crate) fn dot_block_for(rows: usize, cols: usize) -> DotBlock {
    assert!(available(), "dot_block_for: AVX2 and FMA are not available");
    const_dispatch!(dot_block as DotBlock, rows => [1, 2], cols => [1, 2, 3, 4, 5, 6])
}

/// Lanes (all bits set) where PyTorch's max-pool scan takes `v` over `best`: greater, or NaN.
#[target_feature(enable = "avx2")]
#[inline]
fn takes(v: __m256, best: __m256) -> __m256 {
    _mm256_or_ps(
        _mm256_cmp_ps::<_CMP_GT_OQ>(v, best),
        _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
    )
}

/// Splits `2 * cnt` floats at `p` (`cnt <= 8`) into their even and odd elements.
///
/// # Safety
/// AVX2 must be available and `2 * cnt` floats readable at `p`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn deinterleave(p: *const f32, cnt: usize) -> (__m256, __m256) {
    // SAFETY: loads of the 2 * cnt floats the caller vouches for (the second vector only
    // when some of them lie past the first eight).
    unsafe {
        let lo = load(p, 2 * cnt);
        let hi = if 2 * cnt > L {
            load(p.add(L), 2 * cnt - L)
        } else {
            _mm256_setzero_ps()
        };
        // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then the 64-bit pairs in order 0, 2, 1, 3.
        let even = _mm256_shuffle_ps::<0x88>(lo, hi);
        let odd = _mm256_shuffle_ps::<0xDD>(lo, hi);
        let order =
            |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v)));
        (order(even), order(odd))
    }
}

/// Interleaves `cnt` floats of `even` and `odd` into `2 * cnt` floats at `p`.
///
/// # Safety
/// AVX2 must be available and `2 * cnt` floats writable at `p`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn interleave(p: *mut f32, even: __m256, odd: __m256, cnt: usize) {
    // SAFETY: stores of the 2 * cnt floats the caller vouches for.
    unsafe {
        // [e0 o0 e1 o1 | e4 o4 e5 o5] and [e2 o2 e3 o3 | e6 o6 e7 o7].
        let lo = _mm256_unpacklo_ps(even, odd);
        let hi = _mm256_unpackhi_ps(even, odd);
        store(p, _mm256_permute2f128_ps::<0x20>(lo, hi), 2 * cnt);
        if 2 * cnt > L {
            store(
                p.add(L),
                _mm256_permute2f128_ps::<0x31>(lo, hi),
                2 * cnt - L,
            );
        }
    }
}

/// One output row of 2x2 stride-2 max pooling: `out[j]` is the maximum of `r0[2j..2j + 2]`
/// and `r1[2j..2j + 2]` under PyTorch's scan rule (first maximum; NaN wins).
///
/// # Panics
/// If AVX2 is not available or `r0`/`r1` are shorter than `2 * out.len()`.
pub(crate) fn max2x2_row(r0: &[f32], r1: &[f32], out: &mut [f32]) {
    let ow = out.len();
    assert!(available(), "max2x2_row: AVX2 is not available");
    assert!(
        r0.len() >= 2 * ow && r1.len() >= 2 * ow,
        "max2x2_row: input rows too short"
    );
    // SAFETY: AVX2 checked; chunk o0..o0 + cnt reads 2 * cnt floats from 2 * o0 of each
    // input row and writes cnt floats from o0 of `out`, inside the slices.
    unsafe { max2x2_row_imp(r0.as_ptr(), r1.as_ptr(), out.as_mut_ptr(), ow) }
}

#[target_feature(enable = "avx2")]
unsafe fn max2x2_row_imp(r0: *const f32, r1: *const f32, out: *mut f32, ow: usize) {
    // SAFETY: see max2x2_row.
    unsafe {
        for o0 in (0..ow).step_by(L) {
            let cnt = (ow - o0).min(L);
            let (a, b) = deinterleave(r0.add(2 * o0), cnt);
            let (c, e) = deinterleave(r1.add(2 * o0), cnt);
            let mut m = a;
            for v in [b, c, e] {
                m = _mm256_blendv_ps(m, v, takes(v, m));
            }
            store(out.add(o0), m, cnt);
        }
    }
}

/// Backward of [`max2x2_row`]: each `dy[j]` goes to the element of its window the forward
/// picked (the last one PyTorch's scan took), zeros elsewhere; writes `2 * dy.len()` floats
/// of `d0` and `d1`.
///
/// # Panics
/// If AVX2 is not available or a row is shorter than `2 * dy.len()`.
pub(crate) fn max2x2_bwd_row(r0: &[f32], r1: &[f32], dy: &[f32], d0: &mut [f32], d1: &mut [f32]) {
    let ow = dy.len();
    assert!(available(), "max2x2_bwd_row: AVX2 is not available");
    assert!(
        r0.len() >= 2 * ow && r1.len() >= 2 * ow && d0.len() >= 2 * ow && d1.len() >= 2 * ow,
        "max2x2_bwd_row: rows too short"
    );
    // SAFETY: AVX2 checked; chunk o0..o0 + cnt touches 2 * cnt floats from 2 * o0 of each
    // row and cnt floats from o0 of `dy`, inside the slices.
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

#[target_feature(enable = "avx2")]
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
        for o0 in (0..ow).step_by(L) {
            let cnt = (ow - o0).min(L);
            let (a, b) = deinterleave(r0.add(2 * o0), cnt);
            let (c, e) = deinterleave(r1.add(2 * o0), cnt);
            let tb = takes(b, a);
            let m = _mm256_blendv_ps(a, b, tb);
            let tc = takes(c, m);
            let m = _mm256_blendv_ps(m, c, tc);
            let te = takes(e, m);
            // The last element the scan took wins.
            let g = load(dy.add(o0), cnt);
            let ga = _mm256_andnot_ps(_mm256_or_ps(_mm256_or_ps(tb, tc), te), g);
            let gb = _mm256_and_ps(_mm256_andnot_ps(_mm256_or_ps(tc, te), tb), g);
            let gc = _mm256_and_ps(_mm256_andnot_ps(te, tc), g);
            let ge = _mm256_and_ps(te, g);
            interleave(d0.add(2 * o0), ga, gb, cnt);
            interleave(d1.add(2 * o0), gc, ge, cnt);
        }
    }
}

/// One output row of 2x2 stride-2 average pooling: `out[j] = ((r0[2j] + r0[2j + 1]) +
/// (r1[2j] + r1[2j + 1])) * 0.25`, the same association as the scalar loop.
///
/// # Panics
/// If AVX2 is not available or `r0`/`r1` are shorter than `2 * out.len()`.
pub(crate) fn avg2x2_row(r0: &[f32], r1: &[f32], out: &mut [f32]) {
    let ow = out.len();
    assert!(available(), "avg2x2_row: AVX2 is not available");
    assert!(
        r0.len() >= 2 * ow && r1.len() >= 2 * ow,
        "avg2x2_row: input rows too short"
    );
    // SAFETY: AVX2 checked; chunk o0..o0 + cnt reads 2 * cnt floats from 2 * o0 of each
    // input row and writes cnt floats from o0 of `out`, inside the slices.
    unsafe { avg2x2_row_imp(r0.as_ptr(), r1.as_ptr(), out.as_mut_ptr(), ow) }
}

#[target_feature(enable = "avx2")]
unsafe fn avg2x2_row_imp(r0: *const f32, r1: *const f32, out: *mut f32, ow: usize) {
    // SAFETY: see avg2x2_row.
    unsafe {
        let quarter = _mm256_set1_ps(0.25);
        for o0 in (0..ow).step_by(L) {
            let cnt = (ow - o0).min(L);
            let (a, b) = deinterleave(r0.add(2 * o0), cnt);
            let (c, e) = deinterleave(r1.add(2 * o0), cnt);
            let s = _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, e));
            store(out.add(o0), _mm256_mul_ps(s, quarter), cnt);
        }
    }
}

/// Backward of [`avg2x2_row`]: `dy[j] * 0.25` into the four elements of window `j` (writes
/// `2 * dy.len()` floats of `d0` and `d1`).
///
/// # Panics
/// If AVX2 is not available or a row is shorter than `2 * dy.len()`.
pub(crate) fn avg2x2_bwd_row(dy: &[f32], d0: &mut [f32], d1: &mut [f32]) {
    let ow = dy.len();
    assert!(available(), "avg2x2_bwd_row: AVX2 is not available");
    assert!(
        d0.len() >= 2 * ow && d1.len() >= 2 * ow,
        "avg2x2_bwd_row: rows too short"
    );
    // SAFETY: AVX2 checked; chunk o0..o0 + cnt reads cnt floats from o0 of `dy` and writes
    // 2 * cnt floats from 2 * o0 of each row, inside the slices.
    unsafe { avg2x2_bwd_row_imp(dy.as_ptr(), d0.as_mut_ptr(), d1.as_mut_ptr(), ow) }
}

#[target_feature(enable = "avx2")]
unsafe fn avg2x2_bwd_row_imp(dy: *const f32, d0: *mut f32, d1: *mut f32, ow: usize) {
    // SAFETY: see avg2x2_bwd_row.
    unsafe {
        let quarter = _mm256_set1_ps(0.25);
        for o0 in (0..ow).step_by(L) {
            let cnt = (ow - o0).min(L);
            let g = _mm256_mul_ps(load(dy.add(o0), cnt), quarter);
            interleave(d0.add(2 * o0), g, g, cnt);
            interleave(d1.add(2 * o0), g, g, cnt);
        }
    }
}

/// An 8 x 8 transpose: `dst[d[j] + i] = src[s[i] + j]` for `i, j < 8` (with `max(v, 0)`,
/// NaN kept, when `relu`), the tiles of the batch-in-lanes layout copies (`conv::lanes`).
///
/// # Panics
/// If AVX2 is not available, or a row lies outside its slice.
pub(crate) fn transpose8(src: &[f32], s: &[usize; 8], dst: &mut [f32], d: &[usize; 8], relu: bool) {
    assert!(available(), "transpose8: AVX2 is not available");
    assert!(
        s.iter().all(|&o| o + L <= src.len()) && d.iter().all(|&o| o + L <= dst.len()),
        "transpose8: a row outside the slices"
    );
    // SAFETY: AVX2 checked above; every row read or written holds 8 floats, asserted above.
    unsafe { transpose8_imp(src.as_ptr(), s, dst.as_mut_ptr(), d, relu) }
}

/// See [`transpose8`].
///
/// # Safety
/// AVX2 must be available; `src + s[i]` has 8 readable and `dst + d[j]` 8 writable floats.
#[target_feature(enable = "avx2")]
unsafe fn transpose8_imp(
    src: *const f32,
    s: &[usize; 8],
    dst: *mut f32,
    d: &[usize; 8],
    relu: bool,
) {
    // SAFETY (whole body): the rows lie where the caller vouches.
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(s[i])));
        // Pairs of rows interleaved, then quadruples, then the 128-bit halves swapped.
        let t = [
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
            _mm256_unpacklo_ps(r[6], r[7]),
            _mm256_unpackhi_ps(r[6], r[7]),
        ];
        let q = [
            _mm256_shuffle_ps::<0x44>(t[0], t[2]),
            _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
            _mm256_shuffle_ps::<0x44>(t[1], t[3]),
            _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
            _mm256_shuffle_ps::<0x44>(t[4], t[6]),
            _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
            _mm256_shuffle_ps::<0x44>(t[5], t[7]),
            _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
        ];
        let mut o = [
            _mm256_permute2f128_ps::<0x20>(q[0], q[4]),
            _mm256_permute2f128_ps::<0x20>(q[1], q[5]),
            _mm256_permute2f128_ps::<0x20>(q[2], q[6]),
            _mm256_permute2f128_ps::<0x20>(q[3], q[7]),
            _mm256_permute2f128_ps::<0x31>(q[0], q[4]),
            _mm256_permute2f128_ps::<0x31>(q[1], q[5]),
            _mm256_permute2f128_ps::<0x31>(q[2], q[6]),
            _mm256_permute2f128_ps::<0x31>(q[3], q[7]),
        ];
        if relu {
            // `max_ps` returns its second operand when either is NaN: NaN stays.
            let zero = _mm256_setzero_ps();
            for v in o.iter_mut() {
                *v = _mm256_max_ps(zero, *v);
            }
        }
        for (j, v) in o.iter().enumerate() {
            _mm256_storeu_ps(dst.add(d[j]), *v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm::pack_a;
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 20) as f32 / 4096.0
                    - 0.5
            })
            .collect()
    }

    /// The CPU lacks AVX2 + FMA: say so (the test cannot check anything here).
    fn skip() -> bool {
        if available() {
            return false;
        }
        // Straight to stderr: libtest captures eprintln!, and CI must show the skip.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIP: this CPU has no AVX2 + FMA; the AVX2 kernels are not tested"
        );
        true
    }

    /// Every block shape and tail: against a plain triple loop, each
    /// initialisation, nothing written past `n`.
    #[test]
    fn nn_matches_loops() {
        if skip() {
            return;
        }
        for (m, n, k) in [
            (1, 1, 1),
            (4, 24, 5),
            (6, 16, 7),
            (6, 784, 25),
            (9, 17, 3),
            (16, 100, 150),
            (25, 49, 0),
            (13, 97, 33),
            (12, 23, 4),
            (30, 41, 9),
        ] {
            {
                let mr = MR;
                let a = data(m * k, 1);
                let (ldb, ldc) = (n + 3, n + 1);
                let bias = data(m, 3);
                let mut ap = vec![0.0; m * k];
                pack_a(mr, m, k, &a, k, 1, &mut ap);
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
                                "mr {mr} ({m},{n},{k}) {init:?} c[{i},{j}] = {got}, want {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Max pooling rows with ties, NaNs and infinities against PyTorch's scan, written out;
    /// nothing written past the row.
    #[test]
    fn max2x2_rows_follow_the_scan() {
        if skip() {
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
        for ow in [1usize, 3, 4, 5, 8, 9, 16, 17, 33] {
            let pick = |i: usize, s: usize| vals[(i * 7 + s * 3 + i / 5) % vals.len()];
            let r0: Vec<f32> = (0..2 * ow).map(|i| pick(i, 1)).collect();
            let r1: Vec<f32> = (0..2 * ow).map(|i| pick(i, 2)).collect();
            let dy: Vec<f32> = (0..ow).map(|j| j as f32 + 1.0).collect();
            let mut out = vec![7.0; ow + 1];
            max2x2_row(&r0, &r1, &mut out[..ow]);
            assert_eq!(out[ow], 7.0, "ow {ow}: wrote past the row");
            let (mut d0, mut d1) = (vec![7.0; 2 * ow + 1], vec![7.0; 2 * ow + 1]);
            max2x2_bwd_row(&r0, &r1, &dy, &mut d0[..2 * ow], &mut d1[..2 * ow]);
            assert_eq!((d0[2 * ow], d1[2 * ow]), (7.0, 7.0), "ow {ow}: wrote past");
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
                    "ow {ow} out[{j}] = {}, want {best}",
                    out[j]
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
        if skip() {
            return;
        }
        for ow in [1usize, 4, 5, 8, 9, 16, 17, 40] {
            let r0 = data(2 * ow, 21);
            let r1 = data(2 * ow, 22);
            let mut out = vec![7.0; ow + 1];
            avg2x2_row(&r0, &r1, &mut out[..ow]);
            assert_eq!(out[ow], 7.0, "wrote past the row");
            let dy = data(ow, 23);
            let (mut d0, mut d1) = (vec![7.0; 2 * ow + 1], vec![7.0; 2 * ow + 1]);
            avg2x2_bwd_row(&dy, &mut d0[..2 * ow], &mut d1[..2 * ow]);
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
