//! Losses, with PyTorch's reductions: cross-entropy (with class weights and label smoothing),
//! negative log-likelihood, mean squared error, mean absolute error and seed 004's L2 loss
//! (the Euclidean distance), and the [`Loss`] the trainer is configured with.
//!
//! Every function is differentiable through candle's autograd, and returns a scalar for
//! [`Reduction::Mean`] and [`Reduction::Sum`], one value per sample (or per element, for the
//! elementwise losses) for [`Reduction::None`]. Bad arguments (shapes, label values, weights,
//! a label smoothing outside `[0, 1]`) are errors that name the function and the value.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use convnets_train::loss::{mse_loss, Reduction};
//! let pred = Tensor::new(&[1f32, 2.], &Device::Cpu)?;
//! let zero = Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu)?;
//! assert_eq!(mse_loss(&pred, &zero, Reduction::Mean)?.to_scalar::<f32>()?, 2.5);
//! assert_eq!(mse_loss(&pred, &zero, Reduction::Sum)?.to_scalar::<f32>()?, 5.0);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{bail, DType, Device, Result, Tensor, D};
use serde::{Deserialize, Serialize};

/// Mean cross-entropy of `logits` `[b, classes]` against integer `labels` `[b]` (PyTorch's
/// `nn.CrossEntropyLoss()` with the default mean reduction): the fused kernel of
/// [`convnets_layers::ops::cross_entropy`] on the CPU, candle's composition elsewhere.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    convnets_layers::ops::cross_entropy(logits, labels)
}

/// How a loss reduces its per-sample (or per-element) values, PyTorch's `reduction=`
/// argument. Serialised as `"mean"`, `"sum"` or `"none"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// The mean (PyTorch's default); for weighted cross-entropy and NLL, the sum divided by
    /// the total weight of the targets. NaN for an empty batch, as in PyTorch.
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: one value per sample (per element for [`mse_loss`] and [`l1_loss`]).
    None,
}

/// The options of [`cross_entropy_with`], those of `torch.nn.functional.cross_entropy`
/// (without `ignore_index`: every label must be a class).
#[derive(Clone, Debug, Default)]
pub struct CrossEntropyOptions {
    /// Label smoothing in `[0, 1]`: the target is `(1 - ε)·onehot + ε/classes` (0: none).
    pub label_smoothing: f64,
    /// A weight per class, `[classes]` (PyTorch's `weight=`), or `None` for all ones.
    pub weight: Option<Tensor>,
    /// The reduction.
    pub reduction: Reduction,
}

/// Checks `labels` `[rows]` (u8, u32 or i64) against `classes` and returns them as `u32`, on
/// the labels' device. `what` names the caller in errors.
fn class_labels(what: &str, labels: &Tensor, rows: usize, classes: usize) -> Result<Tensor> {
    if labels.dims() != [rows] {
        bail!(
            "{what}: expected labels [{rows}] (one class index per row of the input), found {:?}",
            labels.dims()
        )
    }
    if !matches!(labels.dtype(), DType::U8 | DType::U32 | DType::I64) {
        bail!(
            "{what}: labels must be integer class indices (u8, u32 or i64), found {:?}",
            labels.dtype()
        )
    }
    let values = labels.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    if let Some((i, &l)) = values
        .iter()
        .enumerate()
        .find(|&(_, &l)| !usize::try_from(l).is_ok_and(|l| l < classes))
    {
        bail!("{what}: label {l} (at index {i}) is not a class index in [0, {classes})")
    }
    labels.to_dtype(DType::U32)
}

/// `[b, classes]` of `input`, or an error naming `what`.
fn rows_and_classes(what: &str, input: &Tensor) -> Result<(usize, usize)> {
    match input.dims() {
        &[b, c] => Ok((b, c)),
        other => bail!("{what}: expected an input [batch, classes], found {other:?}"),
    }
}

/// The class weights as a `[classes]` tensor of `like`'s dtype and device.
fn class_weights(what: &str, weight: &Tensor, classes: usize, like: &Tensor) -> Result<Tensor> {
    if weight.dims() != [classes] {
        bail!(
            "{what}: expected a weight for each of the {classes} classes ([{classes}]), found {:?}",
            weight.dims()
        )
    }
    weight.to_device(like.device())?.to_dtype(like.dtype())
}

