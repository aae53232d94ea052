//! Training on a real 2,000-image MNIST subset, testing on 1,000 test
//! images, from the same seed on both devices. Four epochs of the default
//! MLP at batch 64 reach 86.4% here on both (the two devices agree to the
//! image; a network trained on so few images overfits at ~87%); we require
//! 84%.

mod common;

use common::mnist_dir;
use gpunet::backend::Optimizer;
use gpunet::ops::optim::AdamConfig;
use gpunet::schedule::ScheduleKind;
use gpunet::spec::ModelSpec;
use gpunet::train::{train, DeviceChoice, EpochReport, MetricsLine, TrainConfig};

const REQUIRED_TEST_ACCURACY: f64 = 0.84;

fn config(spec: &str, device: DeviceChoice) -> TrainConfig {
    TrainConfig {
        spec: Some(ModelSpec::parse(spec).unwrap()),
        expected_input: None,
        device,
        epochs: 4,
        batch: 64,
        optimizer: Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: false,
        },
        lr: 0.1,
        schedule: ScheduleKind::Constant,
        warmup_steps: 0,
        step_epochs: 1,
        gamma: 1.0,
        seed: 0,
        label_smoothing: 0.0,
        no_bias_decay: false,
        data: mnist_dir(),
        train_limit: Some(2000),
        test_limit: Some(1000),
        save: None,
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

fn run(cfg: &TrainConfig) -> Vec<EpochReport> {
    let mut reports = Vec::new();
    train(cfg, &mut std::io::sink(), &mut |line| {
        if let MetricsLine::Epoch { report, .. } = line {
            reports.push(report.clone());
        }
        Ok(())
    })
    .unwrap();
    reports
}

#[test]
fn mlp_learns_mnist_on_both_devices() {
    let cpu = run(&config("mlp", DeviceChoice::Cpu));
    let last = cpu.last().unwrap();
    assert!(
        last.test_acc >= REQUIRED_TEST_ACCURACY,
        "CPU: test accuracy {:.3} < {REQUIRED_TEST_ACCURACY}",
        last.test_acc
    );
    assert!(cpu[0].train_loss > last.train_loss, "training loss falls");

    if common::gpu().is_none() {
        return;
    }
    let gpu = run(&config("mlp", DeviceChoice::Gpu));
    let last_gpu = gpu.last().unwrap();
    assert_eq!(last_gpu.device, "gpu");
    assert!(
        last_gpu.test_acc >= REQUIRED_TEST_ACCURACY,
        "GPU: test accuracy {:.3} < {REQUIRED_TEST_ACCURACY}",
        last_gpu.test_acc
    );
    // Same seed, same order, same weights: the devices differ only by
    // rounding, so their accuracies agree closely.
    assert!(
        (last_gpu.test_acc - last.test_acc).abs() <= 0.01,
        "GPU {:.3} vs CPU {:.3}",
        last_gpu.test_acc,
        last.test_acc
    );
}

/// A small CNN with Adam on a 1,000-image subset, three epochs: measured
/// 91.6% on 500 test images on the CPU; we require 85%. (Small so that it
/// stays quick on lavapipe, where a CNN step is slow.)
#[test]
fn cnn_learns_mnist_on_both_devices() {
    const REQUIRED: f64 = 0.85;
    let mut cfg = config(
        "conv8k3p1,relu,pool2,conv16k3p1,relu,pool2,dense10",
        DeviceChoice::Cpu,
    );
    cfg.epochs = 3;
    cfg.batch = 32;
    cfg.train_limit = Some(1000);
    cfg.test_limit = Some(500);
    cfg.lr = 3e-3;
    cfg.optimizer = Optimizer::Adam(AdamConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
    });
    let cpu = run(&cfg);
    let acc = cpu.last().unwrap().test_acc;
    assert!(
        acc >= REQUIRED,
        "CPU CNN: test accuracy {acc:.3} < {REQUIRED}"
    );
    if common::gpu().is_none() {
        return;
    }
    cfg.device = DeviceChoice::Gpu;
    let gpu = run(&cfg);
    let gpu_acc = gpu.last().unwrap().test_acc;
    assert!(
        gpu_acc >= REQUIRED,
        "GPU CNN: test accuracy {gpu_acc:.3} < {REQUIRED}"
    );
    assert!(
        (gpu_acc - acc).abs() <= 0.01,
        "GPU {gpu_acc:.3} vs CPU {acc:.3}"
    );
}
