//! Convolution: native kernels against the reference composition and a direct loop.

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use convnets_layers::ops::{native, reference, Conv2dParams, ConvGeometry};
use proptest::prelude::*;

/// Direct-loop convolution and its gradients, written from the definition:
/// `y[b, o, oy, ox] = bias[o] + sum_{c, ki, kj} x[b, g * cg + c, iy, ix] * w[o, c, ki, kj]` with
/// `iy = oy * sh - ph + ki * dh`, `ix = ox * sw - pw + kj * dw`, `g = o / og`.
struct Direct {
    g: ConvGeometry,
}

impl Direct {
    /// Calls `f(x_index, w_index, y_index)` for every multiply-add of the convolution.
    fn each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let g = &self.g;
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
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((b * g.c_in + grp * cg + c) * g.h + iy as usize)
                                        * g.w
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

    fn forward(&self, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let g = &self.g;
        let n = g.oh * g.ow;
        let mut y = vec![0f32; g.b * g.c_out * n];
        if let Some(bias) = bias {
            for (i, v) in y.iter_mut().enumerate() {
                *v = bias[(i / n) % g.c_out];
            }
        }
        self.each(|xi, wi, yi| y[yi] += x[xi] * w[wi]);
        y
    }

    /// `(dx, dw, db)` for the output gradient `dy`.
    fn grads(&self, x: &[f32], w: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let g = &self.g;
        let n = g.oh * g.ow;
        let mut dx = vec![0f32; x.len()];
        let mut dw = vec![0f32; w.len()];
        self.each(|xi, wi, yi| {
            dx[xi] += w[wi] * dy[yi];
            dw[wi] += x[xi] * dy[yi];
        });
        let mut db = vec![0f32; g.c_out];
        for (i, v) in dy.iter().enumerate() {
            db[(i / n) % g.c_out] += v;
        }
        (dx, dw, db)
    }
}

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

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * scale,
            "{what}[{i}]: got {a}, want {b} (scale {scale})"
        );
    }
}

type ConvFn = fn(&Tensor, &Tensor, Option<&Tensor>, &Conv2dParams) -> candle_core::Result<Tensor>;

/// Output and the gradients of `sum(y * dy)` for `x`, `w`, `bias` through `conv`.
fn run(
    conv: ConvFn,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    dy: &[f32],
    g: &ConvGeometry,
) -> Result<[Vec<f32>; 4]> {
    let dev = Device::Cpu;
    let cg = g.c_in / g.p.groups;
    let xv = Var::from_vec(x.to_vec(), (g.b, g.c_in, g.h, g.w), &dev)?;
    let wv = Var::from_vec(w.to_vec(), (g.c_out, cg, g.kh, g.kw), &dev)?;
    let bv = bias
        .map(|b| Var::from_vec(b.to_vec(), g.c_out, &dev))
        .transpose()?;
    let y = conv(
        xv.as_tensor(),
        wv.as_tensor(),
        bv.as_ref().map(|b| b.as_tensor()),
        &g.p,
    )?;
    let dyt = Tensor::from_vec(dy.to_vec(), y.shape(), &dev)?;
    let grads = (&y * &dyt)?.sum_all()?.backward()?;
    let get = |t: &Tensor| -> Result<Vec<f32>> {
        Ok(grads
            .get(t)
            .ok_or_else(|| anyhow::anyhow!("no gradient"))?
            .flatten_all()?
            .to_vec1()?)
    };
    let db = match &bv {
        Some(b) => get(b.as_tensor())?,
        None => vec![],
    };
    Ok([
        y.flatten_all()?.to_vec1()?,
        get(xv.as_tensor())?,
        get(wv.as_tensor())?,
        db,
    ])
}

