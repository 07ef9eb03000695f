//! Your own images as a data set, laid out as torchvision's `ImageFolder`: one folder per
//! class, the class names sorted, each image decoded (PNG, JPEG), converted to the model's
//! channels and fitted to its size.
//!
//! Two layouts are read (see [`load_image_folder`]):
//!
//! ```text
//! PATH/train/<class>/*.png|jpg   and   PATH/val/<class>/…  (or PATH/test/<class>/…)
//! PATH/<class>/*.png|jpg         (one set: hold part of it out with a validation split)
//! ```
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use convnets_data::folder::{load_image_folder, FolderOptions};
//! let root = tempfile::tempdir()?;
//! for (class, grey) in [("cats", 40u8), ("dogs", 200)] {
//!     for split in ["train", "val"] {
//!         let dir = root.path().join(split).join(class);
//!         std::fs::create_dir_all(&dir)?;
//!         image::GrayImage::from_pixel(8, 8, image::Luma([grey])).save(dir.join("a.png"))?;
//!     }
//! }
//! let ds = load_image_folder(root.path(), [1, 4, 4], &FolderOptions::default())?;
//! assert_eq!(ds.classes, ["cats", "dogs"]);
//! assert_eq!((ds.train.len, ds.eval.as_ref().unwrap().len), (2, 2));
//! assert_eq!(ds.train.labels, [0, 1]);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use crate::dataset::Split;
use crate::error::{DataError, Result};
use crate::picture::load_image_bytes;

/// The file name extensions read as images (any case), as torchvision's `IMG_EXTENSIONS`
/// restricted to what the `image` crate decodes here.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The names of the held-out part's folder, tried in order.
pub const EVAL_FOLDERS: [&str; 2] = ["val", "test"];

/// How [`load_image_folder`] treats bad images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// Skip images that cannot be decoded (each recorded in [`ImageFolder::skipped`]) instead
    /// of failing on the first one.
    pub skip_bad: bool,
}

/// A folder of images read into memory.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    /// The folder given.
    pub root: PathBuf,
    /// Class names (the class folders' names), sorted; label `i` is `classes[i]`.
    pub classes: Vec<String>,
    /// The training images (`PATH/train/`, or `PATH/` itself in the one-set layout).
    pub train: Split,
    /// The held-out images (`PATH/val/` or `PATH/test/`), when that folder exists.
    pub eval: Option<Split>,
    /// Images skipped with [`FolderOptions::skip_bad`], with why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Where the training classes live: `PATH/train/` when it exists, else `PATH/`.
pub fn train_dir(root: &Path) -> PathBuf {
    let t = root.join("train");
    if t.is_dir() {
        t
    } else {
        root.to_path_buf()
    }
}

/// The held-out part's folder (`PATH/val/`, else `PATH/test/`), in the train/val layout only.
pub fn eval_dir(root: &Path) -> Option<PathBuf> {
    if !root.join("train").is_dir() {
        return None;
    }
    EVAL_FOLDERS
        .iter()
        .map(|n| root.join(n))
        .find(|d| d.is_dir())
}

