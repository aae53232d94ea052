//! `gpunet inspect`: runs every analysis of `analysis.rs` on a saved model
//! and writes the pictures, `index.html` tying them together with the
//! numbers, and with `--json` the raw numbers (`report.json`).

use super::analysis::{self, AscentSettings, LayerInfo, Maximised, Mistake, UnitStats};
use super::html::{self, Figure, Section, Table};
use super::nodes::{self, BatchNormState};
use super::pca;
use super::render::{self, GridOptions, Tile};
use crate::backend::Backend;
use crate::data::{load_dataset, Dataset, Split};
use crate::infer;
use crate::model_file::{self, SavedModel};
use crate::ops::conv2d::Conv2d;
use crate::train::DeviceChoice;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to inspect and where to write it.
#[derive(Debug, Clone)]
pub struct InspectConfig {
    pub model: PathBuf,
    pub out: PathBuf,
    pub device: DeviceChoice,
    pub data: PathBuf,
    pub test_limit: Option<usize>,
    /// `(layer address, unit)` to maximise besides the output classes; the
    /// address as `nodes::resolve_unit_layer` reads it (`0`, `3.body.0`).
    pub unit: Option<(String, usize)>,
    /// The node whose activations PCA projects, any node by its address
    /// (default: the last hidden dense or conv layer).
    pub pca_layer: Option<String>,
    /// More nodes (any, by address) whose units per class to tabulate.
    pub nodes: Vec<String>,
    pub top_k: usize,
    pub mistakes: usize,
    pub ascent: AscentSettings,
    pub json: bool,
    /// `--prompts` (and `--llm-url`): the neuron write-ups of `prompts.rs`.
    pub prompts: Option<super::prompts::PromptsConfig>,
}

/// The numbers behind the report (`report.json`).
#[derive(Debug, Serialize)]
pub struct InspectReport {
    pub model: String,
    pub test_images: usize,
    pub accuracy: f64,
    pub layers: Vec<UnitStats>,
    pub output_top_weights: Vec<Vec<(usize, f32)>>,
    pub maximised: Vec<Maximised>,
    pub confusion: Vec<Vec<u64>>,
    pub most_confident_mistakes: Vec<Mistake>,
    pub pca_layer: Option<String>,
    pub pca_explained_variance: Vec<f32>,
    /// Each bn node's running statistics, weight and bias per channel.
    pub batch_norm: Vec<BatchNormState>,
    pub template_class_correlation: Option<Vec<Vec<f64>>>,
}

fn tile(w: usize, h: usize, values: &[f32]) -> Result<Tile> {
    Tile::new(w, h, values.to_vec())
}

/// Parses `--unit LAYER:UNIT`; LAYER is an address (`0`, `3.body.0`),
/// resolved against the model in `run`.
pub fn parse_unit(text: &str) -> Result<(String, usize)> {
    let (layer, unit) = text.rsplit_once(':').with_context(|| {
        format!(
            "--unit {text:?}: expected LAYER:UNIT, e.g. 0:5 for unit 5 of layers.0, \
             or 3.body.0:5 inside the residual block at 3"
        )
    })?;
    if layer.trim().is_empty() {
        bail!("--unit {text:?}: the layer is missing; expected LAYER:UNIT, e.g. 0:5");
    }
    Ok((
        layer.trim().to_string(),
        unit.trim()
            .parse()
            .with_context(|| format!("--unit {text:?}: unit"))?,
    ))
}

