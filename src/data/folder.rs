//! An image folder, laid out as torchvision's ImageFolder expects:
//! `root/train/<class>/*.png|jpg|jpeg` and `root/test/<class>/…`. Classes
//! are the training split's sub-folders sorted by name (class i is the
//! i-th); the test split's folders must be among them. Every image is
//! decoded once into u8, C×H×W: one channel when every image of the split
//! is grey, else three (RGB; alpha dropped). All images must share one size
//! unless `--image-size N` resizes them to N×N. Headers are read and sizes
//! checked before anything is allocated, and an image whose header claims
//! more than `MAX_DECODED_PIXELS` is refused (a decompression bomb).

use super::dataset::{Dataset, Split};
use super::DataError;
use image::imageops::FilterType;
use image::{ColorType, DynamicImage, ImageReader};
use std::path::{Path, PathBuf};

/// The most pixels one image may decode to (a 8192×8192 picture).
pub const MAX_DECODED_PIXELS: u64 = 8192 * 8192;
/// The most classes (labels are bytes).
const MAX_CLASSES: usize = 256;
/// The largest side `--image-size` accepts.
pub const MAX_IMAGE_SIZE: u32 = 1024;

/// True when `dir` holds `train/` or `test/` with class folders.
pub fn detect(dir: &Path) -> bool {
    ["train", "test"].iter().any(|split| {
        std::fs::read_dir(dir.join(split))
            .map(|entries| entries.flatten().any(|e| e.path().is_dir()))
            .unwrap_or(false)
    })
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_owned(),
        source,
    }
}

fn invalid(path: &Path, reason: String) -> DataError {
    DataError::Invalid {
        path: path.to_owned(),
        reason,
    }
}

/// Sorted sub-folders (names) of `dir`.
fn class_folders(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        if entry.path().is_dir() {
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| invalid(dir, format!("the class folder {n:?} is not valid UTF-8")))?;
            names.push(name);
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(invalid(
            dir,
            "holds no class folders (expected <class>/*.png|jpg)".into(),
        ));
    }
    if names.len() > MAX_CLASSES {
        return Err(invalid(
            dir,
            format!(
                "{} class folders; gpunet takes at most {MAX_CLASSES}",
                names.len()
            ),
        ));
    }
    Ok(names)
}

/// Sorted image files (png, jpg, jpeg, any case) of a class folder.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if path.is_file() && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// What an image's header says: width, height, and whether it is grey.
fn header(path: &Path) -> Result<(u32, u32, bool), DataError> {
    let mut reader = ImageReader::open(path)
        .map_err(io_error(path))?
        .with_guessed_format()
        .map_err(io_error(path))?;
    // Only the header is read here; `load` checks the size it claims.
    reader.no_limits();
    let decoder = reader
        .into_decoder()
        .map_err(|e| invalid(path, format!("cannot read it as a PNG or JPEG image: {e}")))?;
    use image::ImageDecoder;
    let (w, h) = decoder.dimensions();
    let grey = matches!(
        decoder.color_type(),
        ColorType::L8 | ColorType::L16 | ColorType::La8 | ColorType::La16
    );
    Ok((w, h, grey))
}

fn decode(path: &Path) -> Result<DynamicImage, DataError> {
    let mut reader = ImageReader::open(path)
        .map_err(io_error(path))?
        .with_guessed_format()
        .map_err(io_error(path))?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODED_PIXELS * 8);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| invalid(path, format!("cannot decode it: {e}")))
}

