//! An exploding loss stops the run before it turns into NaN: a linear classifier trained with
//! a learning rate far too high sees its cross-entropy jump by orders of magnitude within a
//! few steps; the trainer stops with `Diverged`, naming the loss, the first loss and the
//! learning rate. With the check off, the same run goes on (and its loss is huge), which shows
//! the check, not something else, stopped it. A sane learning rate trains through.

use std::sync::Arc;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::{linear, Linear, Module, VarBuilder, VarMap};
use convnets_data::Batcher;
use convnets_train::optim::{OptimizerConfig, SgdConfig};
use convnets_train::{Params, TrainError, Trainer};

struct Flat(Linear);

impl ModuleT for Flat {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        self.0.forward(&xs.flatten_from(1)?)
    }
}

/// 64 samples of 1x4x4 noise with labels 0..10, in batches of 8.
fn data() -> Batcher {
    let n = 64;
    let images: Vec<f32> = (0..n * 16)
        .map(|i| ((i * 7919 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let labels: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
    Batcher::new(
        Arc::new(images),
        Arc::new(labels),
        [1, 4, 4],
        8,
        Some(0),
        false,
    )
    .unwrap()
}

fn run(lr: f64, factor: Option<f32>) -> Result<f32, TrainError> {
    let vm = VarMap::new();
    let model = Flat(
        linear(
            16,
            10,
            VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
        )
        .unwrap(),
    );
    let params = Params::from(&vm);
    let sgd = OptimizerConfig::Sgd(SgdConfig {
        lr,
        ..Default::default()
    })
    .build(params.trainable())
    .unwrap();
    let train = data();
    let report = Trainer::new(&model, params, sgd)
        .epochs(3)
        .divergence_factor(factor)
        .fit(&train)?;
    Ok(report.history.last().map_or(0.0, |m| m.train_loss as f32))
}

#[test]
fn an_exploding_loss_stops_the_run() {
    let e = run(1e5, Some(1000.0)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, TrainError::Diverged { .. }), "{msg}");
    assert!(msg.contains("the loss exploded to"), "{msg}");
    assert!(
        msg.contains("learning rate 1e5 is likely too high"),
        "{msg}"
    );
    assert!(msg.contains("last checkpoint (if any) is intact"), "{msg}");
    // The check off: the run goes on with a huge (finite or not) loss.
    match run(1e5, None) {
        Ok(loss) => assert!(loss > 1000.0, "{loss}"),
        Err(TrainError::Diverged { what, .. }) => {
            assert!(
                what.contains("the loss is"),
                "a NaN loss, not the explosion check: {what}"
            )
        }
        Err(other) => panic!("{other}"),
    }
    // A sane rate trains through with the check on.
    let loss = run(0.05, Some(1000.0)).unwrap();
    assert!(loss.is_finite() && loss < 5.0, "{loss}");
}
