//! Batching: seeded shuffles that repeat, every sample once per epoch, partial batches,
//! tensor shapes and values after ToTensor and Normalize.

use std::sync::Arc;

use anyhow::Result;
use candle_core::{DType, Device};
use convnets_data::{Batch, Batcher, Normalize, Split};

/// `n` images of shape [1, 2, 3] whose every pixel is the sample index.
fn indexed(n: usize, bs: usize, shuffle: Option<u64>, drop_last: bool) -> Result<Batcher> {
    let images: Vec<f32> = (0..n)
        .flat_map(|i| std::iter::repeat_n(i as f32, 6))
        .collect();
    let labels: Vec<u32> = (0..n).map(|i| (i % 10) as u32).collect();
    Ok(Batcher::new(
        Arc::new(images),
        Arc::new(labels),
        [1, 2, 3],
        bs,
        shuffle,
        drop_last,
    )?)
}

/// The sample indices of an epoch, read back from the batch tensors.
fn seen(b: &Batcher, epoch: usize) -> Result<Vec<Vec<usize>>> {
    let mut out = Vec::new();
    for batch in b.epoch(epoch) {
        let Batch { images, labels } = batch?;
        let px = images.flatten_from(1)?.to_vec2::<f32>()?;
        let labels = labels.to_vec1::<u32>()?;
        let mut idx = Vec::new();
        for (row, l) in px.iter().zip(&labels) {
            assert!(row.iter().all(|&v| v == row[0]), "one sample per image");
            let i = row[0] as usize;
            assert_eq!(*l as usize, i % 10, "label travels with its image");
            idx.push(i);
        }
        out.push(idx);
    }
    Ok(out)
}

#[test]
fn seeded_shuffle_repeats_and_differs() -> Result<()> {
    let a = seen(&indexed(100, 16, Some(7), false)?, 3)?;
    let b = seen(&indexed(100, 16, Some(7), false)?, 3)?;
    assert_eq!(a, b, "same seed, same epoch: same order");
    let c = seen(&indexed(100, 16, Some(8), false)?, 3)?;
    assert_ne!(a, c, "different seed: different order");
    let d = seen(&indexed(100, 16, Some(7), false)?, 4)?;
    assert_ne!(a, d, "different epoch: different order");
    let flat: Vec<usize> = a.concat();
    assert_ne!(flat, (0..100).collect::<Vec<_>>(), "shuffled");
    let plain = seen(&indexed(100, 16, None, false)?, 3)?.concat();
    assert_eq!(plain, (0..100).collect::<Vec<_>>(), "no seed: in order");
    // The order method agrees with the batches.
    assert_eq!(indexed(100, 16, Some(7), false)?.order(3), flat);
    Ok(())
}

#[test]
fn every_index_once_per_epoch_and_partial_batch_kept() -> Result<()> {
    let b = indexed(10, 4, Some(1), false)?;
    assert_eq!((b.len(), b.num_samples()), (3, 10));
    for epoch in 0..5 {
        let batches = seen(&b, epoch)?;
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let mut all = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
    let dropped = indexed(10, 4, Some(1), true)?;
    assert_eq!(dropped.len(), 2);
    let batches = seen(&dropped, 0)?;
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4]);
    // The dropped samples are the tail of the same permutation.
    assert_eq!(batches.concat(), dropped.order(0)[..8]);
    Ok(())
}

#[test]
fn shapes_dtypes_and_normalized_values() -> Result<()> {
    let images: Vec<u8> = (0..5 * 4).map(|i| (i * 13) as u8).collect();
    let split = Split {
        images: images.clone(),
        labels: vec![3, 1, 4, 1, 5],
        len: 5,
        channels: 1,
        rows: 2,
        cols: 2,
    };
    let norm = Normalize::new(0.1307, 0.3081).unwrap();
    let b = Batcher::from_split(&split, Some(norm), 2, None, false)?.with_device(Device::Cpu);
    assert_eq!(b.image_shape(), [1, 2, 2]);
    let batches: Vec<Batch> = b.epoch(0).collect::<Result<_, _>>()?;
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].images.dims(), [2, 1, 2, 2]);
    assert_eq!(batches[0].images.dtype(), DType::F32);
    assert_eq!(batches[0].labels.dims(), [2]);
    assert_eq!(batches[0].labels.dtype(), DType::U32);
    assert_eq!(batches[2].images.dims(), [1, 1, 2, 2]);
    let mut got = Vec::new();
    let mut labels = Vec::new();
    for batch in &batches {
        got.extend(batch.images.flatten_all()?.to_vec1::<f32>()?);
        labels.extend(batch.labels.to_vec1::<u32>()?);
    }
    assert_eq!(labels, [3, 1, 4, 1, 5]);
    for (g, &x) in got.iter().zip(&images) {
        let want = (x as f32 / 255.0 - 0.1307) / 0.3081;
        assert!((g - want).abs() < 1e-6, "{g} vs {want} for byte {x}");
    }
    // ToTensor alone.
    let plain = split.to_f32(None);
    assert_eq!(plain[1], 13.0 / 255.0);
    assert!(plain.iter().all(|v| (0.0..=1.0).contains(v)));
    Ok(())
}
