//! Learning-rate schedules with PyTorch's sequences of rates (`torch.optim.lr_scheduler`).
//!
//! [`LrScheduler`] reproduces, value for value, the learning rate that PyTorch's schedulers
//! leave in `optimizer.param_groups[0]["lr"]`: it follows their recursive update rules in the
//! same floating-point order (not the closed forms, which differ in the last bits), so the rates
//! agree with PyTorch's to rounding (tested at 1e-12 against `tests/golden/optim/schedules.json`):
//!
//! | [`ScheduleKind`] | PyTorch | stepped |
//! | --- | --- | --- |
//! | `constant` | `LambdaLR(opt, lambda _: 1.0)` | per epoch |
//! | `step` | `StepLR(step_size, gamma=0.1)` | per epoch |
//! | `multi_step` | `MultiStepLR(milestones, gamma=0.1)` | per epoch |
//! | `cosine` | `CosineAnnealingLR(T_max, eta_min=0)` | per epoch |
//! | `one_cycle` | `OneCycleLR(max_lr, epochs, steps_per_epoch, ...)` | per batch |
//! | `plateau` | `ReduceLROnPlateau(mode="min", factor=0.1, patience=10, ...)` | per epoch, with the validation loss |
//!
//! A warm-up of `warmup_epochs > 0` epochs is composed exactly as
//! `SequentialLR(opt, [LinearLR(opt, start_factor=warmup_start_factor, end_factor=1.0,
//! total_iters=warmup_epochs), main], milestones=[warmup_epochs])` (the torchvision recipe): the
//! rate rises linearly from `base_lr * warmup_start_factor` over the warm-up epochs, then the main
//! schedule starts from its epoch 0 at `base_lr`. PyTorch's `SequentialLR` refuses
//! `ReduceLROnPlateau`, and `OneCycleLR` has its own warm-up phase, so those two take no
//! warm-up here.
//!
//! `OneCycleLR` also cycles the optimizer's momentum (or Adam's beta1) between 0.85 and 0.95;
//! only the learning rate is reproduced here, the momentum stays as configured.
//!
//! The usual loop (PyTorch's order: optimizer step first, then the scheduler):
//!
//! ```text
//! let mut sched = LrScheduler::new(&cfg, opt.learning_rate(), epochs, batches_per_epoch)?;
//! opt.set_learning_rate(sched.lr());
//! for epoch in 0..epochs {
//!     for batch in batches { opt.step(&grads)?; opt.set_learning_rate(sched.step_batch()); }
//!     let val_loss = evaluate(..);
//!     opt.set_learning_rate(sched.step_epoch(Some(val_loss)));
//! }
//! ```

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// An invalid schedule configuration.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// A parameter outside its valid range, or a combination the schedule does not support.
    #[error("invalid learning-rate schedule: `{parameter}`: expected {expected}, found {found}")]
    Invalid {
        /// The parameter's name, as in the configuration (`"T_max"`, `"warmup_epochs"`, ...).
        parameter: &'static str,
        /// What a valid value looks like.
        expected: String,
        /// The value given.
        found: String,
    },
}

fn invalid(
    parameter: &'static str,
    expected: impl Into<String>,
    found: impl ToString,
) -> ScheduleError {
    ScheduleError::Invalid {
        parameter,
        expected: expected.into(),
        found: found.to_string(),
    }
}

/// `ReduceLROnPlateau`'s `mode`: whether the metric should go down (a loss) or up (an accuracy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlateauMode {
    /// Lower is better (the default).
    #[default]
    Min,
    /// Higher is better.
    Max,
}

/// `ReduceLROnPlateau`'s `threshold_mode`: how much better counts as an improvement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdMode {
    /// Relative: better than `best * (1 - threshold)` (min) or `best * (1 + threshold)` (max).
    #[default]
    Rel,
    /// Absolute: better than `best - threshold` (min) or `best + threshold` (max).
    Abs,
}

/// `OneCycleLR`'s `anneal_strategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnealStrategy {
    /// Cosine annealing (the default).
    #[default]
    Cos,
    /// Linear annealing.
    Linear,
}

fn gamma_default() -> f64 {
    0.1
}
fn pct_start_default() -> f64 {
    0.3
}
fn div_factor_default() -> f64 {
    25.0
}
fn final_div_factor_default() -> f64 {
    1e4
}
fn factor_default() -> f64 {
    0.1
}
fn patience_default() -> usize {
    10
}
fn threshold_default() -> f64 {
    1e-4
}
fn plateau_eps_default() -> f64 {
    1e-8
}
fn warmup_start_factor_default() -> f64 {
    1.0 / 3.0
}

