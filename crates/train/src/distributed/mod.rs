//! Synchronous data parallelism: several processes (ranks) train one model together, each on
//! its own slice of every batch, and apply the same averaged gradient at every step.
//!
//! The pieces, from the bottom up:
//!
//! - [`Collective`]: the four collective operations the trainer needs (sum all-reduce,
//!   broadcast from rank 0, all-gather of a hash, broadcast of bytes), as a trait object.
//!   [`Mpi`] (feature `mpi`) implements it over MPI's world communicator; [`local_group`]
//!   implements it between threads of one process (tests, and a check of the logic without
//!   MPI).
//! - [`TensorCollective`]: a sum all-reduce of one flat `f32` tensor where it lives, for the
//!   gradients of GPU runs. [`Nccl`] (feature `nccl`) implements it with NCCL on the rank's
//!   GPU; [`DataParallel::open_device`] builds it (rank 0 creates NCCL's unique id and sends
//!   its bytes to the others over the [`Collective`], as Horovod does). The [`Collective`]
//!   keeps the control messages (the start-up comparison, the broadcasts, the stop flag).
//! - [`DataParallel`]: what [`Trainer`](crate::Trainer) calls. At the start of `fit` the ranks
//!   compare a hash of the run's configuration, the parameters' names and shapes and the
//!   position (a mismatch is [`DistributedError::Mismatch`] on every rank), and rank 0
//!   broadcasts every parameter and buffer. At every step, between the backward pass and the
//!   optimizer step, each rank multiplies its gradients by its sample count and flattens them
//!   into one `f32` buffer with its loss sum, correct count and stop flag; one all-reduce sums
//!   it, and every rank divides by the total sample count: the mean gradient over the global
//!   batch, weighted correctly when the last batch splits unevenly (a rank may even get no
//!   sample). After every epoch rank 0 broadcasts the buffers (batch norm's running
//!   statistics) and the ranks check that their parameters are bit for bit the same.
//!   With a [`TensorCollective`] the flat buffer is built, all-reduced and split on the
//!   device (one call per step; only the flags and statistics come back to the host).
//! - [`ShardedBatches`]: the sampler. With a [`Batcher`] of batch size `B × world` it gives rank
//!   `r` the `r`-th contiguous slice of every global batch, so the ranks together see exactly
//!   the batches a single process with batch size `B × world` sees.
//!
//! Batch norm uses each rank's own batch statistics in the forward pass (as PyTorch's
//! `DistributedDataParallel` without `SyncBatchNorm`): with `B` images per rank the
//! normalisation is that of batch size `B`, not `B × world`. The running statistics rank 0
//! accumulated are broadcast after every epoch (before evaluation and the checkpoint), so
//! every rank evaluates and saves the same model. Dropout draws its masks from the same seeded
//! generator on every rank.
//!
//! A rank that dies: under `mpirun`, Open MPI notices the dead process and kills the others
//! (`mpirun noticed that process rank 1 … exited on signal 9 (Killed)`, exit status 137 — see
//! the README). A rank that hangs without dying (stopped, deadlocked, a lost node under a
//! launcher that does not notice) would block the others in the all-reduce forever;
//! [`DataParallel::with_timeout`] starts a watchdog thread that ends the process with an error
//! message when one collective operation waits longer than the timeout. On GPUs the watchdog
//! also covers the NCCL set-up and each step's NCCL all-reduce (up to the read-back of its
//! statistics), which would otherwise wait forever for a dead peer.

use crate::trainer::BatchSource;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use convnets_data::{Batch, Batcher};
use std::ops::Range;
use std::sync::{Arc, Barrier, Mutex, Weak};
use std::time::{Duration, Instant};

/// What goes wrong between ranks.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// The ranks disagree on something that must be the same everywhere.
    #[error("rank {rank} disagrees with rank 0 on {what} (hash {ours:#018x}, rank 0: {root:#018x}): every rank must run the same configuration, model, data set and checkpoint")]
    Mismatch {
        /// The first rank that differs from rank 0.
        rank: usize,
        /// What was compared.
        what: String,
        /// That rank's hash.
        ours: u64,
        /// Rank 0's hash.
        root: u64,
    },
    /// A buffer is longer than one MPI call carries (`i32::MAX` elements).
    #[error(
        "{what}: {len} elements are more than one MPI call carries ({})",
        i32::MAX
    )]
    TooLarge {
        /// The buffer.
        what: String,
        /// Its length.
        len: usize,
    },
    /// MPI could not be started.
    #[error("MPI: {0}")]
    Init(String),
    /// The ranks' buffers or roles do not fit together (a bug, or ranks running different code).
    #[error("collective `{op}` on rank {rank}: {what}")]
    Protocol {
        /// The operation.
        op: &'static str,
        /// The rank that noticed.
        rank: usize,
        /// What did not fit.
        what: String,
    },
    /// A run is resumed on another number of ranks than it was trained on.
    #[error("the run was trained on {run} rank(s) but this job has {now}: the global batch would change; resume it with `mpirun -np {run}`")]
    WorldSize {
        /// Ranks of the run (its configuration).
        run: usize,
        /// Ranks of this job.
        now: usize,
    },
    /// A launcher variable naming the local rank holds no number.
    #[error("{var}={value:?}: expected the process's local rank (a number)")]
    LocalRank {
        /// The environment variable.
        var: &'static str,
        /// What it holds.
        value: String,
    },
    /// A GPU run of several ranks whose launcher did not say which rank is which on its node.
    #[error("rank {rank} of {world}: none of {} is set, so the rank cannot pick its GPU; start the job with mpirun or srun", LOCAL_RANK_VARS.join(", "))]
    NoLocalRank {
        /// This rank.
        rank: usize,
        /// The number of ranks.
        world: usize,
    },
    /// A rank finds no GPU of its own.
    #[error("rank {rank} (local rank {local_rank}) has no GPU: {why}; start at most one rank per GPU on each node (`mpirun -np 4` on a node with 4 GPUs)")]
    NoGpu {
        /// This rank.
        rank: usize,
        /// Its index among the ranks of its node.
        local_rank: usize,
        /// What was found.
        why: String,
    },
    /// An NCCL call (or the CUDA call that prepares it) failed.
    #[error("NCCL: {op} failed on rank {rank} ({device}): {result}")]
    Nccl {
        /// The call.
        op: &'static str,
        /// This rank.
        rank: usize,
        /// The rank's device (`cuda:1`).
        device: String,
        /// NCCL's result code (`ncclInvalidUsage`) or the CUDA error, with a hint.
        result: String,
    },
}

