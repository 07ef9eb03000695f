//! GoogLeNet (Szegedy et al. 2015, "Going Deeper with Convolutions"; Inception v1) in
//! torchvision's layout (`torchvision.models.GoogLeNet`), the full-size network behind seed
//! 001's Inception module.
//!
//! torchvision's version, kept exactly so that its weights load by name: every convolution is
//! a `BasicConv2d` (conv without bias → BatchNorm2d(eps 0.001) → ReLU; the paper has no batch
//! norm), the "5x5" branch uses a 3x3 kernel (a known torchvision quirk kept for its
//! weights), max pools use `ceil_mode=True`, and the head is adaptive average pooling →
//! flatten → dropout 0.2 → Linear(1024, classes). The two auxiliary classifiers (after 4a and
//! 4d: adaptive average pool 4x4 → BasicConv2d 1x1 128 → Linear(2048, 1024) → ReLU → dropout
//! 0.7 → Linear(1024, classes)) exist only with [`GoogLeNetConfig::aux_logits`] (default off:
//! no `aux1.*` / `aux2.*` parameters) and only run in training.
//!
//! | stage | output for 224x224 |
//! | --- | --- |
//! | conv1 7x7/2 (64), maxpool1 3/2 | 64x112x112, 64x56x56 |
//! | conv2 1x1 (64), conv3 3x3 (192), maxpool2 3/2 | 192x56x56, 192x28x28 |
//! | inception3a (256), 3b (480), maxpool3 | 480x28x28, 480x14x14 |
//! | inception4a (512) … 4d (528), 4e (832), maxpool4 2/2 | 832x14x14, 832x7x7 |
//! | inception5a (832), 5b (1024), avgpool | 1024x7x7, 1024x1x1 |
//! | dropout, fc | 1000 |
//!
//! **6,624,904** parameters without the auxiliary classifiers (torchvision's
//! `GoogLeNet_Weights.IMAGENET1K_V1` count), 13,004,888 with them. The adaptive pooling lets it
//! run on inputs from 15x15 up (e.g. 32x32 CIFAR images).
//!
//! Initialisation as torchvision's (`init_weights=True`): convolution and `Linear` weights
//! normal with std 0.01, batch norm weight 1 and bias 0, `Linear` biases PyTorch's default.

use crate::registry::{ModelInfo, GOOGLENET};
use crate::Model;
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use convnets_layers::init::pytorch_default;
use convnets_layers::ops::Pool2dParams;
use convnets_layers::{
    batch_norm2d, AdaptiveAvgPool2d, BatchNorm2d, BatchNormConfig, Conv2d, Conv2dConfig, Dropout,
    Layer, Linear, MaxPool2d, Sequential,
};
use serde::{Deserialize, Serialize};

/// Configuration of [`GoogLeNet`] (torchvision's constructor arguments).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GoogLeNetConfig {
    /// Outputs of `fc` (and of the auxiliary classifiers).
    pub num_classes: usize,
    /// Build the auxiliary classifiers `aux1` (after inception4a) and `aux2` (after 4d).
    pub aux_logits: bool,
    /// Map inputs normalised with ImageNet's mean/std to the (x - 0.5) / 0.5 normalisation of
    /// Google's original weights (torchvision sets it when loading those weights).
    pub transform_input: bool,
    /// Dropout probability before `fc`.
    pub dropout: f32,
    /// Dropout probability inside the auxiliary classifiers.
    pub dropout_aux: f32,
}

impl Default for GoogLeNetConfig {
    /// [`GoogLeNetConfig::googlenet`].
    fn default() -> Self {
        Self::googlenet()
    }
}

impl GoogLeNetConfig {
    /// torchvision's `googlenet()` trained from scratch without the auxiliary heads: 1000
    /// classes, no input transform, dropout 0.2.
    pub fn googlenet() -> Self {
        Self {
            num_classes: 1000,
            aux_logits: false,
            transform_input: false,
            dropout: 0.2,
            dropout_aux: 0.7,
        }
    }
    /// The same with the two auxiliary classifiers (the paper's training setup).
    pub fn with_aux() -> Self {
        Self {
            aux_logits: true,
            ..Self::googlenet()
        }
    }
}

/// torchvision's GoogLeNet initialisation of every convolution and `Linear` weight:
/// `trunc_normal_(std=0.01, a=-2, b=2)` (the truncation at ±200 σ never bites). Biases and
/// batch norm keep their defaults.
const TORCHVISION_INIT: Init = Init::Randn {
    mean: 0.0,
    stdev: 0.01,
};