/// Loads one split of the image folder at `root`, resized to
/// `image_size`×`image_size` when given.
pub fn load(root: &Path, split: Split, image_size: Option<u32>) -> Result<Dataset, DataError> {
    let classes = class_folders(&root.join("train"))?;
    let dir = root.join(match split {
        Split::Train => "train",
        Split::Test => "test",
    });
    if !dir.is_dir() {
        return Err(invalid(
            &dir,
            "not found: an image folder needs train/ and test/".into(),
        ));
    }
    if let Some(n) = image_size {
        if n == 0 || n > MAX_IMAGE_SIZE {
            return Err(invalid(
                root,
                format!("--image-size {n}: give 1 to {MAX_IMAGE_SIZE}"),
            ));
        }
    }
    // Every file and its header first: sizes, channels and the total are
    // known before any pixel is decoded or allocated.
    let mut files: Vec<(PathBuf, u8)> = Vec::new();
    for name in class_folders(&dir)? {
        let label = classes.binary_search(&name).map_err(|_| {
            invalid(
                &dir.join(&name),
                "a test class that the training split does not have".into(),
            )
        })?;
        files.extend(
            image_files(&dir.join(&name))?
                .into_iter()
                .map(|f| (f, label as u8)),
        );
    }
    if files.is_empty() {
        return Err(invalid(
            &dir,
            "holds no .png, .jpg or .jpeg images in its class folders".into(),
        ));
    }
    let mut size: Option<(u32, u32, PathBuf)> = image_size.map(|n| (n, n, PathBuf::new()));
    let mut all_grey = true;
    for (path, _) in &files {
        let (w, h, grey) = header(path)?;
        if u64::from(w) * u64::from(h) > MAX_DECODED_PIXELS || w == 0 || h == 0 {
            return Err(invalid(
                path,
                format!(
                    "{w}×{h} pixels; gpunet decodes images of 1 to {MAX_DECODED_PIXELS} pixels"
                ),
            ));
        }
        all_grey &= grey;
        match &size {
            None => size = Some((w, h, path.clone())),
            Some((w0, h0, first)) if image_size.is_none() && (w, h) != (*w0, *h0) => {
                return Err(invalid(
                    path,
                    format!(
                        "{w}×{h} pixels, but {} is {w0}×{h0}; pass --image-size N to resize every image to N×N",
                        first.display()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    let (width, height, _) = size.expect("at least one image");
    let channels = if all_grey { 1 } else { 3 };
    let per_image = channels * width as usize * height as usize;
    let total = per_image.checked_mul(files.len()).ok_or_else(|| {
        invalid(
            &dir,
            format!(
                "{} images of {per_image} bytes overflow memory",
                files.len()
            ),
        )
    })?;
    let mut images = Vec::with_capacity(total);
    let mut labels = Vec::with_capacity(files.len());
    for (path, label) in &files {
        let mut image = decode(path)?;
        if (image.width(), image.height()) != (width, height) {
            image = image.resize_exact(width, height, FilterType::Triangle);
        }
        if channels == 1 {
            images.extend_from_slice(image.to_luma8().as_raw());
        } else {
            // Interleaved RGB → three planes.
            let rgb = image.to_rgb8();
            for c in 0..3 {
                images.extend(rgb.as_raw().iter().skip(c).step_by(3));
            }
        }
        labels.push(*label);
    }
    Ok(Dataset {
        images,
        labels,
        channels,
        rows: height as usize,
        cols: width as usize,
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    fn folder(root: &Path, split: &str, class: &str, file: &str, image: DynamicImage) {
        let dir = root.join(split).join(class);
        std::fs::create_dir_all(&dir).unwrap();
        image.save(dir.join(file)).unwrap();
    }

    fn rgb(w: u32, h: u32, colour: [u8; 3]) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, Rgb(colour)))
    }

    #[test]
    fn reads_classes_sorted_planes_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        folder(root, "train", "zebra", "a.png", rgb(3, 2, [10, 20, 30]));
        folder(root, "train", "apple", "b.png", rgb(3, 2, [200, 100, 0]));
        folder(root, "train", "apple", "c.PNG", rgb(3, 2, [1, 2, 3]));
        std::fs::write(root.join("train/apple/notes.txt"), "ignored").unwrap();
        folder(root, "test", "zebra", "d.png", rgb(3, 2, [5, 6, 7]));
        assert!(detect(root));
        let train = load(root, Split::Train, None).unwrap();
        assert_eq!(train.classes, ["apple", "zebra"]);
        assert_eq!(train.labels, [0, 0, 1]);
        assert_eq!((train.channels, train.rows, train.cols), (3, 2, 3));
        assert_eq!(train.image(0), [[200u8; 6], [100; 6], [0; 6]].concat());
        assert_eq!(train.image(2), [[10u8; 6], [20; 6], [30; 6]].concat());
        let test = load(root, Split::Test, None).unwrap();
        assert_eq!(test.labels, [1]);
    }

    #[test]
    fn grey_images_give_one_channel_and_resizing_is_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let grey = |w, h, v| DynamicImage::ImageLuma8(GrayImage::from_pixel(w, h, Luma([v])));
        folder(root, "train", "a", "1.png", grey(4, 4, 9));
        folder(root, "train", "b", "2.png", grey(6, 5, 7));
        let err = load(root, Split::Train, None).unwrap_err().to_string();
        assert!(
            err.contains("2.png") && err.contains("--image-size"),
            "{err}"
        );
        let data = load(root, Split::Train, Some(2)).unwrap();
        assert_eq!((data.channels, data.rows, data.cols), (1, 2, 2));
        assert_eq!(data.images, [9, 9, 9, 9, 7, 7, 7, 7]);
    }

    #[test]
    fn bad_files_and_layouts_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        folder(root, "train", "a", "1.png", rgb(2, 2, [0, 0, 0]));
        std::fs::write(root.join("train/a/broken.png"), b"not a png").unwrap();
        let err = load(root, Split::Train, None).unwrap_err().to_string();
        assert!(err.contains("broken.png"), "{err}");
        std::fs::remove_file(root.join("train/a/broken.png")).unwrap();
        // A PNG header that claims 100000×100000 pixels.
        let mut bomb = Vec::new();
        bomb.extend_from_slice(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
        bomb.extend_from_slice(&100_000u32.to_be_bytes());
        bomb.extend_from_slice(&100_000u32.to_be_bytes());
        bomb.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32(&bomb[12..]);
        bomb.extend_from_slice(&crc.to_be_bytes());
        // An empty IDAT and the IEND: the decoder reads up to the first IDAT.
        for chunk in [&b"IDAT"[..], b"IEND"] {
            bomb.extend_from_slice(&[0, 0, 0, 0]);
            bomb.extend_from_slice(chunk);
            bomb.extend_from_slice(&crc32(chunk).to_be_bytes());
        }
        std::fs::write(root.join("train/a/bomb.png"), &bomb).unwrap();
        let err = load(root, Split::Train, None).unwrap_err().to_string();
        assert!(
            err.contains("bomb.png") && err.contains("100000×100000"),
            "{err}"
        );
        std::fs::remove_file(root.join("train/a/bomb.png")).unwrap();
        folder(root, "test", "stranger", "x.png", rgb(2, 2, [0, 0, 0]));
        let err = load(root, Split::Test, None).unwrap_err().to_string();
        assert!(err.contains("stranger"), "{err}");
        assert!(load(root, Split::Train, Some(0)).is_err());
    }

    /// PNG's CRC-32 of a chunk's type and data.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
