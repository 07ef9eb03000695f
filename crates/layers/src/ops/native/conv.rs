//! The convolution as candle custom ops: forward (with and without bias) and the input,
//! weight and bias gradients, over [`convnets_kernels::conv`].

use super::relu::ReluGrad;
use super::{bias_op_adapters, f32_data, kernel_error, shape_error, tracked};
use crate::ops::{Conv2dParams, ConvGeometry, Pool2dParams, PoolDims};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use convnets_kernels::{conv, pool, relu};
use std::sync::Mutex;

/// Convolution through the native kernels (see [`crate::ops::conv2d`] for the contract).
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Result<Tensor> {
    let g = ConvGeometry::new(x.dims(), w.dims(), bias.map(|b| b.dims()), p)
        .map_err(|e| shape_error("conv2d", e))?;
    conv2d_with(x, w, bias, &g)
}

/// [`conv2d`] on a geometry [`ConvGeometry::new`] already checked (see
/// [`crate::ops::conv2d_with`]): the shapes are not validated again, only compared with it.
pub fn conv2d_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
) -> Result<Tensor> {
    conv2d_act(x, w, bias, g, false)
}

/// `relu(conv2d(x, w, bias))` as one op (see [`crate::ops::conv2d_relu_with`]).
pub fn conv2d_relu_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
) -> Result<Tensor> {
    conv2d_act(x, w, bias, g, true)
}

/// The weight of the convolution that [`ConvGeometry::fold_avg_pool`] made from `g` and
/// `pool` (see [`conv::avg_pool_folded_weight`]), as a new tensor on `w`'s device: not
/// tracked by autograd (the fold is for weights nothing trains).
pub fn avg_pool_folded_weight(
    w: &Tensor,
    g: &ConvGeometry,
    folded: &ConvGeometry,
) -> Result<Tensor> {
    let pool = [
        folded.p.stride[0] / g.p.stride[0],
        folded.p.stride[1] / g.p.stride[1],
    ];
    let data = w.detach().flatten_all()?.to_vec1::<f32>()?;
    let wf = conv::avg_pool_folded_weight(g, pool, &data).map_err(kernel_error)?;
    Tensor::from_vec(wf, folded.weight_dims().to_vec(), w.device())
}

/// `max_pool2d(relu(conv2d(x, w, bias)), p)` as one op (see
/// [`crate::ops::conv2d_relu_max_pool_with`]); `d` the checked sizes of pooling the
/// convolution's output.
pub fn conv2d_relu_max_pool_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
    p: &Pool2dParams,
    d: &PoolDims,
) -> Result<Tensor> {
    let [b, c, oh, ow] = g.output_dims();
    if (d.planes, d.h, d.w) != (b * c, oh, ow) {
        bail!(
            "conv2d_relu_max_pool: pool sizes {d:?} are not those of the convolution's output {:?}",
            g.output_dims()
        )
    }
    conv2d_op(x, w, bias, g, true, Some((*p, *d)))
}

fn conv2d_act(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
    relu: bool,
) -> Result<Tensor> {
    conv2d_op(x, w, bias, g, relu, None)
}

fn conv2d_op(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeometry,
    relu: bool,
    pool: Option<(Pool2dParams, PoolDims)>,
) -> Result<Tensor> {
    super::super::check_geometry(x, w, bias, g)?;
    let g = *g;
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    // Keep the unfolded input for the weight gradient only when there will be one.
    let op = Conv2dOp {
        g,
        relu,
        pool,
        keep_col: tracked(&w),
        col: Mutex::new(None),
        unpooled: Mutex::new(None),
    };
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
    )
    .map_err(|e| shape_error("conv2d_input_grad", e))?;
    if (g.c_out, g.oh, g.ow) != (c_out, oh, ow) {
        bail!(
            "conv2d_input_grad: gradient {:?} does not match weight {:?} and input size {input_hw:?} with {p:?}",
            dy.dims(),
            w.dims()
        )
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
    let g = ConvGeometry::new(x.dims(), &w_dims, None, p)
        .map_err(|e| shape_error("conv2d_weight_grad", e))?;
    if (g.b, g.oh, g.ow) != (dy.dim(0)?, oh, ow) {
        bail!(
            "conv2d_weight_grad: gradient {:?} does not match input {:?} and kernel {kernel_hw:?} with {p:?}",
            dy.dims(),
            x.dims()
        )
    }
    x.contiguous()?
        .apply_op2_no_bwd(&dy.contiguous()?, &Conv2dWeightGrad { g, col: None })
}