/// The main schedule, with PyTorch's argument names and defaults. In JSON it is tagged by
/// `name` (`{"name": "cosine", "T_max": 90}`); absent parameters take PyTorch's defaults and
/// unknown ones are an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleKind {
    /// The rate stays at the optimizer's (`LambdaLR(opt, lambda _: 1.0)`); with a warm-up, this is
    /// a warm-up alone.
    Constant,
    /// `StepLR`: multiply the rate by `gamma` every `step_size` epochs.
    #[serde(alias = "StepLR")]
    Step {
        /// Epochs between decays (>= 1).
        step_size: usize,
        /// Multiplicative decay (default 0.1).
        #[serde(default = "gamma_default")]
        gamma: f64,
    },
    /// `MultiStepLR`: multiply the rate by `gamma` at each milestone epoch (a milestone listed
    /// twice decays twice, as PyTorch's `Counter` does).
    #[serde(alias = "MultiStepLR")]
    MultiStep {
        /// Epoch indices of the decays.
        milestones: Vec<usize>,
        /// Multiplicative decay (default 0.1).
        #[serde(default = "gamma_default")]
        gamma: f64,
    },
    /// `CosineAnnealingLR`: half a cosine from the base rate down to `eta_min` over `T_max`
    /// epochs (and, as in PyTorch, back up after `T_max`).
    #[serde(alias = "CosineAnnealingLR")]
    Cosine {
        /// Half-period in epochs (>= 1). Absent: the rest of the run, `epochs - warmup_epochs`
        /// (PyTorch has no default).
        #[serde(
            rename = "T_max",
            alias = "t_max",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        t_max: Option<usize>,
        /// Minimum rate (default 0).
        #[serde(default)]
        eta_min: f64,
    },
    /// `OneCycleLR` over `total_steps = epochs * steps_per_epoch` batches: up from
    /// `max_lr / div_factor` to `max_lr` over the first `pct_start` of the steps, then down to
    /// `max_lr / div_factor / final_div_factor`. Stepped per batch.
    #[serde(alias = "OneCycleLR")]
    OneCycle {
        /// Peak rate. Absent: the optimizer's learning rate (PyTorch requires it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_lr: Option<f64>,
        /// Fraction of the steps spent increasing the rate (default 0.3).
        #[serde(default = "pct_start_default")]
        pct_start: f64,
        /// Cosine or linear annealing (default cosine).
        #[serde(default)]
        anneal_strategy: AnnealStrategy,
        /// Initial rate = `max_lr / div_factor` (default 25).
        #[serde(default = "div_factor_default")]
        div_factor: f64,
        /// Final rate = initial rate / `final_div_factor` (default 1e4).
        #[serde(default = "final_div_factor_default")]
        final_div_factor: f64,
        /// Three phases (up, down to the initial rate, down to the final one) instead of two.
        #[serde(default)]
        three_phase: bool,
    },
    /// `ReduceLROnPlateau`: multiply the rate by `factor` when the validation metric has not
    /// improved for more than `patience` epochs.
    #[serde(alias = "ReduceLROnPlateau")]
    Plateau {
        /// Whether lower (`min`, the default) or higher (`max`) is better.
        #[serde(default)]
        mode: PlateauMode,
        /// Multiplicative decay, in `[0, 1)` (default 0.1).
        #[serde(default = "factor_default")]
        factor: f64,
        /// Epochs without improvement tolerated before a decay (default 10).
        #[serde(default = "patience_default")]
        patience: usize,
        /// Minimum improvement (default 1e-4).
        #[serde(default = "threshold_default")]
        threshold: f64,
        /// Relative (the default) or absolute threshold.
        #[serde(default)]
        threshold_mode: ThresholdMode,
        /// Epochs to wait after a decay before counting bad epochs again (default 0).
        #[serde(default)]
        cooldown: usize,
        /// Lower bound of the rate (default 0).
        #[serde(default)]
        min_lr: f64,
        /// Decays smaller than this are skipped (default 1e-8).
        #[serde(default = "plateau_eps_default")]
        eps: f64,
    },
}

