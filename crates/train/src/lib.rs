//! Training for convnets: the loss, SGD with momentum and weight decay (PyTorch's
//! formulation), the train/evaluate loop that prints like the articles, per-epoch metrics
//! (CSV, JSON lines, an SVG plot) and atomic checkpoints.

pub mod device;
pub mod error;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod trainer;

pub use device::parse_device;
pub use error::{Result, TrainError};
pub use loss::cross_entropy;
pub use metrics::{EpochMetrics, MetricsLog};
pub use optim::{Sgd, SgdConfig};
pub use trainer::{
    eval_weights, evaluate, load_dataset, train, EvalConfig, EvalResult, RunSummary, TrainConfig,
};
