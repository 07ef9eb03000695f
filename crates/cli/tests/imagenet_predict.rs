//! ImageNet preprocessing and `convnets predict` against torchvision, on `tests/data/chelsea.png`
//! (CC0, from scikit-image; see `tests/data/README.md`).
//!
//! PyTorch's side (`scripts/torchvision_reference.py --seed 2 --image chelsea.png`, run when a
//! Python with torch is available — `$CONVNETS_PYTHON`, else the repository's `.venv` — and
//! SKIP otherwise) writes torchvision ResNet-18 weights (seeded random init: no pretrained
//! weights can be downloaded where convnets is developed), the image through torchvision's
//! `Resize(256)`, `CenterCrop(224)`, `ToTensor()`, `Normalize(ImageNet)` on a PIL image, and
//! the model's softmax on it.
//!
//! - The preprocessed tensor: `convnets_data::load_image_with(.., Preprocess::IMAGENET,
//!   Normalize::IMAGENET)` equals torchvision's exactly (the resize is computed as Pillow's
//!   fixed-point antialiased bilinear; the `image` crate's triangle filter, measured and printed
//!   for comparison, is up to a few grey levels off).
//! - `convnets predict --weights FILE --model resnet18 chelsea.png --top 5 --json`: the same
//!   five classes in the same order as PyTorch's, with ImageNet's names, and probabilities
//!   within `PROB_TOL` of PyTorch's float64 result.

