//! A CNN of your own — not in the zoo — built from convnets' layers, trained with the
//! library's `Trainer` on MNIST, saved, reloaded and evaluated again.
//!
//! ```text
//! CONVNETS_DATA=../shared/data cargo run --release -p convnets --example custom_cnn [-- LIMIT]
//! ```
//!
//! `LIMIT` trains on the first LIMIT training images only (CI uses 6000). The program checks
//! that the reloaded weights evaluate to exactly the accuracy the training printed.

use anyhow::{bail, Context, Result};
use convnets::prelude::*;
use std::path::Path;

/// Two convolutions with batch norm, max pooling and dropout: 1x28x28 -> 10 logits.
struct SmallCnn {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    fc1: Linear,
    dropout: Dropout,
    fc2: Linear,
}

impl SmallCnn {
    fn new(store: &ParamStore) -> Result<Self> {
        let vb = store.vb();
        let pad = Conv2dConfig::default().padding(1);
        Ok(Self {
            conv1: conv2d(1, 16, 3, pad, vb.pp("conv1"))?,
            bn1: batch_norm2d(16, BatchNormConfig::default(), vb.pp("bn1"))?,
            conv2: conv2d(16, 32, 3, pad, vb.pp("conv2"))?,
            fc1: linear(32 * 7 * 7, 64, vb.pp("fc1"))?,
            dropout: Dropout::new(0.25)?,
            fc2: linear(64, 10, vb.pp("fc2"))?,
        })
    }
}

impl ModuleT for SmallCnn {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let pool = MaxPool2d::new(2);
        let x = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?; // [b, 16, 28, 28]
        let x = pool.forward(&x)?; // [b, 16, 14, 14]
        let x = pool.forward(&self.conv2.forward(&x)?.relu()?)?; // [b, 32, 7, 7]
        let x = self.fc1.forward(&x.flatten_from(1)?)?.relu()?; // [b, 64]
        self.fc2.forward(&self.dropout.forward_t(&x, train)?) // [b, 10]
    }
}

/// Trains for one epoch, saves, reloads and evaluates; returns (printed, reloaded) accuracy.
pub fn run(data_dir: Option<&Path>, limit: Option<usize>, out: &Path) -> Result<(f64, f64)> {
    let data = load(DatasetKind::Mnist, data_dir).context("loading MNIST")?;
    let mut train_split = data.train.clone();
    if let Some(n) = limit {
        train_split.truncate(n);
    }
    let norm = Some(DatasetKind::Mnist.normalize());
    let train_b = Batcher::from_split(&train_split, norm, 64, Some(0), false)?;
    let test_b = Batcher::from_split(&data.test, norm, 1000, None, false)?;

    let store = ParamStore::new(0, &Device::Cpu);
    let model = SmallCnn::new(&store)?;
    let params = Params::from(&store);
    let adam = OptimizerConfig::Adam(AdamConfig::default()).build(params.trainable())?;
    let report = Trainer::new(&model, params, adam)
        .epochs(1)
        .test(&test_b)
        .observer(ArticlePrinter::new(200))
        .fit(&train_b)?;
    let printed = report
        .history
        .last()
        .and_then(|m| m.test_accuracy)
        .context("no test accuracy")?;

    let path = out.join("small_cnn.safetensors");
    store.save(&path)?;
    let reloaded = ParamStore::new(1, &Device::Cpu);
    let again = SmallCnn::new(&reloaded)?;
    reloaded.load(&path, true)?;
    let r = evaluate(&again, &test_b)?;
    println!(
        "reloaded from {}: Accuracy: {:.2}% (trained: {printed:.2}%), top-5 {:.2}%",
        path.display(),
        r.accuracy(),
        r.top5_accuracy()
    );
    Ok((printed, r.accuracy()))
}

#[allow(dead_code)] // the test includes this file and calls `run`
fn main() -> Result<()> {
    convnets::runtime::init();
    let limit = match std::env::args().nth(1) {
        Some(a) => Some(a.parse::<usize>().with_context(|| format!("LIMIT `{a}`"))?),
        None => None,
    };
    let data_dir = std::env::var_os("CONVNETS_DATA").map(|d| Path::new(&d).join("mnist"));
    let out = tempdir()?;
    let (printed, reloaded) = run(data_dir.as_deref(), limit, &out)?;
    let _ = std::fs::remove_dir_all(&out);
    if printed != reloaded {
        bail!("the reloaded model evaluates to {reloaded}%, training printed {printed}%")
    }
    Ok(())
}

fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("convnets-custom-cnn-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
