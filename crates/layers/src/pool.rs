//! Pooling layers (PyTorch's `nn.MaxPool2d` and `nn.AvgPool2d`).

use crate::ops::{self, Pool2dParams};
use candle_core::{Module, Result, Tensor};

/// Max pooling; `MaxPool2d::new(k)` is PyTorch's `MaxPool2d(k)` (stride = kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d(pub Pool2dParams);

impl MaxPool2d {
    /// A `k`x`k` window with stride `k`.
    pub fn new(k: usize) -> Self {
        Self(Pool2dParams::square(k, k))
    }
    /// A `k`x`k` window with stride `s`.
    pub fn with_stride(k: usize, s: usize) -> Self {
        Self(Pool2dParams::square(k, s))
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::max_pool2d(x, &self.0)
    }
}

/// Average pooling; `AvgPool2d::new(k)` is PyTorch's `AvgPool2d(k)` (stride = kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2d(pub Pool2dParams);

impl AvgPool2d {
    /// A `k`x`k` window with stride `k`.
    pub fn new(k: usize) -> Self {
        Self(Pool2dParams::square(k, k))
    }
    /// A `k`x`k` window with stride `s`.
    pub fn with_stride(k: usize, s: usize) -> Self {
        Self(Pool2dParams::square(k, s))
    }
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::avg_pool2d(x, &self.0)
    }
}
