//! Hostile and mistaken input to the real `convnets` binary: every case ends with a non-zero
//! exit status and a message naming the problem (or, where the input is legitimate, a
//! success), never a panic, an abort or a run folder left behind.

use anyhow::{ensure, Result};
use convnets::candle::{Device, Tensor};
use convnets::layers::ParamStore;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn convnets(args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_convnets"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .env("RUST_BACKTRACE", "0")
        .output()?)
}

/// Runs `args`, expects exit status `code` and `needle` in the standard error.
fn expect_failure(args: &[&str], code: i32, needle: &str) -> Result<()> {
    let out = convnets(args)?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(code),
        "{args:?}: exit {:?}, expected {code}; stderr:\n{err}",
        out.status.code()
    );
    ensure!(
        err.contains(needle),
        "{args:?}: stderr lacks `{needle}`:\n{err}"
    );
    ensure!(
        !err.contains("panicked"),
        "{args:?}: the binary panicked:\n{err}"
    );
    Ok(())
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// Bad numeric options are refused where they are parsed (exit 2, clap's usage error) or when
/// the configuration is checked (exit 1), before any run folder exists.
#[test]
fn bad_numbers_are_refused_before_anything_is_written() -> Result<()> {
    let t = tempfile::tempdir()?;
    let out = t.path().join("runs");
    let out_s = out.to_str().unwrap();
    for (args, code, needle) in [
        (
            vec!["train", "--normalize", "nan,1"],
            2,
            "normalization needs a finite mean and a finite std > 0",
        ),
        (vec!["train", "--lr", "inf"], 2, "expected a finite number"),
        (
            vec!["train", "--momentum", "1.5"],
            1,
            "invalid momentum: expected a value in [0, 1), found 1.5",
        ),
        (
            vec!["train", "--normalize", "0.5,0"],
            2,
            "normalization needs a finite mean and a finite std > 0",
        ),
        (
            vec!["train", "--normalize", "0.5,0.5,0.5/0.2,0.2,0.2"],
            1,
            "--normalize 0.5,0.5,0.5/0.2,0.2,0.2 gives statistics for 3 channels but data set `fashion-mnist` has 1-channel images",
        ),
        (
            vec!["train", "--limit", "0"],
            1,
            "--limit 0 leaves no training image",
        ),
        (
            vec!["train", "--model", "simple-cnn", "--dataset", "mnist"],
            1,
            "model `simple-cnn` takes 3x32x32 inputs but data set `mnist` has 1x28x28 images",
        ),
        (
            vec!["train", "--clip-grad-norm", "0"],
            1,
            "--clip-grad-norm must be finite and > 0",
        ),
    ] {
        let mut a = args.clone();
        a.extend(["--out", out_s, "--offline"]);
        expect_failure(&a, code, needle)?;
        ensure!(
            entries(&out) == 0,
            "{args:?} left {} entries in {}",
            entries(&out),
            out.display()
        );
    }
    Ok(())
}

/// `summary` on absurd shapes: an error for what cannot be counted, and a fast answer (one
/// image, scaled) for a huge but countable batch, instead of a panic or an aborting allocation.
#[test]
fn huge_summary_inputs() -> Result<()> {
    expect_failure(
        &[
            "summary",
            "--model",
            "lenet5",
            "--input",
            "18446744073709551615,1,28,28",
        ],
        1,
        "overflows the multiply-accumulate count",
    )?;
    expect_failure(
        &[
            "summary",
            "--model",
            "lenet5",
            "--input",
            "1,1,100000,100000",
        ],
        1,
        "too large",
    )?;
    let out = convnets(&[
        "summary",
        "--model",
        "mnist-net",
        "--input",
        "100000000,1,28,28",
    ])?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "{out:?}");
    ensure!(text.contains("[100000000, 10]"), "{text}");
    Ok(())
}

/// A LeNet-5 weights file with PyTorch's names, one tensor set to `bad` values.
fn lenet5_weights(dir: &Path, poison: Option<f32>) -> Result<PathBuf> {
    let store = ParamStore::new(0, &Device::Cpu);
    convnets::zoo::build("lenet5", store.vb())?;
    if let Some(v) = poison {
        let var = store.get("fc3.bias").expect("lenet5 has fc3.bias");
        var.set(&Tensor::new(&[v; 10], &Device::Cpu)?)?;
    }
    let path = dir.join("lenet5.safetensors");
    store.save(&path)?;
    Ok(path)
}

/// Weights holding NaN or infinities are refused by `eval` with the tensor's name (they used to
/// evaluate to "Accuracy: 10.0%").
#[test]
fn eval_refuses_non_finite_weights() -> Result<()> {
    let t = tempfile::tempdir()?;
    for bad in [f32::NAN, f32::INFINITY] {
        let w = lenet5_weights(t.path(), Some(bad))?;
        expect_failure(
            &[
                "eval",
                "--weights",
                w.to_str().unwrap(),
                "--model",
                "lenet5",
                "--dataset",
                "fashion-mnist",
            ],
            1,
            "tensor `fc3.bias` holds 10 NaN or infinite values",
        )?;
    }
    Ok(())
}

/// A foreign or broken `config.toml` beside the weights does not block `eval` when the flags
/// say what it needs (flags win; the broken file is at most a warning).
#[test]
fn eval_flags_win_over_a_foreign_config() -> Result<()> {
    let Some(data) = std::env::var_os("CONVNETS_DATA").map(PathBuf::from) else {
        {
            use std::io::Write as _; // straight to stderr: libtest captures eprintln!, CI must see a skip
            let _ = writeln!(
                std::io::stderr(),
                "SKIP eval_flags_win_over_a_foreign_config: needs CONVNETS_DATA (Fashion-MNIST)"
            );
        }
        return Ok(());
    };
    let t = tempfile::tempdir()?;
    let w = lenet5_weights(t.path(), None)?;
    std::fs::write(t.path().join("config.toml"), "this is = = not toml\n")?;
    std::fs::write(t.path().join("config.json"), "{\"model\": 7}")?;
    let out = convnets(&[
        "eval",
        "--weights",
        w.to_str().unwrap(),
        "--model",
        "lenet5",
        "--dataset",
        "fashion-mnist",
        "--normalize",
        "0,1",
        "--quiet",
        "--data-dir",
        data.to_str().unwrap(),
    ])?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(text.contains("Accuracy"), "{text}");
    Ok(())
}
