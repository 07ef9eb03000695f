//! CIFAR-10: the reader's errors on files written here (truncated, bad label, missing batch),
//! and the download + unpacking path against a local HTTP server on 127.0.0.1 serving a
//! small `.tar.gz` in the real layout (no copy of CIFAR-10 exists on the test machines, and
//! none can be downloaded): a corrupt or cut archive is rejected and leaves nothing behind, a
//! good one is unpacked and loads. Property tests: arbitrary bytes never make the record
//! parser panic.

mod common;

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use common::{listing, Reply, Server};
use convnets_data::cifar::{parse_records, RECORD_LEN};
use convnets_data::synthetic::{write_cifar10, write_cifar10_archive, SyntheticCifar};
use convnets_data::{
    download_archive, load_dir, load_or_download_in, locate_in, Archive, DataError, DatasetKind,
    CIFAR10_FILES,
};
use proptest::prelude::*;

const SMALL: SyntheticCifar = SyntheticCifar {
    train_per_batch: 12,
    test: 8,
    seed: 5,
};

#[test]
fn reader_names_the_file_record_and_offset() -> Result<()> {
    let t = tempfile::tempdir()?;
    let dir = write_cifar10(t.path(), &SMALL)?;
    let ds = load_dir(DatasetKind::Cifar10, &dir)?;
    assert_eq!((ds.train.len, ds.test.len), (60, 8));
    assert_eq!(
        (ds.train.channels, ds.train.rows, ds.train.cols),
        (3, 32, 32)
    );
    assert_eq!(ds.train.images.len(), 60 * 3072);

    // A label byte >= 10 in record 3 of the second batch.
    let b2 = dir.join("data_batch_2.bin");
    let good = std::fs::read(&b2)?;
    let mut bad = good.clone();
    bad[3 * RECORD_LEN] = 10;
    std::fs::write(&b2, &bad)?;
    let e = load_dir(DatasetKind::Cifar10, &dir).unwrap_err();
    assert!(
        matches!(e, DataError::LabelOutOfRange { index: 3, .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("data_batch_2.bin")
            && msg.contains("label 10 at index 3")
            && msg.contains("byte offset 9219"),
        "{msg}"
    );

    // Truncated in the middle of a record.
    std::fs::write(&b2, &good[..good.len() - 1000])?;
    let e = load_dir(DatasetKind::Cifar10, &dir)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data_batch_2.bin") && e.contains("not a whole number of 3073-byte records"),
        "{e}"
    );
    assert!(e.contains("11 records and 2073 bytes left over"), "{e}");
    std::fs::write(&b2, &good)?;

    // A missing batch: the folder is no longer a match, and the error lists what is missing.
    std::fs::remove_file(dir.join("data_batch_4.bin"))?;
    let e = load_dir(DatasetKind::Cifar10, &dir)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data_batch_4.bin is missing") && e.contains("5 of 6 files"),
        "{e}"
    );
    let e = locate_in(DatasetKind::Cifar10, Some(t.path()), None, t.path(), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing data_batch_4.bin[.gz]"), "{e}");
    // Evaluation reads only the test batch.
    let test = convnets_data::dataset::load_test(DatasetKind::Cifar10, Some(&dir));
    assert!(test.is_err(), "a folder without every batch is not found");
    Ok(())
}

/// The synthetic archive, and an `Archive` describing it (its MD5 and size, computed here).
fn archive_bytes(dir: &Path) -> Result<(Vec<u8>, Archive)> {
    let path = dir.join("cifar-10-binary.tar.gz");
    let (md5, size) = write_cifar10_archive(&path, &SMALL)?;
    let bytes = std::fs::read(&path)?;
    std::fs::remove_file(&path)?;
    let archive = Archive {
        md5: md5.leak(),
        size,
        ..convnets_data::CIFAR10_ARCHIVE
    };
    Ok((bytes, archive))
}

#[test]
fn download_unpacks_a_good_archive_and_rejects_corrupt_or_cut_ones() -> Result<()> {
    let work = tempfile::tempdir()?;
    let (good, archive) = archive_bytes(work.path())?;
    let mut corrupt = good.clone();
    let n = corrupt.len();
    for b in &mut corrupt[n / 3..n / 3 + 64] {
        *b ^= 0x5a;
    }
    let name = archive.name;
    let server = Server::start(HashMap::from([
        (format!("/good/{name}"), Reply::Body(good.clone())),
        (format!("/bad/{name}"), Reply::Body(corrupt)),
        (format!("/cut/{name}"), Reply::Cut(good.clone(), n / 2)),
        (format!("/gone/{name}"), Reply::Status(404)),
    ]));
    let required = DatasetKind::Cifar10.required_files();
    let dest = work.path().join("root").join("cifar10");

    // Corrupt, cut and missing archives: each URL named with its reason, nothing left behind.
    let (bad, cut, gone) = (server.base("bad"), server.base("cut"), server.base("gone"));
    let e = download_archive(&archive, &required, &dest, &[&bad, &cut, &gone]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DataError::AllMirrorsFailed { .. }), "{msg}");
    assert!(msg.contains(&format!("{bad}{name}: MD5 mismatch")), "{msg}");
    assert!(msg.contains(&format!("{cut}{name}:")), "{msg}");
    assert!(msg.contains("404"), "{msg}");
    assert_eq!(
        listing(&dest),
        Vec::<String>::new(),
        "no part file, no folder"
    );

    // The good one, after the bad: unpacked into cifar-10-batches-bin/, the archive not kept.
    let good_base = server.base("good");
    let dir = download_archive(&archive, &required, &dest, &[&bad, &good_base])?;
    assert_eq!(dir, dest.join("cifar-10-batches-bin"));
    assert_eq!(listing(&dest), ["cifar-10-batches-bin"]);
    let mut want: Vec<String> = CIFAR10_FILES.iter().map(|f| f.to_string()).collect();
    want.push("batches.meta.txt".into());
    want.sort();
    assert_eq!(listing(&dir), want);
    let ds = load_dir(DatasetKind::Cifar10, &dir)?;
    assert_eq!((ds.train.len, ds.test.len), (60, 8));

    // Present: no request at all.
    let hits = server.hits().len();
    download_archive(&archive, &required, &dest, &[&good_base])?;
    assert_eq!(server.hits().len(), hits);
    Ok(())
}

