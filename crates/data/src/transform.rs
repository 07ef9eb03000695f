//! Transforms: ToTensor (`u8 -> x / 255`) then Normalize, applied once up front; and the
//! random augmentation ([`Augment`]) applied to each training sample as its batch is built.

use crate::dataset::Split;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Random augmentation of a training image, drawn anew for every sample in every epoch:
/// torchvision's `RandomCrop(size, padding=crop_padding)` (pad each side, crop the original
/// size at a random offset) followed by `RandomHorizontalFlip(p=0.5)`.
///
/// The draws of sample `i` in epoch `e` depend only on `(seed, e, i)` (see
/// [`crate::Batcher::with_augment`]), so a run repeats exactly however its batches are built.
///
/// ```
/// use convnets_data::Augment;
/// use rand::SeedableRng;
/// // A 1x2x3 image; pad 1, crop 2x3: some shifted window, zeros where it leaves the image.
/// let img = [1., 2., 3., 4., 5., 6.];
/// let aug = Augment { crop_padding: 1, hflip: false };
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let mut out = Vec::new();
/// aug.apply(&img, [1, 2, 3], 0.0, &mut rng, &mut out);
/// assert_eq!(out.len(), 6);
/// assert!(out.iter().all(|v| *v == 0.0 || img.contains(v)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// RandomCrop: pixels of padding on each side before cropping back to the original size
    /// (0: no crop). CIFAR-10's usual value is 4; 2 suits 28x28 images.
    #[serde(default)]
    pub crop_padding: usize,
    /// RandomHorizontalFlip with probability 0.5 (not for digits).
    #[serde(default)]
    pub hflip: bool,
}

impl Augment {
    /// True when this changes nothing.
    pub fn is_identity(&self) -> bool {
        self.crop_padding == 0 && !self.hflip
    }

    /// The usual augmentation for a data set's images: a random crop with 2 pixels of padding
    /// for the 28x28 sets, plus horizontal flips for Fashion-MNIST (a flipped digit is another
    /// symbol, a flipped shoe is a shoe).
    pub fn default_for(kind: crate::DatasetKind) -> Augment {
        match kind {
            crate::DatasetKind::Mnist => Augment {
                crop_padding: 2,
                hflip: false,
            },
            crate::DatasetKind::FashionMnist => Augment {
                crop_padding: 2,
                hflip: true,
            },
        }
    }

    /// Writes the augmented copy of `src` (one `[c, h, w]` image) to `out` (cleared first),
    /// drawing from `rng`: the crop's top and left offsets in `0..=2 * crop_padding` when
    /// cropping, then one flip decision when flipping. Pixels from the padding get `fill` (the
    /// value a black pixel has after normalisation, as torchvision pads before `ToTensor`).
    pub fn apply<R: Rng + ?Sized>(
        &self,
        src: &[f32],
        shape: [usize; 3],
        fill: f32,
        rng: &mut R,
        out: &mut Vec<f32>,
    ) {
        let [c, h, w] = shape;
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

/// Per-channel normalisation `(x - mean) / std`, applied after scaling pixels to `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    /// Mean subtracted.
    pub mean: f32,
    /// Standard deviation divided by.
    pub std: f32,
}

impl Normalize {
    /// MNIST's training-set statistics (the values of PyTorch's MNIST example).
    pub const MNIST: Normalize = Normalize {
        mean: 0.1307,
        std: 0.3081,
    };
    /// Fashion-MNIST's training-set statistics.
    pub const FASHION_MNIST: Normalize = Normalize {
        mean: 0.2860,
        std: 0.3530,
    };

    /// Applies the normalisation to one value.
    pub fn apply(&self, x: f32) -> f32 {
        (x - self.mean) / self.std
    }
}

/// The 256 values a byte maps to: `x / 255`, then normalised when asked.
pub fn byte_lut(normalize: Option<Normalize>) -> [f32; 256] {
    let mut lut = [0f32; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        let x = i as f32 / 255.0;
        *v = match normalize {
            Some(n) => n.apply(x),
            None => x,
        };
    }
    lut
}

/// Converts bytes with ToTensor (`x / 255`) then, when given, Normalize.
pub fn bytes_to_f32(bytes: &[u8], normalize: Option<Normalize>) -> Vec<f32> {
    let lut = byte_lut(normalize);
    bytes.iter().map(|&b| lut[usize::from(b)]).collect()
}

impl Split {
    /// The images as `f32`: ToTensor (`x / 255`) then, when given, Normalize.
    pub fn to_f32(&self, normalize: Option<Normalize>) -> Vec<f32> {
        bytes_to_f32(&self.images, normalize)
    }

    /// Mean and standard deviation of the pixels after scaling to `[0, 1]`.
    pub fn stats(&self) -> Normalize {
        let n = self.images.len().max(1) as f64;
        let (mut s, mut s2) = (0f64, 0f64);
        for &b in &self.images {
            let x = f64::from(b) / 255.0;
            s += x;
            s2 += x * x;
        }
        let mean = s / n;
        let var = (s2 / n - mean * mean).max(0.0);
        Normalize {
            mean: mean as f32,
            std: var.sqrt() as f32,
        }
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
            rows: 2,
            cols: 2,
        };
        assert_eq!(s.to_f32(None), vec![0.0, 1.0, 0.2, 128.0 / 255.0]);
        let n = Normalize {
            mean: 0.5,
            std: 0.25,
        };
        let v = s.to_f32(Some(n));
        assert_eq!(v[0], -2.0);
        assert_eq!(v[1], 2.0);
        assert!((v[2] - (-1.2)).abs() < 1e-6);
        let st = s.stats();
        let want = (0.0 + 1.0 + 0.2 + 128.0 / 255.0) / 4.0;
        assert!((st.mean - want).abs() < 1e-6, "{st:?}");
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
            aug.apply(&img, shape, -1.0, &mut rng, &mut out);
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
