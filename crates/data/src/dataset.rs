//! MNIST, Fashion-MNIST and CIFAR-10: which files, where to find them, and loading them
//! validated.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::idx::{read_idx, IdxArray};

/// Environment variable naming a folder that holds `mnist/`, `fashion-mnist/`, `cifar10/`.
pub const DATA_ENV: &str = "CONVNETS_DATA";

/// Where Debian's package `dataset-fashion-mnist` installs Fashion-MNIST.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// Image height and width of both data sets.
pub const MNIST_SIDE: usize = 28;

/// One file of a data set: its name (without `.gz`) and the SHA-256 of its decompressed payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataFile {
    /// File name without the `.gz` suffix, e.g. `train-images-idx3-ubyte`.
    pub name: &'static str,
    /// Lower-case hex SHA-256 of the decompressed payload.
    pub sha256: &'static str,
}

/// A data set distributed as one archive (CIFAR-10's `cifar-10-binary.tar.gz`): downloaded,
/// checked against its published MD5 and size, and unpacked into the data set's folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Archive {
    /// The archive's file name, e.g. `cifar-10-binary.tar.gz`.
    pub name: &'static str,
    /// Its published MD5 (lower-case hex).
    pub md5: &'static str,
    /// Its size in bytes.
    pub size: u64,
    /// The folder the archive unpacks to, which holds the data files.
    pub folder: &'static str,
}

/// The CIFAR-10 binary version, as published on <https://www.cs.toronto.edu/~kriz/cifar.html>.
pub const CIFAR10_ARCHIVE: Archive = Archive {
    name: "cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    size: 170_052_171,
    folder: "cifar-10-batches-bin",
};

/// The data sets this crate knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// LeCun et al.'s handwritten digits, 60,000 + 10,000 grey 28x28 images.
    Mnist,
    /// Zalando's Fashion-MNIST, 60,000 + 10,000 grey 28x28 images of clothes.
    FashionMnist,
    /// Krizhevsky's CIFAR-10, 50,000 + 10,000 colour 32x32 images of 10 classes (the binary
    /// version: `data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`).
    Cifar10,
}

const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// CIFAR-10's training batches, in order, then its test batch.
pub const CIFAR10_FILES: [&str; 6] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
    "test_batch.bin",
];

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

