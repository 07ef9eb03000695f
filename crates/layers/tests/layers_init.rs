//! Initialisation by module kind (seed 003: normal weights and zero biases for the
//! convolutions), PyTorch's `nn.init` formulas (bounds and standard deviations from the fans
//! and gains), PyTorch's defaults, and determinism from the seed.

use anyhow::Result;
use candle_core::Device;
use convnets_layers::init::{self, FanMode, Init, ModuleKind, Nonlinearity};
use convnets_layers::{batch_norm2d, conv2d, linear, BatchNormConfig, Conv2dConfig, ParamStore};

fn values(store: &ParamStore, name: &str) -> Result<Vec<f32>> {
    let v = store
        .get(name)
        .ok_or_else(|| anyhow::anyhow!("no parameter {name}"))?;
    Ok(v.flatten_all()?.to_vec1::<f32>()?)
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0f64, |m, &x| m.max(x.abs() as f64))
}

/// A conv (64 -> 128, 3x3: fan_in 576, fan_out 1152), a linear (2048 -> 512), a batch norm.
fn store() -> Result<ParamStore> {
    let store = ParamStore::new(7, &Device::Cpu);
    let vb = store.vb();
    conv2d(
        64,
        128,
        3,
        Conv2dConfig::default(),
        vb.pp("layer3").pp("conv3"),
    )?;
    batch_norm2d(128, BatchNormConfig::default(), vb.pp("layer3").pp("bn3"))?;
    linear(2048, 512, vb.pp("layer4").pp("fc1"))?;
    Ok(store)
}

#[test]
fn seed_003_normal_weights_zero_bias() -> Result<()> {
    let store = store()?;
    let seen = std::sync::Mutex::new(Vec::new());
    let n = init::apply(&store, |p| {
        seen.lock().unwrap_or_else(|e| e.into_inner()).push((
            p.name.to_string(),
            p.kind,
            p.is_buffer,
        ));
        match (p.kind, p.param) {
            (ModuleKind::Conv2d, "weight") => Some(init::normal(0.0, 1.0)),
            (ModuleKind::Conv2d, "bias") => Some(init::zeros()),
            _ => None,
        }
    })?;
    assert_eq!(n, 2);
    let seen = seen.into_inner().unwrap_or_else(|e| e.into_inner());
    assert_eq!(
        seen,
        [
            ("layer3.conv3.weight".to_string(), ModuleKind::Conv2d, false),
            ("layer3.conv3.bias".to_string(), ModuleKind::Conv2d, false),
            (
                "layer3.bn3.weight".to_string(),
                ModuleKind::BatchNorm2d,
                false
            ),
            (
                "layer3.bn3.bias".to_string(),
                ModuleKind::BatchNorm2d,
                false
            ),
            (
                "layer3.bn3.running_mean".to_string(),
                ModuleKind::BatchNorm2d,
                true
            ),
            (
                "layer3.bn3.running_var".to_string(),
                ModuleKind::BatchNorm2d,
                true
            ),
            (
                "layer3.bn3.num_batches_tracked".to_string(),
                ModuleKind::BatchNorm2d,
                true
            ),
            ("layer4.fc1.weight".to_string(), ModuleKind::Linear, false),
            ("layer4.fc1.bias".to_string(), ModuleKind::Linear, false),
        ]
    );
    let (mean, std) = mean_std(&values(&store, "layer3.conv3.weight")?); // 73,728 samples
    assert!(
        mean.abs() < 0.02 && (std - 1.0).abs() < 0.02,
        "mean {mean} std {std}"
    );
    assert!(values(&store, "layer3.conv3.bias")?
        .iter()
        .all(|&b| b == 0.0));
    // Untouched: the linear keeps PyTorch's default (within 1/sqrt(2048)).
    assert!(max_abs(&values(&store, "layer4.fc1.weight")?) <= 1.0 / 2048f64.sqrt() + 1e-7);
    Ok(())
}

