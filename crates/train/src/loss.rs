//! Losses.

use candle_core::{Result, Tensor};

/// Mean cross-entropy of `logits` `[b, classes]` against integer `labels` `[b]` (PyTorch's
/// `nn.CrossEntropyLoss()` with the default mean reduction): the fused kernel of
/// [`convnets_layers::ops::cross_entropy`] on the CPU, candle's composition elsewhere.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    convnets_layers::ops::cross_entropy(logits, labels)
}
