//! The convnets model zoo: the networks of the articles, with PyTorch's parameter names.
//!
//! Every model is a plain struct built from a [`VarBuilder`](candle_nn::VarBuilder) whose
//! parameter names are the PyTorch module's `state_dict()` keys, and an entry in the
//! [`registry`] so that the trainer and the command line find it by name.
//!
//! | name | struct | article |
//! | --- | --- | --- |
//! | `lenet5` | [`LeNet5`] | seed 000 |
//! | `lenet5-bn` | [`LeNet5Bn`] | seed 000 + batch norm, ReLU, max pooling |
//! | `mnist-net` | [`MnistNet`] | seed 004 |
//! | `simple-cnn` | [`SimpleCnn`] | seed 003 |
//! | `alexnet` | [`AlexNet`] | seed 002 (its `nn.Sequential`) |
//! | `alexnet-torchvision` | [`AlexNetTorchvision`] | torchvision's AlexNet |
//! | `zfnet` | [`ZfNet`] | seed 002's ZFNet changes, Zeiler & Fergus 2013 |
//! | `inception-net` | [`InceptionNet`] | seed 001 (Inception module on MNIST) |
//! | `residual-net` | [`ResidualNet`] | seed 001 (residual block on MNIST) |
//! | `googlenet` | [`GoogLeNet`] | Szegedy et al. 2015, torchvision's layout |
//! | `resnet18`, `resnet34`, `resnet50` | [`ResNet`] | He et al. 2016, torchvision's layout |
//! | `resnet20`, `resnet56` | [`ResNet`] | He et al. 2016 §4.2 (CIFAR-10) |
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use convnets_layers::ParamStore;
//!
//! let store = ParamStore::new(0, &Device::Cpu);
//! let net = convnets_zoo::build("residual-net", store.vb())?;
//! let x = Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu)?;
//! assert_eq!(net.forward_t(&x, false)?.dims(), &[2, 10]);
//! assert_eq!(store.names()[..3], ["conv1.weight", "conv1.bias", "conv2.weight"]);
//! let s = convnets_zoo::summary(&*net, &[1, 1, 28, 28])?;
//! assert_eq!((s.total_params, s.rows[0].output.as_slice()), (41_514, &[1, 16, 24, 24][..]));
//! # Ok::<(), candle_core::Error>(())
//! ```

pub mod alexnet;
pub mod googlenet;
#[cfg(feature = "hub")]
pub mod hub;
pub mod inception;
pub mod lenet;
pub mod mnist_net;
pub mod registry;
pub mod residual;
pub mod resnet;
pub mod saved;
pub mod simple_cnn;
pub mod timm;
pub mod weights;
pub mod zfnet;

pub use alexnet::{AlexNet, AlexNetConfig, AlexNetTorchvision, AlexNetTorchvisionConfig};
pub use googlenet::{GoogLeNet, GoogLeNetConfig};
#[cfg(feature = "hub")]
pub use hub::{HubError, HubWeights};
pub use inception::{InceptionA, InceptionNet};
pub use lenet::{LeNet5, LeNet5Bn};
pub use mnist_net::MnistNet;
pub use registry::{build, find, models, unknown_model_message, ModelInfo};
pub use residual::{ResidualBlock, ResidualNet};
pub use resnet::{BlockKind, ResNet, ResNetConfig, Stem};
pub use saved::{
    head_outputs, load, read_header, read_metadata, Header, LoadError, Loaded, WeightsInfo,
};
pub use simple_cnn::SimpleCnn;
pub use weights::KnownWeights;
pub use zfnet::{ZfNet, ZfNetConfig};

use candle_core::Result;
use convnets_layers::{Layer, Summary};

/// A network of the zoo: a [`Layer`] (a module with train/eval behaviour, a kind and named
/// children) with a known input.
pub trait Model: Layer {
    /// What the registry knows about this model.
    fn info(&self) -> &'static ModelInfo;
}

/// Summarises a zoo model (per-layer output shapes, parameters, MACs) for an input of
/// `input_shape` (batch included), as [`convnets_layers::summary`] does for any module.
pub fn summary(model: &dyn Model, input_shape: &[usize]) -> Result<Summary> {
    convnets_layers::summary(model, input_shape)
}
