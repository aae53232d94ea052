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

/// `--json` prints on stdout exactly the lines `--log` appends: one shape,
/// `kind` first; `--log-every` counts steps from the start of training.
#[test]
fn json_and_log_print_the_same_lines_and_steps_count_globally() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 30);
    let log = dir.path().join("log.jsonl");
    // 30 images in batches of 8: 4 steps an epoch, 8 in all; a steps line
    // at steps 3 and 6 (the second in epoch 2), and one line per epoch.
    let out = train_on(
        dir.path(),
        &[
            "--epochs",
            "2",
            "--batch",
            "8",
            "--json",
            "--log",
            log.to_str().unwrap(),
            "--log-every",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(stdout, logged, "--json and --log differ");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(&str, u64)> = lines
        .iter()
        .map(|v| (v["kind"].as_str().unwrap(), v["step"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("steps", 3), ("epoch", 4), ("steps", 6), ("epoch", 8)],
        "{stdout}"
    );
    assert_eq!(lines[2]["epoch"], 1.5);
    for (i, v) in lines.iter().filter(|v| v["kind"] == "epoch").enumerate() {
        assert_eq!(v["epoch"], i + 1);
        for key in [
            "train_loss",
            "train_acc",
            "test_loss",
            "test_acc",
            "seconds",
            "images_per_sec",
        ] {
            assert!(v[key].is_number(), "{key} in {v}");
        }
        assert_eq!(v["device"], "cpu");
        assert!(v["adapter"].is_string());
    }
    for v in lines.iter().filter(|v| v["kind"] == "steps") {
        assert!(
            v["train_loss"].is_number() && v["train_acc"].is_number(),
            "{v}"
        );
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

// ---- issue 14: nothing lost, nothing crashes ----

/// Trains the default MLP for `epochs` on a tiny data set in `dir` and saves
/// it to `dir/model.safetensors`.
fn saved_model(dir: &Path, epochs: &str) -> std::path::PathBuf {
    let model = dir.join("model.safetensors");
    let out = train_on(
        dir,
        &["--epochs", epochs, "--save", model.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    model
}

/// A 28×28 digit-like PNG for `predict`.
fn write_digit(path: &Path) {
    let img = image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([if (10..18).contains(&x) && (4..24).contains(&y) {
            255
        } else {
            0
        }])
    });
    img.save(path).unwrap();
}

#[test]
fn outputs_are_checked_first_and_never_replace_what_is_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    let d = dir.path().to_str().unwrap();

    // A save into a missing directory fails before any training.
    let missing = format!("{d}/no-such-dir/m.safetensors");
    let out = train_on(dir.path(), &["--save", &missing]);
    assert_fails(&out, 1, &format!("--save {missing}: the directory"));
    assert!(!stderr(&out).contains("epoch 1/1"), "{}", stderr(&out));
    for flag in ["--plot", "--log"] {
        let out = train_on(dir.path(), &[flag, &missing]);
        assert_fails(&out, 1, &format!("{flag} {missing}"));
    }
    assert_fails(&train_on(dir.path(), &["--save", d]), 1, "is a directory");

    // A killed run's temporary file is removed by the next save.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = dir.path().join(format!(".model.safetensors.tmp-{dead}"));
    std::fs::File::create(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
    saved_model(dir.path(), "1");
    if cfg!(target_os = "linux") {
        assert!(!stale.exists(), "the stale temporary file is still there");
    }

    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        // Devices are written in place: /dev/null stays a device...
        let out = train_on(dir.path(), &["--save", "/dev/null", "--plot", "/dev/null"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let null = std::fs::metadata("/dev/null").unwrap();
        assert!(null.file_type().is_char_device(), "/dev/null was replaced");
        // ...and a write that fails is an error naming the file.
        if Path::new("/dev/full").exists() {
            for flag in ["--save", "--plot"] {
                let out = train_on(dir.path(), &[flag, "/dev/full"]);
                assert_fails(&out, 1, "cannot write /dev/full");
            }
            let full = std::fs::metadata("/dev/full").unwrap();
            assert!(full.file_type().is_char_device(), "/dev/full was replaced");
        }
    }
}

#[test]
fn nan_never_reaches_a_model_file() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    let model = saved_model(dir.path(), "1");
    let good = std::fs::read(&model).unwrap();

    // One step per epoch: the training loss is taken before the update that
    // breaks the weights, so only the test loss and the weights show it.
    let out = train_on(
        dir.path(),
        &["--lr", "1e30", "--save", model.to_str().unwrap()],
    );
    assert_fails(&out, 1, "training diverged");
    assert_eq!(
        std::fs::read(&model).unwrap(),
        good,
        "the good model was replaced"
    );

    for (flag, value) in [
        ("--lr", "1e999"),
        ("--lr", "-0.1"),
        ("--lr-gamma", "nan"),
        ("--momentum", "1"),
        ("--beta1", "-0.5"),
        ("--beta2", "inf"),
        ("--eps", "0"),
        ("--weight-decay", "-1"),
    ] {
        let out = train_on(dir.path(), &[&format!("{flag}={value}")]);
        assert_fails(&out, 2, &format!("invalid value '{value}' for '{flag} "));
    }

    // A model file whose weights hold NaN is refused, naming the tensor.
    let mut ckpt = gpunet::checkpoint::load(&model).unwrap();
    let weight = ckpt
        .tensors
        .iter_mut()
        .find(|t| t.name == "layers.2.weight")
        .expect("the MLP's second dense layer");
    weight.data[7] = f32::NAN;
    weight.data[8] = f32::INFINITY;
    let broken = dir.path().join("nan.safetensors");
    gpunet::checkpoint::save(&broken, &ckpt).unwrap();
    let digit = dir.path().join("digit.png");
    write_digit(&digit);
    let broken = broken.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    let needle = "tensor layers.2.weight holds 2 NaN or infinite values";
    let out = gpunet(&["eval", "--device", "cpu", "--model", broken, "--data", d]);
    assert_fails(&out, 1, needle);
    let out = gpunet(&[
        "predict",
        "--device",
        "cpu",
        "--model",
        broken,
        digit.to_str().unwrap(),
    ]);
    assert_fails(&out, 1, needle);
}

#[cfg(unix)]
#[test]
fn closed_pipes_end_quietly_and_failing_streams_are_named() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    let model = saved_model(dir.path(), "1");
    let digit = dir.path().join("digit.png");
    write_digit(&digit);
    let (m, d) = (model.to_str().unwrap(), dir.path().to_str().unwrap());
    let digits: Vec<&str> = vec![digit.to_str().unwrap(); 50];
    let mut predict = vec!["predict", "--device", "cpu", "--model", m];
    predict.extend(&digits);
    let eval = ["eval", "--device", "cpu", "--model", m, "--data", d];
    let commands: [&[&str]; 3] = [&predict, &eval, &["devices"]];
    for args in commands {
        // `gpunet … | head -0`: the reader is gone before the first line.
        let mut child = Command::new(env!("CARGO_BIN_EXE_gpunet"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("error"),
            "{args:?}: {err}"
        );
    }
    if Path::new("/dev/full").exists() {
        let full = || {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap()
        };
        let out = Command::new(env!("CARGO_BIN_EXE_gpunet"))
            .args(eval)
            .stdout(full())
            .output()
            .unwrap();
        assert_fails(&out, 1, "writing to stdout: ");
        let mut json_train = vec!["train", "--device", "cpu", "--epochs", "1", "--json"];
        json_train.extend(["--data", d]);
        let out = Command::new(env!("CARGO_BIN_EXE_gpunet"))
            .args(&json_train)
            .stdout(full())
            .output()
            .unwrap();
        assert_fails(&out, 1, "writing to stdout: ");
    }
}

#[test]
fn messages_name_the_file_flag_or_variable() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    if Path::new("/dev/full").exists() {
        let out = train_on(dir.path(), &["--log", "/dev/full"]);
        assert_fails(&out, 1, "writing to --log /dev/full: ");
    }

    // A model file whose progress cannot be: about the file.
    let model = saved_model(dir.path(), "1");
    let mut ckpt = gpunet::checkpoint::load(&model).unwrap();
    ckpt.metadata.insert(
        "gpunet.progress".into(),
        format!(r#"{{"epochs_done":{},"global_step":3}}"#, usize::MAX),
    );
    let odd = dir.path().join("odd.safetensors");
    gpunet::checkpoint::save(&odd, &ckpt).unwrap();
    let out = train_on(
        dir.path(),
        &["--resume", odd.to_str().unwrap(), "--epochs", "3"],
    );
    assert_fails(&out, 1, "odd.safetensors: gpunet.progress");
    assert!(stderr(&out).contains("is impossible"), "{}", stderr(&out));

    // GPUNET_ADAPTER that matches nothing says so and lists the adapters;
    // with no adapter at all, the message says how to get one.
    let listed = gpunet(&["devices"]);
    let adapters = String::from_utf8_lossy(&listed.stdout).into_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(["train", "--device", "gpu", "--epochs", "1"])
        .env("GPUNET_ADAPTER", "nonexistent")
        .output()
        .unwrap();
    if adapters.contains("no GPU adapter found") {
        assert_fails(&out, 1, "no GPU adapter found");
        let err = stderr(&out);
        assert!(
            err.contains("mesa-vulkan-drivers") && err.contains("--device cpu"),
            "{err}"
        );
    } else {
        assert_fails(
            &out,
            1,
            "GPUNET_ADAPTER=\"nonexistent\" matched none of the GPU adapters: ",
        );
        let first = adapters.lines().next().unwrap_or_default();
        assert!(stderr(&out).contains(first), "{}", stderr(&out));
    }
}

#[test]
fn doing_nothing_is_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    let d = dir.path().to_str().unwrap();
    let never = dir.path().join("never.safetensors");
    let out = train_on(
        dir.path(),
        &["--epochs", "0", "--save", never.to_str().unwrap()],
    );
    assert_fails(&out, 1, "--epochs 0 trains nothing");
    assert!(!never.exists());

    let model = saved_model(dir.path(), "2");
    let m = model.to_str().unwrap();
    let out = gpunet(&[
        "eval",
        "--device",
        "cpu",
        "--model",
        m,
        "--data",
        d,
        "--test-limit",
        "0",
    ]);
    assert_fails(&out, 1, "--test-limit 0 leaves no test images");
    let before = std::fs::read(&model).unwrap();
    for epochs in ["1", "2"] {
        let out = train_on(
            dir.path(),
            &["--resume", m, "--epochs", epochs, "--save", m],
        );
        assert_fails(&out, 1, "has already been trained for 2 epochs");
        assert!(
            stderr(&out).contains("nothing was trained"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(std::fs::read(&model).unwrap(), before);
}

#[test]
fn settings_are_told_in_words_not_rust_debug_text() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    let model = saved_model(dir.path(), "1");
    let m = model.to_str().unwrap();
    let out = train_on(
        dir.path(),
        &["--resume", m, "--epochs", "2", "--optimizer", "adam"],
    );
    assert_fails(
        &out,
        1,
        "trained with SGD (momentum 0.9), not Adam (β1 0.9, β2 0.999, eps 1e-8); \
         pass the same optimiser flags (--optimizer: sgd in the checkpoint, adam now)",
    );
    let out = train_on(
        dir.path(),
        &[
            "--resume",
            m,
            "--epochs",
            "2",
            "--train-limit",
            "10",
            "--momentum",
            "0.5",
        ],
    );
    assert_fails(&out, 1, "--momentum: 0.9 in the checkpoint, 0.5 now");
    let out = train_on(
        dir.path(),
        &[
            "--resume",
            m,
            "--epochs",
            "2",
            "--train-limit",
            "10",
            "--json",
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("--train-limit: all images in the checkpoint, 10 now"),
        "{err}"
    );
    for debug in ["TrainingSettings", "AdamConfig", "Some(", "None"] {
        assert!(!err.contains(debug), "{debug} in: {err}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn gpu_commands_print_no_xdg_runtime_dir_error() {
    for value in [None, Some(""), Some("relative/dir")] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gpunet"));
        command.arg("devices");
        match value {
            None => command.env_remove("XDG_RUNTIME_DIR"),
            Some(v) => command.env("XDG_RUNTIME_DIR", v),
        };
        let out = command.output().unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("XDG_RUNTIME_DIR"), "{value:?}: {err}");
    }
}

/// Runs gpunet and measures its peak resident memory (Linux's
/// `ru_maxrss`, in KiB) from its own `wait4`, not the test process's
/// other children.
#[cfg(target_os = "linux")]
#[allow(clippy::zombie_processes)] // reaped by wait4, which std does not see
fn gpunet_peak(args: &[&str]) -> (Output, u64) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data, zero is a valid value for all of it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, whose pid the Child gave; std never
    // waits on it afterwards since `child.wait` is not called.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    use std::os::unix::process::ExitStatusExt;
    let out = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: Vec::new(),
        stderr,
    };
    (out, usage.ru_maxrss as u64)
}

/// A model file whose metadata says what the caller wants, with one small
/// tensor: what a crafted or corrupted file can claim.
fn crafted_model(path: &Path, model: &str, input: &str) {
    use gpunet::checkpoint::{self, Checkpoint, NamedTensor, Stored};
    let metadata = [
        ("gpunet.model", model),
        ("gpunet.input", input),
        ("gpunet.classes", "10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let tensor = NamedTensor {
        name: "layers.0.weight".into(),
        shape: vec![2, 2],
        data: vec![0.5; 4],
        dtype: Stored::F32,
    };
    checkpoint::save(
        path,
        &Checkpoint {
            tensors: vec![tensor],
            metadata,
        },
    )
    .unwrap();
}

/// Issue 14, class 3: sizes that used to abort the process in the
/// allocator ("memory allocation of 317999999997184 bytes failed",
/// "capacity overflow") are refused before anything is allocated, naming
/// the layer and the bytes, from the command line and from a model file's
/// metadata in every command that reads one.
#[test]
fn sizes_too_large_for_the_machine_are_refused_by_layer_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 20);
    let data = dir.path().to_str().unwrap();
    for (model, needles) in [
        (
            "dense99999999999,dense10",
            &[
                "layers.0 (dense99999999999): its weights need 314 TB",
                "available",
            ][..],
        ),
        (
            "dense99999999999999999,dense10",
            &["layer 0 (dense99999999999999999)", "more than 18 EB"],
        ),
        (
            "conv4k3p9999999999999999999,dense10",
            &["layer 0 (conv4k3p9999999999999999999)", "64 bits"],
        ),
        (
            "dense4294967296,dense4294967296,dense10",
            &["layer 1 (dense4294967296)", "more than 18 EB"],
        ),
    ] {
        let out = train_on(dir.path(), &["--model", model]);
        for needle in needles {
            assert_fails(&out, 1, needle);
        }
    }

    // The same through a model file: a spec too large, and an input whose
    // C·H·W wraps a u64 to a small number ((2^32+1)² = 2^64 + 2^33 + 1).
    let image = dir.path().join("digit.png");
    write_digit(&image);
    for (model, input, needle) in [
        (
            "dense99999999999,dense10",
            "1x28x28",
            "its weights need 314 TB",
        ),
        (
            "dense128,relu,dense10",
            "4294967297x4294967297x1",
            "more values per image than 64 bits count",
        ),
        (
            "dense99999999999999999,dense10",
            "1x28x28",
            "more than 18 EB",
        ),
    ] {
        let file = dir.path().join("crafted.safetensors");
        crafted_model(&file, model, input);
        let file = file.to_str().unwrap();
        let report = dir.path().join("report");
        for args in [
            vec!["eval", "--device", "cpu", "--model", file, "--data", data],
            vec![
                "predict",
                "--device",
                "cpu",
                "--model",
                file,
                image.to_str().unwrap(),
            ],
            vec![
                "inspect",
                "--device",
                "cpu",
                "--model",
                file,
                "--data",
                data,
                "--out",
                report.to_str().unwrap(),
            ],
            vec![
                "train", "--device", "cpu", "--data", data, "--resume", file, "--epochs", "2",
            ],
        ] {
            let out = gpunet(&args);
            assert_fails(&out, 1, needle);
            assert_fails(&out, 1, "crafted.safetensors");
        }
    }
}

/// A gzip of `zeros` zero bytes after `header`, compressed fast (1 GiB of
/// zeros gives about 4.6 MB).
fn gz_bomb(header: &[u8], zeros: usize) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(header).unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..zeros / block.len() {
        enc.write_all(&block).unwrap();
    }
    enc.finish().unwrap()
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<usize>>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n);
        Ok(n)
    }
}

