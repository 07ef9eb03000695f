//! Shared by the zoo tests: the PyTorch fixtures of `tests/golden/zoo/` and the deterministic
//! fill formula that `scripts/torch_zoo_reference.py` uses for every parameter, buffer and input.
#![allow(dead_code)]

use anyhow::{ensure, Context, Result};
use candle_core::{Device, Tensor};
use convnets_layers::ParamStore;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Key of the input formula (`INPUT_KEY` in the script).
pub const INPUT_KEY: u64 = 1_000_003;

/// The train-mode part of a fixture.
#[derive(Debug, Deserialize)]
pub struct TrainFixture {
    /// Output shape.
    pub logits_shape: Vec<usize>,
    /// Train-mode output of one forward pass, row-major.
    pub logits: Vec<f32>,
    /// How far PyTorch's own float32 output is from `logits` (max |diff|).
    pub torch_f32_error: f64,
    /// The batch-norm layer whose statistics are stored (`bn1`, `conv1.bn`).
    pub bn: String,
    /// Its running mean after that pass.
    pub running_mean: Vec<f32>,
    /// Its running variance after that pass.
    pub running_var: Vec<f32>,
}

/// One row of seed 002's printouts (AlexNet only).
#[derive(Debug, Deserialize)]
pub struct LayerFixture {
    /// Index in the `nn.Sequential`.
    pub index: usize,
    /// PyTorch class name.
    pub kind: String,
    /// Output shape, batch included.
    pub shape: Vec<usize>,
    /// Parameters of the layer.
    pub params: usize,
}

/// `tests/golden/zoo/<case>.json`, written by `scripts/torch_zoo_reference.py`.
#[derive(Debug, Deserialize)]
pub struct Fixture {
    /// The case name.
    pub case: String,
    /// The command that wrote it.
    pub generator: String,
    /// `sum(p.numel() for p in model.parameters())`.
    pub params: usize,
    /// Elements of the buffers (batch-norm statistics).
    pub buffers: usize,
    /// `state_dict()` keys and shapes, in order.
    pub keys: Vec<(String, Vec<usize>)>,
    /// Input shape.
    pub input: Vec<usize>,
    /// Key of the input formula.
    pub input_key: u64,
    /// Sum of the input (float64), to check the formula.
    pub input_sum: f64,
    /// Eval-mode output shape, when stored.
    pub logits_shape: Option<Vec<usize>>,
    /// Eval-mode output, row-major, when stored.
    pub logits: Option<Vec<f32>>,
    /// How far PyTorch's own float32 eval output is from `logits` (max |diff|).
    pub torch_f32_error: Option<f64>,
    /// Mean cross-entropy of the eval logits against labels `i mod classes`.
    pub loss: Option<f64>,
    /// Train-mode check (batch-norm models).
    pub train: Option<TrainFixture>,
    /// Seed 002's per-layer table (AlexNet).
    pub layers: Option<Vec<LayerFixture>>,
}

/// The repository's `tests/golden/zoo` folder.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/zoo")
}

