//! Register-blocked kernels for the portable path, on the `wide` crate's 128-bit vectors:
//! no `std::arch` intrinsics of ours, one source for SSE2 (x86-64's baseline), NEON (aarch64)
//! and plain arrays elsewhere. (LLVM vectorises the same loop over plain `[f32; 4]` lane
//! arrays across the wrong dimension, with shuffles and spills: 4x slower.)

use crate::gemm::DotBlock;
use wide::f32x4;

/// Reads 4 floats at `p`.
///
/// # Safety
/// 4 floats must be readable at `p` (any alignment).
#[inline(always)]
unsafe fn lanes(p: *const f32) -> f32x4 {
    // SAFETY: the caller vouches for the 4 floats; read_unaligned needs no alignment.
    f32x4::from(unsafe { p.cast::<[f32; 4]>().read_unaligned() })
}

/// One `R x C` block of `gemm::gemm_nt_dot`: `c[r * ldc + j] += sum over images t of
/// a[t * a_img + r * lda..][..len] . b[t * b_img + offs[j]..][..len]`, each of the
/// `R * C` sums kept in one vector of 4 lane-wise partial sums and reduced once at the end.
/// 12 accumulators plus the 2 + 1 operand vectors fit SSE2's 16 registers (aarch64 has 32).
///
/// # Safety
/// For each image `t < imgs`, rows `0..R` of `a` (from `t * a_img`, stride `lda`) and the
/// `C` rows of `b` at `b + t * b_img + offs[j]` have `len` readable floats; `c` rows `0..R`
/// (stride `ldc`) have `C` writable floats.
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
    let mut acc = [[f32x4::ZERO; C]; R];
    let mut tail = [[0f32; C]; R];
    let full = len / 4 * 4;
    // SAFETY (whole body): every pointer offset stays inside the ranges the caller vouches for.
    unsafe {
        for t in 0..imgs {
            let a = a.add(t * a_img);
            let brow: [*const f32; C] = std::array::from_fn(|j| b.add(t * b_img + *offs.add(j)));
            let mut p = 0;
            while p < full {
                let av: [f32x4; R] = std::array::from_fn(|r| lanes(a.add(r * lda + p)));
                for (j, row) in brow.iter().enumerate() {
                    let bv = lanes(row.add(p));
                    for (acc, av) in acc.iter_mut().zip(&av) {
                        acc[j] = av.mul_add(bv, acc[j]);
                    }
                }
                p += 4;
            }
            for p in full..len {
                for (r, tail) in tail.iter_mut().enumerate() {
                    let av = *a.add(r * lda + p);
                    for (j, row) in brow.iter().enumerate() {
                        tail[j] += av * *row.add(p);
                    }
                }
            }
        }
        for (r, (acc, tail)) in acc.iter().zip(&tail).enumerate() {
            for (j, (v, t)) in acc.iter().zip(tail).enumerate() {
                *c.add(r * ldc + j) += v.reduce_add() + t;
            }
        }
    }
}

/// The [`dot_block`] of a `rows x cols` block (at most `DOT_MR x DOT_NR`), for
/// `gemm::gemm_nt_dot`.
///
/// # Panics
/// If the block is larger.
pub(crate) fn dot_block_for(rows: usize, cols: usize) -> DotBlock {
    const_dispatch!(dot_block as DotBlock, rows => [1, 2], cols => [1, 2, 3, 4, 5, 6])
}

/// The even and the odd elements of 8 consecutive floats: the left and right columns of
/// four 2x2 windows along a row.
#[inline(always)]
fn columns(p: &[f32]) -> (f32x4, f32x4) {
    (
        f32x4::from([p[0], p[2], p[4], p[6]]),
        f32x4::from([p[1], p[3], p[5], p[7]]),
    )
}

/// PyTorch's max-pool scan rule on four lanes: where `v` is greater than `best` or NaN.
#[inline(always)]
fn takes(v: f32x4, best: f32x4) -> f32x4 {
    v.simd_gt(best) | v.is_nan()
}

/// 2x2 stride-2 max pooling of one row pair, four outputs at a time: `out[j]` the scan's
/// pick over `r0[2j], r0[2j + 1], r1[2j], r1[2j + 1]` (the first maximum, NaN wins), as the
/// scalar loop and the AVX kernels. Returns how many outputs it wrote (a multiple of 4; the
/// caller does the rest).
pub(crate) fn max2x2_row(r0: &[f32], r1: &[f32], out: &mut [f32]) -> usize {
    let n = out.len() / 4 * 4;
    for ((o, p0), p1) in out[..n]
        .chunks_exact_mut(4)
        .zip(r0.chunks_exact(8))
        .zip(r1.chunks_exact(8))
    {
        let ((a, b), (c, e)) = (columns(p0), columns(p1));
        let m = takes(b, a).select(b, a);
        let m = takes(c, m).select(c, m);
        let m = takes(e, m).select(e, m);
        o.copy_from_slice(m.as_array());
    }
    n
}

/// Backward of [`max2x2_row`]: each output's gradient `dy[j]` to the element of its window
/// the scan took last, zeros elsewhere; writes `2 * n` floats of `d0` and `d1` and returns
/// `n`, the outputs done (a multiple of 4; the caller does the rest).
pub(crate) fn max2x2_bwd_row(
    r0: &[f32],
    r1: &[f32],
    dy: &[f32],
    d0: &mut [f32],
    d1: &mut [f32],
) -> usize {
    let n = dy.len() / 4 * 4;
    let zero = f32x4::ZERO;
    for ((((g, p0), p1), q0), q1) in dy[..n]
        .chunks_exact(4)
        .zip(r0.chunks_exact(8))
        .zip(r1.chunks_exact(8))
        .zip(d0.chunks_exact_mut(8))
        .zip(d1.chunks_exact_mut(8))
    {
        let ((a, b), (c, e)) = (columns(p0), columns(p1));
        let tb = takes(b, a);
        let m = tb.select(b, a);
        let tc = takes(c, m);
        let m = tc.select(c, m);
        let te = takes(e, m);
        let g = f32x4::from([g[0], g[1], g[2], g[3]]);
        // The last element the scan took wins.
        let ge = te.select(g, zero);
        let gc = te.select(zero, tc.select(g, zero));
        let gb = (tc | te).select(zero, tb.select(g, zero));
        let ga = (tb | tc | te).select(zero, g);
        let (ga, gb, gc, ge) = (ga.as_array(), gb.as_array(), gc.as_array(), ge.as_array());
        for j in 0..4 {
            q0[2 * j] = ga[j];
            q0[2 * j + 1] = gb[j];
            q1[2 * j] = gc[j];
            q1[2 * j + 1] = ge[j];
        }
    }
    n
}
