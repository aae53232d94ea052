//! The command line on bad input: a clear message and a non-zero exit,
//! never a panic. Also the --json output.

mod common;

use flate2::write::GzEncoder;
use gpunet::data::idx;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn gpunet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(args)
        .output()
        .expect("the gpunet binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exits with `code`, prints `needle` on stderr, and did not panic.
#[track_caller]
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr:\n{err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    assert!(!err.contains("panicked"), "panicked:\n{err}");
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A tiny valid MNIST-style directory: n images of 28×28 per split.
fn write_dataset(dir: &Path, n: usize) {
    for prefix in ["train", "t10k"] {
        let images: Vec<u8> = (0..n * 784).map(|i| (i % 251) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            gz(&idx::encode(&[n, 28, 28], &images)),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            gz(&idx::encode(&[n], &labels)),
        )
        .unwrap();
    }
}

fn train_on(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--device", "cpu", "--data", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    if !extra.contains(&"--epochs") {
        args.extend_from_slice(&["--epochs", "1"]);
    }
    gpunet(&args)
}

#[test]
fn a_valid_tiny_dataset_trains() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    let out = train_on(dir.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn missing_data_dir() {
    let out = gpunet(&["train", "--device", "cpu", "--data", "/no/such/dir"]);
    assert_fails(&out, 1, "/no/such/dir does not exist");
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    assert_fails(
        &train_on(dir.path(), &[]),
        1,
        "t10k-labels-idx1-ubyte.gz: not found",
    );
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    let images = idx::encode(&[20, 28, 28], &vec![0u8; 20 * 784]);
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte.gz"),
        gz(&images[..images.len() - 100]),
    )
    .unwrap();
    assert_fails(
        &train_on(dir.path(), &[]),
        1,
        "train-images-idx3-ubyte.gz: truncated",
    );
}

#[test]
fn truncated_gzip_stream() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    let path = dir.path().join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(&train_on(dir.path(), &[]), 1, "not a valid gzip stream");
}

#[test]
fn not_gzip() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte.gz"),
        b"hello, not gzip",
    )
    .unwrap();
    assert_fails(
        &train_on(dir.path(), &[]),
        1,
        "does not start with the gzip magic",
    );
}

#[test]
fn wrong_magic() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    // A label file where the image file should be.
    std::fs::copy(
        dir.path().join("train-labels-idx1-ubyte.gz"),
        dir.path().join("train-images-idx3-ubyte.gz"),
    )
    .unwrap();
    assert_fails(
        &train_on(dir.path(), &[]),
        1,
        "wrong IDX magic number 0x00000801",
    );
}

#[test]
fn image_and_label_counts_differ() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    std::fs::write(
        dir.path().join("t10k-labels-idx1-ubyte.gz"),
        gz(&idx::encode(&[19], &[1u8; 19])),
    )
    .unwrap();
    assert_fails(&train_on(dir.path(), &[]), 1, "holds 20 images but");
}

#[test]
fn layers_must_fit_the_data() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    assert_fails(
        &train_on(dir.path(), &["--layers", "100,10"]),
        1,
        "must start at the data's input size 784",
    );
    assert_fails(
        &train_on(dir.path(), &["--layers", "784,64,9"]),
        1,
        "the model ends in 9 outputs but the data has 10 classes",
    );
}

#[test]
fn model_specs_are_checked_against_the_data() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    assert_fails(
        &train_on(dir.path(), &["--model", "conv8k3,relu,lstm4,dense10"]),
        1,
        "--model: layer 2 (\"lstm4\"): unknown layer `lstm`",
    );
    assert_fails(
        &train_on(dir.path(), &["--model", "conv4k5,pool2,conv4k5,pool2,conv4k5,dense10"]),
        1,
        "layer 4 (conv4k5) on input 4×4×4: the 5×5 kernel is larger than the 4×4 padded feature map",
    );
    let json = dir.path().join("model.json");
    std::fs::write(
        &json,
        r#"{"layers": ["conv2k3", "relu", "pool2", "dense10"]}"#,
    )
    .unwrap();
    let out = train_on(dir.path(), &["--model", json.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(&json, r#"{"layers": 3}"#).unwrap();
    assert_fails(
        &train_on(dir.path(), &["--model", json.to_str().unwrap()]),
        1,
        "model.json",
    );
}

#[test]
fn zero_batch_is_refused() {
    let out = gpunet(&["train", "--batch", "0"]);
    assert_fails(&out, 2, "--batch");
}

#[test]
fn diverging_loss_names_epoch_and_step() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 64);
    let out = train_on(dir.path(), &["--lr", "1e30", "--batch", "8"]);
    assert_fails(&out, 1, "loss became NaN or infinite in epoch 1, step");
    assert!(stderr(&out).contains("lower --lr"));
}

