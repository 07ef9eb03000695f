//! NCCL for the gradients of GPU runs (feature `nccl`): candle's `nccl` feature, that is
//! cudarc's `nccl::safe::Comm` on the candle device's own CUDA stream, so the all-reduce is
//! ordered after the backward pass's kernels and before the optimizer's without a host
//! synchronisation. One process per GPU: NCCL refuses two ranks on one GPU.

use super::{Collective, DResult, DistributedError, TensorCollective};
use candle_core::cuda::cudarc::nccl::result::NcclError;
use candle_core::cuda::cudarc::nccl::safe::{Comm, Id, ReduceOp};
use candle_core::{CpuStorage, CudaStorage, Device, DeviceLocation, InplaceOp1, Layout, Tensor};
use std::cell::Cell;
use std::ffi::c_char;

/// The length of NCCL's unique id (`NCCL_UNIQUE_ID_BYTES`).
const ID_BYTES: usize = 128;

/// [`TensorCollective`] over NCCL (feature `nccl`): one communicator of all ranks, each on its
/// own GPU. Build it with [`Nccl::new`] on every rank, or let
/// [`DataParallel::open_device`](super::DataParallel::open_device) do it.
pub struct Nccl {
    comm: Comm,
    device: Device,
    rank: usize,
}

impl std::fmt::Debug for Nccl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nccl")
            .field("rank", &self.rank)
            .field("world_size", &self.comm.world_size())
            .field("device", &self.device)
            .finish()
    }
}

impl Nccl {
    /// The communicator of `control`'s ranks on `device` (this rank's GPU; every rank calls
    /// it, each with its own GPU). Rank 0 creates NCCL's unique id and `control` broadcasts its
    /// bytes (as Horovod does over MPI); then every rank joins with `ncclCommInitRank`, which
    /// returns when all have joined.
    pub fn new(control: &mut dyn Collective, device: &Device) -> DResult<Self> {
        let (rank, world) = (control.rank(), control.world_size());
        let name = device_name(device);
        let fail = |op: &'static str, result: String| DistributedError::Nccl {
            op,
            rank,
            device: name.clone(),
            result,
        };
        let cuda = device
            .as_cuda_device()
            .map_err(|_| fail("opening a communicator", "NCCL needs a CUDA device".into()))?;
        // Rank 0's id, or no bytes when it could not make one: then every rank fails.
        let (mine, made) = if rank == 0 {
            match Id::new() {
                Ok(id) => {
                    let raw: [c_char; ID_BYTES] = *id.internal();
                    (raw.map(|c| c.to_ne_bytes()[0]).to_vec(), Ok(()))
                }
                Err(e) => (Vec::new(), Err(e)),
            }
        } else {
            (Vec::new(), Ok(()))
        };
        let bytes = control.broadcast_bytes(mine)?;
        made.map_err(|e| fail("ncclGetUniqueId", describe(&e)))?;
        let received: [u8; ID_BYTES] = bytes.as_slice().try_into().map_err(|_| {
            fail(
                "receiving the unique id from rank 0",
                format!(
                    "{} bytes, expected {ID_BYTES} (rank 0 could not create the id: see its error)",
                    bytes.len()
                ),
            )
        })?;
        let internal = received.map(|b| c_char::from_ne_bytes([b]));
        let stream = cuda.cuda_stream();
        // ncclCommInitRank opens the communicator on the thread's current device.
        stream
            .context()
            .bind_to_thread()
            .map_err(|e| fail("making the GPU current", e.to_string()))?;
        let comm = Comm::from_rank(stream, rank, world, Id::uninit(internal))
            .map_err(|e| fail("ncclCommInitRank", describe(&e)))?;
        Ok(Self {
            comm,
            device: device.clone(),
            rank,
        })
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.comm.world_size()
    }
}

/// `cuda:1`, for messages.
fn device_name(device: &Device) -> String {
    match device.location() {
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        other => format!("{other:?}"),
    }
}

/// NCCL's result code, and what it usually means here.
fn describe(e: &NcclError) -> String {
    let code = format!("{:?}", e.0);
    let hint = match code.as_str() {
        "ncclInvalidUsage" => {
            " (two ranks on one GPU? NCCL needs one GPU per rank; NCCL_DEBUG=WARN says more)"
        }
        "ncclSystemError" | "ncclRemoteError" => {
            " (a network or peer problem: NCCL_DEBUG=WARN says more)"
        }
        _ => " (NCCL_DEBUG=WARN says more)",
    };
    format!("{code}{hint}")
}

/// The in-place sum over the ranks of a contiguous `f32` CUDA tensor; an NCCL failure is kept
/// in `failed` (candle's error type cannot carry it).
struct SumInPlace<'a> {
    comm: &'a Comm,
    failed: Cell<Option<NcclError>>,
}

impl InplaceOp1 for SumInPlace<'_> {
    fn name(&self) -> &'static str {
        "nccl-all-reduce-sum"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout) -> candle_core::Result<()> {
        candle_core::bail!("the NCCL all-reduce needs a CUDA tensor, got a CPU one")
    }

    fn cuda_fwd(&self, storage: &mut CudaStorage, layout: &Layout) -> candle_core::Result<()> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("the NCCL all-reduce needs a contiguous tensor")
        };
        let slice = storage.as_cuda_slice_mut::<f32>()?;
        let mut view = slice.slice_mut(start..end);
        if let Err(e) = self.comm.all_reduce_in_place(&mut view, &ReduceOp::Sum) {
            self.failed.set(Some(e));
            candle_core::bail!("ncclAllReduce failed")
        }
        Ok(())
    }
}

impl TensorCollective for Nccl {
    fn name(&self) -> &'static str {
        "NCCL"
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn all_reduce_sum(&mut self, flat: Tensor) -> crate::Result<Tensor> {
        let op = SumInPlace {
            comm: &self.comm,
            failed: Cell::new(None),
        };
        let r = flat.inplace_op1(&op);
        if let Some(e) = op.failed.take() {
            return Err(DistributedError::Nccl {
                op: "ncclAllReduce",
                rank: self.rank,
                device: device_name(&self.device),
                result: describe(&e),
            }
            .into());
        }
        r?;
        Ok(flat)
    }
}