/// Checks native and reference against the direct loop for one configuration.
fn check(
    x_dims: [usize; 4],
    c_out: usize,
    k: [usize; 2],
    p: Conv2dParams,
    with_bias: bool,
    seed: u64,
) -> Result<()> {
    let w_dims = [c_out, x_dims[1] / p.groups, k[0], k[1]];
    let g = ConvGeometry::new(&x_dims, &w_dims, with_bias.then_some(&[c_out][..]), &p)?;
    let x = values(x_dims.iter().product(), seed);
    let w = values(w_dims.iter().product(), seed + 1);
    let bias = with_bias.then(|| values(c_out, seed + 2));
    let dy = values(g.b * g.c_out * g.oh * g.ow, seed + 3);
    let direct = Direct { g };
    let y = direct.forward(&x, &w, bias.as_deref());
    let (dx, dw, db) = direct.grads(&x, &w, &dy);
    let db = if with_bias { db } else { vec![] };
    for (name, conv) in [
        ("native", native::conv2d as ConvFn),
        ("reference", reference::conv2d as ConvFn),
    ] {
        let got = run(conv, &x, &w, bias.as_deref(), &dy, &g)?;
        let ctx = format!("{name} x {x_dims:?} w {w_dims:?} {p:?}");
        assert_close(&format!("{ctx} y"), &got[0], &y);
        assert_close(&format!("{ctx} dx"), &got[1], &dx);
        assert_close(&format!("{ctx} dw"), &got[2], &dw);
        assert_close(&format!("{ctx} db"), &got[3], &db);
    }
    // Untracked tensors: no backward will follow, so the forward keeps nothing and takes its
    // inference path (the implicit product for stride 1).
    let dev = Device::Cpu;
    let xt = Tensor::from_vec(x.clone(), x_dims.to_vec(), &dev)?;
    let wt = Tensor::from_vec(w.clone(), w_dims.to_vec(), &dev)?;
    let bt = bias
        .clone()
        .map(|b| Tensor::from_vec(b, c_out, &dev))
        .transpose()?;
    let y_inf = native::conv2d(&xt, &wt, bt.as_ref(), &p)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    assert_close(
        &format!("native inference x {x_dims:?} w {w_dims:?} {p:?} y"),
        &y_inf,
        &y,
    );
    Ok(())
}

/// The 5x5 example: 3x3 kernel 1..9, stride 2, no padding, no bias. Top-left output:
/// [3,4,6; 2,4,6; 1,6,7] . [1..9] = (3 + 8 + 18) + (8 + 20 + 36) + (7 + 48 + 63) = 211.
#[test]
fn hand_case_stride_2() -> Result<()> {
    let dev = Device::Cpu;
    let x: Vec<f32> = vec![
        3., 4., 6., 5., 7., 2., 4., 6., 8., 2., 1., 6., 7., 8., 4., 9., 7., 4., 6., 2., 3., 7., 5.,
        4., 1.,
    ];
    let x = Tensor::from_vec(x, (1, 1, 5, 5), &dev)?;
    let w = Tensor::arange(1f32, 10., &dev)?.reshape((1, 1, 3, 3))?;
    let p = Conv2dParams {
        stride: [2, 2],
        ..Default::default()
    };
    for conv in [
        native::conv2d as ConvFn,
        reference::conv2d,
        convnets_layers::ops::conv2d,
    ] {
        let y = conv(&x, &w, None, &p)?;
        assert_eq!(y.dims(), [1, 1, 2, 2]);
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [211., 262., 251., 169.]);
    }
    Ok(())
}

#[test]
fn lenet_and_mnistnet_shapes() -> Result<()> {
    let p = Conv2dParams::default();
    check([3, 1, 28, 28], 6, [5, 5], p, true, 1)?;
    check([3, 6, 12, 12], 16, [5, 5], p, true, 2)?;
    check([2, 10, 12, 12], 20, [5, 5], p, true, 3)?;
    Ok(())
}

