//! Keeping and using a trained model: save → load, resume, eval, predict,
//! the metrics log and the curves plot.

mod common;

use common::{gpu, mnist_dir};
use gpunet::backend::Optimizer;
use gpunet::checkpoint::{self, Checkpoint, Stored};
use gpunet::data::{load_mnist, Split};
use gpunet::infer;
use gpunet::model_file;
use gpunet::ops::optim::AdamConfig;
use gpunet::schedule::ScheduleKind;
use gpunet::spec::ModelSpec;
use gpunet::train::{train, DeviceChoice, MetricsLine, TrainConfig};
use std::path::{Path, PathBuf};
use std::process::Command;

fn config(device: DeviceChoice, spec: &str, epochs: usize, save: Option<PathBuf>) -> TrainConfig {
    TrainConfig {
        spec: Some(ModelSpec::parse(spec).unwrap()),
        expected_input: None,
        device,
        epochs,
        batch: 50,
        optimizer: Optimizer::Adam(AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            decoupled: true,
        }),
        lr: 2e-3,
        schedule: ScheduleKind::Cosine,
        warmup_steps: 3,
        step_epochs: 1,
        gamma: 1.0,
        seed: 5,
        label_smoothing: 0.0,
        no_bias_decay: false,
        data: mnist_dir(),
        train_limit: Some(400),
        test_limit: Some(200),
        save,
        checkpoint_every: 0,
        resume: None,
        log: None,
        log_every: 0,
        plot: None,
        snapshot_every: 0,
        normalize: Default::default(),
        augment: Default::default(),
        image_size: None,
    }
}

fn run(cfg: &TrainConfig) -> Vec<f32> {
    train(cfg, &mut std::io::sink(), &mut |_| Ok(())).unwrap()
}

#[test]
fn save_then_load_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let params = run(&config(
        DeviceChoice::Cpu,
        "conv2k3,relu,pool2,dense10",
        1,
        Some(path.clone()),
    ));
    let saved = model_file::load(&path).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    assert_eq!(bits(&saved.params), bits(&params));
    assert_eq!(saved.graph.spec.to_string(), "conv2k3,relu,pool2,dense10");
    assert_eq!(saved.optimizer_state.len(), 2, "Adam's m and v are saved");
    assert_eq!(saved.progress.epochs_done, 1);
    assert_eq!(saved.history.len(), 1);
    // Saving what was loaded gives the same tensors and metadata.
    let again = dir.path().join("again.safetensors");
    model_file::save(&again, &saved).unwrap();
    let (a, b) = (
        checkpoint::load(&path).unwrap(),
        checkpoint::load(&again).unwrap(),
    );
    assert_eq!(a.metadata, b.metadata);
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (x, y) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!((&x.name, &x.shape), (&y.name, &y.shape));
        assert_eq!(bits(&x.data), bits(&y.data), "{}", x.name);
    }
}

/// Two epochs, stop, resume to four, against four in one go: the same
/// weights bit for bit, and the same non-trainable buffers (training reads
/// batch statistics, never the running ones, so only restoring them on
/// resume makes them agree), on the CPU and on the GPU.
fn check_resume(spec: &str, train_limit: usize) {
    let mut devices = vec![DeviceChoice::Cpu];
    if gpu().is_some() {
        devices.push(DeviceChoice::Gpu);
    }
    for device in devices {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("straight.safetensors");
        let mut straight_cfg = config(device, spec, 4, Some(whole.clone()));
        straight_cfg.train_limit = Some(train_limit);
        let straight = run(&straight_cfg);

        // The same run, interrupted (the callback fails, as Ctrl-C would
        // stop it) after the checkpoint of epoch 2.
        let ckpt = dir.path().join("ckpt.safetensors");
        let mut first = config(device, spec, 4, Some(ckpt.clone()));
        first.train_limit = Some(train_limit);
        first.checkpoint_every = 2;
        let interrupted = train(&first, &mut std::io::sink(), &mut |line| {
            if let MetricsLine::Epoch { report, .. } = line {
                anyhow::ensure!(report.epoch < 2, "interrupted");
            }
            Ok(())
        });
        assert!(interrupted.is_err());
        let last = dir.path().join("final.safetensors");
        let mut second = config(device, spec, 4, Some(last.clone()));
        second.train_limit = Some(train_limit);
        second.spec = None;
        second.resume = Some(ckpt);
        let resumed = run(&second);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&resumed),
            bits(&straight),
            "{spec} on {device:?}: resumed weights differ"
        );
        let (a, b) = (
            model_file::load(&whole).unwrap(),
            model_file::load(&last).unwrap(),
        );
        assert_eq!(
            bits(&b.buffers),
            bits(&a.buffers),
            "{device:?}: resumed buffers differ"
        );
        let accuracies =
            |m: &model_file::SavedModel| m.history.iter().map(|h| h.test_acc).collect::<Vec<_>>();
        assert_eq!(
            accuracies(&b),
            accuracies(&a),
            "{device:?}: test accuracies"
        );
    }
}

