//! `cargo xtask`: the project's tasks. Thin by design: heavy work runs the optimised
//! `convnets` binary (`cargo run --release -p convnets-cli -- …`), so this compiles in seconds.
//!
//! ```text
//! cargo xtask train [ARGS]        train (default: LeNet-5 on Fashion-MNIST, seed 000's recipe)
//!   --nproc N                     data-parallel on N local MPI ranks (builds with --features mpi)
//! cargo xtask eval ARGS           evaluate saved weights (per-class accuracy, confusion matrix)
//! cargo xtask ensemble ARGS       evaluate several weights and their softmax-averaged ensemble
//! cargo xtask predict ARGS        classify image files (top-5 classes with probabilities)
//! cargo xtask download DATASET    download mnist | fashion-mnist | cifar10 into datasets/
//! cargo xtask synthesize cifar10 --root DIR   a small synthetic CIFAR-format data set
//! cargo xtask models              list models and data sets
//! cargo xtask bench [CMD] [ARGS]  speed: models (convnets vs candle vs PyTorch), kernels, steps, ops
//! cargo xtask golden              regenerate the PyTorch golden files (needs torch)
//! cargo xtask fuzz [--cases N]   the property tests of every parser with N cases each (default 100,000)
//! cargo xtask ci                  what CI runs: fmt, clippy, tests (kernels on each CPU path: avx512, avx2, portable), mpi feature, cuda type-check, aarch64 check of the kernels
//! ```

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A cargo command in the repository root, hermetic: it sees the environment the user's
/// shell gave `cargo xtask`, not what `cargo run` added for xtask itself.
///
/// `cargo run` sets `CARGO_MANIFEST_DIR`, `CARGO_MANIFEST_PATH` and `CARGO_PKG_*` (xtask's
/// name and version) for the program it runs, and prepends the target and toolchain library
/// folders to the dynamic library path. A nested cargo that inherits them records them in the
/// fingerprints of the build scripts that declare them (`cargo:rerun-if-env-changed`): ring's
/// build script declares `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME` and `CARGO_PKG_VERSION_*`, so
/// each switch between `cargo build --release -p convnets-cli` and `cargo xtask train` reran
/// it and recompiled ring, rustls, ureq and every convnets crate (README, "Build time").
/// User settings (`RUSTFLAGS`, `CARGO_TARGET_DIR`, `CARGO_HOME`, `RUSTUP_TOOLCHAIN`, …) pass.
fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(&cargo);
    c.current_dir(root());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let set_by_cargo_run = k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_EXE_")
            || matches!(
                k.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "CARGO_TARGET_TMPDIR"
                    | "OUT_DIR"
            );
        if set_by_cargo_run {
            c.env_remove(k.as_ref());
        }
    }
    // The library path as the user had it: without the folders `cargo run` put in front
    // (xtask's target folders and the toolchain's libraries). Windows (PATH) keeps it.
    let var = if cfg!(target_os = "macos") {
        "DYLD_FALLBACK_LIBRARY_PATH"
    } else {
        "LD_LIBRARY_PATH"
    };
    if let (Some(paths), false) = (std::env::var_os(var), cfg!(windows)) {
        let target = root().join(std::env::var_os("CARGO_TARGET_DIR").unwrap_or("target".into()));
        let toolchain = Path::new(&cargo).parent().and_then(Path::parent);
        let added = |p: &Path| {
            p.starts_with(&target)
                || toolchain.is_some_and(|t| {
                    p == t.join("lib") || p.starts_with(t.join("lib").join("rustlib"))
                })
        };
        let kept: Vec<PathBuf> = std::env::split_paths(&paths)
            .filter(|p| !added(p))
            .collect();
        match std::env::join_paths(&kept) {
            Ok(_) if kept.is_empty() => c.env_remove(var),
            Ok(joined) => c.env(var, joined),
            Err(_) => &mut c,
        };
    }
    c
}

/// The address-space limit the tests run under, in KiB (8 GiB).
const TEST_ADDRESS_SPACE_KIB: u64 = 8 << 20;

/// `cargo test --workspace` (everything already built).
fn cargo_test_all() -> Command {
    let mut c = cargo();
    c.args(["test", "--workspace"]);
    c
}

