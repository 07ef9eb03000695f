//! Downloads from a local HTTP server: mirrors in order, 404s, corrupted and interrupted
//! bodies, checksums, skipping files already present.

mod common;

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use common::{gunzip, gz, idx_bytes, listing, Reply, Server};
use convnets_data::{
    download, download_files, load_dir, load_or_download_in, sha256_hex, DataError, DataFile,
    DatasetKind,
};

/// Two small IDX files and their `DataFile`s (checksums computed here).
fn synthetic() -> Vec<(DataFile, Vec<u8>)> {
    let images: Vec<u8> = (0..3 * 4 * 4).map(|i| (i * 7 % 256) as u8).collect();
    let payloads = [
        ("train-images-idx3-ubyte", idx_bytes(&[3, 4, 4], &images)),
        ("train-labels-idx1-ubyte", idx_bytes(&[3], &[5, 0, 4])),
    ];
    payloads
        .into_iter()
        .map(|(name, bytes)| {
            let sha = sha256_hex(&bytes).leak() as &'static str;
            (DataFile { name, sha256: sha }, bytes)
        })
        .collect()
}

fn files(s: &[(DataFile, Vec<u8>)]) -> Vec<DataFile> {
    s.iter().map(|(f, _)| *f).collect()
}

/// Routes: `/good/` serves every file, `/bad/` serves a valid gzip of a payload with flipped
/// bytes for the first file and a gzip with flipped compressed bytes for the second,
/// `/cut/` closes the connection halfway through the body, `/gone/` answers 410.
fn routes(s: &[(DataFile, Vec<u8>)]) -> HashMap<String, Reply> {
    let mut r = HashMap::new();
    for (i, (f, payload)) in s.iter().enumerate() {
        let name = format!("{}.gz", f.name);
        let good = gz(payload);
        let bad = if i == 0 {
            let mut p = payload.clone();
            let n = p.len();
            p[n - 1] ^= 0xff;
            p[n / 2] ^= 0xff;
            gz(&p)
        } else {
            let mut g = good.clone();
            let n = g.len();
            for b in &mut g[12..n - 8] {
                *b ^= 0xa5;
            }
            g
        };
        r.insert(format!("/good/{name}"), Reply::Body(good.clone()));
        r.insert(format!("/bad/{name}"), Reply::Body(bad));
        r.insert(
            format!("/cut/{name}"),
            Reply::Cut(good.clone(), good.len() / 2),
        );
        r.insert(format!("/gone/{name}"), Reply::Status(410));
    }
    r
}

fn assert_installed(dest: &Path, s: &[(DataFile, Vec<u8>)]) {
    let mut want: Vec<String> = s.iter().map(|(f, _)| format!("{}.gz", f.name)).collect();
    want.sort();
    assert_eq!(listing(dest), want, "only the verified files remain");
    for (f, payload) in s {
        let got = std::fs::read(dest.join(format!("{}.gz", f.name))).unwrap();
        assert_eq!(&gunzip(&got), payload, "{}", f.name);
    }
}

#[test]
fn corrupt_mirror_rejected_then_next_mirror_accepted() -> Result<()> {
    let s = synthetic();
    let server = Server::start(routes(&s));
    let t = tempfile::tempdir()?;
    let dest = t.path().join("out");
    let (m404, bad, good) = (
        server.base("missing"),
        server.base("bad"),
        server.base("good"),
    );
    download_files(&files(&s), &dest, &[&m404, &bad, &good])?;
    assert_installed(&dest, &s);
    let hits = server.hits();
    assert_eq!(
        hits,
        [
            "/missing/train-images-idx3-ubyte.gz",
            "/bad/train-images-idx3-ubyte.gz",
            "/good/train-images-idx3-ubyte.gz",
            "/missing/train-labels-idx1-ubyte.gz",
            "/bad/train-labels-idx1-ubyte.gz",
            "/good/train-labels-idx1-ubyte.gz",
        ]
    );

    // Present and valid: nothing is fetched, even from mirrors that all fail.
    download_files(&files(&s), &dest, &[&m404])?;
    assert_eq!(server.hits().len(), hits.len());

    // A corrupted file on disk is replaced.
    std::fs::write(
        dest.join("train-labels-idx1-ubyte.gz"),
        gz(b"not the labels"),
    )?;
    download_files(&files(&s), &dest, &[&good])?;
    assert_installed(&dest, &s);
    assert_eq!(server.hits().len(), hits.len() + 1);
    Ok(())
}

