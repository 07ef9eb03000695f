//! The convnets benchmarks, all timing code of the project in one package: the recipes being
//! timed and the timing loops (here), the kernels at the models' shapes ([`kernels`]), the
//! step and op profiles ([`profile`]). Run by the `convnets-bench` binary (`cargo xtask
//! bench`, its one argument parser) and the criterion benches (`cargo bench -p
//! convnets-bench`).
//!
//! The same recipes are timed by `benches/torch/bench.py` for PyTorch, so the ratios the
//! `convnets-bench` binary prints compare like with like (same model, batch, optimizer, data,
//! threads, machine, run).

#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use convnets::data::{Batcher, DatasetKind, Normalize};
use convnets::layers::ParamStore;
use convnets::train::{cross_entropy, OptimizerConfig, Sgd, SgdConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod kernels;
pub mod profile;

/// Seconds of each of `runs` calls of `f` after `warmup` untimed ones, sorted ascending.
pub fn time_runs(
    warmup: usize,
    runs: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok(t)
}

/// The median of `v` (the upper one of an even count; 0 when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// A timed training recipe.
#[derive(Clone, Debug)]
pub struct Recipe {
    /// Case name (also the PyTorch twin's).
    pub name: &'static str,
    /// Registry model name.
    pub model: &'static str,
    /// The data set, or `None` for random CIFAR-10-shaped data.
    pub dataset: Option<DatasetKind>,
    /// Normalize after ToTensor.
    pub normalize: Option<Normalize>,
    /// Training batch size.
    pub batch_size: usize,
    /// Optimizer.
    pub sgd: SgdConfig,
}

/// The recipes: seed 000's (A), seed 004's (B), seed 001's Inception and residual networks on
/// MNIST (batch 64, SGD momentum 0.9; the cosine schedule does not change a step's time and
/// is left out), and the CIFAR-10-shaped SimpleCNN (seed 003) and ResNet-20 (He et al. 2016)
/// on random images, as `benches/torch/bench.py` has them.
pub fn recipes() -> Vec<Recipe> {
    vec![
        from_train("lenet5", convnets::train::recipe::lenet5_fashion_mnist()),
        from_train("mnist-net", convnets::train::recipe::mnist_net_mnist()),
        from_train(
            "inception-net",
            convnets::train::recipe::inception_net_mnist(),
        ),
        from_train(
            "residual-net",
            convnets::train::recipe::residual_net_mnist(),
        ),
        Recipe {
            name: "simple-cnn",
            model: "simple-cnn",
            dataset: None,
            normalize: None,
            batch_size: 128,
            sgd: SgdConfig {
                lr: 0.01,
                momentum: 0.9,
                ..Default::default()
            },
        },
        Recipe {
            name: "resnet20",
            model: "resnet20",
            dataset: None,
            normalize: None,
            batch_size: 128,
            sgd: SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 1e-4,
                ..Default::default()
            },
        },
    ]
}

/// The bench's copy of a trainer recipe (the trainer's recipes are the one definition): its
/// model, data set, normalization, batch size and SGD settings.
fn from_train(name: &'static str, cfg: convnets::train::TrainConfig) -> Recipe {
    let model = convnets::zoo::find(&cfg.model)
        .unwrap_or_else(|| {
            panic!(
                "recipe {name}: {}",
                convnets::zoo::unknown_model_message(&cfg.model)
            )
        })
        .name;
    let dataset = cfg
        .dataset
        .parse::<DatasetKind>()
        .unwrap_or_else(|e| panic!("recipe {name}: {e}"));
    let sgd = match cfg.optimizer {
        OptimizerConfig::Sgd(sgd) => sgd,
        other => panic!(
            "recipe {name}: the bench times SGD, the recipe uses {}",
            other.name()
        ),
    };
    Recipe {
        name,
        model,
        dataset: Some(dataset),
        normalize: cfg.normalize,
        batch_size: cfg.batch_size,
        sgd,
    }
}

/// Floating-point operations of one training step per image, from the layer shapes of one
/// forward pass: convolutions and linear layers only, forward `2 * MACs`, backward twice the
/// forward (input and weight gradients) less the first layer's input gradient, which is not
/// computed. Pooling, activations, normalisation, the loss and the update are not counted.
pub fn train_flops_per_image(model: &str) -> Result<f64> {
    let info = convnets::zoo::find(model).with_context(|| format!("unknown model {model}"))?;
    let store = ParamStore::new(0, &Device::Cpu);
    let m = info.build(store.vb())?;
    let [c, h, w] = info.input;
    let s = convnets::layers::summary::summary(&*m, &[1, c, h, w])?;
    let counted = |kind: &str| kind == "Conv2d" || kind == "Linear";
    let macs: u64 = s
        .rows
        .iter()
        .filter(|r| counted(r.kind))
        .map(|r| r.macs)
        .sum();
    let first = s
        .rows
        .iter()
        .find(|r| counted(r.kind))
        .map_or(0, |r| r.macs);
    Ok(2.0 * (3 * macs - first) as f64)
}