/// Runs everything; returns the path of `index.html`.
pub fn run(cfg: &InspectConfig, log: &mut dyn Write) -> Result<PathBuf> {
    if cfg.test_limit == Some(0) {
        bail!("--test-limit 0 leaves no test images to inspect; give at least 1");
    }
    crate::output::check_dir("--out", &cfg.out)?;
    let model = model_file::load(&cfg.model)?;
    if model.graph.input.c != 1 {
        bail!(
            "{}: inspect draws grayscale inputs; this model takes {} colour images, which inspect cannot draw yet",
            cfg.model.display(),
            model.graph.input
        );
    }
    let graph = &model.graph;
    // Addresses first, so that a wrong one fails before any analysis runs.
    let unit_layer = match &cfg.unit {
        Some((address, unit)) => Some((nodes::resolve_unit_layer(graph, address)?, *unit)),
        None => None,
    };
    let pca_node = match &cfg.pca_layer {
        Some(address) => Some(nodes::resolve_node(graph, address, "--pca-layer")?),
        None => None,
    };
    let extra_nodes: Vec<usize> = cfg
        .nodes
        .iter()
        .map(|address| nodes::resolve_node(graph, address, "--node"))
        .collect::<Result<_>>()?;
    let mut test = load_dataset(&cfg.data, Split::Test)?;
    if let Some(n) = cfg.test_limit {
        test = test.truncated(n);
    }
    if test.is_empty() {
        bail!("no test images to inspect");
    }
    if (test.rows, test.cols) != (model.graph.input.h, model.graph.input.w) {
        bail!(
            "{} was trained on {}×{} images, the test images are {}×{}",
            cfg.model.display(),
            model.graph.input.h,
            model.graph.input.w,
            test.rows,
            test.cols
        );
    }
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    let mut backend = infer::open_model(cfg.device, &model, log)?;
    let classes = model.graph.classes();
    let layers = analysis::layers(graph);
    let mut sections = Vec::new();
    let out = |name: &str| cfg.out.join(name);

    writeln!(
        log,
        "inspect: forward passes over {} test images",
        test.len()
    )?;
    let logits = backend.infer(&analysis::normalise(graph, &test.images), test.len())?;
    let (confusion, mistakes) = analysis::mistakes(&logits, &test.labels, classes);
    let correct: u64 = (0..classes).map(|c| confusion[c][c]).sum();
    let accuracy = correct as f64 / test.len().max(1) as f64;
    sections.push(Section {
        title: "The model".into(),
        paragraphs: vec![
            format!(
                "{} on {} inputs: {} parameters. Test accuracy {:.2}% on {} images ({} mistakes).",
                graph.spec,
                graph.input,
                graph.num_parameters(),
                100.0 * accuracy,
                test.len(),
                mistakes.len()
            ),
            match &model.settings {
                Some(s) => format!(
                    "Trained {} epochs ({} steps) with {}, learning rate {} ({} schedule), batch {}, seed {}.",
                    model.progress.epochs_done, model.progress.global_step, s.optimizer, s.lr, s.schedule, s.batch, s.seed
                ),
                None => "No training settings were saved with this model.".into(),
            },
        ],
        ..Default::default()
    });

    // 1–2. Weight templates, and their animation over training.
    let first_weights = &model.params[graph.params[0].range()];
    let templates = analysis::first_layer_templates(graph, first_weights);
    let template_tiles: Vec<Tile> = templates
        .iter()
        .map(|(w, h, v)| tile(*w, *h, v))
        .collect::<Result<_>>()?;
    let is_conv = graph.nodes[0].op.as_any().is::<Conv2d>();
    let zoom = if is_conv { 16 } else { 4 };
    let captions: Vec<String> = (0..template_tiles.len()).map(|u| u.to_string()).collect();
    let opts = GridOptions {
        title: format!("{}: each unit's incoming weights", layers[0].label),
        zoom,
        legend_label: "weight".into(),
        ..Default::default()
    };
    render::weight_grid(&out("templates.png"), &template_tiles, &captions, &opts)?;
    let mut template_section = Section {
        title: "Weight templates".into(),
        paragraphs: vec![if is_conv {
            "The first layer's filters, enlarged: red weights add to a channel's response where the image is bright, blue ones subtract.".into()
        } else if graph.nodes.len() == 1 {
            "Each output class's incoming weights rolled back into a 28×28 image: the network's template of that digit. Red pixels are evidence for the class, blue ones against.".into()
        } else {
            "Each first-layer unit's incoming weights rolled back into a 28×28 image. Red pixels excite the unit, blue ones inhibit it.".into()
        }],
        images: vec![Figure {
            file: "templates.png".into(),
            alt: "first-layer weight templates on a blue-white-red scale".into(),
            caption: "Diverging scale centred at zero; the colour bar gives the range.".into(),
        }],
        ..Default::default()
    };
    let mut correlation = None;
    if graph.nodes.len() == 1 && templates.len() == classes {
        let means = analysis::class_means(&test, classes);
        let matrix: Vec<Vec<f64>> = templates
            .iter()
            .map(|(_, _, t)| means.iter().map(|m| analysis::correlation(t, m)).collect())
            .collect();
        let matches = (0..classes)
            .filter(|&c| (0..classes).all(|o| o == c || matrix[c][c] > matrix[c][o]))
            .count();
        template_section.paragraphs.push(format!(
            "For {matches} of {classes} classes the template correlates more with that class's mean test image than with any other class's mean."
        ));
        correlation = Some(matrix);
    }
    if !model.snapshots.is_empty() {
        // A GIF of 128 large tiles × many frames runs to tens of MB: animate
        // at most 32 units, a little smaller, in at most 30 frames.
        const MAX_FRAMES: usize = 30;
        const MAX_TILES: usize = 32;
        let n = model.snapshots.len();
        let picks: Vec<usize> = if n <= MAX_FRAMES {
            (0..n).collect()
        } else {
            (0..MAX_FRAMES)
                .map(|i| i * (n - 1) / (MAX_FRAMES - 1))
                .collect()
        };
        let frames: Vec<(String, Vec<Tile>)> = picks
            .iter()
            .map(|&i| {
                let (step, weights) = &model.snapshots[i];
                let tiles = analysis::first_layer_templates(graph, weights)
                    .iter()
                    .take(MAX_TILES)
                    .map(|(w, h, v)| tile(*w, *h, v))
                    .collect::<Result<Vec<_>>>()?;
                Ok((format!("step {step}"), tiles))
            })
            .collect::<Result<_>>()?;
        let shown_units = template_tiles.len().min(MAX_TILES);
        let gif_opts = GridOptions {
            title: if shown_units < template_tiles.len() {
                format!(
                    "{}: units 0–{} over training",
                    layers[0].label,
                    shown_units - 1
                )
            } else {
                format!("{} over training", layers[0].label)
            },
            zoom: if is_conv { 12 } else { 3 },
            ..opts.clone()
        };
        render::templates_gif(
            &out("templates.gif"),
            &frames,
            &captions[..shown_units],
            &gif_opts,
        )?;
        template_section.images.push(Figure {
            file: "templates.gif".into(),
            alt: "animation of the first-layer templates forming during training".into(),
            caption: format!(
                "The same weights at {} snapshots from step 0 to step {}.",
                frames.len(),
                model.snapshots.last().map_or(0, |s| s.0)
            ),
        });
    } else {
        template_section
            .paragraphs
            .push("Train with --snapshot-every K --save FILE to see these templates form, as an animation.".into());
    }
    sections.push(template_section);

    // 3–4. Units per class, dead units, the outputs' strongest weights.
    writeln!(log, "inspect: unit statistics")?;
    let mut studied: Vec<LayerInfo> = layers
        .iter()
        .filter(|l| l.node + 1 < graph.nodes.len())
        .cloned()
        .collect();
    for &node in &extra_nodes {
        if studied.iter().all(|l| l.node != node) {
            studied.push(analysis::node_info(graph, node));
        }
    }
    let stats = analysis::unit_stats_of(backend.as_mut(), graph, &test, classes, studied)?;
    sections.push(units_section(&stats, cfg.top_k, classes));
    sections.push(dead_section(&stats));
    let batch_norm = nodes::batch_norms(graph, &model.params, &model.buffers);
    if !batch_norm.is_empty() {
        sections.push(batch_norm_section(&batch_norm));
    }
    let output_weights = analysis::top_output_weights(graph, &model.params, cfg.top_k);
    sections.push(Section {
        title: "What each output listens to".into(),
        paragraphs: vec![format!(
            "The {} incoming weights of largest magnitude of each output, as unit (weight): positive weights vote for the class, negative ones against.",
            cfg.top_k
        )],
        tables: vec![Table {
            header: vec!["class".into(), format!("strongest inputs from {}", layers[layers.len() - 1].label)],
            rows: output_weights
                .iter()
                .enumerate()
                .map(|(c, top)| {
                    let cells: Vec<String> = top.iter().map(|(u, w)| format!("{u} ({w:+.3})")).collect();
                    vec![c.to_string(), cells.join(", ")]
                })
                .collect(),
        }],
        ..Default::default()
    });

    // 5. Activation maximisation.
    writeln!(
        log,
        "inspect: activation maximisation ({} steps)",
        cfg.ascent.steps
    )?;
    let last = graph.nodes.len() - 1;
    let output_units: Vec<usize> = (0..classes).collect();
    let mut maximised =
        analysis::maximise(backend.as_mut(), graph, last, &output_units, &cfg.ascent)?;
    let mean_logits: Vec<f32> = (0..classes)
        .map(|c| logits.chunks(classes).map(|r| r[c]).sum::<f32>() / test.len().max(1) as f32)
        .collect();
    let (w, h) = (graph.input.w, graph.input.h);
    let max_tiles: Vec<Tile> = maximised
        .iter()
        .map(|m| tile(w, h, &m.image[..w * h]))
        .collect::<Result<_>>()?;
    let max_captions: Vec<String> = maximised
        .iter()
        .map(|m| format!("class {}\nlogit {:.1}", m.unit, m.activation))
        .collect();
    let grid = GridOptions {
        title: "Inputs that maximise each output".into(),
        zoom: 4,
        ..Default::default()
    };
    render::image_grid(
        &out("maximise_outputs.png"),
        &max_tiles,
        &max_captions,
        &grid,
    )?;
    let mut max_section = Section {
        title: "Activation maximisation".into(),
        paragraphs: vec![format!(
            "Starting from a dim gray image, {} steps of gradient ascent on the input (through the network's own backward pass) make each output's logit large; an L2 penalty, a light blur every {} steps and 1-pixel jitter keep the images smooth, and pixels stay in [0, 1]. Mean logits over the test set, for comparison: {}.",
            cfg.ascent.steps,
            cfg.ascent.blur_every,
            mean_logits.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(", ")
        )],
        images: vec![Figure {
            file: "maximise_outputs.png".into(),
            alt: "for each class, an input image found by gradient ascent".into(),
            caption: "Each image with the logit it reaches.".into(),
        }],
        ..Default::default()
    };
    if let Some((node, unit)) = unit_layer {
        let layer = analysis::node_info(graph, node);
        let found = analysis::maximise(backend.as_mut(), graph, layer.node, &[unit], &cfg.ascent)?;
        let m = &found[0];
        let mean = stats
            .iter()
            .find(|s| s.layer.node == layer.node)
            .map(|s| s.overall_mean[unit]);
        render::image_grid(
            &out("maximise_unit.png"),
            &[tile(w, h, &m.image[..w * h])?],
            &[format!("unit {unit}\nact {:.2}", m.activation)],
            &GridOptions {
                title: format!("{} unit {unit}", layer.label),
                zoom: 6,
                ..Default::default()
            },
        )?;
        max_section.images.push(Figure {
            file: "maximise_unit.png".into(),
            alt: format!("the input that maximises unit {unit} of {}", layer.label),
            caption: match mean {
                Some(mean) => format!(
                    "Reaches {:.2}; the unit's mean over the test set is {mean:.2}.",
                    m.activation
                ),
                None => format!("Reaches {:.2}.", m.activation),
            },
        });
        maximised.extend(found);
    }
    sections.push(max_section);

    // 6. Mistakes.
    render::confusion_heatmap(&out("confusion.png"), &confusion)?;
    let shown: Vec<&Mistake> = mistakes.iter().take(cfg.mistakes).collect();
    let mut mistake_section = Section {
        title: "Mistakes".into(),
        paragraphs: vec![format!(
            "{} of {} test images are misclassified. The confusion matrix counts images by true class (rows) and prediction (columns); below it, the mistakes the network was most sure of.",
            mistakes.len(),
            test.len()
        )],
        images: vec![Figure {
            file: "confusion.png".into(),
            alt: "confusion matrix heat map".into(),
            caption: "Row-normalised colours: the darker a red cell, the larger that confusion.".into(),
        }],
        tables: vec![confusion_table(&confusion)],
    };
    if !shown.is_empty() {
        let tiles: Vec<Tile> = shown
            .iter()
            .map(|m| tile(w, h, &analysis::unit_pixels(test.image(m.index))))
            .collect::<Result<_>>()?;
        let captions: Vec<String> = shown
            .iter()
            .map(|m| {
                format!(
                    "{} → {}\n{:.0}%",
                    m.label,
                    m.predicted,
                    100.0 * m.probability
                )
            })
            .collect();
        render::image_grid(
            &out("mistakes.png"),
            &tiles,
            &captions,
            &GridOptions {
                title: "Most confident mistakes (true → predicted)".into(),
                zoom: 3,
                ..Default::default()
            },
        )?;
        mistake_section.images.push(Figure {
            file: "mistakes.png".into(),
            alt: "gallery of misclassified test digits".into(),
            caption: "Each labelled true class → predicted class, with the probability given to the prediction.".into(),
        });
    }
    sections.push(mistake_section);

    // 7. PCA of a hidden layer, or of the node --pca-layer names.
    let pca_layer = match pca_node {
        Some(node) => Some(analysis::node_info(graph, node)),
        None => layers.iter().rfind(|l| l.node < last).cloned(),
    };
    let mut pca_variance = Vec::new();
    if let Some(layer) = &pca_layer {
        const MAX_POINTS: usize = 5000;
        let sample = test.clone().truncated(MAX_POINTS);
        let acts = analysis::layer_activations(backend.as_mut(), graph, &sample, layer.node)?;
        let dims = graph.nodes[layer.node].output_len();
        match pca::fit(&acts, sample.len(), dims, 2) {
            Ok(fit) => {
                let projected = fit.project(&acts, sample.len());
                let points: Vec<(f32, f32)> = projected.chunks(2).map(|p| (p[0], p[1])).collect();
                let ratio = &fit.explained_variance_ratio;
                render::scatter(
                    &out("pca.png"),
                    &points,
                    &sample.labels,
                    &format!("{}: PCA of {} test images", layer.label, sample.len()),
                    &format!("PC 1 ({:.1}% of variance)", 100.0 * ratio[0]),
                    &format!("PC 2 ({:.1}% of variance)", 100.0 * ratio[1]),
                )?;
                sections.push(Section {
                    title: "Hidden space".into(),
                    paragraphs: vec![format!(
                        "The {dims}-dimensional activations of {} projected on their two principal components, which explain {:.1}% and {:.1}% of the variance. Digits the network keeps apart form separate clouds.",
                        layer.label,
                        100.0 * ratio[0],
                        100.0 * ratio[1]
                    )],
                    images: vec![Figure {
                        file: "pca.png".into(),
                        alt: "scatter of test images in the hidden layer's first two principal components".into(),
                        caption: "Coloured by true class.".into(),
                    }],
                    ..Default::default()
                });
                pca_variance = fit.explained_variance_ratio.clone();
            }
            Err(e) => writeln!(log, "inspect: no PCA of {}: {e:#}", layer.label)?,
        }
    }

    // 8. Neuron write-ups; an error while asking the language model comes
    // back after the report is written, so the report shows what arrived.
    let mut asking_failed = None;
    if let Some(prompts) = &cfg.prompts {
        let evidence = super::prompts::Evidence {
            model_path: &cfg.model,
            data: &cfg.data,
            model: &model,
            test: &test,
            logits: &logits,
            stats: &stats,
            ascent: &cfg.ascent,
        };
        let outcome = super::prompts::run(prompts, &evidence, backend.as_mut(), &cfg.out, log)?;
        sections.push(outcome.section);
        asking_failed = outcome.error;
    }

    let index = html::write(
        &cfg.out,
        &html::Report {
            title: format!(
                "What {} learned",
                cfg.model
                    .file_name()
                    .map_or("the model".into(), |f| f.to_string_lossy().into_owned())
            ),
            sections,
        },
    )?;
    if cfg.json {
        let report = InspectReport {
            model: graph.spec.to_string(),
            test_images: test.len(),
            accuracy,
            layers: stats,
            output_top_weights: output_weights,
            maximised,
            confusion,
            most_confident_mistakes: mistakes.into_iter().take(cfg.mistakes).collect(),
            pca_layer: pca_layer.map(|l| l.label),
            pca_explained_variance: pca_variance,
            batch_norm,
            template_class_correlation: correlation,
        };
        crate::checkpoint::write_atomically(
            &out("report.json"),
            serde_json::to_string_pretty(&report)?.as_bytes(),
        )?;
    }
    if let Some(e) = asking_failed {
        return Err(e);
    }
    Ok(index)
}

