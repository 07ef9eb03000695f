//! The real MNIST and Fashion-MNIST, when `CONVNETS_DATA` names a folder holding them.

mod common;

use std::io::Read;

use anyhow::{Context, Result};
use convnets_data::{find_file, load, locate_in, DatasetKind};
use sha2::{Digest, Sha256};

fn check(kind: DatasetKind, train_first: &[u32], test_first: &[u32]) -> Result<()> {
    let Some(root) = common::real_data_dir(kind.name()) else {
        return Ok(());
    };
    // Found through the CONVNETS_DATA rule and through an explicit folder.
    let dir = locate_in(
        kind,
        None,
        Some(root.as_os_str()),
        &root.join("nowhere"),
        &[],
    )?;
    assert_eq!(dir, root.join(kind.name()));
    let ds = load(kind, Some(&root))?;
    assert_eq!(ds.dir, dir);
    for (split, n, first) in [
        (&ds.train, 60_000, train_first),
        (&ds.test, 10_000, test_first),
    ] {
        assert_eq!(split.len, n);
        assert_eq!((split.rows, split.cols), (28, 28));
        assert_eq!(split.images.len(), n * 784);
        assert_eq!(split.labels.len(), n);
        assert_eq!(&split.labels[..first.len()], first);
        let mut counts = [0usize; 10];
        for &l in &split.labels {
            counts[l as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > n / 20), "{counts:?}");
    }
    // Checksums of the decompressed payloads, computed independently of the crate.
    for f in kind.files() {
        let p = find_file(&dir, &f).context("file present")?;
        let mut payload = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&p)?).read_to_end(&mut payload)?;
        let digest: String = Sha256::digest(&payload)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, f.sha256, "{}", p.display());
        convnets_data::verify_file(&p, f.sha256)?;
    }
    Ok(())
}

#[test]
fn real_mnist() -> Result<()> {
    check(
        DatasetKind::Mnist,
        &[5, 0, 4, 1, 9, 2, 1, 3],
        &[7, 2, 1, 0, 4, 1],
    )
}

#[test]
fn real_fashion_mnist() -> Result<()> {
    check(
        DatasetKind::FashionMnist,
        &[9, 0, 0, 3, 0, 2, 7, 2],
        &[9, 2, 1, 1, 6, 1],
    )
}

/// `datasets/SHA256SUMS` (committed beside the data) lists the same checksums as the code.
#[test]
fn sha256sums_file_matches_the_code() -> Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/SHA256SUMS");
    let Ok(text) = std::fs::read_to_string(&path) else {
        {
            use std::io::Write as _; // straight to stderr: libtest captures eprintln!, CI must see a skip
            let _ = writeln!(
                std::io::stderr(),
                "SKIP sha256sums_file_matches_the_code: no {}",
                path.display()
            );
        }
        return Ok(());
    };
    let mut listed: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (sum, file) = l.split_once("  ").context("`SUM  PATH` lines")?;
            Ok((file.to_string(), sum.to_string()))
        })
        .collect::<Result<_>>()?;
    let mut code: Vec<(String, String)> = DatasetKind::all()
        .iter()
        .flat_map(|k| {
            k.files()
                .into_iter()
                .map(|f| (format!("{}/{}", k.name(), f.name), f.sha256.to_string()))
        })
        .collect();
    listed.sort();
    code.sort();
    assert_eq!(listed, code);
    Ok(())
}

/// A 5,000-image validation set carved out of the real Fashion-MNIST training split.
#[test]
fn real_validation_split() -> Result<()> {
    let Some(root) = common::real_data_dir("real_validation_split") else {
        return Ok(());
    };
    let ds = load(DatasetKind::FashionMnist, Some(&root))?;
    assert_eq!(ds.num_classes(), 10);
    assert_eq!(ds.class_names()[9], "Ankle boot");
    let (train, val) = ds.train.split_off_validation(5_000, 0)?;
    assert_eq!((train.len, val.len), (55_000, 5_000));
    assert_eq!(train.images.len(), 55_000 * 784);
    assert_eq!(val.images.len(), 5_000 * 784);
    // Every class is represented in the validation set in roughly its share (500 each).
    let mut counts = [0usize; 10];
    for &l in &val.labels {
        counts[l as usize] += 1;
    }
    assert!(
        counts.iter().all(|&c| (350..650).contains(&c)),
        "{counts:?}"
    );
    // Label histograms of the parts add up to the whole's.
    let hist = |labels: &[u32]| {
        let mut h = [0usize; 10];
        for &l in labels {
            h[l as usize] += 1;
        }
        h
    };
    let (ht, hv, hall) = (
        hist(&train.labels),
        hist(&val.labels),
        hist(&ds.train.labels),
    );
    for c in 0..10 {
        assert_eq!(ht[c] + hv[c], hall[c]);
    }
    assert_eq!(ds.train.split_off_validation(5_000, 0)?.1, val);
    Ok(())
}
