//! The zoo's models against PyTorch: parameter names and shapes, parameter counts, eval-mode
//! logits, train-mode logits and batch-norm statistics, and seed 002's AlexNet tables.
//!
//! Each case reads `tests/golden/zoo/<case>.json`, written by
//! `scripts/torch_zoo_reference.py`: the PyTorch module's `state_dict()` keys and shapes, its
//! parameter count, and its outputs after every parameter and buffer was filled with the
//! deterministic formula that `common::fill` repeats here (no weights are stored).

mod common;

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, ModuleT, Tensor};
use common::{assert_close, fill, fixture, fixture_input, keys, trainable_params};
use convnets_layers::{named_modules, ParamStore};
use convnets_zoo::{
    AlexNet, AlexNetConfig, GoogLeNet, GoogLeNetConfig, Model, ResNet, ResNetConfig, ZfNet,
    ZfNetConfig,
};

/// Tolerance on logits: max |diff| <= TOL · max(1, max |PyTorch's logits|).
const TOL: f32 = 1e-4;

/// Names, counts and outputs of `net` (built in `store`) against the fixture `case`.
fn parity<M: ModuleT + ?Sized>(case: &str, store: &ParamStore, net: &M) -> Result<()> {
    let f = fixture(case)?;
    let dev = store.device().clone();
    // The state_dict keys, in order, with their shapes.
    let ours = keys(store);
    if ours != f.keys {
        let first = ours.iter().zip(&f.keys).position(|(a, b)| a != b);
        anyhow::bail!(
            "{case}: {} tensors vs PyTorch's {}; first difference at {first:?}: ours {:?}, PyTorch {:?}",
            ours.len(),
            f.keys.len(),
            first.map(|i| &ours[i]),
            first.map(|i| &f.keys[i])
        );
    }
    ensure!(
        trainable_params(store) == f.params,
        "{case}: {} parameters, PyTorch {}",
        trainable_params(store),
        f.params
    );
    let buffers: usize = store
        .named_vars()
        .iter()
        .filter(|(n, _)| n.ends_with("running_mean") || n.ends_with("running_var"))
        .map(|(_, v)| v.elem_count())
        .sum();
    let batches = store
        .names()
        .iter()
        .filter(|n| n.ends_with("num_batches_tracked"))
        .count();
    ensure!(
        buffers + batches == f.buffers,
        "{case}: {} buffer elements, PyTorch {}",
        buffers + batches,
        f.buffers
    );

    fill(store)?;
    let x = fixture_input(&f, &dev)?;
    if let (Some(shape), Some(want)) = (&f.logits_shape, &f.logits) {
        let logits = net.forward_t(&x, false)?;
        let d = assert_close(&format!("{case}: eval logits"), &logits, shape, want, TOL)?;
        eprintln!("{case}: eval logits {shape:?} within {d:e} of PyTorch's (float64; PyTorch float32: {:e})", f.torch_f32_error.unwrap_or(f64::NAN));
        let classes = shape[1] as u32;
        let labels: Vec<u32> = (0..shape[0] as u32).map(|i| i % classes).collect();
        let labels = Tensor::new(labels.as_slice(), &dev)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?.to_scalar::<f32>()? as f64;
        if let Some(l) = f.loss {
            ensure!(
                (loss - l).abs() <= 1e-4 * l.abs().max(1.0),
                "{case}: loss {loss} vs PyTorch {l}"
            );
        }
    }
    if let Some(t) = &f.train {
        let logits = net.forward_t(&x, true)?;
        let d = assert_close(
            &format!("{case}: train logits"),
            &logits,
            &t.logits_shape,
            &t.logits,
            TOL,
        )?;
        eprintln!(
            "{case}: train logits within {d:e} of PyTorch's (float64; PyTorch float32: {:e})",
            t.torch_f32_error
        );
        for (stat, want) in [
            ("running_mean", &t.running_mean),
            ("running_var", &t.running_var),
        ] {
            let name = format!("{}.{stat}", t.bn);
            let v = store
                .get(&name)
                .with_context(|| format!("{case}: no {name}"))?;
            assert_close(
                &format!("{case}: {name} after one training pass"),
                v.as_tensor(),
                &[want.len()],
                want,
                TOL,
            )?;
        }
        let n = store
            .get(&format!("{}.num_batches_tracked", t.bn))
            .context("num_batches_tracked")?;
        ensure!(
            n.as_tensor().to_dtype(DType::F64)?.to_scalar::<f64>()? == 1.0,
            "{case}: num_batches_tracked is not 1"
        );
    }
    Ok(())
}

/// A registry model against the fixture of the same name.
fn registry_parity(name: &str) -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let net = convnets_zoo::build(name, store.vb())?;
    ensure!(
        net.info().name == name,
        "{name}: info() says {}",
        net.info().name
    );
    parity(name, &store, &*net)
}

