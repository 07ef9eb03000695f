//! Per-epoch metrics: CSV, JSON lines and an SVG plot of the curves.

use crate::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What one epoch measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's samples.
    pub train_loss: f64,
    /// Mean test loss per sample.
    pub test_loss: f64,
    /// Test accuracy in percent.
    pub test_accuracy: f64,
    /// Wall-clock seconds of the epoch's training (without evaluation).
    pub epoch_seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
}

/// The metrics files of a run folder: `metrics.csv`, `metrics.jsonl` and `curves.svg`.
#[derive(Debug)]
pub struct MetricsLog {
    dir: PathBuf,
    epochs: Vec<EpochMetrics>,
}

const CSV_HEADER: &str = "epoch,train_loss,test_loss,test_accuracy,epoch_seconds,images_per_second";

impl MetricsLog {
    /// A log writing into `dir` (which must exist). Existing metrics files are replaced.
    pub fn create(dir: &Path) -> Result<Self> {
        let csv = dir.join("metrics.csv");
        std::fs::write(&csv, format!("{CSV_HEADER}\n")).map_err(TrainError::io(&csv))?;
        let jsonl = dir.join("metrics.jsonl");
        std::fs::write(&jsonl, "").map_err(TrainError::io(&jsonl))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            epochs: Vec::new(),
        })
    }

    /// The epochs recorded so far.
    pub fn epochs(&self) -> &[EpochMetrics] {
        &self.epochs
    }

    /// Appends one epoch to the CSV and JSON-lines files (flushed at once, so an interrupted
    /// run keeps every finished epoch) and redraws the plot.
    pub fn push(&mut self, m: EpochMetrics) -> Result<()> {
        let line = format!(
            "{},{:.6},{:.6},{:.2},{:.3},{:.1}\n",
            m.epoch,
            m.train_loss,
            m.test_loss,
            m.test_accuracy,
            m.epoch_seconds,
            m.images_per_second
        );
        append(&self.dir.join("metrics.csv"), &line)?;
        let json = serde_json::to_string(&m).map_err(|e| TrainError::Config(e.to_string()))?;
        append(&self.dir.join("metrics.jsonl"), &format!("{json}\n"))?;
        self.epochs.push(m);
        self.plot()
    }

    /// Draws test accuracy and the two losses per epoch into `curves.svg`.
    pub fn plot(&self) -> Result<()> {
        let path = self.dir.join("curves.svg");
        plot_curves(&self.epochs, &path)
            .map_err(|e| TrainError::Config(format!("{}: plot failed: {e}", path.display())))
    }
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(TrainError::io(path))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.flush())
        .map_err(TrainError::io(path))
}

fn plot_curves(
    epochs: &[EpochMetrics],
    path: &Path,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (960, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(480);
    let n = epochs.len().max(1) as f64;
    let lo = epochs
        .iter()
        .map(|m| m.test_accuracy)
        .fold(100.0, f64::min)
        .min(100.0);
    let mut acc = ChartBuilder::on(&left)
        .caption("test accuracy (%)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(0.5..n + 0.5, (lo - 1.0).floor().max(0.0)..100.0)?;
    acc.configure_mesh().x_desc("epoch").draw()?;
    acc.draw_series(LineSeries::new(
        epochs.iter().map(|m| (m.epoch as f64, m.test_accuracy)),
        &BLUE,
    ))?;
    let hi = epochs
        .iter()
        .flat_map(|m| [m.train_loss, m.test_loss])
        .fold(0.0, f64::max)
        .max(1e-3);
    let mut loss = ChartBuilder::on(&right)
        .caption("loss (train: red, test: green)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(0.5..n + 0.5, 0.0..hi * 1.05)?;
    loss.configure_mesh().x_desc("epoch").draw()?;
    loss.draw_series(LineSeries::new(
        epochs.iter().map(|m| (m.epoch as f64, m.train_loss)),
        &RED,
    ))?;
    loss.draw_series(LineSeries::new(
        epochs.iter().map(|m| (m.epoch as f64, m.test_loss)),
        &GREEN,
    ))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_csv_jsonl_and_svg() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut log = MetricsLog::create(dir.path())?;
        for e in 1..=2 {
            log.push(EpochMetrics {
                epoch: e,
                train_loss: 1.0 / e as f64,
                test_loss: 0.9 / e as f64,
                test_accuracy: 70.0 + e as f64,
                epoch_seconds: 1.5,
                images_per_second: 40000.0,
            })?;
        }
        let csv = std::fs::read_to_string(dir.path().join("metrics.csv"))?;
        assert_eq!(
            csv.lines().collect::<Vec<_>>(),
            [
                CSV_HEADER,
                "1,1.000000,0.900000,71.00,1.500,40000.0",
                "2,0.500000,0.450000,72.00,1.500,40000.0"
            ]
        );
        let jsonl = std::fs::read_to_string(dir.path().join("metrics.jsonl"))?;
        let second: EpochMetrics = serde_json::from_str(jsonl.lines().nth(1).unwrap_or_default())?;
        assert_eq!(second.epoch, 2);
        let svg = std::fs::read_to_string(dir.path().join("curves.svg"))?;
        assert!(svg.starts_with("<svg") && svg.contains("test accuracy"));
        Ok(())
    }
}
