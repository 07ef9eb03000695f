//! Memory across epochs: trains a zoo model with one optimizer and prints the process's
//! resident memory (current and peak, from `/proc/self/status`) after every epoch, so a leak
//! in an optimizer's state, the schedule or the autograd graph shows as a peak that keeps
//! climbing.
//!
//! ```text
//! CONVNETS_DATA=../shared/data cargo run --release -p convnets --example memory_flat -- \
//!     [OPTIMIZER [EPOCHS [LIMIT [MODEL]]]]
//! ```
//!
//! `OPTIMIZER` is sgd (momentum 0.9, Nesterov), adam, adamw or rmsprop (default adam);
//! `EPOCHS` defaults to 5, `LIMIT` (training images) to all 60,000, `MODEL` to mnist-net.
//! Run each optimizer in its own process: the peak is per process. The program fails when the
//! last epoch's peak exceeds the first epoch's by more than 10 % (the first epoch already
//! holds every buffer a step needs: the activations, the gradients, the optimizer's state).

use anyhow::{bail, Context, Result};
use convnets::prelude::*;
use convnets::train::observer::{Control, EpochEnd};
use std::path::Path;

/// `VmRSS` and `VmHWM` of this process, in MiB (Linux; `None` elsewhere).
fn rss_mib() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Records the resident and peak memory after each epoch.
#[derive(Default)]
struct Memory {
    rows: Vec<(usize, f64, f64)>,
}

impl Observer for Memory {
    fn name(&self) -> &str {
        "memory"
    }
    fn on_epoch_end(&mut self, ev: &EpochEnd) -> convnets::train::Result<Control> {
        if let Some((rss, peak)) = rss_mib() {
            let m = ev.metrics;
            println!(
                "epoch {:>3}: RSS {rss:7.1} MiB, peak {peak:7.1} MiB (test accuracy {:.2}%)",
                m.epoch,
                m.test_accuracy.unwrap_or(f64::NAN)
            );
            self.rows.push((m.epoch, rss, peak));
        }
        Ok(Control::Continue)
    }
}

fn optimizer(name: &str) -> Result<OptimizerConfig> {
    Ok(match name {
        "sgd" => OptimizerConfig::Sgd(SgdConfig {
            lr: 0.01,
            momentum: 0.9,
            nesterov: true,
            ..Default::default()
        }),
        "adam" => OptimizerConfig::Adam(AdamConfig::default()),
        "adamw" => OptimizerConfig::AdamW(AdamWConfig::default()),
        "rmsprop" => OptimizerConfig::RmsProp(RmsPropConfig {
            lr: 0.001,
            ..Default::default()
        }),
        other => bail!("unknown optimizer `{other}`: sgd, adam, adamw or rmsprop"),
    })
}

fn main() -> Result<()> {
    convnets::runtime::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt_name = args.first().map(String::as_str).unwrap_or("adam");
    let epochs: usize = match args.get(1) {
        Some(a) => a.parse().with_context(|| format!("EPOCHS `{a}`"))?,
        None => 5,
    };
    let limit: Option<usize> = match args.get(2) {
        Some(a) => Some(a.parse().with_context(|| format!("LIMIT `{a}`"))?),
        None => None,
    };
    let model_name = args.get(3).map(String::as_str).unwrap_or("mnist-net");
    if epochs < 2 {
        bail!("EPOCHS must be at least 2 to compare the first epoch with the last");
    }
    let info = convnets::zoo::find(model_name)
        .with_context(|| convnets::zoo::unknown_model_message(model_name))?;
    let kind: DatasetKind = info
        .dataset
        .parse()
        .with_context(|| format!("{model_name} trains on {}", info.dataset))?;

    let data_dir = std::env::var_os("CONVNETS_DATA").map(|d| Path::new(&d).join(info.dataset));
    let data = load(kind, data_dir.as_deref()).context("loading the data set")?;
    let mut train_split = data.train.clone();
    if let Some(n) = limit {
        train_split.truncate(n);
    }
    let norm = Some(kind.normalize());
    let train_b = Batcher::from_split(&train_split, norm, 64, Some(0), false)?;
    let test_b = Batcher::from_split(&data.test, norm, 1000, None, false)?;

    let store = ParamStore::new(0, &Device::Cpu);
    let model = info.build(store.vb())?;
    let params = Params::from(&store);
    let opt = optimizer(opt_name)?.build(params.trainable())?;
    let mut memory = Memory::default();
    Trainer::new(&*model, params, opt)
        .epochs(epochs)
        .test(&test_b)
        .observer(&mut memory)
        .fit(&train_b)?;

    let (Some(first), Some(last)) = (memory.rows.first(), memory.rows.last()) else {
        println!("SKIP: no /proc/self/status on this system, memory not measured");
        return Ok(());
    };
    println!(
        "{model_name} with {opt_name}: peak RSS {:.1} MiB after epoch {}, {:.1} MiB after epoch {} ({:+.1} %)",
        first.2,
        first.0,
        last.2,
        last.0,
        100.0 * (last.2 / first.2 - 1.0)
    );
    if last.2 > first.2 * 1.10 {
        bail!(
            "memory grows across epochs with {opt_name}: peak {:.1} MiB after epoch {} vs {:.1} MiB after epoch {}",
            last.2,
            last.0,
            first.2,
            first.0
        );
    }
    Ok(())
}
