//! The command line's arguments and how they become library configurations.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use convnets::data::{Augment, DatasetSpec, Normalize, ResizedCrop};
use convnets::train::optim::{AdamConfig, AdamWConfig, OptimizerConfig, RmsPropConfig, SgdConfig};
use convnets::train::schedule::{ScheduleConfig, ScheduleKind};
use convnets::train::{EvalConfig, Loss, TrainConfig};
use convnets::zoo::HubWeights;
use std::path::{Path, PathBuf};

/// An input shape given on the command line (`1,3,227,227`).
#[derive(Clone, Debug)]
pub struct Shape(pub Vec<usize>);

/// Parses `1,3,227,227`.
pub fn parse_shape(s: &str) -> Result<Shape, String> {
    let dim = |d: &str| {
        d.trim()
            .parse::<usize>()
            .map_err(|e| format!("`{d}` in `{s}`: {e}"))
    };
    let dims: Vec<usize> = s.split(',').map(dim).collect::<Result<_, _>>()?;
    if dims.is_empty() || dims.contains(&0) {
        return Err(format!(
            "expected positive dimensions like 1,3,227,227, got `{s}`"
        ));
    }
    Ok(Shape(dims))
}

/// Parses `A,B` into two finite numbers.
pub fn parse_pair(s: &str) -> Result<[f32; 2], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let num = |v: &str| -> Result<f32, String> {
        let x: f32 = v.parse().map_err(|e| format!("`{v}`: {e}"))?;
        if x.is_finite() {
            Ok(x)
        } else {
            Err(format!("`{v}` is not a finite number"))
        }
    };
    match parts.as_slice() {
        [a, b] => Ok([num(a)?, num(b)?]),
        _ => Err(format!("expected MEAN,STD, got `{s}`")),
    }
}

/// Parses `--normalize`: `MEAN,STD` or per channel `M1,M2,M3/S1,S2,S3`.
pub fn parse_normalize(s: &str) -> Result<Normalize, String> {
    s.parse()
}

/// Parses a finite, non-negative `f32`.
fn parse_nonneg_f32(s: &str) -> Result<f32, String> {
    parse_nonneg(s).map(|x| x as f32)
}

/// Parses a finite, non-negative number.
fn parse_nonneg(s: &str) -> Result<f64, String> {
    let x: f64 = s.trim().parse().map_err(|e| format!("`{s}`: {e}"))?;
    if x.is_finite() && x >= 0.0 {
        Ok(x)
    } else {
        Err(format!("`{s}`: expected a finite number >= 0"))
    }
}

/// Parses `a,b,c` epochs.
fn parse_list(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|v| v.trim().parse::<usize>().map_err(|e| format!("`{v}`: {e}")))
        .collect()
}

/// `--optimizer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerName {
    /// torch.optim.SGD (momentum, dampening, Nesterov, weight decay).
    Sgd,
    /// torch.optim.Adam.
    Adam,
    /// torch.optim.AdamW (decoupled weight decay).
    Adamw,
    /// torch.optim.RMSprop.
    Rmsprop,
}

/// `--scheduler`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SchedulerName {
    /// StepLR: lr × gamma every --step-size epochs.
    Step,
    /// MultiStepLR: lr × gamma at each of --milestones.
    Multistep,
    /// CosineAnnealingLR over --t-max epochs (default: all) down to --eta-min.
    Cosine,
    /// OneCycleLR per batch up to --max-lr (default: --lr) and down again.
    Onecycle,
    /// ReduceLROnPlateau: lr × --factor when the monitored loss stalls for --patience epochs.
    Plateau,
}

/// `--loss`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossName {
    /// Cross-entropy (with --label-smoothing).
    CrossEntropy,
    /// Negative log-likelihood of log-probability outputs.
    Nll,
    /// Mean squared error against the one-hot labels.
    Mse,
    /// Mean absolute error against the one-hot labels.
    L1,
    /// Euclidean distance to the one-hot labels (seed 004's L2 loss).
    L2,
}

