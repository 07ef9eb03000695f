//! LeNet-5 and MnistNet against PyTorch: parameter names, counts, logits and gradients.
//!
//! The fixtures in `tests/golden/{lenet5,mnist_net}/` were written by
//! `scripts/torch_reference.py` (PyTorch's `state_dict()` after `torch.manual_seed(0)`, a batch
//! of 4 real test images, the logits, the loss and every parameter's gradient).

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use convnets_layers::ParamStore;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn golden(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(case)
}

fn load(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("loading {}", path.display()))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// PyTorch's `list(model.state_dict().keys())` for each model, in order.
const LENET5_KEYS: [&str; 10] = [
    "conv1.weight",
    "conv1.bias",
    "conv2.weight",
    "conv2.bias",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
    "fc3.weight",
    "fc3.bias",
];
const MNIST_NET_KEYS: [&str; 6] = [
    "conv1.weight",
    "conv1.bias",
    "conv2.weight",
    "conv2.bias",
    "fc.weight",
    "fc.bias",
];

fn parity(model: &str, case: &str, keys: &[&str], params: usize) -> Result<()> {
    let dir = golden(case);
    let store = ParamStore::new(0, &Device::Cpu);
    let net = convnets_zoo::build(model, store.vb())?;
    assert_eq!(
        store.names(),
        keys,
        "parameter names differ from PyTorch's state_dict keys"
    );
    assert_eq!(store.num_params(), params);

    // PyTorch's weights load under the same names, and give the same logits.
    store.load(&dir.join("weights.safetensors"), true)?;
    let io = load(&dir.join("io.safetensors"))?;
    let logits = net.forward_t(&io["input"], false)?;
    assert_eq!(logits.dims(), io["logits"].dims());
    let d = max_abs_diff(&logits, &io["logits"])?;
    assert!(d < 1e-4, "{model}: logits differ from PyTorch by {d}");

    // One backward pass: the loss and every parameter's gradient match.
    let g = load(&dir.join("grads.safetensors"))?;
    let labels = g["labels"].to_dtype(DType::U32)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
    let expected = g["loss"].flatten_all()?.to_vec1::<f32>()?[0];
    assert!(
        (loss.to_scalar::<f32>()? - expected).abs() < 1e-5,
        "{model}: loss {loss} vs {expected}"
    );
    let grads = loss.backward()?;
    for (name, var) in store.named_vars() {
        let ours = grads
            .get(var.as_tensor())
            .with_context(|| format!("no gradient for {name}"))?;
        let theirs = &g[&name];
        let scale = theirs
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?
            .max(1.0);
        let d = max_abs_diff(ours, theirs)?;
        assert!(
            d < 1e-4 * scale,
            "{model}: gradient of {name} differs by {d} (scale {scale})"
        );
    }
    Ok(())
}

#[test]
fn lenet5_matches_pytorch() -> Result<()> {
    parity("lenet5", "lenet5", &LENET5_KEYS, 111_302)
}

#[test]
fn mnist_net_matches_pytorch() -> Result<()> {
    parity("mnist-net", "mnist_net", &MNIST_NET_KEYS, 8_490)
}

/// Models with more parameters than this (AlexNet, its torchvision layout, ZFNet: their fully
/// connected layers) take seconds per step on a CPU in a debug build.
const HEAVY_PARAMS: usize = 50_000_000;

/// `steps` SGD steps (lr 0.01) of `info`'s model on one fixed batch of `batch` seeded normal
/// images of its small input size, labels `0..batch`; returns the losses.
fn train_steps(info: &convnets_zoo::ModelInfo, batch: usize, steps: usize) -> Result<Vec<f32>> {
    let store = ParamStore::new(1, &Device::Cpu);
    let net = info.build(store.vb())?;
    // The small input keeps this quick for the ImageNet models with adaptive pooling.
    let [c, h, w] = info.small_input;
    let x = convnets_layers::Rng::new(7).normal(batch * c * h * w, 0.0, 1.0);
    let x = Tensor::from_vec(x, (batch, c, h, w), &Device::Cpu)?;
    let y = Tensor::arange(0u32, batch as u32, &Device::Cpu)?;
    let mut losses = Vec::new();
    for _ in 0..steps {
        let logits = net.forward_t(&x, true)?;
        assert_eq!(logits.dims(), &[batch, info.classes], "{}", info.name);
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        losses.push(loss.to_scalar::<f32>()?);
        let grads = loss.backward()?;
        for (name, var) in store.named_vars() {
            match grads.get(var.as_tensor()) {
                Some(g) => var.set(&(var.as_tensor() - (g * 0.01)?)?)?,
                None if convnets_layers::is_buffer(&name) => {}
                None => anyhow::bail!("{}: no gradient for {name}", info.name),
            }
        }
    }
    assert!(
        losses.iter().all(|l| l.is_finite()),
        "{}: {losses:?}",
        info.name
    );
    Ok(losses)
}

