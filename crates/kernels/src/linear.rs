//! Fully connected layer kernels: `y = x W^T + b` and its gradients, each one `gemm` split
//! over both threads (candle's own matmul runs on `CANDLE_NUM_THREADS`, one thread here).

use super::gemm::{gemm_nt_gather, nt_gather_batches, sgemm, Mat, NtBatch};
use crate::error::{check_len, Result};
use gemm::Parallelism;
use rayon::prelude::*;

/// Multiply-adds from which the forward runs as dot products in our kernels rather than in
/// `gemm` (SimpleCNN's fc1, 134 M: 2.5x faster; MnistNet's 1 M-sized layers were 5 % slower
/// split over two threads that way).
const DOT_MIN: usize = 1 << 24;

fn par(m: usize, n: usize, k: usize) -> Parallelism {
    // Below ~64k multiply-adds a second thread costs more than it saves.
    if m * n * k < 1 << 16 {
        Parallelism::None
    } else {
        Parallelism::Rayon(rayon::current_num_threads())
    }
}

/// `y[rows, out] = x[rows, in] @ w[out, in]^T (+ b)`.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when a slice does not have the
/// length the sizes imply.
pub fn linear_fwd(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    rows: usize,
    n_in: usize,
    n_out: usize,
) -> Result<Vec<f32>> {
    check_len(x, rows * n_in, "linear", "input")?;
    check_len(w, n_out * n_in, "linear", "weight")?;
    if let Some(b) = b {
        check_len(b, n_out, "linear", "bias")?;
    }
    let mut y = vec![0f32; rows * n_out];
    if let Some(b) = b {
        for row in y.chunks_exact_mut(n_out) {
            row.copy_from_slice(b);
        }
    }
    if nt_gather_batches() && rows * n_out * n_in >= DOT_MIN {
        // With the AVX2 / AVX-512 kernels: each output is a dot product of a row of `x` and a
        // row of `w`, both contiguous, the weight-gradient kernel of the convolutions. `gemm`
        // reads `w^T` with a column stride and ran fc1 of SimpleCNN (128 x 2048 -> 512) at
        // a quarter of its speed on row-major operands.
        let offs: Vec<usize> = (0..n_out).map(|j| j * n_in).collect();
        let per = if matches!(par(rows, n_out, n_in), Parallelism::None) {
            rows
        } else {
            rows.div_ceil(rayon::current_num_threads()).max(1)
        };
        y.par_chunks_mut(per * n_out)
            .enumerate()
            .for_each(|(i, yc)| {
                let r0 = i * per;
                let r = yc.len() / n_out;
                gemm_nt_gather(
                    r,
                    n_out,
                    n_in,
                    NtBatch::one(),
                    &x[r0 * n_in..(r0 + r) * n_in],
                    n_in,
                    w,
                    &offs,
                    yc,
                    n_out,
                );
            });
        return Ok(y);
    }
    let lhs = Mat {
        data: x,
        rs: n_in,
        cs: 1,
    };
    // w^T: element (i, j) of [in, out] is w[j, i].
    let rhs = Mat {
        data: w,
        rs: 1,
        cs: n_in,
    };
    sgemm(
        rows,
        n_out,
        n_in,
        &mut y,
        n_out,
        b.is_some(),
        lhs,
        rhs,
        par(rows, n_out, n_in),
    );
    Ok(y)
}

/// `dx[rows, in] = dy[rows, out] @ w[out, in]`.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when a slice does not have the
/// length the sizes imply.
pub fn linear_bwd_input(
    dy: &[f32],
    w: &[f32],
    rows: usize,
    n_in: usize,
    n_out: usize,
) -> Result<Vec<f32>> {
    check_len(dy, rows * n_out, "linear input grad", "output gradient")?;
    check_len(w, n_out * n_in, "linear input grad", "weight")?;
    let mut dx = vec![0f32; rows * n_in];
    let lhs = Mat {
        data: dy,
        rs: n_out,
        cs: 1,
    };
    let rhs = Mat {
        data: w,
        rs: n_in,
        cs: 1,
    };
    sgemm(
        rows,
        n_in,
        n_out,
        &mut dx,
        n_in,
        false,
        lhs,
        rhs,
        par(rows, n_in, n_out),
    );
    Ok(dx)
}

/// `dw[out, in] = dy[rows, out]^T @ x[rows, in]`.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when a slice does not have the
/// length the sizes imply.
pub fn linear_bwd_weight(
    x: &[f32],
    dy: &[f32],
    rows: usize,
    n_in: usize,
    n_out: usize,
) -> Result<Vec<f32>> {
    check_len(x, rows * n_in, "linear weight grad", "input")?;
    check_len(dy, rows * n_out, "linear weight grad", "output gradient")?;
    let mut dw = vec![0f32; n_out * n_in];
    // dy^T: element (i, j) of [out, rows] is dy[j, i].
    let lhs = Mat {
        data: dy,
        rs: 1,
        cs: n_out,
    };
    let rhs = Mat {
        data: x,
        rs: n_in,
        cs: 1,
    };
    sgemm(
        n_out,
        n_in,
        rows,
        &mut dw,
        n_in,
        false,
        lhs,
        rhs,
        par(n_out, n_in, rows),
    );
    Ok(dw)
}

/// `db[out] = sum over rows of dy[rows, out]`.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when a slice does not have the
/// length the sizes imply.
pub fn linear_bwd_bias(dy: &[f32], rows: usize, n_out: usize) -> Result<Vec<f32>> {
    check_len(dy, rows * n_out, "linear bias grad", "output gradient")?;
    let mut db = vec![0f32; n_out];
    for row in dy.chunks_exact(n_out) {
        for (a, b) in db.iter_mut().zip(row) {
            *a += *b;
        }
    }
    Ok(db)
}