impl DatasetKind {
    /// The data set's name, also its folder name: `mnist`, `fashion-mnist` or `cifar10`.
    pub fn name(&self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
        }
    }

    /// Every known data set.
    pub fn all() -> &'static [DatasetKind] {
        &[
            DatasetKind::Mnist,
            DatasetKind::FashionMnist,
            DatasetKind::Cifar10,
        ]
    }

    /// Class names, indexed by label.
    pub fn classes(&self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &MNIST_CLASSES,
            DatasetKind::FashionMnist => &FASHION_CLASSES,
            DatasetKind::Cifar10 => &CIFAR10_CLASSES,
        }
    }

    /// Number of classes (labels are `0..num_classes()`).
    pub fn num_classes(&self) -> usize {
        self.classes().len()
    }

    /// Number of training images of the official files (60,000 for the MNIST sets, 50,000
    /// for CIFAR-10), the largest batch a run on the full data set can form.
    pub fn train_len(&self) -> usize {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => 60_000,
            DatasetKind::Cifar10 => 50_000,
        }
    }

    /// Base URLs (ending in `/`) serving `NAME.gz` for each file (or the
    /// [`DatasetKind::archive`]), tried in order.
    pub fn mirrors(&self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &[
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
            ],
            DatasetKind::FashionMnist => &[
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ],
            DatasetKind::Cifar10 => &["https://www.cs.toronto.edu/~kriz/"],
        }
    }

    /// The archive the data set is distributed as (CIFAR-10), or `None` when its files are
    /// downloaded one by one ([`DatasetKind::files`]).
    pub fn archive(&self) -> Option<Archive> {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => None,
            DatasetKind::Cifar10 => Some(CIFAR10_ARCHIVE),
        }
    }

    /// The names of the files a folder must hold for the data set to be there (each may also
    /// be gzipped, `NAME.gz`): the four IDX files, or CIFAR-10's six batches.
    pub fn required_files(&self) -> Vec<&'static str> {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => {
                self.files().iter().map(|f| f.name).collect()
            }
            DatasetKind::Cifar10 => CIFAR10_FILES.to_vec(),
        }
    }

    /// The files downloaded one by one, with their checksums: train images, train labels, test
    /// images, test labels for the IDX sets; none for CIFAR-10 (see [`DatasetKind::archive`]).
    pub fn files(&self) -> Vec<DataFile> {
        let f = |name, sha256| DataFile { name, sha256 };
        match self {
            DatasetKind::Cifar10 => Vec::new(),
            DatasetKind::Mnist => vec![
                f(
                    TRAIN_IMAGES,
                    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                ),
                f(
                    TRAIN_LABELS,
                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                ),
                f(
                    TEST_IMAGES,
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                ),
                f(
                    TEST_LABELS,
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                ),
            ],
            DatasetKind::FashionMnist => vec![
                f(
                    TRAIN_IMAGES,
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                ),
                f(
                    TRAIN_LABELS,
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                ),
                f(
                    TEST_IMAGES,
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                ),
                f(
                    TEST_LABELS,
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                ),
            ],
        }
    }

    /// The shape of one image as a tensor, `(channels, height, width)`.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => (1, MNIST_SIDE, MNIST_SIDE),
            DatasetKind::Cifar10 => crate::cifar::IMAGE_SHAPE,
        }
    }

    /// Mean and standard deviation of the training pixels after scaling to `[0, 1]` (per
    /// channel for CIFAR-10).
    pub fn normalize(&self) -> crate::Normalize {
        match self {
            DatasetKind::Mnist => crate::Normalize::MNIST,
            DatasetKind::FashionMnist => crate::Normalize::FASHION_MNIST,
            DatasetKind::Cifar10 => crate::Normalize::CIFAR10,
        }
    }

    /// System folders searched last (Debian's `dataset-fashion-mnist` for Fashion-MNIST).
    pub fn system_dirs(&self) -> Vec<PathBuf> {
        match self {
            DatasetKind::Mnist | DatasetKind::Cifar10 => Vec::new(),
            DatasetKind::FashionMnist => vec![PathBuf::from(DEBIAN_FASHION_MNIST)],
        }
    }

    /// The folders a data set's files may sit in below a candidate folder: the folder itself,
    /// and for CIFAR-10 also the `cifar-10-batches-bin/` its archive unpacks to.
    fn subfolders(&self, dir: &Path) -> Vec<PathBuf> {
        let mut v = vec![dir.to_path_buf()];
        if let Some(a) = self.archive() {
            v.push(dir.join(a.folder));
        }
        v
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = DataError;

    /// Accepts `mnist`, `fashion-mnist`, `fashion_mnist`, `fashionmnist`, `cifar10`,
    /// `cifar-10`, `cifar_10` (any case).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" => Ok(DatasetKind::FashionMnist),
            "cifar10" | "cifar-10" | "cifar_10" => Ok(DatasetKind::Cifar10),
            _ => Err(DataError::InvalidArgument(format!(
                "unknown data set {s:?}, expected one of: mnist, fashion-mnist, cifar10"
            ))),
        }
    }
}

/// What a `--dataset` names: a known data set, or a folder of your own images
/// (`folder:PATH`, read by [`crate::folder::load_image_folder`]).
///
/// ```
/// use convnets_data::{DatasetKind, DatasetSpec};
/// assert_eq!("cifar10".parse::<DatasetSpec>().unwrap(), DatasetSpec::Known(DatasetKind::Cifar10));
/// let f: DatasetSpec = "folder:photos/pets".parse().unwrap();
/// assert_eq!(f, DatasetSpec::Folder("photos/pets".into()));
/// assert_eq!(f.to_string(), "folder:photos/pets");
/// assert!("folder:".parse::<DatasetSpec>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DatasetSpec {
    /// One of the data sets this crate knows.
    Known(DatasetKind),
    /// A folder of images, one subfolder per class.
    Folder(PathBuf),
}

