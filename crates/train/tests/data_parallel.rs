//! Data parallelism without MPI: ranks as threads of one process (`local_group`), each with
//! its own model, optimizer and share of every batch. N ranks × batch B end with the weights of
//! one process × batch N·B — uneven last batches and a rank with an empty share included — and
//! every rank with the same weights. Runs everywhere (the MPI launch is tested in
//! `crates/cli/tests/distributed.rs`). The gradients' device path (a [`TensorCollective`], as
//! NCCL on GPUs) is checked here on CPU tensors, and on a GPU (feature `nccl`, ignored
//! without one) as a world of one rank against the single process.

use anyhow::Result;
use candle_core::{Device, ModuleT, Tensor};
use convnets_data::Batcher;
use convnets_layers::{conv2d, linear, Conv2dConfig, ParamStore};
use convnets_train::distributed::{
    local_group, DataParallel, DistributedError, LocalCollective, ShardedBatches, TensorCollective,
};
use convnets_train::optim::{AdamWConfig, OptimizerConfig, SgdConfig};
use convnets_train::{Params, TrainError, Trainer};
use std::collections::BTreeMap;
use std::sync::Arc;

struct Net {
    conv: convnets_layers::Conv2d,
    fc: convnets_layers::Linear,
}

impl Net {
    fn new(store: &ParamStore) -> Result<Self> {
        let vb = store.vb();
        Ok(Self {
            conv: conv2d(1, 4, 3, Conv2dConfig::default(), vb.pp("conv"))?,
            fc: linear(4 * 6 * 6, 3, vb.pp("fc"))?,
        })
    }
}

impl ModuleT for Net {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let x = self.conv.forward_t(x, train)?.tanh()?;
        self.fc.forward_t(&x.flatten_from(1)?, train)
    }
}

/// `n` samples of 8x8 images in 3 classes, batches of `batch`, shuffled with seed 3, on `dev`.
fn data_on(dev: &Device, n: usize, batch: usize) -> Result<Batcher> {
    Ok(data(n, batch)?.with_device(dev.clone()))
}

/// `n` samples of 8x8 images in 3 classes, batches of `batch`, shuffled with seed 3.
fn data(n: usize, batch: usize) -> Result<Batcher> {
    let images: Vec<f32> = (0..n * 64)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let labels: Vec<u32> = (0..n).map(|i| (i * 7 % 3) as u32).collect();
    Ok(Batcher::new(
        Arc::new(images),
        Arc::new(labels),
        [1, 8, 8],
        batch,
        Some(3),
        false,
    )?)
}

fn sgd(params: &Params) -> Result<Box<dyn convnets_train::Optim>> {
    Ok(OptimizerConfig::Sgd(SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        ..Default::default()
    })
    .build(params.trainable())?)
}

/// How a test builds its optimizer.
type Opt = fn(&Params) -> Result<Box<dyn convnets_train::Optim>>;

/// AdamW: per-parameter state (moments) over the averaged gradients, and a decoupled decay.
fn adamw(params: &Params) -> Result<Box<dyn convnets_train::Optim>> {
    Ok(OptimizerConfig::AdamW(AdamWConfig {
        lr: 0.01,
        weight_decay: 0.05,
        ..Default::default()
    })
    .build(params.trainable())?)
}

/// The weights after `epochs` epochs of one process with batch `batch`.
fn single(n: usize, batch: usize, epochs: usize) -> Result<BTreeMap<String, Vec<f32>>> {
    single_on(&Device::Cpu, n, batch, epochs, sgd)
}

/// [`single`] on `dev`.
fn single_on(
    dev: &Device,
    n: usize,
    batch: usize,
    epochs: usize,
    opt: Opt,
) -> Result<BTreeMap<String, Vec<f32>>> {
    let store = ParamStore::new(0, dev);
    let net = Net::new(&store)?;
    let params = Params::from(&store);
    let optim = opt(&params)?;
    Trainer::new(&net, params.clone(), optim)
        .epochs(epochs)
        .fit(&data_on(dev, n, batch)?)?;
    weights(&params)
}

fn weights(params: &Params) -> Result<BTreeMap<String, Vec<f32>>> {
    params
        .named()
        .iter()
        .map(|(n, v)| Ok((n.clone(), v.flatten_all()?.to_vec1::<f32>()?)))
        .collect()
}

