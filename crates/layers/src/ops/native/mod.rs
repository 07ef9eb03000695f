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

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod conv;
mod gemm;
mod isa;
mod linear;
mod loss;
mod norm;
mod pool;
mod relu;

pub use isa::{isa, Isa};

use super::{pool_output_hw, Conv2dParams, ConvGeometry, Pool2dParams};
use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor,
};
use pool::PoolDims;
use std::sync::Mutex;

/// Convolution through the native kernels (see [`crate::ops::conv2d`] for the contract).
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Result<Tensor> {
    let g = ConvGeometry::new(x.dims(), w.dims(), bias.map(|b| b.dims()), p)?;
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    // Keep the unfolded input for the weight gradient only when there will be one.
    let op = Conv2dOp {
        g,
        keep_col: tracked(&w),
        col: Mutex::new(None),
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
    )?;
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
    let g = ConvGeometry::new(x.dims(), &w_dims, None, p)?;
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

/// Implements candle's `CustomOp2` (no bias) and `CustomOp3` (with bias) for an op type with
/// `fwd(x, w, Option<b>)` and `grads(x, w, Option<b>, grad)`, so one struct serves both.
macro_rules! bias_op_adapters {
    ($op:ty, $name2:literal, $name3:literal, $what:literal) => {
        impl CustomOp2 for $op {
            fn name(&self) -> &'static str {
                $name2
            }

            fn cpu_fwd(
                &self,
                s1: &CpuStorage,
                l1: &Layout,
                s2: &CpuStorage,
                l2: &Layout,
            ) -> Result<(CpuStorage, Shape)> {
                self.fwd(f32_data(s1, l1, $what)?, f32_data(s2, l2, $what)?, None)
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

        impl CustomOp3 for $op {
            fn name(&self) -> &'static str {
                $name3
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
                let b = f32_data(s3, l3, $what)?;
                self.fwd(f32_data(s1, l1, $what)?, f32_data(s2, l2, $what)?, Some(b))
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
    };
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
    /// Keep the forward's unfolded input (`im2col`) for the weight gradient.
    keep_col: bool,
    /// The kept unfolded input, taken (and freed) by the backward.
    col: Mutex<Option<Vec<f32>>>,
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
        let (y, col) = conv::conv2d_fwd(g, x, w, b, self.keep_col);
        if let Ok(mut slot) = self.col.lock() {
            *slot = col;
        }
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
            let col = self.col.lock().ok().and_then(|mut c| c.take());
            let op = Conv2dWeightGrad { g, col };
            let dw = x.apply_op2_no_bwd(&grad, &op)?;
            if let Some(col) = op.col {
                conv::give_col(col);
            }
            Some(dw)
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
        check_len(x, g.b * g.c_in * g.h * g.w, "conv2d weight grad", "input")?;
        check_len(
            dy,
            g.b * g.c_out * g.oh * g.ow,
            "conv2d weight grad",
            "output gradient",
        )?;
        let dw = conv::conv2d_bwd_weight(g, x, dy, self.col.as_deref());
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
        check_len(b, a.len(), "add_relu", "second operand")?;
        Ok((
            CpuStorage::F32(relu::add_relu_fwd(a, b)),
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
struct ReluGrad;

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
        check_len(dy, y.len(), "relu grad", "output gradient")?;
        Ok((CpuStorage::F32(relu::relu_bwd(y, dy)), l1.shape().clone()))
    }
}

/// Mean cross-entropy of `logits` `[rows, classes]` against integer `labels` `[rows]` (see
/// [`crate::ops::cross_entropy`]), fused: one pass forward, one pass backward.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (rows, classes) = logits.dims2()?;
    if labels.dims() != [rows] {
        bail!(
            "cross_entropy: logits {:?} need labels [{rows}], got {:?}",
            logits.dims(),
            labels.dims()
        )
    }
    logits
        .contiguous()?
        .apply_op2(&labels.contiguous()?, CrossEntropy { rows, classes })
}

/// `(logits, labels) -> mean loss`, a scalar.
struct CrossEntropy {
    rows: usize,
    classes: usize,
}

/// Labels as indices, each checked to be a class.
fn label_indices(labels: Vec<i64>, classes: usize) -> Result<Vec<usize>> {
    labels
        .into_iter()
        .map(|l| match usize::try_from(l) {
            Ok(i) if i < classes => Ok(i),
            _ => bail!("cross_entropy: label {l} is not a class index in [0, {classes})"),
        })
        .collect()
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "convnets-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(s1, l1, "cross_entropy")?;
        check_len(x, self.rows * self.classes, "cross_entropy", "logits")?;
        let Some((a, b)) = l2.contiguous_offsets() else {
            bail!("cross_entropy: labels must be contiguous")
        };
        let labels: Vec<i64> = match s2 {
            CpuStorage::U8(v) => v[a..b].iter().map(|&l| i64::from(l)).collect(),
            CpuStorage::U32(v) => v[a..b].iter().map(|&l| i64::from(l)).collect(),
            CpuStorage::I64(v) => v[a..b].to_vec(),
            other => bail!(
                "cross_entropy: labels must be u8, u32 or i64, got {:?}",
                other.dtype()
            ),
        };
        let labels = label_indices(labels, self.classes)?;
        check_len(x, labels.len() * self.classes, "cross_entropy", "logits")?;
        let loss = loss::cross_entropy_fwd(x, &labels, self.classes);
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        labels: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
        let labels = label_indices(
            labels.to_dtype(candle_core::DType::I64)?.to_vec1::<i64>()?,
            self.classes,
        )?;
        let logits = x.flatten_all()?.to_vec1::<f32>()?;
        let dx = loss::cross_entropy_bwd(&logits, &labels, self.classes, g);
        Ok((
            Some(Tensor::from_vec(dx, (self.rows, self.classes), x.device())?),
            None,
        ))
    }
}

/// Fully connected layer through the native kernels (see [`crate::ops::linear`]).
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n_out, n_in) = w.dims2()?;
    let dims = x.dims();
    if dims.last() != Some(&n_in) {
        bail!(
            "linear: input {dims:?} does not end in the weight's {n_in} input features (weight {:?})",
            w.dims()
        )
    }
    if let Some(b) = bias {
        if b.dims() != [n_out] {
            bail!(
                "linear: bias {:?} does not match weight {:?}, expected [{n_out}]",
                b.dims(),
                w.dims()
            )
        }
    }
    let rows = x.elem_count() / n_in.max(1);
    let x2 = x.contiguous()?.reshape((rows, n_in))?;
    let op = LinearOp { rows, n_in, n_out };
    let y = match bias {
        None => x2.apply_op2(&w.contiguous()?, op)?,
        Some(b) => x2.apply_op3(&w.contiguous()?, &b.contiguous()?, op)?,
    };
    let mut out_dims = dims.to_vec();
    match out_dims.last_mut() {
        Some(last) => *last = n_out,
        None => bail!("linear: input must have at least one dimension"),
    }
    if out_dims.len() == 2 {
        Ok(y)
    } else {
        y.reshape(out_dims)
    }
}

