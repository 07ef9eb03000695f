//! Transforms: ToTensor (`u8 -> x / 255`) then Normalize, applied once up front; and the
//! random augmentation ([`Augment`]) applied to each training sample as its batch is built.

use crate::dataset::Split;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Random augmentation of a training image, drawn anew for every sample in every epoch:
/// torchvision's `RandomResizedCrop(size, scale, ratio)` when set, then
/// `RandomCrop(size, padding=crop_padding)` (pad each side, crop the original size at a random
/// offset), then `RandomHorizontalFlip(p=0.5)`.
///
/// The draws of sample `i` in epoch `e` depend only on `(seed, e, i)` (see
/// [`crate::Batcher::with_augment`]), so a run repeats exactly however its batches are built.
///
/// ```
/// use convnets_data::Augment;
/// use rand::SeedableRng;
/// // A 1x2x3 image; pad 1, crop 2x3: some shifted window, zeros where it leaves the image.
/// let img = [1., 2., 3., 4., 5., 6.];
/// let aug = Augment { crop_padding: 1, hflip: false, resized_crop: None };
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let mut out = Vec::new();
/// aug.apply(&img, [1, 2, 3], &[0.0], &mut rng, &mut out);
/// assert_eq!(out.len(), 6);
/// assert!(out.iter().all(|v| *v == 0.0 || img.contains(v)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// RandomCrop: pixels of padding on each side before cropping back to the original size
    /// (0: no crop). CIFAR-10's usual value is 4; 2 suits 28x28 images.
    #[serde(default)]
    pub crop_padding: usize,
    /// RandomHorizontalFlip with probability 0.5 (not for digits).
    #[serde(default)]
    pub hflip: bool,
    /// RandomResizedCrop: a random part of the image (its area and aspect ratio drawn from
    /// the ranges) scaled back to the image's size, bilinearly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resized_crop: Option<ResizedCrop>,
}

/// The ranges of torchvision's `RandomResizedCrop`: the crop's area as a fraction of the
/// image's, and its aspect ratio (width / height).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizedCrop {
    /// Smallest and largest area fraction, in `(0, 1]` (torchvision: 0.08, 1).
    pub scale: [f32; 2],
    /// Smallest and largest aspect ratio (torchvision: 3/4, 4/3).
    pub ratio: [f32; 2],
}

impl Default for ResizedCrop {
    /// torchvision's defaults: scale (0.08, 1), ratio (3/4, 4/3).
    fn default() -> Self {
        ResizedCrop {
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
        }
    }
}

impl ResizedCrop {
    /// An error unless `0 < scale[0] <= scale[1] <= 1` and `0 < ratio[0] <= ratio[1]`, all
    /// finite.
    pub fn check(&self) -> Result<(), String> {
        let [s0, s1] = self.scale;
        let [r0, r1] = self.ratio;
        let finite = [s0, s1, r0, r1].iter().all(|v| v.is_finite());
        let ok = finite && 0.0 < s0 && s0 <= s1 && s1 <= 1.0 && 0.0 < r0 && r0 <= r1;
        if !ok {
            return Err(format!(
                "random resized crop needs 0 < min scale <= max scale <= 1 and 0 < min ratio <= max ratio, got scale {s0}..{s1}, ratio {r0}..{r1}"
            ));
        }
        Ok(())
    }

