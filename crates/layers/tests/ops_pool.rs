//! Pooling: native kernels against the reference composition, a direct loop, and hand cases.

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use convnets_layers::ops::{native, pool_output_size, reference, Pool2dParams};
use proptest::prelude::*;

type PoolFn = fn(&Tensor, &Pool2dParams) -> candle_core::Result<Tensor>;

/// Direct loop with PyTorch's definitions (`aten/src/ATen/native/cpu/{Max,Avg}PoolKernel.cpp`):
/// output `(oy, ox)` covers padded rows `oy * sh - ph ..` (kernel long); max ignores padding and
/// takes the first maximum (row-major, NaN wins); avg divides by the window clipped to the
/// padded input (`count_include_pad`) or to the input.
/// Returns `(y, dx)` for the output gradient `dy`.
fn direct(
    x: &[f32],
    dims: [usize; 4],
    p: &Pool2dParams,
    max: bool,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let [b, c, h, w] = dims;
    let oh = pool_output_size(h, p.kernel[0], p.stride[0], p.padding[0], p.ceil_mode).unwrap();
    let ow = pool_output_size(w, p.kernel[1], p.stride[1], p.padding[1], p.ceil_mode).unwrap();
    let mut y = vec![0f32; b * c * oh * ow];
    let mut dx = vec![0f32; x.len()];
    for plane in 0..b * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let hs = (oy * p.stride[0]) as isize - p.padding[0] as isize;
                let ws = (ox * p.stride[1]) as isize - p.padding[1] as isize;
                let he = (hs + p.kernel[0] as isize).min((h + p.padding[0]) as isize);
                let we = (ws + p.kernel[1] as isize).min((w + p.padding[1]) as isize);
                let pool_size = ((he - hs) * (we - ws)) as f32;
                let (hs, ws, he, we) =
                    (hs.max(0), ws.max(0), he.min(h as isize), we.min(w as isize));
                let oi = (plane * oh + oy) * ow + ox;
                let mut cells = vec![];
                for iy in hs..he {
                    for ix in ws..we {
                        cells.push((plane * h + iy as usize) * w + ix as usize);
                    }
                }
                if max {
                    let mut best = f32::NEG_INFINITY;
                    let mut at = cells[0];
                    for &i in &cells {
                        if x[i] > best || x[i].is_nan() {
                            best = x[i];
                            at = i;
                        }
                    }
                    y[oi] = best;
                    dx[at] += dy[oi];
                } else {
                    let div = if p.count_include_pad {
                        pool_size
                    } else {
                        cells.len() as f32
                    };
                    y[oi] = cells.iter().map(|&i| x[i]).sum::<f32>() / div;
                    for &i in &cells {
                        dx[i] += dy[oi] / div;
                    }
                }
            }
        }
    }
    (y, dx)
}

/// `(y, dx)` of `sum(pool(x) * dy)` through `pool`.
fn run(
    pool: PoolFn,
    x: &[f32],
    dims: [usize; 4],
    p: &Pool2dParams,
    dy: Option<&[f32]>,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let xv = Var::from_vec(x.to_vec(), &dims, &Device::Cpu)?;
    let y = pool(xv.as_tensor(), p)?;
    let dyt = match dy {
        Some(dy) => Tensor::from_vec(dy.to_vec(), y.shape(), &Device::Cpu)?,
        None => y.ones_like()?,
    };
    let grads = (&y * &dyt)?.sum_all()?.backward()?;
    let dx = grads
        .get(xv.as_tensor())
        .ok_or_else(|| anyhow::anyhow!("no gradient"))?;
    Ok((y.flatten_all()?.to_vec1()?, dx.flatten_all()?.to_vec1()?))
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "{what}[{i}]: got {a}, want {b}"
        );
    }
}

