//! Fine-tuning end to end (`train --weights W --replace-head N --freeze-backbone`): the
//! LeNet-5 weights shipped in `weights/` (trained on Fashion-MNIST, 10 classes) become the
//! frozen backbone of a 3-class model trained on a folder of shape images written here.
//! Checked: the backbone in the written weights equals the shipped file's bit for bit, the
//! new head has 3 outputs and is the only thing trained (243 trainable parameters), the
//! weights describe themselves (`eval` and `predict` need only `--weights`), a resumed run
//! keeps the backbone frozen, and wrong uses fail before a run folder exists, naming the flag.

use anyhow::{ensure, Result};
use convnets::candle::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod common;
use common::{convnets, run_dir, write_folder};

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights/lenet5-fashion-mnist.safetensors")
}

fn tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    Ok(convnets::candle::safetensors::load(path, &Device::Cpu)?)
}

fn same(a: &Tensor, b: &Tensor) -> Result<bool> {
    Ok(a.dims() == b.dims()
        && a.flatten_all()?.to_vec1::<f32>()? == b.flatten_all()?.to_vec1::<f32>()?)
}

/// Every tensor of the shipped weights but the classifier (`fc3`) is in `path`, unchanged.
fn backbone_unchanged(path: &Path) -> Result<()> {
    let before = tensors(&shipped())?;
    let after = tensors(path)?;
    for (name, t) in &before {
        if name.starts_with("fc3.") {
            continue;
        }
        ensure!(
            same(t, &after[name])?,
            "{name} changed although frozen ({})",
            path.display()
        );
    }
    Ok(())
}

fn ok(o: &std::process::Output) -> Result<String> {
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    ensure!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(text)
}

#[test]
fn fine_tune_a_new_head_on_a_frozen_backbone() -> Result<()> {
    let t = tempfile::tempdir()?;
    let data = t.path().join("shapes");
    write_folder(&data)?;
    let out = t.path().join("runs");
    let dataset = format!("folder:{}", data.display());
    let weights = shipped();
    let o = convnets(&[
        "train",
        "--model",
        "lenet5",
        "--weights",
        weights.to_str().unwrap(),
        "--replace-head",
        "3",
        "--freeze-backbone",
        "--dataset",
        dataset.as_str(),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--no-augment",
        "--log-every",
        "0",
        "--out",
        out.to_str().unwrap(),
    ])?;
    let text = ok(&o)?;
    ensure!(
        text.contains("new classifier `fc3` with 3 outputs, everything else frozen"),
        "{text}"
    );
    // fc3 is Linear(80, 3): 80 * 3 + 3 = 243 trainable; the other 111,302 - 810 = 110,492
    // parameters of LeNet-5 are frozen.
    ensure!(
        text.contains("243 trainable parameters, 110492 frozen"),
        "{text}"
    );
    let run = run_dir(&out)?;
    let model = run.join("model.safetensors");
    backbone_unchanged(&model)?;
    let after = tensors(&model)?;
    ensure!(after["fc3.weight"].dims() == [3, 80] && after["fc3.bias"].dims() == [3]);
    let meta = convnets::zoo::read_metadata(&model)?;
    ensure!(meta["convnets.num_classes"] == "3", "{meta:?}");
    ensure!(
        meta["convnets.classes"] == r#"["bars","circle","cross"]"#,
        "{meta:?}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json"))?)?;
    let acc = summary["final_accuracy"].as_f64().unwrap_or(-1.0);
    ensure!(summary["trainable_params"] == 243, "{summary}");

    // The library rebuilds the 3-class model from the file alone.
    let loaded = convnets::zoo::load(&model, None, &Device::Cpu)?;
    ensure!(loaded.info.num_classes == 3 && loaded.info.classes.len() == 3);

    // eval and predict need only the weights, and eval repeats the run's test accuracy.
    let text = ok(&convnets(&["eval", "--weights", model.to_str().unwrap()])?)?;
    ensure!(
        text.contains(&format!("Accuracy: {acc:.1}%")),
        "eval repeats {acc:.1} %: {text}"
    );
    let img = data.join("val/bars/img001.png");
    let text = ok(&convnets(&[
        "predict",
        "--weights",
        model.to_str().unwrap(),
        img.to_str().unwrap(),
        "--top",
        "3",
        "--json",
    ])?)?;
    let preds: serde_json::Value = serde_json::from_str(&text)?;
    let names: Vec<&str> = preds[0]["top"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p[1].as_str()).collect())
        .unwrap_or_default();
    let mut sorted = names.clone();
    sorted.sort();
    ensure!(sorted == ["bars", "circle", "cross"], "{text}");

    // A resumed run keeps the backbone frozen (the checkpoint has no optimizer state for it).
    let text = ok(&convnets(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--epochs",
        "3",
    ])?)?;
    ensure!(text.contains("243 trainable parameters"), "{text}");
    backbone_unchanged(&model)?;
    let resumed = tensors(&model)?;
    ensure!(
        !same(&after["fc3.weight"], &resumed["fc3.weight"])?,
        "the head trains on"
    );
    Ok(())
}

