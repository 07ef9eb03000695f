//! Transforms applied once, up front: ToTensor (`u8 -> x / 255`) then Normalize.

use crate::dataset::Split;

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
