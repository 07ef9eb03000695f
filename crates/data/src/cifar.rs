//! CIFAR-10's binary format: each batch file is a run of 3,073-byte records, one label byte
//! then the 32x32 image as 1,024 red, 1,024 green and 1,024 blue bytes (already `[c, h, w]`).
//!
//! [`read_batches`] reads the files (raw, or gzipped) into one [`Split`], checking that each
//! is a whole number of records and that every label is a class; errors name the file, the
//! record and its byte offset. [`write_batch`] writes the format (the synthetic data set and
//! the tests use it).
//!
//! ```
//! use convnets_data::cifar::{parse_records, RECORD_LEN};
//! let mut bytes = vec![7u8];
//! bytes.extend((0..3072).map(|i| (i % 251) as u8));
//! let split = parse_records(&bytes, std::path::Path::new("one.bin"), 10).unwrap();
//! assert_eq!((split.len, split.channels, split.rows, split.cols), (1, 3, 32, 32));
//! assert_eq!(split.labels, [7]);
//! assert_eq!(bytes.len(), RECORD_LEN);
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::dataset::Split;
use crate::error::{DataError, Result};
use crate::idx::GZIP_MAGIC;

/// `(channels, height, width)` of a CIFAR-10 image.
pub const IMAGE_SHAPE: (usize, usize, usize) = (3, 32, 32);
/// Bytes of one image.
pub const IMAGE_LEN: usize = 3 * 32 * 32;
/// Bytes of one record: the label byte, then the image.
pub const RECORD_LEN: usize = 1 + IMAGE_LEN;
/// Records in each of the official batch files.
pub const RECORDS_PER_BATCH: usize = 10_000;
/// The largest batch file read (decompressed): 16 times an official batch. A gzip stream that
/// inflates past it is refused rather than filling memory.
pub const MAX_BATCH_BYTES: u64 = 16 * (RECORDS_PER_BATCH * RECORD_LEN) as u64;

/// Parses the records of one batch file held in memory; `path` only names it in errors.
///
/// An error when `bytes` is empty, is not a whole number of [`RECORD_LEN`]-byte records, or
/// holds a label `>= classes`.
pub fn parse_records(bytes: &[u8], path: &Path, classes: usize) -> Result<Split> {
    let mut split = empty();
    append_records(&mut split, bytes, path, classes)?;
    Ok(split)
}

/// A split of no `[3, 32, 32]` image yet.
fn empty() -> Split {
    Split {
        images: Vec::new(),
        labels: Vec::new(),
        len: 0,
        channels: IMAGE_SHAPE.0,
        rows: IMAGE_SHAPE.1,
        cols: IMAGE_SHAPE.2,
    }
}

/// Appends the records of `bytes` to `split`, validated as [`parse_records`] does.
fn append_records(split: &mut Split, bytes: &[u8], path: &Path, classes: usize) -> Result<()> {
    if bytes.is_empty() {
        return Err(DataError::Archive {
            path: path.to_path_buf(),
            reason: format!("empty: expected {RECORD_LEN}-byte CIFAR records"),
        });
    }
    if !bytes.len().is_multiple_of(RECORD_LEN) {
        return Err(DataError::RecordLength {
            path: path.to_path_buf(),
            len: bytes.len() as u64,
            record: RECORD_LEN as u64,
        });
    }
    let n = bytes.len() / RECORD_LEN;
    split.images.reserve(n * IMAGE_LEN);
    split.labels.reserve(n);
    for (index, record) in bytes.chunks_exact(RECORD_LEN).enumerate() {
        let label = u32::from(record[0]);
        if label as usize >= classes {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                offset: (index * RECORD_LEN) as u64,
                label,
                classes,
            });
        }
        split.labels.push(label);
        split.images.extend_from_slice(&record[1..]);
    }
    split.len += n;
    Ok(())
}

/// Reads a batch file into memory, inflating it when it is gzipped; at most
/// [`MAX_BATCH_BYTES`] (decompressed).
fn read_file(path: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, f);
    let gz = reader
        .fill_buf()
        .map_err(|e| DataError::io(path, e))?
        .starts_with(&GZIP_MAGIC);
    let mut bytes = Vec::new();
    let read = if gz {
        MultiGzDecoder::new(reader)
            .take(MAX_BATCH_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| DataError::Gzip {
                path: path.to_path_buf(),
                source,
            })?
    } else {
        reader
            .take(MAX_BATCH_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::io(path, e))?
    };
    if read as u64 > MAX_BATCH_BYTES {
        return Err(DataError::Archive {
            path: path.to_path_buf(),
            reason: format!(
                "more than {MAX_BATCH_BYTES} bytes (16 official batches); refusing to read it"
            ),
        });
    }
    Ok(bytes)
}

