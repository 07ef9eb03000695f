//! Image files as model inputs: decode a PNG or JPEG (the `image` crate), convert it to the
//! model's channels, fit it to the model's size, then `ToTensor` and `Normalize` — what
//! `predict` feeds a model trained on the 28x28 data sets.

use std::path::Path;

use image::imageops::FilterType;
use image::DynamicImage;

use crate::error::{DataError, Result};
use crate::transform::Normalize;

/// The largest image (in pixels per side) and decoder allocation [`load_image`] accepts, so
/// that a hostile header cannot make it allocate gigabytes.
pub const MAX_SIDE: u32 = 16_384;
/// The decoder's allocation limit in bytes (512 MiB).
pub const MAX_ALLOC: u64 = 512 << 20;

/// Decodes the image at `path` into a `[c, h, w]` input (`shape`): grey (`c = 1`, the luma of
/// a colour image) or RGB (`c = 3`); an image of another size is scaled to cover `h x w`
/// (bilinear) and centre-cropped, as torchvision's `Resize` + `CenterCrop` do; pixels become
/// `x / 255`, then `normalize` applies. An image already `h x w` is used pixel for pixel.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("convnets-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("grey.png");
/// image::GrayImage::from_fn(4, 2, |x, _| image::Luma([(x * 85) as u8])).save(&path)?;
/// let x = convnets_data::load_image(&path, [1, 2, 4], None)?;
/// assert_eq!(x, [0.0, 85.0 / 255.0, 170.0 / 255.0, 1.0, 0.0, 85.0 / 255.0, 170.0 / 255.0, 1.0]);
/// # std::fs::remove_dir_all(&dir)?; Ok(()) }
/// ```
pub fn load_image(
    path: &Path,
    shape: [usize; 3],
    normalize: Option<Normalize>,
) -> Result<Vec<f32>> {
    let bytes = load_image_bytes(path, shape)?;
    let c = shape[0];
    if let Some(n) = normalize {
        n.check_channels(c).map_err(|reason| DataError::Image {
            path: path.to_path_buf(),
            reason,
        })?;
    }
    Ok(crate::transform::bytes_to_f32(
        &bytes,
        c,
        shape[1] * shape[2],
        normalize,
    ))
}

/// [`load_image`] before `ToTensor`: the `[c, h, w]` bytes of the image at `path`, converted
/// to grey (`c = 1`) or RGB (`c = 3`) and fitted to `h x w` (scaled to cover, centre-cropped).
pub fn load_image_bytes(path: &Path, shape: [usize; 3]) -> Result<Vec<u8>> {
    let bad = |reason: String| DataError::Image {
        path: path.to_path_buf(),
        reason,
    };
    let [c, h, w] = shape;
    if c != 1 && c != 3 {
        return Err(bad(format!(
            "the model takes {c} channels; images become 1 (grey) or 3 (RGB)"
        )));
    }
    let mut reader = image::io::Reader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let mut limits = image::io::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| bad(format!("cannot decode: {e}")))?;
    let (tw, th) = (w as u32, h as u32);
    let img = if (img.width(), img.height()) == (tw, th) {
        img
    } else {
        img.resize_to_fill(tw, th, FilterType::Triangle)
    };
    Ok(match c {
        1 => planes(&DynamicImage::ImageLuma8(img.to_luma8()), 1),
        _ => planes(&DynamicImage::ImageRgb8(img.to_rgb8()), 3),
    })
}

/// The bytes of an 8-bit grey or RGB image as `[c, h, w]` planes.
fn planes(img: &DynamicImage, c: usize) -> Vec<u8> {
    let bytes = img.as_bytes();
    let n = bytes.len() / c;
    let mut out = vec![0u8; bytes.len()];
    for (i, px) in bytes.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            out[ch * n + i] = v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_planes_resize_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rgb.png");
        image::RgbImage::from_fn(2, 2, |x, y| image::Rgb([x as u8 * 255, y as u8 * 255, 51]))
            .save(&path)
            .unwrap();
        let x = load_image(&path, [3, 2, 2], None).unwrap();
        assert_eq!(
            x,
            [0., 1., 0., 1., 0., 0., 1., 1., 0.2, 0.2, 0.2, 0.2],
            "R plane, G plane, B plane"
        );
        // Grey: the luma of each pixel; a different size is scaled.
        assert_eq!(load_image(&path, [1, 5, 5], None).unwrap().len(), 25);
        let norm = Normalize::new(0.2, 0.5).unwrap();
        let x = load_image(&path, [3, 2, 2], Some(norm)).unwrap();
        assert!(
            (x[8] - 0.0).abs() < 1e-6 && (x[1] - 1.6).abs() < 1e-6,
            "{x:?}"
        );

        let junk = dir.path().join("junk.png");
        std::fs::write(&junk, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let e = load_image(&junk, [1, 28, 28], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("junk.png") && e.contains("cannot decode"), "{e}");
        let e = load_image(&dir.path().join("none.png"), [1, 28, 28], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.png"), "{e}");
        let e = load_image(&path, [2, 28, 28], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 channels"), "{e}");
        // Per-channel statistics: each plane its own; the wrong count is an error.
        let norm = Normalize::per_channel(&[0.0, 0.5, 0.2], &[1.0, 0.5, 0.1]).unwrap();
        let x = load_image(&path, [3, 2, 2], Some(norm)).unwrap();
        assert_eq!(&x[..4], [0., 1., 0., 1.]);
        assert_eq!(&x[4..8], [-1., -1., 1., 1.]);
        assert!(x[8..].iter().all(|v| v.abs() < 1e-5), "{x:?}");
        let e = load_image(&path, [1, 2, 2], Some(norm)).unwrap_err();
        assert!(
            e.to_string().contains("3 channels but the images have 1"),
            "{e}"
        );
    }
}
