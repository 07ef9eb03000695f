//! Downloading data sets over mirrors, with SHA-256 verification and atomic installs.
//!
//! Each file is fetched as `NAME.gz` from a mirror's base URL and streamed to a temporary
//! `.NAME.gz.part-<pid>` in the destination folder. Its decompressed payload is then hashed;
//! only when the SHA-256 matches is it renamed to `NAME.gz` (or `NAME` when the server sent
//! it uncompressed). Otherwise the temporary file is deleted and the next mirror tried.
//!
//! A data set distributed as one archive (CIFAR-10, [`DatasetKind::archive`]) is streamed to a
//! temporary `.NAME.part-<pid>`, checked against its published MD5 and size, and unpacked
//! (the `tar` crate) into a temporary folder; only when every expected file is there is that
//! folder renamed into place, so a half-extracted folder never looks complete.
//!
//! The HTTP client is compiled only with the (default) cargo feature `download`. Without
//! it, every function here still exists: checksums work as usual, files already present
//! and verified are accepted, and anything that would need fetching is reported as
//! [`DataError::DownloadDisabled`].

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::dataset::{Archive, DataFile, DatasetKind};
use crate::error::{DataError, Result};
use crate::idx::GZIP_MAGIC;

/// Whether this build can download (the cargo feature `download` is on).
pub const DOWNLOAD_ENABLED: bool = cfg!(feature = "download");

/// Connect timeout of the HTTP agent.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Read timeout of the HTTP agent (per read, not for the whole body).
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Downloads the files of `kind` into `root/<name>/` and returns the folder holding them
/// (`root/cifar10/cifar-10-batches-bin/` for CIFAR-10, as its archive unpacks).
///
/// `mirrors` are base URLs tried in order for each file; an empty slice means
/// [`DatasetKind::mirrors`]. Files already present with the right checksum are kept.
/// Without the `download` feature nothing is fetched (see [`download_files`]).
pub fn download(kind: DatasetKind, root: &Path, mirrors: &[&str]) -> Result<PathBuf> {
    let dest = root.join(kind.name());
    let mirrors = if mirrors.is_empty() {
        kind.mirrors()
    } else {
        mirrors
    };
    if let Some(archive) = kind.archive() {
        return download_archive(&archive, &kind.required_files(), &dest, mirrors);
    }
    download_files(&kind.files(), &dest, mirrors)?;
    Ok(dest)
}

/// Downloads `archive` from the first of `mirrors` that serves it intact (its MD5 and size),
/// unpacks it into `dest` and returns `dest/<archive.folder>`, which then holds every file of
/// `required`. A folder already holding them is returned without a download.
///
/// The archive is streamed to `dest/.NAME.part-<pid>` and unpacked into
/// `dest/.unpack-<pid>/`; only entries below `archive.folder` that are regular files (or
/// folders) are extracted — links, devices and paths leaving the folder are refused. The
/// unpacked folder replaces `dest/<archive.folder>` by a rename once every required file is
/// in it; on any failure the temporary files are removed and nothing else is touched. The
/// archive itself is not kept.
pub fn download_archive(
    archive: &Archive,
    required: &[&str],
    dest: &Path,
    mirrors: &[&str],
) -> Result<PathBuf> {
    let target = dest.join(archive.folder);
    if required.iter().all(|f| target.join(f).is_file()) {
        return Ok(target);
    }
    if mirrors.is_empty() {
        return Err(DataError::InvalidArgument(
            "no mirror to download from".into(),
        ));
    }
    #[cfg(feature = "download")]
    {
        std::fs::create_dir_all(dest).map_err(|e| DataError::io(dest, e))?;
        let agent = http::agent();
        let part = dest.join(format!(".{}.part-{}", archive.name, std::process::id()));
        let mut attempts = Vec::new();
        for base in mirrors {
            let url = if base.ends_with('/') {
                format!("{base}{}", archive.name)
            } else {
                format!("{base}/{}", archive.name)
            };
            let _guard = PartFile(part.clone());
            let fetched = http::fetch(&agent, &url, &part, archive.name).and_then(|()| {
                check_archive(&part, archive).map_err(|e| match e {
                    DataError::Archive { reason, .. } => reason,
                    other => other.to_string(),
                })
            });
            match fetched {
                Ok(()) => {
                    unpack_archive(&part, archive, required, dest)?;
                    return Ok(target);
                }
                Err(reason) => attempts.push((url, reason)),
            }
        }
        Err(DataError::AllMirrorsFailed {
            file: archive.name.to_string(),
            dest: dest.to_path_buf(),
            attempts,
        })
    }
    #[cfg(not(feature = "download"))]
    {
        Err(DataError::DownloadDisabled {
            files: vec![archive.name.to_string()],
            dest: dest.to_path_buf(),
        })
    }
}