#[test]
fn interrupted_and_resumed_training_equals_uninterrupted() {
    check_resume("conv3k3p1,relu,pool2,dense16,tanh,dense10", 400);
}

/// With batch norm, whose running statistics are buffers; 410 images in
/// batches of 50 make each epoch end in a short batch.
#[test]
fn interrupted_and_resumed_training_with_bn_equals_uninterrupted() {
    check_resume("conv3k3p1,bn,relu,pool2,dense16,bn,tanh,dense10", 410);
}

/// A model with batch norm keeps its running statistics in the file under
/// PyTorch's names (num_batches_tracked an int64 scalar), reads them back
/// bit for bit, and evaluates with them: `eval` gives the accuracy of the
/// training's own test pass, and a GPU-trained file gives the same results
/// on the CPU.
#[test]
fn batch_norm_buffers_are_saved_loaded_and_used() {
    let mut devices = vec![DeviceChoice::Cpu];
    if gpu().is_some() {
        devices.push(DeviceChoice::Gpu);
    }
    let spec = "conv2k3,bn,relu,pool2,dense8,bn,relu,dense10";
    let test = load_mnist(&mnist_dir(), Split::Test)
        .unwrap()
        .truncated(200);
    for device in devices {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        run(&config(device, spec, 1, Some(path.clone())));
        let file = checkpoint::load(&path).unwrap();
        let stored = |name: &str| {
            let t = file.tensor(name).unwrap_or_else(|| panic!("no {name}"));
            (t.shape.clone(), t.dtype)
        };
        assert_eq!(stored("layers.1.running_mean"), (vec![2], Stored::F32));
        assert_eq!(stored("layers.1.running_var"), (vec![2], Stored::F32));
        assert_eq!(stored("layers.1.weight"), (vec![2], Stored::F32));
        assert_eq!(stored("layers.5.running_var"), (vec![8], Stored::F32));
        assert_eq!(
            stored("layers.5.num_batches_tracked"),
            (vec![], Stored::I64)
        );
        // 400 images in batches of 50: 8 steps.
        assert_eq!(
            file.tensor("layers.5.num_batches_tracked").unwrap().data,
            [8.0]
        );

        let saved = model_file::load(&path).unwrap();
        let running_var = &saved.buffers[saved.graph.buffers[1].range()];
        assert!(
            running_var.iter().all(|&v| v > 0.0 && v != 1.0),
            "{device:?}: the running variance moved: {running_var:?}"
        );
        let again = dir.path().join("again.safetensors");
        model_file::save(&again, &saved).unwrap();
        let reread = model_file::load(&again).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        assert_eq!(bits(&reread.buffers), bits(&saved.buffers));

        let mut sink = std::io::sink();
        let mut on_device = infer::open_model(device, &saved, &mut sink).unwrap();
        let report =
            infer::evaluate(on_device.as_mut(), &saved.graph.normalization, &test, 10).unwrap();
        assert_eq!(
            report.accuracy, saved.history[0].test_acc,
            "{device:?}: eval uses the saved running statistics"
        );
        assert!(
            (report.loss - saved.history[0].test_loss).abs() < 1e-4,
            "{device:?}: eval's loss {} vs the test pass's {}",
            report.loss,
            saved.history[0].test_loss
        );
        if device == DeviceChoice::Gpu {
            let mut on_cpu = infer::open_model(DeviceChoice::Cpu, &saved, &mut sink).unwrap();
            let cpu_report =
                infer::evaluate(on_cpu.as_mut(), &saved.graph.normalization, &test, 10).unwrap();
            assert_eq!(cpu_report.confusion, report.confusion);
            assert!((cpu_report.loss - report.loss).abs() < 1e-4);
        }
    }
}

