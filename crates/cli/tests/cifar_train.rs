//! The CIFAR-10 path end to end on a synthetic CIFAR-format data set (`convnets synthesize`;
//! no copy of CIFAR-10 exists on the test machines): SimpleCNN and ResNet-20 train on it with
//! per-channel normalisation and augmentation (random crop, pad 4, and flips), and the
//! augmented run gives bit-identical weights with 1 and 2 loader threads.

use anyhow::{ensure, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn convnets(args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_convnets"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()?)
}

fn ok(o: &Output) -> Result<String> {
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    ensure!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(text)
}

/// A tensor's name, shape and bytes.
type Named = (String, Vec<usize>, Vec<u8>);

/// Every tensor of a safetensors file (the header's metadata aside).
fn tensors(path: &Path) -> Result<Vec<Named>> {
    let bytes = std::fs::read(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec(), t.data().to_vec()))
        .collect();
    v.sort();
    Ok(v)
}

/// The one run folder under `out`.
fn run_dir(out: &Path) -> Result<PathBuf> {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    ensure!(dirs.len() == 1, "{dirs:?}");
    Ok(dirs[0].clone())
}

#[test]
fn simple_cnn_and_resnet20_train_on_synthetic_cifar10() -> Result<()> {
    let t = tempfile::tempdir()?;
    let root = t.path().join("data");
    let root_s = root.to_str().unwrap();
    let text = ok(&convnets(&[
        "synthesize",
        "cifar10",
        "--root",
        root_s,
        "--train-per-batch",
        "40",
        "--test",
        "60",
    ])?)?;
    ensure!(text.contains("NOT the real CIFAR-10"), "{text}");

    // SimpleCNN with its recipe (per-channel Normalize, random crop + flips), 1 and 2 workers.
    let mut weights = Vec::new();
    for workers in ["1", "2"] {
        let out = t.path().join(format!("simple-w{workers}"));
        let text = ok(&convnets(&[
            "train",
            "--model",
            "simple-cnn",
            "--dataset",
            "cifar10",
            "--data-dir",
            root_s,
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--workers",
            workers,
            "--log-every",
            "0",
            "--offline",
            "--out",
            out.to_str().unwrap(),
        ])?)?;
        ensure!(text.contains("200 train / 60 test images"), "{text}");
        let run = run_dir(&out)?;
        let config = std::fs::read_to_string(run.join("config.toml"))?;
        ensure!(
            config.contains("crop_padding = 4") && config.contains("hflip = true"),
            "{config}"
        );
        ensure!(
            config.contains("mean = [0.4914, 0.4822, 0.4465]"),
            "{config}"
        );
        weights.push(tensors(&run.join("model.safetensors"))?);
    }
    ensure!(
        weights[0] == weights[1],
        "augmented batches, and so the weights, do not depend on the number of workers"
    );

    // ResNet-20 with --augment, one epoch on part of the data.
    let out = t.path().join("resnet20");
    let text = ok(&convnets(&[
        "train",
        "--model",
        "resnet20",
        "--dataset",
        "cifar10",
        "--data-dir",
        root_s,
        "--augment",
        "--epochs",
        "1",
        "--limit",
        "64",
        "--batch-size",
        "32",
        "--log-every",
        "0",
        "--offline",
        "--out",
        out.to_str().unwrap(),
    ])?)?;
    ensure!(text.contains("resnet20 on cifar10"), "{text}");
    ensure!(run_dir(&out)?.join("model.safetensors").is_file());
    Ok(())
}
