//! `gpunet explain`: the attributions against what they must be (a linear
//! model's saliency is |W_c|; integrated gradients are complete; occlusion
//! finds the only region a model reads), the GPU against the CPU, colour
//! models through their per-channel normalisation, and the command's
//! output and refusals.

mod common;

use common::{assert_close, gpu, mnist_dir};
use gpunet::backend::{Backend, EpochPlan, Optimizer};
use gpunet::cpu::CpuTrainer;
use gpunet::data::{load_mnist, Dataset, Normalization, Split};
use gpunet::explain::attribution::{
    self, patch_starts, per_pixel, trapezoid_weights, uniform_input, Baseline, PerPixel, Settings,
};
use gpunet::gpu::GpuTrainer;
use gpunet::graph::{epoch_order, Graph, Shape};
use gpunet::model_file::{self, Progress, SavedModel};
use gpunet::spec::ModelSpec;
use std::path::Path;
use std::process::{Command, Output};

const SGD: Optimizer = Optimizer::Sgd {
    momentum: 0.0,
    weight_decay: 0.0,
    nesterov: false,
};
const MNIST: Shape = Shape { c: 1, h: 28, w: 28 };

fn graph(spec: &str) -> Graph {
    Graph::new(&ModelSpec::parse(spec).unwrap(), MNIST, 10).unwrap()
}

fn test_images(n: usize) -> (Dataset, Vec<Vec<f32>>) {
    let data = load_mnist(&mnist_dir(), Split::Test).unwrap().truncated(n);
    let xs = (0..n)
        .map(|i| {
            data.image(i)
                .iter()
                .map(|&p| f32::from(p) / 255.0)
                .collect()
        })
        .collect();
    (data, xs)
}

fn cpu(graph: &Graph, params: Vec<f32>, data: &Dataset, batch: usize) -> CpuTrainer {
    CpuTrainer::new(graph, batch, SGD, params, data.clone(), data.clone())
}

#[test]
fn patches_cover_every_pixel_and_trapezoid_weights_sum_to_one() {
    assert_eq!(
        patch_starts(28, 4, 2),
        (0..=24).step_by(2).collect::<Vec<_>>()
    );
    assert_eq!(patch_starts(28, 4, 5), vec![0, 5, 10, 15, 20, 24]);
    assert_eq!(patch_starts(4, 4, 3), vec![0]);
    let w = trapezoid_weights(64);
    assert_eq!(w.len(), 65);
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert_eq!(w[0], w[1] / 2.0);
}

/// z_c = W_c·x + b_c, so ∂z_c/∂x = W_c: the saliency is |W_c| exactly,
/// gradient × input is x ⊙ W_c and integrated gradients (x − x′) ⊙ W_c,
/// complete to rounding. On both devices.
#[test]
fn a_linear_models_saliency_is_the_absolute_weights() {
    let g = graph("dense10");
    let params = g.init_params(3);
    let (data, xs) = test_images(4);
    let weights = &params[g.params[0].range()];
    let mut backends: Vec<Box<dyn Backend>> = vec![Box::new(cpu(&g, params.clone(), &data, 64))];
    if let Some(ctx) = gpu() {
        backends.push(Box::new(
            GpuTrainer::new(ctx, &g, 64, SGD, &params, &data, &data).unwrap(),
        ));
    }
    for mut backend in backends {
        let settings = Settings {
            baseline: Baseline::Grey,
            ..Settings::default()
        };
        let found = attribution::explain(backend.as_mut(), &g, &xs, Some(2), &settings).unwrap();
        for (x, e) in xs.iter().zip(&found) {
            assert!(!e.classes.is_empty());
            for maps in &e.classes {
                let w_c = &weights[maps.class * 784..(maps.class + 1) * 784];
                let abs: Vec<f32> = w_c.iter().map(|w| w.abs()).collect();
                let what = format!("{}: class {}", backend.device(), maps.class);
                assert_close(
                    &format!("{what} saliency"),
                    &maps.saliency,
                    &abs,
                    1e-7,
                    1e-6,
                );
                let gxi: Vec<f32> = w_c.iter().zip(x).map(|(w, x)| w * x).collect();
                assert_close(
                    &format!("{what} gradient × input"),
                    &maps.gradient_times_input,
                    &gxi,
                    1e-7,
                    1e-6,
                );
                let ig: Vec<f32> = w_c.iter().zip(x).map(|(w, x)| w * (x - 0.5)).collect();
                assert_close(
                    &format!("{what} IG"),
                    &maps.integrated_gradients,
                    &ig,
                    1e-6,
                    1e-5,
                );
                let gap = maps.completeness_gap_relative.unwrap();
                assert!(gap < 1e-4, "{what}: completeness gap {gap}");
            }
        }
    }
}

