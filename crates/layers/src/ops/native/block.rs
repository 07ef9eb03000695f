//! A whole residual block with an identity shortcut, `relu(bn2(conv2(relu(bn1(conv1(x))))) +
//! x)` (ResNet's `BasicBlock` when the shape does not change), as one candle custom op over
//! [`convnets_kernels::conv`] and [`convnets_kernels::norm`], with the batch's statistics.
//!
//! Why one op: candle 0.11's backward adds every gradient contribution into a fresh zero
//! tensor (a memset and an add over the whole activation, on one thread). As two fused ops
//! ([`super::conv_bn`]) a block still has its inner activation's gradient and two
//! contributions to its input's (the convolution's and the shortcut's): 11 passes over an
//! activation per block. As one op, its input gets one contribution: 4 passes. The two
//! contributions are summed inside the backward instead, in the same order and with the same
//! kernels as the two ops, so every value is the same bit for bit.

use super::norm::invstd;
use super::{f32_data, kernel_error, tracked};
use crate::ops::ConvGeometry;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use convnets_kernels::{conv, norm, relu};
use std::sync::{Arc, Mutex, MutexGuard};

/// The batch statistics of one normalisation: mean, biased variance, `1 / sqrt(var + eps)`.
#[derive(Clone, Default)]
struct Stats {
    mean: Vec<f32>,
    var: Vec<f32>,
    invstd: Vec<f32>,
}

/// What the forward leaves for the backward (taken by it) and for the caller (the
/// statistics, kept).
#[derive(Default)]
struct State {
    /// The first convolution's output, its unfolded input (when kept), the block's inner
    /// activation `relu(bn1(...))`, the second convolution's output and unfolded input.
    saved: Option<Saved>,
    stats: [Stats; 2],
}

struct Saved {
    y1: Vec<f32>,
    col1: Option<Vec<f32>>,
    h: Vec<f32>,
    y2: Vec<f32>,
    col2: Option<Vec<f32>>,
}

/// `(x, [w1; gamma1; beta1; w2; gamma2; beta2]) -> relu(bn2(conv2(relu(bn1(conv1(x))))) + x)`
/// (a custom op takes at most three arguments: the parameters travel packed, and `cat`'s
/// backward splits their gradient again).
struct BasicBlockOp {
    g: ConvGeometry,
    eps: f64,
    keep_col: bool,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> Result<MutexGuard<'_, State>> {
    state
        .lock()
        .map_err(|_| candle_core::Error::Msg("basic_block: state poisoned".into()))
}

impl BasicBlockOp {
    /// Floats of one convolution's weight, and of one normalisation's affine parameters.
    fn lens(&self) -> (usize, usize) {
        (self.g.weight_dims().iter().product(), self.g.c_out)
    }

    /// The packed parameters split: `(w1, gamma1, beta1, w2, gamma2, beta2)`.
    fn split<'a>(&self, p: &'a [f32]) -> Result<[&'a [f32]; 6]> {
        let (wl, c) = self.lens();
        if p.len() != 2 * (wl + 2 * c) {
            bail!(
                "basic_block: expected {} packed parameters, got {}",
                2 * (wl + 2 * c),
                p.len()
            )
        }
        let (w1, p) = p.split_at(wl);
        let (g1, p) = p.split_at(c);
        let (b1, p) = p.split_at(c);
        let (w2, p) = p.split_at(wl);
        let (g2, b2) = p.split_at(c);
        Ok([w1, g1, b1, w2, g2, b2])
    }

    /// The forward: the output and what the backward needs.
    fn run(&self, x: &[f32], p: &[f32]) -> Result<(Vec<f32>, Saved, [Stats; 2])> {
        let [w1, g1, b1, w2, g2, b2] = self.split(p)?;
        let g = &self.g;
        let dims = (g.b, g.c_out, g.oh * g.ow);
        let (b, c, hw) = dims;
        let stats = |y: &[f32]| -> Result<Stats> {
            let (mean, var) = norm::channel_stats(y, b, c, hw).map_err(kernel_error)?;
            let invstd = invstd(&var, self.eps);
            Ok(Stats { mean, var, invstd })
        };
        let (y1, col1) = conv::conv2d_fwd(g, x, w1, None, self.keep_col).map_err(kernel_error)?;
        let s1 = stats(&y1)?;
        let h =
            norm::bn_fwd(&y1, g1, b1, &s1.mean, &s1.invstd, dims, true).map_err(kernel_error)?;
        let (y2, col2) = conv::conv2d_fwd(g, &h, w2, None, self.keep_col).map_err(kernel_error)?;
        let s2 = stats(&y2)?;
        let mut z =
            norm::bn_fwd(&y2, g2, b2, &s2.mean, &s2.invstd, dims, false).map_err(kernel_error)?;
        relu::add_relu_assign(&mut z, x).map_err(kernel_error)?;
        let saved = Saved {
            y1,
            col1,
            h,
            y2,
            col2,
        };
        Ok((z, saved, [s1, s2]))
    }
}

