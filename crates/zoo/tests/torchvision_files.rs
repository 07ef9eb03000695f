//! torchvision's models through a file on disk: PyTorch writes each torchvision-layout model's
//! `state_dict()` with `safetensors.torch.save_file` (seeded init, random batch-norm statistics,
//! int64 `num_batches_tracked` included) and its logits on a fixed 224x224 input;
//! `convnets_zoo::load` reads that file (no convnets metadata: the model is named) and must
//! give the same logits.
//!
//! PyTorch's side is `scripts/torchvision_reference.py`, run once for all five models when a
//! Python with torch is available (`$CONVNETS_PYTHON`, else the repository's `.venv`);
//! otherwise the test prints SKIP. The files (about 0.5 GB) live in a temporary folder for
//! the test's duration only.
//!
//! Tolerance: max |ours − PyTorch float64| ≤ 1e-4 · max |logits|. The float64 output of the
//! same float32 weights is the exact answer; both float32 implementations round in every one
//! of up to 50 layers of dot products 1,000-25,000 terms long. Measured (x86-64, 2 threads):
//! relative errors of 2e-7 to 7e-7, at most 1.2x PyTorch's own float32 error, which the test
//! prints beside ours; 1e-4 leaves a margin of 200 for other kernels and thread counts.

use anyhow::{ensure, Context, Result};
use candle_core::{Device, Tensor};
use convnets_data::{Normalize, Preprocess};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const TOL: f32 = 1e-4;
const MODELS: [&str; 5] = [
    "alexnet-torchvision",
    "googlenet",
    "resnet18",
    "resnet34",
    "resnet50",
];

/// A Python with torch, torchvision and safetensors, or `None` (after printing SKIP).
fn python(test: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = match std::env::var_os("CONVNETS_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => root.join(".venv/bin/python"),
    };
    let ok = std::process::Command::new(&python)
        .args(["-c", "import torch, torchvision, safetensors"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some(python);
    }
    use std::io::Write as _; // straight to stderr: libtest captures eprintln!, CI must see a skip
    let _ = writeln!(
        std::io::stderr(),
        "SKIP {test}: no Python with torch and torchvision at {} (set CONVNETS_PYTHON)",
        python.display()
    );
    None
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok(
        (a.to_dtype(candle_core::DType::F32)? - b.to_dtype(candle_core::DType::F32)?)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?,
    )
}

#[test]
fn torchvision_files_give_pytorchs_logits() -> Result<()> {
    let Some(python) = python("torchvision_files_give_pytorchs_logits") else {
        return Ok(());
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir()?;
    let out = std::process::Command::new(&python)
        .arg(root.join("scripts/torchvision_reference.py"))
        .arg(dir.path())
        .args(["--models", &MODELS.join(",")])
        .output()?;
    ensure!(
        out.status.success(),
        "torchvision_reference.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for model in MODELS {
        let weights = dir.path().join(format!("{model}.safetensors"));
        let io: HashMap<String, Tensor> = candle_core::safetensors::load(
            dir.path().join(format!("{model}-io.safetensors")),
            &Device::Cpu,
        )?;
        // The file is PyTorch's: int64 batch-norm counters, no metadata.
        let header = convnets_zoo::read_metadata(&weights)?;
        ensure!(
            !header.contains_key("convnets.model"),
            "{model}: {header:?}"
        );
        let err = convnets_zoo::load(&weights, None, &Device::Cpu)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        ensure!(err.contains("--model"), "{model}: {err}");

        let loaded = convnets_zoo::load(&weights, Some(model), &Device::Cpu)?;
        let info = &loaded.info;
        ensure!(
            info.model == model
                && !info.self_describing
                && info.dataset.as_deref() == Some("imagenet")
                && info.classes.len() == 1000
                && info.normalize == Some(Normalize::IMAGENET)
                && info.preprocess == Preprocess::IMAGENET
                && info.input == [3, 224, 224],
            "{model}: {info:?}"
        );
        let counters = loaded
            .store
            .names()
            .iter()
            .filter(|n| n.ends_with("num_batches_tracked"))
            .count();
        ensure!(
            counters > 0 || model == "alexnet-torchvision",
            "{model}: no batch-norm counters"
        );
        let logits = loaded
            .model
            .forward_t(&io["input"], false)
            .with_context(|| format!("{model}: forward"))?;
        let exact = &io["logits64"];
        ensure!(
            logits.dims() == exact.dims(),
            "{model}: {:?}",
            logits.dims()
        );
        let scale = max_abs_diff(exact, &exact.zeros_like()?)?;
        ensure!(scale > 0.0, "{model}: all-zero logits test nothing");
        let ours = max_abs_diff(&logits, exact)?;
        let torch = max_abs_diff(&io["logits"], exact)?;
        eprintln!(
            "{model}: logits (max |y| {scale:.3e}) within {ours:.2e} of PyTorch float64 ({:.1e} relative); PyTorch float32 {torch:.2e}",
            ours / scale
        );
        ensure!(
            ours <= TOL * scale,
            "{model}: logits off by {ours}, tolerance {}",
            TOL * scale
        );
        std::fs::remove_file(&weights)?;
    }
    Ok(())
}