/// Checks a label smoothing value (PyTorch: "label_smoothing must be between 0.0 and 1.0").
fn check_label_smoothing(what: &str, label_smoothing: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&label_smoothing) {
        bail!("{what}: label_smoothing must be between 0.0 and 1.0, found {label_smoothing}")
    }
    Ok(())
}

/// Reduces per-sample values `[b]`: mean, sum or as they are.
fn reduce(values: Tensor, reduction: Reduction) -> Result<Tensor> {
    match reduction {
        Reduction::Mean => values.mean_all(),
        Reduction::Sum => values.sum_all(),
        Reduction::None => Ok(values),
    }
}

/// Mean of `values` `[b]` weighted as PyTorch's weighted losses are: `sum(values) /
/// sum(target_weights)`; the plain mean without weights.
fn weighted_mean(values: &Tensor, target_weights: Option<&Tensor>) -> Result<Tensor> {
    match target_weights {
        Some(w) => values.sum_all()?.div(&w.sum_all()?),
        None => values.mean_all(),
    }
}

/// The negative log-likelihood loss (`torch.nn.functional.nll_loss`) of `log_probs`
/// `[b, classes]` (log-probabilities, e.g. a `log_softmax` output) against integer `labels`
/// `[b]` (u8, u32 or i64, each in `[0, classes)`), with optional class `weight` `[classes]`.
///
/// Sample `i` contributes `-w[y_i] · log_probs[i, y_i]` (`w = 1` without weights); the mean
/// divides the sum by `Σ w[y_i]`, PyTorch's weighted mean (so a batch whose targets all weigh
/// 0 gives NaN, as in PyTorch).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use convnets_train::loss::{nll_loss, Reduction};
/// let lp = Tensor::new(&[[-1f32, -2.], [-3., -4.]], &Device::Cpu)?;
/// let y = Tensor::new(&[1u32, 0], &Device::Cpu)?;
/// assert_eq!(nll_loss(&lp, &y, None, Reduction::Sum)?.to_scalar::<f32>()?, 5.0);
/// let w = Tensor::new(&[1f32, 3.], &Device::Cpu)?;
/// // (3·2 + 1·3) / (3 + 1)
/// assert_eq!(nll_loss(&lp, &y, Some(&w), Reduction::Mean)?.to_scalar::<f32>()?, 2.25);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn nll_loss(
    log_probs: &Tensor,
    labels: &Tensor,
    weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<Tensor> {
    let what = "nll_loss";
    let (rows, classes) = rows_and_classes(what, log_probs)?;
    let labels = class_labels(what, labels, rows, classes)?;
    let weight = weight
        .map(|w| class_weights(what, w, classes, log_probs))
        .transpose()?;
    nll(log_probs, &labels, weight.as_ref(), reduction)
}

/// [`nll_loss`] on checked arguments: `labels` u32 `[b]`, `weight` `[classes]` of the input's
/// dtype.
fn nll(
    log_probs: &Tensor,
    labels: &Tensor,
    weight: Option<&Tensor>,
    reduction: Reduction,
) -> Result<Tensor> {
    if log_probs.dim(0)? == 0 {
        return reduce(log_probs.sum(1)?, reduction);
    }
    let picked = log_probs
        .contiguous()?
        .gather(&labels.unsqueeze(1)?.contiguous()?, 1)?
        .squeeze(1)?; // [b]
    let target_weights = weight.map(|w| w.index_select(labels, 0)).transpose()?;
    let per_sample = match &target_weights {
        Some(w) => (picked * w)?.neg()?,
        None => picked.neg()?,
    };
    match reduction {
        Reduction::Mean => weighted_mean(&per_sample, target_weights.as_ref()),
        other => reduce(per_sample, other),
    }
}

