//! The losses against PyTorch (`tests/golden/losses/`, written by
//! `scripts/torch_loss_reference.py`): every value for every reduction, and the gradient of
//! the mean with respect to the input, within 1e-5 relative.

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use convnets_train::loss::{
    cross_entropy, cross_entropy_with, l1_loss, l2_distance, mse_loss, nll_loss,
    CrossEntropyOptions, Loss, Reduction,
};
use std::collections::HashMap;
use std::path::Path;

/// Relative tolerance, elementwise.
const RTOL: f32 = 1e-5;
/// Values smaller than this (none in the fixture but exact zeros) are compared with
/// `RTOL · FLOOR` absolute instead.
const FLOOR: f32 = 1e-6;

fn golden() -> Result<HashMap<String, Tensor>> {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/losses/losses.safetensors");
    candle_core::safetensors::load(&p, &Device::Cpu).with_context(|| {
        format!(
            "loading {} (run scripts/torch_loss_reference.py)",
            p.display()
        )
    })
}

fn get<'a>(g: &'a HashMap<String, Tensor>, key: &str) -> Result<&'a Tensor> {
    g.get(key)
        .with_context(|| format!("fixture has no `{key}`"))
}

/// `ours` equals `theirs` (same shape, every element within `RTOL` relative).
fn close(what: &str, ours: &Tensor, theirs: &Tensor) -> Result<()> {
    let ours = if ours.rank() == 0 {
        ours.reshape(1)?
    } else {
        ours.clone()
    };
    ensure!(
        ours.dims() == theirs.dims(),
        "{what}: shape {:?} vs PyTorch's {:?}",
        ours.dims(),
        theirs.dims()
    );
    let a = ours.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let b = theirs.flatten_all()?.to_vec1::<f32>()?;
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        ensure!(
            (x - y).abs() <= RTOL * y.abs().max(FLOOR),
            "{what}[{i}]: {x} vs PyTorch's {y}\nours   {a:?}\ntheirs {b:?}"
        );
    }
    Ok(())
}

/// Checks `f(input, reduction)` against `<case>.{mean,sum,none}` and the gradient of the
/// mean against `<case>.grad`.
fn check(
    g: &HashMap<String, Tensor>,
    case: &str,
    input: &str,
    f: impl Fn(&Tensor, Reduction) -> candle_core::Result<Tensor>,
) -> Result<()> {
    let x = Var::from_tensor(get(g, input)?)?;
    for (red, key) in [
        (Reduction::Mean, "mean"),
        (Reduction::Sum, "sum"),
        (Reduction::None, "none"),
    ] {
        let key = format!("{case}.{key}");
        close(&key, &f(x.as_tensor(), red)?, get(g, &key)?)?;
    }
    let grads = f(x.as_tensor(), Reduction::Mean)?.backward()?;
    let grad = grads
        .get(&x)
        .with_context(|| format!("{case}: no gradient wrt {input}"))?;
    close(
        &format!("{case}.grad"),
        grad,
        get(g, &format!("{case}.grad"))?,
    )
}

fn labels(g: &HashMap<String, Tensor>) -> Result<Tensor> {
    Ok(get(g, "labels")?.to_dtype(DType::U32)?)
}

#[test]
fn cross_entropy_matches_pytorch_for_every_option() -> Result<()> {
    let g = golden()?;
    let y = labels(&g)?;
    let weight = get(&g, "weight")?.clone();
    let cases = [
        ("ce.plain", 0.0, None),
        ("ce.smooth", 0.1, None),
        ("ce.weight", 0.0, Some(weight.clone())),
        ("ce.smooth_weight", 0.2, Some(weight)),
        ("ce.smooth_full", 1.0, None),
    ];
    for (case, label_smoothing, weight) in cases {
        check(&g, case, "logits", |x, reduction| {
            let opts = CrossEntropyOptions {
                label_smoothing,
                weight: weight.clone(),
                reduction,
            };
            cross_entropy_with(x, &y, &opts)
        })?;
        // The same labels as i64 give the same values.
        let i64_labels = get(&g, "labels")?;
        let opts = CrossEntropyOptions {
            label_smoothing,
            weight: weight.clone(),
            reduction: Reduction::Sum,
        };
        close(
            case,
            &cross_entropy_with(get(&g, "logits")?, i64_labels, &opts)?,
            get(&g, &format!("{case}.sum"))?,
        )?;
    }
    // The fused kernel of the default options, and the composition (sum / count) agree.
    close(
        "cross_entropy",
        &cross_entropy(get(&g, "logits")?, &y)?,
        get(&g, "ce.plain.mean")?,
    )?;
    Ok(())
}

