//! BatchNorm2d, LocalResponseNorm and AdaptiveAvgPool2d against PyTorch: forward values,
//! running statistics and gradients. Golden values: `tests/golden/layers_{batchnorm,lrn,
//! adaptive_pool}/`, written by `scripts/torch_layers_reference.py` (each folder's README says
//! what was computed; inputs are formulas of the flat index, stored in the fixture).

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use convnets_layers::{
    batch_norm2d, AdaptiveAvgPool2d, BatchNormConfig, LocalResponseNorm, ParamStore,
};
use std::collections::HashMap;
use std::path::Path;

fn golden(case: &str, dev: &Device) -> Result<HashMap<String, Tensor>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../tests/golden/{case}/{case}.safetensors"));
    candle_core::safetensors::load(&path, dev)
        .with_context(|| format!("reading {}", path.display()))
}

fn get<'a>(g: &'a HashMap<String, Tensor>, key: &str) -> Result<&'a Tensor> {
    g.get(key)
        .with_context(|| format!("golden key `{key}` missing"))
}

/// `max |a - b| <= tol · max(1, max |b|)`, with the shapes equal.
fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f32) -> Result<()> {
    ensure!(
        a.dims() == b.dims(),
        "{what}: shape {:?} vs golden {:?}",
        a.dims(),
        b.dims()
    );
    let a = a.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let b = b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    let (i, d) = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .enumerate()
        .fold((0, 0f32), |m, (i, d)| if d > m.1 { (i, d) } else { m });
    ensure!(
        d <= tol * scale,
        "{what}: max difference {d} at {i} ({} vs golden {}), tolerance {}",
        a[i],
        b[i],
        tol * scale
    );
    Ok(())
}

/// `(y * g).sum()` with PyTorch's upstream gradient `g[i] = cos(0.11 i)`.
fn loss(y: &Tensor) -> Result<Tensor> {
    let n = y.elem_count();
    let g: Vec<f32> = (0..n).map(|i| (0.11 * i as f64).cos() as f32).collect();
    let g = Tensor::from_vec(g, y.shape(), y.device())?;
    Ok((y * g)?.sum_all()?)
}

