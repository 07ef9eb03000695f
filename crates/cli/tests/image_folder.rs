//! `--dataset folder:PATH` (torchvision's `ImageFolder`) end to end: a small folder of PNG and
//! JPEG images written here (three classes of shapes, larger than the model's input and in
//! colour, so they are converted and resized), trained on with a zoo model, then evaluated
//! with `eval --weights` alone (the weights' metadata names the model, the folder and the
//! classes). A corrupt image stops the run with its name, or is skipped and reported with
//! `--skip-bad`.

use anyhow::{ensure, Result};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn convnets(args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_convnets"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()?)
}

/// Writes `n` images of `class` (0: disk, 1: horizontal bars, 2: cross) into `dir`, 36x36
/// RGB at random positions, every third one as JPEG.
fn write_class(
    dir: &Path,
    class: usize,
    n: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..n {
        let (cx, cy) = (
            rng.random_range(12.0..24.0f32),
            rng.random_range(12.0..24.0f32),
        );
        let tint = rng.random_range(150..255u8);
        let img = image::RgbImage::from_fn(36, 36, |x, y| {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let on = match class {
                0 => dx * dx + dy * dy <= 64.0,
                1 => dx.abs() <= 10.0 && (dy.abs() <= 2.0 || (dy - 6.0).abs() <= 2.0),
                _ => (dx.abs() <= 2.0 || dy.abs() <= 2.0) && dx.abs() <= 10.0 && dy.abs() <= 10.0,
            };
            let v = if on { tint } else { 20 };
            image::Rgb([v, v / 2, 255 - v])
        });
        let name = if i % 3 == 0 {
            format!("img{i:03}.jpg")
        } else {
            format!("img{i:03}.png")
        };
        img.save(dir.join(name))?;
    }
    Ok(())
}

fn write_folder(root: &Path) -> Result<()> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for (class, name) in ["circle", "bars", "cross"].iter().enumerate() {
        write_class(&root.join("train").join(name), class, 40, &mut rng)?;
        write_class(&root.join("val").join(name), class, 12, &mut rng)?;
    }
    Ok(())
}

fn run_dir(out: &Path) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    dirs.pop()
        .ok_or_else(|| anyhow::anyhow!("no run folder in {}", out.display()))
}

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