macro_rules! registry_parity {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() -> Result<()> {
            registry_parity($name)
        }
    )*};
}

registry_parity! {
    simple_cnn_matches_pytorch => "simple-cnn",
    alexnet_matches_pytorch => "alexnet",
    alexnet_torchvision_matches_pytorch => "alexnet-torchvision",
    zfnet_matches_pytorch => "zfnet",
    inception_net_matches_pytorch => "inception-net",
    residual_net_matches_pytorch => "residual-net",
    lenet5_bn_matches_pytorch => "lenet5-bn",
    googlenet_matches_pytorch => "googlenet",
    resnet18_matches_pytorch => "resnet18",
    resnet34_matches_pytorch => "resnet34",
    resnet50_matches_pytorch => "resnet50",
    resnet20_matches_pytorch => "resnet20",
    resnet56_matches_pytorch => "resnet56",
}

#[test]
fn alexnet_with_lrn_matches_pytorch() -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let net = AlexNet::new(AlexNetConfig::with_lrn(), store.vb())?;
    parity("alexnet-lrn", &store, &net)
}

#[test]
fn zfnet_fig3_widths_match_pytorch() -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let net = ZfNet::new(ZfNetConfig::fig3(), store.vb())?;
    parity("zfnet-fig3", &store, &net)
}

#[test]
fn googlenet_train_mode_matches_pytorch() -> Result<()> {
    // Dropout off on both sides so that train mode is deterministic.
    let store = ParamStore::new(0, &Device::Cpu);
    let net = GoogLeNet::new(
        GoogLeNetConfig {
            dropout: 0.0,
            ..GoogLeNetConfig::googlenet()
        },
        store.vb(),
    )?;
    parity("googlenet-train", &store, &net)
}

#[test]
fn googlenet_with_aux_heads_matches_pytorch() -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let net = GoogLeNet::new(GoogLeNetConfig::with_aux(), store.vb())?;
    parity("googlenet-aux", &store, &net)?;
    // In training the auxiliary heads run and give [b, classes] each; in eval they do not.
    let x = Tensor::zeros((2, 3, 64, 64), DType::F32, &Device::Cpu)?;
    let out = net.forward_aux(&x, true)?;
    let dims = |t: &Option<Tensor>| t.as_ref().map(|t| t.dims().to_vec());
    assert_eq!(
        (dims(&out.aux1), dims(&out.aux2)),
        (Some(vec![2, 1000]), Some(vec![2, 1000]))
    );
    let out = net.forward_aux(&x, false)?;
    assert!(out.aux1.is_none() && out.aux2.is_none());
    Ok(())
}

/// Seed 002 prints, for a 1x3x227x227 input, each layer's output shape and parameter count;
/// our summary of `alexnet` must give the article's numbers digit for digit.
#[test]
fn alexnet_summary_is_the_articles() -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let net = convnets_zoo::build("alexnet", store.vb())?;
    let s = convnets_zoo::summary(&*net, &[1, 3, 227, 227])?;
    // The article's first printout (`for layer in net: print(name, x.shape)`), verbatim.
    let article: [(&str, &[usize]); 17] = [
        ("Conv2d", &[1, 96, 55, 55]),
        ("ReLU", &[1, 96, 55, 55]),
        ("MaxPool2d", &[1, 96, 27, 27]),
        ("Conv2d", &[1, 256, 27, 27]),
        ("ReLU", &[1, 256, 27, 27]),
        ("MaxPool2d", &[1, 256, 13, 13]),
        ("Conv2d", &[1, 384, 13, 13]),
        ("ReLU", &[1, 384, 13, 13]),
        ("Conv2d", &[1, 384, 13, 13]),
        ("ReLU", &[1, 384, 13, 13]),
        ("Conv2d", &[1, 256, 13, 13]),
        ("ReLU", &[1, 256, 13, 13]),
        ("MaxPool2d", &[1, 256, 6, 6]),
        ("Flatten", &[1, 9216]),
        ("Linear", &[1, 4096]),
        ("Linear", &[1, 4096]),
        ("Linear", &[1, 1000]),
    ];
    let rows: Vec<(&str, &[usize])> = s
        .rows
        .iter()
        .map(|r| (r.kind, r.output.as_slice()))
        .collect();
    assert_eq!(rows, article, "{s}");
    // The article's second printout: parameters of each layer that has any, then the total.
    let params: Vec<usize> = s
        .rows
        .iter()
        .filter(|r| r.num_params > 0)
        .map(|r| r.num_params)
        .collect();
    assert_eq!(
        params,
        [34_944, 614_656, 885_120, 1_327_488, 884_992, 37_752_832, 16_781_312, 4_097_000]
    );
    assert_eq!(s.total_params, 62_378_344);
    // Every row is named by its `nn.Sequential` index, as PyTorch's `named_modules()` would.
    let names: Vec<&str> = s.rows.iter().map(|r| r.name.as_str()).collect();
    let indices: Vec<String> = (0..17).map(|i| i.to_string()).collect();
    assert_eq!(names, indices);
    // Weight shapes as the article prints them.
    assert_eq!(
        s.rows[0].params,
        [
            ("weight".to_string(), vec![96, 3, 11, 11]),
            ("bias".to_string(), vec![96])
        ]
    );
    assert_eq!(
        s.rows[14].params[0],
        ("weight".to_string(), vec![4096, 9216])
    );
    // And PyTorch's per-layer table from the fixture agrees with both.
    let f = fixture("alexnet")?;
    let torch: Vec<(&str, &[usize], usize)> = f
        .layers
        .as_ref()
        .context("no layer table")?
        .iter()
        .map(|l| (l.kind.as_str(), l.shape.as_slice(), l.params))
        .collect();
    let ours: Vec<(&str, &[usize], usize)> = s
        .rows
        .iter()
        .map(|r| (r.kind, r.output.as_slice(), r.num_params))
        .collect();
    assert_eq!(ours, torch);
    assert!(f
        .layers
        .iter()
        .flatten()
        .enumerate()
        .all(|(i, l)| l.index == i));
    // MACs: conv1 96·55·55 outputs × 3·11·11 = 105,415,200.
    assert_eq!(s.rows[0].macs, 105_415_200);
    let text = s.to_string();
    assert!(text.contains("62,378,344"), "{text}");
    eprintln!("{s}");
    Ok(())
}

