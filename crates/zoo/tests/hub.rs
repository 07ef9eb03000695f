//! Weights from the Hugging Face hub, against a fake hub on 127.0.0.1 (`fake_hub/`; no network
//! is reachable here): the download lands in hf-hub's cache and gives PyTorch's logits, the
//! offline cache serves it with the server gone, a miss says where it looked, and a broken
//! download leaves nothing in the cache.
//!
//! The served file is `tests/golden/hub/model.safetensors`, seed 004's MnistNet as PyTorch saved
//! it; `io.safetensors` beside it holds an input batch and PyTorch's logits (`gen.py` there).
//! These tests pass the endpoint and cache folder explicitly ([`fetch_with`]); the environment
//! (`HF_ENDPOINT`, `HF_HOME`, `HF_HUB_OFFLINE`) is tested alone in `hub_env.rs`.

mod fake_hub;

use anyhow::{ensure, Context, Result};
use candle_core::{Device, Tensor};
use convnets_layers::ParamStore;
use convnets_zoo::hub::{cached, fetch_with, HubConfig, HubError, HubWeights};
use fake_hub::{golden_dir, FakeHub, Fault, COMMIT, REPO};
use std::path::{Path, PathBuf};

fn fixture() -> Result<Vec<u8>> {
    let p = golden_dir().join("model.safetensors");
    std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
}

fn config(endpoint: &str, cache: &Path, offline: bool) -> HubConfig {
    HubConfig {
        endpoint: endpoint.to_string(),
        cache_dir: cache.to_path_buf(),
        offline,
        progress: false,
    }
}

fn spec(s: &str) -> Result<HubWeights> {
    Ok(s.parse()?)
}

/// The largest difference between our MnistNet's logits with the weights at `path` and
/// PyTorch's. PyTorch's logits are the float64 result for the float32 weights and input; our
/// float32 forward pass sums at most 320 products of values below 1 (conv2: 250, fc: 320) in
/// a different order, so it differs by a few float32 roundings of the ~0.3 logits (PyTorch's
/// own float32 pass is 1.4e-7 away): 1e-5 leaves a factor ~50 of room and still catches any
/// wrong or misplaced weight (those move logits by 1e-2 or more).
fn logits_error(path: &Path) -> Result<f32> {
    let store = ParamStore::new(0, &Device::Cpu);
    let net = convnets_zoo::build("mnist-net", store.vb())?;
    store.load(path, true)?;
    let io = candle_core::safetensors::load(golden_dir().join("io.safetensors"), &Device::Cpu)?;
    let logits = net.forward_t(&io["input"], false)?;
    ensure!(logits.dims() == io["logits"].dims(), "{:?}", logits.dims());
    let d: Tensor = (&logits - &io["logits"])?.abs()?.flatten_all()?.max(0)?;
    Ok(d.to_scalar::<f32>()?)
}

const TOLERANCE: f32 = 1e-5;

#[test]
fn hub_download_matches_pytorch_then_offline_cache_serves_it() -> Result<()> {
    let bytes = fixture()?;
    let hub = FakeHub::start("model.safetensors", bytes.clone(), Fault::None)?;
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("hub");
    let w = spec(&format!("hub:{REPO}"))?;

    // a. Online: downloaded through the endpoint into hf-hub's cache layout.
    let path = fetch_with(&w, &config(&hub.url, &cache, false))?;
    let expected = cache
        .join("models--convnets-test--mnist-net-hub")
        .join("snapshots")
        .join(COMMIT)
        .join("model.safetensors");
    assert_eq!(path, expected);
    assert_eq!(
        std::fs::read(&path)?,
        bytes,
        "the cached file is the served one"
    );
    let seen = hub.seen();
    let url = format!("/{REPO}/resolve/main/model.safetensors");
    assert!(seen.iter().all(|s| s.path == url), "requests: {seen:?}");
    assert_eq!(
        seen.iter().map(|s| s.range.as_deref()).collect::<Vec<_>>(),
        [Some("bytes=0-0"), Some("bytes=0-")],
        "hf-hub asks for the metadata, then the file"
    );
    let d = logits_error(&path)?;
    assert!(d < TOLERANCE, "logits differ from PyTorch's by {d}");

    // b. The server is gone: offline reads the cache, by branch and by commit.
    hub.shutdown();
    let again = fetch_with(&w, &config("http://127.0.0.1:9", &cache, true))?;
    assert_eq!(again, path);
    let d = logits_error(&again)?;
    assert!(
        d < TOLERANCE,
        "offline: logits differ from PyTorch's by {d}"
    );
    let by_commit = spec(&format!("hub:{REPO}@{COMMIT}:model.safetensors"))?;
    assert_eq!(
        fetch_with(&by_commit, &config("http://127.0.0.1:9", &cache, true))?,
        path
    );
    // Online too, a cached file is used without asking the (gone) server.
    assert_eq!(
        fetch_with(&w, &config("http://127.0.0.1:9", &cache, false))?,
        path
    );
    Ok(())
}

#[test]
fn hub_offline_miss_names_repo_revision_file_and_cache() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("hub");
    let w = spec(&format!("hub:{REPO}@v2:weights/best.safetensors"))?;
    let err = fetch_with(&w, &config("http://127.0.0.1:9", &cache, true)).unwrap_err();
    assert!(matches!(err, HubError::NotCached { .. }), "{err:?}");
    let msg = err.to_string();
    for part in [
        REPO,
        "`v2`",
        "weights/best.safetensors",
        &cache.display().to_string(),
        "models--convnets-test--mnist-net-hub",
        "offline",
    ] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    Ok(())
}