impl CustomOp2 for BasicBlockOp {
    fn name(&self) -> &'static str {
        "convnets-basic-block-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, p) = (
            f32_data(s1, l1, "basic_block")?,
            f32_data(s2, l2, "basic_block")?,
        );
        let (z, saved, stats) = self.run(x, p)?;
        *lock(&self.state)? = State {
            saved: Some(saved),
            stats,
        };
        Ok((
            CpuStorage::F32(z),
            Shape::from(self.g.output_dims().to_vec()),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        p: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (x, p) = (x.contiguous()?, p.contiguous()?);
        let (grad, res) = (grad.contiguous()?, res.contiguous()?);
        let (xs, xl) = x.storage_and_layout();
        let (ps, pl) = p.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let (rs, rl) = res.storage_and_layout();
        let (
            candle_core::Storage::Cpu(xs),
            candle_core::Storage::Cpu(ps),
            candle_core::Storage::Cpu(gs),
            candle_core::Storage::Cpu(rs),
        ) = (&*xs, &*ps, &*gs, &*rs)
        else {
            bail!("basic_block backward: native kernels need CPU tensors")
        };
        let what = "basic_block backward";
        let (xs, ps) = (f32_data(xs, xl, what)?, f32_data(ps, pl, what)?);
        let (dz, out) = (f32_data(gs, gl, what)?, f32_data(rs, rl, what)?);
        let (dx, dp) = self.backward(xs, ps, dz, out, tracked(&x), tracked(&p))?;
        let dx = dx
            .map(|dx| Tensor::from_vec(dx, self.g.input_dims().to_vec(), x.device()))
            .transpose()?;
        Ok((dx, Some(Tensor::from_vec(dp, ps.len(), p.device())?)))
    }
}

