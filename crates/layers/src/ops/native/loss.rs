//! Cross-entropy (log-softmax and the negative log-likelihood, fused) as a candle custom op,
//! over [`convnets_kernels::loss`].

use super::{f32_data, kernel_error};
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use convnets_kernels::loss;

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
        let loss = loss::cross_entropy_fwd(x, &labels, self.classes).map_err(kernel_error)?;
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
        let dx =
            loss::cross_entropy_bwd(&logits, &labels, self.classes, g).map_err(kernel_error)?;
        Ok((
            Some(Tensor::from_vec(dx, (self.rows, self.classes), x.device())?),
            None,
        ))
    }
}
