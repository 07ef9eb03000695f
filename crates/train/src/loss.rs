//! Losses.

use candle_core::{Result, Tensor};

/// Mean cross-entropy of `logits` `[b, classes]` against integer `labels` `[b]` (PyTorch's
/// `nn.CrossEntropyLoss()` with the default mean reduction).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    candle_nn::loss::cross_entropy(logits, labels)
}