impl DatasetSpec {
    /// The known data set, if it is one.
    pub fn kind(&self) -> Option<DatasetKind> {
        match self {
            DatasetSpec::Known(k) => Some(*k),
            DatasetSpec::Folder(_) => None,
        }
    }
}

impl std::fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatasetSpec::Known(k) => f.write_str(k.name()),
            DatasetSpec::Folder(p) => write!(f, "folder:{}", p.display()),
        }
    }
}

impl std::str::FromStr for DatasetSpec {
    type Err = DataError;

    /// `folder:PATH`, or a name [`DatasetKind`] accepts.
    fn from_str(s: &str) -> Result<Self> {
        if let Some(path) = s.trim().strip_prefix("folder:") {
            if path.is_empty() {
                return Err(DataError::InvalidArgument(
                    "folder: needs a path, e.g. --dataset folder:photos".into(),
                ));
            }
            return Ok(DatasetSpec::Folder(PathBuf::from(path)));
        }
        s.parse().map(DatasetSpec::Known).map_err(|_| {
            DataError::InvalidArgument(format!(
                "unknown data set {s:?}, expected one of: mnist, fashion-mnist, cifar10, or folder:PATH (a folder of images, one subfolder per class)"
            ))
        })
    }
}

/// One split (train or test) of an image data set, as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// `len * channels * rows * cols` bytes: each image `[channels, rows, cols]` (channel
    /// planes one after the other, each row-major), one byte per value.
    pub images: Vec<u8>,
    /// `len` labels, class indices.
    pub labels: Vec<u32>,
    /// Number of images.
    pub len: usize,
    /// Channels per image: 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl Split {
    /// Bytes per image (`channels * rows * cols`).
    pub fn image_len(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// The pixels of image `i`, or `None` when `i >= len`.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let n = self.image_len();
        self.images.get(i * n..(i + 1) * n)
    }

    /// Builds a split from decoded arrays, checking ranks, counts and labels.
    ///
    /// `images` must be `[n, rows, cols]`, `labels` `[n]` with every label `< classes`.
    /// The paths only name the files in errors.
    pub fn from_idx(
        images: IdxArray,
        labels: IdxArray,
        images_path: &Path,
        labels_path: &Path,
        classes: usize,
    ) -> Result<Split> {
        let &[n, rows, cols] = images.dims.as_slice() else {
            return Err(DataError::BadShape {
                path: images_path.to_path_buf(),
                expected: "3 dimensions [n, rows, cols]".into(),
                found: images.dims,
            });
        };
        let &[m] = labels.dims.as_slice() else {
            return Err(DataError::BadShape {
                path: labels_path.to_path_buf(),
                expected: "1 dimension [n]".into(),
                found: labels.dims,
            });
        };
        if n != m {
            return Err(DataError::CountMismatch {
                images_path: images_path.to_path_buf(),
                labels_path: labels_path.to_path_buf(),
                images: n,
                labels: m,
            });
        }
        if let Some((index, &label)) = labels
            .data
            .iter()
            .enumerate()
            .find(|(_, &l)| usize::from(l) >= classes)
        {
            return Err(DataError::LabelOutOfRange {
                path: labels_path.to_path_buf(),
                index,
                offset: (labels.header_len() + index) as u64,
                label: u32::from(label),
                classes,
            });
        }
        Ok(Split {
            images: images.data,
            labels: labels.data.iter().map(|&l| u32::from(l)).collect(),
            len: n,
            channels: 1,
            rows,
            cols,
        })
    }

    /// Reads an images file and a labels file (each raw or gzipped) into a validated split.
    pub fn read(images_path: &Path, labels_path: &Path, classes: usize) -> Result<Split> {
        let images = read_idx(images_path)?;
        let labels = read_idx(labels_path)?;
        Split::from_idx(images, labels, images_path, labels_path, classes)
    }
}

