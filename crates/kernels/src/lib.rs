//! The CPU kernels of convnets, on plain slices of `f32`: no candle, no tensors.
//!
//! `convnets-layers` wraps them in candle custom ops (with their backward); here they are
//! functions from slices and a checked geometry to fresh vectors, easy to test and benchmark
//! on their own. All of the project's `unsafe` code lives in this crate: the SIMD
//! micro-kernels (`std::arch` intrinsics behind `#[target_feature]`) and the raw-pointer
//! inner loops, each with its bounds checked before it runs.
//!
//! - [`isa`](mod@isa): which micro-kernels run, chosen once per process from the CPU's features;
//!   `CONVNETS_ISA=avx512|avx2|portable` forces a path.
//! - [`conv`]: convolution forward and backward as matrix products (register-blocked
//!   AVX-512 or AVX2 + FMA kernels that read the input in place, or im2col and the `gemm`
//!   crate), parallel over the batch with rayon.
//! - [`pool`], [`relu`], [`norm`], [`linear`], [`loss`]: max / average pooling, ReLU (and
//!   the residual `relu(a + b)`), batch normalisation, fully connected layers and fused
//!   cross-entropy, forward and backward.
//! - [`geometry`]: [`Conv2dParams`], [`ConvGeometry`], [`Pool2dParams`], [`PoolDims`] and
//!   the output-size formulas, defined once for the whole project.
//! - [`peak`]: the measured FMA peak of a path, the yardstick of the benches.
//!
//! Every kernel checks the lengths of its slices against its geometry and returns a
//! [`KernelError`] naming what it expected and what it found.
//!
//! ```
//! use convnets_kernels::{conv, Conv2dParams, ConvGeometry};
//! // One 3x3 image, one 2x2 filter of ones: each output sums a window.
//! let g = ConvGeometry::new(&[1, 1, 3, 3], &[1, 1, 2, 2], None, &Conv2dParams::default())?;
//! let x: Vec<f32> = (0..9).map(|v| v as f32).collect();
//! let (y, _) = conv::conv2d_fwd(&g, &x, &[1.0; 4], None, false)?;
//! assert_eq!(y, [8.0, 12.0, 20.0, 24.0]);
//! # Ok::<(), convnets_kernels::KernelError>(())
//! ```

#[macro_use]
mod dispatch;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod conv;
mod error;
mod gemm;
pub mod geometry;
pub mod isa;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod peak;
pub mod pool;
mod portable;
pub mod relu;

pub use error::{KernelError, Result};
pub use geometry::{
    conv_out_size, pool_output_hw, pool_output_size, Conv2dParams, ConvGeometry, Pool2dParams,
    PoolDims,
};
pub use isa::{isa, Isa};
