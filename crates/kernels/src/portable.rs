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