#[test]
fn no_gpu_adapter_says_how_to_get_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(["train", "--device", "gpu", "--epochs", "1"])
        .env("GPUNET_ADAPTER", "no adapter has this name")
        .output()
        .unwrap();
    assert_fails(&out, 1, "no GPU adapter found");
    let err = stderr(&out);
    assert!(
        err.contains("mesa-vulkan-drivers") && err.contains("--device cpu"),
        "{err}"
    );
}

#[test]
fn json_prints_one_object_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 30);
    let out = train_on(dir.path(), &["--epochs", "2", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["epoch"], i + 1);
        for key in [
            "train_loss",
            "train_acc",
            "test_loss",
            "test_acc",
            "seconds",
            "images_per_sec",
        ] {
            assert!(v[key].is_number(), "{key} in {line}");
        }
        assert_eq!(v["device"], "cpu");
        assert!(v["adapter"].is_string());
    }
    assert!(stderr(&out).contains("epoch 2/2"), "human text on stderr");
}

/// Runs `gpunet bench --json` with `args` and parses its stdout.
fn bench_json(args: &[&str], adapter: Option<&str>) -> serde_json::Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gpunet"));
    command.arg("bench").arg("--json").args(args);
    if let Some(name) = adapter {
        command.env("GPUNET_ADAPTER", name);
    }
    let out = command.output().expect("the gpunet binary runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("timing: "), "human text on stderr");
    serde_json::from_slice(&out.stdout).expect("bench --json prints one JSON object")
}

#[test]
fn bench_json_has_positive_matmul_figures() {
    if common::gpu().is_none() {
        return;
    }
    let v = bench_json(&["--quick", "--only", "matmul", "--sizes", "64,128"], None);
    assert!(v["adapter"].is_string(), "{v}");
    assert!(
        v["timing"] == "timestamps" || v["timing"] == "wall_clock",
        "{v}"
    );
    let rows = v["matmul"].as_array().expect("a matmul list");
    assert_eq!(rows.len(), 6, "three forms at two sizes: {v}");
    for row in rows {
        assert!(["NN", "TN", "NT"].contains(&row["form"].as_str().unwrap_or("")));
        assert!(row["size"] == 64 || row["size"] == 128, "{row}");
        for key in [
            "engine_gflops",
            "naive_gflops",
            "cpu_gflops",
            "engine_over_naive",
            "engine_over_cpu",
        ] {
            let value = row[key].as_f64().unwrap_or(f64::NAN);
            assert!(value > 0.0 && value.is_finite(), "{key} in {row}");
        }
    }
    for part in ["conv", "softmax", "train"] {
        assert_eq!(v[part], serde_json::json!([]), "--only matmul ran {part}");
    }
}

#[test]
fn bench_without_an_adapter_reports_the_cpu() {
    let v = bench_json(
        &["--quick", "--only", "softmax"],
        Some("no adapter has this name"),
    );
    assert!(v["adapter"].is_null() && v["timing"].is_null(), "{v}");
    let rows = v["softmax"].as_array().expect("a softmax list");
    assert!(!rows.is_empty(), "{v}");
    for row in rows {
        assert!(row["cpu_us"].as_f64().is_some_and(|us| us > 0.0), "{row}");
        assert!(row["gpu_us"].is_null(), "{row}");
    }
}

#[test]
fn bench_refuses_a_zero_size() {
    let out = gpunet(&["bench", "--sizes", "0"]);
    assert_fails(&out, 1, "--sizes");
}
