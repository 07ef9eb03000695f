//! Runs by configuration: [`TrainConfig`] (a registry model, a data set and a recipe; TOML in
//! the run folder), [`train`], [`resume`] and [`eval_weights`] — the thin layer the command
//! line uses on top of [`Trainer`](crate::Trainer) — and [`RunDir`], the observer that keeps
//! a run folder.
//!
//! A run folder holds:
//!
//! | file | what |
//! | --- | --- |
//! | `config.toml` | the configuration it ran with (`convnets train --config FILE` reruns it) |
//! | `metrics.csv`, `metrics.jsonl` | one row per finished epoch |
//! | `accuracy.png/.svg`, `loss.png/.svg` | the curves per epoch |
//! | `model.safetensors` | the latest weights (PyTorch `state_dict()` names, with metadata) |
//! | `last.safetensors` | the latest checkpoint (weights, optimizer, schedule, position, RNG) |
//! | `best.safetensors` | the checkpoint of the epoch with the lowest monitored loss |
//! | `summary.json` | how the run ended |
//!
//! Every file is written atomically, and `last.safetensors` is written after the epoch's other
//! files: it is the commit point. It records the metrics rows it matches, so [`resume`]
//! rewrites the metrics, plots and weights from it and trusts nothing else.

use crate::checkpoint::Checkpoint;
use crate::distributed::{DataParallel, DistributedError, ShardedBatches};
use crate::fsutil::{clean_temp_files, write_atomic};
use crate::loss::Loss;
use crate::metrics::{write_metrics, EpochMetrics};
use crate::observer::{ArticlePrinter, EarlyStopping, EpochEnd, Observer, StopReason};
use crate::optim::OptimizerConfig;
use crate::schedule::{LrScheduler, ScheduleConfig};
use crate::trainer::{evaluate_with, BatchSource, EvalResult, Trainer};
use crate::{parse_device, plot, Result, TrainError};
use candle_core::{Device, Tensor};
use convnets_data::{Augment, Batcher, Dataset, DatasetKind, DatasetSpec, Normalize, Split};
use convnets_layers::ParamStore;
use convnets_zoo::ModelInfo;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A training run by names: written to `config.toml` in its run folder, readable back, and
/// rerunnable. Build one from a recipe ([`crate::recipe`]) and change what you need.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Registry name of the model (`lenet5`, `mnist-net`, …).
    pub model: String,
    /// Data set: `fashion-mnist`, `mnist`, `cifar10`, or `folder:PATH` (your own images, one
    /// folder per class; see [`convnets_data::folder`]).
    pub dataset: String,
    /// Number of epochs.
    pub epochs: usize,
    /// Mini-batch size (training and evaluation).
    pub batch_size: usize,
    /// Seed of the initialisation, the shuffling, the validation split and dropout: the same
    /// seed repeats a CPU run exactly (on the same number of threads).
    pub seed: u64,
    /// `Normalize(mean, std)` after `ToTensor` (one pair, or one per channel), if any.
    /// Written `[mean, std]` or `{ mean = [..], std = [..] }`.
    pub normalize: Option<Normalize>,
    /// Hold out this many training images (seeded) as the validation set.
    #[serde(default)]
    pub val_split: Option<usize>,
    /// Stop when the monitored loss has not improved for this many epochs.
    #[serde(default)]
    pub early_stop: Option<usize>,
    /// Clip the gradients' global norm to this value.
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// Train on the first N training images only (quick checks); `None` uses them all.
    #[serde(default)]
    pub train_limit: Option<usize>,
    /// Where the data set is (see `convnets_data::locate`); `None` searches the defaults.
    pub data_dir: Option<PathBuf>,
    /// Download the data set into the default root when it is not found.
    pub download: bool,
    /// The folder in which the run folder is created.
    pub out: PathBuf,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Print the loss every this many batches (seed 000: 100).
    pub log_every: usize,
    /// The optimizer and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule, if any.
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
    /// The loss.
    #[serde(default)]
    pub loss: Loss,
    /// Random augmentation of the training images (crop with padding, horizontal flip); the
    /// validation and test images are never augmented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<Augment>,
    /// Threads that build the training batches ahead of the loop (0: the loop builds them);
    /// the batches, and so the run, are the same with any number.
    #[serde(default)]
    pub workers: usize,
    /// With `--dataset folder:PATH`: skip images that cannot be decoded (counted and listed
    /// on stderr) instead of failing on the first one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_bad: bool,
    /// The number of data-parallel ranks the run trains on (`None`: one process); each rank
    /// takes `batch_size` images of every global batch of `batch_size × ranks`. Set by
    /// [`train_with`] from the launch, checked by [`resume_with`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranks: Option<usize>,
    /// Start from these weights (fine-tuning): a safetensors file with the model's parameter
    /// names (a torchvision or timm `state_dict`, a convnets `model.safetensors`) or a convnets
    /// checkpoint. Every parameter must be in it with its shape, except the classifier's when
    /// [`TrainConfig::replace_head`] is set. A resumed run takes its weights from its
    /// checkpoint instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_weights: Option<PathBuf>,
    /// Replace the model's classifier ([`ModelInfo::head`]) by a new one with this many
    /// outputs, initialised as the model initialises it (torchvision's `model.fc =
    /// nn.Linear(512, N)`); the weights of [`TrainConfig::init_weights`] fill the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_head: Option<usize>,
    /// Train the classifier only: every other parameter keeps the values of
    /// [`TrainConfig::init_weights`] (no gradient, no optimizer state; see
    /// [`ParamStore::freeze`]). Batch norm's running statistics still follow the new data,
    /// as in PyTorch with `requires_grad_(False)`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freeze_backbone: bool,
}

