//! ResNet (He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image Recognition"), the
//! full-size networks behind seed 001's residual block, in torchvision's layout.
//!
//! ImageNet models (`torchvision.models.resnet18/34/50`, §3.4 and Table 1): stem `conv1` 7x7/2
//! (64, no bias) → `bn1` → ReLU → `maxpool` 3x3/2 padding 1; four stages `layer1`..`layer4`
//! of 64/128/256/512 planes on 56/28/14/7 pixels (for 224x224), stride 2 in the first block
//! of stages 2-4; adaptive average pooling to 1x1; `fc`. `BasicBlock` (two 3x3 convolutions)
//! for ResNet-18 [2, 2, 2, 2] and ResNet-34 [3, 4, 6, 3]; `Bottleneck` (1x1 → 3x3 → 1x1 with
//! 4x expansion, stride on the 3x3 as in torchvision's "ResNet v1.5") for ResNet-50
//! [3, 4, 6, 3]. Projection shortcuts (`downsample.0` 1x1 conv + `downsample.1` batch norm)
//! wherever the shape changes (the paper's option B). Parameters: **11,689,512** (18),
//! **21,797,672** (34), **25,557,032** (50). The adaptive pooling lets them run on any input
//! from 32x32 up (e.g. CIFAR-size images in tests).
//! Initialisation as torchvision's: convolutions Kaiming normal (fan out, ReLU gain), batch norm
//! weight 1 and bias 0, `fc` PyTorch's default.
//!
//! CIFAR-10 models (§4.2): `conv1` 3x3 (16) → `bn1` → ReLU; three stages of `n` basic blocks
//! with 16/32/64 channels on 32/16/8 pixels (stride 2 at stages 2 and 3); global average
//! pooling; `fc` 64 → 10: 6n + 2 layers. The paper uses parameter-free shortcuts (option A,
//! 0.27 M parameters for ResNet-20, 8.75 % error; ResNet-56: 0.85 M, 6.97 %); like
//! `scripts/models.py` (the benchmark's twin) this uses option-B projections, torchvision's
//! names: **272,474** parameters for ResNet-20 (n = 3), **855,770** for ResNet-56 (n = 9). PyTorch's
//! default initialisation, as in `scripts/models.py`.

use crate::registry::{
    ModelInfo, RESNET18, RESNET20, RESNET34, RESNET50, RESNET56, RESNET_CUSTOM_CIFAR,
    RESNET_CUSTOM_IMAGENET,
};
use crate::Model;
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use candle_nn::{Init, VarBuilder};
use convnets_layers::{
    basic_block_t, batch_norm2d, conv2d, linear, AdaptiveAvgPool2d, BatchNorm2d, BatchNormConfig,
    Conv2d, Conv2dConfig, Layer, Linear, MaxPool2d, Sequential,
};
use serde::{Deserialize, Serialize};

/// The first layers before the stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stem {
    /// ImageNet: conv 7x7/2 padding 3, batch norm, ReLU, max pool 3x3/2 padding 1.
    ImageNet,
    /// CIFAR: conv 3x3 padding 1, batch norm, ReLU.
    Cifar,
}

/// The residual block of every stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockKind {
    /// Two 3x3 convolutions (expansion 1).
    Basic,
    /// 1x1 reduce → 3x3 → 1x1 expand (expansion 4).
    Bottleneck,
}

impl BlockKind {
    /// Output channels per plane: 1 (basic) or 4 (bottleneck).
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// Configuration of a [`ResNet`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// The stem.
    pub stem: Stem,
    /// The block.
    pub block: BlockKind,
    /// Blocks per stage.
    pub layers: Vec<usize>,
    /// Planes per stage (the stem has as many channels as the first stage).
    pub widths: Vec<usize>,
    /// Outputs of `fc`.
    pub num_classes: usize,
}

