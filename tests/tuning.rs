//! The self-test, the tuner's refusals and the tuning cache, through the
//! binary as a user meets them: `gpunet selftest` with a kernel version
//! made to fail (the test-only `GPUNET_SELFTEST_FAULT`), and `train` on the
//! GPU, cold then warm, with the cache in a temporary `GPUNET_CACHE`.

mod common;

use flate2::write::GzEncoder;
use gpunet::data::idx;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

/// A version this adapter runs and the engine would choose: on lavapipe
/// (subgroups of 8) matmul version 4, elsewhere the tiled version 2 or the
/// registers version 3.
fn engine_matmul(ctx: &gpunet::gpu::GpuContext) -> String {
    let kernels = gpunet::gpu::Kernels::new(ctx);
    format!("matmul {:?}", kernels.matmul_default)
}

fn gpunet(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gpunet"));
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the gpunet binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

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

#[test]
fn selftest_fails_a_broken_version_by_name_and_passes_the_rest() {
    let Some(ctx) = common::gpu() else { return };
    let broken = engine_matmul(&ctx);
    let out = gpunet(
        &["selftest", "--level", "quick", "--json"],
        &[("GPUNET_SELFTEST_FAULT", &broken)],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{broken} NN")), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["passed"], false);
    let kernels = v["kernels"].as_array().unwrap();
    let named = |name: &str| {
        kernels
            .iter()
            .find(|k| k["kernel"] == name)
            .unwrap_or_else(|| panic!("no {name} in {kernels:?}"))
    };
    for form in ["NN", "TN", "NT"] {
        let k = named(&format!("{broken} {form}"));
        assert_eq!(k["passed"], false);
        assert!(k["max_error"].as_f64().unwrap() > k["tolerance"].as_f64().unwrap());
    }
    // Everything else passes, the layers included: they ran without the
    // broken version.
    for k in kernels {
        let name = k["kernel"].as_str().unwrap();
        if !name.starts_with(&broken) {
            assert_eq!(k["passed"], true, "{k}");
        }
    }
    for name in [
        "matmul Naive NT + bias, activation",
        "conv2d Direct backward to the weights",
        "softmax_xent gradient",
        "optim adamw",
        "gather pixels",
        "layer conv",
        "layer dense",
        "layer bn",
        "layer pool",
        "layer dropout",
        "layer gap",
        "layer add",
        "layer activation",
    ] {
        named(name);
    }
}

#[test]
fn train_refuses_a_failing_version_and_caches_tuning_and_selftest() {
    let Some(ctx) = common::gpu() else { return };
    let broken = engine_matmul(&ctx);
    let data = tempfile::tempdir().unwrap();
    write_dataset(data.path(), 40);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let train = |fault: &str| {
        let args = [
            "train",
            "--device",
            "gpu",
            "--model",
            "conv4k3p1,relu,pool2,dense10",
            "--epochs",
            "1",
            "--batch",
            "16",
            "--json",
            "--data",
            data.path().to_str().unwrap(),
        ];
        gpunet(
            &args,
            &[
                ("GPUNET_CACHE", cache_dir),
                ("GPUNET_SELFTEST_FAULT", fault),
            ],
        )
    };

    // Cold: the self-test runs, refuses the broken version, training
    // goes on without it.
    let out = train(&broken);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("first run on"), "{err}");
    assert!(err.contains(&format!("not used: {broken}")), "{err}");
    let first: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).expect("an epoch report");
    let startup = &first["startup"];
    assert!(startup["seconds"].as_f64().unwrap() > 0.0, "{first}");
    assert!(
        startup["selftest_seconds"].as_f64().unwrap() > 0.0,
        "{first}"
    );
    assert_eq!(startup["tuning_cache"], "new");

    let files: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "one file per adapter");
    let path = files[0].as_ref().unwrap().path();
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let refused = broken.trim_start_matches("matmul ");
    assert_eq!(file["selftest"]["refused"]["matmul"][0], refused, "{file}");
    let choices = file["choices"].as_object().unwrap();
    assert!(choices.keys().any(|k| k.starts_with("matmul NT")), "{file}");
    assert!(
        choices.keys().any(|k| k.starts_with("conv2d Forward")),
        "{file}"
    );
    for (shape, version) in choices {
        if shape.starts_with("matmul") {
            assert_ne!(version, refused, "{shape} chose the refused version");
        }
    }

    // Warm: no self-test, no measuring; the refusal still holds (the fault
    // knob is off now, the cache remembers).
    let out = train("");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("first run on"), "{err}");
    assert!(!err.contains("tuning: measuring"), "{err}");
    assert!(err.contains(&format!("not used: {broken}")), "{err}");
    let first: serde_json::Value =
        serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["startup"]["tuning_cache"], "loaded", "{first}");
    assert_eq!(first["startup"]["selftest_seconds"], 0.0, "{first}");

    // A corrupt file is not trusted: the run starts over and rewrites it.
    std::fs::write(&path, "{\"key\": ").unwrap();
    let out = train("");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("corrupt"), "{err}");
    assert!(err.contains("first run on"), "{err}");
    assert!(!err.contains("not used"), "{err}");
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("rewritten whole");
    assert_eq!(file["selftest"]["refused"]["matmul"], serde_json::json!([]));
}