/// A `Linear` with [`TORCHVISION_INIT`] weights and PyTorch's default bias.
fn linear_tv(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Linear> {
    let w = vb.get_with_hints((c_out, c_in), "weight", TORCHVISION_INIT)?;
    let b = vb.get_with_hints(c_out, "bias", pytorch_default(c_in))?;
    Ok(Linear::new(w, Some(b)).named(vb.prefix()))
}

/// torchvision's `BasicConv2d`: convolution without bias → BatchNorm2d (eps 0.001) → ReLU.
#[derive(Clone, Debug)]
pub struct BasicConv2d {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl BasicConv2d {
    /// A `kernel`x`kernel` block with `stride` and `padding`, parameters `conv.weight`, `bn.*`.
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let cfg = Conv2dConfig::default()
            .stride(stride)
            .padding(padding)
            .bias(false);
        let bn = BatchNormConfig {
            eps: 1e-3,
            ..Default::default()
        };
        let vc = vb.pp("conv");
        let w = vc.get_with_hints((c_out, c_in, kernel, kernel), "weight", TORCHVISION_INIT)?;
        Ok(Self {
            conv: Conv2d::new(vc.prefix(), w, None, cfg),
            bn: batch_norm2d(c_out, bn, vb.pp("bn"))?,
        })
    }
}

impl ModuleT for BasicConv2d {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_conv_t(&self.conv, x, train, true)
    }
}

impl Layer for BasicConv2d {
    fn kind(&self) -> &'static str {
        "BasicConv2d"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("conv".into(), &self.conv as &dyn Layer),
            ("bn".into(), &self.bn),
        ]
    }
}

/// torchvision's `Inception` block: four branches concatenated on the channels.
#[derive(Clone, Debug)]
pub struct Inception {
    branch1: BasicConv2d,
    branch2: Sequential,
    branch3: Sequential,
    branch4: Sequential,
}

impl Inception {
    /// torchvision's `Inception(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)`;
    /// `ch` holds the six widths after `c_in`. Output: `ch1x1 + ch3x3 + ch5x5 + pool_proj`.
    pub fn new(c_in: usize, ch: [usize; 6], vb: VarBuilder) -> Result<Self> {
        let [ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj] = ch;
        let (b2, b3, b4) = (vb.pp("branch2"), vb.pp("branch3"), vb.pp("branch4"));
        let pool = Pool2dParams {
            padding: [1, 1],
            ceil_mode: true,
            ..Pool2dParams::square(3, 1)
        };
        Ok(Self {
            branch1: BasicConv2d::new(c_in, ch1x1, 1, 1, 0, vb.pp("branch1"))?,
            branch2: Sequential::new()
                .named(b2.prefix())
                .add("0", BasicConv2d::new(c_in, ch3x3red, 1, 1, 0, b2.pp(0))?)
                .add("1", BasicConv2d::new(ch3x3red, ch3x3, 3, 1, 1, b2.pp(1))?),
            // torchvision: "kernel_size=3 instead of kernel_size=5 is a known bug".
            branch3: Sequential::new()
                .named(b3.prefix())
                .add("0", BasicConv2d::new(c_in, ch5x5red, 1, 1, 0, b3.pp(0))?)
                .add("1", BasicConv2d::new(ch5x5red, ch5x5, 3, 1, 1, b3.pp(1))?),
            branch4: Sequential::new()
                .named(b4.prefix())
                .add("0", MaxPool2d::from_params(pool))
                .add("1", BasicConv2d::new(c_in, pool_proj, 1, 1, 0, b4.pp(1))?),
        })
    }
}

impl ModuleT for Inception {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let b1 = self.branch1.forward_t(x, train)?; // [b, ch1x1, h, w]
        let b2 = self.branch2.forward_t(x, train)?; // [b, ch3x3, h, w]
        let b3 = self.branch3.forward_t(x, train)?; // [b, ch5x5, h, w]
        let b4 = self.branch4.forward_t(x, train)?; // [b, pool_proj, h, w]
        Tensor::cat(&[b1, b2, b3, b4], 1)
    }
}

impl Layer for Inception {
    fn kind(&self) -> &'static str {
        "Inception"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("branch1".into(), &self.branch1 as &dyn Layer),
            ("branch2".into(), &self.branch2),
            ("branch3".into(), &self.branch3),
            ("branch4".into(), &self.branch4),
        ]
    }
}

/// torchvision's `InceptionAux`: an auxiliary classifier on a 14x14 feature map.
#[derive(Clone, Debug)]
pub struct InceptionAux {
    pool: AdaptiveAvgPool2d,
    conv: BasicConv2d,
    fc1: Linear,
    fc2: Linear,
    dropout: Dropout,
}

impl InceptionAux {
    /// An auxiliary head on `c_in` channels.
    pub fn new(c_in: usize, num_classes: usize, dropout: f32, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            pool: AdaptiveAvgPool2d::new([4, 4]).named(format!("{}.avg_pool", vb.prefix())),
            conv: BasicConv2d::new(c_in, 128, 1, 1, 0, vb.pp("conv"))?,
            fc1: linear_tv(128 * 4 * 4, 1024, vb.pp("fc1"))?,
            fc2: linear_tv(1024, num_classes, vb.pp("fc2"))?,
            dropout: Dropout::new(dropout)?.named(format!("{}.dropout", vb.prefix())),
        })
    }
}