/// `cmd` run by bash after `ulimit -v KIB`, with the same working directory and environment.
fn limited(cmd: Command, kib: u64) -> Command {
    let mut b = Command::new("bash");
    b.arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$@\""))
        .arg("bash")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        b.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => b.env(k, v),
            None => b.env_remove(k),
        };
    }
    b
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// `cargo run --release -p convnets-cli -- SUB ARGS…`
fn cli(sub: &str, args: &[String]) -> Result<()> {
    let mut c = cargo();
    c.args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "convnets-cli",
        "--",
        sub,
    ])
    .args(args);
    run(c)
}

/// A Python interpreter with torch: $CONVNETS_PYTHON, else the repo's .venv, else python3.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CONVNETS_PYTHON") {
        return p.into();
    }
    let venv = root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// A stand-in `nvcc` that writes empty kernel files: enough for `cargo check`/`clippy` of the
/// `cuda` feature on a machine without CUDA, never for a build that runs.
fn fake_nvcc(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let script = r#"#!/bin/sh
# Stand-in nvcc for type-checking the cuda feature only (see xtask ci): it writes empty
# output files (-o FILE, or NAME.ptx under --output-directory). Never used to build or run.
out=""; dir=""; prev=""; srcs=""
for a in "$@"; do
  case "$a" in --version) echo "Cuda compilation tools, release 13.0, V13.0.88"; exit 0;; esac
  case "$prev" in -o|--output-file) out="$a";; --output-directory|-odir) dir="$a";; esac
  case "$a" in -o=*|--output-file=*) out="${a#*=}";; --output-directory=*) dir="${a#*=}";; *.cu) srcs="$srcs $a";; esac
  prev="$a"
done
if [ -n "$out" ]; then : > "$out"; fi
if [ -n "$dir" ]; then for s in $srcs; do b=$(basename "$s" .cu); : > "$dir/$b.ptx"; done; fi
exit 0
"#;
    let path = dir.join("nvcc");
    std::fs::write(&path, script)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// The CPU kernel paths of `convnets-kernels` (`CONVNETS_ISA` values), best first, each with
/// the CPU features it needs. xtask depends on none of the project's crates, so it checks
/// the features itself, the way `convnets_kernels::isa()` does; the layer test
/// `isa_is_the_requested_one` (run on every path) checks that the two agree.
const KERNEL_PATHS: [(&str, &str); 3] = [
    ("avx512", "AVX-512F"),
    ("avx2", "AVX2 + FMA"),
    ("portable", "nothing"),
];

/// Whether this CPU runs the kernel path `isa` (a `CONVNETS_ISA` value).
fn cpu_runs(isa: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match isa {
            "avx512" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx2" => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            _ => true,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        isa == "portable"
    }
}

/// The best kernel path this CPU runs: the one the plain `cargo test --workspace` tests.
fn best_kernel_path() -> &'static str {
    KERNEL_PATHS
        .iter()
        .map(|(isa, _)| *isa)
        .find(|isa| cpu_runs(isa))
        .unwrap_or("portable")
}

/// What `cargo xtask ci` will test on each kernel path on this CPU (printed at its start).
fn kernel_plan() -> String {
    let best = best_kernel_path();
    let lines: Vec<String> = KERNEL_PATHS
        .iter()
        .map(|&(isa, needs)| {
            if isa == best {
                format!("  {isa}: every test (the default path on this CPU)")
            } else if cpu_runs(isa) {
                format!("  {isa}: the kernel tests again with CONVNETS_ISA={isa}")
            } else {
                format!("  {isa}: NOT RUN (this CPU lacks {needs})")
            }
        })
        .collect();
    format!("kernel paths:\n{}", lines.join("\n"))
}

/// The test binaries run once more per kernel path: every test of the kernels (each against
/// plain loops), the layers (the kernels against the reference ops) and the zoo (whole
/// models), and the trainer's native-against-reference parity.
fn kernel_test_binaries() -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut bins = test_binaries(&["convnets-kernels", "convnets-layers", "convnets-zoo"])?;
    bins.extend(
        test_binaries(&["convnets-train"])?
            .into_iter()
            .filter(|(exe, _)| test_binary_is(exe, "native_vs_reference")),
    );
    Ok(bins)
}

