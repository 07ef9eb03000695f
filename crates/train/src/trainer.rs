//! The training loop for any model: [`Trainer`], and [`evaluate`].
//!
//! ```no_run
//! use candle_core::Device;
//! use convnets_data::{load, Batcher, DatasetKind};
//! use convnets_layers::ParamStore;
//! use convnets_train::optim::{AdamConfig, OptimizerConfig};
//! use convnets_train::{ArticlePrinter, Params, Trainer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data = load(DatasetKind::Mnist, None)?;
//! let train = Batcher::from_split(&data.train, None, 64, Some(0), false)?;
//! let test = Batcher::from_split(&data.test, None, 1000, None, false)?;
//! let store = ParamStore::new(0, &Device::Cpu);
//! let model = convnets_zoo::MnistNet::new(store.vb())?; // or any ModuleT of your own
//! let params = Params::from(&store);
//! let adam = OptimizerConfig::Adam(AdamConfig::default()).build(params.trainable())?;
//! let report = Trainer::new(&model, params, adam)
//!     .epochs(3)
//!     .test(&test)
//!     .observer(ArticlePrinter::new(100))
//!     .fit(&train)?;
//! println!("{:?}", report.history.last());
//! # Ok(())
//! # }
//! ```

use crate::checkpoint::{Checkpoint, CheckpointMeta, PartialEpoch, Position, FORMAT};
use crate::distributed::{DataParallel, Fingerprint, StepStats};
use crate::loss::Loss;
use crate::metrics::EpochMetrics;
use crate::observer::{BatchEnd, Control, EpochEnd, Observer, StopReason, TrainStart};
use crate::optim::Optim;
use crate::params::Params;
use crate::schedule::LrScheduler;
use crate::{Result, TrainError};
use candle_core::backprop::GradStore;
use candle_core::{DType, ModuleT, Tensor, Var};
use convnets_data::{Batch, Batcher};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Where batches come from: anything that can hand out an epoch's batches in a reproducible
/// order. [`Batcher`] is one; a user's own loader implements the three methods.
pub trait BatchSource {
    /// Samples per epoch.
    fn num_samples(&self) -> usize;
    /// Batches per epoch.
    fn num_batches(&self) -> usize;
    /// The batches of `epoch` (from 1 when training; evaluation passes 0), skipping the first
    /// `skip` (a run resumed mid-epoch). The same `(epoch, skip)` must give the same batches.
    fn batches(
        &self,
        epoch: usize,
        skip: usize,
    ) -> Box<dyn Iterator<Item = convnets_data::Result<Batch>> + '_>;
}

impl BatchSource for Batcher {
    fn num_samples(&self) -> usize {
        Batcher::num_samples(self)
    }
    fn num_batches(&self) -> usize {
        self.len()
    }
    fn batches(
        &self,
        epoch: usize,
        skip: usize,
    ) -> Box<dyn Iterator<Item = convnets_data::Result<Batch>> + '_> {
        if self.workers() > 0 {
            Box::new(self.prefetch(epoch, skip))
        } else {
            Box::new(self.epoch(epoch).skip(skip))
        }
    }
}

/// Loss, top-1 and top-5 accuracy and the confusion matrix of a model on a data set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Mean loss per sample.
    pub loss: f64,
    /// Samples whose highest logit is the label's.
    pub correct: usize,
    /// Samples whose label is among the five highest logits.
    pub correct_top5: usize,
    /// Samples seen.
    pub total: usize,
    /// Number of classes (the logits' width).
    pub classes: usize,
    /// Counts `[true class][predicted class]`, row-major, `classes × classes`.
    pub confusion: Vec<u64>,
}

impl EvalResult {
    /// Top-1 accuracy in percent.
    pub fn accuracy(&self) -> f64 {
        100.0 * self.correct as f64 / self.total.max(1) as f64
    }

    /// Top-5 accuracy in percent.
    pub fn top5_accuracy(&self) -> f64 {
        100.0 * self.correct_top5 as f64 / self.total.max(1) as f64
    }