fn units_section(stats: &[UnitStats], k: usize, classes: usize) -> Section {
    let mut tables = Vec::new();
    for s in stats {
        tables.push(Table {
            header: vec![
                "class".into(),
                format!(
                    "top {k} units of {} (mean activation, above the unit's overall mean)",
                    s.layer.label
                ),
            ],
            rows: (0..classes)
                .map(|c| {
                    let cells: Vec<String> = s
                        .top_units(c, k)
                        .iter()
                        .map(|(u, mean, delta)| format!("{u} ({mean:.2}, {delta:+.2})"))
                        .collect();
                    vec![c.to_string(), cells.join(", ")]
                })
                .collect(),
        });
    }
    Section {
        title: "Units per class".into(),
        paragraphs: vec![
            "For each hidden layer, the units that fire most for each digit compared with how they fire on average; a conv unit is a channel, its activation averaged over positions. report.json (--json) holds every unit's mean and standard deviation per class.".into(),
        ],
        tables,
        ..Default::default()
    }
}

fn dead_section(stats: &[UnitStats]) -> Section {
    Section {
        title: "Dead units".into(),
        paragraphs: vec![
            "A ReLU unit is dead when it outputs zero for every test image (a conv channel: at every position too); it then passes no gradient and never learns again. Units with other activations are never dead in this sense.".into(),
            "A layer whose ReLU comes later (conv → bn → relu, or conv → pool → bn → relu) is judged where its channels pass that ReLU: a conv channel is dead when the activation after its bn never fires. The last column names that node.".into(),
        ],
        tables: vec![Table {
            header: vec!["layer".into(), "units".into(), "dead".into(), "fraction".into(), "which".into(), "judged at".into()],
            rows: stats
                .iter()
                .map(|s| {
                    vec![
                        s.layer.label.clone(),
                        s.layer.units.to_string(),
                        s.dead.len().to_string(),
                        format!("{:.1}%", 100.0 * s.dead_fraction()),
                        s.dead.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(", "),
                        s.dead_at.clone().unwrap_or_else(|| "no ReLU follows".into()),
                    ]
                })
                .collect(),
        }],
        ..Default::default()
    }
}

