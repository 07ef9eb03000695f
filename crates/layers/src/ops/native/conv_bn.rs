//! A convolution (no bias) followed by batch normalisation with the batch's statistics (and
//! optionally ReLU) as one candle custom op, over [`convnets_kernels::conv`] and
//! [`convnets_kernels::norm`]: the pair `bn(conv(x))` of every ResNet layer.
//!
//! Autograd then holds one activation-sized tensor per pair instead of two and accumulates
//! one gradient fewer: candle 0.11's backward adds every gradient into a fresh zero tensor
//! (a memset and an add over the whole activation, on one thread), which was the largest
//! cost of a ResNet-20 step outside the kernels. The convolution's output stays inside the
//! op (the normalisation's backward needs it) and is freed by the backward.

use super::conv::{input_grad, weight_grad};
use super::norm::invstd;
use super::{f32_data, kernel_error, tracked};
use crate::ops::ConvGeometry;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use convnets_kernels::{conv, norm, relu};
use std::sync::{Arc, Mutex, MutexGuard};

/// What the forward leaves for the backward and for the caller (the batch statistics).
#[derive(Default)]
struct State {
    /// The convolution's output `[b, c_out, oh, ow]`.
    y: Option<Vec<f32>>,
    /// The convolution's unfolded input, when it kept one for the weight gradient.
    col: Option<Vec<f32>>,
    mean: Vec<f32>,
    /// Biased batch variance.
    var: Vec<f32>,
    invstd: Vec<f32>,
}

/// `(x, w, [gamma; beta]) -> bn(conv(x, w))` (ReLU applied when `relu`), or with a residual
/// `(x, [w; gamma; beta], r) -> relu(bn(conv(x, w)) + r)` (a custom op takes three
/// arguments: the weight travels with the affine parameters then).
struct ConvBatchNorm {
    g: ConvGeometry,
    eps: f64,
    relu: bool,
    /// The residual form (arguments and output as above).
    residual: bool,
    keep_col: bool,
    state: Arc<Mutex<State>>,
}

impl ConvBatchNorm {
    fn dims(&self) -> (usize, usize, usize) {
        (self.g.b, self.g.c_out, self.g.oh * self.g.ow)
    }

    /// Floats of the convolution's weight.
    fn w_len(&self) -> usize {
        self.g.weight_dims().iter().product()
    }

