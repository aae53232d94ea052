//! Colour images end to end: a synthetic 3×32×32 dataset written in the
//! CIFAR-10 binary format, whose four classes differ only by colour (red
//! or blue) or only by shape (a filled square or a cross), on noise. A
//! small CNN must learn it to at least 95% on both devices from the same
//! seed, and the saved model must keep the class names. On the same data:
//! per-channel normalisation and augmentation agree across devices, survive
//! a saved file and a resume, and a training set split over several GPU
//! buffers trains bit for bit as one.

mod common;

use common::{assert_close, gpu};
use gpunet::backend::{Backend, EpochPlan, Optimizer};
use gpunet::checkpoint;
use gpunet::cpu::CpuTrainer;
use gpunet::data::synthetic::{colour_record, write_colour_set, COLOUR_CLASSES};
use gpunet::data::{load_dataset, Dataset, Normalization, NormalizeChoice, Split};
use gpunet::gpu::GpuTrainer;
use gpunet::graph::{epoch_order, Graph, Shape};
use gpunet::infer;
use gpunet::model_file;
use gpunet::ops::gather::reference::{gather, GatherSettings};
use gpunet::ops::gather::{Augment, Draw};
use gpunet::schedule::ScheduleKind;
use gpunet::spec::ModelSpec;
use gpunet::train::{train, DeviceChoice, MetricsLine, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
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
        // The learning test's rate was tuned on / 255 inputs; per-channel
        // statistics (the default for colour) are tested below.
        normalize: NormalizeChoice::DivideBy255,
        augment: Default::default(),
        image_size: None,
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
    // predict on PNGs of new examples, twice the size (resized to 32×32).
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let files: Vec<std::path::PathBuf> = (0..8u8)
        .map(|i| {
            let rec = colour_record(&mut rng, i % 4);
            let png = dir.path().join(format!("{i}.png"));
            let image = image::RgbImage::from_fn(64, 64, |x, y| {
                let at = |c: usize| rec[1 + c * 1024 + (y / 2 * 32 + x / 2) as usize];
                image::Rgb([at(0), at(1), at(2)])
            });
            image.save(&png).unwrap();
            png
        })
        .collect();
    let mut backend = infer::open_model(DeviceChoice::Cpu, &model, &mut std::io::sink()).unwrap();
    let predictions = infer::predict_files(backend.as_mut(), &model.graph, &files, 1).unwrap();
    let right = predictions
        .iter()
        .enumerate()
        .filter(|(i, p)| p.top[0].0 == i % 4)
        .count();
    assert!(right >= 7, "{right} of 8 pictures predicted right");
    if gpu().is_some() {
        let gpu = final_accuracy(&config(dir.path(), DeviceChoice::Gpu, None));
        eprintln!("colour dataset: test accuracy {cpu:.4} on the CPU, {gpu:.4} on the GPU");
        assert!(gpu >= 0.95, "GPU test accuracy {gpu}");
        assert!((gpu - cpu).abs() < 0.02, "GPU {gpu} and CPU {cpu} agree");
    }
}

/// The colour dataset's first `n` training images.
fn colour_train(dir: &Path, n: usize) -> Dataset {
    load_dataset(dir, Split::Train).unwrap().truncated(n)
}

/// A small CNN on the colour data with per-channel normalisation from the
/// training set and the given augmentation.
fn colour_graph(data: &Dataset, augment: Augment) -> Graph {
    let spec = ModelSpec::parse("conv4k3p1,relu,pool2,dense4").unwrap();
    let input = Shape { c: 3, h: 32, w: 32 };
    let mut graph = Graph::new(&spec, input, 4).unwrap();
    graph.normalization = Normalization::per_channel(data).unwrap();
    graph.augment = augment;
    graph.seed = 11;
    graph
}

const SGD: Optimizer = Optimizer::Sgd {
    momentum: 0.9,
    weight_decay: 0.0,
    nesterov: false,
};

/// One epoch (a short last batch included) of `trainer` from step 5.
fn one_epoch(trainer: &mut dyn Backend, n: usize, batch: usize) -> Vec<f32> {
    let order = epoch_order(n, 2, 1);
    let lrs = vec![0.05; n.div_ceil(batch)];
    let plan = EpochPlan {
        order: &order,
        lrs: &lrs,
        first_step: 5,
        report_every: 0,
        snapshot_every: 0,
    };
    trainer.train_epoch(plan, &mut |_| {}).unwrap();
    trainer.params().unwrap()
}

