//! The training recipes, each defined once: the command line, the tests and the examples
//! start from these and change what they need.

use crate::optim::{AdamConfig, OptimizerConfig, SgdConfig};
use crate::run::TrainConfig;
use crate::schedule::{ScheduleConfig, ScheduleKind};
use crate::Loss;
use convnets_data::Normalize;
use std::path::PathBuf;

/// A named recipe.
#[derive(Debug)]
pub struct Recipe {
    /// Its name on the command line (`--recipe NAME`).
    pub name: &'static str,
    /// Where it comes from and what it reaches.
    pub description: &'static str,
    /// The configuration.
    pub config: fn() -> TrainConfig,
}

/// Seed 000's recipe: LeNet-5 on Fashion-MNIST, `ToTensor` only, batch 256, SGD lr 0.01 (no
/// momentum), cross-entropy, 20 epochs, loss printed every 100 batches. The article reports
/// 77.9 % test accuracy.
pub fn lenet5_fashion_mnist() -> TrainConfig {
    TrainConfig {
        model: "lenet5".into(),
        dataset: "fashion-mnist".into(),
        epochs: 20,
        batch_size: 256,
        seed: 0,
        normalize: None,
        val_split: None,
        early_stop: None,
        clip_grad_norm: None,
        train_limit: None,
        data_dir: None,
        download: true,
        out: PathBuf::from("runs"),
        device: "cpu".into(),
        log_every: 100,
        optimizer: OptimizerConfig::Sgd(SgdConfig {
            lr: 0.01,
            ..Default::default()
        }),
        schedule: None,
        loss: Loss::default(),
        augment: None,
        workers: 0,
        skip_bad: false,
        ranks: None,
        init_weights: None,
        replace_head: None,
        freeze_backbone: false,
    }
}

/// The better LeNet-5 recipe for Fashion-MNIST: the batch-norm variant
/// ([`convnets_zoo::LeNet5Bn`]: BatchNorm + ReLU + max pooling after each convolution),
/// inputs normalized with Fashion-MNIST's mean and standard deviation (0.2860, 0.3530), Adam
/// (lr 0.001) with a cosine schedule down to 0 over 20 epochs, batch 128. It reaches over
/// 90 % test accuracy where seed 000's recipe stops at 77.9 %.
pub fn lenet5_bn_fashion_mnist() -> TrainConfig {
    TrainConfig {
        model: "lenet5-bn".into(),
        batch_size: 128,
        normalize: Some(Normalize::FASHION_MNIST),
        optimizer: OptimizerConfig::Adam(AdamConfig::default()),
        schedule: Some(ScheduleConfig {
            kind: ScheduleKind::Cosine {
                t_max: None,
                eta_min: 0.0,
            },
            ..Default::default()
        }),
        ..lenet5_fashion_mnist()
    }
}

/// Seed 004's recipe: the MNIST CNN, `Normalize(0.1307, 0.3081)`, batch 64, SGD lr 0.01
/// momentum 0.5, 10 epochs. The article reports about 98 %.
pub fn mnist_net_mnist() -> TrainConfig {
    TrainConfig {
        model: "mnist-net".into(),
        dataset: "mnist".into(),
        epochs: 10,
        batch_size: 64,
        normalize: Some(Normalize::MNIST),
        optimizer: OptimizerConfig::Sgd(SgdConfig {
            lr: 0.01,
            momentum: 0.5,
            ..Default::default()
        }),
        ..lenet5_fashion_mnist()
    }
}

/// Seed 001's networks on MNIST (the article gives no recipe): seed 004's data pipeline and
/// batch (Normalize(0.1307, 0.3081), batch 64, 10 epochs) with momentum 0.9 instead of 0.5 and
/// a cosine schedule from lr 0.01 down to 0 — seed 002's "momentum SGD" and a decaying rate.
/// Seed 004's recipe as it is stops at 98.7 % for the Inception network; this one passes 99 %.
fn seed001_mnist(model: &str) -> TrainConfig {
    TrainConfig {
        model: model.into(),
        optimizer: OptimizerConfig::Sgd(SgdConfig {
            lr: 0.01,
            momentum: 0.9,
            ..Default::default()
        }),
        schedule: Some(ScheduleConfig {
            kind: ScheduleKind::Cosine {
                t_max: None,
                eta_min: 0.0,
            },
            ..Default::default()
        }),
        ..mnist_net_mnist()
    }
}

/// Seed 001's Inception network on MNIST: SGD lr 0.01 momentum 0.9, cosine schedule, batch 64,
/// 10 epochs, Normalize(0.1307, 0.3081).
pub fn inception_net_mnist() -> TrainConfig {
    seed001_mnist("inception-net")
}

/// Seed 001's residual network on MNIST, with the Inception network's recipe.
pub fn residual_net_mnist() -> TrainConfig {
    seed001_mnist("residual-net")
}

/// SimpleCNN (seed 003) on CIFAR-10. The article defines the network, not a recipe; this is
/// the usual one for a small plain CNN: per-channel `Normalize` with CIFAR-10's statistics,
/// random crop (pad 4) and horizontal flips, SGD lr 0.01 momentum 0.9 weight decay 5e-4,
/// cosine schedule, batch 128, 30 epochs.
pub fn simple_cnn_cifar10() -> TrainConfig {
    TrainConfig {
        model: "simple-cnn".into(),
        dataset: "cifar10".into(),
        epochs: 30,
        batch_size: 128,
        normalize: Some(Normalize::CIFAR10),
        optimizer: OptimizerConfig::Sgd(SgdConfig {
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            ..Default::default()
        }),
        schedule: Some(ScheduleConfig {
            kind: ScheduleKind::Cosine {
                t_max: None,
                eta_min: 0.0,
            },
            ..Default::default()
        }),
        augment: Some(convnets_data::Augment::default_for(
            convnets_data::DatasetKind::Cifar10,
        )),
        workers: 1,
        ..lenet5_fashion_mnist()
    }
}

