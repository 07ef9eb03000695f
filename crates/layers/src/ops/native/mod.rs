//! Our own CPU kernels for `f32` tensors, as candle custom ops with their own backward.
//!
//! The functions here work on CPU `f32` tensors only (anything else is an error); use
//! [`crate::ops::conv2d`] and friends to get them with a fallback. Non-contiguous inputs are
//! made contiguous first.
//!
//! The backward of each op computes gradients with further kernels (which themselves have no
//! backward: no gradients of gradients). The gradient of an argument that autograd does not
//! track (not a `Var` and not computed from one, such as the input batch of the first layer)
//! is not computed at all.

mod conv;
mod gemm;
mod pool;

use super::{pool_output_hw, Conv2dParams, ConvGeometry, Pool2dParams};
use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor,
};
use pool::PoolDims;

/// Convolution through the native kernels (see [`crate::ops::conv2d`] for the contract).
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Result<Tensor> {
    let g = ConvGeometry::new(x.dims(), w.dims(), bias.map(|b| b.dims()), p)?;
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    let op = Conv2dOp { g };
    match bias {
        None => x.apply_op2(&w, op),
        Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
    }
}

/// Gradient of [`conv2d`] with respect to its input `[b, c_in, h, w]`, from the output
/// gradient `dy` `[b, c_out, oh, ow]` and the weight; `input_hw` is the input's `(h, w)`.
pub fn conv2d_input_grad(
    dy: &Tensor,
    w: &Tensor,
    input_hw: (usize, usize),
    p: &Conv2dParams,
) -> Result<Tensor> {
    let (b, c_out, oh, ow) = dy.dims4()?;
    let (_, cg, _, _) = w.dims4()?;
    let g = ConvGeometry::new(
        &[b, cg * p.groups, input_hw.0, input_hw.1],
        w.dims(),
        None,
        p,
    )?;
    if (g.c_out, g.oh, g.ow) != (c_out, oh, ow) {
        bail!("conv2d_input_grad: gradient {:?} does not match weight {:?} and input size {input_hw:?} with {p:?}", dy.dims(), w.dims())
    }
    dy.contiguous()?
        .apply_op2_no_bwd(&w.contiguous()?, &Conv2dInputGrad { g })
}

/// Gradient of [`conv2d`] with respect to its weight `[c_out, c_in / groups, kh, kw]`, from
/// the input `x` and the output gradient `dy`; `kernel_hw` is the weight's `(kh, kw)`.
pub fn conv2d_weight_grad(
    x: &Tensor,
    dy: &Tensor,
    kernel_hw: (usize, usize),
    p: &Conv2dParams,
) -> Result<Tensor> {
    let (_, c_in, _, _) = x.dims4()?;
    let (_, c_out, oh, ow) = dy.dims4()?;
    if p.groups == 0 || c_in % p.groups != 0 {
        bail!(
            "conv2d_weight_grad: input {:?} has channels not divisible by groups in {p:?}",
            x.dims()
        )
    }
    let w_dims = [c_out, c_in / p.groups, kernel_hw.0, kernel_hw.1];
    let g = ConvGeometry::new(x.dims(), &w_dims, None, p)?;
    if (g.b, g.oh, g.ow) != (dy.dim(0)?, oh, ow) {
        bail!("conv2d_weight_grad: gradient {:?} does not match input {:?} and kernel {kernel_hw:?} with {p:?}", dy.dims(), x.dims())
    }
    x.contiguous()?
        .apply_op2_no_bwd(&dy.contiguous()?, &Conv2dWeightGrad { g })
}

/// Max pooling through the native kernel (see [`crate::ops::max_pool2d`]).
pub fn max_pool2d(x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
    let d = pool_dims(x.dims(), p)?;
    x.contiguous()?.apply_op1(MaxPool { p: *p, d })
}

/// Average pooling through the native kernel (see [`crate::ops::avg_pool2d`]).
pub fn avg_pool2d(x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
    let d = pool_dims(x.dims(), p)?;
    x.contiguous()?.apply_op1(AvgPool { p: *p, d })
}

fn pool_dims(dims: &[usize], p: &Pool2dParams) -> Result<PoolDims> {
    let (oh, ow) = pool_output_hw(dims, p)?;
    Ok(PoolDims {
        planes: dims[0] * dims[1],
        h: dims[2],
        w: dims[3],
        oh,
        ow,
    })
}

/// The contiguous `f32` data of a CPU tensor argument.
fn f32_data<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
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

fn check_len(data: &[f32], want: usize, op: &str, what: &str) -> Result<()> {
    if data.len() != want {
        bail!("{op}: {what} has {} elements, expected {want}", data.len())
    }
    Ok(())
}

/// Whether autograd tracks `t` (a variable or computed from one), as candle's backprop decides.
fn tracked(t: &Tensor) -> bool {
    t.track_op()
}

/// The forward convolution `(x, w[, bias])`.
struct Conv2dOp {
    g: ConvGeometry,
}