#[test]
fn resnet_shapes() -> Result<()> {
    let s2 = Conv2dParams {
        stride: [2, 2],
        padding: [1, 1],
        ..Default::default()
    };
    check([2, 16, 8, 8], 32, [3, 3], s2, false, 4)?;
    let pw = Conv2dParams {
        stride: [2, 2],
        ..Default::default()
    };
    check([2, 16, 8, 8], 32, [1, 1], pw, false, 5)?;
    check([2, 16, 8, 8], 32, [1, 1], Conv2dParams::default(), true, 6)?;
    check(
        [1, 3, 9, 7],
        8,
        [3, 3],
        Conv2dParams {
            padding: [1, 1],
            ..Default::default()
        },
        true,
        7,
    )?;
    Ok(())
}

/// The gradient kernels called directly, with no unfolded input kept from a forward: large
/// stride-1 maps take the implicit paths (shifted windows of the padded image, no im2col),
/// which the small shapes above never reach.
#[test]
fn gradients_without_kept_input() -> Result<()> {
    let dev = Device::Cpu;
    let same = |pad: [usize; 2], dil: [usize; 2]| Conv2dParams {
        padding: pad,
        dilation: dil,
        ..Default::default()
    };
    for (x_dims, c_out, k, p) in [
        ([2, 16, 32, 32], 16, [3, 3], same([1, 1], [1, 1])),
        // ResNet's downsampling shape (stride-phase split; on the portable path the dot
        // kernel's weight gradient too, as for the one above).
        (
            [2, 16, 32, 32],
            32,
            [3, 3],
            Conv2dParams {
                stride: [2, 2],
                ..same([1, 1], [1, 1])
            },
        ),
        ([1, 8, 24, 20], 12, [3, 3], same([2, 2], [2, 2])),
        ([2, 6, 19, 17], 9, [5, 3], same([2, 1], [1, 1])),
        ([1, 4, 30, 30], 8, [3, 3], same([0, 0], [1, 1])),
    ] {
        let w_dims = [c_out, x_dims[1], k[0], k[1]];
        let g = ConvGeometry::new(&x_dims, &w_dims, None, &p)?;
        let x = values(x_dims.iter().product(), 11);
        let w = values(w_dims.iter().product(), 12);
        let dy = values(g.b * g.c_out * g.oh * g.ow, 13);
        let (dx, dw, _) = Direct { g }.grads(&x, &w, &dy);
        let xt = Tensor::from_vec(x, x_dims.to_vec(), &dev)?;
        let wt = Tensor::from_vec(w, w_dims.to_vec(), &dev)?;
        let dyt = Tensor::from_vec(dy, (g.b, g.c_out, g.oh, g.ow), &dev)?;
        let got_dw = native::conv2d_weight_grad(&xt, &dyt, (k[0], k[1]), &p)?;
        let got_dx = native::conv2d_input_grad(&dyt, &wt, (g.h, g.w), &p)?;
        let ctx = format!("x {x_dims:?} w {w_dims:?} {p:?}");
        assert_close(&format!("{ctx} dw"), &got_dw.flatten_all()?.to_vec1()?, &dw);
        assert_close(&format!("{ctx} dx"), &got_dx.flatten_all()?.to_vec1()?, &dx);
    }
    Ok(())
}

#[test]
fn input_gradient_only_when_tracked() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::from_vec(values(2 * 3 * 6 * 6, 9), (2, 3, 6, 6), &dev)?;
    let w = Var::from_vec(values(4 * 3 * 9, 10), (4, 3, 3, 3), &dev)?;
    let p = Conv2dParams::default();
    // A plain data tensor: no input gradient, the weight gradient as with a tracked input.
    let y = native::conv2d(&x, w.as_tensor(), None, &p)?;
    let grads = y.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none());
    let dw = grads
        .get(w.as_tensor())
        .ok_or_else(|| anyhow::anyhow!("no weight gradient"))?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let xv = Var::from_tensor(&x)?;
    let y2 = reference::conv2d(xv.as_tensor(), w.as_tensor(), None, &p)?;
    let grads2 = y2.sum_all()?.backward()?;
    let dw2 = grads2
        .get(w.as_tensor())
        .ok_or_else(|| anyhow::anyhow!("no weight gradient"))?
        .flatten_all()?
        .to_vec1::<f32>()?;
    assert_close("dw", &dw, &dw2);
    // An input computed from a variable is tracked: the gradient flows through.
    let v = Var::from_tensor(&x)?;
    let x2 = (v.as_tensor() * 2.0)?;
    let y3 = native::conv2d(&x2, w.as_tensor(), None, &p)?;
    let grads3 = y3.sum_all()?.backward()?;
    assert!(grads3.get(v.as_tensor()).is_some());
    Ok(())
}

