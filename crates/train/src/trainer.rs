//! The training and evaluation loop of the articles.

use crate::metrics::{EpochMetrics, MetricsLog};
use crate::optim::{Sgd, SgdConfig};
use crate::{cross_entropy, parse_device, Result, TrainError};
use candle_core::{DType, Device};
use convnets_data::{Batcher, Dataset, DatasetKind, Normalize, Split};
use convnets_layers::ParamStore;
use convnets_zoo::Model;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A training run, as written to `config.json` in its run folder (and readable back).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Registry name of the model (`lenet5`, `mnist-net`, …).
    pub model: String,
    /// Data set name (`fashion-mnist`, `mnist`).
    pub dataset: String,
    /// Number of epochs.
    pub epochs: usize,
    /// Mini-batch size (training and evaluation).
    pub batch_size: usize,
    /// Optimizer.
    pub sgd: SgdConfig,
    /// Seed of the initialisation and of the shuffling: the same seed repeats a CPU run exactly.
    pub seed: u64,
    /// `Normalize(mean, std)` after `ToTensor`, if any.
    pub normalize: Option<[f32; 2]>,
    /// Where the data set is (see `convnets_data::locate`); `None` searches the defaults.
    pub data_dir: Option<PathBuf>,
    /// The folder in which the run folder is created.
    pub out: PathBuf,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Print the loss every this many batches (seed 000: 100).
    pub log_every: usize,
    /// Download the data set into the default root when it is not found.
    pub download: bool,
    /// Train on the first N training images only (quick checks); `None` uses them all.
    #[serde(default)]
    pub train_limit: Option<usize>,
}

impl TrainConfig {
    /// Seed 000's recipe: LeNet-5 on Fashion-MNIST, batch 256, SGD lr 0.01, 20 epochs.
    pub fn seed000() -> Self {
        Self {
            model: "lenet5".into(),
            dataset: "fashion-mnist".into(),
            epochs: 20,
            batch_size: 256,
            sgd: SgdConfig {
                lr: 0.01,
                ..Default::default()
            },
            seed: 0,
            normalize: None,
            data_dir: None,
            out: PathBuf::from("runs"),
            device: "cpu".into(),
            log_every: 100,
            download: true,
            train_limit: None,
        }
    }

    /// Seed 004's recipe: the MNIST CNN, Normalize(0.1307, 0.3081), batch 64, SGD lr 0.01
    /// momentum 0.5, 10 epochs.
    pub fn seed004() -> Self {
        Self {
            model: "mnist-net".into(),
            dataset: "mnist".into(),
            epochs: 10,
            batch_size: 64,
            sgd: SgdConfig {
                lr: 0.01,
                momentum: 0.5,
                ..Default::default()
            },
            normalize: Some([0.1307, 0.3081]),
            ..Self::seed000()
        }
    }

    fn validate(&self) -> Result<DatasetKind> {
        if self.batch_size == 0 || self.epochs == 0 {
            return Err(TrainError::Config(
                "batch size and epochs must be positive".into(),
            ));
        }
        if convnets_zoo::find(&self.model).is_none() {
            let known: Vec<&str> = convnets_zoo::models().iter().map(|m| m.name).collect();
            return Err(TrainError::Config(format!(
                "unknown model `{}`; known: {}",
                self.model,
                known.join(", ")
            )));
        }
        if let Some([_, std]) = self.normalize {
            if std.is_nan() || std <= 0.0 {
                return Err(TrainError::Config(format!(
                    "normalize std must be positive, got {std}"
                )));
            }
        }
        self.dataset.parse::<DatasetKind>().map_err(|_| {
            TrainError::Config(format!(
                "unknown data set `{}`; known: mnist, fashion-mnist",
                self.dataset
            ))
        })
    }
}

/// The outcome of a finished run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run folder.
    pub dir: PathBuf,
    /// The final weights.
    pub weights: PathBuf,
    /// Every epoch's metrics.
    pub epochs: Vec<EpochMetrics>,
    /// Test accuracy after the last epoch, in percent.
    pub final_accuracy: f64,
    /// The number of model parameters.
    pub num_params: usize,
}

/// Accuracy and loss on a data set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Mean loss per sample.
    pub loss: f64,
    /// Correct predictions.
    pub correct: usize,
    /// Samples seen.
    pub total: usize,
}

impl EvalResult {
    /// Accuracy in percent.
    pub fn accuracy(&self) -> f64 {
        100.0 * self.correct as f64 / self.total.max(1) as f64
    }
}

