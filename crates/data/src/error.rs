//! The crate's error type: every message says what was wrong, where, and what was expected.

use std::fmt::Write as _;
use std::path::PathBuf;

/// Everything that can go wrong while finding, reading, downloading or batching data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An image file could not be used as a model input.
    #[error("{path}: {reason}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// A file starts with gzip's magic bytes but does not decompress.
    #[error("{path}: invalid gzip data: {source}")]
    Gzip {
        /// The compressed file.
        path: PathBuf,
        /// What the decompressor said.
        #[source]
        source: std::io::Error,
    },

    /// The first four bytes are not an IDX magic number `00 00 <dtype> <ndim>`.
    #[error(
        "{path}: not an IDX file: bytes 0..4 are {}, expected 00 00 <dtype> <ndim>",
        hex(found)
    )]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The four bytes found at offset 0 (fewer when the file is shorter).
        found: Vec<u8>,
    },

    /// The IDX data type code (byte 2) is not `0x08` (unsigned byte).
    #[error(
        "{path}: byte 2: IDX data type code 0x{code:02x} ({}) is not supported, expected 0x08 (unsigned byte)",
        idx_dtype_name(*code)
    )]
    BadDtype {
        /// The file.
        path: PathBuf,
        /// The code found.
        code: u8,
    },

    /// The IDX header is well-formed but describes nothing usable (no dimensions, overflow).
    #[error("{path}: byte {offset}: bad IDX header: {reason}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// Offset (in the decompressed payload) of the offending field.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// The file is shorter than its header says.
    #[error("{path}: truncated: expected {expected} bytes (decompressed), found {found}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        found: u64,
    },

    /// The file is longer than its header says.
    #[error(
        "{path}: {} trailing bytes after byte offset {expected}: the header implies {expected} bytes (decompressed), found {found}",
        found - expected
    )]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        found: u64,
    },

    /// A gzipped file inflates to more than its IDX header implies; decompression stopped
    /// there rather than inflating the rest (a gzip bomb cannot exhaust memory or time).
    #[error(
        "{path}: trailing data after byte offset {expected}: the IDX header implies {expected} bytes (decompressed), but the gzip stream goes on past {read} bytes; stopped decompressing there"
    )]
    DecompressedTooLong {
        /// The file.
        path: PathBuf,
        /// Bytes the header implies.
        expected: u64,
        /// Bytes decompressed before giving up (more than `expected`).
        read: u64,
    },

    /// An array does not have the shape a data set requires.
    #[error("{path}: wrong shape: expected {expected}, found {found:?}")]
    BadShape {
        /// The file.
        path: PathBuf,
        /// The shape required, in words (`[n, 28, 28]`).
        expected: String,
        /// The dimensions found.
        found: Vec<usize>,
    },

    /// An images file and its labels file hold different numbers of items.
    #[error(
        "{images_path} holds {images} images but {labels_path} holds {labels} labels; expected the same count"
    )]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },

    /// A label is not a valid class index.
    #[error(
        "{path}: label {label} at index {index} (decompressed byte offset {offset}) is out of range: expected < {classes}"
    )]
    LabelOutOfRange {
        /// The labels file.
        path: PathBuf,
        /// Index of the label in the file.
        index: usize,
        /// Offset of the label in the decompressed file.
        offset: u64,
        /// The label found.
        label: u32,
        /// Number of classes.
        classes: usize,
    },

    /// A file of fixed-size records (CIFAR-10's batches) is not a whole number of records.
    #[error(
        "{path}: {len} bytes is not a whole number of {record}-byte records ({} records and {} bytes left over from byte offset {})",
        len / record, len % record, len - len % record
    )]
    RecordLength {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
        /// The record size in bytes.
        record: u64,
    },

    /// A downloaded archive could not be unpacked, or does not hold what it should.
    #[error("{path}: {reason}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// A data set could not be found in any of the searched folders.
    #[error(
        "{dataset} not found; searched:{}\n{hint}",
        list_found(searched, found)
    )]
    NotFound {
        /// The data set's name.
        dataset: String,
        /// Every folder that was searched, in order.
        searched: Vec<PathBuf>,
        /// What each searched folder holds, in the same order: "no such folder", "a dangling
        /// symbolic link", "3 of 4 files; missing t10k-labels-idx1-ubyte[.gz]", …
        found: Vec<String>,
        /// How to get the files.
        hint: String,
    },

    /// One download attempt failed.
    #[error("download of {url} failed: {reason}")]
    Download {
        /// The URL.
        url: String,
        /// Why it failed.
        reason: String,
    },

    /// Every mirror failed for a file.
    #[error("could not download {file} into {}; tried:{}", dest.display(), attempts_list(attempts))]
    AllMirrorsFailed {
        /// The file name (e.g. `train-images-idx3-ubyte.gz`).
        file: String,
        /// The destination folder.
        dest: PathBuf,
        /// Each URL tried and why it failed, in order.
        attempts: Vec<(String, String)>,
    },

    /// Files had to be downloaded, but this build has no HTTP client.
    #[error(
        "cannot download {} into {dest}: convnets-data was built without the `download` feature; put the files in {dest} or enable the feature (`--features convnets-data/download`)",
        files.join(", "), dest = dest.display()
    )]
    DownloadDisabled {
        /// The files that are missing (or fail their checksum), e.g. `train-images-idx3-ubyte.gz`.
        files: Vec<String>,
        /// The folder they were to be downloaded into.
        dest: PathBuf,
    },

    /// A data set is nowhere on this machine and downloading it failed too.
    ///
    /// Both errors are kept: why the download failed, and where the files were searched for
    /// (with where to put them and which package provides them).
    #[error("{download}\n{not_found}")]
    DataUnavailable {
        /// Why the download failed (every URL tried, or that downloading is disabled).
        download: Box<DataError>,
        /// The [`DataError::NotFound`] of the search: the folders searched and the hints.
        not_found: Box<DataError>,
    },

    /// A payload's SHA-256 does not match the expected one.
    #[error("{file}: SHA-256 mismatch: expected {expected}, found {found}")]
    Checksum {
        /// The file (path or URL).
        file: String,
        /// The expected hex digest.
        expected: String,
        /// The digest found.
        found: String,
    },

    /// An argument was invalid (batch size 0, lengths that do not match a shape, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(none: the file is empty)".to_string();
    }
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(" ")
}