impl ScheduleKind {
    /// The JSON tag: `"constant"`, `"step"`, `"multi_step"`, `"cosine"`, `"one_cycle"`,
    /// `"plateau"`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Step { .. } => "step",
            Self::MultiStep { .. } => "multi_step",
            Self::Cosine { .. } => "cosine",
            Self::OneCycle { .. } => "one_cycle",
            Self::Plateau { .. } => "plateau",
        }
    }

    /// Whether the rate changes per batch ([`LrScheduler::step_batch`]) rather than per epoch.
    pub fn per_batch(&self) -> bool {
        matches!(self, Self::OneCycle { .. })
    }
}

/// A learning-rate schedule: the main [`ScheduleKind`] and an optional linear warm-up (see the
/// module documentation for the exact PyTorch composition). In JSON, absent warm-up fields take
/// their defaults (no warm-up; start factor 1/3, `LinearLR`'s default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The main schedule.
    pub kind: ScheduleKind,
    /// Epochs of linear warm-up (0: none). Not with `one_cycle` or `plateau`.
    #[serde(default)]
    pub warmup_epochs: usize,
    /// The first warm-up epoch's rate, as a fraction of the base rate, in `(0, 1]`.
    #[serde(default = "warmup_start_factor_default")]
    pub warmup_start_factor: f64,
}

impl Default for ScheduleConfig {
    /// A constant rate, no warm-up.
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Constant,
            warmup_epochs: 0,
            warmup_start_factor: warmup_start_factor_default(),
        }
    }
}

/// Serialises an `f64` as the shortest string that parses back to the same bits (`"0.1"`,
/// `"inf"`), since JSON numbers cannot hold infinities and serde_json's default number parser
/// may be off by one unit in the last place. Reads strings and, for hand-written files, numbers.
mod exact_f64 {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Number(f64),
        }
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(v),
            Repr::Text(s) => s.parse().map_err(|_| {
                D::Error::custom(format!(
                    "expected a number written as a string (\"0.1\", \"inf\"), found {s:?}"
                ))
            }),
        }
    }
}

/// `LinearLR(start_factor, end_factor=1.0, total_iters)`'s state.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Warmup {
    #[serde(with = "exact_f64")]
    start_factor: f64,
    total_iters: u64,
    last_epoch: i64,
}

impl Warmup {
    /// `LinearLR.step()` after its first epoch (`last_epoch >= 1`).
    fn step(&mut self, lr: f64) -> f64 {
        self.last_epoch += 1;
        if self.last_epoch > self.total_iters as i64 {
            return lr;
        }
        let (sf, ef) = (self.start_factor, 1.0);
        lr * (1.0
            + (ef - sf) / (self.total_iters as f64 * sf + (self.last_epoch - 1) as f64 * (ef - sf)))
    }
}

/// One `OneCycleLR` phase (`_schedule_phases`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Phase {
    #[serde(with = "exact_f64")]
    end_step: f64,
    #[serde(with = "exact_f64")]
    start_lr: f64,
    #[serde(with = "exact_f64")]
    end_lr: f64,
}

/// The main scheduler's state, PyTorch's attributes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Main {
    Constant,
    Step {
        step_size: u64,
        #[serde(with = "exact_f64")]
        gamma: f64,
        last_epoch: i64,
    },
    MultiStep {
        milestones: Vec<u64>,
        #[serde(with = "exact_f64")]
        gamma: f64,
        last_epoch: i64,
    },
    Cosine {
        t_max: u64,
        #[serde(with = "exact_f64")]
        eta_min: f64,
        last_epoch: i64,
    },
    OneCycle {
        total_steps: u64,
        phases: Vec<Phase>,
        linear: bool,
        step_num: u64,
    },
    Plateau {
        max_mode: bool,
        abs_threshold: bool,
        #[serde(with = "exact_f64")]
        factor: f64,
        patience: u64,
        #[serde(with = "exact_f64")]
        threshold: f64,
        cooldown: u64,
        #[serde(with = "exact_f64")]
        min_lr: f64,
        #[serde(with = "exact_f64")]
        eps: f64,
        #[serde(with = "exact_f64")]
        best: f64,
        num_bad_epochs: u64,
        cooldown_counter: u64,
        last_epoch: u64,
    },
}

impl Main {
    /// The rate right after PyTorch constructs the scheduler alone (its initial `step()`, with
    /// `last_epoch = 0`), from the optimizer's rate `lr`.
    fn initial_lr(&self, lr: f64) -> f64 {
        match self {
            Self::MultiStep {
                milestones, gamma, ..
            } => multi_step_get_lr(milestones, *gamma, 0, lr),
            Self::OneCycle {
                phases,
                linear,
                step_num,
                ..
            } => one_cycle_lr(phases, *linear, *step_num),
            _ => lr,
        }
    }

