//! Data sets for convnets: an IDX reader, MNIST / Fashion-MNIST discovery, download with
//! SHA-256 verification, ToTensor / Normalize transforms, random augmentation, seeded
//! mini-batching, and image files (PNG, JPEG) as model inputs ([`load_image`]).
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
pub mod dataset;
pub mod download;
pub mod error;
pub mod idx;
pub mod picture;
pub mod transform;

mod split;

pub use batch::{Batch, Batcher, Epoch, Prefetch};
pub use dataset::{
    default_root, default_root_from, find_file, load, load_dir, load_or_download,
    load_or_download_in, load_test, locate, locate_in, DataFile, Dataset, DatasetKind, Split,
    DATA_ENV, DEBIAN_FASHION_MNIST,
};
pub use download::{
    download, download_files, payload_sha256, sha256_hex, verify_file, DOWNLOAD_ENABLED,
};
pub use error::{DataError, Result};
pub use picture::load_image;
pub use transform::{Augment, Normalize};
