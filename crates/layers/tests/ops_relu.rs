//! The native ReLU against the reference (candle's `relu`): output and input gradient, for
//! contiguous and transposed inputs of any rank and size (both sides of the threading
//! threshold), and PyTorch's rule at 0 (no gradient).

use candle_core::{Device, Tensor, Var};
use convnets_layers::ops::{native, reference};
use proptest::prelude::*;

type ReluFn = fn(&Tensor) -> candle_core::Result<Tensor>;

/// Output and input gradient of `sum(relu(x) * r)` for a fixed random `r`.
fn run(f: ReluFn, x: &Tensor, r: &Tensor) -> (Vec<f32>, Vec<f32>) {
    let v = Var::from_tensor(x).unwrap();
    // A transposed view when the input is 2-D or more, to exercise the non-contiguous path.
    let input = if x.rank() >= 2 {
        v.as_tensor().t().unwrap()
    } else {
        v.as_tensor().clone()
    };
    let y = f(&input).unwrap();
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (flat(&y), flat(grads.get(v.as_tensor()).unwrap()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn matches_reference(dims in prop::collection::vec(1usize..48, 1..4), big: bool, seed in 0u64..1000) {
        let dev = Device::Cpu;
        let mut rng = convnets_layers::Rng::new(seed);
        let mut dims = dims;
        if big {
            // Past the size where the kernels split over threads (2^18 elements).
            dims.truncate(1);
            dims.push((1 << 18) / dims[0] + 7);
        }
        let n: usize = dims.iter().product();
        let x = Tensor::from_vec(rng.normal(n, 0.0, 1.0), &dims[..], &dev).unwrap();
        let y_dims = if dims.len() >= 2 { x.t().unwrap().dims().to_vec() } else { dims.clone() };
        let r = Tensor::from_vec(rng.normal(n, 0.0, 1.0), &y_dims[..], &dev).unwrap();
        let got = run(native::relu, &x, &r);
        let want = run(reference::relu, &x, &r);
        // No exact zeros in normal draws, so the two gradient rules agree; both are exact.
        prop_assert_eq!(got, want);
    }
}

#[test]
fn no_gradient_at_zero_and_untracked_inputs() {
    let dev = Device::Cpu;
    let x = Var::new(&[-1f32, 0., 2., -0.], &dev).unwrap();
    let y = native::relu(x.as_tensor()).unwrap();
    assert_eq!(y.to_vec1::<f32>().unwrap(), [0., 0., 2., 0.]);
    let grads = (&y * 3.0).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(dx, [0., 0., 3., 0.]);
    // A plain tensor records no backward.
    let t = Tensor::new(&[-1f32, 1.], &dev).unwrap();
    let y = native::relu(&t).unwrap();
    assert!(!y.track_op());
    assert_eq!(
        convnets_layers::relu(&t).unwrap().to_vec1::<f32>().unwrap(),
        [0., 1.]
    );
}

#[test]
fn rejects_other_dtypes() {
    let x = Tensor::new(&[1f64, -1.], &Device::Cpu).unwrap();
    let err = native::relu(&x).unwrap_err().to_string();
    assert!(err.contains("relu") && err.contains("f32"), "{err}");
    // The dispatching op falls back to the reference.
    assert_eq!(
        convnets_layers::ops::relu(&x)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap(),
        [1., 0.]
    );
}

/// `add_relu`: the fused residual join against candle's `(a + b).relu()`, values and both
/// gradients, small and past the threading threshold; at `a + b == 0` no gradient flows
/// (PyTorch's rule; candle's relu would pass it, so those elements are compared separately).
#[test]
fn add_relu_matches_reference() {
    let dev = Device::Cpu;
    for (n, seed) in [(37usize, 1u64), ((1 << 18) + 5, 2)] {
        let mut rng = convnets_layers::Rng::new(seed);
        let mut av = rng.normal(n, 0.0, 1.0);
        let bv = rng.normal(n, 0.0, 1.0);
        av[0] = -bv[0]; // exactly zero sum
        let r = Tensor::from_vec(rng.normal(n, 0.0, 1.0), n, &dev).unwrap();
        let a = Var::from_vec(av.clone(), n, &dev).unwrap();
        let b = Var::from_vec(bv.clone(), n, &dev).unwrap();
        let y = native::add_relu(a.as_tensor(), b.as_tensor()).unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (y, ga, gb) = (
            flat(&y),
            flat(grads.get(a.as_tensor()).unwrap()),
            flat(grads.get(b.as_tensor()).unwrap()),
        );
        let want_y = flat(&(a.as_tensor() + b.as_tensor()).unwrap().relu().unwrap());
        let rv = flat(&r);
        for i in 0..n {
            assert_eq!(y[i], want_y[i], "y[{i}]");
            let want_g = if want_y[i] > 0.0 { rv[i] } else { 0.0 };
            assert_eq!((ga[i], gb[i]), (want_g, want_g), "gradients [{i}]");
        }
        assert_eq!((y[0], ga[0]), (0.0, 0.0));
    }
    let err = native::add_relu(
        &Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap(),
        &Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("[3]") && err.contains("[4]"), "{err}");
}

/// PyTorch's NaN rule: `torch.relu(nan)` is NaN and `threshold_backward` passes the gradient
/// of a NaN output (candle's own `relu` returns 0 there, which hid diverged runs). The same
/// for the fused residual join and batch norm + ReLU.
#[test]
fn nan_propagates_like_pytorch() {
    let dev = Device::Cpu;
    let x = Var::new(&[f32::NAN, -1., 2., f32::INFINITY, f32::NEG_INFINITY], &dev).unwrap();
    let y = native::relu(x.as_tensor())
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(y[0].is_nan(), "{y:?}");
    assert_eq!(&y[1..], [0., 2., f32::INFINITY, 0.]);
    let y = native::relu(x.as_tensor()).unwrap();
    let grads = (&y * 3.0).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(dx, [3., 0., 3., 3., 0.]);

    let a = Tensor::new(&[f32::NAN, 1., -3.], &dev).unwrap();
    let b = Tensor::new(&[1f32, f32::NAN, 1.], &dev).unwrap();
    let y = native::add_relu(&a, &b).unwrap().to_vec1::<f32>().unwrap();
    assert!(y[0].is_nan() && y[1].is_nan() && y[2] == 0., "{y:?}");
}