impl ModuleT for InceptionAux {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.pool.forward(x)?; // [b, c, 4, 4]
        let x = self.conv.forward_t(&x, train)?; // [b, 128, 4, 4]
        let x = x.flatten_from(1)?; // [b, 2048]
        let x = convnets_layers::relu(&self.fc1.forward(&x)?)?; // [b, 1024]
        let x = self.dropout.forward_t(&x, train)?;
        self.fc2.forward(&x) // [b, classes]
    }
}

impl Layer for InceptionAux {
    fn kind(&self) -> &'static str {
        "InceptionAux"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("conv".into(), &self.conv as &dyn Layer),
            ("fc1".into(), &self.fc1),
            ("fc2".into(), &self.fc2),
            ("dropout".into(), &self.dropout),
        ]
    }
}

/// What [`GoogLeNet::forward_aux`] returns.
#[derive(Clone, Debug)]
pub struct GoogLeNetOutputs {
    /// The main classifier's logits `[b, classes]`.
    pub logits: Tensor,
    /// `aux1`'s logits (after inception4a), in training with auxiliary heads.
    pub aux1: Option<Tensor>,
    /// `aux2`'s logits (after inception4d), in training with auxiliary heads.
    pub aux2: Option<Tensor>,
}

/// GoogLeNet in torchvision's layout.
#[derive(Clone, Debug)]
pub struct GoogLeNet {
    transform_input: bool,
    conv1: BasicConv2d,
    maxpool1: MaxPool2d,
    conv2: BasicConv2d,
    conv3: BasicConv2d,
    maxpool2: MaxPool2d,
    inception3a: Inception,
    inception3b: Inception,
    maxpool3: MaxPool2d,
    inception4a: Inception,
    inception4b: Inception,
    inception4c: Inception,
    inception4d: Inception,
    inception4e: Inception,
    maxpool4: MaxPool2d,
    inception5a: Inception,
    inception5b: Inception,
    aux1: Option<InceptionAux>,
    aux2: Option<InceptionAux>,
    avgpool: AdaptiveAvgPool2d,
    dropout: Dropout,
    fc: Linear,
}

impl GoogLeNet {
    /// Builds the network, taking parameters from `vb` in torchvision's order.
    pub fn new(cfg: GoogLeNetConfig, vb: VarBuilder) -> Result<Self> {
        let pool = |k: usize, name: &str| MaxPool2d::with_stride(k, 2).ceil_mode(true).named(name);
        let inc = |c_in, ch, name: &str| Inception::new(c_in, ch, vb.pp(name));
        let aux = |c_in, name: &str| -> Result<Option<InceptionAux>> {
            cfg.aux_logits
                .then(|| InceptionAux::new(c_in, cfg.num_classes, cfg.dropout_aux, vb.pp(name)))
                .transpose()
        };
        Ok(Self {
            transform_input: cfg.transform_input,
            conv1: BasicConv2d::new(3, 64, 7, 2, 3, vb.pp("conv1"))?,
            maxpool1: pool(3, "maxpool1"),
            conv2: BasicConv2d::new(64, 64, 1, 1, 0, vb.pp("conv2"))?,
            conv3: BasicConv2d::new(64, 192, 3, 1, 1, vb.pp("conv3"))?,
            maxpool2: pool(3, "maxpool2"),
            inception3a: inc(192, [64, 96, 128, 16, 32, 32], "inception3a")?,
            inception3b: inc(256, [128, 128, 192, 32, 96, 64], "inception3b")?,
            maxpool3: pool(3, "maxpool3"),
            inception4a: inc(480, [192, 96, 208, 16, 48, 64], "inception4a")?,
            inception4b: inc(512, [160, 112, 224, 24, 64, 64], "inception4b")?,
            inception4c: inc(512, [128, 128, 256, 24, 64, 64], "inception4c")?,
            inception4d: inc(512, [112, 144, 288, 32, 64, 64], "inception4d")?,
            inception4e: inc(528, [256, 160, 320, 32, 128, 128], "inception4e")?,
            maxpool4: pool(2, "maxpool4"),
            inception5a: inc(832, [256, 160, 320, 32, 128, 128], "inception5a")?,
            inception5b: inc(832, [384, 192, 384, 48, 128, 128], "inception5b")?,
            aux1: aux(512, "aux1")?,
            aux2: aux(528, "aux2")?,
            avgpool: AdaptiveAvgPool2d::new([1, 1]).named("avgpool"),
            dropout: Dropout::new(cfg.dropout)?.named("dropout"),
            fc: linear_tv(1024, cfg.num_classes, vb.pp("fc"))?,
        })
    }