/// The machine's `f32` FMA peak in GFLOP/s on `threads` threads, measured on the vector
/// width of the kernel path in use, with the instruction set's name; `None` on a CPU with
/// neither AVX-512 nor FMA (or not x86-64). See [`convnets_kernels::peak::fma_peak_gflops`].
pub fn fma_peak_gflops(threads: usize) -> Option<(f64, &'static str)> {
    convnets_kernels::peak::fma_peak_gflops(threads)
}

/// What one timed case measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaseResult {
    /// Training images per second (whole batches: forward, loss, backward, SGD step).
    pub train_images_per_s: f64,
    /// Inference images per second at batch 1000 (eval mode, no gradient).
    pub infer_images_per_s: f64,
    /// Training batch size.
    pub batch_size: usize,
    /// Peak resident memory of the process, MiB (training and inference at batch 1000).
    pub peak_rss_mb: f64,
    /// Peak resident memory of the process when training ended, before inference: the
    /// training peak (data, model, activations and gradients of one step), MiB.
    #[serde(default)]
    pub train_peak_rss_mb: f64,
    /// Training steps timed.
    pub train_steps: usize,
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`), 0 when unknown.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

struct Data {
    train: Batcher,
    test_images: Tensor,
}

/// The shuffled training batches of a recipe (real data, or random CIFAR-shaped images).
pub fn train_batcher(r: &Recipe, data_dir: Option<&Path>) -> Result<Batcher> {
    Ok(data(r, data_dir)?.train)
}

fn data(r: &Recipe, data_dir: Option<&Path>) -> Result<Data> {
    const INFER: usize = 1000;
    match r.dataset {
        Some(kind) => {
            let d = convnets::data::load(kind, data_dir)
                .with_context(|| format!("loading {}", kind.name()))?;
            let train = Batcher::from_split(&d.train, r.normalize, r.batch_size, Some(0), true)?;
            let test = Batcher::from_split(&d.test, r.normalize, INFER, None, true)?;
            let first: Vec<usize> = (0..INFER).collect();
            Ok(Data {
                train,
                test_images: test.batch(&first)?.images,
            })
        }
        None => {
            let n = 10_000;
            let mut rng = convnets::layers::Rng::new(0);
            let images = rng.normal(n * 3 * 32 * 32, 0.0, 1.0);
            let labels: Vec<u32> = (0..n).map(|i| (i * 7 % 10) as u32).collect();
            let test = Tensor::from_vec(
                images[..INFER * 3 * 32 * 32].to_vec(),
                (INFER, 3, 32, 32),
                &Device::Cpu,
            )?;
            let train = Batcher::new(
                Arc::new(images),
                Arc::new(labels),
                [3, 32, 32],
                r.batch_size,
                Some(0),
                true,
            )?;
            Ok(Data {
                train,
                test_images: test,
            })
        }
    }
}

/// Times one recipe on the CPU with whatever kernels are selected: training for 2/3 of
/// `seconds`, inference for 1/3, after a few warm-up steps.
pub fn time_case(r: &Recipe, data_dir: Option<&Path>, seconds: f64) -> Result<CaseResult> {
    let d = data(r, data_dir)?;
    let store = ParamStore::new(0, &Device::Cpu);
    let model = convnets::zoo::build(r.model, store.vb())?;
    let mut opt = Sgd::new(store.trainable_vars(), r.sgd)?;
    let train_budget = Duration::from_secs_f64(seconds * 2.0 / 3.0);
    let (mut steps, mut images, mut timed) = (0usize, 0usize, Duration::ZERO);
    let mut warmup = 3;
    'outer: for epoch in 0.. {
        for batch in d.train.epoch(epoch) {
            let batch = batch?;
            let start = Instant::now();
            let logits = model.forward_t(&batch.images, true)?;
            let loss = cross_entropy(&logits, &batch.labels)?;
            let grads = loss.backward()?;
            opt.step(&grads)?;
            loss.to_scalar::<f32>()?;
            if warmup > 0 {
                warmup -= 1;
                continue;
            }
            timed += start.elapsed();
            steps += 1;
            images += batch.labels.dims1()?;
            if timed >= train_budget {
                break 'outer;
            }
        }
    }
    let train_peak_rss_mb = peak_rss_mb();
    let infer_budget = Duration::from_secs_f64(seconds / 3.0);
    // Without recording the graph, as PyTorch's twin runs under `torch.no_grad()`.
    let infer = || convnets::layers::no_grad(|| model.forward_t(&d.test_images, false));
    infer()?;
    let (mut inferred, start) = (0usize, Instant::now());
    while start.elapsed() < infer_budget || inferred == 0 {
        let y = infer()?;
        y.sum_all()?.to_scalar::<f32>()?;
        inferred += d.test_images.dims()[0];
    }
    let infer_secs = start.elapsed().as_secs_f64();
    Ok(CaseResult {
        train_images_per_s: images as f64 / timed.as_secs_f64().max(1e-9),
        infer_images_per_s: inferred as f64 / infer_secs,
        batch_size: r.batch_size,
        peak_rss_mb: peak_rss_mb(),
        train_peak_rss_mb,
        train_steps: steps,
    })
}