/// MD5 (lower-case hex) and size of a file.
pub fn md5_file(path: &Path) -> Result<(String, u64)> {
    use md5::{Digest as _, Md5};
    let mut f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut h = Md5::new();
    let n = std::io::copy(&mut f, &mut h).map_err(|e| DataError::io(path, e))?;
    Ok((hex(&h.finalize()), n))
}

/// An error unless `path` has the size and MD5 `archive` publishes.
pub fn check_archive(path: &Path, archive: &Archive) -> Result<()> {
    let (md5, size) = md5_file(path)?;
    let bad = |reason: String| DataError::Archive {
        path: path.to_path_buf(),
        reason,
    };
    if size != archive.size {
        return Err(bad(format!(
            "{size} bytes, expected {} for {}",
            archive.size, archive.name
        )));
    }
    if !md5.eq_ignore_ascii_case(archive.md5) {
        return Err(bad(format!(
            "MD5 mismatch: expected {}, found {md5}",
            archive.md5
        )));
    }
    Ok(())
}

/// Unpacks the `.tar.gz` at `path` into `dest` as [`download_archive`] describes: into a
/// temporary folder first, then `dest/<archive.folder>` by a rename once every file of
/// `required` is in it. Returns that folder.
pub fn unpack_archive(
    path: &Path,
    archive: &Archive,
    required: &[&str],
    dest: &Path,
) -> Result<PathBuf> {
    let bad = |reason: String| DataError::Archive {
        path: path.to_path_buf(),
        reason,
    };
    let staging = dest.join(format!(".unpack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(staging.clone());
    let f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(f)));
    let entries = tar
        .entries()
        .map_err(|e| bad(format!("not a tar.gz archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("corrupt archive: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| bad(format!("corrupt entry name: {e}")))?
            .into_owned();
        let kind = entry.header().entry_type();
        let below = name.starts_with(archive.folder)
            && name
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !below || !(kind.is_file() || kind.is_dir()) {
            return Err(bad(format!(
                "unexpected entry {} ({kind:?}): expected regular files below {}/",
                name.display(),
                archive.folder
            )));
        }
        entry
            .unpack_in(&staging)
            .map_err(|e| bad(format!("cannot unpack {}: {e}", name.display())))?;
    }
    let unpacked = staging.join(archive.folder);
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|f| !unpacked.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "the archive lacks {} (expected in {}/)",
            missing.join(", "),
            archive.folder
        )));
    }
    let target = dest.join(archive.folder);
    // An earlier, incomplete copy is moved aside, and removed once the new one is in place.
    let old = dest.join(format!(".old-{}-{}", archive.folder, std::process::id()));
    let had_old = target.exists();
    if had_old {
        std::fs::rename(&target, &old).map_err(|e| DataError::io(&target, e))?;
    }
    std::fs::rename(&unpacked, &target).map_err(|e| DataError::io(&target, e))?;
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(target)
}

/// Downloads `files` into `dest` (created when missing), each tried over `mirrors` in order.
///
/// A file already in `dest` (as `NAME.gz` or `NAME`) whose payload has the expected
/// SHA-256 is skipped. When every mirror fails for a file, the error lists each URL tried
/// and why; no partial or unverified file is left behind.
///
/// Without the `download` feature, nothing is fetched: the call succeeds when every file
/// is already present and verified, else it fails with [`DataError::DownloadDisabled`]
/// naming the missing files.
pub fn download_files(files: &[DataFile], dest: &Path, mirrors: &[&str]) -> Result<()> {
    if mirrors.is_empty() {
        return Err(DataError::InvalidArgument(
            "no mirror to download from".into(),
        ));
    }
    #[cfg(feature = "download")]
    {
        std::fs::create_dir_all(dest).map_err(|e| DataError::io(dest, e))?;
        let agent = http::agent();
        for file in files {
            download_one(&agent, file, dest, mirrors)?;
        }
        Ok(())
    }
    #[cfg(not(feature = "download"))]
    {
        let missing: Vec<String> = files
            .iter()
            .filter(|f| check_present(f, dest).is_err())
            .map(|f| format!("{}.gz", f.name))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(DataError::DownloadDisabled {
                files: missing,
                dest: dest.to_path_buf(),
            })
        }
    }
}