/// `graph` trained by SGD over the first 2000 training
/// images (three epochs of 32 steps of 64) on the CPU, from seed 5.
fn trained(g: &Graph) -> CpuTrainer {
    let train = load_mnist(&mnist_dir(), Split::Train)
        .unwrap()
        .truncated(2000);
    let sgd = Optimizer::Sgd {
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
    };
    let mut backend = CpuTrainer::new(g, 64, sgd, g.init_params(5), train.clone(), train);
    let steps = 2000usize.div_ceil(64);
    let lrs = vec![0.1; steps];
    let mut stats = Default::default();
    for epoch in 0..3 {
        let order = epoch_order(2000, 5, epoch);
        let plan = EpochPlan {
            order: &order,
            lrs: &lrs,
            first_step: epoch * steps,
            report_every: 0,
            snapshot_every: 0,
        };
        stats = backend.train_epoch(plan, &mut |_| {}).unwrap();
    }
    assert!(stats.accuracy() > 0.6, "training went wrong: {stats:?}");
    backend
}

/// Integrated gradients with 64 steps are complete to within 1% for the
/// predicted class, on a ReLU MLP and a ReLU CNN briefly trained (see
/// `trained`), on ten MNIST test digits. (With untrained weights the
/// logits barely move between the baseline and the image, and a gap of
/// 1e-4 is then more than 1% of that difference. The gaps here run up to
/// 0.16% for the MLP and 0.90% for the CNN; a ReLU network's logit is
/// piecewise linear along the path, so the trapezoid rule's error comes
/// from the kinks, and a deeper dense64,relu,dense32,relu MLP trained the
/// same way misses 1% on one of these ten digits, by 1.07%.)
#[test]
fn integrated_gradients_are_complete_within_one_percent() {
    let (_, xs) = test_images(10);
    for spec in [
        "dense128,relu,dense10",
        "conv4k3p1,relu,pool2,conv6k3p1,relu,pool2,dense16,relu,dense10",
    ] {
        let g = graph(spec);
        let mut backend = trained(&g);
        let found =
            attribution::explain(&mut backend, &g, &xs, None, &Settings::default()).unwrap();
        for (i, e) in found.iter().enumerate() {
            let maps = &e.classes[0];
            let gap = maps.completeness_gap_relative.unwrap();
            assert!(
                gap < 0.01,
                "{spec}: image {i}: Σ IG = {}, logit(x) − logit(x′) = {} − {}: gap {:.3}%",
                maps.integrated_sum,
                maps.logit,
                maps.baseline_logit,
                100.0 * gap
            );
        }
    }
}

/// A model whose class 0 reads only rows 10..16, columns 4..10 (weights
/// 0.1 there, 0 elsewhere and for every other class): occluding that region
/// is the only thing that lowers p_0, so the occlusion map peaks inside it
/// and is 0 wherever no patch touching the region covers.
#[test]
fn occlusion_finds_the_only_region_a_model_reads() {
    let g = graph("dense10");
    let mut params = vec![0.0; g.param_len];
    let inside = |r: usize, c: usize| (10..16).contains(&r) && (4..10).contains(&c);
    for r in 0..28 {
        for c in 0..28 {
            if inside(r, c) {
                params[r * 28 + c] = 0.1; // W[0, r·28 + c]
            }
        }
    }
    let (data, _) = test_images(1);
    let mut backend = cpu(&g, params, &data, 256);
    let x = vec![vec![1.0f32; 784]];
    let found = attribution::explain(&mut backend, &g, &x, None, &Settings::default()).unwrap();
    let maps = &found[0].classes[0];
    assert_eq!(maps.class, 0);
    let (argmax, max) = maps
        .occlusion
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
    assert!(max > 0.0);
    assert!(
        inside(argmax / 28, argmax % 28),
        "the occlusion map peaks at row {}, column {}, outside the region",
        argmax / 28,
        argmax % 28
    );
    let (r0, c0) = maps.occlusion_max_at;
    assert!(inside(r0 + 1, c0 + 1) && inside(r0 + 2, c0 + 2));
    for r in 0..28 {
        for c in 0..28 {
            // A 4-pixel patch covering (r, c) reaches at most 3 pixels away.
            let near = (7..19).contains(&r) && (1..13).contains(&c);
            if !near {
                assert_eq!(maps.occlusion[r * 28 + c], 0.0, "row {r}, column {c}");
            }
        }
    }
}

