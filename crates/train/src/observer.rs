//! Observers: everything that watches a run without being the loop itself — the article-style
//! printing, the progress bar, early stopping, the run folder's files (see
//! [`crate::run::RunDir`]). The event names follow Lightning's callback hooks.
//!
//! An observer that keeps state across epochs (early stopping's counter) returns it from
//! [`Observer::state`]; checkpoints save it under [`Observer::name`] and a resumed run gives it
//! back through [`Observer::load_state`].

use crate::checkpoint::Checkpoint;
use crate::metrics::EpochMetrics;
use crate::{Result, TrainError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;

/// What an observer wants the loop to do next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    #[default]
    Continue,
    /// Stop after this batch or epoch (the loop still writes a checkpoint).
    Stop,
}

/// The start of [`crate::Trainer::fit`].
#[derive(Clone, Debug)]
pub struct TrainStart {
    /// The last epoch.
    pub epochs: usize,
    /// The epoch the run starts (or resumes) in, from 1.
    pub first_epoch: usize,
    /// Batches of `first_epoch` already done (a run resumed mid-epoch).
    pub first_batch: usize,
    /// Training samples per epoch.
    pub train_samples: usize,
    /// Training batches per epoch.
    pub train_batches: usize,
    /// Validation samples, if there is a validation set.
    pub val_samples: Option<usize>,
    /// Test samples, if there is a test set.
    pub test_samples: Option<usize>,
    /// Trainable scalars.
    pub trainable_params: usize,
    /// The optimizer's name.
    pub optimizer: &'static str,
    /// The learning rate of the first step.
    pub lr: f64,
}

/// The end of one training step.
#[derive(Clone, Copy, Debug)]
pub struct BatchEnd {
    /// The epoch, from 1.
    pub epoch: usize,
    /// The batch's index in the epoch, from 0.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Samples of this epoch trained on before this batch.
    pub samples_before: usize,
    /// Samples per epoch.
    pub samples: usize,
    /// This batch's mean loss.
    pub loss: f32,
    /// The learning rate this step used.
    pub lr: f64,
}

/// The end of an epoch (after evaluation).
#[derive(Clone, Copy, Debug)]
pub struct EpochEnd<'a> {
    /// This epoch's metrics.
    pub metrics: &'a EpochMetrics,
    /// Every finished epoch's metrics, this one last.
    pub history: &'a [EpochMetrics],
    /// The learning rate of the next epoch's first step (after the schedule's step).
    pub next_lr: f64,
    /// Whether this epoch has the best monitored loss so far.
    pub is_best: bool,
}

/// Why [`crate::Trainer::fit`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// Every epoch ran.
    Completed,
    /// An observer (early stopping) stopped the run after this epoch.
    Stopped {
        /// The last epoch run.
        epoch: usize,
    },
    /// The stop flag was raised (Ctrl-C): a checkpoint was written at this position.
    Interrupted {
        /// The epoch that was running, from 1.
        epoch: usize,
        /// Batches of it finished.
        batch: usize,
    },
}