/// A data set loaded in memory.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Which data set.
    pub kind: DatasetKind,
    /// The folder the files were read from.
    pub dir: PathBuf,
    /// The training split.
    pub train: Split,
    /// The test split.
    pub test: Split,
}

impl Dataset {
    /// Class names indexed by label: `"0"`..`"9"` for MNIST; `"T-shirt/top"`, `"Trouser"`,
    /// `"Pullover"`, `"Dress"`, `"Coat"`, `"Sandal"`, `"Shirt"`, `"Sneaker"`, `"Bag"`,
    /// `"Ankle boot"` for Fashion-MNIST (as [`DatasetKind::classes`]).
    pub fn class_names(&self) -> &'static [&'static str] {
        self.kind.classes()
    }

    /// Number of classes: every label of both splits is below it.
    pub fn num_classes(&self) -> usize {
        self.kind.num_classes()
    }
}

/// The default data root.
///
/// Inside the repository (walking up from the current folder to one that holds both
/// `Cargo.toml` and `datasets/README.md`) it is that `datasets/` folder; elsewhere it is
/// `$XDG_CACHE_HOME/convnets`, else `~/.cache/convnets`.
pub fn default_root() -> PathBuf {
    default_root_from(
        std::env::current_dir().ok().as_deref(),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// [`default_root`] with its inputs given: the current folder, `$XDG_CACHE_HOME`, `$HOME`.
pub fn default_root_from(
    cwd: Option<&Path>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> PathBuf {
    if let Some(cwd) = cwd {
        for dir in cwd.ancestors() {
            if dir.join("Cargo.toml").is_file() && dir.join("datasets/README.md").is_file() {
                return dir.join("datasets");
            }
        }
    }
    if let Some(x) = xdg_cache_home.filter(|x| Path::new(x).is_absolute()) {
        return PathBuf::from(x).join("convnets");
    }
    if let Some(h) = home.filter(|h| !h.is_empty()) {
        return PathBuf::from(h).join(".cache").join("convnets");
    }
    std::env::temp_dir().join("convnets")
}

/// Path of `file` in `dir`, preferring `NAME.gz` over the raw `NAME`; `None` when neither exists.
pub fn find_file(dir: &Path, file: &DataFile) -> Option<PathBuf> {
    let gz = dir.join(format!("{}.gz", file.name));
    if gz.is_file() {
        return Some(gz);
    }
    let raw = dir.join(file.name);
    raw.is_file().then_some(raw)
}

/// Path of the file `name` in `dir`, preferring `NAME.gz` over the raw `NAME`.
fn find_name(dir: &Path, name: &'static str) -> Option<PathBuf> {
    find_file(dir, &DataFile { name, sha256: "" })
}

fn holds_all(kind: DatasetKind, dir: &Path) -> bool {
    kind.required_files()
        .iter()
        .all(|f| find_name(dir, f).is_some())
}

/// Finds the folder holding the four files of `kind`.
///
/// Search order: (1) `data_dir` itself or `data_dir/<name>/` (when given, nothing else is
/// searched); (2) `$CONVNETS_DATA/<name>/`; (3) `default_root()/<name>/`; (4) for
/// Fashion-MNIST, `/usr/share/datasets/fashion-mnist/`. Each file may be `NAME.gz` or `NAME`.
/// CIFAR-10's files may also sit in a `cifar-10-batches-bin/` below each of these folders (as
/// its archive unpacks).
pub fn locate(kind: DatasetKind, data_dir: Option<&Path>) -> Result<PathBuf> {
    locate_in(
        kind,
        data_dir,
        std::env::var_os(DATA_ENV).as_deref(),
        &default_root(),
        &kind.system_dirs(),
    )
}

/// [`locate`] with its environment given: the value of `$CONVNETS_DATA`, the default root and
/// the system folders to search last.
pub fn locate_in(
    kind: DatasetKind,
    data_dir: Option<&Path>,
    env_value: Option<&OsStr>,
    default_root: &Path,
    system_dirs: &[PathBuf],
) -> Result<PathBuf> {
    let name = kind.name();
    let bases: Vec<PathBuf> = match data_dir {
        Some(d) => vec![d.to_path_buf(), d.join(name)],
        None => {
            let mut c = Vec::new();
            if let Some(env) = env_value.filter(|v| !v.is_empty()) {
                c.push(Path::new(env).join(name));
            }
            c.push(default_root.join(name));
            c.extend(system_dirs.iter().cloned());
            c
        }
    };
    let candidates: Vec<PathBuf> = bases.iter().flat_map(|b| kind.subfolders(b)).collect();
    if let Some(found) = candidates.iter().find(|d| holds_all(kind, d)) {
        return Ok(found.clone());
    }
    Err(DataError::NotFound {
        dataset: name.to_string(),
        hint: not_found_hint(kind, default_root),
        found: candidates
            .iter()
            .map(|d| describe_folder(kind, d))
            .collect(),
        searched: candidates,
    })
}

/// What `dir` holds of `kind`'s files, for the not-found error: which files are missing, and
/// which are dangling symbolic links (they exist as names but point nowhere).
pub fn describe_folder(kind: DatasetKind, dir: &Path) -> String {
    let dangling = |p: &Path| p.symlink_metadata().is_ok() && p.metadata().is_err();
    if dangling(dir) {
        return "a dangling symbolic link".into();
    }
    match dir.metadata() {
        Err(_) => return "no such folder".into(),
        Ok(m) if !m.is_dir() => return "not a folder".into(),
        Ok(_) => {}
    }
    let files = kind.required_files();
    let mut missing = Vec::new();
    let mut broken = Vec::new();
    for &f in &files {
        if find_name(dir, f).is_some() {
            continue;
        }
        let gz = dir.join(format!("{f}.gz"));
        let raw = dir.join(f);
        if let Some(link) = [gz, raw].into_iter().find(|p| dangling(p)) {
            let name = link.file_name().unwrap_or_default().to_string_lossy();
            broken.push(format!("{name} is a dangling symbolic link"));
        } else {
            missing.push(format!("{f}[.gz]"));
        }
    }
    let have = files.len() - missing.len() - broken.len();
    let mut parts = vec![format!("{have} of {} files", files.len())];
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    parts.extend(broken);
    parts.join("; ")
}

fn not_found_hint(kind: DatasetKind, default_root: &Path) -> String {
    let name = kind.name();
    let files: Vec<String> = kind
        .required_files()
        .iter()
        .map(|f| format!("{f}[.gz]"))
        .collect();
    let mut hint = format!(
        "Run `convnets download {name}` (`cargo xtask download {name}` in a checkout of \
         convnets) to fetch it into {}, or put the files {} into one of the folders above \
         (or set {DATA_ENV} to a folder holding {name}/).",
        default_root.join(name).display(),
        files.join(", "),
    );
    if kind == DatasetKind::FashionMnist {
        hint.push_str(&format!(
            " On Debian, the package `dataset-fashion-mnist` provides them in {DEBIAN_FASHION_MNIST}/."
        ));
    }
    hint
}

/// Locates (see [`locate`]) and loads a data set, validating every file.
pub fn load(kind: DatasetKind, data_dir: Option<&Path>) -> Result<Dataset> {
    let dir = locate(kind, data_dir)?;
    load_dir(kind, &dir)
}

/// Finds and loads a data set like [`load`], downloading it first when it is nowhere.
///
/// When [`locate`] finds nothing, `download` is true and no explicit `data_dir` was given,
/// the files are downloaded from [`DatasetKind::mirrors`] into `default_root()/<name>/`
/// (one line on stderr says so and where), then loaded from there. When that download
/// fails, the error is [`DataError::DataUnavailable`], carrying both the download failure
/// and the [`DataError::NotFound`] (where it searched, where to put the files, which
/// package provides them). Otherwise (found, `download` false, or an explicit folder
/// without the files) this is [`load`].
///
/// Without the cargo feature `download` this still compiles: a needed download fails with
/// [`DataError::DownloadDisabled`] inside the [`DataError::DataUnavailable`].
pub fn load_or_download(
    kind: DatasetKind,
    data_dir: Option<&Path>,
    download: bool,
) -> Result<Dataset> {
    load_or_download_in(
        kind,
        data_dir,
        download,
        std::env::var_os(DATA_ENV).as_deref(),
        &default_root(),
        &kind.system_dirs(),
        kind.mirrors(),
    )
}

/// [`load_or_download`] with its environment given: the value of `$CONVNETS_DATA`, the
/// default root (searched, and where a download goes), the system folders to search last
/// (as [`locate_in`]), and the mirrors to download from (empty means
/// [`DatasetKind::mirrors`]).
pub fn load_or_download_in(
    kind: DatasetKind,
    data_dir: Option<&Path>,
    download: bool,
    env_value: Option<&OsStr>,
    default_root: &Path,
    system_dirs: &[PathBuf],
    mirrors: &[&str],
) -> Result<Dataset> {
    let not_found = match locate_in(kind, data_dir, env_value, default_root, system_dirs) {
        Ok(dir) => return load_dir(kind, &dir),
        Err(e @ DataError::NotFound { .. }) if download && data_dir.is_none() => e,
        Err(e) => return Err(e),
    };
    if crate::download::DOWNLOAD_ENABLED {
        eprintln!(
            "{} not found: downloading it into {}",
            kind.name(),
            default_root.join(kind.name()).display()
        );
    }
    match crate::download::download(kind, default_root, mirrors) {
        Ok(dir) => load_dir(kind, &dir),
        Err(e) => Err(DataError::DataUnavailable {
            download: Box::new(e),
            not_found: Box::new(not_found),
        }),
    }
}

/// Loads a data set from a folder holding its files, checking that image and label counts
/// match, that labels are valid classes and that images have the data set's shape.
pub fn load_dir(kind: DatasetKind, dir: &Path) -> Result<Dataset> {
    let (train, test) = read_dir_splits(kind, dir, true)?;
    let Some(train) = train else {
        unreachable!("read_dir_splits reads the training split when asked")
    };
    Ok(Dataset {
        kind,
        dir: dir.to_path_buf(),
        train,
        test,
    })
}

/// Finds a data set like [`load`] and reads only its test split (evaluation never needs the
/// training files, so they need not be there).
pub fn load_test(kind: DatasetKind, data_dir: Option<&Path>) -> Result<Split> {
    let dir = locate(kind, data_dir)?;
    Ok(read_dir_splits(kind, &dir, false)?.1)
}

/// Reads the test split of `dir` and, with `with_train`, the training split.
fn read_dir_splits(
    kind: DatasetKind,
    dir: &Path,
    with_train: bool,
) -> Result<(Option<Split>, Split)> {
    let path = |f: &'static str| {
        find_name(dir, f).ok_or_else(|| DataError::NotFound {
            dataset: kind.name().to_string(),
            searched: vec![dir.to_path_buf()],
            found: vec![describe_folder(kind, dir)],
            hint: format!("{f} is missing: expected {f}.gz or {f}"),
        })
    };
    let classes = kind.classes().len();
    if kind == DatasetKind::Cifar10 {
        let train = if with_train {
            let paths = CIFAR10_FILES[..5]
                .iter()
                .map(|f| path(f))
                .collect::<Result<Vec<_>>>()?;
            Some(crate::cifar::read_batches(&paths, classes)?)
        } else {
            None
        };
        let test = crate::cifar::read_batches(&[path(CIFAR10_FILES[5])?], classes)?;
        return Ok((train, test));
    }
    let files = kind.files();
    let [train_images, train_labels, test_images, test_labels] = files.as_slice() else {
        unreachable!("the IDX data sets have four files")
    };
    let read = |images: &DataFile, labels: &DataFile| -> Result<Split> {
        let (ip, lp) = (path(images.name)?, path(labels.name)?);
        let split = Split::read(&ip, &lp, classes)?;
        if (split.rows, split.cols) != (MNIST_SIDE, MNIST_SIDE) {
            return Err(DataError::BadShape {
                path: ip,
                expected: format!("[n, {MNIST_SIDE}, {MNIST_SIDE}]"),
                found: vec![split.len, split.rows, split.cols],
            });
        }
        Ok(split)
    };
    let train = if with_train {
        Some(read(train_images, train_labels)?)
    } else {
        None
    };
    let test = read(test_images, test_labels)?;
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn touch_all(kind: DatasetKind, dir: &Path, gz: bool) {
        std::fs::create_dir_all(dir).unwrap();
        for f in kind.required_files() {
            let name = if gz { format!("{f}.gz") } else { f.to_string() };
            std::fs::write(dir.join(name), b"x").unwrap();
        }
    }

    #[test]
    fn names_parse_and_round_trip() {
        for &k in DatasetKind::all() {
            assert_eq!(DatasetKind::from_str(k.name()).unwrap(), k);
            assert_eq!(k.classes().len(), 10);
            assert_eq!(k.files().len(), if k.archive().is_some() { 0 } else { 4 });
            for f in k.files() {
                assert_eq!(f.sha256.len(), 64);
                assert!(f.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
            }
            for m in k.mirrors() {
                assert!(m.ends_with('/'));
            }
        }
        for s in ["fashion_mnist", "FashionMNIST", "fashion-mnist"] {
            assert_eq!(s.parse::<DatasetKind>().unwrap(), DatasetKind::FashionMnist);
        }
        for s in ["cifar10", "CIFAR-10", "cifar_10"] {
            assert_eq!(s.parse::<DatasetKind>().unwrap(), DatasetKind::Cifar10);
        }
        let e = "cifar".parse::<DatasetKind>().unwrap_err();
        assert!(e.to_string().contains("\"cifar\""), "{e}");
        assert!(e.to_string().contains("cifar10"), "{e}");
        let a = DatasetKind::Cifar10.archive().unwrap();
        assert_eq!((a.md5.len(), a.size), (32, 170_052_171));
        assert_eq!(DatasetKind::Cifar10.image_shape(), (3, 32, 32));
        assert_eq!(DatasetKind::Cifar10.normalize().channels(), 3);
    }

    #[test]
    fn class_names_and_counts() {
        assert_eq!(
            DatasetKind::FashionMnist.classes(),
            [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot"
            ]
        );
        assert_eq!(
            DatasetKind::Mnist.classes(),
            ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
        );
        let empty = Split {
            images: Vec::new(),
            labels: Vec::new(),
            len: 0,
            channels: 1,
            rows: 28,
            cols: 28,
        };
        for &kind in DatasetKind::all() {
            assert_eq!(kind.num_classes(), 10);
            let ds = Dataset {
                kind,
                dir: PathBuf::new(),
                train: empty.clone(),
                test: empty.clone(),
            };
            assert_eq!(ds.num_classes(), 10);
            assert_eq!(ds.class_names(), kind.classes());
        }
    }

    #[test]
    fn search_order() {
        let t = tempfile::tempdir().unwrap();
        let env = t.path().join("env");
        let root = t.path().join("root");
        let sys = t.path().join("sys");
        let k = DatasetKind::FashionMnist;
        let find = |dd: Option<&Path>| {
            locate_in(
                k,
                dd,
                Some(env.as_os_str()),
                &root,
                std::slice::from_ref(&sys),
            )
        };

        // Nothing anywhere: every folder is listed, with hints.
        let e = find(None).unwrap_err().to_string();
        for p in [
            env.join("fashion-mnist"),
            root.join("fashion-mnist"),
            sys.clone(),
        ] {
            assert!(e.contains(&p.display().to_string()), "{e}");
        }
        assert!(e.contains("cargo xtask download fashion-mnist"), "{e}");
        assert!(e.contains("dataset-fashion-mnist"), "{e}");

        // System folder last, then the default root, then the env var wins.
        touch_all(k, &sys, false);
        assert_eq!(find(None).unwrap(), sys);
        touch_all(k, &root.join("fashion-mnist"), true);
        assert_eq!(find(None).unwrap(), root.join("fashion-mnist"));
        touch_all(k, &env.join("fashion-mnist"), true);
        assert_eq!(find(None).unwrap(), env.join("fashion-mnist"));

        // An explicit folder: the files themselves or <dir>/<name>/, and no fallback.
        let explicit = t.path().join("explicit");
        std::fs::create_dir_all(&explicit).unwrap();
        let e = find(Some(&explicit)).unwrap_err();
        match &e {
            DataError::NotFound { searched, .. } => {
                assert_eq!(
                    searched,
                    &[explicit.clone(), explicit.join("fashion-mnist")]
                )
            }
            other => panic!("unexpected {other}"),
        }
        touch_all(k, &explicit.join("fashion-mnist"), false);
        assert_eq!(
            find(Some(&explicit)).unwrap(),
            explicit.join("fashion-mnist")
        );
        touch_all(k, &explicit, true);
        assert_eq!(find(Some(&explicit)).unwrap(), explicit);

        // MNIST hint does not mention the Debian package.
        let e = locate_in(DatasetKind::Mnist, None, None, &root, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cargo xtask download mnist"), "{e}");
        assert!(!e.contains("dataset-fashion-mnist"), "{e}");
    }

    /// CIFAR-10 is found in `<dir>/cifar10/` or in the `cifar-10-batches-bin/` its archive
    /// unpacks to, below an explicit folder or the default root.
    #[test]
    fn cifar10_is_found_in_its_archive_folder() {
        let t = tempfile::tempdir().unwrap();
        let k = DatasetKind::Cifar10;
        let root = t.path().join("root");
        let unpacked = root.join("cifar10").join("cifar-10-batches-bin");
        let e = locate_in(k, None, None, &root, &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("data_batch_1.bin[.gz]") && e.contains("cifar10"),
            "{e}"
        );
        touch_all(k, &unpacked, false);
        assert_eq!(locate_in(k, None, None, &root, &[]).unwrap(), unpacked);
        assert_eq!(
            locate_in(k, Some(&root), None, t.path(), &[]).unwrap(),
            unpacked
        );
        std::fs::remove_file(unpacked.join("test_batch.bin")).unwrap();
        let e = locate_in(k, Some(&root), None, t.path(), &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains("5 of 6 files; missing test_batch.bin[.gz]"),
            "{e}"
        );
    }

    #[test]
    fn partial_folder_is_not_a_match() {
        let t = tempfile::tempdir().unwrap();
        let k = DatasetKind::Mnist;
        touch_all(k, t.path(), true);
        std::fs::remove_file(t.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
        assert!(locate_in(k, Some(t.path()), None, t.path(), &[]).is_err());
        std::fs::write(t.path().join("t10k-labels-idx1-ubyte"), b"x").unwrap();
        assert_eq!(
            locate_in(k, Some(t.path()), None, t.path(), &[]).unwrap(),
            t.path()
        );
    }

    #[test]
    fn default_root_prefers_the_repository() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        let deep = repo.join("crates/x/src");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir_all(repo.join("datasets")).unwrap();
        std::fs::write(repo.join("Cargo.toml"), "").unwrap();
        // Without datasets/README.md it is not the repository.
        let xdg = Some(OsString::from("/xdg"));
        let home = Some(OsString::from("/home/u"));
        assert_eq!(
            default_root_from(Some(&deep), xdg.clone(), home.clone()),
            PathBuf::from("/xdg/convnets")
        );
        std::fs::write(repo.join("datasets/README.md"), "").unwrap();
        assert_eq!(
            default_root_from(Some(&deep), xdg, home.clone()),
            repo.join("datasets")
        );
        let outside = t.path().join("elsewhere");
        assert_eq!(
            default_root_from(Some(&outside), Some("rel".into()), home),
            PathBuf::from("/home/u/.cache/convnets")
        );
    }
}