/// Dropout's masks are a function of the run's seed and each step's number
/// in the run, so the resumed run draws the masks the uninterrupted one drew
/// in its epochs 3 and 4 (a generator carrying state would have to save it).
#[test]
fn resuming_with_dropout_and_residual_blocks_is_exact() {
    check_resume(
        "conv2k3p1,relu,pool4,res(conv2k3p1,relu,dropout0.2,conv2k3p1),relu,flatten,dropout0.5,dense10",
        400,
    );
}

/// A model with residual blocks is saved under its nested names and loads
/// back to the same graph and tensors.
#[test]
fn residual_blocks_save_under_nested_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("res.safetensors");
    let spec = "conv2k3p1,relu,res(conv2k3p1,relu,conv4k3s2p1),relu,gap,flatten,dense10";
    let params = run(&config(DeviceChoice::Cpu, spec, 1, Some(path.clone())));
    let file = checkpoint::load(&path).unwrap();
    let names: Vec<&str> = file
        .tensors
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !n.starts_with("optimizer."))
        .collect();
    assert_eq!(
        names,
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.2.body.0.weight",
            "layers.2.body.0.bias",
            "layers.2.body.2.weight",
            "layers.2.body.2.bias",
            "layers.2.shortcut.weight",
            "layers.2.shortcut.bias",
            "layers.6.weight",
            "layers.6.bias",
        ]
    );
    let shortcut = file
        .tensors
        .iter()
        .find(|t| t.name == "layers.2.shortcut.weight")
        .unwrap();
    assert_eq!(shortcut.shape, vec![4, 2, 1, 1]);
    let saved = model_file::load(&path).unwrap();
    assert_eq!(saved.graph.spec.to_string(), spec);
    assert_eq!(saved.params, params);
}

#[test]
fn a_gpu_checkpoint_evaluates_the_same_on_the_cpu() {
    let Some(_) = gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpu.safetensors");
    run(&config(
        DeviceChoice::Gpu,
        "conv4k3,relu,pool2,dense10",
        1,
        Some(path.clone()),
    ));
    let model = model_file::load(&path).unwrap();
    let test = load_mnist(&mnist_dir(), Split::Test)
        .unwrap()
        .truncated(300);
    let mut sink = std::io::sink();
    let mut on_cpu = infer::open_model(DeviceChoice::Cpu, &model, &mut sink).unwrap();
    let mut on_gpu = infer::open_model(DeviceChoice::Gpu, &model, &mut sink).unwrap();
    let cpu_report =
        infer::evaluate(on_cpu.as_mut(), &model.graph.normalization, &test, 10).unwrap();
    let gpu_report =
        infer::evaluate(on_gpu.as_mut(), &model.graph.normalization, &test, 10).unwrap();
    assert_eq!(cpu_report.confusion, gpu_report.confusion);
    assert!((cpu_report.loss - gpu_report.loss).abs() < 1e-4);
    assert_eq!(cpu_report.confusion.iter().flatten().sum::<u64>(), 300);
}

#[test]
fn loading_a_file_that_does_not_fit_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    run(&config(
        DeviceChoice::Cpu,
        "dense8,relu,dense10",
        1,
        Some(path.clone()),
    ));
    let mut ckpt = checkpoint::load(&path).unwrap();

    ckpt.metadata
        .insert("gpunet.model".into(), "dense9,relu,dense10".into());
    let bad = dir.path().join("bad.safetensors");
    checkpoint::save(&bad, &ckpt).unwrap();
    let err = format!("{:#}", model_file::load(&bad).unwrap_err());
    assert!(err.contains("tensor layers.0.weight has shape [8, 784] but the model dense9,relu,dense10 needs [9, 784]"), "{err}");

    ckpt.metadata
        .insert("gpunet.model".into(), "dense8,relu,dense10".into());
    ckpt.tensors.retain(|t| t.name != "layers.2.bias");
    checkpoint::save(&bad, &ckpt).unwrap();
    let err = format!("{:#}", model_file::load(&bad).unwrap_err());
    assert!(err.contains("no tensor layers.2.bias"), "{err}");

    let foreign = Checkpoint::default();
    checkpoint::save(&bad, &foreign).unwrap();
    let err = format!("{:#}", model_file::load(&bad).unwrap_err());
    assert!(err.contains("no gpunet.model in its metadata"), "{err}");
}