/// `Ok(())` when `dest` already holds `file` (as `NAME.gz` or `NAME`) with the right
/// checksum, else the copies present that fail verification.
fn check_present(file: &DataFile, dest: &Path) -> std::result::Result<(), Vec<PathBuf>> {
    let present = [dest.join(format!("{}.gz", file.name)), dest.join(file.name)];
    let mut invalid = Vec::new();
    for p in present.iter().filter(|p| p.is_file()) {
        if verify_file(p, file.sha256).is_ok() {
            return Ok(());
        }
        invalid.push(p.clone());
    }
    Err(invalid)
}

#[cfg(feature = "download")]
fn download_one(agent: &ureq::Agent, file: &DataFile, dest: &Path, mirrors: &[&str]) -> Result<()> {
    let gz_name = format!("{}.gz", file.name);
    let Err(invalid) = check_present(file, dest) else {
        return Ok(());
    };
    let part = dest.join(format!(".{gz_name}.part-{}", std::process::id()));
    let mut attempts = Vec::new();
    for base in mirrors {
        let url = if base.ends_with('/') {
            format!("{base}{gz_name}")
        } else {
            format!("{base}/{gz_name}")
        };
        let guard = PartFile(part.clone());
        match http::fetch(agent, &url, &part, &gz_name).and_then(|()| install(&part, dest, file)) {
            Ok(installed) => {
                drop(guard);
                for p in invalid.iter().filter(|p| **p != installed) {
                    let _ = std::fs::remove_file(p);
                }
                return Ok(());
            }
            Err(reason) => attempts.push((url, reason)),
        }
    }
    Err(DataError::AllMirrorsFailed {
        file: gz_name,
        dest: dest.to_path_buf(),
        attempts,
    })
}

/// Deletes the temporary file when dropped (a no-op once it has been renamed).
#[cfg(feature = "download")]
struct PartFile(PathBuf);

#[cfg(feature = "download")]
impl Drop for PartFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The HTTP client: only with the `download` feature.
#[cfg(feature = "download")]
mod http {
    use std::fs::File;
    use std::io::{IsTerminal, Read, Write};
    use std::path::Path;

    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

    use super::{CONNECT_TIMEOUT, READ_TIMEOUT};

    /// An agent with this crate's timeouts and user agent.
    pub(super) fn agent() -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .user_agent(concat!("convnets-data/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// Streams `url` into `part`; the error is the reason, in words.
    pub(super) fn fetch(
        agent: &ureq::Agent,
        url: &str,
        part: &Path,
        label: &str,
    ) -> std::result::Result<(), String> {
        let resp = match agent.get(url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                return Err(format!("HTTP {code} {}", r.status_text()));
            }
            Err(ureq::Error::Transport(t)) => {
                // Transport's Display repeats the URL, which the caller already records.
                let mut reason = t.kind().to_string();
                if let Some(m) = t.message() {
                    reason.push_str(&format!(": {m}"));
                }
                if let Some(src) = std::error::Error::source(&t) {
                    reason.push_str(&format!(": {src}"));
                }
                return Err(reason);
            }
        };
        let expected: Option<u64> = resp
            .header("content-length")
            .and_then(|v| v.trim().parse().ok());
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(expected, target);
        let style = match expected {
            Some(_) => ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            ),
            None => ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}"),
        };
        if let Ok(style) = style {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());

        let mut out =
            File::create(part).map_err(|e| format!("cannot create {}: {e}", part.display()))?;
        let mut reader = resp.into_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut got: u64 = 0;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    bar.abandon();
                    return Err(format!("connection failed after {got} bytes: {e}"));
                }
            };
            out.write_all(&buf[..n])
                .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
            got += n as u64;
            bar.inc(n as u64);
        }
        bar.finish_and_clear();
        if let Some(len) = expected {
            if got != len {
                return Err(format!("body ended after {got} of {len} bytes"));
            }
        }
        out.sync_all()
            .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
        Ok(())
    }
}