/// Cross-entropy of `logits` `[b, classes]` against integer `labels` `[b]` (u8, u32 or i64,
/// each in `[0, classes)`), exactly as `torch.nn.functional.cross_entropy(logits, labels,
/// weight, reduction=..., label_smoothing=...)` computes it:
///
/// - `nll = nll_loss(log_softmax(logits), labels, weight, reduction)` (see [`nll_loss`]: the
///   weighted mean divides by the sum of the weights of the targets);
/// - with label smoothing `ε > 0`, plus the uniform part: `smooth_i = -Σ_c w[c] ·
///   log_softmax(logits)[i, c]` (`w = 1` without weights), reduced the same way (its weighted
///   mean is also divided by `Σ w[y_i]`), and the loss is `(1 - ε) · nll + ε / classes ·
///   smooth`.
///
/// The default options (no weights, no smoothing, mean) take the fused kernel of
/// [`cross_entropy`]. PyTorch's `ignore_index` is not supported: every label must be a class.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use convnets_train::loss::{cross_entropy_with, CrossEntropyOptions, Reduction};
/// let logits = Tensor::new(&[[0f32, 0.], [0., 0.]], &Device::Cpu)?;
/// let y = Tensor::new(&[0u32, 1], &Device::Cpu)?;
/// let opts = CrossEntropyOptions { label_smoothing: 0.2, reduction: Reduction::None, ..Default::default() };
/// let l = cross_entropy_with(&logits, &y, &opts)?.to_vec1::<f32>()?;
/// assert!(l.iter().all(|v| (v - 2f32.ln()).abs() < 1e-6));
/// let bad = CrossEntropyOptions { label_smoothing: 1.5, ..Default::default() };
/// assert!(cross_entropy_with(&logits, &y, &bad).is_err());
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn cross_entropy_with(
    logits: &Tensor,
    labels: &Tensor,
    opts: &CrossEntropyOptions,
) -> Result<Tensor> {
    let what = "cross_entropy";
    check_label_smoothing(what, opts.label_smoothing)?;
    let (rows, classes) = rows_and_classes(what, logits)?;
    let labels = class_labels(what, labels, rows, classes)?;
    let weight = opts
        .weight
        .as_ref()
        .map(|w| class_weights(what, w, classes, logits))
        .transpose()?;
    let smoothing = opts.label_smoothing;
    if weight.is_none() && smoothing == 0.0 && opts.reduction == Reduction::Mean && rows > 0 {
        return cross_entropy(logits, &labels);
    }
    if rows == 0 {
        // candle cannot take the max of an empty tensor: no log-softmax, and PyTorch's values
        // (an empty per-sample loss, a zero sum, a NaN mean) directly.
        return reduce(logits.sum(1)?, opts.reduction);
    }
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = nll(&log_probs, &labels, weight.as_ref(), opts.reduction)?;
    if smoothing == 0.0 {
        return Ok(nll);
    }
    let smooth = match &weight {
        Some(w) => log_probs.broadcast_mul(&w.unsqueeze(0)?)?.sum(1)?.neg()?,
        None => log_probs.sum(1)?.neg()?,
    }; // [b]
    let smooth = match opts.reduction {
        Reduction::Mean => {
            let target_weights = weight.map(|w| w.index_select(&labels, 0)).transpose()?;
            weighted_mean(&smooth, target_weights.as_ref())?
        }
        other => reduce(smooth, other)?,
    };
    (nll * (1.0 - smoothing))? + (smooth * (smoothing / classes as f64))?
}

/// `pred` and `target` must have the same shape (PyTorch would broadcast, with a warning).
fn same_shape(what: &str, pred: &Tensor, target: &Tensor) -> Result<()> {
    if pred.dims() != target.dims() {
        bail!(
            "{what}: prediction {:?} and target {:?} must have the same shape",
            pred.dims(),
            target.dims()
        )
    }
    Ok(())
}

/// The difference `pred - target`, the target cast to the prediction's dtype and device.
fn difference(what: &str, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape(what, pred, target)?;
    pred - target.to_device(pred.device())?.to_dtype(pred.dtype())?
}

/// Mean squared error (`torch.nn.functional.mse_loss`): `(pred - target)²` elementwise,
/// averaged over every element (seed 004's MSE: "the sum of the squared differences divided
/// by the number of samples"), summed, or kept elementwise with [`Reduction::None`]. `pred`
/// and `target` must have the same shape.
pub fn mse_loss(pred: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    reduce(difference("mse_loss", pred, target)?.sqr()?, reduction)
}

