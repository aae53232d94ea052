//! MNIST-style datasets (MNIST, Fashion-MNIST, KMNIST): a directory
//! holding the four IDX files, and optionally `classes.txt` with one class
//! name per line (digits 0–9 otherwise).

use super::dataset::{class_names_file, Dataset, Split, NUM_CLASSES};
use super::idx::{self, IMAGES_MAGIC, LABELS_MAGIC};
use super::DataError;
use std::path::{Path, PathBuf};

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Whether `dir` holds MNIST-style IDX files.
pub fn is_mnist_dir(dir: &Path) -> bool {
    locate(dir, "t10k-images-idx3-ubyte").is_ok() || locate(dir, "train-images-idx3-ubyte").is_ok()
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
    let classes = match class_names_file(dir)? {
        Some(names) => names,
        None => (0..NUM_CLASSES).map(|d| d.to_string()).collect(),
    };
    if let Some((i, &bad)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes.len())
    {
        return Err(DataError::Invalid {
            path: labels_path,
            reason: format!(
                "label {bad} at index {i} is not a class index below {}",
                classes.len()
            ),
        });
    }
    Ok(Dataset {
        images: images.data,
        labels: labels.data,
        channels: 1,
        rows,
        cols,
        classes,
    })
}
