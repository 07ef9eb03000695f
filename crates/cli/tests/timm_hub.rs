//! A timm-style repository on a fake Hugging Face hub (127.0.0.1; no network is reachable
//! here): `model.safetensors` (ResNet-18 weights in torchvision/timm names, seeded random: no
//! pretrained weights can be downloaded here) and the `config.json` timm publishes beside
//! them, whose `pretrained_cfg` asks for `crop_pct` 0.95, bicubic, and its own mean and std
//! (as `timm/resnet50.a1_in1k` does). `convnets predict --weights hub:…` with no `--model`
//! takes the model from `architecture` and feeds the image through `Resize(235, bicubic)` +
//! `CenterCrop(224)` and that normalization: its probabilities equal those computed here
//! with that preprocessing spelled out (whose bytes `imagenet_predict.rs` checks against
//! torchvision), and differ from torchvision's default bilinear 256/224 ones. Offline, the
//! cached `config.json` is used again.

#[path = "../../zoo/tests/fake_hub/mod.rs"]
mod fake_hub;

use anyhow::{ensure, Result};
use convnets::candle::{Device, ModuleT, Tensor};
use convnets::data::{Normalize, Preprocess, Resample};
use convnets::layers::ParamStore;
use convnets::train::Prediction;
use fake_hub::{FakeHub, Fault, REPO};
use std::path::{Path, PathBuf};
use std::process::Command;

const CONFIG: &str = r#"{
  "architecture": "resnet18",
  "num_classes": 1000,
  "num_features": 512,
  "pretrained_cfg": {
    "tag": "a1_in1k",
    "input_size": [3, 224, 224],
    "interpolation": "bicubic",
    "crop_pct": 0.95,
    "crop_mode": "center",
    "mean": [0.5, 0.45, 0.4],
    "std": [0.25, 0.2, 0.3],
    "num_classes": 1000,
    "classifier": "fc"
  }
}"#;

/// The classifier's weights are scaled by this (4: measured top probability 0.80, and the two
/// preprocessings' probabilities 0.067 apart at most), so the probabilities tell inputs apart.
const SCALE: f64 = 4.0;

fn chelsea() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/chelsea.png")
}

/// Softmax of `model` (eval mode) on chelsea.png prepared as `pre`, `norm`.
fn probabilities(model: &dyn ModuleT, pre: Preprocess, norm: Normalize) -> Result<Vec<f32>> {
    let x = convnets::data::load_image_with(&chelsea(), [3, 224, 224], pre, Some(norm))?;
    let x = Tensor::from_vec(x, (1, 3, 224, 224), &Device::Cpu)?;
    let p = convnets::candle_nn::ops::softmax(&model.forward_t(&x, false)?, 1)?;
    Ok(p.flatten_all()?.to_vec1::<f32>()?)
}

fn predict(spec: &str, env: &[(&str, &str)], offline: bool) -> Result<Vec<Prediction>> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_convnets"));
    cmd.args(["predict", "--weights", spec, "--json", "--top", "5"])
        .arg(chelsea())
        .env("RAYON_NUM_THREADS", "2");
    if offline {
        cmd.arg("--offline");
    }
    for v in [
        "HF_HUB_OFFLINE",
        "ALL_PROXY",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output()?;
    ensure!(
        out.status.success(),
        "predict failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn timm_config_sets_model_preprocessing_and_normalization() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let store = ParamStore::new(5, &Device::Cpu);
    let model = convnets::zoo::build("resnet18", store.vb())?;
    let fc = store.get("fc.weight").expect("resnet18 has fc.weight");
    fc.set(&(fc.as_tensor() * SCALE)?)?;
    let weights = tmp.path().join("model.safetensors");
    store.save(&weights)?;

    let timm = Normalize::per_channel(&[0.5, 0.45, 0.4], &[0.25, 0.2, 0.3]).unwrap();
    let a1 = Preprocess::crop_pct(224, 0.95, Resample::Bicubic).unwrap();
    let want = probabilities(model.as_ref() as &dyn ModuleT, a1, timm)?;
    let default = probabilities(
        model.as_ref() as &dyn ModuleT,
        Preprocess::IMAGENET,
        Normalize::IMAGENET,
    )?;
    let gap = want
        .iter()
        .zip(&default)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    ensure!(
        gap > 1e-4,
        "the two preprocessings must differ here ({gap})"
    );

    let hub = FakeHub::start_files(
        vec![
            ("model.safetensors", std::fs::read(&weights)?),
            ("config.json", CONFIG.as_bytes().to_vec()),
        ],
        Fault::None,
    )?;
    let home = tmp.path().join("hf-home");
    let endpoint = hub.url.clone();
    let env = [
        ("HF_ENDPOINT", endpoint.as_str()),
        ("HF_HOME", home.to_str().unwrap_or_default()),
    ];
    let spec = format!("hub:{REPO}");
    let check = |got: &[Prediction], when: &str| -> Result<()> {
        ensure!(got.len() == 1 && got[0].top.len() == 5, "{when}: {got:?}");
        let mut order: Vec<usize> = (0..want.len()).collect();
        order.sort_by(|&a, &b| want[b].total_cmp(&want[a]));
        for (k, (label, name, p)) in got[0].top.iter().enumerate() {
            ensure!(
                *label == order[k],
                "{when}: rank {k}: {label} vs {}",
                order[k]
            );
            ensure!(
                (p - want[*label]).abs() < 1e-6,
                "{when}: class {label}: {p} vs {}",
                want[*label]
            );
            ensure!(
                name == convnets::data::imagenet_classes()[*label],
                "{when}: {name}"
            );
        }
        Ok(())
    };
    check(&predict(&spec, &env, false)?, "online")?;
    hub.shutdown();
    check(&predict(&spec, &env, true)?, "offline")?;
    Ok(())
}
