//! Seeded, reproducible mini-batching into candle tensors.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Split;
use crate::error::{DataError, Result};
use crate::transform::Normalize;

/// One mini-batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Images, `[b, c, h, w]`, `f32`.
    pub images: Tensor,
    /// Labels, `[b]`, `u32`.
    pub labels: Tensor,
}

/// Cuts a data set held in memory into mini-batches, shuffled per epoch from a seed.
///
/// The order of epoch `e` depends only on `(seed, e)`: a run repeats exactly, and a resumed
/// run picks up the same order.
#[derive(Clone, Debug)]
pub struct Batcher {
    images: Arc<Vec<f32>>,
    labels: Arc<Vec<u8>>,
    image_shape: [usize; 3],
    batch_size: usize,
    shuffle: Option<u64>,
    drop_last: bool,
    device: Device,
}

impl Batcher {
    /// A batcher over `labels.len()` samples whose images are `image_shape = [c, h, w]`,
    /// stored contiguously in `images`. `shuffle: Some(seed)` shuffles each epoch;
    /// `drop_last` drops a last, partial batch. Batches are built on the CPU; see
    /// [`Batcher::with_device`].
    pub fn new(
        images: Arc<Vec<f32>>,
        labels: Arc<Vec<u8>>,
        image_shape: [usize; 3],
        batch_size: usize,
        shuffle: Option<u64>,
        drop_last: bool,
    ) -> Result<Batcher> {
        if batch_size == 0 {
            return Err(DataError::InvalidArgument(
                "batch size is 0, expected at least 1".into(),
            ));
        }
        let per: usize = image_shape.iter().product();
        let want = per.checked_mul(labels.len());
        if per == 0 || want != Some(images.len()) {
            return Err(DataError::InvalidArgument(format!(
                "{} image values for {} labels of shape {image_shape:?}: expected {}",
                images.len(),
                labels.len(),
                want.map_or("an overflowing count".to_string(), |w| w.to_string()),
            )));
        }
        Ok(Batcher {
            images,
            labels,
            image_shape,
            batch_size,
            shuffle,
            drop_last,
            device: Device::Cpu,
        })
    }

    /// A batcher over a split of `[1, rows, cols]` images, converted with
    /// [`Split::to_f32`] (ToTensor, then `normalize` when given).
    pub fn from_split(
        split: &Split,
        normalize: Option<Normalize>,
        batch_size: usize,
        shuffle: Option<u64>,
        drop_last: bool,
    ) -> Result<Batcher> {
        Batcher::new(
            Arc::new(split.to_f32(normalize)),
            Arc::new(split.labels.clone()),
            [1, split.rows, split.cols],
            batch_size,
            shuffle,
            drop_last,
        )
    }

    /// Builds the batches on `device`.
    pub fn with_device(mut self, device: Device) -> Batcher {
        self.device = device;
        self
    }

    /// The device batches are built on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of samples.
    pub fn num_samples(&self) -> usize {
        self.labels.len()
    }

    /// Number of batches per epoch.
    pub fn len(&self) -> usize {
        let n = self.num_samples();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// True when an epoch has no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The shape `[c, h, w]` of one image.
    pub fn image_shape(&self) -> [usize; 3] {
        self.image_shape
    }

    /// The sample order of epoch `epoch`: `0..n` when not shuffling, else a permutation
    /// drawn by a ChaCha8 generator seeded from `(seed, epoch)`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.num_samples()).collect();
        if let Some(seed) = self.shuffle {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&seed.to_le_bytes());
            key[8..16].copy_from_slice(&(epoch as u64).to_le_bytes());
            key[16..24].copy_from_slice(b"convnets");
            let mut rng = ChaCha8Rng::from_seed(key);
            order.shuffle(&mut rng);
        }
        order
    }

    /// The batches of epoch `epoch`, in order.
    pub fn epoch(&self, epoch: usize) -> Epoch<'_> {
        Epoch {
            batcher: self,
            order: self.order(epoch),
            next: 0,
        }
    }

    /// Builds the batch of the samples `indices`.
    pub fn batch(&self, indices: &[usize]) -> Result<Batch> {
        let per: usize = self.image_shape.iter().product();
        let n = self.num_samples();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(DataError::InvalidArgument(format!(
                "sample index {bad} out of range: expected < {n}"
            )));
        }
        let contiguous = indices.windows(2).all(|w| w[1] == w[0] + 1);
        let images: Vec<f32> = match (contiguous, indices.first()) {
            (true, Some(&first)) => {
                self.images[first * per..(first + indices.len()) * per].to_vec()
            }
            _ => {
                let mut buf = Vec::with_capacity(indices.len() * per);
                for &i in indices {
                    buf.extend_from_slice(&self.images[i * per..(i + 1) * per]);
                }
                buf
            }
        };
        let labels: Vec<u32> = indices.iter().map(|&i| u32::from(self.labels[i])).collect();
        let [c, h, w] = self.image_shape;
        let b = indices.len();
        Ok(Batch {
            images: Tensor::from_vec(images, (b, c, h, w), &self.device)?,
            labels: Tensor::from_vec(labels, b, &self.device)?,
        })
    }
}

/// The batches of one epoch; see [`Batcher::epoch`].
#[derive(Debug)]
pub struct Epoch<'a> {
    batcher: &'a Batcher,
    order: Vec<usize>,
    next: usize,
}

impl Epoch<'_> {
    /// The sample order of this epoch.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for Epoch<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let bs = self.batcher.batch_size;
        let start = self.next;
        let remaining = self.order.len().saturating_sub(start);
        if remaining == 0 || (self.batcher.drop_last && remaining < bs) {
            return None;
        }
        let end = start + remaining.min(bs);
        self.next = end;
        Some(self.batcher.batch(&self.order[start..end]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let bs = self.batcher.batch_size;
        let remaining = self.order.len().saturating_sub(self.next);
        let n = if self.batcher.drop_last {
            remaining / bs
        } else {
            remaining.div_ceil(bs)
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Epoch<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn batcher(n: usize, bs: usize, shuffle: Option<u64>, drop_last: bool) -> Batcher {
        let images: Vec<f32> = (0..n * 4).map(|v| v as f32).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        Batcher::new(
            Arc::new(images),
            Arc::new(labels),
            [1, 2, 2],
            bs,
            shuffle,
            drop_last,
        )
        .unwrap()
    }

    #[test]
    fn lengths() {
        assert_eq!(batcher(10, 3, None, false).len(), 4);
        assert_eq!(batcher(10, 3, None, true).len(), 3);
        assert_eq!(batcher(9, 3, None, false).len(), 3);
        assert_eq!(batcher(2, 3, None, true).len(), 0);
        assert!(batcher(2, 3, None, true).is_empty());
        let b = batcher(10, 3, Some(1), false);
        assert_eq!(b.epoch(0).len(), 4);
        assert_eq!(b.epoch(0).count(), 4);
        assert_eq!(batcher(10, 3, None, true).epoch(0).count(), 3);
    }

    #[test]
    fn rejects_bad_arguments() {
        let e = Batcher::new(
            Arc::new(vec![0.0; 7]),
            Arc::new(vec![0, 1]),
            [1, 2, 2],
            1,
            None,
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("7 image values for 2 labels"), "{e}");
        assert!(Batcher::new(
            Arc::new(vec![0.0; 8]),
            Arc::new(vec![0, 1]),
            [1, 2, 2],
            0,
            None,
            false
        )
        .is_err());
        assert!(batcher(3, 2, None, false).batch(&[3]).is_err());
    }
}
