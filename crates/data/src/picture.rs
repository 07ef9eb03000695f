//! Image files as model inputs: decode a PNG or JPEG (the `image` crate), convert it to the
//! model's channels, fit it to the model's size ([`Preprocess`]), then `ToTensor` and
//! `Normalize` — what `predict` feeds a model: the 28x28 / 32x32 models scale the image to
//! cover their input ([`Preprocess::Fill`]), the ImageNet models take torchvision's evaluation
//! transform ([`Preprocess::IMAGENET`]: `Resize(256)`, `CenterCrop(224)`), whose resize is
//! computed here as Pillow computes its antialiased bilinear resize, so that the inputs equal
//! torchvision's bit for bit.

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

/// How an image file is fitted to a model's input size before `ToTensor` and `Normalize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Preprocess {
    /// Scale the image to cover the model's input (bilinear, the `image` crate's
    /// `resize_to_fill`) and centre-crop it; an image already that size is used pixel for
    /// pixel. What the 28x28 and 32x32 models take.
    #[default]
    Fill,
    /// torchvision's evaluation transform on a PIL image: `Resize(resize)` (the shorter side
    /// to `resize` pixels, the longer one `int(resize * long / short)`, bilinear with
    /// antialiasing exactly as Pillow computes it), then `CenterCrop(crop)`. The model's input
    /// must be `crop x crop`.
    ResizeCrop {
        /// The shorter side after resizing.
        resize: u32,
        /// The side of the centred square crop.
        crop: u32,
        /// The resampling filter (torchvision's default: bilinear).
        filter: Resample,
    },
}

/// The resampling filter of [`Preprocess::ResizeCrop`], computed as Pillow computes it for
/// 8-bit images (antialiased: the filter widens by the reduction factor when shrinking).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Resample {
    /// Pillow's `BILINEAR` (a triangle of support 1): torchvision's default.
    #[default]
    Bilinear,
    /// Pillow's `BICUBIC` (Keys' cubic with a = -0.5, support 2): what timm's weights whose
    /// `pretrained_cfg` says `interpolation: "bicubic"` were evaluated with.
    Bicubic,
}

impl Resample {
    /// The filter's support in input pixels, before widening.
    fn support(self) -> f64 {
        match self {
            Resample::Bilinear => 1.0,
            Resample::Bicubic => 2.0,
        }
    }

    /// The filter's weight at distance `x` (Pillow's `bilinear_filter`/`bicubic_filter`).
    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Resample::Bilinear if x < 1.0 => 1.0 - x,
            Resample::Bicubic if x < 1.0 => {
                const A: f64 = -0.5;
                ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
            }
            Resample::Bicubic if x < 2.0 => {
                const A: f64 = -0.5;
                (((x - 5.0) * x + 8.0) * x - 4.0) * A
            }
            _ => 0.0,
        }
    }
}

impl Preprocess {
    /// ImageNet evaluation: `Resize(256)`, `CenterCrop(224)` (torchvision's weights'
    /// `transforms()`, then `ToTensor` and [`Normalize::IMAGENET`]).
    pub const IMAGENET: Preprocess = Preprocess::ResizeCrop {
        resize: 256,
        crop: 224,
        filter: Resample::Bilinear,
    };

    /// timm's evaluation transform for a `crop x crop` input with `crop_pct` and
    /// `filter` (a checkpoint's `pretrained_cfg`): `Resize(floor(crop / crop_pct))`, then
    /// `CenterCrop(crop)`. `crop_pct` 0.875 with bilinear is [`Preprocess::IMAGENET`]
    /// (`timm/resnet50.tv_in1k`); 0.95 with bicubic gives `Resize(235)` (`timm/resnet50.a1_in1k`).
    ///
    /// ```
    /// use convnets_data::{Preprocess, Resample};
    /// assert_eq!(Preprocess::crop_pct(224, 0.875, Resample::Bilinear), Ok(Preprocess::IMAGENET));
    /// assert_eq!(
    ///     Preprocess::crop_pct(224, 0.95, Resample::Bicubic).unwrap().to_string(),
    ///     "resize235-crop224-bicubic"
    /// );
    /// ```
    pub fn crop_pct(
        crop: u32,
        crop_pct: f64,
        filter: Resample,
    ) -> std::result::Result<Self, String> {
        if !(crop_pct > 0.0 && crop_pct <= 1.0) {
            return Err(format!(
                "crop_pct {crop_pct}: expected a fraction in (0, 1]"
            ));
        }
        let resize = (crop as f64 / crop_pct).floor();
        if crop == 0 || resize > MAX_SIDE as f64 {
            return Err(format!(
                "crop {crop} with crop_pct {crop_pct}: expected 1 <= crop and a resize of at most {MAX_SIDE}"
            ));
        }
        Ok(Preprocess::ResizeCrop {
            resize: resize as u32,
            crop,
            filter,
        })
    }
}

