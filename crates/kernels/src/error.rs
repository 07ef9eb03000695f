//! The errors of the kernels: what a kernel expected of its arguments and what it found.

use crate::{Conv2dParams, Pool2dParams};

/// Why a kernel refused its arguments. Each variant carries the values it checked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// A slice argument has the wrong number of elements.
    #[error("{op}: {what} has {found} elements, expected {expected}")]
    Length {
        /// The kernel (`"conv2d"`, `"max_pool2d grad"`, ...).
        op: &'static str,
        /// The argument (`"input"`, `"weight"`, `"output gradient"`, ...).
        what: &'static str,
        /// The length the geometry implies.
        expected: usize,
        /// The length passed.
        found: usize,
    },
    /// The convolution's input is not `[batch, c_in, h, w]`.
    #[error("expected an input [batch, {c_in}, h, w], found {input:?}")]
    ConvInputRank {
        /// The input's dims.
        input: Vec<usize>,
        /// The input channels the weight expects.
        c_in: usize,
    },
    /// The convolution's weight is not `[c_out, c_in / groups, kh, kw]`.
    #[error("expected a weight [c_out, c_in / groups, kh, kw], found {weight:?}")]
    ConvWeightRank {
        /// The weight's dims.
        weight: Vec<usize>,
    },
    /// A zero in the weight's dims or the groups.
    #[error(
        "cannot convolve with an empty weight {weight:?} (groups {groups}): channels, kernel and \
         groups must be positive"
    )]
    ConvEmptyWeight {
        /// The weight's dims.
        weight: Vec<usize>,
        /// The groups.
        groups: usize,
    },
    /// A zero stride or dilation.
    #[error("stride {stride:?} and dilation {dilation:?} must be positive")]
    ConvZeroStep {
        /// The stride `(h, w)`.
        stride: [usize; 2],
        /// The dilation `(h, w)`.
        dilation: [usize; 2],
    },
    /// The output channels do not divide by the groups.
    #[error("weight {weight:?}: {c_out} output channels do not divide by groups ({groups})")]
    ConvGroups {
        /// The weight's dims.
        weight: Vec<usize>,
        /// Its output channels.
        c_out: usize,
        /// The groups.
        groups: usize,
    },
    /// The input's channels are not the weight's input channels times the groups.
    #[error(
        "expected {c_in} input channels (weight {weight:?}, groups {groups}), found input {input:?}"
    )]
    ConvChannels {
        /// The input's dims.
        input: Vec<usize>,
        /// The weight's dims.
        weight: Vec<usize>,
        /// The groups.
        groups: usize,
        /// The input channels expected.
        c_in: usize,
    },
    /// The bias is not `[c_out]`.
    #[error("bias {bias:?} does not match weight {weight:?}, expected [{c_out}]")]
    ConvBias {
        /// The bias's dims.
        bias: Vec<usize>,
        /// The weight's dims.
        weight: Vec<usize>,
        /// The output channels.
        c_out: usize,
    },
    /// The input's image is empty (PyTorch refuses it too: "only zero batch or zero channel
    /// inputs are supported").
    #[error("input {input:?} has an empty image ({h}x{w}); height and width must be positive")]
    ConvEmptyImage {
        /// The input's dims.
        input: Vec<usize>,
        /// Its height.
        h: usize,
        /// Its width.
        w: usize,
    },
    /// The (dilated) kernel does not fit the (padded) input.
    #[error(
        "input {input:?} is too small for kernel {kh}x{kw} (padding {:?}, dilation {:?}, \
         stride {:?}): the kernel does not fit, calculated output size is too small",
        params.padding, params.dilation, params.stride
    )]
    ConvTooSmall {
        /// The input's dims.
        input: Vec<usize>,
        /// Kernel height.
        kh: usize,
        /// Kernel width.
        kw: usize,
        /// The convolution's arguments.
        params: Conv2dParams,
    },
    /// The pooling's input is not `[b, c, h, w]`.
    #[error("expected a 4-D input [b, c, h, w], found {input:?}")]
    PoolRank {
        /// The input's dims.
        input: Vec<usize>,
    },
    /// The pooling window does not fit the input, or its arguments are invalid.
    #[error(
        "cannot pool input {input:?} with {params:?} (kernel and stride must be > 0, padding at \
         most half the kernel, and the padded input at least the kernel)"
    )]
    PoolSize {
        /// The input's dims.
        input: Vec<usize>,
        /// The pooling's arguments.
        params: Pool2dParams,
    },
    /// A class label outside `[0, classes)`.
    #[error("cross_entropy: label {label} is not a class index in [0, {classes})")]
    Label {
        /// The label.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
}

/// A kernel's result.
pub type Result<T> = std::result::Result<T, KernelError>;

/// Checks that `data` has `expected` elements.
pub(crate) fn check_len<T>(
    data: &[T],
    expected: usize,
    op: &'static str,
    what: &'static str,
) -> Result<()> {
    if data.len() == expected {
        Ok(())
    } else {
        Err(KernelError::Length {
            op,
            what,
            expected,
            found: data.len(),
        })
    }
}
