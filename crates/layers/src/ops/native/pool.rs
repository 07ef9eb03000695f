//! Max and average pooling as candle custom ops, forward and backward, over
//! [`convnets_kernels::pool`].

use super::{f32_data, kernel_error, shape_error};
use crate::ops::Pool2dParams;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use convnets_kernels::{pool, PoolDims};

/// Max pooling through the native kernel (see [`crate::ops::max_pool2d`]).
pub fn max_pool2d(x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
    max_pool2d_with(x, p, &pool_dims(x.dims(), p)?)
}

/// [`max_pool2d`] on sizes already checked (see [`crate::ops::max_pool2d_with`]).
pub fn max_pool2d_with(x: &Tensor, p: &Pool2dParams, d: &PoolDims) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool { p: *p, d: *d })
}

/// Average pooling through the native kernel (see [`crate::ops::avg_pool2d`]).
pub fn avg_pool2d(x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
    avg_pool2d_with(x, p, &pool_dims(x.dims(), p)?)
}

/// [`avg_pool2d`] on sizes already checked (see [`crate::ops::avg_pool2d_with`]).
pub fn avg_pool2d_with(x: &Tensor, p: &Pool2dParams, d: &PoolDims) -> Result<Tensor> {
    x.contiguous()?.apply_op1(AvgPool { p: *p, d: *d })
}

fn pool_dims(dims: &[usize], p: &Pool2dParams) -> Result<PoolDims> {
    PoolDims::new(dims, p).map_err(|e| shape_error("pool2d", e))
}

/// Max pooling `x -> y`.
struct MaxPool {
    p: Pool2dParams,
    d: PoolDims,
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "convnets-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = &self.d;
        let x = f32_data(s, l, "max_pool2d")?;
        let dims = l.dims();
        Ok((
            CpuStorage::F32(pool::max_fwd(x, d, &self.p).map_err(kernel_error)?),
            Shape::from((dims[0], dims[1], d.oh, d.ow)),
        ))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = MaxPoolGrad {
            p: self.p,
            d: self.d,
        };
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &op)?))
    }
}

/// Max pooling gradient `(x, dy) -> dx`.
struct MaxPoolGrad {
    p: Pool2dParams,
    d: PoolDims,
}

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "convnets-max-pool2d-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = &self.d;
        let (x, dy) = (
            f32_data(s1, l1, "max_pool2d grad")?,
            f32_data(s2, l2, "max_pool2d grad")?,
        );
        Ok((
            CpuStorage::F32(pool::max_bwd(x, dy, d, &self.p).map_err(kernel_error)?),
            l1.shape().clone(),
        ))
    }
}

/// Average pooling `x -> y`.
struct AvgPool {
    p: Pool2dParams,
    d: PoolDims,
}

impl CustomOp1 for AvgPool {
    fn name(&self) -> &'static str {
        "convnets-avg-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = &self.d;
        let x = f32_data(s, l, "avg_pool2d")?;
        let dims = l.dims();
        Ok((
            CpuStorage::F32(pool::avg_fwd(x, d, &self.p).map_err(kernel_error)?),
            Shape::from((dims[0], dims[1], d.oh, d.ow)),
        ))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = AvgPoolGrad {
            p: self.p,
            d: self.d,
            shape: x.shape().clone(),
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

/// Average pooling gradient `dy -> dx`.
struct AvgPoolGrad {
    p: Pool2dParams,
    d: PoolDims,
    shape: Shape,
}

impl CustomOp1 for AvgPoolGrad {
    fn name(&self) -> &'static str {
        "convnets-avg-pool2d-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = &self.d;
        let dy = f32_data(s, l, "avg_pool2d grad")?;
        Ok((
            CpuStorage::F32(pool::avg_bwd(dy, d, &self.p).map_err(kernel_error)?),
            self.shape.clone(),
        ))
    }
}