/// `(x [rows, in], w [out, in][, b [out]]) -> x w^T + b`.
#[derive(Clone, Copy)]
struct LinearOp {
    rows: usize,
    n_in: usize,
    n_out: usize,
}

impl LinearOp {
    fn fwd(&self, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let (rows, n_in, n_out) = (self.rows, self.n_in, self.n_out);
        check_len(x, rows * n_in, "linear", "input")?;
        check_len(w, n_out * n_in, "linear", "weight")?;
        if let Some(b) = b {
            check_len(b, n_out, "linear", "bias")?;
        }
        Ok((
            CpuStorage::F32(linear::linear_fwd(x, w, b, rows, n_in, n_out)),
            Shape::from((rows, n_out)),
        ))
    }

    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let grad = grad.contiguous()?;
        let op = *self;
        let dx = if tracked(x) {
            Some(grad.apply_op2_no_bwd(
                w,
                &LinearGrad {
                    op,
                    what: LinearPart::Input,
                },
            )?)
        } else {
            None
        };
        let dw = if tracked(w) {
            Some(x.apply_op2_no_bwd(
                &grad,
                &LinearGrad {
                    op,
                    what: LinearPart::Weight,
                },
            )?)
        } else {
            None
        };
        let db = match b {
            Some(b) if tracked(b) => Some(grad.apply_op2_no_bwd(
                b,
                &LinearGrad {
                    op,
                    what: LinearPart::Bias,
                },
            )?),
            _ => None,
        };
        Ok([dx, dw, db])
    }
}