fn list_found(paths: &[PathBuf], found: &[String]) -> String {
    let mut s = String::new();
    for (i, p) in paths.iter().enumerate() {
        let _ = write!(s, "\n  - {}", p.display());
        if let Some(f) = found.get(i).filter(|f| !f.is_empty()) {
            let _ = write!(s, ": {f}");
        }
    }
    s
}

fn attempts_list(attempts: &[(String, String)]) -> String {
    let mut s = String::new();
    for (url, why) in attempts {
        let _ = write!(s, "\n  - {url}: {why}");
    }
    s
}

/// Human name of an IDX data type code.
pub(crate) fn idx_dtype_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0b => "i16",
        0x0c => "i32",
        0x0d => "f32",
        0x0e => "f64",
        _ => "unknown code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_path_and_numbers() {
        let e = DataError::Truncated {
            path: "a/b.gz".into(),
            expected: 100,
            found: 42,
        };
        let s = e.to_string();
        assert!(
            s.contains("a/b.gz") && s.contains("100") && s.contains("42"),
            "{s}"
        );
        let e = DataError::TrailingBytes {
            path: "x".into(),
            expected: 10,
            found: 13,
        };
        assert!(e
            .to_string()
            .starts_with("x: 3 trailing bytes after byte offset 10"));
        let e = DataError::BadMagic {
            path: "m".into(),
            found: vec![0x1f, 0x00, 0x08, 0x03],
        };
        assert!(e.to_string().contains("1f 00 08 03"), "{e}");
        let e = DataError::BadDtype {
            path: "m".into(),
            code: 0x0d,
        };
        assert!(e.to_string().contains("0x0d (f32)"), "{e}");
        let e = DataError::RecordLength {
            path: "c/data_batch_1.bin".into(),
            len: 3073 * 2 + 5,
            record: 3073,
        };
        assert_eq!(
            e.to_string(),
            "c/data_batch_1.bin: 6151 bytes is not a whole number of 3073-byte records (2 records and 5 bytes left over from byte offset 6146)"
        );
    }
}
