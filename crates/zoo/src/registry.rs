//! The models by name, for the trainer and the command line.
//!
//! Every description ends with the model's exact parameter count, PyTorch's
//! `sum(p.numel() for p in model.parameters())` for its twin (the zoo tests check it against
//! the counts `scripts/torch_zoo_reference.py` writes into `tests/golden/zoo/`).

use crate::{
    AlexNet, AlexNetConfig, AlexNetTorchvision, AlexNetTorchvisionConfig, GoogLeNet,
    GoogLeNetConfig, InceptionNet, LeNet5, LeNet5Bn, MnistNet, Model, ResNet, ResNetConfig,
    ResidualNet, SimpleCnn, ZfNet, ZfNetConfig,
};
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use std::sync::{Arc, Mutex};

/// What the zoo knows about a model before it is built.
#[derive(Debug)]
pub struct ModelInfo {
    /// The registry name (`lenet5`, `mnist-net`, …).
    pub name: &'static str,
    /// One line for `--help`.
    pub description: &'static str,
    /// Input `[channels, height, width]`.
    pub input: [usize; 3],
    /// A small input `[channels, height, width]` the model also accepts, for quick checks
    /// (smoke tests, a training step on the CPU): `input` itself for models whose classifier
    /// fixes the size, a CIFAR-size image for the ImageNet models with adaptive pooling.
    pub small_input: [usize; 3],
    /// Number of classes.
    pub classes: usize,
    /// The data set the articles train it on.
    pub dataset: &'static str,
    /// Which article (seed file) or paper it follows.
    pub source: &'static str,
    /// The classifier's parameter prefix (`fc`, `classifier.6`, …): the last linear layer,
    /// whose `{head}.weight` is `[classes, features]`. Fine-tuning replaces it
    /// ([`ModelInfo::build_with_classes`]) and may freeze everything else.
    pub head: &'static str,
    build: fn(VarBuilder, usize) -> Result<Box<dyn Model>>,
}

impl ModelInfo {
    /// Builds the model with its usual [`ModelInfo::classes`] outputs, taking its parameters
    /// from `vb`.
    pub fn build(&self, vb: VarBuilder) -> Result<Box<dyn Model>> {
        (self.build)(vb, self.classes)
    }

    /// Builds the model with a classifier of `classes` outputs (a new head, for fine-tuning
    /// on another data set; `classes` ≥ 1), taking its parameters from `vb`. Every other
    /// parameter has the same name and shape as in [`ModelInfo::build`].
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use candle_nn::ModuleT;
    /// use convnets_layers::ParamStore;
    /// let store = ParamStore::new(0, &Device::Cpu);
    /// let net = convnets_zoo::registry::RESNET18.build_with_classes(store.vb(), 5)?;
    /// let x = Tensor::zeros((2, 3, 32, 32), candle_core::DType::F32, &Device::Cpu)?;
    /// assert_eq!(net.forward_t(&x, false)?.dims(), &[2, 5]);
    /// assert_eq!(store.get("fc.weight").unwrap().dims(), &[5, 512]);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn build_with_classes(&self, vb: VarBuilder, classes: usize) -> Result<Box<dyn Model>> {
        if classes == 0 {
            candle_core::bail!("model `{}`: a classifier needs at least 1 class", self.name)
        }
        (self.build)(vb, classes)
    }

    /// Every parameter's name and shape (buffers included, in creation order) of the model
    /// built with `classes` outputs, without allocating them: the model is built on tensors
    /// that are broadcast zeros, so this is cheap even for ZFNet's 107 M parameters. For
    /// checking a weights file's header against a model before loading it.
    pub fn parameter_shapes(&self, classes: usize) -> Result<Vec<(String, Vec<usize>)>> {
        let rec = ShapeRecorder::default();
        let vb = VarBuilder::from_backend(Box::new(rec.clone()), DType::F32, Device::Cpu);
        self.build_with_classes(vb, classes)?;
        let shapes = rec.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(shapes)
    }

    /// Whether the parameter `name` belongs to the classifier ([`ModelInfo::head`]).
    pub fn is_head(&self, name: &str) -> bool {
        name.strip_prefix(self.head)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    }
}

