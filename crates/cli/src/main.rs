//! The `convnets` command line: train, eval, ensemble, predict, summary, download, models.

/// mimalloc, keeping freed memory: see [`convnets::allocator`].
#[global_allocator]
static GLOBAL: convnets::allocator::MiMalloc = convnets::allocator::MiMalloc;

mod args;
mod dist;

use anyhow::{bail, Context, Result};
use args::{EnsembleArgs, EvalArgs, PredictArgs, TrainArgs, WeightsArgs};
use clap::{Parser, Subcommand};
use convnets::data::DatasetKind;
use convnets::train::{EvalConfig, EvalResult};
use std::path::PathBuf;

fn models_help() -> String {
    let mut s = String::from("Models:\n");
    for m in convnets::zoo::models() {
        s += &format!(
            "  {:<20} {} [{}; trained on {}]\n",
            m.name, m.description, m.source, m.dataset
        );
    }
    s += "\nData sets:\n";
    for d in DatasetKind::all() {
        s += &format!("  {}\n", d.name());
    }
    s += "\nRecipes (--recipe):\n";
    for r in convnets::train::recipes() {
        s += &format!("  {:<20} {}\n", r.name, r.description);
    }
    s += "\nShipped weights (--weights NAME; in weights/ of a checkout):\n";
    for w in convnets::zoo::KnownWeights::ALL {
        s += &format!(
            "  {:<24} {} on {}: {:.2}% (--recipe {})\n",
            w.name(),
            w.model(),
            w.dataset(),
            w.test_accuracy(),
            w.recipe()
        );
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
    /// Train a model (default: seed 000's recipe, LeNet-5 on Fashion-MNIST), or resume a run.
    #[command(after_help = models_help())]
    Train(Box<TrainArgs>),
    /// Evaluate saved weights on a test set: loss, top-1/top-5 accuracy, per-class accuracy,
    /// confusion matrix.
    #[command(after_help = models_help())]
    Eval(EvalArgs),
    /// Evaluate several models and their ensemble (the mean of their softmax outputs).
    Ensemble(EnsembleArgs),
    /// Classify image files (PNG, JPEG): the top classes with their probabilities.
    Predict(PredictArgs),
    /// Download a data set into the default data root (or --root), verifying checksums.
    Download {
        /// mnist, fashion-mnist or cifar10.
        dataset: String,
        /// The data root (default: the repository's datasets/ or ~/.cache/convnets).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Base URL to download from instead of the data set's own mirrors (repeatable, tried
        /// in order), e.g. a local copy.
        #[arg(long = "mirror", value_name = "URL")]
        mirrors: Vec<String>,
    },
    /// Write a small synthetic data set in CIFAR-10's binary format into ROOT/cifar10/, to try
    /// the CIFAR-10 path without the real data (numbers on it say nothing about CIFAR-10).
    Synthesize {
        /// cifar10 (the only format synthesized).
        dataset: String,
        /// The data root to write into (then `--data-dir ROOT`).
        #[arg(long)]
        root: PathBuf,
        /// Records in each of the five training batches.
        #[arg(long, default_value_t = 1000)]
        train_per_batch: usize,
        /// Records in the test batch.
        #[arg(long, default_value_t = 1000)]
        test: usize,
        /// Seed of the draws.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Print a model's layers: output shapes, parameter shapes and counts, MACs, totals.
    #[command(after_help = models_help())]
    Summary {
        /// Model name (see `convnets models`).
        #[arg(long)]
        model: String,
        /// Input shape with the batch, e.g. 1,3,227,227 (default: batch 1 and the model's input).
        #[arg(long, value_parser = args::parse_shape)]
        input: Option<args::Shape>,
    },
    /// List the models, data sets and recipes.
    Models,
}

fn summary(model: &str, input: Option<args::Shape>) -> Result<()> {
    let Some(info) = convnets::zoo::find(model) else {
        bail!("{}", convnets::zoo::unknown_model_message(model))
    };
    let shape = match input {
        Some(args::Shape(dims)) => dims,
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

fn train(a: TrainArgs) -> Result<()> {
    if !a.distributed {
        return train_run(&a, None);
    }
    let (session, dp) = dist::start(a.collective_timeout)?;
    match train_run(&a, Some(dp)) {
        // Every rank got here: MPI is finalised when the session is dropped.
        Ok(()) => Ok(()),
        // This rank alone may have failed: the others would wait for it forever.
        Err(e) => {
            eprintln!("{}", render_error(&e));
            session.abort(1)
        }
    }
}

fn train_run(
    a: &TrainArgs,
    parallel: Option<convnets::train::distributed::DataParallel>,
) -> Result<()> {
    let stop = convnets::train::interrupt::ctrl_c().context("installing the Ctrl-C handler")?;
    let root = parallel.as_ref().is_none_or(|p| p.is_root());
    let opts = convnets::train::RunOptions {
        stop: Some(stop),
        parallel,
    };
    let s = match &a.resume {
        Some(dir) => {
            a.check_resume()?;
            convnets::train::resume_with(dir, a.epochs, opts)
                .with_context(|| format!("resuming {}", dir.display()))?
        }
        None => {
            let cfg = a.config()?;
            convnets::train::train_with(&cfg, opts).context("training failed")?
        }
    };
    if !root {
        return Ok(());
    }
    match s.stop {
        convnets::train::StopReason::Interrupted { .. } => println!(
            "interrupted: continue with `convnets train --resume {}`",
            s.dir.display()
        ),
        _ => println!(
            "final test accuracy {:.2}%; weights: {}",
            s.final_accuracy,
            s.weights.display()
        ),
    }
    Ok(())
}

fn print_eval(cfg: &EvalConfig, r: &EvalResult) {
    println!(
        "{} on {} test set: Accuracy: {:>0.1}% ({}/{}), top-5: {:.1}%, Avg loss: {:>8.6}",
        cfg.model,
        cfg.dataset,
        r.accuracy(),
        r.correct,
        r.total,
        r.top5_accuracy(),
        r.loss
    );
}

fn eval(a: EvalArgs) -> Result<()> {
    let file = args::weights_file(&a.weights.weights, a.weights.offline)?;
    let cfg = a.weights.resolve(&file)?;
    let r = convnets::train::eval_weights(&cfg, &file)
        .with_context(|| format!("evaluating {}", file.display()))?;
    print_eval(&cfg, &r);
    if !a.quiet {
        let names = convnets::train::run::weights_classes(&file, &cfg.dataset);
        print!("{}", r.report(&names));
    }
    Ok(())
}

fn predict(a: PredictArgs) -> Result<()> {
    let file = args::weights_file(&a.weights.weights, a.weights.offline)?;
    let cfg = a.weights.resolve(&file)?;
    let preds = convnets::train::predict_images(&cfg, &file, &a.images, a.top)
        .with_context(|| format!("predicting with {}", file.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&preds)?);
        return Ok(());
    }
    for p in &preds {
        println!("{}:", p.image.display());
        for (rank, (label, name, prob)) in p.top.iter().enumerate() {
            println!(
                "  {}. {name} (label {label}): {:.2}%",
                rank + 1,
                100.0 * prob
            );
        }
    }
    Ok(())
}

fn ensemble(a: EnsembleArgs) -> Result<()> {
    if a.members.is_empty() {
        bail!("--weights needs at least one file")
    }
    let opts: WeightsArgs = a.opts.into();
    let files = a
        .members
        .iter()
        .map(|w| args::weights_file(w, opts.offline))
        .collect::<Result<Vec<_>>>()?;
    let cfgs = files
        .iter()
        .map(|w| opts.resolve(w))
        .collect::<Result<Vec<_>>>()?;
    let (members, ens) = convnets::train::run::eval_ensemble(&cfgs, &files)?;
    for ((cfg, path), r) in cfgs.iter().zip(&files).zip(&members) {
        print!("{}: ", path.display());
        print_eval(cfg, r);
    }
    let mean = members.iter().map(EvalResult::accuracy).sum::<f64>() / members.len() as f64;
    println!(
        "ensemble of {} (mean of softmax outputs): Accuracy: {:.2}% ({}/{}), Avg loss: {:.6}; mean member accuracy {:.2}%, best member {:.2}%",
        members.len(),
        ens.accuracy(),
        ens.correct,
        ens.total,
        ens.loss,
        mean,
        members.iter().map(EvalResult::accuracy).fold(0.0, f64::max)
    );
    Ok(())
}

/// candle 0.11's element-wise ops run on their own spinning thread pool, which fights with
/// rayon (our kernels) on small machines: see [`convnets::runtime`].
/// An error and its causes, one line each, without repeating a cause the message above it
/// already quotes (our typed errors put their I/O cause into their own message).
fn render_error(e: &anyhow::Error) -> String {
    let mut out = match dist::RANK.get() {
        Some((rank, world)) => format!("Error (rank {rank} of {world}): {e}"),
        None => format!("Error: {e}"),
    };
    let mut shown = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !shown.contains(&c) {
            out.push_str(&format!("\n  caused by: {c}"));
            shown.push_str(&c);
        }
    }
    out
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", render_error(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    convnets::allocator::keep_freed_memory();
    convnets::runtime::tune_threads();
    match Cli::parse().cmd {
        Cmd::Train(a) => {
            if a.distributed {
                // Before MPI and rayon start threads: each rank its share of the cores.
                convnets::runtime::tune_threads_for_local_ranks();
            }
            train(*a)?
        }
        Cmd::Eval(a) => eval(a)?,
        Cmd::Ensemble(a) => ensemble(a)?,
        Cmd::Predict(a) => predict(a)?,
        Cmd::Download {
            dataset,
            root,
            mirrors,
        } => {
            let kind: DatasetKind = dataset.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            let root = root.unwrap_or_else(convnets::data::default_root);
            let mirrors: Vec<&str> = mirrors.iter().map(String::as_str).collect();
            let dir = convnets::data::download(kind, &root, &mirrors)
                .with_context(|| format!("downloading {}", kind.name()))?;
            println!("{} is in {}", kind.name(), dir.display());
        }
        Cmd::Synthesize {
            dataset,
            root,
            train_per_batch,
            test,
            seed,
        } => {
            let kind: DatasetKind = dataset.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            if kind != DatasetKind::Cifar10 {
                bail!("synthesize writes cifar10 only, not {kind}: the real {kind} is small and downloadable (`convnets download {kind}`)");
            }
            let spec = convnets::data::synthetic::SyntheticCifar {
                train_per_batch,
                test,
                seed,
            };
            let dir = convnets::data::synthetic::write_cifar10(&root, &spec)
                .with_context(|| format!("writing a synthetic cifar10 into {}", root.display()))?;
            println!(
                "synthetic cifar10 ({} training, {test} test images; NOT the real CIFAR-10) is in {}\ntrain on it with --dataset cifar10 --data-dir {}",
                5 * train_per_batch,
                dir.display(),
                root.display()
            );
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
    fn causes_are_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(convnets::train::TrainError::Io {
            path: "runs/x/config.toml".into(),
            source: io,
        })
        .context("reading the run");
        assert_eq!(
            render_error(&e),
            "Error: reading the run\n  caused by: runs/x/config.toml: No such file"
        );
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
