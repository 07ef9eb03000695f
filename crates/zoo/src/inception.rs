//! The Inception network of seed 001 ("卷积神经网络（进阶）": GoogLeNet's Inception module on
//! MNIST; Szegedy et al. 2015, "Going Deeper with Convolutions").
//!
//! [`InceptionA`] has four branches whose outputs keep the input's height and width and are
//! concatenated along the channels, in this order: 1x1 conv (16); 1x1 (16) → 5x5 (24, padding
//! 2); 1x1 (16) → 3x3 (24, padding 1) → 3x3 (24, padding 1); 3x3 average pooling (stride 1,
//! padding 1, padded zeros counted as PyTorch's `F.avg_pool2d` does by default) → 1x1 (24):
//! 16 + 24 + 24 + 24 = **88** channels. The article motivates the 1x1 convolutions with the
//! cost of a 5x5 convolution 192 → 32 on 28x28: 120,422,400 multiplies, 12,443,648 with a 1x1
//! 192 → 16 bottleneck first.
//!
//! [`InceptionNet`] (the article's `Net`): conv1 5x5 (1 → 10) → max pool 2 → ReLU →
//! `incep1` (10 → 88) → conv2 5x5 (88 → 20) → max pool 2 → ReLU → `incep2` (20 → 88) →
//! flatten (88·4·4 = 1408) → fc (1408 → 10). The article's code registers `conv1`, `conv2`
//! before `incep1`, `incep2`, which fixes the `state_dict()` order kept here. **97,298**
//! parameters. The article trains it on MNIST (its accuracy plot is an image, no number).

use crate::registry::{ModelInfo, INCEPTION_NET};
use crate::Model;
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use convnets_layers::ops::Pool2dParams;
use convnets_layers::{conv2d, linear, AvgPool2d, Conv2d, Conv2dConfig, Layer, Linear, MaxPool2d};

/// Output channels of an [`InceptionA`] block.
pub const INCEPTION_A_CHANNELS: usize = 16 + 24 + 24 + 24;

/// Seed 001's Inception module: four branches concatenated to 88 channels.
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// let store = convnets_layers::ParamStore::new(0, &Device::Cpu);
/// let block = convnets_zoo::InceptionA::new(10, store.vb().pp("incep1"))?;
/// let x = Tensor::zeros((2, 10, 12, 12), DType::F32, &Device::Cpu)?;
/// assert_eq!(block.forward(&x)?.dims(), &[2, 88, 12, 12]);
/// assert_eq!(store.num_params(), 19_104);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct InceptionA {
    branch1x1: Conv2d,
    branch5x5_1: Conv2d,
    branch5x5_2: Conv2d,
    branch3x3_1: Conv2d,
    branch3x3_2: Conv2d,
    branch3x3_3: Conv2d,
    avg_pool: AvgPool2d,
    branch_pool: Conv2d,
}

impl InceptionA {
    /// A block for `in_channels` input channels, taking parameters from `vb`.
    pub fn new(in_channels: usize, vb: VarBuilder) -> Result<Self> {
        let c = Conv2dConfig::default();
        let pool = Pool2dParams {
            padding: [1, 1],
            ..Pool2dParams::square(3, 1)
        };
        Ok(Self {
            branch1x1: conv2d(in_channels, 16, 1, c, vb.pp("branch1x1"))?,
            branch5x5_1: conv2d(in_channels, 16, 1, c, vb.pp("branch5x5_1"))?,
            branch5x5_2: conv2d(16, 24, 5, c.padding(2), vb.pp("branch5x5_2"))?,
            branch3x3_1: conv2d(in_channels, 16, 1, c, vb.pp("branch3x3_1"))?,
            branch3x3_2: conv2d(16, 24, 3, c.padding(1), vb.pp("branch3x3_2"))?,
            branch3x3_3: conv2d(24, 24, 3, c.padding(1), vb.pp("branch3x3_3"))?,
            avg_pool: AvgPool2d::from_params(pool).named(format!("{}.avg_pool", vb.prefix())),
            branch_pool: conv2d(in_channels, 24, 1, c, vb.pp("branch_pool"))?,
        })
    }
}

impl Module for InceptionA {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let branch1x1 = self.branch1x1.forward(x)?; // [b, 16, h, w]
        let branch5x5 = self.branch5x5_2.forward(&self.branch5x5_1.forward(x)?)?; // [b, 24, h, w]
        let branch3x3 = self.branch3x3_1.forward(x)?; // [b, 16, h, w]
        let branch3x3 = self
            .branch3x3_3
            .forward(&self.branch3x3_2.forward(&branch3x3)?)?; // [b, 24, h, w]
        let branch_pool = self.branch_pool.forward(&self.avg_pool.forward(x)?)?; // [b, 24, h, w]
        Tensor::cat(&[branch1x1, branch5x5, branch3x3, branch_pool], 1) // [b, 88, h, w]
    }
}