fn batchnorm(dev: &Device) -> Result<()> {
    let g = golden("layers_batchnorm", dev)?;
    let store = ParamStore::new(0, dev);
    let bn = batch_norm2d(3, BatchNormConfig::default(), store.vb().pp("bn"))?;
    for p in ["weight", "bias"] {
        store
            .get(&format!("bn.{p}"))
            .context("parameter")?
            .set(get(&g, p)?)?;
    }
    let x1 = Var::from_tensor(get(&g, "x1")?)?;
    let y1 = bn.forward_t(x1.as_tensor(), true)?;
    assert_close("y1_train", &y1, get(&g, "y1_train")?, 1e-5)?;
    let grads = loss(&y1)?.backward()?;
    assert_close(
        "grad_x1",
        grads.get(x1.as_tensor()).context("grad x1")?,
        get(&g, "grad_x1")?,
        1e-5,
    )?;
    let w = store.get("bn.weight").context("weight")?;
    let b = store.get("bn.bias").context("bias")?;
    assert_close(
        "grad_weight",
        grads.get(w.as_tensor()).context("grad w")?,
        get(&g, "grad_weight")?,
        1e-5,
    )?;
    assert_close(
        "grad_bias",
        grads.get(b.as_tensor()).context("grad b")?,
        get(&g, "grad_bias")?,
        1e-5,
    )?;
    // The buffers get no gradient and are not trainable.
    let rm = store.get("bn.running_mean").context("running_mean")?;
    ensure!(
        grads.get(rm.as_tensor()).is_none(),
        "running_mean has a gradient"
    );
    ensure!(
        store.trainable_vars().len() == 2,
        "trainable: {}",
        store.trainable_vars().len()
    );

    let y2 = bn.forward_t(get(&g, "x2")?, true)?;
    assert_close("y2_train", &y2, get(&g, "y2_train")?, 1e-5)?;
    assert_close(
        "running_mean",
        &bn.running_mean(),
        get(&g, "running_mean")?,
        1e-6,
    )?;
    assert_close(
        "running_var",
        &bn.running_var(),
        get(&g, "running_var")?,
        1e-6,
    )?;
    assert_close(
        "store running_var",
        store.get("bn.running_var").context("rv")?.as_tensor(),
        get(&g, "running_var")?,
        1e-6,
    )?;
    ensure!(bn.num_batches_tracked()? == 2);
    let y_eval = bn.forward_t(get(&g, "x1")?, false)?;
    assert_close("y_eval", &y_eval, get(&g, "y_eval")?, 1e-5)?;

    // PyTorch's state_dict (int64 num_batches_tracked included) loads into a fresh store and
    // gives the same eval output.
    let fresh = ParamStore::new(1, dev);
    let bn2 = batch_norm2d(3, BatchNormConfig::default(), fresh.vb().pp("bn"))?;
    let state: HashMap<String, Tensor> = [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    .into_iter()
    .map(|k| Ok((format!("bn.{k}"), get(&g, k)?.clone())))
    .collect::<Result<_>>()?;
    ensure!(state["bn.num_batches_tracked"].dtype() == DType::I64);
    fresh.load_tensors(&state, Path::new("state_dict"), true)?;
    ensure!(bn2.num_batches_tracked()? == 2);
    assert_close(
        "y_eval after load",
        &bn2.forward_t(get(&g, "x1")?, false)?,
        get(&g, "y_eval")?,
        1e-5,
    )?;
    Ok(())
}

fn lrn(dev: &Device) -> Result<()> {
    let g = golden("layers_lrn", dev)?;
    // Mirrors LRN_SETTINGS in the script.
    let settings = [
        ("alexnet", LocalResponseNorm::alexnet()),
        ("strong", LocalResponseNorm::new(3, 0.5, 0.75, 1.0)),
        ("even", LocalResponseNorm::new(4, 0.3, 0.6, 1.5)),
    ];
    for (key, layer) in settings {
        let x = Var::from_tensor(get(&g, &format!("{key}_x"))?)?;
        let y = layer.forward(x.as_tensor())?;
        assert_close(&format!("{key}_y"), &y, get(&g, &format!("{key}_y"))?, 1e-6)?;
        let grads = loss(&y)?.backward()?;
        let gx = grads.get(x.as_tensor()).context("grad x")?;
        assert_close(
            &format!("{key}_grad_x"),
            gx,
            get(&g, &format!("{key}_grad_x"))?,
            1e-5,
        )?;
    }
    Ok(())
}

fn adaptive_pool(dev: &Device) -> Result<()> {
    let g = golden("layers_adaptive_pool", dev)?;
    // Mirrors POOL_SETTINGS in the script.
    for (key, out) in [("a", [3, 2]), ("b", [4, 4]), ("c", [3, 5])] {
        let x = Var::from_tensor(get(&g, &format!("{key}_x"))?)?;
        let y = AdaptiveAvgPool2d::new(out).forward(x.as_tensor())?;
        assert_close(&format!("{key}_y"), &y, get(&g, &format!("{key}_y"))?, 1e-6)?;
        let grads = loss(&y)?.backward()?;
        let gx = grads.get(x.as_tensor()).context("grad x")?;
        assert_close(
            &format!("{key}_grad_x"),
            gx,
            get(&g, &format!("{key}_grad_x"))?,
            1e-6,
        )?;
    }
    Ok(())
}

/// Expands `fn case(dev)` into a CPU test and, with the `cuda` feature, a GPU one (STYLE 9).
macro_rules! test_device {
    ($case:ident, $cpu:ident, $cuda:ident) => {
        #[test]
        fn $cpu() -> Result<()> {
            $case(&Device::Cpu)
        }
        #[cfg(feature = "cuda")]
        #[test]
        fn $cuda() -> Result<()> {
            $case(&Device::new_cuda(0)?)
        }
    };
}

test_device!(
    batchnorm,
    batchnorm_matches_pytorch_cpu,
    batchnorm_matches_pytorch_cuda
);
test_device!(lrn, lrn_matches_pytorch_cpu, lrn_matches_pytorch_cuda);
test_device!(
    adaptive_pool,
    adaptive_pool_matches_pytorch_cpu,
    adaptive_pool_matches_pytorch_cuda
);