    /// Accuracy per true class in percent (`None` for a class with no sample).
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        (0..self.classes)
            .map(|c| {
                let row = &self.confusion[c * self.classes..(c + 1) * self.classes];
                let n: u64 = row.iter().sum();
                (n > 0).then(|| 100.0 * row[c] as f64 / n as f64)
            })
            .collect()
    }

    /// Per-class accuracy and the confusion matrix as a table, rows and columns labelled with
    /// `names` (class indices where a name is missing).
    pub fn report(&self, names: &[String]) -> String {
        let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
        let width = (0..self.classes)
            .map(|c| name(c).chars().count())
            .max()
            .unwrap_or(1)
            .max(5);
        let mut s = String::from("per-class accuracy:\n");
        for (c, acc) in self.per_class_accuracy().into_iter().enumerate() {
            let acc = acc.map_or("-".to_string(), |a| format!("{a:.1}%"));
            s += &format!("  {:<width$}  {acc:>6}\n", name(c));
        }
        s += "confusion matrix (rows: true class, columns: predicted):\n";
        let cell = self
            .confusion
            .iter()
            .max()
            .map_or(1, |m| m.to_string().len())
            .max(4);
        s += &format!("  {:<width$}", "");
        for c in 0..self.classes {
            s += &format!(" {:>cell$}", c);
        }
        s += "\n";
        for t in 0..self.classes {
            s += &format!("  {:<width$}", name(t));
            for p in 0..self.classes {
                s += &format!(" {:>cell$}", self.confusion[t * self.classes + p]);
            }
            s += "\n";
        }
        s
    }
}

/// Evaluates `model` on every batch of `data` with the loss `loss`, in eval mode and without
/// recording gradients: mean loss, top-1 and top-5 accuracy, confusion matrix.
pub fn evaluate_with(
    model: &dyn ModuleT,
    data: &dyn BatchSource,
    loss: &Loss,
) -> Result<EvalResult> {
    let mut r = EvalResult {
        loss: 0.0,
        correct: 0,
        correct_top5: 0,
        total: 0,
        classes: 0,
        confusion: Vec::new(),
    };
    let mut loss_sum = 0f64;
    for batch in data.batches(0, 0) {
        let batch = batch?;
        let b = batch.labels.dims1()?;
        let logits = convnets_layers::no_grad(|| model.forward_t(&batch.images, false))?;
        let l = convnets_layers::no_grad(|| loss.compute(&logits, &batch.labels))?;
        loss_sum += l.to_dtype(DType::F64)?.to_scalar::<f64>()? * b as f64;
        let (_, classes) = logits.dims2()?;
        if r.classes == 0 {
            r.classes = classes;
            r.confusion = vec![0; classes * classes];
        }
        let labels = batch.labels.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let rows = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        for (row, &label) in rows.iter().zip(&labels) {
            let label = label as usize;
            let pred = argmax(row);
            if label < classes {
                r.confusion[label * classes + pred] += 1;
                let above = row.iter().filter(|&&v| v > row[label]).count();
                r.correct_top5 += usize::from(above < 5);
            }
            r.correct += usize::from(pred == label);
        }
        r.total += b;
    }
    r.loss = loss_sum / r.total.max(1) as f64;
    Ok(r)
}

/// [`evaluate_with`] the default loss (cross-entropy).
pub fn evaluate(model: &dyn ModuleT, data: &dyn BatchSource) -> Result<EvalResult> {
    evaluate_with(model, data, &Loss::default())
}

/// An ensemble of models (seed 002's trick): its output is the log of the mean of the
/// members' softmax outputs, so its argmax is the class with the highest averaged probability
/// and [`Loss::Nll`] on it is the ensemble's cross-entropy.
pub struct Ensemble<'a> {
    members: Vec<&'a dyn ModuleT>,
}

