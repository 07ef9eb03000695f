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
//! message when one collective operation waits longer than the timeout.

use crate::trainer::BatchSource;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
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
    watchdog: Option<Watchdog>,
    buf: Vec<f32>,
    times: ReduceTimes,
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("rank", &self.comm.rank())
            .field("world_size", &self.comm.world_size())
            .field("times", &self.times)
            .finish()
    }
}

impl DataParallel {
    /// Data parallelism over `comm`.
    pub fn new(comm: Box<dyn Collective>) -> Self {
        Self {
            comm,
            watchdog: None,
            buf: Vec::new(),
            times: ReduceTimes::default(),
        }
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

    fn guarded<T>(
        &mut self,
        what: impl FnOnce() -> String,
        op: impl FnOnce(&mut dyn Collective) -> DResult<T>,
    ) -> DResult<T> {
        if let Some(w) = &self.watchdog {
            w.enter(what());
        }
        let r = op(self.comm.as_mut());
        if let Some(w) = &self.watchdog {
            w.leave();
        }
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
        let n = local.samples as f64;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for v in vars {
            match grads.get(v.as_tensor()) {
                Some(g) => buf.extend(
                    (g.to_dtype(DType::F32)? * n)?
                        .flatten_all()?
                        .to_vec1::<f32>()?,
                ),
                None => buf.resize(buf.len() + v.elem_count(), 0.0),
            }
        }
        // Per variable: how many ranks had a gradient. Then the step's statistics.
        for v in vars {
            buf.push(f32::from(u8::from(grads.get(v.as_tensor()).is_some())));
        }
        let stats_at = buf.len();
        buf.extend([
            local.samples as f32,
            local.loss_sum as f32,
            local.correct as f32,
            f32::from(u8::from(local.stop)),
        ]);
        check_len("the gradient all-reduce", buf.len())?;
        let t0 = Instant::now();
        let r = self.guarded(
            || format!("the gradient all-reduce of epoch {}, batch {}", at.0, at.1),
            |c| c.all_reduce_sum(&mut buf),
        );
        self.times.calls += 1;
        self.times.seconds += t0.elapsed().as_secs_f64();
        self.times.floats = buf.len();
        r?;
        let s = &buf[stats_at..];
        let total = StepStats {
            samples: s[0].round() as usize,
            loss_sum: f64::from(s[1]),
            correct: s[2].round() as usize,
            stop: s[3] > 0.0,
        };
        let scale = 1.0 / total.samples.max(1) as f64;
        let flags = &buf[stats_at - vars.len()..stats_at];
        let mut at = 0;
        for (v, &had) in vars.iter().zip(flags) {
            let len = v.elem_count();
            if had > 0.0 {
                let g = (Tensor::from_slice(&buf[at..at + len], v.shape(), v.device())? * scale)?
                    .to_dtype(v.dtype())?;
                grads.insert(v.as_tensor(), g);
            }
            at += len;
        }
        self.buf = buf;
        Ok(total)
    }
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
        let group = local_group(n);
        std::thread::scope(|s| {
            let handles: Vec<_> = group
                .into_iter()
                .enumerate()
                .map(|(r, c)| {
                    let f = &f;
                    s.spawn(move || f(r, DataParallel::new(Box::new(c))))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn reduce_step_weights_by_samples() {
        // Rank 0 has 1 sample with gradient [1, 2], rank 1 has 3 with mean gradient [5, 6],
        // rank 2 has none: the mean over 4 samples is ([1, 2] + 3 [5, 6]) / 4 = [4, 5].
        let out = on_group(3, |r, mut dp| {
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
