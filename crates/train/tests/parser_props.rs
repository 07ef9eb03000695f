//! Property tests of the trainer's readers of outside bytes: checkpoints (safetensors with our
//! JSON metadata), the header reader `read_metadata`, and run configs (TOML). Arbitrary bytes,
//! valid files with bytes flipped or cut, and valid files whose digits are changed (the JSON
//! and TOML stay well-formed but every count, offset, shape and position may be wrong) give
//! `Ok` or a typed error, never a panic — and a checkpoint that loads either resumes a fresh
//! trainer or is refused with an error.
//!
//! 256 cases per property by default; set `PROPTEST_CASES` for more.

use anyhow::Result;
use candle_core::Device;
use convnets_data::Batcher;
use convnets_layers::{linear, Flatten, ParamStore, Sequential};
use convnets_train::checkpoint::{is_checkpoint, read_metadata};
use convnets_train::optim::{AdamConfig, OptimizerConfig};
use convnets_train::schedule::{LrScheduler, ScheduleConfig, ScheduleKind};
use convnets_train::{Checkpoint, Params, TrainConfig, Trainer};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 256;
    }
    c
}

fn data() -> Batcher {
    let n = 20;
    let images: Vec<f32> = (0..n * 16).map(|i| (i % 7) as f32 / 7.0).collect();
    let labels: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
    Batcher::new(
        Arc::new(images),
        Arc::new(labels),
        [1, 4, 4],
        5,
        Some(1),
        false,
    )
    .unwrap()
}

fn model(store: &ParamStore) -> Sequential {
    Sequential::new()
        .add("flatten", Flatten)
        .add("fc", linear(16, 3, store.vb().pp("fc")).unwrap())
}

fn schedule() -> ScheduleConfig {
    ScheduleConfig {
        kind: ScheduleKind::Cosine {
            t_max: None,
            eta_min: 0.0,
        },
        ..Default::default()
    }
}

/// A fresh trainer for the model of `store` (Adam, cosine schedule, 2 epochs).
fn trainer<'a>(net: &'a Sequential, store: &ParamStore) -> Result<Trainer<'a>> {
    let params = Params::from(store);
    let opt = OptimizerConfig::Adam(AdamConfig::default());
    let sched = LrScheduler::new(&schedule(), opt.lr(), 2, data().len())?;
    Ok(
        Trainer::new(net, params.clone(), opt.build(params.trainable())?)
            .epochs(2)
            .scheduler(sched),
    )
}

/// The bytes of a real checkpoint after one epoch of a small model with Adam and a schedule.
fn checkpoint_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let store = ParamStore::new(0, &Device::Cpu);
        let net = model(&store);
        let mut t = trainer(&net, &store).unwrap().epochs(1);
        t.fit(&data()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.safetensors");
        t.checkpoint().unwrap().save(&path).unwrap();
        std::fs::read(&path).unwrap()
    })
}

/// Loads `bytes` as a checkpoint file in every way the trainer reads one; panics are failures.
fn exercise_checkpoint(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let _ = read_metadata(&path);
    let _ = is_checkpoint(&path);
    if let Ok(ckpt) = Checkpoint::load(&path) {
        let store = ParamStore::new(0, &Device::Cpu);
        let net = model(&store);
        let mut t = trainer(&net, &store).unwrap();
        // Ok (a consistent checkpoint) or a typed error, never a panic.
        let _ = t.resume(&ckpt);
    }
}

/// `text` with every ASCII digit at the positions in `at` replaced by `digit`.
fn redigit(text: &[u8], at: &[(usize, u8)]) -> Vec<u8> {
    let digits: Vec<usize> = (0..text.len())
        .filter(|&i| text[i].is_ascii_digit())
        .collect();
    let mut out = text.to_vec();
    if digits.is_empty() {
        return out;
    }
    for &(i, d) in at {
        out[digits[i % digits.len()]] = b'0' + d % 10;
    }
    out
}

fn valid_toml() -> String {
    let cfg = TrainConfig {
        schedule: Some(schedule()),
        val_split: Some(100),
        ..convnets_train::recipe::mnist_net_mnist()
    };
    cfg.to_toml().unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_are_not_checkpoints(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise_checkpoint(&bytes);
    }

    #[test]
    fn a_header_length_prefix_with_arbitrary_json(n in 0u64..4096, body in "\\PC{0,200}") {
        let mut bytes = n.to_le_bytes().to_vec();
        bytes.extend_from_slice(body.as_bytes());
        exercise_checkpoint(&bytes);
    }

    #[test]
    fn flipped_or_cut_checkpoints(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<usize>()),
    ) {
        let mut bytes = checkpoint_bytes().to_vec();
        let len = bytes.len();
        for (i, b) in flips {
            bytes[i % len] ^= b.max(1);
        }
        if let Some(c) = cut {
            bytes.truncate(c % len);
        }
        exercise_checkpoint(&bytes);
    }

    #[test]
    fn checkpoints_with_changed_numbers(at in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        // Digits of the header only (its JSON stays well-formed): shapes, offsets, epochs,
        // batch positions, learning rates, the RNG state, the optimizer's step counts.
        let bytes = checkpoint_bytes();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let mut out = bytes[..8].to_vec();
        out.extend(redigit(&bytes[8..8 + n], &at));
        out.extend_from_slice(&bytes[8 + n..]);
        exercise_checkpoint(&out);
    }

    #[test]
    fn arbitrary_text_is_not_a_config(text in "\\PC{0,300}") {
        if let Ok(cfg) = toml::from_str::<TrainConfig>(&text) {
            let _ = cfg.validate();
        }
    }

    #[test]
    fn configs_with_changed_numbers(at in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let text = redigit(valid_toml().as_bytes(), &at);
        let text = String::from_utf8(text).unwrap();
        if let Ok(cfg) = toml::from_str::<TrainConfig>(&text) {
            let _ = cfg.validate();
        }
    }
}

/// The unmutated inputs are valid: the properties start from real files.
#[test]
fn the_seeds_are_valid() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("c.safetensors");
    std::fs::write(&path, checkpoint_bytes())?;
    assert!(is_checkpoint(&path));
    let ckpt = Checkpoint::load(&path)?;
    let store = ParamStore::new(0, &Device::Cpu);
    let net = model(&store);
    trainer(&net, &store)?.resume(&ckpt)?;
    let cfg: TrainConfig = toml::from_str(&valid_toml())?;
    cfg.validate()?;
    Ok(())
}