impl BasicBlockOp {
    /// The input gradient (when `want_dx`) and the packed parameters' gradient from the
    /// block's input `x`, parameters `p`, output `out` and output gradient `dz`; the weight
    /// gradients are zeros unless `train_w`.
    fn backward(
        &self,
        x: &[f32],
        p: &[f32],
        dz: &[f32],
        out: &[f32],
        want_dx: bool,
        train_w: bool,
    ) -> Result<(Option<Vec<f32>>, Vec<f32>)> {
        let g = self.g;
        let dims = (g.b, g.c_out, g.oh * g.ow);
        let [w1, g1, _, w2, g2, _] = self.split(p)?;
        let (saved, [s1, s2]) = {
            let mut st = lock(&self.state)?;
            (st.saved.take(), st.stats.clone())
        };
        // A second backward over the same graph finds the saved tensors taken: recompute.
        let saved = match saved {
            Some(s) => s,
            None => self.run(x, p)?.1,
        };
        // Through the final ReLU once: the shortcut's gradient and the second
        // normalisation's.
        let dr = relu::relu_bwd(out, dz).map_err(kernel_error)?;
        let (dy2, dg2, db2) = norm::bn_bwd(&saved.y2, &dr, None, &s2.mean, &s2.invstd, g2, dims)
            .map_err(kernel_error)?;
        drop(saved.y2);
        let dh = conv::conv2d_bwd_input(&g, &dy2, w2).map_err(kernel_error)?;
        let dw2 = train_w
            .then(|| conv::conv2d_bwd_weight(&g, &saved.h, &dy2, saved.col2.as_deref()))
            .transpose()
            .map_err(kernel_error)?;
        drop(dy2);
        let (dy1, dg1, db1) = norm::bn_bwd(
            &saved.y1,
            &dh,
            Some(&saved.h),
            &s1.mean,
            &s1.invstd,
            g1,
            dims,
        )
        .map_err(kernel_error)?;
        drop((dh, saved.y1, saved.h));
        let dx = if want_dx {
            let mut dx = conv::conv2d_bwd_input(&g, &dy1, w1).map_err(kernel_error)?;
            relu::add_assign(&mut dx, &dr).map_err(kernel_error)?;
            Some(dx)
        } else {
            None
        };
        let dw1 = train_w
            .then(|| conv::conv2d_bwd_weight(&g, x, &dy1, saved.col1.as_deref()))
            .transpose()
            .map_err(kernel_error)?;
        for col in [saved.col1, saved.col2].into_iter().flatten() {
            conv::give_col(col);
        }
        let (wl, _) = self.lens();
        let mut dp = Vec::with_capacity(p.len());
        for (dw, dg, db) in [(dw1, dg1, db1), (dw2, dg2, db2)] {
            // Zeros for a frozen weight: the packed argument has one gradient.
            dp.extend(dw.unwrap_or_else(|| vec![0f32; wl]));
            dp.extend(dg);
            dp.extend(db);
        }
        Ok((dx, dp))
    }
}

/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + x)` with the batch's statistics as one op, for a
/// block whose two convolutions share the geometry `g` (3x3, stride 1, as many output
/// channels as input channels, no bias). Returns the output and each normalisation's
/// `(batch_mean, batch_var)` (biased variance), for the caller's running statistics. See
/// [`crate::ops::basic_block_train`].
#[allow(clippy::too_many_arguments)]
pub fn basic_block_train(
    x: &Tensor,
    g: &ConvGeometry,
    w1: &Tensor,
    gamma1: &Tensor,
    beta1: &Tensor,
    w2: &Tensor,
    gamma2: &Tensor,
    beta2: &Tensor,
    eps: f64,
) -> Result<(Tensor, [(Tensor, Tensor); 2])> {
    super::super::check_geometry(x, w1, None, g)?;
    super::super::check_geometry(x, w2, None, g)?;
    let c = g.c_out;
    if g.output_dims() != g.input_dims() {
        bail!(
            "basic_block: the block's output {:?} must have its input's shape {:?} (identity shortcut)",
            g.output_dims(),
            g.input_dims()
        )
    }
    for t in [gamma1, beta1, gamma2, beta2] {
        if t.dims() != [c] {
            bail!(
                "basic_block: normalisations of {c} channels need weight and bias [{c}], got {:?}",
                t.dims()
            )
        }
    }
    if g.b * g.oh * g.ow < 2 {
        bail!(
            "basic_block: expected more than 1 value per channel when training, found output {:?}",
            g.output_dims()
        )
    }
    let packed = Tensor::cat(
        &[
            &w1.flatten_all()?,
            gamma1,
            beta1,
            &w2.flatten_all()?,
            gamma2,
            beta2,
        ],
        0,
    )?;
    let state = Arc::new(Mutex::new(State::default()));
    let op = BasicBlockOp {
        g: *g,
        eps,
        keep_col: tracked(&packed),
        state: Arc::clone(&state),
    };
    let y = x.contiguous()?.apply_op2(&packed, op)?;
    let s = lock(&state)?;
    let dev = x.device();
    let stat = |s: &Stats| -> Result<(Tensor, Tensor)> {
        Ok((
            Tensor::from_vec(s.mean.clone(), c, dev)?,
            Tensor::from_vec(s.var.clone(), c, dev)?,
        ))
    };
    Ok((y, [stat(&s.stats[0])?, stat(&s.stats[1])?]))
}