/// `convnets train`.
#[derive(Args, Debug, Default, Clone)]
pub struct TrainArgs {
    /// Start from a named recipe (see `convnets models`); flags change it.
    #[arg(long)]
    pub recipe: Option<String>,
    /// Start from a run's config.toml (rerun it); flags change it.
    #[arg(long, conflicts_with = "recipe")]
    pub config: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint (only --epochs may change).
    #[arg(long, conflicts_with_all = ["recipe", "config"])]
    pub resume: Option<PathBuf>,
    /// Train data-parallel with the other ranks of an MPI job (`mpirun -np N convnets train
    /// --distributed …`; needs a build with the `mpi` feature): --batch-size images per rank,
    /// a global batch of N times that; rank 0 prints and writes the run folder. With
    /// --device cuda, one GPU per rank (its local rank's), gradients over NCCL (feature `nccl`).
    #[arg(long)]
    pub distributed: bool,
    /// With --distributed: end with an error when one exchange with the other ranks waits
    /// longer than SECS (a rank that hangs without dying) [default: 300].
    #[arg(long, value_name = "SECS", requires = "distributed")]
    pub collective_timeout: Option<f64>,
    /// Model name (see `convnets models`); default: the recipe's (lenet5).
    #[arg(long)]
    pub model: Option<String>,
    /// Data set: mnist, fashion-mnist, cifar10, or folder:PATH (your images: PATH/train/<class>/
    /// and PATH/val/<class>/, or PATH/<class>/ with --val-split); default: the recipe's.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Number of epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Optimizer (its PyTorch defaults, then the flags below).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerName>,
    /// Learning rate.
    #[arg(long, value_parser = parse_nonneg)]
    pub lr: Option<f64>,
    /// Momentum (sgd, rmsprop), in [0, 1).
    #[arg(long, value_parser = parse_nonneg)]
    pub momentum: Option<f64>,
    /// Nesterov momentum (sgd).
    #[arg(long)]
    pub nesterov: bool,
    /// Weight decay (L2 penalty; decoupled for adamw).
    #[arg(long, value_parser = parse_nonneg)]
    pub weight_decay: Option<f64>,
    /// Adam's betas, B1,B2.
    #[arg(long, value_parser = parse_pair)]
    pub betas: Option<[f32; 2]>,
    /// Learning-rate schedule.
    #[arg(long, value_enum)]
    pub scheduler: Option<SchedulerName>,
    /// step: epochs between decays.
    #[arg(long)]
    pub step_size: Option<usize>,
    /// step, multistep: the decay factor (default 0.1).
    #[arg(long, value_parser = parse_nonneg)]
    pub gamma: Option<f64>,
    /// multistep: the epochs after which to decay, e.g. 10,15.
    #[arg(long, value_parser = parse_list)]
    pub milestones: Option<Vec<usize>>,
    /// cosine: epochs of the half cosine (default: --epochs).
    #[arg(long)]
    pub t_max: Option<usize>,
    /// cosine: the last learning rate (default 0).
    #[arg(long, value_parser = parse_nonneg)]
    pub eta_min: Option<f64>,
    /// onecycle: the peak learning rate (default: --lr).
    #[arg(long, value_parser = parse_nonneg)]
    pub max_lr: Option<f64>,
    /// plateau: epochs without improvement before a decay (default 10).
    #[arg(long)]
    pub patience: Option<usize>,
    /// plateau: the decay factor (default 0.1, seed 002's "divide by 10").
    #[arg(long, value_parser = parse_nonneg)]
    pub factor: Option<f64>,
    /// Linear warmup over this many epochs before the schedule (from lr/3 to lr).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Loss.
    #[arg(long, value_enum)]
    pub loss: Option<LossName>,
    /// Cross-entropy label smoothing, in [0, 1].
    #[arg(long, value_parser = parse_nonneg)]
    pub label_smoothing: Option<f64>,
    /// Clip the gradients' global L2 norm to this value.
    #[arg(long, value_parser = parse_nonneg)]
    pub clip_grad_norm: Option<f64>,
    /// Hold out this many training images (seeded) as a validation set.
    #[arg(long)]
    pub val_split: Option<usize>,
    /// Stop when the monitored loss (validation, else test) has not improved for N epochs.
    #[arg(long)]
    pub early_stop: Option<usize>,
    /// Seed of initialisation, shuffling, validation split and dropout.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Normalize(mean, std) after ToTensor: MEAN,STD (e.g. 0.1307,0.3081) or per channel
    /// M1,M2,M3/S1,S2,S3.
    #[arg(long, value_parser = parse_normalize)]
    pub normalize: Option<Normalize>,
    /// Folder holding the data set (its files, or a subfolder named after it).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where run folders are created (default runs/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Print the loss every N batches (0: never).
    #[arg(long)]
    pub log_every: Option<usize>,
    /// Never download: missing data is an error, and hub: weights come from the Hugging Face
    /// cache only.
    #[arg(long)]
    pub offline: bool,
    /// Train on the first N training images only (a quick check).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Augment the training images the usual way for the data set: a random crop with 2
    /// pixels of padding, plus horizontal flips for Fashion-MNIST (not for digits).
    #[arg(long)]
    pub augment: bool,
    /// RandomCrop: pad the training images by N pixels and crop them back at random.
    #[arg(long, value_name = "N")]
    pub random_crop: Option<usize>,
    /// RandomHorizontalFlip (probability 0.5) of the training images.
    #[arg(long)]
    pub hflip: bool,
    /// RandomResizedCrop: crop a random part (area MIN_SCALE..1 of the image, aspect ratio
    /// 3/4..4/3) and scale it back to the image's size, e.g. 0.08 (torchvision's default).
    #[arg(long, value_name = "MIN_SCALE", value_parser = parse_nonneg_f32)]
    pub random_resized_crop: Option<f32>,
    /// Threads that build the training batches ahead of the loop (0: the loop builds them;
    /// results are the same with any number).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// With --dataset folder:PATH, skip images that cannot be decoded (listed at the start)
    /// instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
    /// Start from these weights (fine-tuning): a safetensors file with the model's parameter
    /// names (torchvision, timm or convnets), a checkpoint, the name of shipped weights, or
    /// hub:OWNER/REPO[@REVISION][:FILE].
    #[arg(long, value_name = "WEIGHTS")]
    pub weights: Option<PathBuf>,
    /// A new classifier with N outputs (the data set's classes) in place of the model's; the
    /// rest comes from --weights.
    #[arg(long, value_name = "N")]
    pub replace_head: Option<usize>,
    /// Train the classifier only: every other parameter keeps the values of --weights.
    #[arg(long, requires = "weights")]
    pub freeze_backbone: bool,
    /// No augmentation, even if the recipe or --config has one.
    #[arg(long, conflicts_with_all = ["augment", "random_crop", "hflip", "random_resized_crop"])]
    pub no_augment: bool,
}

