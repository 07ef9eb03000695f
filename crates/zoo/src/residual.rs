//! The residual network of seed 001 ("卷积神经网络（进阶）": He et al. 2016's residual block
//! on MNIST).
//!
//! [`ResidualBlock`]: `y = relu(x + conv2(relu(conv1(x))))`, both convolutions 3x3 with
//! padding 1 and as many output channels as input channels, so `x` and the branch add up.
//!
//! [`ResidualNet`] (the article's `Net`): conv1 5x5 (1 → 16) → ReLU → max pool 2 → `rblock1`
//! (16) → conv2 5x5 (16 → 32) → ReLU → max pool 2 → `rblock2` (32) → flatten (32·4·4 = 512) →
//! fc (512 → 10). The article's code registers `conv1`, `conv2` before `rblock1`, `rblock2`,
//! which fixes the `state_dict()` order kept here. **41,514** parameters. The article trains it
//! on MNIST (its plot is an image, no number).

use crate::registry::{ModelInfo, RESIDUAL_NET};
use crate::Model;
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use convnets_layers::{conv2d, linear, Conv2d, Conv2dConfig, Layer, Linear, MaxPool2d};

/// Seed 001's residual block over `channels` channels.
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// let store = convnets_layers::ParamStore::new(0, &Device::Cpu);
/// let block = convnets_zoo::ResidualBlock::new(16, store.vb().pp("rblock1"))?;
/// // With zero weights the branch is 0 and the block is relu(x).
/// for v in store.vars() {
///     v.set(&v.zeros_like()?)?;
/// }
/// let x = Tensor::new(&[-1f32, 2.], &Device::Cpu)?.reshape((1, 1, 1, 2))?.repeat((1, 16, 1, 1))?;
/// assert_eq!(block.forward(&x)?.flatten_all()?.to_vec1::<f32>()?[..2], [0., 2.]);
/// assert_eq!(store.names(), ["rblock1.conv1.weight", "rblock1.conv1.bias", "rblock1.conv2.weight", "rblock1.conv2.bias"]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ResidualBlock {
    conv1: Conv2d,
    conv2: Conv2d,
}

impl ResidualBlock {
    /// A block for `channels` channels, taking parameters from `vb`.
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let c = Conv2dConfig::default().padding(1);
        Ok(Self {
            conv1: conv2d(channels, channels, 3, c, vb.pp("conv1"))?,
            conv2: conv2d(channels, channels, 3, c, vb.pp("conv2"))?,
        })
    }
}

impl Module for ResidualBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv1.forward_relu(x)?; // [b, c, h, w]
        let y = self.conv2.forward(&y)?; // [b, c, h, w]
        convnets_layers::add_relu(x, &y) // [b, c, h, w]
    }
}

impl Layer for ResidualBlock {
    fn kind(&self) -> &'static str {
        "ResidualBlock"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("conv1".into(), &self.conv1 as &dyn Layer),
            ("conv2".into(), &self.conv2),
        ]
    }
}

/// Seed 001's residual network for MNIST (1x28x28 → 10).
#[derive(Clone, Debug)]
pub struct ResidualNet {
    conv1: Conv2d,
    conv2: Conv2d,
    mp: MaxPool2d,
    rblock1: ResidualBlock,
    rblock2: ResidualBlock,
    fc: Linear,
}

impl ResidualNet {
    /// Builds the network (10 classes, as the article), taking parameters from `vb`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Self::with_classes(10, vb)
    }

    /// Builds the network with `classes` outputs (a new head for fine-tuning), taking
    /// parameters from `vb`.
    pub fn with_classes(classes: usize, vb: VarBuilder) -> Result<Self> {
        let c = Conv2dConfig::default();
        // Field order = the article's registration order = the state_dict order.
        Ok(Self {
            conv1: conv2d(1, 16, 5, c, vb.pp("conv1"))?,
            conv2: conv2d(16, 32, 5, c, vb.pp("conv2"))?,
            mp: MaxPool2d::new(2).named("mp"),
            rblock1: ResidualBlock::new(16, vb.pp("rblock1"))?,
            rblock2: ResidualBlock::new(32, vb.pp("rblock2"))?,
            fc: linear(512, classes, vb.pp("fc"))?,
        })
    }
}

impl ModuleT for ResidualNet {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        // mp(relu(conv(x))), one op each.
        let x = self.conv1.forward_relu_max_pool(x, &self.mp)?; // [b, 16, 12, 12]
        let x = self.rblock1.forward(&x)?; // [b, 16, 12, 12]
        let x = self.conv2.forward_relu_max_pool(&x, &self.mp)?; // [b, 32, 4, 4]
        let x = self.rblock2.forward(&x)?; // [b, 32, 4, 4]
        let x = x.flatten_from(1)?; // [b, 512]
        self.fc.forward(&x) // [b, 10]
    }
}

impl Layer for ResidualNet {
    fn kind(&self) -> &'static str {
        "Net"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("conv1".into(), &self.conv1 as &dyn Layer),
            ("conv2".into(), &self.conv2),
            ("mp".into(), &self.mp),
            ("rblock1".into(), &self.rblock1),
            ("rblock2".into(), &self.rblock2),
            ("fc".into(), &self.fc),
        ]
    }
}

impl Model for ResidualNet {
    fn info(&self) -> &'static ModelInfo {
        &RESIDUAL_NET
    }
}
