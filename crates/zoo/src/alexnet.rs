//! AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet Classification with Deep
//! Convolutional Neural Networks"), in two layouts.
//!
//! [`AlexNet`] is seed 002's `net = nn.Sequential(...)` exactly as the article writes it: for a
//! 1x3x227x227 input the layers print 96x55x55 → pool 96x27x27 → 256x27x27 → pool 256x13x13 →
//! 384x13x13 → 384x13x13 → 256x13x13 → pool 256x6x6 → 9216 → 4096 → 4096 → 1000, with
//! 34,944 / 614,656 / 885,120 / 1,327,488 / 884,992 / 37,752,832 / 16,781,312 / 4,097,000
//! parameters per layer, **62,378,344** in total. As written there is no dropout and no ReLU
//! between the three `Linear` layers, and the parameter names are the `nn.Sequential` indices
//! (`0.weight`, `3.weight`, …, `16.bias`). The article mentions local response normalisation
//! (NORM1 after the first pooling) but leaves it out of the code; [`AlexNetConfig::lrn`] puts
//! the paper's LRN (size 5, α 1e-4, β 0.75, k 2; §3.3) after the first two ReLUs (§3.5: "Response
//! normalization layers follow the first and second convolutional layers"), which shifts the
//! later indices as it would in PyTorch.
//!
//! [`AlexNetTorchvision`] is `torchvision.models.alexnet()` (the "one weird trick" single-GPU
//! variant: 64/192/384/256/256 kernels, `AdaptiveAvgPool2d((6, 6))`, dropout 0.5 before the
//! first two `Linear` layers): 224x224 input, **61,100,840** parameters, names `features.0.weight`
//! … `classifier.6.bias`. Its adaptive pooling accepts any input of at least 63x63.

use crate::registry::{ModelInfo, ALEXNET, ALEXNET_TORCHVISION};
use crate::Model;
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use convnets_layers::layer::with_scope;
use convnets_layers::{
    conv2d, linear, AdaptiveAvgPool2d, Conv2d, Conv2dConfig, Dropout, Flatten, Layer, Linear,
    LocalResponseNorm, MaxPool2d, Relu, Sequential,
};
use serde::{Deserialize, Serialize};

/// Configuration of seed 002's [`AlexNet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlexNetConfig {
    /// Local response normalisation after the first two ReLUs (the paper; not in the article's
    /// code).
    pub lrn: bool,
    /// Outputs of the last layer (1000 ImageNet classes in the article).
    pub num_classes: usize,
}

impl Default for AlexNetConfig {
    /// [`AlexNetConfig::article`].
    fn default() -> Self {
        Self::article()
    }
}

impl AlexNetConfig {
    /// Seed 002's code: no LRN, 1000 classes.
    pub fn article() -> Self {
        Self {
            lrn: false,
            num_classes: 1000,
        }
    }
    /// The article's layers with the paper's LRN after conv1 and conv2 (each after its ReLU).
    pub fn with_lrn() -> Self {
        Self {
            lrn: true,
            ..Self::article()
        }
    }
}

/// Seed 002's AlexNet: the fields are the article's `nn.Sequential` entries, in order.
#[derive(Clone, Debug)]
pub struct AlexNet {
    conv1: Conv2d,
    relu1: Relu,
    norm1: Option<LocalResponseNorm>,
    pool1: MaxPool2d,
    conv2: Conv2d,
    relu2: Relu,
    norm2: Option<LocalResponseNorm>,
    pool2: MaxPool2d,
    conv3: Conv2d,
    relu3: Relu,
    conv4: Conv2d,
    relu4: Relu,
    conv5: Conv2d,
    relu5: Relu,
    pool3: MaxPool2d,
    flatten: Flatten,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    /// 1 with LRN (each LRN shifts the later `nn.Sequential` indices by one), else 0.
    shift: usize,
}