/// The sorted names of the class folders below `dir` (hidden folders ignored); an error when
/// `dir` cannot be read or holds no class folder.
pub fn class_names(dir: &Path) -> Result<Vec<String>> {
    let mut classes = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            classes.push(name);
        }
    }
    classes.sort();
    if classes.is_empty() {
        return Err(DataError::Image {
            path: dir.to_path_buf(),
            reason: "no class folder: expected one folder of images per class (PATH/<class>/*.png, or PATH/train/<class>/ and PATH/val/<class>/)".into(),
        });
    }
    Ok(classes)
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The image files of each class folder of `dir` that is in `classes`, as `(path, label)`
/// sorted by class then file name; an error for a class folder not in `classes` or with no
/// image.
fn list(dir: &Path, classes: &[String]) -> Result<Vec<(PathBuf, u32)>> {
    let mut out = Vec::new();
    for name in class_names(dir)? {
        let Some(label) = classes.iter().position(|c| *c == name) else {
            return Err(DataError::Image {
                path: dir.join(&name),
                reason: format!(
                    "class `{name}` is not among the training classes ({})",
                    classes.join(", ")
                ),
            });
        };
        let class_dir = dir.join(&name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&class_dir)
            .map_err(|e| DataError::io(&class_dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image(p))
            .collect();
        if files.is_empty() {
            return Err(DataError::Image {
                path: class_dir,
                reason: format!(
                    "no image in class `{name}` (expected files ending in .{})",
                    IMAGE_EXTENSIONS.join(", .")
                ),
            });
        }
        files.sort();
        out.extend(files.into_iter().map(|f| (f, label as u32)));
    }
    Ok(out)
}

/// Decodes `files` into a split of `shape` images; a bad image is an error naming it, or with
/// `skip_bad` is recorded in `skipped`.
fn read(
    files: &[(PathBuf, u32)],
    shape: [usize; 3],
    opts: &FolderOptions,
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<Split> {
    let [c, h, w] = shape;
    let mut split = Split {
        images: Vec::with_capacity(files.len() * c * h * w),
        labels: Vec::with_capacity(files.len()),
        len: 0,
        channels: c,
        rows: h,
        cols: w,
    };
    for (path, label) in files {
        match load_image_bytes(path, shape) {
            Ok(bytes) => {
                split.images.extend_from_slice(&bytes);
                split.labels.push(*label);
                split.len += 1;
            }
            Err(e @ DataError::Image { .. }) if opts.skip_bad => {
                skipped.push((path.clone(), e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(split)
}

/// Reads the image folder `root` (see the module documentation for the layouts) into
/// `[c, h, w]` images (`shape`: the model's input; each image scaled to cover `h x w` and
/// centre-cropped, converted to grey or RGB). Classes are the training class folders' names,
/// sorted; a held-out folder may lack classes but not add any. Errors name the file or
/// folder: an unreadable or corrupt image (unless [`FolderOptions::skip_bad`]), a class
/// folder without images, no class folder at all, a split left empty by skipping.
pub fn load_image_folder(
    root: &Path,
    shape: [usize; 3],
    opts: &FolderOptions,
) -> Result<ImageFolder> {
    if !root.is_dir() {
        return Err(DataError::Image {
            path: root.to_path_buf(),
            reason: "no such folder (expected PATH/<class>/*.png or PATH/train/<class>/…)".into(),
        });
    }
    let tdir = train_dir(root);
    let classes = class_names(&tdir)?;
    let mut skipped = Vec::new();
    let train = read(&list(&tdir, &classes)?, shape, opts, &mut skipped)?;
    let eval = match eval_dir(root) {
        Some(d) => Some(read(&list(&d, &classes)?, shape, opts, &mut skipped)?),
        None => None,
    };
    for (part, s) in [("training", Some(&train)), ("held-out", eval.as_ref())] {
        if s.is_some_and(|s| s.len == 0) {
            return Err(DataError::Image {
                path: root.to_path_buf(),
                reason: format!(
                    "every {part} image was skipped as unreadable ({} in all)",
                    skipped.len()
                ),
            });
        }
    }
    Ok(ImageFolder {
        root: root.to_path_buf(),
        classes,
        train,
        eval,
        skipped,
    })
}

/// The held-out part of an image folder, as [`load_held_out`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldOut {
    /// The training classes' names, sorted (label `i` is `classes[i]`).
    pub classes: Vec<String>,
    /// The held-out images.
    pub split: Split,
    /// Images skipped with [`FolderOptions::skip_bad`], with why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Reads only the held-out part of the image folder `root` (`PATH/val/` or `PATH/test/`) as
/// [`load_image_folder`] would, with the training classes' names: what evaluating needs.
pub fn load_held_out(root: &Path, shape: [usize; 3], opts: &FolderOptions) -> Result<HeldOut> {
    let Some(dir) = eval_dir(root) else {
        return Err(DataError::Image {
            path: root.to_path_buf(),
            reason: format!(
                "no held-out images to evaluate on: expected PATH/train/<class>/ beside PATH/{}/<class>/",
                EVAL_FOLDERS.join("/ or PATH/")
            ),
        });
    };
    let classes = class_names(&train_dir(root))?;
    let mut skipped = Vec::new();
    let split = read(&list(&dir, &classes)?, shape, opts, &mut skipped)?;
    if split.len == 0 {
        return Err(DataError::Image {
            path: dir,
            reason: format!(
                "every held-out image was skipped as unreadable ({} in all)",
                skipped.len()
            ),
        });
    }
    Ok(HeldOut {
        classes,
        split,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &Path, rgb: [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(6, 4, image::Rgb(rgb))
            .save(path)
            .unwrap();
    }

    #[test]
    fn layouts_classes_labels_and_channels() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        png(&r.join("train/b/1.png"), [255, 0, 0]);
        png(&r.join("train/b/0.PNG"), [0, 255, 0]);
        png(&r.join("train/a/x.jpg"), [0, 0, 255]);
        std::fs::write(r.join("train/a/notes.txt"), "ignored").unwrap();
        png(&r.join("test/b/2.png"), [10, 20, 30]);
        let ds = load_image_folder(r, [3, 2, 2], &FolderOptions::default()).unwrap();
        assert_eq!(ds.classes, ["a", "b"]);
        assert_eq!(ds.train.labels, [0, 1, 1]);
        assert_eq!((ds.train.channels, ds.train.rows, ds.train.cols), (3, 2, 2));
        // Sorted by file name within a class: 0.PNG (green) before 1.png (red).
        let green = ds.train.image(1).unwrap();
        assert_eq!(&green[..4], [0, 0, 0, 0]);
        assert_eq!(&green[4..8], [255, 255, 255, 255]);
        let eval = ds.eval.unwrap();
        assert_eq!((eval.len, eval.labels.clone()), (1, vec![1]));
        let held = load_held_out(r, [3, 2, 2], &FolderOptions::default()).unwrap();
        assert_eq!(
            (held.classes, held.split),
            (vec!["a".to_string(), "b".into()], eval)
        );
        // Grey: one channel.
        let grey = load_image_folder(r, [1, 3, 3], &FolderOptions::default()).unwrap();
        assert_eq!(grey.train.image_len(), 9);

        // One-set layout: the class folders directly under PATH, no held-out part.
        let one = t.path().join("one");
        png(&one.join("x/a.png"), [1, 2, 3]);
        png(&one.join("y/a.png"), [1, 2, 3]);
        let ds = load_image_folder(&one, [1, 2, 2], &FolderOptions::default()).unwrap();
        assert_eq!(
            (ds.classes.len(), ds.train.len, ds.eval.is_none()),
            (2, 2, true)
        );
    }

    #[test]
    fn bad_folders_and_images_are_named() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let opts = FolderOptions::default();
        let e = load_image_folder(&r.join("none"), [1, 2, 2], &opts).unwrap_err();
        assert!(e.to_string().contains("no such folder"), "{e}");
        let e = load_image_folder(r, [1, 2, 2], &opts).unwrap_err();
        assert!(e.to_string().contains("no class folder"), "{e}");
        png(&r.join("train/cat/a.png"), [1, 1, 1]);
        std::fs::create_dir_all(r.join("train/dog")).unwrap();
        let e = load_image_folder(r, [1, 2, 2], &opts)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train/dog") && e.contains("no image in class `dog`"),
            "{e}"
        );
        png(&r.join("train/dog/a.png"), [1, 1, 1]);
        png(&r.join("val/cow/a.png"), [1, 1, 1]);
        let e = load_image_folder(r, [1, 2, 2], &opts)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("class `cow` is not among the training classes (cat, dog)"),
            "{e}"
        );
        std::fs::remove_dir_all(r.join("val/cow")).unwrap();
        png(&r.join("val/cat/a.png"), [1, 1, 1]);

        // A corrupt image: named; skipped and counted with skip_bad.
        let bad = r.join("train/dog/broken.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\ntruncated").unwrap();
        let e = load_image_folder(r, [1, 2, 2], &opts)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("broken.png") && e.contains("cannot decode"),
            "{e}"
        );
        let skip = FolderOptions { skip_bad: true };
        let ds = load_image_folder(r, [1, 2, 2], &skip).unwrap();
        assert_eq!(ds.train.len, 2);
        assert_eq!(ds.skipped.len(), 1);
        assert_eq!(ds.skipped[0].0, bad);
        // Everything skipped: an error, not an empty data set.
        std::fs::write(r.join("val/cat/a.png"), b"junk").unwrap();
        let e = load_image_folder(r, [1, 2, 2], &skip)
            .unwrap_err()
            .to_string();
        assert!(e.contains("every held-out image was skipped"), "{e}");
    }
}
