//! Kill a real training process — SIGKILL after its first epoch, and SIGINT (Ctrl-C) — then
//! `convnets train --resume` it: the final weights equal bit for bit those of an uninterrupted
//! run, and the run folder is consistent (metrics rows match the epochs, no temporary files).
//! Needs the real MNIST (`CONVNETS_DATA`).

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn data() -> Option<PathBuf> {
    let d = PathBuf::from(std::env::var_os("CONVNETS_DATA")?).join("mnist");
    d.is_dir().then_some(d)
}

fn convnets() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_convnets"));
    c.env("RAYON_NUM_THREADS", "2");
    c
}

/// MnistNet on 12000 images: ~0.55 s an epoch here (2026-12-05, 2-core AVX-512 VM), so the
/// three epochs after the first checkpoint leave the test over a second to send its signal
/// (with 4000 images they took ~0.6 s in all, close to a busy machine's scheduling delays).
fn train_args(data: &Path, out: &Path) -> Vec<String> {
    [
        "train",
        "--model",
        "mnist-net",
        "--epochs",
        "4",
        "--limit",
        "12000",
        "--log-every",
        "0",
        "--offline",
        "--batch-size",
        "32",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--data-dir".into(),
        data.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .collect()
}

fn run_dir(out: &Path) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    dirs.sort();
    dirs.pop().context("no run folder")
}

/// The tensors of a safetensors file, as raw bytes by name (metadata ignored).
fn tensors(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let bytes = std::fs::read(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    Ok(st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect())
}

fn wait_for_checkpoint(child: &mut Child, out: &Path) -> Result<PathBuf> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the run ended ({status}) before its first checkpoint")
        }
        if let Ok(dir) = run_dir(out) {
            if dir.join("last.safetensors").is_file() {
                return Ok(dir);
            }
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("no checkpoint after 300 s")
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check_folder(dir: &Path) -> Result<()> {
    let csv = std::fs::read_to_string(dir.join("metrics.csv"))?;
    assert_eq!(csv.lines().count(), 5, "{csv}");
    let jsonl = std::fs::read_to_string(dir.join("metrics.jsonl"))?;
    assert_eq!(jsonl.lines().count(), 4, "{jsonl}");
    for f in std::fs::read_dir(dir)? {
        let name = f?.file_name().to_string_lossy().into_owned();
        assert!(
            !name.contains(".tmp-"),
            "temporary file {name} left in {}",
            dir.display()
        );
    }
    for f in [
        "accuracy.png",
        "loss.svg",
        "best.safetensors",
        "config.toml",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    Ok(())
}

#[test]
fn killed_and_interrupted_runs_resume_bit_for_bit() -> Result<()> {
    let Some(data) = data() else {
        {
            use std::io::Write as _; // straight to stderr: libtest captures eprintln!, CI must see a skip
            let _ = writeln!(
                std::io::stderr(),
                "SKIP resume_kill: needs CONVNETS_DATA pointing at a folder holding mnist/"
            );
        }
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;

    let straight = tmp.path().join("straight");
    let st = convnets()
        .args(train_args(&data, &straight))
        .stdout(Stdio::null())
        .status()?;
    assert!(st.success());
    let expected = tensors(&run_dir(&straight)?.join("model.safetensors"))?;

    for signal in ["KILL", "INT"] {
        let out = tmp.path().join(signal);
        let mut child = convnets()
            .args(train_args(&data, &out))
            .stdout(Stdio::null())
            .spawn()?;
        let dir = wait_for_checkpoint(&mut child, &out)?;
        let st = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()?;
        assert!(st.success());
        let status = child.wait()?;
        if signal == "INT" {
            assert!(status.success(), "Ctrl-C should exit cleanly: {status}");
        }
        let resumed = convnets()
            .args(["train", "--resume"])
            .arg(&dir)
            .stdout(Stdio::null())
            .status()?;
        assert!(resumed.success(), "resume after SIG{signal} failed");
        assert_eq!(
            tensors(&dir.join("model.safetensors"))?,
            expected,
            "weights after SIG{signal} + resume differ from the uninterrupted run"
        );
        check_folder(&dir)?;
    }
    Ok(())
}
