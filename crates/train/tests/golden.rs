//! The optimizer and the loss against PyTorch (`tests/golden/{sgd,cross_entropy}`, written by
//! `scripts/torch_reference.py`).

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use convnets_train::{cross_entropy, Sgd, SgdConfig};
use std::collections::HashMap;
use std::path::Path;

fn golden(file: &str) -> Result<HashMap<String, Tensor>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(file);
    candle_core::safetensors::load(&p, &Device::Cpu)
        .with_context(|| format!("loading {}", p.display()))
}

#[test]
fn sgd_matches_torch_optim_sgd_step_by_step() -> Result<()> {
    let g = golden("sgd/sgd.safetensors")?;
    let configs = [
        (
            "plain",
            SgdConfig {
                lr: 0.1,
                ..Default::default()
            },
        ),
        (
            "momentum",
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                ..Default::default()
            },
        ),
        (
            "momentum_wd",
            SgdConfig {
                lr: 0.1,
                momentum: 0.5,
                weight_decay: 0.01,
                ..Default::default()
            },
        ),
        (
            "nesterov",
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
                ..Default::default()
            },
        ),
    ];
    for (name, cfg) in configs {
        let p = Var::from_tensor(&g["p0"])?;
        let mut sgd = Sgd::new(vec![p.clone()], cfg)?;
        for step in 0..3 {
            // d/dp sum(p * grad) = grad: the gradient PyTorch's script set by hand.
            let loss = (p.as_tensor() * &g[&format!("grad.{step}")])?.sum_all()?;
            sgd.step(&loss.backward()?)?;
            let ours = p.to_vec1::<f32>()?;
            let theirs = g[&format!("{name}.step{}", step + 1)].to_vec1::<f32>()?;
            for (a, b) in ours.iter().zip(&theirs) {
                assert!(
                    (a - b).abs() < 1e-6,
                    "{name} step {}: {ours:?} vs {theirs:?}",
                    step + 1
                );
            }
        }
    }
    Ok(())
}

#[test]
fn cross_entropy_value_and_gradient_match_pytorch() -> Result<()> {
    let g = golden("cross_entropy/cross_entropy.safetensors")?;
    let logits = Var::from_tensor(&g["logits"])?;
    let labels = g["labels"].to_dtype(DType::U32)?;
    let loss = cross_entropy(logits.as_tensor(), &labels)?;
    let expected = g["loss"].flatten_all()?.to_vec1::<f32>()?[0];
    assert!((loss.to_scalar::<f32>()? - expected).abs() < 1e-5);
    let grads = loss.backward()?;
    let ours = grads.get(logits.as_tensor()).context("no gradient")?;
    let d = (ours - &g["grad"])?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    assert!(d < 1e-6, "gradient differs by {d}");
    Ok(())
}