/// Issue 14, class 4: decompression and image bombs cost no more memory
/// than their headers admit to. The IDX reader reads the header, checks
/// it, then at most the promised data and one byte; a picture's size is
/// checked from its header before it is decoded.
#[test]
fn bombs_are_refused_without_reading_past_what_the_header_promises() {
    use flate2::read::GzDecoder;
    let header = |n: u32| {
        [0x803u32, n, 28, 28]
            .iter()
            .flat_map(|d| d.to_be_bytes())
            .collect::<Vec<u8>>()
    };
    // A gzip whose header promises 10 images but which inflates to 64 MiB
    // more: the reader pulls 16 + 7840 + 1 bytes out of the stream.
    for (bytes, most, needle) in [
        (
            gz_bomb(&header(10), 64 << 20),
            16 + 7840 + 1,
            "more data than the header promises",
        ),
        (
            gz_bomb(&[], 64 << 20),
            4,
            "wrong IDX magic number 0x00000000",
        ),
    ] {
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let stream = Counting {
            inner: GzDecoder::new(bytes.as_slice()),
            read: read.clone(),
        };
        let err = idx::read_from(Path::new("bomb.gz"), stream, idx::IMAGES_MAGIC, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
        assert!(
            read.get() <= most,
            "read {} bytes, at most {most} expected",
            read.get()
        );
    }
    // A header that promises more than any machine has is refused before
    // its data is read.
    let err = idx::read_from(
        Path::new("huge.gz"),
        GzDecoder::new(gz_bomb(&header(4_000_000_000), 0).as_slice()),
        idx::IMAGES_MAGIC,
        None,
    );
    let err = err.unwrap_err().to_string();
    assert!(
        err.contains("huge.gz: a 4000000000×28×28 array, as its header promises, needs 3.1 TB"),
        "{err}"
    );

    // Through the command line, with the process's peak memory: a 128 MiB
    // bomb, a 1 GiB sparse raw file, and an 8192×8192 PNG of 50 KB.
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 10);
    let images = dir.path().join("train-images-idx3-ubyte.gz");
    std::fs::write(&images, gz_bomb(&header(10), 128 << 20)).unwrap();
    let data = dir.path().to_str().unwrap();
    let train = ["train", "--device", "cpu", "--data", data, "--epochs", "1"];
    // The peak of a run that fails at once is the baseline: a child's
    // ru_maxrss can include what it shared with this process before exec.
    #[cfg(target_os = "linux")]
    let check = |needle: &str| {
        let (_, baseline_kib) = gpunet_peak(&["train", "--data", "/nonexistent/gpunet"]);
        let (out, peak_kib) = gpunet_peak(&train);
        assert_fails(&out, 1, needle);
        assert!(
            peak_kib < baseline_kib + (32 << 10),
            "peak {peak_kib} KiB, {baseline_kib} KiB for a run that reads nothing"
        );
    };
    #[cfg(not(target_os = "linux"))]
    let check = |needle: &str| assert_fails(&gpunet(&train), 1, needle);
    check("more data than the header promises");
    std::fs::remove_file(&images).unwrap();
    let raw = std::fs::File::create(dir.path().join("train-images-idx3-ubyte")).unwrap();
    raw.set_len(1 << 30).unwrap();
    drop(raw);
    check("wrong IDX magic number 0x00000000");

    let good = tempfile::tempdir().unwrap();
    write_dataset(good.path(), 20);
    let model = saved_model(good.path(), "1");
    let png = dir.path().join("big.png");
    write_blank_png(&png, 8192);
    let out = gpunet(&[
        "predict",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        png.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("8192×8192 = 67108864 pixels, more than the 50000000 gpunet decodes"),
        "{err}"
    );
    // The cap, low, on a picture that is otherwise fine.
    let digit = dir.path().join("digit.png");
    write_digit(&digit);
    assert!(gpunet::preprocess::load_digit_capped(&digit, 784).is_ok());
    let err = gpunet::preprocess::load_digit_capped(&digit, 783)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("28×28 = 784 pixels, more than the 783"),
        "{err}"
    );
}

/// A black `side`×`side` 8-bit grey PNG, written row by row (a few tens
/// of KB for thousands of pixels a side).
fn write_blank_png(path: &Path, side: u32) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .unwrap()
        .into_stream_writer()
        .unwrap();
    let row = vec![0u8; side as usize];
    for _ in 0..side {
        writer.write_all(&row).unwrap();
    }
    writer.finish().unwrap();
}
