//! Self-describing weights: a safetensors file whose metadata says which model it holds
//! (`convnets.model`), on what data (`convnets.dataset`, `convnets.classes`) and how to feed it
//! (`convnets.normalize`, `convnets.preprocess`), as the trainer writes them. [`load`] reads
//! that header, rebuilds the model by name from the [`registry`](crate::registry) and loads
//! the weights into it; a PyTorch `state_dict()` file without metadata loads with the model's
//! name given, and the rest comes from the model's registry entry (an ImageNet model gets
//! ImageNet's class names, [`Normalize::IMAGENET`] and [`Preprocess::IMAGENET`]).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use candle_core::Device;
//! let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
//!     .join("../../weights/mnist-net-mnist.safetensors");
//! let loaded = convnets_zoo::load(&path, None, &Device::Cpu)?;
//! assert_eq!((loaded.info.model.as_str(), loaded.info.dataset.as_deref()), ("mnist-net", Some("mnist")));
//! assert_eq!(loaded.info.classes[3], "3");
//! assert!(loaded.info.test_accuracy.is_some_and(|a| a > 98.0));
//! assert_eq!(loaded.info.input, [1, 28, 28]);
//! # Ok(()) }
//! ```

use crate::{find, unknown_model_message, Model, ModelInfo};
use candle_core::Device;
use convnets_data::{DatasetKind, Normalize, Preprocess};
use convnets_layers::{ParamStore, StoreError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The largest safetensors header [`read_metadata`] reads (100 MiB, the format's own limit).
pub const MAX_HEADER: u64 = 100 << 20;

/// What can go wrong in reading a weights file's description or loading it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The header is not a safetensors header.
    #[error("{path}: not a valid safetensors file: {reason}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the numbers.
        reason: String,
    },
    /// A metadata value cannot be used.
    #[error("{path}: metadata `{key}` = {value:?}: {reason}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// Its value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// The file does not say which model it holds, and no model was named.
    #[error("{path} does not say which model it holds (no `convnets.model` metadata, as in a PyTorch state_dict file): name the model (--model NAME)")]
    NoModel {
        /// The file.
        path: PathBuf,
    },
    /// The model name (from the metadata or given) is not in the registry.
    #[error("{path}: {message}")]
    UnknownModel {
        /// The file.
        path: PathBuf,
        /// The registry's message (it lists the known models).
        message: String,
    },
    /// The weights do not fit the model (see [`StoreError`]).
    #[error(transparent)]
    Store(Box<StoreError>),
    /// Building the model failed.
    #[error("{path}: building model `{model}`: {source}")]
    Build {
        /// The file.
        path: PathBuf,
        /// The model name.
        model: String,
        /// candle's error.
        source: Box<candle_core::Error>,
    },
}

impl From<StoreError> for LoadError {
    fn from(e: StoreError) -> Self {
        LoadError::Store(Box::new(e))
    }
}

/// What a weights file is and how to feed it: its metadata, completed from the model's
/// registry entry where the file says nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightsInfo {
    /// The registry name of the model (`convnets.model`, or the name given).
    pub model: String,
    /// The data set it was trained on (`convnets.dataset`, else the model's usual one, e.g.
    /// `imagenet`).
    pub dataset: Option<String>,
    /// The class names, by label (`convnets.classes`, else the data set's; empty when neither
    /// is known).
    pub classes: Vec<String>,
    /// The input normalization (`convnets.normalize`, else [`Normalize::IMAGENET`] for an
    /// ImageNet model, else none).
    pub normalize: Option<Normalize>,
    /// How image files are fitted to the input (`convnets.preprocess`, else
    /// [`ModelInfo::preprocess`]).
    pub preprocess: Preprocess,
    /// The model's input `[channels, height, width]`.
    pub input: [usize; 3],
    /// The test accuracy in percent the trainer measured (`convnets.test_accuracy`).
    pub test_accuracy: Option<f64>,
    /// The convnets version that wrote the file (`convnets.version`).
    pub version: Option<String>,
    /// Whether the file describes itself (has `convnets.model`).
    pub self_describing: bool,
}

impl WeightsInfo {
    /// Reads the header of the weights file at `path` (not the tensors): `model`, when given,
    /// wins over the file's `convnets.model`; a file naming no model needs it.
    pub fn read(path: &Path, model: Option<&str>) -> Result<WeightsInfo, LoadError> {
        let meta = read_metadata(path)?;
        Self::from_metadata(path, &meta, model)
    }

