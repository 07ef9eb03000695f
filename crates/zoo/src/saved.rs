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
    /// The model's input `[channels, height, width]`: the registry's, or the one the
    /// weights were trained on (`convnets.input`: a CIFAR-size input for a model with
    /// adaptive pooling).
    pub input: [usize; 3],
    /// The number of outputs of the model's classifier: the registry's
    /// [`ModelInfo::classes`] unless the file holds a replaced head (fine-tuned weights:
    /// `convnets.num_classes`, else the shape of the head's weight in the file).
    pub num_classes: usize,
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
        let header = read_header(path)?;
        Self::from_header(path, &header, model)
    }

    /// [`WeightsInfo::read`] from a header already read: as [`WeightsInfo::from_metadata`],
    /// and a file without `convnets.num_classes` whose classifier has another number of
    /// outputs than the registry's model (a fine-tuned PyTorch model) gets that number.
    pub fn from_header(
        path: &Path,
        header: &Header,
        model: Option<&str>,
    ) -> Result<WeightsInfo, LoadError> {
        // A timm checkpoint without convnets metadata: its `config.json` names the
        // architecture and the evaluation transform.
        let timm = match header.metadata.contains_key("convnets.model") {
            true => None,
            false => crate::timm::TimmConfig::beside(path).map_err(|e| LoadError::Header {
                path: path.into(),
                reason: e.to_string(),
            })?,
        };
        let model = model.or_else(|| timm.as_ref().and_then(|t| t.model()).map(|m| m.name));
        let mut info = Self::from_metadata(path, &header.metadata, model)?;
        if let Some(t) = &timm {
            if !header.metadata.contains_key("convnets.preprocess") {
                info.preprocess = t.preprocess().unwrap_or(info.preprocess);
            }
            if !header.metadata.contains_key("convnets.normalize") {
                info.normalize = t.normalize().ok().or(info.normalize);
            }
        }
        if !header.metadata.contains_key("convnets.num_classes") {
            let entry = find(&info.model).expect("from_metadata found the model");
            if let Some(n) = header.num_classes(entry) {
                info.num_classes = n;
                if info.classes.len() > n {
                    // The data set's names were guessed from the registry's data set; a head of
                    // another size was trained on something else.
                    info.classes = (0..n).map(|i| i.to_string()).collect();
                }
            }
        }
        Ok(info)
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
        let num_classes = match meta.get("convnets.num_classes") {
            Some(s) => s.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                bad(
                    "convnets.num_classes",
                    "expected a whole number of classes, at least 1".into(),
                )
            })?,
            None => info.classes,
        };
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
        if classes.len() > num_classes {
            return Err(bad(
                "convnets.classes",
                format!(
                    "{} class names, but model `{name}` has only {num_classes} outputs",
                    classes.len(),
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
        // The input the weights were trained on: the registry's, or for a model with adaptive
        // pooling the data set's smaller images (`convnets.input`, CxHxW).
        let input = match meta.get("convnets.input") {
            Some(s) => {
                let dims: Vec<usize> = s
                    .split('x')
                    .map(|d| d.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .unwrap_or_default();
                match dims[..] {
                    [c, h, w] if c == info.input[0] && h > 0 && w > 0 && h <= 4096 && w <= 4096 => {
                        [c, h, w]
                    }
                    _ => {
                        return Err(bad(
                            "convnets.input",
                            format!(
                                "expected CxHxW with {} channels and sides of 1 to 4096 pixels",
                                info.input[0]
                            ),
                        ))
                    }
                }
            }
            None => info.input,
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
            input,
            num_classes,
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
                filter: convnets_data::Resample::Bilinear,
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
    Ok(read_header(path)?.metadata)
}

/// What the header of a safetensors file says: its metadata and every tensor's shape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The `__metadata__` map (empty when the file has none).
    pub metadata: HashMap<String, String>,
    /// Every tensor's shape, by name.
    pub shapes: HashMap<String, Vec<usize>>,
}

impl Header {
    /// The number of outputs of `info`'s classifier in these weights: their
    /// `convnets.num_classes`, else the rows of the head's weight in the file
    /// ([`head_outputs`]); `None` when neither says (or says 0).
    pub fn num_classes(&self, info: &ModelInfo) -> Option<usize> {
        self.metadata
            .get("convnets.num_classes")
            .and_then(|n| n.parse::<usize>().ok())
            .or_else(|| head_outputs(info, &self.shapes))
            .filter(|&n| n > 0)
    }
}

/// Reads the header of the safetensors file at `path` (not the tensors), with the same
/// bounds as [`read_metadata`].
pub fn read_header(path: &Path) -> Result<Header, LoadError> {
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
    struct Entry {
        shape: Vec<usize>,
    }
    let mut map: HashMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("the header is not safetensors JSON: {e}")))?;
    let metadata = match map.remove("__metadata__") {
        Some(m) => serde_json::from_value(m)
            .map_err(|e| bad(format!("`__metadata__` is not a map of strings: {e}")))?,
        None => HashMap::new(),
    };
    let mut shapes = HashMap::with_capacity(map.len());
    for (name, v) in map {
        let e: Entry = serde_json::from_value(v)
            .map_err(|e| bad(format!("tensor `{name}`: no valid shape: {e}")))?;
        shapes.insert(name, e.shape);
    }
    Ok(Header { metadata, shapes })
}

/// The number of outputs of the classifier in a weights file with these tensor `shapes`:
/// the first dimension of `{head}.weight` (or of `model.{head}.weight`, in a convnets
/// checkpoint), if the file has that tensor with two dimensions.
pub fn head_outputs(info: &ModelInfo, shapes: &HashMap<String, Vec<usize>>) -> Option<usize> {
    let name = format!("{}.weight", info.head);
    shapes
        .get(&name)
        .or_else(|| shapes.get(&format!("model.{name}")))
        .filter(|s| s.len() == 2)
        .map(|s| s[0])
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
    let entry = find(&info.model).expect("WeightsInfo::read found the model");
    let net = entry
        .build_with_classes(store.vb(), info.num_classes)
        .map_err(|source| LoadError::Build {
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
