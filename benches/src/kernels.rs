//! The kernels of `convnets-kernels` on plain slices, at the shapes of the bench models'
//! layers: what `cargo bench -p convnets-bench -- kernels/` (criterion) and
//! `convnets-bench kernels` (a table of GFLOP/s against the measured FMA peak, one process per
//! kernel path) time.
//!
//! The kernel path is the process's ([`convnets_kernels::isa`]), chosen once from the CPU and
//! `CONVNETS_ISA=avx512|avx2|portable`; a run on another path is another process.

use anyhow::{Context, Result};
use convnets_kernels::{conv, norm, pool, Conv2dParams, ConvGeometry, Pool2dParams, PoolDims};

/// One convolution of a bench model.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    /// `model_layer_b{batch}_{c}x{h}x{w}_k{k}[s{s}][p{p}]_o{c_out}`: the name says the shape.
    pub name: &'static str,
    /// Input `[b, c_in, h, w]`.
    pub input: [usize; 4],
    /// Weight `[c_out, c_in, kh, kw]`.
    pub weight: [usize; 4],
    /// Stride (both dims).
    pub stride: usize,
    /// Zero padding (both sides, both dims).
    pub padding: usize,
}

const fn conv(
    name: &'static str,
    input: [usize; 4],
    weight: [usize; 4],
    stride: usize,
    padding: usize,
) -> ConvShape {
    ConvShape {
        name,
        input,
        weight,
        stride,
        padding,
    }
}

/// The convolutions of LeNet-5 (batch 256), MnistNet (batch 64), SimpleCNN and ResNet-20
/// (batch 128; every shape of its step: the first layer, the three stages, the two stride-2
/// layers and their 1x1 projection shortcuts), and of seed 001's residual and Inception
/// networks (batch 64; the Inception block's 1x1 convolutions left out), the batches of
/// their bench recipes.
pub const CONV_SHAPES: [ConvShape; 23] = [
    conv(
        "lenet5_conv1_b256_1x28x28_k5_o6",
        [256, 1, 28, 28],
        [6, 1, 5, 5],
        1,
        0,
    ),
    conv(
        "lenet5_conv2_b256_6x12x12_k5_o16",
        [256, 6, 12, 12],
        [16, 6, 5, 5],
        1,
        0,
    ),
    conv(
        "mnistnet_conv1_b64_1x28x28_k5_o10",
        [64, 1, 28, 28],
        [10, 1, 5, 5],
        1,
        0,
    ),
    conv(
        "mnistnet_conv2_b64_10x12x12_k5_o20",
        [64, 10, 12, 12],
        [20, 10, 5, 5],
        1,
        0,
    ),
    conv(
        "simplecnn_conv1_b128_3x32x32_k3p1_o32",
        [128, 3, 32, 32],
        [32, 3, 3, 3],
        1,
        1,
    ),
    conv(
        "simplecnn_conv2_b128_32x16x16_k3p1_o64",
        [128, 32, 16, 16],
        [64, 32, 3, 3],
        1,
        1,
    ),
    conv(
        "simplecnn_conv3_b128_64x8x8_k3p1_o128",
        [128, 64, 8, 8],
        [128, 64, 3, 3],
        1,
        1,
    ),
    conv(
        "resnet20_stage1_b128_16x32x32_k3p1_o16",
        [128, 16, 32, 32],
        [16, 16, 3, 3],
        1,
        1,
    ),
    conv(
        "resnet20_stage2_b128_32x16x16_k3p1_o32",
        [128, 32, 16, 16],
        [32, 32, 3, 3],
        1,
        1,
    ),
    conv(
        "resnet20_stage3_b128_64x8x8_k3p1_o64",
        [128, 64, 8, 8],
        [64, 64, 3, 3],
        1,
        1,
    ),
    conv(
        "resnet20_conv1_b128_3x32x32_k3p1_o16",
        [128, 3, 32, 32],
        [16, 3, 3, 3],
        1,
        1,
    ),
    conv(
        "resnet20_down_b128_16x32x32_k3s2p1_o32",
        [128, 16, 32, 32],
        [32, 16, 3, 3],
        2,
        1,
    ),
    conv(
        "resnet20_down2_b128_32x16x16_k3s2p1_o64",
        [128, 32, 16, 16],
        [64, 32, 3, 3],
        2,
        1,
    ),
    conv(
        "resnet20_short1_b128_16x32x32_k1s2_o32",
        [128, 16, 32, 32],
        [32, 16, 1, 1],
        2,
        0,
    ),
    conv(
        "resnet20_short2_b128_32x16x16_k1s2_o64",
        [128, 32, 16, 16],
        [64, 32, 1, 1],
        2,
        0,
    ),
    conv(
        "residual_conv1_b64_1x28x28_k5_o16",
        [64, 1, 28, 28],
        [16, 1, 5, 5],
        1,
        0,
    ),
    conv(
        "residual_block1_b64_16x12x12_k3p1_o16",
        [64, 16, 12, 12],
        [16, 16, 3, 3],
        1,
        1,
    ),
    conv(
        "residual_conv2_b64_16x12x12_k5_o32",
        [64, 16, 12, 12],
        [32, 16, 5, 5],
        1,
        0,
    ),
    conv(
        "residual_block2_b64_32x4x4_k3p1_o32",
        [64, 32, 4, 4],
        [32, 32, 3, 3],
        1,
        1,
    ),
    conv(
        "inception_conv2_b64_88x12x12_k5_o20",
        [64, 88, 12, 12],
        [20, 88, 5, 5],
        1,
        0,
    ),
    conv(
        "inception_5x5_b64_16x12x12_k5p2_o24",
        [64, 16, 12, 12],
        [24, 16, 5, 5],
        1,
        2,
    ),
    conv(
        "inception_3x3a_b64_16x12x12_k3p1_o24",
        [64, 16, 12, 12],
        [24, 16, 3, 3],
        1,
        1,
    ),
    conv(
        "inception_3x3b_b64_24x12x12_k3p1_o24",
        [64, 24, 12, 12],
        [24, 24, 3, 3],
        1,
        1,
    ),
];