impl<'a> Ensemble<'a> {
    /// The ensemble of `members` (at least one).
    pub fn new(members: Vec<&'a dyn ModuleT>) -> Result<Self> {
        if members.is_empty() {
            return Err(TrainError::Config(
                "an ensemble needs at least one model".into(),
            ));
        }
        Ok(Self { members })
    }

    /// Each member's evaluation and the ensemble's, on `data`.
    pub fn evaluate(&self, data: &dyn BatchSource) -> Result<(Vec<EvalResult>, EvalResult)> {
        let members = self
            .members
            .iter()
            .map(|m| evaluate(*m, data))
            .collect::<Result<Vec<_>>>()?;
        let ensemble = evaluate_with(self, data, &Loss::Nll)?;
        Ok((members, ensemble))
    }
}

impl ModuleT for Ensemble<'_> {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut sum: Option<Tensor> = None;
        for m in &self.members {
            let p = candle_nn::ops::softmax_last_dim(&m.forward_t(x, train)?)?;
            sum = Some(match sum {
                Some(s) => (s + p)?,
                None => p,
            });
        }
        match sum {
            Some(s) => (s / self.members.len() as f64)?.log(),
            None => candle_core::bail!("an ensemble needs at least one model"),
        }
    }
}

/// The index of the first largest value (PyTorch's `argmax`); NaN counts as largest, as in
/// PyTorch.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        let b = row[best];
        if (v > b && !b.is_nan()) || (v.is_nan() && !b.is_nan()) {
            best = i;
        }
    }
    best
}

/// What [`Trainer::fit`] returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FitReport {
    /// Every finished epoch's metrics (resumed runs include the epochs before the resume).
    pub history: Vec<EpochMetrics>,
    /// Why the run ended.
    pub stop: StopReason,
    /// The epoch with the best monitored loss and that loss.
    pub best: Option<(usize, f64)>,
}

/// Clips the gradients of `vars` so that their global L2 norm is at most `max_norm`
/// (PyTorch's `clip_grad_norm_`: every gradient is scaled by `max_norm / (norm + 1e-6)` when
/// that is below 1). Returns the norm before clipping; a non-finite norm is an error.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if norm.is_finite() && coef < 1.0 {
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * coef)?);
            }
        }
    }
    Ok(norm)
}

/// The default of [`Trainer::divergence_factor`]: a loss 1,000 times the first batch's is an
/// explosion (cross-entropy starts near `ln(classes)`, 2.3 for 10 classes).
pub const DEFAULT_EXPLODE_FACTOR: f32 = 1000.0;

/// Trains any model: a [`ModuleT`] and its [`Params`], with an optimizer ([`Optim`]), an
/// optional schedule, a loss, observers, and optional validation and test sets. See the
/// module documentation for an example.
pub struct Trainer<'a> {
    model: &'a dyn ModuleT,
    params: Params,
    trainable: Vec<Var>,
    optimizer: Box<dyn Optim>,
    scheduler: Option<LrScheduler>,
    loss: Loss,
    epochs: usize,
    clip: Option<f64>,
    explode: Option<f32>,
    first_loss: Option<f32>,
    val: Option<&'a dyn BatchSource>,
    test: Option<&'a dyn BatchSource>,
    observers: Vec<Box<dyn Observer + 'a>>,
    stop: Option<Arc<AtomicBool>>,
    config: Option<serde_json::Value>,
    position: Position,
    history: Vec<EpochMetrics>,
    best: Option<(usize, f64)>,
    parallel: Option<DataParallel>,
}

/// What one training step gives the loop: the global batch's numbers (the sums over the ranks
/// when training data-parallel).
struct StepOutcome {
    /// Mean loss over the batch.
    loss: f32,
    /// Correctly classified samples.
    correct: usize,
    /// Samples in the batch.
    samples: usize,
    /// A stop was asked for (on any rank).
    stop: bool,
}