    /// `scheduler.step()`: advances one epoch (one batch for OneCycle) and returns the new rate
    /// from the current `lr` (PyTorch's recursive `get_lr`).
    fn step(&mut self, lr: f64, base_lr: f64) -> f64 {
        match self {
            Self::Constant => base_lr * 1.0,
            Self::Step {
                step_size,
                gamma,
                last_epoch,
            } => {
                *last_epoch += 1;
                if *last_epoch == 0 || *last_epoch % *step_size as i64 != 0 {
                    lr
                } else {
                    lr * *gamma
                }
            }
            Self::MultiStep {
                milestones,
                gamma,
                last_epoch,
            } => {
                *last_epoch += 1;
                multi_step_get_lr(milestones, *gamma, *last_epoch, lr)
            }
            Self::Cosine {
                t_max,
                eta_min,
                last_epoch,
            } => {
                *last_epoch += 1;
                // PyTorch's branch `_step_count == 1 and last_epoch > 0` only applies when the
                // scheduler is created with `last_epoch >= 0`; it never is here.
                let (e, t, eta) = (*last_epoch, *t_max as i64, *eta_min);
                if (e - 1 - t).rem_euclid(2 * t) == 0 {
                    lr + (base_lr - eta) * (1.0 - (PI / t as f64).cos()) / 2.0
                } else {
                    (1.0 + (PI * e as f64 / t as f64).cos())
                        / (1.0 + (PI * (e - 1) as f64 / t as f64).cos())
                        * (lr - eta)
                        + eta
                }
            }
            Self::OneCycle {
                total_steps,
                phases,
                linear,
                step_num,
            } => {
                // PyTorch raises past `total_steps`; this stays at the last rate.
                *step_num = (*step_num + 1).min(*total_steps);
                one_cycle_lr(phases, *linear, *step_num)
            }
            // Stepped with a metric (`plateau_step`).
            Self::Plateau { .. } => lr,
        }
    }

    /// `scheduler._update_lr(0)`, what `SequentialLR` does at the milestone: `last_epoch = 0`
    /// and the closed form's rate there.
    fn restart(&mut self, base_lr: f64) -> f64 {
        match self {
            Self::Constant => base_lr * 1.0,
            Self::Step {
                gamma, last_epoch, ..
            } => {
                // base_lr * gamma ** (last_epoch // step_size), at last_epoch = 0
                *last_epoch = 0;
                base_lr * gamma.powf(0.0)
            }
            Self::MultiStep {
                milestones,
                gamma,
                last_epoch,
            } => {
                *last_epoch = 0;
                let reached = milestones.iter().filter(|&&m| m == 0).count();
                base_lr * gamma.powf(reached as f64)
            }
            Self::Cosine {
                t_max,
                eta_min,
                last_epoch,
            } => {
                *last_epoch = 0;
                *eta_min + (base_lr - *eta_min) * (1.0 + (PI * 0.0 / *t_max as f64).cos()) / 2.0
            }
            // Never composed with a warm-up (rejected by `LrScheduler::new`).
            Self::OneCycle { .. } | Self::Plateau { .. } => base_lr,
        }
    }
}

/// `MultiStepLR.get_lr()` at `last_epoch`.
fn multi_step_get_lr(milestones: &[u64], gamma: f64, last_epoch: i64, lr: f64) -> f64 {
    let count = milestones
        .iter()
        .filter(|&&m| m as i64 == last_epoch)
        .count();
    if count == 0 {
        lr
    } else {
        lr * gamma.powf(count as f64)
    }
}

/// `OneCycleLR.get_lr()` at `step_num`.
fn one_cycle_lr(phases: &[Phase], linear: bool, step_num: u64) -> f64 {
    let step = step_num as f64;
    let mut start_step = 0.0;
    for (i, phase) in phases.iter().enumerate() {
        if step <= phase.end_step || i == phases.len() - 1 {
            let pct = (step - start_step) / (phase.end_step - start_step);
            let (start, end) = (phase.start_lr, phase.end_lr);
            return if linear {
                (end - start) * pct + start
            } else {
                let cos_out = (PI * pct).cos() + 1.0;
                end + (start - end) / 2.0 * cos_out
            };
        }
        start_step = phase.end_step;
    }
    // `phases` is never empty.
    phases.last().map_or(0.0, |p| p.end_lr)
}