#[test]
fn nll_matches_pytorch_with_and_without_weights() -> Result<()> {
    let g = golden()?;
    let y = labels(&g)?;
    let weight = get(&g, "weight")?.clone();
    check(&g, "nll.plain", "log_probs", |x, r| {
        nll_loss(x, &y, None, r)
    })?;
    check(&g, "nll.weight", "log_probs", |x, r| {
        nll_loss(x, &y, Some(&weight), r)
    })?;
    Ok(())
}

#[test]
fn regression_losses_match_pytorch() -> Result<()> {
    let g = golden()?;
    for (suffix, pred, target) in [("", "pred", "target"), ("4", "pred4", "target4")] {
        let t = get(&g, target)?.clone();
        check(&g, &format!("mse{suffix}"), pred, |x, r| mse_loss(x, &t, r))?;
        check(&g, &format!("l1{suffix}"), pred, |x, r| l1_loss(x, &t, r))?;
        check(&g, &format!("l2{suffix}"), pred, |x, r| {
            l2_distance(x, &t, r)
        })?;
    }
    Ok(())
}

#[test]
fn loss_config_compute_matches_pytorch() -> Result<()> {
    let g = golden()?;
    let y = labels(&g)?;
    let weight: Vec<f32> = get(&g, "weight")?.to_vec1()?;
    let cases = [
        (Loss::default(), "ce.plain"),
        (
            Loss::CrossEntropy {
                label_smoothing: 0.2,
                weight: Some(weight),
            },
            "ce.smooth_weight",
        ),
        (Loss::Mse, "onehot.mse"),
        (Loss::L1, "onehot.l1"),
        (Loss::L2, "onehot.l2"),
    ];
    for (loss, case) in cases {
        let x = Var::from_tensor(get(&g, "logits")?)?;
        let l = loss.compute(x.as_tensor(), &y)?;
        close(
            &format!("{} ({case})", loss.name()),
            &l,
            get(&g, &format!("{case}.mean"))?,
        )?;
        let grads = l.backward()?;
        let grad = grads.get(&x).context("no gradient wrt the logits")?;
        close(
            &format!("{} grad", loss.name()),
            grad,
            get(&g, &format!("{case}.grad"))?,
        )?;
    }
    // Nll takes the outputs as log-probabilities.
    let l = Loss::Nll.compute(get(&g, "log_probs")?, &y)?;
    close("nll", &l, get(&g, "nll.plain.mean")?)?;
    Ok(())
}

#[test]
fn hand_worked_edge_cases() -> Result<()> {
    let dev = Device::Cpu;
    let pred = Tensor::new(&[1f32, 2.], &dev)?;
    let zero = Tensor::zeros(2, DType::F32, &dev)?;
    // mse([1, 2], [0, 0]) = (1 + 4) / 2; its gradient 2 (pred - target) / n.
    let p = Var::from_tensor(&pred)?;
    let l = mse_loss(p.as_tensor(), &zero, Reduction::Mean)?;
    assert_eq!(l.to_scalar::<f32>()?, 2.5);
    let gp = l
        .backward()?
        .get(&p)
        .context("no gradient")?
        .to_vec1::<f32>()?;
    assert_eq!(gp, [1.0, 2.0]);
    // l1 = (1 + 2) / 2; the L2 distance of the one sample [1, 2] is sqrt(5).
    assert_eq!(
        l1_loss(&pred, &zero, Reduction::Mean)?.to_scalar::<f32>()?,
        1.5
    );
    let d = l2_distance(&pred.unsqueeze(0)?, &zero.unsqueeze(0)?, Reduction::Mean)?;
    assert!((d.to_scalar::<f32>()? - 5f32.sqrt()).abs() < 1e-6);
    // A perfect, confident classifier: cross-entropy close to 0; label smoothing 1 makes it
    // the mean of -log_softmax over the classes instead.
    let logits = Tensor::new(&[[30f32, 0., 0.], [0., 30., 0.]], &dev)?;
    let y = Tensor::new(&[0u32, 1], &dev)?;
    assert!(cross_entropy(&logits, &y)?.to_scalar::<f32>()? < 1e-6);
    let full = CrossEntropyOptions {
        label_smoothing: 1.0,
        ..Default::default()
    };
    let l = cross_entropy_with(&logits, &y, &full)?.to_scalar::<f32>()?;
    assert!((l - 20.0).abs() < 1e-4, "{l}"); // (0 + 30 + 30) / 3
                                             // Class weights that are all zero on the targets: NaN, as PyTorch's 0 / 0.
    let w = Tensor::new(&[0f32, 0., 1.], &dev)?;
    let l = nll_loss(&logits, &y, Some(&w), Reduction::Mean)?;
    assert!(l.to_scalar::<f32>()?.is_nan());
    Ok(())
}