/// Each rank's weights after `epochs` epochs on `world` threads with `batch` images per rank.
/// Rank r > 0 starts from another seed: rank 0's broadcast must overwrite its weights.
fn parallel(
    n: usize,
    batch: usize,
    epochs: usize,
    world: usize,
) -> Result<Vec<BTreeMap<String, Vec<f32>>>> {
    parallel_with(n, batch, epochs, world, false, sgd)
}

/// [`parallel`]; with `tensors`, the gradients go through a [`TensorCollective`]
/// ([`ThroughTensors`], the device path on CPU tensors).
fn parallel_with(
    n: usize,
    batch: usize,
    epochs: usize,
    world: usize,
    tensors: bool,
    opt: Opt,
) -> Result<Vec<BTreeMap<String, Vec<f32>>>> {
    let group = local_group(world);
    let mut second = local_group(world).into_iter();
    std::thread::scope(|s| {
        let handles: Vec<_> = group
            .into_iter()
            .enumerate()
            .map(|(rank, comm)| {
                let through = second.next().filter(|_| tensors);
                s.spawn(move || -> Result<BTreeMap<String, Vec<f32>>> {
                    let store = ParamStore::new(rank as u64, &Device::Cpu);
                    let net = Net::new(&store)?;
                    let params = Params::from(&store);
                    let optim = opt(&params)?;
                    let global = data(n, batch * world)?;
                    let shard = ShardedBatches::new(&global, rank, world)?;
                    let mut dp = DataParallel::new(Box::new(comm));
                    if let Some(c) = through {
                        dp = dp.with_tensor_collective(Box::new(ThroughTensors(c)));
                    }
                    let report = Trainer::new(&net, params.clone(), optim)
                        .epochs(epochs)
                        .data_parallel(dp)
                        .fit(&shard)?;
                    // The loop counts the global batches' samples.
                    let m = &report.history[epochs - 1];
                    assert!(m.images_per_second > 0.0);
                    weights(&params)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("a rank panicked"))?)
            .collect()
    })
}

fn max_diff(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> f32 {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    a.iter()
        .flat_map(|(k, x)| x.iter().zip(&b[k]).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}

/// The tolerance: the ranks sum their share's per-sample gradients, scale by their sample
/// count and the all-reduce adds the ranks' sums, where one process sums all samples at once:
/// the same terms in another order, a relative rounding difference of a few 2^-24 per step,
/// which the updates carry forward. 1e-5 on weights of order 0.1–1 after a dozen steps leaves
/// a margin of ten over what we measure (~1e-6) and is far below any real difference (a wrong
/// weighting or a missed sample changes weights by 1e-3 and more).
const TOL: f32 = 1e-5;

#[test]
fn two_ranks_equal_one_process_with_the_double_batch() -> Result<()> {
    // 37 samples, global batch 16: 16, 16, 5 (the last split 2 / 3); 2 epochs, 6 steps.
    let one = single(37, 16, 2)?;
    let ranks = parallel(37, 8, 2, 2)?;
    let d = max_diff(&one, &ranks[0]);
    assert!(d <= TOL, "2 ranks vs 1 process: max |Δw| = {d}");
    assert_eq!(ranks[0], ranks[1], "the ranks' weights differ");
    // And training changed the weights (not a vacuous comparison).
    let init = {
        let store = ParamStore::new(0, &Device::Cpu);
        Net::new(&store)?;
        weights(&Params::from(&store))?
    };
    assert!(max_diff(&init, &one) > 1e-3);
    Ok(())
}

/// The same with AdamW, through the host and the device path: its moments see the averaged
/// gradients (views into the all-reduced buffer) exactly as one process's gradients.
#[test]
fn two_ranks_equal_one_process_with_adamw() -> Result<()> {
    let one = single_on(&Device::Cpu, 37, 16, 2, adamw)?;
    for tensors in [false, true] {
        let ranks = parallel_with(37, 8, 2, 2, tensors, adamw)?;
        let d = max_diff(&one, &ranks[0]);
        assert!(
            d <= TOL,
            "AdamW, 2 ranks vs 1 process (device path: {tensors}): {d}"
        );
        assert_eq!(ranks[0], ranks[1], "the ranks' weights differ");
    }
    Ok(())
}

/// A [`TensorCollective`] on CPU tensors over a local group: the path the gradients take
/// through NCCL, without a GPU.
struct ThroughTensors(LocalCollective);

impl TensorCollective for ThroughTensors {
    fn name(&self) -> &'static str {
        "tensors"
    }
    fn device(&self) -> &Device {
        &Device::Cpu
    }
    fn all_reduce_sum(&mut self, flat: Tensor) -> convnets_train::Result<Tensor> {
        use convnets_train::distributed::Collective;
        let mut buf = flat.to_vec1::<f32>()?;
        self.0.all_reduce_sum(&mut buf)?;
        Ok(Tensor::from_vec(buf, flat.elem_count(), &Device::Cpu)?)
    }
}

#[test]
fn the_device_path_gives_the_host_paths_weights_bit_for_bit() -> Result<()> {
    // The same 2 x 8 run with the gradients packed, summed and split as tensors (as on a
    // GPU with NCCL) and through host memory (as over MPI): the same operations in the same
    // order, so the same bits.
    let host = parallel_with(37, 8, 2, 2, false, sgd)?;
    let tensors = parallel_with(37, 8, 2, 2, true, sgd)?;
    assert_eq!(host, tensors);
    Ok(())
}

/// A world of one rank over NCCL on GPU 0 (the check that fits one GPU: NCCL refuses two
/// ranks on one GPU) ends with the weights of the same run without data parallelism; the
/// control messages go through a local group of one. Needs the feature `nccl`, a GPU and
/// libnccl: `cargo test -p convnets-train --features nccl --test data_parallel -- --ignored`.
#[cfg(feature = "nccl")]
#[test]
#[ignore = "needs a CUDA GPU and NCCL"]
fn nccl_world_of_one_equals_the_single_process() -> Result<()> {
    let gpu = Device::new_cuda(0)?;
    let one = single_on(&gpu, 37, 16, 2, sgd)?;
    let mut dp = DataParallel::new(Box::new(local_group(1).remove(0)));
    let dev = dp.open_device("cuda")?;
    assert!(dev.is_cuda());
    assert_eq!(dp.gradient_backend(), "NCCL");
    let store = ParamStore::new(0, &dev);
    let net = Net::new(&store)?;
    let params = Params::from(&store);
    let optim = sgd(&params)?;
    let global = data_on(&dev, 37, 16)?;
    let shard = ShardedBatches::new(&global, 0, 1)?;
    let mut trainer = Trainer::new(&net, params.clone(), optim)
        .epochs(2)
        .data_parallel(dp);
    trainer.fit(&shard)?;
    let calls = trainer.parallel().map_or(0, |dp| dp.reduce_times().calls);
    assert_eq!(
        calls, 6,
        "one NCCL all-reduce per step (3 batches x 2 epochs)"
    );
    let nccl = weights(&params)?;
    // (g · n) / n and an all-reduce of one rank: the same weights up to rounding.
    let d = max_diff(&one, &nccl);
    assert!(d <= TOL, "NCCL world of 1 vs 1 process: max |Δw| = {d}");
    Ok(())
}

#[test]
fn three_ranks_with_an_empty_share_equal_one_process() -> Result<()> {
    // 31 samples, global batch 15: 15, 15, 1 — the last batch gives ranks 0 and 1 nothing.
    let one = single(31, 15, 1)?;
    let ranks = parallel(31, 5, 1, 3)?;
    for (r, w) in ranks.iter().enumerate() {
        let d = max_diff(&one, w);
        assert!(d <= TOL, "rank {r} vs 1 process: max |Δw| = {d}");
    }
    assert_eq!(ranks[0], ranks[2]);
    Ok(())
}

#[test]
fn ranks_that_disagree_stop_with_the_rank_named() -> Result<()> {
    // Rank 1 trains a different number of epochs: the start-up check catches it on both.
    let group = local_group(2);
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = group
            .into_iter()
            .enumerate()
            .map(|(rank, comm)| {
                s.spawn(move || -> Result<String> {
                    let store = ParamStore::new(0, &Device::Cpu);
                    let net = Net::new(&store)?;
                    let params = Params::from(&store);
                    let optim = sgd(&params)?;
                    let global = data(20, 8)?;
                    let shard = ShardedBatches::new(&global, rank, 2)?;
                    let r = Trainer::new(&net, params, optim)
                        .epochs(1 + rank)
                        .data_parallel(DataParallel::new(Box::new(comm)))
                        .fit(&shard);
                    match r {
                        Err(TrainError::Distributed(e)) => {
                            assert!(matches!(*e, DistributedError::Mismatch { rank: 1, .. }));
                            Ok(e.to_string())
                        }
                        other => anyhow::bail!("expected a mismatch, got {other:?}"),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("a rank panicked"))?)
            .collect::<Result<Vec<_>>>()
    })?;
    for e in errors {
        assert!(
            e.starts_with("rank 1 disagrees with rank 0 on the configuration"),
            "{e}"
        );
    }
    Ok(())
}