impl From<DistributedError> for crate::TrainError {
    fn from(e: DistributedError) -> Self {
        crate::TrainError::Distributed(Box::new(e))
    }
}

type DResult<T> = std::result::Result<T, DistributedError>;

/// The collective operations data parallelism needs. Every rank calls the same operations in
/// the same order with buffers of the same length; each call returns when every rank has made
/// it. Not `Send`: MPI is called from the thread that initialised it.
pub trait Collective {
    /// This process's rank, `0..world_size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn world_size(&self) -> usize;
    /// Replaces `buf` by the element-wise sum of every rank's `buf`.
    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> DResult<()>;
    /// Replaces `buf` on every rank by rank 0's `buf`.
    fn broadcast(&mut self, buf: &mut [f64]) -> DResult<()>;
    /// Rank 0's `bytes`, on every rank (the other ranks' `bytes` are ignored).
    fn broadcast_bytes(&mut self, bytes: Vec<u8>) -> DResult<Vec<u8>>;
    /// Every rank's `value`, in rank order.
    fn all_gather(&mut self, value: u64) -> DResult<Vec<u64>>;
    /// The engine, for messages (`MPI`).
    fn name(&self) -> &'static str {
        "the collective"
    }
}

/// A sum all-reduce of one flat tensor where it lives, without a copy to host memory: what
/// [`DataParallel::reduce_step`] sends the gradients through when it has one
/// ([`DataParallel::with_tensor_collective`]). [`Nccl`] (feature `nccl`) implements it on a
/// GPU. Like a [`Collective`]: every rank calls it at the same step with a tensor of the same
/// length.
pub trait TensorCollective {
    /// The engine, for messages (`NCCL`).
    fn name(&self) -> &'static str;
    /// The device the tensors must live on.
    fn device(&self) -> &Device;
    /// The element-wise sum of every rank's `flat` (a contiguous 1-D `f32` tensor on
    /// [`device`](Self::device)); it may be `flat` itself, summed in place. The sum may still
    /// be in flight on the device's stream when this returns (reading it waits for it).
    fn all_reduce_sum(&mut self, flat: Tensor) -> crate::Result<Tensor>;
}

/// The environment variables launchers give a process its local rank (its index among the
/// ranks on its node) in, in the order they are read: Open MPI's `mpirun`, MPICH's and Intel
/// MPI's `mpiexec`, MVAPICH2, Slurm's `srun`, `torchrun`.
pub const LOCAL_RANK_VARS: [&str; 5] = [
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MPI_LOCALRANKID",
    "MV2_COMM_WORLD_LOCAL_RANK",
    "SLURM_LOCALID",
    "LOCAL_RANK",
];

/// This process's local rank, from the first of [`LOCAL_RANK_VARS`] that `env` has (`None`
/// when it has none of them).
///
/// ```
/// use convnets_train::distributed::local_rank_from;
/// let env = |k: &str| (k == "SLURM_LOCALID").then(|| "3".to_string());
/// assert_eq!(local_rank_from(env)?, Some(3));
/// assert_eq!(local_rank_from(|_| None)?, None);
/// # Ok::<(), convnets_train::distributed::DistributedError>(())
/// ```
pub fn local_rank_from(env: impl Fn(&str) -> Option<String>) -> DResult<Option<usize>> {
    for var in LOCAL_RANK_VARS {
        if let Some(value) = env(var) {
            return match value.trim().parse() {
                Ok(n) => Ok(Some(n)),
                Err(_) => Err(DistributedError::LocalRank { var, value }),
            };
        }
    }
    Ok(None)
}

/// This process's local rank, from its environment ([`local_rank_from`]).
pub fn local_rank() -> DResult<Option<usize>> {
    local_rank_from(|k| std::env::var(k).ok())
}

/// The CUDA ordinal of the GPU local rank `local` takes when the process sees `visible` GPUs:
/// GPU `local`; or, when the launcher gave the process a GPU of its own
/// (`bound`: `CUDA_VISIBLE_DEVICES` is set) and it sees only that one, GPU 0. `None`: no GPU
/// for this rank.
///
/// ```
/// use convnets_train::distributed::gpu_for_local_rank;
/// assert_eq!(gpu_for_local_rank(2, 4, false), Some(2));
/// assert_eq!(gpu_for_local_rank(2, 1, true), Some(0)); // srun --gpus-per-task=1
/// assert_eq!(gpu_for_local_rank(1, 1, false), None); // two ranks, one GPU
/// ```
pub fn gpu_for_local_rank(local: usize, visible: usize, bound: bool) -> Option<usize> {
    if visible == 1 && bound {
        Some(0)
    } else {
        (local < visible).then_some(local)
    }
}

/// The number of CUDA devices this process sees.
#[cfg(feature = "cuda")]
fn cuda_device_count() -> Result<usize, String> {
    use candle_core::cuda_backend::cudarc::driver::CudaContext;
    CudaContext::device_count()
        .map(|n| usize::try_from(n).unwrap_or(0))
        .map_err(|e| format!("cannot count the CUDA devices ({e})"))
}

/// The number of CUDA devices this process sees (none without the `cuda` feature).
#[cfg(not(feature = "cuda"))]
fn cuda_device_count() -> Result<usize, String> {
    Ok(0)
}

/// 64-bit FNV-1a: a stable hash (the same on every machine and build) for comparing ranks.
#[derive(Clone, Copy, Debug)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    /// Adds `bytes` (and their length, so that concatenations differ).
    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The slice of a global batch of `len` samples that rank `rank` of `world` trains on: the