impl TrainArgs {
    /// With --resume, every flag but --epochs is an error: the run goes on with its own
    /// configuration.
    pub fn check_resume(&self) -> Result<()> {
        let rest = TrainArgs {
            resume: None,
            epochs: None,
            ..Default::default()
        };
        let mine = TrainArgs {
            resume: None,
            epochs: None,
            distributed: false,
            collective_timeout: None,
            ..self.clone()
        };
        if format!("{mine:?}") != format!("{rest:?}") {
            bail!("--resume continues a run with the configuration in its folder: only --epochs (and --distributed, --collective-timeout) may be given with it")
        }
        Ok(())
    }

    /// The run's configuration: the base (--config, else --recipe, else the model's recipe),
    /// then every flag given.
    pub fn config(&self) -> Result<TrainConfig> {
        let mut c = match (&self.config, &self.recipe) {
            (Some(path), _) => TrainConfig::from_toml_file(path)?,
            (None, Some(name)) => convnets::train::recipe(name)?,
            (None, None) => match &self.model {
                Some(m) => convnets::train::recipe::default_for_model(m),
                None => convnets::train::recipe::lenet5_fashion_mnist(),
            },
        };
        if let Some(m) = &self.model {
            c.model = m.clone();
        }
        if let Some(d) = &self.dataset {
            c.dataset = d.clone();
        }
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => {$(if let Some(v) = self.$flag.clone() { c.$field = v; })*};
        }
        set!(epochs => epochs, batch_size => batch_size, seed => seed, out => out,
             device => device, log_every => log_every, workers => workers);
        if self.normalize.is_some() {
            c.normalize = self.normalize;
        }
        if self.data_dir.is_some() {
            c.data_dir = self.data_dir.clone();
        }
        if self.val_split.is_some() {
            c.val_split = self.val_split;
        }
        if self.early_stop.is_some() {
            c.early_stop = self.early_stop;
        }
        if self.clip_grad_norm.is_some() {
            c.clip_grad_norm = self.clip_grad_norm;
        }
        if self.limit.is_some() {
            c.train_limit = self.limit;
        }
        if self.offline {
            c.download = false;
        }
        if self.skip_bad {
            c.skip_bad = true;
        }
        if let Some(w) = &self.weights {
            c.init_weights = Some(weights_file(w, self.offline)?);
        }
        if self.replace_head.is_some() {
            c.replace_head = self.replace_head;
        }
        c.freeze_backbone |= self.freeze_backbone;
        if self.no_augment {
            c.augment = None;
        } else if self.augment
            || self.random_crop.is_some()
            || self.hflip
            || self.random_resized_crop.is_some()
        {
            let mut a = if self.augment {
                match c
                    .dataset
                    .parse::<DatasetSpec>()
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                {
                    DatasetSpec::Known(kind) => Augment::default_for(kind),
                    // Photos: torchvision's usual RandomResizedCrop + flips.
                    DatasetSpec::Folder(_) => Augment {
                        crop_padding: 0,
                        hflip: true,
                        resized_crop: Some(ResizedCrop::default()),
                    },
                }
            } else {
                c.augment.unwrap_or_default()
            };
            if let Some(p) = self.random_crop {
                a.crop_padding = p;
            }
            if let Some(min) = self.random_resized_crop {
                a.resized_crop = Some(ResizedCrop {
                    scale: [min, 1.0],
                    ..ResizedCrop::default()
                });
            }
            a.hflip |= self.hflip;
            c.augment = Some(a);
        }
        c.optimizer = self.optimizer(c.optimizer)?;
        c.schedule = self.schedule(c.schedule.take(), c.optimizer.lr())?;
        c.loss = self.loss_config(c.loss.clone())?;
        c.validate()?;
        Ok(c)
    }

    fn optimizer(&self, base: OptimizerConfig) -> Result<OptimizerConfig> {
        let mut o = match self.optimizer {
            None => base,
            Some(OptimizerName::Sgd) => OptimizerConfig::Sgd(SgdConfig::default()),
            Some(OptimizerName::Adam) => OptimizerConfig::Adam(AdamConfig::default()),
            Some(OptimizerName::Adamw) => OptimizerConfig::AdamW(AdamWConfig::default()),
            Some(OptimizerName::Rmsprop) => OptimizerConfig::RmsProp(RmsPropConfig::default()),
        };
        if let Some(lr) = self.lr {
            o.set_lr(lr);
        }
        let name = o.name();
        let only = |flag: &str, which: &str| -> Result<()> {
            bail!("{flag} applies to {which}, not to the `{name}` optimizer")
        };
        match &mut o {
            OptimizerConfig::Sgd(s) => {
                if let Some(m) = self.momentum {
                    s.momentum = m;
                }
                if let Some(w) = self.weight_decay {
                    s.weight_decay = w;
                }
                s.nesterov |= self.nesterov;
                if self.betas.is_some() {
                    only("--betas", "adam and adamw")?;
                }
            }
            OptimizerConfig::Adam(a) => {
                if let Some(w) = self.weight_decay {
                    a.weight_decay = w;
                }
                if let Some([b1, b2]) = self.betas {
                    a.betas = (b1 as f64, b2 as f64);
                }
                if self.momentum.is_some() || self.nesterov {
                    only("--momentum/--nesterov", "sgd (and --momentum to rmsprop)")?;
                }
            }
            OptimizerConfig::AdamW(a) => {
                if let Some(w) = self.weight_decay {
                    a.weight_decay = w;
                }
                if let Some([b1, b2]) = self.betas {
                    a.betas = (b1 as f64, b2 as f64);
                }
                if self.momentum.is_some() || self.nesterov {
                    only("--momentum/--nesterov", "sgd (and --momentum to rmsprop)")?;
                }
            }
            OptimizerConfig::RmsProp(r) => {
                if let Some(m) = self.momentum {
                    r.momentum = m;
                }
                if let Some(w) = self.weight_decay {
                    r.weight_decay = w;
                }
                if self.nesterov || self.betas.is_some() {
                    only("--nesterov/--betas", "sgd / adam")?;
                }
            }
        }
        Ok(o)
    }

    fn schedule(&self, base: Option<ScheduleConfig>, lr: f64) -> Result<Option<ScheduleConfig>> {
        let given = |f: bool, flag: &str, which: SchedulerName| -> Result<()> {
            if f && self.scheduler != Some(which) {
                bail!(
                    "{flag} needs --scheduler {}",
                    format!("{which:?}").to_lowercase()
                )
            }
            Ok(())
        };
        given(self.step_size.is_some(), "--step-size", SchedulerName::Step)?;
        given(
            self.milestones.is_some(),
            "--milestones",
            SchedulerName::Multistep,
        )?;
        given(
            self.t_max.is_some() || self.eta_min.is_some(),
            "--t-max/--eta-min",
            SchedulerName::Cosine,
        )?;
        given(self.max_lr.is_some(), "--max-lr", SchedulerName::Onecycle)?;
        given(
            self.patience.is_some() || self.factor.is_some(),
            "--patience/--factor",
            SchedulerName::Plateau,
        )?;
        if self.gamma.is_some()
            && !matches!(
                self.scheduler,
                Some(SchedulerName::Step | SchedulerName::Multistep)
            )
        {
            bail!("--gamma needs --scheduler step or multistep")
        }
        let gamma = self.gamma.unwrap_or(0.1);
        let kind = match self.scheduler {
            None => {
                return match (base, self.warmup) {
                    (Some(mut s), Some(w)) => {
                        s.warmup_epochs = w;
                        Ok(Some(s))
                    }
                    (None, Some(_)) => bail!("--warmup needs a --scheduler"),
                    (base, None) => Ok(base),
                };
            }
            Some(SchedulerName::Step) => ScheduleKind::Step {
                step_size: self
                    .step_size
                    .context("--scheduler step needs --step-size N")?,
                gamma,
            },
            Some(SchedulerName::Multistep) => ScheduleKind::MultiStep {
                milestones: self
                    .milestones
                    .clone()
                    .context("--scheduler multistep needs --milestones A,B,…")?,
                gamma,
            },
            Some(SchedulerName::Cosine) => ScheduleKind::Cosine {
                t_max: self.t_max,
                eta_min: self.eta_min.unwrap_or(0.0),
            },
            // PyTorch's defaults for the parameters without a flag come from the config's serde
            // defaults.
            Some(SchedulerName::Onecycle) => serde_json::from_value(serde_json::json!({
                "name": "one_cycle",
                "max_lr": self.max_lr.unwrap_or(lr),
            }))?,
            Some(SchedulerName::Plateau) => serde_json::from_value(serde_json::json!({
                "name": "plateau",
                "factor": self.factor.unwrap_or(0.1),
                "patience": self.patience.unwrap_or(10),
            }))?,
        };
        Ok(Some(ScheduleConfig {
            kind,
            warmup_epochs: self.warmup.unwrap_or(0),
            ..Default::default()
        }))
    }

    fn loss_config(&self, base: Loss) -> Result<Loss> {
        let loss = match self.loss {
            None => base,
            Some(LossName::CrossEntropy) => Loss::default(),
            Some(LossName::Nll) => Loss::Nll,
            Some(LossName::Mse) => Loss::Mse,
            Some(LossName::L1) => Loss::L1,
            Some(LossName::L2) => Loss::L2,
        };
        match (self.label_smoothing, loss) {
            (None, loss) => Ok(loss),
            (Some(s), Loss::CrossEntropy { weight, .. }) => Ok(Loss::CrossEntropy {
                label_smoothing: s,
                weight,
            }),
            (Some(_), other) => bail!(
                "--label-smoothing applies to the cross-entropy loss, not to `{}`",
                other.name()
            ),
        }
    }
}

