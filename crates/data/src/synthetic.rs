//! A small synthetic data set in CIFAR-10's exact binary format, for demonstrating and
//! testing the CIFAR-10 path where the real data cannot be had (no copy of CIFAR-10 exists
//! on the machines this project is tested on, and none can be downloaded there).
//!
//! Each class is a shape of its own (disk, square, bars, cross, ring, triangle, ...) in a
//! colour of its own, at a random position and scale, over a random darker background, with
//! noise: a model has to learn shapes and colours, and a horizontal flip keeps the class (as in
//! the real data). **Numbers measured on it say that the pipeline works, nothing about
//! CIFAR-10.**
//!
//! ```
//! # fn main() -> convnets_data::Result<()> {
//! use convnets_data::{load_dir, synthetic, DatasetKind};
//! let dir = tempfile::tempdir().unwrap();
//! let spec = synthetic::SyntheticCifar { train_per_batch: 20, test: 30, seed: 1 };
//! let folder = synthetic::write_cifar10(dir.path(), &spec)?;
//! let ds = load_dir(DatasetKind::Cifar10, &folder)?;
//! assert_eq!((ds.train.len, ds.test.len, ds.train.channels), (100, 30, 3));
//! # Ok(()) }
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cifar::{write_batch, IMAGE_LEN};
use crate::dataset::{CIFAR10_ARCHIVE, CIFAR10_FILES};
use crate::error::{DataError, Result};

/// The size and seed of a synthetic CIFAR-format data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntheticCifar {
    /// Records in each of the five training batches (the real ones hold 10,000).
    pub train_per_batch: usize,
    /// Records in the test batch (the real one holds 10,000).
    pub test: usize,
    /// Seed of every draw: the same seed writes the same bytes.
    pub seed: u64,
}

impl Default for SyntheticCifar {
    /// 5 x 1,000 training and 1,000 test images, seed 0 (about 18 MB).
    fn default() -> Self {
        SyntheticCifar {
            train_per_batch: 1_000,
            test: 1_000,
            seed: 0,
        }
    }
}

/// The colour (R, G, B) of each class's shape.
const COLOURS: [[f32; 3]; 10] = [
    [230., 60., 60.],
    [60., 200., 70.],
    [70., 90., 235.],
    [235., 215., 60.],
    [210., 70., 215.],
    [60., 215., 215.],
    [245., 150., 50.],
    [240., 240., 240.],
    [150., 90., 40.],
    [130., 200., 140.],
];

/// Whether pixel `(x, y)` (relative to the shape's centre, in units of its radius) belongs to
/// the shape of `class`. Every shape is symmetric under a horizontal flip.
fn inside(class: u32, x: f32, y: f32) -> bool {
    let r = (x * x + y * y).sqrt();
    match class {
        0 => r <= 1.0,                                                      // disk
        1 => x.abs() <= 0.85 && y.abs() <= 0.85,                            // square
        2 => y.abs() <= 0.3 && x.abs() <= 1.0,                              // horizontal bar
        3 => x.abs() <= 0.3 && y.abs() <= 1.0,                              // vertical bar
        4 => (x.abs() <= 0.25 || y.abs() <= 0.25) && r <= 1.0,              // plus
        5 => (0.6..=1.0).contains(&r),                                      // ring
        6 => (-1.0..=0.8).contains(&y) && x.abs() <= (y + 1.0) * 0.5,       // triangle
        7 => (x.abs() - y.abs()).abs() <= 0.3 && r <= 1.1,                  // diagonal cross
        8 => x.abs() + y.abs() <= 1.0,                                      // diamond
        _ => (y.abs() <= 0.25 || (y + 0.7).abs() <= 0.2) && x.abs() <= 1.0, // two bars
    }
}

