//! Loading hand-built MNIST-layout folders: valid raw and gzipped files, and every error,
//! each naming the file and the numbers involved.

mod common;

use std::path::{Path, PathBuf};

use anyhow::Result;
use common::{gz, idx_bytes};
use convnets_data::idx::read_idx;
use convnets_data::{load, load_dir, DataError, DatasetKind};

const TRAIN: usize = 3;
const TEST: usize = 2;

fn pixels(n: usize, salt: u8) -> Vec<u8> {
    (0..n * 784)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

/// Writes a valid folder: train files gzipped, test files raw.
fn write_valid(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("train-images-idx3-ubyte.gz"),
        gz(&idx_bytes(&[TRAIN as u32, 28, 28], &pixels(TRAIN, 1))),
    )?;
    std::fs::write(
        dir.join("train-labels-idx1-ubyte.gz"),
        gz(&idx_bytes(&[3], &[5, 0, 9])),
    )?;
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        idx_bytes(&[TEST as u32, 28, 28], &pixels(TEST, 2)),
    )?;
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_bytes(&[2], &[7, 2]))?;
    Ok(())
}

/// A valid folder with one file replaced by `bytes`.
fn with_file(name: &str, bytes: Vec<u8>) -> Result<(tempfile::TempDir, PathBuf)> {
    let t = tempfile::tempdir()?;
    write_valid(t.path())?;
    let p = t.path().join(name);
    std::fs::write(&p, bytes)?;
    Ok((t, p))
}

fn load_err(dir: &Path) -> DataError {
    match load_dir(DatasetKind::Mnist, dir) {
        Ok(_) => panic!("expected an error loading {}", dir.display()),
        Err(e) => e,
    }
}

fn assert_mentions(e: &DataError, parts: &[&str]) {
    let s = e.to_string();
    for p in parts {
        assert!(s.contains(p), "{s:?} does not mention {p:?}");
    }
}

#[test]
fn valid_raw_and_gzipped() -> Result<()> {
    let t = tempfile::tempdir()?;
    write_valid(t.path())?;
    let ds = load(DatasetKind::Mnist, Some(t.path()))?;
    assert_eq!(ds.dir, t.path());
    assert_eq!(
        (ds.train.len, ds.train.rows, ds.train.cols),
        (TRAIN, 28, 28)
    );
    assert_eq!(ds.train.images, pixels(TRAIN, 1));
    assert_eq!(ds.train.labels, [5, 0, 9]);
    assert_eq!(ds.test.len, TEST);
    assert_eq!(ds.test.images, pixels(TEST, 2));
    assert_eq!(ds.test.labels, [7, 2]);
    assert_eq!(ds.train.image(1), Some(&pixels(TRAIN, 1)[784..1568]));
    assert_eq!(ds.train.image(3), None);
    // The same folder as <dir>/mnist/.
    let parent = tempfile::tempdir()?;
    write_valid(&parent.path().join("mnist"))?;
    let ds = load(DatasetKind::Mnist, Some(parent.path()))?;
    assert_eq!(ds.dir, parent.path().join("mnist"));
    Ok(())
}

#[test]
fn wrong_magic() -> Result<()> {
    let mut b = idx_bytes(&[3], &[5, 0, 9]);
    b[0] = 0x08;
    let (t, p) = with_file("train-labels-idx1-ubyte.gz", gz(&b))?;
    let e = load_err(t.path());
    assert!(matches!(e, DataError::BadMagic { .. }), "{e:?}");
    assert_mentions(&e, &[&p.display().to_string(), "08 00 08 01"]);
    Ok(())
}

#[test]
fn wrong_dtype_code() -> Result<()> {
    let mut b = idx_bytes(&[TEST as u32, 28, 28], &pixels(TEST, 0));
    b[2] = 0x0d;
    let (t, p) = with_file("t10k-images-idx3-ubyte", b)?;
    let e = load_err(t.path());
    assert!(matches!(e, DataError::BadDtype { code: 0x0d, .. }), "{e:?}");
    assert_mentions(&e, &[&p.display().to_string(), "0x0d", "f32", "0x08"]);
    Ok(())
}

#[test]
fn truncated_payload() -> Result<()> {
    let mut b = idx_bytes(&[TRAIN as u32, 28, 28], &pixels(TRAIN, 1));
    b.truncate(b.len() - 100);
    let (t, p) = with_file("train-images-idx3-ubyte.gz", gz(&b))?;
    let e = load_err(t.path());
    let expected = 16 + TRAIN * 784;
    assert!(
        matches!(e, DataError::Truncated { expected: x, found: f, .. } if x == expected as u64 && f == expected as u64 - 100),
        "{e:?}"
    );
    assert_mentions(
        &e,
        &[
            &p.display().to_string(),
            &expected.to_string(),
            &(expected - 100).to_string(),
        ],
    );
    Ok(())
}

