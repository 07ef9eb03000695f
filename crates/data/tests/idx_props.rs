//! Property tests of the IDX reader: arbitrary bytes and mutated valid files, raw and
//! gzipped, give `Ok` or one of the reader's typed errors, never a panic.
//!
//! 256 cases per property by default; set `PROPTEST_CASES` for more.

mod common;

use std::io::Read;
use std::path::Path;

use common::{gz, idx_bytes};
use convnets_data::idx::{parse_idx, read_idx};
use convnets_data::DataError;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 256;
    }
    c
}

/// The decompressed form of `input` when it parses (gzip detected by its magic bytes).
fn payload(input: &[u8]) -> Vec<u8> {
    if input.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(input)
            .read_to_end(&mut out)
            .expect("parse_idx accepted it, so it decompresses");
        out
    } else {
        input.to_vec()
    }
}

/// Parses `input` and checks the outcome: a consistent array that re-encodes to the
/// payload, or an error the IDX reader is documented to return.
fn check(input: &[u8]) -> Result<(), TestCaseError> {
    match parse_idx(input, Path::new("prop")) {
        Ok(a) => {
            let n: usize = a.dims.iter().product();
            prop_assert_eq!(a.data.len(), n);
            prop_assert_eq!(a.to_bytes(), payload(input));
        }
        Err(e) => {
            prop_assert!(
                matches!(
                    e,
                    DataError::BadMagic { .. }
                        | DataError::BadDtype { .. }
                        | DataError::BadHeader { .. }
                        | DataError::Truncated { .. }
                        | DataError::TrailingBytes { .. }
                        | DataError::DecompressedTooLong { .. }
                        | DataError::Gzip { .. }
                ),
                "unexpected error: {e:?}"
            );
            prop_assert!(e.to_string().contains("prop"), "path missing: {e}");
        }
    }
    Ok(())
}

/// A valid IDX file of 1 to 3 small dimensions.
fn valid_idx() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u32..6, 1..=3).prop_flat_map(|dims| {
        let n = dims.iter().product::<u32>() as usize;
        prop::collection::vec(any::<u8>(), n).prop_map(move |data| idx_bytes(&dims, &data))
    })
}

/// Edits applied to a file: byte changes at (relative) positions, then a cut, then bytes
/// appended.
#[derive(Clone, Debug)]
struct Mutation {
    flips: Vec<(prop::sample::Index, u8)>,
    cut: Option<prop::sample::Index>,
    append: Vec<u8>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        prop::option::of(any::<prop::sample::Index>()),
        prop::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(|(flips, cut, append)| Mutation { flips, cut, append })
}

fn apply(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    if !bytes.is_empty() {
        for (at, b) in &m.flips {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        if let Some(cut) = &m.cut {
            bytes.truncate(cut.index(bytes.len()));
        }
    }
    bytes.extend_from_slice(&m.append);
    bytes
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64), gzip_magic: bool) {
        let mut input = bytes;
        if gzip_magic {
            input.splice(0..0, [0x1f, 0x8b, 0x08]);
        }
        check(&input)?;
    }

    #[test]
    fn valid_files_parse(file in valid_idx(), gzipped: bool) {
        let input = if gzipped { gz(&file) } else { file.clone() };
        let a = parse_idx(&input, Path::new("prop"));
        prop_assert!(a.is_ok(), "{:?}", a);
        check(&input)?;
    }

    #[test]
    fn mutated_raw_files(file in valid_idx(), m in mutation()) {
        check(&apply(file, &m))?;
    }

    #[test]
    fn mutated_payload_then_gzipped(file in valid_idx(), m in mutation()) {
        check(&gz(&apply(file, &m)))?;
    }

    #[test]
    fn mutated_gzip_streams(file in valid_idx(), m in mutation()) {
        check(&apply(gz(&file), &m))?;
    }
}

/// The file reader agrees with the in-memory parser on a few mutated files.
#[test]
fn read_idx_agrees_with_parse_idx() -> anyhow::Result<()> {
    let t = tempfile::tempdir()?;
    let base = idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    let mut long = base.clone();
    long.push(7);
    let cases = [
        base.clone(),
        gz(&base),
        base[..9].to_vec(),
        long.clone(),
        gz(&long),
        vec![],
    ];
    for (i, bytes) in cases.iter().enumerate() {
        let p = t.path().join(format!("f{i}"));
        std::fs::write(&p, bytes)?;
        let from_file = read_idx(&p).map_err(|e| e.to_string().replace(&*p.to_string_lossy(), "X"));
        let in_memory =
            parse_idx(bytes, &p).map_err(|e| e.to_string().replace(&*p.to_string_lossy(), "X"));
        assert_eq!(from_file, in_memory, "case {i}");
    }
    Ok(())
}