    /// The crop `(top, left, height, width)` of an `h x w` image, drawn as torchvision's
    /// `RandomResizedCrop.get_params`: up to 10 draws of an area and a log-uniform aspect
    /// ratio that fit, else the centre crop with the ratio clamped into range.
    pub fn draw<R: Rng + ?Sized>(&self, h: usize, w: usize, rng: &mut R) -> [usize; 4] {
        let area = (h * w) as f32;
        let (lr0, lr1) = (self.ratio[0].ln(), self.ratio[1].ln());
        for _ in 0..10 {
            let target = area * rng.random_range(self.scale[0]..=self.scale[1]);
            let aspect = rng.random_range(lr0..=lr1).exp();
            let cw = (target * aspect).sqrt().round() as usize;
            let ch = (target / aspect).sqrt().round() as usize;
            if cw > 0 && cw <= w && ch > 0 && ch <= h {
                let top = rng.random_range(0..=h - ch);
                let left = rng.random_range(0..=w - cw);
                return [top, left, ch, cw];
            }
        }
        let in_ratio = w as f32 / h as f32;
        let (ch, cw) = if in_ratio < self.ratio[0] {
            (((w as f32 / self.ratio[0]).round() as usize).clamp(1, h), w)
        } else if in_ratio > self.ratio[1] {
            (h, ((h as f32 * self.ratio[1]).round() as usize).clamp(1, w))
        } else {
            (h, w)
        };
        [(h - ch) / 2, (w - cw) / 2, ch, cw]
    }
}

/// Bilinear resampling of the `[c, h, w]` image `src`'s window `(top, left, ch, cw)` to
/// `[c, h, w]` (half-pixel centres, as PyTorch's `interpolate(align_corners=False)`).
fn resize_window(src: &[f32], shape: [usize; 3], window: [usize; 4], out: &mut Vec<f32>) {
    let [c, h, w] = shape;
    let [top, left, ch, cw] = window;
    let (sy, sx) = (ch as f32 / h as f32, cw as f32 / w as f32);
    out.clear();
    out.reserve(c * h * w);
    for p in 0..c {
        let plane = &src[p * h * w..(p + 1) * h * w];
        for y in 0..h {
            let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (ch - 1) as f32);
            let y0 = fy.floor() as usize;
            let y1 = (y0 + 1).min(ch - 1);
            let wy = fy - y0 as f32;
            for x in 0..w {
                let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (cw - 1) as f32);
                let x0 = fx.floor() as usize;
                let x1 = (x0 + 1).min(cw - 1);
                let wx = fx - x0 as f32;
                let at = |yy: usize, xx: usize| plane[(top + yy) * w + left + xx];
                let v = (1.0 - wy) * ((1.0 - wx) * at(y0, x0) + wx * at(y0, x1))
                    + wy * ((1.0 - wx) * at(y1, x0) + wx * at(y1, x1));
                out.push(v);
            }
        }
    }
}

impl Augment {
    /// True when this changes nothing.
    pub fn is_identity(&self) -> bool {
        self.crop_padding == 0 && !self.hflip && self.resized_crop.is_none()
    }

    /// The usual augmentation for a data set's images: a random crop with 2 pixels of padding
    /// for the 28x28 sets, plus horizontal flips for Fashion-MNIST (a flipped digit is another
    /// symbol, a flipped shoe is a shoe); for CIFAR-10 the standard pad 4, crop 32 and flips
    /// (He et al. 2016, section 4.2).
    pub fn default_for(kind: crate::DatasetKind) -> Augment {
        match kind {
            crate::DatasetKind::Mnist => Augment {
                crop_padding: 2,
                hflip: false,
                resized_crop: None,
            },
            crate::DatasetKind::FashionMnist => Augment {
                crop_padding: 2,
                hflip: true,
                resized_crop: None,
            },
            crate::DatasetKind::Cifar10 => Augment {
                crop_padding: 4,
                hflip: true,
                resized_crop: None,
            },
        }
    }