impl<'a> Trainer<'a> {
    /// A trainer of `model`, whose tensors are `params`, updated by `optimizer` (built over
    /// `params.trainable()`). Defaults: 1 epoch, cross-entropy, no schedule, no clipping.
    pub fn new(
        model: &'a dyn ModuleT,
        params: impl Into<Params>,
        optimizer: Box<dyn Optim>,
    ) -> Self {
        let params = params.into();
        let trainable = params.trainable();
        Self {
            model,
            params,
            trainable,
            optimizer,
            scheduler: None,
            loss: Loss::default(),
            epochs: 1,
            clip: None,
            explode: Some(DEFAULT_EXPLODE_FACTOR),
            first_loss: None,
            val: None,
            test: None,
            observers: Vec::new(),
            stop: None,
            config: None,
            position: Position::default(),
            history: Vec::new(),
            best: None,
            parallel: None,
        }
    }

    /// Trains data-parallel with the other ranks of `dp` (see [`crate::distributed`]): the
    /// training data passed to [`Trainer::fit`] must be this rank's share of every global
    /// batch ([`ShardedBatches`](crate::distributed::ShardedBatches)). `fit` first checks that
    /// every rank runs the same configuration, parameters and position and copies rank 0's
    /// parameters to the others; every step averages the gradients over all ranks' samples
    /// before clipping and the optimizer step, so every rank makes the same update; after
    /// every epoch rank 0's buffers (batch norm's running statistics) are copied to the
    /// others and the parameters are checked to be identical. Observers should be the same
    /// on every rank except for output (printing, files: give those to rank 0 only).
    pub fn data_parallel(mut self, dp: DataParallel) -> Self {
        self.parallel = Some(dp);
        self
    }

    /// The data parallelism, if any (its timings: [`DataParallel::reduce_times`]).
    pub fn parallel(&self) -> Option<&DataParallel> {
        self.parallel.as_ref()
    }

    /// Trains until epoch `n` (counting the epochs a resumed run already did).
    pub fn epochs(mut self, n: usize) -> Self {
        self.epochs = n;
        self
    }

    /// The loss (default: cross-entropy).
    pub fn loss(mut self, loss: Loss) -> Self {
        self.loss = loss;
        self
    }

    /// A learning-rate schedule; its rate replaces the optimizer's at once.
    pub fn scheduler(mut self, scheduler: LrScheduler) -> Self {
        self.optimizer.set_learning_rate(scheduler.lr());
        self.scheduler = Some(scheduler);
        self
    }

    /// Clips the gradients' global norm to `max_norm` before every step.
    pub fn clip_grad_norm(mut self, max_norm: f64) -> Self {
        self.clip = Some(max_norm);
        self
    }

    /// Stops the run with [`TrainError::Diverged`] when a batch's loss exceeds `factor` times
    /// the first batch's loss of this [`Trainer::fit`] (an exploding loss, which a too-high
    /// learning rate gives before it gives NaN); `None` turns the check off. Default:
    /// [`DEFAULT_EXPLODE_FACTOR`]. A NaN or infinite loss always stops the run.
    pub fn divergence_factor(mut self, factor: Option<f32>) -> Self {
        self.explode = factor;
        self
    }

    /// Evaluates on `data` after every epoch as the validation set: its loss picks the best
    /// epoch and drives early stopping and a plateau schedule.
    pub fn validation(mut self, data: &'a dyn BatchSource) -> Self {
        self.val = Some(data);
        self
    }

    /// Evaluates on `data` after every epoch as the test set (the articles print it).
    pub fn test(mut self, data: &'a dyn BatchSource) -> Self {
        self.test = Some(data);
        self
    }

    /// Adds an observer; they run in the order added.
    pub fn observer(mut self, o: impl Observer + 'a) -> Self {
        self.observers.push(Box::new(o));
        self
    }

