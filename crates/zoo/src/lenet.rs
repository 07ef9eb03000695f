//! LeNet-5 as seed 000 writes it (LeCun et al. 1998, "Gradient-based learning applied to
//! document recognition"), trained there on Fashion-MNIST: SGD lr 0.01, batch 256, 20 epochs,
//! **77.9 %** test accuracy.
//!
//! The article's variant: average pooling, **no activation after the convolutions**, ReLU
//! between the fully connected layers, and 320/80 hidden units (not the paper's 120/84).
//! 111,302 parameters.

use crate::registry::{ModelInfo, LENET5, LENET5_BN};
use crate::Model;
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use convnets_layers::{
    batch_norm2d, conv2d, linear, AvgPool2d, BatchNorm2d, BatchNormConfig, Conv2d, Conv2dConfig,
    Layer, Linear, MaxPool2d,
};

/// LeNet-5 (seed 000). Parameter names: `conv1.weight`, `conv1.bias`, `conv2.*`, `fc1.*`,
/// `fc2.*`, `fc3.*`.
#[derive(Clone, Debug)]
pub struct LeNet5 {
    conv1: Conv2d,
    pool1: AvgPool2d,
    conv2: Conv2d,
    pool2: AvgPool2d,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl LeNet5 {
    /// Builds the network (10 classes, as the article), taking parameters from `vb`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Self::with_classes(10, vb)
    }

    /// Builds the network with `classes` outputs (a new head for fine-tuning), taking
    /// parameters from `vb`.
    pub fn with_classes(classes: usize, vb: VarBuilder) -> Result<Self> {
        let c = Conv2dConfig::default();
        Ok(Self {
            conv1: conv2d(1, 6, 5, c, vb.pp("conv1"))?,
            pool1: AvgPool2d::with_stride(2, 2).named("pool1"),
            conv2: conv2d(6, 16, 5, c, vb.pp("conv2"))?,
            pool2: AvgPool2d::with_stride(2, 2).named("pool2"),
            fc1: linear(4 * 4 * 16, 320, vb.pp("fc1"))?,
            fc2: linear(320, 80, vb.pp("fc2"))?,
            fc3: linear(80, classes, vb.pp("fc3"))?,
        })
    }
}

impl ModuleT for LeNet5 {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        // conv [b, 6, 24, 24] then pool [b, 6, 12, 12]; one folded convolution in inference
        let x = self.conv1.forward_avg_pool(x, &self.pool1)?;
        // conv [b, 16, 8, 8] then pool [b, 16, 4, 4]
        let x = self.conv2.forward_avg_pool(&x, &self.pool2)?;
        let x = x.flatten_from(1)?; // [b, 256]
        let x = convnets_layers::relu(&self.fc1.forward(&x)?)?; // [b, 320]
        let x = convnets_layers::relu(&self.fc2.forward(&x)?)?; // [b, 80]
        self.fc3.forward(&x) // [b, 10]
    }
}

impl Layer for LeNet5 {
    fn kind(&self) -> &'static str {
        "LeNet5"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("conv1".into(), &self.conv1 as &dyn Layer),
            ("pool1".into(), &self.pool1),
            ("conv2".into(), &self.conv2),
            ("pool2".into(), &self.pool2),
            ("fc1".into(), &self.fc1),
            ("fc2".into(), &self.fc2),
            ("fc3".into(), &self.fc3),
        ]
    }
}

impl Model for LeNet5 {
    fn info(&self) -> &'static ModelInfo {
        &LENET5
    }
}

/// Seed 000's LeNet-5 with the two upgrades that lift it past 90 % on Fashion-MNIST (the
/// README's "better recipe"): batch normalization followed by ReLU after each convolution, and
/// max pooling instead of average pooling. The head (256-320-80-10 with ReLU) is the
/// article's. Parameter names: `conv1.*`, `bn1.*`, `conv2.*`, `bn2.*`, `fc1.*`, `fc2.*`,
/// `fc3.*`; 111,346 parameters (plus the batch norms' running statistics).
///
/// PyTorch twin: `LeNet5Bn` in `scripts/torch_zoo_reference.py`.
#[derive(Clone, Debug)]
pub struct LeNet5Bn {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    pool1: MaxPool2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    pool2: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl LeNet5Bn {
    /// Builds the network (10 classes, as the article), taking parameters from `vb`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Self::with_classes(10, vb)
    }

    /// Builds the network with `classes` outputs (a new head for fine-tuning), taking
    /// parameters from `vb`.
    pub fn with_classes(classes: usize, vb: VarBuilder) -> Result<Self> {
        let c = Conv2dConfig::default();
        let bn = BatchNormConfig::default();
        Ok(Self {
            conv1: conv2d(1, 6, 5, c, vb.pp("conv1"))?,
            bn1: batch_norm2d(6, bn, vb.pp("bn1"))?,
            pool1: MaxPool2d::new(2).named("pool1"),
            conv2: conv2d(6, 16, 5, c, vb.pp("conv2"))?,
            bn2: batch_norm2d(16, bn, vb.pp("bn2"))?,
            pool2: MaxPool2d::new(2).named("pool2"),
            fc1: linear(4 * 4 * 16, 320, vb.pp("fc1"))?,
            fc2: linear(320, 80, vb.pp("fc2"))?,
            fc3: linear(80, classes, vb.pp("fc3"))?,
        })
    }
}

impl ModuleT for LeNet5Bn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.conv1.forward(x)?; // [b, 6, 24, 24]
        let x = self.bn1.forward_relu_t(&x, train)?;
        let x = self.pool1.forward(&x)?; // [b, 6, 12, 12]
        let x = self.conv2.forward(&x)?; // [b, 16, 8, 8]
        let x = self.bn2.forward_relu_t(&x, train)?;
        let x = self.pool2.forward(&x)?; // [b, 16, 4, 4]
        let x = x.flatten_from(1)?; // [b, 256]
        let x = convnets_layers::relu(&self.fc1.forward(&x)?)?; // [b, 320]
        let x = convnets_layers::relu(&self.fc2.forward(&x)?)?; // [b, 80]
        self.fc3.forward(&x) // [b, 10]
    }
}

impl Layer for LeNet5Bn {
    fn kind(&self) -> &'static str {
        "LeNet5Bn"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("conv1".into(), &self.conv1 as &dyn Layer),
            ("bn1".into(), &self.bn1),
            ("pool1".into(), &self.pool1),
            ("conv2".into(), &self.conv2),
            ("bn2".into(), &self.bn2),
            ("pool2".into(), &self.pool2),
            ("fc1".into(), &self.fc1),
            ("fc2".into(), &self.fc2),
            ("fc3".into(), &self.fc3),
        ]
    }
}

impl Model for LeNet5Bn {
    fn info(&self) -> &'static ModelInfo {
        &LENET5_BN
    }
}