    /// [`WeightsInfo::read`] from metadata already read; `path` names the file in errors.
    pub fn from_metadata(
        path: &Path,
        meta: &HashMap<String, String>,
        model: Option<&str>,
    ) -> Result<WeightsInfo, LoadError> {
        let bad = |key: &str, reason: String| LoadError::Metadata {
            path: path.into(),
            key: key.into(),
            value: meta.get(key).cloned().unwrap_or_default(),
            reason,
        };
        let own = meta.get("convnets.model").map(String::as_str);
        let Some(name) = model.or(own) else {
            return Err(LoadError::NoModel { path: path.into() });
        };
        let Some(info) = find(name) else {
            return Err(LoadError::UnknownModel {
                path: path.into(),
                message: unknown_model_message(name),
            });
        };
        let dataset = meta
            .get("convnets.dataset")
            .cloned()
            .or_else(|| Some(info.dataset.to_string()));
        let classes = match meta.get("convnets.classes") {
            Some(c) => serde_json::from_str::<Vec<String>>(c).map_err(|e| {
                bad(
                    "convnets.classes",
                    format!("expected a JSON list of names: {e}"),
                )
            })?,
            None => dataset.as_deref().map(classes_of).unwrap_or_default(),
        };
        // Fewer names than outputs is a data set with fewer classes than the model's head (a
        // folder of images); more cannot be predicted.
        if classes.len() > info.classes {
            return Err(bad(
                "convnets.classes",
                format!(
                    "{} class names, but model `{name}` has only {} outputs",
                    classes.len(),
                    info.classes
                ),
            ));
        }
        let normalize = match meta.get("convnets.normalize") {
            Some(s) => Some(
                s.parse::<Normalize>()
                    .map_err(|e| bad("convnets.normalize", e))?,
            ),
            None => info.default_normalize(),
        };
        if let Some(n) = normalize {
            n.check_channels(info.input[0])
                .map_err(|e| bad("convnets.normalize", e))?;
        }
        let preprocess = match meta.get("convnets.preprocess") {
            Some(s) => s
                .parse::<Preprocess>()
                .map_err(|e| bad("convnets.preprocess", e))?,
            None => info.preprocess(),
        };
        let test_accuracy = match meta.get("convnets.test_accuracy") {
            Some(s) => Some(
                s.parse::<f64>()
                    .ok()
                    .filter(|a| (0.0..=100.0).contains(a))
                    .ok_or_else(|| bad("convnets.test_accuracy", "expected a percentage".into()))?,
            ),
            None => None,
        };
        Ok(WeightsInfo {
            model: name.to_string(),
            dataset,
            classes,
            normalize,
            preprocess,
            input: info.input,
            test_accuracy,
            version: meta.get("convnets.version").cloned(),
            self_describing: own.is_some(),
        })
    }
}

/// The class names of data set `name`: MNIST's, Fashion-MNIST's, CIFAR-10's or ImageNet's;
/// empty for another name.
pub fn classes_of(name: &str) -> Vec<String> {
    if name == "imagenet" {
        return convnets_data::imagenet_classes()
            .iter()
            .map(|c| c.to_string())
            .collect();
    }
    name.parse::<DatasetKind>()
        .map(|k| k.classes().iter().map(|c| c.to_string()).collect())
        .unwrap_or_default()
}

impl ModelInfo {
    /// How image files are fitted to this model's input: torchvision's `Resize(256)` +
    /// `CenterCrop` for the ImageNet models, [`Preprocess::Fill`] for the others.
    pub fn preprocess(&self) -> Preprocess {
        match self.dataset {
            "imagenet" => Preprocess::ResizeCrop {
                resize: 256,
                crop: self.input[1] as u32,
            },
            _ => Preprocess::Fill,
        }
    }

    /// The normalization pretrained weights of this model usually take when their file does
    /// not say: ImageNet's statistics for the ImageNet models, none for the others (convnets'
    /// own weights carry theirs).
    pub fn default_normalize(&self) -> Option<Normalize> {
        (self.dataset == "imagenet").then_some(Normalize::IMAGENET)
    }
}

/// The metadata map in the header of the safetensors file at `path` (empty when it has none).
/// Reads only the header, refusing one over [`MAX_HEADER`] or longer than the file, so a
/// hostile file cannot make it allocate much.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>, LoadError> {
    use std::io::Read;
    let bad = |reason: String| LoadError::Header {
        path: path.into(),
        reason,
    };
    let io = |source| LoadError::Io {
        path: path.into(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|_| {
        bad(format!(
            "{size} bytes, too short for the 8-byte header length"
        ))
    })?;
    let n = u64::from_le_bytes(len);
    if n > size.saturating_sub(8) || n > MAX_HEADER {
        return Err(bad(format!(
            "the header length (first 8 bytes) says {n} bytes, but only {} bytes follow (at most {MAX_HEADER} allowed)",
            size.saturating_sub(8)
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(io)?;
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: HashMap<String, String>,
    }
    let h: Header = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("the header is not safetensors JSON: {e}")))?;
    Ok(h.metadata)
}

/// A model rebuilt from a weights file: the model, the store holding its parameters (for
/// training further or saving), and what the file says about it.
pub struct Loaded {
    /// The model, in the registry's layout, with the file's weights.
    pub model: Box<dyn Model>,
    /// Its parameters.
    pub store: ParamStore,
    /// What the weights are and how to feed them.
    pub info: WeightsInfo,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("model", &self.info.model)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Reads the weights file at `path`, builds the model its metadata names (or `model`, which
/// wins; a file without metadata needs it) on `device`, and loads every tensor into it
/// strictly: every parameter present with its shape, nothing else (see
/// [`ParamStore::load`]; float16, bfloat16 and float64 tensors are converted).
pub fn load(path: &Path, model: Option<&str>, device: &Device) -> Result<Loaded, LoadError> {
    let info = WeightsInfo::read(path, model)?;
    let store = ParamStore::new(0, device);
    let net = crate::build(&info.model, store.vb()).map_err(|source| LoadError::Build {
        path: path.into(),
        model: info.model.clone(),
        source: Box::new(source),
    })?;
    store.load(path, true)?;
    Ok(Loaded {
        model: net,
        store,
        info,
    })
}