    /// torchvision's `_transform_input` (when configured).
    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        if !self.transform_input {
            return Ok(x.clone());
        }
        let ch = |i: usize, std: f64, mean: f64| {
            x.narrow(1, i, 1)?.affine(std / 0.5, (mean - 0.5) / 0.5)
        };
        Tensor::cat(
            &[
                ch(0, 0.229, 0.485)?,
                ch(1, 0.224, 0.456)?,
                ch(2, 0.225, 0.406)?,
            ],
            1,
        )
    }

    /// The main logits and, in training with auxiliary heads, the auxiliary logits
    /// (torchvision's `GoogLeNetOutputs`).
    pub fn forward_aux(&self, x: &Tensor, train: bool) -> Result<GoogLeNetOutputs> {
        self.run(x, train, true)
    }

    fn run(&self, x: &Tensor, train: bool, with_aux: bool) -> Result<GoogLeNetOutputs> {
        let train_aux = train && with_aux;
        let x = self.transform(x)?;
        let x = self.conv1.forward_t(&x, train)?; // [b, 64, 112, 112]
        let x = self.maxpool1.forward(&x)?; // [b, 64, 56, 56]
        let x = self.conv2.forward_t(&x, train)?; // [b, 64, 56, 56]
        let x = self.conv3.forward_t(&x, train)?; // [b, 192, 56, 56]
        let x = self.maxpool2.forward(&x)?; // [b, 192, 28, 28]
        let x = self.inception3a.forward_t(&x, train)?; // [b, 256, 28, 28]
        let x = self.inception3b.forward_t(&x, train)?; // [b, 480, 28, 28]
        let x = self.maxpool3.forward(&x)?; // [b, 480, 14, 14]
        let x = self.inception4a.forward_t(&x, train)?; // [b, 512, 14, 14]
        let aux1 = match (&self.aux1, train_aux) {
            (Some(a), true) => Some(a.forward_t(&x, train)?), // [b, classes]
            _ => None,
        };
        let x = self.inception4b.forward_t(&x, train)?; // [b, 512, 14, 14]
        let x = self.inception4c.forward_t(&x, train)?; // [b, 512, 14, 14]
        let x = self.inception4d.forward_t(&x, train)?; // [b, 528, 14, 14]
        let aux2 = match (&self.aux2, train_aux) {
            (Some(a), true) => Some(a.forward_t(&x, train)?), // [b, classes]
            _ => None,
        };
        let x = self.inception4e.forward_t(&x, train)?; // [b, 832, 14, 14]
        let x = self.maxpool4.forward(&x)?; // [b, 832, 7, 7]
        let x = self.inception5a.forward_t(&x, train)?; // [b, 832, 7, 7]
        let x = self.inception5b.forward_t(&x, train)?; // [b, 1024, 7, 7]
        let x = self.avgpool.forward(&x)?.flatten_from(1)?; // [b, 1024]
        let x = self.dropout.forward_t(&x, train)?;
        let logits = self.fc.forward(&x)?; // [b, classes]
        Ok(GoogLeNetOutputs { logits, aux1, aux2 })
    }
}

impl ModuleT for GoogLeNet {
    /// The main classifier's logits (the auxiliary heads, if any, are not run).
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.run(x, train, false)?.logits)
    }
}

impl Layer for GoogLeNet {
    fn kind(&self) -> &'static str {
        "GoogLeNet"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        let mut c: Vec<(String, &dyn Layer)> = vec![
            ("conv1".into(), &self.conv1),
            ("maxpool1".into(), &self.maxpool1),
            ("conv2".into(), &self.conv2),
            ("conv3".into(), &self.conv3),
            ("maxpool2".into(), &self.maxpool2),
            ("inception3a".into(), &self.inception3a),
            ("inception3b".into(), &self.inception3b),
            ("maxpool3".into(), &self.maxpool3),
            ("inception4a".into(), &self.inception4a),
            ("inception4b".into(), &self.inception4b),
            ("inception4c".into(), &self.inception4c),
            ("inception4d".into(), &self.inception4d),
            ("inception4e".into(), &self.inception4e),
            ("maxpool4".into(), &self.maxpool4),
            ("inception5a".into(), &self.inception5a),
            ("inception5b".into(), &self.inception5b),
        ];
        if let (Some(a1), Some(a2)) = (&self.aux1, &self.aux2) {
            c.push(("aux1".into(), a1));
            c.push(("aux2".into(), a2));
        }
        c.push(("avgpool".into(), &self.avgpool));
        c.push(("dropout".into(), &self.dropout));
        c.push(("fc".into(), &self.fc));
        c
    }
}

impl Model for GoogLeNet {
    fn info(&self) -> &'static ModelInfo {
        &GOOGLENET
    }
}