#[test]
fn all_mirrors_fail_lists_every_url_and_leaves_nothing() -> Result<()> {
    let s = synthetic();
    let server = Server::start(routes(&s));
    let t = tempfile::tempdir()?;
    let dest = t.path().join("out");
    let (m404, gone, bad) = (
        server.base("missing"),
        server.base("gone"),
        server.base("bad"),
    );
    let err = download_files(&files(&s), &dest, &[&m404, &gone, &bad]).unwrap_err();
    let msg = err.to_string();
    match &err {
        DataError::AllMirrorsFailed {
            file,
            attempts,
            dest: d,
        } => {
            assert_eq!(file, "train-images-idx3-ubyte.gz");
            assert_eq!(d, &dest);
            assert_eq!(attempts.len(), 3, "{msg}");
            assert_eq!(attempts[0].0, format!("{m404}train-images-idx3-ubyte.gz"));
            assert!(attempts[0].1.contains("HTTP 404"), "{msg}");
            assert!(attempts[1].1.contains("HTTP 410"), "{msg}");
            assert!(attempts[2].1.contains("SHA-256 mismatch"), "{msg}");
            assert!(attempts[2].1.contains(s[0].0.sha256), "{msg}");
        }
        other => panic!("expected AllMirrorsFailed, got {other:?}"),
    }
    for url in [&m404, &gone, &bad] {
        assert!(msg.contains(url.as_str()), "{msg}");
    }
    assert!(
        listing(&dest).is_empty(),
        "left behind: {:?}",
        listing(&dest)
    );

    // The second file's bad mirror serves broken gzip: also rejected, nothing left.
    let err = download_files(&files(&s)[1..], &dest, &[&bad]).unwrap_err();
    assert!(err.to_string().contains("gzip"), "{err}");
    assert!(
        listing(&dest).is_empty(),
        "left behind: {:?}",
        listing(&dest)
    );
    Ok(())
}

#[test]
fn interrupted_download_leaves_no_valid_looking_file() -> Result<()> {
    let s = synthetic();
    let server = Server::start(routes(&s));
    let t = tempfile::tempdir()?;
    let dest = t.path().join("out");
    let cut = server.base("cut");
    let err = download_files(&files(&s), &dest, &[&cut]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{cut}train-images-idx3-ubyte.gz")),
        "{msg}"
    );
    assert!(msg.contains("after"), "{msg}");
    assert!(
        listing(&dest).is_empty(),
        "left behind: {:?}",
        listing(&dest)
    );

    // The next mirror completes it.
    let good = server.base("good");
    download_files(&files(&s), &dest, &[&cut, &good])?;
    assert_installed(&dest, &s);
    Ok(())
}

#[test]
fn uncompressed_body_is_installed_raw() -> Result<()> {
    let s = synthetic();
    let mut r = HashMap::new();
    for (f, payload) in &s {
        r.insert(format!("/raw/{}.gz", f.name), Reply::Body(payload.clone()));
    }
    let server = Server::start(r);
    let t = tempfile::tempdir()?;
    download_files(&files(&s), t.path(), &[&server.base("raw")])?;
    assert_eq!(
        listing(t.path()),
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    );
    Ok(())
}

#[test]
fn unreachable_mirror_is_reported() -> Result<()> {
    // A port that was just free: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let t = tempfile::tempdir()?;
    let s = synthetic();
    let url = format!("http://127.0.0.1:{port}/x/");
    let err = download_files(&files(&s), t.path(), &[&url]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&url) && msg.contains("Connection Failed"),
        "{msg}"
    );
    assert_eq!(msg.matches(&url).count(), 1, "the URL is named once: {msg}");
    assert!(listing(t.path()).is_empty());
    Ok(())
}

