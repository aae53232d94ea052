//! Colour images end to end: a synthetic 3×32×32 dataset written in the
//! CIFAR-10 binary format, whose four classes differ only by colour (red
//! or blue) or only by shape (a filled square or a cross), on noise. A
//! small CNN must learn it to at least 95% on both devices from the same
//! seed, and the saved model must keep the class names.

mod common;

use common::gpu;
use gpunet::backend::Optimizer;
use gpunet::data::synthetic::{write_colour_set, COLOUR_CLASSES};
use gpunet::model_file;
use gpunet::schedule::ScheduleKind;
use gpunet::spec::ModelSpec;
use gpunet::train::{train, DeviceChoice, TrainConfig};
use std::path::Path;

const CLASSES: [&str; 4] = COLOUR_CLASSES;

fn write_dataset(dir: &Path) {
    write_colour_set(dir, 480, 120, 7).unwrap();
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
    train(cfg, &mut std::io::sink(), &mut |r| {
        last = r.test_acc;
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
