//! convnets: the classic convolutional networks (LeNet-5, the MNIST CNN, …) in Rust on
//! candle, trainable to the published accuracy and loadable from PyTorch weights.
//!
//! This facade re-exports the layered crates:
//! [`data`] (data sets), [`layers`] (building blocks and kernels), [`zoo`] (the models) and
//! [`train`] (optimizers, the loop, metrics). Most programs need only the [`prelude`].
//!
//! ```no_run
//! use convnets::prelude::*;
//!
//! let summary = train(&TrainConfig::seed000())?; // LeNet-5 on Fashion-MNIST, 20 epochs
//! println!("{:.1}%", summary.final_accuracy);
//! # Ok::<(), convnets::train::TrainError>(())
//! ```

pub use candle_core as candle;
pub use candle_nn;
pub use convnets_data as data;
pub use convnets_layers as layers;
pub use convnets_train as train;
pub use convnets_zoo as zoo;

#[cfg(feature = "mimalloc")]
pub mod allocator;

/// The items most programs need.
pub mod prelude {
    pub use crate::data::{Dataset, DatasetKind};
    pub use crate::layers::ParamStore;
    pub use crate::train::{evaluate, train, Sgd, SgdConfig, TrainConfig};
    pub use crate::zoo::Model;
    pub use candle_core::{DType, Device, Module, ModuleT, Tensor};
}