/// The real MNIST files through a corrupted mirror then a good one, with the real checksums.
#[test]
fn real_mnist_download_from_local_mirror() -> Result<()> {
    let Some(data) = common::real_data_dir("real_mnist_download_from_local_mirror") else {
        return Ok(());
    };
    let kind = DatasetKind::Mnist;
    let mut r = HashMap::new();
    for f in kind.files() {
        let name = format!("{}.gz", f.name);
        let good = std::fs::read(data.join("mnist").join(&name))?;
        let mut bad = good.clone();
        let n = bad.len();
        bad[n / 3] ^= 0x01;
        r.insert(format!("/bad/{name}"), Reply::Body(bad));
        r.insert(format!("/good/{name}"), Reply::Body(good));
    }
    let server = Server::start(r);
    let t = tempfile::tempdir()?;
    let dir = download(kind, t.path(), &[&server.base("bad"), &server.base("good")])?;
    assert_eq!(dir, t.path().join("mnist"));
    assert_eq!(server.hits().len(), 8);
    let ds = load_dir(kind, &dir)?;
    assert_eq!((ds.train.len, ds.test.len), (60_000, 10_000));
    assert_eq!(listing(&dir).len(), 4);
    Ok(())
}

/// `load_or_download` when nothing is found: downloads the real Fashion-MNIST from a local
/// mirror into the default root, then loads it; a second call finds it there.
#[test]
fn load_or_download_fetches_into_the_default_root() -> Result<()> {
    let Some(data) = common::real_data_dir("load_or_download_fetches_into_the_default_root") else {
        return Ok(());
    };
    let kind = DatasetKind::FashionMnist;
    let mut r = HashMap::new();
    for f in kind.files() {
        let name = format!("{}.gz", f.name);
        let body = std::fs::read(data.join(kind.name()).join(&name))?;
        r.insert(format!("/m/{name}"), Reply::Body(body));
    }
    let server = Server::start(r);
    let t = tempfile::tempdir()?;
    let root = t.path().join("root");
    let mirror = server.base("m");
    let ds = load_or_download_in(kind, None, true, None, &root, &[], &[&mirror])?;
    assert_eq!(ds.dir, root.join("fashion-mnist"));
    assert_eq!((ds.train.len, ds.test.len), (60_000, 10_000));
    assert_eq!(ds.class_names()[0], "T-shirt/top");
    assert_eq!(server.hits().len(), 4);
    let again = load_or_download_in(kind, None, true, None, &root, &[], &[&mirror])?;
    assert_eq!(again.dir, ds.dir);
    assert_eq!(server.hits().len(), 4, "nothing fetched the second time");
    Ok(())
}

/// Every mirror failing: one error carrying the download failure and the search.
#[test]
fn load_or_download_failure_carries_both_errors() -> Result<()> {
    let server = Server::start(HashMap::new());
    let t = tempfile::tempdir()?;
    let root = t.path().join("root");
    let mirror = server.base("empty");
    let e = load_or_download_in(DatasetKind::Mnist, None, true, None, &root, &[], &[&mirror])
        .unwrap_err();
    let msg = e.to_string();
    match &e {
        DataError::DataUnavailable {
            download,
            not_found,
        } => {
            assert!(
                matches!(**download, DataError::AllMirrorsFailed { .. }),
                "{msg}"
            );
            assert!(matches!(**not_found, DataError::NotFound { .. }), "{msg}");
        }
        other => panic!("expected DataUnavailable, got {other:?}"),
    }
    assert!(msg.contains("HTTP 404") && msg.contains(&mirror), "{msg}");
    assert!(
        msg.contains(&root.join("mnist").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("cargo xtask download mnist"), "{msg}");
    // Nothing unverified left behind.
    assert!(listing(&root.join("mnist")).is_empty());
    Ok(())
}
