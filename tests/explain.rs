//! `gpunet explain`: the attributions against what they must be (a linear
//! model's saliency is |W_c|; integrated gradients are complete; occlusion
//! finds the only region a model reads), the GPU against the CPU, and the
//! command's output and refusals.

mod common;

use common::{assert_close, gpu, mnist_dir};
use gpunet::backend::{Backend, EpochPlan, Optimizer};
use gpunet::cpu::CpuTrainer;
use gpunet::data::{load_mnist, Dataset, Split};
use gpunet::explain::attribution::{self, patch_starts, trapezoid_weights, Baseline, Settings};
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