/// An archive with the right checksum but the wrong content (a file missing, a path leaving
/// the folder) is refused, and an incomplete earlier copy is left as it was.
#[test]
fn unpacking_refuses_archives_without_the_files_or_with_escaping_paths() -> Result<()> {
    let work = tempfile::tempdir()?;
    let required = DatasetKind::Cifar10.required_files();
    let folder = convnets_data::CIFAR10_ARCHIVE.folder;
    let make = |entries: &[(&str, &[u8])]| -> Result<std::path::PathBuf> {
        let p = work.path().join(format!("a{}.tar.gz", entries.len()));
        let f = std::fs::File::create(&p)?;
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            f,
            flate2::Compression::fast(),
        ));
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // Raw name bytes, so that `..` can be written (set_path refuses it).
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            tar.append(&h, *data)?;
        }
        tar.into_inner()?.finish()?;
        Ok(p)
    };
    let dest = work.path().join("cifar10");
    std::fs::create_dir_all(dest.join(folder))?;
    std::fs::write(dest.join(folder).join("data_batch_1.bin"), b"old")?;
    let one = format!("{folder}/data_batch_1.bin");
    let p = make(&[(one.as_str(), &[0u8; 3073])])?;
    let e = convnets_data::unpack_archive(&p, &convnets_data::CIFAR10_ARCHIVE, &required, &dest)
        .unwrap_err()
        .to_string();
    assert!(e.contains("the archive lacks data_batch_2.bin"), "{e}");
    let escape = format!("{folder}/../evil.bin");
    let p = make(&[(escape.as_str(), b"x")])?;
    let e = convnets_data::unpack_archive(&p, &convnets_data::CIFAR10_ARCHIVE, &required, &dest)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unexpected entry") && e.contains("evil.bin"),
        "{e}"
    );
    assert!(!work.path().join("evil.bin").exists() && !dest.join("evil.bin").exists());
    let p = work.path().join("junk.tar.gz");
    std::fs::write(&p, b"not an archive at all")?;
    assert!(
        convnets_data::unpack_archive(&p, &convnets_data::CIFAR10_ARCHIVE, &required, &dest)
            .is_err()
    );
    // Only the earlier copy remains, untouched; no staging folder.
    assert_eq!(listing(&dest), [folder]);
    assert_eq!(
        std::fs::read(dest.join(folder).join("data_batch_1.bin"))?,
        b"old"
    );
    Ok(())
}

