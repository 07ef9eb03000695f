//! Where a training step's time goes: forward, loss, backward and optimizer step of each
//! recipe timed separately (milliseconds per step, medians over the timed steps; the mean
//! step, which `cargo xtask bench` reports, follows).
//!
//! ```text
//! RAYON_NUM_THREADS=2 CANDLE_NUM_THREADS=1 cargo run --release -p convnets-bench \
//!     --example step_profile -- [CASE ...] [--steps N] [--reference]
//! ```
//! Combine with `perf record` for the kernels inside each phase.

/// mimalloc, keeping freed memory: see [`convnets::allocator`].
#[global_allocator]
static GLOBAL: convnets::allocator::MiMalloc = convnets::allocator::MiMalloc;

use anyhow::{Context, Result};
use candle_core::Device;
use convnets::layers::ops::{set_kernels, Kernels};
use convnets::layers::ParamStore;
use convnets::train::{cross_entropy, Sgd};
use convnets_bench::{recipes, train_batcher};
use std::time::Instant;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    convnets::allocator::keep_freed_memory();
    let mut cases = Vec::new();
    let mut steps = 100;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--steps" => steps = it.next().context("--steps N")?.parse()?,
            "--reference" => set_kernels(Kernels::Reference),
            _ => cases.push(a),
        }
    }
    let data_dir = std::env::var_os("CONVNETS_DATA").map(std::path::PathBuf::from);
    for r in recipes()
        .into_iter()
        .filter(|r| cases.is_empty() || cases.iter().any(|c| c == r.name))
    {
        let train = train_batcher(&r, data_dir.as_deref())?;
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
        let m: Vec<f64> = t.iter_mut().map(|v| median(v)).collect();
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