/// Verifies the downloaded `part` and renames it into place; returns the installed path.
#[cfg(feature = "download")]
fn install(part: &Path, dest: &Path, file: &DataFile) -> std::result::Result<PathBuf, String> {
    let (digest, gzipped) = payload_digest(part).map_err(|e| e.to_string())?;
    if !digest.eq_ignore_ascii_case(file.sha256) {
        return Err(format!(
            "SHA-256 mismatch of the decompressed payload: expected {}, found {digest}",
            file.sha256
        ));
    }
    let target = if gzipped {
        dest.join(format!("{}.gz", file.name))
    } else {
        dest.join(file.name)
    };
    std::fs::rename(part, &target).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            part.display(),
            target.display()
        )
    })?;
    Ok(target)
}

/// SHA-256 (lower-case hex) of a file's payload: decompressed when it is gzipped, else raw.
pub fn payload_sha256(path: &Path) -> Result<String> {
    payload_digest(path).map(|(d, _)| d)
}

/// Checks that the payload of `path` (decompressed when gzipped) has SHA-256 `expected`.
pub fn verify_file(path: &Path, expected: &str) -> Result<()> {
    let found = payload_sha256(path)?;
    if found.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(DataError::Checksum {
            file: path.display().to_string(),
            expected: expected.to_string(),
            found,
        })
    }
}

fn payload_digest(path: &Path) -> Result<(String, bool)> {
    let f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, f);
    let head = reader.fill_buf().map_err(|e| DataError::io(path, e))?;
    let gzipped = head.starts_with(&GZIP_MAGIC);
    let mut hasher = Sha256::new();
    if gzipped {
        std::io::copy(&mut MultiGzDecoder::new(reader), &mut hasher).map_err(|source| {
            DataError::Gzip {
                path: path.to_path_buf(),
                source,
            }
        })?;
    } else {
        std::io::copy(&mut reader, &mut hasher).map_err(|e| DataError::io(path, e))?;
    }
    Ok((hex(&hasher.finalize()), gzipped))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-256 (lower-case hex) of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sha_of_empty_and_abc() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verify_raw_and_gz() {
        let t = tempfile::tempdir().unwrap();
        let raw = t.path().join("a");
        std::fs::write(&raw, b"abc").unwrap();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"abc").unwrap();
        let gz = t.path().join("a.gz");
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        let abc = sha256_hex(b"abc");
        verify_file(&raw, &abc).unwrap();
        verify_file(&gz, &abc).unwrap();
        let err = verify_file(&gz, &sha256_hex(b"abd"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.gz") && err.contains(&abc), "{err}");
        let err = verify_file(&t.path().join("missing"), &abc).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err}");
    }

    #[test]
    fn no_mirror_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let f = DatasetKind::Mnist.files();
        assert!(download_files(&f, t.path(), &[]).is_err());
    }

    #[cfg(not(feature = "download"))]
    #[test]
    fn without_the_feature_present_files_pass_and_missing_ones_are_named() {
        let t = tempfile::tempdir().unwrap();
        let payload = b"abc";
        std::fs::write(t.path().join("one"), payload).unwrap();
        let sha: &'static str = sha256_hex(payload).leak();
        let one = DataFile {
            name: "one",
            sha256: sha,
        };
        let two = DataFile {
            name: "two",
            sha256: sha,
        };
        download_files(&[one], t.path(), &["http://127.0.0.1:9/"]).unwrap();
        let e = download_files(&[one, two], t.path(), &["http://127.0.0.1:9/"]).unwrap_err();
        match &e {
            DataError::DownloadDisabled { files, dest } => {
                assert_eq!(files, &["two.gz"]);
                assert_eq!(dest, t.path());
            }
            other => panic!("expected DownloadDisabled, got {other:?}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains("built without the `download` feature")
                && msg.contains(&t.path().display().to_string())
                && msg.contains("enable the feature"),
            "{msg}"
        );
        const { assert!(!DOWNLOAD_ENABLED) };
    }
}
