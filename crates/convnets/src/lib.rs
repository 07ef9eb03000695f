//! convnets: the classic convolutional networks (LeNet-5, the MNIST CNN, …) in Rust on
//! candle, trainable to the published accuracy and loadable from PyTorch weights.
//!
//! This facade re-exports the layered crates:
//! [`data`] (data sets), [`layers`] (building blocks and kernels), [`zoo`] (the models) and
//! [`train`] (optimizers, the loop, metrics). Most programs need only the [`prelude`].
//!
//! A network of your own, trained with the library's trainer (see
//! `examples/custom_cnn.rs` for the whole program):
//!
//! ```no_run
//! use convnets::prelude::*;
//!
//! # fn main() -> anyhow::Result<()> {
//! convnets::runtime::init(); // the CLI's thread setup (see [`runtime`])
//! let store = ParamStore::new(0, &Device::Cpu);
//! let vb = store.vb();
//! let model = Sequential::new()
//!     .add("conv", conv2d(1, 8, 3, Conv2dConfig::default(), vb.pp("conv"))?)
//!     .add("relu", Relu)
//!     .add("pool", MaxPool2d::new(2))
//!     .add("flatten", Flatten)
//!     .add("fc", linear(8 * 13 * 13, 10, vb.pp("fc"))?);
//! let data = convnets::data::load(DatasetKind::Mnist, None)?;
//! let train_b = Batcher::from_split(&data.train, None, 64, Some(0), false)?;
//! let test_b = Batcher::from_split(&data.test, None, 1000, None, false)?;
//! let params = Params::from(&store);
//! let adam = OptimizerConfig::Adam(AdamConfig::default()).build(params.trainable())?;
//! let report = Trainer::new(&model, params, adam)
//!     .epochs(1)
//!     .test(&test_b)
//!     .observer(ArticlePrinter::new(100))
//!     .fit(&train_b)?;
//! println!("{:?}", report.history.last().and_then(|m| m.test_accuracy));
//! # Ok(())
//! # }
//! ```
//!
//! Or a registry model with a named recipe, as `cargo xtask train` does:
//!
//! ```no_run
//! use convnets::prelude::*;
//! let summary = train(&convnets::train::recipe::lenet5_fashion_mnist())?; // seed 000
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
pub mod runtime;

/// The items most programs need to build, train and evaluate a network: one
/// `use convnets::prelude::*;` and no two items of the same name (candle-nn's own
/// `Conv2d`/`Linear` stay behind `convnets::candle_nn::`).
pub mod prelude {
    pub use crate::data::{
        load, load_or_download, Batch, Batcher, Dataset, DatasetKind, Normalize,
    };
    pub use crate::layers::{
        batch_norm2d, conv2d, linear, named_modules, no_grad, summary, AdaptiveAvgPool2d,
        AvgPool2d, BatchNorm2d, BatchNormConfig, Conv2d, Conv2dConfig, Dropout, Flatten, Layer,
        Linear, MaxPool2d, ParamStore, Relu, Sequential,
    };
    pub use crate::train::optim::{AdamConfig, AdamWConfig, RmsPropConfig};
    pub use crate::train::{
        cross_entropy, evaluate, train, ArticlePrinter, BatchSource, EarlyStopping, Ensemble,
        EvalResult, Loss, LrScheduler, Observer, OptimizerConfig, Params, ScheduleConfig,
        SgdConfig, TrainConfig, Trainer,
    };
    pub use crate::zoo::Model;
    pub use candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
}
