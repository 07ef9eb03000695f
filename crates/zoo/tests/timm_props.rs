//! Property tests of the readers of a weights file's description: a timm `config.json` beside
//! the weights (arbitrary bytes, and a real configuration with its numbers changed) and the
//! convnets metadata of the safetensors header (arbitrary values for every key). Each gives a
//! description or a typed error — never a panic — and every description it gives is usable:
//! a preprocessing whose crop fits its resize, a normalization for the model's channels, at
//! least as many outputs as class names.
//!
//! 256 cases per property by default; set `PROPTEST_CASES` for more (`cargo xtask fuzz`).

use convnets_zoo::timm::TimmConfig;
use convnets_zoo::WeightsInfo;
use proptest::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const CONFIG: &str = r#"{"architecture": "resnet50", "num_classes": 1000, "num_features": 2048,
 "pretrained_cfg": {"tag": "a1_in1k", "input_size": [3, 224, 224], "test_input_size": [3, 288, 288],
 "interpolation": "bicubic", "crop_pct": 0.95, "test_crop_pct": 1.0, "crop_mode": "center",
 "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "num_classes": 1000,
 "pool_size": [7, 7], "first_conv": "conv1", "classifier": "fc"}}"#;

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 256;
    }
    c.failure_persistence = None;
    c
}

thread_local! {
    /// One folder per test thread, reused by every case (a file per case costs more than the
    /// parsing it tests).
    static DIR: tempfile::TempDir = tempfile::tempdir().unwrap();
}

/// Writes `bytes` as the `config.json` beside a weights path and reads it back.
fn read_config(bytes: &[u8]) -> Result<Option<TimmConfig>, convnets_zoo::timm::TimmError> {
    DIR.with(|d| {
        let weights: PathBuf = d.path().join("model.safetensors");
        std::fs::write(weights.with_file_name("config.json"), bytes).unwrap();
        TimmConfig::beside(&weights)
    })
}

/// Every description `beside` gives is usable.
fn check_usable(cfg: &TimmConfig) {
    let p = cfg.preprocess().expect("beside checked the preprocessing");
    if let convnets_data::Preprocess::ResizeCrop { resize, crop, .. } = p {
        assert!(1 <= crop && crop <= resize, "{p}");
    }
    cfg.normalize().expect("beside checked the normalization");
}

/// `text` with every ASCII digit at the positions in `at` replaced by `digit`.
fn redigit(text: &[u8], at: &[(usize, u8)]) -> Vec<u8> {
    let digits: Vec<usize> = (0..text.len())
        .filter(|&i| text[i].is_ascii_digit())
        .collect();
    let mut out = text.to_vec();
    for &(i, d) in at {
        out[digits[i % digits.len()]] = b'0' + d % 10;
    }
    out
}

const KEYS: [&str; 7] = [
    "convnets.model",
    "convnets.classes",
    "convnets.num_classes",
    "convnets.normalize",
    "convnets.preprocess",
    "convnets.input",
    "convnets.test_accuracy",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_as_config_json(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(Some(cfg)) = read_config(&bytes) {
            check_usable(&cfg);
        }
    }

    #[test]
    fn timm_configs_with_changed_numbers(at in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        match read_config(&redigit(CONFIG.as_bytes(), &at)) {
            Ok(Some(cfg)) => check_usable(&cfg),
            Ok(None) => prop_assert!(false, "a config with pretrained_cfg is timm's"),
            Err(e) => prop_assert!(e.to_string().contains("config.json"), "{e}"),
        }
    }

    #[test]
    fn arbitrary_metadata_values(
        values in prop::collection::vec(prop::option::of("\\PC{0,40}"), KEYS.len()),
        model in prop::option::of(prop::sample::select(vec!["lenet5", "resnet18", "nope"])),
    ) {
        let meta: HashMap<String, String> = KEYS
            .iter()
            .zip(&values)
            .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
            .collect();
        let path = Path::new("w.safetensors");
        if let Ok(info) = WeightsInfo::from_metadata(path, &meta, model) {
            let entry = convnets_zoo::find(&info.model).expect("a registry model");
            prop_assert!(info.num_classes >= 1 && info.classes.len() <= info.num_classes);
            prop_assert_eq!(info.input[0], entry.input[0]);
            if let Some(n) = info.normalize {
                prop_assert!(n.fits(info.input[0]));
            }
        }
    }
}

#[test]
fn the_seed_config_is_usable() {
    let cfg = read_config(CONFIG.as_bytes()).unwrap().unwrap();
    assert_eq!(
        cfg.preprocess().unwrap().to_string(),
        "resize235-crop224-bicubic"
    );
    assert_eq!(cfg.model().map(|m| m.name), Some("resnet50"));
}
