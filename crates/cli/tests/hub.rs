//! `convnets predict --weights hub:OWNER/REPO` against a fake Hugging Face hub on 127.0.0.1
//! (`crates/zoo/tests/fake_hub/`; no network is reachable here), `HF_ENDPOINT` and `HF_HOME`
//! set on the child process: the same predictions as with the local file, then with
//! `--offline` from the cache once the server is gone, and clear errors for an empty cache and
//! a malformed spec. The weights are PyTorch's (`tests/golden/hub/`, `gen.py` there).

#[path = "../../zoo/tests/fake_hub/mod.rs"]
mod fake_hub;

use anyhow::{ensure, Result};
use convnets::train::Prediction;
use fake_hub::{golden_dir, FakeHub, Fault, COMMIT, REPO};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `convnets predict ARGS` with the Hugging Face environment `hf` (and no proxy, so
/// 127.0.0.1 is reached directly).
fn predict(args: &[OsString], hf: &[(&str, &str)]) -> Result<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_convnets"));
    cmd.arg("predict").args(args);
    for v in [
        "HF_ENDPOINT",
        "HF_HOME",
        "HF_HUB_OFFLINE",
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(hf.iter().copied());
    Ok(cmd.output()?)
}

fn predictions(out: &Output) -> Result<Vec<Prediction>> {
    ensure!(
        out.status.success(),
        "predict failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Three 28x28 grey images from a formula (strokes of different slopes).
fn images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for k in 0..3u32 {
        let img = image::GrayImage::from_fn(28, 28, |x, y| {
            let on = (x * (k + 1) + 3 * y) % 17 < 4 && (4..24).contains(&y);
            image::Luma([if on { 255 } else { (x + y) as u8 }])
        });
        let p = dir.join(format!("img{k}.png"));
        img.save(&p)?;
        files.push(p);
    }
    Ok(files)
}

#[test]
fn hub_predict_downloads_then_works_offline_like_the_local_file() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let files = images(tmp.path())?;
    let home = tmp.path().join("hf-home");
    let local = golden_dir().join("model.safetensors");
    let hub = FakeHub::start("model.safetensors", std::fs::read(&local)?, Fault::None)?;
    let spec = format!("hub:{REPO}");
    let with = |weights: &str, extra: &[&str]| -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["--weights".into(), weights.into(), "--json".into()];
        a.extend(extra.iter().map(Into::into));
        a.extend(files.iter().map(|f| f.clone().into_os_string()));
        a
    };

    let expected = predictions(&predict(&with(&local.to_string_lossy(), &[]), &[])?)?;
    ensure!(expected.len() == files.len(), "{expected:?}");
    let tops = |p: &[Prediction]| p.iter().map(|p| p.top.clone()).collect::<Vec<_>>();

    let endpoint = hub.url.clone();
    let env = [
        ("HF_ENDPOINT", endpoint.as_str()),
        ("HF_HOME", home.to_str().unwrap_or_default()),
    ];
    let got = predictions(&predict(&with(&spec, &[]), &env)?)?;
    assert_eq!(tops(&got), tops(&expected), "hub vs local file");
    assert_eq!(
        got.iter().map(|p| p.top[0].0).collect::<Vec<_>>(),
        expected.iter().map(|p| p.top[0].0).collect::<Vec<_>>()
    );
    let cached = home
        .join("hub/models--convnets-test--mnist-net-hub/snapshots")
        .join(COMMIT)
        .join("model.safetensors");
    assert_eq!(std::fs::read(&cached)?, std::fs::read(&local)?);
    // The weights' metadata and body, then the config.json a timm repository would have
    // beside them (this one has none: 404, and predict goes on).
    let seen = hub.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[2].path.ends_with("/config.json"), "{seen:?}");

    // The server is gone: --offline, and HF_HUB_OFFLINE=1, read the cache.
    hub.shutdown();
    let got = predictions(&predict(&with(&spec, &["--offline"]), &env)?)?;
    assert_eq!(tops(&got), tops(&expected), "--offline");
    let offline_env = [env[0], env[1], ("HF_HUB_OFFLINE", "1")];
    let got = predictions(&predict(&with(&spec, &[]), &offline_env)?)?;
    assert_eq!(tops(&got), tops(&expected), "HF_HUB_OFFLINE=1");

    // An empty cache offline: a clear miss, not a download attempt.
    let empty = tmp.path().join("empty-home");
    let out = predict(
        &with(&spec, &["--offline"]),
        &[
            ("HF_ENDPOINT", endpoint.as_str()),
            ("HF_HOME", empty.to_str().unwrap_or_default()),
        ],
    )?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        REPO,
        "model.safetensors",
        &empty.join("hub").display().to_string(),
        "offline",
    ] {
        assert!(err.contains(part), "`{part}` missing from: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");

    // A malformed spec says what it expected.
    let out = predict(&with("hub:no-slash", &[]), &env)?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`hub:no-slash`") && err.contains("hub:OWNER/REPO[@REVISION][:FILE]"),
        "{err}"
    );
    Ok(())
}
