//! Datasets: IDX (MNIST-style) and CIFAR parsing and validation, the
//! in-memory dataset the backends upload once per run, and fetching the
//! known datasets (`catalog.rs`, `fetch.rs`).

pub mod catalog;
pub mod cifar;
mod dataset;
pub mod fetch;
pub mod folder;
pub mod idx;
mod mnist;
mod normalization;
pub mod synthetic;

pub use dataset::{load_dataset, load_dataset_sized, Dataset, Split, NUM_CLASSES};
pub use mnist::load_mnist;
pub use normalization::{InputScale, Normalization, NormalizeChoice, MAX_CHANNELS};

use std::path::PathBuf;

/// What can be wrong with a data file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("data directory {0} does not exist (pass --data DIR with the MNIST IDX files)")]
    MissingDir(PathBuf),
    #[error("{path}: not found (looked for {name} or {name}.gz in {dir})")]
    MissingFile {
        path: PathBuf,
        name: String,
        dir: PathBuf,
    },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid gzip stream ({reason})")]
    BadGzip { path: PathBuf, reason: String },
    #[error("{path}: wrong IDX magic number 0x{found:08x} (expected 0x{expected:08x}, {what})")]
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
        what: &'static str,
    },
    #[error(
        "{path}: truncated: the header promises {expected} bytes of data, the file holds {found}"
    )]
    Truncated {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{0} holds neither MNIST-style IDX files, CIFAR-10 or CIFAR-100 binary batches, nor an image folder (train/<class>/*.png|jpg, test/<class>/...)")]
    UnknownFormat(PathBuf),
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        images: PathBuf,
        n_images: usize,
        labels: PathBuf,
        n_labels: usize,
    },
}