impl ResNetConfig {
    fn imagenet(block: BlockKind, layers: [usize; 4]) -> Self {
        Self {
            stem: Stem::ImageNet,
            block,
            layers: layers.to_vec(),
            widths: vec![64, 128, 256, 512],
            num_classes: 1000,
        }
    }
    /// torchvision's `resnet18()`.
    pub fn resnet18() -> Self {
        Self::imagenet(BlockKind::Basic, [2, 2, 2, 2])
    }
    /// torchvision's `resnet34()`.
    pub fn resnet34() -> Self {
        Self::imagenet(BlockKind::Basic, [3, 4, 6, 3])
    }
    /// torchvision's `resnet50()`.
    pub fn resnet50() -> Self {
        Self::imagenet(BlockKind::Bottleneck, [3, 4, 6, 3])
    }
    /// The CIFAR-10 ResNet with `6n + 2` layers (§4.2): `cifar(3)` is ResNet-20, `cifar(9)`
    /// ResNet-56.
    pub fn cifar(n: usize) -> Self {
        Self {
            stem: Stem::Cifar,
            block: BlockKind::Basic,
            layers: vec![n; 3],
            widths: vec![16, 32, 64],
            num_classes: 10,
        }
    }
}

/// The configuration of the registry's ResNet called `name`.
pub fn registered_config(name: &str) -> Option<ResNetConfig> {
    match name {
        "resnet18" => Some(ResNetConfig::resnet18()),
        "resnet34" => Some(ResNetConfig::resnet34()),
        "resnet50" => Some(ResNetConfig::resnet50()),
        "resnet20" => Some(ResNetConfig::cifar(3)),
        "resnet56" => Some(ResNetConfig::cifar(9)),
        _ => None,
    }
}

/// A convolution without bias, initialised as torchvision's ResNet does
/// (`kaiming_normal_(mode="fan_out", nonlinearity="relu")`) or with PyTorch's layer default.
fn conv(
    c_in: usize,
    c_out: usize,
    k: usize,
    cfg: Conv2dConfig,
    init: Option<Init>,
    vb: VarBuilder,
) -> Result<Conv2d> {
    match init {
        None => conv2d(c_in, c_out, k, cfg, vb),
        Some(init) => {
            let w = vb.get_with_hints((c_out, c_in, k, k), "weight", init)?;
            Ok(Conv2d::new(vb.prefix(), w, None, cfg))
        }
    }
}

/// torchvision's initialisation of every ImageNet ResNet convolution.
const KAIMING_FAN_OUT: Init = Init::Kaiming {
    dist: NormalOrUniform::Normal,
    fan: FanInOut::FanOut,
    non_linearity: NonLinearity::ReLU,
};

fn conv_bn(
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    init: Option<Init>,
    vb: &VarBuilder,
    i: usize,
) -> Result<(Conv2d, BatchNorm2d)> {
    let cfg = Conv2dConfig::default()
        .stride(stride)
        .padding(k / 2)
        .bias(false);
    let conv = conv(c_in, c_out, k, cfg, init, vb.pp(format!("conv{i}")))?;
    let bn = batch_norm2d(c_out, BatchNormConfig::default(), vb.pp(format!("bn{i}")))?;
    Ok((conv, bn))
}

/// The projection shortcut `downsample` (1x1 conv with `stride` + batch norm), when needed.
fn downsample(
    c_in: usize,
    c_out: usize,
    stride: usize,
    init: Option<Init>,
    vb: &VarBuilder,
) -> Result<Option<Sequential>> {
    if stride == 1 && c_in == c_out {
        return Ok(None);
    }
    let vb = vb.pp("downsample");
    let cfg = Conv2dConfig::default().stride(stride).bias(false);
    Ok(Some(
        Sequential::new()
            .add("0", conv(c_in, c_out, 1, cfg, init, vb.pp(0))?)
            .add(
                "1",
                batch_norm2d(c_out, BatchNormConfig::default(), vb.pp(1))?,
            ),
    ))
}

/// The shortcut of a residual block: `downsample(x)` when the block changes the shape, `x`
/// otherwise.
fn shortcut(x: &Tensor, downsample: Option<&Sequential>, train: bool) -> Result<Tensor> {
    match downsample {
        Some(d) => d.forward_t(x, train),
        None => Ok(x.clone()),
    }
}

/// torchvision's `BasicBlock`: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
#[derive(Clone, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<Sequential>,
}

