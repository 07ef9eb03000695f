//! The `convnets` command line: train, eval, summary, download, models.

/// mimalloc, keeping freed memory: see [`convnets::allocator`].
#[global_allocator]
static GLOBAL: convnets::allocator::MiMalloc = convnets::allocator::MiMalloc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use convnets::data::DatasetKind;
use convnets::train::{EvalConfig, SgdConfig, TrainConfig};
use std::path::PathBuf;

fn models_help() -> String {
    let mut s = String::from("Models:\n");
    for m in convnets::zoo::models() {
        s += &format!(
            "  {:<14} {} [{}; trained on {}]\n",
            m.name, m.description, m.source, m.dataset
        );
    }
    s += "\nData sets:\n";
    for d in DatasetKind::all() {
        s += &format!("  {}\n", d.name());
    }
    s
}

#[derive(Parser)]
#[command(
    name = "convnets",
    version,
    about = "Classic convolutional networks in Rust: train, evaluate, download data"
)]
#[command(after_help = models_help())]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a model (default: seed 000's LeNet-5 on Fashion-MNIST recipe).
    #[command(after_help = models_help())]
    Train(TrainArgs),
    /// Evaluate saved weights on a test set.
    #[command(after_help = models_help())]
    Eval(EvalArgs),
    /// Download a data set into the default data root (or --root), verifying checksums.
    Download {
        /// mnist or fashion-mnist.
        dataset: String,
        /// The data root (default: the repository's datasets/ or ~/.cache/convnets).
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Print a model's layers: output shapes, parameter shapes and counts, MACs, totals.
    #[command(after_help = models_help())]
    Summary {
        /// Model name (see `convnets models`).
        #[arg(long)]
        model: String,
        /// Input shape with the batch, e.g. 1,3,227,227 (default: batch 1 and the model's input).
        #[arg(long, value_parser = parse_shape)]
        input: Option<Shape>,
    },
    /// List the models and data sets.
    Models,
}

/// An input shape given on the command line (`1,3,227,227`).
#[derive(Clone, Debug)]
struct Shape(Vec<usize>);

fn parse_shape(s: &str) -> Result<Shape, String> {
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

fn summary(model: &str, input: Option<Shape>) -> Result<()> {
    let Some(info) = convnets::zoo::find(model) else {
        let known: Vec<&str> = convnets::zoo::models().iter().map(|m| m.name).collect();
        bail!("unknown model `{model}`; known: {}", known.join(", "))
    };
    let shape = match input {
        Some(Shape(dims)) => dims,
        None => std::iter::once(1).chain(info.input).collect(),
    };
    let store = convnets::layers::ParamStore::new(0, &convnets::candle::Device::Cpu);
    let net = info
        .build(store.vb())
        .with_context(|| format!("building {model}"))?;
    let s = convnets::layers::summary(&*net, &shape)
        .with_context(|| format!("running {model} on an input {shape:?}"))?;
    println!("{model}: {}", info.description);
    println!("{s}");
    Ok(())
}

#[derive(Args)]
struct TrainArgs {
    /// Model name (see `convnets models`).
    #[arg(long, default_value = "lenet5")]
    model: String,
    /// Data set: mnist or fashion-mnist.
    #[arg(long, default_value = "fashion-mnist")]
    dataset: String,
    /// Number of epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0)]
    momentum: f64,
    /// Weight decay (L2 penalty).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Seed of initialisation and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Normalize(mean, std) after ToTensor, e.g. 0.1307,0.3081.
    #[arg(long, value_parser = parse_pair)]
    normalize: Option<[f32; 2]>,
    /// Folder holding the data set (its files, or a subfolder named after it).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where run folders are created.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the loss every N batches.
    #[arg(long, default_value_t = 100)]
    log_every: usize,
    /// Never download missing data.
    #[arg(long)]
    offline: bool,
    /// Train on the first N training images only (a quick check).
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Args)]
struct EvalArgs {
    /// The weights (safetensors with PyTorch parameter names).
    #[arg(long)]
    weights: PathBuf,
    /// Model name; default: from config.json beside the weights.
    #[arg(long)]
    model: Option<String>,
    /// Data set; default: from config.json beside the weights.
    #[arg(long)]
    dataset: Option<String>,
    /// Batch size; default: from config.json beside the weights, else 256.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Normalize(mean, std); default: from config.json beside the weights.
    #[arg(long, value_parser = parse_pair)]
    normalize: Option<[f32; 2]>,
    /// Folder holding the data set.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn parse_pair(s: &str) -> Result<[f32; 2], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    match parts.as_slice() {
        [a, b] => Ok([
            a.parse().map_err(|e| format!("{a}: {e}"))?,
            b.parse().map_err(|e| format!("{b}: {e}"))?,
        ]),
        _ => Err(format!("expected MEAN,STD, got `{s}`")),
    }
}

