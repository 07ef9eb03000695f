//! Hostile and mistaken weight files loaded into a zoo model with
//! `convnets_train::load_weights` (what `convnets eval` and `predict` use): each case is a
//! typed error whose message names the file and says what was expected and what was found —
//! never a panic, never an allocation the file's size does not justify. Half-precision and
//! float64 files are converted on load; an integer tensor for a float parameter is refused.

use anyhow::{ensure, Result};
use candle_core::{DType, Device, Tensor};
use convnets_layers::ParamStore;
use convnets_train::{load_weights, TrainError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A model `name` in a fresh store (seed 0).
fn model(name: &str) -> Result<ParamStore> {
    let store = ParamStore::new(0, &Device::Cpu);
    convnets_zoo::build(name, store.vb())?;
    Ok(store)
}

/// The weights of model `name` (seed `seed`) written to `dir/file`.
fn weights(dir: &Path, file: &str, name: &str, seed: u64) -> Result<PathBuf> {
    let store = ParamStore::new(seed, &Device::Cpu);
    convnets_zoo::build(name, store.vb())?;
    let path = dir.join(file);
    store.save(&path)?;
    Ok(path)
}

/// One tensor entry of a hand-made header: name, dtype string, shape, data offsets.
struct Entry<'a>(&'a str, &'a str, &'a [usize], [usize; 2]);

/// A safetensors file written byte by byte: the 8-byte little-endian header length, the JSON
/// header listing `entries` (in that order, whatever their offsets say), then `data`.
fn raw(dir: &Path, file: &str, entries: &[Entry], data: &[u8]) -> Result<PathBuf> {
    let mut header = serde_json::Map::new();
    for Entry(name, dtype, shape, offsets) in entries {
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": offsets}),
        );
    }
    let json = serde_json::to_vec(&header)?;
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json);
    bytes.extend(data);
    let path = dir.join(file);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// Loads `path` into a fresh `model`, expects an error whose message names the file and holds
/// every one of `needles`; returns the message.
fn refused(model_name: &str, path: &Path, needles: &[&str]) -> Result<String> {
    let store = model(model_name)?;
    let before: Vec<Vec<f32>> = store
        .vars()
        .iter()
        .map(|v| v.flatten_all()?.to_vec1::<f32>())
        .collect::<candle_core::Result<_>>()?;
    let err = match load_weights(&store, path) {
        Ok(()) => anyhow::bail!("{}: loaded into {model_name}", path.display()),
        Err(e) => e,
    };
    let msg = err.to_string();
    ensure!(
        matches!(err, TrainError::Store(_) | TrainError::Checkpoint(_)),
        "{}: not a weights error: {err:?}",
        path.display()
    );
    ensure!(
        msg.contains(&path.display().to_string()),
        "the message does not name the file: {msg}"
    );
    for n in needles {
        ensure!(msg.contains(n), "the message lacks `{n}`: {msg}");
    }
    // Nothing was half-loaded.
    for (v, b) in store.vars().iter().zip(&before) {
        ensure!(
            &v.flatten_all()?.to_vec1::<f32>()? == b,
            "{msg}: store changed"
        );
    }
    Ok(msg)
}

#[test]
fn truncated_files_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let good = weights(dir.path(), "good.safetensors", "mnist-net", 1)?;
    let bytes = std::fs::read(&good)?;
    let n = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    // Cut in the data, in the header, in the length prefix, and empty.
    let data = bytes.len() - 8 - n;
    let last = format!(
        "the file holds {} bytes after its header (truncated?)",
        data - 1
    );
    let half = format!("says {n} bytes, but only {} bytes follow", n / 2);
    for (cut, needle) in [
        (bytes.len() - 1, last.as_str()),
        (
            8 + n + 100,
            "the file holds 100 bytes after its header (truncated?)",
        ),
        (8 + n / 2, half.as_str()),
        (5, "5 bytes, too short for the 8-byte header length"),
        (0, "0 bytes, too short"),
    ] {
        let path = dir.path().join(format!("cut-{cut}.safetensors"));
        std::fs::write(&path, &bytes[..cut])?;
        let msg = refused("mnist-net", &path, &[needle])?;
        eprintln!("cut at {cut} of {}: {msg}", bytes.len());
    }
    Ok(())
}

