//! Property tests of the weights reader (`ParamStore::load`, safetensors with PyTorch's
//! names): arbitrary bytes, a real weights file with bytes flipped or cut, and one whose header
//! digits are changed (well-formed JSON, wrong shapes, dtypes' sizes and offsets) give `Ok` or
//! a typed `StoreError`, never a panic; what loads has the model's shapes.
//!
//! 256 cases per property by default; set `PROPTEST_CASES` for more.

use candle_core::Device;
use convnets_layers::{batch_norm2d, conv2d, linear, Conv2dConfig, ParamStore};
use proptest::prelude::*;
use std::sync::OnceLock;

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 256;
    }
    c
}

/// A store with a convolution, a batch norm and a linear layer.
fn store() -> ParamStore {
    let s = ParamStore::new(0, &Device::Cpu);
    let vb = s.vb();
    conv2d(1, 2, 3, Conv2dConfig::default(), vb.pp("conv")).unwrap();
    batch_norm2d(2, Default::default(), vb.pp("bn")).unwrap();
    linear(8, 3, vb.pp("fc")).unwrap();
    s
}

fn weights_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        store().save(&path).unwrap();
        std::fs::read(&path).unwrap()
    })
}

fn exercise(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    std::fs::write(&path, bytes).unwrap();
    for strict in [true, false] {
        let s = store();
        if s.load(&path, strict).is_ok() {
            for (name, var) in s.named_vars() {
                let fresh = store().get(&name).unwrap();
                assert_eq!(var.dims(), fresh.dims(), "{name}");
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn flipped_or_cut(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<usize>()),
    ) {
        let mut bytes = weights_bytes().to_vec();
        let len = bytes.len();
        for (i, b) in flips {
            bytes[i % len] ^= b.max(1);
        }
        if let Some(c) = cut {
            bytes.truncate(c % len);
        }
        exercise(&bytes);
    }

    #[test]
    fn changed_header_numbers(at in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let bytes = weights_bytes();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = &bytes[8..8 + n];
        let digits: Vec<usize> = (0..n).filter(|&i| header[i].is_ascii_digit()).collect();
        let mut out = bytes.to_vec();
        for (i, d) in at {
            out[8 + digits[i % digits.len()]] = b'0' + d % 10;
        }
        exercise(&out);
    }
}

#[test]
fn the_seed_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    std::fs::write(&path, weights_bytes()).unwrap();
    store().load(&path, true).unwrap();
}
