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

/// `--model cifar` on the 4-class colour set ends in `dense4` (its preset
/// string says `dense10`, CIFAR-10's head), saves the fitted spec, and
/// resumes with `--model cifar` again. A written-out spec ending in the
/// wrong width is still refused.
#[test]
fn the_cifar_preset_fits_its_head_to_the_class_count() {
    let dir = tempfile::tempdir().unwrap();
    write_colour_set(dir.path(), 8, 4, 3).unwrap();
    let saved = dir.path().join("cifar.safetensors");
    let cifar = |epochs: usize, resume: bool| TrainConfig {
        spec: Some(ModelSpec::parse("cifar").unwrap()),
        epochs,
        batch: 4,
        resume: resume.then(|| saved.clone()),
        ..config(dir.path(), DeviceChoice::Cpu, Some(&saved))
    };
    final_accuracy(&cifar(1, false));
    let model = model_file::load(&saved).unwrap();
    assert_eq!(model.graph.classes(), 4);
    let spec = model.graph.spec.to_string();
    assert!(spec.ends_with(",gap,flatten,dense4"), "{spec}");
    let head = model
        .graph
        .params
        .iter()
        .find(|p| p.name == "layers.19.weight")
        .unwrap();
    assert_eq!(head.shape, [4, 128]);
    final_accuracy(&cifar(2, true));
    assert_eq!(model_file::load(&saved).unwrap().progress.epochs_done, 2);
    let written = TrainConfig {
        spec: Some(ModelSpec::parse(gpunet::spec::CIFAR).unwrap()),
        ..cifar(1, false)
    };
    let err = train(&written, &mut std::io::sink(), &mut |_| Ok(())).unwrap_err();
    assert!(
        format!("{err:#}").contains("ends in 10 outputs but the data has 4 classes"),
        "{err:#}"
    );
}
