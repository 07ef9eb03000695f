//! Batch normalisation in training mode (batch statistics) for `[b, c, h, w]` tensors:
//! per-channel statistics, the normalisation, and its backward, each one pass over the data.
//! Sums are taken in `f64`, channel by channel in a fixed order (deterministic), with eight
//! accumulators per sum so that they vectorise instead of waiting on one long chain of adds.

use crate::error::{check_len, Result};
use rayon::prelude::*;

/// `sum(f(v))` over `xs` in `f64`: eight interleaved partial sums added in a fixed order.
#[inline]
fn sum_f64(xs: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(f64::from(v));
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for &v in chunks.remainder() {
        s += f(f64::from(v));
    }
    s
}

/// `(sum(dy), sum(dy * (x - mu)))` over one plane, as [`sum_f64`] does.
#[inline]
fn sum_dy_dyx(dy: &[f32], x: &[f32], mu: f64) -> (f64, f64) {
    let (mut a, mut b) = ([0f64; 8], [0f64; 8]);
    let (mut gc, mut xc) = (dy.chunks_exact(8), x.chunks_exact(8));
    for (g, v) in (&mut gc).zip(&mut xc) {
        for j in 0..8 {
            let g = f64::from(g[j]);
            a[j] += g;
            b[j] += g * (f64::from(v[j]) - mu);
        }
    }
    let fold = |s: [f64; 8]| ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    let (mut sa, mut sb) = (fold(a), fold(b));
    for (&g, &v) in gc.remainder().iter().zip(xc.remainder()) {
        sa += f64::from(g);
        sb += f64::from(g) * (f64::from(v) - mu);
    }
    (sa, sb)
}

/// Per channel of `x` `[b, c, hw]`: the mean and the biased variance (two-pass).
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `x` is not `b * c * hw` long.
pub fn channel_stats(x: &[f32], b: usize, c: usize, hw: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    check_len(x, b * c * hw, "batch_norm2d", "input")?;
    let m = (b * hw).max(1) as f64;
    let stats: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = (0..b).map(|i| &x[(i * c + ch) * hw..][..hw]);
            let sum: f64 = planes.clone().map(|p| sum_f64(p, |v| v)).sum();
            let mean = sum / m;
            let sq: f64 = planes
                .map(|p| sum_f64(p, |v| (v - mean) * (v - mean)))
                .sum();
            (mean as f32, (sq / m) as f32)
        })
        .collect();
    Ok(stats.into_iter().unzip())
}

/// `y = x * scale[ch] + shift[ch]`, then `max(y, 0)` (NaN kept) when `relu`, parallel over
/// images; `x` is `[b, c, hw]`.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when `scale` or `shift` is not `c`
/// long, or `x` not a whole number of `[c, hw]` images.
pub fn scale_shift(
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    c: usize,
    hw: usize,
    relu: bool,
) -> Result<Vec<f32>> {
    check_len(scale, c, "batch_norm2d", "scale")?;
    check_len(shift, c, "batch_norm2d", "shift")?;
    let img = (c * hw).max(1);
    check_len(x, x.len() / img * img, "batch_norm2d", "input")?;
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(c * hw)
        .zip(x.par_chunks(c * hw))
        .for_each(|(y, x)| {
            for ch in 0..c {
                let (s, t) = (scale[ch], shift[ch]);
                let (y, x) = (&mut y[ch * hw..][..hw], &x[ch * hw..][..hw]);
                if relu {
                    // candle's and our ReLU: max(v, 0), NaN becomes 0.
                    for (o, &v) in y.iter_mut().zip(x) {
                        *o = super::relu::relu1(v * s + t);
                    }
                } else {
                    for (o, &v) in y.iter_mut().zip(x) {
                        *o = v * s + t;
                    }
                }
            }
        });
    Ok(y)
}

/// Batch normalisation forward with fixed statistics: `y = (x - mean) * invstd * gamma +
/// beta` per channel of `x` `[b, c, hw]` (then `max(y, 0)` when `relu`), through
/// [`scale_shift`].
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when a slice does not have the
/// length the sizes imply.
pub fn bn_fwd(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    invstd: &[f32],
    (b, c, hw): (usize, usize, usize),
    relu: bool,
) -> Result<Vec<f32>> {
    let op = "batch_norm2d";
    check_len(x, b * c * hw, op, "input")?;
    check_len(gamma, c, op, "weight")?;
    check_len(beta, c, op, "bias")?;
    check_len(mean, c, op, "mean")?;
    check_len(invstd, c, op, "inverse standard deviation")?;
    let scale: Vec<f32> = (0..c).map(|ch| gamma[ch] * invstd[ch]).collect();
    let shift: Vec<f32> = (0..c).map(|ch| beta[ch] - mean[ch] * scale[ch]).collect();
    scale_shift(x, &scale, &shift, c, hw, relu)
}

/// Gradients of `y = (x - mean) * invstd * gamma + beta` with batch statistics: returns
/// `(dx, dgamma, dbeta)`; `x` and `dy` are `[b, c, hw]`, the others `[c]`.
///
/// # Errors
/// [`KernelError::Length`](crate::KernelError::Length) when a slice does not have the
/// length the sizes imply.
pub fn bn_bwd(
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    invstd: &[f32],
    gamma: &[f32],
    (b, c, hw): (usize, usize, usize),
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let op = "batch_norm2d backward";
    check_len(x, b * c * hw, op, "input")?;
    check_len(dy, b * c * hw, op, "output gradient")?;
    check_len(mean, c, op, "mean")?;
    check_len(invstd, c, op, "inverse standard deviation")?;
    check_len(gamma, c, op, "weight")?;
    let m = (b * hw).max(1) as f64;
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mu, is) = (f64::from(mean[ch]), f64::from(invstd[ch]));
            let (mut sdy, mut sdyx) = (0f64, 0f64);
            for i in 0..b {
                let o = (i * c + ch) * hw;
                let (a, d) = sum_dy_dyx(&dy[o..][..hw], &x[o..][..hw], mu);
                sdy += a;
                sdyx += d;
            }
            (sdy, sdyx * is)
        })
        .collect();
    let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
    // dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
    let k: Vec<f32> = (0..c).map(|ch| gamma[ch] * invstd[ch]).collect();
    let mdy: Vec<f32> = sums.iter().map(|s| (s.0 / m) as f32).collect();
    let mdyx: Vec<f32> = sums.iter().map(|s| (s.1 / m) as f32).collect();
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(c * hw)
        .zip(x.par_chunks(c * hw).zip(dy.par_chunks(c * hw)))
        .for_each(|(dx, (x, dy))| {
            for ch in 0..c {
                let (mu, is, kk, a, bb) = (mean[ch], invstd[ch], k[ch], mdy[ch], mdyx[ch]);
                let r = ch * hw..(ch + 1) * hw;
                for ((o, &v), &g) in dx[r.clone()].iter_mut().zip(&x[r.clone()]).zip(&dy[r]) {
                    *o = kk * (g - a - (v - mu) * is * bb);
                }
            }
        });
    Ok((dx, dgamma, dbeta))
}
