//! Property tests of every parser a user's file or flag reaches: IDX
//! headers, CIFAR batches, model files (safetensors and their metadata),
//! model specs, and pictures for `predict`. For any input: no panic, and an
//! error is a sentence (no Rust debug text); a valid input round-trips.
//! Few cases each and small inputs, so that the file runs in seconds.

use gpunet::checkpoint::{self, Checkpoint, NamedTensor, Stored};
use gpunet::data::{idx, load_dataset, Split};
use gpunet::graph::{Graph, Shape};
use gpunet::model_file;
use gpunet::preprocess;
use gpunet::spec::ModelSpec;
use proptest::prelude::*;
use std::path::Path;

/// An error is meant for people: no `Name { field: … }` of a derived
/// Debug, no `Some(…)`, and it says something.
fn assert_in_words(message: &str) {
    assert!(!message.trim().is_empty(), "an empty error");
    for debug in ["{ ", " }", "Some(", "None", "kind:"] {
        assert!(
            !message.contains(debug),
            "debug text {debug:?} in: {message}"
        );
    }
}

/// An IDX file of `dims` (u8) whose data is `fill`, encoded.
fn idx_bytes(dims: &[usize], fill: u8) -> Vec<u8> {
    let len: usize = dims.iter().product();
    idx::encode(dims, &vec![fill; len])
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes: a parsed array or an error in words; never more data
    /// than the bytes hold.
    #[test]
    fn idx_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        match idx::parse(Path::new("x.idx"), &bytes, idx::IMAGES_MAGIC) {
            Ok(array) => prop_assert!(array.data.len() < bytes.len()),
            Err(e) => assert_in_words(&e.to_string()),
        }
    }

    /// A valid header with any dimensions, its data cut or extended by a
    /// few bytes: only the exact length parses, and it round-trips.
    #[test]
    fn idx_headers_round_trip(
        dims in proptest::collection::vec(0usize..6, 3),
        fill in any::<u8>(),
        cut in -3i64..3,
    ) {
        let mut bytes = idx_bytes(&dims, fill);
        let exact = bytes.len();
        let len = (exact as i64 + cut).max(0) as usize;
        bytes.resize(len, fill);
        match idx::parse(Path::new("x.idx"), &bytes, idx::IMAGES_MAGIC) {
            Ok(array) => {
                prop_assert_eq!(cut, 0);
                prop_assert_eq!(&array.dims, &dims);
                prop_assert_eq!(idx::encode(&array.dims, &array.data), bytes);
            }
            Err(e) => {
                prop_assert_ne!(cut, 0);
                assert_in_words(&e.to_string());
            }
        }
    }

    /// A header whose dimensions are any u32s (billions of images, sizes
    /// whose product overflows): refused in words without allocating them.
    #[test]
    fn idx_huge_headers(dims in proptest::collection::vec(any::<u32>(), 3)) {
        let mut bytes = vec![0, 0, 8, 3];
        for d in &dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(&[1, 2, 3]);
        if let Err(e) = idx::parse(Path::new("x.idx"), &bytes, idx::IMAGES_MAGIC) {
            assert_in_words(&e.to_string());
        }
    }

    /// A CIFAR-10 test batch of any bytes: a data set whose every label is a
    /// class, or an error in words naming the file.
    #[test]
    fn cifar_any_batch(
        records in 0usize..3,
        extra in 0usize..4,
        label in any::<u8>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for r in 0..records {
            bytes.push(label.wrapping_add(r as u8));
            bytes.extend((0..3072).map(|i| (i % 256) as u8));
        }
        bytes.extend(vec![7u8; extra]);
        std::fs::write(dir.path().join("test_batch.bin"), &bytes).unwrap();
        match load_dataset(dir.path(), Split::Test) {
            Ok(data) => {
                prop_assert_eq!(data.len(), records);
                prop_assert!(data.labels.iter().all(|&l| (l as usize) < data.classes.len()));
                prop_assert_eq!(&data.images[..], &bytes.chunks(3073).flat_map(|r| r[1..].to_vec()).collect::<Vec<u8>>()[..]);
            }
            Err(e) => {
                let text = e.to_string();
                assert_in_words(&text);
                prop_assert!(text.contains("test_batch.bin"), "{}", text);
            }
        }
    }

    /// Spec strings from the spec alphabet: parsed or refused in words; a
    /// parsed spec prints as a string that parses back to it, and a graph
    /// on a small input is built or refused in words.
    #[test]
    fn model_specs(text in "[a-z0-9(),.]{0,40}|((dense|conv|pool|res\\(|relu|bn|gap|flatten|dropout)[0-9kps.]{0,6},?){1,6}\\)?") {
        match ModelSpec::parse(&text) {
            Ok(spec) => {
                let again = ModelSpec::parse(&spec.to_string()).unwrap();
                prop_assert_eq!(&again, &spec);
                if let Err(e) = Graph::new(&spec, Shape { c: 1, h: 8, w: 8 }, 10) {
                    assert_in_words(&format!("{e:#}"));
                }
            }
            Err(e) => assert_in_words(&format!("{e:#}")),
        }
    }

    /// Random tensors and metadata round-trip bit for bit through a file.
    #[test]
    fn checkpoints_round_trip(
        shapes in proptest::collection::vec(proptest::collection::vec(1usize..4, 0..3), 1..4),
        seed in any::<u32>(),
        value in "[ -~]{0,20}",
    ) {
        let tensors: Vec<NamedTensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, shape)| {
                let n: usize = shape.iter().product();
                NamedTensor {
                    name: format!("t{i}"),
                    shape: shape.clone(),
                    data: (0..n).map(|k| f32::from_bits(seed.wrapping_add(k as u32) & 0x3fff_ffff)).collect(),
                    dtype: Stored::F32,
                }
            })
            .collect();
        let ckpt = Checkpoint {
            tensors,
            metadata: [("note".to_string(), value)].into_iter().collect(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        checkpoint::save(&path, &ckpt).unwrap();
        let back = checkpoint::load(&path).unwrap();
        prop_assert_eq!(back.tensors, ckpt.tensors);
        prop_assert_eq!(back.metadata.get("note"), ckpt.metadata.get("note"));
    }

    /// A model file with one byte changed, or cut short: loaded or refused
    /// in words.
    #[test]
    fn model_files_with_a_byte_changed(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let mut bytes = sample_model_file().to_vec();
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] = byte;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = model_file::load(&path) {
            assert_in_words(&format!("{e:#}"));
        }
    }

    /// Any metadata a model file can claim (the spec, the input shape, the
    /// class count): loaded or refused in words, never an abort.
    #[test]
    fn model_file_metadata(
        model in "[a-z0-9,]{0,24}|dense[0-9]{1,22},dense10",
        input in "[0-9x]{0,30}|[0-9]{1,20}x[0-9]{1,20}x[0-9]{1,20}",
        classes in "[0-9]{0,22}",
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let metadata = [("gpunet.model", &model), ("gpunet.input", &input), ("gpunet.classes", &classes)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let tensor = NamedTensor { name: "layers.0.weight".into(), shape: vec![1], data: vec![0.5], dtype: Stored::F32 };
        checkpoint::save(&path, &Checkpoint { tensors: vec![tensor], metadata }).unwrap();
        if let Err(e) = model_file::load(&path) {
            assert_in_words(&format!("{e:#}"));
        }
    }

    /// Any bytes named as a picture: 784 values in [0, 1], or an error in
    /// words naming the file.
    #[test]
    fn pictures_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), png_head in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        let mut file = if png_head { b"\x89PNG\r\n\x1a\n".to_vec() } else { Vec::new() };
        file.extend(bytes);
        std::fs::write(&path, &file).unwrap();
        match preprocess::load_digit(&path) {
            Ok(x) => prop_assert!(x.len() == 784 && x.iter().all(|v| (0.0..=1.0).contains(v))),
            Err(e) => {
                let text = format!("{e:#}");
                assert_in_words(&text);
                prop_assert!(text.contains("p.png"), "{}", text);
            }
        }
    }

    /// Any small picture, any size and content: 784 values in [0, 1], or
    /// refused in words (a blank picture has no ink).
    #[test]
    fn pictures_any_pixels(
        width in 1u32..40,
        height in 1u32..40,
        seed in any::<u64>(),
        grey_levels in 1u64..256,
    ) {
        let image = image::GrayImage::from_fn(width, height, |x, y| {
            let h = seed ^ (u64::from(x) * 0x9e37_79b9 + u64::from(y) * 0x85eb_ca6b);
            image::Luma([((h % grey_levels) * 255 / grey_levels.max(1)) as u8])
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digit.png");
        image.save(&path).unwrap();
        match preprocess::load_digit(&path) {
            Ok(x) => prop_assert!(x.len() == 784 && x.iter().all(|v| (0.0..=1.0).contains(v))),
            Err(e) => assert_in_words(&format!("{e:#}")),
        }
    }
}

/// A small valid model file's bytes (dense4 on 1×2×2 inputs), made once.
fn sample_model_file() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let metadata = [
            ("gpunet.model", "dense3,relu,dense4"),
            ("gpunet.input", "1x2x2"),
            ("gpunet.classes", "4"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let tensor = |name: &str, shape: Vec<usize>| {
            let n = shape.iter().product();
            NamedTensor {
                name: name.into(),
                shape,
                data: vec![0.25; n],
                dtype: Stored::F32,
            }
        };
        let tensors = vec![
            tensor("layers.0.weight", vec![3, 4]),
            tensor("layers.0.bias", vec![3]),
            tensor("layers.2.weight", vec![4, 3]),
            tensor("layers.2.bias", vec![4]),
        ];
        checkpoint::save(&path, &Checkpoint { tensors, metadata }).unwrap();
        assert!(model_file::load(&path).is_ok(), "the sample loads");
        std::fs::read(&path).unwrap()
    })
}