/// He et al. 2016 (section 4.2), the CIFAR-10 ResNet-20 that seed 001 cites: SGD lr 0.1
/// momentum 0.9 weight decay 1e-4, batch 128, 164 epochs (64k iterations) with the rate
/// divided by 10 after epochs 82 and 123 (32k and 48k iterations), random crop (pad 4) and
/// horizontal flips, per-channel normalisation (the paper subtracts the per-pixel mean). The
/// paper reports 8.75 % test error (91.25 % accuracy).
pub fn resnet20_cifar10() -> TrainConfig {
    TrainConfig {
        model: "resnet20".into(),
        epochs: 164,
        optimizer: OptimizerConfig::Sgd(SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            ..Default::default()
        }),
        schedule: Some(ScheduleConfig {
            kind: ScheduleKind::MultiStep {
                milestones: vec![82, 123],
                gamma: 0.1,
            },
            ..Default::default()
        }),
        ..simple_cnn_cifar10()
    }
}

/// [`resnet20_cifar10`] for the 56-layer network; He et al. report 6.97 % test error.
pub fn resnet56_cifar10() -> TrainConfig {
    TrainConfig {
        model: "resnet56".into(),
        ..resnet20_cifar10()
    }
}

static RECIPES: &[Recipe] = &[
    Recipe {
        name: "lenet5-fashion-mnist",
        description: "seed 000: LeNet-5 on Fashion-MNIST, SGD lr 0.01, batch 256, 20 epochs (article: 77.9 %)",
        config: lenet5_fashion_mnist,
    },
    Recipe {
        name: "lenet5-bn-fashion-mnist",
        description: "LeNet-5 with batch norm + ReLU + max pooling on Fashion-MNIST, normalized, Adam lr 0.001, cosine schedule, batch 128, 20 epochs (> 90 %)",
        config: lenet5_bn_fashion_mnist,
    },
    Recipe {
        name: "mnist-net-mnist",
        description: "seed 004: the MNIST CNN, Normalize(0.1307, 0.3081), SGD lr 0.01 momentum 0.5, batch 64, 10 epochs (article: ~98 %)",
        config: mnist_net_mnist,
    },
    Recipe {
        name: "inception-net-mnist",
        description: "seed 001: the Inception network on MNIST, Normalize(0.1307, 0.3081), SGD lr 0.01 momentum 0.9, cosine schedule, batch 64, 10 epochs (>= 99 %)",
        config: inception_net_mnist,
    },
    Recipe {
        name: "simple-cnn-cifar10",
        description: "seed 003: SimpleCNN on CIFAR-10, per-channel Normalize, random crop (pad 4) + flips, SGD lr 0.01 momentum 0.9 wd 5e-4, cosine schedule, batch 128, 30 epochs",
        config: simple_cnn_cifar10,
    },
    Recipe {
        name: "resnet20-cifar10",
        description: "He et al. 2016: ResNet-20 on CIFAR-10, random crop (pad 4) + flips, SGD lr 0.1 momentum 0.9 wd 1e-4, batch 128, lr /10 after epochs 82 and 123, 164 epochs (paper: 8.75 % error)",
        config: resnet20_cifar10,
    },
    Recipe {
        name: "resnet56-cifar10",
        description: "He et al. 2016: ResNet-56 on CIFAR-10, ResNet-20's recipe (paper: 6.97 % error)",
        config: resnet56_cifar10,
    },
    Recipe {
        name: "residual-net-mnist",
        description: "seed 001: the residual network on MNIST, Normalize(0.1307, 0.3081), SGD lr 0.01 momentum 0.9, cosine schedule, batch 64, 10 epochs (>= 99 %)",
        config: residual_net_mnist,
    },
];

/// Every recipe.
pub fn recipes() -> &'static [Recipe] {
    RECIPES
}

/// The recipe called `name`, or an error listing them.
pub fn recipe(name: &str) -> Result<TrainConfig, crate::TrainError> {
    RECIPES
        .iter()
        .find(|r| r.name == name)
        .map(|r| (r.config)())
        .ok_or_else(|| {
            let known: Vec<&str> = RECIPES.iter().map(|r| r.name).collect();
            crate::TrainError::Config(format!(
                "unknown recipe `{name}`; known: {}",
                known.join(", ")
            ))
        })
}

/// The recipe a model is trained with when none is named: the recipe of that model if there
/// is one, else seed 004's recipe with the model and its data set swapped in.
pub fn default_for_model(model: &str) -> TrainConfig {
    RECIPES
        .iter()
        .map(|r| (r.config)())
        .find(|c| c.model == model)
        .unwrap_or_else(|| {
            let dataset = convnets_zoo::find(model)
                .map(|m| m.dataset.to_string())
                .unwrap_or_else(|| "mnist".into());
            TrainConfig {
                model: model.into(),
                dataset,
                ..mnist_net_mnist()
            }
        })
}
