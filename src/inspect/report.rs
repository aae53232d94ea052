//! `gpunet inspect`: runs every analysis of `analysis.rs` on a saved model
//! and writes the pictures, `index.html` tying them together with the
//! numbers, and with `--json` the raw numbers (`report.json`).

use super::analysis::{self, AscentSettings, LayerInfo, Maximised, Mistake, Template, UnitStats};
use super::html::{self, Figure, Link, Section, Table};
use super::nodes::{self, BatchNormState};
use super::pca;
use super::progress::{Progress, Timing};
use super::render::{self, GridOptions, Tile};
use super::units::{self, UnitPage};
use super::writeups::{self, Writeups};
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
    /// How many units of each hidden layer (the first ones) get an
    /// activation-maximisation image on their pages; outputs always do.
    pub ascent_units: usize,
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
    /// The name of each class, in the order of the confusion matrix.
    pub class_names: Vec<String>,
    /// Seconds each analysis took.
    pub timings: Vec<Timing>,
}

/// A picture of `channels` planes of `w × h` values (1: gray or signed, 3:
/// colour).
fn tile(w: usize, h: usize, channels: usize, values: &[f32]) -> Result<Tile> {
    Tile::planes(w, h, channels, values.to_vec())
}

fn template_tile(t: &Template) -> Result<Tile> {
    tile(t.width, t.height, t.channels, &t.values)
}

/// Most rows of activation maximisation climbed in one batch (the
/// backends' planned batch in `infer::open_model`).
const ASCENT_BATCH: usize = 256;

