//! Prints seed 002's two AlexNet tables (output shape per layer; parameter shapes and counts)
//! with the multiply-accumulates per layer, for any model of the zoo.
//!
//! ```text
//! cargo run --release -p convnets --example summary [MODEL]      # default: alexnet
//! ```

use anyhow::{Context, Result};
use convnets::prelude::*;

fn main() -> Result<()> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "alexnet".into());
    let info = convnets::zoo::find(&name).with_context(|| format!("unknown model `{name}`"))?;
    let store = ParamStore::new(0, &Device::Cpu);
    let model = info.build(store.vb())?;
    let [c, h, w] = info.input;
    let summary = convnets::zoo::summary(model.as_ref(), &[1, c, h, w])?;
    println!("{name}: {}\n{summary}", info.description);
    Ok(())
}