impl Layer for InceptionA {
    fn kind(&self) -> &'static str {
        "InceptionA"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("branch1x1".into(), &self.branch1x1 as &dyn Layer),
            ("branch5x5_1".into(), &self.branch5x5_1),
            ("branch5x5_2".into(), &self.branch5x5_2),
            ("branch3x3_1".into(), &self.branch3x3_1),
            ("branch3x3_2".into(), &self.branch3x3_2),
            ("branch3x3_3".into(), &self.branch3x3_3),
            ("branch_pool".into(), &self.branch_pool),
        ]
    }
}

/// Seed 001's Inception network for MNIST (1x28x28 → 10).
#[derive(Clone, Debug)]
pub struct InceptionNet {
    conv1: Conv2d,
    conv2: Conv2d,
    incep1: InceptionA,
    incep2: InceptionA,
    mp: MaxPool2d,
    fc: Linear,
}

impl InceptionNet {
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
            conv1: conv2d(1, 10, 5, c, vb.pp("conv1"))?,
            conv2: conv2d(INCEPTION_A_CHANNELS, 20, 5, c, vb.pp("conv2"))?,
            incep1: InceptionA::new(10, vb.pp("incep1"))?,
            incep2: InceptionA::new(20, vb.pp("incep2"))?,
            mp: MaxPool2d::new(2).named("mp"),
            fc: linear(INCEPTION_A_CHANNELS * 4 * 4, classes, vb.pp("fc"))?,
        })
    }
}

impl InceptionNet {
    /// `relu(mp(conv(x)))`, the article's order, as one op: ReLU and a max pool commute (ReLU
    /// keeps the order of the values and maps every non-positive one to 0), so this is
    /// `mp(relu(conv(x)))` with the same values and gradients, which
    /// [`Conv2d::forward_relu_max_pool`] fuses. While a summary is traced, the article's three
    /// layers in its order.
    fn conv_max_pool_relu(&self, conv: &Conv2d, x: &Tensor) -> Result<Tensor> {
        match conv.forward_relu_max_pool_t(x, &self.mp, true) {
            Some(y) => y,
            None => convnets_layers::relu(&self.mp.forward(&conv.forward(x)?)?),
        }
    }
}

impl ModuleT for InceptionNet {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let x = self.conv_max_pool_relu(&self.conv1, x)?; // [b, 10, 12, 12]
        let x = self.incep1.forward(&x)?; // [b, 88, 12, 12]
        let x = self.conv_max_pool_relu(&self.conv2, &x)?; // [b, 20, 4, 4]
        let x = self.incep2.forward(&x)?; // [b, 88, 4, 4]
        let x = x.flatten_from(1)?; // [b, 1408]
        self.fc.forward(&x) // [b, 10]
    }
}

impl Layer for InceptionNet {
    fn kind(&self) -> &'static str {
        "Net"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("conv1".into(), &self.conv1 as &dyn Layer),
            ("conv2".into(), &self.conv2),
            ("incep1".into(), &self.incep1),
            ("incep2".into(), &self.incep2),
            ("mp".into(), &self.mp),
            ("fc".into(), &self.fc),
        ]
    }
}

impl Model for InceptionNet {
    fn info(&self) -> &'static ModelInfo {
        &INCEPTION_NET
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use convnets_layers::ParamStore;

    /// The fused `mp(relu(conv))` against the article's `relu(mp(conv))` as three ops: the
    /// same logits and the same gradient for every parameter and for the input, bit for bit
    /// (a pool window of non-positive values included: the input has both signs).
    #[test]
    fn fused_conv_pool_relu_is_the_articles_order() -> Result<()> {
        let dev = Device::Cpu;
        let store = ParamStore::new(3, &dev);
        let net = InceptionNet::new(store.vb())?;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (3, 1, 28, 28), &dev)?)?;
        let r = Tensor::randn(0f32, 1., (3, 10), &dev)?;
        let unfused = |x: &Tensor| -> Result<Tensor> {
            let x = convnets_layers::relu(&net.mp.forward(&net.conv1.forward(x)?)?)?;
            let x = net.incep1.forward(&x)?;
            let x = convnets_layers::relu(&net.mp.forward(&net.conv2.forward(&x)?)?)?;
            let x = net.incep2.forward(&x)?;
            net.fc.forward(&x.flatten_from(1)?)
        };
        let fused = net.forward_t(x.as_tensor(), true)?;
        let three = unfused(x.as_tensor())?;
        assert_eq!(
            fused.flatten_all()?.to_vec1::<f32>()?,
            three.flatten_all()?.to_vec1::<f32>()?
        );
        let g1 = (fused * &r)?.sum_all()?.backward()?;
        let g2 = (three * &r)?.sum_all()?.backward()?;
        let mut vars = store.vars();
        vars.push(x);
        for v in &vars {
            let a = g1.get(v).expect("a gradient (fused)");
            let b = g2.get(v).expect("a gradient (three ops)");
            let (a, b) = (a.to_dtype(DType::F32)?, b.to_dtype(DType::F32)?);
            assert_eq!(
                a.flatten_all()?.to_vec1::<f32>()?,
                b.flatten_all()?.to_vec1::<f32>()?,
                "{:?}",
                v.dims()
            );
        }
        Ok(())
    }
}