#[test]
fn gpu_and_cpu_epochs_agree_with_per_channel_normalisation_and_augmentation() {
    let Some(ctx) = gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let (n, batch) = (40, 16);
    let data = colour_train(dir.path(), n);
    let augment = Augment {
        crop: 4,
        flip: true,
    };
    let graph = colour_graph(&data, augment);
    assert!(matches!(
        graph.normalization,
        Normalization::PerChannel { .. }
    ));
    let init = graph.init_params(3);
    let mut cpu = CpuTrainer::new(&graph, batch, SGD, init.clone(), data.clone(), data.clone());
    let mut on_gpu = GpuTrainer::new(ctx, &graph, batch, SGD, &init, &data, &data).unwrap();
    let c = one_epoch(&mut cpu, n, batch);
    let g = one_epoch(&mut on_gpu, n, batch);
    // As train_step.rs: f32 sums in another order, over 3 steps.
    assert_close("augmented colour epoch", &g, &c, 2e-5, 1e-3);

    // The augmentation changed what was learned (the same run without it).
    let mut plain = CpuTrainer::new(
        &colour_graph(&data, Augment::default()),
        batch,
        SGD,
        init.clone(),
        data.clone(),
        data,
    );
    let p = one_epoch(&mut plain, n, batch);
    let moved = p.iter().zip(&c).filter(|(a, b)| a != b).count();
    assert!(
        moved > p.len() / 2,
        "only {moved} weights differ without augmentation"
    );
}

#[test]
fn a_training_set_split_over_several_buffers_trains_bit_for_bit_alike() {
    let Some(mut ctx) = gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let (n, batch) = (40, 16);
    let data = colour_train(dir.path(), n);
    let graph = colour_graph(
        &data,
        Augment {
            crop: 2,
            flip: true,
        },
    );
    let init = graph.init_params(4);
    let mut whole =
        GpuTrainer::new(gpu().unwrap(), &graph, batch, SGD, &init, &data, &data).unwrap();
    assert_eq!(whole.training_chunks(), 1);
    // Buffers of at most 13 images (and not a whole number of words' worth
    // of anything in particular): 40 images in 4 buffers.
    ctx.max_data_buffer_bytes = 13 * 3072 + 8;
    let mut split = GpuTrainer::new(ctx, &graph, batch, SGD, &init, &data, &data).unwrap();
    assert!(
        split.training_chunks() >= 3,
        "{} buffers",
        split.training_chunks()
    );
    let a = one_epoch(&mut whole, n, batch);
    let b = one_epoch(&mut split, n, batch);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b), "split and whole runs differ");
    assert_eq!(
        whole.evaluate(&mut |_| {}).unwrap(),
        split.evaluate(&mut |_| {}).unwrap()
    );
    let (pixels, all) = split.device_bytes();
    assert!(
        pixels >= 2 * (n * 3072) as u64 && all > pixels,
        "{pixels} of {all}"
    );
}

#[test]
fn an_image_larger_than_a_binding_is_refused_with_the_sizes() {
    let Some(mut ctx) = gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let data = colour_train(dir.path(), 8);
    let graph = colour_graph(&data, Augment::default());
    ctx.max_data_buffer_bytes = 2048;
    let init = graph.init_params(0);
    let Err(err) = GpuTrainer::new(ctx, &graph, 4, SGD, &init, &data, &data) else {
        panic!("an image larger than a binding was accepted")
    };
    let text = format!("{err:#}");
    assert!(
        text.contains("3072 bytes") && text.contains("2048 bytes"),
        "{text}"
    );
}

#[test]
fn a_known_image_is_cropped_and_flipped_as_torchvision_would() {
    // 3×3 image 1..9, padded by 1 to 5×5, cropped at row 2, column 0, then
    // mirrored: [[0,4,5],[0,7,8],[0,0,0]] mirrored is [[5,4,0],[8,7,0],[0,0,0]].
    let augment = Augment {
        crop: 1,
        flip: true,
    };
    let image: Vec<u8> = (1..=9).collect();
    let (seed, step) = (5, 7);
    let img = (0..10_000u32)
        .find(|&i| {
            augment.draw(seed, step, i)
                == (Draw {
                    dx: 0,
                    dy: 2,
                    flip: true,
                })
        })
        .unwrap();
    let mut images = vec![0u8; 9 * (img as usize + 1)];
    images[img as usize * 9..].copy_from_slice(&image);
    let labels = vec![0u8; img as usize + 1];
    let scale = Normalization::DivideBy255.scale(1);
    let settings = GatherSettings {
        shape: Shape { c: 1, h: 3, w: 3 },
        scale: &scale,
        augment,
        seed,
        step,
    };
    let (mut x, mut y) = (vec![0.0; 9], vec![0u32; 1]);
    gather(&images, &labels, &settings, &[img], &mut x, &mut y);
    let bytes: Vec<u8> = x.iter().map(|v| (v * 255.0).round() as u8).collect();
    assert_eq!(bytes, [5, 4, 0, 8, 7, 0, 0, 0, 0]);

    // Steps draw afresh: the same image is cut differently over 8 steps.
    let crops: std::collections::HashSet<Vec<u32>> = (0..8)
        .map(|step| {
            let settings = GatherSettings {
                step,
                ..settings.clone()
            };
            gather(&images, &labels, &settings, &[img], &mut x, &mut y);
            x.iter().map(|v| v.to_bits()).collect()
        })
        .collect();
    assert!(
        crops.len() >= 4,
        "{} different crops in 8 steps",
        crops.len()
    );
}