    /// Writes the augmented copy of `src` (one `[c, h, w]` image) to `out` (cleared first),
    /// drawing from `rng`: the resized crop's window when set ([`ResizedCrop::draw`]), the
    /// crop's top and left offsets in `0..=2 * crop_padding` when cropping, then one flip
    /// decision when flipping. Pixels from the padding of channel `c`
    /// get `fill[c]` (one value for all channels when `fill` has one; the value a black pixel
    /// has after normalisation, as torchvision pads before `ToTensor`; 0 when empty).
    pub fn apply<R: Rng + ?Sized>(
        &self,
        src: &[f32],
        shape: [usize; 3],
        fill: &[f32],
        rng: &mut R,
        out: &mut Vec<f32>,
    ) {
        let [c, h, w] = shape;
        let resized;
        let src = match self.resized_crop {
            Some(rc) if h > 0 && w > 0 => {
                let window = rc.draw(h, w, rng);
                let mut v = Vec::new();
                resize_window(src, shape, window, &mut v);
                resized = v;
                &resized[..]
            }
            _ => src,
        };
        let p = self.crop_padding;
        let (top, left) = if p > 0 {
            (rng.random_range(0..=2 * p), rng.random_range(0..=2 * p))
        } else {
            (p, p)
        };
        let flip = self.hflip && rng.random_bool(0.5);
        out.clear();
        out.reserve(c * h * w);
        for ch in 0..c {
            let fill = match fill {
                [] => 0.0,
                [one] => *one,
                many => many[ch.min(many.len() - 1)],
            };
            let plane = &src[ch * h * w..(ch + 1) * h * w];
            for y in 0..h {
                // Source row of output row y: y + top - p, when inside the image.
                let sy = (y + top).checked_sub(p).filter(|&sy| sy < h);
                for x in 0..w {
                    let xo = if flip { w - 1 - x } else { x };
                    let sx = (xo + left).checked_sub(p).filter(|&sx| sx < w);
                    out.push(match (sy, sx) {
                        (Some(sy), Some(sx)) => plane[sy * w + sx],
                        _ => fill,
                    });
                }
            }
        }
    }
}

/// The most channels a [`Normalize`] holds statistics for (grey, RGB, RGBA).
pub const MAX_CHANNELS: usize = 4;

/// torchvision's `Normalize(mean, std)`: `(x - mean[c]) / std[c]` for channel `c`, applied
/// after `ToTensor` scaled the pixels to `[0, 1]`.
///
/// One mean and one standard deviation ([`Normalize::new`]) apply to every channel; per-channel
/// statistics ([`Normalize::per_channel`]) give one pair per channel (up to [`MAX_CHANNELS`]).
/// Both constructors check that every value is finite and every std above 0. On the command
/// line and in a weights file's metadata it is written `MEAN,STD` or `M1,M2,M3/S1,S2,S3`
/// ([`std::str::FromStr`] / [`std::fmt::Display`]); in a run's JSON/TOML configuration as
/// `[MEAN, STD]` or `{ mean = [..], std = [..] }`.
///
/// ```
/// use convnets_data::Normalize;
/// let grey = Normalize::new(0.5, 0.25).unwrap();
/// assert_eq!(grey.apply(0, 1.0), 2.0);
/// let rgb: Normalize = "0.5,0.4,0.3/0.1,0.2,0.5".parse().unwrap();
/// assert_eq!(rgb.channels(), 3);
/// assert!((rgb.apply(2, 0.8) - 1.0).abs() < 1e-6);
/// assert_eq!(rgb.to_string(), "0.5,0.4,0.3/0.1,0.2,0.5");
/// assert!("0.5,0".parse::<Normalize>().is_err()); // std 0
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    mean: [f32; MAX_CHANNELS],
    std: [f32; MAX_CHANNELS],
    channels: usize,
}

