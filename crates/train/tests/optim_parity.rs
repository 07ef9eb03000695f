//! Our optimizers against PyTorch's, step by step (`tests/golden/optim`, written by
//! `scripts/torch_optim_reference.py`), and a bit-exact resume through `state()`/`load_state()`.

use anyhow::{bail, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use convnets_train::optim::{Optim, OptimizerConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const STEPS: usize = 3;
const PARAMS: usize = 3;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/optim")
}

fn load(file: &str) -> Result<HashMap<String, Tensor>> {
    let p = dir().join(file);
    candle_core::safetensors::load(&p, &Device::Cpu)
        .with_context(|| format!("loading {}", p.display()))
}

/// Every configuration in `optimizers.json`: (name, our config).
fn configs() -> Result<Vec<(String, OptimizerConfig)>> {
    let p = dir().join("optimizers.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let Some(map) = json["configs"].as_object() else {
        bail!("{}: no `configs` object", p.display())
    };
    map.iter()
        .map(|(name, v)| {
            let cfg = serde_json::from_value(v["ours"].clone())
                .with_context(|| format!("{name}: our config {}", v["ours"]))?;
            Ok((name.clone(), cfg))
        })
        .collect()
}

fn get<'a>(m: &'a HashMap<String, Tensor>, k: &str) -> Result<&'a Tensor> {
    m.get(k)
        .with_context(|| format!("fixture entry `{k}` missing"))
}

struct Fixture {
    params: Vec<Tensor>,
    /// grads[t][j]: None where PyTorch had `p.grad = None`.
    grads: Vec<Vec<Option<Tensor>>>,
}

fn fixture() -> Result<Fixture> {
    let f = load("params.safetensors")?;
    let params = (0..PARAMS)
        .map(|j| get(&f, &format!("p{j}")).cloned())
        .collect::<Result<_>>()?;
    let grads = (0..STEPS)
        .map(|t| {
            (0..PARAMS)
                .map(|j| f.get(&format!("grad{t}.p{j}")).cloned())
                .collect()
        })
        .collect();
    Ok(Fixture { params, grads })
}

/// A gradient store holding exactly `grads` (PyTorch's `p.grad = g`); a `None` leaves the
/// parameter out, so the optimizer skips it as PyTorch does.
fn grad_store(vars: &[Var], grads: &[Option<Tensor>]) -> Result<GradStore> {
    let mut sum = Tensor::zeros((), DType::F32, &Device::Cpu)?;
    for v in vars {
        sum = (sum + v.as_tensor().sum_all()?)?;
    }
    let mut store = sum.backward()?;
    for (v, g) in vars.iter().zip(grads) {
        match g {
            Some(g) => {
                store.insert(v.as_tensor(), g.clone());
            }
            None => {
                store.remove(v.as_tensor());
            }
        }
    }
    Ok(store)
}

fn fresh(fx: &Fixture, cfg: &OptimizerConfig) -> Result<(Vec<Var>, Box<dyn Optim>)> {
    let vars: Vec<Var> = fx
        .params
        .iter()
        .map(Var::from_tensor)
        .collect::<candle_core::Result<_>>()?;
    let opt = cfg.build(vars.clone())?;
    Ok((vars, opt))
}

/// |a - b| <= 1e-6 * max(1, |b|), elementwise; the error names the worst element.
fn assert_close(what: &str, got: &Tensor, want: &Tensor) -> Result<()> {
    if got.dims() != want.dims() {
        bail!(
            "{what}: shape {:?}, PyTorch's {:?}",
            got.dims(),
            want.dims()
        )
    }
    let g = got.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let w = want.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        if (a - b).abs() > 1e-6 * b.abs().max(1.0) || !a.is_finite() {
            bail!(
                "{what}[{i}]: ours {a}, PyTorch {b} (|diff| {})",
                (a - b).abs()
            )
        }
    }
    Ok(())
}

