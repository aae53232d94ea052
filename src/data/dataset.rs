//! The in-memory dataset every backend uploads once: u8 pixels in
//! channels × height × width order per image, labels, and class names.
//! `load_dataset` reads a directory in any format gpunet knows.

use super::{cifar, folder, mnist, DataError};
use std::path::Path;

/// Number of classes in MNIST-style data.
pub const NUM_CLASSES: usize = 10;

/// Images (u8, `len × channels × rows × cols`, each image's channels one
/// after another) and their labels, with a name per class.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub channels: usize,
    pub rows: usize,
    pub cols: usize,
    /// `classes[label]` names the class (e.g. "7", "airplane").
    pub classes: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image (784 for MNIST, 3072 for CIFAR).
    pub fn input_size(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// The first `n` examples (all of them when `n` is larger).
    pub fn truncated(mut self, n: usize) -> Dataset {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * self.input_size());
        self
    }

    /// One image's values.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.input_size();
        &self.images[i * size..(i + 1) * size]
    }

    /// An empty dataset of images shaped like these (for inference only).
    pub fn empty_like(channels: usize, rows: usize, cols: usize, classes: Vec<String>) -> Dataset {
        Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            channels,
            rows,
            cols,
            classes,
        }
    }
}

/// Which half of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// Loads one split of the dataset in `dir`, whichever format it is in: the
/// IDX files of MNIST-style data, CIFAR-10's or CIFAR-100's binary batches,
/// or an image folder (`folder.rs`).
pub fn load_dataset(dir: &Path, split: Split) -> Result<Dataset, DataError> {
    load_dataset_sized(dir, split, None)
}

/// `load_dataset`, with an image folder's images resized to
/// `image_size`×`image_size` when given (`--image-size`; the other formats
/// have one size and ignore it).
pub fn load_dataset_sized(
    dir: &Path,
    split: Split,
    image_size: Option<u32>,
) -> Result<Dataset, DataError> {
    if !dir.is_dir() {
        return Err(DataError::MissingDir(dir.to_owned()));
    }
    if let Some(kind) = cifar::detect(dir) {
        return cifar::load(dir, kind, split);
    }
    if mnist::is_mnist_dir(dir) {
        return mnist::load_mnist(dir, split);
    }
    if folder::detect(dir) {
        return folder::load(dir, split, image_size);
    }
    Err(DataError::UnknownFormat(dir.to_owned()))
}

/// The class names in `dir/classes.txt` (one per line, blank lines
/// ignored), if the file exists.
pub fn class_names_file(dir: &Path) -> Result<Option<Vec<String>>, DataError> {
    let path = dir.join("classes.txt");
    if !path.is_file() {
        return Ok(None);
    }
    read_names(&path).map(Some)
}

/// Non-empty trimmed lines of a small text file of names.
pub fn read_names(path: &Path) -> Result<Vec<String>, DataError> {
    const MAX_BYTES: u64 = 1 << 20;
    let size = std::fs::metadata(path)
        .map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    if size > MAX_BYTES {
        return Err(DataError::Invalid {
            path: path.to_owned(),
            reason: format!("{size} bytes is too large for a list of class names"),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() || names.len() > 256 {
        return Err(DataError::Invalid {
            path: path.to_owned(),
            reason: format!("{} class names; expected 1 to 256", names.len()),
        });
    }
    Ok(names)
}
