//! Seed 004's convolution arithmetic against PyTorch: the 5x5 input and the 3x3 kernel 1..9
//! with no bias, at stride 2 (the article prints [[211, 262], [251, 169]]) and with padding 1
//! (a 5x5 output). Golden values: `tests/golden/conv_example/`, from
//! `scripts/torch_reference.py --only conv_example` (`F.conv2d`).

use anyhow::Result;
use candle_core::{Device, Module, Tensor};
use convnets_layers::{Conv2d, Conv2dConfig};
use std::path::Path;

#[test]
fn seed_004_example_matches_pytorch() -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/conv_example/conv.safetensors");
    let g = candle_core::safetensors::load(&path, &Device::Cpu)?;
    let x: Vec<f32> = [
        3, 4, 6, 5, 7, 2, 4, 6, 8, 2, 1, 6, 7, 8, 4, 9, 7, 4, 6, 2, 3, 7, 5, 4, 1,
    ]
    .iter()
    .map(|&v| v as f32)
    .collect();
    let x = Tensor::from_vec(x, (1, 1, 5, 5), &Device::Cpu)?;
    let w = Tensor::arange(1f32, 10f32, &Device::Cpu)?.reshape((1, 1, 3, 3))?;

    let stride2 = Conv2d::new(
        "conv",
        w.clone(),
        None,
        Conv2dConfig::default().bias(false).stride(2),
    );
    let y = stride2.forward(&x)?;
    assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [211., 262., 251., 169.]);
    assert_eq!(
        y.flatten_all()?.to_vec1::<f32>()?,
        g["out_stride2"].flatten_all()?.to_vec1::<f32>()?
    );

    let pad1 = Conv2d::new(
        "conv",
        w,
        None,
        Conv2dConfig::default().bias(false).padding(1),
    );
    let y = pad1.forward(&x)?;
    assert_eq!(y.dims(), &[1, 1, 5, 5]);
    assert_eq!(
        y.flatten_all()?.to_vec1::<f32>()?,
        g["out_pad1"].flatten_all()?.to_vec1::<f32>()?
    );
    Ok(())
}