impl BasicBlock {
    /// A block from `c_in` to `planes` channels, the first convolution with `stride`; `init`
    /// replaces PyTorch's default initialisation of the convolutions.
    pub fn new(
        c_in: usize,
        planes: usize,
        stride: usize,
        init: Option<Init>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let (conv1, bn1) = conv_bn(c_in, planes, 3, stride, init, &vb, 1)?;
        let (conv2, bn2) = conv_bn(planes, planes, 3, 1, init, &vb, 2)?;
        Ok(Self {
            conv1,
            bn1,
            conv2,
            bn2,
            downsample: downsample(c_in, planes, stride, init, &vb)?,
        })
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if self.downsample.is_none() {
            // The identity shortcut: the whole block as one op when training.
            return basic_block_t(&self.conv1, &self.bn1, &self.conv2, &self.bn2, x, train);
        }
        let y = self.bn1.forward_conv_t(&self.conv1, x, train, true)?; // [b, planes, h/s, w/s]
        let s = shortcut(x, self.downsample.as_ref(), train)?;
        // relu(bn2(conv2(y)) + shortcut), one op when training.
        self.bn2.forward_conv_add_relu_t(&self.conv2, &y, &s, train) // [b, planes, h/s, w/s]
    }
}

impl Layer for BasicBlock {
    fn kind(&self) -> &'static str {
        "BasicBlock"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        let mut c: Vec<(String, &dyn Layer)> = vec![
            ("conv1".into(), &self.conv1),
            ("bn1".into(), &self.bn1),
            ("conv2".into(), &self.conv2),
            ("bn2".into(), &self.bn2),
        ];
        if let Some(d) = &self.downsample {
            c.push(("downsample".into(), d));
        }
        c
    }
}

/// torchvision's `Bottleneck` (v1.5: the stride on the 3x3 convolution).
#[derive(Clone, Debug)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    conv3: Conv2d,
    bn3: BatchNorm2d,
    downsample: Option<Sequential>,
}

impl Bottleneck {
    /// A block from `c_in` to `4 · planes` channels, the 3x3 convolution with `stride`; `init`
    /// replaces PyTorch's default initialisation of the convolutions.
    pub fn new(
        c_in: usize,
        planes: usize,
        stride: usize,
        init: Option<Init>,
        vb: VarBuilder,
    ) -> Result<Self> {
        let out = planes * BlockKind::Bottleneck.expansion();
        let (conv1, bn1) = conv_bn(c_in, planes, 1, 1, init, &vb, 1)?;
        let (conv2, bn2) = conv_bn(planes, planes, 3, stride, init, &vb, 2)?;
        let (conv3, bn3) = conv_bn(planes, out, 1, 1, init, &vb, 3)?;
        Ok(Self {
            conv1,
            bn1,
            conv2,
            bn2,
            conv3,
            bn3,
            downsample: downsample(c_in, out, stride, init, &vb)?,
        })
    }
}

impl ModuleT for Bottleneck {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.bn1.forward_conv_t(&self.conv1, x, train, true)?; // [b, planes, h, w]
        let y = self.bn2.forward_conv_t(&self.conv2, &y, train, true)?; // [b, planes, h/s, w/s]
        let s = shortcut(x, self.downsample.as_ref(), train)?;
        self.bn3.forward_conv_add_relu_t(&self.conv3, &y, &s, train) // [b, 4·planes, h/s, w/s]
    }
}

impl Layer for Bottleneck {
    fn kind(&self) -> &'static str {
        "Bottleneck"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        let mut c: Vec<(String, &dyn Layer)> = vec![
            ("conv1".into(), &self.conv1),
            ("bn1".into(), &self.bn1),
            ("conv2".into(), &self.conv2),
            ("bn2".into(), &self.bn2),
            ("conv3".into(), &self.conv3),
            ("bn3".into(), &self.bn3),
        ];
        if let Some(d) = &self.downsample {
            c.push(("downsample".into(), d));
        }
        c
    }
}

/// A ResNet: stem, stages `layer1`.., global average pooling, `fc`.
#[derive(Clone, Debug)]
pub struct ResNet {
    info: &'static ModelInfo,
    conv1: Conv2d,
    bn1: BatchNorm2d,
    maxpool: Option<MaxPool2d>,
    stages: Vec<Sequential>,
    avgpool: AdaptiveAvgPool2d,
    fc: Linear,
}