/// A learning-rate schedule in progress: the rate for the next optimizer step, and the state of
/// PyTorch's scheduler objects. The whole state serialises (serde), for checkpoints; every `f64`
/// is written as a string that parses back bit-exactly, so a resumed run continues with the
/// identical sequence of rates.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LrScheduler {
    /// `optimizer.param_groups[0]["lr"]`.
    #[serde(with = "exact_f64")]
    lr: f64,
    /// `initial_lr`: the optimizer's rate when the schedule was created.
    #[serde(with = "exact_f64")]
    base_lr: f64,
    /// `SequentialLR.last_epoch`: epochs stepped so far.
    epoch: u64,
    warmup: Option<Warmup>,
    main: Main,
}

fn check_non_negative(parameter: &'static str, v: f64) -> Result<(), ScheduleError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(invalid(parameter, "a finite value >= 0", v))
    }
}

fn check_positive(parameter: &'static str, v: f64) -> Result<(), ScheduleError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(invalid(parameter, "a finite value > 0", v))
    }
}

impl LrScheduler {
    /// The schedule `cfg` for an optimizer whose learning rate is `base_lr`, over a run of
    /// `epochs` epochs of `steps_per_epoch` optimizer steps each (used by `one_cycle`, and by
    /// `cosine` without `T_max`). [`LrScheduler::lr`] is then the rate of the first step.
    ///
    /// Errors, naming the parameter, on a negative or non-finite rate or factor, a `step_size`
    /// or `T_max` of 0, a `warmup_start_factor` outside `(0, 1]`, a warm-up with `one_cycle` or
    /// `plateau`, a `factor` outside `[0, 1)`, `one_cycle` without steps or with an empty phase.
    pub fn new(
        cfg: &ScheduleConfig,
        base_lr: f64,
        epochs: usize,
        steps_per_epoch: usize,
    ) -> Result<Self, ScheduleError> {
        check_non_negative("base_lr", base_lr)?;
        let sf = cfg.warmup_start_factor;
        if !(sf > 0.0 && sf <= 1.0) {
            return Err(invalid("warmup_start_factor", "a value in (0, 1]", sf));
        }
        if cfg.warmup_epochs > 0 && matches!(cfg.kind, ScheduleKind::OneCycle { .. }) {
            return Err(invalid(
                "warmup_epochs",
                "0 with one_cycle (it has its own warm-up phase, pct_start)",
                cfg.warmup_epochs,
            ));
        }
        if cfg.warmup_epochs > 0 && matches!(cfg.kind, ScheduleKind::Plateau { .. }) {
            return Err(invalid(
                "warmup_epochs",
                "0 with plateau (PyTorch's SequentialLR does not compose ReduceLROnPlateau)",
                cfg.warmup_epochs,
            ));
        }
        let main = match &cfg.kind {
            ScheduleKind::Constant => Main::Constant,
            &ScheduleKind::Step { step_size, gamma } => {
                if step_size == 0 {
                    return Err(invalid("step_size", "an epoch count >= 1", step_size));
                }
                check_non_negative("gamma", gamma)?;
                Main::Step {
                    step_size: step_size as u64,
                    gamma,
                    last_epoch: 0,
                }
            }
            ScheduleKind::MultiStep { milestones, gamma } => {
                check_non_negative("gamma", *gamma)?;
                Main::MultiStep {
                    milestones: milestones.iter().map(|&m| m as u64).collect(),
                    gamma: *gamma,
                    last_epoch: 0,
                }
            }
            &ScheduleKind::Cosine { t_max, eta_min } => {
                let t_max = match t_max {
                    Some(t) => t,
                    None => epochs.saturating_sub(cfg.warmup_epochs),
                };
                if t_max == 0 {
                    let found = match cfg.kind {
                        ScheduleKind::Cosine { t_max: Some(_), .. } => "0".to_string(),
                        _ => format!(
                            "none given, and epochs - warmup_epochs = {epochs} - {} leaves no epochs",
                            cfg.warmup_epochs
                        ),
                    };
                    return Err(invalid("T_max", "an epoch count >= 1", found));
                }
                check_non_negative("eta_min", eta_min)?;
                Main::Cosine {
                    t_max: t_max as u64,
                    eta_min,
                    last_epoch: 0,
                }
            }
            &ScheduleKind::OneCycle {
                max_lr,
                pct_start,
                anneal_strategy,
                div_factor,
                final_div_factor,
                three_phase,
            } => {
                let max_lr = max_lr.unwrap_or(base_lr);
                check_non_negative("max_lr", max_lr)?;
                if !(0.0..=1.0).contains(&pct_start) {
                    return Err(invalid("pct_start", "a value in [0, 1]", pct_start));
                }
                check_positive("div_factor", div_factor)?;
                check_positive("final_div_factor", final_div_factor)?;
                if epochs == 0 {
                    return Err(invalid("epochs", "at least 1 for one_cycle", epochs));
                }
                if steps_per_epoch == 0 {
                    return Err(invalid(
                        "steps_per_epoch",
                        "at least 1 for one_cycle",
                        steps_per_epoch,
                    ));
                }
                let total_steps = epochs.saturating_mul(steps_per_epoch) as u64;
                let total = total_steps as f64;
                let initial_lr = max_lr / div_factor;
                let min_lr = initial_lr / final_div_factor;
                let phase = |end_step, start_lr, end_lr| Phase {
                    end_step,
                    start_lr,
                    end_lr,
                };
                let phases = if three_phase {
                    vec![
                        phase(pct_start * total - 1.0, initial_lr, max_lr),
                        phase(2.0 * pct_start * total - 2.0, max_lr, initial_lr),
                        phase(total - 1.0, initial_lr, min_lr),
                    ]
                } else {
                    vec![
                        phase(pct_start * total - 1.0, initial_lr, max_lr),
                        phase(total - 1.0, max_lr, min_lr),
                    ]
                };
                // Every phase must span more than zero steps, or PyTorch divides by zero.
                let mut start = 0.0;
                for p in &phases {
                    if p.end_step <= start {
                        return Err(invalid(
                            "pct_start",
                            format!(
                                "a value that gives every phase at least one step of the \
                                 {total_steps} (epochs * steps_per_epoch; the increasing phase \
                                 ends at step pct_start * total_steps - 1)"
                            ),
                            pct_start,
                        ));
                    }
                    start = p.end_step;
                }
                Main::OneCycle {
                    total_steps,
                    phases,
                    linear: anneal_strategy == AnnealStrategy::Linear,
                    step_num: 0,
                }
            }
            &ScheduleKind::Plateau {
                mode,
                factor,
                patience,
                threshold,
                threshold_mode,
                cooldown,
                min_lr,
                eps,
            } => {
                if !(0.0..1.0).contains(&factor) {
                    return Err(invalid("factor", "a value in [0, 1)", factor));
                }
                check_non_negative("threshold", threshold)?;
                check_non_negative("min_lr", min_lr)?;
                check_non_negative("eps", eps)?;
                let max_mode = mode == PlateauMode::Max;
                Main::Plateau {
                    max_mode,
                    abs_threshold: threshold_mode == ThresholdMode::Abs,
                    factor,
                    patience: patience as u64,
                    threshold,
                    cooldown: cooldown as u64,
                    min_lr,
                    eps,
                    best: if max_mode {
                        f64::NEG_INFINITY
                    } else {
                        f64::INFINITY
                    },
                    num_bad_epochs: 0,
                    cooldown_counter: 0,
                    last_epoch: 0,
                }
            }
        };
        let mut s = Self {
            lr: base_lr,
            base_lr,
            epoch: 0,
            warmup: None,
            main,
        };
        if cfg.warmup_epochs > 0 {
            // SequentialLR's constructor: the main scheduler's epoch is undone (-1), and only
            // LinearLR's initial step runs: lr = initial_lr * start_factor.
            match &mut s.main {
                Main::Step { last_epoch, .. }
                | Main::MultiStep { last_epoch, .. }
                | Main::Cosine { last_epoch, .. } => *last_epoch = -1,
                _ => {}
            }
            s.warmup = Some(Warmup {
                start_factor: sf,
                total_iters: cfg.warmup_epochs as u64,
                last_epoch: 0,
            });
            s.lr = base_lr * sf;
        } else {
            s.lr = s.main.initial_lr(base_lr);
        }
        Ok(s)
    }

