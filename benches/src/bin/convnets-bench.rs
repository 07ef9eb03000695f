//! `convnets-bench` (run by `cargo xtask bench`): every timing of the project behind one
//! argument parser.
//!
//! - `convnets-bench [models] [OPTIONS]`: training and inference images/s of the article
//!   recipes for convnets (our kernels), plain candle (candle's own ops) and PyTorch
//!   (`benches/torch/bench.py`), measured in the same run on the same machine, as one table
//!   with the ratios, also written as JSON.
//! - `convnets-bench kernels`: the convolution kernels of `convnets-kernels` at the bench
//!   models' shapes, GFLOP/s against the measured FMA peak, on every kernel path the CPU runs
//!   (one process per path). `cargo bench -p convnets-bench` has the same kernels in criterion.
//! - `convnets-bench steps`, `convnets-bench ops`: where a training step's time goes, by phase
//!   and by layer.
//!
//! The kernel path (`convnets::layers::ops::isa()`: `avx512`, `avx2` or `portable`, forced
//! with `--isa` or `CONVNETS_ISA`) is printed and recorded. When it is not `avx512`, PyTorch
//! is held to AVX2 as well (`ATEN_CPU_CAPABILITY=avx2`, `ONEDNN_MAX_CPU_ISA=AVX2`,
//! `MKL_ENABLE_INSTRUCTIONS=AVX2`, unless already set), so that `--isa avx2` on an AVX-512
//! machine compares the two libraries as an AVX2-only CPU would run them.
//!
//! A second table gives the training GFLOP/s each implementation achieves (convolution and
//! linear FLOPs per image from the layer shapes, see `train_flops_per_image`) against the
//! machine's `f32` FMA peak measured on the threads used (see `fma_peak_gflops`).

