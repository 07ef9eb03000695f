//! Checkpoints: everything a run needs to continue exactly where it stopped, in one
//! safetensors file written atomically.
//!
//! The file holds the model's tensors as `model.<name>` (PyTorch's `state_dict()` keys behind
//! the prefix), the optimizer's state as `optim.<index>.<buffer>`, and in the safetensors
//! header's metadata (`convnets.checkpoint`) a JSON [`CheckpointMeta`]: the position (epochs
//! finished, batches into the next one and that epoch's partial sums), the schedule's state,
//! the dropout generator's state, the observers' states (early stopping's counters), every
//! finished epoch's metrics and the run's configuration. A run resumed from it continues with
//! bit-for-bit the weights an uninterrupted run gets (same device, same threads).

use crate::metrics::EpochMetrics;
use crate::{Result, TrainError};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The metadata key holding the [`CheckpointMeta`] JSON.
pub const META_KEY: &str = "convnets.checkpoint";
/// Tensor-name prefix of the model's parameters and buffers in a checkpoint.
pub const MODEL_PREFIX: &str = "model.";
/// Tensor-name prefix of the optimizer's state in a checkpoint.
pub const OPTIM_PREFIX: &str = "optim.";
/// The checkpoint format version this crate writes and reads.
pub const FORMAT: u32 = 1;

/// Sums over the batches of an epoch that is not finished yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Sum over the batches of (mean batch loss × batch size).
    pub loss_sum: f64,
    /// Samples trained on.
    pub samples: usize,
    /// Training samples predicted right (top-1).
    pub correct: usize,
    /// Seconds spent training on them.
    pub seconds: f64,
    /// Seconds the loop waited for those batches (not in `seconds`).
    #[serde(default)]
    pub data_seconds: f64,
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Epochs finished (the next epoch is `epochs_done + 1`).
    pub epochs_done: usize,
    /// Batches of the next epoch already trained on (0 at an epoch boundary; more when the run
    /// was interrupted mid-epoch).
    pub batch: usize,
    /// The next epoch's sums so far.
    pub partial: PartialEpoch,
}

/// The state of the seeded generator behind dropout masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The ChaCha seed.
    pub seed: [u8; 32],
    /// The word position in the stream.
    pub word_pos: u128,
}

/// What a checkpoint says besides its tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// [`FORMAT`].
    pub format: u32,
    /// Where the run stands.
    pub position: Position,
    /// The optimizer's name (`sgd`, `adam`, …), checked on resume.
    pub optimizer: String,
    /// The learning rate of the next step.
    pub lr: f64,
    /// The schedule's state, if the run has one.
    pub scheduler: Option<serde_json::Value>,
    /// The dropout generator's state.
    pub rng: Option<RngState>,
    /// The observers' states, by observer name.
    pub observers: BTreeMap<String, serde_json::Value>,
    /// Every finished epoch's metrics (the rows of `metrics.csv` this checkpoint matches).
    pub history: Vec<EpochMetrics>,
    /// The epoch with the best monitored loss so far and that loss.
    pub best: Option<(usize, f64)>,
    /// The run's configuration, when it was started from one (a [`crate::TrainConfig`]).
    pub config: Option<serde_json::Value>,
}

/// A checkpoint: named tensors and [`CheckpointMeta`].
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The model's tensors by their parameter name (no prefix).
    pub model: Vec<(String, Tensor)>,
    /// The optimizer's state by key (`"3.exp_avg"`, no prefix).
    pub optim: Vec<(String, Tensor)>,
    /// Position, schedule, generator, observers, history.
    pub meta: CheckpointMeta,
}

impl Checkpoint {
    /// Writes the checkpoint to `path` atomically (a temporary file beside it, renamed over
    /// `path` when complete).
    pub fn save(&self, path: &Path) -> Result<()> {
        let meta = serde_json::to_string(&self.meta)
            .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        for (n, t) in &self.model {
            tensors.push((format!("{MODEL_PREFIX}{n}"), t.to_device(&Device::Cpu)?));
        }
        for (n, t) in &self.optim {
            tensors.push((format!("{OPTIM_PREFIX}{n}"), t.to_device(&Device::Cpu)?));
        }
        let info = HashMap::from([(META_KEY.to_string(), meta)]);
        let bytes =
            safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(info))
                .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
        crate::fsutil::write_atomic(path, &bytes)
    }

    /// Reads a checkpoint written by [`Checkpoint::save`]. Errors name the file and say what
    /// is wrong (not a safetensors file, no checkpoint metadata, a newer format).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(TrainError::io(path))?;
        let bad = |why: String| TrainError::Checkpoint(format!("{}: {why}", path.display()));
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let meta = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META_KEY))
            .ok_or_else(|| {
                bad(format!(
                    "no `{META_KEY}` metadata: a weights file, not a checkpoint"
                ))
            })?;
        let meta: CheckpointMeta =
            serde_json::from_str(meta).map_err(|e| bad(format!("checkpoint metadata: {e}")))?;
        if meta.format != FORMAT {
            return Err(bad(format!(
                "checkpoint format {} (this build reads format {FORMAT})",
                meta.format
            )));
        }
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let (mut model, mut optim) = (Vec::new(), Vec::new());
        for (name, t) in tensors {
            if let Some(n) = name.strip_prefix(MODEL_PREFIX) {
                model.push((n.to_string(), t));
            } else if let Some(n) = name.strip_prefix(OPTIM_PREFIX) {
                optim.push((n.to_string(), t));
            } else {
                return Err(bad(format!(
                    "unexpected tensor `{name}` (expected `{MODEL_PREFIX}…` or `{OPTIM_PREFIX}…`)"
                )));
            }
        }
        model.sort_by(|a, b| a.0.cmp(&b.0));
        optim.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { model, optim, meta })
    }
}

/// The metadata map in the header of the safetensors file at `path` (empty when it has none).
/// Reads only the header, refusing one over 100 MiB or longer than the file, so a hostile
/// file cannot make it allocate much.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    convnets_zoo::read_metadata(path).map_err(|e| TrainError::Checkpoint(e.to_string()))
}

/// Whether the safetensors file at `path` is a convnets checkpoint (has the checkpoint
/// metadata) rather than a plain weights file. Reads only the header.
pub fn is_checkpoint(path: &Path) -> bool {
    read_metadata(path).is_ok_and(|m| m.contains_key(META_KEY))
}