    /// The rate for the next optimizer step.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Call after every optimizer step; returns the rate for the next one. Only per-batch
    /// schedules (`one_cycle`) change here; after `epochs * steps_per_epoch` calls the rate
    /// stays put (PyTorch raises an error instead).
    pub fn step_batch(&mut self) -> f64 {
        if let Main::OneCycle { .. } = self.main {
            self.lr = self.main.step(self.lr, self.base_lr);
        }
        self.lr
    }

    /// Call after every epoch with the validation metric (the loss, or what `plateau`'s `mode`
    /// expects); returns the rate for the next epoch. `plateau` needs the metric: `None` leaves
    /// its state and rate unchanged (as not calling `ReduceLROnPlateau.step`). Other schedules
    /// ignore the metric; `one_cycle` does not change here.
    pub fn step_epoch(&mut self, metric: Option<f64>) -> f64 {
        match &mut self.main {
            Main::OneCycle { .. } => {}
            Main::Plateau {
                max_mode,
                abs_threshold,
                factor,
                patience,
                threshold,
                cooldown,
                min_lr,
                eps,
                best,
                num_bad_epochs,
                cooldown_counter,
                last_epoch,
            } => {
                let Some(current) = metric else {
                    return self.lr;
                };
                *last_epoch += 1;
                let better = match (*max_mode, *abs_threshold) {
                    (false, false) => current < *best * (1.0 - *threshold),
                    (false, true) => current < *best - *threshold,
                    (true, false) => current > *best * (*threshold + 1.0),
                    (true, true) => current > *best + *threshold,
                };
                if better {
                    *best = current;
                    *num_bad_epochs = 0;
                } else {
                    *num_bad_epochs += 1;
                }
                if *cooldown_counter > 0 {
                    *cooldown_counter -= 1;
                    *num_bad_epochs = 0;
                }
                if *num_bad_epochs > *patience {
                    let old = self.lr;
                    let scaled = old * *factor;
                    // Python's max(scaled, min_lr): the first unless the second is larger.
                    let new = if *min_lr > scaled { *min_lr } else { scaled };
                    if old - new > *eps {
                        self.lr = new;
                    }
                    *cooldown_counter = *cooldown;
                    *num_bad_epochs = 0;
                }
            }
            _ => {
                // SequentialLR.step()
                self.epoch += 1;
                self.lr = match &mut self.warmup {
                    Some(w) if self.epoch < w.total_iters => w.step(self.lr),
                    Some(w) if self.epoch == w.total_iters => self.main.restart(self.base_lr),
                    _ => self.main.step(self.lr, self.base_lr),
                };
            }
        }
        self.lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: ScheduleKind) -> ScheduleConfig {
        ScheduleConfig {
            kind,
            ..Default::default()
        }
    }