/// Which weights, and how to evaluate them: flags win, then the weights file's own metadata,
/// then a config beside it.
#[derive(Args, Debug, Clone)]
pub struct WeightsArgs {
    /// The weights: a safetensors file with PyTorch parameter names, a convnets checkpoint,
    /// the name of weights shipped in `weights/` (e.g. lenet5-bn-fashion-mnist), or a file on
    /// the Hugging Face hub, hub:OWNER/REPO[@REVISION][:FILE] (default model.safetensors),
    /// downloaded once into the cache of HF_HOME from HF_ENDPOINT.
    #[arg(long)]
    pub weights: PathBuf,
    /// Model name; default: from the weights' metadata (or the run's config beside them).
    #[arg(long)]
    pub model: Option<String>,
    /// Data set; default: from the weights' metadata (or the run's config beside them).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Batch size (default 1000).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Normalize: MEAN,STD or M1,M2,M3/S1,S2,S3; default: from the weights' metadata (or
    /// the run's config).
    #[arg(long, value_parser = parse_normalize)]
    pub normalize: Option<Normalize>,
    /// Folder holding the data set.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Never download: hub: weights come from the Hugging Face cache only (as with
    /// HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
}

/// The file `--weights` names: the path itself; for `hub:OWNER/REPO[@REVISION][:FILE]`, the
/// file in the Hugging Face cache (downloaded first unless `offline`); or for the name of
/// weights shipped in the repository (`lenet5-bn-fashion-mnist`, see `convnets models`), their
/// file, checked against its SHA-256.
pub fn weights_file(arg: &Path, offline: bool) -> Result<PathBuf> {
    if arg.exists() {
        return Ok(arg.to_path_buf());
    }
    if let Some(spec) = arg.to_str().filter(|s| HubWeights::is_spec(s)) {
        let hub: HubWeights = spec.parse()?;
        let path = convnets::zoo::hub::fetch(&hub, offline)?;
        // timm repositories describe their weights in a config.json beside them (model,
        // preprocessing, normalization): fetched into the same snapshot when there is one.
        let _ = convnets::zoo::hub::fetch(&hub.sibling("config.json"), offline);
        return Ok(path);
    }
    let Some(known) = arg
        .to_str()
        .and_then(convnets::zoo::KnownWeights::from_name)
    else {
        let names: Vec<&str> = convnets::zoo::KnownWeights::ALL
            .iter()
            .map(|w| w.name())
            .collect();
        bail!(
            "--weights {}: no such file, not hub:OWNER/REPO[@REVISION][:FILE], and not the name of shipped weights ({})",
            arg.display(),
            names.join(", ")
        )
    };
    let path = known.path();
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "--weights {}: the shipped weights are read from a checkout of convnets ({})",
            known.name(),
            path.display()
        )
    })?;
    let sha = convnets::data::sha256_hex(&bytes);
    if sha != known.sha256() {
        bail!(
            "{}: SHA-256 {sha}, expected {} for the shipped `{}` weights",
            path.display(),
            known.sha256(),
            known.name()
        )
    }
    Ok(path)
}

