//! Timings, not assertions: a LeNet-5 training step (batch 256) and its convolutions with the
//! native and the reference kernels. Run optimised:
//! `cargo test -p convnets-layers --release --test ops_timing -- --ignored --nocapture`.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var, D};
use convnets_layers::ops::{self, native, set_kernels, Conv2dParams, Kernels, Pool2dParams};
use std::time::Instant;

/// Fastest milliseconds of `f` over `n` runs after 3 warm-up runs (the minimum, since the
/// machine is shared and other work only ever adds time).
fn time_ms(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[0])
}

fn var(shape: &[usize], dev: &Device) -> Result<Var> {
    let fan_in: usize = shape[1..].iter().product();
    let bound = 1.0 / (fan_in as f64).sqrt();
    Ok(Var::from_tensor(&Tensor::rand(
        -bound as f32,
        bound as f32,
        shape,
        dev,
    )?)?)
}

/// LeNet-5 as in the issue: Conv2d(1,6,5) -> AvgPool2d(2,2) -> Conv2d(6,16,5) -> AvgPool2d(2,2)
/// -> Linear(256,320)+ReLU -> Linear(320,80)+ReLU -> Linear(80,10), cross-entropy loss.
struct LeNet {
    params: Vec<Var>,
}

impl LeNet {
    fn new(dev: &Device) -> Result<Self> {
        let mut params = vec![];
        for (w, b) in [
            (vec![6, 1, 5, 5], 6),
            (vec![16, 6, 5, 5], 16),
            (vec![320, 256], 320),
            (vec![80, 320], 80),
            (vec![10, 80], 10),
        ] {
            params.push(var(&w, dev)?);
            params.push(Var::from_tensor(&Tensor::zeros(b, DType::F32, dev)?)?);
        }
        Ok(Self { params })
    }

    fn loss(&self, x: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let p = &self.params;
        let conv = Conv2dParams::default();
        let pool = Pool2dParams::square(2, 2);
        let x = ops::conv2d(x, p[0].as_tensor(), Some(p[1].as_tensor()), &conv)?; // [b, 6, 24, 24]
        let x = ops::avg_pool2d(&x, &pool)?; // [b, 6, 12, 12]
        let x = ops::conv2d(&x, p[2].as_tensor(), Some(p[3].as_tensor()), &conv)?; // [b, 16, 8, 8]
        let x = ops::avg_pool2d(&x, &pool)?.flatten_from(1)?; // [b, 256]
        let lin = |x: &Tensor, i: usize| {
            x.matmul(&p[i].as_tensor().t()?)?
                .broadcast_add(p[i + 1].as_tensor())
        };
        let x = lin(&x, 4)?.relu()?; // [b, 320]
        let x = lin(&x, 6)?.relu()?; // [b, 80]
        let logits = lin(&x, 8)?; // [b, 10]
        Ok(candle_nn::loss::cross_entropy(&logits, labels)?)
    }

    /// Forward, backward and a plain SGD update.
    fn step(&self, x: &Tensor, labels: &Tensor) -> Result<()> {
        let grads = self.loss(x, labels)?.backward()?;
        for v in &self.params {
            if let Some(g) = grads.get(v.as_tensor()) {
                v.set(&(v.as_tensor() - (g * 0.01)?)?)?;
            }
        }
        Ok(())
    }
}

#[test]
#[ignore = "timing; run with --release --ignored --nocapture"]
fn lenet_step_timing() -> Result<()> {
    let dev = Device::Cpu;
    let b = 256;
    let x = Tensor::rand(0f32, 1., (b, 1, 28, 28), &dev)?;
    let labels = Tensor::from_vec((0..b as u32).map(|i| i % 10).collect(), b, &dev)?;
    let net = LeNet::new(&dev)?;
    println!("threads: {}", rayon::current_num_threads());
    // CONVNETS_KERNELS=native|reference times just one (for a profiler).
    let which = match std::env::var("CONVNETS_KERNELS").as_deref() {
        Ok("native") => vec![Kernels::Native],
        Ok("reference") => vec![Kernels::Reference],
        _ => vec![Kernels::Reference, Kernels::Native],
    };
    for k in which {
        set_kernels(k);
        let fwd = time_ms(10, || net.loss(&x, &labels).map(|_| ()))?;
        let step = time_ms(20, || net.step(&x, &labels))?;
        println!(
            "LeNet-5 batch {b} {k:?}: forward {fwd:.2} ms, train step {step:.2} ms ({:.0} images/s)",
            b as f64 / step * 1e3
        );
    }
    set_kernels(Kernels::Native);
    Ok(())
}