#[test]
fn header_length_beyond_the_file_is_refused_without_allocating_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let good = weights(dir.path(), "good.safetensors", "mnist-net", 1)?;
    let bytes = std::fs::read(&good)?;
    for n in [bytes.len() as u64, 1 << 40, u64::MAX] {
        let mut b = bytes.clone();
        b[..8].copy_from_slice(&n.to_le_bytes());
        let path = dir.path().join(format!("len-{n}.safetensors"));
        std::fs::write(&path, &b)?;
        let msg = refused(
            "mnist-net",
            &path,
            &[&format!(
                "the header length (first 8 bytes) says {n} bytes, but only"
            )],
        )?;
        eprintln!("header length {n}: {msg}");
    }
    Ok(())
}

#[test]
fn overlapping_or_outside_offsets_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // A tiny linear model's worth of tensors: mnist-net's fc is Linear(320, 10), but the
    // format errors come before any name is compared, so two small tensors do.
    let data = vec![0u8; 16];
    let cases: Vec<(&str, Vec<Entry>, &[u8], &str)> = vec![
        // Both tensors on the same 8 bytes.
        (
            "overlap",
            vec![
                Entry("a", "F32", &[2], [0, 8]),
                Entry("b", "F32", &[2], [0, 8]),
            ],
            &data,
            "`a` (bytes [0, 8]) and `b` (bytes [0, 8]) overlap",
        ),
        // Half overlapping.
        (
            "half-overlap",
            vec![
                Entry("a", "F32", &[2], [0, 8]),
                Entry("b", "F32", &[2], [4, 12]),
            ],
            &data,
            "`a` (bytes [0, 8]) and `b` (bytes [4, 12]) overlap",
        ),
        // Past the end of the data.
        (
            "past-end",
            vec![Entry("a", "F32", &[8], [0, 32])],
            &data,
            "data offsets [0, 32], past the end of the data: the file holds 16 bytes",
        ),
        // Far past the end, with a shape to match (a would-be 4 GiB tensor).
        (
            "huge",
            vec![Entry("a", "F32", &[1 << 30], [0, 1 << 32])],
            &data,
            "data offsets [0, 4294967296], past the end of the data",
        ),
        // A shape whose element count overflows.
        (
            "overflow",
            vec![Entry("a", "F32", &[1 << 40, 1 << 40], [0, 16])],
            &data,
            "overflow computing buffer size",
        ),
        // Offsets backwards.
        (
            "backwards",
            vec![Entry("a", "F32", &[2], [8, 0])],
            &data,
            "offsets [8, 0]: the end is before the start",
        ),
        // A gap: data the header does not account for.
        (
            "gap",
            vec![Entry("a", "F32", &[2], [8, 16])],
            &data,
            "starts at data byte 8, expected 0",
        ),
    ];
    for (name, entries, data, needle) in cases {
        let path = raw(dir.path(), &format!("{name}.safetensors"), &entries, data)?;
        let msg = refused(
            "mnist-net",
            &path,
            &["not a valid safetensors file", needle],
        )?;
        eprintln!("{name}: {msg}");
    }
    Ok(())
}

#[test]
fn the_wrong_architecture_lists_what_differs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // LeNet-5 into MnistNet: different names and shapes everywhere.
    let lenet = weights(dir.path(), "lenet5.safetensors", "lenet5", 1)?;
    let msg = refused(
        "mnist-net",
        &lenet,
        &[
            // MnistNet's parameters the file lacks, with the shapes the model expects …
            "2 missing, 6 unexpected, 4 with another shape",
            "fc.weight [10, 320]",
            // … LeNet-5's tensors the model does not have …
            "unexpected",
            "fc3.weight [10, 80]",
            // … and the common names with other shapes: expected vs found.
            "conv1.weight: expected [10, 1, 5, 5], found [6, 1, 5, 5]",
            "conv2.weight: expected [20, 10, 5, 5], found [16, 6, 5, 5]",
        ],
    )?;
    eprintln!("{msg}");
    // LeNet-5 with batch norm into plain LeNet-5: only the batch-norm tensors are extra.
    let bn = weights(dir.path(), "lenet5-bn.safetensors", "lenet5-bn", 1)?;
    let msg = refused("lenet5", &bn, &["unexpected", "num_batches_tracked"])?;
    ensure!(!msg.contains("missing"), "{msg}");
    // The other way round: only missing ones.
    let plain = weights(dir.path(), "plain.safetensors", "lenet5", 1)?;
    let msg = refused("lenet5-bn", &plain, &["missing", "running_var [6]"])?;
    ensure!(!msg.contains("unexpected"), "{msg}");
    // A much larger model: the message stays short (counts, then the first names).
    let big = weights(dir.path(), "inception.safetensors", "inception-net", 1)?;
    let msg = refused("residual-net", &big, &["missing", "unexpected", " more"])?;
    ensure!(msg.len() < 2500, "{} bytes: {msg}", msg.len());
    Ok(())
}