/// Reads the fixture of `case`.
pub fn fixture(case: &str) -> Result<Fixture> {
    let path = golden_dir().join(format!("{case}.json"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// `n` values in `[-1, 1)` from integer hashing (murmur3's finaliser); the script's `unit`.
pub fn unit(k: u64, n: usize) -> Vec<f64> {
    let kk = (k + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..n as u64)
        .map(|i| {
            let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(kk);
            x ^= x >> 33;
            x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
            x ^= x >> 33;
            x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
            x ^= x >> 33;
            (x >> 40) as f64 / (1u64 << 23) as f64 - 1.0
        })
        .collect()
}

/// Overwrites every tensor of `store` (parameters and buffers, in creation order) with the
/// script's formula: see the docstring of `scripts/torch_zoo_reference.py`.
pub fn fill(store: &ParamStore) -> Result<()> {
    let mut prev_fan_in: Option<usize> = None;
    for (k, (name, var)) in store.named_vars().into_iter().enumerate() {
        let last = name.rsplit('.').next().unwrap_or(&name);
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        if last == "num_batches_tracked" {
            var.set(&var.as_tensor().zeros_like()?)?;
            prev_fan_in = None;
            continue;
        }
        let u = unit(k as u64, n);
        let values: Vec<f64> = if dims.len() >= 2 {
            let fan_in: usize = dims[1..].iter().product();
            prev_fan_in = Some(fan_in);
            let b = (3.0 / fan_in as f64).sqrt();
            u.iter().map(|u| u * b).collect()
        } else {
            let v = match (last, prev_fan_in) {
                ("bias", Some(fan_in)) => {
                    let b = 1.0 / (fan_in as f64).sqrt();
                    u.iter().map(|u| u * b).collect()
                }
                ("weight", _) => u.iter().map(|u| 1.0 + 0.1 * u).collect(),
                ("running_var", _) => u.iter().map(|u| 1.0 + 0.5 * u).collect(),
                _ => u.iter().map(|u| 0.1 * u).collect(),
            };
            prev_fan_in = None;
            v
        };
        let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
        let t = Tensor::from_vec(values, dims.as_slice(), var.device())?.to_dtype(var.dtype())?;
        var.set(&t).with_context(|| format!("setting {name}"))?;
    }
    Ok(())
}

/// The input of a fixture: `unit(INPUT_KEY, n)` as `[b, c, h, w]`.
pub fn formula_input(shape: &[usize], dev: &Device) -> Result<Tensor> {
    let n = shape.iter().product();
    let v: Vec<f32> = unit(INPUT_KEY, n).into_iter().map(|v| v as f32).collect();
    Ok(Tensor::from_vec(v, shape, dev)?)
}

/// The fixture's input, checked against the sum the script recorded.
pub fn fixture_input(f: &Fixture, dev: &Device) -> Result<Tensor> {
    ensure!(
        f.input_key == INPUT_KEY,
        "{}: input key {} (expected {INPUT_KEY})",
        f.case,
        f.input_key
    );
    let x = formula_input(&f.input, dev)?;
    let sum: f64 = x
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .map(|&v| v as f64)
        .sum();
    ensure!(
        (sum - f.input_sum).abs() < 1e-6 * (1.0 + f.input_sum.abs()),
        "{}: input sum {sum} vs {}",
        f.case,
        f.input_sum
    );
    Ok(x)
}

/// Checks `ours` (any shape) against PyTorch's `theirs` (flattened): max |diff| at most
/// `tol · max(1, max |theirs|)`. Returns the max |diff|.
pub fn assert_close(
    what: &str,
    ours: &Tensor,
    shape: &[usize],
    theirs: &[f32],
    tol: f32,
) -> Result<f32> {
    ensure!(
        ours.dims() == shape,
        "{what}: shape {:?}, PyTorch's {shape:?}",
        ours.dims()
    );
    let ours = ours.flatten_all()?.to_vec1::<f32>()?;
    ensure!(
        ours.len() == theirs.len(),
        "{what}: {} values, PyTorch has {}",
        ours.len(),
        theirs.len()
    );
    let scale = theirs.iter().fold(1f32, |m, v| m.max(v.abs()));
    let mut worst = (0f32, 0usize);
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let d = (a - b).abs();
        ensure!(
            d.is_finite() || a == b,
            "{what}: value {i} is {a}, PyTorch's {b}"
        );
        if d > worst.0 {
            worst = (d, i);
        }
    }
    ensure!(
        worst.0 <= tol * scale,
        "{what}: max |diff| {} at {} (ours {}, PyTorch {}), allowed {} (scale {scale})",
        worst.0,
        worst.1,
        ours[worst.1],
        theirs[worst.1],
        tol * scale
    );
    Ok(worst.0)
}

/// The trainable parameter count (what PyTorch's `parameters()` counts: no buffers).
pub fn trainable_params(store: &ParamStore) -> usize {
    store.trainable_vars().iter().map(|v| v.elem_count()).sum()
}

/// `(name, shape)` of every tensor in the store, in creation order.
pub fn keys(store: &ParamStore) -> Vec<(String, Vec<usize>)> {
    store
        .named_vars()
        .into_iter()
        .map(|(n, v)| (n, v.dims().to_vec()))
        .collect()
}