impl AlexNet {
    /// Builds the network, taking parameters from `vb` under the `nn.Sequential` indices.
    pub fn new(cfg: AlexNetConfig, vb: VarBuilder) -> Result<Self> {
        // Index of each entry: conv1 0, relu1 1, [norm1], pool1, conv2, relu2, [norm2], pool2,
        // conv3, relu3, conv4, relu4, conv5, relu5, pool3, flatten, fc1, fc2, fc3.
        let s = usize::from(cfg.lrn);
        let conv = |i: usize, c_in, c_out, k, stride, pad| {
            conv2d(
                c_in,
                c_out,
                k,
                Conv2dConfig::default().stride(stride).padding(pad),
                vb.pp(i),
            )
        };
        let pool = |i: usize| MaxPool2d::with_stride(3, 2).named(i.to_string());
        let norm = |i: usize| {
            cfg.lrn
                .then(|| LocalResponseNorm::alexnet().named(i.to_string()))
        };
        Ok(Self {
            conv1: conv(0, 3, 96, 11, 4, 0)?,
            relu1: Relu,
            norm1: norm(2),
            pool1: pool(2 + s),
            conv2: conv(3 + s, 96, 256, 5, 1, 2)?,
            relu2: Relu,
            norm2: norm(5 + s),
            pool2: pool(5 + 2 * s),
            conv3: conv(6 + 2 * s, 256, 384, 3, 1, 1)?,
            relu3: Relu,
            conv4: conv(8 + 2 * s, 384, 384, 3, 1, 1)?,
            relu4: Relu,
            conv5: conv(10 + 2 * s, 384, 256, 3, 1, 1)?,
            relu5: Relu,
            pool3: pool(12 + 2 * s),
            flatten: Flatten,
            fc1: linear(256 * 6 * 6, 4096, vb.pp(14 + 2 * s))?,
            fc2: linear(4096, 4096, vb.pp(15 + 2 * s))?,
            fc3: linear(4096, cfg.num_classes, vb.pp(16 + 2 * s))?,
            shift: s,
        })
    }
}

impl AlexNet {
    /// Runs a parameter-free layer under its `nn.Sequential` index (so summaries and errors
    /// call it `"1"`, `"13"`, … as PyTorch would).
    fn at(&self, index: usize, layer: &impl Module, x: &Tensor) -> Result<Tensor> {
        with_scope(index.to_string(), || layer.forward(x))
    }
}

impl ModuleT for AlexNet {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let s = self.shift;
        let x = self.at(1, &self.relu1, &self.conv1.forward(x)?)?; // [b, 96, 55, 55]
        let x = match &self.norm1 {
            Some(n) => n.forward(&x)?,
            None => x,
        };
        let x = self.pool1.forward(&x)?; // [b, 96, 27, 27]
        let x = self.at(4 + s, &self.relu2, &self.conv2.forward(&x)?)?; // [b, 256, 27, 27]
        let x = match &self.norm2 {
            Some(n) => n.forward(&x)?,
            None => x,
        };
        let x = self.pool2.forward(&x)?; // [b, 256, 13, 13]
        let x = self.at(7 + 2 * s, &self.relu3, &self.conv3.forward(&x)?)?; // [b, 384, 13, 13]
        let x = self.at(9 + 2 * s, &self.relu4, &self.conv4.forward(&x)?)?; // [b, 384, 13, 13]
        let x = self.at(11 + 2 * s, &self.relu5, &self.conv5.forward(&x)?)?; // [b, 256, 13, 13]
        let x = self.pool3.forward(&x)?; // [b, 256, 6, 6]
        let x = self.at(13 + 2 * s, &self.flatten, &x)?; // [b, 9216]
        let x = self.fc1.forward(&x)?; // [b, 4096]
        let x = self.fc2.forward(&x)?; // [b, 4096]
        self.fc3.forward(&x) // [b, 1000]
    }
}

impl Layer for AlexNet {
    fn kind(&self) -> &'static str {
        "Sequential"
    }
    /// The `nn.Sequential` entries, named by their index.
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        let mut layers: Vec<&dyn Layer> = vec![&self.conv1, &self.relu1];
        layers.extend(self.norm1.as_ref().map(|n| n as &dyn Layer));
        layers.extend([&self.pool1 as &dyn Layer, &self.conv2, &self.relu2]);
        layers.extend(self.norm2.as_ref().map(|n| n as &dyn Layer));
        layers.extend([
            &self.pool2 as &dyn Layer,
            &self.conv3,
            &self.relu3,
            &self.conv4,
            &self.relu4,
            &self.conv5,
            &self.relu5,
            &self.pool3,
            &self.flatten,
            &self.fc1,
            &self.fc2,
            &self.fc3,
        ]);
        layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l))
            .collect()
    }
}

