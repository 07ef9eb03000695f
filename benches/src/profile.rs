//! Where the time goes: a training step split into its phases ([`steps`]), and each layer's
//! native op timed alone ([`ops`]). The `steps` and `ops` commands of `convnets-bench`;
//! combine with `perf record` for the kernels inside each phase.

use crate::{recipes, train_batcher};
use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use convnets::layers::ops::{self, native, set_kernels, Conv2dParams, Kernels, Pool2dParams};
use convnets::layers::ParamStore;
use convnets::train::{cross_entropy, Sgd};
use std::path::Path;
use std::time::Instant;

/// Forward, loss, backward and optimizer step of each recipe timed separately (milliseconds
/// per step, medians over `steps` timed steps after 5 untimed ones; the mean step, which the
/// models table reports, follows). All recipes when `cases` is empty; candle's own ops
/// instead of ours with `reference`.
pub fn steps(
    cases: &[String],
    steps: usize,
    reference: bool,
    data_dir: Option<&Path>,
) -> Result<()> {
    if reference {
        set_kernels(Kernels::Reference);
    }
    for r in recipes()
        .into_iter()
        .filter(|r| cases.is_empty() || cases.iter().any(|c| c == r.name))
    {
        let train = train_batcher(&r, data_dir)?;
        let store = ParamStore::new(0, &Device::Cpu);
        let model = convnets::zoo::build(r.model, store.vb())?;
        let mut opt = Sgd::new(store.trainable_vars(), r.sgd)?;
        let mut t = [vec![], vec![], vec![], vec![]];
        let mut done = 0;
        'outer: for epoch in 0.. {
            for batch in train.epoch(epoch) {
                let batch = batch?;
                let t0 = Instant::now();
                let logits = model.forward_t(&batch.images, true)?;
                let t1 = Instant::now();
                let loss = cross_entropy(&logits, &batch.labels)?;
                let t2 = Instant::now();
                let grads = loss.backward()?;
                let t3 = Instant::now();
                opt.step(&grads)?;
                loss.to_scalar::<f32>()?;
                let t4 = Instant::now();
                done += 1;
                if done > 5 {
                    for (v, (a, b)) in t.iter_mut().zip([(t0, t1), (t1, t2), (t2, t3), (t3, t4)]) {
                        v.push((b - a).as_secs_f64() * 1e3);
                    }
                }
                if done >= steps + 5 {
                    break 'outer;
                }
            }
        }
        let steps_done = t[0].len().max(1) as f64;
        let mean_total: f64 = t.iter().map(|v| v.iter().sum::<f64>()).sum::<f64>() / steps_done;
        let m: Vec<f64> = t.iter().map(|v| crate::median(v)).collect();
        let total: f64 = m.iter().sum();
        println!(
            "{:<10} batch {:>3}: forward {:.3} ms, loss {:.3} ms, backward {:.3} ms, step {:.3} ms; total {:.3} ms = {:.0} img/s (mean step {:.3} ms = {:.0} img/s)",
            r.name,
            r.batch_size,
            m[0],
            m[1],
            m[2],
            m[3],
            total,
            r.batch_size as f64 / total * 1e3,
            mean_total,
            r.batch_size as f64 / mean_total * 1e3
        );
    }
    Ok(())
}

/// Prints the median milliseconds of `f` over 40 calls after 5 warm-up calls.
fn time(name: &str, mut f: impl FnMut() -> Result<Tensor>) -> Result<()> {
    let t = crate::time_runs(5, 40, || f().map(|_| ()))?;
    println!("  {name:<34} {:>8.3} ms", crate::median(&t) * 1e3);
    Ok(())
}