/// `load_or_download_in` finds nothing, downloads the archive from the mirror into the
/// default root, and loads it (the path `convnets train --dataset cifar10` takes).
#[test]
fn load_or_download_fetches_and_loads_cifar10() -> Result<()> {
    let work = tempfile::tempdir()?;
    let (good, archive) = archive_bytes(work.path())?;
    let server = Server::start(HashMap::from([(
        format!("/m/{}", archive.name),
        Reply::Body(good),
    )]));
    // The real archive's checksum does not match the synthetic one: refused, nothing kept.
    let root = work.path().join("root");
    let e = load_or_download_in(
        DatasetKind::Cifar10,
        None,
        true,
        None,
        &root,
        &[],
        &[&server.base("m")],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("170052171 for cifar-10-binary.tar.gz"), "{e}");
    assert!(e.contains("cifar10 not found"), "{e}");
    assert_eq!(listing(&root.join("cifar10")), Vec::<String>::new());
    // With the synthetic archive's checksum, the same path unpacks and loads it.
    let dir = download_archive(
        &archive,
        &DatasetKind::Cifar10.required_files(),
        &root.join("cifar10"),
        &[&server.base("m")],
    )?;
    let ds = load_or_download_in(DatasetKind::Cifar10, None, false, None, &root, &[], &[])?;
    assert_eq!(ds.dir, dir);
    assert_eq!(ds.test.len, 8);
    Ok(())
}

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 256;
    }
    c
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes: `Ok` exactly when they are whole records with labels < 10, else a
    /// typed error; never a panic.
    #[test]
    fn records_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4 * RECORD_LEN)) {
        let r = parse_records(&bytes, Path::new("p.bin"), 10);
        let whole = !bytes.is_empty() && bytes.len() % RECORD_LEN == 0;
        let labels_ok = bytes.chunks(RECORD_LEN).all(|r| r[0] < 10);
        match r {
            Ok(s) => {
                prop_assert!(whole && labels_ok);
                prop_assert_eq!(s.len, bytes.len() / RECORD_LEN);
                prop_assert_eq!(s.images.len(), s.len * 3072);
            }
            Err(DataError::RecordLength { .. }) => prop_assert!(!whole && !bytes.is_empty()),
            Err(DataError::LabelOutOfRange { label, .. }) => prop_assert!(whole && label >= 10),
            Err(DataError::Archive { .. }) => prop_assert!(bytes.is_empty()),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    /// Valid records with a few bytes changed (labels included): never a panic, and a label
    /// error names the first bad record.
    #[test]
    fn mutated_records_never_panic(
        n in 1usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
    ) {
        let mut bytes: Vec<u8> = (0..n * RECORD_LEN).map(|i| if i % RECORD_LEN == 0 { (i / RECORD_LEN % 10) as u8 } else { i as u8 }).collect();
        for (at, v) in edits {
            let i = at % bytes.len();
            bytes[i] = v;
        }
        match parse_records(&bytes, Path::new("m.bin"), 10) {
            Ok(s) => prop_assert_eq!(s.len, n),
            Err(DataError::LabelOutOfRange { index, offset, .. }) => {
                prop_assert_eq!(offset, (index * RECORD_LEN) as u64);
                prop_assert!(bytes[index * RECORD_LEN] >= 10);
                prop_assert!((0..index).all(|i| bytes[i * RECORD_LEN] < 10));
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
