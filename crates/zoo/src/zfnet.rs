//! ZFNet (Zeiler & Fergus 2013, "Visualizing and Understanding Convolutional Networks",
//! arXiv:1311.2901), AlexNet with the three changes seed 002 lists:
//!
//! 1. the first convolution is 7x7 (AlexNet: 11x11), with stride 2 (AlexNet: 4);
//! 2. stride 2 in the next convolution too (AlexNet: 1), so the resolution falls gradually.
//!    Seed 002 says "the second and third convolutional layers"; the paper's Fig. 3, which
//!    this model follows, has stride 2 in layers 1 and 2 and stride 1 in layers 3-5 (with
//!    stride 2 in layer 3 as well, the 13x13 maps of layers 3-5 would be 7x7);
//! 3. more kernels in the middle layers: Table 1's best single model ("Our Model (b)", layers
//!    3, 4, 5 with 512, 1024, 512 maps; 16.0 % top-5 validation error) instead of Fig. 3's
//!    384, 384, 256. [`ZfNetConfig::fig3`] gives Fig. 3's widths.
//!
//! The layer table (Fig. 3, input 224x224x3; sizes with PyTorch's formulas):
//!
//! | layer | op | output |
//! | --- | --- | --- |
//! | `features.0` | conv 96 7x7 stride 2 pad 1, ReLU | 96x110x110 |
//! | `features.2` | max pool 3x3 stride 2 (ceil) | 96x55x55 |
//! | `features.3` | conv 256 5x5 stride 2, ReLU | 256x26x26 |
//! | `features.5` | max pool 3x3 stride 2 (ceil) | 256x13x13 |
//! | `features.6` | conv 512 3x3 pad 1, ReLU | 512x13x13 |
//! | `features.8` | conv 1024 3x3 pad 1, ReLU | 1024x13x13 |
//! | `features.10` | conv 512 3x3 pad 1, ReLU | 512x13x13 |
//! | `features.12` | max pool 3x3 stride 2 | 512x6x6 |
//! | `classifier.1` | dropout 0.5, linear 18432 → 4096, ReLU | 4096 |
//! | `classifier.4` | dropout 0.5, linear 4096 → 4096, ReLU | 4096 |
//! | `classifier.6` | linear 4096 → 1000 | 1000 |
//!
//! Fig. 3 gives 110 → 55 → 26 → 13 → 6: the padding of 1 on the first convolution and
//! `ceil_mode` on the first two poolings are what reproduce those sizes with PyTorch's output
//! formula. The paper normalises contrast across feature maps after the first two poolings;
//! [`ZfNetConfig::lrn`] adds AlexNet's LRN there (off by default, as in seed 002's AlexNet code),
//! shifting the later `features` indices. **107,627,624** parameters (Fig. 3 widths:
//! 62,357,608).

use crate::registry::{ModelInfo, ZFNET};
use crate::Model;
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use convnets_layers::{
    conv2d, linear, Conv2dConfig, Dropout, Layer, LocalResponseNorm, MaxPool2d, Relu, Sequential,
};
use serde::{Deserialize, Serialize};

/// Configuration of [`ZfNet`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZfNetConfig {
    /// Kernels of conv layers 3, 4, 5.
    pub widths: [usize; 3],
    /// LRN (AlexNet's setting) after the first two poolings.
    pub lrn: bool,
    /// Dropout probability before the first two `Linear` layers.
    pub dropout: f32,
    /// Outputs of the last layer.
    pub num_classes: usize,
}

impl Default for ZfNetConfig {
    /// [`ZfNetConfig::zfnet`].
    fn default() -> Self {
        Self::zfnet()
    }
}

impl ZfNetConfig {
    /// Table 1's model (b): 512, 1024, 512 kernels in layers 3-5; no LRN, dropout 0.5.
    pub fn zfnet() -> Self {
        Self {
            widths: [512, 1024, 512],
            lrn: false,
            dropout: 0.5,
            num_classes: 1000,
        }
    }
    /// Fig. 3's widths: 384, 384, 256 (AlexNet's).
    pub fn fig3() -> Self {
        Self {
            widths: [384, 384, 256],
            ..Self::zfnet()
        }
    }
}