/// What a run folder's config says about the weights in it.
struct Saved {
    model: Option<String>,
    dataset: Option<String>,
    normalize: Option<Normalize>,
    data_dir: Option<PathBuf>,
}

/// What the file's own metadata says ([`convnets::zoo::WeightsInfo`]), or for a checkpoint,
/// its run configuration.
fn saved_from_metadata(path: &Path) -> Result<Saved> {
    let meta = convnets::zoo::read_metadata(path)?;
    let mut saved = Saved {
        model: None,
        dataset: None,
        normalize: None,
        data_dir: None,
    };
    if meta.contains_key("convnets.model") {
        let info = convnets::zoo::WeightsInfo::from_metadata(path, &meta, None)?;
        saved.model = Some(info.model);
        saved.dataset = info.dataset;
        saved.normalize = info.normalize;
    } else if let Some(timm) = convnets::zoo::timm::TimmConfig::beside(path)? {
        // A timm checkpoint: its config.json names the model and its normalization.
        saved.model = timm.model().map(|m| m.name.to_string());
        saved.normalize = timm.normalize().ok();
    }
    if let Some(cfg) = meta.get(convnets::train::checkpoint::META_KEY) {
        // A checkpoint: its run configuration is inside.
        let m: convnets::train::checkpoint::CheckpointMeta = serde_json::from_str(cfg)
            .with_context(|| format!("{}: checkpoint metadata", path.display()))?;
        if let Some(c) = m.config {
            let c: TrainConfig = serde_json::from_value(c)
                .with_context(|| format!("{}: checkpoint config", path.display()))?;
            saved = Saved {
                model: Some(c.model),
                dataset: Some(c.dataset),
                normalize: c.normalize,
                data_dir: c.data_dir,
            };
        }
    }
    Ok(saved)
}