impl std::fmt::Display for Preprocess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Preprocess::Fill => write!(f, "fill"),
            Preprocess::ResizeCrop {
                resize,
                crop,
                filter,
            } => {
                write!(f, "resize{resize}-crop{crop}")?;
                match filter {
                    Resample::Bilinear => Ok(()),
                    Resample::Bicubic => write!(f, "-bicubic"),
                }
            }
        }
    }
}

impl std::str::FromStr for Preprocess {
    type Err = String;

    /// `fill` or `resizeR-cropC[-bicubic]` (what `Display` writes), e.g. `resize256-crop224`
    /// (bilinear) or `resize235-crop224-bicubic`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "fill" {
            return Ok(Preprocess::Fill);
        }
        let (rest, filter) = match s.strip_suffix("-bicubic") {
            Some(r) => (r, Resample::Bicubic),
            None => (s.strip_suffix("-bilinear").unwrap_or(s), Resample::Bilinear),
        };
        let parsed = rest
            .strip_prefix("resize")
            .and_then(|r| r.split_once("-crop"))
            .and_then(|(r, c)| Some((r.parse::<u32>().ok()?, c.parse::<u32>().ok()?)));
        match parsed {
            Some((resize, crop)) if crop >= 1 && crop <= resize && resize <= MAX_SIDE => {
                Ok(Preprocess::ResizeCrop {
                    resize,
                    crop,
                    filter,
                })
            }
            _ => Err(format!(
                "preprocessing `{s}`: expected `fill` or `resizeR-cropC[-bicubic]` with 1 <= C <= R <= {MAX_SIDE} (e.g. resize256-crop224)"
            )),
        }
    }
}

/// [`load_image_with`] with [`Preprocess::Fill`].
///
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
    load_image_with(path, shape, Preprocess::Fill, normalize)
}

/// Decodes the image at `path` into a `[c, h, w]` input (`shape`): grey (`c = 1`, the luma of
/// a colour image) or RGB (`c = 3`), fitted to `h x w` as `preprocess` says, then `x / 255`
/// and `normalize` (one pair, or one per channel). With [`Preprocess::IMAGENET`] and
/// [`Normalize::IMAGENET`] this is torchvision's `Resize(256)`, `CenterCrop(224)`,
/// `ToTensor()`, `Normalize(...)` on the image opened with PIL, value for value.
pub fn load_image_with(
    path: &Path,
    shape: [usize; 3],
    preprocess: Preprocess,
    normalize: Option<Normalize>,
) -> Result<Vec<f32>> {
    let bytes = load_image_bytes_with(path, shape, preprocess)?;
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
    load_image_bytes_with(path, shape, Preprocess::Fill)
}

/// [`load_image_with`] before `ToTensor`: the `[c, h, w]` bytes, fitted as `preprocess` says.
pub fn load_image_bytes_with(
    path: &Path,
    shape: [usize; 3],
    preprocess: Preprocess,
) -> Result<Vec<u8>> {
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
    let img = match preprocess {
        _ if (img.width(), img.height()) == (tw, th) => img,
        Preprocess::Fill => img.resize_to_fill(tw, th, FilterType::Triangle),
        Preprocess::ResizeCrop {
            resize,
            crop,
            filter,
        } => {
            if (crop, crop) != (tw, th) {
                return Err(bad(format!(
                    "preprocessing {preprocess} crops {crop}x{crop} but the model takes {w}x{h}"
                )));
            }
            resize_crop(&img, c, resize, crop, filter).map_err(bad)?
        }
    };
    Ok(match c {
        1 => planes(&DynamicImage::ImageLuma8(img.to_luma8()), 1),
        _ => planes(&DynamicImage::ImageRgb8(img.to_rgb8()), 3),
    })
}