/// mimalloc, keeping freed memory: see [`convnets::allocator`].
#[global_allocator]
static GLOBAL: convnets::allocator::MiMalloc = convnets::allocator::MiMalloc;

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use convnets::layers::ops::{set_kernels, Kernels};
use convnets_bench::kernels::{ConvCase, NormCase, NormPass, Pass, CONV_SHAPES, NORM_SHAPES};
use convnets_bench::profile::{self, OpSet};
use convnets_bench::{
    fma_peak_gflops, median, recipes, time_case, time_runs, train_flops_per_image, CaseResult,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// Speed of convnets against plain candle and PyTorch, and of its kernels against the
/// machine's FMA peak.
#[derive(Parser, Debug)]
#[command(name = "convnets-bench")]
struct Cli {
    /// Force a kernel path for this run (sets `CONVNETS_ISA`; one the CPU lacks falls back
    /// to the best below it, with a warning).
    #[arg(long, global = true, value_parser = ["avx512", "avx2", "portable"])]
    isa: Option<String>,
    #[command(subcommand)]
    command: Option<Cmd>,
    /// The models table's options, when no command is given.
    #[command(flatten)]
    models: ModelArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Training and inference images/s: convnets, plain candle and PyTorch (the default).
    Models(ModelArgs),
    /// The convolution kernels at the models' shapes: GFLOP/s against the FMA peak, per path.
    Kernels(KernelArgs),
    /// A training step split into forward, loss, backward and optimizer step.
    Steps(StepArgs),
    /// Each layer's native op timed alone (median ms per call).
    Ops {
        /// Layer sets to time (default: all).
        #[arg(value_enum)]
        sets: Vec<OpSet>,
    },
}

#[derive(Args, Debug, Clone)]
struct ModelArgs {
    /// Seconds per case (2/3 training, 1/3 inference).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Threads (`RAYON_NUM_THREADS` for convnets, `torch.set_num_threads` for PyTorch).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Comma-separated cases (default: all).
    #[arg(long, value_delimiter = ',', default_values_t = recipes().iter().map(|r| r.name.to_string()).collect::<Vec<_>>())]
    cases: Vec<String>,
    /// Where to write the JSON result.
    #[arg(long, default_value = "target/bench/bench.json")]
    json: PathBuf,
    /// Data root with mnist/ and fashion-mnist/ (default `$CONVNETS_DATA`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Skip PyTorch.
    #[arg(long)]
    no_torch: bool,
    /// Rounds per case: convnets and PyTorch timed one after the other, case by case, this
    /// many times; the table reports each library's median over the rounds (a slow spell of
    /// a shared machine then hits both sides, not one). Plain candle runs once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Internal: run one case (`CASE:native|reference`) in this process and print its JSON.
    #[arg(long, hide = true)]
    worker: Option<String>,
}

#[derive(Args, Debug)]
struct KernelArgs {
    /// Kernel paths to time, each in its own process (default: every path this CPU runs;
    /// `--isa` picks one).
    #[arg(long, value_delimiter = ',', value_parser = ["avx512", "avx2", "portable"])]
    paths: Vec<String>,
    /// Threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed calls per kernel (the median is reported).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Only the shapes whose name contains one of these (e.g. `resnet20_stage1,bn`).
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
    /// Internal: time the path of this process only.
    #[arg(long, hide = true)]
    worker: bool,
}

#[derive(Args, Debug)]
struct StepArgs {
    /// Cases (default: all).
    cases: Vec<String>,
    /// Timed steps per case.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Candle's own ops instead of ours.
    #[arg(long)]
    reference: bool,
    /// Data root (default `$CONVNETS_DATA`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Runs one case in this process (as a worker) and prints its JSON.
fn worker(spec: &str, a: &ModelArgs) -> Result<()> {
    let (name, kernels) = spec
        .split_once(':')
        .context("worker spec is CASE:KERNELS")?;
    set_kernels(if kernels == "reference" {
        Kernels::Reference
    } else {
        Kernels::Native
    });
    let r = recipes()
        .into_iter()
        .find(|r| r.name == name)
        .with_context(|| format!("unknown case {name}"))?;
    let res = time_case(&r, a.data_dir.as_deref(), a.seconds)?;
    println!("{}", serde_json::to_string(&res)?);
    Ok(())
}

/// Runs a case in a fresh process, so peak memory is its own and threads are set before start.
fn spawn(spec: &str, a: &ModelArgs) -> Result<CaseResult> {
    let mut c = Command::new(std::env::current_exe()?);
    c.args(["--worker", spec, "--seconds", &a.seconds.to_string()])
        .env("RAYON_NUM_THREADS", a.threads.to_string())
        .env(
            "CANDLE_NUM_THREADS",
            std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "1".into()),
        );
    if let Some(d) = &a.data_dir {
        c.arg("--data-dir").arg(d);
    }
    let out = c
        .output()
        .with_context(|| format!("running worker {spec}"))?;
    if !out.status.success() {
        bail!(
            "worker {spec} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("worker {spec} printed {text}"))
}

/// The median of each rate over the rounds (the mean of the middle two for an even count),
/// the largest of each memory peak.
fn median_result(rounds: &[CaseResult]) -> CaseResult {
    let of = |f: fn(&CaseResult) -> f64| middle(&rounds.iter().map(f).collect::<Vec<_>>());
    let max = |f: fn(&CaseResult) -> f64| rounds.iter().map(f).fold(0f64, f64::max);
    CaseResult {
        train_images_per_s: of(|r| r.train_images_per_s),
        infer_images_per_s: of(|r| r.infer_images_per_s),
        batch_size: rounds.first().map_or(0, |r| r.batch_size),
        peak_rss_mb: max(|r| r.peak_rss_mb),
        train_peak_rss_mb: max(|r| r.train_peak_rss_mb),
        train_steps: rounds.iter().map(|r| r.train_steps).sum(),
    }
}

/// The median of `v`, the mean of the middle two for an even count (0 when empty).
fn middle(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// [`median_result`] for PyTorch's JSON objects: the median of every number whose key ends
/// in `_per_s`, the largest of every other number, the first round's other values.
fn median_torch(rounds: &[Value]) -> Option<Value> {
    let Value::Object(first) = rounds.first()? else {
        return rounds.first().cloned();
    };
    let mut out = first.clone();
    for (k, v) in out.iter_mut() {
        let xs: Vec<f64> = rounds.iter().filter_map(|r| r.get(k)?.as_f64()).collect();
        if xs.len() == rounds.len() && v.is_number() {
            let m = if k.ends_with("_per_s") {
                middle(&xs)
            } else {
                xs.iter().copied().fold(f64::MIN, f64::max)
            };
            *v = json!(m);
        }
    }
    Some(Value::Object(out))
}

/// The variables that hold PyTorch (ATen's kernels, oneDNN, MKL) to AVX2.
const TORCH_AVX2: [(&str, &str); 3] = [
    ("ATEN_CPU_CAPABILITY", "avx2"),
    ("ONEDNN_MAX_CPU_ISA", "AVX2"),
    ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
];

fn torch(a: &ModelArgs, cases: &[String]) -> Result<Value> {
    let python = std::env::var("CONVNETS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("torch/bench.py");
    let tmp =
        std::env::temp_dir().join(format!("convnets-torch-bench-{}.json", std::process::id()));
    let mut c = Command::new(&python);
    if convnets::layers::ops::isa() != "avx512" {
        for (k, v) in TORCH_AVX2 {
            if std::env::var_os(k).is_none() {
                c.env(k, v);
            }
        }
    }
    c.arg(&script)
        .args([
            "--threads",
            &a.threads.to_string(),
            "--seconds",
            &a.seconds.to_string(),
            "--cases",
            &cases.join(","),
        ])
        .arg("--json")
        .arg(&tmp);
    if let Some(d) = &a.data_dir {
        c.arg("--data-dir").arg(d);
    }
    // Its own table is not printed (ours has its numbers); its errors are, on failure.
    let out = c
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{python} {} failed ({}); is torch installed? (scripts/setup-torch.sh)\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&tmp)?)?;
    let _ = std::fs::remove_file(&tmp);
    Ok(v)
}

fn main() -> Result<()> {
    // As the CLI: candle's element-wise pool at one thread (so `steps` and `ops` measure what
    // `convnets train` runs; the model workers get it from `spawn` too), mimalloc keeping
    // freed memory.
    convnets::runtime::init();
    let matches = Cli::command().get_matches();
    // The models table's options belong before no command (or after `models`); `--isa` is
    // global and goes anywhere.
    if let Some((name, _)) = matches.subcommand() {
        let given = [
            "seconds", "threads", "cases", "json", "data_dir", "no_torch",
        ]
        .into_iter()
        .find(|id| matches.value_source(id) == Some(ValueSource::CommandLine));
        if let Some(id) = given {
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--{} is an option of the models table: give it after `{name}` if that command has it, or drop the command",
                        id.replace('_', "-")
                    ),
                )
                .exit();
        }
    }
    let cli = Cli::from_arg_matches(&matches)?;
    if let Some(isa) = &cli.isa {
        // Before anything asks for the path (it is chosen once), and inherited by the workers.
        std::env::set_var("CONVNETS_ISA", isa);
    }
    let env_data = || std::env::var_os("CONVNETS_DATA").map(PathBuf::from);
    match cli.command {
        None => models(cli.models),
        Some(Cmd::Models(a)) => models(a),
        Some(Cmd::Kernels(k)) => kernels(&k, cli.isa.as_deref()),
        Some(Cmd::Steps(s)) => profile::steps(
            &s.cases,
            s.steps,
            s.reference,
            s.data_dir.or_else(env_data).as_deref(),
        ),
        Some(Cmd::Ops { sets }) => profile::ops(&sets),
    }
}

/// The models table.
fn models(mut a: ModelArgs) -> Result<()> {
    if a.data_dir.is_none() {
        a.data_dir = std::env::var_os("CONVNETS_DATA").map(PathBuf::from);
    }
    if let Some(spec) = a.worker.clone() {
        return worker(&spec, &a);
    }
    let isa = convnets::layers::ops::isa();
    let torch_isa = if isa == "avx512" {
        "its own choice"
    } else {
        "AVX2 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS)"
    };
    let forced = match std::env::var("CONVNETS_ISA") {
        Ok(v) if !v.is_empty() => format!(" (CONVNETS_ISA={v})"),
        _ => String::new(),
    };
    eprintln!("bench: convnets kernel path {isa}{forced}; PyTorch: {torch_isa}");
    let mut results: BTreeMap<String, BTreeMap<&str, CaseResult>> = BTreeMap::new();
    let mut torch_cases = serde_json::Map::new();
    let mut torch_version = None;
    let mut rounds_json = serde_json::Map::new();
    let mut use_torch = !a.no_torch;
    for case in &a.cases {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 1..=a.rounds {
            let of = if a.rounds > 1 {
                format!(" (round {round} of {})", a.rounds)
            } else {
                String::new()
            };
            eprintln!("bench: {case} with native kernels{of} ...");
            ours.push(spawn(&format!("{case}:native"), &a)?);
            if round == 1 {
                eprintln!("bench: {case} with reference kernels ...");
                let r = spawn(&format!("{case}:reference"), &a)?;
                results
                    .entry(case.clone())
                    .or_default()
                    .insert("reference", r);
            }
            if use_torch {
                eprintln!("bench: {case} with PyTorch{of} ...");
                match torch(&a, std::slice::from_ref(case)) {
                    Ok(v) => {
                        torch_version = v.get("torch_version").cloned();
                        if let Some(c) = v.get("cases").and_then(|c| c.get(case)) {
                            theirs.push(c.clone());
                        }
                    }
                    Err(e) => {
                        eprintln!("warning: no PyTorch numbers: {e:#}");
                        use_torch = false;
                    }
                }
            }
        }
        rounds_json.insert(case.clone(), json!({"convnets": ours, "pytorch": theirs}));
        results
            .entry(case.clone())
            .or_default()
            .insert("native", median_result(&ours));
        if let Some(t) = median_torch(&theirs) {
            torch_cases.insert(case.clone(), t);
        }
    }
    let torch = (!torch_cases.is_empty())
        .then(|| json!({"torch_version": torch_version, "cases": torch_cases}));
    let t = |case: &str, key: &str| -> Option<f64> {
        torch.as_ref()?.get("cases")?.get(case)?.get(key)?.as_f64()
    };
    if a.rounds > 1 {
        println!("\nper round, training images/s convnets / PyTorch (ratio):");
        for (case, r) in &rounds_json {
            let ours = r["convnets"].as_array().cloned().unwrap_or_default();
            let theirs = r["pytorch"].as_array().cloned().unwrap_or_default();
            let cells: Vec<String> = ours
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let x = o["train_images_per_s"].as_f64().unwrap_or(f64::NAN);
                    match theirs.get(i).and_then(|t| t["train_images_per_s"].as_f64()) {
                        Some(y) => format!("{x:.0} / {y:.0} ({:.2}x)", x / y),
                        None => format!("{x:.0}"),
                    }
                })
                .collect();
            println!("{case:<13} | {}", cells.join(" | "));
        }
    }

    println!("\nconvnets kernel path: {isa}{forced}; PyTorch: {torch_isa}");
    println!(
        "{:<13} | {:>10} {:>10} {:>10} {:>8} {:>8} | {:>10} {:>10} {:>10} {:>8} | {:>8} {:>8} | {:>9} {:>8}",
        "train/s",
        "convnets",
        "candle",
        "pytorch",
        "vs torch",
        "vs cndl",
        "infer/s",
        "candle",
        "pytorch",
        "vs torch",
        "RSS MiB",
        "torch",
        "train RSS",
        "torch"
    );
    println!("{}", "-".repeat(162));
    let mut table = serde_json::Map::new();
    for (case, r) in &results {
        let (n, c) = (&r["native"], &r["reference"]);
        let (tt, ti) = (t(case, "train_images_per_s"), t(case, "infer_images_per_s"));
        let ratio = |x: f64, y: Option<f64>| {
            y.map(|y| format!("{:.2}x", x / y))
                .unwrap_or_else(|| "-".into())
        };
        let num = |y: Option<f64>| y.map(|y| format!("{y:.0}")).unwrap_or_else(|| "-".into());
        println!(
            "{:<13} | {:>10.0} {:>10.0} {:>10} {:>8} {:>8} | {:>10.0} {:>10.0} {:>10} {:>8} | {:>8.0} {:>8} | {:>9.0} {:>8}",
            case,
            n.train_images_per_s,
            c.train_images_per_s,
            num(tt),
            ratio(n.train_images_per_s, tt),
            ratio(n.train_images_per_s, Some(c.train_images_per_s)),
            n.infer_images_per_s,
            c.infer_images_per_s,
            num(ti),
            ratio(n.infer_images_per_s, ti),
            n.peak_rss_mb,
            num(t(case, "peak_rss_mb")),
            n.train_peak_rss_mb,
            num(t(case, "train_peak_rss_mb")),
        );
        table.insert(
            case.clone(),
            json!({
                "convnets": n, "candle": c,
                "pytorch": torch.as_ref().and_then(|v| v.get("cases")?.get(case).cloned()),
                "train_ratio_vs_pytorch": tt.map(|x| n.train_images_per_s / x),
                "infer_ratio_vs_pytorch": ti.map(|x| n.infer_images_per_s / x),
                "train_ratio_vs_candle": n.train_images_per_s / c.train_images_per_s,
            }),
        );
    }
    let peak = fma_peak_gflops(a.threads);
    match peak {
        Some((p, isa)) => println!(
            "\ntraining GFLOP/s (conv + linear FLOPs only); peak {p:.0} GFLOP/s measured with {} thread(s) of {isa} FMAs",
            a.threads
        ),
        None => println!("\ntraining GFLOP/s (conv + linear FLOPs only); machine peak unknown"),
    }
    println!(
        "{:<13} | {:>12} | {:>10} {:>7} | {:>10} {:>7} | {:>10} {:>7}",
        "case", "MFLOP/img", "convnets", "% peak", "candle", "% peak", "pytorch", "% peak"
    );
    println!("{}", "-".repeat(91));
    for (case, r) in &results {
        let Some(model) = recipes()
            .into_iter()
            .find(|x| x.name == case)
            .map(|x| x.model)
        else {
            continue;
        };
        let flops = match train_flops_per_image(model) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("warning: no FLOP count for {case}: {e:#}");
                continue;
            }
        };
        let gf = |ips: Option<f64>| ips.map(|x| x * flops / 1e9);
        let cell = |g: Option<f64>| match (g, peak) {
            (Some(g), Some((p, _))) => format!("{g:>10.1} {:>6.1}%", 100.0 * g / p),
            (Some(g), None) => format!("{g:>10.1} {:>7}", "-"),
            _ => format!("{:>10} {:>7}", "-", "-"),
        };
        let (n, c) = (
            gf(Some(r["native"].train_images_per_s)),
            gf(Some(r["reference"].train_images_per_s)),
        );
        let tt = gf(t(case, "train_images_per_s"));
        println!(
            "{case:<13} | {:>12.2} | {} | {} | {}",
            flops / 1e6,
            cell(n),
            cell(c),
            cell(tt)
        );
        if let Some(Value::Object(o)) = table.get_mut(case) {
            o.insert("train_flops_per_image".into(), json!(flops));
            o.insert(
                "train_gflops".into(),
                json!({"convnets": n, "candle": c, "pytorch": tt}),
            );
        }
    }
    let doc = json!({
        "threads": a.threads, "seconds": a.seconds, "rounds": a.rounds, "per_round": rounds_json,
        "isa": isa, "torch_isa": torch_isa,
        "fma_peak_gflops": peak.map(|p| p.0),
        "torch_version": torch.as_ref().and_then(|v| v.get("torch_version").cloned()),
        "cases": table,
    });
    if let Some(dir) = a.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.json, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", a.json.display()))?;
    println!(
        "\n{} thread(s), {} s per case; JSON: {}",
        a.threads,
        a.seconds,
        a.json.display()
    );
    Ok(())
}