/// Whether `exe` is cargo's build of the test target `name` (`NAME-HASH`).
fn test_binary_is(exe: &Path, name: &str) -> bool {
    exe.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.rsplit_once('-').is_some_and(|(base, _)| base == name))
}

/// The wall time of each step of `cargo xtask ci`, printed at its end (README, "Build time").
struct StepTimes {
    steps: Vec<(&'static str, std::time::Duration)>,
    start: std::time::Instant,
    last: std::time::Instant,
}

impl StepTimes {
    fn new() -> Self {
        let now = std::time::Instant::now();
        Self {
            steps: Vec::new(),
            start: now,
            last: now,
        }
    }

    /// Ends the step `name` (it began where the previous one ended).
    fn done(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.steps.push((name, now - self.last));
        self.last = now;
    }

    fn report(&self) -> String {
        let fmt = |d: std::time::Duration| {
            let s = d.as_secs();
            format!("{}:{:02}", s / 60, s % 60)
        };
        let mut lines: Vec<String> = self
            .steps
            .iter()
            .map(|(name, d)| format!("  {:>6}  {name}", fmt(*d)))
            .collect();
        lines.push(format!("  {:>6}  total", fmt(self.start.elapsed())));
        format!("ci step times (min:s):\n{}", lines.join("\n"))
    }
}

fn ci() -> Result<()> {
    eprintln!("{}", kernel_plan());
    let mut times = StepTimes::new();
    let mut c = cargo();
    c.args(["fmt", "--all", "--", "--check"]);
    run(c)?;
    times.done("fmt");
    let mut c = cargo();
    c.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(c)?;
    times.done("clippy (workspace, all targets)");
    // Build everything first, then run the tests (doc-tests included) under an 8 GiB limit on
    // the address space: no test may need more (a test that does is a bug, not a machine
    // problem). The build itself is not limited.
    let mut c = cargo();
    c.args(["test", "--workspace", "--no-run"]);
    run(c)?;
    times.done("build the tests");
    // On the best kernel path this CPU has, whatever the caller's environment says.
    let mut all = cargo_test_all();
    all.env_remove("CONVNETS_ISA")
        .env_remove("CONVNETS_NO_AVX512");
    run(limited(all, TEST_ADDRESS_SPACE_KIB))?;
    times.done("run the tests");
    let best = best_kernel_path();
    let mut report = vec![format!("  {best}: passed, every test")];
    // The examples, as a user runs them (the custom CNN on a subset of MNIST). `cargo test
    // --workspace` built them with the workspace's features; `cargo run -p convnets` would
    // resolve features for that one package and rebuild candle and the rest a second time.
    for (example, args) in [
        ("custom_cnn", &["6000"][..]),
        ("summary", &["lenet5"][..]),
        ("pytorch_weights", &[][..]),
        ("memory_flat", &["adam", "3", "2000"][..]),
    ] {
        let mut c = Command::new(root().join("target/debug/examples").join(example));
        c.current_dir(root()).args(args);
        run(c)?;
    }
    times.done("run the examples");
    // The kernels again on each other path this CPU runs (CPUs without AVX-512 take the
    // AVX2 one, CPUs without AVX2 the portable one): the test binaries already built, run
    // with CONVNETS_ISA (a `cargo test -p` would rebuild dependencies with other features).
    let bins = kernel_test_binaries()?;
    for (isa, needs) in KERNEL_PATHS.into_iter().filter(|(isa, _)| *isa != best) {
        if !cpu_runs(isa) {
            report.push(format!("  {isa}: NOT RUN (this CPU lacks {needs})"));
            continue;
        }
        for (exe, dir) in &bins {
            let mut c = Command::new(exe);
            c.current_dir(dir)
                .env("CONVNETS_ISA", isa)
                .env_remove("CONVNETS_NO_AVX512");
            run(limited(c, TEST_ADDRESS_SPACE_KIB))
                .with_context(|| format!("kernel tests with CONVNETS_ISA={isa}"))?;
        }
        report.push(format!(
            "  {isa}: passed, the kernel, layer and zoo tests and native_vs_reference"
        ));
    }
    times.done("kernel tests on the other CPU paths");
    mpi_check()?;
    times.done("mpi feature (clippy, build, tests)");
    cuda_check()?;
    times.done("cuda type-check");
    aarch64_check()?;
    times.done("aarch64 check (kernels crate)");
    eprintln!("kernel paths:\n{}", report.join("\n"));
    eprintln!("{}", times.report());
    Ok(())
}

/// The property-test binaries: every reader of outside bytes (IDX, images, CIFAR records,
/// safetensors, run configs and checkpoints, timm `config.json` and weights metadata).
const PROPERTY_TESTS: [&str; 6] = [
    "idx_props",
    "image_props",
    "cifar",
    "store_props",
    "parser_props",
    "timm_props",
];

/// `cargo xtask fuzz [--cases N]`: runs each property-test binary with `PROPTEST_CASES=N`
/// (CI runs them with 256) and reports the cases and the time per binary.
fn fuzz(args: &[String]) -> Result<()> {
    let cases: u64 = match args {
        [] => 100_000,
        [flag, n] if flag == "--cases" => n
            .parse()
            .with_context(|| format!("--cases {n}: expected a count"))?,
        _ => bail!("usage: cargo xtask fuzz [--cases N]"),
    };
    let bins = test_binaries(&[
        "convnets-data",
        "convnets-layers",
        "convnets-train",
        "convnets-zoo",
    ])?;
    let mut report = Vec::new();
    for target in PROPERTY_TESTS {
        let Some((exe, dir)) = bins.iter().find(|(exe, _)| test_binary_is(exe, target)) else {
            bail!("no test binary `{target}` was built")
        };
        let start = std::time::Instant::now();
        let mut c = Command::new(exe);
        c.current_dir(dir)
            .env("PROPTEST_CASES", cases.to_string())
            .args(["--test-threads", "2"]);
        run(c).with_context(|| format!("property tests {target} with {cases} cases each"))?;
        report.push(format!(
            "{target}: {cases} cases per property, 0 failures, {:.0} s",
            start.elapsed().as_secs_f64()
        ));
    }
    println!("{}", report.join("\n"));
    Ok(())
}

/// The test executables of `packages` (and each one's package folder, the working directory
/// `cargo test` gives it), from the artifacts of `cargo test --workspace --no-run`.
fn test_binaries(packages: &[&str]) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut c = cargo();
    c.args(["test", "--workspace", "--no-run", "--message-format=json"])
        .stderr(std::process::Stdio::inherit());
    let out = c.output().context("cargo test --no-run")?;
    if !out.status.success() {
        bail!("cargo test --workspace --no-run failed with {}", out.status);
    }
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" || v["profile"]["test"] != true {
            continue;
        }
        let (Some(exe), Some(manifest), Some(id)) = (
            v["executable"].as_str(),
            v["manifest_path"].as_str(),
            v["package_id"].as_str(),
        ) else {
            continue;
        };
        let name = v["target"]["name"].as_str().unwrap_or_default();
        let ours = packages
            .iter()
            .any(|p| id.contains(&format!("#{p}@")) || id.starts_with(&format!("{p} ")));
        if ours {
            let dir = Path::new(manifest)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(root);
            eprintln!("(test binary {name} of {dir:?})");
            found.push((PathBuf::from(exe), dir));
        }
    }
    if found.is_empty() {
        bail!("no test binaries of {packages:?} among cargo's artifacts");
    }
    Ok(found)
}

