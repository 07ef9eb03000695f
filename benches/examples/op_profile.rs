//! Times the native kernels (`convnets-kernels`, through their candle ops) of each layer of
//! the LeNet-5 and MnistNet recipes in isolation (milliseconds per call, median of repeated
//! calls), to go with `step_profile`.
//!
//! ```text
//! RAYON_NUM_THREADS=2 CANDLE_NUM_THREADS=1 cargo run --release -p convnets-bench --example op_profile [mnist] [cifar]
//! ```

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use convnets::layers::ops::{self, native, Conv2dParams, Pool2dParams};
use std::time::Instant;

fn time(name: &str, mut f: impl FnMut() -> Result<Tensor>) -> Result<()> {
    for _ in 0..5 {
        f()?;
    }
    let mut v: Vec<f64> = (0..40)
        .map(|_| {
            let t = Instant::now();
            f().map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    v.sort_by(|a, b| a.total_cmp(b));
    println!("  {name:<34} {:>8.3} ms", v[v.len() / 2]);
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

fn main() -> Result<()> {
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wants = |s: &str| only.is_empty() || only.iter().any(|o| o == s);
    if wants("cifar") {
        cifar()?;
    }
    if wants("mnist") {
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
