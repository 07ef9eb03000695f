//! The trainer's errors.

use std::path::PathBuf;

/// What can go wrong while training or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The data could not be found, read or downloaded.
    #[error(transparent)]
    Data(#[from] convnets_data::DataError),
    /// Weights could not be saved or loaded.
    #[error(transparent)]
    Store(#[from] convnets_layers::StoreError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A learning-rate schedule is invalid.
    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleError),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A checkpoint could not be written, read or applied.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// Data-parallel ranks disagree, or their communication failed.
    #[error("distributed training: {0}")]
    Distributed(Box<crate::distributed::DistributedError>),
    /// Training diverged: the loss (or the gradient norm) became NaN or infinite.
    #[error("training diverged at epoch {epoch}, batch {batch}: {what}; {hint}. The last checkpoint (if any) is intact")]
    Diverged {
        /// The epoch (from 1).
        epoch: usize,
        /// The batch index in the epoch.
        batch: usize,
        /// What became non-finite.
        what: String,
        /// The likely cause.
        hint: String,
    },
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// The trainer's result type.
pub type Result<T> = std::result::Result<T, TrainError>;