/// One `[3, 32, 32]` image of `class`.
fn image(class: u32, rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
    let radius = rng.random_range(7.0..12.0f32);
    let cx = rng.random_range(11.0..21.0f32);
    let cy = rng.random_range(11.0..21.0f32);
    let bg: [f32; 3] = [
        rng.random_range(0.0..110.0),
        rng.random_range(0.0..110.0),
        rng.random_range(0.0..110.0),
    ];
    let gain = rng.random_range(0.7..1.0f32);
    let base = out.len();
    out.resize(base + IMAGE_LEN, 0);
    for y in 0..32 {
        for x in 0..32 {
            let (dx, dy) = ((x as f32 - cx) / radius, (y as f32 - cy) / radius);
            let on = inside(class, dx, dy);
            for c in 0..3 {
                let v = if on {
                    COLOURS[class as usize][c] * gain
                } else {
                    bg[c]
                };
                let noise = rng.random_range(-25.0..25.0f32);
                out[base + c * 1024 + y * 32 + x] = (v + noise).clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// `n` images with balanced labels (`i % 10`, shuffled by the draws of the positions), from
/// the generator seeded with `(seed, stream)`.
fn records(n: usize, seed: u64, stream: u64) -> (Vec<u8>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut images = Vec::with_capacity(n * IMAGE_LEN);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let class = rng.random_range(0..10u32);
        image(class, &mut rng, &mut images);
        labels.push(class);
    }
    (images, labels)
}

/// Writes a synthetic CIFAR-format data set into `root/cifar10/cifar-10-batches-bin/` (the
/// layout the real archive unpacks to, so `--data-dir root` finds it) and returns that
/// folder: five training batches of `spec.train_per_batch` records, one test batch of
/// `spec.test`, and `batches.meta.txt` with the class names.
pub fn write_cifar10(root: &Path, spec: &SyntheticCifar) -> Result<PathBuf> {
    if spec.train_per_batch == 0 || spec.test == 0 {
        return Err(DataError::InvalidArgument(format!(
            "a synthetic CIFAR-10 needs at least one record per batch, got {} per training batch and {} test",
            spec.train_per_batch, spec.test
        )));
    }
    let dir = root.join("cifar10").join(CIFAR10_ARCHIVE.folder);
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    for (i, name) in CIFAR10_FILES.iter().enumerate() {
        let n = if i < 5 {
            spec.train_per_batch
        } else {
            spec.test
        };
        let (images, labels) = records(n, spec.seed, i as u64);
        write_batch(&dir.join(name), &images, &labels)?;
    }
    let meta = dir.join("batches.meta.txt");
    let names = crate::DatasetKind::Cifar10.classes().join("\n") + "\n";
    std::fs::write(&meta, names).map_err(|e| DataError::io(&meta, e))?;
    Ok(dir)
}

/// Writes the synthetic data set of `spec` as a `.tar.gz` in the layout of the real
/// `cifar-10-binary.tar.gz` (`cifar-10-batches-bin/data_batch_1.bin`, ...,
/// `test_batch.bin`, `batches.meta.txt`) to `path`; returns its MD5 (lower-case hex) and size.
pub fn write_cifar10_archive(path: &Path, spec: &SyntheticCifar) -> Result<(String, u64)> {
    let staging = tempfile_dir(path)?;
    let result = (|| {
        let dir = write_cifar10(&staging, spec)?;
        let f = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        tar.append_dir_all(CIFAR10_ARCHIVE.folder, &dir)
            .map_err(|e| DataError::io(path, e))?;
        let mut gz = tar.into_inner().map_err(|e| DataError::io(path, e))?;
        gz.flush().map_err(|e| DataError::io(path, e))?;
        gz.finish().map_err(|e| DataError::io(path, e))?;
        crate::download::md5_file(path)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// A fresh staging folder next to `path`.
fn tempfile_dir(path: &Path) -> Result<PathBuf> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let d = parent.join(format!(".synthetic-cifar-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).map_err(|e| DataError::io(&d, e))?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_balanced_and_in_the_real_layout() {
        let t = tempfile::tempdir().unwrap();
        let spec = SyntheticCifar {
            train_per_batch: 50,
            test: 40,
            seed: 3,
        };
        let dir = write_cifar10(t.path(), &spec).unwrap();
        assert_eq!(dir, t.path().join("cifar10/cifar-10-batches-bin"));
        let first = std::fs::read(dir.join("data_batch_1.bin")).unwrap();
        assert_eq!(first.len(), 50 * 3073);
        let again = tempfile::tempdir().unwrap();
        let dir2 = write_cifar10(again.path(), &spec).unwrap();
        assert_eq!(std::fs::read(dir2.join("data_batch_1.bin")).unwrap(), first);
        assert_ne!(
            std::fs::read(dir.join("data_batch_2.bin")).unwrap(),
            first,
            "each batch its own draws"
        );
        let ds = crate::load_dir(crate::DatasetKind::Cifar10, &dir).unwrap();
        assert_eq!((ds.train.len, ds.test.len), (250, 40));
        let mut counts = [0usize; 10];
        for &l in &ds.train.labels {
            counts[l as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c >= 10), "{counts:?}");
        // Every shape is symmetric under a horizontal flip.
        for class in 0..10 {
            for i in -20..=20 {
                for j in -20..=20 {
                    let (x, y) = (i as f32 / 10.0, j as f32 / 10.0);
                    assert_eq!(inside(class, x, y), inside(class, -x, y), "{class} {x} {y}");
                }
            }
        }
    }
}
