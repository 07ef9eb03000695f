//! Our own CPU kernels for `f32` tensors, as candle custom ops with their own backward.
//!
//! The kernels themselves are the `convnets-kernels` crate (plain slices, no candle); this
//! module adapts them to candle, one file per op: [`conv`], [`conv_bn`] (the two fused),
//! [`pool`], [`relu`], [`linear`], [`norm`], [`loss`]. The functions here work on CPU `f32` tensors only (anything else is
//! an error); use [`crate::ops::conv2d`] and friends to get them with a fallback.
//! Non-contiguous inputs are made contiguous first.
//!
//! The backward of each op computes gradients with further kernels (which themselves have no
//! backward: no gradients of gradients). The gradient of an argument that autograd does not
//! track (not a `Var` and not computed from one, such as the input batch of the first layer)
//! is not computed at all.

pub mod block;
pub mod conv;
pub mod conv_bn;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod pool;
pub mod relu;

pub use block::basic_block_train;
pub use conv::{
    avg_pool_folded_weight, conv2d, conv2d_input_grad, conv2d_relu_max_pool_with, conv2d_relu_with,
    conv2d_weight_grad, conv2d_with,
};
pub use conv_bn::{conv2d_batch_norm2d_add_relu_train, conv2d_batch_norm2d_train};
pub use convnets_kernels::{isa, Isa};
pub use linear::linear;
pub use loss::cross_entropy;
pub use norm::{batch_norm2d_relu_train, batch_norm2d_train};
pub use pool::{avg_pool2d, avg_pool2d_with, max_pool2d, max_pool2d_with};
pub use relu::{add_relu, relu};

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result, Tensor};
use convnets_kernels::KernelError;

/// A kernel's error as candle's (its message names the kernel and the argument).
pub(crate) fn kernel_error(e: KernelError) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

/// A shape error of `op` (a geometry the kernels refused) as candle's, prefixed by the op.
pub(crate) fn shape_error(op: &str, e: KernelError) -> candle_core::Error {
    candle_core::Error::Msg(format!("{op}: {e}")).bt()
}

/// Implements candle's `CustomOp2` (no bias) and `CustomOp3` (with bias) for an op type with
/// `fwd(x, w, Option<b>)` and `grads(x, w, Option<b>, grad)`, so one struct serves both.
macro_rules! bias_op_adapters {
    ($op:ty, $name2:literal, $name3:literal, $what:literal) => {
        impl candle_core::CustomOp2 for $op {
            fn name(&self) -> &'static str {
                $name2
            }

            fn cpu_fwd(
                &self,
                s1: &candle_core::CpuStorage,
                l1: &candle_core::Layout,
                s2: &candle_core::CpuStorage,
                l2: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                self.fwd(
                    $crate::ops::native::f32_data(s1, l1, $what)?,
                    $crate::ops::native::f32_data(s2, l2, $what)?,
                    None,
                )
            }

            fn bwd(
                &self,
                x: &candle_core::Tensor,
                w: &candle_core::Tensor,
                res: &candle_core::Tensor,
                grad: &candle_core::Tensor,
            ) -> candle_core::Result<(Option<candle_core::Tensor>, Option<candle_core::Tensor>)>
            {
                let [dx, dw, _] = self.grads(x, w, None, res, grad)?;
                Ok((dx, dw))
            }
        }

        impl candle_core::CustomOp3 for $op {
            fn name(&self) -> &'static str {
                $name3
            }

            fn cpu_fwd(
                &self,
                s1: &candle_core::CpuStorage,
                l1: &candle_core::Layout,
                s2: &candle_core::CpuStorage,
                l2: &candle_core::Layout,
                s3: &candle_core::CpuStorage,
                l3: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                let b = $crate::ops::native::f32_data(s3, l3, $what)?;
                self.fwd(
                    $crate::ops::native::f32_data(s1, l1, $what)?,
                    $crate::ops::native::f32_data(s2, l2, $what)?,
                    Some(b),
                )
            }

            fn bwd(
                &self,
                x: &candle_core::Tensor,
                w: &candle_core::Tensor,
                b: &candle_core::Tensor,
                res: &candle_core::Tensor,
                grad: &candle_core::Tensor,
            ) -> candle_core::Result<(
                Option<candle_core::Tensor>,
                Option<candle_core::Tensor>,
                Option<candle_core::Tensor>,
            )> {
                let [dx, dw, db] = self.grads(x, w, Some(b), res, grad)?;
                Ok((dx, dw, db))
            }
        }
    };
}

/// The contiguous `f32` data of a CPU tensor argument.
pub(crate) fn f32_data<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!(
            "{op}: native kernels need f32, got {:?} for shape {:?}",
            s.dtype(),
            l.shape()
        )
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!(
            "{op}: native kernels need a contiguous tensor, got shape {:?} strides {:?}",
            l.shape(),
            l.stride()
        ),
    }
}

/// Whether autograd tracks `t` (a variable or computed from one), as candle's backprop decides.
pub(crate) fn tracked(t: &Tensor) -> bool {
    t.track_op()
}

pub(crate) use bias_op_adapters;
