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
    /// The data set is nowhere on this machine and downloading it failed too.
    #[error("{download}\n{not_found}")]
    DataUnavailable {
        /// Why the download failed (every URL tried).
        download: Box<convnets_data::DataError>,
        /// Where the data was searched for, where it can be put, which package provides it.
        not_found: Box<convnets_data::DataError>,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The loss became NaN or infinite.
    #[error(
        "the loss diverged ({loss}) at epoch {epoch}, batch {batch}; try a smaller learning rate"
    )]
    Diverged {
        /// The epoch (from 1).
        epoch: usize,
        /// The batch index in the epoch.
        batch: usize,
        /// The loss value.
        loss: f32,
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
