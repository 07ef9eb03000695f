//! Batch normalisation in training mode (with an optional fused ReLU) as a candle custom op,
//! over [`convnets_kernels::norm`].

use super::{f32_data, kernel_error};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use convnets_kernels::norm;

/// Batch normalisation of `x` `[b, c, h, w]` with the batch's statistics through the native
/// kernels (see [`crate::ops::batch_norm2d_train`]).
pub fn batch_norm2d_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    batch_norm2d_train_op(x, weight, bias, eps, false)
}

/// [`batch_norm2d_train`] followed by ReLU in the same op (see
/// [`crate::ops::batch_norm2d_relu_train`]).
pub fn batch_norm2d_relu_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    batch_norm2d_train_op(x, weight, bias, eps, true)
}

fn batch_norm2d_train_op(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, c, h, w) = x.dims4()?;
    if weight.dims() != [c] || bias.dims() != [c] {
        bail!(
            "batch_norm2d: input {:?} needs weight and bias [{c}], got {:?} and {:?}",
            x.dims(),
            weight.dims(),
            bias.dims()
        )
    }
    let x = x.contiguous()?;
    let hw = h * w;
    let (mean, var) = {
        let (s, l) = x.storage_and_layout();
        let candle_core::Storage::Cpu(s) = &*s else {
            bail!("batch_norm2d: native kernels need a CPU tensor")
        };
        let data = f32_data(s, l, "batch_norm2d")?;
        norm::channel_stats(data, b, c, hw).map_err(kernel_error)?
    };
    let invstd = invstd(&var, eps);
    let op = BatchNormTrain {
        dims: (b, c, hw),
        mean: mean.clone(),
        invstd,
        relu,
    };
    let y = x.apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?;
    let dev = x.device();
    Ok((
        y,
        Tensor::from_vec(mean, c, dev)?,
        Tensor::from_vec(var, c, dev)?,
    ))
}

/// `1 / sqrt(var + eps)` per channel, in `f64` before the rounding to `f32`.
pub(super) fn invstd(var: &[f32], eps: f64) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (f64::from(v) + eps).sqrt()) as f32)
        .collect()
}

/// `(x, gamma, beta) -> (x - mean) * invstd * gamma + beta` with fixed batch statistics whose
/// dependence on `x` the backward accounts for.
struct BatchNormTrain {
    dims: (usize, usize, usize),
    mean: Vec<f32>,
    invstd: Vec<f32>,
    /// Apply ReLU to the output (and mask the gradient by it).
    relu: bool,
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "convnets-batch-norm2d-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(s1, l1, "batch_norm2d")?;
        let (g, beta) = (
            f32_data(s2, l2, "batch_norm2d")?,
            f32_data(s3, l3, "batch_norm2d")?,
        );
        let y = norm::bn_fwd(x, g, beta, &self.mean, &self.invstd, self.dims, self.relu)
            .map_err(kernel_error)?;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, hw) = self.dims;
        let grad = grad.contiguous()?;
        let g = gamma.to_vec1::<f32>()?;
        // Read x, dy and (through the fused ReLU: the gradient where the output is positive)
        // the output in place, no copies of the largest tensors.
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let (rs, rl) = res.storage_and_layout();
        let (
            candle_core::Storage::Cpu(xs),
            candle_core::Storage::Cpu(gs),
            candle_core::Storage::Cpu(rs),
        ) = (&*xs, &*gs, &*rs)
        else {
            bail!("batch_norm2d backward: native kernels need CPU tensors")
        };
        let (xs, dy) = (
            f32_data(xs, xl, "batch_norm2d backward")?,
            f32_data(gs, gl, "batch_norm2d backward")?,
        );
        let relu_out = if self.relu {
            Some(f32_data(rs, rl, "batch_norm2d backward")?)
        } else {
            None
        };
        let (dx, dg, db) = norm::bn_bwd(xs, dy, relu_out, &self.mean, &self.invstd, &g, self.dims)
            .map_err(kernel_error)?;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (b, c, hw), dev)?.reshape(x.shape())?),
            Some(Tensor::from_vec(dg, c, dev)?),
            Some(Tensor::from_vec(db, c, dev)?),
        ))
    }
}