/// Reads the batch files `paths` (in order, raw or gzipped) into one split of `[3, 32, 32]`
/// images: the five `data_batch_N.bin` make the training split, `test_batch.bin` the test
/// split.
pub fn read_batches(paths: &[PathBuf], classes: usize) -> Result<Split> {
    let mut split = empty();
    for p in paths {
        let bytes = read_file(p)?;
        append_records(&mut split, &bytes, p, classes)?;
    }
    Ok(split)
}

/// Writes `labels.len()` records in CIFAR-10's binary format to `path` (through a temporary
/// file renamed into place). `images` holds the `[3, 32, 32]` images one after the other;
/// every label must fit a byte.
pub fn write_batch(path: &Path, images: &[u8], labels: &[u32]) -> Result<()> {
    if images.len() != labels.len() * IMAGE_LEN {
        return Err(DataError::InvalidArgument(format!(
            "{} image bytes for {} labels: expected {}",
            images.len(),
            labels.len(),
            labels.len() * IMAGE_LEN
        )));
    }
    if let Some(l) = labels.iter().find(|&&l| l > 255) {
        return Err(DataError::InvalidArgument(format!(
            "label {l} does not fit CIFAR's label byte"
        )));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir, path)?;
    {
        let mut w = std::io::BufWriter::new(&mut tmp.1);
        for (label, image) in labels.iter().zip(images.chunks_exact(IMAGE_LEN)) {
            w.write_all(&[*label as u8])
                .and_then(|()| w.write_all(image))
                .map_err(|e| DataError::io(&tmp.0, e))?;
        }
        w.flush().map_err(|e| DataError::io(&tmp.0, e))?;
    }
    tmp.1.sync_all().map_err(|e| DataError::io(&tmp.0, e))?;
    std::fs::rename(&tmp.0, path).map_err(|e| DataError::io(path, e))?;
    Ok(())
}

/// A new temporary file next to `target`: `.NAME.tmp-<pid>`.
fn tempfile_in(dir: &Path, target: &Path) -> Result<(PathBuf, std::fs::File)> {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let p = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let f = std::fs::File::create(&p).map_err(|e| DataError::io(&p, e))?;
    Ok((p, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, &l) in labels.iter().enumerate() {
            v.push(l);
            v.extend((0..IMAGE_LEN).map(|j| ((i * 31 + j) % 256) as u8));
        }
        v
    }

    #[test]
    fn reads_records_and_names_bad_ones() {
        let p = Path::new("dir/data_batch_1.bin");
        let s = parse_records(&records(&[3, 9, 0]), p, 10).unwrap();
        assert_eq!((s.len, s.labels.clone()), (3, vec![3, 9, 0]));
        assert_eq!(s.image(1).unwrap()[0], 31);
        assert_eq!(
            s.image(2).unwrap()[IMAGE_LEN - 1],
            ((62 + IMAGE_LEN - 1) % 256) as u8
        );

        let e = parse_records(&records(&[3, 10]), p, 10)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "dir/data_batch_1.bin: label 10 at index 1 (decompressed byte offset 3073) is out of range: expected < 10"
        );
        let mut short = records(&[1, 2]);
        short.truncate(RECORD_LEN + 100);
        let e = parse_records(&short, p, 10).unwrap_err().to_string();
        assert!(
            e.contains("3173 bytes is not a whole number of 3073-byte records"),
            "{e}"
        );
        assert!(
            e.contains("1 records and 100 bytes left over from byte offset 3073"),
            "{e}"
        );
        let e = parse_records(&[], p, 10).unwrap_err().to_string();
        assert!(e.contains("data_batch_1.bin: empty"), "{e}");
    }

    #[test]
    fn writes_what_it_reads_raw_and_gzipped() {
        let t = tempfile::tempdir().unwrap();
        let bytes = records(&[4, 5]);
        let s = parse_records(&bytes, Path::new("x"), 10).unwrap();
        let p = t.path().join("b.bin");
        write_batch(&p, &s.images, &s.labels).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), bytes);
        let gz = t.path().join("c.bin.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&bytes).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        let both = read_batches(&[p.clone(), gz], 10).unwrap();
        assert_eq!(both.len, 4);
        assert_eq!(both.labels, [4, 5, 4, 5]);
        assert!(write_batch(&p, &s.images, &[1]).is_err());
        assert!(write_batch(&p, &s.images[..IMAGE_LEN], &[300]).is_err());
        let e = read_batches(&[t.path().join("missing.bin")], 10).unwrap_err();
        assert!(e.to_string().contains("missing.bin"), "{e}");
    }
}
