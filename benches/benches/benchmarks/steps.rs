//! One training step and one inference batch of each recipe, for our kernels and candle's
//! own. The end-to-end table against PyTorch is `cargo xtask bench`.

use candle_core::{DType, Device, Tensor};
use convnets::layers::ops::{set_kernels, Kernels};
use convnets::layers::ParamStore;
use convnets::train::{cross_entropy, Sgd};
use convnets_bench::recipes;
use criterion::{Criterion, Throughput};

/// Training step and inference of every recipe, native and candle kernels.
pub fn steps(c: &mut Criterion) {
    for r in recipes() {
        for (kname, kernels) in [("native", Kernels::Native), ("candle", Kernels::Reference)] {
            set_kernels(kernels);
            let store = ParamStore::new(0, &Device::Cpu);
            let Ok(model) = convnets::zoo::build(r.model, store.vb()) else {
                continue;
            };
            let Ok(mut opt) = Sgd::new(store.trainable_vars(), r.sgd) else {
                continue;
            };
            let Some([ch, h, w]) = convnets::zoo::find(r.model).map(|i| i.input) else {
                continue;
            };
            let x =
                Tensor::rand(0f32, 1f32, (r.batch_size, ch, h, w), &Device::Cpu).expect("input");
            let y = Tensor::zeros(r.batch_size, DType::U32, &Device::Cpu).expect("labels");
            let mut g = c.benchmark_group(format!("steps/{}_b{}", r.name, r.batch_size));
            g.throughput(Throughput::Elements(r.batch_size as u64));
            g.bench_function(format!("train_step_{kname}"), |b| {
                b.iter(|| {
                    let loss = cross_entropy(&model.forward_t(&x, true).expect("forward"), &y)
                        .expect("loss");
                    opt.step(&loss.backward().expect("backward")).expect("step");
                })
            });
            g.bench_function(format!("infer_{kname}"), |b| {
                b.iter(|| model.forward_t(&x, false).expect("forward"))
            });
            g.finish();
        }
    }
    set_kernels(Kernels::Native);
}

criterion::criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = steps
}