/// `rank`-th of `world` contiguous slices whose lengths differ by at most one (`len × rank /
/// world .. len × (rank + 1) / world`). A rank's slice is empty when `len < world`.
pub fn shard_range(len: usize, rank: usize, world: usize) -> Range<usize> {
    let world = world.max(1);
    (len * rank / world)..(len * (rank + 1) / world)
}

/// A rank's share of every batch of a [`Batcher`]: the batcher's batch size is the global
/// batch (`B × world`), its shuffled order is the same on every rank (same seed), and rank `r`
/// builds only its slice [`shard_range`] of each batch. Every rank gets the same number of
/// batches (a rank's last batch may be smaller, or empty).
///
/// [`BatchSource::num_samples`] is the whole data set's: the loop counts the samples of the
/// global batches (the trainer adds up the ranks' counts at every step).
///
/// Batches are built on the loop's thread (the batcher's prefetch workers are not used).
///
/// ```
/// use std::sync::Arc;
/// use convnets_data::Batcher;
/// use convnets_train::distributed::ShardedBatches;
/// use convnets_train::BatchSource;
/// let b = Batcher::new(Arc::new(vec![0.0; 5]), Arc::new(vec![0, 1, 2, 3, 4]), [1, 1, 1], 4, None, false)?;
/// let rank1 = ShardedBatches::new(&b, 1, 2)?;
/// let labels: Vec<Vec<u32>> = rank1.batches(1, 0).map(|b| b.unwrap().labels.to_vec1().unwrap()).collect();
/// assert_eq!(labels, vec![vec![2, 3], vec![4]]); // batches [0, 1 | 2, 3] and [ | 4]
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ShardedBatches<'a> {
    batcher: &'a Batcher,
    rank: usize,
    world: usize,
}

impl<'a> ShardedBatches<'a> {
    /// Rank `rank` of `world`'s share of `batcher`'s batches.
    pub fn new(batcher: &'a Batcher, rank: usize, world: usize) -> crate::Result<Self> {
        if world == 0 || rank >= world {
            return Err(crate::TrainError::Config(format!(
                "rank {rank} of a world of {world}: expected rank < world"
            )));
        }
        Ok(Self {
            batcher,
            rank,
            world,
        })
    }
}

impl BatchSource for ShardedBatches<'_> {
    fn num_samples(&self) -> usize {
        self.batcher.num_samples()
    }
    fn num_batches(&self) -> usize {
        self.batcher.len()
    }
    fn batches(
        &self,
        epoch: usize,
        skip: usize,
    ) -> Box<dyn Iterator<Item = convnets_data::Result<Batch>> + '_> {
        let order = self.batcher.order(epoch);
        let bs = self.batcher.batch_size();
        let batches = self.batcher.len();
        Box::new((skip..batches).map(move |i| {
            let global = &order[i * bs..((i + 1) * bs).min(order.len())];
            let mine = &global[shard_range(global.len(), self.rank, self.world)];
            self.batcher.batch_in_epoch(epoch, mine)
        }))
    }
}

/// One rank's numbers of a step, or (after [`DataParallel::reduce_step`]) the sums over
/// all ranks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Samples trained on.
    pub samples: usize,
    /// The sum of the per-sample losses (mean loss × samples).
    pub loss_sum: f64,
    /// Correctly classified samples.
    pub correct: usize,
    /// Whether a stop was asked for (Ctrl-C); after the reduction: on any rank.
    pub stop: bool,
}

/// Timings of the gradient all-reduce so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReduceTimes {
    /// All-reduce calls made (one per step).
    pub calls: u64,
    /// Seconds spent in them (including the wait for the slowest rank).
    pub seconds: f64,
    /// `f32` values in the last one (the flattened gradients and four statistics).
    pub floats: usize,
}

impl ReduceTimes {
    /// Mean milliseconds per call.
    pub fn mean_ms(&self) -> f64 {
        1e3 * self.seconds / self.calls.max(1) as f64
    }
}

/// The watchdog that ends the process when one collective operation waits too long.
#[derive(Debug)]
struct Watchdog {
    current: Arc<Mutex<Option<(Instant, String)>>>,
}

impl Watchdog {
    fn start(timeout: Duration, rank: usize) -> Self {
        let current: Arc<Mutex<Option<(Instant, String)>>> = Arc::new(Mutex::new(None));
        let weak: Weak<Mutex<Option<(Instant, String)>>> = Arc::downgrade(&current);
        let tick = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        std::thread::Builder::new()
            .name("convnets-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(tick);
                let Some(current) = weak.upgrade() else {
                    return; // the DataParallel is gone
                };
                let stuck = match current.lock() {
                    Ok(g) => g
                        .as_ref()
                        .filter(|(t, _)| t.elapsed() > timeout)
                        .map(|(_, what)| what.clone()),
                    Err(_) => None,
                };
                if let Some(what) = stuck {
                    eprintln!(
                        "Error: rank {rank}: {what} has waited more than {} s for the other ranks: a rank died or hangs; exiting (status {WATCHDOG_EXIT})",
                        timeout.as_secs_f64()
                    );
                    std::process::exit(WATCHDOG_EXIT);
                }
            })
            .ok();
        Self { current }
    }

    fn enter(&self, what: String) {
        if let Ok(mut g) = self.current.lock() {
            *g = Some((Instant::now(), what));
        }
    }

    fn leave(&self) {
        if let Ok(mut g) = self.current.lock() {
            *g = None;
        }
    }
}

/// The exit status of a process the watchdog ends.
pub const WATCHDOG_EXIT: i32 = 75;

/// Synchronous data parallelism for [`Trainer`](crate::Trainer) (see the module
/// documentation): build it over a [`Collective`] and pass it to
/// [`Trainer::data_parallel`](crate::Trainer::data_parallel).
pub struct DataParallel {
    comm: Box<dyn Collective>,
    /// Where the gradients go instead of `comm`, if anywhere (NCCL on a GPU).
    grads: Option<Box<dyn TensorCollective>>,
    watchdog: Option<Watchdog>,
    times: ReduceTimes,
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("rank", &self.comm.rank())
            .field("world_size", &self.comm.world_size())
            .field("gradients", &self.gradient_backend())
            .field("times", &self.times)
            .finish()
    }
}