impl ConvShape {
    /// The convolution's arguments.
    pub fn params(&self) -> Conv2dParams {
        Conv2dParams {
            stride: [self.stride; 2],
            padding: [self.padding; 2],
            ..Default::default()
        }
    }

    /// The checked geometry (with a bias).
    pub fn geometry(&self) -> Result<ConvGeometry> {
        ConvGeometry::new(
            &self.input,
            &self.weight,
            Some(&[self.weight[0]]),
            &self.params(),
        )
        .with_context(|| format!("shape {}", self.name))
    }

    /// Floating-point operations of one pass's GEMM: `2 * b * oh * ow * c_out * c_in * kh * kw`,
    /// the same for the forward, the input gradient and the weight gradient.
    pub fn gemm_flops(&self) -> Result<f64> {
        let g = self.geometry()?;
        Ok(2.0 * (g.b * g.oh * g.ow * g.c_out * g.c_in * g.kh * g.kw) as f64)
    }
}

/// A pass of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// `y = conv(x, w) + b`.
    Forward,
    /// `dx` from `dy` and `w`.
    InputGrad,
    /// `dw` from `x` and `dy` (unfolding the input again: nothing kept from the forward).
    WeightGrad,
}

impl Pass {
    /// All three.
    pub const ALL: [Pass; 3] = [Pass::Forward, Pass::InputGrad, Pass::WeightGrad];

    /// `fwd`, `input_grad` or `weight_grad`.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Forward => "fwd",
            Pass::InputGrad => "input_grad",
            Pass::WeightGrad => "weight_grad",
        }
    }
}