    fn err(c: &ScheduleConfig, epochs: usize, steps: usize) -> String {
        match LrScheduler::new(c, 0.1, epochs, steps) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn each_invalid_parameter_is_named() {
        let one_cycle = |pct_start: f64| ScheduleKind::OneCycle {
            max_lr: None,
            pct_start,
            anneal_strategy: AnnealStrategy::Cos,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        };
        let plateau = |factor: f64, min_lr: f64| ScheduleKind::Plateau {
            mode: PlateauMode::Min,
            factor,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr,
            eps: 1e-8,
        };
        let cases: Vec<(ScheduleConfig, usize, usize, &str)> = vec![
            (
                cfg(ScheduleKind::Step {
                    step_size: 0,
                    gamma: 0.1,
                }),
                10,
                1,
                "`step_size`",
            ),
            (
                cfg(ScheduleKind::Step {
                    step_size: 2,
                    gamma: -0.1,
                }),
                10,
                1,
                "`gamma`",
            ),
            (
                cfg(ScheduleKind::MultiStep {
                    milestones: vec![2],
                    gamma: f64::NAN,
                }),
                10,
                1,
                "`gamma`",
            ),
            (
                cfg(ScheduleKind::Cosine {
                    t_max: Some(0),
                    eta_min: 0.0,
                }),
                10,
                1,
                "`T_max`",
            ),
            (
                cfg(ScheduleKind::Cosine {
                    t_max: None,
                    eta_min: 0.0,
                }),
                0,
                1,
                "`T_max`",
            ),
            (
                cfg(ScheduleKind::Cosine {
                    t_max: Some(5),
                    eta_min: f64::INFINITY,
                }),
                10,
                1,
                "`eta_min`",
            ),
            (cfg(one_cycle(0.3)), 0, 10, "`epochs`"),
            (cfg(one_cycle(0.3)), 10, 0, "`steps_per_epoch`"),
            (cfg(one_cycle(1.5)), 10, 10, "`pct_start`"),
            (cfg(one_cycle(0.01)), 1, 10, "`pct_start`"),
            (cfg(one_cycle(1.0)), 1, 10, "`pct_start`"),
            (cfg(plateau(1.0, 0.0)), 10, 1, "`factor`"),
            (cfg(plateau(0.1, -1.0)), 10, 1, "`min_lr`"),
            (
                ScheduleConfig {
                    kind: plateau(0.1, 0.0),
                    warmup_epochs: 2,
                    warmup_start_factor: 0.1,
                },
                10,
                1,
                "`warmup_epochs`",
            ),
            (
                ScheduleConfig {
                    kind: one_cycle(0.3),
                    warmup_epochs: 2,
                    warmup_start_factor: 0.1,
                },
                10,
                10,
                "`warmup_epochs`",
            ),
            (
                ScheduleConfig {
                    kind: ScheduleKind::Constant,
                    warmup_epochs: 2,
                    warmup_start_factor: 0.0,
                },
                10,
                1,
                "`warmup_start_factor`",
            ),
        ];
        for (c, epochs, steps, name) in cases {
            let e = err(&c, epochs, steps);
            assert!(
                e.contains(name),
                "{c:?}: expected an error naming {name}, got {e:?}"
            );
        }
        let e = LrScheduler::new(&ScheduleConfig::default(), -0.1, 1, 1)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("`base_lr`"), "{e}");
    }

