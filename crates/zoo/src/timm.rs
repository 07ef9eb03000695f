//! timm checkpoints' own description: the `config.json` beside a timm model's
//! `model.safetensors` on the Hugging Face hub (and in a downloaded copy of the repository),
//! whose `pretrained_cfg` says how the weights were evaluated: input size, `crop_pct`,
//! interpolation, mean and standard deviation. [`WeightsInfo`](crate::WeightsInfo) reads it
//! for weights without convnets metadata, so `timm/resnet50.a1_in1k` is fed through
//! `Resize(235, bicubic)` + `CenterCrop(224)` and `timm/resnet18.tv_in1k` through
//! `Resize(256, bilinear)` + `CenterCrop(224)`, each with its own statistics, as timm's
//! `resolve_data_config` + `create_transform` would.
//!
//! ```
//! use convnets_zoo::timm::TimmConfig;
//! let cfg: TimmConfig = serde_json::from_str(r#"{
//!     "architecture": "resnet50", "num_classes": 1000,
//!     "pretrained_cfg": {"input_size": [3, 224, 224], "interpolation": "bicubic",
//!         "crop_pct": 0.95, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
//! }"#)?;
//! assert_eq!(cfg.preprocess()?.to_string(), "resize235-crop224-bicubic");
//! assert_eq!(cfg.model().map(|m| m.name), Some("resnet50"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::{find, ModelInfo};
use convnets_data::{Normalize, Preprocess, Resample};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The largest `config.json` read (1 MiB; timm's are about 1 KB).
pub const MAX_CONFIG: u64 = 1 << 20;

/// The parts of a timm `config.json` convnets uses.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct TimmConfig {
    /// timm's model name (`resnet50`); the registry model of the same name, if any, is the
    /// model the weights are for.
    pub architecture: String,
    /// The classifier's outputs.
    #[serde(default)]
    pub num_classes: Option<usize>,
    /// How the weights were trained and evaluated.
    pub pretrained_cfg: PretrainedCfg,
}

/// timm's `pretrained_cfg` (the fields of its evaluation transform).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct PretrainedCfg {
    /// `[channels, height, width]` of the input.
    pub input_size: [usize; 3],
    /// `bilinear` or `bicubic`.
    #[serde(default = "default_interpolation")]
    pub interpolation: String,
    /// The crop's share of the resized image (timm's default 0.875).
    #[serde(default = "default_crop_pct")]
    pub crop_pct: f64,
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

fn default_interpolation() -> String {
    "bilinear".into()
}

fn default_crop_pct() -> f64 {
    0.875
}

/// Why a timm `config.json` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TimmError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a timm model configuration, or a value cannot be used.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl TimmConfig {
    /// The timm configuration beside the weights file `weights` (`config.json` in the same
    /// folder), if there is one with a `pretrained_cfg`; a JSON `config.json` of another kind
    /// (no `pretrained_cfg`) is not timm's and gives `None`. One that is not JSON, is timm's
    /// but cannot be used, or is larger than [`MAX_CONFIG`], is an error naming it.
    pub fn beside(weights: &Path) -> Result<Option<TimmConfig>, TimmError> {
        let path = weights.with_file_name("config.json");
        if !path.is_file() {
            return Ok(None);
        }
        let io = |source| TimmError::Io {
            path: path.clone(),
            source,
        };
        let size = std::fs::metadata(&path).map_err(io)?.len();
        let invalid = |reason: String| TimmError::Invalid {
            path: path.clone(),
            reason,
        };
        if size > MAX_CONFIG {
            return Err(invalid(format!(
                "{size} bytes; a model configuration is at most {MAX_CONFIG}"
            )));
        }
        let text = std::fs::read_to_string(&path).map_err(io)?;
        // A broken config.json beside weights is an error, not a silent fallback to other
        // preprocessing.
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        if value.get("pretrained_cfg").is_none() {
            return Ok(None);
        }
        let cfg: TimmConfig = serde_json::from_value(value)
            .map_err(|e| invalid(format!("timm configuration: {e}")))?;
        cfg.preprocess().map_err(&invalid)?;
        cfg.normalize().map_err(&invalid)?;
        Ok(Some(cfg))
    }

    /// The registry model timm's `architecture` names, if convnets has it.
    pub fn model(&self) -> Option<&'static ModelInfo> {
        find(&self.architecture)
    }

    /// timm's evaluation transform: `Resize(floor(side / crop_pct), interpolation)` and
    /// `CenterCrop(side)` (see [`Preprocess::crop_pct`]).
    pub fn preprocess(&self) -> Result<Preprocess, String> {
        let p = &self.pretrained_cfg;
        let [_, h, w] = p.input_size;
        if h != w {
            return Err(format!(
                "input_size {h}x{w}: only square inputs are supported"
            ));
        }
        let filter = match p.interpolation.as_str() {
            "bilinear" => Resample::Bilinear,
            "bicubic" => Resample::Bicubic,
            other => {
                return Err(format!(
                    "interpolation `{other}`: bilinear and bicubic are supported"
                ))
            }
        };
        let side = u32::try_from(h).map_err(|_| format!("input_size {h} is too large"))?;
        Preprocess::crop_pct(side, p.crop_pct, filter)
    }

    /// The `Normalize(mean, std)` of the weights.
    pub fn normalize(&self) -> Result<Normalize, String> {
        let p = &self.pretrained_cfg;
        if p.mean.len() != p.input_size[0] || p.std.len() != p.input_size[0] {
            return Err(format!(
                "mean {:?} and std {:?} for {} channels",
                p.mean, p.std, p.input_size[0]
            ));
        }
        Normalize::per_channel(&p.mean, &p.std)
    }
}