fn saved_from_config(weights: &Path) -> Result<Option<Saved>> {
    let Some(dir) = weights.parent() else {
        return Ok(None);
    };
    let toml = dir.join("config.toml");
    if toml.is_file() {
        let c = TrainConfig::from_toml_file(&toml)?;
        return Ok(Some(Saved {
            model: Some(c.model),
            dataset: Some(c.dataset),
            normalize: c.normalize,
            data_dir: c.data_dir,
        }));
    }
    Ok(None)
}

impl WeightsArgs {
    /// The evaluation of `weights`: flags, then the file's metadata, then `config.toml` beside
    /// it — read only for what is still missing, and a broken one is only a warning when the
    /// flags and metadata suffice.
    pub fn resolve(&self, weights: &Path) -> Result<EvalConfig> {
        let meta = saved_from_metadata(weights)?;
        let mut model = self.model.clone().or(meta.model);
        let mut dataset = self.dataset.clone().or(meta.dataset);
        let mut normalize = self.normalize.or(meta.normalize);
        let mut data_dir = self.data_dir.clone().or(meta.data_dir);
        if model.is_none() || dataset.is_none() {
            if let Some(c) = saved_from_config(weights)? {
                model = model.or(c.model);
                dataset = dataset.or(c.dataset);
                normalize = normalize.or(c.normalize);
                data_dir = data_dir.or(c.data_dir);
            }
        }
        let Some(model) = model else {
            bail!(
                "--model is required: {} does not say which model it holds",
                weights.display()
            )
        };
        // A PyTorch state_dict file: what the model's registry entry says (an ImageNet model
        // takes ImageNet's classes and normalization).
        if let Some(info) = convnets::zoo::find(&model) {
            if self.normalize.is_none() && normalize.is_none() && dataset.is_none() {
                normalize = info.default_normalize();
            }
            dataset = dataset.or_else(|| Some(info.dataset.to_string()));
        }
        let Some(dataset) = dataset else {
            bail!(
                "--dataset is required: {} does not say which data set it was trained on",
                weights.display()
            )
        };
        Ok(EvalConfig {
            model,
            dataset,
            batch_size: self.batch_size.unwrap_or(1000),
            normalize,
            data_dir,
            device: self.device.clone(),
        })
    }
}

