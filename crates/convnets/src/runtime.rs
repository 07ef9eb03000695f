//! The process setup the `convnets` binary uses, for programs of your own: [`init`].
//!
//! candle 0.11's element-wise ops run on their own spinning thread pool, which fights with
//! rayon (our kernels) on small machines: the LeNet-5 step is 2.6x slower with both. The CLI
//! keeps candle's pool at one thread (`CANDLE_NUM_THREADS=1`) unless the user chose otherwise;
//! our kernels use rayon's pool (`RAYON_NUM_THREADS`). Together with the mimalloc allocator
//! (feature `mimalloc`, see `convnets::allocator`), this is all a library program needs to
//! train as fast as `cargo xtask train`:
//!
//! ```no_run
//! # #[cfg(feature = "mimalloc")]
//! #[global_allocator]
//! static GLOBAL: convnets::allocator::MiMalloc = convnets::allocator::MiMalloc;
//!
//! fn main() {
//!     convnets::runtime::init();
//!     // build and train ...
//! }
//! ```

/// Keeps candle's element-wise thread pool to one thread unless `CANDLE_NUM_THREADS` is set.
/// Call it first in `main`, before any other thread starts and before the first tensor op.
pub fn tune_threads() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Everything the CLI sets up: [`tune_threads`], and with the `mimalloc` feature, mimalloc
/// keeping freed memory (`convnets::allocator::keep_freed_memory`; the allocator itself is
/// chosen with `#[global_allocator]` in your binary).
pub fn init() {
    tune_threads();
    #[cfg(feature = "mimalloc")]
    crate::allocator::keep_freed_memory();
}

/// The number of ranks of an MPI job on this machine, from the launcher's environment
/// (`OMPI_COMM_WORLD_LOCAL_SIZE` of Open MPI, `MPI_LOCALNRANKS` of MPICH, or Slurm's
/// `SLURM_NTASKS_PER_NODE`); `None` outside such a job.
pub fn local_ranks() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "MPI_LOCALNRANKS",
        "SLURM_NTASKS_PER_NODE",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok()?.trim().parse::<usize>().ok())
    .filter(|&n| n > 0)
}

/// For one of several ranks on this machine (data-parallel training under `mpirun` or
/// `srun`): unless `RAYON_NUM_THREADS` is set, gives this rank's rayon pool (our kernels) its
/// share of the cores it may run on, `available cores / ranks on this machine` (at least one),
/// so that the ranks do not oversubscribe the machine. Returns the threads chosen, `None` when
/// it left the setting alone. Call it first in `main`, before any other thread starts.
///
/// Launch the ranks unbound (`mpirun --bind-to none`): Open MPI binds each of one or two ranks
/// to a single core by default, and a rank bound to one core gets one thread here.
pub fn tune_threads_for_local_ranks() -> Option<usize> {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return None;
    }
    let ranks = local_ranks()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / ranks).max(1);
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    Some(threads)
}
