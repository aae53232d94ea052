//! CIFAR-10 and CIFAR-100 in their binary formats (as the archives from
//! their authors unpack: `cifar-10-batches-bin/`, `cifar-100-binary/`).
//!
//! A CIFAR-10 record is 1 label byte then 3072 pixel bytes: the 32×32 red
//! plane, then green, then blue, each row-major — already channels ×
//! height × width. Training records are in `data_batch_1.bin` …
//! `data_batch_5.bin`, test records in `test_batch.bin`, class names in
//! `batches.meta.txt`. A CIFAR-100 record has 2 label bytes (coarse, then
//! fine) before the pixels; `train.bin`, `test.bin`, and
//! `fine_label_names.txt`. gpunet trains on the fine labels.

use super::dataset::{read_names, Dataset, Split};
use super::DataError;
use std::path::{Path, PathBuf};

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;

/// The CIFAR-10 class names, for a directory without batches.meta.txt.
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

/// Which CIFAR, and the directory holding its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cifar {
    Ten(PathBuf),
    Hundred(PathBuf),
}

/// The CIFAR in `dir` or in the folder its archive unpacks to, if any.
pub fn detect(dir: &Path) -> Option<Cifar> {
    for sub in [dir.to_owned(), dir.join("cifar-10-batches-bin")] {
        if sub.join("test_batch.bin").is_file() || sub.join("data_batch_1.bin").is_file() {
            return Some(Cifar::Ten(sub));
        }
    }
    for sub in [dir.to_owned(), dir.join("cifar-100-binary")] {
        if sub.join("test.bin").is_file() || sub.join("train.bin").is_file() {
            return Some(Cifar::Hundred(sub));
        }
    }
    None
}

/// Loads one split, checking every file's size against the record size
/// before reading it and every label against the classes.
pub fn load(_dir: &Path, kind: Cifar, split: Split) -> Result<Dataset, DataError> {
    let (dir, label_bytes, files, classes) = match &kind {
        Cifar::Ten(dir) => {
            let files: Vec<PathBuf> = match split {
                Split::Train => (1..=5)
                    .map(|i| dir.join(format!("data_batch_{i}.bin")))
                    .filter(|p| p.is_file())
                    .collect(),
                Split::Test => vec![dir.join("test_batch.bin")],
            };
            let meta = dir.join("batches.meta.txt");
            let classes = if meta.is_file() {
                read_names(&meta)?
            } else {
                CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect()
            };
            (dir, 1, files, classes)
        }
        Cifar::Hundred(dir) => {
            let file = match split {
                Split::Train => "train.bin",
                Split::Test => "test.bin",
            };
            let names = dir.join("fine_label_names.txt");
            let classes = if names.is_file() {
                read_names(&names)?
            } else {
                (0..100).map(|i| format!("class {i}")).collect()
            };
            (dir, 2, vec![dir.join(file)], classes)
        }
    };
    let first = files
        .first()
        .cloned()
        .unwrap_or_else(|| dir.join("data_batch_1.bin"));
    if files.is_empty() || !first.is_file() {
        let name = first
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into());
        return Err(DataError::MissingFile {
            path: first.clone(),
            name,
            dir: dir.clone(),
        });
    }
    let record = label_bytes + PIXELS;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for path in &files {
        let size = std::fs::metadata(path)
            .map_err(|source| DataError::Io {
                path: path.clone(),
                source,
            })?
            .len() as usize;
        if size == 0 || !size.is_multiple_of(record) {
            return Err(DataError::Invalid {
                path: path.clone(),
                reason: format!(
                    "{size} bytes is not a whole number of {record}-byte records ({label_bytes} label byte{} + 3×32×32 pixels)",
                    if label_bytes == 1 { "" } else { "s" }
                ),
            });
        }
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.clone(),
            source,
        })?;
        for (i, rec) in bytes.chunks_exact(record).enumerate() {
            // CIFAR-100: [coarse, fine]; the fine label is the last one.
            let label = rec[label_bytes - 1];
            if label as usize >= classes.len() {
                return Err(DataError::Invalid {
                    path: path.clone(),
                    reason: format!(
                        "record {i} has label {label}, but there are {} classes",
                        classes.len()
                    ),
                });
            }
            labels.push(label);
            images.extend_from_slice(&rec[label_bytes..]);
        }
    }
    Ok(Dataset {
        images,
        labels,
        channels: 3,
        rows: SIDE,
        cols: SIDE,
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::load_dataset;

    /// A record of CIFAR-10's format: the label, then a plane per colour.
    fn record(label: u8, rgb: [u8; 3]) -> Vec<u8> {
        let mut r = vec![label];
        for c in rgb {
            r.extend(std::iter::repeat_n(c, SIDE * SIDE));
        }
        r
    }

    #[test]
    fn cifar10_batches_are_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&sub).unwrap();
        let train: Vec<u8> = [record(3, [255, 0, 0]), record(9, [0, 0, 255])].concat();
        std::fs::write(sub.join("data_batch_1.bin"), &train).unwrap();
        std::fs::write(sub.join("data_batch_2.bin"), record(1, [0, 255, 0])).unwrap();
        std::fs::write(sub.join("test_batch.bin"), record(0, [1, 2, 3])).unwrap();
        let data = load_dataset(dir.path(), Split::Train).unwrap();
        assert_eq!(data.labels, [3, 9, 1]);
        assert_eq!((data.channels, data.rows, data.cols), (3, 32, 32));
        assert_eq!(data.input_size(), 3072);
        // Image 0 is red: its first plane 255, the others 0.
        assert!(data.image(0)[..1024].iter().all(|&p| p == 255));
        assert!(data.image(0)[1024..].iter().all(|&p| p == 0));
        assert_eq!(data.image(2)[1024], 255);
        assert_eq!(data.classes[3], "cat");
        let test = load_dataset(dir.path(), Split::Test).unwrap();
        assert_eq!(test.image(0)[2048], 3);
    }

    #[test]
    fn cifar100_uses_the_fine_label_and_its_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = vec![7u8, 42];
        rec.extend(vec![9u8; PIXELS]);
        std::fs::write(dir.path().join("test.bin"), &rec).unwrap();
        let names: String = (0..100).map(|i| format!("fine{i}\n")).collect();
        std::fs::write(dir.path().join("fine_label_names.txt"), names).unwrap();
        let data = load_dataset(dir.path(), Split::Test).unwrap();
        assert_eq!(data.labels, [42]);
        assert_eq!(data.classes[42], "fine42");
        assert_eq!(data.classes.len(), 100);
    }

    #[test]
    fn bad_files_are_named_with_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test_batch.bin"), vec![0u8; 3000]).unwrap();
        let err = load_dataset(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(err.contains("test_batch.bin"), "{err}");
        assert!(
            err.contains("3000 bytes is not a whole number of 3073-byte records"),
            "{err}"
        );
        std::fs::write(dir.path().join("test_batch.bin"), record(10, [0; 3])).unwrap();
        let err = load_dataset(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("record 0 has label 10, but there are 10 classes"),
            "{err}"
        );
        let err = load_dataset(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("data_batch_1.bin"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = load_dataset(empty.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("neither MNIST-style IDX files") && err.contains("image folder"),
            "{err}"
        );
    }
}