fn both() -> [(&'static str, PoolFn, PoolFn); 2] {
    [
        ("native", native::max_pool2d, native::avg_pool2d),
        ("reference", reference::max_pool2d, reference::avg_pool2d),
    ]
}

/// `x` = 1..16 as a 4x4 image, so `x[r][c] = 4r + c + 1`.
fn x4() -> Vec<f32> {
    (1..=16).map(|v| v as f32).collect()
}

fn params(
    k: usize,
    s: usize,
    pad: usize,
    ceil_mode: bool,
    count_include_pad: bool,
) -> Pool2dParams {
    Pool2dParams {
        kernel: [k, k],
        stride: [s, s],
        padding: [pad, pad],
        ceil_mode,
        count_include_pad,
    }
}

/// 4x4 input, kernel 3, stride 2, padding 1.
/// floor: out = (4 + 2 - 3) / 2 + 1 = 2; windows cover input rows {0,1} and {1,2,3}.
/// ceil: out = ceil(3 / 2) + 1 = 3, and the last window starts at 2*2 - 1 = 3 < 4 + 1 so it
/// stays; it covers row {3} (plus one padded row inside `h + padding`, one beyond).
/// Max of a window is its bottom-right cell: rows/cols (1, 3, 3) -> 6, 8, 8 / 14, 16, 16 / ...
/// The gradient of ones goes to (1,1) once, (1,3) and (3,1) twice, (3,3) four times.
#[test]
fn max_hand_cases() -> Result<()> {
    for (name, max, _) in both() {
        let (y, _) = run(
            max,
            &x4(),
            [1, 1, 4, 4],
            &params(3, 2, 1, false, true),
            None,
        )?;
        assert_eq!(y, [6., 8., 14., 16.], "{name}");
        let (y, dx) = run(max, &x4(), [1, 1, 4, 4], &params(3, 2, 1, true, true), None)?;
        assert_eq!(y, [6., 8., 8., 14., 16., 16., 14., 16., 16.], "{name}");
        let mut want = [0f32; 16];
        want[5] = 1.;
        want[7] = 2.;
        want[13] = 2.;
        want[15] = 4.;
        assert_eq!(dx, want, "{name}");
    }
    Ok(())
}

/// Same windows as `max_hand_cases`, ceil mode, 3x3 output. Window sums, with input rows
/// R = ({0,1}, {1,2,3}, {3}) and the same columns C:
/// sum(R, C) = |C| * sum_{r in R} 4r + |R| * sum_{c in C} (c + 1)
///   = [[14, 30, 12], [57, 99, 36], [27, 45, 16]].
/// count_include_pad: divisor = clipped-to-(input + padding) window size, rows (3, 3, 2)
/// (the last window is rows 3..min(6, 5)), so [[9, 9, 6], [9, 9, 6], [6, 6, 4]].
/// Without: cells inside the input, rows (2, 3, 1), so [[4, 6, 2], [6, 9, 3], [2, 3, 1]].
#[test]
fn avg_hand_cases() -> Result<()> {
    for (name, _, avg) in both() {
        let (y, _) = run(avg, &x4(), [1, 1, 4, 4], &params(3, 2, 1, true, true), None)?;
        let want = [14. / 9., 30. / 9., 2., 57. / 9., 11., 6., 4.5, 7.5, 4.];
        assert_close(&format!("{name} include pad"), &y, &want);
        let (y, _) = run(
            avg,
            &x4(),
            [1, 1, 4, 4],
            &params(3, 2, 1, true, false),
            None,
        )?;
        assert_close(
            &format!("{name} exclude pad"),
            &y,
            &[3.5, 5., 6., 9.5, 11., 12., 13.5, 15., 16.],
        );
        let (y, _) = run(
            avg,
            &x4(),
            [1, 1, 4, 4],
            &params(3, 2, 1, false, true),
            None,
        )?;
        assert_close(
            &format!("{name} floor"),
            &y,
            &[14. / 9., 30. / 9., 57. / 9., 11.],
        );
        // 3x3 input 1..9, kernel 2, stride 2, ceil: windows rows {0,1}, {2}: divisors 4, 2, 2, 1
        // either way (no padding): [(1+2+4+5)/4, (3+6)/2, (7+8)/2, 9].
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let (y, dx) = run(avg, &x, [1, 1, 3, 3], &params(2, 2, 0, true, true), None)?;
        assert_close(&format!("{name} ceil no pad"), &y, &[3., 4.5, 7.5, 9.]);
        assert_close(
            &format!("{name} ceil no pad dx"),
            &dx,
            &[0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.5, 0.5, 1.],
        );
    }
    Ok(())
}

/// Ties: overlapping windows of zeros route each gradient to the window's first cell.
#[test]
fn max_gradient_goes_to_first_maximum() -> Result<()> {
    for (name, max, _) in both() {
        let (_, dx) = run(
            max,
            &[0f32; 9],
            [1, 1, 3, 3],
            &params(2, 1, 0, false, true),
            None,
        )?;
        assert_eq!(dx, [1., 1., 0., 1., 1., 0., 0., 0., 0.], "{name}");
    }
    // The native kernel also for windows that tile the input (candle's op shares ties there).
    let (_, dx) = run(
        native::max_pool2d,
        &[0f32; 4],
        [1, 1, 2, 2],
        &params(2, 2, 0, false, true),
        None,
    )?;
    assert_eq!(dx, [1., 0., 0., 0.]);
    Ok(())
}

#[test]
fn bad_arguments_are_errors() -> Result<()> {
    let x = Tensor::zeros((1, 1, 4, 4), candle_core::DType::F32, &Device::Cpu)?;
    for (name, max, avg) in both() {
        // PyTorch: padding must be at most half the kernel.
        assert!(max(&x, &params(2, 2, 2, false, true)).is_err(), "{name}");
        assert!(avg(&x, &params(5, 1, 0, false, true)).is_err(), "{name}");
        let err = max(&x, &params(0, 1, 0, false, true))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[1, 1, 4, 4]"), "{err}");
    }
    Ok(())
}

#[test]
fn lenet_and_mnistnet_shapes() -> Result<()> {
    let x: Vec<f32> = (0..4 * 6 * 24 * 24)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let dims = [4, 6, 24, 24];
    let dy: Vec<f32> = (0..4 * 6 * 12 * 12)
        .map(|i| ((i * 31) % 17) as f32 - 8.0)
        .collect();
    let p = Pool2dParams::square(2, 2);
    for (name, max, avg) in both() {
        for (is_max, f) in [(true, max), (false, avg)] {
            let (y, dx) = run(f, &x, dims, &p, Some(&dy))?;
            let (wy, wdx) = direct(&x, dims, &p, is_max, &dy);
            assert_close(&format!("{name} max={is_max} y"), &y, &wy);
            assert_close(&format!("{name} max={is_max} dx"), &dx, &wdx);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn native_and_reference_match_direct(
        b in 1usize..=2,
        c in 1usize..=3,
        kh in 1usize..=4,
        kw in 1usize..=4,
        sh in 1usize..=3,
        sw in 1usize..=3,
        ph_frac in 0usize..=2,
        pw_frac in 0usize..=2,
        eh in 0usize..=6,
        ew in 0usize..=6,
        ceil_mode in any::<bool>(),
        count_include_pad in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let (ph, pw) = (ph_frac.min(kh / 2), pw_frac.min(kw / 2));
        let h = kh.saturating_sub(2 * ph).max(1) + eh;
        let w = kw.saturating_sub(2 * pw).max(1) + ew;
        let dims = [b, c, h, w];
        let p = Pool2dParams { kernel: [kh, kw], stride: [sh, sw], padding: [ph, pw], ceil_mode, count_include_pad };
        let n = b * c * h * w;
        // Distinct values (a permutation), so no ties.
        let x: Vec<f32> = (0..n).map(|i| (((i as u64 * 7919 + seed * 13) % n as u64) as f32) - n as f32 / 2.0).collect();
        let oh = pool_output_size(h, kh, sh, ph, ceil_mode).unwrap();
        let ow = pool_output_size(w, kw, sw, pw, ceil_mode).unwrap();
        let dy: Vec<f32> = (0..b * c * oh * ow).map(|i| ((i as u64 * 31 + seed) % 17) as f32 - 8.0).collect();
        for (name, max, avg) in both() {
            for (is_max, f) in [(true, max), (false, avg)] {
                let (y, dx) = run(f, &x, dims, &p, Some(&dy)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let (wy, wdx) = direct(&x, dims, &p, is_max, &dy);
                let ctx = format!("{name} max={is_max} {dims:?} {p:?}");
                assert_close(&format!("{ctx} y"), &y, &wy);
                assert_close(&format!("{ctx} dx"), &dx, &wdx);
            }
        }
    }
}

/// NaN wins a max window (PyTorch propagates it) and takes the gradient; with two NaNs the
/// later one in the scan does. Checked on the 2x2 fast path and the general path.
#[test]
fn max_nan_follows_pytorch() -> Result<()> {
    let nan = f32::NAN;
    let x = [
        1., nan, 3., nan, 0., 2., 5., 1., 4., 0., 1., 2., 0., 1., 2., 3.,
    ];
    for p in [
        params(2, 2, 0, false, true),
        params(2, 2, 1, false, true),
        params(3, 1, 0, false, true),
    ] {
        let (y, dx) = run(native::max_pool2d, &x, [1, 1, 4, 4], &p, None)?;
        let (wy, wdx) = direct(&x, [1, 1, 4, 4], &p, true, &vec![1.0; y.len()]);
        let same = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()))
        };
        assert!(same(&y, &wy), "{p:?}: {y:?} vs {wy:?}");
        assert!(same(&dx, &wdx), "{p:?}: {dx:?} vs {wdx:?}");
    }
    // Several NaNs in one 2x2 window (the gradient goes to the last), and NaN first.
    let x = [
        nan, 1., nan, 2., nan, 0., 0., nan, 1., nan, nan, 3., nan, nan, 4., 5.,
    ];
    let p = params(2, 2, 0, false, true);
    let (y, dx) = run(native::max_pool2d, &x, [1, 1, 4, 4], &p, None)?;
    let (wy, wdx) = direct(&x, [1, 1, 4, 4], &p, true, &vec![1.0; y.len()]);
    assert!(y
        .iter()
        .zip(&wy)
        .all(|(a, b)| a == b || (a.is_nan() && b.is_nan())));
    assert_eq!(dx, wdx);
    // Rows wide enough for the vector kernels of every path (9 windows: 8 in vectors and a
    // tail), NaNs at every position of a window, ties, and distinct gradients.
    let (h, w) = (4, 18);
    let x: Vec<f32> = (0..h * w)
        .map(|i| match (i * 7) % 11 {
            0 | 5 => nan,
            3 => 2.0,
            k => k as f32 * 0.5 - 2.0,
        })
        .collect();
    let dy: Vec<f32> = (0..(h / 2) * (w / 2)).map(|i| 1.0 + i as f32).collect();
    let (y, dx) = run(native::max_pool2d, &x, [1, 1, h, w], &p, Some(&dy))?;
    let (wy, wdx) = direct(&x, [1, 1, h, w], &p, true, &dy);
    assert!(
        y.iter()
            .zip(&wy)
            .all(|(a, b)| a == b || (a.is_nan() && b.is_nan())),
        "{y:?} vs {wy:?}"
    );
    assert!(y.iter().any(|v| v.is_nan()) && y.iter().any(|v| !v.is_nan()));
    assert_eq!(dx, wdx);
    Ok(())
}