/// `convnets eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Which weights and how.
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// Print only the accuracy line (no per-class table or confusion matrix).
    #[arg(long)]
    pub quiet: bool,
}

/// `convnets predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Which weights and how (the model, data set and normalization usually come from the
    /// weights' metadata).
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Print JSON (one array of {image, top: [[label, class, probability], …]}).
    #[arg(long)]
    pub json: bool,
    /// The image files (PNG or JPEG), fitted to the model's input as its data set was.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// `convnets ensemble`.
#[derive(Args, Debug)]
pub struct EnsembleArgs {
    /// The members' weights (files, shipped names or hub:OWNER/REPO[@REVISION][:FILE]).
    #[arg(long = "weights", num_args = 1.., required = true)]
    pub members: Vec<PathBuf>,
    /// Options shared by every member (model, data set, …: default from each file).
    #[command(flatten)]
    pub opts: EnsembleOpts,
}

/// The shared options of `convnets ensemble`.
#[derive(Args, Debug, Clone)]
pub struct EnsembleOpts {
    /// Model name for every member; default: from each file's metadata.
    #[arg(long)]
    pub model: Option<String>,
    /// Data set; default: from the files' metadata.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Batch size (default 1000).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Normalize: MEAN,STD or M1,M2,M3/S1,S2,S3; default: from the files' metadata.
    #[arg(long, value_parser = parse_normalize)]
    pub normalize: Option<Normalize>,
    /// Folder holding the data set.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Never download: hub: weights come from the Hugging Face cache only (as with
    /// HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
}