impl Normalize {
    /// MNIST's training-set statistics (the values of PyTorch's MNIST example).
    pub const MNIST: Normalize = Normalize::constant(&[0.1307], &[0.3081]);
    /// Fashion-MNIST's training-set statistics.
    pub const FASHION_MNIST: Normalize = Normalize::constant(&[0.2860], &[0.3530]);
    /// CIFAR-10's per-channel training-set statistics (R, G, B), computed over the 50,000
    /// training images.
    pub const CIFAR10: Normalize =
        Normalize::constant(&[0.4914, 0.4822, 0.4465], &[0.2470, 0.2435, 0.2616]);
    /// ImageNet's per-channel statistics, as torchvision's and timm's models use them.
    pub const IMAGENET: Normalize =
        Normalize::constant(&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]);

    const fn constant(mean: &[f32], std: &[f32]) -> Normalize {
        let mut m = [0.0; MAX_CHANNELS];
        let mut s = [1.0; MAX_CHANNELS];
        let mut i = 0;
        while i < mean.len() {
            m[i] = mean[i];
            s[i] = std[i];
            i += 1;
        }
        Normalize {
            mean: m,
            std: s,
            channels: mean.len(),
        }
    }

    /// One mean and standard deviation for every channel; an error unless both are finite
    /// and `std > 0`.
    pub fn new(mean: f32, std: f32) -> Result<Normalize, String> {
        Normalize::per_channel(&[mean], &[std])
    }

    /// Per-channel statistics: `mean[c]` and `std[c]` for channel `c`. An error unless both
    /// have the same length, 1 to [`MAX_CHANNELS`], with finite values and every std > 0.
    pub fn per_channel(mean: &[f32], std: &[f32]) -> Result<Normalize, String> {
        if mean.len() != std.len() || mean.is_empty() || mean.len() > MAX_CHANNELS {
            return Err(format!(
                "normalization needs as many means as stds, 1 to {MAX_CHANNELS}: got {} and {}",
                mean.len(),
                std.len()
            ));
        }
        if let Some((m, s)) = mean
            .iter()
            .zip(std)
            .find(|(m, s)| !m.is_finite() || !s.is_finite() || **s <= 0.0)
        {
            return Err(format!(
                "normalization needs a finite mean and a finite std > 0 in every channel, got mean {m}, std {s}"
            ));
        }
        Ok(Normalize::constant(mean, std))
    }

    /// How many (mean, std) pairs it holds: 1 (the same for every channel) or one per channel.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The means, one per [`Normalize::channels`].
    pub fn means(&self) -> &[f32] {
        &self.mean[..self.channels]
    }

    /// The standard deviations, one per [`Normalize::channels`].
    pub fn stds(&self) -> &[f32] {
        &self.std[..self.channels]
    }

    /// `(mean, std)` of channel `c` (the single pair when there is one).
    pub fn of(&self, c: usize) -> (f32, f32) {
        let i = if self.channels == 1 { 0 } else { c };
        (self.mean[i], self.std[i])
    }

    /// Whether it can normalise images of `c` channels: one pair for all, or one per channel.
    pub fn fits(&self, c: usize) -> bool {
        self.channels == 1 || self.channels == c
    }

    /// An error naming both counts unless it [`fits`](Normalize::fits) `c`-channel images.
    pub fn check_channels(&self, c: usize) -> Result<(), String> {
        if self.fits(c) {
            Ok(())
        } else {
            Err(format!(
                "normalization {self} has {} channels but the images have {c}",
                self.channels
            ))
        }
    }

    /// Normalises one value of channel `c`.
    pub fn apply(&self, c: usize, x: f32) -> f32 {
        let (m, s) = self.of(c);
        (x - m) / s
    }
}

impl std::fmt::Display for Normalize {
    /// `MEAN,STD` for one pair, `M1,M2,M3/S1,S2,S3` per channel.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[f32]| v.iter().map(f32::to_string).collect::<Vec<_>>().join(",");
        if self.channels == 1 {
            write!(f, "{},{}", self.mean[0], self.std[0])
        } else {
            write!(f, "{}/{}", list(self.means()), list(self.stds()))
        }
    }
}

impl std::str::FromStr for Normalize {
    type Err = String;

    /// `MEAN,STD` (one pair for every channel) or `M1,...,Mc/S1,...,Sc` (per channel).
    fn from_str(s: &str) -> Result<Normalize, String> {
        let nums = |part: &str| -> Result<Vec<f32>, String> {
            part.split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f32>()
                        .map_err(|e| format!("normalization {s:?}: {v:?} is not a number: {e}"))
                })
                .collect()
        };
        let (mean, std) = match s.split_once('/') {
            Some((m, sd)) => (nums(m)?, nums(sd)?),
            None => match nums(s)?.as_slice() {
                &[m, sd] => (vec![m], vec![sd]),
                _ => {
                    return Err(format!(
                        "normalization {s:?}: expected MEAN,STD or M1,M2,M3/S1,S2,S3"
                    ))
                }
            },
        };
        Normalize::per_channel(&mean, &std)
    }
}