/// torchvision's `Resize(resize)` + `CenterCrop(crop)` on the image as PIL holds it (`L` for
/// one channel, `RGB` for three).
fn resize_crop(
    img: &DynamicImage,
    c: usize,
    resize: u32,
    crop: u32,
    filter: Resample,
) -> std::result::Result<DynamicImage, String> {
    let (w, h) = (img.width() as u64, img.height() as u64);
    // torchvision: the shorter side becomes `resize`, the longer int(resize * long / short).
    let (short, long) = (w.min(h), w.max(h));
    let r = resize as u64;
    let scaled = (r * long / short).max(1);
    let (nw, nh) = if w <= h { (r, scaled) } else { (scaled, r) };
    if nw > MAX_SIDE as u64 || nh > MAX_SIDE as u64 {
        return Err(format!(
            "a {w}x{h} image resized to {nw}x{nh} exceeds {MAX_SIDE} pixels per side"
        ));
    }
    let (nw, nh) = (nw as usize, nh as usize);
    let (w, h) = (w as usize, h as usize);
    let (data, ch): (Vec<u8>, usize) = match (c, img) {
        (1, DynamicImage::ImageLuma8(g)) => (g.as_raw().clone(), 1),
        (1, _) => (pil_luma(&img.to_rgb8()), 1),
        _ => (img.to_rgb8().into_raw(), 3),
    };
    let out = pil_resize(&data, ch, w, h, nw, nh, filter);
    // torchvision's center_crop: top = round((h - crop) / 2), left likewise (round half to even).
    let crop = crop as usize;
    if crop > nw || crop > nh {
        return Err(format!(
            "CenterCrop({crop}) of the {nw}x{nh} resized image: torchvision would pad; resize to at least the crop"
        ));
    }
    let top = round_half_even((nh - crop) as f64 / 2.0);
    let left = round_half_even((nw - crop) as f64 / 2.0);
    let mut cropped = Vec::with_capacity(crop * crop * ch);
    for y in top..top + crop {
        let row = (y * nw + left) * ch;
        cropped.extend_from_slice(&out[row..row + crop * ch]);
    }
    let (cw, chh) = (crop as u32, crop as u32);
    Ok(match ch {
        1 => DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(cw, chh, cropped).ok_or("crop buffer size")?,
        ),
        _ => DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(cw, chh, cropped).ok_or("crop buffer size")?,
        ),
    })
}

/// Pillow's `convert("L")` of an RGB image: ITU-R 601-2 luma in 16-bit fixed point,
/// `(19595 R + 38470 G + 7471 B + 2^15) >> 16` (the `image` crate's luma uses other weights).
fn pil_luma(rgb: &image::RgbImage) -> Vec<u8> {
    rgb.pixels()
        .map(|p| {
            let [r, g, b] = p.0.map(u32::from);
            ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8
        })
        .collect()
}

/// Python's `round` (half to even) of a non-negative value.
fn round_half_even(x: f64) -> usize {
    let f = x.floor();
    let d = x - f;
    let r = if d > 0.5 || (d == 0.5 && f % 2.0 != 0.0) {
        f + 1.0
    } else {
        f
    };
    r as usize
}

/// Fixed-point precision of the resampling weights, as Pillow uses for 8-bit images: 32 bits
/// less 8 for the pixel and 2 for the sign and headroom.
const PRECISION_BITS: u32 = 22;

/// One output pixel's input window along an axis and its integer weights.
struct Taps {
    first: usize,
    weights: Vec<i32>,
}

/// The `filter` taps for resizing `inp` samples to `out` along one axis, antialiased: when
/// shrinking, the filter's support widens by the scale factor, so every input pixel
/// contributes (Pillow's `precompute_coeffs`). Weights are normalised to sum to 1 in float64,
/// then rounded to `PRECISION_BITS` fixed point.
fn taps(inp: usize, out: usize, filter: Resample) -> Vec<Taps> {
    let scale = inp as f64 / out as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let ss = 1.0 / filter_scale;
    let one = (1u32 << PRECISION_BITS) as f64;
    (0..out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            // Pillow truncates toward zero after adding 0.5 (it is a C int conversion).
            let lo = ((center - support + 0.5).trunc().max(0.0)) as usize;
            let hi = ((center + support + 0.5).trunc() as usize).min(inp);
            let w: Vec<f64> = (lo..hi)
                .map(|x| filter.weight((x as f64 - center + 0.5) * ss))
                .collect();
            let total: f64 = w.iter().sum();
            let weights = w
                .iter()
                .map(|&v| {
                    let v = if total != 0.0 { v / total } else { v };
                    // Round half away from zero, as Pillow does.
                    if v < 0.0 {
                        (v * one - 0.5).trunc() as i32
                    } else {
                        (v * one + 0.5).trunc() as i32
                    }
                })
                .collect();
            Taps { first: lo, weights }
        })
        .collect()
}

