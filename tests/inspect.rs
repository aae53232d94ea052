//! `gpunet inspect`: the analyses say true things about real networks, and
//! the report is complete.

mod common;

use common::{gpu, mnist_dir};
use gpunet::backend::{Backend, Optimizer};
use gpunet::cpu::CpuTrainer;
use gpunet::data::{load_mnist, Dataset, Split};
use gpunet::graph::{Graph, Shape};
use gpunet::inspect::analysis::{self, AscentSettings};
use gpunet::inspect::report::{self, InspectConfig};
use gpunet::model_file;
use gpunet::schedule::ScheduleKind;
use gpunet::spec::ModelSpec;
use gpunet::train::{open_backend, train, DeviceChoice, TrainConfig};
use std::path::Path;

const MNIST: Shape = Shape { c: 1, h: 28, w: 28 };
const SGD: Optimizer = Optimizer::Sgd {
    momentum: 0.9,
    weight_decay: 0.0,
    nesterov: false,
};

fn train_model(spec: &str, path: &Path, snapshot_every: usize) {
    let cfg = TrainConfig {
        spec: Some(ModelSpec::parse(spec).unwrap()),
        expected_input: None,
        device: DeviceChoice::Cpu,
        epochs: 2,
        batch: 64,
        optimizer: SGD,
        lr: 0.05,
        schedule: ScheduleKind::Constant,
        warmup_steps: 0,
        step_epochs: 1,
        gamma: 1.0,
        seed: 1,
        label_smoothing: 0.0,
        no_bias_decay: false,
        data: mnist_dir(),
        train_limit: Some(2000),
        test_limit: Some(500),
        save: Some(path.to_owned()),
        checkpoint_every: 0,
        resume: None,
        log: None,
        log_every: 0,
        plot: None,
        snapshot_every,
        normalize: Default::default(),
        augment: Default::default(),
        image_size: None,
    };
    train(&cfg, &mut std::io::sink(), &mut |_| Ok(())).unwrap();
}

fn devices() -> Vec<DeviceChoice> {
    let mut d = vec![DeviceChoice::Cpu];
    if gpu().is_some() {
        d.push(DeviceChoice::Gpu);
    }
    d
}

fn test_set(n: usize) -> Dataset {
    load_mnist(&mnist_dir(), Split::Test).unwrap().truncated(n)
}

/// A 784→10 network's weights are one template per digit; after brief
/// training each looks like its class's mean image more than like any
/// other class's. Measured: 10 of 10 classes; we require 8.
#[test]
fn templates_of_a_linear_network_resemble_the_class_means() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("linear.safetensors");
    train_model("dense10", &path, 0);
    let model = model_file::load(&path).unwrap();
    let templates =
        analysis::first_layer_templates(&model.graph, &model.params[model.graph.params[0].range()]);
    let means = analysis::class_means(&test_set(2000), 10);
    let matches = (0..10)
        .filter(|&c| {
            let own = analysis::correlation(&templates[c].values, &means[c]);
            (0..10).all(|o| o == c || own > analysis::correlation(&templates[c].values, &means[o]))
        })
        .count();
    assert!(
        matches >= 8,
        "only {matches} of 10 templates resemble their class mean most"
    );
}