impl DataParallel {
    /// Data parallelism over `comm`.
    pub fn new(comm: Box<dyn Collective>) -> Self {
        Self {
            comm,
            grads: None,
            watchdog: None,
            times: ReduceTimes::default(),
        }
    }

    /// Sends the gradients of every step through `t` (on its device) instead of the
    /// [`Collective`], which keeps the control messages. [`open_device`](Self::open_device)
    /// does this with NCCL for a GPU run.
    pub fn with_tensor_collective(mut self, t: Box<dyn TensorCollective>) -> Self {
        self.grads = Some(t);
        self
    }

    /// The engine the gradients are summed by (`NCCL`, `MPI`).
    pub fn gradient_backend(&self) -> &'static str {
        match &self.grads {
            Some(t) => t.name(),
            None => self.comm.name(),
        }
    }

    /// The device this rank trains on, for a run's device setting (`cpu` or `cuda`, as
    /// [`parse_device`](crate::parse_device) reads it). `cuda` is the GPU of this process's
    /// local rank ([`local_rank`], [`gpu_for_local_rank`]), one GPU per rank; `cuda:N` is an
    /// error (every rank would take GPU N). With the feature `nccl`, a GPU's gradients are then
    /// summed by NCCL on the GPUs ([`Nccl`]: rank 0 creates NCCL's unique id and broadcasts it
    /// over the [`Collective`]); without it, through host memory over the [`Collective`].
    /// Every rank calls it, with the same setting.
    pub fn open_device(&mut self, spec: &str) -> crate::Result<Device> {
        let s = spec.trim().to_ascii_lowercase();
        match s.as_str() {
            "cuda" | "gpu" if cfg!(feature = "cuda") => {}
            _ if cfg!(feature = "cuda") && s.starts_with("cuda:") => {
                return Err(crate::TrainError::Config(format!(
                    "device `{spec}` in a data-parallel run: every rank takes the GPU of its local rank, give `cuda`"
                )))
            }
            // cpu, and the errors (unknown device, no `cuda` feature)
            _ => return crate::parse_device(spec),
        }
        let (rank, world) = (self.rank(), self.world_size());
        let local = match local_rank()? {
            Some(l) => l,
            None if world == 1 => 0,
            None => return Err(DistributedError::NoLocalRank { rank, world }.into()),
        };
        let no_gpu = |why: String| DistributedError::NoGpu {
            rank,
            local_rank: local,
            why,
        };
        let visible = cuda_device_count().map_err(no_gpu)?;
        let bound = std::env::var_os("CUDA_VISIBLE_DEVICES").is_some();
        let ordinal = gpu_for_local_rank(local, visible, bound).ok_or_else(|| {
            no_gpu(format!(
                "this process sees {visible} CUDA device(s){}",
                if bound {
                    " (CUDA_VISIBLE_DEVICES is set)"
                } else {
                    ""
                }
            ))
        })?;
        let device = Device::new_cuda(ordinal)
            .map_err(|e| no_gpu(format!("CUDA device {ordinal} does not open: {e}")))?;
        #[cfg(feature = "nccl")]
        {
            self.enter(|| {
                "the NCCL set-up (its unique id from rank 0, then ncclCommInitRank)".into()
            });
            let nccl = Nccl::new(self.comm.as_mut(), &device);
            self.leave();
            self.grads = Some(Box::new(nccl?));
        }
        Ok(device)
    }

    /// Ends the process (status [`WATCHDOG_EXIT`], with a message on stderr) when one
    /// collective operation waits longer than `timeout` for the other ranks. Choose it longer
    /// than the longest a rank can lag behind the others (an evaluation, a checkpoint write).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.watchdog = Some(Watchdog::start(timeout, self.comm.rank()));
        self
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.comm.world_size()
    }

    /// Whether this is rank 0 (the one that writes files and prints).
    pub fn is_root(&self) -> bool {
        self.comm.rank() == 0
    }

    /// The gradient all-reduce's timings so far.
    pub fn reduce_times(&self) -> ReduceTimes {
        self.times
    }

    /// Starts the watchdog's clock on `what` (see [`with_timeout`](Self::with_timeout)).
    fn enter(&self, what: impl FnOnce() -> String) {
        if let Some(w) = &self.watchdog {
            w.enter(what());
        }
    }

    /// Stops the watchdog's clock.
    fn leave(&self) {
        if let Some(w) = &self.watchdog {
            w.leave();
        }
    }

    fn guarded<T>(
        &mut self,
        what: impl FnOnce() -> String,
        op: impl FnOnce(&mut dyn Collective) -> DResult<T>,
    ) -> DResult<T> {
        self.enter(what);
        let r = op(self.comm.as_mut());
        self.leave();
        r
    }

    /// Checks that every rank has the same `hash` of `what`; on every rank, an error naming the
    /// first rank that differs from rank 0.
    pub fn agree(&mut self, what: &str, hash: u64) -> DResult<()> {
        let all = self.guarded(
            || format!("the comparison of {what}"),
            |c| c.all_gather(hash),
        )?;
        let root = all.first().copied().unwrap_or(hash);
        match all.iter().position(|&h| h != root) {
            Some(rank) => Err(DistributedError::Mismatch {
                rank,
                what: what.to_string(),
                ours: all[rank],
                root,
            }),
            None => Ok(()),
        }
    }

    /// Whether `flag` is raised on any rank.
    pub fn any(&mut self, flag: bool) -> DResult<bool> {
        let mut v = [f32::from(u8::from(flag))];
        self.guarded(
            || "the stop-flag reduction".into(),
            |c| c.all_reduce_sum(&mut v),
        )?;
        Ok(v[0] > 0.0)
    }

    /// Rank 0's `bytes` on every rank.
    pub fn broadcast_bytes(&mut self, bytes: Vec<u8>) -> DResult<Vec<u8>> {
        self.guarded(
            || "a broadcast from rank 0".into(),
            |c| c.broadcast_bytes(bytes),
        )
    }

    /// Sets `vars` on every rank to rank 0's values (one broadcast of all of them, as `f64`:
    /// exact for `f32`, half floats and integer counters).
    pub fn broadcast_vars(&mut self, vars: &[Var]) -> crate::Result<()> {
        if vars.is_empty() {
            return Ok(());
        }
        let mut flat: Vec<f64> = Vec::new();
        for v in vars {
            flat.extend(v.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        }
        check_len("the parameter broadcast", flat.len())?;
        self.guarded(
            || "the parameter broadcast from rank 0".into(),
            |c| c.broadcast(&mut flat),
        )?;
        let mut at = 0;
        for v in vars {
            let n = v.elem_count();
            let t = Tensor::from_slice(&flat[at..at + n], v.shape(), v.device())?
                .to_dtype(v.dtype())?;
            v.set(&t)?;
            at += n;
        }
        Ok(())
    }

    /// Checks that every rank holds bit for bit the same values in `vars` (after `when`).
    pub fn check_identical(&mut self, vars: &[Var], when: &str) -> crate::Result<()> {
        let mut h = Fingerprint::default();
        for v in vars {
            for x in v.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()? {
                h.write(&x.to_le_bytes());
            }
        }
        Ok(self.agree(&format!("the parameters {when}"), h.finish())?)
    }

    /// The all-reduce of one step: replaces the gradients of `vars` in `grads` by their mean
    /// over the global batch, `Σ_r n_r g_r / Σ_r n_r` (each rank's `g_r` being the mean over
    /// its `n_r = local.samples` samples), and returns the sums of the ranks' `local` numbers.
    /// A gradient missing on a rank counts as zero there; it stays missing when it is missing
    /// on every rank. One all-reduce carries everything; `at` names the step in a watchdog
    /// message.
    pub fn reduce_step(
        &mut self,
        grads: &mut GradStore,
        vars: &[Var],
        local: StepStats,
        at: (usize, usize),
    ) -> crate::Result<StepStats> {
        let device = match &self.grads {
            Some(t) => t.device().clone(),
            None => vars.first().map_or(Device::Cpu, |v| v.device().clone()),
        };
        let (flat, grad_len) = pack_gradients(grads, vars, local, &device)?;
        let len = flat.elem_count();
        check_len("the gradient all-reduce", len)?;
        let what = || format!("the gradient all-reduce of epoch {}, batch {}", at.0, at.1);
        let t0 = Instant::now();
        let summed = match &mut self.grads {
            // On the device: one call; reading the flags and statistics back waits for it.
            Some(t) => {
                let watchdog = self.watchdog.as_ref();
                if let Some(w) = watchdog {
                    w.enter(what());
                }
                let r = t.all_reduce_sum(flat).and_then(|sum| {
                    let tail = sum.narrow(0, grad_len, len - grad_len)?.to_vec1::<f32>()?;
                    Ok((sum, tail))
                });
                if let Some(w) = watchdog {
                    w.leave();
                }
                r
            }
            // Through host memory over the collective.
            None => flat
                .to_vec1::<f32>()
                .map_err(Into::into)
                .and_then(|mut buf| {
                    self.guarded(what, |c| c.all_reduce_sum(&mut buf))?;
                    let tail = buf[grad_len..].to_vec();
                    Ok((Tensor::from_vec(buf, len, &device)?, tail))
                }),
        };
        self.times.calls += 1;
        self.times.seconds += t0.elapsed().as_secs_f64();
        self.times.floats = len;
        let (summed, tail) = summed?;
        unpack_gradients(grads, vars, &summed, &tail)
    }
}