/// The kernels table: in a worker, this process's path; otherwise one worker per path.
fn kernels(k: &KernelArgs, isa: Option<&str>) -> Result<()> {
    if k.worker {
        return kernels_here(k);
    }
    let paths: Vec<String> = match (isa, k.paths.is_empty()) {
        (Some(i), true) => vec![i.to_string()],
        (_, false) => k.paths.clone(),
        (None, true) => [
            convnets_kernels::Isa::Avx512,
            convnets_kernels::Isa::Avx2,
            convnets_kernels::Isa::Portable,
        ]
        .into_iter()
        .filter(|i| i.supported())
        .map(|i| i.name().to_string())
        .collect(),
    };
    for path in paths {
        let status = Command::new(std::env::current_exe()?)
            .args([
                "kernels",
                "--worker",
                "--threads",
                &k.threads.to_string(),
                "--runs",
                &k.runs.to_string(),
            ])
            .args(k.cases.iter().flat_map(|c| ["--cases", c.as_str()]))
            .env("CONVNETS_ISA", &path)
            .env("RAYON_NUM_THREADS", k.threads.to_string())
            .status()
            .with_context(|| format!("running the {path} kernels"))?;
        if !status.success() {
            bail!("the {path} kernels failed ({status})");
        }
    }
    Ok(())
}