impl TrainConfig {
    /// The data set kind, or an error listing the known ones (also for `folder:PATH`, which
    /// is no known data set; see [`TrainConfig::dataset_spec`]).
    pub fn dataset_kind(&self) -> Result<DatasetKind> {
        self.dataset
            .parse::<DatasetKind>()
            .map_err(|e| TrainError::Config(e.to_string()))
    }

    /// The number of outputs of the model's classifier: [`TrainConfig::replace_head`], else
    /// the registry's.
    pub fn num_classes(&self) -> Result<usize> {
        Ok(self
            .replace_head
            .unwrap_or(model_info(&self.model)?.classes))
    }

    /// What `dataset` names: a known data set or a folder of images.
    pub fn dataset_spec(&self) -> Result<DatasetSpec> {
        self.dataset
            .parse::<DatasetSpec>()
            .map_err(|e| TrainError::Config(e.to_string()))
    }

    /// Checks every value before anything is loaded or written: the model and data set exist,
    /// the model's input fits the data set's images, the numbers are in range. Images of a
    /// `folder:PATH` data set are fitted to the model's input.
    pub fn validate(&self) -> Result<DatasetSpec> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1".into());
        }
        if self.epochs == 0 {
            return bad("--epochs must be at least 1".into());
        }
        if self.train_limit == Some(0) {
            return bad("--limit 0 leaves no training image".into());
        }
        if let Some(c) = self.clip_grad_norm {
            if !c.is_finite() || c <= 0.0 {
                return bad(format!("--clip-grad-norm must be finite and > 0, got {c}"));
            }
        }
        if self.early_stop == Some(0) {
            return bad("--early-stop needs a patience of at least 1 epoch".into());
        }
        let Some(info) = convnets_zoo::find(&self.model) else {
            return bad(convnets_zoo::unknown_model_message(&self.model));
        };
        if self.replace_head == Some(0) {
            return bad("--replace-head needs at least 1 class".into());
        }
        if let Some(w) = &self.init_weights {
            if !w.is_file() {
                return bad(format!("--weights {}: no such file", w.display()));
            }
        } else if self.freeze_backbone {
            return bad(
                "--freeze-backbone keeps the backbone's weights as they are: give the pretrained weights (--weights)"
                    .into(),
            );
        }
        let spec = self.dataset_spec()?;
        if let DatasetSpec::Known(kind) = &spec {
            check_classes(&spec, info, self.num_classes()?, kind.classes().len())?;
        }
        let [c, h, w] = input_shape(&spec, info);
        // Models with adaptive pooling (the ImageNet ResNets, GoogLeNet) also take their small
        // input, e.g. CIFAR-10's 32x32 images.
        if info.input != [c, h, w] && info.small_input != [c, h, w] {
            return bad(format!(
                "model `{}` takes {}x{}x{} inputs but data set `{spec}` has {c}x{h}x{w} images",
                self.model, info.input[0], info.input[1], info.input[2],
            ));
        }
        if let DatasetSpec::Folder(p) = &spec {
            if !p.is_dir() {
                return bad(format!(
                    "--dataset {spec}: no such folder (expected PATH/<class>/*.png, or PATH/train/<class>/ and PATH/val/<class>/)"
                ));
            }
        } else if self.skip_bad {
            return bad(format!(
                "--skip-bad is for --dataset folder:PATH; data set `{spec}` is read whole or not at all"
            ));
        }
        if let Some(a) = &self.augment {
            if let Some(rc) = &a.resized_crop {
                rc.check().map_err(TrainError::Config)?;
            }
            if a.crop_padding > h.min(w) {
                return bad(format!(
                    "random crop padding {} is larger than the {h}x{w} images",
                    a.crop_padding
                ));
            }
        }
        if let Some(n) = self.normalize {
            if !n.fits(c) {
                return bad(format!(
                    "--normalize {n} gives statistics for {} channels but data set `{}` has {c}-channel images",
                    n.channels(),
                    self.dataset
                ));
            }
        }
        // The optimizer validates its hyper-parameters when built: build it on nothing.
        self.optimizer
            .build(Vec::new())
            .map_err(|e| TrainError::Config(format!("optimizer: {e}")))?;
        if let Some(s) = &self.schedule {
            LrScheduler::new(s, self.optimizer.lr(), self.epochs, 1)
                .map_err(|e| TrainError::Config(format!("schedule: {e}")))?;
        }
        Ok(spec)
    }

    /// The configuration as TOML (what `config.toml` holds).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| TrainError::Config(format!("config to TOML: {e}")))
    }

    /// Reads a configuration written by [`TrainConfig::to_toml`] (unknown keys are errors).
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(TrainError::io(path))?;
        toml::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))
    }
}

/// Bytes of memory a training step of `model` keeps per image, estimated from one forward
/// pass in eval mode (`summary`): every layer's output is kept for the backward pass and gets a
/// gradient of the same size, plus about as much again for the convolutions' work buffers —
/// four `f32` copies of the activations. An estimate, for refusing impossible batch sizes
/// before anything is allocated, not a bound.
pub fn train_bytes_per_image(info: &ModelInfo) -> Result<u64> {
    let store = ParamStore::new(0, &Device::Cpu);
    let model = info.build(store.vb())?;
    let [c, h, w] = info.input;
    let s = convnets_layers::summary(&*model, &[1, c, h, w])?;
    let elems: u64 = s
        .rows
        .iter()
        .map(|r| r.output.iter().skip(1).product::<usize>() as u64)
        .sum::<u64>()
        + (c * h * w) as u64;
    Ok(elems * 4 * 4)
}

