//! The IDX file format of MNIST and Fashion-MNIST (raw or gzipped).
//!
//! An IDX file is a 4-byte magic number `00 00 <dtype> <ndim>`, then `ndim` big-endian
//! `u32` dimensions, then the values in row-major order. Only the unsigned-byte data type
//! (`0x08`) is supported, which is the one both data sets use.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, Result};

/// gzip's magic bytes.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The IDX data type code of unsigned bytes.
pub const DTYPE_U8: u8 = 0x08;

/// A decoded IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (`[60000, 28, 28]` for MNIST training images).
    pub dims: Vec<usize>,
    /// The values in row-major order; its length is the product of `dims`.
    pub data: Vec<u8>,
}

impl IdxArray {
    /// Size of the header of an array with these dimensions, in bytes.
    pub fn header_len(&self) -> usize {
        4 + 4 * self.dims.len()
    }

    /// Encodes the array in the (uncompressed) IDX format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.header_len() + self.data.len());
        out.extend_from_slice(&[0, 0, DTYPE_U8, self.dims.len() as u8]);
        for &d in &self.dims {
            out.extend_from_slice(&(d as u32).to_be_bytes());
        }
        out.extend_from_slice(&self.data);
        out
    }
}

/// The largest payload (values after the header) an IDX file may declare: 4 GiB.
///
/// MNIST's largest file holds 47 MB; a header declaring more than this is rejected before
/// anything is allocated or decompressed.
pub const MAX_IDX_PAYLOAD: u64 = 4 << 30;

/// Decompressed bytes past the declared end that are still read to count trailing bytes
/// exactly; beyond that, a gzipped file is reported as [`DataError::DecompressedTooLong`].
const TRAILING_SCAN: u64 = 1 << 20;

/// Initial buffer of a gzipped payload (it grows as data actually arrives), so that a small
/// file whose header declares gigabytes does not reserve them up front.
const GZIP_INITIAL_CAPACITY: u64 = 64 << 20;

/// Reads an IDX file, gzipped or raw (gzip is detected by its magic bytes `1f 8b`).
///
/// The header is read first and the file is read (or decompressed) no further than the
/// header says, plus one byte to detect trailing data: a gzip bomb is rejected after
/// inflating at most `header + payload + 1 MiB` bytes.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let total = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let head = reader.fill_buf().map_err(|e| DataError::io(path, e))?;
    if head.starts_with(&GZIP_MAGIC) {
        read_stream(MultiGzDecoder::new(reader), path, Encoding::Gzip)
    } else {
        read_stream(reader, path, Encoding::Raw { total })
    }
}

/// Parses the bytes of an IDX file (gzipped or raw); `origin` names the file in errors.
///
/// Like [`read_idx`], a gzipped input is decompressed no further than its header says.
pub fn parse_idx(bytes: &[u8], origin: &Path) -> Result<IdxArray> {
    if bytes.starts_with(&GZIP_MAGIC) {
        read_stream(MultiGzDecoder::new(bytes), origin, Encoding::Gzip)
    } else {
        let total = bytes.len() as u64;
        read_stream(bytes, origin, Encoding::Raw { total })
    }
}

/// How the stream given to [`read_stream`] is stored.
#[derive(Clone, Copy)]
enum Encoding {
    /// Uncompressed, `total` bytes long.
    Raw { total: u64 },
    /// A gzip stream being decompressed (its decompressed length is unknown).
    Gzip,
}

