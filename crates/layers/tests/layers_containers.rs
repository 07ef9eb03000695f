//! Seed 003's SimpleCNN built from named `Sequential` blocks: PyTorch's `named_children()`,
//! `named_modules()` and `named_parameters()` lists, the parameter count, and "extract the
//! first two layers". The expected lists were printed by PyTorch for the article's class:
//! `[n for n, _ in SimpleCNN().named_modules()]` and `.named_parameters()`.

use anyhow::Result;
use candle_core::{DType, Device, ModuleT, Tensor};
use convnets_layers::{
    conv2d, linear, named_children, named_modules, no_grad, AvgPool2d, Conv2dConfig, Layer,
    MaxPool2d, ParamStore, Relu, Sequential,
};

/// The article's SimpleCNN as a model struct (named fields, `Layer::children`).
struct SimpleCnn {
    layer1: Sequential,
    layer2: Sequential,
    layer3: Sequential,
    layer4: Sequential,
}

impl SimpleCnn {
    fn new(store: &ParamStore) -> Result<Self> {
        let vb = store.vb();
        let block = |i: usize, c_in: usize, c_out: usize| -> Result<Sequential> {
            let vb = vb.pp(format!("layer{i}"));
            let mut s = Sequential::new();
            s.push(
                format!("conv{i}"),
                conv2d(
                    c_in,
                    c_out,
                    3,
                    Conv2dConfig::default().padding(1),
                    vb.pp(format!("conv{i}")),
                )?,
            )
            .push(format!("relu{i}"), Relu)
            .push(format!("pool{i}"), MaxPool2d::with_stride(2, 2));
            Ok(s)
        };
        // Built in registration order, so the store's names are in PyTorch's order.
        let (layer1, layer2, layer3) = (block(1, 3, 32)?, block(2, 32, 64)?, block(3, 64, 128)?);
        let vb4 = vb.pp("layer4");
        let layer4 = Sequential::new()
            .add("fc1", linear(2048, 512, vb4.pp("fc1"))?)
            .add("fc_relu1", Relu)
            .add("fc2", linear(512, 64, vb4.pp("fc2"))?)
            .add("fc_relu2", Relu)
            .add("fc3", linear(64, 10, vb4.pp("fc3"))?);
        Ok(Self {
            layer1,
            layer2,
            layer3,
            layer4,
        })
    }
}

impl ModuleT for SimpleCnn {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let x = self.layer1.forward_t(x, train)?; // [b, 32, 16, 16]
        let x = self.layer2.forward_t(&x, train)?; // [b, 64, 8, 8]
        let x = self.layer3.forward_t(&x, train)?; // [b, 128, 4, 4]
        self.layer4.forward_t(&x.flatten_from(1)?, train) // [b, 10]
    }
}

impl Layer for SimpleCnn {
    fn kind(&self) -> &'static str {
        "SimpleCNN"
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        vec![
            ("layer1".into(), &self.layer1 as &dyn Layer),
            ("layer2".into(), &self.layer2),
            ("layer3".into(), &self.layer3),
            ("layer4".into(), &self.layer4),
        ]
    }
}