/// Mean absolute error, MAE (`torch.nn.functional.l1_loss`): `|pred - target|` elementwise,
/// averaged over every element, summed, or kept elementwise with [`Reduction::None`]. As in
/// PyTorch, the gradient of `|d|` at `d = 0` is 0. `pred` and `target` must have the same
/// shape.
pub fn l1_loss(pred: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let d = difference("l1_loss", pred, target)?;
    // |d| as d · sign(d): candle's `abs` has gradient 1 at 0, PyTorch's has 0.
    reduce((&d * d.sign()?)?, reduction)
}

/// Seed 004's L2 loss: "the square root of the sum of the squared differences between
/// prediction and target, the Euclidean distance" — per sample, over every dimension but the
/// first (`torch.linalg.vector_norm(pred - target, dim=1)` for `[b, n]`; a `[b]` input is
/// `b` samples of one value, whose distance is `|pred - target|`), then reduced over the
/// batch: the mean (or sum) of the per-sample distances, or the `[b]` distances themselves
/// with [`Reduction::None`].
///
/// This is not PyTorch's `MSELoss` (no square root, mean over elements); it is the norm
/// PyTorch's `vector_norm` computes, with its gradient `(pred - target) / distance`, and 0
/// where the distance is 0 (as PyTorch's).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use convnets_train::loss::{l2_distance, Reduction};
/// let pred = Tensor::new(&[[3f32, 4.], [0., 0.]], &Device::Cpu)?;
/// let target = Tensor::zeros((2, 2), candle_core::DType::F32, &Device::Cpu)?;
/// assert_eq!(l2_distance(&pred, &target, Reduction::None)?.to_vec1::<f32>()?, [5., 0.]);
/// assert_eq!(l2_distance(&pred, &target, Reduction::Mean)?.to_scalar::<f32>()?, 2.5);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn l2_distance(pred: &Tensor, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let what = "l2_distance";
    let d = difference(what, pred, target)?;
    let Some((&b, rest)) = d.dims().split_first() else {
        bail!("{what}: expected an input [batch, ...], found a scalar")
    };
    let n: usize = rest.iter().product();
    let squares = d.reshape((b, n))?.sqr()?.sum(1)?; // [b]
                                                     // sqrt with a zero gradient at 0 (sqrt's own is infinite there, and 0 · ∞ is NaN).
    let zero = squares.eq(0.0)?;
    let safe = zero.where_cond(&squares.ones_like()?, &squares)?;
    let dist = zero.where_cond(&squares.zeros_like()?, &safe.sqrt()?)?;
    reduce(dist, reduction)
}

/// The one-hot encoding `[b, classes]` of checked u32 `labels` `[b]`, in `dtype` on `device`.
fn one_hot(labels: &Tensor, classes: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let classes_row = Tensor::arange(0u32, classes as u32, device)?.unsqueeze(0)?;
    labels
        .to_device(device)?
        .unsqueeze(1)?
        .broadcast_eq(&classes_row)?
        .to_dtype(dtype)
}

/// The training loss, as configured (`{"name": "cross-entropy", "label_smoothing": 0.1}`,
/// `{"name": "mse"}`, …), computed on a classifier's outputs with the mean reduction by
/// [`Loss::compute`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Loss {
    /// Cross-entropy of the logits ([`cross_entropy_with`]): PyTorch's
    /// `nn.CrossEntropyLoss(weight, label_smoothing=...)`.
    CrossEntropy {
        /// Label smoothing in `[0, 1]` (0: none).
        #[serde(default)]
        label_smoothing: f64,
        /// One weight per class, or none (all ones).
        #[serde(default)]
        weight: Option<Vec<f32>>,
    },
    /// Negative log-likelihood ([`nll_loss`]): the model's outputs are taken as
    /// log-probabilities, so use it with a model whose last layer is `log_softmax` (seed
    /// 004's `F.log_softmax` + `F.nll_loss`).
    Nll,
    /// Mean squared error ([`mse_loss`]) between the outputs and the one-hot encoding of the
    /// labels: how seed 004's MSE applies to a classifier.
    Mse,
    /// Mean absolute error ([`l1_loss`]) between the outputs and the one-hot labels.
    L1,
    /// Seed 004's L2 loss ([`l2_distance`]): the Euclidean distance between each sample's
    /// outputs and its one-hot label, averaged over the batch.
    L2,
}