/// A `VarBuilder` backend that records the parameters asked for and hands out broadcast
/// zeros (no memory), for [`ModelInfo::parameter_shapes`].
#[derive(Clone, Default)]
struct ShapeRecorder(Arc<Mutex<Vec<NamedShape>>>);

/// A parameter's name and shape.
type NamedShape = (String, Vec<usize>);

impl SimpleBackend for ShapeRecorder {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.iter().any(|(n, _)| n == name) {
            seen.push((name.to_string(), s.dims().to_vec()));
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("parameter `{name}` does not exist")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter().any(|(n, _)| n == name)
    }
}

fn resnet(cfg: ResNetConfig, classes: usize, vb: VarBuilder) -> Result<Box<dyn Model>> {
    let cfg = ResNetConfig {
        num_classes: classes,
        ..cfg
    };
    Ok(Box::new(ResNet::new(&cfg, vb)?))
}

/// LeNet-5 (seed 000).
pub static LENET5: ModelInfo = ModelInfo {
    name: "lenet5",
    description: "LeNet-5 as in seed 000 (avg pooling, 256-320-80-10 head), 111,302 params",
    input: [1, 28, 28],
    small_input: [1, 28, 28],
    classes: 10,
    dataset: "fashion-mnist",
    source: "seed 000",
    head: "fc3",
    build: |vb, n| Ok(Box::new(LeNet5::with_classes(n, vb)?)),
};

/// LeNet-5 with batch norm, ReLU and max pooling after each convolution (the better recipe).
pub static LENET5_BN: ModelInfo = ModelInfo {
    name: "lenet5-bn",
    description: "LeNet-5 with BatchNorm + ReLU + max pooling after each conv, 111,346 params",
    input: [1, 28, 28],
    small_input: [1, 28, 28],
    classes: 10,
    dataset: "fashion-mnist",
    source: "seed 000, with batch norm (Ioffe & Szegedy 2015)",
    head: "fc3",
    build: |vb, n| Ok(Box::new(LeNet5Bn::with_classes(n, vb)?)),
};

/// The small MNIST CNN (seed 004).
pub static MNIST_NET: ModelInfo = ModelInfo {
    name: "mnist-net",
    description: "seed 004's MNIST CNN (2 convs, max pooling, Linear(320,10)), 8,490 params",
    input: [1, 28, 28],
    small_input: [1, 28, 28],
    classes: 10,
    dataset: "mnist",
    source: "seed 004",
    head: "fc",
    build: |vb, n| Ok(Box::new(MnistNet::with_classes(n, vb)?)),
};

/// SimpleCNN (seed 003).
pub static SIMPLE_CNN: ModelInfo = ModelInfo {
    name: "simple-cnn",
    description: "seed 003's SimpleCNN (3x conv3x3+ReLU+maxpool 32/64/128, 2048-512-64-10 head), 1,175,818 params",
    input: [3, 32, 32],
    small_input: [3, 32, 32],
    classes: 10,
    dataset: "cifar10",
    source: "seed 003",
    head: "layer4.fc3",
    build: |vb, n| Ok(Box::new(SimpleCnn::with_classes(n, vb)?)),
};

/// AlexNet exactly as seed 002's `nn.Sequential`.
pub static ALEXNET: ModelInfo = ModelInfo {
    name: "alexnet",
    description: "AlexNet as seed 002 codes it (227x227, no dropout, no LRN, Sequential names), 62,378,344 params",
    input: [3, 227, 227],
    small_input: [3, 227, 227],
    classes: 1000,
    dataset: "imagenet",
    source: "seed 002; Krizhevsky et al. 2012",
    head: "16",
    build: |vb, n| {
        let cfg = AlexNetConfig {
            num_classes: n,
            ..AlexNetConfig::article()
        };
        Ok(Box::new(AlexNet::new(cfg, vb)?))
    },
};