impl From<EnsembleOpts> for WeightsArgs {
    fn from(o: EnsembleOpts) -> Self {
        WeightsArgs {
            weights: PathBuf::new(),
            model: o.model,
            dataset: o.dataset,
            batch_size: o.batch_size,
            normalize: o.normalize,
            data_dir: o.data_dir,
            device: o.device,
            offline: o.offline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: TrainArgs,
    }

    fn cfg(args: &[&str]) -> Result<TrainConfig> {
        let t = T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))?;
        t.a.config()
    }

    #[test]
    fn input_shapes_parse_and_errors_say_why() {
        assert_eq!(
            parse_shape("1,3,227,227").map(|s| s.0),
            Ok(vec![1, 3, 227, 227])
        );
        let err = parse_shape("1,x").map(|s| s.0).unwrap_err();
        assert!(err.contains("`x` in `1,x`"), "{err}");
        let err = parse_shape("1,0,28").map(|s| s.0).unwrap_err();
        assert!(err.contains("positive dimensions"), "{err}");
    }

    #[test]
    fn recipes_and_flags() -> Result<()> {
        assert_eq!(cfg(&[])?, convnets::train::recipe::lenet5_fashion_mnist());
        let c = cfg(&["--model", "mnist-net"])?;
        assert_eq!(c, convnets::train::recipe::mnist_net_mnist());
        let c = cfg(&[
            "--optimizer",
            "adam",
            "--lr",
            "0.002",
            "--weight-decay",
            "0.1",
        ])?;
        assert_eq!(
            c.optimizer,
            OptimizerConfig::Adam(AdamConfig {
                lr: 0.002,
                weight_decay: 0.1,
                ..Default::default()
            })
        );
        let c = cfg(&["--scheduler", "step", "--step-size", "5", "--warmup", "2"])?;
        let s = c.schedule.context("schedule")?;
        assert_eq!(s.warmup_epochs, 2);
        assert_eq!(
            s.kind,
            ScheduleKind::Step {
                step_size: 5,
                gamma: 0.1
            }
        );
        // Augmentation: the data set's usual one, explicit pieces, or none.
        let aug = |a: &[&str]| cfg(a).map(|c| c.augment);
        let fashion = Augment {
            crop_padding: 2,
            hflip: true,
            resized_crop: None,
        };
        assert_eq!(aug(&["--augment"])?, Some(fashion));
        assert_eq!(
            aug(&["--augment", "--model", "mnist-net"])?,
            Some(Augment {
                crop_padding: 2,
                hflip: false,
                resized_crop: None,
            })
        );
        assert_eq!(
            aug(&["--random-crop", "4"])?,
            Some(Augment {
                crop_padding: 4,
                hflip: false,
                resized_crop: None,
            })
        );
        assert_eq!(
            aug(&["--hflip"])?,
            Some(Augment {
                crop_padding: 0,
                hflip: true,
                resized_crop: None,
            })
        );
        assert_eq!(aug(&[])?, None);
        assert_eq!(aug(&["--no-augment"])?, None);
        assert!(cfg(&["--no-augment", "--hflip"]).is_err());
        let err = format!("{:#}", cfg(&["--random-crop", "40"]).unwrap_err());
        assert!(err.contains("larger than the 28x28 images"), "{err}");
        Ok(())
    }

    #[test]
    fn bad_flags_are_clear_errors() {
        let err = |a: &[&str]| format!("{:#}", cfg(a).unwrap_err());
        assert!(err(&["--momentum", "0.9", "--optimizer", "adam"]).contains("--momentum"));
        assert!(err(&["--step-size", "3"]).contains("--scheduler step"));
        assert!(err(&["--scheduler", "step"]).contains("--step-size"));
        assert!(err(&["--normalize", "nan,1"]).contains("finite"));
        assert!(err(&["--normalize", "0,0"]).contains("std > 0"));
        assert!(err(&["--momentum", "1.5"]).contains("momentum"));
        assert!(err(&["--limit", "0"]).contains("--limit 0"));
        assert!(err(&["--model", "simple-cnn", "--dataset", "mnist"]).contains("3x32x32"));
        assert!(err(&["--model", "vgg99"]).contains("unknown model `vgg99`"));
        assert!(err(&["--label-smoothing", "0.1", "--loss", "mse"]).contains("cross-entropy"));
    }
}
