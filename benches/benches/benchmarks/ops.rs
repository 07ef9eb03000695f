//! Convolution forward, input gradient and weight gradient at the shapes of the bench models
//! (LeNet-5 at batch 256, MnistNet at 64, SimpleCNN and ResNet-20 at 128): our native kernels
//! (`convnets-kernels`, through their candle ops in `ops::native`) against candle's own ops
//! (the reference). `CONVNETS_ISA=avx512|avx2|portable` picks the kernel path.
//! `cargo bench -p convnets-bench -- ops/`

use candle_core::{Device, Tensor};
use convnets::layers::ops::{native, Conv2dParams};
use convnets_bench::kernels::CONV_SHAPES;
use criterion::Criterion;
use std::hint::black_box;

/// Each convolution pass, native candle op against candle's own.
pub fn conv(c: &mut Criterion) {
    let dev = Device::Cpu;
    for s in CONV_SHAPES {
        let (name, xs, ws, stride, pad) = (s.name, s.input, s.weight, s.stride, s.padding);
        let p = Conv2dParams {
            stride: [stride, stride],
            padding: [pad, pad],
            ..Default::default()
        };
        let out = |n: usize, k: usize| (n + 2 * pad - k) / stride + 1;
        let (oh, ow) = (out(xs[2], ws[2]), out(xs[3], ws[3]));
        let setup = || -> candle_core::Result<(Tensor, Tensor, Tensor, Tensor)> {
            let x = Tensor::rand(-1f32, 1., &xs, &dev)?;
            let w = Tensor::rand(-1f32, 1., &ws, &dev)?;
            let b = Tensor::rand(-1f32, 1., ws[0], &dev)?;
            let dy = Tensor::rand(-1f32, 1., (xs[0], ws[0], oh, ow), &dev)?;
            Ok((x, w, b, dy))
        };
        let Ok((x, w, b, dy)) = setup() else {
            panic!("bench setup failed for {name}")
        };
        let mut g = c.benchmark_group(format!("ops/{name}"));
        g.sample_size(20);
        g.bench_function("fwd/native", |bench| {
            bench.iter(|| black_box(native::conv2d(&x, &w, Some(&b), &p)))
        });
        g.bench_function("fwd/reference", |bench| {
            bench.iter(|| {
                black_box(
                    x.conv2d(&w, pad, stride, 1, 1)
                        .and_then(|y| y.broadcast_add(&b.reshape((1, ws[0], 1, 1))?)),
                )
            })
        });
        g.bench_function("input_grad/native", |bench| {
            bench.iter(|| black_box(native::conv2d_input_grad(&dy, &w, (xs[2], xs[3]), &p)))
        });
        // What candle's Conv2D backward computes for the input.
        // (The output padding makes the transposed convolution's size the input's.)
        let out_pad = xs[2] - ((oh - 1) * stride + ws[2] - 2 * pad);
        g.bench_function("input_grad/reference", |bench| {
            bench.iter(|| black_box(dy.conv_transpose2d(&w, pad, out_pad, stride, 1)))
        });
        g.bench_function("weight_grad/native", |bench| {
            bench.iter(|| black_box(native::conv2d_weight_grad(&x, &dy, (ws[2], ws[3]), &p)))
        });
        // What candle's Conv2D backward computes for the weight (a stride-1 correlation of the
        // input with the output gradient; written for stride 1 only).
        if stride == 1 {
            g.bench_function("weight_grad/reference", |bench| {
                bench.iter(|| {
                    black_box(
                        x.transpose(0, 1)
                            .and_then(|xt| xt.conv2d(&dy.transpose(0, 1)?, pad, 1, 1, 1))
                            .and_then(|g| g.transpose(0, 1)),
                    )
                })
            });
        }
        g.finish();
    }
}

criterion::criterion_group!(benches, conv);
