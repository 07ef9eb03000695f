//! Helpers the command-line tests share: running the binary, finding the run folder, and a
//! small folder of images (torchvision `ImageFolder` layout) of three shape classes.
#![allow(dead_code)] // each test binary uses some of them

use anyhow::Result;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `convnets ARGS` on two threads.
pub fn convnets(args: &[&str]) -> Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_convnets"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()?)
}

/// Writes `n` images of `class` (0: disk, 1: horizontal bars, 2: cross) into `dir`, 36x36
/// RGB at random positions, every third one as JPEG.
pub fn write_class(
    dir: &Path,
    class: usize,
    n: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..n {
        let (cx, cy) = (
            rng.random_range(12.0..24.0f32),
            rng.random_range(12.0..24.0f32),
        );
        let tint = rng.random_range(150..255u8);
        let img = image::RgbImage::from_fn(36, 36, |x, y| {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let on = match class {
                0 => dx * dx + dy * dy <= 64.0,
                1 => dx.abs() <= 10.0 && (dy.abs() <= 2.0 || (dy - 6.0).abs() <= 2.0),
                _ => (dx.abs() <= 2.0 || dy.abs() <= 2.0) && dx.abs() <= 10.0 && dy.abs() <= 10.0,
            };
            let v = if on { tint } else { 20 };
            image::Rgb([v, v / 2, 255 - v])
        });
        let name = if i % 3 == 0 {
            format!("img{i:03}.jpg")
        } else {
            format!("img{i:03}.png")
        };
        img.save(dir.join(name))?;
    }
    Ok(())
}

/// Three classes (`circle`, `bars`, `cross`) of 40 training and 12 validation images in
/// `root/train/` and `root/val/`.
pub fn write_folder(root: &Path) -> Result<()> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for (class, name) in ["circle", "bars", "cross"].iter().enumerate() {
        write_class(&root.join("train").join(name), class, 40, &mut rng)?;
        write_class(&root.join("val").join(name), class, 12, &mut rng)?;
    }
    Ok(())
}

/// The newest run folder in `out`.
pub fn run_dir(out: &Path) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    dirs.pop()
        .ok_or_else(|| anyhow::anyhow!("no run folder in {}", out.display()))
}
