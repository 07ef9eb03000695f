//! `summary`: seed 001's cost arithmetic (a 5x5 convolution 192 -> 32 on 28x28 costs
//! 120,422,400 multiplies; with a 1x1 192 -> 16 bottleneck first, 12,443,648), seed 002's
//! printouts (output shapes, parameter shapes and counts, digit grouping), and a summary of
//! every layer kind.

use anyhow::Result;
use candle_core::{DType, Device, ModuleT, Tensor};
use convnets_layers::{
    batch_norm2d, conv2d, linear, summary, AdaptiveAvgPool2d, BatchNormConfig, Conv2dConfig,
    Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, ParamStore, Relu, Sequential,
};

#[test]
fn seed_001_inception_costs() -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let vb = store.vb();
    let direct = conv2d(
        192,
        32,
        5,
        Conv2dConfig::default().padding(2),
        vb.pp("direct"),
    )?;
    let s = summary(&direct, &[1, 192, 28, 28])?;
    assert_eq!(s.total_macs, 120_422_400);
    assert_eq!(s.output, [1, 32, 28, 28]);

    let bottleneck = Sequential::new()
        .add(
            "0",
            conv2d(
                192,
                16,
                1,
                Conv2dConfig::default(),
                vb.pp("bottleneck").pp(0),
            )?,
        )
        .add(
            "1",
            conv2d(
                16,
                32,
                5,
                Conv2dConfig::default().padding(2),
                vb.pp("bottleneck").pp(1),
            )?,
        );
    let s = summary(&bottleneck, &[1, 192, 28, 28])?;
    assert_eq!(s.total_macs, 12_443_648);
    assert_eq!(
        s.rows.iter().map(|r| r.macs).collect::<Vec<_>>(),
        [2_408_448, 10_035_200]
    );
    assert_eq!(s.rows[0].name, "bottleneck.0");
    // MACs scale with the batch.
    assert_eq!(
        summary(&bottleneck, &[3, 192, 28, 28])?.total_macs,
        3 * 12_443_648
    );
    Ok(())
}

#[test]
fn seed_002_tables_and_totals() -> Result<()> {
    // A small AlexNet-like stack; the zoo checks the real AlexNet's 62,378,344.
    let store = ParamStore::new(0, &Device::Cpu);
    let vb = store.vb();
    let net = Sequential::new()
        .add(
            "0",
            conv2d(3, 8, 11, Conv2dConfig::default().stride(4), vb.pp(0))?,
        )
        .add("1", Relu)
        .add("2", MaxPool2d::with_stride(3, 2))
        .add("3", Flatten)
        .add("4", linear(8 * 27 * 27, 1000, vb.pp(4))?);
    let s = summary(&net, &[1, 3, 227, 227])?;
    let shapes: Vec<(&str, &str, Vec<usize>)> = s
        .rows
        .iter()
        .map(|r| (r.name.as_str(), r.kind, r.output.clone()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("0", "Conv2d", vec![1, 8, 55, 55]),
            ("1", "ReLU", vec![1, 8, 55, 55]),
            ("2", "MaxPool2d", vec![1, 8, 27, 27]),
            ("3", "Flatten", vec![1, 5832]),
            ("4", "Linear", vec![1, 1000]),
        ]
    );
    assert_eq!(
        s.rows[0].params,
        [
            ("weight".to_string(), vec![8, 3, 11, 11]),
            ("bias".to_string(), vec![8])
        ]
    );
    assert_eq!(s.rows[0].num_params, 8 * 3 * 121 + 8);
    assert_eq!(s.rows[4].macs, 5832 * 1000);
    assert_eq!(s.total_params, store.num_params());
    assert_eq!(s.total_params, 2_912 + 5_833_000);

    let text = s.to_string();
    for line in [
        "Input shape: [1, 3, 227, 227]",
        // 8 · 55 · 55 outputs · 3 · 11 · 11 weights each
        "0      Conv2d     [1, 8, 55, 55]  8,784,600",
        "2      MaxPool2d  [1, 8, 27, 27]          0",
        "0      Conv2d     weight [8, 3, 11, 11], bias [8]       2,912",
        "4      Linear     weight [1000, 5832], bias [1000]  5,833,000",
        "Total params: 5,835,912",
        "Total MACs:   14,616,600",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    // Layers without parameters are only in the first table.
    assert_eq!(text.matches("ReLU").count(), 1, "{text}");
    Ok(())
}

/// Every layer kind of the crate appears, with its name; batch norm counts weight and bias
/// (not its buffers) and is run in eval mode (statistics unchanged).
#[test]
fn every_layer_kind_reports_itself() -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let vb = store.vb();
    let net = Sequential::new()
        .add(
            "conv",
            conv2d(3, 4, 3, Conv2dConfig::default().padding(1), vb.pp("conv"))?,
        )
        .add(
            "bn",
            batch_norm2d(4, BatchNormConfig::default(), vb.pp("bn"))?,
        )
        .add("relu", Relu)
        .add("lrn", LocalResponseNorm::alexnet())
        .add("pool", MaxPool2d::new(2).named("pool1"))
        .add("avg", AdaptiveAvgPool2d::new([3, 3]))
        .add("flat", Flatten)
        .add("drop", Dropout::new(0.5)?)
        .add("fc", linear(36, 5, vb.pp("fc"))?);
    let s = summary(&net, &[2, 3, 10, 10])?;
    let rows: Vec<(&str, &str)> = s.rows.iter().map(|r| (r.name.as_str(), r.kind)).collect();
    assert_eq!(
        rows,
        [
            ("conv", "Conv2d"),
            ("bn", "BatchNorm2d"),
            ("relu", "ReLU"),
            ("lrn", "LocalResponseNorm"),
            ("pool1", "MaxPool2d"),
            ("avg", "AdaptiveAvgPool2d"),
            ("flat", "Flatten"),
            ("drop", "Dropout"),
            ("fc", "Linear"),
        ]
    );
    assert_eq!(s.rows[1].num_params, 8);
    assert_eq!(s.total_params, (4 * 27 + 4) + 8 + (36 * 5 + 5));
    assert_eq!(
        store.num_params(),
        s.total_params + 4 + 4 + 1,
        "store also holds the buffers"
    );
    assert_eq!(store.num_trainable_params(), s.total_params);
    let nbt = store
        .get("bn.num_batches_tracked")
        .map(|v| v.to_scalar::<f32>())
        .transpose()?;
    assert_eq!(nbt, Some(0.0), "summary ran in eval mode");
    assert_eq!(s.rows[0].macs, 2 * 4 * 100 * 27);
    assert_eq!(s.rows[8].macs, 2 * 36 * 5);
    assert_eq!(s.total_macs, 2 * 4 * 100 * 27 + 2 * 36 * 5);
    Ok(())
}

