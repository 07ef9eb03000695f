//! The convnets model zoo: the networks of the articles, with PyTorch's parameter names.
//!
//! Every model is a plain struct built from a [`VarBuilder`](candle_nn::VarBuilder) whose
//! parameter names are the PyTorch module's `state_dict()` keys, and an entry in the
//! [`registry`] so that the trainer and the command line find it by name.

pub mod lenet;
pub mod mnist_net;
pub mod registry;

pub use lenet::LeNet5;
pub use mnist_net::MnistNet;
pub use registry::{build, find, models, ModelInfo};

/// A network of the zoo: a module with train/eval behaviour and a known input.
pub trait Model: candle_core::ModuleT + Send + Sync {
    /// What the registry knows about this model.
    fn info(&self) -> &'static ModelInfo;
}