impl ResNet {
    /// Builds the network, taking parameters from `vb` in torchvision's order.
    pub fn new(cfg: &ResNetConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.layers.is_empty() || cfg.layers.len() != cfg.widths.len() || cfg.layers.contains(&0)
        {
            candle_core::bail!(
                "ResNet: `layers` {:?} and `widths` {:?} must be non-empty, of the same length, with at least one block per stage",
                cfg.layers,
                cfg.widths
            )
        }
        let c0 = cfg.widths[0];
        // torchvision initialises the ImageNet ResNets' convolutions with Kaiming normal (fan
        // out); the CIFAR twin in scripts/models.py keeps PyTorch's layer default.
        let init = match cfg.stem {
            Stem::ImageNet => Some(KAIMING_FAN_OUT),
            Stem::Cifar => None,
        };
        let (conv1, maxpool) = match cfg.stem {
            Stem::ImageNet => {
                let c = Conv2dConfig::default().stride(2).padding(3).bias(false);
                (
                    conv(3, c0, 7, c, init, vb.pp("conv1"))?,
                    Some(MaxPool2d::with_stride(3, 2).padding(1).named("maxpool")),
                )
            }
            Stem::Cifar => (
                conv(
                    3,
                    c0,
                    3,
                    Conv2dConfig::default().padding(1).bias(false),
                    init,
                    vb.pp("conv1"),
                )?,
                None,
            ),
        };
        let bn1 = batch_norm2d(c0, BatchNormConfig::default(), vb.pp("bn1"))?;
        let expansion = cfg.block.expansion();
        let mut c_in = c0;
        let mut stages = Vec::with_capacity(cfg.layers.len());
        for (s, (&blocks, &planes)) in cfg.layers.iter().zip(&cfg.widths).enumerate() {
            let vb_s = vb.pp(format!("layer{}", s + 1));
            let mut stage = Sequential::new().named(vb_s.prefix());
            for b in 0..blocks {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                match cfg.block {
                    BlockKind::Basic => stage.push(
                        b.to_string(),
                        BasicBlock::new(c_in, planes, stride, init, vb_s.pp(b))?,
                    ),
                    BlockKind::Bottleneck => stage.push(
                        b.to_string(),
                        Bottleneck::new(c_in, planes, stride, init, vb_s.pp(b))?,
                    ),
                };
                c_in = planes * expansion;
            }
            stages.push(stage);
        }
        let info = [&RESNET18, &RESNET34, &RESNET50, &RESNET20, &RESNET56]
            .into_iter()
            .find(|info| registered_config(info.name).as_ref() == Some(cfg))
            .unwrap_or(match cfg.stem {
                Stem::ImageNet => &RESNET_CUSTOM_IMAGENET,
                Stem::Cifar => &RESNET_CUSTOM_CIFAR,
            });
        Ok(Self {
            info,
            conv1,
            bn1,
            maxpool,
            stages,
            avgpool: AdaptiveAvgPool2d::new([1, 1]).named("avgpool"),
            fc: linear(c_in, cfg.num_classes, vb.pp("fc"))?,
        })
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        // Shapes for ResNet-18 on 224x224 (ResNet-50: 4x the channels after the stem; CIFAR:
        // [b, 16, 32, 32] after the stem, then 16/32/64 channels on 32/16/8 pixels).
        let x = self.bn1.forward_conv_t(&self.conv1, x, train, true)?; // [b, 64, 112, 112]
        let mut x = match &self.maxpool {
            Some(p) => p.forward(&x)?, // [b, 64, 56, 56]
            None => x,
        };
        for stage in &self.stages {
            x = stage.forward_t(&x, train)?; // [b, 64, 56, 56] → … → [b, 512, 7, 7]
        }
        let x = self.avgpool.forward(&x)?.flatten_from(1)?; // [b, 512]
        self.fc.forward(&x) // [b, classes]
    }
}

impl Layer for ResNet {
    fn kind(&self) -> &'static str {
        "ResNet"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        let mut c: Vec<(String, &dyn Layer)> =
            vec![("conv1".into(), &self.conv1), ("bn1".into(), &self.bn1)];
        if let Some(p) = &self.maxpool {
            c.push(("maxpool".into(), p));
        }
        for (i, s) in self.stages.iter().enumerate() {
            c.push((format!("layer{}", i + 1), s));
        }
        c.push(("avgpool".into(), &self.avgpool));
        c.push(("fc".into(), &self.fc));
        c
    }
}

impl Model for ResNet {
    fn info(&self) -> &'static ModelInfo {
        self.info
    }
}
