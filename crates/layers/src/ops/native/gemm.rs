//! A checked, safe wrapper around `gemm::gemm` for `f32`, and thread-local scratch buffers.

use gemm::Parallelism;
use std::cell::RefCell;

/// A row-major-or-strided matrix view: `data[i * rs + j * cs]` is element `(i, j)`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

/// `dst[m, n] (+)= lhs[m, k] @ rhs[k, n]`; `dst` is row-major with row stride `dst_rs`.
/// Accumulates into `dst` when `accumulate`, overwrites it otherwise.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    // The bounds checks that make the raw-pointer call below sound.
    assert!(last(m, n, dst_rs, 1) < dst.len(), "sgemm: dst too small");
    assert!(
        last(m, k, lhs.rs, lhs.cs) < lhs.data.len(),
        "sgemm: lhs too small"
    );
    assert!(
        last(k, n, rhs.rs, rhs.cs) < rhs.data.len(),
        "sgemm: rhs too small"
    );
    // SAFETY: every element addressed by (m, n, k) and the strides lies inside the slices
    // (checked above); `dst` is borrowed mutably so it does not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a thread-local scratch buffer of at least `len` elements (contents
/// unspecified). The buffer is taken out of the thread-local pool while `f` runs, so nested
/// calls on the same thread (rayon work stealing) get their own.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.with(|s| s.borrow_mut().push(buf));
    r
}
