//! Seeded, reproducible mini-batching into candle tensors.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Split;
use crate::error::{DataError, Result};
use crate::transform::{Augment, Normalize};

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
    labels: Arc<Vec<u32>>,
    image_shape: [usize; 3],
    batch_size: usize,
    shuffle: Option<u64>,
    drop_last: bool,
    device: Device,
    augment: Option<(Augment, u64)>,
    pad_value: Vec<f32>,
    workers: usize,
}

impl Batcher {
    /// A batcher over `labels.len()` samples whose images are `image_shape = [c, h, w]`,
    /// stored contiguously in `images`. `shuffle: Some(seed)` shuffles each epoch;
    /// `drop_last` drops a last, partial batch. Batches are built on the CPU; see
    /// [`Batcher::with_device`].
    pub fn new(
        images: Arc<Vec<f32>>,
        labels: Arc<Vec<u32>>,
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
            augment: None,
            pad_value: vec![0.0],
            workers: 0,
        })
    }

    /// A batcher over a split of `[channels, rows, cols]` images, converted with
    /// [`Split::to_f32`] (ToTensor, then `normalize` when given; an error when its channel
    /// count does not fit the images').
    pub fn from_split(
        split: &Split,
        normalize: Option<Normalize>,
        batch_size: usize,
        shuffle: Option<u64>,
        drop_last: bool,
    ) -> Result<Batcher> {
        if let Some(n) = normalize {
            n.check_channels(split.channels)
                .map_err(DataError::InvalidArgument)?;
        }
        let black: Vec<f32> = (0..split.channels)
            .map(|c| normalize.map_or(0.0, |n| n.apply(c, 0.0)))
            .collect();
        Ok(Batcher::new(
            Arc::new(split.to_f32(normalize)),
            Arc::new(split.labels.clone()),
            [split.channels, split.rows, split.cols],
            batch_size,
            shuffle,
            drop_last,
        )?
        .with_pad_value(&black))
    }

    /// Augments every sample of the batches [`Batcher::epoch`] builds (not those of
    /// [`Batcher::batch`]): sample `i` of epoch `e` is transformed with draws from a ChaCha8
    /// generator seeded from `(seed, e, i)`, so the result does not depend on the batch size,
    /// the order or the thread that builds the batch. An identity `augment` turns it off.
    pub fn with_augment(mut self, augment: Augment, seed: u64) -> Batcher {
        self.augment = (!augment.is_identity()).then_some((augment, seed));
        self
    }

    /// The value of a black pixel per channel (one value: every channel), which a random
    /// crop's padding takes: 0 for `ToTensor` images, `-mean[c] / std[c]` after `Normalize`
    /// ([`Batcher::from_split`] sets it).
    pub fn with_pad_value(mut self, value: &[f32]) -> Batcher {
        self.pad_value = value.to_vec();
        self
    }

    /// Builds batches on `n` worker threads ahead of the training loop (0: on the caller's
    /// thread, as [`Batcher::epoch`] does); see [`Batcher::prefetch`].
    pub fn with_workers(mut self, n: usize) -> Batcher {
        self.workers = n;
        self
    }

    /// The number of worker threads set by [`Batcher::with_workers`].
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The batches of epoch `epoch` from batch `skip` on, built by [`Batcher::workers`] threads
    /// (at least one) while the caller consumes them, and handed out in order. Each batch is
    /// exactly what [`Batcher::epoch`] builds (augmentation draws depend on the sample, not on
    /// the thread), so a run gives the same result with any number of workers. At most
    /// `2 * workers` finished batches wait in memory.
    pub fn prefetch(&self, epoch: usize, skip: usize) -> Prefetch {
        let order = self.order(epoch);
        let bs = self.batch_size;
        let chunks: Vec<Vec<usize>> = order
            .chunks(bs)
            .filter(|c| !self.drop_last || c.len() == bs)
            .skip(skip)
            .map(<[usize]>::to_vec)
            .collect();
        let total = chunks.len();
        let workers = self.workers.max(1).min(total.max(1));
        let (tx, rx) = std::sync::mpsc::sync_channel(2 * workers);
        let chunks = Arc::new(chunks);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..workers {
            let (me, chunks, next, tx) = (self.clone(), chunks.clone(), next.clone(), tx.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else { break };
                if tx.send((i, me.batch_in_epoch(epoch, chunk))).is_err() {
                    break; // the consumer stopped early
                }
            });
        }
        Prefetch {
            rx,
            ready: std::collections::BTreeMap::new(),
            next: 0,
            total,
        }
    }

    /// The augmentation and its seed, if any.
    pub fn augment(&self) -> Option<(Augment, u64)> {
        self.augment
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
            epoch,
        }
    }

    /// Builds the batch of the samples `indices` as epoch `epoch` sees them: augmented (see
    /// [`Batcher::with_augment`]) when an augmentation is set, else as [`Batcher::batch`].
    pub fn batch_in_epoch(&self, epoch: usize, indices: &[usize]) -> Result<Batch> {
        let Some((augment, seed)) = self.augment else {
            return self.batch(indices);
        };
        let per: usize = self.image_shape.iter().product();
        self.check_indices(indices)?;
        let mut images = Vec::with_capacity(indices.len() * per);
        let mut one = Vec::with_capacity(per);
        for &i in indices {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&seed.to_le_bytes());
            key[8..16].copy_from_slice(&(epoch as u64).to_le_bytes());
            key[16..24].copy_from_slice(&(i as u64).to_le_bytes());
            key[24..32].copy_from_slice(b"augment!");
            let mut rng = ChaCha8Rng::from_seed(key);
            augment.apply(
                &self.images[i * per..(i + 1) * per],
                self.image_shape,
                &self.pad_value,
                &mut rng,
                &mut one,
            );
            images.extend_from_slice(&one);
        }
        self.assemble(images, indices)
    }

    /// An error for an index past the last sample.
    fn check_indices(&self, indices: &[usize]) -> Result<()> {
        let n = self.num_samples();
        match indices.iter().find(|&&i| i >= n) {
            Some(&bad) => Err(DataError::InvalidArgument(format!(
                "sample index {bad} out of range: expected < {n}"
            ))),
            None => Ok(()),
        }
    }

    /// The batch of `images` (the samples `indices`, in order) with their labels.
    fn assemble(&self, images: Vec<f32>, indices: &[usize]) -> Result<Batch> {
        let labels: Vec<u32> = indices.iter().map(|&i| self.labels[i]).collect();
        let [c, h, w] = self.image_shape;
        let b = indices.len();
        Ok(Batch {
            images: Tensor::from_vec(images, (b, c, h, w), &self.device)?,
            labels: Tensor::from_vec(labels, b, &self.device)?,
        })
    }

    /// Builds the batch of the samples `indices` (never augmented).
    pub fn batch(&self, indices: &[usize]) -> Result<Batch> {
        let per: usize = self.image_shape.iter().product();
        self.check_indices(indices)?;
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
        self.assemble(images, indices)
    }
}