#[test]
fn non_contiguous_input() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::from_vec(values(2 * 3 * 7 * 6, 11), (2, 3, 6, 7), &dev)?.transpose(2, 3)?;
    let w = Tensor::from_vec(values(4 * 3 * 9, 12), (4, 3, 3, 3), &dev)?;
    let p = Conv2dParams::default();
    let a = native::conv2d(&x, &w, None, &p)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let b = reference::conv2d(&x, &w, None, &p)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    assert_close("y", &a, &b);
    Ok(())
}

/// The geometry that made candle's own conv2d backward underflow (padding 2 around a 1x2
/// input, kernel 3x2, stride 3: the output does not reach back into the padding): the
/// reference takes its im2col path, and both paths agree on values and gradients.
#[test]
fn padding_wider_than_the_output_reaches() -> Result<()> {
    let p = Conv2dParams {
        stride: [3, 3],
        padding: [2, 2],
        dilation: [1, 1],
        groups: 1,
    };
    check([1, 1, 1, 3], 1, [3, 2], p, false, 0)
}

#[test]
fn errors_name_the_shapes() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 3, 4, 4), candle_core::DType::F32, &dev).unwrap();
    let w = Tensor::zeros((2, 2, 3, 3), candle_core::DType::F32, &dev).unwrap();
    let err = native::conv2d(&x, &w, None, &Conv2dParams::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[1, 3, 4, 4]") && err.contains("[2, 2, 3, 3]"),
        "{err}"
    );
    let w = Tensor::zeros((2, 3, 7, 7), candle_core::DType::F32, &dev).unwrap();
    let err = native::conv2d(&x, &w, None, &Conv2dParams::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not fit"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn native_and_reference_match_direct(
        b in 1usize..=3,
        groups in 1usize..=3,
        cg in 1usize..=3,
        og in 1usize..=3,
        kh in 1usize..=4,
        kw in 1usize..=4,
        sh in 1usize..=3,
        sw in 1usize..=3,
        dh in 1usize..=2,
        dw in 1usize..=2,
        ph in 0usize..=2,
        pw in 0usize..=2,
        eh in 0usize..=5,
        ew in 0usize..=5,
        with_bias in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let h = (dh * (kh - 1) + 1).saturating_sub(2 * ph).max(1) + eh;
        let w = (dw * (kw - 1) + 1).saturating_sub(2 * pw).max(1) + ew;
        let p = Conv2dParams { stride: [sh, sw], padding: [ph, pw], dilation: [dh, dw], groups };
        check([b, cg * groups, h, w], og * groups, [kh, kw], p, with_bias, seed).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}

