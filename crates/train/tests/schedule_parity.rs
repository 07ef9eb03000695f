//! Our learning-rate schedules against PyTorch's `torch.optim.lr_scheduler`
//! (`tests/golden/optim/schedules.json`, written by `scripts/torch_optim_reference.py`), and a
//! schedule saved as JSON mid-run that continues with the identical rates.

use anyhow::{bail, Context, Result};
use convnets_train::schedule::{LrScheduler, ScheduleConfig};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
struct Case {
    name: String,
    config: ScheduleConfig,
    base_lr: f64,
    epochs: usize,
    steps_per_epoch: usize,
    /// "epoch" or "batch".
    per: String,
    metrics: Option<Vec<Option<f64>>>,
    /// The rates as decimals (for reading) and as the bits of the f64 (exact).
    lrs: Vec<f64>,
    lrs_bits: Vec<u64>,
}

#[derive(Deserialize)]
struct Golden {
    cases: Vec<Case>,
}

fn cases() -> Result<Vec<Case>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/optim/schedules.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let g: Golden =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
    Ok(g.cases)
}

/// The scheduler's call for step `k` of the case (after the optimizer's step).
fn advance(s: &mut LrScheduler, case: &Case, k: usize) -> Result<f64> {
    Ok(match case.per.as_str() {
        "batch" => s.step_batch(),
        "epoch" => {
            // Per-epoch schedules do not move per batch.
            let before = s.lr();
            if s.step_batch() != before {
                bail!("{}: step_batch changed a per-epoch schedule", case.name)
            }
            let metric = match &case.metrics {
                Some(m) => *m.get(k).context("metric")?,
                None => None,
            };
            s.step_epoch(metric)
        }
        other => bail!("{}: unknown `per` {other:?}", case.name),
    })
}

/// |a - b| <= 1e-12 * |b| (both exactly 0 passes).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs()
}

#[test]
fn every_schedule_matches_torch() -> Result<()> {
    let cases = cases()?;
    assert!(cases.len() >= 10, "only {} cases", cases.len());
    for case in &cases {
        let mut s = LrScheduler::new(
            &case.config,
            case.base_lr,
            case.epochs,
            case.steps_per_epoch,
        )
        .with_context(|| format!("{}: {:?}", case.name, case.config))?;
        let mut ours = vec![s.lr()];
        for k in 0..case.lrs.len() - 1 {
            ours.push(advance(&mut s, case, k)?);
        }
        let exact = ours
            .iter()
            .zip(&case.lrs_bits)
            .filter(|(a, b)| a.to_bits() == **b)
            .count();
        eprintln!(
            "{}: {exact} of {} rates bit-identical to PyTorch's",
            case.name,
            ours.len()
        );
        let torch: Vec<f64> = case.lrs_bits.iter().map(|&b| f64::from_bits(b)).collect();
        assert_eq!(torch.len(), case.lrs.len(), "{}", case.name);
        for (k, (a, b)) in ours.iter().zip(&torch).enumerate() {
            assert!(
                close(*a, *b),
                "{} step {k}: ours {a}, PyTorch {b}\nours:  {ours:?}\ntorch: {:?}",
                case.name,
                torch
            );
        }
    }
    Ok(())
}

#[test]
fn a_schedule_saved_mid_run_continues_identically() -> Result<()> {
    for case in &cases()? {
        let n = case.lrs.len() - 1;
        let mut a = LrScheduler::new(
            &case.config,
            case.base_lr,
            case.epochs,
            case.steps_per_epoch,
        )?;
        let mut b = a.clone();
        let uninterrupted: Vec<f64> = (0..n)
            .map(|k| advance(&mut a, case, k))
            .collect::<Result<_>>()?;
        let half = n / 2;
        let mut resumed = Vec::new();
        for k in 0..half {
            resumed.push(advance(&mut b, case, k)?);
        }
        let json = serde_json::to_string(&b)?;
        drop(b);
        let mut c: LrScheduler = serde_json::from_str(&json).with_context(|| json.clone())?;
        for k in half..n {
            resumed.push(advance(&mut c, case, k)?);
        }
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&resumed),
            bits(&uninterrupted),
            "{}: {json}",
            case.name
        );
    }
    Ok(())
}