impl Default for Loss {
    /// Plain cross-entropy: no label smoothing, no class weights.
    fn default() -> Self {
        Loss::CrossEntropy {
            label_smoothing: 0.0,
            weight: None,
        }
    }
}

impl Loss {
    /// The name in configurations and logs: `cross-entropy`, `nll`, `mse`, `l1` or `l2`.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::CrossEntropy { .. } => "cross-entropy",
            Loss::Nll => "nll",
            Loss::Mse => "mse",
            Loss::L1 => "l1",
            Loss::L2 => "l2",
        }
    }

    /// Checks the configuration for a model with `classes` outputs: the label smoothing is in
    /// `[0, 1]` and there is one weight per class. [`Loss::compute`] checks it too; this lets
    /// a trainer fail before the first batch.
    pub fn check(&self, classes: usize) -> Result<()> {
        if let Loss::CrossEntropy {
            label_smoothing,
            weight,
        } = self
        {
            check_label_smoothing("loss cross-entropy", *label_smoothing)?;
            if let Some(w) = weight {
                if w.len() != classes {
                    bail!(
                        "loss cross-entropy: expected a weight for each of the {classes} classes, \
                         found {} weights",
                        w.len()
                    )
                }
            }
        }
        Ok(())
    }

    /// The loss (mean over the batch) of a classifier's `logits` `[b, classes]` against
    /// integer `labels` `[b]` (u8, u32 or i64, each in `[0, classes)`), differentiable with
    /// respect to the logits.
    ///
    /// Cross-entropy and NLL take the labels as class indices; the regression losses (MSE,
    /// L1, L2) compare the logits with the one-hot encoding of the labels (a `[b, classes]`
    /// target of zeros with a 1 at each label), which is how seed 004's MSE / MAE / L2 apply
    /// to a classifier.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use convnets_train::loss::Loss;
    /// let logits = Tensor::new(&[[1f32, 0.], [0., 0.]], &Device::Cpu)?;
    /// let labels = Tensor::new(&[0u32, 1], &Device::Cpu)?;
    /// // one-hot [[1, 0], [0, 1]]: squared errors 0, 0, 0, 1.
    /// assert_eq!(Loss::Mse.compute(&logits, &labels)?.to_scalar::<f32>()?, 0.25);
    /// assert_eq!(Loss::L2.compute(&logits, &labels)?.to_scalar::<f32>()?, 0.5);
    /// assert!(Loss::Mse.compute(&logits, &Tensor::new(&[0u32, 2], &Device::Cpu)?).is_err());
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn compute(&self, logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let what = format!("loss {}", self.name());
        let (rows, classes) = rows_and_classes(&what, logits)?;
        self.check(classes)?;
        match self {
            Loss::CrossEntropy {
                label_smoothing,
                weight,
            } => {
                let weight = weight
                    .as_ref()
                    .map(|w| Tensor::new(w.as_slice(), logits.device()))
                    .transpose()?;
                let opts = CrossEntropyOptions {
                    label_smoothing: *label_smoothing,
                    weight,
                    reduction: Reduction::Mean,
                };
                cross_entropy_with(logits, labels, &opts)
            }
            Loss::Nll => nll_loss(logits, labels, None, Reduction::Mean),
            Loss::Mse | Loss::L1 | Loss::L2 => {
                let labels = class_labels(&what, labels, rows, classes)?;
                let target = one_hot(&labels, classes, logits.dtype(), logits.device())?;
                match self {
                    Loss::Mse => mse_loss(logits, &target, Reduction::Mean),
                    Loss::L1 => l1_loss(logits, &target, Reduction::Mean),
                    _ => l2_distance(logits, &target, Reduction::Mean),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn t1(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn hand_worked_values() -> Result<()> {
        let zero = Tensor::zeros(2, DType::F32, &Device::Cpu)?;
        let p = t1(&[1., 2.]);
        assert_eq!(
            mse_loss(&p, &zero, Reduction::Mean)?.to_scalar::<f32>()?,
            2.5
        );
        assert_eq!(
            mse_loss(&p, &zero, Reduction::None)?.to_vec1::<f32>()?,
            [1., 4.]
        );
        assert_eq!(
            l1_loss(&t1(&[-1., 2.]), &zero, Reduction::Mean)?.to_scalar::<f32>()?,
            1.5
        );
        // One sample of 2 values: sqrt(1 + 4).
        let p2 = p.unsqueeze(0)?;
        let z2 = zero.unsqueeze(0)?;
        let d = l2_distance(&p2, &z2, Reduction::Sum)?.to_scalar::<f32>()?;
        assert!((d - 5f32.sqrt()).abs() < 1e-6);
        // [b] inputs: one value per sample.
        assert_eq!(
            l2_distance(&t1(&[-3., 4.]), &zero, Reduction::None)?.to_vec1::<f32>()?,
            [3., 4.]
        );
        // Uniform logits: log(classes), whatever the smoothing or weights.
        let logits = Tensor::zeros((3, 4), DType::F32, &Device::Cpu)?;
        let y = Tensor::new(&[0u32, 3, 3], &Device::Cpu)?;
        let opts = CrossEntropyOptions {
            label_smoothing: 0.3,
            weight: Some(t1(&[1., 2., 3., 4.])),
            reduction: Reduction::Mean,
        };
        let l = cross_entropy_with(&logits, &y, &opts)?.to_scalar::<f32>()?;
        // nll part: (1·ln4 + 4·ln4 + 4·ln4) / 9 = ln4; smooth part: Σ_i Σ_c w_c ln4 / 9 = 30/9 ln4.
        let want = 0.7 * 4f32.ln() + 0.3 / 4. * (30. / 9.) * 4f32.ln();
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
        Ok(())
    }

    #[test]
    fn empty_batch_mean_is_nan_as_in_pytorch() -> Result<()> {
        let logits = Tensor::zeros((0, 3), DType::F32, &Device::Cpu)?;
        let y = Tensor::zeros(0, DType::U32, &Device::Cpu)?;
        let l = cross_entropy_with(&logits, &y, &CrossEntropyOptions::default())?;
        assert!(l.to_scalar::<f32>()?.is_nan());
        let s = CrossEntropyOptions {
            reduction: Reduction::Sum,
            ..Default::default()
        };
        assert_eq!(
            cross_entropy_with(&logits, &y, &s)?.to_scalar::<f32>()?,
            0.0
        );
        let n = nll_loss(&logits, &y, Some(&t1(&[1., 2., 3.])), Reduction::Mean)?;
        assert!(n.to_scalar::<f32>()?.is_nan());
        let none = nll_loss(&logits, &y, None, Reduction::None)?;
        assert_eq!(none.dims(), &[0]);
        assert!(mse_loss(&logits, &logits, Reduction::Mean)?
            .to_scalar::<f32>()?
            .is_nan());
        let d = l2_distance(&logits, &logits, Reduction::Sum)?;
        assert_eq!(d.to_scalar::<f32>()?, 0.0);
        Ok(())
    }

    #[test]
    fn zero_differences_have_zero_gradients() -> Result<()> {
        let p = Var::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu)?;
        let target = Tensor::new(&[[1f32, 0.], [3., 4.]], &Device::Cpu)?;
        let g = l1_loss(p.as_tensor(), &target, Reduction::Sum)?.backward()?;
        let gp = g.get(&p).map(|t| t.to_vec2::<f32>()).transpose()?;
        assert_eq!(gp, Some(vec![vec![0., 1.], vec![0., 0.]]));
        let g = l2_distance(p.as_tensor(), &target, Reduction::Sum)?.backward()?;
        let gp = g.get(&p).map(|t| t.to_vec2::<f32>()).transpose()?;
        assert_eq!(gp, Some(vec![vec![0., 1.], vec![0., 0.]]));
        Ok(())
    }

    #[test]
    fn bad_arguments_are_errors_that_name_the_value() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::zeros((2, 3), DType::F32, &dev)?;
        let y = Tensor::new(&[0u32, 1], &dev)?;
        let err = |r: Result<Tensor>| r.err().map(|e| e.to_string()).unwrap_or_default();
        for ls in [-0.1, 1.1, f64::NAN] {
            let opts = CrossEntropyOptions {
                label_smoothing: ls,
                ..Default::default()
            };
            let e = err(cross_entropy_with(&logits, &y, &opts));
            assert!(
                e.contains(&format!(
                    "label_smoothing must be between 0.0 and 1.0, found {ls}"
                )),
                "{e}"
            );
        }
        let opts = CrossEntropyOptions {
            weight: Some(t1(&[1., 2.])),
            ..Default::default()
        };
        let e = err(cross_entropy_with(&logits, &y, &opts));
        assert!(
            e.contains("weight for each of the 3 classes ([3]), found [2]"),
            "{e}"
        );
        let e = err(cross_entropy_with(
            &logits,
            &Tensor::new(&[0u32, 3], &dev)?,
            &Default::default(),
        ));
        assert!(
            e.contains("label 3 (at index 1) is not a class index in [0, 3)"),
            "{e}"
        );
        let e = err(nll_loss(
            &logits,
            &Tensor::new(&[-1i64, 0], &dev)?,
            None,
            Reduction::Mean,
        ));
        assert!(e.contains("nll_loss: label -1 (at index 0)"), "{e}");
        let e = err(nll_loss(
            &logits,
            &Tensor::new(&[0f32, 0.], &dev)?,
            None,
            Reduction::Mean,
        ));
        assert!(e.contains("labels must be integer class indices"), "{e}");
        let e = err(nll_loss(
            &logits,
            &Tensor::new(&[0u32], &dev)?,
            None,
            Reduction::Mean,
        ));
        assert!(e.contains("expected labels [2]"), "{e}");
        let e = err(mse_loss(&logits, &y, Reduction::Mean));
        assert!(
            e.contains("mse_loss: prediction [2, 3] and target [2] must have the same shape"),
            "{e}"
        );
        let e = err(l2_distance(
            &t1(&[1.]).squeeze(0)?,
            &t1(&[1.]).squeeze(0)?,
            Reduction::Mean,
        ));
        assert!(
            e.contains("l2_distance: expected an input [batch, ...]"),
            "{e}"
        );
        let e = err(Loss::L2.compute(&logits, &Tensor::new(&[0u32, 7], &dev)?));
        assert!(e.contains("loss l2: label 7 (at index 1)"), "{e}");
        let e = err(Loss::Nll.compute(&logits.flatten_all()?, &y));
        assert!(
            e.contains("loss nll: expected an input [batch, classes], found [6]"),
            "{e}"
        );
        let bad = Loss::CrossEntropy {
            label_smoothing: 0.0,
            weight: Some(vec![1.0; 4]),
        };
        let e = err(bad.compute(&logits, &y));
        assert!(
            e.contains("expected a weight for each of the 3 classes, found 4 weights"),
            "{e}"
        );
        Ok(())
    }

    #[test]
    fn config_round_trips_through_json() {
        let cases = [
            (
                Loss::default(),
                r#"{"name":"cross-entropy","label_smoothing":0.0,"weight":null}"#,
            ),
            (Loss::Nll, r#"{"name":"nll"}"#),
            (Loss::Mse, r#"{"name":"mse"}"#),
            (Loss::L1, r#"{"name":"l1"}"#),
            (Loss::L2, r#"{"name":"l2"}"#),
        ];
        for (loss, json) in cases {
            assert_eq!(serde_json::to_string(&loss).ok().as_deref(), Some(json));
            assert_eq!(serde_json::from_str::<Loss>(json).ok(), Some(loss.clone()));
            assert!(json.contains(loss.name()));
        }
        let smooth: Loss =
            serde_json::from_str(r#"{"name":"cross-entropy","label_smoothing":0.1}"#)
                .unwrap_or_default();
        assert_eq!(
            smooth,
            Loss::CrossEntropy {
                label_smoothing: 0.1,
                weight: None
            }
        );
        assert_eq!(
            serde_json::from_str::<Loss>(r#"{"name":"cross-entropy"}"#).ok(),
            Some(Loss::default())
        );
        assert!(serde_json::from_str::<Loss>(r#"{"name":"hinge"}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Reduction>(r#""none""#).ok(),
            Some(Reduction::None)
        );
    }
}
