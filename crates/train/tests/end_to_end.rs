//! The whole loop on real data (when `CONVNETS_DATA` points at the data sets): a short run
//! writes its files, repeats exactly with the same seed, and its saved weights evaluate to the
//! accuracy it printed.

use anyhow::Result;
use convnets_train::recipe::{lenet5_fashion_mnist, mnist_net_mnist};
use convnets_train::{eval_weights, train, EvalConfig, TrainConfig};
use std::path::PathBuf;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CONVNETS_DATA").map(PathBuf::from)?;
    dir.join("mnist").exists().then_some(dir)
}

#[test]
fn short_run_is_reproducible_and_eval_matches() -> Result<()> {
    let Some(data) = data_dir() else {
        {
            use std::io::Write as _; // straight to stderr: libtest captures eprintln!, CI must see a skip
            let _ = writeln!(
                std::io::stderr(),
                "SKIP short_run_is_reproducible_and_eval_matches: CONVNETS_DATA is not set to a folder holding mnist/"
            );
        }
        return Ok(());
    };
    let out = tempfile::tempdir()?;
    let cfg = TrainConfig {
        epochs: 2,
        train_limit: Some(6_000),
        data_dir: Some(data.join("mnist")),
        out: out.path().to_path_buf(),
        download: false,
        ..mnist_net_mnist()
    };
    let a = train(&cfg)?;
    for f in [
        "config.toml",
        "metrics.csv",
        "metrics.jsonl",
        "accuracy.png",
        "accuracy.svg",
        "loss.png",
        "loss.svg",
        "model.safetensors",
        "last.safetensors",
        "best.safetensors",
        "summary.json",
    ] {
        assert!(
            a.dir.join(f).is_file(),
            "{f} missing in {}",
            a.dir.display()
        );
    }
    let csv = std::fs::read_to_string(a.dir.join("metrics.csv"))?;
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // 2 epochs on 6,000 MNIST images with seed 004's recipe already reach > 80 %.
    assert!(a.final_accuracy > 80.0, "accuracy {}", a.final_accuracy);
    assert!(a.epochs[1].train_loss < a.epochs[0].train_loss);

    let b = train(&cfg)?;
    assert_ne!(a.dir, b.dir);
    for (x, y) in a.epochs.iter().zip(&b.epochs) {
        assert_eq!(
            (x.train_loss, x.test_loss, x.test_accuracy),
            (y.train_loss, y.test_loss, y.test_accuracy)
        );
    }

    let eval = EvalConfig {
        model: cfg.model.clone(),
        dataset: cfg.dataset.clone(),
        batch_size: cfg.batch_size,
        normalize: cfg.normalize,
        data_dir: cfg.data_dir.clone(),
        device: "cpu".into(),
    };
    let r = eval_weights(&eval, &a.weights)?;
    assert_eq!(
        format!("{:.1}", r.accuracy()),
        format!("{:.1}", a.final_accuracy)
    );
    assert_eq!(r.accuracy(), a.final_accuracy);
    assert!((r.loss - a.epochs[1].test_loss.unwrap_or(f64::NAN)).abs() < 1e-9);
    Ok(())
}

#[test]
fn missing_data_is_a_clear_error() -> Result<()> {
    let out = tempfile::tempdir()?;
    let cfg = TrainConfig {
        data_dir: Some(out.path().join("nowhere")),
        out: out.path().to_path_buf(),
        ..lenet5_fashion_mnist()
    };
    let err = train(&cfg).unwrap_err().to_string();
    assert!(err.contains("nowhere"), "{err}");
    Ok(())
}
