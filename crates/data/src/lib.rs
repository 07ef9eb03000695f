//! Data sets for convnets: IDX and CIFAR-10 readers, MNIST / Fashion-MNIST / CIFAR-10
//! discovery, download with checksum verification (and safe unpacking of CIFAR-10's archive),
//! ToTensor / per-channel Normalize transforms, random augmentation, seeded mini-batching with
//! prefetching threads, image files (PNG, JPEG) as model inputs ([`load_image`]), and a
//! synthetic CIFAR-format data set for demonstrations ([`synthetic`]).
//!
//! [`load_or_download`] finds a data set as [`load`] does and, when asked, downloads it when
//! it is nowhere. [`Split::split_off_validation`] carves a seeded held-out validation set.
//!
//! Cargo feature `download` (default): the HTTP client behind [`download()`],
//! [`download_files`] and [`load_or_download`]. Without it those functions still exist and
//! report [`DataError::DownloadDisabled`] when something would have to be fetched; checksum
//! verification ([`verify_file`]) works either way.
//!
//! ```no_run
//! use convnets_data::{load, Batcher, DatasetKind};
//! # fn main() -> convnets_data::Result<()> {
//! let ds = load(DatasetKind::Mnist, None)?; // see `locate` for where it looks
//! let kind = ds.kind;
//! let train = Batcher::from_split(&ds.train, Some(kind.normalize()), 64, Some(42), false)?;
//! for batch in train.epoch(0) {
//!     let batch = batch?; // images [64, 1, 28, 28] f32, labels [64] u32
//!     # let _ = batch;
//! }
//! # Ok(())
//! # }
//! ```

pub mod batch;
pub mod cifar;
pub mod dataset;
pub mod download;
pub mod error;
pub mod folder;
pub mod idx;
pub mod imagenet;
pub mod picture;
pub mod synthetic;
pub mod transform;

mod split;

pub use batch::{Batch, Batcher, Epoch, Prefetch};
pub use dataset::{
    default_root, default_root_from, find_file, load, load_dir, load_or_download,
    load_or_download_in, load_test, locate, locate_in, Archive, DataFile, Dataset, DatasetKind,
    DatasetSpec, Split, CIFAR10_ARCHIVE, CIFAR10_FILES, DATA_ENV, DEBIAN_FASHION_MNIST,
};
pub use download::{
    check_archive, download, download_archive, download_files, md5_file, payload_sha256,
    sha256_hex, unpack_archive, verify_file, DOWNLOAD_ENABLED,
};
pub use error::{DataError, Result};
pub use imagenet::{imagenet_classes, IMAGENET_CLASSES};
pub use picture::{load_image, load_image_bytes, load_image_with, Preprocess, Resample};
pub use transform::{Augment, Normalize, ResizedCrop, MAX_CHANNELS};