/// Gradient ascent on the input drives every output's logit far above its
/// mean over the test set, on both devices.
#[test]
fn activation_maximisation_raises_the_unit_well_above_its_mean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.safetensors");
    train_model("dense32,relu,dense10", &path, 0);
    let model = model_file::load(&path).unwrap();
    let test = test_set(500);
    for device in devices() {
        let mut backend = report::open(device, &model).unwrap();
        let logits = backend
            .infer(&analysis::normalise(&model.graph, &test.images), test.len())
            .unwrap();
        let settings = AscentSettings {
            steps: 60,
            ..Default::default()
        };
        let found =
            analysis::maximise(backend.as_mut(), &model.graph, 1, &[0, 3, 7], &settings).unwrap();
        for m in &found {
            let column: Vec<f32> = logits.chunks(10).map(|r| r[m.unit]).collect();
            let mean = column.iter().sum::<f32>() / column.len() as f32;
            let max = column.iter().cloned().fold(f32::MIN, f32::max);
            assert!(
                m.image.iter().all(|&v| (0.0..=1.0).contains(&v)),
                "pixels stay in [0, 1]"
            );
            assert!(
                m.activation > mean + 10.0 && m.activation > max,
                "{device:?} class {}: reached {} (test mean {mean}, max {max})",
                m.unit,
                m.activation
            );
        }
        // A hidden unit too.
        let found = analysis::maximise(backend.as_mut(), &model.graph, 0, &[5], &settings).unwrap();
        let stats = analysis::unit_stats(backend.as_mut(), &model.graph, &test, 10).unwrap();
        let mean = stats[0].overall_mean[5];
        assert!(
            found[0].activation > 3.0 * mean.max(0.1),
            "{device:?}: hidden unit reached {} vs mean {mean}",
            found[0].activation
        );
    }
}

/// A unit whose weights and bias are all negative never fires on images
/// (pixels ≥ 0): reported dead; the others are not.
#[test]
fn a_dead_unit_is_reported_dead_and_a_live_one_is_not() {
    let graph = Graph::new(&ModelSpec::parse("dense4,relu,dense10").unwrap(), MNIST, 10).unwrap();
    let mut params = graph.init_params(3);
    let (w, b) = (graph.params[0].range(), graph.params[1].range());
    for i in 0..784 {
        params[w.start + 2 * 784 + i] = -0.01; // unit 2: dead
        params[w.start + 784 + i] = 0.01; // unit 1: alive for any image with ink
    }
    params[b.start + 2] = -1.0;
    params[b.start + 1] = 0.1;
    let test = test_set(200);
    let empty = Dataset::empty_like(1, 28, 28, graph.class_names());
    for device in devices() {
        let mut backend: Box<dyn Backend> = match device {
            DeviceChoice::Cpu => Box::new(CpuTrainer::new(
                &graph,
                64,
                SGD,
                params.clone(),
                empty.clone(),
                empty.clone(),
            )),
            _ => open_backend(
                device,
                &graph,
                64,
                SGD,
                &params,
                empty.clone(),
                empty.clone(),
                &mut std::io::sink(),
            )
            .unwrap(),
        };
        let stats = analysis::unit_stats(backend.as_mut(), &graph, &test, 10).unwrap();
        assert_eq!(stats.len(), 1, "one hidden layer");
        assert!(
            stats[0].dead.contains(&2),
            "{device:?}: unit 2 is dead: {:?}",
            stats[0].dead
        );
        assert!(!stats[0].dead.contains(&1), "{device:?}: unit 1 is alive");
        assert!(stats[0].max[1] > 0.0);
    }
}