fn is_heavy(info: &convnets_zoo::ModelInfo) -> Result<bool> {
    let store = ParamStore::new(1, &Device::Cpu);
    info.build(store.vb())?;
    Ok(store
        .trainable_vars()
        .iter()
        .map(|v| v.elem_count())
        .sum::<usize>()
        > HEAVY_PARAMS)
}

/// Every model: output shape, a gradient for every parameter, and a few SGD steps on one fixed
/// batch lower the loss. The heavy models take one step here (finite loss, every gradient);
/// `heavy_models_train_on_a_fixed_batch` (ignored by default) runs their five.
#[test]
fn every_model_trains_on_a_fixed_batch() -> Result<()> {
    for info in convnets_zoo::models() {
        if is_heavy(info)? {
            train_steps(info, 2, 1)?;
            continue;
        }
        let losses = train_steps(info, 4, 5)?;
        eprintln!("{}: {losses:?}", info.name);
        assert!(
            losses[4] < losses[0],
            "{}: loss did not decrease: {losses:?}",
            info.name
        );
    }
    Ok(())
}

/// The heavy models' five steps: `cargo test -p convnets-zoo --test pytorch_parity -- --ignored`
/// (about a minute on two cores).
#[test]
#[ignore = "heavy: AlexNet and ZFNet take seconds per step in a debug build"]
fn heavy_models_train_on_a_fixed_batch() -> Result<()> {
    for info in convnets_zoo::models() {
        if is_heavy(info)? {
            let losses = train_steps(info, 2, 5)?;
            assert!(
                losses[4] < losses[0],
                "{}: loss did not decrease: {losses:?}",
                info.name
            );
        }
    }
    Ok(())
}

/// A wrong input gives an error naming the layer and the shapes, not a panic.
#[test]
fn bad_input_is_a_clear_error() -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let net = convnets_zoo::build("lenet5", store.vb())?;
    let x = Tensor::zeros((2, 3, 28, 28), DType::F32, &Device::Cpu)?;
    let err = net.forward_t(&x, false).unwrap_err().to_string();
    assert!(
        err.contains("conv1 (Conv2d): expected 1 input channels") && err.contains("[2, 3, 28, 28]"),
        "{err}"
    );
    let err = convnets_zoo::build("lenet6", store.vb())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("unknown model `lenet6`") && err.contains("lenet5"),
        "{err}"
    );
    Ok(())
}

/// Our weights load back into PyTorch (`load_state_dict(strict=True)`) and give our logits.
/// Runs when a Python with torch is available ($CONVNETS_PYTHON or the repo's .venv).
#[test]
fn our_weights_load_into_pytorch() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = match std::env::var_os("CONVNETS_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => root.join(".venv/bin/python"),
    };
    let has_torch = std::process::Command::new(&python)
        .args(["-c", "import torch, safetensors"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_torch {
        {
            use std::io::Write as _; // straight to stderr: libtest captures eprintln!, CI must see a skip
            let _ = writeln!(
                std::io::stderr(),
                "SKIP our_weights_load_into_pytorch: no Python with torch at {} (set CONVNETS_PYTHON)",
                python.display()
            );
        }
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    for (model, case) in [("lenet5", "lenet5"), ("mnist-net", "mnist_net")] {
        let store = ParamStore::new(42, &Device::Cpu);
        let net = convnets_zoo::build(model, store.vb())?;
        let weights = dir.path().join(format!("{case}.safetensors"));
        store.save(&weights)?;
        let io_path = golden(case).join("io.safetensors");
        let logits = net.forward_t(&load(&io_path)?["input"], false)?;
        let expect = dir.path().join(format!("{case}-logits.safetensors"));
        candle_core::safetensors::save(&HashMap::from([("logits".to_string(), logits)]), &expect)?;
        let out = std::process::Command::new(&python)
            .arg(root.join("scripts/check_weights.py"))
            .arg(&weights)
            .args(["--model", model, "--io"])
            .arg(&io_path)
            .arg("--expect-logits")
            .arg(&expect)
            .output()?;
        assert!(
            out.status.success(),
            "{model}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
