//! The fully connected layer as candle custom ops (with and without bias) and its
//! gradients, over [`convnets_kernels::linear`].

use super::{bias_op_adapters, f32_data, kernel_error, tracked};
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use convnets_kernels::linear;

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
        Ok((
            CpuStorage::F32(linear::linear_fwd(x, w, b, rows, n_in, n_out).map_err(kernel_error)?),
            Shape::from((rows, n_out)),
        ))
    }

    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        _res: &Tensor,
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
            LinearPart::Input => (
                linear::linear_bwd_input(a, b, rows, n_in, n_out).map_err(kernel_error)?,
                Shape::from((rows, n_in)),
            ),
            LinearPart::Weight => (
                linear::linear_bwd_weight(a, b, rows, n_in, n_out).map_err(kernel_error)?,
                Shape::from((n_out, n_in)),
            ),
            LinearPart::Bias => (
                linear::linear_bwd_bias(a, rows, n_out).map_err(kernel_error)?,
                Shape::from(n_out),
            ),
        };
        Ok((CpuStorage::F32(v), shape))
    }
}
