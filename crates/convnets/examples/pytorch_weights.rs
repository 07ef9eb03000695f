//! Loads weights that PyTorch wrote (`safetensors.torch.save_file(model.state_dict(), …)`)
//! into our LeNet-5 and classifies four Fashion-MNIST test images with them.
//!
//! ```text
//! cargo run --release -p convnets --example pytorch_weights [WEIGHTS] [IO]
//! ```
//!
//! Defaults: the golden files of `tests/golden/lenet5/` (PyTorch's seed-0 initialisation, so
//! the predictions are those of an untrained network; pass a trained file to see real ones).

use anyhow::{Context, Result};
use convnets::prelude::*;
use std::path::PathBuf;

fn main() -> Result<()> {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/lenet5");
    let mut args = std::env::args().skip(1);
    let weights = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| golden.join("weights.safetensors"));
    let io = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| golden.join("io.safetensors"));

    let store = ParamStore::new(0, &Device::Cpu);
    let model = convnets::zoo::build("lenet5", store.vb())?;
    store
        .load(&weights, true)
        .with_context(|| format!("loading {}", weights.display()))?;
    println!(
        "loaded {} tensors from {}: {:?}",
        store.names().len(),
        weights.display(),
        store.names()
    );

    let tensors = candle_core::safetensors::load(&io, &Device::Cpu)?;
    let input = tensors.get("input").context("no `input` tensor")?;
    let logits = model.forward_t(input, false)?;
    let classes = DatasetKind::FashionMnist.classes();
    for (i, row) in logits.to_vec2::<f32>()?.iter().enumerate() {
        let (best, _) =
            row.iter()
                .enumerate()
                .fold((0, f32::MIN), |m, (j, &v)| if v > m.1 { (j, v) } else { m });
        println!(
            "image {i}: predicted {:<12} logits {row:.4?}",
            classes[best]
        );
    }
    if let Some(expected) = tensors.get("logits") {
        let diff = (&logits - expected)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        println!("max |ours - PyTorch's logits| = {diff:e}");
    }
    Ok(())
}