/// torchvision's AlexNet.
pub static ALEXNET_TORCHVISION: ModelInfo = ModelInfo {
    name: "alexnet-torchvision",
    description:
        "torchvision's AlexNet (64-192-384-256-256, adaptive pool 6x6, dropout), 61,100,840 params",
    input: [3, 224, 224],
    small_input: [3, 64, 64],
    classes: 1000,
    dataset: "imagenet",
    source: "torchvision.models.alexnet; Krizhevsky 2014 (one weird trick)",
    head: "classifier.6",
    build: |vb, n| {
        let cfg = AlexNetTorchvisionConfig {
            num_classes: n,
            ..Default::default()
        };
        Ok(Box::new(AlexNetTorchvision::new(cfg, vb)?))
    },
};

/// ZFNet (seed 002's changes to AlexNet, Zeiler & Fergus 2013).
pub static ZFNET: ModelInfo = ModelInfo {
    name: "zfnet",
    description: "ZFNet (7x7/2 conv1, stride-2 conv2, 512-1024-512 in conv3-5; Zeiler & Fergus 2013), 107,627,624 params",
    input: [3, 224, 224],
    small_input: [3, 224, 224],
    classes: 1000,
    dataset: "imagenet",
    source: "seed 002; Zeiler & Fergus 2013, Fig. 3 and Table 1",
    head: "classifier.6",
    build: |vb, n| {
        let cfg = ZfNetConfig {
            num_classes: n,
            ..ZfNetConfig::zfnet()
        };
        Ok(Box::new(ZfNet::new(cfg, vb)?))
    },
};

/// The Inception network of seed 001.
pub static INCEPTION_NET: ModelInfo = ModelInfo {
    name: "inception-net",
    description:
        "seed 001's MNIST net with two Inception modules (88 channels each), 97,298 params",
    input: [1, 28, 28],
    small_input: [1, 28, 28],
    classes: 10,
    dataset: "mnist",
    source: "seed 001",
    head: "fc",
    build: |vb, n| Ok(Box::new(InceptionNet::with_classes(n, vb)?)),
};

/// The residual network of seed 001.
pub static RESIDUAL_NET: ModelInfo = ModelInfo {
    name: "residual-net",
    description:
        "seed 001's MNIST net with two residual blocks (16 and 32 channels), 41,514 params",
    input: [1, 28, 28],
    small_input: [1, 28, 28],
    classes: 10,
    dataset: "mnist",
    source: "seed 001",
    head: "fc",
    build: |vb, n| Ok(Box::new(ResidualNet::with_classes(n, vb)?)),
};

/// GoogLeNet in torchvision's layout, without auxiliary classifiers.
pub static GOOGLENET: ModelInfo = ModelInfo {
    name: "googlenet",
    description:
        "GoogLeNet / Inception v1 in torchvision's layout (BN, no aux heads), 6,624,904 params",
    input: [3, 224, 224],
    small_input: [3, 32, 32],
    classes: 1000,
    dataset: "imagenet",
    source: "torchvision.models.googlenet; Szegedy et al. 2015",
    head: "fc",
    build: |vb, n| {
        let cfg = GoogLeNetConfig {
            num_classes: n,
            ..GoogLeNetConfig::googlenet()
        };
        Ok(Box::new(GoogLeNet::new(cfg, vb)?))
    },
};

/// ResNet-18 (torchvision).
pub static RESNET18: ModelInfo = ModelInfo {
    name: "resnet18",
    description: "ResNet-18 in torchvision's layout (BasicBlock [2,2,2,2]), 11,689,512 params",
    input: [3, 224, 224],
    small_input: [3, 32, 32],
    classes: 1000,
    dataset: "imagenet",
    source: "torchvision.models.resnet18; He et al. 2016",
    head: "fc",
    build: |vb, n| resnet(ResNetConfig::resnet18(), n, vb),
};

/// ResNet-34 (torchvision).
pub static RESNET34: ModelInfo = ModelInfo {
    name: "resnet34",
    description: "ResNet-34 in torchvision's layout (BasicBlock [3,4,6,3]), 21,797,672 params",
    input: [3, 224, 224],
    small_input: [3, 32, 32],
    classes: 1000,
    dataset: "imagenet",
    source: "torchvision.models.resnet34; He et al. 2016",
    head: "fc",
    build: |vb, n| resnet(ResNetConfig::resnet34(), n, vb),
};

