//! The trained weights committed in `weights/`: `convnets_zoo::KnownWeights` and
//! `weights/manifest.json` list the same files; each file has its SHA-256, says in its own
//! metadata what it is, and evaluates on the real test set to the accuracy listed (the one the
//! run that wrote it printed; within 5 images of 10,000 on other kernels). The accuracy part needs the real data sets
//! (`CONVNETS_DATA`).

use anyhow::{ensure, Context, Result};
use convnets_train::checkpoint::read_metadata;
use convnets_train::{eval_weights, EvalConfig};
use convnets_zoo::KnownWeights;
use std::path::PathBuf;

#[test]
fn committed_weights_match_their_manifest() -> Result<()> {
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        KnownWeights::ALL[0].path().with_file_name("manifest.json"),
    )?)?;
    let entries = manifest["weights"].as_array().context("weights array")?;
    ensure!(
        entries.len() == KnownWeights::ALL.len(),
        "{} manifest entries, {} known weights",
        entries.len(),
        KnownWeights::ALL.len()
    );
    let data = std::env::var_os("CONVNETS_DATA").map(PathBuf::from);
    for (e, w) in entries.iter().zip(KnownWeights::ALL) {
        ensure!(e["name"] == w.name(), "{}: manifest order", w.name());
        ensure!(e["sha256"] == w.sha256() && e["model"] == w.model());
        ensure!(e["dataset"] == w.dataset() && e["test_accuracy"] == w.test_accuracy());
        let file = w.path();
        let bytes = std::fs::read(&file).with_context(|| format!("{}", file.display()))?;
        let sha = convnets_data::sha256_hex(&bytes);
        ensure!(sha == w.sha256(), "{}: SHA-256 {sha}", file.display());
        let meta = read_metadata(&file)?;
        ensure!(meta["convnets.model"] == w.model() && meta["convnets.dataset"] == w.dataset());
        let want = format!("{:.2}", w.test_accuracy());
        ensure!(meta["convnets.test_accuracy"] == want, "{}", w.name());
        // The typed description agrees with the file's own.
        let normalize = meta
            .get("convnets.normalize")
            .map(|s| s.parse::<convnets_data::Normalize>())
            .transpose()
            .map_err(anyhow::Error::msg)?;
        ensure!(normalize == w.normalize(), "{}: normalize", w.name());
        let described = convnets_zoo::WeightsInfo::read(&file, None)?;
        ensure!(described.preprocess == w.preprocess() && described.classes == w.classes());
        let Some(data) = &data else {
            {
                use std::io::Write as _; // straight to stderr: libtest captures eprintln!, CI must see a skip
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIP accuracy of {}: needs CONVNETS_DATA",
                    file.display()
                );
            }
            continue;
        };
        let cfg = EvalConfig {
            model: w.model().into(),
            dataset: w.dataset().into(),
            batch_size: 1000,
            normalize,
            data_dir: Some(data.clone()),
            device: "cpu".into(),
        };
        let r = eval_weights(&cfg, &file)?;
        // Equal on the kernels that trained them (AVX-512); CPUs without AVX-512 take other
        // kernels whose float rounding may flip a near-tie or two: at most 5 of 10,000.
        let listed = (w.test_accuracy() * 100.0).round() as i64; // correct images
        ensure!(
            (r.correct as i64 - listed).abs() <= 5,
            "{}: {:.2}% on the test set, listed {want}%",
            file.display(),
            r.accuracy()
        );
    }
    Ok(())
}