/// The forward convolution `(x, w[, bias])`, ReLU applied to its output when `relu`, max
/// pooling after that when `pool`.
struct Conv2dOp {
    g: ConvGeometry,
    /// `relu(conv(x))`: the backward masks the gradient with the output first.
    relu: bool,
    /// `max_pool2d(relu(conv(x)))`: the op's output is pooled; the unpooled output stays
    /// inside the op for the backward (autograd holds one tensor and accumulates one
    /// gradient for the three layers, not three).
    pool: Option<(Pool2dParams, PoolDims)>,
    /// Keep the forward's unfolded input (`im2col`) for the weight gradient.
    keep_col: bool,
    /// The kept unfolded input, taken (and freed) by the backward.
    col: Mutex<Option<Vec<f32>>>,
    /// With `pool`: the convolution's output after ReLU, taken by the backward.
    unpooled: Mutex<Option<Vec<f32>>>,
}

impl Conv2dOp {
    fn fwd(&self, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let (y, col) =
            conv::conv2d_fwd_act(g, x, w, b, self.keep_col, self.relu).map_err(kernel_error)?;
        if let Ok(mut slot) = self.col.lock() {
            *slot = col;
        }
        if let Some((p, d)) = &self.pool {
            let z = pool::max_fwd(&y, d, p).map_err(kernel_error)?;
            if let Ok(mut slot) = self.unpooled.lock() {
                *slot = Some(y);
            }
            return Ok((CpuStorage::F32(z), Shape::from((g.b, g.c_out, d.oh, d.ow))));
        }
        Ok((CpuStorage::F32(y), Shape::from((g.b, g.c_out, g.oh, g.ow))))
    }

    /// With `pool`: the gradient of the unpooled output (through the pool, then the ReLU's
    /// mask) from the pooled output's, `[b, c_out, oh, ow]`.
    fn unpool_grad(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        grad: &Tensor,
        (p, d): &(Pool2dParams, PoolDims),
    ) -> Result<Tensor> {
        let y = self.unpooled.lock().ok().and_then(|mut y| y.take());
        // A second backward over the same graph finds the output taken: recompute it.
        let y = match y {
            Some(y) => y,
            None => {
                let v = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
                let bv = b.map(v).transpose()?;
                conv::conv2d_fwd_act(&self.g, &v(x)?, &v(w)?, bv.as_deref(), false, self.relu)
                    .map_err(kernel_error)?
                    .0
            }
        };
        let dz = grad.flatten_all()?.to_vec1::<f32>()?;
        let dy = pool::max_bwd(&y, &dz, d, p).map_err(kernel_error)?;
        let dy = relu::relu_bwd(&y, &dy).map_err(kernel_error)?;
        Tensor::from_vec(dy, self.g.output_dims().to_vec(), x.device())
    }

    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let grad = grad.contiguous()?;
        // Through the fused pool and ReLU first: the gradient where the output is positive
        // (or NaN).
        let grad = match &self.pool {
            Some(pool) => self.unpool_grad(x, w, b, &grad, pool)?,
            None if self.relu => res.contiguous()?.apply_op2_no_bwd(&grad, &ReluGrad)?,
            None => grad,
        };
        let g = self.g;
        let dx = if tracked(x) {
            Some(input_grad(g, &grad, w)?)
        } else {
            None
        };
        let dw = if tracked(w) {
            let col = self.col.lock().ok().and_then(|mut c| c.take());
            Some(weight_grad(g, x, &grad, col)?)
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

bias_op_adapters!(
    Conv2dOp,
    "convnets-conv2d",
    "convnets-conv2d-bias",
    "conv2d"
);

/// The input gradient `dx` of a convolution `g` from the output gradient `dy` and the weight.
pub(super) fn input_grad(g: ConvGeometry, dy: &Tensor, w: &Tensor) -> Result<Tensor> {
    dy.apply_op2_no_bwd(w, &Conv2dInputGrad { g })
}

/// The weight gradient of a convolution `g` from its input `x` and the output gradient `dy`,
/// reusing the forward's unfolded input `col` when it kept one (handed back to the pool
/// afterwards).
pub(super) fn weight_grad(
    g: ConvGeometry,
    x: &Tensor,
    dy: &Tensor,
    col: Option<Vec<f32>>,
) -> Result<Tensor> {
    let op = Conv2dWeightGrad { g, col };
    let dw = x.apply_op2_no_bwd(dy, &op)?;
    if let Some(col) = op.col {
        conv::give_col(col);
    }
    Ok(dw)
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
        let dx = conv::conv2d_bwd_input(g, dy, w).map_err(kernel_error)?;
        Ok((CpuStorage::F32(dx), Shape::from((g.b, g.c_in, g.h, g.w))))
    }
}

/// `(x, dy) -> dw`, with the forward's unfolded input when it was kept.
struct Conv2dWeightGrad {
    g: ConvGeometry,
    col: Option<Vec<f32>>,
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
        let dw = conv::conv2d_bwd_weight(g, x, dy, self.col.as_deref()).map_err(kernel_error)?;
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
        Ok((
            CpuStorage::F32(conv::conv2d_bwd_bias(g, dy).map_err(kernel_error)?),
            Shape::from(g.c_out),
        ))
    }
}