/// ResNet-50 (torchvision).
pub static RESNET50: ModelInfo = ModelInfo {
    name: "resnet50",
    description: "ResNet-50 in torchvision's layout (Bottleneck v1.5 [3,4,6,3]), 25,557,032 params",
    input: [3, 224, 224],
    small_input: [3, 32, 32],
    classes: 1000,
    dataset: "imagenet",
    source: "torchvision.models.resnet50; He et al. 2016",
    head: "fc",
    build: |vb, n| resnet(ResNetConfig::resnet50(), n, vb),
};

/// ResNet-20 for CIFAR-10.
pub static RESNET20: ModelInfo = ModelInfo {
    name: "resnet20",
    description:
        "CIFAR-10 ResNet-20 (He et al. 2016 sec. 4.2, n=3, option-B shortcuts), 272,474 params",
    input: [3, 32, 32],
    small_input: [3, 32, 32],
    classes: 10,
    dataset: "cifar10",
    source: "He et al. 2016 sec. 4.2; scripts/models.py ResNet20",
    head: "fc",
    build: |vb, n| resnet(ResNetConfig::cifar(3), n, vb),
};

/// ResNet-56 for CIFAR-10.
pub static RESNET56: ModelInfo = ModelInfo {
    name: "resnet56",
    description:
        "CIFAR-10 ResNet-56 (He et al. 2016 sec. 4.2, n=9, option-B shortcuts), 855,770 params",
    input: [3, 32, 32],
    small_input: [3, 32, 32],
    classes: 10,
    dataset: "cifar10",
    source: "He et al. 2016 sec. 4.2",
    head: "fc",
    build: |vb, n| resnet(ResNetConfig::cifar(9), n, vb),
};

/// What [`ResNet`]s built from an unregistered ImageNet-stem config report (not in the registry).
pub static RESNET_CUSTOM_IMAGENET: ModelInfo = ModelInfo {
    name: "resnet-custom",
    description:
        "a ResNet with an ImageNet stem built from a custom ResNetConfig (not buildable by name)",
    input: [3, 224, 224],
    small_input: [3, 32, 32],
    classes: 1000,
    dataset: "imagenet",
    source: "He et al. 2016",
    head: "fc",
    build: |_, _| {
        candle_core::bail!("resnet-custom: build it with ResNet::new and its ResNetConfig")
    },
};

/// What [`ResNet`]s built from an unregistered CIFAR-stem config report (not in the registry).
pub static RESNET_CUSTOM_CIFAR: ModelInfo = ModelInfo {
    name: "resnet-cifar-custom",
    description: "a CIFAR ResNet built from a custom ResNetConfig (not buildable by name)",
    input: [3, 32, 32],
    small_input: [3, 32, 32],
    classes: 10,
    dataset: "cifar10",
    source: "He et al. 2016 sec. 4.2",
    head: "fc",
    build: |_, _| {
        candle_core::bail!("resnet-cifar-custom: build it with ResNet::new and its ResNetConfig")
    },
};

static MODELS: &[&ModelInfo] = &[
    &LENET5,
    &LENET5_BN,
    &MNIST_NET,
    &SIMPLE_CNN,
    &INCEPTION_NET,
    &RESIDUAL_NET,
    &ALEXNET,
    &ALEXNET_TORCHVISION,
    &ZFNET,
    &GOOGLENET,
    &RESNET18,
    &RESNET34,
    &RESNET50,
    &RESNET20,
    &RESNET56,
];

/// Every registered model.
pub fn models() -> &'static [&'static ModelInfo] {
    MODELS
}

/// The model called `name`, if registered.
pub fn find(name: &str) -> Option<&'static ModelInfo> {
    MODELS.iter().copied().find(|m| m.name == name)
}

/// The error message for a model name the registry does not know: it lists the known ones.
pub fn unknown_model_message(name: &str) -> String {
    let known: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
    format!("unknown model `{name}`; known models: {}", known.join(", "))
}

/// Builds the model called `name`; the error lists the known names.
pub fn build(name: &str, vb: VarBuilder) -> Result<Box<dyn Model>> {
    match find(name) {
        Some(info) => info.build(vb),
        None => candle_core::bail!("{}", unknown_model_message(name)),
    }
}