/// Reads until `buf` is full or the stream ends; returns the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_stream(mut r: impl Read, origin: &Path, enc: Encoding) -> Result<IdxArray> {
    let path = || origin.to_path_buf();
    // A read error is the decompressor's complaint for gzip, an I/O error otherwise.
    let fail = |e: std::io::Error| match enc {
        Encoding::Gzip => DataError::Gzip {
            path: path(),
            source: e,
        },
        Encoding::Raw { .. } => DataError::io(origin, e),
    };

    let mut magic = [0u8; 4];
    let got = read_full(&mut r, &mut magic).map_err(fail)?;
    if got < 4 || magic[0] != 0 || magic[1] != 0 {
        return Err(DataError::BadMagic {
            path: path(),
            found: magic[..got].to_vec(),
        });
    }
    let (code, ndim) = (magic[2], usize::from(magic[3]));
    if code != DTYPE_U8 {
        return Err(DataError::BadDtype { path: path(), code });
    }
    if ndim == 0 {
        return Err(DataError::BadHeader {
            path: path(),
            offset: 3,
            reason: "0 dimensions, expected at least 1".into(),
        });
    }
    let header_len = 4 + 4 * ndim as u64;
    let mut raw_dims = vec![0u8; 4 * ndim];
    let got = read_full(&mut r, &mut raw_dims).map_err(fail)?;
    if got < raw_dims.len() {
        return Err(DataError::Truncated {
            path: path(),
            expected: header_len,
            found: 4 + got as u64,
        });
    }

    let mut dims = Vec::with_capacity(ndim);
    let mut count: u64 = 1;
    for (i, b) in raw_dims.chunks_exact(4).enumerate() {
        let at = 4 + 4 * i as u64;
        let d = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        count = count
            .checked_mul(u64::from(d))
            .ok_or_else(|| DataError::BadHeader {
                path: path(),
                offset: at,
                reason: format!("dimension {i} = {d} makes the element count overflow"),
            })?;
        dims.push(d as usize);
    }
    if count > MAX_IDX_PAYLOAD {
        return Err(DataError::BadHeader {
            path: path(),
            offset: 4,
            reason: format!(
                "dimensions {dims:?} describe {count} bytes, more than the limit of {MAX_IDX_PAYLOAD} bytes (4 GiB)"
            ),
        });
    }
    // Both fit: count <= 4 GiB and header_len <= 1024.
    let expected = header_len + count;
    let count_usize = usize::try_from(count).map_err(|_| DataError::BadHeader {
        path: path(),
        offset: 4,
        reason: format!("{count} bytes do not fit in this platform's memory"),
    })?;

    // Never reserve more than the input can hold: the rest of a raw file, or a bounded
    // initial buffer for gzip that grows only as decompressed bytes arrive.
    let capacity = match enc {
        Encoding::Raw { total } => count.min(total.saturating_sub(header_len)),
        Encoding::Gzip => count.min(GZIP_INITIAL_CAPACITY),
    };
    let mut data = Vec::with_capacity(capacity as usize);
    (&mut r).take(count).read_to_end(&mut data).map_err(fail)?;
    if data.len() < count_usize {
        return Err(DataError::Truncated {
            path: path(),
            expected,
            found: header_len + data.len() as u64,
        });
    }

    // One more byte tells whether the payload ends where the header says (for gzip this
    // read also checks the CRC of the stream).
    let mut one = [0u8; 1];
    if read_full(&mut r, &mut one).map_err(fail)? == 0 {
        return Ok(IdxArray { dims, data });
    }
    let found = match enc {
        // The file may have grown since its length was read: at least one byte is extra.
        Encoding::Raw { total } => total.max(expected + 1),
        Encoding::Gzip => {
            let more = std::io::copy(&mut (&mut r).take(TRAILING_SCAN), &mut std::io::sink())
                .map_err(fail)?;
            let read = expected + 1 + more;
            if more == TRAILING_SCAN {
                return Err(DataError::DecompressedTooLong {
                    path: path(),
                    expected,
                    read,
                });
            }
            read
        }
    };
    Err(DataError::TrailingBytes {
        path: path(),
        expected,
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn sample() -> IdxArray {
        IdxArray {
            dims: vec![2, 2, 3],
            data: (0..12).collect(),
        }
    }

    #[test]
    fn round_trip_raw_and_gz() {
        let a = sample();
        let raw = a.to_bytes();
        assert_eq!(&raw[..4], &[0, 0, 8, 3]);
        assert_eq!(&raw[4..8], &[0, 0, 0, 2]);
        assert_eq!(raw.len(), 16 + 12);
        assert_eq!(parse_idx(&raw, Path::new("r")).unwrap(), a);
        assert_eq!(parse_idx(&gz(&raw), Path::new("g")).unwrap(), a);
    }

    #[test]
    fn rejects_bad_bytes() {
        let o = Path::new("dir/f-idx3-ubyte");
        let mut raw = sample().to_bytes();
        raw[1] = 7;
        let e = parse_idx(&raw, o).unwrap_err();
        assert!(matches!(e, DataError::BadMagic { ref found, .. } if found == &[0, 7, 8, 3]));
        assert!(e.to_string().contains("dir/f-idx3-ubyte"));

        let mut raw = sample().to_bytes();
        raw[2] = 0x0c;
        let e = parse_idx(&raw, o).unwrap_err();
        assert!(matches!(e, DataError::BadDtype { code: 0x0c, .. }));
        assert!(e.to_string().contains("0x0c (i32)"), "{e}");

        let raw = sample().to_bytes();
        let e = parse_idx(&raw[..20], o).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Truncated {
                    expected: 28,
                    found: 20,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_idx(&raw[..10], o).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Truncated {
                    expected: 16,
                    found: 10,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_idx(&raw[..2], o).unwrap_err();
        assert!(matches!(e, DataError::BadMagic { .. }), "{e}");

        let mut long = raw.clone();
        long.extend_from_slice(&[1, 2]);
        let e = parse_idx(&long, o).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::TrailingBytes {
                    expected: 28,
                    found: 30,
                    ..
                }
            ),
            "{e}"
        );

        let e = parse_idx(&[0, 0, 8, 0], o).unwrap_err();
        assert!(matches!(e, DataError::BadHeader { offset: 3, .. }), "{e}");

        // Valid gzip header, then garbage.
        let mut bad_gz = gz(&raw);
        let n = bad_gz.len();
        for b in &mut bad_gz[10..n - 8] {
            *b ^= 0x5a;
        }
        let e = parse_idx(&bad_gz, o).unwrap_err();
        assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    }

    /// `mib` MiB of zeros after `header`, gzipped chunk by chunk (never held whole).
    fn gz_zeros_after(header: &[u8], mib: usize) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(header).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..mib {
            e.write_all(&zeros).unwrap();
        }
        e.finish().unwrap()
    }

    #[test]
    fn gzip_bomb_is_rejected_without_inflating_it() {
        // A header declaring 2 x 28 x 28 bytes, then 200 MiB of zeros: ~200 KiB gzipped.
        let header = IdxArray {
            dims: vec![2, 28, 28],
            data: Vec::new(),
        }
        .to_bytes();
        let bomb = gz_zeros_after(&header, 200);
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        let e = parse_idx(&bomb, Path::new("bomb.gz")).unwrap_err();
        let expected = 16 + 2 * 28 * 28;
        match &e {
            DataError::DecompressedTooLong {
                expected: x, read, ..
            } => {
                assert_eq!(*x, expected);
                // Header + payload + the 1 byte probe + the bounded trailing scan.
                assert_eq!(*read, expected + 1 + TRAILING_SCAN);
            }
            other => panic!("expected DecompressedTooLong, got {other:?}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains("bomb.gz") && msg.contains(&format!("byte offset {expected}")),
            "{msg}"
        );

        // The same through a file.
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("bomb-idx3-ubyte.gz");
        std::fs::write(&p, &bomb).unwrap();
        let e = read_idx(&p).unwrap_err();
        assert!(matches!(e, DataError::DecompressedTooLong { .. }), "{e}");
    }

    #[test]
    fn gzip_with_a_few_trailing_bytes_counts_them() {
        let mut raw = sample().to_bytes();
        raw.extend_from_slice(&[9; 5]);
        let e = parse_idx(&gz(&raw), Path::new("t.gz")).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::TrailingBytes {
                    expected: 28,
                    found: 33,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn declared_size_beyond_the_limit_is_rejected_before_reading() {
        // 65536 x 65536 x 2 = 8 GiB, with no payload at all.
        let mut raw = vec![0, 0, 8, 3];
        for d in [65536u32, 65536, 2] {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        for input in [raw.clone(), gz(&raw)] {
            let e = parse_idx(&input, Path::new("big")).unwrap_err();
            match &e {
                DataError::BadHeader { offset, reason, .. } => {
                    assert_eq!(*offset, 4);
                    assert!(reason.contains("8589934592 bytes"), "{reason}");
                    assert!(reason.contains("4 GiB"), "{reason}");
                }
                other => panic!("expected BadHeader, got {other:?}"),
            }
        }
        // Exactly at the limit is allowed by the header check (and then truncated here).
        let mut raw = vec![0, 0, 8, 2];
        for d in [65536u32, 65536] {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        let e = parse_idx(&raw, Path::new("edge")).unwrap_err();
        assert!(
            matches!(e, DataError::Truncated { expected, found: 12, .. } if expected == 12 + MAX_IDX_PAYLOAD),
            "{e}"
        );
    }

    #[test]
    fn truncated_header_inside_gzip() {
        let raw = sample().to_bytes();
        let e = parse_idx(&gz(&raw[..9]), Path::new("h.gz")).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Truncated {
                    expected: 16,
                    found: 9,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_idx(&gz(&[]), Path::new("empty.gz")).unwrap_err();
        assert!(
            matches!(e, DataError::BadMagic { ref found, .. } if found.is_empty()),
            "{e}"
        );
    }

    #[test]
    fn huge_dims_do_not_overflow_or_allocate() {
        let mut raw = vec![0, 0, 8, 4];
        for _ in 0..4 {
            raw.extend_from_slice(&u32::MAX.to_be_bytes());
        }
        let e = parse_idx(&raw, Path::new("h")).unwrap_err();
        assert!(matches!(e, DataError::BadHeader { .. }), "{e}");
    }
}
