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
use gpunet::train::{train, DeviceChoice, TrainConfig};
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

const COLOURS: [(&str, [u8; 3]); 3] = [
    ("red", [230, 20, 20]),
    ("green", [20, 230, 20]),
    ("blue", [20, 20, 230]),
];

/// A set whose classes differ only by colour: a 16×16 patch of the class's
/// colour at a random place on gray noise.
fn write_colour_only_dataset(dir: &Path) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut batch = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let label = (i % 3) as u8;
                let colour = COLOURS[label as usize].1;
                let (top, left): (i32, i32) = (rng.random_range(0..16), rng.random_range(0..16));
                let noise: Vec<u8> = (0..1024).map(|_| rng.random_range(60..120)).collect();
                let mut rec = vec![label];
                for value in colour {
                    for (k, &n) in noise.iter().enumerate() {
                        let (y, x) = ((k / 32) as i32, (k % 32) as i32);
                        let inside = (top..top + 16).contains(&y) && (left..left + 16).contains(&x);
                        rec.push(if inside { value } else { n });
                    }
                }
                rec
            })
            .collect()
    };
    std::fs::write(dir.join("data_batch_1.bin"), batch(300)).unwrap();
    std::fs::write(dir.join("test_batch.bin"), batch(60)).unwrap();
    let names: Vec<&str> = COLOURS.iter().map(|c| c.0).collect();
    std::fs::write(dir.join("batches.meta.txt"), names.join("\n")).unwrap();
}

/// A linear (`dense3`) model on colour-only classes: each class's template
/// has that class's colour (its strongest channel on average is the class's
/// channel), and inspect draws the report in colour with the class names.
#[test]
fn a_linear_models_templates_have_their_classes_colours_and_inspect_draws_them() {
    use gpunet::inspect::analysis::{self, AscentSettings};
    use gpunet::inspect::report::{self, InspectConfig};
    let dir = tempfile::tempdir().unwrap();
    write_colour_only_dataset(dir.path());
    let saved = dir.path().join("linear.safetensors");
    let cfg = TrainConfig {
        spec: Some(ModelSpec::parse("dense3").unwrap()),
        epochs: 3,
        lr: 0.01,
        snapshot_every: 5,
        ..config(dir.path(), DeviceChoice::Cpu, Some(&saved))
    };
    let accuracy = final_accuracy(&cfg);
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
    let model = model_file::load(&saved).unwrap();
    let templates =
        analysis::first_layer_templates(&model.graph, &model.params[model.graph.params[0].range()]);
    assert_eq!(templates.len(), 3);
    for (class, template) in templates.iter().enumerate() {
        assert_eq!(template.channels, 3);
        let means = template.channel_means();
        let strongest = (0..3)
            .max_by(|&a, &b| means[a].total_cmp(&means[b]))
            .unwrap();
        eprintln!(
            "{}: mean weight per channel (R, G, B) {means:.4?}",
            COLOURS[class].0
        );
        assert_eq!(
            strongest, class,
            "the {} template's mean colour",
            COLOURS[class].0
        );
        assert!(means[class] > 0.0);
    }

    let out = dir.path().join("report");
    let inspect = InspectConfig {
        model: saved,
        out: out.clone(),
        device: DeviceChoice::Cpu,
        data: dir.path().to_owned(),
        test_limit: None,
        unit: None,
        pca_layer: None,
        top_k: 3,
        mistakes: 6,
        ascent: AscentSettings {
            steps: 10,
            ..Default::default()
        },
        ascent_units: 3,
        json: false,
    };
    let index = report::run(&inspect, &mut std::io::sink()).unwrap();
    let html = std::fs::read_to_string(index).unwrap();
    for name in ["red", "green", "blue"] {
        assert!(html.contains(&format!(">{name}<")), "{name} in the report");
    }
    assert!(html.contains("mid-gray"), "the colour scale is explained");
    // The pictures are in colour: the templates' tiles and the maximised
    // inputs have pixels whose channels differ widely.
    for picture in [
        "templates.png",
        "maximise_outputs.png",
        "units/0-0-template.png",
    ] {
        let image = image::open(out.join(picture)).unwrap().to_rgb8();
        let coloured = image
            .pixels()
            .filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 60)
            .count();
        assert!(coloured > 100, "{picture}: {coloured} coloured pixels");
    }
    // The red template's tile is red on average: sample its page's picture
    // (one tile, framed), where red outweighs green and blue.
    let tile = image::open(out.join("units/0-0-template.png"))
        .unwrap()
        .to_rgb8();
    let sums = tile.pixels().fold([0u64; 3], |mut s, p| {
        for (sum, &channel) in s.iter_mut().zip(&p.0) {
            *sum += u64::from(channel);
        }
        s
    });
    assert!(sums[0] > sums[1] && sums[0] > sums[2], "{sums:?}");
}