/// Every map on the GPU equals the CPU's within the kernels' tolerance, on
/// a CNN with batch norm in evaluation mode (running statistics set away
/// from their start) and a batch smaller than the rows, so that the
/// gradients go through several planned batches.
#[test]
fn gpu_and_cpu_attributions_agree() {
    let Some(ctx) = gpu() else { return };
    let g = graph("conv4k3p1,bn,relu,pool2,dense12,relu,dense10");
    let params = g.init_params(11);
    let (data, xs) = test_images(3);
    let buffers: Vec<f32> = g
        .init_buffers()
        .iter()
        .enumerate()
        .map(|(i, v)| v + 0.1 + 0.05 * (i % 7) as f32)
        .collect();
    let mut c = cpu(&g, params.clone(), &data, 48);
    let mut gp = GpuTrainer::new(ctx, &g, 48, SGD, &params, &data, &data).unwrap();
    c.load_buffers(&buffers).unwrap();
    gp.load_buffers(&buffers).unwrap();
    let settings = Settings {
        steps: 16,
        ..Settings::default()
    };
    let want = attribution::explain(&mut c, &g, &xs, Some(4), &settings).unwrap();
    let got = attribution::explain(&mut gp, &g, &xs, Some(4), &settings).unwrap();
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w.predicted, g.predicted, "image {i}");
        for (w, g) in w.classes.iter().zip(&g.classes) {
            let what = format!("image {i}, class {}", w.class);
            assert_close(
                &format!("{what} saliency"),
                &g.saliency,
                &w.saliency,
                1e-5,
                1e-3,
            );
            assert_close(
                &format!("{what} IG"),
                &g.integrated_gradients,
                &w.integrated_gradients,
                1e-5,
                1e-3,
            );
            assert_close(
                &format!("{what} occlusion"),
                &g.occlusion,
                &w.occlusion,
                1e-5,
                1e-3,
            );
            assert!(
                (w.integrated_sum - g.integrated_sum).abs() < 1e-3 * (1.0 + w.integrated_sum.abs())
            );
        }
    }
}

// --- Colour models ---------------------------------------------------------

/// Black, grey and white of a /255 model are the inputs 0, 0.5 and 1
/// exactly, as before baselines were defined in pixel space.
#[test]
fn baselines_of_a_divide_by_255_model_are_0_half_and_1() {
    let g = graph("dense10");
    for (baseline, want) in [
        (Baseline::Black, 0.0),
        (Baseline::Grey, 0.5),
        (Baseline::White, 1.0),
    ] {
        let x = uniform_input(&g, baseline.pixel());
        assert!(x.iter().all(|&v| v == want), "{baseline:?}");
    }
}

const COLOUR: Shape = Shape { c: 3, h: 8, w: 8 };

/// 64 images 3×8×8 of four classes: a red or a blue 4×4 square in the
/// left or the right half, on a dim noisy background.
fn colour_images() -> Dataset {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for i in 0..64u32 {
        let label = (i % 4) as u8;
        let colour = [[230u8, 40, 30], [20, 60, 220]][usize::from(label / 2)];
        let left = if label.is_multiple_of(2) { 0 } else { 4 };
        let top = (i as usize / 4) % 5;
        for (c, &value) in colour.iter().enumerate() {
            for y in 0..8 {
                for x in 0..8 {
                    let on = (top..top + 4).contains(&y) && (left..left + 4).contains(&x);
                    let noise = ((i as usize * 31 + c * 17 + y * 8 + x) * 2654435761 % 50) as u8;
                    images.push(if on { value } else { noise });
                }
            }
        }
        labels.push(label);
    }
    Dataset {
        images,
        labels,
        channels: 3,
        rows: 8,
        cols: 8,
        classes: ["red left", "red right", "blue left", "blue right"]
            .map(String::from)
            .to_vec(),
    }
}