#[test]
fn formulas_follow_pytorch() -> Result<()> {
    let store = store()?;
    let conv = "layer3.conv3.weight";
    let (fan_in, fan_out) = (64.0 * 9.0, 128.0 * 9.0);
    let set = |init: Init| init::apply(&store, |p| (p.name == conv).then_some(init));

    // xavier_uniform_(gain): U(±gain·sqrt(6/(fan_in+fan_out))).
    set(init::xavier_uniform(2.0))?;
    let bound = 2.0 * (6.0f64 / (fan_in + fan_out)).sqrt();
    let v = values(&store, conv)?;
    assert!(
        max_abs(&v) <= bound + 1e-6 && max_abs(&v) > 0.99 * bound,
        "{} vs {bound}",
        max_abs(&v)
    );

    // xavier_normal_: std gain·sqrt(2/(fan_in+fan_out)).
    set(init::xavier_normal(1.0))?;
    let (_, std) = mean_std(&values(&store, conv)?);
    let want = (2.0f64 / (fan_in + fan_out)).sqrt();
    assert!((std / want - 1.0).abs() < 0.02, "std {std} want {want}");

    // kaiming_normal_(mode=fan_out, nonlinearity=relu) (torchvision's ResNet): std sqrt(2/fan_out).
    set(init::kaiming_normal(
        0.0,
        FanMode::FanOut,
        Nonlinearity::Relu,
    ))?;
    let (_, std) = mean_std(&values(&store, conv)?);
    let want = (2.0f64 / fan_out).sqrt();
    assert!((std / want - 1.0).abs() < 0.02, "std {std} want {want}");

    // kaiming_uniform_(a=sqrt(5)) is PyTorch's default: bound 1/sqrt(fan_in).
    set(init::kaiming_uniform(
        5f64.sqrt(),
        FanMode::FanIn,
        Nonlinearity::LeakyRelu,
    ))?;
    let bound = 1.0 / fan_in.sqrt();
    let m = max_abs(&values(&store, conv)?);
    assert!(m <= bound + 1e-6 && m > 0.99 * bound, "{m} vs {bound}");

    // uniform_ / constant_.
    set(init::uniform(3.0, 5.0))?;
    assert!(values(&store, conv)?.iter().all(|v| (3.0..5.0).contains(v)));
    set(init::constant(0.25))?;
    assert!(values(&store, conv)?.iter().all(|&v| v == 0.25));

    // Xavier on a bias has no fans: PyTorch's error, naming the tensor.
    let err = init::apply(&store, |p| {
        (p.param == "bias").then_some(init::xavier_uniform(1.0))
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`layer3.conv3.bias` has shape [128]")
            && err.contains("fewer than 2 dimensions"),
        "{err}"
    );
    Ok(())
}

#[test]
fn pytorch_defaults_and_determinism() -> Result<()> {
    let a = store()?;
    // Scramble everything, then reset to PyTorch's defaults.
    init::apply(&a, |_| Some(init::constant(9.0)))?;
    assert_eq!(init::reset_to_pytorch_defaults(&a)?, 9);
    let b = 1.0 / (64.0f64 * 9.0).sqrt();
    for name in ["layer3.conv3.weight", "layer3.conv3.bias"] {
        let m = max_abs(&values(&a, name)?);
        assert!(m <= b + 1e-7 && m > 0.9 * b, "{name}: {m} vs {b}");
    }
    let b = 1.0 / 2048f64.sqrt();
    assert!(max_abs(&values(&a, "layer4.fc1.bias")?) <= b + 1e-7);
    assert!(values(&a, "layer3.bn3.weight")?.iter().all(|&v| v == 1.0));
    assert!(values(&a, "layer3.bn3.bias")?.iter().all(|&v| v == 0.0));
    assert!(values(&a, "layer3.bn3.running_var")?
        .iter()
        .all(|&v| v == 1.0));
    assert!(values(&a, "layer3.bn3.num_batches_tracked")?
        .iter()
        .all(|&v| v == 0.0));

    // Same seed, same rule: same values; a different seed differs.
    let rule = |p: &init::ModuleParam| {
        (p.param == "weight").then_some(init::kaiming_normal(
            0.0,
            FanMode::FanIn,
            Nonlinearity::Relu,
        ))
    };
    let (x, y) = (store()?, store()?);
    init::apply(&x, |p| {
        if p.kind == ModuleKind::BatchNorm2d {
            None
        } else {
            rule(p)
        }
    })?;
    init::apply(&y, |p| {
        if p.kind == ModuleKind::BatchNorm2d {
            None
        } else {
            rule(p)
        }
    })?;
    assert_eq!(
        values(&x, "layer4.fc1.weight")?,
        values(&y, "layer4.fc1.weight")?
    );
    let mut rng = convnets_layers::Rng::new(99);
    init::apply_with(&y, &mut rng, |p| {
        if p.kind == ModuleKind::BatchNorm2d {
            None
        } else {
            rule(p)
        }
    })?;
    assert_ne!(
        values(&x, "layer4.fc1.weight")?,
        values(&y, "layer4.fc1.weight")?
    );
    Ok(())
}
