//! Curves per epoch, drawn with plotters as PNG and SVG: `accuracy.{png,svg}` (test,
//! validation and training accuracy, like seed 004's matplotlib plot) and `loss.{png,svg}`.
//!
//! PNG text is rendered with DejaVu Sans embedded in the binary (the `dejavu` crate), so no
//! system font is needed.

use crate::fsutil::write_atomic_with;
use crate::metrics::EpochMetrics;
use crate::{Result, TrainError};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

type Series = (&'static str, RGBColor, Vec<(f64, f64)>);

fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        // The font is a valid TrueType file shipped by the crate: registration cannot fail.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

fn series(history: &[EpochMetrics], accuracy: bool) -> Vec<Series> {
    let pts = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|m| f(m).map(|v| (m.epoch as f64, v)))
            .collect()
    };
    let all: Vec<Series> = if accuracy {
        vec![
            ("test", BLUE, pts(&|m| m.test_accuracy)),
            ("validation", MAGENTA, pts(&|m| m.val_accuracy)),
            ("train", RED, pts(&|m| Some(m.train_accuracy))),
        ]
    } else {
        vec![
            ("test", BLUE, pts(&|m| m.test_loss)),
            ("validation", MAGENTA, pts(&|m| m.val_loss)),
            ("train", RED, pts(&|m| Some(m.train_loss))),
        ]
    };
    all.into_iter().filter(|s| !s.2.is_empty()).collect()
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    title: &str,
    y_desc: &str,
    history: &[EpochMetrics],
    accuracy: bool,
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let lines = series(history, accuracy);
    let n = history.last().map_or(1, |m| m.epoch).max(1) as f64;
    let values = lines.iter().flat_map(|s| s.2.iter().map(|p| p.1));
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let y = if accuracy {
        (lo - 2.0).floor().max(0.0)..100.0
    } else {
        0.0..(hi * 1.05).max(1e-3)
    };
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0.5..n + 0.5, y)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        // Whole epochs only, at most 20 labels.
        .x_labels((n as usize).min(20) + 1)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .draw()?;
    for (name, color, pts) in lines {
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(if accuracy {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        })
        .draw()?;
    area.present()?;
    Ok(())
}

/// Draws `NAME.png` and `NAME.svg` into `dir` for `accuracy.*` (percent per epoch) or
/// `loss.*`, each written atomically.
pub fn plot(dir: &Path, history: &[EpochMetrics], accuracy: bool) -> Result<()> {
    register_font();
    let (name, title, y_desc) = if accuracy {
        ("accuracy", "accuracy per epoch", "accuracy (%)")
    } else {
        ("loss", "loss per epoch", "mean loss per sample")
    };
    let err = |path: &Path, e: Box<dyn std::error::Error>| {
        TrainError::Plot(format!("{}: {e}", path.display()))
    };
    let png = dir.join(format!("{name}.png"));
    write_atomic_with(&png, |tmp| {
        // The bitmap backend picks the encoder from the file extension.
        let mut tmp_png = tmp.as_os_str().to_owned();
        tmp_png.push(".png");
        let tmp_png = std::path::PathBuf::from(tmp_png);
        let area = BitMapBackend::new(&tmp_png, (800, 500)).into_drawing_area();
        draw(area, title, y_desc, history, accuracy).map_err(|e| err(&png, e))?;
        std::fs::rename(&tmp_png, tmp).map_err(TrainError::io(tmp))
    })?;
    let svg = dir.join(format!("{name}.svg"));
    write_atomic_with(&svg, |tmp| {
        let area = SVGBackend::new(tmp, (800, 500)).into_drawing_area();
        draw(area, title, y_desc, history, accuracy).map_err(|e| err(&svg, e))
    })
}

/// Draws the accuracy and the loss curves (PNG and SVG each) into `dir`.
pub fn plot_all(dir: &Path, history: &[EpochMetrics]) -> Result<()> {
    plot(dir, history, true)?;
    plot(dir, history, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_png_and_svg() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let history: Vec<EpochMetrics> = (1..=3)
            .map(|e| EpochMetrics {
                epoch: e,
                lr: 0.01,
                train_loss: 1.0 / e as f64,
                train_accuracy: 50.0 + e as f64,
                val_loss: None,
                val_accuracy: None,
                test_loss: Some(0.8 / e as f64),
                test_accuracy: Some(60.0 + 5.0 * e as f64),
                test_top5: None,
                epoch_seconds: 1.0,
                images_per_second: 1.0,
                data_seconds: 0.0,
            })
            .collect();
        plot_all(dir.path(), &history)?;
        let png = std::fs::read(dir.path().join("accuracy.png"))?;
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = std::fs::read_to_string(dir.path().join("loss.svg"))?;
        assert!(svg.starts_with("<svg") && svg.contains("loss per epoch"));
        let mut names: Vec<String> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?;
        names.sort();
        assert_eq!(
            names,
            ["accuracy.png", "accuracy.svg", "loss.png", "loss.svg"]
        );
        Ok(())
    }
}