    #[test]
    fn json_uses_pytorch_names_and_defaults() -> anyhow::Result<()> {
        let c: ScheduleConfig = serde_json::from_str(
            r#"{"kind": {"name": "cosine", "T_max": 90}, "warmup_epochs": 5}"#,
        )?;
        assert_eq!(
            c.kind,
            ScheduleKind::Cosine {
                t_max: Some(90),
                eta_min: 0.0
            }
        );
        assert_eq!(c.warmup_start_factor, 1.0 / 3.0);
        let p: ScheduleKind = serde_json::from_str(r#"{"name": "plateau"}"#)?;
        assert_eq!(
            p,
            ScheduleKind::Plateau {
                mode: PlateauMode::Min,
                factor: 0.1,
                patience: 10,
                threshold: 1e-4,
                threshold_mode: ThresholdMode::Rel,
                cooldown: 0,
                min_lr: 0.0,
                eps: 1e-8
            }
        );
        let s: ScheduleKind = serde_json::from_str(r#"{"name": "StepLR", "step_size": 30}"#)?;
        assert_eq!(
            s,
            ScheduleKind::Step {
                step_size: 30,
                gamma: 0.1
            }
        );
        assert!(serde_json::from_str::<ScheduleKind>(r#"{"name": "step", "size": 3}"#).is_err());
        for kind in [ScheduleKind::Constant, s, p] {
            let c = cfg(kind);
            let back: ScheduleConfig = serde_json::from_str(&serde_json::to_string(&c)?)?;
            assert_eq!(back, c);
        }
        Ok(())
    }

    #[test]
    fn per_batch_and_per_epoch_steps_do_not_mix() -> anyhow::Result<()> {
        let mut step = LrScheduler::new(
            &cfg(ScheduleKind::Step {
                step_size: 1,
                gamma: 0.5,
            }),
            0.1,
            3,
            4,
        )?;
        assert_eq!(step.step_batch(), 0.1);
        assert_eq!(step.step_epoch(None), 0.05);
        let kind: ScheduleKind = serde_json::from_str(r#"{"name": "one_cycle"}"#)?;
        let mut oc = LrScheduler::new(&cfg(kind), 0.1, 3, 4)?;
        let first = oc.lr();
        assert!((first - 0.1 / 25.0).abs() < 1e-15, "{first}");
        assert_eq!(oc.step_epoch(Some(1.0)), first);
        assert!(oc.step_batch() > first);
        // Past the end, the rate stays put.
        for _ in 0..20 {
            oc.step_batch();
        }
        let last = oc.lr();
        assert_eq!(oc.step_batch(), last);
        Ok(())
    }

    #[test]
    fn state_json_keeps_infinities_and_exact_values() -> anyhow::Result<()> {
        let mut s = LrScheduler::new(
            &cfg(serde_json::from_str(r#"{"name": "plateau"}"#)?),
            0.1,
            1,
            1,
        )?;
        let json = serde_json::to_string(&s)?;
        assert!(json.contains("\"inf\""), "{json}");
        let mut back: LrScheduler = serde_json::from_str(&json)?;
        for m in [1.0, 0.5, 0.5] {
            assert_eq!(s.step_epoch(Some(m)), back.step_epoch(Some(m)));
        }
        let x = 0.1f64 + 0.2 + 1e-17 * 3.0;
        let mut c = LrScheduler::new(&cfg(ScheduleKind::Constant), x, 1, 1)?;
        c = serde_json::from_str(&serde_json::to_string(&c)?)?;
        assert_eq!(c.lr().to_bits(), x.to_bits());
        Ok(())
    }
}