/// `named_modules()` of every model reaches every parameter: the Conv2d / Linear /
/// BatchNorm2d leaves are exactly the modules that own the store's tensors.
#[test]
fn named_modules_cover_every_parameter() -> Result<()> {
    for info in convnets_zoo::models() {
        let store = ParamStore::new(0, &Device::Cpu);
        let net = info.build(store.vb())?;
        // `named_modules(root)` without upcasting `dyn Model` to `dyn Layer`: walk each child.
        let mut leaves: Vec<String> = net
            .children()
            .into_iter()
            .flat_map(|(name, child)| {
                named_modules(child).into_iter().map(move |(n, l)| {
                    (
                        if n.is_empty() {
                            name.clone()
                        } else {
                            format!("{name}.{n}")
                        },
                        l,
                    )
                })
            })
            .filter(|(_, l)| matches!(l.kind(), "Conv2d" | "Linear" | "BatchNorm2d"))
            .map(|(n, l)| {
                assert_eq!(
                    l.name(),
                    Some(n.as_str()),
                    "{}: module {n} calls itself {:?}",
                    info.name,
                    l.name()
                );
                n
            })
            .collect();
        let mut owners: Vec<String> = store
            .names()
            .iter()
            .map(|n| {
                n.rsplit_once('.')
                    .map(|(m, _)| m.to_string())
                    .unwrap_or_default()
            })
            .collect();
        owners.dedup();
        leaves.dedup();
        assert_eq!(leaves, owners, "{}", info.name);
    }
    Ok(())
}

/// Every registry description states the model's exact parameter count.
#[test]
fn descriptions_state_the_parameter_count() -> Result<()> {
    for info in convnets_zoo::models() {
        let store = ParamStore::new(0, &Device::Cpu);
        let _net = info.build(store.vb())?;
        let n = convnets_layers::summary::group_digits(trainable_params(&store) as u64);
        assert!(
            info.description.ends_with(&format!("{n} params")),
            "{}: {} (has {n})",
            info.name,
            info.description
        );
    }
    Ok(())
}

/// Every model gives `[batch, classes]` for its registry input, and its small input.
#[test]
fn output_shapes_at_registry_inputs() -> Result<()> {
    for info in convnets_zoo::models() {
        let store = ParamStore::new(0, &Device::Cpu);
        let net = info.build(store.vb())?;
        for [c, h, w] in [info.input, info.small_input] {
            let x = Tensor::zeros((1, c, h, w), DType::F32, &Device::Cpu)?;
            assert_eq!(
                net.forward_t(&x, false)?.dims(),
                &[1, info.classes],
                "{} on {:?}",
                info.name,
                [c, h, w]
            );
        }
    }
    Ok(())
}

fn err_of<M: ModuleT + ?Sized>(net: &M, shape: &[usize]) -> String {
    let x = Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
    match net.forward_t(&x, false) {
        Ok(y) => format!("no error: output {:?}", y.dims()),
        Err(e) => e.to_string(),
    }
}

