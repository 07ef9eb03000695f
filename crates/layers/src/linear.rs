//! `Linear` with PyTorch's default initialisation.

use crate::init::pytorch_default;
use candle_core::Result;
use candle_nn::VarBuilder;

pub use candle_nn::Linear;

/// Builds a fully connected layer `y = x W^T + b` with weight `[c_out, c_in]` and bias
/// `[c_out]`, initialised as PyTorch's `nn.Linear` (uniform in `±1/sqrt(c_in)`).
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// let store = convnets_layers::ParamStore::new(0, &Device::Cpu);
/// let fc = convnets_layers::linear(256, 320, store.vb().pp("fc1"))?;
/// let y = fc.forward(&Tensor::zeros((2, 256), candle_core::DType::F32, &Device::Cpu)?)?;
/// assert_eq!(y.dims(), &[2, 320]);
/// assert_eq!(store.num_params(), 256 * 320 + 320);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn linear(c_in: usize, c_out: usize, vb: VarBuilder) -> Result<Linear> {
    let init = pytorch_default(c_in);
    let weight = vb.get_with_hints((c_out, c_in), "weight", init)?;
    let bias = vb.get_with_hints(c_out, "bias", init)?;
    Ok(Linear::new(weight, Some(bias)))
}