/// How a [`Normalize`] is written in configurations: `[mean, std]` for one pair, else
/// `{ mean = [...], std = [...] }`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum NormalizeRepr {
    Pair([f32; 2]),
    PerChannel { mean: Vec<f32>, std: Vec<f32> },
}

impl Serialize for Normalize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.channels == 1 {
            NormalizeRepr::Pair([self.mean[0], self.std[0]]).serialize(s)
        } else {
            NormalizeRepr::PerChannel {
                mean: self.means().to_vec(),
                std: self.stds().to_vec(),
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Normalize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Normalize, D::Error> {
        match NormalizeRepr::deserialize(d)? {
            NormalizeRepr::Pair([m, s]) => Normalize::new(m, s),
            NormalizeRepr::PerChannel { mean, std } => Normalize::per_channel(&mean, &std),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// The 256 values a byte of channel `c` maps to: `x / 255`, then normalised when asked.
pub fn byte_lut(normalize: Option<Normalize>, c: usize) -> [f32; 256] {
    let mut lut = [0f32; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        let x = i as f32 / 255.0;
        *v = match normalize {
            Some(n) => n.apply(c, x),
            None => x,
        };
    }
    lut
}

/// Converts the bytes of images laid out `[.., channels, plane]` (each channel's `plane`
/// values contiguous, as CHW images are) with ToTensor (`x / 255`) then, when given, each
/// channel's Normalize.
pub fn bytes_to_f32(
    bytes: &[u8],
    channels: usize,
    plane: usize,
    normalize: Option<Normalize>,
) -> Vec<f32> {
    let luts: Vec<[f32; 256]> = (0..channels.max(1))
        .map(|c| byte_lut(normalize, c))
        .collect();
    let plane = plane.max(1);
    bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| luts[(i / plane) % luts.len()][usize::from(b)])
        .collect()
}

impl Split {
    /// The images as `f32`: ToTensor (`x / 255`) then, when given, Normalize (per channel).
    pub fn to_f32(&self, normalize: Option<Normalize>) -> Vec<f32> {
        bytes_to_f32(
            &self.images,
            self.channels,
            self.rows * self.cols,
            normalize,
        )
    }

    /// Mean and standard deviation of each channel's pixels after scaling to `[0, 1]`, as
    /// `(mean, std)` per channel: the statistics to normalise this split with.
    pub fn stats(&self) -> Vec<(f32, f32)> {
        let plane = (self.rows * self.cols).max(1);
        let c = self.channels.max(1);
        let mut sums = vec![(0f64, 0f64, 0u64); c];
        for (i, &b) in self.images.iter().enumerate() {
            let x = f64::from(b) / 255.0;
            let e = &mut sums[(i / plane) % c];
            e.0 += x;
            e.1 += x * x;
            e.2 += 1;
        }
        sums.into_iter()
            .map(|(s, s2, n)| {
                let n = n.max(1) as f64;
                let mean = s / n;
                let var = (s2 / n - mean * mean).max(0.0);
                (mean as f32, var.sqrt() as f32)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_tensor_then_normalize() {
        let s = Split {
            images: vec![0, 255, 51, 128],
            labels: vec![0],
            len: 1,
            channels: 1,
            rows: 2,
            cols: 2,
        };
        assert_eq!(s.to_f32(None), vec![0.0, 1.0, 0.2, 128.0 / 255.0]);
        let n = Normalize::new(0.5, 0.25).unwrap();
        let v = s.to_f32(Some(n));
        assert_eq!(v[0], -2.0);
        assert_eq!(v[1], 2.0);
        assert!((v[2] - (-1.2)).abs() < 1e-6);
        let st = s.stats();
        let want = (0.0 + 1.0 + 0.2 + 128.0 / 255.0) / 4.0;
        assert!(st.len() == 1 && (st[0].0 - want).abs() < 1e-6, "{st:?}");
    }

    /// Two 2-channel 1x2 images: each channel gets its own statistics and normalisation.
    #[test]
    fn per_channel_statistics_and_normalization() {
        let s = Split {
            images: vec![0, 255, 51, 51, 0, 255, 51, 51],
            labels: vec![0, 1],
            len: 2,
            channels: 2,
            rows: 1,
            cols: 2,
        };
        let st = s.stats();
        assert!(
            (st[0].0 - 0.5).abs() < 1e-6 && (st[0].1 - 0.5).abs() < 1e-6,
            "{st:?}"
        );
        assert!(
            (st[1].0 - 0.2).abs() < 1e-6 && st[1].1.abs() < 1e-6,
            "{st:?}"
        );
        let n = Normalize::per_channel(&[0.5, 0.2], &[0.5, 0.1]).unwrap();
        let v = s.to_f32(Some(n));
        let want = [-1.0, 1.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0];
        assert!(
            v.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5),
            "{v:?}"
        );
        assert!(n.fits(2) && n.fits(2) && !n.fits(3));
        assert!(n.check_channels(3).unwrap_err().contains("2 channels"));
    }

    #[test]
    fn normalize_parses_prints_and_serializes() {
        for (text, ch) in [
            ("0.1307,0.3081", 1),
            ("0.4914,0.4822,0.4465/0.247,0.2435,0.2616", 3),
        ] {
            let n: Normalize = text.parse().unwrap();
            assert_eq!(n.channels(), ch);
            assert_eq!(n.to_string(), text);
            let json = serde_json::to_string(&n).unwrap();
            assert_eq!(
                serde_json::from_str::<Normalize>(&json).unwrap(),
                n,
                "{json}"
            );
        }
        assert_eq!(
            serde_json::to_string(&Normalize::MNIST).unwrap(),
            "[0.1307,0.3081]",
            "one pair keeps the old [mean, std] form"
        );
        assert_eq!(
            "0.4914,0.4822,0.4465/0.247,0.2435,0.2616"
                .parse::<Normalize>()
                .unwrap(),
            Normalize::per_channel(&[0.4914, 0.4822, 0.4465], &[0.247, 0.2435, 0.2616]).unwrap()
        );
        for bad in [
            "",
            "1",
            "1,2,3",
            "a,1",
            "0.5,0",
            "nan,1",
            "1,2/3",
            "1,2,3,4,5/1,1,1,1,1",
        ] {
            assert!(bad.parse::<Normalize>().is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<Normalize>("[0.5, -1]").is_err());
        assert!(serde_json::from_str::<Normalize>(r#"{"mean":[0.5],"std":[1,2]}"#).is_err());
    }
}

#[cfg(test)]
mod augment_tests {
    use super::*;

    /// Every crop offset and flip of a 2-channel 2x3 image against hand-written windows.
    #[test]
    fn crops_and_flips_by_hand() {
        let img: Vec<f32> = (1..=12).map(|v| v as f32).collect(); // ch0: 1..6, ch1: 7..12
        let shape = [2, 2, 3];
        let run = |aug: Augment, seed: u64| {
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
            let mut out = Vec::new();
            aug.apply(&img, shape, &[-1.0], &mut rng, &mut out);
            out
        };
        let none = Augment::default();
        assert!(none.is_identity());
        assert_eq!(run(none, 0), img);
        // All crops of pad 1 over many seeds: each output equals one of the 9 windows.
        let window = |top: usize, left: usize, flip: bool| -> Vec<f32> {
            let mut v = Vec::new();
            for ch in 0..2 {
                for y in 0..2 {
                    for x in 0..3 {
                        let xo = if flip { 2 - x } else { x };
                        let (sy, sx) = (y + top, xo + left);
                        v.push(if (1..=2).contains(&sy) && (1..=3).contains(&sx) {
                            img[ch * 6 + (sy - 1) * 3 + (sx - 1)]
                        } else {
                            -1.0
                        });
                    }
                }
            }
            v
        };
        let aug = Augment {
            crop_padding: 1,
            hflip: true,
            resized_crop: None,
        };
        let mut seen = std::collections::HashSet::new();
        for seed in 0..400 {
            let out = run(aug, seed);
            let hit = (0..3)
                .flat_map(|t| (0..3).flat_map(move |l| [(t, l, false), (t, l, true)]))
                .find(|&(t, l, f)| window(t, l, f) == out)
                .expect("every output is a padded window, flipped or not");
            seen.insert(hit);
        }
        assert_eq!(seen.len(), 18, "all 9 offsets x 2 flips occur");
        // Offset (1, 1) is the image itself; flipped, each row reversed.
        assert_eq!(window(1, 1, false), img);
        assert_eq!(
            window(1, 1, true),
            [3., 2., 1., 6., 5., 4., 9., 8., 7., 12., 11., 10.]
        );
        // Offset (0, 0): shifted down-right by one, the padding filled.
        assert_eq!(
            window(0, 0, false),
            [-1., -1., -1., -1., 1., 2., -1., -1., -1., -1., 7., 8.]
        );
    }
}

#[cfg(test)]
mod resized_crop_tests {
    use super::*;
    use rand::SeedableRng;

    /// Windows fit the image and cover the drawn range; the identity window reproduces the
    /// image; a 2x upscale of a 2x2 window matches hand-computed bilinear values.
    #[test]
    fn windows_and_bilinear_values() {
        let rc = ResizedCrop::default();
        rc.check().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut areas = Vec::new();
        for _ in 0..2000 {
            let [t, l, ch, cw] = rc.draw(32, 32, &mut rng);
            assert!(ch >= 1 && cw >= 1 && t + ch <= 32 && l + cw <= 32);
            areas.push((ch * cw) as f32 / 1024.0);
        }
        let (lo, hi) = areas
            .iter()
            .fold((1f32, 0f32), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(lo < 0.15 && hi > 0.9, "{lo} {hi}");
        // Impossible ratios fall back to the centre crop, clamped.
        let tall = ResizedCrop {
            scale: [1.0, 1.0],
            ratio: [2.0, 3.0],
        };
        assert_eq!(tall.draw(8, 8, &mut rng), [2, 0, 4, 8]);
        assert!(ResizedCrop {
            scale: [0.5, 0.2],
            ratio: [1.0, 1.0]
        }
        .check()
        .is_err());
        assert!(ResizedCrop {
            scale: [0.5, 1.0],
            ratio: [0.0, 1.0]
        }
        .check()
        .is_err());

        let img: Vec<f32> = (0..16).map(|v| v as f32).collect(); // 1x4x4
        let mut out = Vec::new();
        resize_window(&img, [1, 4, 4], [0, 0, 4, 4], &mut out);
        assert_eq!(out, img);
        // Window rows 1..3, cols 1..3 ([[5, 6], [9, 10]]) to 4x4: half-pixel centres.
        resize_window(&img, [1, 4, 4], [1, 1, 2, 2], &mut out);
        let want = [
            5.0, 5.25, 5.75, 6.0, 6.0, 6.25, 6.75, 7.0, 8.0, 8.25, 8.75, 9.0, 9.0, 9.25, 9.75, 10.0,
        ];
        assert_eq!(out, want);
        // Through `apply`: deterministic per seed, the shape kept.
        let aug = Augment {
            crop_padding: 0,
            hflip: false,
            resized_crop: Some(rc),
        };
        assert!(!aug.is_identity());
        let run = |seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut o = Vec::new();
            aug.apply(&img, [1, 4, 4], &[0.0], &mut rng, &mut o);
            o
        };
        assert_eq!(run(3), run(3));
        assert_eq!(run(3).len(), 16);
    }
}