/// The whole report from a model trained with snapshots: every analysis
/// runs, the HTML names only files that exist, and every picture decodes
/// at its size.
#[test]
fn the_report_is_complete_and_its_pictures_decode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.safetensors");
    train_model("conv4k3,relu,pool2,dense16,relu,dense10", &path, 10);
    let out = dir.path().join("report");
    let cfg = InspectConfig {
        model: path,
        out: out.clone(),
        device: DeviceChoice::Cpu,
        data: mnist_dir(),
        test_limit: Some(300),
        unit: Some(("3".into(), 2)),
        pca_layer: None,
        nodes: Vec::new(),
        top_k: 3,
        mistakes: 12,
        ascent: AscentSettings {
            steps: 20,
            ..Default::default()
        },
        ascent_units: 2,
        json: true,
        prompts: None,
    };
    // Write-ups from the language-model pipeline, keyed as documented in
    // `inspect::writeups`; their text is escaped.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("writeups.json"),
        r#"{"units": {"3:2": "fires on <loops> & rings"}, "layers": {"0": "edge finders"}, "network": "reads digits"}"#,
    )
    .unwrap();
    let index = report::run(&cfg, &mut std::io::sink()).unwrap();
    let html = std::fs::read_to_string(&index).unwrap();
    let sources: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    for name in [
        "templates.png",
        "templates.gif",
        "maximise_outputs.png",
        "maximise_unit.png",
        "confusion.png",
        "mistakes.png",
        "pca.png",
    ] {
        assert!(
            sources.contains(&name),
            "the report shows {name}: {sources:?}"
        );
    }
    for src in &sources {
        let file = out.join(src);
        assert!(file.is_file(), "{src} exists");
        let (w, h) = image::image_dimensions(&file).unwrap();
        assert!(w > 50 && h > 50, "{src} is {w}×{h}");
    }
    let gif = std::fs::File::open(out.join("templates.gif")).unwrap();
    use image::AnimationDecoder;
    let frames = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(gif))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    // 2 epochs of 32 steps, a snapshot every 10 and at step 0: 0, 10, 20, 30, 42, 52, 62.
    assert_eq!(frames.len(), 7);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["test_images"], 300);
    assert_eq!(
        report["layers"].as_array().unwrap().len(),
        2,
        "conv and dense hidden layers"
    );
    assert_eq!(
        report["maximised"].as_array().unwrap().len(),
        11,
        "10 classes and --unit"
    );
    assert_eq!(
        report["pca_explained_variance"].as_array().unwrap().len(),
        2
    );
    assert_eq!(report["class_names"].as_array().unwrap().len(), 10);
    assert!(report["timings"].as_array().unwrap().len() >= 4);

    // A page per unit of every layer (4 conv channels, 16 dense units, 10
    // outputs), linked from the report, each with its pictures.
    for layer_units in [("0", 4), ("3", 16), ("5", 10)] {
        for unit in 0..layer_units.1 {
            let page = format!("units/{}-{unit}.html", layer_units.0);
            assert!(html.contains(&format!("href=\"{page}\"")), "{page} linked");
            let text = std::fs::read_to_string(out.join(&page)).unwrap();
            for src in text.split("src=\"").skip(1) {
                let src = &src[..src.find('"').unwrap()];
                assert!(out.join("units").join(src).is_file(), "{page}: {src}");
            }
            assert!(text.contains("classes.png"), "{page} has its bar chart");
        }
    }
    // Maximised: the first 2 hidden units of each layer (--ascent-units)
    // and every output.
    let unit_page = |name: &str| std::fs::read_to_string(out.join("units").join(name)).unwrap();
    assert!(unit_page("3-1.html").contains("maximised.png"));
    assert!(!unit_page("3-2.html").contains("maximised.png"));
    assert!(unit_page("5-9.html").contains("maximised.png"));
    assert!(unit_page("3-2.html").contains("fires on &lt;loops&gt; &amp; rings"));
    assert!(html.contains("edge finders") && html.contains("reads digits"));
    // No Rust debug text anywhere.
    for page in
        std::iter::once(html.clone()).chain((0..16).map(|u| unit_page(&format!("3-{u}.html"))))
    {
        let body = &page[page.find("<body>").unwrap()..];
        for debug in [" { ", "Some(", "None", "Sgd", "AdamConfig"] {
            assert!(!body.contains(debug), "debug text {debug:?} in the report");
        }
    }

    // A malformed write-up file is refused, naming it.
    std::fs::write(out.join("writeups.json"), r#"{"units": 3}"#).unwrap();
    let e = format!("{:#}", report::run(&cfg, &mut std::io::sink()).unwrap_err());
    assert!(e.contains("writeups.json"), "{e}");
}