/// The cache holds no file of `w` (hf-hub's `.part` may stay in `blobs/`: it is only ever
/// resumed, never served) and an offline fetch is a miss.
fn assert_not_cached(w: &HubWeights, cache: &Path) -> Result<()> {
    assert_eq!(cached(w, cache), None);
    let err = fetch_with(w, &config("http://127.0.0.1:9", cache, true)).unwrap_err();
    assert!(matches!(err, HubError::NotCached { .. }), "{err:?}");
    let snapshots = cache
        .join("models--convnets-test--mnist-net-hub")
        .join("snapshots");
    let files: Vec<PathBuf> = walk(&snapshots);
    assert!(files.is_empty(), "left in the snapshots: {files:?}");
    Ok(())
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn hub_dropped_connection_leaves_no_file_and_the_next_download_resumes() -> Result<()> {
    let bytes = fixture()?;
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("hub");
    let w = spec(&format!("hub:{REPO}"))?;

    let hub = FakeHub::start("model.safetensors", bytes.clone(), Fault::DropMidBody)?;
    let err = fetch_with(&w, &config(&hub.url, &cache, false)).unwrap_err();
    hub.shutdown();
    assert!(matches!(err, HubError::Download { .. }), "{err:?}");
    let msg = err.to_string();
    for part in [REPO, "model.safetensors", "127.0.0.1", "closed before"] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    assert_not_cached(&w, &cache)?;

    // A healthy server: hf-hub resumes its `.part` from where the connection dropped.
    let hub = FakeHub::start("model.safetensors", bytes.clone(), Fault::None)?;
    let path = fetch_with(&w, &config(&hub.url, &cache, false))?;
    let half = bytes.len() / 2;
    let ranges: Vec<Option<String>> = hub.seen().into_iter().map(|s| s.range).collect();
    assert_eq!(
        ranges,
        [Some("bytes=0-0".into()), Some(format!("bytes={half}-"))]
    );
    assert_eq!(std::fs::read(&path)?, bytes);
    let d = logits_error(&path)?;
    assert!(
        d < TOLERANCE,
        "resumed: logits differ from PyTorch's by {d}"
    );
    Ok(())
}

#[test]
fn hub_short_body_without_length_is_caught_and_removed() -> Result<()> {
    // The body ends early with no Content-Length to tell: hf-hub takes it as whole and moves
    // it into the cache; the safetensors check finds it short and takes it out again.
    let bytes = fixture()?;
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("hub");
    let w = spec(&format!("hub:{REPO}"))?;
    let hub = FakeHub::start("model.safetensors", bytes, Fault::ShortWithoutLength)?;
    let err = fetch_with(&w, &config(&hub.url, &cache, false)).unwrap_err();
    hub.shutdown();
    assert!(matches!(err, HubError::Incomplete { .. }), "{err:?}");
    let msg = err.to_string();
    for part in [
        REPO,
        "model.safetensors",
        "describes 34616 bytes",
        "removed",
    ] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    assert_not_cached(&w, &cache)?;
    let blobs = walk(
        &cache
            .join("models--convnets-test--mnist-net-hub")
            .join("blobs"),
    );
    assert!(
        blobs
            .iter()
            .all(|b| b.extension().is_some_and(|e| e == "lock")),
        "blobs left: {blobs:?}"
    );
    Ok(())
}

#[test]
fn hub_http_and_connection_errors_name_repo_file_and_endpoint() -> Result<()> {
    let hub = FakeHub::start("model.safetensors", fixture()?, Fault::None)?;
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("hub");

    // A file the repository does not have: the hub's 404.
    let w = spec(&format!("hub:{REPO}:missing.safetensors"))?;
    let msg = fetch_with(&w, &config(&hub.url, &cache, false))
        .unwrap_err()
        .to_string();
    let url = format!("{}/{REPO}/resolve/main/missing.safetensors", hub.url);
    for part in [
        REPO,
        "missing.safetensors",
        &url,
        "404",
        "no such repository, revision or file",
    ] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }

    // Nobody listening.
    let endpoint = hub.url.clone();
    hub.shutdown();
    let w = spec(&format!("hub:{REPO}"))?;
    let err = fetch_with(&w, &config(&endpoint, &cache, false)).unwrap_err();
    assert!(matches!(err, HubError::Download { .. }), "{err:?}");
    let msg = err.to_string();
    for part in [REPO, "model.safetensors", &endpoint] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    Ok(())
}

#[test]
fn hub_redirect_without_location_is_an_error_not_a_panic() -> Result<()> {
    let hub = FakeHub::start(
        "model.safetensors",
        fixture()?,
        Fault::RedirectWithoutLocation,
    )?;
    let tmp = tempfile::tempdir()?;
    let w = spec(&format!("hub:{REPO}"))?;
    let err = fetch_with(&w, &config(&hub.url, &tmp.path().join("hub"), false)).unwrap_err();
    assert!(matches!(err, HubError::Broken { .. }), "{err:?}");
    assert!(err.to_string().contains(&hub.url), "{err}");
    Ok(())
}
