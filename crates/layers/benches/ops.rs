//! Convolution forward, input gradient and weight gradient at the LeNet-5 (batch 256) and
//! MnistNet (batch 64) shapes: our native kernels against candle's own ops (the reference).
//! `cargo bench -p convnets-layers --bench ops`

use candle_core::{Device, Tensor};
use convnets_layers::ops::{native, Conv2dParams};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

/// `(name, input [b, c, h, w], weight [o, c, kh, kw])`, stride 1, no padding.
const SHAPES: [(&str, [usize; 4], [usize; 4]); 4] = [
    (
        "lenet_conv1_b256_1x28x28_k5_o6",
        [256, 1, 28, 28],
        [6, 1, 5, 5],
    ),
    (
        "lenet_conv2_b256_6x12x12_k5_o16",
        [256, 6, 12, 12],
        [16, 6, 5, 5],
    ),
    (
        "mnistnet_conv1_b64_1x28x28_k5_o10",
        [64, 1, 28, 28],
        [10, 1, 5, 5],
    ),
    (
        "mnistnet_conv2_b64_10x12x12_k5_o20",
        [64, 10, 12, 12],
        [20, 10, 5, 5],
    ),
];

fn conv(c: &mut Criterion) {
    let dev = Device::Cpu;
    let p = Conv2dParams::default();
    for (name, xs, ws) in SHAPES {
        let setup = || -> candle_core::Result<(Tensor, Tensor, Tensor, Tensor)> {
            let x = Tensor::rand(-1f32, 1., &xs, &dev)?;
            let w = Tensor::rand(-1f32, 1., &ws, &dev)?;
            let b = Tensor::rand(-1f32, 1., ws[0], &dev)?;
            let dy = Tensor::rand(
                -1f32,
                1.,
                (xs[0], ws[0], xs[2] - ws[2] + 1, xs[3] - ws[3] + 1),
                &dev,
            )?;
            Ok((x, w, b, dy))
        };
        let Ok((x, w, b, dy)) = setup() else {
            panic!("bench setup failed for {name}")
        };
        let mut g = c.benchmark_group(name);
        g.sample_size(20);
        g.bench_function("fwd/native", |bench| {
            bench.iter(|| black_box(native::conv2d(&x, &w, Some(&b), &p)))
        });
        g.bench_function("fwd/reference", |bench| {
            bench.iter(|| {
                black_box(
                    x.conv2d(&w, 0, 1, 1, 1)
                        .and_then(|y| y.broadcast_add(&b.reshape((1, ws[0], 1, 1))?)),
                )
            })
        });
        g.bench_function("input_grad/native", |bench| {
            bench.iter(|| black_box(native::conv2d_input_grad(&dy, &w, (xs[2], xs[3]), &p)))
        });
        // What candle's Conv2D backward computes for the input.
        g.bench_function("input_grad/reference", |bench| {
            bench.iter(|| black_box(dy.conv_transpose2d(&w, 0, 0, 1, 1)))
        });
        g.bench_function("weight_grad/native", |bench| {
            bench.iter(|| black_box(native::conv2d_weight_grad(&x, &dy, (ws[2], ws[3]), &p)))
        });
        // What candle's Conv2D backward computes for the weight.
        g.bench_function("weight_grad/reference", |bench| {
            bench.iter(|| {
                black_box(
                    x.transpose(0, 1)
                        .and_then(|xt| xt.conv2d(&dy.transpose(0, 1)?, 0, 1, 1, 1))
                        .and_then(|g| g.transpose(0, 1)),
                )
            })
        });
        g.finish();
    }
}

criterion_group!(benches, conv);
criterion_main!(benches);