impl Model for AlexNet {
    fn info(&self) -> &'static ModelInfo {
        &ALEXNET
    }
}

/// Configuration of [`AlexNetTorchvision`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlexNetTorchvisionConfig {
    /// Dropout probability before `classifier.1` and `classifier.4` (0.5).
    pub dropout: f32,
    /// Outputs of `classifier.6` (1000).
    pub num_classes: usize,
}

impl Default for AlexNetTorchvisionConfig {
    /// torchvision's `alexnet()`: dropout 0.5, 1000 classes.
    fn default() -> Self {
        Self {
            dropout: 0.5,
            num_classes: 1000,
        }
    }
}

/// `torchvision.models.AlexNet`: `features`, `avgpool`, `classifier`.
#[derive(Clone, Debug)]
pub struct AlexNetTorchvision {
    features: Sequential,
    avgpool: AdaptiveAvgPool2d,
    classifier: Sequential,
}

impl AlexNetTorchvision {
    /// Builds the network, taking parameters from `vb`.
    pub fn new(cfg: AlexNetTorchvisionConfig, vb: VarBuilder) -> Result<Self> {
        let f = vb.pp("features");
        let c = |stride: usize, pad: usize| Conv2dConfig::default().stride(stride).padding(pad);
        let pool = || MaxPool2d::with_stride(3, 2);
        let features = Sequential::new()
            .add("0", conv2d(3, 64, 11, c(4, 2), f.pp(0))?) // [b, 64, 55, 55]
            .add("1", Relu)
            .add("2", pool()) // [b, 64, 27, 27]
            .add("3", conv2d(64, 192, 5, c(1, 2), f.pp(3))?) // [b, 192, 27, 27]
            .add("4", Relu)
            .add("5", pool()) // [b, 192, 13, 13]
            .add("6", conv2d(192, 384, 3, c(1, 1), f.pp(6))?) // [b, 384, 13, 13]
            .add("7", Relu)
            .add("8", conv2d(384, 256, 3, c(1, 1), f.pp(8))?) // [b, 256, 13, 13]
            .add("9", Relu)
            .add("10", conv2d(256, 256, 3, c(1, 1), f.pp(10))?) // [b, 256, 13, 13]
            .add("11", Relu)
            .add("12", pool()); // [b, 256, 6, 6]
        let k = vb.pp("classifier");
        let classifier = Sequential::new()
            .named("classifier")
            .add("0", Dropout::new(cfg.dropout)?)
            .add("1", linear(256 * 6 * 6, 4096, k.pp(1))?)
            .add("2", Relu)
            .add("3", Dropout::new(cfg.dropout)?)
            .add("4", linear(4096, 4096, k.pp(4))?)
            .add("5", Relu)
            .add("6", linear(4096, cfg.num_classes, k.pp(6))?);
        Ok(Self {
            features,
            avgpool: AdaptiveAvgPool2d::new([6, 6]).named("avgpool"),
            classifier,
        })
    }
}

impl ModuleT for AlexNetTorchvision {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.features.forward_t(x, train)?; // [b, 256, 6, 6] for 224x224
        let x = self.avgpool.forward(&x)?; // [b, 256, 6, 6]
        let x = x.flatten_from(1)?; // [b, 9216]
        self.classifier.forward_t(&x, train) // [b, 1000]
    }
}

impl Layer for AlexNetTorchvision {
    fn kind(&self) -> &'static str {
        "AlexNet"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("features".into(), &self.features as &dyn Layer),
            ("avgpool".into(), &self.avgpool),
            ("classifier".into(), &self.classifier),
        ]
    }
}

impl Model for AlexNetTorchvision {
    fn info(&self) -> &'static ModelInfo {
        &ALEXNET_TORCHVISION
    }
}
