//! Training-mode batch normalisation: the native kernel against the reference composition
//! (output, batch statistics, and the gradients of input, weight and bias).

use candle_core::{Device, Tensor, Var};
use convnets_layers::ops::{native, reference};
use proptest::prelude::*;

type BnFn = fn(&Tensor, &Tensor, &Tensor, f64) -> candle_core::Result<(Tensor, Tensor, Tensor)>;

fn run(f: BnFn, x: &Var, g: &Var, b: &Var, r: &Tensor) -> Vec<Vec<f32>> {
    let (y, mean, var) = f(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5).unwrap();
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let grad = |v: &Var| flat(grads.get(v.as_tensor()).unwrap());
    vec![flat(&y), flat(&mean), flat(&var), grad(x), grad(g), grad(b)]
}

/// The reference batch norm, then candle's ReLU.
fn reference_bn_relu(
    x: &Tensor,
    g: &Tensor,
    b: &Tensor,
    eps: f64,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let (y, mean, var) = reference::batch_norm2d_train(x, g, b, eps)?;
    Ok((y.relu()?, mean, var))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn matches_reference(b in 1usize..6, c in 1usize..7, h in 1usize..7, w in 1usize..7, shift in -3f64..3.0, seed in 0u64..1000) {
        prop_assume!(b * h * w > 1);
        let dev = Device::Cpu;
        let mut rng = convnets_layers::Rng::new(seed);
        let mut t = |dims: &[usize], mean: f64| Tensor::from_vec(rng.normal(dims.iter().product(), mean, 1.0), dims, &dev).unwrap();
        let x = Var::from_tensor(&t(&[b, c, h, w], shift)).unwrap();
        let g = Var::from_tensor(&t(&[c], 1.0)).unwrap();
        let bb = Var::from_tensor(&t(&[c], 0.0)).unwrap();
        let r = t(&[b, c, h, w], 0.0);
        // ReLU's gradient masks on the sign of the normalised value, which the two
        // implementations round differently: a value within rounding of zero can pass the
        // gradient in one and not the other (a real difference of one element's gradient, not
        // an error of either). Such draws are rare; skip them.
        let pre = reference::batch_norm2d_train(x.as_tensor(), g.as_tensor(), bb.as_tensor(), 1e-5).unwrap().0;
        let near_zero = pre.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().any(|v| v.abs() < 1e-4);
        prop_assume!(!near_zero);
        // Plain, and with the fused ReLU against the reference followed by candle's relu.
        let pairs: [(BnFn, BnFn, &str); 2] = [
            (native::batch_norm2d_train, reference::batch_norm2d_train, "bn"),
            (native::batch_norm2d_relu_train, reference_bn_relu, "bn+relu"),
        ];
        for (native_fn, reference_fn, name) in pairs {
            let got = run(native_fn, &x, &g, &bb, &r);
            let want = run(reference_fn, &x, &g, &bb, &r);
            for (what, (a, e)) in ["y", "mean", "var", "dx", "dgamma", "dbeta"].iter().zip(got.iter().zip(&want)) {
                prop_assert_eq!(a.len(), e.len());
                for (i, (p, q)) in a.iter().zip(e).enumerate() {
                    prop_assert!((p - q).abs() <= 2e-4 * (1.0 + q.abs()), "{} {} [{}]: {} vs {}", name, what, i, p, q);
                }
            }
        }
    }
}