/// The batches of one epoch built ahead on worker threads; see [`Batcher::prefetch`].
#[derive(Debug)]
pub struct Prefetch {
    rx: std::sync::mpsc::Receiver<(usize, Result<Batch>)>,
    ready: std::collections::BTreeMap<usize, Result<Batch>>,
    next: usize,
    total: usize,
}

impl Iterator for Prefetch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.next >= self.total {
            return None;
        }
        loop {
            if let Some(b) = self.ready.remove(&self.next) {
                self.next += 1;
                return Some(b);
            }
            match self.rx.recv() {
                Ok((i, b)) => {
                    self.ready.insert(i, b);
                }
                Err(_) => {
                    // Every worker is gone and batch `next` never came: a worker panicked.
                    let i = self.next;
                    self.next = self.total;
                    return Some(Err(DataError::InvalidArgument(format!(
                        "the worker building batch {i} stopped without a result"
                    ))));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.total - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Prefetch {}

/// The batches of one epoch; see [`Batcher::epoch`].
#[derive(Debug)]
pub struct Epoch<'a> {
    batcher: &'a Batcher,
    order: Vec<usize>,
    next: usize,
    epoch: usize,
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
        Some(
            self.batcher
                .batch_in_epoch(self.epoch, &self.order[start..end]),
        )
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
        let labels: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
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

    /// Augmented batches: the same per sample however the batches are cut, different from
    /// epoch to epoch, never applied by `batch` (evaluation), and crops padded with the
    /// normalised black.
    #[test]
    fn augmentation_is_per_sample_and_reproducible() {
        let n = 12;
        let images: Vec<f32> = (0..n * 16).map(|v| v as f32 + 1.0).collect();
        let labels: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
        let make = |bs: usize| {
            Batcher::new(
                Arc::new(images.clone()),
                Arc::new(labels.clone()),
                [1, 4, 4],
                bs,
                Some(7),
                false,
            )
            .unwrap()
            .with_pad_value(&[-0.5])
            .with_augment(
                Augment {
                    crop_padding: 2,
                    hflip: true,
                    resized_crop: None,
                },
                3,
            )
        };
        let per_sample = |b: &Batcher, epoch: usize| -> Vec<Vec<f32>> {
            let order = b.order(epoch);
            let mut rows = vec![Vec::new(); n];
            let mut k = 0;
            for batch in b.epoch(epoch) {
                let v = batch.unwrap().images.flatten_from(1).unwrap();
                for row in v.to_vec2::<f32>().unwrap() {
                    rows[order[k]] = row;
                    k += 1;
                }
            }
            rows
        };
        let a = per_sample(&make(5), 0);
        assert_eq!(a, per_sample(&make(3), 0), "independent of the batch size");
        assert_ne!(a, per_sample(&make(5), 1), "new draws each epoch");
        let plain: Vec<Vec<f32>> = (0..n)
            .map(|i| images[i * 16..(i + 1) * 16].to_vec())
            .collect();
        assert_ne!(a, plain, "augmented");
        assert!(a.iter().flatten().any(|&v| v == -0.5), "padding value used");
        // `batch` (what evaluation uses) is never augmented.
        let b = make(5)
            .batch(&[0, 1])
            .unwrap()
            .images
            .flatten_all()
            .unwrap();
        assert_eq!(b.to_vec1::<f32>().unwrap(), images[..32]);
        // From a split, the padding is the normalised black.
        let split = Split {
            images: vec![0; 16],
            labels: vec![0],
            len: 1,
            channels: 1,
            rows: 4,
            cols: 4,
        };
        let norm = Normalize::new(0.5, 0.25).unwrap();
        let b = Batcher::from_split(&split, Some(norm), 1, None, false).unwrap();
        assert_eq!(b.pad_value, [-2.0]);
        // Per channel: each channel's own black; a normalization for another channel count
        // is refused.
        let rgb = Split {
            images: vec![0; 48],
            channels: 3,
            ..split.clone()
        };
        let norm = Normalize::per_channel(&[0.5, 0.0, 0.2], &[0.25, 1.0, 0.1]).unwrap();
        let b = Batcher::from_split(&rgb, Some(norm), 1, None, false).unwrap();
        assert_eq!(b.image_shape(), [3, 4, 4]);
        assert!((b.pad_value[0] + 2.0).abs() < 1e-6 && b.pad_value[1] == 0.0);
        assert!((b.pad_value[2] + 2.0).abs() < 1e-5);
        let two = Normalize::per_channel(&[0.5, 0.5], &[1.0, 1.0]).unwrap();
        let e = Batcher::from_split(&rgb, Some(two), 1, None, false).unwrap_err();
        assert!(
            e.to_string().contains("2 channels but the images have 3"),
            "{e}"
        );
    }

    /// Prefetched batches equal the ones built in the loop, with any number of workers, from
    /// any starting batch, with and without `drop_last` and augmentation.
    #[test]
    fn prefetch_gives_the_same_batches() {
        let n = 23;
        let images: Vec<f32> = (0..n * 16).map(|v| v as f32).collect();
        let labels: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
        for drop_last in [false, true] {
            let b = Batcher::new(
                Arc::new(images.clone()),
                Arc::new(labels.clone()),
                [1, 4, 4],
                4,
                Some(9),
                drop_last,
            )
            .unwrap()
            .with_augment(
                Augment {
                    crop_padding: 1,
                    hflip: true,
                    resized_crop: None,
                },
                5,
            );
            let flat = |it: &mut dyn Iterator<Item = Result<Batch>>| -> Vec<(Vec<f32>, Vec<u32>)> {
                it.map(|r| {
                    let r = r.unwrap();
                    (
                        r.images.flatten_all().unwrap().to_vec1().unwrap(),
                        r.labels.to_vec1().unwrap(),
                    )
                })
                .collect()
            };
            for epoch in 0..2 {
                let want = flat(&mut b.epoch(epoch));
                assert_eq!(want.len(), b.len());
                for workers in [0, 1, 2, 5] {
                    let b = b.clone().with_workers(workers);
                    for skip in [0, 2] {
                        let got = flat(&mut b.prefetch(epoch, skip));
                        assert_eq!(got, want[skip..], "workers {workers}, skip {skip}");
                    }
                }
            }
            // Stopping early leaves no worker blocked forever (they exit on the closed channel).
            let mut it = b.clone().with_workers(2).prefetch(0, 0);
            assert!(it.next().is_some());
            drop(it);
        }
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