/// Wrong inputs and configs give errors that name the layer and the shapes.
#[test]
fn bad_inputs_and_configs_are_clear_errors() -> Result<()> {
    let store = ParamStore::new(0, &Device::Cpu);
    let vb = store.vb();
    // Wrong channel count.
    let resnet = ResNet::new(&ResNetConfig::cifar(3), vb.pp("r20"))?;
    let err = err_of(&resnet, &[2, 1, 32, 32]);
    assert!(
        err.contains("r20.conv1 (Conv2d): expected 3 input channels")
            && err.contains("[2, 1, 32, 32]"),
        "{err}"
    );
    let inception = convnets_zoo::InceptionNet::new(vb.pp("inc"))?;
    let err = err_of(&inception, &[2, 3, 28, 28]);
    assert!(
        err.contains("inc.conv1 (Conv2d): expected 1 input channels")
            && err.contains("[2, 3, 28, 28]"),
        "{err}"
    );
    // Input too small for a fixed-size classifier: AlexNet's first Linear wants 9216 features.
    let alexnet = AlexNet::new(AlexNetConfig::article(), vb.pp("alex"))?;
    let err = err_of(&alexnet, &[1, 3, 100, 100]);
    assert!(
        err.contains("alex.14 (Linear): expected an input [..., 9216]")
            && err.contains("[1, 1024]"),
        "{err}"
    );
    // Input too small for a pooling window.
    let zfnet = ZfNet::new(ZfNetConfig::fig3(), vb.pp("zf"))?;
    let err = err_of(&zfnet, &[1, 3, 32, 32]);
    assert!(
        err.contains("zf.features.5 (MaxPool2d)") && err.contains("[1, 256, 2, 2]"),
        "{err}"
    );
    let err = err_of(&zfnet, &[1, 3, 227, 227]);
    assert!(err.contains("no error"), "ZFNet on 227x227: {err}");
    // The simple CNN on a 64x64 image: its classifier names the mismatch.
    let simple = convnets_zoo::SimpleCnn::new(vb.pp("s"))?;
    let err = err_of(&simple, &[1, 3, 64, 64]);
    assert!(
        err.contains("s.layer4.fc1 (Linear): expected an input [..., 2048]")
            && err.contains("[1, 8192]"),
        "{err}"
    );
    // A 3-D input.
    let err = err_of(&resnet, &[3, 32, 32]);
    assert!(
        err.contains("r20.conv1 (Conv2d)") && err.contains("[3, 32, 32]"),
        "{err}"
    );
    // Configs that cannot be built.
    let bad = ResNetConfig {
        widths: vec![16, 32],
        ..ResNetConfig::cifar(3)
    };
    let err = ResNet::new(&bad, vb.pp("bad"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("`layers` [3, 3, 3] and `widths` [16, 32]"),
        "{err}"
    );
    // Batch norm in training needs more than one value per channel.
    let r18 = convnets_zoo::build("resnet18", vb.pp("r18"))?;
    let x = Tensor::zeros((1, 3, 32, 32), DType::F32, &Device::Cpu)?;
    let err = r18
        .forward_t(&x, true)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("(BatchNorm2d): expected more than 1 value per channel")
            && err.contains("[1, 512, 1, 1]"),
        "{err}"
    );
    Ok(())
}

/// The configs are data: they round-trip through JSON, and the named constructors are the
/// published variants.
#[test]
fn configs_are_serde_data() -> Result<()> {
    let r = ResNetConfig::cifar(9);
    let back: ResNetConfig = serde_json::from_str(&serde_json::to_string(&r)?)?;
    assert_eq!(back, r);
    assert_eq!(ResNetConfig::resnet50().layers, [3, 4, 6, 3]);
    let z: ZfNetConfig = serde_json::from_str(&serde_json::to_string(&ZfNetConfig::fig3())?)?;
    assert_eq!(z.widths, [384, 384, 256]);
    let a: AlexNetConfig = serde_json::from_str(r#"{"lrn": true, "num_classes": 10}"#)?;
    assert_eq!(
        a,
        AlexNetConfig {
            num_classes: 10,
            ..AlexNetConfig::with_lrn()
        }
    );
    let g: GoogLeNetConfig =
        serde_json::from_str(&serde_json::to_string(&GoogLeNetConfig::with_aux())?)?;
    assert!(g.aux_logits);
    // A ResNet from a config that is not registered says so.
    let store = ParamStore::new(0, &Device::Cpu);
    let net = ResNet::new(&ResNetConfig::cifar(1), store.vb())?;
    assert_eq!(net.info().name, "resnet-cifar-custom");
    let net = ResNet::new(
        &ResNetConfig::cifar(9),
        ParamStore::new(0, &Device::Cpu).vb(),
    )?;
    assert_eq!(net.info().name, "resnet56");
    Ok(())
}