/// `cargo xtask train --nproc N ARGS`: builds the CLI with the `mpi` feature and runs
/// `mpirun -np N … convnets train --distributed ARGS` on this machine, each rank with its share
/// of the cores (`RAYON_NUM_THREADS`), unbound, allowed to run as root and to oversubscribe.
fn train_distributed(nproc: usize, args: &[String]) -> Result<()> {
    if nproc == 0 {
        bail!("--nproc must be at least 1");
    }
    let mut c = cargo();
    c.args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "convnets-cli",
        "--features",
        "mpi",
    ]);
    run(c)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / nproc).max(1);
    let mut m = Command::new("mpirun");
    m.current_dir(root())
        .args(["-np", &nproc.to_string(), "--bind-to", "none"])
        // Open MPI refuses root without these (harmless otherwise).
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    if nproc > cores {
        m.arg("--oversubscribe");
    }
    m.args(["-x", &format!("RAYON_NUM_THREADS={threads}")])
        .args(["-x", "CANDLE_NUM_THREADS=1"])
        .arg(root().join("target/release/convnets"))
        .args(["train", "--distributed"])
        .args(args);
    run(m).context(
        "mpirun (is Open MPI installed? apt-get install openmpi-bin libopenmpi-dev libclang-dev)",
    )
}

