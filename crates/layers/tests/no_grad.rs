//! `no_grad`: the same outputs as a normal eval pass, with no graph recorded.

use anyhow::Result;
use candle_core::{Device, ModuleT, Tensor};
use convnets_layers::{
    batch_norm2d, conv2d, linear, no_grad, BatchNormConfig, Conv2dConfig, Flatten, ParamStore,
    Relu, Sequential,
};

#[test]
fn same_values_no_graph() -> Result<()> {
    let dev = Device::Cpu;
    let store = ParamStore::new(3, &dev);
    let vb = store.vb();
    let model = Sequential::new()
        .add(
            "conv",
            conv2d(3, 8, 3, Conv2dConfig::default().padding(1), vb.pp("conv"))?,
        )
        .add(
            "bn",
            batch_norm2d(8, BatchNormConfig::default(), vb.pp("bn"))?,
        )
        .add("relu", Relu)
        .add("flatten", Flatten)
        .add("fc", linear(8 * 6 * 6, 4, vb.pp("fc"))?);
    let x = Tensor::randn(0f32, 1.0, (5, 3, 6, 6), &dev)?;
    // One training pass so that the running statistics are not the initial ones.
    model.forward_t(&x, true)?;
    let tracked = model.forward_t(&x, false)?;
    let free = no_grad(|| model.forward_t(&x, false))?;
    assert!(tracked.track_op(), "a normal pass records the graph");
    assert!(!free.track_op(), "no_grad records nothing");
    let (a, b) = (
        tracked.flatten_all()?.to_vec1::<f32>()?,
        free.flatten_all()?.to_vec1::<f32>()?,
    );
    assert_eq!(a, b);
    // Training mode inside no_grad: batch statistics, still no graph.
    let y = no_grad(|| model.forward_t(&x, true))?;
    assert!(!y.track_op());
    Ok(())
}
