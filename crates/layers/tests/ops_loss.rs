//! The fused cross-entropy kernel against candle's log-softmax + NLL composition: loss and
//! gradient over a grid of shapes, scales and label types, plus a hand case and errors.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use convnets_layers::ops::{native, reference};
use proptest::prelude::*;

fn loss_and_grad(
    f: fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    x: &Var,
    y: &Tensor,
) -> Result<(f32, Vec<f32>)> {
    // Scale the loss so the backward sees an output gradient other than 1.
    let loss = f(x.as_tensor(), y)?;
    let grads = (&loss * 0.75)?.backward()?;
    let g = grads.get(x.as_tensor()).expect("logits gradient");
    Ok((loss.to_scalar::<f32>()?, g.flatten_all()?.to_vec1::<f32>()?))
}

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn matches_reference(rows in 1usize..40, classes in 1usize..20, scale in 0.1f64..30.0, seed in 0u64..1000, dtype in 0usize..3) {
        let dev = Device::Cpu;
        let mut rng = convnets_layers::Rng::new(seed);
        let x = Tensor::from_vec(rng.normal(rows * classes, 0.0, scale), (rows, classes), &dev).unwrap();
        let labels: Vec<u32> = (0..rows).map(|i| ((i as u64 * 7 + seed) % classes as u64) as u32).collect();
        let y = Tensor::new(labels.as_slice(), &dev).unwrap();
        let y = y.to_dtype([DType::U32, DType::U8, DType::I64][dtype]).unwrap();
        let x = Var::from_tensor(&x).unwrap();
        let (ln, gn) = loss_and_grad(native::cross_entropy, &x, &y).unwrap();
        let (lr, gr) = loss_and_grad(reference::cross_entropy, &x, &y).unwrap();
        prop_assert!(close(ln, lr, 1e-5), "loss {ln} vs {lr}");
        for (i, (a, b)) in gn.iter().zip(&gr).enumerate() {
            prop_assert!((a - b).abs() <= 1e-6 + 1e-5 * b.abs(), "grad {i}: {a} vs {b}");
        }
    }
}

/// Logits [[0, ln 3]], label 1: softmax = [1/4, 3/4], loss = -ln(3/4), gradient [1/4, -1/4].
#[test]
fn by_hand() -> Result<()> {
    let x = Var::new(&[[0f32, 3f32.ln()]], &Device::Cpu)?;
    let y = Tensor::new(&[1u32], &Device::Cpu)?;
    let loss = native::cross_entropy(x.as_tensor(), &y)?;
    assert!((loss.to_scalar::<f32>()? - (4f32 / 3.0).ln()).abs() < 1e-6);
    let g = loss
        .backward()?
        .get(x.as_tensor())
        .expect("grad")
        .to_vec2::<f32>()?;
    assert!(
        (g[0][0] - 0.25).abs() < 1e-6 && (g[0][1] + 0.25).abs() < 1e-6,
        "{g:?}"
    );
    Ok(())
}

#[test]
fn errors_say_what_is_wrong() -> Result<()> {
    let x = Tensor::zeros((2, 3), DType::F32, &Device::Cpu)?;
    let err = native::cross_entropy(&x, &Tensor::new(&[0u32, 3], &Device::Cpu)?)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("label 3 is not a class index in [0, 3)"),
        "{err}"
    );
    let err = native::cross_entropy(&x, &Tensor::new(&[0u32], &Device::Cpu)?)
        .unwrap_err()
        .to_string();
    assert!(err.contains("need labels [2]"), "{err}");
    Ok(())
}