#[test]
#[ignore = "timing; run with --release --ignored --nocapture"]
fn conv_op_timing() -> Result<()> {
    let dev = Device::Cpu;
    let p = Conv2dParams::default();
    for (name, xs, ws) in [
        ("lenet conv1", [256, 1, 28, 28], [6, 1, 5, 5]),
        ("lenet conv2", [256, 6, 12, 12], [16, 6, 5, 5]),
        ("mnistnet conv1", [64, 1, 28, 28], [10, 1, 5, 5]),
        ("mnistnet conv2", [64, 10, 12, 12], [20, 10, 5, 5]),
    ] {
        let x = Tensor::rand(-1f32, 1., &xs, &dev)?;
        let w = Tensor::rand(-1f32, 1., &ws, &dev)?;
        let b = Tensor::rand(-1f32, 1., ws[0], &dev)?;
        let y = native::conv2d(&x, &w, Some(&b), &p)?;
        let dy = Tensor::rand(-1f32, 1., y.shape(), &dev)?;
        let hw = (xs[2], xs[3]);
        let fwd = time_ms(20, || Ok(native::conv2d(&x, &w, Some(&b), &p).map(|_| ())?))?;
        let dx = time_ms(20, || {
            Ok(native::conv2d_input_grad(&dy, &w, hw, &p).map(|_| ())?)
        })?;
        let dw = time_ms(20, || {
            Ok(native::conv2d_weight_grad(&x, &dy, (ws[2], ws[3]), &p).map(|_| ())?)
        })?;
        let rfwd = time_ms(5, || Ok(x.conv2d(&w, 0, 1, 1, 1).map(|_| ())?))?;
        let rdx = time_ms(5, || Ok(dy.conv_transpose2d(&w, 0, 0, 1, 1).map(|_| ())?))?;
        let rdw = time_ms(5, || {
            let g = x
                .transpose(0, 1)?
                .conv2d(&dy.transpose(0, 1)?, 0, 1, 1, 1)?
                .transpose(0, 1)?;
            let _ = g.sum(D::Minus1)?;
            Ok(())
        })?;
        println!(
            "{name:15} native fwd {fwd:6.3} dx {dx:6.3} dw {dw:6.3} ms | candle fwd {rfwd:6.3} dx {rdx:7.3} dw {rdw:7.3} ms"
        );
    }
    Ok(())
}

#[test]
#[ignore = "timing; run with --release --ignored --nocapture"]
fn pool_op_timing() -> Result<()> {
    let dev = Device::Cpu;
    let p = Pool2dParams::square(2, 2);
    for (name, xs) in [
        ("lenet pool1", [256, 6, 24, 24]),
        ("lenet pool2", [256, 16, 8, 8]),
        ("mnistnet pool1", [64, 10, 24, 24]),
    ] {
        let x = Var::from_tensor(&Tensor::rand(-1f32, 1., &xs, &dev)?)?;
        let base = time_ms(20, || {
            let g = x.as_tensor().sum_all()?.backward()?;
            let _ = g.get(x.as_tensor());
            Ok(())
        })?;
        println!("{name:15} candle sum + bwd of the input alone {base:6.3} ms");
        for (kind, f) in [
            ("avg", native::avg_pool2d as PoolFn),
            ("max", native::max_pool2d as PoolFn),
        ] {
            let fwd = time_ms(20, || Ok(f(x.as_tensor(), &p).map(|_| ())?))?;
            let step = time_ms(20, || {
                let g = f(x.as_tensor(), &p)?.sum_all()?.backward()?;
                let _ = g.get(x.as_tensor());
                Ok(())
            })?;
            println!("{name:15} {kind} native fwd {fwd:6.3} ms, fwd + sum + bwd {step:6.3} ms");
        }
    }
    Ok(())
}

type PoolFn = fn(&Tensor, &Pool2dParams) -> candle_core::Result<Tensor>;
