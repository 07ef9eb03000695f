//! `load_or_download` without the network: found data is loaded, and when nothing is found
//! the policy decides between `NotFound` and a download (here disabled or impossible).

mod common;

use std::path::Path;

use anyhow::Result;
use common::idx_bytes;
use convnets_data::{load_or_download_in, DataError, DatasetKind, DOWNLOAD_ENABLED};

/// A valid MNIST-layout folder with 2 training and 1 test image.
fn write_valid(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let files: [(&str, Vec<u8>); 4] = [
        (
            "train-images-idx3-ubyte",
            idx_bytes(&[2, 28, 28], &[3; 2 * 784]),
        ),
        ("train-labels-idx1-ubyte", idx_bytes(&[2], &[1, 8])),
        ("t10k-images-idx3-ubyte", idx_bytes(&[1, 28, 28], &[4; 784])),
        ("t10k-labels-idx1-ubyte", idx_bytes(&[1], &[9])),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

/// A mirror that cannot be reached: a local port that was just free (connection refused).
fn nowhere() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port");
    format!("http://127.0.0.1:{port}/")
}

#[test]
fn found_data_is_loaded_without_downloading() -> Result<()> {
    let nowhere = nowhere();
    let t = tempfile::tempdir()?;
    let root = t.path().join("root");
    write_valid(&root.join("mnist"))?;
    let ds = load_or_download_in(
        DatasetKind::Mnist,
        None,
        true,
        None,
        &root,
        &[],
        &[&nowhere],
    )?;
    assert_eq!(ds.dir, root.join("mnist"));
    assert_eq!((ds.train.len, ds.test.len), (2, 1));
    assert_eq!(ds.train.labels, [1, 8]);
    assert_eq!(ds.num_classes(), 10);
    assert_eq!(ds.class_names()[8], "8");

    // Through $CONVNETS_DATA and through an explicit folder, too.
    let env = t.path().join("env");
    write_valid(&env.join("mnist"))?;
    let ds = load_or_download_in(
        DatasetKind::Mnist,
        None,
        true,
        Some(env.as_os_str()),
        &root,
        &[],
        &[&nowhere],
    )?;
    assert_eq!(ds.dir, env.join("mnist"));
    let ds = load_or_download_in(
        DatasetKind::Mnist,
        Some(&root),
        true,
        None,
        &t.path().join("elsewhere"),
        &[],
        &[&nowhere],
    )?;
    assert_eq!(ds.dir, root.join("mnist"));
    Ok(())
}

#[test]
fn no_download_when_not_asked_or_when_a_folder_is_given() -> Result<()> {
    let nowhere = nowhere();
    let t = tempfile::tempdir()?;
    let root = t.path().join("root");
    let k = DatasetKind::FashionMnist;
    // download = false: the plain NotFound, and nothing created.
    let e = load_or_download_in(k, None, false, None, &root, &[], &[&nowhere]).unwrap_err();
    assert!(matches!(e, DataError::NotFound { .. }), "{e:?}");
    assert!(!root.exists());
    // An explicit folder is never downloaded into.
    let given = t.path().join("given");
    let e = load_or_download_in(k, Some(&given), true, None, &root, &[], &[&nowhere]).unwrap_err();
    match &e {
        DataError::NotFound { searched, .. } => {
            assert_eq!(searched, &[given.clone(), given.join("fashion-mnist")])
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!root.exists());
    Ok(())
}

#[test]
fn failed_download_reports_both_errors() -> Result<()> {
    let nowhere = nowhere();
    let t = tempfile::tempdir()?;
    let root = t.path().join("root");
    let k = DatasetKind::FashionMnist;
    let e = load_or_download_in(k, None, true, None, &root, &[], &[&nowhere]).unwrap_err();
    let msg = e.to_string();
    let DataError::DataUnavailable {
        download,
        not_found,
    } = &e
    else {
        panic!("expected DataUnavailable, got {e:?}");
    };
    assert!(matches!(**not_found, DataError::NotFound { .. }), "{msg}");
    if DOWNLOAD_ENABLED {
        assert!(
            matches!(**download, DataError::AllMirrorsFailed { .. }),
            "{msg}"
        );
        assert!(msg.contains(&nowhere), "{msg}");
    } else {
        assert!(
            matches!(**download, DataError::DownloadDisabled { .. }),
            "{msg}"
        );
        assert!(
            msg.contains("built without the `download` feature"),
            "{msg}"
        );
    }
    // The not-found half: where it searched, where to put the files, the Debian package.
    for part in [
        root.join("fashion-mnist").display().to_string(),
        "train-images-idx3-ubyte".to_string(),
        "dataset-fashion-mnist".to_string(),
    ] {
        assert!(msg.contains(&part), "{msg:?} does not mention {part:?}");
    }
    Ok(())
}