/// A layer run twice counts its parameters once in the total (but appears twice), and a
/// failing model's error names the layer.
#[test]
fn shared_layers_and_errors() -> Result<()> {
    struct Twice(Linear);
    impl ModuleT for Twice {
        fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
            let y = self.0.forward_t(x, train)?;
            self.0.forward_t(&y, train)
        }
    }
    let store = ParamStore::new(0, &Device::Cpu);
    let twice = Twice(linear(4, 4, store.vb().pp("fc"))?);
    let s = summary(&twice, &[1, 4])?;
    assert_eq!(s.rows.len(), 2);
    assert_eq!(s.total_params, 20);
    assert_eq!(s.total_macs, 32);

    let err = summary(&twice, &[1, 5]).unwrap_err().to_string();
    assert!(
        err.contains("fc (Linear): expected an input [..., 4] (4 features), found [1, 5]"),
        "{err}"
    );
    // The trace is cleared after an error: the next summary starts fresh.
    assert_eq!(summary(&twice, &[2, 4])?.rows.len(), 2);
    // Tracing is off outside summary: plain forward passes record nothing (and work).
    let x = Tensor::zeros((1, 4), DType::F32, &Device::Cpu)?;
    assert!(!convnets_layers::summary::tracing());
    twice.forward_t(&x, false)?;
    Ok(())
}

/// In a model struct (no container), unit layers get their names from `.named(...)`.
#[test]
fn named_unit_layers_in_a_struct() -> Result<()> {
    struct Net {
        conv: convnets_layers::Conv2d,
        relu: convnets_layers::Named<Relu>,
        flatten: convnets_layers::Named<Flatten>,
        plain: Relu,
    }
    impl ModuleT for Net {
        fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
            let x = self.relu.forward(&self.conv.forward_t(x, false)?)?;
            self.plain.forward_t(&self.flatten.forward(&x)?, false)
        }
    }
    let store = ParamStore::new(0, &Device::Cpu);
    let net = Net {
        conv: conv2d(1, 2, 3, Conv2dConfig::default(), store.vb().pp(0))?,
        relu: Relu.named("1"),
        flatten: Flatten.named("2"),
        plain: Relu,
    };
    let s = summary(&net, &[1, 1, 5, 5])?;
    let rows: Vec<(&str, &str)> = s.rows.iter().map(|r| (r.name.as_str(), r.kind)).collect();
    assert_eq!(
        rows,
        [
            ("0", "Conv2d"),
            ("1", "ReLU"),
            ("2", "Flatten"),
            ("ReLU", "ReLU")
        ]
    );
    Ok(())
}

/// A user-given input shape never panics or exhausts memory: the batch is summarised from one
/// image (rows and MACs scaled), an oversized image or an overflowing count is an error.
#[test]
fn huge_inputs_are_errors_not_aborts() -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let vb = store.vb();
    let net = Sequential::new()
        .add(
            "conv",
            conv2d(1, 2, 3, Conv2dConfig::default(), vb.pp("conv"))?,
        )
        .add("flatten", Flatten)
        .add("fc", linear(2 * 2 * 2, 3, vb.pp("fc"))?);
    let one = summary(&net, &[1, 1, 4, 4])?;
    // conv: 2 x 2x2 outputs x 9 MACs; fc: 8 x 3.
    assert_eq!(one.total_macs, 2 * 4 * 9 + 24);
    let many = summary(&net, &[100_000_000, 1, 4, 4])?;
    assert_eq!(many.total_macs, one.total_macs * 100_000_000);
    assert_eq!(many.rows[0].output, [100_000_000, 2, 2, 2]);
    assert_eq!(many.output, [100_000_000, 3]);

    let err = summary(&net, &[usize::MAX, 1, 4, 4])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("overflows the multiply-accumulate count"),
        "{err}"
    );
    let err = summary(&net, &[1, usize::MAX, 2, 28])
        .unwrap_err()
        .to_string();
    assert!(err.contains("too large"), "{err}");
    let err = summary(&net, &[1, 100_000, 100_000, 1_000])
        .unwrap_err()
        .to_string();
    assert!(err.contains("too large") && err.contains("GiB"), "{err}");
    let err = summary(&net, &[]).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    Ok(())
}
