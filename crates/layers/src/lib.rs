//! Layer building blocks for convnets, on candle.
//!
//! What candle-nn lacks for the classic CNNs: a `Conv2d` with PyTorch's arguments and
//! PyTorch's default initialisation, pooling layers (with adaptive average pooling), batch
//! norm, local response norm, dropout, named containers ([`Sequential`] and the [`Layer`]
//! trait behind `named_modules()`), initialisation by module kind ([`init::apply`]), a model
//! [`summary()`] (shapes, parameters, MACs), a seeded parameter store whose names are PyTorch's
//! `state_dict()` keys, and the [`ops`] those layers are built from (whose CPU implementation
//! is our own and can be swapped without touching a layer).
//!
//! ```
//! use candle_core::{Device, Module, Tensor};
//! use convnets_layers::{conv2d, Conv2dConfig, ParamStore};
//!
//! let store = ParamStore::new(0, &Device::Cpu);
//! let conv = conv2d(5, 10, 3, Conv2dConfig::default(), store.vb().pp("conv1"))?;
//! let x = Tensor::zeros((1, 5, 100, 100), candle_core::DType::F32, &Device::Cpu)?;
//! assert_eq!(conv.forward(&x)?.dims(), &[1, 10, 98, 98]);
//! assert_eq!(conv.weight().dims(), &[10, 5, 3, 3]);
//! assert_eq!(store.names(), ["conv1.weight", "conv1.bias"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod activation;
pub mod compat;
pub mod container;
pub mod conv;
pub mod grad;
pub mod init;
pub mod layer;
pub mod linear;
pub mod norm;
pub mod ops;
pub mod pool;
pub mod store;
pub mod summary;

pub use activation::{rng_state, set_rng_state, set_seed, Dropout, Flatten, Relu};
pub use container::Sequential;
pub use conv::{conv2d, conv2d_rect, Conv2d, Conv2dConfig};
/// The kernels under the ops: `convnets-kernels`, re-exported.
pub use convnets_kernels as kernels;
pub use convnets_kernels::conv_out_size;
pub use grad::{grad_enabled, no_grad};
pub use init::{pytorch_default_bound, Rng};
pub use layer::{named_children, named_modules, Layer, Named};
pub use linear::{linear, linear_b, Linear};
pub use norm::{basic_block_t, batch_norm2d, BatchNorm2d, BatchNormConfig, LocalResponseNorm};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
pub use store::{atomic_write, is_buffer, Mismatch, ParamStore, StoreError};
pub use summary::{summary, summary_on, LayerRow, Summary};

/// `max(x, 0)` elementwise (`torch.relu`), through [`ops::relu`]: the function form of
/// [`Relu`], for models that call it inline.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let y = convnets_layers::relu(&Tensor::new(&[-1f32, 2.], &Device::Cpu)?)?;
/// assert_eq!(y.to_vec1::<f32>()?, [0., 2.]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn relu(x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
    ops::relu(x)
}

/// `max(a + b, 0)` (`torch.relu(a + b)`), through [`ops::add_relu`]: the join of a residual
/// block in one op.
pub fn add_relu(
    a: &candle_core::Tensor,
    b: &candle_core::Tensor,
) -> candle_core::Result<candle_core::Tensor> {
    ops::add_relu(a, b)
}

/// Flattens every dimension after the first: `[b, ...] -> [b, prod(...)]`.
pub fn flatten(x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
    x.flatten_from(1)
}
