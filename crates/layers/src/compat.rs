//! candle-nn's layers as [`Layer`]s, so that they can go into a [`Sequential`] (or a model's
//! [`Layer::children`]) next to this crate's layers.
//!
//! The orphan rule keeps users from implementing our [`Layer`] for candle-nn's types; this
//! module does it for every candle-nn layer that is a [`ModuleT`](candle_core::ModuleT)
//! (candle's blanket `impl<M: Module> ModuleT for M` covers the `Module`s) and is `Send + Sync`:
//!
//! | candle-nn type | [`Layer::kind`] (PyTorch's class) |
//! | --- | --- |
//! | `Conv1d`, `Conv2d` | `"Conv1d"`, `"Conv2d"` |
//! | `ConvTranspose1d`, `ConvTranspose2d` | `"ConvTranspose1d"`, `"ConvTranspose2d"` |
//! | `Linear` | `"Linear"` |
//! | `BatchNorm` | `"BatchNorm2d"` (the convnets use; candle's layer takes any `[b, c, ...]`) |
//! | `LayerNorm`, `RmsNorm`, `GroupNorm` | `"LayerNorm"`, `"RMSNorm"`, `"GroupNorm"` |
//! | `Embedding` | `"Embedding"` |
//! | `Dropout` | `"Dropout"` |
//! | `PReLU`, `Identity` | `"PReLU"`, `"Identity"` |
//! | `Activation` | per variant: `"ReLU"`, `"GELU"`, `"SiLU"`, `"LeakyReLU"`, … |
//!
//! Left out: `candle_nn::Sequential` (its boxed `dyn Module`s are not `Send + Sync`) and
//! `Func` / `FuncT` (closures, with no kind to report).
//!
//! These layers have no name of their own ([`Layer::name`] is `None`): inside a
//! [`Sequential`] they go by their key. They are leaves and do not report rows to
//! [`summary`](crate::summary()) (only this crate's layers do), and their parameters take
//! candle-nn's initialisation, not PyTorch's.
//!
//! ```
//! use candle_core::{DType, Device, ModuleT, Tensor};
//! use convnets_layers::{named_modules, ParamStore, Relu, Sequential};
//! let store = ParamStore::new(0, &Device::Cpu);
//! let net = Sequential::new()
//!     .add("fc1", candle_nn::linear(4, 8, store.vb().pp("fc1"))?)
//!     .add("relu", Relu)
//!     .add("drop", candle_nn::Dropout::new(0.5))
//!     .add("fc2", candle_nn::linear(8, 2, store.vb().pp("fc2"))?);
//! let y = net.forward_t(&Tensor::zeros((3, 4), DType::F32, &Device::Cpu)?, false)?;
//! assert_eq!(y.dims(), &[3, 2]);
//! let kinds: Vec<_> = named_modules(&net).iter().map(|(n, l)| format!("{n}:{}", l.kind())).collect();
//! assert_eq!(kinds, [":Sequential", "fc1:Linear", "relu:ReLU", "drop:Dropout", "fc2:Linear"]);
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! [`Sequential`]: crate::Sequential

use crate::layer::Layer;
use candle_nn::Activation;

macro_rules! leaf {
    ($($ty:ty => $kind:literal),* $(,)?) => {
        $(
            #[doc = concat!("candle-nn's `", stringify!($ty), "` as a leaf of kind `\"", $kind, "\"`.")]
            impl Layer for $ty {
                fn kind(&self) -> &'static str {
                    $kind
                }
            }
        )*
    };
}

leaf! {
    candle_nn::Conv1d => "Conv1d",
    candle_nn::Conv2d => "Conv2d",
    candle_nn::ConvTranspose1d => "ConvTranspose1d",
    candle_nn::ConvTranspose2d => "ConvTranspose2d",
    candle_nn::Linear => "Linear",
    candle_nn::BatchNorm => "BatchNorm2d",
    candle_nn::LayerNorm => "LayerNorm",
    candle_nn::RmsNorm => "RMSNorm",
    candle_nn::GroupNorm => "GroupNorm",
    candle_nn::Embedding => "Embedding",
    candle_nn::Dropout => "Dropout",
    candle_nn::PReLU => "PReLU",
    candle_nn::ops::Identity => "Identity",
}