fn conv(
    tag: &str,
    b: usize,
    c_in: usize,
    hw: usize,
    c_out: usize,
    k: usize,
    input_grad: bool,
) -> Result<()> {
    let dev = Device::Cpu;
    // "Same" padding for the 3x3 CIFAR convolutions, none for the 5x5 MNIST ones.
    let pad = if k == 3 { 1 } else { 0 };
    let p = Conv2dParams {
        padding: [pad, pad],
        ..Default::default()
    };
    let x = Tensor::randn(0f32, 1., (b, c_in, hw, hw), &dev)?;
    let w = Tensor::randn(0f32, 0.1, (c_out, c_in, k, k), &dev)?;
    let bias = Tensor::randn(0f32, 0.1, c_out, &dev)?;
    let y = native::conv2d(&x, &w, Some(&bias), &p)?;
    time(&format!("{tag} fwd"), || {
        Ok(native::conv2d(&x, &w, Some(&bias), &p)?)
    })?;
    time(&format!("{tag} weight grad"), || {
        Ok(native::conv2d_weight_grad(&x, &y, (k, k), &p)?)
    })?;
    if input_grad {
        time(&format!("{tag} input grad"), || {
            Ok(native::conv2d_input_grad(&y, &w, (hw, hw), &p)?)
        })?;
    }
    Ok(())
}

fn pool(tag: &str, dims: (usize, usize, usize, usize), max: bool) -> Result<()> {
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., dims, &Device::Cpu)?)?;
    let p = Pool2dParams::square(2, 2);
    let f = |x: &Tensor| {
        if max {
            ops::max_pool2d(x, &p)
        } else {
            ops::avg_pool2d(x, &p)
        }
    };
    time(&format!("{tag} fwd"), || Ok(f(x.as_tensor())?))?;
    time(&format!("{tag} fwd+bwd"), || {
        let g = f(x.as_tensor())?.sum_all()?.backward()?;
        Ok(g.get(x.as_tensor())
            .cloned()
            .unwrap_or_else(|| x.as_tensor().clone()))
    })?;
    Ok(())
}

fn linear(tag: &str, b: usize, n_in: usize, n_out: usize) -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1., (b, n_in), &dev)?)?;
    let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (n_out, n_in), &dev)?)?;
    let bias = Var::from_tensor(&Tensor::randn(0f32, 0.1, n_out, &dev)?)?;
    let f = || -> candle_core::Result<Tensor> {
        x.as_tensor()
            .matmul(&w.as_tensor().t()?)?
            .broadcast_add(bias.as_tensor())
    };
    time(&format!("{tag} fwd (matmul+bias)"), || Ok(f()?))?;
    time(&format!("{tag} fwd+relu"), || Ok(f()?.relu()?))?;
    time(&format!("{tag} fwd+relu+bwd"), || {
        let g = f()?.relu()?.sum_all()?.backward()?;
        Ok(g.get(w.as_tensor())
            .cloned()
            .unwrap_or_else(|| w.as_tensor().clone()))
    })?;
    for (what, relu) in [
        (
            "candle relu",
            Tensor::relu as fn(&Tensor) -> candle_core::Result<Tensor>,
        ),
        ("ops::relu", ops::relu),
    ] {
        time(&format!("{tag} ops::linear+{what}+bwd"), || {
            let y = ops::linear(x.as_tensor(), w.as_tensor(), Some(bias.as_tensor()))?;
            let g = relu(&y)?.sum_all()?.backward()?;
            Ok(g.get(w.as_tensor())
                .cloned()
                .unwrap_or_else(|| w.as_tensor().clone()))
        })?;
    }
    Ok(())
}

/// Which layers [`ops`] times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OpSet {
    /// SimpleCNN's and ResNet-20's layers at batch 128.
    Cifar,
    /// Elementwise ops, batch norm, and LeNet-5's and MnistNet's layers.
    Mnist,
}

/// Times the native kernels (`convnets-kernels`, through their candle ops) of each layer of
/// the bench models in isolation: median milliseconds per call. All sets when `sets` is
/// empty.
pub fn ops(sets: &[OpSet]) -> Result<()> {
    let wants = |s: OpSet| sets.is_empty() || sets.contains(&s);
    if wants(OpSet::Cifar) {
        cifar()?;
    }
    if wants(OpSet::Mnist) {
        mnist()?;
    }
    Ok(())
}