/// `conv2d_relu_with` (one op: ReLU in the forward's epilogue, the mask in its backward)
/// against the direct loop with ReLU applied by hand: `y = max(conv, 0)`, and the gradients
/// of `sum(y * dy)` are those of the convolution with `dy` zeroed where `y <= 0`. Native and
/// reference, with and without bias, at stride 1 (implicit product, and the kept unfolded
/// input when tracked) and stride 2.
#[test]
fn conv_relu_fused_matches_direct() -> Result<()> {
    let dev = Device::Cpu;
    let strided = Conv2dParams {
        stride: [2, 2],
        padding: [1, 1],
        ..Default::default()
    };
    let same = Conv2dParams {
        padding: [1, 1],
        ..Default::default()
    };
    for (x_dims, c_out, p, with_bias) in [
        ([2, 3, 16, 16], 8, same, true),
        ([2, 16, 12, 12], 16, same, false),
        ([3, 4, 11, 9], 6, strided, true),
    ] {
        let w_dims = [c_out, x_dims[1], 3, 3];
        let g = ConvGeometry::new(&x_dims, &w_dims, with_bias.then_some(&[c_out][..]), &p)?;
        let x = values(x_dims.iter().product(), 21);
        let w = values(w_dims.iter().product(), 22);
        let bias = with_bias.then(|| values(c_out, 23));
        let dy = values(g.b * g.c_out * g.oh * g.ow, 24);
        let direct = Direct { g };
        let y: Vec<f32> = direct
            .forward(&x, &w, bias.as_deref())
            .into_iter()
            .map(|v| v.max(0.0))
            .collect();
        assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0));
        let dy_masked: Vec<f32> = y
            .iter()
            .zip(&dy)
            .map(|(&y, &d)| if y > 0.0 { d } else { 0.0 })
            .collect();
        let (dx, dw, db) = direct.grads(&x, &w, &dy_masked);
        let ctx = format!("x {x_dims:?} w {w_dims:?} {p:?}");
        for name in ["native", "reference"] {
            let xv = Var::from_vec(x.clone(), x_dims.to_vec(), &dev)?;
            let wv = Var::from_vec(w.clone(), w_dims.to_vec(), &dev)?;
            let bv = bias
                .clone()
                .map(|b| Var::from_vec(b, c_out, &dev))
                .transpose()?;
            let (xt, wt) = (xv.as_tensor(), wv.as_tensor());
            let bt = bv.as_ref().map(|b| b.as_tensor());
            let out = if name == "native" {
                native::conv2d_relu_with(xt, wt, bt, &g)?
            } else {
                reference::relu(&reference::conv2d_with(xt, wt, bt, &g)?)?
            };
            let dyt = Tensor::from_vec(dy.clone(), out.shape(), &dev)?;
            let grads = (&out * &dyt)?.sum_all()?.backward()?;
            let flat = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1()?) };
            assert_close(&format!("{name} {ctx} y"), &flat(&out)?, &y);
            assert_close(
                &format!("{name} {ctx} dx"),
                &flat(grads.get(xt).unwrap())?,
                &dx,
            );
            assert_close(
                &format!("{name} {ctx} dw"),
                &flat(grads.get(wt).unwrap())?,
                &dw,
            );
            if let Some(bt) = bt {
                assert_close(
                    &format!("{name} {ctx} db"),
                    &flat(grads.get(bt).unwrap())?,
                    &db,
                );
            }
        }
        // Untracked (inference): the same output.
        let xt = Tensor::from_vec(x.clone(), x_dims.to_vec(), &dev)?;
        let wt = Tensor::from_vec(w.clone(), w_dims.to_vec(), &dev)?;
        let bt = bias
            .clone()
            .map(|b| Tensor::from_vec(b, c_out, &dev))
            .transpose()?;
        let y_inf = native::conv2d_relu_with(&xt, &wt, bt.as_ref(), &g)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_close(&format!("native inference {ctx} y"), &y_inf, &y);
    }
    Ok(())
}

