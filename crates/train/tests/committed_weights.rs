//! The trained weights committed in `weights/` (see `weights/manifest.json`): each file has
//! its manifest SHA-256, says in its own metadata what it is, and evaluates on the real test
//! set to exactly the accuracy the manifest (and the run that wrote it) reports. Needs the
//! real data sets (`CONVNETS_DATA`) for the accuracy part.

use anyhow::{ensure, Context, Result};
use convnets_train::checkpoint::read_metadata;
use convnets_train::{eval_weights, EvalConfig};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights")
}

#[test]
fn committed_weights_match_their_manifest() -> Result<()> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("manifest.json"))?)?;
    let entries = manifest["weights"].as_array().context("weights array")?;
    ensure!(!entries.is_empty());
    let data = std::env::var_os("CONVNETS_DATA").map(PathBuf::from);
    for e in entries {
        let file = root().join(e["file"].as_str().context("file")?);
        let bytes = std::fs::read(&file).with_context(|| format!("{}", file.display()))?;
        let sha = convnets_data::sha256_hex(&bytes);
        ensure!(sha == e["sha256"], "{}: SHA-256 {sha}", file.display());
        let meta = read_metadata(&file)?;
        let model = e["model"].as_str().context("model")?;
        let dataset = e["dataset"].as_str().context("dataset")?;
        ensure!(meta["convnets.model"] == model && meta["convnets.dataset"] == dataset);
        let want = e["test_accuracy"].as_f64().context("test_accuracy")?;
        ensure!(meta["convnets.test_accuracy"] == format!("{want:.2}"));
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
        let normalize = meta.get("convnets.normalize").map(|s| {
            let v: Vec<f32> = s.split(',').map(|x| x.parse().unwrap()).collect();
            [v[0], v[1]]
        });
        let cfg = EvalConfig {
            model: model.into(),
            dataset: dataset.into(),
            batch_size: 1000,
            normalize,
            data_dir: Some(data.clone()),
            device: "cpu".into(),
        };
        let r = eval_weights(&cfg, &file)?;
        ensure!(
            format!("{:.2}", r.accuracy()) == format!("{want:.2}"),
            "{}: {:.2}% on the test set, manifest {want:.2}%",
            file.display(),
            r.accuracy()
        );
    }
    Ok(())
}
