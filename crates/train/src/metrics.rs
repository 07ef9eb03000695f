//! Per-epoch metrics, written as CSV and JSON lines.

use crate::fsutil::write_atomic;
use crate::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What one epoch measured. Accuracies are in percent; losses are means per sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// The learning rate of the epoch's last step.
    pub lr: f64,
    /// Mean training loss over the epoch's samples (in training mode, as the steps saw it).
    pub train_loss: f64,
    /// Training accuracy over the epoch's steps (top-1, in training mode).
    pub train_accuracy: f64,
    /// Loss on the validation split, if the run holds one out.
    pub val_loss: Option<f64>,
    /// Accuracy on the validation split.
    pub val_accuracy: Option<f64>,
    /// Loss on the test set, if the run evaluates one.
    pub test_loss: Option<f64>,
    /// Top-1 accuracy on the test set.
    pub test_accuracy: Option<f64>,
    /// Top-5 accuracy on the test set.
    pub test_top5: Option<f64>,
    /// Wall-clock seconds of the epoch's training (without evaluation).
    pub epoch_seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
    /// Seconds the training loop waited for its batches — building them itself, or for the
    /// prefetching workers (`--workers`); not part of `epoch_seconds`.
    #[serde(default)]
    pub data_seconds: f64,
}

impl EpochMetrics {
    /// The loss that decides the best epoch, early stopping and a plateau schedule: the
    /// validation loss, else the test loss, else the training loss.
    pub fn monitored_loss(&self) -> f64 {
        self.val_loss.or(self.test_loss).unwrap_or(self.train_loss)
    }
}

/// The header of `metrics.csv`.
pub const CSV_HEADER: &str = "epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,test_top5,epoch_seconds,images_per_second,data_seconds";

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_default()
}

/// The CSV text of `history` (header and one row per epoch; empty cells for what a run did
/// not measure).
pub fn to_csv(history: &[EpochMetrics]) -> String {
    let mut s = format!("{CSV_HEADER}\n");
    for m in history {
        s += &format!(
            "{},{:e},{:.6},{:.2},{},{},{},{},{},{:.3},{:.1},{:.3}\n",
            m.epoch,
            m.lr,
            m.train_loss,
            m.train_accuracy,
            opt(m.val_loss, 6),
            opt(m.val_accuracy, 2),
            opt(m.test_loss, 6),
            opt(m.test_accuracy, 2),
            opt(m.test_top5, 2),
            m.epoch_seconds,
            m.images_per_second,
            m.data_seconds
        );
    }
    s
}

/// The JSON-lines text of `history` (one object per epoch, every number exact).
pub fn to_jsonl(history: &[EpochMetrics]) -> String {
    history
        .iter()
        .filter_map(|m| serde_json::to_string(m).ok())
        .map(|l| l + "\n")
        .collect()
}

/// Writes `metrics.csv` and `metrics.jsonl` into `dir`, each atomically and whole, so the two
/// always hold the same epochs.
pub fn write_metrics(dir: &Path, history: &[EpochMetrics]) -> Result<()> {
    write_atomic(&dir.join("metrics.csv"), to_csv(history).as_bytes())?;
    write_atomic(&dir.join("metrics.jsonl"), to_jsonl(history).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(e: usize) -> EpochMetrics {
        EpochMetrics {
            epoch: e,
            lr: 0.01,
            train_loss: 1.0 / e as f64,
            train_accuracy: 60.0,
            val_loss: None,
            val_accuracy: None,
            test_loss: Some(0.9 / e as f64),
            test_accuracy: Some(70.0 + e as f64),
            test_top5: Some(99.0),
            epoch_seconds: 1.5,
            images_per_second: 40000.0,
            data_seconds: 0.25,
        }
    }

    #[test]
    fn csv_and_jsonl() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        write_metrics(dir.path(), &[m(1), m(2)])?;
        let csv = std::fs::read_to_string(dir.path().join("metrics.csv"))?;
        assert_eq!(
            csv.lines().collect::<Vec<_>>(),
            [
                CSV_HEADER,
                "1,1e-2,1.000000,60.00,,,0.900000,71.00,99.00,1.500,40000.0,0.250",
                "2,1e-2,0.500000,60.00,,,0.450000,72.00,99.00,1.500,40000.0,0.250"
            ]
        );
        let jsonl = std::fs::read_to_string(dir.path().join("metrics.jsonl"))?;
        let second: EpochMetrics = serde_json::from_str(jsonl.lines().nth(1).unwrap_or_default())?;
        assert_eq!(second, m(2));
        assert_eq!(m(2).monitored_loss(), 0.45);
        Ok(())
    }
}
