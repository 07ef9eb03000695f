//! `--dataset folder:PATH` (torchvision's `ImageFolder`) end to end: a small folder of PNG and
//! JPEG images written here (three classes of shapes, larger than the model's input and in
//! colour, so they are converted and resized), trained on with a zoo model, then evaluated
//! with `eval --weights` alone (the weights' metadata names the model, the folder and the
//! classes). A corrupt image stops the run with its name, or is skipped and reported with
//! `--skip-bad`.

use anyhow::{ensure, Result};
use rand::SeedableRng;

mod common;
use common::{convnets, run_dir, write_class, write_folder};

#[test]
fn train_then_eval_on_a_folder_of_images() -> Result<()> {
    let t = tempfile::tempdir()?;
    let data = t.path().join("shapes");
    write_folder(&data)?;
    let out = t.path().join("runs");
    let dataset = format!("folder:{}", data.display());
    let args = [
        "train",
        "--model",
        "lenet5-bn",
        "--dataset",
        dataset.as_str(),
        "--epochs",
        "6",
        "--batch-size",
        "16",
        "--optimizer",
        "adam",
        "--lr",
        "0.003",
        "--no-augment",
        "--log-every",
        "0",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = convnets(&args)?;
    let text = String::from_utf8_lossy(&o.stdout);
    ensure!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ensure!(
        text.contains("120 train / 36 test images"),
        "three classes of 40 training and 12 held-out images: {text}"
    );
    let run = run_dir(&out)?;
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json"))?)?;
    let acc = summary["final_accuracy"].as_f64().unwrap_or(0.0);
    ensure!(acc >= 90.0, "distinct shapes are learnt: {acc} %");

    // The weights carry the classes; `eval --weights` alone finds model, folder and classes.
    let weights = run.join("model.safetensors");
    let o = convnets(&["eval", "--weights", weights.to_str().unwrap()])?;
    let text = String::from_utf8_lossy(&o.stdout);
    ensure!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ensure!(
        text.contains(&format!("Accuracy: {acc:.1}%")),
        "eval repeats {acc:.1} %: {text}"
    );
    for class in ["bars", "circle", "cross"] {
        ensure!(text.contains(class), "per-class lines name {class}: {text}");
    }
    // predict on one held-out image names its class.
    let img = data.join("val/cross/img001.png");
    let o = convnets(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        img.to_str().unwrap(),
        "--top",
        "1",
    ])?;
    let text = String::from_utf8_lossy(&o.stdout);
    ensure!(o.status.success() && text.contains("cross"), "{text}");
    Ok(())
}

#[test]
fn corrupt_images_are_named_or_skipped() -> Result<()> {
    let t = tempfile::tempdir()?;
    let data = t.path().join("shapes");
    write_folder(&data)?;
    let bad = data.join("train/bars/zz_broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n not a whole png")?;
    let out = t.path().join("runs");
    let dataset = format!("folder:{}", data.display());
    let mut args = vec![
        "train",
        "--model",
        "mnist-net",
        "--dataset",
        dataset.as_str(),
        "--epochs",
        "1",
        "--log-every",
        "0",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = convnets(&args)?;
    let err = String::from_utf8_lossy(&o.stderr);
    ensure!(!o.status.success(), "a corrupt image stops the run");
    ensure!(
        err.contains("zz_broken.png") && err.contains("cannot decode"),
        "{err}"
    );
    args.push("--skip-bad");
    let o = convnets(&args)?;
    let err = String::from_utf8_lossy(&o.stderr);
    let text = String::from_utf8_lossy(&o.stdout);
    ensure!(o.status.success(), "{text}\n{err}");
    ensure!(
        err.contains("skipped 1 unreadable images") && err.contains("zz_broken.png"),
        "{err}"
    );
    ensure!(
        text.contains("120 train / 36 test images"),
        "121 training files, one skipped: {text}"
    );

    // Too many classes for the model's outputs, and a missing folder: clear errors.
    for extra in 0..10 {
        write_class(
            &data.join(format!("train/extra{extra}")),
            extra % 3,
            1,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(extra as u64),
        )?;
    }
    let o = convnets(&args)?;
    let err = String::from_utf8_lossy(&o.stderr);
    ensure!(
        !o.status.success() && err.contains("has 13 classes but model `mnist-net` has 10 outputs"),
        "{err}"
    );
    let missing = format!("folder:{}", t.path().join("nope").display());
    let o = convnets(&[
        "train",
        "--dataset",
        missing.as_str(),
        "--out",
        out.to_str().unwrap(),
    ])?;
    let err = String::from_utf8_lossy(&o.stderr);
    ensure!(
        !o.status.success() && err.contains("no such folder"),
        "{err}"
    );
    Ok(())
}
