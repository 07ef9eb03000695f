//! The native fully connected kernel against the reference (`matmul` + `broadcast_add`):
//! output and the gradients of input, weight and bias, for 1-D, 2-D and 3-D inputs.

use candle_core::{Device, Tensor, Var};
use convnets_layers::ops::{native, reference};
use proptest::prelude::*;

type LinearFn = fn(&Tensor, &Tensor, Option<&Tensor>) -> candle_core::Result<Tensor>;

/// Output and gradients (x, w, b) of `sum(linear(x) * r)` for a fixed random `r`.
fn run(f: LinearFn, x: &Var, w: &Var, b: Option<&Var>, r: &Tensor) -> Vec<Vec<f32>> {
    let y = f(x.as_tensor(), w.as_tensor(), b.map(|b| b.as_tensor())).unwrap();
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut out = vec![
        flat(&y),
        flat(grads.get(x.as_tensor()).unwrap()),
        flat(grads.get(w.as_tensor()).unwrap()),
    ];
    if let Some(b) = b {
        out.push(flat(grads.get(b.as_tensor()).unwrap()));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn matches_reference(rank in 1usize..4, rows in 1usize..70, n_in in 1usize..90, n_out in 1usize..40, bias: bool, seed in 0u64..1000) {
        let dev = Device::Cpu;
        let mut rng = convnets_layers::Rng::new(seed);
        let mut t = |dims: &[usize]| Tensor::from_vec(rng.normal(dims.iter().product(), 0.0, 1.0), dims, &dev).unwrap();
        let (x_dims, y_dims): (Vec<usize>, Vec<usize>) = match rank {
            1 => (vec![n_in], vec![n_out]),
            2 => (vec![rows, n_in], vec![rows, n_out]),
            _ => (vec![2, rows, n_in], vec![2, rows, n_out]),
        };
        let x = Var::from_tensor(&t(&x_dims)).unwrap();
        let w = Var::from_tensor(&t(&[n_out, n_in])).unwrap();
        let b = bias.then(|| Var::from_tensor(&t(&[n_out])).unwrap());
        let r = t(&y_dims);
        let got = run(native::linear, &x, &w, b.as_ref(), &r);
        let want = run(reference::linear, &x, &w, b.as_ref(), &r);
        let y = native::linear(x.as_tensor(), w.as_tensor(), b.as_ref().map(|b| b.as_tensor())).unwrap();
        prop_assert_eq!(y.dims(), &y_dims[..]);
        for (what, (g, e)) in ["y", "dx", "dw", "db"].iter().zip(got.iter().zip(&want)) {
            prop_assert_eq!(g.len(), e.len());
            for (i, (a, b)) in g.iter().zip(e).enumerate() {
                prop_assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{} [{}]: {} vs {}", what, i, a, b);
            }
        }
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let dev = Device::Cpu;
    let w = Tensor::zeros((3, 4), candle_core::DType::F32, &dev).unwrap();
    let x = Tensor::zeros((2, 5), candle_core::DType::F32, &dev).unwrap();
    let err = native::linear(&x, &w, None).unwrap_err().to_string();
    assert!(
        err.contains("[2, 5]") && err.contains("4 input features"),
        "{err}"
    );
    let x = Tensor::zeros((2, 4), candle_core::DType::F32, &dev).unwrap();
    let b = Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap();
    let err = native::linear(&x, &w, Some(&b)).unwrap_err().to_string();
    assert!(
        err.contains("bias [2]") && err.contains("expected [3]"),
        "{err}"
    );
}