/// ZFNet in torchvision's AlexNet layout: `features`, then `classifier`.
#[derive(Clone, Debug)]
pub struct ZfNet {
    features: Sequential,
    classifier: Sequential,
}

impl ZfNet {
    /// Builds the network, taking parameters from `vb`.
    pub fn new(cfg: ZfNetConfig, vb: VarBuilder) -> Result<Self> {
        let [c3, c4, c5] = cfg.widths;
        let f = vb.pp("features");
        let c = |stride: usize, pad: usize| Conv2dConfig::default().stride(stride).padding(pad);
        // Each entry is named by its index, as in an `nn.Sequential`; with `lrn` the later
        // indices shift by one per LRN.
        let conv = |seq: &Sequential, c_in: usize, c_out: usize, k: usize, cfg: Conv2dConfig| {
            conv2d(c_in, c_out, k, cfg, f.pp(seq.len()))
        };
        let mut features = Sequential::new();
        let l = conv(&features, 3, 96, 7, c(2, 1))?;
        push(&mut features, l); // [b, 96, 110, 110]
        push(&mut features, Relu);
        push(&mut features, MaxPool2d::with_stride(3, 2).ceil_mode(true)); // [b, 96, 55, 55]
        if cfg.lrn {
            push(&mut features, LocalResponseNorm::alexnet());
        }
        let l = conv(&features, 96, 256, 5, c(2, 0))?;
        push(&mut features, l); // [b, 256, 26, 26]
        push(&mut features, Relu);
        push(&mut features, MaxPool2d::with_stride(3, 2).ceil_mode(true)); // [b, 256, 13, 13]
        if cfg.lrn {
            push(&mut features, LocalResponseNorm::alexnet());
        }
        let l = conv(&features, 256, c3, 3, c(1, 1))?;
        push(&mut features, l); // [b, c3, 13, 13]
        push(&mut features, Relu);
        let l = conv(&features, c3, c4, 3, c(1, 1))?;
        push(&mut features, l); // [b, c4, 13, 13]
        push(&mut features, Relu);
        let l = conv(&features, c4, c5, 3, c(1, 1))?;
        push(&mut features, l); // [b, c5, 13, 13]
        push(&mut features, Relu);
        push(&mut features, MaxPool2d::with_stride(3, 2)); // [b, c5, 6, 6]

        let k = vb.pp("classifier");
        let classifier = Sequential::new()
            .named("classifier")
            .add("0", Dropout::new(cfg.dropout)?)
            .add("1", linear(c5 * 6 * 6, 4096, k.pp(1))?)
            .add("2", Relu)
            .add("3", Dropout::new(cfg.dropout)?)
            .add("4", linear(4096, 4096, k.pp(4))?)
            .add("5", Relu)
            .add("6", linear(4096, cfg.num_classes, k.pp(6))?);
        Ok(Self {
            features,
            classifier,
        })
    }
}

/// Appends `layer` to `seq` named by its index (`nn.Sequential` naming).
fn push(seq: &mut Sequential, layer: impl Layer + 'static) {
    let i = seq.len();
    seq.push(i.to_string(), layer);
}

impl ModuleT for ZfNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.features.forward_t(x, train)?; // [b, 512, 6, 6]
        let x = x.flatten_from(1)?; // [b, 18432]
        self.classifier.forward_t(&x, train) // [b, 1000]
    }
}

impl Layer for ZfNet {
    fn kind(&self) -> &'static str {
        "ZFNet"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("features".into(), &self.features as &dyn Layer),
            ("classifier".into(), &self.classifier),
        ]
    }
}

impl Model for ZfNet {
    fn info(&self) -> &'static ModelInfo {
        &ZFNET
    }
}