#[test]
fn trailing_bytes() -> Result<()> {
    let mut b = idx_bytes(&[2], &[7, 2]);
    b.extend_from_slice(&[1, 2, 3]);
    let (t, p) = with_file("t10k-labels-idx1-ubyte", b)?;
    let e = load_err(t.path());
    assert!(
        matches!(
            e,
            DataError::TrailingBytes {
                expected: 10,
                found: 13,
                ..
            }
        ),
        "{e:?}"
    );
    assert_mentions(
        &e,
        &[&p.display().to_string(), "3 trailing bytes", "offset 10"],
    );
    Ok(())
}

#[test]
fn count_mismatch() -> Result<()> {
    let (t, p) = with_file(
        "train-labels-idx1-ubyte.gz",
        gz(&idx_bytes(&[4], &[1, 2, 3, 4])),
    )?;
    let e = load_err(t.path());
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                images: 3,
                labels: 4,
                ..
            }
        ),
        "{e:?}"
    );
    let images = t.path().join("train-images-idx3-ubyte.gz");
    assert_mentions(
        &e,
        &[
            &p.display().to_string(),
            &images.display().to_string(),
            "3 images",
            "4 labels",
        ],
    );
    Ok(())
}

#[test]
fn label_out_of_range() -> Result<()> {
    let (t, p) = with_file("t10k-labels-idx1-ubyte", idx_bytes(&[2], &[7, 10]))?;
    let e = load_err(t.path());
    assert!(
        matches!(
            e,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                classes: 10,
                offset: 9,
                ..
            }
        ),
        "{e:?}"
    );
    assert_mentions(
        &e,
        &[
            &p.display().to_string(),
            "label 10 at index 1",
            "offset 9",
            "< 10",
        ],
    );
    Ok(())
}

#[test]
fn images_not_28x28() -> Result<()> {
    let (t, p) = with_file(
        "t10k-images-idx3-ubyte",
        idx_bytes(&[TEST as u32, 14, 56], &pixels(TEST, 0)),
    )?;
    let e = load_err(t.path());
    assert!(matches!(e, DataError::BadShape { .. }), "{e:?}");
    assert_mentions(
        &e,
        &[&p.display().to_string(), "[n, 28, 28]", "[2, 14, 56]"],
    );
    Ok(())
}

#[test]
fn corrupt_gzip() -> Result<()> {
    let mut g = gz(&idx_bytes(&[3], &[5, 0, 9]));
    let n = g.len();
    g.truncate(n - 6);
    let (t, p) = with_file("train-labels-idx1-ubyte.gz", g)?;
    let e = load_err(t.path());
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
    assert_mentions(&e, &[&p.display().to_string(), "gzip"]);
    Ok(())
}

#[test]
fn missing_data_folder() -> Result<()> {
    let t = tempfile::tempdir()?;
    let missing = t.path().join("no-such-folder");
    let e = load(DatasetKind::FashionMnist, Some(&missing)).unwrap_err();
    match &e {
        DataError::NotFound {
            dataset, searched, ..
        } => {
            assert_eq!(dataset, "fashion-mnist");
            assert_eq!(searched, &[missing.clone(), missing.join("fashion-mnist")]);
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_mentions(
        &e,
        &[
            &missing.display().to_string(),
            &missing.join("fashion-mnist").display().to_string(),
            "cargo xtask download fashion-mnist",
            "dataset-fashion-mnist",
            "train-images-idx3-ubyte",
        ],
    );
    // A missing file, and a file that cannot be read.
    let e = read_idx(&missing.join("x-idx1-ubyte")).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }), "{e:?}");
    assert_mentions(&e, &["x-idx1-ubyte"]);
    Ok(())
}

/// The not-found error says, per searched folder, what is there: one of four files absent,
/// a dangling symbolic link, no folder at all.
#[cfg(unix)]
#[test]
fn not_found_names_the_missing_and_broken_files() -> Result<()> {
    let t = tempfile::tempdir()?;
    let dir = t.path().join("mnist");
    write_valid(&dir)?;
    std::fs::remove_file(dir.join("t10k-labels-idx1-ubyte"))?;
    std::fs::remove_file(dir.join("train-labels-idx1-ubyte.gz"))?;
    std::os::unix::fs::symlink(
        t.path().join("gone.gz"),
        dir.join("train-labels-idx1-ubyte.gz"),
    )?;
    let e = load(DatasetKind::Mnist, Some(&dir)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("2 of 4 files; missing t10k-labels-idx1-ubyte[.gz]; train-labels-idx1-ubyte.gz is a dangling symbolic link"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{}: no such folder", dir.join("mnist").display())),
        "{msg}"
    );
    assert!(msg.contains("`convnets download mnist`"), "{msg}");

    let link = t.path().join("link");
    std::os::unix::fs::symlink(t.path().join("nowhere"), &link)?;
    let msg = load(DatasetKind::Mnist, Some(&link))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("link: a dangling symbolic link"), "{msg}");
    Ok(())
}