/// A backend holding `params` (and fresh running statistics: mean 0,
/// variance 1) on `device`, for analyses without training.
fn backend_with(graph: &Graph, params: &[f32], device: DeviceChoice) -> Box<dyn Backend> {
    let empty = Dataset::empty_like(1, 28, 28, graph.class_names());
    match device {
        DeviceChoice::Cpu => Box::new(CpuTrainer::new(
            graph,
            64,
            SGD,
            params.to_vec(),
            empty.clone(),
            empty,
        )),
        _ => open_backend(
            device,
            graph,
            64,
            SGD,
            params,
            empty.clone(),
            empty,
            &mut std::io::sink(),
        )
        .unwrap(),
    }
}

/// conv → bn → relu and conv → pool → bn → relu: a conv channel is dead
/// when the ReLU after its bn never fires. γ = 0 makes the bn's output its
/// β: channel 2 (β = −1) never fires, channel 1 (β = +1) always does,
/// whatever the conv computes; the conv has no ReLU of its own.
#[test]
fn dead_units_are_judged_after_the_bn_that_follows() {
    for spec in [
        "conv4k3p1,bn,relu,pool2,dense10",
        "conv4k3p1,pool2,bn,relu,dense10",
    ] {
        let graph = Graph::new(&ModelSpec::parse(spec).unwrap(), MNIST, 10).unwrap();
        let bn = graph
            .nodes
            .iter()
            .position(|n| n.op.label() == "bn, relu")
            .unwrap();
        let mut params = graph.init_params(3);
        let (gamma, beta) = (
            graph.params[graph.nodes[bn].params[0]].range(),
            graph.params[graph.nodes[bn].params[1]].range(),
        );
        params[gamma.start + 1] = 0.0;
        params[beta.start + 1] = 1.0;
        params[gamma.start + 2] = 0.0;
        params[beta.start + 2] = -1.0;
        let test = test_set(100);
        for device in devices() {
            let mut backend = backend_with(&graph, &params, device);
            let stats = analysis::unit_stats(backend.as_mut(), &graph, &test, 10).unwrap();
            assert_eq!(stats[0].layer.label, "layers.0 (conv4k3p1)");
            assert_eq!(stats[0].dead, [2], "{spec} on {device:?}");
            assert_eq!(
                stats[0].dead_at.as_deref(),
                Some(graph.nodes[bn].label().as_str())
            );
            // The conv's own outputs are not what decides: channel 2 has
            // positive values there.
            assert!(stats[0].max[2] > 0.0, "{spec}: {:?}", stats[0].max);
            // The bn node itself, studied as any node, agrees.
            let at_bn = analysis::unit_stats_of(
                backend.as_mut(),
                &graph,
                &test,
                10,
                vec![analysis::node_info(&graph, bn)],
                &|_| {},
            )
            .unwrap();
            assert_eq!(at_bn[0].dead, [2]);
            assert_eq!(at_bn[0].max[1], 1.0);
            assert_eq!(at_bn[0].mean[0][1], 1.0, "channel 1 is β everywhere");
        }
    }
}