/// Memory the system can give a new allocation without swapping (`MemAvailable` of
/// `/proc/meminfo`), in bytes; `None` where that is not known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a batch whose training step would need more memory than `available` (bytes):
/// the error names the batch, the estimate and what is available, instead of the allocator
/// aborting the process mid-run. `None` skips the check.
pub fn check_batch_memory(info: &ModelInfo, batch: usize, available: Option<u64>) -> Result<()> {
    let Some(available) = available else {
        return Ok(());
    };
    let per_image = train_bytes_per_image(info)?;
    let need = per_image.saturating_mul(batch as u64);
    if need > available {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        return Err(TrainError::Config(format!(
            "--batch-size {batch}: a training step of `{}` on {batch} images needs about {:.1} GiB for activations ({:.2} MiB per image), more than the {:.1} GiB of memory available; use a smaller batch",
            info.name,
            gib(need),
            per_image as f64 / (1u64 << 20) as f64,
            gib(available)
        )));
    }
    Ok(())
}

/// The outcome of a finished (or stopped) run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run folder.
    pub dir: PathBuf,
    /// The final weights (`model.safetensors`).
    pub weights: PathBuf,
    /// Every epoch's metrics.
    pub epochs: Vec<EpochMetrics>,
    /// Test accuracy after the last epoch, in percent.
    pub final_accuracy: f64,
    /// The number of trainable parameters.
    pub trainable_params: usize,
    /// Why the run ended.
    pub stop: StopReason,
    /// The epoch with the lowest monitored loss, and that loss.
    pub best: Option<(usize, f64)>,
}

/// The observer that keeps a run folder: metrics and plots after every epoch, then the
/// weights, then the checkpoint (the commit point), then the best checkpoint.
#[derive(Debug)]
pub struct RunDir {
    dir: PathBuf,
    meta: HashMap<String, String>,
}

impl RunDir {
    /// Keeps the run folder `dir` (which must exist); `meta` goes into the header of every
    /// `model.safetensors` written (model name, data set, normalisation, class names).
    pub fn new(dir: &Path, meta: HashMap<String, String>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            meta,
        }
    }

    /// Writes the metrics files and the plots for `history` (a plot that cannot be drawn is
    /// a warning, not an error: the run goes on).
    pub fn write_history(&self, history: &[EpochMetrics]) -> Result<()> {
        write_metrics(&self.dir, history)?;
        if let Err(e) = plot::plot_all(&self.dir, history) {
            eprintln!("warning: {e}");
        }
        Ok(())
    }

    fn write_weights(&self, ckpt: &Checkpoint) -> Result<()> {
        let mut meta = self.meta.clone();
        meta.insert(
            "convnets.epochs_done".into(),
            ckpt.meta.position.epochs_done.to_string(),
        );
        if let Some(acc) = ckpt.meta.history.last().and_then(|m| m.test_accuracy) {
            meta.insert("convnets.test_accuracy".into(), format!("{acc}"));
        }
        let tensors: Vec<(String, Tensor)> = ckpt
            .model
            .iter()
            .map(|(n, t)| Ok((n.clone(), t.to_device(&Device::Cpu)?)))
            .collect::<candle_core::Result<_>>()?;
        let path = self.dir.join("model.safetensors");
        let bytes =
            safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))
                .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
        write_atomic(&path, &bytes)
    }
}

impl Observer for RunDir {
    fn name(&self) -> &str {
        "run_dir"
    }
    fn on_epoch_end(&mut self, ev: &EpochEnd) -> Result<crate::Control> {
        self.write_history(ev.history)?;
        Ok(crate::Control::Continue)
    }
    fn on_checkpoint(&mut self, ckpt: &Checkpoint, is_best: bool) -> Result<()> {
        self.write_weights(ckpt)?;
        ckpt.save(&self.dir.join("last.safetensors"))?;
        if is_best {
            ckpt.save(&self.dir.join("best.safetensors"))?;
        }
        Ok(())
    }
}