impl Conv2dOp {
    fn fwd(&self, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        check_len(x, g.b * g.c_in * g.h * g.w, "conv2d", "input")?;
        check_len(
            w,
            g.c_out * g.c_in / g.p.groups * g.kh * g.kw,
            "conv2d",
            "weight",
        )?;
        if let Some(b) = b {
            check_len(b, g.c_out, "conv2d", "bias")?;
        }
        let y = conv::conv2d_fwd(g, x, w, b);
        Ok((CpuStorage::F32(y), Shape::from((g.b, g.c_out, g.oh, g.ow))))
    }

    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let grad = grad.contiguous()?;
        let g = self.g;
        let dx = if tracked(x) {
            Some(grad.apply_op2_no_bwd(w, &Conv2dInputGrad { g })?)
        } else {
            None
        };
        let dw = if tracked(w) {
            Some(x.apply_op2_no_bwd(&grad, &Conv2dWeightGrad { g })?)
        } else {
            None
        };
        let db = match b {
            Some(b) if tracked(b) => Some(grad.apply_op1_no_bwd(&Conv2dBiasGrad { g })?),
            _ => None,
        };
        Ok([dx, dw, db])
    }
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "convnets-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.fwd(
            f32_data(s1, l1, "conv2d")?,
            f32_data(s2, l2, "conv2d")?,
            None,
        )
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, _] = self.grads(x, w, None, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "convnets-conv2d-bias"
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
        let b = f32_data(s3, l3, "conv2d")?;
        self.fwd(
            f32_data(s1, l1, "conv2d")?,
            f32_data(s2, l2, "conv2d")?,
            Some(b),
        )
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, db] = self.grads(x, w, Some(b), grad)?;
        Ok((dx, dw, db))
    }
}

/// `(dy, w) -> dx`.
struct Conv2dInputGrad {
    g: ConvGeometry,
}

impl CustomOp2 for Conv2dInputGrad {
    fn name(&self) -> &'static str {
        "convnets-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let (dy, w) = (
            f32_data(s1, l1, "conv2d input grad")?,
            f32_data(s2, l2, "conv2d input grad")?,
        );
        check_len(
            dy,
            g.b * g.c_out * g.oh * g.ow,
            "conv2d input grad",
            "output gradient",
        )?;
        check_len(
            w,
            g.c_out * g.c_in / g.p.groups * g.kh * g.kw,
            "conv2d input grad",
            "weight",
        )?;
        let dx = conv::conv2d_bwd_input(g, dy, w);
        Ok((CpuStorage::F32(dx), Shape::from((g.b, g.c_in, g.h, g.w))))
    }
}

/// `(x, dy) -> dw`.
struct Conv2dWeightGrad {
    g: ConvGeometry,
}

impl CustomOp2 for Conv2dWeightGrad {
    fn name(&self) -> &'static str {
        "convnets-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let (x, dy) = (
            f32_data(s1, l1, "conv2d weight grad")?,
            f32_data(s2, l2, "conv2d weight grad")?,
        );
        check_len(x, g.b * g.c_in * g.h * g.w, "conv2d weight grad", "input")?;
        check_len(
            dy,
            g.b * g.c_out * g.oh * g.ow,
            "conv2d weight grad",
            "output gradient",
        )?;
        let dw = conv::conv2d_bwd_weight(g, x, dy);
        Ok((
            CpuStorage::F32(dw),
            Shape::from((g.c_out, g.c_in / g.p.groups, g.kh, g.kw)),
        ))
    }
}

/// `dy -> dbias`.
struct Conv2dBiasGrad {
    g: ConvGeometry,
}

impl CustomOp1 for Conv2dBiasGrad {
    fn name(&self) -> &'static str {
        "convnets-conv2d-bias-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let dy = f32_data(s, l, "conv2d bias grad")?;
        check_len(
            dy,
            g.b * g.c_out * g.oh * g.ow,
            "conv2d bias grad",
            "output gradient",
        )?;
        Ok((
            CpuStorage::F32(conv::conv2d_bwd_bias(g, dy)),
            Shape::from(g.c_out),
        ))
    }
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
        check_len(x, d.planes * d.h * d.w, "max_pool2d", "input")?;
        let dims = l.dims();
        Ok((
            CpuStorage::F32(pool::max_fwd(x, d, &self.p)),
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
        check_len(x, d.planes * d.h * d.w, "max_pool2d grad", "input")?;
        check_len(
            dy,
            d.planes * d.oh * d.ow,
            "max_pool2d grad",
            "output gradient",
        )?;
        Ok((
            CpuStorage::F32(pool::max_bwd(x, dy, d, &self.p)),
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
        check_len(x, d.planes * d.h * d.w, "avg_pool2d", "input")?;
        let dims = l.dims();
        Ok((
            CpuStorage::F32(pool::avg_fwd(x, d, &self.p)),
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
        check_len(
            dy,
            d.planes * d.oh * d.ow,
            "avg_pool2d grad",
            "output gradient",
        )?;
        Ok((
            CpuStorage::F32(pool::avg_bwd(dy, d, &self.p)),
            self.shape.clone(),
        ))
    }
}
