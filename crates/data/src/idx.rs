//! The IDX file format of MNIST and Fashion-MNIST (raw or gzipped).
//!
//! An IDX file is a 4-byte magic number `00 00 <dtype> <ndim>`, then `ndim` big-endian
//! `u32` dimensions, then the values in row-major order. Only the unsigned-byte data type
//! (`0x08`) is supported, which is the one both data sets use.

use std::io::Read;
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

/// Reads an IDX file, gzipped or raw (gzip is detected by its magic bytes `1f 8b`).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_idx(&bytes, path)
}

/// Decompresses `bytes` when they start with gzip's magic bytes, else borrows them.
pub(crate) fn maybe_gunzip<'a>(
    bytes: &'a [u8],
    origin: &Path,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
        MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|source| DataError::Gzip {
                path: origin.to_path_buf(),
                source,
            })?;
        Ok(std::borrow::Cow::Owned(out))
    } else {
        Ok(std::borrow::Cow::Borrowed(bytes))
    }
}

/// Parses the bytes of an IDX file (gzipped or raw); `origin` names the file in errors.
pub fn parse_idx(bytes: &[u8], origin: &Path) -> Result<IdxArray> {
    let bytes = maybe_gunzip(bytes, origin)?;
    parse_raw(&bytes, origin)
}

fn parse_raw(bytes: &[u8], origin: &Path) -> Result<IdxArray> {
    let path = || origin.to_path_buf();
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::BadMagic {
            path: path(),
            found: bytes[..bytes.len().min(4)].to_vec(),
        });
    }
    let (code, ndim) = (bytes[2], bytes[3] as usize);
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
    let header_len = 4 + 4 * ndim;
    if bytes.len() < header_len {
        return Err(DataError::Truncated {
            path: path(),
            expected: header_len as u64,
            found: bytes.len() as u64,
        });
    }
    let mut dims = Vec::with_capacity(ndim);
    let mut count: u64 = 1;
    for i in 0..ndim {
        let at = 4 + 4 * i;
        let d = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        count = count
            .checked_mul(u64::from(d))
            .ok_or_else(|| DataError::BadHeader {
                path: path(),
                offset: at as u64,
                reason: format!("dimension {i} = {d} makes the element count overflow"),
            })?;
        dims.push(d as usize);
    }
    let expected = (header_len as u64)
        .checked_add(count)
        .ok_or_else(|| DataError::BadHeader {
            path: path(),
            offset: 4,
            reason: format!("element count {count} overflows"),
        })?;
    let found = bytes.len() as u64;
    if found < expected {
        return Err(DataError::Truncated {
            path: path(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(DataError::TrailingBytes {
            path: path(),
            expected,
            found,
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header_len..].to_vec(),
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