/// Writes MnistNet's seed-1 weights as `dtype`, loads them into a fresh model and returns the
/// largest difference from the float32 originals.
fn load_as(dir: &Path, dtype: DType) -> Result<f32> {
    let src = ParamStore::new(1, &Device::Cpu);
    convnets_zoo::build("mnist-net", src.vb())?;
    let map: HashMap<String, Tensor> = src
        .tensors()
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_dtype(dtype)?)))
        .collect::<candle_core::Result<_>>()?;
    let path = dir.join(format!("{dtype:?}.safetensors"));
    candle_core::safetensors::save(&map, &path)?;
    let dst = model("mnist-net")?;
    load_weights(&dst, &path)?;
    let mut worst = 0f32;
    for (name, var) in dst.named_vars() {
        ensure!(var.dtype() == DType::F32, "{name}: {:?}", var.dtype());
        let a = var.flatten_all()?.to_vec1::<f32>()?;
        let b = src
            .get(&name)
            .expect("same model")
            .flatten_all()?
            .to_vec1::<f32>()?;
        for (x, y) in a.iter().zip(&b) {
            worst = worst.max((x - y).abs());
        }
    }
    Ok(worst)
}

#[test]
fn other_float_types_are_converted_integers_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // float64 holds every float32 exactly; f16 / bf16 round to 11 / 8 significant bits
    // (MnistNet's parameters are below 1 in magnitude: half an ulp at 1 is 2^-11 / 2^-8).
    for (dtype, tol) in [
        (DType::F64, 0.0),
        (DType::F16, 2f32.powi(-11)),
        (DType::BF16, 2f32.powi(-8)),
    ] {
        let worst = load_as(dir.path(), dtype)?;
        ensure!(worst <= tol, "{dtype:?}: off by {worst}, tolerance {tol}");
        eprintln!("{dtype:?} converted on load, within {worst:e} of the float32 values");
    }
    // An integer tensor where the model has floats.
    let src = model("mnist-net")?;
    let mut map = src.tensors();
    let w = map["fc.bias"].to_dtype(DType::I64)?;
    map.insert("fc.bias".into(), w);
    let path = dir.path().join("int.safetensors");
    candle_core::safetensors::save(&map, &path)?;
    refused(
        "mnist-net",
        &path,
        &["fc.bias", "I64", "floating point", "F32"],
    )?;
    // u8 too.
    let mut map = src.tensors();
    let w = map["conv1.weight"].to_dtype(DType::U8)?;
    map.insert("conv1.weight".into(), w);
    candle_core::safetensors::save(&map, &path)?;
    refused("mnist-net", &path, &["conv1.weight", "U8"])?;
    // PyTorch's batch-norm counter is int64 and loads.
    let bn = model("lenet5-bn")?;
    let mut map = bn.tensors();
    let names: Vec<String> = map
        .keys()
        .filter(|n| n.ends_with("num_batches_tracked"))
        .cloned()
        .collect();
    ensure!(!names.is_empty());
    for n in names {
        let t = (map[&n].to_dtype(DType::F64)? + 7.0)?.to_dtype(DType::I64)?;
        map.insert(n, t);
    }
    let path = dir.path().join("bn.safetensors");
    candle_core::safetensors::save(&map, &path)?;
    load_weights(&model("lenet5-bn")?, &path)?;
    Ok(())
}