bias_op_adapters!(
    LinearOp,
    "convnets-linear",
    "convnets-linear-bias",
    "linear"
);

#[derive(Clone, Copy)]
enum LinearPart {
    /// `(dy, w) -> dx`.
    Input,
    /// `(x, dy) -> dw`.
    Weight,
    /// `(dy, b) -> db` (`b` only for its shape).
    Bias,
}

/// A gradient of [`LinearOp`].
struct LinearGrad {
    op: LinearOp,
    what: LinearPart,
}

impl CustomOp2 for LinearGrad {
    fn name(&self) -> &'static str {
        "convnets-linear-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let LinearOp { rows, n_in, n_out } = self.op;
        let (a, b) = (
            f32_data(s1, l1, "linear grad")?,
            f32_data(s2, l2, "linear grad")?,
        );
        let (v, shape) = match self.what {
            LinearPart::Input => {
                check_len(a, rows * n_out, "linear input grad", "output gradient")?;
                check_len(b, n_out * n_in, "linear input grad", "weight")?;
                (
                    linear::linear_bwd_input(a, b, rows, n_in, n_out),
                    Shape::from((rows, n_in)),
                )
            }
            LinearPart::Weight => {
                check_len(a, rows * n_in, "linear weight grad", "input")?;
                check_len(b, rows * n_out, "linear weight grad", "output gradient")?;
                (
                    linear::linear_bwd_weight(a, b, rows, n_in, n_out),
                    Shape::from((n_out, n_in)),
                )
            }
            LinearPart::Bias => {
                check_len(a, rows * n_out, "linear bias grad", "output gradient")?;
                (linear::linear_bwd_bias(a, n_out), Shape::from(n_out))
            }
        };
        Ok((CpuStorage::F32(v), shape))
    }
}

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
        check_len(data, b * c * hw, "batch_norm2d", "input")?;
        norm::channel_stats(data, b, c, hw)
    };
    let invstd: Vec<f32> = var
        .iter()
        .map(|&v| (1.0 / (f64::from(v) + eps).sqrt()) as f32)
        .collect();
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
        let (b, c, hw) = self.dims;
        let x = f32_data(s1, l1, "batch_norm2d")?;
        let (g, beta) = (
            f32_data(s2, l2, "batch_norm2d")?,
            f32_data(s3, l3, "batch_norm2d")?,
        );
        check_len(x, b * c * hw, "batch_norm2d", "input")?;
        check_len(g, c, "batch_norm2d", "weight")?;
        check_len(beta, c, "batch_norm2d", "bias")?;
        let scale: Vec<f32> = (0..c).map(|ch| g[ch] * self.invstd[ch]).collect();
        let shift: Vec<f32> = (0..c)
            .map(|ch| beta[ch] - self.mean[ch] * scale[ch])
            .collect();
        Ok((
            CpuStorage::F32(norm::scale_shift(x, &scale, &shift, c, hw, self.relu)),
            l1.shape().clone(),
        ))
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
        // Through the fused ReLU first: the gradient where the output is positive.
        let grad = if self.relu {
            res.apply_op2_no_bwd(&grad, &ReluGrad)?
        } else {
            grad
        };
        let g = gamma.to_vec1::<f32>()?;
        // Read x and dy in place (no copies of the two largest tensors).
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let (candle_core::Storage::Cpu(xs), candle_core::Storage::Cpu(gs)) = (&*xs, &*gs) else {
            bail!("batch_norm2d backward: native kernels need CPU tensors")
        };
        let (xs, dy) = (
            f32_data(xs, xl, "batch_norm2d backward")?,
            f32_data(gs, gl, "batch_norm2d backward")?,
        );
        check_len(xs, b * c * hw, "batch_norm2d backward", "input")?;
        check_len(dy, b * c * hw, "batch_norm2d backward", "output gradient")?;
        let (dx, dg, db) = norm::bn_bwd(xs, dy, &self.mean, &self.invstd, &g, self.dims);
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (b, c, hw), dev)?.reshape(x.shape())?),
            Some(Tensor::from_vec(dg, c, dev)?),
            Some(Tensor::from_vec(db, c, dev)?),
        ))
    }
}
