//! Training for convnets: a [`Trainer`] for any model (optimizers with PyTorch's update rules,
//! learning-rate schedules, losses, gradient clipping, observers for printing, early stopping
//! and run folders), evaluation with top-1/top-5 accuracy and the confusion matrix,
//! checkpoints that resume bit for bit, and the registry-name layer the command line uses
//! ([`train`], [`resume`], [`eval_weights`], the [`recipe`]s), and synchronous data-parallel
//! training over MPI ([`distributed`]; the MPI part needs the feature `mpi`).

pub mod checkpoint;
pub mod device;
pub mod distributed;
pub mod error;
pub mod fsutil;
pub mod interrupt;
pub mod loss;
pub mod metrics;
pub mod observer;
pub mod optim;
pub mod params;
pub mod plot;
pub mod recipe;
pub mod run;
pub mod schedule;
pub mod trainer;

pub use checkpoint::Checkpoint;
pub use device::parse_device;
pub use error::{Result, TrainError};
pub use loss::{
    cross_entropy, cross_entropy_with, l1_loss, l2_distance, mse_loss, nll_loss,
    CrossEntropyOptions, Loss, Reduction,
};
pub use metrics::EpochMetrics;
pub use observer::{
    ArticlePrinter, BatchEnd, Control, EarlyStopping, EpochEnd, Observer, StopReason, TrainStart,
};
pub use optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, Optim, OptimizerConfig, RmsProp, RmsPropConfig, Sgd,
    SgdConfig,
};
pub use params::Params;
pub use recipe::{recipe, recipes, Recipe};
pub use run::{
    eval_weights, load_weights, predict_images, resume, resume_with, train, train_with,
    train_with_stop, EvalConfig, Prediction, RunDir, RunOptions, RunSummary, TrainConfig,
};
pub use schedule::{LrScheduler, ScheduleConfig, ScheduleError, ScheduleKind};
pub use trainer::{
    clip_grad_norm, evaluate, evaluate_with, BatchSource, Ensemble, EvalResult, FitReport, Trainer,
};