/// Finds (or, with `download`, fetches into the default root) and loads a data set.
pub fn load_dataset(kind: DatasetKind, data_dir: Option<&Path>, download: bool) -> Result<Dataset> {
    match convnets_data::load(kind, data_dir) {
        Err(not_found @ convnets_data::DataError::NotFound { .. })
            if download && data_dir.is_none() =>
        {
            let root = convnets_data::default_root();
            eprintln!(
                "{} not found: downloading it into {}",
                kind.name(),
                root.display()
            );
            if let Err(e) = convnets_data::download(kind, &root, kind.mirrors()) {
                return Err(TrainError::DataUnavailable {
                    download: Box::new(e),
                    not_found: Box::new(not_found),
                });
            }
            Ok(convnets_data::load(kind, data_dir)?)
        }
        other => Ok(other?),
    }
}

fn batcher(
    split: &Split,
    normalize: Option<[f32; 2]>,
    batch: usize,
    shuffle: Option<u64>,
    dev: &Device,
) -> Result<Batcher> {
    let norm = normalize.map(|[mean, std]| Normalize { mean, std });
    Ok(Batcher::from_split(split, norm, batch, shuffle, false)?.with_device(dev.clone()))
}

/// Evaluates `model` on every sample of `batcher` (in eval mode, without gradients).
pub fn evaluate(model: &dyn Model, batcher: &Batcher) -> Result<EvalResult> {
    let (mut loss, mut correct, mut total) = (0f64, 0usize, 0usize);
    for batch in batcher.epoch(0) {
        let batch = batch?;
        let b = batch.labels.dims1()?;
        let logits = convnets_layers::no_grad(|| model.forward_t(&batch.images, false))?;
        loss += cross_entropy(&logits, &batch.labels)?.to_scalar::<f32>()? as f64 * b as f64;
        let pred = logits.argmax(1)?;
        correct += pred
            .eq(&batch.labels)?
            .to_dtype(DType::U32)?
            .sum_all()?
            .to_scalar::<u32>()? as usize;
        total += b;
    }
    Ok(EvalResult {
        loss: loss / total.max(1) as f64,
        correct,
        total,
    })
}

/// A new run folder `out/<model>-<dataset>-<utc time>` (suffixed when it exists).
fn run_dir(cfg: &TrainConfig) -> Result<PathBuf> {
    let base = format!("{}-{}-{}", cfg.model, cfg.dataset, utc_stamp());
    std::fs::create_dir_all(&cfg.out).map_err(TrainError::io(&cfg.out))?;
    for i in 0.. {
        let name = if i == 0 {
            base.clone()
        } else {
            format!("{base}-{i}")
        };
        let dir = cfg.out.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(TrainError::io(&dir)(e)),
        }
    }
    unreachable!("an unbounded loop returns")
}

/// `YYYYmmdd-HHMMSS` in UTC.
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn progress(len: usize) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    if std::io::stderr().is_terminal() {
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} batches {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        pb.set_style(style);
    } else {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb
}

