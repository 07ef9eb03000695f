//! `convnets train --distributed`: MPI for the command line (feature `mpi`). Without the
//! feature, `--distributed` is an error that says how to build it. With `--device cuda` each
//! rank takes the GPU of its local rank and, in a build with the feature `nccl`, the
//! gradients go through NCCL (`DataParallel::open_device`, called by the run); MPI keeps the
//! control messages.

use anyhow::Result;
use convnets::train::distributed::DataParallel;
use std::sync::OnceLock;

/// This process's rank and the world size, once MPI is up (error messages name the rank).
pub static RANK: OnceLock<(usize, usize)> = OnceLock::new();

/// The default of `--collective-timeout`, in seconds.
pub const DEFAULT_TIMEOUT_S: f64 = 300.0;

/// MPI, initialised; see [`start`].
#[cfg(feature = "mpi")]
pub struct Session(convnets::train::distributed::MpiSession);

/// MPI, initialised; see [`start`] (never built without the `mpi` feature).
#[cfg(not(feature = "mpi"))]
pub enum Session {}

impl Session {
    /// Ends every rank of the job with `code` (after an error other ranks may not share: a
    /// normal exit would wait for them in `MPI_Finalize`).
    pub fn abort(self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        {
            self.0.abort(code)
        }
        #[cfg(not(feature = "mpi"))]
        {
            let _ = code;
            match self {}
        }
    }
}

fn timeout(secs: Option<f64>) -> Result<std::time::Duration> {
    let secs = secs.unwrap_or(DEFAULT_TIMEOUT_S);
    if !secs.is_finite() || secs <= 0.0 {
        anyhow::bail!("--collective-timeout must be a positive number of seconds, got {secs}");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Starts MPI and this rank's data parallelism, with a watchdog of `timeout_s` seconds
/// (default [`DEFAULT_TIMEOUT_S`]) on every exchange.
#[cfg(feature = "mpi")]
pub fn start(timeout_s: Option<f64>) -> Result<(Session, DataParallel)> {
    use anyhow::Context;
    use convnets::train::distributed::MpiSession;
    let timeout = timeout(timeout_s)?;
    let session = MpiSession::init().context("starting MPI")?;
    let dp = DataParallel::new(Box::new(session.world())).with_timeout(timeout);
    let _ = RANK.set((dp.rank(), dp.world_size()));
    if dp.is_root() {
        println!(
            "distributed: {} rank(s), {} rayon thread(s) each; {}",
            dp.world_size(),
            std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into()),
            MpiSession::library_version()
                .lines()
                .next()
                .unwrap_or("MPI")
        );
    }
    Ok((Session(session), dp))
}

/// Without the `mpi` feature: the error saying how to get it.
#[cfg(not(feature = "mpi"))]
pub fn start(timeout_s: Option<f64>) -> Result<(Session, DataParallel)> {
    timeout(timeout_s)?;
    anyhow::bail!(
        "--distributed needs a convnets built with MPI support: `cargo build --release -p convnets-cli --features mpi` (needs an MPI library and libclang, e.g. `apt-get install libopenmpi-dev openmpi-bin libclang-dev`; on GPUs `--features nccl`, which adds CUDA and NCCL), or `cargo xtask train --nproc N …`, which builds it and runs mpirun"
    )
}
