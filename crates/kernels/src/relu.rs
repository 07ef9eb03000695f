//! ReLU kernels: `y = max(x, 0)` and its gradient `dx = dy * (y > 0)`, one pass each, with
//! PyTorch's NaN semantics (a NaN input stays NaN and passes its gradient through, so a
//! diverging network shows NaN instead of training on at chance level),
//! elementwise (so split over threads in fixed chunks, with the same result on any split).
//! The outputs are collected straight into fresh vectors: no zero fill first.

use crate::error::{check_len, Result};
use rayon::prelude::*;

/// One element of ReLU: `max(x, 0)`, but NaN stays NaN (`f32::max` would return 0).
#[inline(always)]
pub(crate) fn relu1(x: f32) -> f32 {
    if x.is_nan() {
        x
    } else {
        x.max(0.0)
    }
}

/// Elements per rayon task; below [`SERIAL`] the kernels run on the calling thread.
const CHUNK: usize = 1 << 15;
/// Below this many elements a second thread costs more than it saves.
const SERIAL: usize = 1 << 18;

/// `max(x, 0)`, NaN kept (`torch.relu`; candle's own `relu` turns NaN into 0).
pub fn relu_fwd(x: &[f32]) -> Vec<f32> {
    let f = |&x: &f32| relu1(x);
    if x.len() < SERIAL {
        return x.iter().map(f).collect();
    }
    let mut y = Vec::new();
    x.par_iter()
        .with_min_len(CHUNK)
        .map(f)
        .collect_into_vec(&mut y);
    y
}

/// `max(a + b, 0)` (NaN kept, as in [`relu_fwd`]).
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `b` is not as long as `a`.
pub fn add_relu_fwd(a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    check_len(b, a.len(), "add_relu", "second operand")?;
    let f = |(&a, &b): (&f32, &f32)| relu1(a + b);
    if a.len() < SERIAL {
        return Ok(a.iter().zip(b).map(f).collect());
    }
    let mut y = Vec::new();
    a.par_iter()
        .zip(b)
        .with_min_len(CHUNK)
        .map(f)
        .collect_into_vec(&mut y);
    Ok(y)
}

/// `a = max(a + b, 0)` in place (NaN kept, as in [`relu_fwd`]): a residual join written
/// into the tensor that is joined.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `b` is not as long as `a`.
pub fn add_relu_assign(a: &mut [f32], b: &[f32]) -> Result<()> {
    zip_assign(a, b, "add_relu", |a, b| *a = relu1(*a + b))
}

/// `a += b` elementwise, in parallel for long slices: two gradient contributions summed in
/// place (a residual block's input gets one through its convolutions and one through its
/// shortcut).
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `b` is not as long as `a`.
pub fn add_assign(a: &mut [f32], b: &[f32]) -> Result<()> {
    zip_assign(a, b, "add", |a, b| *a += b)
}

/// `f(a[i], b[i])` for every element, on rayon for long slices; `b` must be as long as `a`
/// (an error naming `op` otherwise).
fn zip_assign(
    a: &mut [f32],
    b: &[f32],
    op: &'static str,
    f: impl Fn(&mut f32, f32) + Sync + Send,
) -> Result<()> {
    check_len(b, a.len(), op, "second operand")?;
    let f = |(a, &b): (&mut f32, &f32)| f(a, b);
    if a.len() < SERIAL {
        a.iter_mut().zip(b).for_each(f);
    } else {
        a.par_iter_mut().zip(b).with_min_len(CHUNK).for_each(f);
    }
    Ok(())
}

/// `y <= 0 ? 0 : dy` (PyTorch's `threshold_backward`: a NaN output passes the gradient),
/// from the forward's output `y`.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `dy` is not as long as `y`.
pub fn relu_bwd(y: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    check_len(dy, y.len(), "relu grad", "output gradient")?;
    let f = |(&y, &g): (&f32, &f32)| if y <= 0.0 { 0.0 } else { g };
    if y.len() < SERIAL {
        return Ok(y.iter().zip(dy).map(f).collect());
    }
    let mut dx = Vec::new();
    y.par_iter()
        .zip(dy)
        .with_min_len(CHUNK)
        .map(f)
        .collect_into_vec(&mut dx);
    Ok(dx)
}
