//! ReLU and the residual join `relu(a + b)` as candle custom ops, forward and backward,
//! over [`convnets_kernels::relu`].

use super::{f32_data, kernel_error};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use convnets_kernels::relu;

/// `max(x, 0)` through the native kernels (see [`crate::ops::relu`]): one pass forward, and
/// one pass backward, `dy * (y > 0)` from the kept output.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

/// ReLU `x -> y`.
struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "convnets-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(s, l, "relu")?;
        Ok((CpuStorage::F32(relu::relu_fwd(x)), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            res.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &ReluGrad)?,
        ))
    }
}

/// `max(a + b, 0)` through the native kernels (see [`crate::ops::add_relu`]).
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dims() != b.dims() {
        bail!(
            "add_relu: operands have different shapes {:?} and {:?}",
            a.dims(),
            b.dims()
        )
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

/// `(a, b) -> max(a + b, 0)`.
struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "convnets-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (f32_data(s1, l1, "add_relu")?, f32_data(s2, l2, "add_relu")?);
        Ok((
            CpuStorage::F32(relu::add_relu_fwd(a, b).map_err(kernel_error)?),
            l1.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = res
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &ReluGrad)?;
        Ok((Some(g.clone()), Some(g)))
    }
}

/// ReLU gradient `(y, dy) -> dx`.
pub(super) struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "convnets-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (
            f32_data(s1, l1, "relu grad")?,
            f32_data(s2, l2, "relu grad")?,
        );
        Ok((
            CpuStorage::F32(relu::relu_bwd(y, dy).map_err(kernel_error)?),
            l1.shape().clone(),
        ))
    }
}
