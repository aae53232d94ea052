//! Training on a real 2,000-image MNIST subset, testing on 1,000 test
//! images, from the same seed on both devices. Four epochs of the default
//! MLP at batch 64 reach 86.4% here on both (the two devices agree to the
//! image; a network trained on so few images overfits at ~87%); we require
//! 84%.

mod common;

use common::mnist_dir;
use gpunet::graph::{Activation, ModelSpec};
use gpunet::train::{train, DeviceChoice, EpochReport, TrainConfig};

const REQUIRED_TEST_ACCURACY: f64 = 0.84;

fn run(device: DeviceChoice) -> Vec<EpochReport> {
    let cfg = TrainConfig {
        spec: ModelSpec {
            layers: vec![784, 128, 10],
            activation: Activation::Relu,
        },
        device,
        epochs: 4,
        batch: 64,
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 0.0,
        seed: 0,
        data: mnist_dir(),
        train_limit: Some(2000),
        test_limit: Some(1000),
    };
    let mut reports = Vec::new();
    train(&cfg, &mut std::io::sink(), &mut |r| {
        reports.push(r.clone());
        Ok(())
    })
    .unwrap();
    reports
}

#[test]
fn mlp_learns_mnist_on_both_devices() {
    let cpu = run(DeviceChoice::Cpu);
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
    let gpu = run(DeviceChoice::Gpu);
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