    /// A flag that, once raised (by a Ctrl-C handler, see [`crate::interrupt`]), makes the
    /// loop write a checkpoint after the current batch and return
    /// [`StopReason::Interrupted`].
    pub fn stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    /// The run's configuration, stored in every checkpoint.
    pub fn config(mut self, config: serde_json::Value) -> Self {
        self.config = Some(config);
        self
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &dyn Optim {
        self.optimizer.as_ref()
    }

    /// The finished epochs' metrics.
    pub fn history(&self) -> &[EpochMetrics] {
        &self.history
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.optimizer.learning_rate()
    }

    /// Restores a run from `ckpt` (written by this trainer's observers for the same model,
    /// optimizer, schedule and observers): parameters, optimizer state, schedule, dropout
    /// generator, observers' states, history and position. `fit` then continues from there.
    pub fn resume(&mut self, ckpt: &Checkpoint) -> Result<()> {
        let m = &ckpt.meta;
        if m.optimizer != self.optimizer.name() {
            return Err(TrainError::Checkpoint(format!(
                "the checkpoint was written by the `{}` optimizer, this run uses `{}`",
                m.optimizer,
                self.optimizer.name()
            )));
        }
        let model: HashMap<String, Tensor> = ckpt.model.iter().cloned().collect();
        self.params.load(&model, "checkpoint")?;
        let optim: HashMap<String, Tensor> = ckpt.optim.iter().cloned().collect();
        self.optimizer.load_state(&optim)?;
        match (&mut self.scheduler, &m.scheduler) {
            (Some(s), Some(state)) => {
                *s = serde_json::from_value(state.clone())
                    .map_err(|e| TrainError::Checkpoint(format!("schedule state: {e}")))?;
            }
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => return Err(TrainError::Checkpoint(
                "the checkpoint and this run disagree on whether there is a learning-rate schedule"
                    .into(),
            )),
        }
        self.optimizer.set_learning_rate(m.lr);
        if let Some(rng) = m.rng {
            convnets_layers::set_rng_state(rng.seed, rng.word_pos);
        }
        for o in &mut self.observers {
            if let Some(state) = m.observers.get(o.name()) {
                o.load_state(state)?;
            }
        }
        self.history = m.history.clone();
        self.best = m.best;
        self.position = m.position;
        Ok(())
    }

    /// A checkpoint of the run as it stands.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let (seed, word_pos) = convnets_layers::rng_state();
        let scheduler = match &self.scheduler {
            Some(s) => Some(
                serde_json::to_value(s)
                    .map_err(|e| TrainError::Checkpoint(format!("schedule state: {e}")))?,
            ),
            None => None,
        };
        let observers: BTreeMap<String, serde_json::Value> = self
            .observers
            .iter()
            .filter_map(|o| o.state().map(|s| (o.name().to_string(), s)))
            .collect();
        Ok(Checkpoint {
            model: self.params.tensors(),
            optim: self.optimizer.state()?,
            meta: CheckpointMeta {
                format: FORMAT,
                position: self.position,
                optimizer: self.optimizer.name().to_string(),
                lr: self.optimizer.learning_rate(),
                scheduler,
                rng: Some(crate::checkpoint::RngState { seed, word_pos }),
                observers,
                history: self.history.clone(),
                best: self.best,
                config: self.config.clone(),
            },
        })
    }

    fn emit_checkpoint(&mut self, is_best: bool) -> Result<()> {
        if self.observers.is_empty() {
            return Ok(());
        }
        let ckpt = self.checkpoint()?;
        for o in &mut self.observers {
            o.on_checkpoint(&ckpt, is_best)?;
        }
        Ok(())
    }

    fn finish(&mut self, stop: StopReason) -> Result<FitReport> {
        for o in &mut self.observers {
            o.on_train_end(stop, &self.history)?;
        }
        Ok(FitReport {
            history: self.history.clone(),
            stop,
            best: self.best,
        })
    }