#[test]
fn fine_tuning_without_freezing_trains_everything_from_the_weights() -> Result<()> {
    let t = tempfile::tempdir()?;
    let data = t.path().join("shapes");
    write_folder(&data)?;
    let out = t.path().join("runs");
    let dataset = format!("folder:{}", data.display());
    let weights = shipped();
    let text = ok(&convnets(&[
        "train",
        "--model",
        "lenet5",
        "--weights",
        weights.to_str().unwrap(),
        "--replace-head",
        "3",
        "--dataset",
        dataset.as_str(),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--limit",
        "32",
        "--log-every",
        "0",
        "--out",
        out.to_str().unwrap(),
    ])?)?;
    // LeNet-5 with a 3-class head: 111,302 - 810 + 243.
    ensure!(text.contains("110735 trainable parameters"), "{text}");
    let model = run_dir(&out)?.join("model.safetensors");
    let (before, after) = (tensors(&shipped())?, tensors(&model)?);
    ensure!(
        !same(&before["conv1.weight"], &after["conv1.weight"])?,
        "unfrozen layers train"
    );
    Ok(())
}

#[test]
fn wrong_fine_tuning_flags_fail_before_the_run_folder() -> Result<()> {
    let t = tempfile::tempdir()?;
    let data = t.path().join("shapes");
    write_folder(&data)?;
    let out = t.path().join("runs");
    let out_s = out.to_str().unwrap();
    let dataset = format!("folder:{}", data.display());
    let lenet = shipped();
    let mnist_net = lenet.with_file_name("mnist-net-mnist.safetensors");
    let missing = t.path().join("nope.safetensors");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--model", "lenet5", "--freeze-backbone"],
            "--weights <WEIGHTS>",
        ),
        (
            vec![
                "--model",
                "lenet5",
                "--weights",
                lenet.to_str().unwrap(),
                "--replace-head",
                "0",
            ],
            "--replace-head needs at least 1 class",
        ),
        (
            vec![
                "--model",
                "lenet5",
                "--weights",
                lenet.to_str().unwrap(),
                "--replace-head",
                "2",
            ],
            "has 3 classes but model `lenet5` has 2 outputs (a new classifier: --replace-head 3)",
        ),
        (
            vec![
                "--model",
                "lenet5",
                "--weights",
                missing.to_str().unwrap(),
                "--replace-head",
                "3",
            ],
            "nope.safetensors",
        ),
        (
            vec![
                "--model",
                "lenet5",
                "--weights",
                mnist_net.to_str().unwrap(),
                "--replace-head",
                "3",
            ],
            "missing",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec![
            "train",
            "--dataset",
            dataset.as_str(),
            "--out",
            out_s,
            "--log-every",
            "0",
        ];
        args.extend(extra.iter().copied());
        let o = convnets(&args)?;
        let err = String::from_utf8_lossy(&o.stderr);
        ensure!(!o.status.success(), "{args:?} must fail");
        ensure!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in\n{err}"
        );
        if expected == "missing" {
            // The wrong architecture's tensors are listed with their shapes.
            ensure!(err.contains("conv1.weight"), "{err}");
        }
    }
    // On MNIST (10 classes) a 5-class head is refused before anything is read or written.
    let o = convnets(&[
        "train",
        "--model",
        "lenet5",
        "--dataset",
        "mnist",
        "--replace-head",
        "5",
        "--offline",
        "--out",
        out_s,
    ])?;
    let err = String::from_utf8_lossy(&o.stderr);
    ensure!(
        !o.status.success() && err.contains("has 10 classes but model `lenet5` has 5 outputs"),
        "{err}"
    );
    let runs = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
    // The wrong-architecture case is the only one that gets as far as building the model.
    ensure!(runs <= 1, "{runs} run folders left behind");
    Ok(())
}