/// Watches a run: every hook has a default that does nothing.
pub trait Observer {
    /// A unique name: the key of this observer's state in checkpoints.
    fn name(&self) -> &str;
    /// Before the first step (also when resuming).
    fn on_train_start(&mut self, _ev: &TrainStart) -> Result<()> {
        Ok(())
    }
    /// Before an epoch's first batch (not called for an epoch resumed mid-way).
    fn on_epoch_start(&mut self, _epoch: usize) -> Result<()> {
        Ok(())
    }
    /// After every optimizer step.
    fn on_batch_end(&mut self, _ev: &BatchEnd) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// After an epoch's evaluation.
    fn on_epoch_end(&mut self, _ev: &EpochEnd) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// A checkpoint of the run after an epoch, or at the batch where it was interrupted;
    /// `is_best`: the epoch has the best monitored loss so far.
    fn on_checkpoint(&mut self, _ckpt: &Checkpoint, _is_best: bool) -> Result<()> {
        Ok(())
    }
    /// After the run, however it ended.
    fn on_train_end(&mut self, _reason: StopReason, _history: &[EpochMetrics]) -> Result<()> {
        Ok(())
    }
    /// State to keep in checkpoints, if any.
    fn state(&self) -> Option<serde_json::Value> {
        None
    }
    /// Restores what [`Observer::state`] returned.
    fn load_state(&mut self, _state: &serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// A borrowed observer: pass `&mut my_observer` to [`crate::Trainer::observer`] and read what
/// it recorded after [`crate::Trainer::fit`] returns.
impl<O: Observer + ?Sized> Observer for &mut O {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn on_train_start(&mut self, ev: &TrainStart) -> Result<()> {
        (**self).on_train_start(ev)
    }
    fn on_epoch_start(&mut self, epoch: usize) -> Result<()> {
        (**self).on_epoch_start(epoch)
    }
    fn on_batch_end(&mut self, ev: &BatchEnd) -> Result<Control> {
        (**self).on_batch_end(ev)
    }
    fn on_epoch_end(&mut self, ev: &EpochEnd) -> Result<Control> {
        (**self).on_epoch_end(ev)
    }
    fn on_checkpoint(&mut self, ckpt: &Checkpoint, is_best: bool) -> Result<()> {
        (**self).on_checkpoint(ckpt, is_best)
    }
    fn on_train_end(&mut self, reason: StopReason, history: &[EpochMetrics]) -> Result<()> {
        (**self).on_train_end(reason, history)
    }
    fn state(&self) -> Option<serde_json::Value> {
        (**self).state()
    }
    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        (**self).load_state(state)
    }
}

/// Prints like the articles: `loss: 2.301750 [    0/60000]` every `every` batches (seed 000
/// prints every 100), and after each epoch `Test Error: \n Accuracy: 77.9%, Avg loss: …`,
/// plus the validation numbers and a line whenever the learning rate changes. With
/// [`ArticlePrinter::progress`], a progress bar per epoch on standard error (indicatif),
/// drawn only on a terminal.
#[derive(Clone, Debug)]
pub struct ArticlePrinter {
    every: usize,
    progress: bool,
    bar: Option<ProgressBar>,
    lr: Option<f64>,
}

impl ArticlePrinter {
    /// Prints the loss every `every` batches (0: never) and the evaluation after each epoch.
    pub fn new(every: usize) -> Self {
        Self {
            every,
            progress: false,
            bar: None,
            lr: None,
        }
    }

    /// Also draws a progress bar (when standard error is a terminal).
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    fn bar(&mut self, len: usize) -> Option<&ProgressBar> {
        if !self.progress {
            return None;
        }
        Some(self.bar.get_or_insert_with(|| {
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
        }))
    }