/// The layers of SimpleCNN and ResNet-20 at batch 128.
fn cifar() -> Result<()> {
    println!("simple-cnn (batch 128)");
    conv("conv1 3->32 3x3 32", 128, 3, 32, 32, 3, false)?;
    pool("maxpool 32x32x32", (128, 32, 32, 32), true)?;
    conv("conv2 32->64 3x3 16", 128, 32, 16, 64, 3, true)?;
    pool("maxpool 64x16x16", (128, 64, 16, 16), true)?;
    conv("conv3 64->128 3x3 8", 128, 64, 8, 128, 3, true)?;
    pool("maxpool 128x8x8", (128, 128, 8, 8), true)?;
    linear("fc1 2048->512", 128, 2048, 512)?;
    println!("resnet20 (batch 128)");
    conv("stage1 16->16 3x3 32", 128, 16, 32, 16, 3, true)?;
    conv("stage2 32->32 3x3 16", 128, 32, 16, 32, 3, true)?;
    conv("stage3 64->64 3x3 8", 128, 64, 8, 64, 3, true)?;
    Ok(())
}

/// Elementwise ops and the layers of LeNet-5 and MnistNet.
fn mnist() -> Result<()> {
    let a = Tensor::randn(0f32, 1., (256, 6, 24, 24), &Device::Cpu)?;
    time("zeros_like+add 256x6x24x24", || {
        Ok(a.zeros_like()?.add(&a)?)
    })?;
    time("relu 256x6x24x24", || Ok(a.relu()?))?;
    time("ops::relu 256x6x24x24", || Ok(ops::relu(&a)?))?;
    let s = a.sum_all()?;
    time("broadcast+contiguous 256x6x24x24", || {
        Ok(s.broadcast_as(a.shape())?.contiguous()?)
    })?;
    {
        println!("batch norm [128, 16, 32, 32] (ResNet-20 stage 1), fwd+bwd");
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (128, 16, 32, 32), &dev)?)?;
        let g = Var::from_tensor(&Tensor::ones(16, candle_core::DType::F32, &dev)?)?;
        let b = Var::from_tensor(&Tensor::zeros(16, candle_core::DType::F32, &dev)?)?;
        for (name, f) in [
            (
                "native",
                native::batch_norm2d_train
                    as fn(
                        &Tensor,
                        &Tensor,
                        &Tensor,
                        f64,
                    ) -> candle_core::Result<(Tensor, Tensor, Tensor)>,
            ),
            (
                "reference",
                convnets::layers::ops::reference::batch_norm2d_train,
            ),
        ] {
            time(name, || {
                let (y, _, _) = f(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5)?;
                let gr = y.sum_all()?.backward()?;
                Ok(gr.get(x.as_tensor()).cloned().unwrap_or_else(|| y.clone()))
            })?;
        }
    }
    println!("lenet5 (batch 256)");
    conv("conv1 1->6 5x5 28", 256, 1, 28, 6, 5, false)?;
    pool("avgpool 6x24x24", (256, 6, 24, 24), false)?;
    conv("conv2 6->16 5x5 12", 256, 6, 12, 16, 5, true)?;
    pool("avgpool 16x8x8", (256, 16, 8, 8), false)?;
    linear("fc1 256->320", 256, 256, 320)?;
    linear("fc2 320->80", 256, 320, 80)?;
    linear("fc3 80->10", 256, 80, 10)?;
    println!("mnist-net (batch 64)");
    conv("conv1 1->10 5x5 28", 64, 1, 28, 10, 5, false)?;
    pool("maxpool 10x24x24", (64, 10, 24, 24), true)?;
    conv("conv2 10->20 5x5 12", 64, 10, 12, 20, 5, true)?;
    pool("maxpool 20x8x8", (64, 20, 8, 8), true)?;
    linear("fc 320->10", 64, 320, 10)?;
    Ok(())
}