/// Times each convolution pass at each model shape on this process's path (median of
/// `k.runs` calls) and prints GFLOP/s and the share of the path's measured FMA peak.
fn kernels_here(k: &KernelArgs) -> Result<()> {
    let isa = convnets_kernels::isa();
    let peak = fma_peak_gflops(k.threads);
    match peak {
        Some((p, name)) => println!(
            "\nkernel path {isa}: FMA peak {p:.0} GFLOP/s measured on {} thread(s) of {name} FMAs",
            k.threads
        ),
        None => println!("\nkernel path {isa}: FMA peak unknown (no AVX2/AVX-512)"),
    }
    println!(
        "{:<40} | {:>10} {:>8} {:>7} | {:>10} {:>8} {:>7} | {:>10} {:>8} {:>7}",
        "conv GEMM (median)",
        "fwd ms",
        "GFLOP/s",
        "% peak",
        "dx ms",
        "GFLOP/s",
        "% peak",
        "dw ms",
        "GFLOP/s",
        "% peak"
    );
    println!("{}", "-".repeat(136));
    let picked =
        |name: &str| k.cases.is_empty() || k.cases.iter().any(|c| name.contains(c.as_str()));
    for shape in CONV_SHAPES.iter().copied().filter(|s| picked(s.name)) {
        let case = ConvCase::new(shape)?;
        let flops = shape.gemm_flops()?;
        let mut row = format!("{:<40}", shape.name);
        for pass in Pass::ALL {
            let t = median(&time_runs(3, k.runs, || case.run(pass).map(|_| ()))?);
            let gf = flops / t / 1e9;
            let pct = peak.map_or("-".into(), |(p, _)| format!("{:.1}%", 100.0 * gf / p));
            row += &format!(" | {:>10.3} {gf:>8.1} {pct:>7}", t * 1e3);
        }
        println!("{row}");
    }
    for (i, (name, dims)) in NORM_SHAPES
        .iter()
        .copied()
        .filter(|(n, _)| picked(n))
        .enumerate()
    {
        if i == 0 {
            println!(
                "\n{:<40} | {:>10} {:>8} | {:>10} {:>8} | {:>10} {:>8}",
                "batch norm + ReLU (median)",
                "stats ms",
                "GB/s",
                "fwd ms",
                "GB/s",
                "bwd ms",
                "GB/s"
            );
            println!("{}", "-".repeat(106));
        }
        let case = NormCase::new(dims)?;
        let mut row = format!("{name:<40}");
        for pass in NormPass::ALL {
            let t = median(&time_runs(3, k.runs, || case.run(pass).map(|_| ()))?);
            let gbs = (pass.tensors_moved() * case.tensor_bytes()) as f64 / t / 1e9;
            row += &format!(" | {:>10.3} {gbs:>8.1}", t * 1e3);
        }
        println!("{row}");
    }
    Ok(())
}