/// The flat buffer of one rank's step (see [`DataParallel::reduce_step`]), on `device`: each
/// variable's gradient times the rank's sample count (zeros where it has none), then one flag
/// per variable (1: the rank has its gradient), then the samples, the loss sum, the correct
/// count and the stop flag. Also the length of the gradients' part.
fn pack_gradients(
    grads: &GradStore,
    vars: &[Var],
    local: StepStats,
    device: &Device,
) -> crate::Result<(Tensor, usize)> {
    let n = local.samples as f64;
    let mut parts = Vec::with_capacity(vars.len() + 1);
    let mut tail = Vec::with_capacity(vars.len() + 4);
    let mut grad_len = 0;
    for v in vars {
        grad_len += v.elem_count();
        match grads.get(v.as_tensor()) {
            Some(g) => {
                parts.push((g.to_dtype(DType::F32)? * n)?.flatten_all()?);
                tail.push(1.0);
            }
            None => {
                parts.push(Tensor::zeros(v.elem_count(), DType::F32, device)?);
                tail.push(0.0);
            }
        }
    }
    tail.extend([
        local.samples as f32,
        local.loss_sum as f32,
        local.correct as f32,
        f32::from(u8::from(local.stop)),
    ]);
    let k = tail.len();
    parts.push(Tensor::from_vec(tail, k, device)?);
    Ok((Tensor::cat(&parts, 0)?, grad_len))
}

/// The other half of [`pack_gradients`]: from the sum of the ranks' buffers (`summed`, its
/// flags and statistics also in `tail`), every gradient some rank had, divided by the total
/// sample count, back into `grads`; and the summed statistics.
fn unpack_gradients(
    grads: &mut GradStore,
    vars: &[Var],
    summed: &Tensor,
    tail: &[f32],
) -> crate::Result<StepStats> {
    let (flags, s) = tail.split_at(vars.len());
    let total = StepStats {
        samples: s[0].round() as usize,
        loss_sum: f64::from(s[1]),
        correct: s[2].round() as usize,
        stop: s[3] > 0.0,
    };
    let grad_len = summed.elem_count() - tail.len();
    let scaled = (summed.narrow(0, 0, grad_len)? * (1.0 / total.samples.max(1) as f64))?;
    let mut at = 0;
    for (v, &had) in vars.iter().zip(flags) {
        let len = v.elem_count();
        if had > 0.0 {
            let g = scaled
                .narrow(0, at, len)?
                .reshape(v.shape())?
                .to_dtype(v.dtype())?;
            grads.insert(v.as_tensor(), g);
        }
        at += len;
    }
    Ok(total)
}