/// A network with bn and a residual block: the report shows every bn's
/// running statistics (HTML and JSON, equal to the model's), studies the
/// nodes --node names, projects the node --pca-layer names, maximises the
/// conv a nested --unit names, and refuses ambiguous or wrong addresses
/// before any analysis, explaining the addressing.
#[test]
fn the_report_knows_bn_and_residual_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("res.safetensors");
    // 0 conv, 1 bn+relu, 3 the block (body 0 conv, 1 bn+relu, 3 conv, 4 bn), 4 relu, 5 pool, 6 dense.
    train_model(
        "conv4k3p1,bn,relu,res(conv4k3p1,bn,relu,conv4k3p1,bn),relu,pool2,dense10",
        &path,
        0,
    );
    let model = model_file::load(&path).unwrap();
    let out = dir.path().join("report");
    let cfg = InspectConfig {
        model: path.clone(),
        out: out.clone(),
        device: DeviceChoice::Cpu,
        data: mnist_dir(),
        test_limit: Some(200),
        unit: Some(("3.body.3".into(), 1)),
        pca_layer: Some("3".into()),
        nodes: vec!["5".into(), "layers.3.body.4".into()],
        top_k: 2,
        mistakes: 4,
        ascent: AscentSettings {
            steps: 10,
            ..Default::default()
        },
        ascent_units: 2,
        json: true,
        prompts: None,
    };
    let index = report::run(&cfg, &mut std::io::sink()).unwrap();
    let html = std::fs::read_to_string(&index).unwrap();
    for text in [
        "Batch norm",
        "layers.3.body.1 (bn, relu) channel",
        "running_var",
        "layers.1: 64 training batches tracked",
        "judged at",
        "layers.1 (bn, relu)",
    ] {
        assert!(html.contains(text), "the report shows {text:?}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let bns = report["batch_norm"].as_array().unwrap();
    let names: Vec<&str> = bns.iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["layers.1", "layers.3.body.1", "layers.3.body.4"]);
    let graph = &model.graph;
    for b in bns {
        let name = b["name"].as_str().unwrap();
        for (field, tensors, values) in [
            ("running_mean", &graph.buffers, &model.buffers),
            ("running_var", &graph.buffers, &model.buffers),
            ("weight", &graph.params, &model.params),
            ("bias", &graph.params, &model.params),
        ] {
            let info = tensors
                .iter()
                .find(|t| t.name == format!("{name}.{field}"))
                .unwrap();
            let json: Vec<f32> = b[field]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(json, values[info.range()], "{name}.{field}");
        }
        // 2 epochs of 32 batches (2000 images, batch 64).
        assert_eq!(b["num_batches_tracked"], 64);
    }
    let layers: Vec<&str> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["layer"]["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        layers,
        [
            "layers.0 (conv4k3p1)",
            "layers.3.body.0 (conv4k3p1)",
            "layers.3.body.3 (conv4k3p1)",
            "layers.5 (pool2)",
            "layers.3.body.4 (bn)",
        ]
    );
    let dead_at: Vec<&serde_json::Value> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["dead_at"])
        .collect();
    assert_eq!(dead_at[0], "layers.1 (bn, relu)");
    assert_eq!(dead_at[1], "layers.3.body.1 (bn, relu)");
    assert!(
        dead_at[2].is_null(),
        "the block's second bn has no ReLU before the sum"
    );
    let unit_node = graph
        .nodes
        .iter()
        .position(|n| n.name == "layers.3.body.3")
        .unwrap();
    let maximised = report["maximised"].as_array().unwrap();
    assert_eq!(maximised[10]["node"], unit_node);
    assert_eq!(maximised[10]["unit"], 1);
    assert!(report["pca_layer"]
        .as_str()
        .unwrap()
        .starts_with("layers.3 ("));

    let refused = |unit: Option<&str>, pca: Option<&str>| {
        let cfg = InspectConfig {
            unit: unit.map(|u| (u.to_string(), 0)),
            pca_layer: pca.map(str::to_string),
            out: dir.path().join("refused"),
            ..cfg.clone()
        };
        format!("{:#}", report::run(&cfg, &mut std::io::sink()).unwrap_err())
    };
    let err = refused(Some("3"), None);
    assert!(
        err.contains("--unit 3: ambiguous: layer 3 is a residual block with several layers that have units: 3.body.0 (conv4k3p1), 3.body.3 (conv4k3p1)"),
        "{err}"
    );
    assert!(
        err.contains("3.body.0 is the first layer of the block at 3"),
        "{err}"
    );
    let err = refused(Some("3.body.1"), None);
    assert!(
        err.contains("layers.3.body.1 (bn, relu) is not a dense or conv layer"),
        "{err}"
    );
    let err = refused(None, Some("3.body.7"));
    assert!(
        err.contains("--pca-layer 3.body.7: no such node; layer 3 holds 3.body.0 (conv4k3p1)"),
        "{err}"
    );
    assert!(
        !dir.path().join("refused").exists(),
        "refused before writing anything"
    );
}