/// Convolution, ReLU and max pooling in one op against the three native ops one after the
/// other, bit for bit (output and the gradients of input, weight and bias): SimpleCNN's 2x2
/// pool, AlexNet's overlapping 3x3 stride-2 pool, a `ceil_mode` pool; with and without bias,
/// with a frozen input and weight; and a second backward over the same graph (the unpooled
/// output recomputed). A 2x2 pool on a 3x3 output is refused by the pool's check.
#[test]
fn conv_relu_max_pool_fused_matches_the_ops() -> Result<()> {
    use convnets_layers::ops::{Pool2dParams, PoolDims};
    let dev = Device::Cpu;
    let same = Conv2dParams {
        padding: [1, 1],
        ..Default::default()
    };
    let ceil = Pool2dParams {
        ceil_mode: true,
        ..Pool2dParams::square(2, 2)
    };
    for (x_dims, c_out, pool, with_bias, frozen) in [
        ([2, 3, 16, 16], 8, Pool2dParams::square(2, 2), true, false),
        ([3, 16, 8, 8], 16, Pool2dParams::square(2, 2), false, false),
        ([2, 4, 13, 13], 6, Pool2dParams::square(3, 2), true, false),
        ([2, 4, 7, 9], 5, ceil, true, false),
        ([2, 3, 10, 10], 4, Pool2dParams::square(2, 2), true, true),
    ] {
        let w_dims = [c_out, x_dims[1], 3, 3];
        let g = ConvGeometry::new(&x_dims, &w_dims, with_bias.then_some(&[c_out][..]), &same)?;
        let d = PoolDims::new(&g.output_dims(), &pool)?;
        let var = |n: usize, seed: u64, dims: &[usize]| -> Result<Var> {
            Ok(Var::from_vec(values(n, seed), dims.to_vec(), &dev)?)
        };
        let xv = var(x_dims.iter().product(), 31, &x_dims)?;
        let wv = var(w_dims.iter().product(), 32, &w_dims)?;
        let bv = with_bias.then(|| var(c_out, 33, &[c_out])).transpose()?;
        let run = |fused: bool| -> Result<Vec<Vec<f32>>> {
            let (xt, wt) = if frozen {
                (xv.as_tensor().detach(), wv.as_tensor().detach())
            } else {
                (xv.as_tensor().clone(), wv.as_tensor().clone())
            };
            let bt = bv.as_ref().map(|b| b.as_tensor());
            let y = if fused {
                native::conv2d_relu_max_pool_with(&xt, &wt, bt, &g, &pool, &d)?
            } else {
                let z = native::conv2d_relu_with(&xt, &wt, bt, &g)?;
                native::max_pool2d_with(&z, &pool, &d)?
            };
            let dy = Tensor::from_vec(values(y.elem_count(), 34), y.shape(), &dev)?;
            let loss = (&y * &dy)?.sum_all()?;
            let mut out = vec![y.flatten_all()?.to_vec1::<f32>()?];
            // Twice: the second backward finds the fused op's saved output taken.
            for _ in 0..2 {
                let grads = loss.backward()?;
                for t in [Some(&xt), Some(&wt), bt].into_iter().flatten() {
                    out.push(match grads.get(t) {
                        Some(g) => g.flatten_all()?.to_vec1::<f32>()?,
                        None => Vec::new(),
                    });
                }
            }
            Ok(out)
        };
        let (got, want) = (run(true)?, run(false)?);
        assert!(
            got[0].contains(&0.0) || pool.kernel[0] > 2,
            "some pooled outputs clipped"
        );
        assert_eq!(
            got, want,
            "x {x_dims:?} pool {pool:?} bias {with_bias} frozen {frozen}"
        );
        if frozen {
            assert!(got[1].is_empty() && got[2].is_empty());
        }
    }
    // A pool that does not fit is the layer's own error, naming it.
    let store = convnets_layers::ParamStore::new(0, &dev);
    let conv = convnets_layers::conv2d(
        1,
        2,
        3,
        convnets_layers::Conv2dConfig::default(),
        store.vb().pp("conv1"),
    )?;
    let x = Tensor::zeros((1, 1, 3, 3), candle_core::DType::F32, &dev)?;
    let e = conv
        .forward_relu_max_pool(&x, &convnets_layers::MaxPool2d::new(2).named("pool1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("pool1"), "{e}");
    Ok(())
}