fn check_len(what: &str, len: usize) -> DResult<()> {
    if len > i32::MAX as usize {
        return Err(DistributedError::TooLarge {
            what: what.into(),
            len,
        });
    }
    Ok(())
}

/// The slots the threads of a [`local_group`] exchange their buffers through.
#[derive(Default)]
struct Slots {
    f32s: Vec<Vec<f32>>,
    f64s: Vec<f64>,
    bytes: Vec<u8>,
    u64s: Vec<u64>,
}

/// One member of a [`local_group`]: a [`Collective`] between threads of one process.
pub struct LocalCollective {
    rank: usize,
    world: usize,
    barrier: Arc<Barrier>,
    slots: Arc<Mutex<Slots>>,
}

/// `n` connected [`LocalCollective`]s, one per thread (rank `i` is element `i`): data
/// parallelism inside one process, for tests and for checking the logic without MPI. Sums are
/// taken in rank order, so results are deterministic. A member whose thread stops calling
/// blocks the others (there is no timeout).
pub fn local_group(n: usize) -> Vec<LocalCollective> {
    let barrier = Arc::new(Barrier::new(n.max(1)));
    let slots = Arc::new(Mutex::new(Slots {
        f32s: vec![Vec::new(); n],
        u64s: vec![0; n],
        ..Slots::default()
    }));
    (0..n)
        .map(|rank| LocalCollective {
            rank,
            world: n,
            barrier: barrier.clone(),
            slots: slots.clone(),
        })
        .collect()
}

impl LocalCollective {
    fn slots(&self, op: &'static str) -> DResult<std::sync::MutexGuard<'_, Slots>> {
        self.slots.lock().map_err(|_| DistributedError::Protocol {
            op,
            rank: self.rank,
            what: "another rank's thread panicked".into(),
        })
    }
}

impl Collective for LocalCollective {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> DResult<()> {
        self.slots("all_reduce_sum")?.f32s[self.rank] = buf.to_vec();
        self.barrier.wait();
        let res = {
            let s = self.slots("all_reduce_sum")?;
            if s.f32s.iter().any(|b| b.len() != buf.len()) {
                Err(DistributedError::Protocol {
                    op: "all_reduce_sum",
                    rank: self.rank,
                    what: "the ranks' buffers differ in length".into(),
                })
            } else {
                for (i, x) in buf.iter_mut().enumerate() {
                    *x = s.f32s.iter().fold(0.0, |acc, b| acc + b[i]);
                }
                Ok(())
            }
        };
        self.barrier.wait();
        res
    }
    fn broadcast(&mut self, buf: &mut [f64]) -> DResult<()> {
        if self.rank == 0 {
            self.slots("broadcast")?.f64s = buf.to_vec();
        }
        self.barrier.wait();
        let res = {
            let s = self.slots("broadcast")?;
            if s.f64s.len() == buf.len() {
                buf.copy_from_slice(&s.f64s);
                Ok(())
            } else {
                Err(DistributedError::Protocol {
                    op: "broadcast",
                    rank: self.rank,
                    what: format!("{} values here, {} on rank 0", buf.len(), s.f64s.len()),
                })
            }
        };
        self.barrier.wait();
        res
    }
    fn broadcast_bytes(&mut self, bytes: Vec<u8>) -> DResult<Vec<u8>> {
        if self.rank == 0 {
            self.slots("broadcast_bytes")?.bytes = bytes;
        }
        self.barrier.wait();
        let out = self.slots("broadcast_bytes")?.bytes.clone();
        self.barrier.wait();
        Ok(out)
    }
    fn name(&self) -> &'static str {
        "threads"
    }
    fn all_gather(&mut self, value: u64) -> DResult<Vec<u64>> {
        self.slots("all_gather")?.u64s[self.rank] = value;
        self.barrier.wait();
        let out = self.slots("all_gather")?.u64s.clone();
        self.barrier.wait();
        Ok(out)
    }
}

#[cfg(feature = "mpi")]
pub use self::mpi_impl::{Mpi, MpiSession};

#[cfg(feature = "nccl")]
mod nccl;
#[cfg(feature = "nccl")]
pub use self::nccl::Nccl;

#[cfg(feature = "mpi")]
mod mpi_impl {
    use super::{check_len, Collective, DResult, DistributedError};
    use mpi::collective::SystemOperation;
    use mpi::environment::Universe;
    use mpi::topology::SimpleCommunicator;
    use mpi::traits::{Communicator, CommunicatorCollectives, Root};

    /// MPI, initialised (feature `mpi`): create it once, first thing in `main`, and keep it
    /// until the end. Dropping it finalises MPI, which waits for every rank: after an error
    /// that other ranks may not share, call [`MpiSession::abort`] instead (it ends every rank
    /// of the job).
    pub struct MpiSession {
        universe: Universe,
    }

    impl MpiSession {
        /// Initialises MPI (once per process; `MPI_THREAD_FUNNELED`: only this thread calls
        /// MPI). A process not started by `mpirun`/`srun` is a world of one rank.
        pub fn init() -> DResult<Self> {
            let (universe, _threading) = mpi::initialize_with_threading(mpi::Threading::Funneled)
                .ok_or_else(|| {
                DistributedError::Init("MPI was already initialised in this process".into())
            })?;
            Ok(Self { universe })
        }

        /// The [`Collective`] over the world communicator.
        pub fn world(&self) -> Mpi {
            Mpi {
                world: self.universe.world(),
            }
        }

        /// The MPI library's version string (`Open MPI v4.1.4, …`).
        pub fn library_version() -> String {
            mpi::environment::library_version().unwrap_or_else(|_| "unknown MPI".into())
        }

        /// Ends every rank of the job (`MPI_Abort` on the world communicator) with `code`.
        pub fn abort(&self, code: i32) -> ! {
            self.universe.world().abort(code)
        }
    }

    /// [`Collective`] over MPI's world communicator (feature `mpi`); see [`MpiSession`]. MPI's
    /// default error handler is kept: an MPI error aborts the job.
    pub struct Mpi {
        world: SimpleCommunicator,
    }

