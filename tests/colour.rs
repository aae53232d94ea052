//! Colour images end to end: a synthetic 3×32×32 dataset written in the
//! CIFAR-10 binary format, whose four classes differ only by colour (red
//! or blue) or only by shape (a filled square or a cross), on noise. A
//! small CNN must learn it to at least 95% on both devices from the same
//! seed, and the saved model must keep the class names.

mod common;

use common::gpu;
use gpunet::backend::Optimizer;
use gpunet::model_file;
use gpunet::schedule::ScheduleKind;
use gpunet::spec::ModelSpec;
use gpunet::train::{train, DeviceChoice, MetricsLine, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const CLASSES: [&str; 4] = ["red square", "red cross", "blue square", "blue cross"];

/// One CIFAR-10 record of class `label`: a 12×12 shape at a random place,
/// in its colour, on dim noise.
fn record(rng: &mut ChaCha8Rng, label: u8) -> Vec<u8> {
    let (colour, cross) = (
        [[220u8, 30, 30], [30, 30, 220]][label as usize / 2],
        label % 2 == 1,
    );
    let (top, left): (i32, i32) = (rng.random_range(2..18), rng.random_range(2..18));
    let mut rec = vec![label];
    for value in colour {
        for y in 0..32 {
            for x in 0..32 {
                let (dy, dx) = (y - top - 6, x - left - 6);
                let inside = dy.abs() < 6 && dx.abs() < 6;
                let on = inside && (!cross || dy.abs() < 2 || dx.abs() < 2);
                let noise: u8 = rng.random_range(0..40);
                rec.push(if on { value } else { noise });
            }
        }
    }
    rec
}

fn write_dataset(dir: &Path) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut batch = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| record(&mut rng, (i % 4) as u8))
            .collect()
    };
    std::fs::write(dir.join("data_batch_1.bin"), batch(480)).unwrap();
    std::fs::write(dir.join("test_batch.bin"), batch(120)).unwrap();
    std::fs::write(dir.join("batches.meta.txt"), CLASSES.join("\n")).unwrap();
}

fn config(data: &Path, device: DeviceChoice, save: Option<&Path>) -> TrainConfig {
    TrainConfig {
        spec: Some(ModelSpec::parse("conv8k3p1,relu,pool2,conv8k3p1,relu,pool2,dense4").unwrap()),
        expected_input: None,
        device,
        epochs: 8,
        batch: 32,
        optimizer: Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 0.0,
            nesterov: false,
        },
        lr: 0.05,
        schedule: ScheduleKind::Constant,
        warmup_steps: 0,
        step_epochs: 1,
        gamma: 1.0,
        seed: 1,
        label_smoothing: 0.0,
        no_bias_decay: false,
        data: data.to_owned(),
        train_limit: None,
        test_limit: None,
        save: save.map(Path::to_owned),
        checkpoint_every: 0,
        resume: None,
        log: None,
        log_every: 0,
        plot: None,
        snapshot_every: 0,
    }
}

fn final_accuracy(cfg: &TrainConfig) -> f64 {
    let mut last = 0.0;
    train(cfg, &mut std::io::sink(), &mut |line| {
        if let MetricsLine::Epoch { report, .. } = line {
            last = report.test_acc;
        }
        Ok(())
    })
    .unwrap();
    last
}

#[test]
fn a_cnn_learns_colour_and_shape_on_both_devices() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let saved = dir.path().join("colour.safetensors");
    let cpu = final_accuracy(&config(dir.path(), DeviceChoice::Cpu, Some(&saved)));
    assert!(cpu >= 0.95, "CPU test accuracy {cpu}");
    let model = model_file::load(&saved).unwrap();
    assert_eq!(model.graph.input.c, 3);
    assert_eq!(model.graph.class_names(), CLASSES);
    if gpu().is_some() {
        let gpu = final_accuracy(&config(dir.path(), DeviceChoice::Gpu, None));
        eprintln!("colour dataset: test accuracy {cpu:.4} on the CPU, {gpu:.4} on the GPU");
        assert!(gpu >= 0.95, "GPU test accuracy {gpu}");
        assert!((gpu - cpu).abs() < 0.02, "GPU {gpu} and CPU {cpu} agree");
    }
}