/// `--nproc N` (or `--nproc=N`) taken out of `args`.
fn take_nproc(args: &mut Vec<String>) -> Result<Option<usize>> {
    let Some(i) = args
        .iter()
        .position(|a| a == "--nproc" || a.starts_with("--nproc="))
    else {
        return Ok(None);
    };
    let a = args.remove(i);
    let v = match a.strip_prefix("--nproc=") {
        Some(v) => v.to_string(),
        None if i < args.len() => args.remove(i),
        None => bail!("--nproc needs a number of ranks"),
    };
    v.parse()
        .map(Some)
        .with_context(|| format!("--nproc {v}: expected a number of ranks"))
}

/// The `mpi` feature: clippy on the code it adds, then the MPI launch tests (`mpirun -np 2` on
/// loopback). Workspace-wide with `--features convnets-cli/mpi`, so every dependency keeps the
/// feature set the main build compiled it with: only convnets-train, convnets and convnets-cli
/// (and mpi-sys) are compiled again. Skipped, saying so, where there is no MPI.
fn mpi_check() -> Result<()> {
    let has_mpi = Command::new("mpicc")
        .arg("--showme:version")
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("mpirun")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !has_mpi {
        eprintln!("SKIP mpi feature: no MPI (mpicc, mpirun) on this machine; .ci/run installs libopenmpi-dev openmpi-bin libclang-dev");
        return Ok(());
    }
    let t0 = std::time::Instant::now();
    let mut c = cargo();
    c.args([
        "clippy",
        "--workspace",
        "--features",
        "convnets-cli/mpi",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(c)?;
    let mut c = cargo();
    c.args([
        "test",
        "--workspace",
        "--features",
        "convnets-cli/mpi",
        "--test",
        "distributed",
        "--test",
        "data_parallel",
    ])
    .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
    .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    run(c)?;
    eprintln!(
        "mpi feature: clippy, build and tests took {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The target the portable path's other vector ISA (NEON, through `wide`) is checked on.
const AARCH64: &str = "aarch64-unknown-linux-gnu";

/// `cargo clippy -p convnets-kernels --target aarch64-unknown-linux-gnu --all-targets -D
/// warnings` where that target's standard library is installed (`.ci/run` tries `rustup
/// target add`); a SKIP line otherwise. Only the kernels crate: the workspace's C
/// dependencies (`ring`, mimalloc) would need an aarch64 C compiler as well.
fn aarch64_check() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == AARCH64)
        });
    if !installed {
        eprintln!("SKIP aarch64 check: the {AARCH64} target is not installed (rustup target add {AARCH64})");
        return Ok(());
    }
    let t0 = std::time::Instant::now();
    let mut c = cargo();
    c.args([
        "clippy",
        "-p",
        "convnets-kernels",
        "--target",
        AARCH64,
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(c)?;
    eprintln!(
        "aarch64 check ({AARCH64}, convnets-kernels) took {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Type-checks (clippy, warnings denied) the GPU code with the stand-in nvcc: the `cuda`
/// feature and, where MPI is installed (its bindings need `mpicc`), the NCCL backend
/// (`convnets-cli/nccl`: cuda + mpi + nccl) in the same cargo call, the library, the binary
/// and the data-parallel tests (the GPU test among them). `cargo check` links nothing, so
/// neither CUDA nor libnccl is needed.
///
/// It runs workspace-wide in the main target folder, so every crate the `cuda` feature leaves
/// alone is the one the main clippy step checked (a target folder of its own meant checking
/// every dependency a third time). The stand-in is safe there: the only crate that runs nvcc,
/// candle-kernels, reruns its build script when `NVCC` or `CUDA_COMPUTE_CAP` change
/// (`rerun-if-env-changed`), and cudarc's when `CUDARC_CUDA_VERSION` does; a real CUDA build
/// sets neither the same way, so it never reuses the empty kernels.
fn cuda_check() -> Result<()> {
    let t0 = std::time::Instant::now();
    let bin = root().join("target/fake-nvcc");
    fake_nvcc(&bin)?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let has_mpi = Command::new("mpicc")
        .arg("--showme:version")
        .output()
        .is_ok_and(|o| o.status.success());
    let features = if has_mpi {
        "convnets-cli/nccl"
    } else {
        eprintln!("SKIP nccl type-check: no MPI (mpicc) on this machine, and the nccl feature needs the mpi one; .ci/run installs libopenmpi-dev openmpi-bin libclang-dev (the cuda feature is still checked)");
        "convnets-cli/cuda"
    };
    let mut c = cargo();
    c.args([
        "clippy",
        "--workspace",
        "--features",
        features,
        "--lib",
        "--bins",
        "--test",
        "data_parallel",
        "--",
        "-D",
        "warnings",
    ])
    .env("PATH", path)
    .env("NVCC", bin.join("nvcc"))
    .env("CUDARC_CUDA_VERSION", "13000")
    .env("CUDA_COMPUTE_CAP", "90");
    run(c)?;
    eprintln!(
        "cuda type-check ({}) took {:.0} s",
        if has_mpi { "cuda + mpi + nccl" } else { "cuda" },
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        args.push("help".into());
    }
    let task = args.remove(0);
    match task.as_str() {
        "train" => match take_nproc(&mut args)? {
            Some(n) => train_distributed(n, &args),
            None => cli(&task, &args),
        },
        "eval" | "ensemble" | "predict" | "download" | "synthesize" | "models" | "summary" => {
            cli(&task, &args)
        }
        "bench" => {
            let mut c = cargo();
            c.args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "convnets-bench",
                "--bin",
                "convnets-bench",
                "--",
            ])
            .args(&args)
            .env("CONVNETS_PYTHON", python());
            run(c)
        }
        "golden" => {
            // Every golden fixture: models and ops, the layers, the zoo (`--only` goes per script).
            for script in [
                "torch_reference.py",
                "torch_layers_reference.py",
                "torch_zoo_reference.py",
            ] {
                let mut c = Command::new(python());
                c.current_dir(root()).arg(Path::new("scripts").join(script));
                run(c)?;
            }
            Ok(())
        }
        "ci" => ci(),
        "fuzz" => fuzz(&args),
        "mpi-check" => mpi_check(),
        "cuda-check" => cuda_check(),
        _ => {
            eprintln!(
                "{}",
                include_str!("main.rs")
                    .lines()
                    .skip(4)
                    .take(10)
                    .map(|l| l.trim_start_matches("//! "))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            if task == "help" || task == "--help" || task == "-h" {
                Ok(())
            } else {
                bail!("unknown task `{task}`")
            }
        }
    }
}

#[cfg(test)]
mod hermetic_cargo {
    /// `cargo test` sets for this test what `cargo run` sets for xtask (`CARGO_PKG_*`,
    /// `CARGO_MANIFEST_DIR`, the library path with target/debug/deps): none reaches `cargo()`.
    #[test]
    fn nested_cargo_gets_none_of_what_cargo_run_set() {
        let c = super::cargo();
        let envs: Vec<_> = c.get_envs().collect();
        for var in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_PKG_VERSION"] {
            assert!(std::env::var_os(var).is_some(), "cargo test sets {var}");
            assert!(envs.contains(&(var.as_ref(), None)), "{var} passed on");
        }
        let target = super::root().join("target");
        if let Some((_, Some(paths))) = envs.iter().find(|(k, _)| *k == "LD_LIBRARY_PATH") {
            assert!(std::env::split_paths(paths).all(|p| !p.starts_with(&target)));
        }
    }
}
