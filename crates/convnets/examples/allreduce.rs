//! The gradient all-reduce's time per step for registry models (feature `mpi`): each rank
//! sums a buffer of the model's trainable-parameter count (plus the trainer's per-variable
//! flags and four statistics, as `DataParallel` sends it) `ITERS` times; rank 0 prints the
//! mean time per call and the bandwidth it implies.
//!
//! ```sh
//! cargo build --release -p convnets --features mpi --example allreduce
//! mpirun --bind-to none -np 2 target/release/examples/allreduce lenet5 resnet20 resnet50
//! ```

use anyhow::{Context, Result};
use convnets::layers::ParamStore;
use convnets::train::distributed::{Collective, MpiSession};
use convnets::train::Params;
use std::time::Instant;

const ITERS: usize = 50;

fn main() -> Result<()> {
    convnets::runtime::init();
    let session = MpiSession::init().context("starting MPI")?;
    let mut comm = session.world();
    let models: Vec<String> = std::env::args().skip(1).collect();
    for name in &models {
        let info = convnets::zoo::find(name)
            .with_context(|| convnets::zoo::unknown_model_message(name))?;
        let store = ParamStore::new(0, &convnets::candle::Device::Cpu);
        info.build(store.vb())?;
        let params = Params::from(&store);
        let floats = params.num_trainable() + params.trainable().len() + 4;
        let mut buf = vec![1e-3f32; floats];
        for _ in 0..5 {
            comm.all_reduce_sum(&mut buf)?; // warm-up
        }
        let mut total = 0f64;
        for _ in 0..ITERS {
            // Line the ranks up first, so that the time is the transfer, not a wait.
            comm.all_reduce_sum(&mut [0.0])?;
            let t0 = Instant::now();
            comm.all_reduce_sum(&mut buf)?;
            total += t0.elapsed().as_secs_f64();
        }
        if comm.rank() == 0 {
            let ms = 1e3 * total / ITERS as f64;
            println!(
                "{name}: {} parameters, {:.2} MB of f32 per all-reduce, {} ranks: {ms:.3} ms per call ({:.2} GB/s of buffer)",
                params.num_trainable(),
                floats as f64 * 4e-6,
                comm.world_size(),
                floats as f64 * 4e-6 / ms
            );
        }
    }
    Ok(())
}