/// Each bn node's channels: what training left in its running statistics
/// and what evaluation does with them.
fn batch_norm_section(states: &[BatchNormState]) -> Section {
    let tables = states
        .iter()
        .map(|bn| {
            let scale = bn.scale(crate::ops::bn::EPS);
            Table {
                header: vec![
                    format!("{} channel", bn.label),
                    "running_mean".into(),
                    "running_var".into(),
                    "weight γ".into(),
                    "bias β".into(),
                    "scale γ/√(var+eps)".into(),
                ],
                rows: (0..bn.running_mean.len())
                    .map(|c| {
                        vec![
                            c.to_string(),
                            format!("{:.4}", bn.running_mean[c]),
                            format!("{:.4}", bn.running_var[c]),
                            format!("{:.4}", bn.weight[c]),
                            format!("{:+.4}", bn.bias[c]),
                            format!("{:.3}", scale[c]),
                        ]
                    })
                    .collect(),
            }
        })
        .collect();
    Section {
        title: "Batch norm".into(),
        paragraphs: vec![
            "In training a bn layer normalises each channel by the batch's mean and variance; it also keeps running averages of them (momentum 0.1), which evaluation and this report use instead: y = γ·(x − running_mean)/√(running_var + eps) + β. A channel whose running_var is near zero barely varies over the data; a large scale amplifies small differences.".into(),
            states
                .iter()
                .map(|bn| format!("{}: {} training batches tracked", bn.name, bn.num_batches_tracked))
                .collect::<Vec<_>>()
                .join("; ")
                + ". report.json (--json) holds the same numbers under batch_norm.",
        ],
        tables,
        ..Default::default()
    }
}

fn confusion_table(confusion: &[Vec<u64>]) -> Table {
    let n = confusion.len();
    let mut header = vec!["true \\ predicted".to_string()];
    header.extend((0..n).map(|c| c.to_string()));
    Table {
        header,
        rows: confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let mut cells = vec![c.to_string()];
                cells.extend(row.iter().map(|v| v.to_string()));
                cells
            })
            .collect(),
    }
}

/// Opens `device` for a saved model's analyses (used by tests too).
pub fn open(device: DeviceChoice, model: &SavedModel) -> Result<Box<dyn Backend>> {
    infer::open_model(device, model, &mut std::io::sink())
}

/// The test split of `dir`, for callers that analyse without a report.
pub fn test_data(dir: &Path, limit: Option<usize>) -> Result<Dataset> {
    let test = load_dataset(dir, Split::Test)?;
    Ok(match limit {
        Some(n) => test.truncated(n),
        None => test,
    })
}
