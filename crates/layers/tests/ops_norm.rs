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