fn gpunet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(args)
        .output()
        .unwrap()
}

fn write_digit(
    path: &Path,
    pixels: &[u8],
    scale: u32,
    canvas: (u32, u32),
    at: (u32, u32),
    invert: bool,
) {
    let mut img = image::GrayImage::from_pixel(
        canvas.0,
        canvas.1,
        image::Luma([if invert { 255 } else { 0 }]),
    );
    for y in 0..28 * scale {
        for x in 0..28 * scale {
            let v = pixels[((y / scale) * 28 + x / scale) as usize];
            img.put_pixel(
                at.0 + x,
                at.1 + y,
                image::Luma([if invert { 255 - v } else { v }]),
            );
        }
    }
    img.save(path).unwrap();
}

#[test]
fn cli_saves_logs_plots_evaluates_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let out = gpunet(&[
        "train",
        "--device",
        "cpu",
        "--train-limit",
        "2000",
        "--test-limit",
        "500",
        "--epochs",
        "2",
        "--save",
        &p("m.safetensors"),
        "--log",
        &p("log.jsonl"),
        "--log-every",
        "10",
        "--plot",
        &p("curves.png"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The log: 16 steps per epoch, a line at steps 10, 20 and 30 (counted
    // from the start of training) and one per epoch.
    let log = std::fs::read_to_string(p("log.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let epochs: Vec<&serde_json::Value> = lines.iter().filter(|v| v["kind"] == "epoch").collect();
    assert_eq!(epochs.len(), 2);
    assert_eq!(epochs[1]["epoch"], 2);
    assert!(epochs[1]["test_acc"].as_f64().unwrap() > 0.5);
    let steps: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|v| v["kind"] == "steps")
        .map(|v| &v["step"])
        .collect();
    assert_eq!(steps, [10, 20, 30]);

    let plot = image::open(p("curves.png")).unwrap();
    assert_eq!((plot.width(), plot.height()), (1000, 420));

    let out = gpunet(&[
        "eval",
        "--model",
        &p("m.safetensors"),
        "--device",
        "cpu",
        "--test-limit",
        "500",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["count"], 500);
    assert_eq!(report["confusion"].as_array().unwrap().len(), 10);
    let acc = report["accuracy"].as_f64().unwrap();
    assert!(
        (acc - epochs[1]["test_acc"].as_f64().unwrap()).abs() < 1e-9,
        "eval agrees with training's test pass"
    );

    // A test digit as MNIST has it, and the same digit drawn 3× larger,
    // dark on light and off-centre on a bigger page: the same prediction.
    let test = load_mnist(&mnist_dir(), Split::Test).unwrap();
    write_digit(
        &dir.path().join("raw.png"),
        test.image(0),
        1,
        (28, 28),
        (0, 0),
        false,
    );
    write_digit(
        &dir.path().join("photo.png"),
        test.image(0),
        3,
        (160, 120),
        (60, 20),
        true,
    );
    std::fs::write(dir.path().join("empty.png"), b"").unwrap();
    std::fs::write(dir.path().join("text.png"), b"not an image").unwrap();
    let out = gpunet(&[
        "predict",
        "--model",
        &p("m.safetensors"),
        "--device",
        "cpu",
        "--json",
        &p("raw.png"),
        &p("empty.png"),
        &p("photo.png"),
        &p("text.png"),
    ]);
    assert_eq!(out.status.code(), Some(1), "two files fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("empty.png: the file is empty"), "{stderr}");
    assert!(
        stderr.contains("text.png: cannot decode it as an image"),
        "{stderr}"
    );
    let preds: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(preds.len(), 4);
    let top = |v: &serde_json::Value| v["top"][0][0].as_u64().unwrap();
    assert_eq!(
        top(&preds[0]),
        u64::from(test.labels[0]),
        "the raw digit is recognised"
    );
    assert_eq!(
        top(&preds[2]),
        top(&preds[0]),
        "the photographed digit gets the same answer"
    );
}

/// `--snapshot-every`: the first layer's weights at step 0 and every K
/// steps are saved with the model, the same on both devices.
#[test]
fn snapshots_of_the_first_layer_are_saved() {
    let mut devices = vec![DeviceChoice::Cpu];
    if gpu().is_some() {
        devices.push(DeviceChoice::Gpu);
    }
    let mut runs = Vec::new();
    for device in devices {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut cfg = config(device, "dense8,relu,dense10", 2, Some(path.clone()));
        cfg.snapshot_every = 3; // 8 steps per epoch
        let final_params = run(&cfg);
        let saved = model_file::load(&path).unwrap();
        let steps: Vec<usize> = saved.snapshots.iter().map(|(s, _)| *s).collect();
        assert_eq!(steps, vec![0, 3, 6, 11, 14], "{device:?}");
        assert_eq!(
            saved.snapshots[0].1,
            saved.graph.init_params(5)[saved.graph.params[0].range()]
        );
        assert_ne!(
            saved.snapshots[4].1,
            final_params[saved.graph.params[0].range()]
        );
        runs.push(saved.snapshots);
    }
    if let [cpu, gpu] = &runs[..] {
        for ((_, c), (_, g)) in cpu.iter().zip(gpu) {
            common::assert_close("snapshot", g, c, 1e-5, 1e-3);
        }
    }
}

/// An independent reader (`tests/read_safetensors.py`: Python's json and
/// struct, nothing else) sees in a file with bn and residual blocks exactly
/// the tensors gpunet holds: PyTorch's names, dtypes, shapes (conv weights
/// [out_c, in_c, k, k], dense [out, in], a shortcut [out_c, in_c, 1, 1],
/// bn's vectors [C], num_batches_tracked an int64 scalar) and values, bit
/// for bit, plus the model spec in the metadata.
#[test]
fn an_independent_reader_sees_pytorch_names_layouts_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bn_res.safetensors");
    let spec = "conv2k3p1,bn,relu,res(conv2k3p1,bn,relu,conv4k3s2p1,bn),relu,gap,flatten,dense6,bn,relu,dense10";
    run(&config(DeviceChoice::Cpu, spec, 1, Some(path.clone())));
    let saved = model_file::load(&path).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_safetensors.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(&path)
        .output()
        .expect("python3 runs (the CI machine has it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let tensors = read["tensors"].as_object().unwrap();
    let graph = &saved.graph;
    let expected: Vec<(&gpunet::graph::ParamInfo, &[f32], &str)> = graph
        .params
        .iter()
        .map(|p| (p, &saved.params[..], "F32"))
        .chain(graph.buffers.iter().map(|b| {
            let dtype = if b.name.ends_with(".num_batches_tracked") {
                "I64"
            } else {
                "F32"
            };
            (b, &saved.buffers[..], dtype)
        }))
        .collect();
    for (info, values, dtype) in &expected {
        let t = &tensors
            .get(&info.name)
            .unwrap_or_else(|| panic!("the reader finds {}", info.name));
        assert_eq!(t["dtype"], *dtype, "{}", info.name);
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, info.shape, "{}", info.name);
        let read_values: Vec<f32> = t["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        assert_eq!(
            bits(&read_values),
            bits(&values[info.range()]),
            "{}",
            info.name
        );
    }
    // Nothing else but the optimiser's state.
    let model_tensors = tensors
        .keys()
        .filter(|n| !n.starts_with("optimizer."))
        .count();
    assert_eq!(model_tensors, expected.len());
    // PyTorch's layouts, spelled out.
    let shape = |name: &str| tensors[name]["shape"].clone();
    assert_eq!(shape("layers.0.weight"), serde_json::json!([2, 1, 3, 3]));
    assert_eq!(shape("layers.1.running_mean"), serde_json::json!([2]));
    assert_eq!(shape("layers.1.num_batches_tracked"), serde_json::json!([]));
    assert_eq!(
        shape("layers.3.body.3.weight"),
        serde_json::json!([4, 2, 3, 3])
    );
    assert_eq!(shape("layers.3.body.4.running_var"), serde_json::json!([4]));
    assert_eq!(
        shape("layers.3.shortcut.weight"),
        serde_json::json!([4, 2, 1, 1])
    );
    assert_eq!(shape("layers.7.weight"), serde_json::json!([6, 4]));
    assert_eq!(shape("layers.8.weight"), serde_json::json!([6]));
    assert_eq!(shape("layers.10.weight"), serde_json::json!([10, 6]));
    // 400 images in batches of 50.
    assert_eq!(
        tensors["layers.8.num_batches_tracked"]["values"],
        serde_json::json!([8])
    );
    assert_eq!(read["metadata"]["gpunet.model"], spec);
}