#[test]
fn shape_errors() {
    let x = Tensor::zeros((2, 3, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let g = Tensor::ones(2, candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = native::batch_norm2d_train(&x, &g, &g, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[2, 3, 4, 4]") && err.contains("[3]"), "{err}");
}

/// The fused convolution + batch norm (+ ReLU) against the same kernels as two ops (bit for
/// bit: output, batch statistics and every gradient) and against the reference composition
/// (within rounding, without ReLU, whose mask may flip on a value within rounding of zero).
/// Strides 1 and 2, 3x3 and 1x1; then the layer: `BatchNorm2d::forward_conv_t` updates the
/// running statistics exactly as `forward_t` after the convolution does.
#[test]
fn conv_bn_fused_matches_the_pair() {
    use convnets_layers::ops::{Conv2dParams, ConvGeometry};
    let dev = Device::Cpu;
    let p = |stride: usize, pad: usize| Conv2dParams {
        stride: [stride, stride],
        padding: [pad, pad],
        ..Default::default()
    };
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (x_dims, c_out, k, params) in [
        ([4, 3, 8, 8], 5, 3, p(1, 1)),
        ([3, 4, 9, 9], 6, 3, p(2, 1)),
        ([2, 8, 6, 6], 8, 1, p(1, 0)),
        ([2, 16, 32, 32], 16, 3, p(1, 1)),
    ] {
        let mut rng = convnets_layers::Rng::new(7);
        let mut t = |dims: &[usize], mean: f64, sd: f64| {
            Tensor::from_vec(rng.normal(dims.iter().product(), mean, sd), dims, &dev).unwrap()
        };
        let x = Var::from_tensor(&t(&x_dims, 0.5, 1.0)).unwrap();
        let w = Var::from_tensor(&t(&[c_out, x_dims[1], k, k], 0.0, 0.3)).unwrap();
        let gamma = Var::from_tensor(&t(&[c_out], 1.0, 0.2)).unwrap();
        let beta = Var::from_tensor(&t(&[c_out], 0.0, 0.2)).unwrap();
        let g = ConvGeometry::new(&x_dims, w.dims(), None, &params).unwrap();
        let r = t(&g.output_dims(), 0.0, 1.0);
        let vars = [&x, &w, &gamma, &beta];
        let run = |fused: bool, reference_ops: bool, relu: bool| -> Vec<Vec<f32>> {
            let (xt, wt, gt, bt) = (
                x.as_tensor(),
                w.as_tensor(),
                gamma.as_tensor(),
                beta.as_tensor(),
            );
            let (y, mean, var) = if fused {
                native::conv2d_batch_norm2d_train(xt, wt, &g, gt, bt, 1e-5, relu).unwrap()
            } else if reference_ops {
                let c = reference::conv2d_with(xt, wt, None, &g).unwrap();
                reference::batch_norm2d_train(&c, gt, bt, 1e-5).unwrap()
            } else {
                let c = native::conv2d_with(xt, wt, None, &g).unwrap();
                let bn = if relu {
                    native::batch_norm2d_relu_train
                } else {
                    native::batch_norm2d_train
                };
                bn(&c, gt, bt, 1e-5).unwrap()
            };
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let mut out = vec![flat(&y), flat(&mean), flat(&var)];
            out.extend(vars.iter().map(|v| flat(grads.get(v.as_tensor()).unwrap())));
            out
        };
        let names = ["y", "mean", "var", "dx", "dw", "dgamma", "dbeta"];
        for relu in [false, true] {
            let (got, pair) = (run(true, false, relu), run(false, false, relu));
            for ((name, a), b) in names.iter().zip(&got).zip(&pair) {
                assert_eq!(
                    a, b,
                    "{x_dims:?} relu {relu}: {name} differs from the two ops"
                );
            }
        }
        let (got, want) = (run(true, false, false), run(false, true, false));
        for ((name, a), b) in names.iter().zip(&got).zip(&want) {
            let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
            for (i, (p, q)) in a.iter().zip(b).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-4 * scale,
                    "{x_dims:?}: {name}[{i}] {p} vs reference {q}"
                );
            }
        }
    }
    // The layer: fused and unfused training steps leave the same outputs and running
    // statistics.
    let x = Tensor::from_vec(
        convnets_layers::Rng::new(5).normal(2 * 3 * 6 * 6, 0.3, 1.0),
        (2, 3, 6, 6),
        &dev,
    )
    .unwrap();
    let layer_run = |fused: bool| {
        use candle_core::Module;
        let store = convnets_layers::ParamStore::new(3, &dev);
        let vb = store.vb();
        let cfg = convnets_layers::Conv2dConfig::default()
            .padding(1)
            .bias(false);
        let conv = convnets_layers::conv2d(3, 4, 3, cfg, vb.pp("conv")).unwrap();
        let bn = convnets_layers::batch_norm2d(4, Default::default(), vb.pp("bn")).unwrap();
        let mut ys = Vec::new();
        for _ in 0..2 {
            let y = if fused {
                bn.forward_conv_t(&conv, &x, true, true).unwrap()
            } else {
                bn.forward_relu_t(&conv.forward(&x).unwrap(), true).unwrap()
            };
            ys.push(flat(&y));
        }
        let tracked = bn.num_batches_tracked().unwrap();
        (
            ys,
            flat(&bn.running_mean()),
            flat(&bn.running_var()),
            tracked,
        )
    };
    assert_eq!(layer_run(true), layer_run(false));
}

/// The residual form, `relu(bn(conv(x)) + r)` in one op, against the fused convolution +
/// batch norm followed by the native `add_relu` (bit for bit: output, statistics, and the
/// gradients of input, weight, affine parameters and residual), and the layer method
/// `forward_conv_add_relu_t` against the layers one by one.
#[test]
fn conv_bn_add_relu_fused_matches_the_ops() {
    use convnets_layers::ops::{Conv2dParams, ConvGeometry};
    let dev = Device::Cpu;
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (x_dims, c_out, stride) in [
        ([4, 3, 8, 8], 5, 1),
        ([3, 4, 9, 9], 6, 2),
        ([2, 16, 32, 32], 16, 1),
    ] {
        let params = Conv2dParams {
            stride: [stride, stride],
            padding: [1, 1],
            ..Default::default()
        };
        let mut rng = convnets_layers::Rng::new(11);
        let mut t = |dims: &[usize], mean: f64, sd: f64| {
            Tensor::from_vec(rng.normal(dims.iter().product(), mean, sd), dims, &dev).unwrap()
        };
        let x = Var::from_tensor(&t(&x_dims, 0.5, 1.0)).unwrap();
        let w = Var::from_tensor(&t(&[c_out, x_dims[1], 3, 3], 0.0, 0.3)).unwrap();
        let gamma = Var::from_tensor(&t(&[c_out], 1.0, 0.2)).unwrap();
        let beta = Var::from_tensor(&t(&[c_out], 0.0, 0.2)).unwrap();
        let g = ConvGeometry::new(&x_dims, w.dims(), None, &params).unwrap();
        let res = Var::from_tensor(&t(&g.output_dims(), 0.0, 1.0)).unwrap();
        let r = t(&g.output_dims(), 0.0, 1.0);
        let run = |fused: bool| -> Vec<Vec<f32>> {
            let (xt, wt, gt, bt, rt) = (
                x.as_tensor(),
                w.as_tensor(),
                gamma.as_tensor(),
                beta.as_tensor(),
                res.as_tensor(),
            );
            let (y, mean, var) = if fused {
                native::conv2d_batch_norm2d_add_relu_train(xt, wt, &g, gt, bt, 1e-5, rt).unwrap()
            } else {
                let (z, mean, var) =
                    native::conv2d_batch_norm2d_train(xt, wt, &g, gt, bt, 1e-5, false).unwrap();
                (native::add_relu(&z, rt).unwrap(), mean, var)
            };
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let mut out = vec![flat(&y), flat(&mean), flat(&var)];
            out.extend(
                [&x, &w, &gamma, &beta, &res]
                    .iter()
                    .map(|v| flat(grads.get(v.as_tensor()).unwrap())),
            );
            out
        };
        let (got, want) = (run(true), run(false));
        assert!(got[0].contains(&0.0) && got[0].iter().any(|&v| v > 0.0));
        for ((name, a), b) in [
            "y",
            "mean",
            "var",
            "dx",
            "dw",
            "dgamma",
            "dbeta",
            "dresidual",
        ]
        .iter()
        .zip(&got)
        .zip(&want)
        {
            assert_eq!(
                a, b,
                "{x_dims:?} stride {stride}: {name} differs from the ops"
            );
        }
    }
    // The layer method against conv, batch norm and add_relu one by one.
    let x = Tensor::from_vec(
        convnets_layers::Rng::new(5).normal(2 * 4 * 6 * 6, 0.3, 1.0),
        (2, 4, 6, 6),
        &dev,
    )
    .unwrap();
    let layer_run = |fused: bool| {
        use candle_core::{Module, ModuleT};
        let store = convnets_layers::ParamStore::new(3, &dev);
        let vb = store.vb();
        let cfg = convnets_layers::Conv2dConfig::default()
            .padding(1)
            .bias(false);
        let conv = convnets_layers::conv2d(4, 4, 3, cfg, vb.pp("conv")).unwrap();
        let bn = convnets_layers::batch_norm2d(4, Default::default(), vb.pp("bn")).unwrap();
        let y = if fused {
            bn.forward_conv_add_relu_t(&conv, &x, &x, true).unwrap()
        } else {
            convnets_layers::add_relu(&bn.forward_t(&conv.forward(&x).unwrap(), true).unwrap(), &x)
                .unwrap()
        };
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let dw = flat(grads.get(conv.weight()).unwrap());
        (
            flat(&y),
            dw,
            flat(&bn.running_mean()),
            flat(&bn.running_var()),
        )
    };
    assert_eq!(layer_run(true), layer_run(false));
}

/// A whole residual block with an identity shortcut in one op,
/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + x)`, against the two fused ops it replaces
/// (bit for bit: output, both normalisations' statistics, the input's gradient — the two
/// contributions summed inside the op — and every parameter's); with a frozen input; and the
/// layer function `basic_block_t` against the layers one by one (values, gradients, running
/// statistics).
#[test]
fn basic_block_matches_the_fused_ops() {
    use convnets_layers::ops::{Conv2dParams, ConvGeometry};
    let dev = Device::Cpu;
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for x_dims in [[4, 3, 8, 8], [2, 16, 32, 32], [3, 5, 7, 9]] {
        let params = Conv2dParams {
            padding: [1, 1],
            ..Default::default()
        };
        let c = x_dims[1];
        let mut rng = convnets_layers::Rng::new(17);
        let mut t = |dims: &[usize], mean: f64, sd: f64| {
            Tensor::from_vec(rng.normal(dims.iter().product(), mean, sd), dims, &dev).unwrap()
        };
        let x = Var::from_tensor(&t(&x_dims, 0.5, 1.0)).unwrap();
        let vars: Vec<Var> = [
            t(&[c, c, 3, 3], 0.0, 0.3),
            t(&[c], 1.0, 0.2),
            t(&[c], 0.0, 0.2),
            t(&[c, c, 3, 3], 0.0, 0.3),
            t(&[c], 1.0, 0.2),
            t(&[c], 0.0, 0.2),
        ]
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
        let g = ConvGeometry::new(&x_dims, vars[0].dims(), None, &params).unwrap();
        let r = t(&g.output_dims(), 0.0, 1.0);
        let run = |one_op: bool, frozen_x: bool| -> Vec<Vec<f32>> {
            let xt = if frozen_x {
                x.as_tensor().detach()
            } else {
                x.as_tensor().clone()
            };
            let p: Vec<&Tensor> = vars.iter().map(|v| v.as_tensor()).collect();
            let (y, stats) = if one_op {
                let (y, [s1, s2]) =
                    native::basic_block_train(&xt, &g, p[0], p[1], p[2], p[3], p[4], p[5], 1e-5)
                        .unwrap();
                (y, [s1.0, s1.1, s2.0, s2.1])
            } else {
                let (h, m1, v1) =
                    native::conv2d_batch_norm2d_train(&xt, p[0], &g, p[1], p[2], 1e-5, true)
                        .unwrap();
                let (y, m2, v2) =
                    native::conv2d_batch_norm2d_add_relu_train(&h, p[3], &g, p[4], p[5], 1e-5, &xt)
                        .unwrap();
                (y, [m1, v1, m2, v2])
            };
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let mut out = vec![flat(&y)];
            out.extend(stats.iter().map(flat));
            out.push(grads.get(&xt).map(flat).unwrap_or_default());
            out.extend(vars.iter().map(|v| flat(grads.get(v.as_tensor()).unwrap())));
            out
        };
        for frozen_x in [false, true] {
            let (got, want) = (run(true, frozen_x), run(false, frozen_x));
            assert!(got[0].contains(&0.0) && got[0].iter().any(|&v| v > 0.0));
            assert_eq!(got[5].is_empty(), frozen_x);
            let names = [
                "y", "mean1", "var1", "mean2", "var2", "dx", "dw1", "dgamma1", "dbeta1", "dw2",
                "dgamma2", "dbeta2",
            ];
            for ((name, a), b) in names.iter().zip(&got).zip(&want) {
                // (The fused ops hand a frozen residual a gradient candle then stores.)
                if !(frozen_x && *name == "dx") {
                    assert_eq!(a, b, "{x_dims:?} (frozen x: {frozen_x}): {name} differs");
                }
            }
        }
    }
    // The layer function against the layers one by one.
    let x = Tensor::from_vec(
        convnets_layers::Rng::new(5).normal(2 * 4 * 6 * 6, 0.3, 1.0),
        (2, 4, 6, 6),
        &dev,
    )
    .unwrap();
    let layer_run = |one_op: bool| {
        use candle_core::{Module, ModuleT};
        let store = convnets_layers::ParamStore::new(3, &dev);
        let vb = store.vb();
        let cfg = convnets_layers::Conv2dConfig::default()
            .padding(1)
            .bias(false);
        let conv1 = convnets_layers::conv2d(4, 4, 3, cfg, vb.pp("conv1")).unwrap();
        let bn1 = convnets_layers::batch_norm2d(4, Default::default(), vb.pp("bn1")).unwrap();
        let conv2 = convnets_layers::conv2d(4, 4, 3, cfg, vb.pp("conv2")).unwrap();
        let bn2 = convnets_layers::batch_norm2d(4, Default::default(), vb.pp("bn2")).unwrap();
        let y = if one_op {
            convnets_layers::basic_block_t(&conv1, &bn1, &conv2, &bn2, &x, true).unwrap()
        } else {
            let h =
                convnets_layers::relu(&bn1.forward_t(&conv1.forward(&x).unwrap(), true).unwrap())
                    .unwrap();
            let z = bn2.forward_t(&conv2.forward(&h).unwrap(), true).unwrap();
            convnets_layers::add_relu(&z, &x).unwrap()
        };
        let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let mut out = vec![flat(&y)];
        for v in store.trainable_vars() {
            out.push(flat(grads.get(v.as_tensor()).unwrap()));
        }
        for bn in [&bn1, &bn2] {
            out.push(flat(&bn.running_mean()));
            out.push(flat(&bn.running_var()));
        }
        out
    };
    let (a, b) = (layer_run(true), layer_run(false));
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            worst <= 1e-5 * scale,
            "layer output {i}: differs by {worst}"
        );
    }
}