    impl Collective for Mpi {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }
        fn world_size(&self) -> usize {
            self.world.size() as usize
        }
        fn all_reduce_sum(&mut self, buf: &mut [f32]) -> DResult<()> {
            check_len("all-reduce", buf.len())?;
            let send = buf.to_vec();
            self.world
                .all_reduce_into(&send[..], buf, SystemOperation::sum());
            Ok(())
        }
        fn broadcast(&mut self, buf: &mut [f64]) -> DResult<()> {
            check_len("broadcast", buf.len())?;
            let mut n = [buf.len() as u64];
            self.world.process_at_rank(0).broadcast_into(&mut n[..]);
            if n[0] != buf.len() as u64 {
                return Err(DistributedError::Protocol {
                    op: "broadcast",
                    rank: self.rank(),
                    what: format!("{} values here, {} on rank 0", buf.len(), n[0]),
                });
            }
            self.world.process_at_rank(0).broadcast_into(buf);
            Ok(())
        }
        fn broadcast_bytes(&mut self, mut bytes: Vec<u8>) -> DResult<Vec<u8>> {
            let mut n = [bytes.len() as u64];
            self.world.process_at_rank(0).broadcast_into(&mut n[..]);
            let n = usize::try_from(n[0]).unwrap_or(usize::MAX);
            check_len("broadcast", n)?;
            bytes.resize(n, 0);
            self.world.process_at_rank(0).broadcast_into(&mut bytes[..]);
            Ok(bytes)
        }
        fn name(&self) -> &'static str {
            "MPI"
        }
        fn all_gather(&mut self, value: u64) -> DResult<Vec<u64>> {
            let mut out = vec![0u64; self.world_size()];
            self.world.all_gather_into(&value, &mut out[..]);
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order() {
        for len in 0..20 {
            for world in 1..5 {
                let ranges: Vec<_> = (0..world).map(|r| shard_range(len, r, world)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[world - 1].end, len);
                for w in ranges.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let lens: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
                let (min, max) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(max - min <= 1, "{len} over {world}: {lens:?}");
            }
        }
        assert_eq!(shard_range(256, 1, 2), 128..256);
        assert_eq!(shard_range(3, 0, 2), 0..1);
        assert_eq!(shard_range(3, 1, 2), 1..3);
    }

    #[test]
    fn fingerprint_is_fnv1a_of_length_and_bytes() {
        let a = Fingerprint::default().write(b"ab").finish();
        let b = Fingerprint::default().write(b"a").write(b"b").finish();
        assert_ne!(a, b);
        assert_eq!(a, Fingerprint::default().write(b"ab").finish());
        // FNV-1a of nothing is its offset basis.
        assert_eq!(Fingerprint::default().finish(), 0xcbf2_9ce4_8422_2325);
    }

    /// Runs `f(rank, DataParallel)` on `n` threads of a local group.
    fn on_group<T: Send>(n: usize, f: impl Fn(usize, DataParallel) -> T + Sync) -> Vec<T> {
        on_group_with(n, false, f)
    }

    /// [`on_group`]; with `tensors`, the gradients go through a [`TensorCollective`] (the
    /// device path, here on CPU tensors: a second local group behind [`ThroughTensors`]).
    fn on_group_with<T: Send>(
        n: usize,
        tensors: bool,
        f: impl Fn(usize, DataParallel) -> T + Sync,
    ) -> Vec<T> {
        let group = local_group(n);
        let mut second = local_group(n).into_iter();
        std::thread::scope(|s| {
            let handles: Vec<_> = group
                .into_iter()
                .enumerate()
                .map(|(r, c)| {
                    let f = &f;
                    let c2 = second.next().filter(|_| tensors);
                    s.spawn(move || {
                        let mut dp = DataParallel::new(Box::new(c));
                        if let Some(c2) = c2 {
                            dp = dp.with_tensor_collective(Box::new(ThroughTensors(c2)));
                        }
                        f(r, dp)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    /// A [`TensorCollective`] on CPU tensors over a local group: the device path without a
    /// device.
    struct ThroughTensors(LocalCollective);

    impl TensorCollective for ThroughTensors {
        fn name(&self) -> &'static str {
            "tensors"
        }
        fn device(&self) -> &Device {
            &Device::Cpu
        }
        fn all_reduce_sum(&mut self, flat: Tensor) -> crate::Result<Tensor> {
            assert_eq!(flat.dtype(), DType::F32);
            assert!(flat.is_contiguous());
            let mut buf = flat.to_vec1::<f32>()?;
            self.0.all_reduce_sum(&mut buf)?;
            Ok(Tensor::from_vec(buf, flat.elem_count(), &Device::Cpu)?)
        }
    }

    #[test]
    fn reduce_step_weights_by_samples() {
        reduce_step_case(false);
    }

    #[test]
    fn reduce_step_through_a_tensor_collective_weights_by_samples() {
        reduce_step_case(true);
    }

    fn reduce_step_case(tensors: bool) {
        // Rank 0 has 1 sample with gradient [1, 2], rank 1 has 3 with mean gradient [5, 6],
        // rank 2 has none: the mean over 4 samples is ([1, 2] + 3 [5, 6]) / 4 = [4, 5].
        let out = on_group_with(3, tensors, |r, mut dp| {
            assert_eq!(
                dp.gradient_backend(),
                if tensors { "tensors" } else { "threads" }
            );
            let v = Var::from_slice(&[0f32, 0.0], 2, &candle_core::Device::Cpu).unwrap();
            let unused = Var::from_slice(&[0f32], 1, &candle_core::Device::Cpu).unwrap();
            let (g, n) = match r {
                0 => (Some([1f32, 2.0]), 1),
                1 => (Some([5.0, 6.0]), 3),
                _ => (None, 0),
            };
            // A gradient store holding d(v·g)/dv = g.
            let mut grads = match g {
                Some(g) => {
                    let gt = Tensor::from_slice(&g, 2, &candle_core::Device::Cpu).unwrap();
                    (v.as_tensor() * gt)
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .backward()
                        .unwrap()
                }
                None => GradStore::default(),
            };
            let local = StepStats {
                samples: n,
                loss_sum: n as f64 * 0.5,
                correct: n,
                stop: r == 2,
            };
            let total = dp
                .reduce_step(&mut grads, &[v.clone(), unused.clone()], local, (1, 0))
                .unwrap();
            let g = grads.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
            assert!(grads.get(unused.as_tensor()).is_none());
            (g, total)
        });
        for (g, total) in out {
            assert_eq!(g, vec![4.0, 5.0]);
            assert_eq!(
                total,
                StepStats {
                    samples: 4,
                    loss_sum: 2.0,
                    correct: 4,
                    stop: true
                }
            );
        }
    }

    #[test]
    fn pack_and_unpack_are_inverse_and_keep_shapes() {
        // Two variables of shapes [2, 3] and [4] (one without a gradient), 2 samples: the
        // buffer is 2·g, then zeros, then the flags and statistics; unpacking a buffer summed
        // over one rank gives g back, reshaped, and no gradient for the second variable.
        let dev = Device::Cpu;
        let a = Var::from_slice(&[0f32; 6], (2, 3), &dev).unwrap();
        let b = Var::from_slice(&[0f32; 4], 4, &dev).unwrap();
        let g: Vec<f32> = (1..=6).map(|i| i as f32 / 4.0).collect();
        let gt = Tensor::from_slice(&g, (2, 3), &dev).unwrap();
        let mut grads = (a.as_tensor() * &gt)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let vars = [a.clone(), b.clone()];
        let local = StepStats {
            samples: 2,
            loss_sum: 1.5,
            correct: 1,
            stop: false,
        };
        let (flat, grad_len) = pack_gradients(&grads, &vars, local, &dev).unwrap();
        assert_eq!(grad_len, 10);
        let buf = flat.to_vec1::<f32>().unwrap();
        let twice: Vec<f32> = g.iter().map(|x| 2.0 * x).collect();
        assert_eq!(buf[..6], twice[..]);
        assert_eq!(buf[6..], [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 2.0, 1.5, 1.0, 0.0]);
        let total = unpack_gradients(&mut grads, &vars, &flat, &buf[grad_len..]).unwrap();
        assert_eq!(total, local);
        let back = grads.get(a.as_tensor()).unwrap();
        assert_eq!(back.dims(), [2, 3]);
        assert_eq!(back.flatten_all().unwrap().to_vec1::<f32>().unwrap(), g);
        assert!(grads.get(b.as_tensor()).is_none());
    }

    #[test]
    fn local_rank_comes_from_the_first_launcher_variable() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(local_rank_from(env(&[])).unwrap(), None);
        assert_eq!(
            local_rank_from(env(&[
                ("LOCAL_RANK", "1"),
                ("OMPI_COMM_WORLD_LOCAL_RANK", "2")
            ]))
            .unwrap(),
            Some(2)
        );
        assert_eq!(
            local_rank_from(env(&[("SLURM_LOCALID", " 3\n")])).unwrap(),
            Some(3)
        );
        match local_rank_from(env(&[("MPI_LOCALRANKID", "x")])) {
            Err(DistributedError::LocalRank { var, value }) => {
                assert_eq!((var, value.as_str()), ("MPI_LOCALRANKID", "x"))
            }
            other => panic!("expected a LocalRank error, got {other:?}"),
        }
        let e = DistributedError::NoLocalRank { rank: 1, world: 2 }.to_string();
        assert!(
            e.contains("OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID"),
            "{e}"
        );
    }

    #[test]
    fn each_local_rank_takes_its_own_gpu() {
        assert_eq!(gpu_for_local_rank(0, 4, false), Some(0));
        assert_eq!(gpu_for_local_rank(3, 4, true), Some(3));
        assert_eq!(gpu_for_local_rank(4, 4, false), None);
        assert_eq!(gpu_for_local_rank(0, 0, true), None);
        // A launcher that binds one GPU per rank through CUDA_VISIBLE_DEVICES.
        assert_eq!(gpu_for_local_rank(5, 1, true), Some(0));
        // Two ranks on a node with one GPU and no binding: the second has none.
        assert_eq!(gpu_for_local_rank(1, 1, false), None);
    }

    #[test]
    fn open_device_on_cpu_keeps_the_host_path_and_refuses_a_fixed_gpu() {
        let mut dp = DataParallel::new(Box::new(local_group(1).remove(0)));
        assert!(dp.open_device("cpu").unwrap().is_cpu());
        assert_eq!(dp.gradient_backend(), "threads");
        let e = dp.open_device("tpu").unwrap_err().to_string();
        assert!(e.contains("unknown device"), "{e}");
        if cfg!(feature = "cuda") {
            let e = dp.open_device("cuda:1").unwrap_err().to_string();
            assert!(e.contains("give `cuda`"), "{e}");
        } else {
            let e = dp.open_device("cuda").unwrap_err().to_string();
            assert!(e.contains("`cuda` feature"), "{e}");
        }
    }

    #[test]
    fn mismatch_names_the_rank_and_broadcast_copies_rank_0() {
        let out = on_group(3, |r, mut dp| {
            let agree = dp.agree("the config", if r == 2 { 7 } else { 5 });
            let v = Var::from_slice(&[r as f32, 1.5], 2, &candle_core::Device::Cpu).unwrap();
            dp.broadcast_vars(std::slice::from_ref(&v)).unwrap();
            let bytes = dp
                .broadcast_bytes(format!("rank {r}").into_bytes())
                .unwrap();
            (agree, v.to_vec1::<f32>().unwrap(), bytes)
        });
        for (agree, v, bytes) in out {
            match agree {
                Err(DistributedError::Mismatch {
                    rank, ours, root, ..
                }) => {
                    assert_eq!((rank, ours, root), (2, 7, 5))
                }
                other => panic!("expected a mismatch, got {other:?}"),
            }
            assert_eq!(v, vec![0.0, 1.5]);
            assert_eq!(bytes, b"rank 0");
        }
    }
}