#[test]
fn per_channel_normalisation_round_trips_and_old_files_load_as_255() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path());
    let saved = dir.path().join("colour.safetensors");
    let mut cfg = config(dir.path(), DeviceChoice::Cpu, Some(&saved));
    cfg.normalize = NormalizeChoice::Auto;
    cfg.epochs = 1;
    cfg.train_limit = Some(64);
    cfg.test_limit = Some(40);
    let acc = final_accuracy(&cfg);
    let model = model_file::load(&saved).unwrap();
    let want = Normalization::per_channel(&colour_train(dir.path(), 64)).unwrap();
    assert_eq!(
        model.graph.normalization, want,
        "the default for colour data"
    );
    // eval with the stored normalisation reproduces the training run's test pass.
    let test = load_dataset(dir.path(), Split::Test).unwrap().truncated(40);
    let mut backend = infer::open_model(DeviceChoice::Cpu, &model, &mut std::io::sink()).unwrap();
    let report = infer::evaluate(backend.as_mut(), &model.graph.normalization, &test, 4).unwrap();
    assert_eq!(report.accuracy, acc);

    // predict prepares a PNG of a test image exactly as eval's inputs.
    let png = dir.path().join("test0.png");
    let image = image::RgbImage::from_fn(32, 32, |x, y| {
        let at = |c: usize| test.image(0)[c * 1024 + (y * 32 + x) as usize];
        image::Rgb([at(0), at(1), at(2)])
    });
    image.save(&png).unwrap();
    let predicted = infer::predict_files(backend.as_mut(), &model.graph, &[png], 4).unwrap();
    let logits = infer::dataset_logits(
        backend.as_mut(),
        &model.graph.normalization,
        &test.truncated(1),
    )
    .unwrap();
    let mut want: Vec<(usize, f64)> = infer::softmax(&logits).into_iter().enumerate().collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(predicted[0].top, want);

    // The metadata is JSON a reader can parse.
    let mut ckpt = checkpoint::load(&saved).unwrap();
    let text = ckpt.metadata["gpunet.normalisation"].clone();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["kind"], "per_channel");
    assert_eq!(json["mean"].as_array().unwrap().len(), 3);

    // A file from before: the old text, or nothing at all, is / 255.
    let old = dir.path().join("old.safetensors");
    for legacy in [Some("x = u8 pixel / 255"), None] {
        match legacy {
            Some(t) => ckpt
                .metadata
                .insert("gpunet.normalisation".into(), t.into()),
            None => ckpt.metadata.remove("gpunet.normalisation"),
        };
        checkpoint::save(&old, &ckpt).unwrap();
        let model = model_file::load(&old).unwrap();
        assert_eq!(model.graph.normalization, Normalization::DivideBy255);
    }
    // A broken one names the key.
    ckpt.metadata.insert(
        "gpunet.normalisation".into(),
        "{\"kind\":\"per_channel\",\"mean\":[0.5],\"std\":[0.2]}".into(),
    );
    checkpoint::save(&old, &ckpt).unwrap();
    let Err(err) = model_file::load(&old) else {
        panic!("a normalisation for 1 channel was accepted for 3")
    };
    let err = format!("{err:#}");
    assert!(
        err.contains("gpunet.normalisation") && err.contains("3 channels"),
        "{err}"
    );
}

#[test]
fn an_augmented_run_resumes_exactly() {
    let mut devices = vec![DeviceChoice::Cpu];
    if gpu().is_some() {
        devices.push(DeviceChoice::Gpu);
    }
    for device in devices {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path());
        let run = |epochs: usize, save: &Path, resume: Option<&Path>| {
            let mut cfg = config(dir.path(), device, Some(save));
            cfg.spec = Some(ModelSpec::parse("conv4k3p1,relu,pool2,dense4").unwrap());
            cfg.epochs = epochs;
            cfg.train_limit = Some(40);
            cfg.test_limit = Some(8);
            cfg.batch = 16;
            cfg.augment = Augment {
                crop: 4,
                flip: true,
            };
            cfg.resume = resume.map(Path::to_owned);
            final_accuracy(&cfg);
            model_file::load(save).unwrap().params
        };
        let straight = run(2, &dir.path().join("straight.safetensors"), None);
        let half = dir.path().join("half.safetensors");
        run(1, &half, None);
        let resumed = run(2, &dir.path().join("resumed.safetensors"), Some(&half));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&straight),
            bits(&resumed),
            "{device:?}: resumed run differs"
        );
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
        nodes: Vec::new(),
        top_k: 3,
        mistakes: 6,
        ascent: AscentSettings {
            steps: 10,
            ..Default::default()
        },
        ascent_units: 3,
        json: false,
        prompts: None,
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
