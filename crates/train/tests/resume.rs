//! Resuming from a checkpoint gives bit for bit the weights of an uninterrupted run: at an
//! epoch boundary and mid-epoch (the stop flag, as Ctrl-C raises it), with momentum SGD and with
//! Adam under a per-batch schedule, dropout and batch norm in the model — and so do batches
//! prefetched on worker threads.

use anyhow::Result;
use candle_core::{Device, ModuleT, Tensor};
use convnets_data::Batcher;
use convnets_layers::{batch_norm2d, conv2d, linear, Conv2dConfig, Dropout, ParamStore};
use convnets_train::optim::{AdamConfig, OptimizerConfig, SgdConfig};
use convnets_train::schedule::{LrScheduler, ScheduleConfig, ScheduleKind};
use convnets_train::{BatchEnd, Checkpoint, Control, Observer, Params, StopReason, Trainer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

struct Net {
    conv: convnets_layers::Conv2d,
    bn: convnets_layers::BatchNorm2d,
    drop: Dropout,
    fc: convnets_layers::Linear,
}

impl Net {
    fn new(store: &ParamStore) -> Result<Self> {
        let vb = store.vb();
        Ok(Self {
            conv: conv2d(1, 4, 3, Conv2dConfig::default(), vb.pp("conv"))?,
            bn: batch_norm2d(4, Default::default(), vb.pp("bn"))?,
            drop: Dropout::new(0.2)?,
            fc: linear(4 * 6 * 6, 3, vb.pp("fc"))?,
        })
    }
}

impl ModuleT for Net {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let x = self
            .bn
            .forward_t(&self.conv.forward_t(x, train)?, train)?
            .relu()?;
        let x = self.drop.forward_t(&x.flatten_from(1)?, train)?;
        self.fc.forward_t(&x, train)
    }
}

fn data() -> Result<Batcher> {
    let n = 96;
    let images: Vec<f32> = (0..n * 64)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let labels: Vec<u32> = (0..n).map(|i| (i * 7 % 3) as u32).collect();
    Ok(Batcher::new(
        Arc::new(images),
        Arc::new(labels),
        [1, 8, 8],
        10,
        Some(3),
        false,
    )?)
}

/// Raises the stop flag after `at` steps in total.
struct StopAfter {
    at: usize,
    seen: usize,
    flag: Arc<AtomicBool>,
}

impl Observer for StopAfter {
    fn name(&self) -> &str {
        "stop_after"
    }
    fn on_batch_end(&mut self, _ev: &BatchEnd) -> convnets_train::Result<Control> {
        self.seen += 1;
        if self.seen == self.at {
            self.flag.store(true, Ordering::SeqCst);
        }
        Ok(Control::Continue)
    }
}

/// Keeps the last checkpoint it is given.
#[derive(Default)]
struct Keep(Arc<std::sync::Mutex<Option<Checkpoint>>>);

impl Observer for Keep {
    fn name(&self) -> &str {
        "keep"
    }
    fn on_checkpoint(&mut self, c: &Checkpoint, _best: bool) -> convnets_train::Result<()> {
        *self.0.lock().unwrap() = Some(c.clone());
        Ok(())
    }
}

fn weights(store: &ParamStore) -> Result<Vec<(String, Vec<u32>)>> {
    store
        .named_vars()
        .into_iter()
        .map(|(n, v)| {
            let bits = v
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .map(|x| x.to_bits())
                .collect();
            Ok((n, bits))
        })
        .collect()
}

/// Trains 3 epochs; with `stop_at`, stops after that many steps, saves the checkpoint to disk,
/// and resumes it in a fresh model, optimizer and trainer.
fn run(
    opt: &OptimizerConfig,
    sched: Option<&ScheduleConfig>,
    stop_at: Option<usize>,
    workers: usize,
) -> Result<Vec<(String, Vec<u32>)>> {
    let train = data()?.with_workers(workers);
    let build = |store: &ParamStore| -> Result<(Net, Params)> {
        convnets_layers::set_seed(5);
        Ok((Net::new(store)?, Params::from(store)))
    };
    let store = ParamStore::new(1, &Device::Cpu);
    let (net, params) = build(&store)?;
    let mut t = Trainer::new(&net, params.clone(), opt.build(params.trainable())?).epochs(3);
    if let Some(s) = sched {
        t = t.scheduler(LrScheduler::new(s, opt.lr(), 3, train.len())?);
    }
    let Some(at) = stop_at else {
        let r = t.fit(&train)?;
        assert_eq!(r.stop, StopReason::Completed);
        return weights(&store);
    };
    let flag = Arc::new(AtomicBool::new(false));
    let kept = Keep::default();
    let slot = kept.0.clone();
    let mut t = t
        .stop_flag(flag.clone())
        .observer(StopAfter { at, seen: 0, flag })
        .observer(kept);
    let r = t.fit(&train)?;
    assert!(
        matches!(r.stop, StopReason::Interrupted { .. }),
        "{:?}",
        r.stop
    );
    let ckpt = slot.lock().unwrap().take().expect("a checkpoint");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("last.safetensors");
    ckpt.save(&path)?;
    drop(t);
    // Scramble the process-wide dropout generator: resume must restore it.
    convnets_layers::set_seed(999);

    let store2 = ParamStore::new(77, &Device::Cpu);
    let net2 = Net::new(&store2)?;
    let params2 = Params::from(&store2);
    let mut t2 = Trainer::new(&net2, params2.clone(), opt.build(params2.trainable())?).epochs(3);
    if let Some(s) = sched {
        t2 = t2.scheduler(LrScheduler::new(s, opt.lr(), 3, train.len())?);
    }
    t2.resume(&Checkpoint::load(&path)?)?;
    let r2 = t2.fit(&train)?;
    assert_eq!(r2.stop, StopReason::Completed);
    assert_eq!(r2.history.len(), 3);
    weights(&store2)
}

#[test]
fn resume_is_bit_exact_at_epoch_boundaries_and_mid_epoch() -> Result<()> {
    let sgd = OptimizerConfig::Sgd(SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 1e-4,
        ..Default::default()
    });
    let straight = run(&sgd, None, None, 0)?;
    // 10 batches per epoch: stop at the end of epoch 1, and in the middle of epoch 2.
    assert_eq!(run(&sgd, None, Some(10), 0)?, straight);
    assert_eq!(run(&sgd, None, Some(14), 0)?, straight);
    // Batches built ahead on worker threads change nothing, resumed mid-epoch or not.
    assert_eq!(run(&sgd, None, None, 2)?, straight);
    assert_eq!(run(&sgd, None, Some(14), 3)?, straight);

    let adam = OptimizerConfig::Adam(AdamConfig {
        lr: 0.01,
        ..Default::default()
    });
    let sched = ScheduleConfig {
        kind: serde_json::from_value::<ScheduleKind>(serde_json::json!({
            "name": "one_cycle", "max_lr": 0.02
        }))?,
        ..Default::default()
    };
    let straight = run(&adam, Some(&sched), None, 0)?;
    assert_eq!(run(&adam, Some(&sched), Some(17), 0)?, straight);
    assert_eq!(run(&adam, Some(&sched), Some(17), 2)?, straight);
    Ok(())
}
