//! The models by name, for the trainer and the command line.

use crate::{LeNet5, MnistNet, Model};
use candle_core::Result;
use candle_nn::VarBuilder;

/// What the zoo knows about a model before it is built.
#[derive(Debug)]
pub struct ModelInfo {
    /// The registry name (`lenet5`, `mnist-net`, …).
    pub name: &'static str,
    /// One line for `--help`.
    pub description: &'static str,
    /// Input `[channels, height, width]`.
    pub input: [usize; 3],
    /// Number of classes.
    pub classes: usize,
    /// The data set the articles train it on.
    pub dataset: &'static str,
    /// Which article (seed file) it follows.
    pub source: &'static str,
    build: fn(VarBuilder) -> Result<Box<dyn Model>>,
}

impl ModelInfo {
    /// Builds the model, taking its parameters from `vb`.
    pub fn build(&self, vb: VarBuilder) -> Result<Box<dyn Model>> {
        (self.build)(vb)
    }
}

/// LeNet-5 (seed 000).
pub static LENET5: ModelInfo = ModelInfo {
    name: "lenet5",
    description: "LeNet-5 as in seed 000 (avg pooling, 256-320-80-10 head), 111,302 params",
    input: [1, 28, 28],
    classes: 10,
    dataset: "fashion-mnist",
    source: "seed 000",
    build: |vb| Ok(Box::new(LeNet5::new(vb)?)),
};

/// The small MNIST CNN (seed 004).
pub static MNIST_NET: ModelInfo = ModelInfo {
    name: "mnist-net",
    description: "seed 004's MNIST CNN (2 convs, max pooling, Linear(320,10)), 8,490 params",
    input: [1, 28, 28],
    classes: 10,
    dataset: "mnist",
    source: "seed 004",
    build: |vb| Ok(Box::new(MnistNet::new(vb)?)),
};

static MODELS: &[&ModelInfo] = &[&LENET5, &MNIST_NET];

/// Every registered model.
pub fn models() -> &'static [&'static ModelInfo] {
    MODELS
}

/// The model called `name`, if registered.
pub fn find(name: &str) -> Option<&'static ModelInfo> {
    MODELS.iter().copied().find(|m| m.name == name)
}

/// Builds the model called `name`; the error lists the known names.
pub fn build(name: &str, vb: VarBuilder) -> Result<Box<dyn Model>> {
    match find(name) {
        Some(info) => info.build(vb),
        None => {
            let known: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
            candle_core::bail!("unknown model `{name}`; known models: {}", known.join(", "))
        }
    }
}
