//! SimpleCNN of seed 003 (CNN concepts, `nn.Conv2d` arguments, iterating named children /
//! modules / parameters), for 3x32x32 inputs (CIFAR-10 shapes).
//!
//! Three blocks of Conv3x3 (padding 1, keeps the size) + ReLU + MaxPool2 with 3 → 32 → 64 →
//! 128 channels (32 → 16 → 8 → 4 pixels), then Linear(2048, 512) + ReLU → Linear(512, 64) +
//! ReLU → Linear(64, 10). The article builds each block as an `nn.Sequential` with
//! `add_module`, so its parameters print as `layer1.conv1.weight`, `layer2.conv2.weight`,
//! `layer3.conv3.weight`, `layer4.fc1.weight`, …: those are the names here.
//! 1,175,818 parameters. Not trained in the article.

use crate::registry::{ModelInfo, SIMPLE_CNN};
use crate::Model;
use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use convnets_layers::{conv2d, linear, Conv2dConfig, Layer, MaxPool2d, Relu, Sequential};

/// Seed 003's SimpleCNN: four `nn.Sequential` blocks named as the article names them.
#[derive(Clone, Debug)]
pub struct SimpleCnn {
    layer1: Sequential,
    layer2: Sequential,
    layer3: Sequential,
    layer4: Sequential,
}

impl SimpleCnn {
    /// Builds the network (10 classes, as the article), taking parameters from `vb`.
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Self::with_classes(10, vb)
    }

    /// Builds the network with `classes` outputs (a new head for fine-tuning), taking
    /// parameters from `vb`.
    pub fn with_classes(classes: usize, vb: VarBuilder) -> Result<Self> {
        let same = Conv2dConfig::default().padding(1);
        let block = |i: usize, c_in: usize, c_out: usize| -> Result<Sequential> {
            let vb = vb.pp(format!("layer{i}"));
            Ok(Sequential::new()
                .add(
                    format!("conv{i}"),
                    conv2d(c_in, c_out, 3, same, vb.pp(format!("conv{i}")))?,
                )
                .add(format!("relu{i}"), Relu)
                .add(format!("pool{i}"), MaxPool2d::new(2)))
        };
        let layer1 = block(1, 3, 32)?;
        let layer2 = block(2, 32, 64)?;
        let layer3 = block(3, 64, 128)?;
        let vb4 = vb.pp("layer4");
        let layer4 = Sequential::new()
            .add("fc1", linear(4 * 4 * 128, 512, vb4.pp("fc1"))?)
            .add("fc_relu1", Relu)
            .add("fc2", linear(512, 64, vb4.pp("fc2"))?)
            .add("fc_relu2", Relu)
            .add("fc3", linear(64, classes, vb4.pp("fc3"))?);
        Ok(Self {
            layer1,
            layer2,
            layer3,
            layer4,
        })
    }
}

impl ModuleT for SimpleCnn {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.layer1.forward_t(x, train)?; // [b, 32, 16, 16]
        let x = self.layer2.forward_t(&x, train)?; // [b, 64, 8, 8]
        let x = self.layer3.forward_t(&x, train)?; // [b, 128, 4, 4]
        let x = x.flatten_from(1)?; // [b, 2048]
        self.layer4.forward_t(&x, train) // [b, 10]
    }
}

impl Layer for SimpleCnn {
    fn kind(&self) -> &'static str {
        "SimpleCNN"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("layer1".into(), &self.layer1 as &dyn Layer),
            ("layer2".into(), &self.layer2),
            ("layer3".into(), &self.layer3),
            ("layer4".into(), &self.layer4),
        ]
    }
}

impl Model for SimpleCnn {
    fn info(&self) -> &'static ModelInfo {
        &SIMPLE_CNN
    }
}