/// A small ReLU CNN on `colour_images`, normalised per channel, trained
/// briefly on the CPU (20 epochs of 4 steps of 16).
fn trained_colour() -> (Graph, Dataset, Vec<f32>) {
    let data = colour_images();
    let mut g = Graph::new(
        &ModelSpec::parse("conv4k3p1,relu,pool2,dense16,relu,dense4").unwrap(),
        COLOUR,
        4,
    )
    .unwrap();
    g.normalization = Normalization::per_channel(&data).unwrap();
    let sgd = Optimizer::Sgd {
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
    };
    let mut backend = CpuTrainer::new(&g, 16, sgd, g.init_params(3), data.clone(), data.clone());
    let lrs = vec![0.05; 4];
    let mut stats = Default::default();
    for epoch in 0..20 {
        let order = epoch_order(64, 3, epoch);
        let plan = EpochPlan {
            order: &order,
            lrs: &lrs,
            first_step: epoch * 4,
            report_every: 0,
            snapshot_every: 0,
        };
        stats = backend.train_epoch(plan, &mut |_| {}).unwrap();
    }
    assert!(stats.accuracy() > 0.9, "training went wrong: {stats:?}");
    let params = backend.params().unwrap();
    (g, data, params)
}

/// A per-channel-normalised colour CNN: the black baseline is the
/// normalised all-zero image (not the input 0, which is the mean colour),
/// its logit is the model's on that image, integrated gradients from it
/// are complete within 1%, and the GPU's maps equal the CPU's. (256
/// steps: with 64 the path from black crosses enough ReLU and max-pool
/// kinks that image 1's predicted class misses by 2.27%, Σ IG = 3.216
/// against 9.215 − 6.070.)
#[test]
fn a_colour_model_is_explained_through_its_normalisation() {
    let (g, data, params) = trained_colour();
    let plane = 64;
    let black = g.normalization.apply(&[0u8; 192], 3, plane);
    assert_eq!(uniform_input(&g, Baseline::Black.pixel()), black);
    assert!(
        black.iter().all(|&v| v < -0.5),
        "black is below the mean: {black:?}"
    );
    let xs: Vec<Vec<f32>> = (0..4)
        .map(|i| g.normalization.apply(data.image(i), 3, plane))
        .collect();
    let settings = Settings {
        steps: 256,
        ..Settings::default()
    };
    let mut c = cpu(&g, params.clone(), &data, 257);
    let black_logits = c.infer(&black, 1).unwrap();
    let want = attribution::explain(&mut c, &g, &xs, Some(3), &settings).unwrap();
    for (i, e) in want.iter().enumerate() {
        assert_eq!(e.predicted, usize::from(data.labels[i]), "image {i}");
        for maps in &e.classes {
            let what = format!("image {i}, class {}", maps.class);
            assert_eq!(
                maps.baseline_logit, black_logits[maps.class],
                "{what}: the baseline is the black image"
            );
            assert_eq!(maps.integrated_gradients.len(), 192);
            assert_eq!(maps.occlusion.len(), plane, "occlusion is per pixel");
        }
        let maps = &e.classes[0];
        let gap = maps.completeness_gap_relative.unwrap();
        assert!(
            gap < 0.01,
            "image {i}: Σ IG = {}, logit(x) − logit(black) = {} − {}: gap {:.3}%",
            maps.integrated_sum,
            maps.logit,
            maps.baseline_logit,
            100.0 * gap
        );
    }
    let Some(ctx) = gpu() else { return };
    let mut gp = GpuTrainer::new(ctx, &g, 257, SGD, &params, &data, &data).unwrap();
    let got = attribution::explain(&mut gp, &g, &xs, Some(3), &settings).unwrap();
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w.predicted, g.predicted, "image {i}");
        for (w, g) in w.classes.iter().zip(&g.classes) {
            let what = format!("image {i}, class {}", w.class);
            assert_close(
                &format!("{what} saliency"),
                &g.saliency,
                &w.saliency,
                1e-5,
                1e-3,
            );
            assert_close(
                &format!("{what} IG"),
                &g.integrated_gradients,
                &w.integrated_gradients,
                1e-5,
                1e-3,
            );
            assert_close(
                &format!("{what} occlusion"),
                &g.occlusion,
                &w.occlusion,
                1e-5,
                1e-3,
            );
            assert!((w.baseline_logit - g.baseline_logit).abs() < 1e-4);
        }
        let gap = g.classes[0].completeness_gap_relative.unwrap();
        assert!(gap < 0.01, "GPU, image {i}: gap {:.3}%", 100.0 * gap);
    }
}