use anyhow::{ensure, Context, Result};
use convnets::candle::{DType, Device, Tensor};
use convnets::data::{Normalize, Preprocess};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// On the probabilities: ResNet-18's float32 logits are within ~1e-5 of the exact (float64)
/// ones here (see `crates/zoo/tests/torchvision_files.rs`), and a softmax probability p moves by
/// at most about p · 2|Δlogit| — below 1e-6 for p < 0.06. 1e-5 leaves a margin of ten, and is
/// a hundredth of the smallest gap between PyTorch's top-6 probabilities (1.4e-3), so the
/// order check decides nothing by rounding.
const PROB_TOL: f32 = 1e-5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python(test: &str) -> Option<PathBuf> {
    let python = match std::env::var_os("CONVNETS_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => root().join(".venv/bin/python"),
    };
    let ok = Command::new(&python)
        .args(["-c", "import torch, torchvision, safetensors, PIL"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some(python);
    }
    use std::io::Write as _; // straight to stderr: libtest captures eprintln!, CI must see a skip
    let _ = writeln!(
        std::io::stderr(),
        "SKIP {test}: no Python with torch, torchvision and PIL at {} (set CONVNETS_PYTHON)",
        python.display()
    );
    None
}

/// The `image` crate's own bilinear (triangle) resize to 384x256, then the same crop and
/// normalization: how far a plain `image` resize is from torchvision's, for the record.
fn image_crate_input(path: &Path) -> Result<Vec<f32>> {
    let img = image::open(path)?.to_rgb8();
    let r = image::imageops::resize(&img, 384, 256, image::imageops::FilterType::Triangle);
    let n = Normalize::IMAGENET;
    let mut out = vec![0f32; 3 * 224 * 224];
    for y in 0..224 {
        for x in 0..224 {
            let p = r.get_pixel(x + 80, y + 16);
            for c in 0..3 {
                out[c * 224 * 224 + (y * 224 + x) as usize] = n.apply(c, p[c] as f32 / 255.0);
            }
        }
    }
    Ok(out)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn chelsea_top5_equals_torchvision() -> Result<()> {
    let Some(python) = python("chelsea_top5_equals_torchvision") else {
        return Ok(());
    };
    let image = root().join("tests/data/chelsea.png");
    let dir = tempfile::tempdir()?;
    let out = Command::new(&python)
        .arg(root().join("scripts/torchvision_reference.py"))
        .arg(dir.path())
        .args(["--models", "resnet18", "--seed", "2", "--image"])
        .arg(&image)
        .output()?;
    ensure!(
        out.status.success(),
        "torchvision_reference.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let io: HashMap<String, Tensor> = candle_core_load(&dir.path().join("image-io.safetensors"))?;

    // The input: torchvision's tensor, value for value.
    let want = io["input"].flatten_all()?.to_vec1::<f32>()?;
    let ours = convnets::data::load_image_with(
        &image,
        [3, 224, 224],
        Preprocess::IMAGENET,
        Some(Normalize::IMAGENET),
    )?;
    let d = max_diff(&ours, &want);
    let plain = max_diff(&image_crate_input(&image)?, &want);
    eprintln!(
        "chelsea.png preprocessed: max |ours - torchvision| = {d:e}; the image crate's triangle resize instead: {plain:e} ({:.1} grey levels)",
        plain * 0.229 * 255.0
    );
    ensure!(d == 0.0, "preprocessed input off by {d}");

    // PyTorch's top 5, and how far apart they are.
    let exact = io["probs64"]
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let torch32 = io["probs"].flatten_all()?.to_vec1::<f32>()?;
    let mut order: Vec<usize> = (0..exact.len()).collect();
    order.sort_by(|&a, &b| exact[b].total_cmp(&exact[a]));
    let gap = (0..5)
        .map(|i| exact[order[i]] - exact[order[i + 1]])
        .fold(f32::INFINITY, f32::min);
    ensure!(
        gap > 100.0 * PROB_TOL,
        "PyTorch's top-6 probabilities are only {gap} apart: choose another seed"
    );

    // `convnets predict`, as a user types it.
    let weights = dir.path().join("resnet18.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_convnets"))
        .arg("predict")
        .arg("--weights")
        .arg(&weights)
        .args(["--model", "resnet18"])
        .arg(&image)
        .args(["--top", "5", "--json"])
        .env("RAYON_NUM_THREADS", "2")
        .output()?;
    ensure!(
        out.status.success(),
        "predict failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let preds: Vec<convnets::train::Prediction> =
        serde_json::from_slice(&out.stdout).context("predict --json")?;
    ensure!(preds.len() == 1 && preds[0].top.len() == 5, "{preds:?}");
    let names = convnets::data::imagenet_classes();
    let mut worst = 0f32;
    let mut torch_worst = 0f32;
    for (rank, (label, name, p)) in preds[0].top.iter().enumerate() {
        ensure!(
            *label == order[rank],
            "rank {rank}: label {label}, PyTorch {}; ours {:?}",
            order[rank],
            preds[0].top
        );
        ensure!(name == names[*label], "label {label}: name {name}");
        worst = worst.max((p - exact[*label]).abs());
        torch_worst = torch_worst.max((torch32[*label] - exact[*label]).abs());
    }
    eprintln!(
        "predict top-5 {:?}: probabilities within {worst:e} of PyTorch float64 (PyTorch float32: {torch_worst:e}); smallest top-6 gap {gap:e}",
        preds[0].top
    );
    ensure!(worst <= PROB_TOL, "probabilities off by {worst}");
    Ok(())
}

fn candle_core_load(path: &Path) -> Result<HashMap<String, Tensor>> {
    Ok(convnets::candle::safetensors::load(path, &Device::Cpu)?)
}

/// torchvision's `Resize(R, interpolation)` + `CenterCrop(C)` on the PIL image, as HWC bytes.
const PIL_RESIZE_CROP: &str = r#"
import sys
from PIL import Image
from torchvision import transforms as T
path, mode, resize, crop, filt, out = sys.argv[1:]
interp = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[filt]
im = Image.open(path).convert(mode)
im = T.CenterCrop(int(crop))(T.Resize(int(resize), interpolation=interp)(im))
open(out, "wb").write(im.tobytes())
"#;

/// timm's evaluation transforms (`crop_pct`, bilinear or bicubic, e.g. `resnet50.a1_in1k`'s
/// 0.95 bicubic = `Resize(235)`), and torchvision's at other sizes, grey and RGB, shrinking
/// and enlarging: our bytes equal torchvision's on PIL images exactly.
#[test]
fn resize_crop_bytes_equal_torchvision_bilinear_and_bicubic() -> Result<()> {
    use convnets::data::Resample;
    let Some(python) = python("resize_crop_bytes_equal_torchvision_bilinear_and_bicubic") else {
        return Ok(());
    };
    let image = root().join("tests/data/chelsea.png");
    let dir = tempfile::tempdir()?;
    let cases = [
        (
            Preprocess::crop_pct(224, 0.95, Resample::Bicubic).unwrap(),
            3,
        ),
        (
            Preprocess::crop_pct(224, 0.875, Resample::Bicubic).unwrap(),
            1,
        ),
        (
            Preprocess::crop_pct(224, 0.875, Resample::Bilinear).unwrap(),
            3,
        ),
        ("resize600-crop512-bicubic".parse().unwrap(), 3),
        ("resize40-crop32-bicubic".parse().unwrap(), 3),
    ];
    for (i, (pre, c)) in cases.into_iter().enumerate() {
        let Preprocess::ResizeCrop {
            resize,
            crop,
            filter,
        } = pre
        else {
            unreachable!()
        };
        let out = dir.path().join(format!("{i}.bin"));
        let status = Command::new(&python)
            .args(["-c", PIL_RESIZE_CROP])
            .arg(&image)
            .arg(if c == 1 { "L" } else { "RGB" })
            .arg(resize.to_string())
            .arg(crop.to_string())
            .arg(match filter {
                Resample::Bilinear => "bilinear",
                Resample::Bicubic => "bicubic",
            })
            .arg(&out)
            .status()?;
        ensure!(status.success(), "python failed for {pre}");
        let hwc = std::fs::read(&out)?;
        let ours = convnets::data::picture::load_image_bytes_with(
            &image,
            [c, crop as usize, crop as usize],
            pre,
        )?;
        let n = (crop * crop) as usize;
        let ours_hwc: Vec<u8> = (0..n * c).map(|k| ours[(k % c) * n + k / c]).collect();
        let differ = ours_hwc.iter().zip(&hwc).filter(|(a, b)| a != b).count();
        ensure!(
            hwc.len() == ours_hwc.len() && differ == 0,
            "{pre} with {c} channels: {differ} of {} bytes differ from torchvision's",
            hwc.len()
        );
    }
    Ok(())
}