    fn state(&self) -> Result<MutexGuard<'_, State>> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> Result<MutexGuard<'_, State>> {
    state
        .lock()
        .map_err(|_| candle_core::Error::Msg("conv2d_batch_norm2d: state poisoned".into()))
}

impl CustomOp3 for ConvBatchNorm {
    fn name(&self) -> &'static str {
        "convnets-conv2d-batch-norm2d-train"
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
        let what = "conv2d_batch_norm2d";
        let (x, a2, a3) = (
            f32_data(s1, l1, what)?,
            f32_data(s2, l2, what)?,
            f32_data(s3, l3, what)?,
        );
        let (w, gb, r) = if self.residual {
            let (w, gb) = a2.split_at(self.w_len().min(a2.len()));
            (w, gb, Some(a3))
        } else {
            (a2, a3, None)
        };
        let (b, c, hw) = self.dims();
        let (y, col) =
            conv::conv2d_fwd(&self.g, x, w, None, self.keep_col).map_err(kernel_error)?;
        let (mean, var) = norm::channel_stats(&y, b, c, hw).map_err(kernel_error)?;
        let invstd = invstd(&var, self.eps);
        if gb.len() != 2 * c {
            bail!(
                "{what}: expected {} affine parameters, got {}",
                2 * c,
                gb.len()
            )
        }
        let (gamma, beta) = gb.split_at(c);
        let mut z = norm::bn_fwd(
            &y,
            gamma,
            beta,
            &mean,
            &invstd,
            (b, c, hw),
            self.relu && r.is_none(),
        )
        .map_err(kernel_error)?;
        if let Some(r) = r {
            relu::add_relu_assign(&mut z, r).map_err(kernel_error)?;
        }
        *self.state()? = State {
            y: Some(y),
            col,
            mean,
            var,
            invstd,
        };
        Ok((
            CpuStorage::F32(z),
            Shape::from(self.g.output_dims().to_vec()),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a2: &Tensor,
        a3: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, hw) = self.dims();
        let g = self.g;
        let wl = self.w_len();
        // The weight and the affine parameters, whichever arguments carry them.
        let (w, gb) = if self.residual {
            (
                a2.narrow(0, 0, wl)?.reshape(g.weight_dims().to_vec())?,
                a2.narrow(0, wl, 2 * c)?,
            )
        } else {
            (a2.clone(), a3.clone())
        };
        let (y, col, mean, invstd) = {
            let mut s = self.state()?;
            (s.y.take(), s.col.take(), s.mean.clone(), s.invstd.clone())
        };
        // A second backward over the same graph finds the output taken: recompute it.
        let y = match y {
            Some(y) => y,
            None => {
                let (xs, ws) = (x.flatten_all()?.to_vec1::<f32>()?, w.flatten_all()?);
                conv::conv2d_fwd(&g, &xs, &ws.to_vec1::<f32>()?, None, false)
                    .map_err(kernel_error)?
                    .0
            }
        };
        let gamma = gb.narrow(0, 0, c)?.to_vec1::<f32>()?;
        let grad = grad.contiguous()?;
        let res = res.contiguous()?;
        let (dy, dgamma, dbeta, dr) = {
            let (gs, gl) = grad.storage_and_layout();
            let (rs, rl) = res.storage_and_layout();
            let (candle_core::Storage::Cpu(gs), candle_core::Storage::Cpu(rs)) = (&*gs, &*rs)
            else {
                bail!("conv2d_batch_norm2d backward: native kernels need CPU tensors")
            };
            let what = "conv2d_batch_norm2d backward";
            let (dz, out) = (f32_data(gs, gl, what)?, f32_data(rs, rl, what)?);
            if self.residual {
                // Through the final ReLU once: that gradient is the residual's and the
                // normalisation's.
                let dr = relu::relu_bwd(out, dz).map_err(kernel_error)?;
                let (dy, dg, db) = norm::bn_bwd(&y, &dr, None, &mean, &invstd, &gamma, (b, c, hw))
                    .map_err(kernel_error)?;
                (dy, dg, db, Some(dr))
            } else {
                let relu_out = self.relu.then_some(out);
                let (dy, dg, db) =
                    norm::bn_bwd(&y, dz, relu_out, &mean, &invstd, &gamma, (b, c, hw))
                        .map_err(kernel_error)?;
                (dy, dg, db, None)
            }
        };
        drop(y);
        let dev = x.device();
        let out_dims = g.output_dims().to_vec();
        let dy = Tensor::from_vec(dy, out_dims.clone(), dev)?;
        let dx = if tracked(x) {
            Some(input_grad(g, &dy, &w)?)
        } else {
            None
        };
        // `a2` is the weight, or carries it in the residual form.
        let dw = if tracked(a2) {
            Some(weight_grad(g, x, &dy, col)?)
        } else {
            if let Some(col) = col {
                conv::give_col(col);
            }
            None
        };
        let mut dgb = dgamma;
        dgb.extend_from_slice(&dbeta);
        if self.residual {
            // [dw; dgamma; dbeta] for the packed argument (zeros for a frozen weight).
            let mut packed = match dw {
                Some(dw) => dw.flatten_all()?.to_vec1::<f32>()?,
                None => vec![0f32; wl],
            };
            packed.extend_from_slice(&dgb);
            let dr = dr
                .map(|dr| Tensor::from_vec(dr, out_dims, dev))
                .transpose()?;
            return Ok((dx, Some(Tensor::from_vec(packed, wl + 2 * c, dev)?), dr));
        }
        Ok((dx, dw, Some(Tensor::from_vec(dgb, 2 * c, dev)?)))
    }
}

/// `bn(conv2d_with(x, w, None, g))` with the batch's statistics, ReLU applied when `relu`,
/// as one op; returns `(y, batch_mean, batch_var)` (biased variance), as
/// [`crate::ops::batch_norm2d_train`] does (see [`crate::ops::conv2d_batch_norm2d_train`]).
pub fn conv2d_batch_norm2d_train(
    x: &Tensor,
    w: &Tensor,
    g: &ConvGeometry,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    conv_bn(x, w, g, gamma, beta, eps, relu, None)
}

/// `relu(bn(conv2d_with(x, w, None, g)) + residual)` with the batch's statistics as one op:
/// the end of a residual block (see [`crate::ops::conv2d_batch_norm2d_add_relu_train`]).
pub fn conv2d_batch_norm2d_add_relu_train(
    x: &Tensor,
    w: &Tensor,
    g: &ConvGeometry,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    residual: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    conv_bn(x, w, g, gamma, beta, eps, true, Some(residual))
}

#[allow(clippy::too_many_arguments)]
fn conv_bn(
    x: &Tensor,
    w: &Tensor,
    g: &ConvGeometry,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
    residual: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    super::super::check_geometry(x, w, None, g)?;
    let c = g.c_out;
    if gamma.dims() != [c] || beta.dims() != [c] {
        bail!(
            "conv2d_batch_norm2d: convolution with {c} output channels needs weight and bias [{c}], got {:?} and {:?}",
            gamma.dims(),
            beta.dims()
        )
    }
    if let Some(r) = residual {
        if r.dims() != g.output_dims() {
            bail!(
                "conv2d_batch_norm2d_add_relu: residual {:?} does not match the output {:?}",
                r.dims(),
                g.output_dims()
            )
        }
    }
    if g.b * g.oh * g.ow < 2 {
        bail!(
            "conv2d_batch_norm2d: expected more than 1 value per channel when training, found output {:?}",
            g.output_dims()
        )
    }
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    let state = Arc::new(Mutex::new(State::default()));
    let op = ConvBatchNorm {
        g: *g,
        eps,
        relu,
        residual: residual.is_some(),
        keep_col: tracked(&w),
        state: Arc::clone(&state),
    };
    // A custom op takes three arguments: the affine parameters travel together (and with
    // the weight in the residual form); `cat`'s backward splits their gradient again.
    let y = match residual {
        None => x.apply_op3(&w, &Tensor::cat(&[gamma, beta], 0)?, op)?,
        Some(r) => {
            let wgb = Tensor::cat(&[&w.flatten_all()?, gamma, beta], 0)?;
            x.apply_op3(&wgb, &r.contiguous()?, op)?
        }
    };
    let (mean, var) = {
        let s = lock(&state)?;
        (s.mean.clone(), s.var.clone())
    };
    let dev = x.device();
    Ok((
        y,
        Tensor::from_vec(mean, c, dev)?,
        Tensor::from_vec(var, c, dev)?,
    ))
}