/// Deterministic values in `[-1, 1)` (a multiplicative hash: no generator needed).
pub fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h =
                (i.wrapping_add(seed.wrapping_mul(0x9e37_79b9)) as u32).wrapping_mul(2_654_435_761);
            (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// The tensors of one convolution, ready to run any pass.
pub struct ConvCase {
    /// The shape.
    pub shape: ConvShape,
    /// Its geometry.
    pub g: ConvGeometry,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
}

impl ConvCase {
    /// Fills input, weight, bias and output gradient of `shape`.
    pub fn new(shape: ConvShape) -> Result<Self> {
        let g = shape.geometry()?;
        let len = |d: [usize; 4]| d.iter().product::<usize>();
        Ok(Self {
            shape,
            g,
            x: values(len(g.input_dims()), 1),
            w: values(len(g.weight_dims()), 2),
            b: values(g.c_out, 3),
            dy: values(len(g.output_dims()), 4),
        })
    }

    /// Runs one pass; returns the output's length.
    pub fn run(&self, pass: Pass) -> Result<usize> {
        let g = &self.g;
        Ok(match pass {
            Pass::Forward => conv::conv2d_fwd(g, &self.x, &self.w, Some(&self.b), false)?
                .0
                .len(),
            Pass::InputGrad => conv::conv2d_bwd_input(g, &self.dy, &self.w)?.len(),
            Pass::WeightGrad => conv::conv2d_bwd_weight(g, &self.x, &self.dy, None)?.len(),
        })
    }
}

/// One 2x2 pooling of a bench model: `(name, input [b, c, h, w], max)` (average when not max).
pub const POOL_SHAPES: [(&str, [usize; 4], bool); 5] = [
    ("lenet5_avgpool1_b256_6x24x24_k2", [256, 6, 24, 24], false),
    ("lenet5_avgpool2_b256_16x8x8_k2", [256, 16, 8, 8], false),
    ("mnistnet_maxpool1_b64_10x24x24_k2", [64, 10, 24, 24], true),
    ("mnistnet_maxpool2_b64_20x8x8_k2", [64, 20, 8, 8], true),
    (
        "simplecnn_maxpool1_b128_32x32x32_k2",
        [128, 32, 32, 32],
        true,
    ),
];

/// The tensors of one pooling.
pub struct PoolCase {
    /// Max (else average) pooling.
    pub max: bool,
    /// Its sizes.
    pub d: PoolDims,
    p: Pool2dParams,
    x: Vec<f32>,
    dy: Vec<f32>,
}

impl PoolCase {
    /// Fills the input and output gradient of a 2x2, stride-2 pooling of `input`.
    pub fn new(input: [usize; 4], max: bool) -> Result<Self> {
        let p = Pool2dParams::square(2, 2);
        let d = PoolDims::new(&input, &p)?;
        Ok(Self {
            max,
            d,
            p,
            x: values(d.input_len(), 5),
            dy: values(d.output_len(), 6),
        })
    }

    /// Forward (`backward == false`) or backward; returns the output's length.
    pub fn run(&self, backward: bool) -> Result<usize> {
        let (d, p) = (&self.d, &self.p);
        Ok(match (self.max, backward) {
            (true, false) => pool::max_fwd(&self.x, d, p)?.len(),
            (true, true) => pool::max_bwd(&self.x, &self.dy, d, p)?.len(),
            (false, false) => pool::avg_fwd(&self.x, d, p)?.len(),
            (false, true) => pool::avg_bwd(&self.dy, d, p)?.len(),
        })
    }
}

/// The batch normalisations of ResNet-20 (batch 128), one per stage: `(name, [b, c, hw])`.
pub const NORM_SHAPES: [(&str, [usize; 3]); 3] = [
    ("resnet20_bn_stage1_b128_16x32x32", [128, 16, 1024]),
    ("resnet20_bn_stage2_b128_32x16x16", [128, 32, 256]),
    ("resnet20_bn_stage3_b128_64x8x8", [128, 64, 64]),
];

/// A pass of a training-mode batch normalisation (each followed by ReLU, as in ResNet-20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormPass {
    /// The batch statistics (`norm::channel_stats`): one read of `x`.
    Stats,
    /// The normalisation with ReLU (`norm::bn_fwd`): a read of `x`, a write of `y`.
    Forward,
    /// The gradients through ReLU's mask (`norm::bn_bwd`): reads of `x`, `dy`, `y` for the
    /// sums and again for `dx`, a write of `dx`.
    Backward,
}

impl NormPass {
    /// All three.
    pub const ALL: [NormPass; 3] = [NormPass::Stats, NormPass::Forward, NormPass::Backward];

    /// `stats`, `fwd` or `bwd`.
    pub fn name(self) -> &'static str {
        match self {
            NormPass::Stats => "stats",
            NormPass::Forward => "fwd",
            NormPass::Backward => "bwd",
        }
    }

    /// Tensor-sized reads and writes of the pass (its memory traffic, in tensors).
    pub fn tensors_moved(self) -> usize {
        match self {
            NormPass::Stats => 1,
            NormPass::Forward => 2,
            NormPass::Backward => 7,
        }
    }
}

/// The tensors of one batch normalisation, ready to run any pass.
pub struct NormCase {
    /// `[b, c, hw]`.
    pub dims: (usize, usize, usize),
    x: Vec<f32>,
    y: Vec<f32>,
    dy: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    mean: Vec<f32>,
    invstd: Vec<f32>,
}

impl NormCase {
    /// Fills input, output (through ReLU), output gradient and parameters of `[b, c, hw]`.
    pub fn new([b, c, hw]: [usize; 3]) -> Result<Self> {
        let x = values(b * c * hw, 7);
        let (gamma, beta) = (values(c, 8), values(c, 9));
        let (mean, var) = norm::channel_stats(&x, b, c, hw)?;
        let invstd: Vec<f32> = var.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
        let y = norm::bn_fwd(&x, &gamma, &beta, &mean, &invstd, (b, c, hw), true)?;
        Ok(Self {
            dims: (b, c, hw),
            dy: values(x.len(), 10),
            x,
            y,
            gamma,
            beta,
            mean,
            invstd,
        })
    }

    /// Bytes of one tensor.
    pub fn tensor_bytes(&self) -> usize {
        4 * self.x.len()
    }

    /// Runs one pass; returns an output's length.
    pub fn run(&self, pass: NormPass) -> Result<usize> {
        let (b, c, hw) = self.dims;
        Ok(match pass {
            NormPass::Stats => norm::channel_stats(&self.x, b, c, hw)?.0.len(),
            NormPass::Forward => norm::bn_fwd(
                &self.x,
                &self.gamma,
                &self.beta,
                &self.mean,
                &self.invstd,
                self.dims,
                true,
            )?
            .len(),
            NormPass::Backward => norm::bn_bwd(
                &self.x,
                &self.dy,
                Some(&self.y),
                &self.mean,
                &self.invstd,
                &self.gamma,
                self.dims,
            )?
            .0
            .len(),
        })
    }
}