/// candle-nn's activations, each of the kind of its PyTorch class (`Relu` is `"ReLU"`, the
/// three GELUs `"GELU"`, `Silu` and `Swish` `"SiLU"`); candle's `Relu2` (squared ReLU) and
/// `Swiglu`, which PyTorch has no class for, are `"Relu2"` and `"SwiGLU"`.
impl Layer for Activation {
    fn kind(&self) -> &'static str {
        match self {
            Activation::Gelu | Activation::NewGelu | Activation::GeluPytorchTanh => "GELU",
            Activation::Relu => "ReLU",
            Activation::Relu2 => "Relu2",
            Activation::Relu6 => "ReLU6",
            Activation::Silu | Activation::Swish => "SiLU",
            Activation::Sigmoid => "Sigmoid",
            Activation::HardSigmoid => "Hardsigmoid",
            Activation::Swiglu => "SwiGLU",
            Activation::Mish => "Mish",
            Activation::HardSwish => "Hardswish",
            Activation::Elu(_) => "ELU",
            Activation::LeakyRelu(_) => "LeakyReLU",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{named_children, named_modules, Flatten, MaxPool2d, ParamStore, Relu, Sequential};
    use candle_core::{DType, Device, ModuleT, Tensor};

    #[test]
    fn candle_nn_layers_mix_with_ours_in_a_sequential() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let store = ParamStore::new(0, &dev);
        let vb = store.vb();
        let conv_cfg = candle_nn::Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let net = Sequential::new()
            .add("conv", candle_nn::conv2d(3, 4, 3, conv_cfg, vb.pp("conv"))?)
            .add(
                "bn",
                candle_nn::batch_norm(4, candle_nn::BatchNormConfig::default(), vb.pp("bn"))?,
            )
            .add("act", Activation::Relu)
            .add("pool", MaxPool2d::new(2))
            .add("flatten", Flatten)
            .add("fc1", candle_nn::linear(4 * 4 * 4, 8, vb.pp("fc1"))?)
            .add("relu", Relu)
            .add("drop", candle_nn::Dropout::new(0.5))
            .add("fc2", candle_nn::linear(8, 3, vb.pp("fc2"))?);
        let x = Tensor::randn(0f32, 1., (2, 3, 8, 8), &dev)?;
        assert_eq!(net.forward_t(&x, false)?.dims(), &[2, 3]);
        assert_eq!(net.forward_t(&x, true)?.dims(), &[2, 3]);

        let children: Vec<(String, &str)> = named_children(&net)
            .into_iter()
            .map(|(n, l)| (n, l.kind()))
            .collect();
        let want = [
            ("conv", "Conv2d"),
            ("bn", "BatchNorm2d"),
            ("act", "ReLU"),
            ("pool", "MaxPool2d"),
            ("flatten", "Flatten"),
            ("fc1", "Linear"),
            ("relu", "ReLU"),
            ("drop", "Dropout"),
            ("fc2", "Linear"),
        ];
        let want: Vec<(String, &str)> = want.iter().map(|&(n, k)| (n.to_string(), k)).collect();
        assert_eq!(children, want);
        assert_eq!(named_modules(&net).len(), 1 + want.len());
        // The parameters are in the store under the keys given to the VarBuilder.
        let names = store.names();
        for key in ["conv.weight", "conv.bias", "fc1.weight", "fc2.bias"] {
            assert!(names.iter().any(|n| n == key), "{key} not in {names:?}");
        }
        // Errors inside a candle-nn layer still surface as errors.
        assert!(net
            .forward_t(&Tensor::zeros((2, 5, 8, 8), DType::F32, &dev)?, false)
            .is_err());
        Ok(())
    }

    #[test]
    fn kinds_are_pytorch_class_names() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let store = ParamStore::new(0, &dev);
        let vb = store.vb();
        let layers: Vec<(Box<dyn Layer>, &str)> = vec![
            (
                Box::new(candle_nn::embedding(10, 4, vb.pp("emb"))?),
                "Embedding",
            ),
            (
                Box::new(candle_nn::layer_norm(4, 1e-5, vb.pp("ln"))?),
                "LayerNorm",
            ),
            (
                Box::new(candle_nn::rms_norm(4, 1e-5, vb.pp("rms"))?),
                "RMSNorm",
            ),
            (
                Box::new(candle_nn::group_norm(2, 4, 1e-5, vb.pp("gn"))?),
                "GroupNorm",
            ),
            (
                Box::new(candle_nn::conv1d(2, 2, 3, Default::default(), vb.pp("c1"))?),
                "Conv1d",
            ),
            (Box::new(candle_nn::ops::Identity::new()), "Identity"),
            (Box::new(Activation::LeakyRelu(0.1)), "LeakyReLU"),
            (Box::new(Activation::GeluPytorchTanh), "GELU"),
        ];
        for (layer, kind) in &layers {
            assert_eq!(layer.kind(), *kind);
            assert!(layer.name().is_none() && layer.children().is_empty());
        }
        let y = layers[0]
            .0
            .forward_t(&Tensor::new(&[1u32, 2, 3], &dev)?, false)?;
        assert_eq!(y.dims(), &[3, 4]);
        Ok(())
    }
}
