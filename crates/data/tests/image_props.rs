//! Property tests of the image reader `load_image` (what `predict` feeds models): arbitrary
//! bytes and real PNG and JPEG files with bytes flipped or cut give `Ok` with exactly the
//! requested number of values, or a `DataError` naming the file, never a panic; the decoder's
//! limits bound what a hostile header can make it allocate.
//!
//! 256 cases per property by default; set `PROPTEST_CASES` for more.

use convnets_data::{load_image, DataError};
use proptest::prelude::*;
use std::sync::OnceLock;

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 256;
    }
    c
}

/// A small RGB PNG and JPEG, encoded once.
fn seeds() -> &'static [Vec<u8>; 2] {
    static SEEDS: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let img =
            image::RgbImage::from_fn(9, 7, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 99]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageOutputFormat::Png)
            .unwrap();
        let mut jpg = std::io::Cursor::new(Vec::new());
        img.write_to(&mut jpg, image::ImageOutputFormat::Jpeg(90))
            .unwrap();
        [png.into_inner(), jpg.into_inner()]
    })
}

fn exercise(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.img");
    std::fs::write(&path, bytes).unwrap();
    for shape in [[1, 28, 28], [3, 32, 32]] {
        match load_image(&path, shape, None) {
            Ok(v) => assert_eq!(v.len(), shape.iter().product::<usize>()),
            Err(e) => {
                assert!(
                    matches!(e, DataError::Image { .. } | DataError::Io { .. }),
                    "{e:?}"
                );
                assert!(e.to_string().contains("x.img"), "{e}");
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256), png_magic: bool) {
        let mut b = if png_magic { b"\x89PNG\r\n\x1a\n".to_vec() } else { Vec::new() };
        b.extend(bytes);
        exercise(&b);
    }

    #[test]
    fn flipped_or_cut_images(
        which in 0usize..2,
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<usize>()),
    ) {
        let mut bytes = seeds()[which].clone();
        let len = bytes.len();
        for (i, b) in flips {
            bytes[i % len] ^= b.max(1);
        }
        if let Some(c) = cut {
            bytes.truncate(c % len);
        }
        exercise(&bytes);
    }
}

/// The unmutated seeds decode; a PNG header claiming 100,000 x 100,000 pixels is refused by
/// the limits before anything that size is allocated.
#[test]
fn seeds_decode_and_huge_headers_are_refused() {
    for s in seeds() {
        exercise(s);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ok.img");
        std::fs::write(&p, s).unwrap();
        assert_eq!(load_image(&p, [3, 7, 9], None).unwrap().len(), 189);
    }
    // IHDR of a 100000 x 100000 8-bit RGB image (CRC correct), then nothing.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.png");
    std::fs::write(&p, &png).unwrap();
    let e = load_image(&p, [1, 28, 28], None).unwrap_err().to_string();
    assert!(e.contains("huge.png"), "{e}");
}

/// CRC-32 (IEEE), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