#[test]
fn seed_003_names_match_pytorch() -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let model = SimpleCnn::new(&store)?;
    let children: Vec<String> = named_children(&model).into_iter().map(|(n, _)| n).collect();
    assert_eq!(children, ["layer1", "layer2", "layer3", "layer4"]);
    let modules: Vec<(String, &str)> = named_modules(&model)
        .into_iter()
        .map(|(n, l)| (n, l.kind()))
        .collect();
    let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "",
            "layer1",
            "layer1.conv1",
            "layer1.relu1",
            "layer1.pool1",
            "layer2",
            "layer2.conv2",
            "layer2.relu2",
            "layer2.pool2",
            "layer3",
            "layer3.conv3",
            "layer3.relu3",
            "layer3.pool3",
            "layer4",
            "layer4.fc1",
            "layer4.fc_relu1",
            "layer4.fc2",
            "layer4.fc_relu2",
            "layer4.fc3"
        ]
    );
    let kinds: Vec<&str> = modules.iter().take(5).map(|(_, k)| *k).collect();
    assert_eq!(
        kinds,
        ["SimpleCNN", "Sequential", "Conv2d", "ReLU", "MaxPool2d"]
    );
    assert_eq!(
        store.names(),
        [
            "layer1.conv1.weight",
            "layer1.conv1.bias",
            "layer2.conv2.weight",
            "layer2.conv2.bias",
            "layer3.conv3.weight",
            "layer3.conv3.bias",
            "layer4.fc1.weight",
            "layer4.fc1.bias",
            "layer4.fc2.weight",
            "layer4.fc2.bias",
            "layer4.fc3.weight",
            "layer4.fc3.bias"
        ]
    );
    assert_eq!(store.num_params(), 1_175_818);
    // The containers know their names (inferred from their convolutions / linears).
    assert_eq!(model.layer1.name(), Some("layer1"));
    assert_eq!(model.layer4.name(), Some("layer4"));
    let x = Tensor::zeros((2, 3, 32, 32), DType::F32, &Device::Cpu)?;
    assert_eq!(model.forward_t(&x, false)?.dims(), &[2, 10]);
    Ok(())
}

#[test]
fn seed_003_first_two_layers() -> Result<()> {
    // `nn.Sequential(*list(model.children())[:2])` on a model that is itself a Sequential.
    let store = ParamStore::new(0, &Device::Cpu);
    let m = SimpleCnn::new(&store)?;
    let mut model = Sequential::new();
    model
        .push("layer1", m.layer1.clone())
        .push("layer2", m.layer2.clone())
        .push("layer3", m.layer3.clone());
    let first2 = model.first(2);
    assert_eq!(first2.len(), 2);
    let x = Tensor::ones((1, 3, 32, 32), DType::F32, &Device::Cpu)?;
    let y = first2.forward_t(&x, false)?;
    assert_eq!(y.dims(), &[1, 64, 8, 8]); // PyTorch prints torch.Size([1, 64, 8, 8])
                                          // Shared parameters: the same values as running the blocks by hand.
    let by_hand = m.layer2.forward_t(&m.layer1.forward_t(&x, false)?, false)?;
    assert_eq!(
        y.flatten_all()?.to_vec1::<f32>()?,
        by_hand.flatten_all()?.to_vec1::<f32>()?
    );
    assert_eq!(store.names().len(), 12, "first() created no parameters");
    // Lookup by index and by name.
    assert_eq!(model.get(1).and_then(|l| l.name()), Some("layer2"));
    assert_eq!(model.child("layer3").map(|l| l.kind()), Some("Sequential"));
    assert!(model.get(3).is_none());
    Ok(())
}

/// A `Sequential` runs a convolution followed by a ReLU as one fused op: the same output
/// and gradients as the layers one by one (ReLU applied to the convolution's output, the
/// gradient masked with it), and a traced summary still lists the ReLU as its own layer.
#[test]
fn conv_then_relu_fuses_with_the_same_values() -> Result<()> {
    let store = ParamStore::new(3, &Device::Cpu);
    let m = SimpleCnn::new(&store)?;
    let x = Tensor::randn(0f32, 1., (2, 3, 32, 32), &Device::Cpu)?;
    let fused = m.layer1.forward_t(&x, true)?;
    // By hand: each child's own forward, in order.
    let mut by_hand = x.clone();
    for (_, layer) in named_children(&m.layer1) {
        by_hand = layer.forward_t(&by_hand, true)?;
    }
    let flat = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1()?) };
    assert_eq!(flat(&fused)?, flat(&by_hand)?);
    assert!(flat(&fused)?.contains(&0.0), "some outputs clipped");
    let vars = store.trainable_vars();
    let g_fused = fused.sqr()?.sum_all()?.backward()?;
    let g_hand = by_hand.sqr()?.sum_all()?.backward()?;
    for v in vars
        .iter()
        .filter(|v| v.dims().len() == 4 && v.dims()[1] == 3)
    {
        let (a, b) = (g_fused.get(v).unwrap(), g_hand.get(v).unwrap());
        assert_eq!(flat(a)?, flat(b)?, "conv1 weight gradient");
    }
    let s = convnets_layers::summary::summary(&m.layer1, &[2, 3, 32, 32])?;
    let kinds: Vec<&str> = s.rows.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["Conv2d", "ReLU", "MaxPool2d"]);
    Ok(())
}