/// One fixed-point accumulation rounded and clamped to a byte.
fn to_byte(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an 8-bit image of `ch` interleaved channels from `w x h` to `nw x nh` with a
/// separable antialiased `filter` computed as Pillow's `Image.resize(..., BILINEAR or
/// BICUBIC)` computes it: a horizontal pass (skipped when the width stays) into 8-bit rows
/// (clamped to 0..=255), then a vertical pass (skipped when the height stays), each output the
/// rounded fixed-point sum of its taps. Equal to Pillow's bytes for the same input.
fn pil_resize(
    data: &[u8],
    ch: usize,
    w: usize,
    h: usize,
    nw: usize,
    nh: usize,
    filter: Resample,
) -> Vec<u8> {
    let half = 1i64 << (PRECISION_BITS - 1);
    let horizontal = if nw != w {
        let tx = taps(w, nw, filter);
        let mut out = vec![0u8; nw * h * ch];
        for y in 0..h {
            let row = &data[y * w * ch..(y + 1) * w * ch];
            for (x, t) in tx.iter().enumerate() {
                for c in 0..ch {
                    let mut acc = half;
                    for (k, &wt) in t.weights.iter().enumerate() {
                        acc += row[(t.first + k) * ch + c] as i64 * wt as i64;
                    }
                    out[(y * nw + x) * ch + c] = to_byte(acc);
                }
            }
        }
        out
    } else {
        data.to_vec()
    };
    if nh == h {
        return horizontal;
    }
    let ty = taps(h, nh, filter);
    let mut out = vec![0u8; nw * nh * ch];
    for (y, t) in ty.iter().enumerate() {
        for x in 0..nw * ch {
            let mut acc = half;
            for (k, &wt) in t.weights.iter().enumerate() {
                acc += horizontal[(t.first + k) * nw * ch + x] as i64 * wt as i64;
            }
            out[y * nw * ch + x] = to_byte(acc);
        }
    }
    out
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
    fn preprocess_names_round_trip_and_errors() {
        for p in [Preprocess::Fill, Preprocess::IMAGENET] {
            assert_eq!(p.to_string().parse::<Preprocess>(), Ok(p));
        }
        assert_eq!(Preprocess::IMAGENET.to_string(), "resize256-crop224");
        for bad in [
            "",
            "resize",
            "resize256-crop300",
            "resize0-crop0",
            "crop224",
        ] {
            let e = bad.parse::<Preprocess>().unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn pil_bilinear_taps_and_halving() {
        // Every output pixel's weights sum to 1 in fixed point (within rounding).
        for (inp, out) in [(451, 384), (300, 256), (10, 3), (3, 10), (7, 7)] {
            for t in taps(inp, out, Resample::Bilinear).into_iter().chain(taps(
                inp,
                out,
                Resample::Bicubic,
            )) {
                let sum: i32 = t.weights.iter().sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= t.weights.len() as i32);
            }
        }
        // Halving a row 0, 255, 0, 255: each output averages a window of 4 with weights
        // 1/8, 3/8, 3/8, 1/8 (the triangle widened by 2) clipped at the edges.
        let row = [0u8, 255, 0, 255];
        let out = pil_resize(&row, 1, 4, 1, 2, 1, Resample::Bilinear);
        // Left: weights 3/7, 3/7, 1/7 on 0, 255, 0 -> 109.3; right: 1/7, 3/7, 3/7 on 255, 0, 255 -> 145.7.
        assert_eq!(out, [109, 146]);
        assert_eq!(round_half_even(80.0), 80);
        assert_eq!(round_half_even(0.5), 0);
        assert_eq!(round_half_even(1.5), 2);
    }

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
