//! Every kernel on the path `CONVNETS_ISA` selects (CI runs this binary once per path the
//! machine has) against plain loops written from the definitions: convolution forward and
//! gradients over random geometries (strides, padding, dilation, groups, the stride-1 and
//! pointwise fast paths, the kept unfolded input), pooling, ReLU, batch norm's statistics and
//! backward (against sums in `f64`).

use convnets_kernels::{
    conv, isa, norm, pool, relu, Conv2dParams, ConvGeometry, Pool2dParams, PoolDims,
};
use proptest::prelude::*;

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn close(what: &str, got: &[f32], want: &[f32]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{}: lengths differ", what);
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            (a - b).abs() <= 1e-4 * scale,
            "{}[{}] on {}: got {}, want {} (scale {})",
            what,
            i,
            isa(),
            a,
            b,
            scale
        );
    }
    Ok(())
}

/// Calls `f(x_index, w_index, y_index)` for every multiply-add of the convolution `g`.
fn each_mac(g: &ConvGeometry, mut f: impl FnMut(usize, usize, usize)) {
    let p = &g.p;
    let (cg, og) = (g.c_in / p.groups, g.c_out / p.groups);
    for b in 0..g.b {
        for o in 0..g.c_out {
            let grp = o / og;
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let yi = ((b * g.c_out + o) * g.oh + oy) * g.ow + ox;
                    for c in 0..cg {
                        for ki in 0..g.kh {
                            for kj in 0..g.kw {
                                let iy = (oy * p.stride[0] + ki * p.dilation[0]) as isize
                                    - p.padding[0] as isize;
                                let ix = (ox * p.stride[1] + kj * p.dilation[1]) as isize
                                    - p.padding[1] as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let xi = ((b * g.c_in + grp * cg + c) * g.h + iy as usize) * g.w
                                    + ix as usize;
                                let wi = ((o * cg + c) * g.kh + ki) * g.kw + kj;
                                f(xi, wi, yi);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn fail(e: convnets_kernels::KernelError) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn check_conv(
    x_dims: [usize; 4],
    c_out: usize,
    k: [usize; 2],
    p: Conv2dParams,
    keep_col: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let w_dims = [c_out, x_dims[1] / p.groups, k[0], k[1]];
    let g = ConvGeometry::new(&x_dims, &w_dims, Some(&[c_out]), &p).map_err(fail)?;
    let len = |d: [usize; 4]| d.iter().product::<usize>();
    let x = values(len(x_dims), seed);
    let w = values(len(w_dims), seed + 1);
    let bias = values(c_out, seed + 2);
    let dy = values(len(g.output_dims()), seed + 3);
    let n = g.oh * g.ow;
    // The definitions.
    let mut y: Vec<f32> = (0..dy.len()).map(|i| bias[(i / n) % c_out]).collect();
    let (mut dx, mut dw) = (vec![0f32; x.len()], vec![0f32; w.len()]);
    each_mac(&g, |xi, wi, yi| {
        y[yi] += x[xi] * w[wi];
        dx[xi] += w[wi] * dy[yi];
        dw[wi] += x[xi] * dy[yi];
    });
    let mut db = vec![0f32; c_out];
    for (i, v) in dy.iter().enumerate() {
        db[(i / n) % c_out] += v;
    }
    let (got_y, col) = conv::conv2d_fwd(&g, &x, &w, Some(&bias), keep_col).map_err(fail)?;
    close("y", &got_y, &y)?;
    let (got_relu, _) = conv::conv2d_fwd_act(&g, &x, &w, Some(&bias), false, true).map_err(fail)?;
    let want_relu: Vec<f32> = y.iter().map(|v| v.max(0.0)).collect();
    close("relu(y)", &got_relu, &want_relu)?;
    let got_dx = conv::conv2d_bwd_input(&g, &dy, &w).map_err(fail)?;
    close("dx", &got_dx, &dx)?;
    let got_dw = conv::conv2d_bwd_weight(&g, &x, &dy, col.as_deref()).map_err(fail)?;
    close("dw", &got_dw, &dw)?;
    close("db", &conv::conv2d_bwd_bias(&g, &dy).map_err(fail)?, &db)?;
    if let Some(col) = col {
        conv::give_col(col);
    }
    Ok(())
}

/// Max and average pooling of `planes` planes `h x w` and their gradients from the definitions:
/// `(max y, max dx, avg y, avg dx)`.
fn pool_loops(x: &[f32], dy: &[f32], d: &PoolDims, p: &Pool2dParams) -> [Vec<f32>; 4] {
    let div = pool::avg_divisors(d.h, d.w, d.oh, d.ow, p);
    let (mut ymax, mut yavg) = (vec![0f32; dy.len()], vec![0f32; dy.len()]);
    let (mut dmax, mut davg) = (vec![0f32; x.len()], vec![0f32; x.len()]);
    for c in 0..d.planes {
        for oy in 0..d.oh {
            for ox in 0..d.ow {
                let o = (c * d.oh + oy) * d.ow + ox;
                let y0 = (oy * p.stride[0]) as isize - p.padding[0] as isize;
                let x0 = (ox * p.stride[1]) as isize - p.padding[1] as isize;
                let (mut best, mut at, mut sum) = (f32::NEG_INFINITY, None, 0f32);
                let mut inside = Vec::new();
                for iy in y0.max(0)..(y0 + p.kernel[0] as isize).min(d.h as isize) {
                    for ix in x0.max(0)..(x0 + p.kernel[1] as isize).min(d.w as isize) {
                        let i = (c * d.h + iy as usize) * d.w + ix as usize;
                        if x[i] > best {
                            (best, at) = (x[i], Some(i));
                        }
                        sum += x[i];
                        inside.push(i);
                    }
                }
                ymax[o] = best;
                if let Some(i) = at {
                    dmax[i] += dy[o];
                }
                let dv = div[oy * d.ow + ox];
                yavg[o] = sum / dv;
                for i in inside {
                    davg[i] += dy[o] / dv;
                }
            }
        }
    }
    [ymax, dmax, yavg, davg]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    /// Batches of up to 6 on two threads: the portable forward's and input gradient's
    /// products over several images side by side (from 2 images per thread; the input
    /// gradient's from 5 input channels) run too.
    fn conv_matches_loops(
        b in 1usize..=6,
        groups in 1usize..=2,
        cg in 1usize..=6,
        og in 1usize..=9,
        kh in 1usize..=5,
        kw in 1usize..=5,
        s in prop_oneof![Just([1, 1]), Just([2, 2]), (1usize..=3, 1usize..=3).prop_map(|(a, b)| [a, b])],
        dil in prop_oneof![Just([1, 1]), (1usize..=2, 1usize..=2).prop_map(|(a, b)| [a, b])],
        pad in (0usize..=2, 0usize..=2),
        extra in (0usize..=12, 0usize..=12),
        keep_col in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let fit = |k: usize, d: usize, p: usize| (d * (k - 1) + 1).saturating_sub(2 * p).max(1);
        let h = fit(kh, dil[0], pad.0) + extra.0;
        let w = fit(kw, dil[1], pad.1) + extra.1;
        let p = Conv2dParams { stride: s, padding: [pad.0, pad.1], dilation: dil, groups };
        let pool = two_threads()?;
        pool.install(|| check_conv([b, cg * groups, h, w], og * groups, [kh, kw], p, keep_col, seed))?;
    }

    /// The folded convolution ([`ConvGeometry::fold_avg_pool`]) gives what average pooling
    /// the convolution's output gives, over strides, padding, groups, rectangular pools; a
    /// pool that cannot fold (overlapping, padded, `ceil` mode) or a dilated convolution
    /// gets `None`.
    #[test]
    fn avg_pool_fold_matches_conv_then_pool(
        b in 1usize..=3,
        groups in 1usize..=2,
        cg in 1usize..=3,
        og in 1usize..=6,
        k in (1usize..=5, 1usize..=5),
        s in (1usize..=2, 1usize..=2),
        pad in (0usize..=2, 0usize..=2),
        pool in (1usize..=3, 1usize..=3),
        extra in (0usize..=12, 0usize..=12),
        seed in 0u64..1000,
    ) {
        let p = Conv2dParams { stride: [s.0, s.1], padding: [pad.0, pad.1], groups, ..Conv2dParams::default() };
        let (h, w) = (k.0 + pool.0 * s.0 + extra.0, k.1 + pool.1 * s.1 + extra.1);
        let (c_in, c_out) = (cg * groups, og * groups);
        let w_dims = [c_out, cg, k.0, k.1];
        let g = ConvGeometry::new(&[b, c_in, h, w], &w_dims, Some(&[c_out]), &p).map_err(fail)?;
        let pp = Pool2dParams { kernel: [pool.0, pool.1], stride: [pool.0, pool.1], ..Pool2dParams::square(1, 1) };
        let Some(f) = g.fold_avg_pool(&pp) else {
            // Only a fold that would cost more is refused here: say which.
            let macs = |kh: usize, kw: usize, n: usize| kh * kw * n;
            let folded = macs(k.0 + (pool.0 - 1) * s.0, k.1 + (pool.1 - 1) * s.1, (g.oh / pool.0) * (g.ow / pool.1));
            prop_assert!(folded > macs(k.0, k.1, g.oh * g.ow), "no fold for {:?} and {:?}", g, pp);
            return Ok(());
        };
        let x = values(b * c_in * h * w, seed);
        let wt = values(w_dims.iter().product(), seed + 1);
        let bias = values(c_out, seed + 2);
        let (y, _) = conv::conv2d_fwd(&g, &x, &wt, Some(&bias), false).map_err(fail)?;
        let d = PoolDims::new(&g.output_dims(), &pp).map_err(fail)?;
        let want = pool::avg_fwd(&y, &d, &pp).map_err(fail)?;
        prop_assert_eq!(f.output_dims(), [b, c_out, d.oh, d.ow]);
        let wf = conv::avg_pool_folded_weight(&g, pp.kernel, &wt).map_err(fail)?;
        let (got, _) = conv::conv2d_fwd(&f, &x, &wf, Some(&bias), false).map_err(fail)?;
        close("folded y", &got, &want)?;
        for refused in [
            Pool2dParams { padding: [pool.0 / 2, pool.1 / 2], ..pp },
            Pool2dParams { stride: [pool.0 + 1, pool.1], ..pp },
            Pool2dParams { ceil_mode: true, ..pp },
        ] {
            if refused != pp {
                prop_assert!(g.fold_avg_pool(&refused).is_none(), "{:?}", refused);
            }
        }
        let dilated = Conv2dParams { dilation: [2, 1], ..p };
        if let Ok(gd) = ConvGeometry::new(&[b, c_in, h + k.0, w], &w_dims, None, &dilated) {
            prop_assert!(gd.fold_avg_pool(&pp).is_none());
        }
    }

    #[test]
    fn pooling_matches_loops(
        planes in 1usize..=6,
        k in prop_oneof![Just([2, 2]), (1usize..=4, 1usize..=4).prop_map(|(a, b)| [a, b])],
        s in prop_oneof![Just([2, 2]), (1usize..=3, 1usize..=3).prop_map(|(a, b)| [a, b])],
        pad in (0usize..=2, 0usize..=2),
        extra in (0usize..=20, 0usize..=20),
        ceil_mode in any::<bool>(),
        count_include_pad in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let padding = [pad.0.min(k[0] / 2), pad.1.min(k[1] / 2)];
        let (h, w) = (k[0] + extra.0, k[1] + extra.1);
        let p = Pool2dParams { kernel: k, stride: s, padding, ceil_mode, count_include_pad };
        let d = PoolDims::new(&[1, planes, h, w], &p).map_err(fail)?;
        let x = values(planes * h * w, seed);
        let dy = values(planes * d.oh * d.ow, seed + 1);
        let [ymax, dmax, yavg, davg] = pool_loops(&x, &dy, &d, &p);
        close("max y", &pool::max_fwd(&x, &d, &p).map_err(fail)?, &ymax)?;
        close("max dx", &pool::max_bwd(&x, &dy, &d, &p).map_err(fail)?, &dmax)?;
        close("avg y", &pool::avg_fwd(&x, &d, &p).map_err(fail)?, &yavg)?;
        close("avg dx", &pool::avg_bwd(&dy, &d, &p).map_err(fail)?, &davg)?;
    }

    #[test]
    fn relu_matches_loops(n in 0usize..=3000, seed in 0u64..1000) {
        let (a, b) = (values(n, seed), values(n, seed + 1));
        let y: Vec<f32> = a.iter().map(|&v| v.max(0.0)).collect();
        close("relu", &relu::relu_fwd(&a), &y)?;
        let sum: Vec<f32> = a.iter().zip(&b).map(|(a, b)| (a + b).max(0.0)).collect();
        close("add_relu", &relu::add_relu_fwd(&a, &b).map_err(fail)?, &sum)?;
        let dx: Vec<f32> = y.iter().zip(&b).map(|(&y, &g)| if y > 0.0 { g } else { 0.0 }).collect();
        close("relu grad", &relu::relu_bwd(&y, &b).map_err(fail)?, &dx)?;
    }
}

/// A pool of two threads, so that the paths that split work over threads run on any machine.
fn two_threads() -> Result<rayon::ThreadPool, TestCaseError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))
}

/// A "same" convolution of a `k x k` kernel (odd `k`): padding `k / 2`, stride 1.
fn same(k: usize) -> Conv2dParams {
    Conv2dParams {
        padding: [k / 2, k / 2],
        ..Conv2dParams::default()
    }
}

/// The portable path's side-by-side products (forward, and input gradient from 5 input
/// channels and up to 288 gathered rows) on fixed shapes that take them, on two threads:
/// "same" 3x3 and 5x5 convolutions, 32 channels on 4x4 maps, LeNet-5's folded first layer
/// (6x6, stride 2, padding 2), odd batches (a last group of fewer images). On the other paths
/// the same shapes check the per-image kernels.
#[test]
fn side_by_side_shapes_match_loops() -> Result<(), TestCaseError> {
    let pool = two_threads()?;
    let folded = Conv2dParams {
        stride: [2, 2],
        padding: [2, 2],
        ..Conv2dParams::default()
    };
    for (x, c_out, k, p) in [
        ([5, 8, 8, 8], 8, [3, 3], same(3)),
        ([7, 6, 12, 12], 4, [5, 5], same(5)),
        ([4, 16, 4, 4], 32, [3, 3], same(3)),
        ([6, 1, 28, 28], 6, [6, 6], folded),
    ] {
        for keep_col in [false, true] {
            pool.install(|| check_conv(x, c_out, k, p, keep_col, 7))?;
        }
    }
    Ok(())
}

/// Shapes the batch-in-lanes products take (small planes, stride 1, batches of 16 or more):
/// the residual blocks' 3x3 "same" layers on 4x4 and 12x12 maps, a 5x5 "valid" layer on
/// 12x12 (whose input gradient stays per image), a dilated one, and batches that are not a
/// multiple of 8 (a last lane block of fewer images), and more images than two chunks hold;
/// two threads.
#[test]
fn lanes_shapes_match_loops() -> Result<(), TestCaseError> {
    let pool = two_threads()?;
    let dilated = Conv2dParams {
        padding: [2, 1],
        dilation: [2, 1],
        ..Conv2dParams::default()
    };
    for (x, c_out, k, p) in [
        ([16, 32, 4, 4], 32, [3, 3], same(3)),
        ([19, 5, 6, 6], 7, [3, 3], same(3)),
        ([17, 6, 12, 12], 9, [5, 5], Conv2dParams::default()),
        ([24, 4, 7, 5], 3, [3, 3], dilated),
        // Eight and more channels: the portable path's weight gradient in lanes too, once
        // over the spread rows ("same", dilated), once row by row (the 4x4 and 12x12 ones).
        ([18, 8, 6, 6], 10, [3, 3], same(3)),
        ([24, 8, 7, 9], 6, [3, 3], dilated),
        ([17, 9, 12, 12], 5, [5, 5], Conv2dParams::default()),
        // More images than two threads' chunks hold: chunks of 64, 64 and 8.
        ([136, 4, 4, 4], 5, [3, 3], same(3)),
    ] {
        for keep_col in [false, true] {
            pool.install(|| check_conv(x, c_out, k, p, keep_col, 11))?;
        }
    }
    Ok(())
}

/// Padded convolutions whose output rows are whole 16-column blocks, on too few images for
/// the batch-in-lanes products: the AVX2 / AVX-512 paths' forward and input gradient then
/// run one product per output row straight into the result (ResNet-20's and SimpleCNN's
/// 32x32 and 16x16 layers, its stride-2 layer's 16-wide phase rows); a 48-column row (a
/// whole AVX-512 block), a rectangular plane, one image and three (two threads); on the
/// portable path the same shapes check its grid products.
#[test]
fn row_products_match_loops() -> Result<(), TestCaseError> {
    let pool = two_threads()?;
    let down = Conv2dParams {
        stride: [2, 2],
        padding: [1, 1],
        ..Conv2dParams::default()
    };
    for (x, c_out, k, p) in [
        ([3, 5, 32, 32], 7, [3, 3], same(3)),
        ([1, 4, 16, 16], 9, [3, 3], same(3)),
        ([3, 6, 6, 48], 13, [3, 3], same(3)),
        ([2, 3, 5, 16], 4, [5, 5], same(5)),
        ([3, 4, 32, 32], 8, [3, 3], down),
    ] {
        pool.install(|| check_conv(x, c_out, k, p, false, 13))?;
    }
    Ok(())
}

/// Wrong lengths are errors naming the kernel, the argument and both lengths, not panics.
#[test]
fn wrong_lengths_are_errors() -> Result<(), convnets_kernels::KernelError> {
    let g = ConvGeometry::new(&[1, 2, 4, 4], &[3, 2, 3, 3], None, &Conv2dParams::default())?;
    let e = conv::conv2d_fwd(&g, &[0.0; 31], &[0.0; 54], None, false).unwrap_err();
    assert_eq!(e.to_string(), "conv2d: input has 31 elements, expected 32");
    let e = conv::conv2d_bwd_weight(&g, &[0.0; 32], &[0.0; 5], None).unwrap_err();
    assert!(
        e.to_string()
            .contains("output gradient has 5 elements, expected 12"),
        "{e}"
    );
    let p = Pool2dParams::square(2, 2);
    let d = PoolDims::new(&[1, 1, 4, 4], &p)?;
    let e = pool::max_bwd(&[0.0; 16], &[0.0; 3], &d, &p).unwrap_err();
    assert!(e.to_string().contains("expected 4"), "{e}");
    assert!(relu::add_relu_fwd(&[0.0; 3], &[0.0; 2]).is_err());
    let e = convnets_kernels::loss::cross_entropy_fwd(&[0.0; 6], &[0, 3], 3).unwrap_err();
    assert!(e.to_string().contains("label 3"), "{e}");
    Ok(())
}

/// Per channel `(mean, biased variance)` of `[b, c, hw]`, two passes in `f64`.
fn stats_f64(x: &[f32], b: usize, c: usize, hw: usize) -> Vec<(f64, f64)> {
    (0..c)
        .map(|ch| {
            let vals = || (0..b).flat_map(move |i| &x[(i * c + ch) * hw..][..hw]);
            let m = (b * hw) as f64;
            let mean = vals().map(|&v| f64::from(v)).sum::<f64>() / m;
            let var = vals().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / m;
            (mean, var)
        })
        .collect()
}

/// Plane sizes: within one block, a whole block with a remainder of 7, several blocks with
/// a remainder of 4; batches summed per channel and (37 images) in chunks of images, the
/// last one short.
const NORM_SHAPES: [(usize, usize, usize); 4] =
    [(5, 3, 49), (2, 2, 263), (3, 2, 1028), (37, 3, 20)];

#[test]
fn channel_stats_match_f64_sums_with_a_large_mean() {
    for (b, c, hw) in NORM_SHAPES {
        // A mean of 1000 (the shift takes it out) and one of 0.5 over a spread of 0.01 and 1.
        for (offset, spread) in [(1000.0f32, 0.01f32), (0.5, 1.0)] {
            let x: Vec<f32> = values(b * c * hw, hw as u64)
                .iter()
                .map(|v| offset + spread * v)
                .collect();
            let (mean, var) = norm::channel_stats(&x, b, c, hw).unwrap();
            for (ch, (m, v)) in stats_f64(&x, b, c, hw).into_iter().enumerate() {
                let shape = format!("[{b}, {c}, {hw}] channel {ch}, offset {offset}");
                // Within a few ulps of the f32 mean, and of the variance (relative).
                assert!(
                    (f64::from(mean[ch]) - m).abs() <= 4.0 * m.abs() * 6e-8,
                    "{shape}"
                );
                assert!((f64::from(var[ch]) - v).abs() <= 1e-5 * v, "{shape}: {v}");
            }
        }
    }
}

#[test]
fn bn_bwd_matches_f64_sums_with_the_relu_mask() {
    for (b, c, hw) in NORM_SHAPES {
        let n = b * c * hw;
        let (x, dy) = (values(n, 1), values(n, 2));
        // The forward's ReLU output: positive, zero, -0.0 and NaN (NaN keeps the gradient).
        let y: Vec<f32> = values(n, 3)
            .iter()
            .enumerate()
            .map(|(i, &v)| match i % 7 {
                0 => f32::NAN,
                1 => -0.0,
                _ => v.max(0.0),
            })
            .collect();
        let (mean, var) = norm::channel_stats(&x, b, c, hw).unwrap();
        let invstd: Vec<f32> = var.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
        let gamma: Vec<f32> = (0..c).map(|ch| 0.5 + ch as f32).collect();
        let (dx, dgamma, dbeta) =
            norm::bn_bwd(&x, &dy, Some(&y), &mean, &invstd, &gamma, (b, c, hw)).unwrap();
        let m = (b * hw) as f64;
        for ch in 0..c {
            let idx = || (0..b).flat_map(move |i| (i * c + ch) * hw..(i * c + ch + 1) * hw);
            let g = |i: usize| {
                if y[i] > 0.0 || y[i].is_nan() {
                    f64::from(dy[i])
                } else {
                    0.0
                }
            };
            let (mu, is) = (f64::from(mean[ch]), f64::from(invstd[ch]));
            let xhat = |i: usize| (f64::from(x[i]) - mu) * is;
            let sg: f64 = idx().map(g).sum();
            let sgx: f64 = idx().map(|i| g(i) * xhat(i)).sum();
            let scale: f64 = idx().map(|i| g(i).abs()).sum();
            assert!(
                (f64::from(dbeta[ch]) - sg).abs() <= 1e-6 * scale,
                "dbeta {ch}"
            );
            assert!(
                (f64::from(dgamma[ch]) - sgx).abs() <= 1e-5 * scale,
                "dgamma {ch}"
            );
            for i in idx() {
                let want = f64::from(gamma[ch]) * is * (g(i) - sg / m - xhat(i) * sgx / m);
                assert!(
                    (f64::from(dx[i]) - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "dx {i}"
                );
            }
        }
    }
}

#[test]
fn sums_do_not_depend_on_the_threads() {
    let (b, c, hw) = (40, 3, 36);
    let (x, dy) = (values(b * c * hw, 4), values(b * c * hw, 5));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (mean, var) = norm::channel_stats(&x, b, c, hw).unwrap();
            let ones = vec![1.0; c];
            let (dx, dg, db) =
                norm::bn_bwd(&x, &dy, None, &mean, &ones, &ones, (b, c, hw)).unwrap();
            (mean, var, dx, dg, db)
        })
    };
    assert_eq!(run(1), run(3));
}