/// A `Sequential` of a convolution and an average pool (LeNet-5's pair) runs as one folded
/// convolution, training (the folded kernel built with candle ops, so the gradient reaches
/// the layer's weight) and in inference (`no_grad`): values and gradients agree with the
/// layers one by one within float rounding; a traced summary still lists both layers; an
/// overlapping pool, which cannot fold, gives the pair's values exactly.
#[test]
fn conv_then_avg_pool_folds() -> Result<()> {
    let store = ParamStore::new(5, &Device::Cpu);
    let vb = store.vb();
    let block = |pool: AvgPool2d| -> Result<Sequential> {
        Ok(Sequential::new()
            .add(
                "conv",
                conv2d(3, 8, 5, Conv2dConfig::default(), vb.pp("conv"))?,
            )
            .add("pool", pool))
    };
    let m = block(AvgPool2d::new(2))?;
    let x = Tensor::randn(0f32, 1., (3, 3, 20, 20), &Device::Cpu)?;
    let mut by_hand = x.clone();
    for (_, layer) in named_children(&m) {
        by_hand = layer.forward_t(&by_hand, true)?;
    }
    let flat = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1()?) };
    let near = |what: &str, a: &[f32], b: &[f32]| {
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            a.len() == b.len() && worst <= 1e-5 * scale,
            "{what}: off by {worst}"
        );
    };
    let trained = m.forward_t(&x, true)?;
    near("training output", &flat(&trained)?, &flat(&by_hand)?);
    assert_ne!(
        flat(&trained)?,
        flat(&by_hand)?,
        "the folded kernel ran (rounding differs)"
    );
    let (g_seq, g_hand) = (
        trained.sqr()?.sum_all()?.backward()?,
        by_hand.sqr()?.sum_all()?.backward()?,
    );
    for v in store.trainable_vars() {
        let (a, b) = (g_seq.get(&v).unwrap(), g_hand.get(&v).unwrap());
        near(&format!("gradient of {:?}", v.dims()), &flat(a)?, &flat(b)?);
    }
    let inferred = no_grad(|| m.forward_t(&x, false))?;
    assert_eq!(inferred.dims(), [3, 8, 8, 8]);
    let diff = (&inferred - &by_hand)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    let scale = by_hand.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(
        diff <= 1e-5 * scale,
        "folded differs by {diff} (scale {scale})"
    );
    assert_ne!(
        flat(&inferred)?,
        flat(&by_hand)?,
        "the folded kernel ran (rounding differs)"
    );
    let s = convnets_layers::summary::summary(&m, &[3, 3, 20, 20])?;
    let kinds: Vec<&str> = s.rows.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["Conv2d", "AvgPool2d"]);
    let overlapping = block(AvgPool2d::with_stride(3, 2))?;
    let pair = overlapping
        .named_children()
        .into_iter()
        .try_fold(x.clone(), |x, (_, l)| l.forward_t(&x, false))?;
    let fused = no_grad(|| overlapping.forward_t(&x, false))?;
    assert_eq!(flat(&fused)?, flat(&pair)?);
    // A pool that does not fit the convolution's output is the pool's own error.
    let too_big = block(AvgPool2d::new(20).named("pool"))?;
    let e = no_grad(|| too_big.forward_t(&x, false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("pool") && e.contains("too small"), "{e}");
    Ok(())
}
