//! Batch normalisation in training mode (batch statistics) for `[b, c, h, w]` tensors:
//! per-channel statistics, the normalisation, and its backward, each one pass over the data.
//! Sums are taken in `f64`, channel by channel in a fixed order (deterministic).

use rayon::prelude::*;

/// Per channel of `x` `[b, c, hw]`: the mean and the biased variance (two-pass).
pub(crate) fn channel_stats(x: &[f32], b: usize, c: usize, hw: usize) -> (Vec<f32>, Vec<f32>) {
    let m = (b * hw).max(1) as f64;
    let stats: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = (0..b).map(|i| &x[(i * c + ch) * hw..][..hw]);
            let sum: f64 = planes
                .clone()
                .map(|p| p.iter().map(|&v| f64::from(v)).sum::<f64>())
                .sum();
            let mean = sum / m;
            let sq: f64 = planes
                .map(|p| {
                    p.iter()
                        .map(|&v| (f64::from(v) - mean).powi(2))
                        .sum::<f64>()
                })
                .sum();
            (mean as f32, (sq / m) as f32)
        })
        .collect();
    stats.into_iter().unzip()
}

/// `y = x * scale[ch] + shift[ch]`, parallel over images.
pub(crate) fn scale_shift(
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    c: usize,
    hw: usize,
) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(c * hw)
        .zip(x.par_chunks(c * hw))
        .for_each(|(y, x)| {
            for ch in 0..c {
                let (s, t) = (scale[ch], shift[ch]);
                for (o, &v) in y[ch * hw..][..hw].iter_mut().zip(&x[ch * hw..][..hw]) {
                    *o = v * s + t;
                }
            }
        });
    y
}

/// Gradients of `y = (x - mean) * invstd * gamma + beta` with batch statistics: returns
/// `(dx, dgamma, dbeta)`.
pub(crate) fn bn_bwd(
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    invstd: &[f32],
    gamma: &[f32],
    (b, c, hw): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let m = (b * hw).max(1) as f64;
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mu, is) = (f64::from(mean[ch]), f64::from(invstd[ch]));
            let (mut sdy, mut sdyx) = (0f64, 0f64);
            for i in 0..b {
                let o = (i * c + ch) * hw;
                for (&g, &v) in dy[o..][..hw].iter().zip(&x[o..][..hw]) {
                    sdy += f64::from(g);
                    sdyx += f64::from(g) * (f64::from(v) - mu) * is;
                }
            }
            (sdy, sdyx)
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
    (dx, dgamma, dbeta)
}
