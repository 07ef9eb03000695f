//! Fused log-softmax + negative log-likelihood (cross-entropy with mean reduction) and its
//! gradient, one pass over the logits each.

use crate::error::{check_len, KernelError, Result};

/// Checks `logits` `[labels.len(), classes]` and every label `< classes`.
fn check(logits: &[f32], labels: &[usize], classes: usize, op: &'static str) -> Result<()> {
    check_len(logits, labels.len() * classes, op, "logits")?;
    match labels.iter().find(|&&l| l >= classes) {
        Some(&label) => Err(KernelError::Label { label, classes }),
        None => Ok(()),
    }
}

/// Per row of `logits` `[rows, classes]`: `log(sum(exp(x))) - x[label]`, summed over rows in
/// `f64` and divided by `rows`.
///
/// # Errors
/// [`KernelError::Length`] when `logits` is not `[labels.len(), classes]`,
/// [`KernelError::Label`] when a label is not `< classes`.
pub fn cross_entropy_fwd(logits: &[f32], labels: &[usize], classes: usize) -> Result<f32> {
    check(logits, labels, classes, "cross_entropy")?;
    let rows = labels.len();
    let mut total = 0f64;
    for (row, &label) in logits.chunks_exact(classes).zip(labels) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = row.iter().map(|&v| (v - m).exp()).sum();
        total += f64::from(m + s.ln() - row[label]);
    }
    Ok((total / rows.max(1) as f64) as f32)
}

/// The gradient of [`cross_entropy_fwd`] times `g`: `g / rows * (softmax(x) - onehot(label))`.
///
/// # Errors
/// As [`cross_entropy_fwd`].
pub fn cross_entropy_bwd(
    logits: &[f32],
    labels: &[usize],
    classes: usize,
    g: f32,
) -> Result<Vec<f32>> {
    check(logits, labels, classes, "cross_entropy grad")?;
    let scale = g / labels.len().max(1) as f32;
    let mut dx = vec![0f32; logits.len()];
    for ((row, d), &label) in logits
        .chunks_exact(classes)
        .zip(dx.chunks_exact_mut(classes))
        .zip(labels)
    {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0f32;
        for (d, &v) in d.iter_mut().zip(row) {
            *d = (v - m).exp();
            s += *d;
        }
        let k = scale / s;
        for d in d.iter_mut() {
            *d *= k;
        }
        d[label] -= scale;
    }
    Ok(dx)
}