#[test]
fn every_optimizer_matches_torch_step_by_step() -> Result<()> {
    let fx = fixture()?;
    let configs = configs()?;
    assert!(configs.len() >= 6, "only {} configs", configs.len());
    for (name, cfg) in &configs {
        let want = load(&format!("{name}.safetensors"))?;
        let (vars, mut opt) = fresh(&fx, cfg)?;
        for t in 0..STEPS {
            opt.step(&grad_store(&vars, &fx.grads[t])?)?;
            for (j, v) in vars.iter().enumerate() {
                let key = format!("p{j}.step{}", t + 1);
                assert_close(&format!("{name} {key}"), v.as_tensor(), get(&want, &key)?)?;
            }
        }
        // The state after the last step: PyTorch's buffer names and values.
        let ours: HashMap<String, Tensor> = opt.state()?.into_iter().collect();
        let mut theirs: Vec<&String> = want.keys().filter(|k| k.starts_with("state.")).collect();
        theirs.sort();
        let mut our_keys: Vec<String> = ours.keys().map(|k| format!("state.{k}")).collect();
        our_keys.sort();
        assert_eq!(
            our_keys.iter().collect::<Vec<_>>(),
            theirs,
            "{name}: state entries"
        );
        for k in theirs {
            let ours = get(&ours, &k["state.".len()..])?;
            assert_close(&format!("{name} {k}"), ours, get(&want, k)?)?;
        }
    }
    Ok(())
}

#[test]
fn resuming_from_saved_state_is_bit_exact() -> Result<()> {
    let fx = fixture()?;
    for (name, cfg) in configs()? {
        // Run A: three uninterrupted steps.
        let (vars_a, mut a) = fresh(&fx, &cfg)?;
        for t in 0..STEPS {
            a.step(&grad_store(&vars_a, &fx.grads[t])?)?;
        }
        // Run B: two steps, then the weights and state go through a safetensors file (as a
        // checkpoint) into a fresh optimizer, which takes step 3.
        let (vars_b, mut b) = fresh(&fx, &cfg)?;
        for t in 0..STEPS - 1 {
            b.step(&grad_store(&vars_b, &fx.grads[t])?)?;
        }
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("optim.safetensors");
        let mut saved: HashMap<String, Tensor> = b.state()?.into_iter().collect();
        for (j, v) in vars_b.iter().enumerate() {
            saved.insert(format!("param.{j}"), v.as_tensor().clone());
        }
        candle_core::safetensors::save(&saved, &path)?;
        drop(b);
        let mut loaded = candle_core::safetensors::load(&path, &Device::Cpu)?;
        let params: Vec<Tensor> = (0..PARAMS)
            .map(|j| loaded.remove(&format!("param.{j}")).context("saved param"))
            .collect::<Result<_>>()?;
        let vars_c: Vec<Var> = params
            .iter()
            .map(Var::from_tensor)
            .collect::<candle_core::Result<_>>()?;
        let mut c = cfg.build(vars_c.clone())?;
        c.load_state(&loaded)?;
        c.step(&grad_store(&vars_c, &fx.grads[STEPS - 1])?)?;
        for (j, (va, vc)) in vars_a.iter().zip(&vars_c).enumerate() {
            let x = va.flatten_all()?.to_vec1::<f32>()?;
            let y = vc.flatten_all()?.to_vec1::<f32>()?;
            let same = x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{name} p{j}: resumed {y:?} != uninterrupted {x:?}");
        }
        // And the states agree bit for bit too.
        let sa: HashMap<String, Tensor> = a.state()?.into_iter().collect();
        let sc: HashMap<String, Tensor> = c.state()?.into_iter().collect();
        assert_eq!(sa.len(), sc.len(), "{name}");
        for (k, ta) in &sa {
            let tc = get(&sc, k)?;
            let x = ta.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
            let y = tc.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
            assert_eq!(x, y, "{name} {k}");
        }
    }
    Ok(())
}

#[test]
fn candle_nn_optimizer_trait_runs_the_same_update() -> Result<()> {
    use candle_nn::Optimizer;
    let fx = fixture()?;
    let want = load("adamw.safetensors")?;
    let vars: Vec<Var> = fx
        .params
        .iter()
        .map(Var::from_tensor)
        .collect::<candle_core::Result<_>>()?;
    let mut opt = <convnets_train::optim::AdamW as Optimizer>::new(
        vars.clone(),
        convnets_train::optim::AdamWConfig {
            lr: 0.02,
            ..Default::default()
        },
    )?;
    for t in 0..STEPS {
        Optimizer::step(&mut opt, &grad_store(&vars, &fx.grads[t])?)?;
    }
    for (j, v) in vars.iter().enumerate() {
        let key = format!("p{j}.step{STEPS}");
        assert_close(&key, v.as_tensor(), get(&want, &key)?)?;
    }
    Ok(())
}