/// A new run folder `out/<model>-<dataset>-<UTC time>` (suffixed when it exists).
fn new_run_dir(cfg: &TrainConfig) -> Result<PathBuf> {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    // A folder data set is named by its last component, kept to characters safe in a name.
    let dataset = match cfg.dataset_spec() {
        Ok(DatasetSpec::Folder(p)) => {
            let name = p
                .canonicalize()
                .unwrap_or(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let safe: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("folder-{safe}")
        }
        _ => cfg.dataset.clone(),
    };
    let base = format!("{}-{dataset}-{stamp}", cfg.model);
    std::fs::create_dir_all(&cfg.out).map_err(TrainError::io(&cfg.out))?;
    for i in 0usize.. {
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

fn batcher(
    split: &Split,
    normalize: Option<Normalize>,
    batch: usize,
    shuffle: Option<u64>,
    dev: &Device,
) -> Result<Batcher> {
    Ok(Batcher::from_split(split, normalize, batch, shuffle, false)?.with_device(dev.clone()))
}

/// The shape `[c, h, w]` of the images a data set gives a model: a known data set's own, a
/// folder's fitted to the model's input.
fn input_shape(spec: &DatasetSpec, info: &ModelInfo) -> [usize; 3] {
    match spec {
        DatasetSpec::Known(kind) => {
            let (c, h, w) = kind.image_shape();
            [c, h, w]
        }
        DatasetSpec::Folder(_) => info.input,
    }
}

/// Reports the images a `folder:` data set skipped as unreadable.
fn report_skipped(skipped: &[(PathBuf, String)]) {
    if skipped.is_empty() {
        return;
    }
    eprintln!("skipped {} unreadable images (--skip-bad):", skipped.len());
    for (_, why) in skipped.iter().take(10) {
        eprintln!("  {why}");
    }
    if skipped.len() > 10 {
        eprintln!("  … and {} more", skipped.len() - 10);
    }
}

/// The model's description, or the error naming the unknown model.
fn model_info(name: &str) -> Result<&'static ModelInfo> {
    convnets_zoo::find(name)
        .ok_or_else(|| TrainError::Config(convnets_zoo::unknown_model_message(name)))
}

/// An error unless the model's `outputs` cover each of the data set's `classes`.
fn check_classes(
    spec: &DatasetSpec,
    info: &ModelInfo,
    outputs: usize,
    classes: usize,
) -> Result<()> {
    if classes > outputs {
        return Err(TrainError::Config(format!(
            "data set `{spec}` has {classes} classes but model `{}` has {outputs} outputs (a new classifier: --replace-head {classes})",
            info.name
        )));
    }
    Ok(())
}

/// The class names of a data set (read from the folder for `folder:PATH`).
fn class_names(spec: &DatasetSpec) -> Result<Vec<String>> {
    Ok(match spec {
        DatasetSpec::Known(kind) => kind.classes().iter().map(|c| c.to_string()).collect(),
        DatasetSpec::Folder(root) => {
            convnets_data::folder::class_names(&convnets_data::folder::train_dir(root))?
        }
    })
}

/// The held-out split a data set is evaluated on (the test split; a folder's `val/` or
/// `test/`), for `model`'s input.
fn eval_split(
    spec: &DatasetSpec,
    data_dir: Option<&Path>,
    info: &ModelInfo,
    outputs: usize,
) -> Result<Split> {
    match spec {
        DatasetSpec::Known(kind) => Ok(convnets_data::load_test(*kind, data_dir)?),
        DatasetSpec::Folder(root) => {
            let held = convnets_data::folder::load_held_out(
                root,
                info.input,
                &convnets_data::folder::FolderOptions::default(),
            )?;
            report_skipped(&held.skipped);
            check_classes(spec, info, outputs, held.classes.len())?;
            Ok(held.split)
        }
    }
}

/// The data of a run: training, optional validation, test.
struct RunData {
    train: Batcher,
    val: Option<Batcher>,
    test: Batcher,
    classes: Vec<String>,
}

/// The run's data; the training batches are global batches of `batch_size × ranks`.
fn run_data(cfg: &TrainConfig, spec: &DatasetSpec, device: &Device) -> Result<RunData> {
    // (training split, test split, class names, whether --val-split is still to be applied)
    let (mut train_split, test_split, classes, val_pending) = match spec {
        DatasetSpec::Known(kind) => {
            let data: Dataset =
                convnets_data::load_or_download(*kind, cfg.data_dir.as_deref(), cfg.download)?;
            let classes = data.class_names().iter().map(|c| c.to_string()).collect();
            (data.train, data.test, classes, true)
        }
        DatasetSpec::Folder(root) => {
            let info = model_info(&cfg.model)?;
            let opts = convnets_data::folder::FolderOptions {
                skip_bad: cfg.skip_bad,
            };
            let ds = convnets_data::folder::load_image_folder(root, info.input, &opts)?;
            report_skipped(&ds.skipped);
            check_classes(spec, info, cfg.num_classes()?, ds.classes.len())?;
            match ds.eval {
                Some(eval) => (ds.train, eval, ds.classes, true),
                None => {
                    // One set of images: --val-split holds out the images evaluated on.
                    let Some(n) = cfg.val_split else {
                        return Err(TrainError::Config(format!(
                            "--dataset {spec}: no PATH/train/ + PATH/val/ (or test/) folders, so nothing to evaluate on: give --val-split N to hold out N of its {} images",
                            ds.train.len
                        )));
                    };
                    let (t, v) = ds.train.split_off_validation(n, cfg.seed)?;
                    (t, v, ds.classes, false)
                }
            }
        }
    };
    if let Some(n) = cfg.train_limit {
        train_split.truncate(n);
    }
    let (train_split, val_split) = match cfg.val_split.filter(|_| val_pending) {
        Some(n) => {
            let (t, v) = train_split.split_off_validation(n, cfg.seed)?;
            (t, Some(v))
        }
        None => (train_split, None),
    };
    let mut train = batcher(
        &train_split,
        cfg.normalize,
        cfg.batch_size * cfg.ranks.unwrap_or(1).max(1),
        Some(cfg.seed),
        device,
    )?;
    if let Some(a) = cfg.augment {
        train = train.with_augment(a, cfg.seed);
    }
    train = train.with_workers(cfg.workers);
    let val = match &val_split {
        Some(v) => Some(batcher(v, cfg.normalize, cfg.batch_size, None, device)?),
        None => None,
    };
    let test = batcher(&test_split, cfg.normalize, cfg.batch_size, None, device)?;
    Ok(RunData {
        train,
        val,
        test,
        classes,
    })
}

/// The metadata `model.safetensors` carries: what the weights are and how to feed them.
fn weights_meta(cfg: &TrainConfig, classes: &[String]) -> HashMap<String, String> {
    let mut m = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("convnets.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("convnets.model".into(), cfg.model.clone()),
        ("convnets.dataset".into(), cfg.dataset.clone()),
        (
            "convnets.classes".into(),
            serde_json::to_string(classes).unwrap_or_default(),
        ),
    ]);
    if let Some(n) = cfg.normalize {
        m.insert("convnets.normalize".into(), n.to_string());
    }
    if let Some(info) = convnets_zoo::find(&cfg.model) {
        // How image files are fitted to the input: the data set's own images are (or, for a
        // folder, were made) the model's input size, so `predict` fits photos the same way.
        m.insert(
            "convnets.preprocess".into(),
            convnets_data::Preprocess::Fill.to_string(),
        );
        let [c, h, w] = cfg
            .dataset_spec()
            .map(|spec| input_shape(&spec, info))
            .unwrap_or(info.input);
        m.insert("convnets.input".into(), format!("{c}x{h}x{w}"));
        m.insert(
            "convnets.num_classes".into(),
            cfg.replace_head.unwrap_or(info.classes).to_string(),
        );
    }
    m
}

/// Where the run stands and the pieces to continue it, for [`train`] and [`resume`].
/// How a run is launched, for [`train_with`] and [`resume_with`].
#[derive(Debug, Default)]
pub struct RunOptions {
    /// A stop flag (see [`crate::interrupt`]): once raised, the run writes a checkpoint after
    /// the current batch and returns.
    pub stop: Option<Arc<AtomicBool>>,
    /// Train data-parallel with other ranks (see [`crate::distributed`]): rank 0 alone prints
    /// and writes the run folder; every rank returns the same summary.
    pub parallel: Option<DataParallel>,
}

fn run(
    cfg: &TrainConfig,
    dir: &Path,
    ckpt: Option<&Checkpoint>,
    opts: RunOptions,
) -> Result<RunSummary> {
    let RunOptions { stop, mut parallel } = opts;
    let root = parallel.as_ref().is_none_or(DataParallel::is_root);
    let spec = cfg.validate()?;
    // Data-parallel: each rank its own GPU (and NCCL for the gradients, feature `nccl`).
    let device = match &mut parallel {
        Some(dp) => dp.open_device(&cfg.device)?,
        None => parse_device(&cfg.device)?,
    };
    let data = run_data(cfg, &spec, &device)?;
    let store = ParamStore::new(cfg.seed, &device);
    convnets_layers::set_seed(cfg.seed); // dropout masks
    let info = model_info(&cfg.model)?;
    if cfg.freeze_backbone {
        store.freeze(move |name| !info.is_head(name));
    }
    let model = info.build_with_classes(store.vb(), cfg.num_classes()?)?;
    if let (Some(w), None) = (&cfg.init_weights, ckpt) {
        load_init_weights(&store, info, w, cfg.replace_head.is_some())?;
        if root {
            println!(
                "initial weights: {}{}{}",
                w.display(),
                match cfg.replace_head {
                    Some(n) => format!(", new classifier `{}` with {n} outputs", info.head),
                    None => String::new(),
                },
                if cfg.freeze_backbone {
                    ", everything else frozen"
                } else {
                    ""
                }
            );
        }
    }
    let params = crate::Params::from(&store);
    let optimizer = cfg.optimizer.build(params.trainable())?;
    let steps = data.train.len();
    let cfg_json =
        serde_json::to_value(cfg).map_err(|e| TrainError::Config(format!("config: {e}")))?;
    let run_dir = RunDir::new(dir, weights_meta(cfg, &data.classes));
    let mut trainer = Trainer::new(model.as_ref(), params.clone(), optimizer)
        .epochs(cfg.epochs)
        .loss(cfg.loss.clone())
        .test(&data.test)
        .config(cfg_json);
    if root {
        trainer = trainer.observer(ArticlePrinter::new(cfg.log_every).progress(true));
    }
    if let Some(s) = &cfg.schedule {
        let sched = LrScheduler::new(s, cfg.optimizer.lr(), cfg.epochs, steps)
            .map_err(|e| TrainError::Config(format!("schedule: {e}")))?;
        trainer = trainer.scheduler(sched);
    }
    if let Some(v) = &data.val {
        trainer = trainer.validation(v);
    }
    if let Some(c) = cfg.clip_grad_norm {
        trainer = trainer.clip_grad_norm(c);
    }
    if let Some(p) = cfg.early_stop {
        trainer = trainer.observer(EarlyStopping::new(p, 0.0)?);
    }
    if let Some(flag) = stop {
        trainer = trainer.stop_flag(flag);
    }
    if root {
        trainer = trainer.observer(run_dir);
    }
    let shard = match &parallel {
        Some(dp) => Some(ShardedBatches::new(
            &data.train,
            dp.rank(),
            dp.world_size(),
        )?),
        None => None,
    };
    let world = parallel.as_ref().map_or(1, DataParallel::world_size);
    if let Some(dp) = parallel {
        trainer = trainer.data_parallel(dp);
    }
    if let Some(ckpt) = ckpt {
        trainer.resume(ckpt)?;
    }
    let train_src: &dyn BatchSource = match &shard {
        Some(s) => s,
        None => &data.train,
    };
    if root && world > 1 {
        println!(
            "data-parallel on {world} ranks: {} images per rank, global batch {}",
            cfg.batch_size,
            cfg.batch_size * world
        );
    }
    if root {
        println!(
            "{} on {} ({} trainable parameters{}, {} train{} / {} test images) -> {}",
            cfg.model,
            spec,
            params.num_trainable(),
            match params.num_frozen() {
                0 => String::new(),
                n => format!(", {n} frozen"),
            },
            data.train.num_samples(),
            data.val
                .as_ref()
                .map(|v| format!(" / {} validation", v.num_samples()))
                .unwrap_or_default(),
            data.test.num_samples(),
            dir.display()
        );
    }
    let report = trainer.fit(train_src)?;
    if let Some(dp) = trainer.parallel().filter(|_| root && world > 1) {
        let t = dp.reduce_times();
        println!(
            "gradient all-reduce ({}): {:.3} MB per step, mean {:.2} ms over {} steps (waiting for the slowest rank included); parameters identical on all {world} ranks",
            dp.gradient_backend(),
            t.floats as f64 * 4.0 / 1e6,
            t.mean_ms(),
            t.calls
        );
    }
    let final_accuracy = report
        .history
        .last()
        .and_then(|m| m.test_accuracy)
        .unwrap_or(0.0);
    let summary = RunSummary {
        dir: dir.to_path_buf(),
        weights: dir.join("model.safetensors"),
        epochs: report.history,
        final_accuracy,
        trainable_params: params.num_trainable(),
        stop: report.stop,
        best: report.best,
    };
    if root {
        let json = serde_json::to_string_pretty(&summary)
            .map_err(|e| TrainError::Config(format!("summary: {e}")))?;
        write_atomic(&dir.join("summary.json"), (json + "\n").as_bytes())?;
    }
    Ok(summary)
}

/// Trains a registry model as `cfg` says, in a new run folder under `cfg.out` (see the module
/// documentation for its files), printing like seed 000. Everything is checked before the
/// folder is created.
pub fn train(cfg: &TrainConfig) -> Result<RunSummary> {
    train_with_stop(cfg, None)
}

/// [`train`] with a stop flag (see [`crate::interrupt`]): once raised, the run writes a
/// checkpoint after the current batch and returns; [`resume`] continues it.
pub fn train_with_stop(cfg: &TrainConfig, stop: Option<Arc<AtomicBool>>) -> Result<RunSummary> {
    train_with(
        cfg,
        RunOptions {
            stop,
            parallel: None,
        },
    )
}

/// [`train`] with a stop flag and, optionally, data parallelism ([`RunOptions`]). A
/// data-parallel run records its number of ranks in the configuration (`ranks`); rank 0
/// creates the run folder and tells the others its name.
pub fn train_with(cfg: &TrainConfig, mut opts: RunOptions) -> Result<RunSummary> {
    let mut cfg = cfg.clone();
    cfg.ranks = opts.parallel.as_ref().map(DataParallel::world_size);
    let cfg = &cfg;
    let spec = cfg.validate()?;
    // Once per run (it builds the model): the largest batch the run forms against the memory
    // available, before the run folder exists.
    if let Some(info) = convnets_zoo::find(&cfg.model) {
        let batch = cfg
            .batch_size
            .min(cfg.train_limit.unwrap_or(usize::MAX))
            .min(spec.kind().map_or(usize::MAX, |k| k.train_len()));
        check_batch_memory(info, batch, available_memory())?;
        if let Some(w) = &cfg.init_weights {
            check_init_weights(cfg, info, w)?;
        }
    }
    let dir = match &mut opts.parallel {
        Some(dp) => {
            let name = if dp.is_root() {
                let dir = new_run_dir(cfg)?;
                write_atomic(&dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
                dir.to_string_lossy().into_owned().into_bytes()
            } else {
                Vec::new()
            };
            PathBuf::from(String::from_utf8_lossy(&dp.broadcast_bytes(name)?).into_owned())
        }
        None => {
            let dir = new_run_dir(cfg)?;
            write_atomic(&dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
            dir
        }
    };
    run(cfg, &dir, None, opts)
}

/// Continues the run in folder `dir` from its last checkpoint: removes what a crash left
/// (temporary files), rewrites the metrics, plots and weights from the checkpoint, and trains
/// the remaining epochs. `epochs`, when given, changes the last epoch (to extend a finished
/// run). The weights at the end equal bit for bit those of an uninterrupted run (CPU, same
/// threads).
pub fn resume(
    dir: &Path,
    epochs: Option<usize>,
    stop: Option<Arc<AtomicBool>>,
) -> Result<RunSummary> {
    resume_with(
        dir,
        epochs,
        RunOptions {
            stop,
            parallel: None,
        },
    )
}

/// [`resume`] with a stop flag and, optionally, data parallelism ([`RunOptions`]): a run
/// trained on N ranks resumes on N ranks (every rank reads the run folder's checkpoint; rank
/// 0 alone repairs and writes the folder).
pub fn resume_with(dir: &Path, epochs: Option<usize>, opts: RunOptions) -> Result<RunSummary> {
    let root = opts.parallel.as_ref().is_none_or(DataParallel::is_root);
    if !dir.is_dir() {
        return Err(TrainError::Config(format!(
            "--resume {}: not a run folder",
            dir.display()
        )));
    }
    if root {
        clean_temp_files(dir)?;
    }
    let last = dir.join("last.safetensors");
    if !last.is_file() {
        return Err(TrainError::Config(format!(
            "--resume {}: no last.safetensors (the run stopped before its first checkpoint: start it again)",
            dir.display()
        )));
    }
    let ckpt = Checkpoint::load(&last)?;
    let mut cfg: TrainConfig = match &ckpt.meta.config {
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| TrainError::Checkpoint(format!("{}: config: {e}", last.display())))?,
        None => TrainConfig::from_toml_file(&dir.join("config.toml"))?,
    };
    let now = opts.parallel.as_ref().map_or(1, DataParallel::world_size);
    if cfg.ranks.unwrap_or(1) != now {
        return Err(DistributedError::WorldSize {
            run: cfg.ranks.unwrap_or(1),
            now,
        }
        .into());
    }
    if let Some(e) = epochs {
        cfg.epochs = e;
        if root {
            write_atomic(&dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
        }
    }
    // The checkpoint is the commit point: bring the other files back to what it says.
    let spec = cfg.validate()?;
    if !root {
        return run(&cfg, dir, Some(&ckpt), opts);
    }
    let classes = class_names(&spec)?;
    let run_dir = RunDir::new(dir, weights_meta(&cfg, &classes));
    run_dir.write_history(&ckpt.meta.history)?;
    run_dir.write_weights(&ckpt)?;
    let best = dir.join("best.safetensors");
    if let Some((best_epoch, _)) = ckpt.meta.best {
        let stale = match Checkpoint::load(&best) {
            Ok(b) => b.meta.position.epochs_done != best_epoch,
            Err(_) => true,
        };
        if stale && best_epoch == ckpt.meta.position.epochs_done && ckpt.meta.position.batch == 0 {
            ckpt.save(&best)?;
        }
    }
    run(&cfg, dir, Some(&ckpt), opts)
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
    /// `Normalize(mean, std)` (one pair, or one per channel), if the model was trained with it.
    pub normalize: Option<Normalize>,
    /// Where the data set is.
    pub data_dir: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
}

/// Loads `weights` (a safetensors file with the model's PyTorch parameter names, or a
/// convnets checkpoint) into the model and evaluates it on the test split: loss, top-1 and
/// top-5 accuracy, per-class accuracy and confusion matrix.
pub fn eval_weights(cfg: &EvalConfig, weights: &Path) -> Result<EvalResult> {
    let spec: DatasetSpec = cfg
        .dataset
        .parse()
        .map_err(|e: convnets_data::DataError| TrainError::Config(e.to_string()))?;
    if cfg.batch_size == 0 {
        return Err(TrainError::Config("--batch-size must be at least 1".into()));
    }
    let info = model_info(&cfg.model)?;
    if let Some(n) = cfg.normalize {
        let c = input_shape(&spec, info)[0];
        if !n.fits(c) {
            return Err(TrainError::Config(format!(
                "--normalize {n} gives statistics for {} channels but data set `{spec}` has {c}-channel images",
                n.channels()
            )));
        }
    }
    let device = parse_device(&cfg.device)?;
    let store = ParamStore::new(0, &device);
    let outputs = weights_num_classes(info, weights);
    let model = info.build_with_classes(store.vb(), outputs)?;
    load_weights(&store, weights)?;
    let test = eval_split(&spec, cfg.data_dir.as_deref(), info, outputs)?;
    let test_b = batcher(&test, cfg.normalize, cfg.batch_size, None, &device)?;
    evaluate_with(model.as_ref(), &test_b, &Loss::default())
}

/// The class names of `weights`: those its metadata carries (`convnets.classes`), else those
/// of the data set `dataset` names (read from the folder for `folder:PATH`), else none.
pub fn weights_classes(weights: &Path, dataset: &str) -> Vec<String> {
    crate::checkpoint::read_metadata(weights)
        .ok()
        .and_then(|m| m.get("convnets.classes").cloned())
        .and_then(|c| serde_json::from_str(&c).ok())
        .or_else(|| {
            dataset
                .parse::<DatasetSpec>()
                .ok()
                .and_then(|s| class_names(&s).ok())
        })
        .unwrap_or_default()
}

/// One image's most likely classes, as [`predict_images`] returns them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The image file.
    pub image: PathBuf,
    /// The `top` most likely classes, most likely first: label, class name, probability.
    pub top: Vec<(usize, String, f32)>,
}

/// Classifies image files with the weights `weights` (see [`load_weights`]): each image is
/// decoded and prepared as the model's training data was (`convnets_data::load_image_with`:
/// the model's channels and size fitted by the weights' [`convnets_data::Preprocess`] —
/// torchvision's `Resize(256)` + `CenterCrop(224)` for the ImageNet models — then `ToTensor`
/// and `cfg.normalize`), run through the model in eval mode, and its `top` most likely classes
/// are returned with their softmax probabilities and the class names of the weights' metadata
/// (`convnets.classes`), else of `cfg.dataset` (ImageNet's 1000 for `imagenet`).
pub fn predict_images(
    cfg: &EvalConfig,
    weights: &Path,
    images: &[PathBuf],
    top: usize,
) -> Result<Vec<Prediction>> {
    let norm = cfg.normalize;
    let device = parse_device(&cfg.device)?;
    let store = ParamStore::new(0, &device);
    let header = convnets_zoo::read_header(weights).unwrap_or_default();
    let described = convnets_zoo::WeightsInfo::from_header(weights, &header, Some(&cfg.model))
        .map_err(|e| TrainError::Config(e.to_string()))?;
    let model = model_info(&cfg.model)?.build_with_classes(store.vb(), described.num_classes)?;
    load_weights(&store, weights)?;
    let meta = header.metadata;
    let classes: Vec<String> = if meta.contains_key("convnets.classes") {
        described.classes
    } else if let Ok(DatasetSpec::Folder(_)) = cfg.dataset.parse::<DatasetSpec>() {
        weights_classes(weights, &cfg.dataset)
    } else {
        convnets_zoo::saved::classes_of(&cfg.dataset)
    };
    let preprocess = described.preprocess;
    let [c, h, w] = described.input;
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(cfg.batch_size.max(1)) {
        let mut pixels = Vec::with_capacity(chunk.len() * c * h * w);
        for path in chunk {
            pixels.extend(convnets_data::load_image_with(
                path,
                [c, h, w],
                preprocess,
                norm,
            )?);
        }
        let x = Tensor::from_vec(pixels, (chunk.len(), c, h, w), &device)?;
        let probs = convnets_layers::no_grad(|| {
            let logits = model.forward_t(&x, false)?;
            candle_nn::ops::softmax(&logits, 1)
        })?
        .to_dtype(candle_core::DType::F32)?
        .to_vec2::<f32>()?;
        for (path, p) in chunk.iter().zip(probs) {
            let mut order: Vec<usize> = (0..p.len()).collect();
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
            let top = order
                .into_iter()
                .take(top.max(1))
                .map(|i| {
                    let name = classes.get(i).cloned().unwrap_or_else(|| i.to_string());
                    (i, name, p[i])
                })
                .collect();
            out.push(Prediction {
                image: path.clone(),
                top,
            });
        }
    }
    Ok(out)
}

/// Builds the model `name` with the classifier of the weights at `path`: as many outputs as
/// their `convnets.num_classes` metadata says, else as their head's weight has rows (a
/// fine-tuned PyTorch model), else the registry's number.
pub fn build_for_weights(
    name: &str,
    path: &Path,
    vb: candle_nn::VarBuilder,
) -> Result<Box<dyn convnets_zoo::Model>> {
    let info = model_info(name)?;
    Ok(info.build_with_classes(vb, weights_num_classes(info, path))?)
}

/// The number of outputs of the classifier of model `info` in the weights at `path` (see
/// [`build_for_weights`]).
pub fn weights_num_classes(info: &ModelInfo, path: &Path) -> usize {
    convnets_zoo::read_header(path)
        .ok()
        .and_then(|h| h.num_classes(info))
        .unwrap_or(info.classes)
}

/// Checks the header of the starting weights `path` against the model of `cfg` (names and
/// shapes, as [`load_init_weights`] will load them) without reading the tensors, so that a
/// file for another architecture fails before the run folder exists.
fn check_init_weights(cfg: &TrainConfig, info: &ModelInfo, path: &Path) -> Result<()> {
    let header = convnets_zoo::read_header(path).map_err(|e| TrainError::Config(e.to_string()))?;
    let checkpoint = header.metadata.contains_key(crate::checkpoint::META_KEY);
    let keep = |name: &str| !(cfg.replace_head.is_some() && info.is_head(name));
    let file: HashMap<&str, &Vec<usize>> = header
        .shapes
        .iter()
        .filter_map(|(n, s)| {
            let n = if checkpoint {
                n.strip_prefix(crate::checkpoint::MODEL_PREFIX)?
            } else {
                n.as_str()
            };
            keep(n).then_some((n, s))
        })
        .collect();
    let model = info.parameter_shapes(cfg.num_classes()?)?;
    let mut m = convnets_layers::Mismatch::default();
    for (name, shape) in model.iter().filter(|(n, _)| keep(n)) {
        match file.get(name.as_str()) {
            None => m.missing.push((name.clone(), shape.clone())),
            Some(&found) if found != shape => {
                m.shapes.push((name.clone(), shape.clone(), found.clone()))
            }
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = model.iter().map(|(n, _)| n.as_str()).collect();
    m.unexpected = file
        .iter()
        .filter(|(n, _)| !known.contains(*n))
        .map(|(n, s)| (n.to_string(), s.to_vec()))
        .collect();
    m.unexpected.sort();
    if m.is_empty() {
        return Ok(());
    }
    let hint = match (
        m.shapes.iter().any(|(n, ..)| info.is_head(n)),
        cfg.replace_head,
    ) {
        (true, None) => format!(
            " (a classifier for another number of classes: --replace-head {} starts a new one)",
            cfg.num_classes()?
        ),
        _ => String::new(),
    };
    Err(TrainError::Config(format!(
        "--weights {} does not fit model `{}`: {m}{hint}",
        path.display(),
        info.name
    )))
}

/// Loads the starting weights of a fine-tuning run into `store`: every parameter, or with
/// `new_head` every parameter but the classifier's (which keeps its fresh initialisation;
/// the file's classifier, for its own classes, is ignored). The file's other tensors must
/// all be the model's; NaN or infinite values are refused.
fn load_init_weights(
    store: &ParamStore,
    info: &ModelInfo,
    path: &Path,
    new_head: bool,
) -> Result<()> {
    let keep = |name: &str| !(new_head && info.is_head(name));
    if crate::checkpoint::is_checkpoint(path) {
        let ckpt = Checkpoint::load(path)?;
        let map: HashMap<String, Tensor> = ckpt.model.into_iter().collect();
        store.load_tensors_where(&map, path, true, &keep)?;
    } else {
        store.load_where(path, true, &keep)?;
    }
    check_finite(store, path)
}

/// Loads a weights file or a checkpoint's weights into `store` (every parameter must be there,
/// nothing else). Weights holding NaN or infinite values are refused: no model computes
/// anything meaningful from them.
pub fn load_weights(store: &ParamStore, path: &Path) -> Result<()> {
    if crate::checkpoint::is_checkpoint(path) {
        let ckpt = Checkpoint::load(path)?;
        let map: HashMap<String, Tensor> = ckpt.model.into_iter().collect();
        store.load_tensors(&map, path, true)?;
    } else {
        store.load(path, true)?;
    }
    check_finite(store, path)
}

/// An error naming the first tensor of `store` that holds NaN or infinite values (loaded
/// from `path`).
fn check_finite(store: &ParamStore, path: &Path) -> Result<()> {
    for (name, var) in store.named_vars() {
        let bad = var
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?
            .iter()
            .filter(|v| !v.is_finite())
            .count();
        if bad > 0 {
            return Err(TrainError::Config(format!(
                "{}: tensor `{name}` holds {bad} NaN or infinite values: these weights cannot be evaluated",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Evaluates the weights `paths` (each with its [`EvalConfig`]; all on one data set) one by
/// one and as an ensemble averaging their softmax outputs (seed 002's ensembles): each
/// member's result and the ensemble's.
pub fn eval_ensemble(
    cfgs: &[EvalConfig],
    paths: &[PathBuf],
) -> Result<(Vec<EvalResult>, EvalResult)> {
    let Some(first) = cfgs.first() else {
        return Err(TrainError::Config(
            "an ensemble needs at least one model".into(),
        ));
    };
    if cfgs.len() != paths.len() {
        return Err(TrainError::Config(format!(
            "{} configurations for {} weight files",
            cfgs.len(),
            paths.len()
        )));
    }
    for c in cfgs {
        if (c.dataset.as_str(), c.normalize) != (first.dataset.as_str(), first.normalize) {
            return Err(TrainError::Config(format!(
                "ensemble members disagree on the data set or normalisation: {} {:?} vs {} {:?}",
                first.dataset, first.normalize, c.dataset, c.normalize
            )));
        }
    }
    let spec: DatasetSpec = first
        .dataset
        .parse()
        .map_err(|e: convnets_data::DataError| TrainError::Config(e.to_string()))?;
    let info = model_info(&first.model)?;
    let device = parse_device(&first.device)?;
    let mut models = Vec::new();
    for (c, p) in cfgs.iter().zip(paths) {
        let store = ParamStore::new(0, &device);
        let model = build_for_weights(&c.model, p, store.vb())?;
        load_weights(&store, p)?;
        models.push(model);
    }
    let outputs = weights_num_classes(info, &paths[0]);
    let test = eval_split(&spec, first.data_dir.as_deref(), info, outputs)?;
    let test_b = batcher(
        &test,
        first.normalize,
        first.batch_size.max(1),
        None,
        &device,
    )?;
    let members: Vec<&dyn candle_core::ModuleT> = models
        .iter()
        .map(|m| m.as_ref() as &dyn candle_core::ModuleT)
        .collect();
    crate::trainer::Ensemble::new(members)?.evaluate(&test_b)
}