/// Per pixel: saliency the largest over channels, the others the sum.
#[test]
fn colour_maps_per_pixel_are_the_max_or_the_sum_over_channels() {
    let values = [1.0, -2.0, 3.0, 0.5, 4.0, -1.0];
    assert_eq!(per_pixel(&values, 3, 2, PerPixel::Max), vec![4.0, 0.5]);
    assert_eq!(per_pixel(&values, 3, 2, PerPixel::Sum), vec![8.0, -2.5]);
}

// --- The command ----------------------------------------------------------

fn gpunet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpunet"))
        .args(args)
        .output()
        .expect("gpunet runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_fails(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A small random CNN saved as a model file.
fn save_model(dir: &Path) -> String {
    let g = graph("conv3k3p1,relu,pool2,dense10");
    let params = g.init_params(1);
    let path = dir.join("cnn.safetensors");
    model_file::save(
        &path,
        &SavedModel {
            buffers: g.init_buffers(),
            graph: g,
            params,
            optimizer_state: Vec::new(),
            settings: None,
            progress: Progress {
                epochs_done: 0,
                global_step: 0,
            },
            history: Vec::new(),
            snapshots: Vec::new(),
        },
    )
    .unwrap();
    path.display().to_string()
}

/// A dark digit on light paper, as a photo of one would be.
fn write_digit(path: &Path) {
    let mut img = image::GrayImage::from_pixel(40, 40, image::Luma([230]));
    for y in 8..32 {
        for x in 18..23 {
            img.put_pixel(x, y, image::Luma([20]));
        }
    }
    img.save(path).unwrap();
}

#[test]
fn explain_writes_the_page_the_json_and_the_feature_maps() {
    let dir = tempfile::tempdir().unwrap();
    let model = save_model(dir.path());
    let digit = dir.path().join("one.png");
    write_digit(&digit);
    let out = dir.path().join("out");
    let data = mnist_dir().display().to_string();
    let run = gpunet(&[
        "explain",
        "--model",
        &model,
        digit.to_str().unwrap(),
        "--test-index",
        "3",
        "--class",
        "5",
        "--steps",
        "8",
        "--device",
        "cpu",
        "--data",
        &data,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let inputs = summary["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[1]["source"]["test_index"]["index"], 3);
    assert_eq!(inputs[1]["source"]["test_index"]["label"], 0);
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("test image 3, labelled 0"), "{page}");
    assert!(page.contains("requested with --class"));
    let full: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("explain.json")).unwrap()).unwrap();
    assert_eq!(full["integration"], "trapezoid");
    for input in full["inputs"].as_array().unwrap() {
        let folder = out.join(input["dir"].as_str().unwrap());
        assert!(folder.join("input.png").is_file());
        for class in input["classes"].as_array().unwrap() {
            let c = class["class"].as_u64().unwrap();
            assert_eq!(class["saliency"].as_array().unwrap().len(), 784);
            for key in ["saliency", "gradxinput", "ig", "occlusion"] {
                let picture = folder.join(format!("class{c}-{key}.png"));
                assert!(picture.is_file(), "{}", picture.display());
                assert!(page.contains(&format!("class{c}-{key}.png")));
            }
        }
        // Feature maps: the conv and the pool node.
        let maps = input["feature_maps"].as_array().unwrap();
        assert_eq!(maps.len(), 2, "{maps:?}");
        for m in maps {
            assert!(out.join(m["file"].as_str().unwrap()).is_file());
        }
    }
}

/// A colour model through the command: a PNG file (resized to the
/// model's 32×32) and a test image from a set in CIFAR-10's binary
/// format, both normalised per channel; the input drawn in colour, the
/// maps per pixel as the page says, the baseline the normalised black.
#[test]
fn explain_draws_a_colour_model_in_colour() {
    let dir = tempfile::tempdir().unwrap();
    // Four CIFAR-10 records: label, then red, green and blue planes.
    let mut records = Vec::new();
    for label in 0..4u8 {
        records.push(label);
        for c in 0..3usize {
            for i in 0..1024usize {
                let square = (i / 32) % 16 < 8 && (i % 32) < 16;
                let value = if square == (c == usize::from(label % 3)) {
                    200
                } else {
                    30
                };
                records.push((value + (i * 7 + c * 13) % 40) as u8);
            }
        }
    }
    let data_dir = dir.path().join("colour");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::write(data_dir.join("data_batch_1.bin"), &records).unwrap();
    std::fs::write(data_dir.join("test_batch.bin"), &records).unwrap();
    std::fs::write(data_dir.join("batches.meta.txt"), "a\nb\nc\nd").unwrap();
    let test = gpunet::data::load_dataset(&data_dir, Split::Test).unwrap();
    let mut g = Graph::new(
        &ModelSpec::parse("conv2k3p1,relu,pool4,dense4").unwrap(),
        Shape { c: 3, h: 32, w: 32 },
        4,
    )
    .unwrap();
    g.normalization = Normalization::per_channel(&test).unwrap();
    let black = g.normalization.apply(&[0u8; 3 * 1024], 3, 1024);
    let model = dir.path().join("colour.safetensors");
    model_file::save(
        &model,
        &SavedModel {
            buffers: g.init_buffers(),
            params: g.init_params(2),
            graph: g,
            optimizer_state: Vec::new(),
            settings: None,
            progress: Progress {
                epochs_done: 0,
                global_step: 0,
            },
            history: Vec::new(),
            snapshots: Vec::new(),
        },
    )
    .unwrap();
    let photo = dir.path().join("photo.png");
    image::RgbImage::from_fn(20, 12, |x, _| {
        image::Rgb(if x < 10 { [220, 20, 20] } else { [20, 20, 220] })
    })
    .save(&photo)
    .unwrap();
    let out = dir.path().join("out");
    let run = gpunet(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        photo.to_str().unwrap(),
        "--test-index",
        "2",
        "--steps",
        "4",
        "--stride",
        "4",
        "--device",
        "cpu",
        "--data",
        data_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("saliency max over channels"), "{page}");
    assert!(page.contains("integrated gradients summed over channels"));
    assert!(page.contains("test image 2, labelled c"), "{page}");
    let full: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("explain.json")).unwrap()).unwrap();
    assert_eq!(full["baseline_pixel"], 0.0);
    let baseline: Vec<f32> = serde_json::from_value(full["baseline_input"].clone()).unwrap();
    assert_eq!(baseline, vec![black[0], black[1024], black[2048]]);
    let inputs = full["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2);
    let input = &inputs[0];
    assert_eq!(
        input["classes"][0]["saliency"].as_array().unwrap().len(),
        3 * 1024
    );
    assert_eq!(
        input["classes"][0]["occlusion"].as_array().unwrap().len(),
        1024
    );
    // The photo drawn in colour: red on the left, blue on the right.
    let drawn = image::open(out.join(input["dir"].as_str().unwrap()).join("input.png"))
        .unwrap()
        .to_rgb8();
    let (left, right) = (
        drawn.get_pixel(8, 100).0,
        drawn.get_pixel(drawn.width() - 8, 100).0,
    );
    assert!(left[0] > 150 && left[2] < 80, "left {left:?}");
    assert!(right[2] > 150 && right[0] < 80, "right {right:?}");
}

#[test]
fn explain_refuses_bad_input_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = save_model(dir.path());
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let data = mnist_dir().display().to_string();
    let base = [
        "explain", "--model", &model, "--device", "cpu", "--data", &data, "--out", out,
    ];
    let run = |extra: &[&str]| gpunet(&[&base[..], extra].concat());
    assert_fails(&run(&["missing.png"]), "cannot read image missing.png");
    assert_fails(
        &run(&["--test-index", "0", "--class", "10"]),
        "--class 10: the model has 10 classes",
    );
    assert_fails(
        &run(&["--test-index", "10000"]),
        "--test-index 10000: the test set in",
    );
    assert_fails(&run(&["--test-index", "0", "--steps", "0"]), "--steps 0");
    assert_fails(&run(&["--test-index", "0", "--patch", "29"]), "--patch 29");
    assert_fails(&run(&[]), "nothing to explain");
    let no_model = gpunet(&[
        "explain",
        "--model",
        "nope.safetensors",
        "--test-index",
        "0",
        "--out",
        out,
    ]);
    assert_fails(&no_model, "nope.safetensors");
    assert!(!Path::new(out).join("index.html").exists());
}