/// candle 0.11's element-wise ops run on their own spinning thread pool, which fights with
/// rayon (our kernels) on small machines: the LeNet-5 step is 2.6x slower with it. Unless the
/// user chose, keep candle's pool to one thread; our kernels use rayon's.
fn tune_threads() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

fn main() -> Result<()> {
    convnets::allocator::keep_freed_memory();
    tune_threads();
    match Cli::parse().cmd {
        Cmd::Train(a) => {
            let cfg = TrainConfig {
                model: a.model,
                dataset: a.dataset,
                epochs: a.epochs,
                batch_size: a.batch_size,
                sgd: SgdConfig {
                    lr: a.lr,
                    momentum: a.momentum,
                    weight_decay: a.weight_decay,
                    ..Default::default()
                },
                seed: a.seed,
                normalize: a.normalize,
                data_dir: a.data_dir,
                out: a.out,
                device: a.device,
                log_every: a.log_every,
                download: !a.offline,
                train_limit: a.limit,
            };
            let s = convnets::train::train(&cfg).context("training failed")?;
            println!(
                "final test accuracy {:.1}%; weights: {}",
                s.final_accuracy,
                s.weights.display()
            );
        }
        Cmd::Eval(a) => {
            let saved: Option<TrainConfig> = a
                .weights
                .parent()
                .map(|d| d.join("config.json"))
                .filter(|p| p.exists())
                .map(|p| -> Result<TrainConfig> {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
                })
                .transpose()?;
            let Some(model) = a.model.or_else(|| saved.as_ref().map(|c| c.model.clone())) else {
                bail!(
                    "--model is required (no config.json beside {})",
                    a.weights.display()
                )
            };
            let Some(dataset) = a
                .dataset
                .or_else(|| saved.as_ref().map(|c| c.dataset.clone()))
            else {
                bail!(
                    "--dataset is required (no config.json beside {})",
                    a.weights.display()
                )
            };
            let cfg = EvalConfig {
                model,
                dataset,
                batch_size: a
                    .batch_size
                    .or(saved.as_ref().map(|c| c.batch_size))
                    .unwrap_or(256),
                normalize: a.normalize.or(saved.as_ref().and_then(|c| c.normalize)),
                data_dir: a
                    .data_dir
                    .or(saved.as_ref().and_then(|c| c.data_dir.clone())),
                device: a.device,
            };
            let r = convnets::train::eval_weights(&cfg, &a.weights)
                .with_context(|| format!("evaluating {}", a.weights.display()))?;
            println!(
                "{} on {} test set: Accuracy: {:>0.1}% ({}/{}), Avg loss: {:>8.6}",
                cfg.model,
                cfg.dataset,
                r.accuracy(),
                r.correct,
                r.total,
                r.loss
            );
        }
        Cmd::Download { dataset, root } => {
            let kind: DatasetKind = dataset.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            let root = root.unwrap_or_else(convnets::data::default_root);
            let dir = convnets::data::download(kind, &root, kind.mirrors())
                .with_context(|| format!("downloading {}", kind.name()))?;
            println!("{} is in {}", kind.name(), dir.display());
        }
        Cmd::Summary { model, input } => summary(&model, input)?,
        Cmd::Models => print!("{}", models_help()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_shapes_parse_and_errors_say_why() {
        assert_eq!(
            parse_shape("1,3,227,227").map(|s| s.0),
            Ok(vec![1, 3, 227, 227])
        );
        assert_eq!(
            parse_shape(" 2, 1,28 ,28").map(|s| s.0),
            Ok(vec![2, 1, 28, 28])
        );
        let err = parse_shape("1,x").map(|s| s.0).unwrap_err();
        assert!(err.contains("`x` in `1,x`"), "{err}");
        let err = parse_shape("1,0,28").map(|s| s.0).unwrap_err();
        assert!(err.contains("positive dimensions"), "{err}");
    }

    #[test]
    fn summary_of_small_models_runs() -> Result<()> {
        // Small models only: the ImageNet ones take seconds each in a debug build.
        for name in ["lenet5", "mnist-net", "simple-cnn"] {
            summary(name, None)?;
        }
        assert!(summary("nope", None).is_err());
        Ok(())
    }
}