    /// One optimizer step on `batch`: the batch's mean loss, its correct count and size (over
    /// every rank when data-parallel).
    fn step(&mut self, batch: &Batch, epoch: usize, index: usize) -> Result<StepOutcome> {
        let b = batch.labels.dims1()?;
        let stop_local = self.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
        // A rank whose share of a short last batch is empty contributes no gradient.
        let (mut grads, l, correct) = if b > 0 || self.parallel.is_none() {
            let logits = self.model.forward_t(&batch.images, true)?;
            let loss = self.loss.compute(&logits, &batch.labels)?;
            let l = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            if !l.is_finite() && self.parallel.is_none() {
                return Err(self.diverged(batch, epoch, index, l));
            }
            let grads = loss.backward()?;
            let pred = logits.argmax(1)?;
            let correct = pred
                .eq(&batch.labels.to_dtype(pred.dtype())?)?
                .to_dtype(DType::U32)?
                .sum_all()?
                .to_scalar::<u32>()? as usize;
            (grads, l, correct)
        } else {
            (GradStore::default(), 0.0, 0)
        };
        let out = match &mut self.parallel {
            Some(dp) => {
                let local = StepStats {
                    samples: b,
                    loss_sum: if b > 0 { f64::from(l) * b as f64 } else { 0.0 },
                    correct,
                    stop: stop_local,
                };
                let total = dp.reduce_step(&mut grads, &self.trainable, local, (epoch, index))?;
                let loss = (total.loss_sum / total.samples.max(1) as f64) as f32;
                if !loss.is_finite() {
                    return Err(self.diverged(batch, epoch, index, loss));
                }
                StepOutcome {
                    loss,
                    correct: total.correct,
                    samples: total.samples,
                    stop: total.stop,
                }
            }
            None => StepOutcome {
                loss: l,
                correct,
                samples: b,
                stop: stop_local,
            },
        };
        // The same (global) loss on every rank: all stop together on an explosion.
        let l = out.loss;
        match (self.first_loss, self.explode) {
            (None, _) => self.first_loss = Some(l),
            (Some(l0), Some(f)) if l > f * l0.max(1e-3) => {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: index,
                    what: format!(
                        "the loss exploded to {l}, more than {f} times the first batch's {l0}"
                    ),
                    hint: format!(
                        "the learning rate {:e} is likely too high (or the momentum too close to 1); lower it, clip the gradients (--clip-grad-norm), or raise the limit (Trainer::divergence_factor)",
                        self.optimizer.learning_rate()
                    ),
                })
            }
            _ => {}
        }
        if let Some(max) = self.clip {
            let norm = clip_grad_norm(&mut grads, &self.trainable, max)?;
            if !norm.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: index,
                    what: format!("the gradient norm is {norm}"),
                    hint: "the learning rate may be too high for this model".into(),
                });
            }
        }
        self.optimizer.step(&grads)?;
        Ok(out)
    }

    /// The hash the ranks of a data-parallel run compare before training: the configuration
    /// (less what may differ between machines: paths, workers, printing), the parameters'
    /// names, shapes and types, the optimizer, the position and the data's size.
    fn fingerprint(&self, train: &dyn BatchSource) -> u64 {
        let mut h = Fingerprint::default();
        if let Some(cfg) = &self.config {
            let mut cfg = cfg.clone();
            if let Some(o) = cfg.as_object_mut() {
                for k in [
                    "out",
                    "data_dir",
                    "workers",
                    "log_every",
                    "download",
                    "init_weights",
                ] {
                    o.remove(k);
                }
            }
            h.write(cfg.to_string().as_bytes());
        }
        for (name, v) in self.params.named() {
            h.write(name.as_bytes())
                .write(format!("{:?} {:?}", v.dims(), v.dtype()).as_bytes());
            if self.params.is_frozen(name) {
                h.write(b"frozen");
            }
        }
        h.write(self.optimizer.name().as_bytes());
        for n in [
            self.position.epochs_done,
            self.position.batch,
            self.epochs,
            train.num_batches(),
            train.num_samples(),
        ] {
            h.write(&(n as u64).to_le_bytes());
        }
        h.finish()
    }

    /// The buffers (non-trainable tensors: batch norm's running statistics).
    fn buffers(&self) -> Vec<Var> {
        self.params
            .named()
            .iter()
            .filter(|(n, _)| convnets_layers::is_buffer(n))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The error for a non-finite loss, naming its likely cause.
    fn diverged(&self, batch: &Batch, epoch: usize, index: usize, loss: f32) -> TrainError {
        let finite = |t: &Tensor| -> bool {
            t.to_dtype(DType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .map(|v| v.iter().all(|x| x.is_finite()))
                .unwrap_or(false)
        };
        let hint = if !finite(&batch.images) {
            "the input batch holds NaN or infinite values (check the normalisation's mean and std)"
                .to_string()
        } else if let Some((name, _)) = self
            .params
            .named()
            .iter()
            .find(|(_, v)| !finite(v.as_tensor()))
        {
            format!(
                "parameter `{name}` holds NaN or infinite values (diverged weights: lower the learning rate {:e}, or check the momentum and the weights loaded)",
                self.optimizer.learning_rate()
            )
        } else {
            format!(
                "the weights are finite but the loss is not: the learning rate {:e} may be too high",
                self.optimizer.learning_rate()
            )
        };
        TrainError::Diverged {
            epoch,
            batch: index,
            what: format!("the loss is {loss}"),
            hint,
        }
    }

    /// Trains on `train` until the last epoch (or until an observer stops the run, or the stop
    /// flag is raised), evaluating the validation and test sets after every epoch. A run
    /// restored with [`Trainer::resume`] continues where it stopped.
    pub fn fit(&mut self, train: &dyn BatchSource) -> Result<FitReport> {
        let batches = train.num_batches();
        let samples = train.num_samples();
        if batches == 0 {
            return Err(TrainError::Config(format!(
                "the training set gives no batch ({samples} samples): nothing to train on"
            )));
        }
        if self.epochs == 0 {
            return Err(TrainError::Config("epochs must be at least 1".into()));
        }
        let start = TrainStart {
            epochs: self.epochs,
            first_epoch: self.position.epochs_done + 1,
            first_batch: self.position.batch,
            train_samples: samples,
            train_batches: batches,
            val_samples: self.val.map(|v| v.num_samples()),
            test_samples: self.test.map(|v| v.num_samples()),
            trainable_params: self.params.num_trainable(),
            optimizer: self.optimizer.name(),
            lr: self.optimizer.learning_rate(),
        };
        let hash = self.fingerprint(train);
        if let Some(dp) = &mut self.parallel {
            dp.agree(
                "the configuration, parameter shapes, position and data size",
                hash,
            )?;
            let all: Vec<Var> = self.params.named().iter().map(|(_, v)| v.clone()).collect();
            dp.broadcast_vars(&all)?;
        }
        for o in &mut self.observers {
            o.on_train_start(&start)?;
        }
        while self.position.epochs_done < self.epochs {
            let epoch = self.position.epochs_done + 1;
            let skip = self.position.batch;
            if skip == 0 {
                for o in &mut self.observers {
                    o.on_epoch_start(epoch)?;
                }
            }
            let mut partial = self.position.partial;
            let mut stop_requested = false;
            let mut lr = self.optimizer.learning_rate();
            let mut waiting = Instant::now();
            for (i, batch) in train.batches(epoch, skip).enumerate() {
                let index = skip + i;
                partial.data_seconds += waiting.elapsed().as_secs_f64();
                let t0 = Instant::now();
                let batch = batch?;
                lr = self.optimizer.learning_rate();
                let StepOutcome {
                    loss: l,
                    correct,
                    samples: b,
                    stop: stop_flag,
                } = self.step(&batch, epoch, index)?;
                if let Some(s) = &mut self.scheduler {
                    let next = s.step_batch();
                    self.optimizer.set_learning_rate(next);
                }
                let samples_before = partial.samples;
                partial.loss_sum += l as f64 * b as f64;
                partial.samples += b;
                partial.correct += correct;
                partial.seconds += t0.elapsed().as_secs_f64();
                self.position.batch = index + 1;
                self.position.partial = partial;
                let ev = BatchEnd {
                    epoch,
                    batch: index,
                    batches,
                    samples_before,
                    samples,
                    loss: l,
                    lr,
                };
                for o in &mut self.observers {
                    stop_requested |= o.on_batch_end(&ev)? == Control::Stop;
                }
                // Data-parallel: the flag as the ranks agreed on it in the step's all-reduce.
                let interrupted = stop_flag;
                if interrupted && index + 1 < batches {
                    self.emit_checkpoint(false)?;
                    return self.finish(StopReason::Interrupted {
                        epoch,
                        batch: index + 1,
                    });
                }
                if stop_requested || interrupted {
                    break;
                }
                waiting = Instant::now();
            }
            let buffers = self.buffers();
            if let Some(dp) = &mut self.parallel {
                dp.broadcast_vars(&buffers)?;
                let all: Vec<Var> = self.params.named().iter().map(|(_, v)| v.clone()).collect();
                dp.check_identical(&all, &format!("after epoch {epoch}"))?;
            }
            let val = match self.val {
                Some(v) => Some(evaluate_with(self.model, v, &self.loss)?),
                None => None,
            };
            let test = match self.test {
                Some(t) => Some(evaluate_with(self.model, t, &self.loss)?),
                None => None,
            };
            let n = partial.samples.max(1) as f64;
            let metrics = EpochMetrics {
                epoch,
                lr,
                train_loss: partial.loss_sum / n,
                train_accuracy: 100.0 * partial.correct as f64 / n,
                val_loss: val.as_ref().map(|r| r.loss),
                val_accuracy: val.as_ref().map(|r| r.accuracy()),
                test_loss: test.as_ref().map(|r| r.loss),
                test_accuracy: test.as_ref().map(|r| r.accuracy()),
                test_top5: test.as_ref().map(|r| r.top5_accuracy()),
                epoch_seconds: partial.seconds,
                images_per_second: partial.samples as f64 / partial.seconds.max(1e-9),
                data_seconds: partial.data_seconds,
            };
            let monitored = metrics.monitored_loss();
            let is_best = self.best.is_none_or(|(_, b)| monitored < b);
            if is_best {
                self.best = Some((epoch, monitored));
            }
            if let Some(s) = &mut self.scheduler {
                let next = s.step_epoch(Some(monitored));
                self.optimizer.set_learning_rate(next);
            }
            self.history.push(metrics);
            self.position = Position {
                epochs_done: epoch,
                batch: 0,
                partial: PartialEpoch::default(),
            };
            let next_lr = self.optimizer.learning_rate();
            let ev = EpochEnd {
                metrics: &self.history[self.history.len() - 1],
                history: &self.history,
                next_lr,
                is_best,
            };
            for o in &mut self.observers {
                stop_requested |= o.on_epoch_end(&ev)? == Control::Stop;
            }
            self.emit_checkpoint(is_best)?;
            let mut interrupted = self.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
            if let Some(dp) = &mut self.parallel {
                // Every rank stops, or none: a flag raised on one rank stops them all, and an
                // observer's stop on one rank too.
                interrupted = dp.any(interrupted)?;
                stop_requested = dp.any(stop_requested)?;
            }
            if interrupted && epoch < self.epochs {
                return self.finish(StopReason::Interrupted {
                    epoch: epoch + 1,
                    batch: 0,
                });
            }
            if stop_requested && epoch < self.epochs {
                return self.finish(StopReason::Stopped { epoch });
            }
        }
        self.finish(StopReason::Completed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_is_first_max_and_nan_wins() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[1.0, f32::NAN, 3.0]), 1);
        assert_eq!(argmax(&[5.0]), 0);
    }
}
