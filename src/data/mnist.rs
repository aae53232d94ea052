//! MNIST-style datasets: a directory holding the four IDX files.

use super::idx::{self, IMAGES_MAGIC, LABELS_MAGIC};
use super::DataError;
use std::path::{Path, PathBuf};

/// Number of classes in MNIST-style data.
pub const NUM_CLASSES: usize = 10;

/// Images (u8 pixels, row-major, `len × rows × cols`) and their labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image (784 for MNIST).
    pub fn input_size(&self) -> usize {
        self.rows * self.cols
    }

    /// The first `n` examples (all of them when `n` is larger).
    pub fn truncated(mut self, n: usize) -> Dataset {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * self.input_size());
        self
    }

    /// One image's pixels.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.input_size();
        &self.images[i * size..(i + 1) * size]
    }
}

/// Which half of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Finds `name` or `name.gz` in `dir`.
fn locate(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        Ok(gz)
    } else if raw.is_file() {
        Ok(raw)
    } else {
        Err(DataError::MissingFile {
            path: gz,
            name: name.to_owned(),
            dir: dir.to_owned(),
        })
    }
}

/// Loads one split of an MNIST-style directory, validating both files and
/// that their counts agree and every label is a class index.
pub fn load_mnist(dir: &Path, split: Split) -> Result<Dataset, DataError> {
    if !dir.is_dir() {
        return Err(DataError::MissingDir(dir.to_owned()));
    }
    let images_path = locate(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
    let labels_path = locate(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
    let images = idx::read(&images_path, IMAGES_MAGIC)?;
    let labels = idx::read(&labels_path, LABELS_MAGIC)?;
    let (n_images, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
    if rows == 0 || cols == 0 {
        return Err(DataError::Invalid {
            path: images_path,
            reason: format!("images of size {rows}×{cols}"),
        });
    }
    let n_labels = labels.dims[0];
    if n_images != n_labels {
        return Err(DataError::CountMismatch {
            images: images_path,
            n_images,
            labels: labels_path,
            n_labels,
        });
    }
    if let Some((i, &bad)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= NUM_CLASSES)
    {
        return Err(DataError::Invalid {
            path: labels_path,
            reason: format!("label {bad} at index {i} is not a digit 0–9"),
        });
    }
    Ok(Dataset {
        images: images.data,
        labels: labels.data,
        rows,
        cols,
    })
}
