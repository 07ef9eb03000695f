//! Cutting a split: a seeded held-out validation set, and keeping only the first images.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Split;
use crate::error::{DataError, Result};

impl Split {
    /// Splits off `n_val` images, drawn at random from `seed`, as a held-out validation set;
    /// returns `(train, val)` with `len - n_val` and `n_val` images.
    ///
    /// This is how torch's `random_split(ds, [len - n_val, n_val], generator)` is used to
    /// carve a validation set out of a training set: every image lands in exactly one part,
    /// with its label. The draw (a ChaCha8 generator seeded with `seed`) depends only on
    /// `(seed, len, n_val)`, so a seed always gives the same split. Each part keeps the
    /// original order of its images.
    ///
    /// `n_val` must satisfy `0 < n_val < len`; the fields must agree
    /// (`images.len() == len * rows * cols`, `labels.len() == len`).
    pub fn split_off_validation(&self, n_val: usize, seed: u64) -> Result<(Split, Split)> {
        self.check_consistent()?;
        if n_val == 0 || n_val >= self.len {
            return Err(DataError::InvalidArgument(format!(
                "validation size {n_val} is out of range for a split of {} images: expected 0 < n_val < {}",
                self.len, self.len
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut is_val = vec![false; self.len];
        for i in rand::seq::index::sample(&mut rng, self.len, n_val) {
            is_val[i] = true;
        }
        let part = |len: usize| Split {
            images: Vec::with_capacity(len * self.image_len()),
            labels: Vec::with_capacity(len),
            len,
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
        };
        let (mut train, mut val) = (part(self.len - n_val), part(n_val));
        for (i, (&to_val, &label)) in is_val.iter().zip(&self.labels).enumerate() {
            let image = self.image(i).ok_or_else(|| {
                DataError::InvalidArgument(format!("image {i} of {} is missing", self.len))
            })?;
            let dst = if to_val { &mut val } else { &mut train };
            dst.images.extend_from_slice(image);
            dst.labels.push(label);
        }
        Ok((train, val))
    }

    /// Keeps only the first `n` images and labels (all of them when `n >= len`), e.g. for a
    /// quick run on part of the data.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len {
            return;
        }
        self.len = n;
        self.images.truncate(n.saturating_mul(self.image_len()));
        self.labels.truncate(n);
    }

    /// An error unless the images and labels hold `len` items of `channels x rows x cols`.
    fn check_consistent(&self) -> Result<()> {
        let want = self
            .len
            .checked_mul(self.channels)
            .and_then(|x| x.checked_mul(self.rows))
            .and_then(|x| x.checked_mul(self.cols));
        if want != Some(self.images.len()) || self.labels.len() != self.len {
            return Err(DataError::InvalidArgument(format!(
                "inconsistent split: {} pixels and {} labels for len {} of {}x{}x{} images: expected {} pixels and {} labels",
                self.images.len(),
                self.labels.len(),
                self.len,
                self.channels,
                self.rows,
                self.cols,
                want.map_or("an overflowing count of".to_string(), |w| w.to_string()),
                self.len
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` images of 1x2 pixels: image `i` is `[i, 255 - i]` with label `i` (distinct ids).
    fn ids(len: usize) -> Split {
        Split {
            images: (0..len).flat_map(|i| [i as u8, 255 - i as u8]).collect(),
            labels: (0..len).map(|i| i as u32).collect(),
            len,
            channels: 1,
            rows: 1,
            cols: 2,
        }
    }

    /// The part's ids, checking that each image still sits with its label.
    fn members(s: &Split) -> Vec<u32> {
        assert_eq!(s.labels.len(), s.len);
        assert_eq!(s.images.len(), 2 * s.len);
        for (i, &l) in s.labels.iter().enumerate() {
            assert_eq!(s.image(i), Some(&[l as u8, 255 - l as u8][..]), "image {i}");
        }
        s.labels.clone()
    }

    #[test]
    fn sizes_no_overlap_union_and_pairing() {
        let all = ids(10);
        let (train, val) = all.split_off_validation(3, 7).unwrap();
        assert_eq!((train.len, val.len), (7, 3));
        assert_eq!((train.rows, train.cols, val.rows, val.cols), (1, 2, 1, 2));
        let (t, v) = (members(&train), members(&val));
        // Each part keeps the original order.
        assert!(t.windows(2).all(|w| w[0] < w[1]), "{t:?}");
        assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
        assert!(t.iter().all(|x| !v.contains(x)), "overlap: {t:?} {v:?}");
        let mut union = [t, v].concat();
        union.sort();
        assert_eq!(union, all.labels);
        // Extremes: one image held out, all but one held out.
        let (train, val) = all.split_off_validation(1, 0).unwrap();
        assert_eq!((members(&train).len(), members(&val).len()), (9, 1));
        let (train, val) = all.split_off_validation(9, 0).unwrap();
        assert_eq!((members(&train).len(), members(&val).len()), (1, 9));
    }

    #[test]
    fn seeded() {
        let all = ids(200);
        let a = all.split_off_validation(20, 42).unwrap();
        let b = all.split_off_validation(20, 42).unwrap();
        assert_eq!(a, b, "same seed, same split");
        let c = all.split_off_validation(20, 43).unwrap();
        assert_ne!(a.1.labels, c.1.labels, "different seed, different split");
        // Pinned: a change here means old runs' validation sets are no longer reproduced.
        let (_, val) = ids(10).split_off_validation(3, 0).unwrap();
        assert_eq!(val.labels, PINNED_SEED0_10_3);
    }

    const PINNED_SEED0_10_3: [u32; 3] = [5, 6, 7];

    #[test]
    fn bad_sizes_name_the_numbers() {
        let all = ids(5);
        for n in [0, 5, 6] {
            let e = all.split_off_validation(n, 1).unwrap_err();
            let s = e.to_string();
            assert!(matches!(e, DataError::InvalidArgument(_)), "{s}");
            assert!(
                s.contains(&format!("validation size {n}")) && s.contains("5 images"),
                "{s}"
            );
            assert!(s.contains("0 < n_val < 5"), "{s}");
        }
        let mut broken = ids(5);
        broken.labels.pop();
        let e = broken.split_off_validation(1, 1).unwrap_err().to_string();
        assert!(e.contains("4 labels") && e.contains("len 5"), "{e}");
        let mut broken = ids(5);
        broken.images.push(0);
        assert!(broken.split_off_validation(1, 1).is_err());
    }

    #[test]
    fn truncate_keeps_the_first_images() {
        let mut s = ids(6);
        s.truncate(10);
        assert_eq!(s, ids(6));
        s.truncate(4);
        assert_eq!(s, ids(4));
        assert_eq!(members(&s), [0, 1, 2, 3]);
        s.truncate(0);
        assert_eq!((s.len, s.images.len(), s.labels.len()), (0, 0, 0));
    }
}