    fn say(&self, text: &str) {
        match &self.bar {
            Some(pb) => pb.suspend(|| println!("{text}")),
            None => println!("{text}"),
        }
    }
}

impl Observer for ArticlePrinter {
    fn name(&self) -> &str {
        "printer"
    }
    fn on_train_start(&mut self, ev: &TrainStart) -> Result<()> {
        self.lr = Some(ev.lr);
        if ev.first_epoch > ev.epochs {
            println!(
                "the run already finished its {} epochs: nothing to train (--epochs N extends it)",
                ev.epochs
            );
        } else if ev.first_epoch > 1 || ev.first_batch > 0 {
            println!(
                "resuming at epoch {}, batch {}/{}",
                ev.first_epoch, ev.first_batch, ev.train_batches
            );
        }
        Ok(())
    }
    fn on_epoch_start(&mut self, epoch: usize) -> Result<()> {
        println!("Epoch {epoch}\n-------------------------------");
        Ok(())
    }
    fn on_batch_end(&mut self, ev: &BatchEnd) -> Result<Control> {
        if let Some(pb) = self.bar(ev.batches) {
            pb.set_position(ev.batch as u64 + 1);
            pb.set_message(format!("loss {:.4}", ev.loss));
        }
        if self.every > 0 && ev.batch.is_multiple_of(self.every) {
            self.say(&format!(
                "loss: {:>7.6} [{:>5}/{:>5}]",
                ev.loss, ev.samples_before, ev.samples
            ));
        }
        if self.lr.is_some_and(|lr| lr != ev.lr) {
            self.say(&format!("learning rate {:e} (epoch {})", ev.lr, ev.epoch));
        }
        self.lr = Some(ev.lr);
        Ok(Control::Continue)
    }
    fn on_epoch_end(&mut self, ev: &EpochEnd) -> Result<Control> {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
        let m = ev.metrics;
        if let (Some(loss), Some(acc)) = (m.val_loss, m.val_accuracy) {
            println!("Validation: Accuracy: {acc:>0.1}%, Avg loss: {loss:>8.6}");
        }
        if let (Some(loss), Some(acc)) = (m.test_loss, m.test_accuracy) {
            println!("Test Error: \n Accuracy: {acc:>0.1}%, Avg loss: {loss:>8.6} \n");
        }
        if self.lr.is_some_and(|lr| lr != ev.next_lr) {
            println!(
                "learning rate {:e} -> {:e} (schedule, after epoch {})",
                self.lr.unwrap_or(ev.next_lr),
                ev.next_lr,
                m.epoch
            );
        }
        self.lr = Some(ev.next_lr);
        Ok(Control::Continue)
    }
    fn on_train_end(&mut self, reason: StopReason, _history: &[EpochMetrics]) -> Result<()> {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
        match reason {
            StopReason::Completed => println!("Done!"),
            StopReason::Stopped { epoch } => println!("Stopped early after epoch {epoch}."),
            StopReason::Interrupted { epoch, batch } => {
                println!("Interrupted in epoch {epoch} after batch {batch}: checkpoint written.")
            }
        }
        Ok(())
    }
}

/// Stops the run when the monitored loss (validation loss, else test loss, else training
/// loss) has not improved by more than `min_delta` for `patience` epochs (Lightning's
/// `EarlyStopping(monitor="val_loss", mode="min")`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    patience: usize,
    min_delta: f64,
    best: Option<f64>,
    bad_epochs: usize,
}

impl EarlyStopping {
    /// Stops after `patience` epochs without an improvement larger than `min_delta`.
    pub fn new(patience: usize, min_delta: f64) -> Result<Self> {
        if patience == 0 || !min_delta.is_finite() || min_delta < 0.0 {
            return Err(TrainError::Config(format!(
                "early stopping needs patience >= 1 and a finite min_delta >= 0, got patience {patience}, min_delta {min_delta}"
            )));
        }
        Ok(Self {
            patience,
            min_delta,
            best: None,
            bad_epochs: 0,
        })
    }
}

impl Observer for EarlyStopping {
    fn name(&self) -> &str {
        "early_stopping"
    }
    fn on_epoch_end(&mut self, ev: &EpochEnd) -> Result<Control> {
        let loss = ev.metrics.monitored_loss();
        match self.best {
            Some(best) if loss >= best - self.min_delta => self.bad_epochs += 1,
            _ => {
                self.best = Some(loss);
                self.bad_epochs = 0;
            }
        }
        if self.bad_epochs >= self.patience {
            println!(
                "early stopping: no improvement of the monitored loss for {} epochs (best {:.6})",
                self.bad_epochs,
                self.best.unwrap_or(loss)
            );
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    }
    fn state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }
    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        let s: EarlyStopping = serde_json::from_value(state.clone())
            .map_err(|e| TrainError::Checkpoint(format!("early stopping state: {e}")))?;
        self.best = s.best;
        self.bad_epochs = s.bad_epochs;
        Ok(())
    }
}