/// Every unit of `layer` maximised, in batches of [`ASCENT_BATCH`] rows.
fn maximise_layer(
    backend: &mut dyn Backend,
    graph: &crate::graph::Graph,
    layer: &LayerInfo,
    settings: &AscentSettings,
    on_step: &dyn Fn(usize),
) -> Result<Vec<Maximised>> {
    let all: Vec<usize> = (0..layer.units).collect();
    let mut found = Vec::with_capacity(layer.units);
    for chunk in all.chunks(ASCENT_BATCH) {
        found.extend(analysis::maximise_with(
            backend, graph, layer.node, chunk, settings, on_step,
        )?);
    }
    Ok(found)
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
    if model.graph.input.c != 1 && model.graph.input.c != 3 {
        bail!(
            "{}: inspect draws gray (1 channel) or colour (3 channel) inputs; this model takes {}",
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
    let writeups = Writeups::load_dir(&cfg.out)?;
    let mut test = load_dataset(&cfg.data, Split::Test)?;
    if let Some(n) = cfg.test_limit {
        test = test.truncated(n);
    }
    if test.is_empty() {
        bail!("no test images to inspect");
    }
    let input = model.graph.input;
    if (test.channels, test.rows, test.cols) != (input.c, input.h, input.w) {
        bail!(
            "{} was trained on {}×{}×{} images (C×H×W), the test images in {} are {}×{}×{}",
            cfg.model.display(),
            input.c,
            input.h,
            input.w,
            cfg.data.display(),
            test.channels,
            test.rows,
            test.cols
        );
    }
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    let mut backend = infer::open_model(cfg.device, &model, log)?;
    let classes = model.graph.classes();
    let names = graph.class_names();
    let channels = graph.input.c;
    let layers = analysis::layers(graph);
    let mut sections = Vec::new();
    let out = |name: &str| cfg.out.join(name);
    let mut progress = Progress::new(cfg.json);

    let stage = progress.stage("predictions on the test set", 1);
    let logits = backend.infer(&analysis::normalise(graph, &test.images), test.len())?;
    stage.inc(1);
    progress.finish(stage);
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
                    "Trained {} epochs ({} steps) with {}, learning rate {} ({} schedule), batch {}, seed {}. Classes: {}.",
                    model.progress.epochs_done, model.progress.global_step, s.optimizer, s.lr, s.schedule, s.batch, s.seed, names.join(", ")
                ),
                None => format!("No training settings were saved with this model. Classes: {}.", names.join(", ")),
            },
        ],
        ..Default::default()
    });

    // 1–2. Weight templates, and their animation over training.
    let first_weights = &model.params[graph.params[0].range()];
    let templates = analysis::first_layer_templates(graph, first_weights);
    let template_tiles: Vec<Tile> = templates.iter().map(template_tile).collect::<Result<_>>()?;
    let is_conv = graph.nodes[0].op.as_any().is::<Conv2d>();
    let zoom = if is_conv { 16 } else { 4 };
    let output_only = graph.nodes.len() == 1;
    let captions: Vec<String> = (0..template_tiles.len())
        .map(|u| {
            if output_only {
                names[u].clone()
            } else {
                u.to_string()
            }
        })
        .collect();
    let (h, w) = (graph.input.h, graph.input.w);
    let colour_note = if channels == 3 {
        " Colour weights are drawn per channel on one symmetric scale: each channel's brightness is 0.5 + 0.5·w/s, so zero is mid-gray, a positive red weight pulls the pixel towards red and a negative one towards cyan (likewise green/magenta, blue/yellow); s is the largest |weight| of any channel, and the colour bar runs from black (−s) to white (+s)."
    } else {
        ""
    };
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
            format!("The first layer's filters, enlarged: positive weights add to a channel's response where the image is bright, negative ones subtract.{colour_note}")
        } else if output_only {
            format!("Each output class's incoming weights rolled back into a {h}×{w} image: the network's template of that class. Positive weights are evidence for the class, negative ones against.{colour_note}")
        } else {
            format!("Each first-layer unit's incoming weights rolled back into a {h}×{w} image. Positive weights excite the unit, negative ones inhibit it.{colour_note}")
        }],
        images: vec![Figure {
            file: "templates.png".into(),
            alt: "first-layer weight templates".into(),
            caption: if channels == 3 {
                "Per-channel scale centred at mid-gray; the colour bar gives the range.".into()
            } else {
                "Diverging scale centred at zero (blue below, red above); the colour bar gives the range.".into()
            },
        }],
        ..Default::default()
    };
    let mut correlation = None;
    if graph.nodes.len() == 1 && templates.len() == classes {
        let means = analysis::class_means(&test, classes);
        let matrix: Vec<Vec<f64>> = templates
            .iter()
            .map(|t| {
                means
                    .iter()
                    .map(|m| analysis::correlation(&t.values, m))
                    .collect()
            })
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
                    .map(template_tile)
                    .collect::<Result<Vec<_>>>()?;
                Ok((format!("step {step}"), tiles))
            })
            .collect::<Result<_>>()?;
        let shown_units = template_tiles.len().min(MAX_TILES);
        let which_units = if shown_units < template_tiles.len() {
            format!("units 0–{} of {}", shown_units - 1, template_tiles.len())
        } else {
            format!("all {} units", template_tiles.len())
        };
        let gif_opts = GridOptions {
            title: format!("{}: {which_units} over training", layers[0].label),
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
                "The same weights ({which_units}) at {} snapshots from step 0 to step {}.",
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
    let last = graph.nodes.len() - 1;
    let mut studied: Vec<LayerInfo> = layers.clone();
    for &node in &extra_nodes {
        if studied.iter().all(|l| l.node != node) {
            studied.push(analysis::node_info(graph, node));
        }
    }
    let stage = progress.stage("unit statistics", test.len());
    let all_stats =
        analysis::unit_stats_of(backend.as_mut(), graph, &test, classes, studied, &|n| {
            stage.inc(n)
        })?;
    progress.finish(stage);
    let (stats, output_stats): (Vec<UnitStats>, Vec<UnitStats>) =
        all_stats.into_iter().partition(|s| s.layer.node < last);
    sections.push(units_section(&stats, cfg.top_k, &names));
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
                    vec![names[c].clone(), cells.join(", ")]
                })
                .collect(),
        }],
        ..Default::default()
    });

    // The linear part of deeper dense layers, seen from the image.
    let effective = analysis::effective_templates(graph, &model.params, 4);
    for layer in &effective {
        let is_output = layer.node == last;
        let tiles: Vec<Tile> = layer
            .templates
            .iter()
            .map(|t| tile(w, h, channels, t))
            .collect::<Result<_>>()?;
        let captions: Vec<String> = (0..tiles.len())
            .map(|u| {
                if is_output {
                    names[u].clone()
                } else {
                    u.to_string()
                }
            })
            .collect();
        let file = format!(
            "effective-{}.png",
            writeups::layer_key(&graph.nodes[layer.node].name)
        );
        render::weight_grid(
            &out(&file),
            &tiles,
            &captions,
            &GridOptions {
                title: format!("{}: W·…·W₁, each unit's linear template", layer.label),
                zoom: 4,
                legend_label: "effective weight".into(),
                ..Default::default()
            },
        )?;
        sections.push(Section {
            title: format!("Effective templates of {}", layer.label),
            paragraphs: vec![format!(
                "Each unit's effective input template: the product of the weight matrices from the image to it (W·…·W₁, here {} of them), rolled back into a {h}×{w} image. This is only the linear part of the map: it ignores the activations between the layers (a ReLU unit that is off passes nothing, so the real template of an image depends on which units it turns on) and the biases. Each unit's page shows it beside the templates of its strongest contributors in the layer before.{colour_note}",
                effective.iter().position(|l| l.node == layer.node).map_or(2, |i| i + 2)
            )],
            images: vec![Figure {
                file,
                alt: format!("effective input templates of {}", layer.label),
                caption: "One scale for all units of this layer; the colour bar gives the range.".into(),
            }],
            ..Default::default()
        });
    }

    // 5. Activation maximisation: all outputs, and the first units of
    // every hidden layer (for their pages), each layer's units climbed
    // together in one batch.
    let ascent_layers: Vec<(&LayerInfo, usize)> = layers
        .iter()
        .map(|l| {
            let n = if l.node == last {
                l.units
            } else {
                l.units.min(cfg.ascent_units)
            };
            (l, n)
        })
        .filter(|&(_, n)| n > 0)
        .collect();
    let batches: usize = ascent_layers
        .iter()
        .map(|(_, n)| n.div_ceil(ASCENT_BATCH))
        .sum();
    let stage = progress.stage("activation maximisation", batches * cfg.ascent.steps);
    let mut maximised_by_node: std::collections::HashMap<usize, Vec<Maximised>> =
        std::collections::HashMap::new();
    for &(layer, n) in &ascent_layers {
        let limited = LayerInfo {
            units: n,
            ..layer.clone()
        };
        let found = maximise_layer(backend.as_mut(), graph, &limited, &cfg.ascent, &|k| {
            stage.inc(k)
        })?;
        maximised_by_node.insert(layer.node, found);
    }
    progress.finish(stage);
    let mut maximised = maximised_by_node.get(&last).cloned().unwrap_or_default();
    let mean_logits: Vec<f32> = (0..classes)
        .map(|c| logits.chunks(classes).map(|r| r[c]).sum::<f32>() / test.len().max(1) as f32)
        .collect();
    let display = |image: &[f32]| tile(w, h, channels, &analysis::to_display(image));
    let max_tiles: Vec<Tile> = maximised
        .iter()
        .map(|m| display(&m.image))
        .collect::<Result<_>>()?;
    let max_captions: Vec<String> = maximised
        .iter()
        .map(|m| format!("{}\nlogit {:.1}", names[m.unit], m.activation))
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
    let (lowest, highest) = analysis::INPUT_RANGE;
    let mut max_section = Section {
        title: "Activation maximisation".into(),
        paragraphs: vec![format!(
            "Starting from a dim gray image, {} steps of gradient ascent on the input (through the network's own backward pass) make each output's logit large; an L2 penalty, a light blur every {} steps and 1-pixel jitter keep the images smooth, and inputs stay in [{lowest}, {highest}]. Mean logits over the test set, for comparison: {}. The first {} units of each hidden layer are maximised the same way (--ascent-units); their images are on the unit pages.",
            cfg.ascent.steps,
            cfg.ascent.blur_every,
            mean_logits.iter().zip(&names).map(|(v, n)| format!("{n} {v:.1}")).collect::<Vec<_>>().join(", "),
            cfg.ascent_units
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
            &[display(&m.image)?],
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

    // Unit pages, linked from here.
    let stage = progress.stage("unit pages", layers.iter().map(|l| l.units).sum());
    for layer in &layers {
        let is_output = layer.node == last;
        let layer_stats = stats
            .iter()
            .chain(&output_stats)
            .find(|s| s.layer.node == layer.node);
        let layer_effective = effective.iter().find(|e| e.node == layer.node);
        let previous_effective = layer_effective.and_then(|e| {
            effective.iter().find(|p| {
                Some(p.node) == units::incoming(graph, &model.params, e.node, 0, 1).map(|c| c.node)
            })
        });
        for unit in 0..layer.units {
            let template = if layer.node == 0 {
                Some((
                    template_tiles[unit].clone(),
                    "Its incoming weights, as a picture of the input.".to_string(),
                ))
            } else {
                layer_effective
                    .map(|e| -> Result<(Tile, String)> {
                        Ok((
                            tile(w, h, channels, &e.templates[unit])?,
                            "Its effective input template W·…·W₁: only the linear part of the map from the image to this unit, ignoring the activations in between and the biases.".into(),
                        ))
                    })
                    .transpose()?
            };
            let contributors = match layer_effective {
                Some(e) => e.contributors[unit]
                    .iter()
                    .map(|&(k, weight)| -> Result<(Tile, String)> {
                        let picture = match previous_effective {
                            Some(p) => tile(w, h, channels, &p.templates[k])?,
                            None => template_tiles[k].clone(),
                        };
                        Ok((picture, format!("unit {k}\n×{weight:+.3}")))
                    })
                    .collect::<Result<_>>()?,
                None => Vec::new(),
            };
            let found = maximised_by_node.get(&layer.node).and_then(|f| f.get(unit));
            UnitPage {
                graph,
                layer,
                unit,
                class_names: &names,
                per_class: layer_stats.map(|s| {
                    (
                        (0..classes).map(|c| s.mean[c][unit]).collect(),
                        (0..classes).map(|c| s.std[c][unit]).collect(),
                    )
                }),
                template,
                contributors,
                maximised: found
                    .map(|m| display(&m.image).map(|t| (t, m.activation)))
                    .transpose()?,
                incoming: units::incoming(graph, &model.params, layer.node, unit, cfg.top_k),
                outgoing: units::outgoing(graph, &model.params, layer.node, unit, cfg.top_k),
                writeups: &writeups,
                is_output,
            }
            .write(&cfg.out)?;
            stage.inc(1);
        }
        let mut paragraphs = vec![format!(
            "A page per {} of {}: its template, the input that maximises it (units 0–{} of a hidden layer; --ascent-units for more), its mean ± standard deviation per class, its strongest connections in and out, and its write-up when {} has one.",
            if is_output { "output" } else { "unit" },
            layer.label,
            cfg.ascent_units.min(layer.units).saturating_sub(1),
            writeups::FILE
        )];
        if let Some(text) = writeups.layer_of(&graph.nodes[layer.node].name) {
            paragraphs.push(format!("Write-up of this layer: {text}"));
        }
        sections.push(Section {
            title: format!("Unit pages: {}", layer.label),
            paragraphs,
            links: (0..layer.units)
                .map(|u| Link {
                    href: units::page_path(layer, graph, u),
                    text: if is_output {
                        names[u].clone()
                    } else {
                        u.to_string()
                    },
                })
                .collect(),
            ..Default::default()
        });
    }
    progress.finish(stage);
    if let Some(text) = &writeups.network {
        sections.push(Section {
            title: "Write-up of the network".into(),
            paragraphs: vec![text.clone()],
            ..Default::default()
        });
    }

    // 6. Mistakes.
    let stage = progress.stage("mistakes and PCA", 2);
    render::confusion_heatmap(&out("confusion.png"), &confusion, &names)?;
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
        tables: vec![confusion_table(&confusion, &names)],
        ..Default::default()
    };
    if !shown.is_empty() {
        let tiles: Vec<Tile> = shown
            .iter()
            .map(|m| display(&analysis::unit_pixels(test.image(m.index))))
            .collect::<Result<_>>()?;
        let captions: Vec<String> = shown
            .iter()
            .map(|m| {
                format!(
                    "{} → {}\n{:.0}%",
                    names[m.label],
                    names[m.predicted],
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
            alt: "gallery of misclassified test images".into(),
            caption: "Each labelled true class → predicted class, with the probability given to the prediction.".into(),
        });
    }
    sections.push(mistake_section);
    stage.inc(1);

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
                    &names,
                    &format!("{}: PCA of {} test images", layer.label, sample.len()),
                    &format!("PC 1 ({:.1}% of variance)", 100.0 * ratio[0]),
                    &format!("PC 2 ({:.1}% of variance)", 100.0 * ratio[1]),
                )?;
                sections.push(Section {
                    title: "Hidden space".into(),
                    paragraphs: vec![format!(
                        "The {dims}-dimensional activations of {} projected on their two principal components, which explain {:.1}% and {:.1}% of the variance. Classes the network keeps apart form separate clouds.",
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
    stage.inc(1);
    progress.finish(stage);

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
            class_names: names,
            timings: progress.timings,
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

fn units_section(stats: &[UnitStats], k: usize, names: &[String]) -> Section {
    let mut tables = Vec::new();
    for s in stats {
        tables.push(Table {
            header: vec![
                "class".into(),
                format!(
                    "top {k} units of {} (mean activation on the class, z)",
                    s.layer.label
                ),
            ],
            rows: names
                .iter()
                .enumerate()
                .map(|(c, name)| {
                    let cells: Vec<String> = s
                        .top_units(c, k)
                        .iter()
                        .map(|(u, mean, z)| format!("{u} ({mean:.2}, z {z:+.1})"))
                        .collect();
                    let listed = if cells.is_empty() {
                        "none above its mean".to_string()
                    } else {
                        cells.join(", ")
                    };
                    vec![name.clone(), listed]
                })
                .collect(),
        });
    }
    Section {
        title: "Units per class".into(),
        paragraphs: vec![
            "For each hidden layer, the units that fire most for each class compared with how they fire on all test images: ranked by z = (the unit's mean on the class − its mean on all images) / its standard deviation on all images, and only units above their own mean (z > 0) are listed. A conv unit is a channel, its activation averaged over positions. Each unit's page draws its mean ± standard deviation per class; report.json (--json) holds them all.".into(),
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

fn confusion_table(confusion: &[Vec<u64>], names: &[String]) -> Table {
    let mut header = vec!["true \\ predicted".to_string()];
    header.extend(names.iter().cloned());
    Table {
        header,
        rows: confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let mut cells = vec![names[c].clone()];
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
