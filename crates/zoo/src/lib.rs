//! The convnets model zoo: the networks of the articles, with PyTorch's parameter names.
//!
//! Every model is a plain struct built from a [`VarBuilder`](candle_nn::VarBuilder) whose
//! parameter names are the PyTorch module's `state_dict()` keys, and an entry in the
//! [`registry`] so that the trainer and the command line find it by name.
//!
//! | name | struct | article |
//! | --- | --- | --- |
//! | `lenet5` | [`LeNet5`] | seed 000 |
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

pub mod alexnet;
pub mod googlenet;
pub mod inception;
pub mod lenet;
pub mod mnist_net;
pub mod registry;
pub mod residual;
pub mod resnet;
pub mod simple_cnn;
pub mod zfnet;

pub use alexnet::{AlexNet, AlexNetConfig, AlexNetTorchvision, AlexNetTorchvisionConfig};
pub use googlenet::{GoogLeNet, GoogLeNetConfig};
pub use inception::{InceptionA, InceptionNet};
pub use lenet::LeNet5;
pub use mnist_net::MnistNet;
pub use registry::{build, find, models, ModelInfo};
pub use residual::{ResidualBlock, ResidualNet};
pub use resnet::{BlockKind, ResNet, ResNetConfig, Stem};
pub use simple_cnn::SimpleCnn;
pub use zfnet::{ZfNet, ZfNetConfig};

use candle_core::{ModuleT, Result, Tensor};
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
    struct AsModule<'a>(&'a dyn Model);
    impl ModuleT for AsModule<'_> {
        fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
            self.0.forward_t(x, train)
        }
    }
    convnets_layers::summary(&AsModule(model), input_shape)
}