/// Trains a model as `cfg` says, printing like seed 000 (`loss: … [current/size]` every
/// `log_every` batches, `Test Error: Accuracy: …%, Avg loss: …` each epoch). Writes
/// `config.json`, `metrics.csv`, `metrics.jsonl`, `curves.svg` and (atomically, after every
/// epoch) `model.safetensors` into a new run folder under `cfg.out`.
pub fn train(cfg: &TrainConfig) -> Result<RunSummary> {
    let kind = cfg.validate()?;
    let device = parse_device(&cfg.device)?;
    let mut data = load_dataset(kind, cfg.data_dir.as_deref(), cfg.download)?;
    if let Some(n) = cfg.train_limit {
        let t = &mut data.train;
        t.len = t.len.min(n);
        t.images.truncate(t.len * t.rows * t.cols);
        t.labels.truncate(t.len);
    }
    let train_b = batcher(
        &data.train,
        cfg.normalize,
        cfg.batch_size,
        Some(cfg.seed),
        &device,
    )?;
    let test_b = batcher(&data.test, cfg.normalize, cfg.batch_size, None, &device)?;

    let store = ParamStore::new(cfg.seed, &device);
    convnets_layers::set_seed(cfg.seed); // dropout masks
    let model = convnets_zoo::build(&cfg.model, store.vb())?;
    let mut opt = Sgd::new(store.trainable_vars(), cfg.sgd)?;

    let dir = run_dir(cfg)?;
    let cfg_path = dir.join("config.json");
    let json = serde_json::to_string_pretty(cfg).map_err(|e| TrainError::Config(e.to_string()))?;
    std::fs::write(&cfg_path, json + "\n").map_err(TrainError::io(&cfg_path))?;
    let weights = dir.join("model.safetensors");
    let mut log = MetricsLog::create(&dir)?;
    println!(
        "{} on {} ({} parameters, {} train / {} test images) -> {}",
        cfg.model,
        kind.name(),
        store.num_params(),
        train_b.num_samples(),
        test_b.num_samples(),
        dir.display()
    );

    let size = train_b.num_samples();
    for epoch in 1..=cfg.epochs {
        println!("Epoch {epoch}\n-------------------------------");
        let pb = progress(train_b.len());
        let start = Instant::now();
        let mut loss_sum = 0f64;
        for (i, batch) in train_b.epoch(epoch).enumerate() {
            let batch = batch?;
            let b = batch.labels.dims1()?;
            let logits = model.forward_t(&batch.images, true)?;
            let loss = cross_entropy(&logits, &batch.labels)?;
            let grads = loss.backward()?;
            opt.step(&grads)?;
            let l = loss.to_scalar::<f32>()?;
            if !l.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: i,
                    loss: l,
                });
            }
            loss_sum += l as f64 * b as f64;
            if cfg.log_every > 0 && i % cfg.log_every == 0 {
                let current = i * cfg.batch_size;
                pb.suspend(|| println!("loss: {l:>7.6} [{current:>5}/{size:>5}]"));
            }
            pb.inc(1);
        }
        let secs = start.elapsed().as_secs_f64();
        pb.finish_and_clear();
        let eval = evaluate(model.as_ref(), &test_b)?;
        println!(
            "Test Error: \n Accuracy: {:>0.1}%, Avg loss: {:>8.6} \n",
            eval.accuracy(),
            eval.loss
        );
        store.save(&weights)?;
        log.push(EpochMetrics {
            epoch,
            train_loss: loss_sum / size.max(1) as f64,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy(),
            epoch_seconds: secs,
            images_per_second: size as f64 / secs.max(1e-9),
        })?;
    }
    println!("Done!");
    let epochs = log.epochs().to_vec();
    let final_accuracy = epochs.last().map(|m| m.test_accuracy).unwrap_or(0.0);
    let summary = RunSummary {
        dir: dir.clone(),
        weights,
        epochs,
        final_accuracy,
        num_params: store.num_params(),
    };
    let path = dir.join("summary.json");
    let json =
        serde_json::to_string_pretty(&summary).map_err(|e| TrainError::Config(e.to_string()))?;
    std::fs::write(&path, json + "\n").map_err(TrainError::io(&path))?;
    Ok(summary)
}

/// Evaluation options for [`eval_weights`].
#[derive(Clone, Debug)]
pub struct EvalConfig {
    /// Registry name of the model.
    pub model: String,
    /// Data set name.
    pub dataset: String,
    /// Batch size.
    pub batch_size: usize,
    /// `Normalize(mean, std)`, if the model was trained with it.
    pub normalize: Option<[f32; 2]>,
    /// Where the data set is.
    pub data_dir: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
}

/// Loads `weights` (a safetensors file with the model's PyTorch parameter names) into the model
/// and evaluates it on the test split.
pub fn eval_weights(cfg: &EvalConfig, weights: &Path) -> Result<EvalResult> {
    let kind: DatasetKind = cfg
        .dataset
        .parse()
        .map_err(|_| TrainError::Config(format!("unknown data set `{}`", cfg.dataset)))?;
    let device = parse_device(&cfg.device)?;
    let store = ParamStore::new(0, &device);
    let model = convnets_zoo::build(&cfg.model, store.vb())?;
    store.load(weights, true)?;
    let data = load_dataset(kind, cfg.data_dir.as_deref(), false)?;
    let test_b = batcher(&data.test, cfg.normalize, cfg.batch_size, None, &device)?;
    evaluate(model.as_ref(), &test_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamp_shape() {
        let s = utc_stamp();
        assert_eq!(s.len(), 15, "{s}");
        assert!(s.starts_with("20") && s.as_bytes()[8] == b'-');
    }

    #[test]
    fn rejects_bad_configs() {
        let mut c = TrainConfig::seed000();
        c.model = "vgg99".into();
        assert!(train(&c)
            .unwrap_err()
            .to_string()
            .contains("unknown model `vgg99`"));
        let mut c = TrainConfig::seed000();
        c.dataset = "cifar100".into();
        assert!(train(&c)
            .unwrap_err()
            .to_string()
            .contains("unknown data set `cifar100`"));
    }
}
