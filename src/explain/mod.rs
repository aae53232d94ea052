//! `gpunet explain`: why a saved model gives its answer for given images.
//!
//! - [`attribution`]: the numbers, through the `Backend` trait (either
//!   device): top classes, saliency, gradient × input, integrated
//!   gradients with their completeness gap, occlusion sensitivity.
//! - [`page`]: each map drawn over its image, and `index.html`.
//! - this file: the command: loads the model and the inputs (image files
//!   preprocessed as `predict` does, and test-set images by index, both
//!   through the model's normalisation), runs
//!   the attributions, takes a CNN's feature maps (every conv and pool
//!   node), draws everything and writes `explain.json`.

pub mod attribution;
pub mod page;

use crate::checkpoint::write_atomically;
use crate::data::{load_dataset, Split};
use crate::graph::Graph;
use crate::infer;
use crate::inspect::render::{self, GridOptions, Tile};
use crate::model_file;
use crate::ops::conv2d::Conv2d;
use crate::ops::pool::MaxPool;
use crate::preprocess;
use crate::train::DeviceChoice;
use anyhow::{bail, Context, Result};
use attribution::{per_pixel, ClassMaps, Explanation, PerPixel, Settings, OCCLUSION_PIXEL};
use page::{Entry, Panel, Row};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The largest batch planned (as `predict` and `inspect` plan).
const MAX_BATCH: usize = 256;

/// What to explain and where to write it.
#[derive(Debug, Clone)]
pub struct ExplainConfig {
    pub model: PathBuf,
    pub images: Vec<PathBuf>,
    pub test_indices: Vec<usize>,
    pub data: PathBuf,
    pub out: PathBuf,
    pub device: DeviceChoice,
    pub class: Option<usize>,
    pub settings: Settings,
}

/// Where an input came from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    File(PathBuf),
    TestIndex { index: usize, label: usize },
}

/// One explained input in `explain.json`: the numbers and the pictures.
#[derive(Debug, Clone, Serialize)]
pub struct InputReport {
    pub source: Source,
    /// The folder (under --out) holding its pictures.
    pub dir: String,
    #[serde(flatten)]
    pub explanation: Explanation,
    /// A CNN's feature-map grids, one per conv and pool node.
    pub feature_maps: Vec<FeatureMaps>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureMaps {
    pub node: String,
    pub file: String,
    /// The largest value in any channel.
    pub max: f32,
}

/// `explain.json`.
#[derive(Debug, Serialize)]
pub struct ExplainReport {
    pub model: String,
    pub device: String,
    pub adapter: String,
    pub steps: usize,
    pub integration: &'static str,
    pub baseline: attribution::Baseline,
    /// The baseline's pixel value (0..255) and its input per channel.
    pub baseline_pixel: f32,
    pub baseline_input: Vec<f32>,
    /// How pixels became inputs (the model's normalisation).
    pub normalization: String,
    pub patch: usize,
    pub stride: usize,
    /// The occlusion patch's pixel value (0..255) and its input per channel.
    pub occlusion_pixel: f32,
    pub occlusion_input: Vec<f32>,
    pub seconds: f64,
    pub inputs: Vec<InputReport>,
}

/// What `--json` prints: `explain.json` without the per-pixel maps.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub model: String,
    pub device: String,
    pub index: PathBuf,
    pub json: PathBuf,
    pub seconds: f64,
    pub inputs: Vec<InputSummary>,
}

#[derive(Debug, Serialize)]
pub struct InputSummary {
    pub source: Source,
    pub top: Vec<(usize, f64)>,
    pub predicted: usize,
    pub classes: Vec<ClassSummary>,
}

#[derive(Debug, Serialize)]
pub struct ClassSummary {
    pub class: usize,
    pub logit: f32,
    pub probability: f64,
    pub baseline_logit: f32,
    pub integrated_sum: f64,
    pub completeness_gap_relative: Option<f64>,
    pub occlusion_max_drop: f32,
    pub occlusion_max_at: (usize, usize),
}

impl ExplainReport {
    pub fn summary(&self, index: PathBuf, json: PathBuf) -> Summary {
        Summary {
            model: self.model.clone(),
            device: self.device.clone(),
            index,
            json,
            seconds: self.seconds,
            inputs: self
                .inputs
                .iter()
                .map(|i| InputSummary {
                    source: i.source.clone(),
                    top: i.explanation.top.clone(),
                    predicted: i.explanation.predicted,
                    classes: i
                        .explanation
                        .classes
                        .iter()
                        .map(|c| ClassSummary {
                            class: c.class,
                            logit: c.logit,
                            probability: c.probability,
                            baseline_logit: c.baseline_logit,
                            integrated_sum: c.integrated_sum,
                            completeness_gap_relative: c.completeness_gap_relative,
                            occlusion_max_drop: c.occlusion_max_drop,
                            occlusion_max_at: c.occlusion_max_at,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// The conv and pool nodes, whose outputs are drawn as feature maps.
pub fn feature_nodes(graph: &Graph) -> Vec<usize> {
    graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op.as_any().is::<Conv2d>() || n.op.as_any().is::<MaxPool>())
        .map(|(i, _)| i)
        .collect()
}

/// A folder name from a file's stem: letters, digits, `-` and `_` kept.
fn folder_name(i: usize, source: &Source) -> String {
    match source {
        Source::TestIndex { index, .. } => format!("{i:02}-test{index}"),
        Source::File(path) => {
            let stem: String = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(40)
                .collect();
            format!("{i:02}-{stem}")
        }
    }
}

/// Loads the inputs, normalised as the model's training data was: every
/// file as `predict` prepares it (refusing the first that cannot be read,
/// by name), then every test index (refusing one past the set's end).
fn load_inputs(cfg: &ExplainConfig, graph: &Graph) -> Result<Vec<(Source, Vec<f32>)>> {
    let mut inputs = Vec::new();
    for path in &cfg.images {
        let x = preprocess::load_for_model(path, graph)?;
        inputs.push((Source::File(path.clone()), x));
    }
    if !cfg.test_indices.is_empty() {
        let test = load_dataset(&cfg.data, Split::Test)?;
        let input = graph.input;
        if (test.channels, test.rows, test.cols) != (input.c, input.h, input.w) {
            bail!(
                "{} was trained on {} images, the test images in {} are {}×{}×{}",
                cfg.model.display(),
                input,
                cfg.data.display(),
                test.channels,
                test.rows,
                test.cols
            );
        }
        for &index in &cfg.test_indices {
            if index >= test.len() {
                bail!(
                    "--test-index {index}: the test set in {} has {} images, numbered 0 to {}",
                    cfg.data.display(),
                    test.len(),
                    test.len().saturating_sub(1)
                );
            }
            let x = graph
                .normalization
                .apply(test.image(index), input.c, input.h * input.w);
            let label = usize::from(test.labels[index]);
            inputs.push((Source::TestIndex { index, label }, x));
        }
    }
    Ok(inputs)
}

/// Runs everything; returns the report, the path of `index.html` and of
/// `explain.json`.
pub fn run(cfg: &ExplainConfig, log: &mut dyn Write) -> Result<(ExplainReport, PathBuf, PathBuf)> {
    if cfg.images.is_empty() && cfg.test_indices.is_empty() {
        bail!("nothing to explain: name image files or give --test-index N");
    }
    crate::output::check_dir("--out", &cfg.out)?;
    let model = model_file::load(&cfg.model)?;
    let graph = &model.graph;
    let classes = graph.classes();
    if let Some(c) = cfg.class {
        if c >= classes {
            bail!(
                "--class {c}: the model has {classes} classes, numbered 0 to {}",
                classes - 1
            );
        }
    }
    cfg.settings.check(graph.input.h, graph.input.w)?;
    let inputs = load_inputs(cfg, graph)?;
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    // One image's path gradients fill a batch: the GPU pads every batch to
    // the planned size, so a larger one would compute padding.
    let path_rows = (1 + usize::from(cfg.class.is_some())) * (cfg.settings.steps + 1);
    let batch = path_rows.min(MAX_BATCH);
    let mut backend = infer::open_model_batch(cfg.device, &model, batch, log)?;

    let started = Instant::now();
    let xs: Vec<Vec<f32>> = inputs.iter().map(|(_, x)| x.clone()).collect();
    writeln!(
        log,
        "explain: {} input(s), integrated gradients over {} steps and occlusion by {}×{} patches every {} pixels",
        xs.len(),
        cfg.settings.steps,
        cfg.settings.patch,
        cfg.settings.patch,
        cfg.settings.stride
    )?;
    let explanations =
        attribution::explain(backend.as_mut(), graph, &xs, cfg.class, &cfg.settings)?;
    let nodes = feature_nodes(graph);
    let features = if nodes.is_empty() {
        Vec::new()
    } else {
        backend.node_outputs(&xs.concat(), xs.len(), &nodes)?
    };
    let seconds = started.elapsed().as_secs_f64();
    writeln!(log, "explain: computed in {seconds:.2} s; drawing")?;

    let names = graph.class_names();
    let class_name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let (channels, h, w) = (graph.input.c, graph.input.h, graph.input.w);
    let mut reports = Vec::new();
    let mut entries = Vec::new();
    for (i, ((source, x), explanation)) in inputs.into_iter().zip(explanations).enumerate() {
        let folder = folder_name(i, &source);
        let dir = cfg.out.join(&folder);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let file = |name: &str| format!("{folder}/{name}");
        // The input as pixel / 255, for drawing (the normalisation undone).
        let unit = graph.normalization.to_unit(&x, channels, h * w);
        page::draw(&dir.join("input.png"), (channels, h, w), &unit, None)?;
        let title = match &source {
            Source::File(path) => format!("{} (preprocessed as predict does)", path.display()),
            Source::TestIndex { index, label } => {
                format!("test image {index}, labelled {}", class_name(*label))
            }
        };
        let mut rows = Vec::new();
        for maps in &explanation.classes {
            rows.push(class_row(
                &dir,
                &file,
                &unit,
                (channels, h, w),
                maps,
                &class_name,
                cfg,
            )?);
        }
        let mut feature_maps = Vec::new();
        for (&node, outputs) in nodes.iter().zip(&features) {
            let shape = graph.nodes[node].op.output();
            let len = shape.len();
            let values = &outputs[i * len..(i + 1) * len];
            let tiles: Vec<Tile> = values
                .chunks(shape.h * shape.w)
                .map(|v| Tile::new(shape.w, shape.h, v.to_vec()))
                .collect::<Result<_>>()?;
            let captions: Vec<String> = (0..tiles.len()).map(|c| c.to_string()).collect();
            let name = format!("features-{}.png", graph.nodes[node].name.replace('.', "-"));
            let label = graph.nodes[node].label();
            render::weight_grid(
                &dir.join(&name),
                &tiles,
                &captions,
                &GridOptions {
                    title: format!("{label}: each channel's output"),
                    zoom: (84 / shape.h.max(1)).clamp(2, 8) as u32,
                    legend_label: "output".into(),
                    ..Default::default()
                },
            )?;
            feature_maps.push(FeatureMaps {
                node: label,
                file: file(&name),
                max: values.iter().cloned().fold(f32::NEG_INFINITY, f32::max),
            });
        }
        for fm in &feature_maps {
            rows.push(Row {
                title: format!("Feature maps of {}", fm.node),
                panels: vec![Panel {
                    file: fm.file.clone(),
                    alt: format!("feature maps of {}, one tile per channel", fm.node),
                    caption: "One tile per channel, after the node's activation; one colour scale for the layer.".into(),
                }],
            });
        }
        entries.push(Entry {
            title,
            paragraphs: vec![format!(
                "Predicted {} with probability {:.1}%.",
                class_name(explanation.predicted),
                100.0 * explanation.top[0].1
            )],
            top: explanation
                .top
                .iter()
                .map(|&(c, p)| (class_name(c), format!("{:.2}%", 100.0 * p)))
                .collect(),
            rows,
        });
        reports.push(InputReport {
            source,
            dir: folder,
            explanation,
            feature_maps,
        });
    }
    let s = &cfg.settings;
    let plane = h * w;
    let per_channel = |pixel: f32| -> Vec<f32> {
        let x = attribution::uniform_input(graph, pixel);
        (0..channels).map(|c| x[c * plane]).collect()
    };
    let list = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let baseline_input = per_channel(s.baseline.pixel());
    let occlusion_input = per_channel(OCCLUSION_PIXEL);
    let mut intro = vec![
        format!(
            "{} on {} inputs, on {} ({}). Inputs x are normalised as in training: {}.",
            graph.spec,
            graph.input,
            backend.device(),
            backend.adapter(),
            graph.normalization
        ),
        if channels == 1 {
            "Each map is drawn over the image (ink darkens it): red where it is positive, blue where negative, white at zero, on its own symmetric scale ±s given under it.".to_string()
        } else {
            format!("Each map is drawn over the image (lightened and mixed in at {:.0}%): red where it is positive, blue where negative, white at zero, on its own symmetric scale ±s given under it. The maps are per input value, {channels} per pixel; each pixel is drawn as the largest of its channels' saliencies (as Simonyan et al. do) and the sum over its channels of the other maps.", 100.0 * page::IMAGE_MIX)
        },
        "Saliency is |∂logit/∂x| (Simonyan et al. 2014). Gradient × input is x · ∂logit/∂x.".into(),
        format!(
            "Integrated gradients (Sundararajan et al. 2017): (x − x′)·∫₀¹ ∂logit/∂x(x′ + α(x − x′)) dα from a {} baseline x′ (pixel value {} in every channel, normalised: x′ = {} per channel), the integral by the trapezoid rule over {} steps ({} gradients). They should sum to logit(x) − logit(x′); the completeness gap is how far they miss, relative to that difference.",
            s.baseline.name(),
            s.baseline.pixel(),
            list(&baseline_input),
            s.steps,
            s.steps + 1
        ),
        format!(
            "Occlusion (Zeiler & Fergus 2014): the drop in the class's probability when a {0}×{0} patch is set to grey (pixel value {OCCLUSION_PIXEL} in every channel, normalised: {2} per channel), patches every {1} pixels; each pixel shows the mean drop of the patches covering it. Red: hiding it lowers the probability.",
            s.patch, s.stride, list(&occlusion_input)
        ),
    ];
    if channels > 1 {
        intro.push("Gradient × input is relative to x = 0, which per-channel normalisation puts at the training set's mean colour, not at black; integrated gradients from the black baseline are the attribution relative to black.".into());
    }
    page::write_page(&cfg.out, "gpunet explain", &intro, &entries)?;
    let report = ExplainReport {
        model: graph.spec.to_string(),
        device: backend.device().into(),
        adapter: backend.adapter(),
        steps: s.steps,
        integration: "trapezoid",
        baseline: s.baseline,
        baseline_pixel: s.baseline.pixel(),
        baseline_input,
        normalization: graph.normalization.to_string(),
        patch: s.patch,
        stride: s.stride,
        occlusion_pixel: OCCLUSION_PIXEL,
        occlusion_input,
        seconds,
        inputs: reports,
    };
    let json_path = cfg.out.join("explain.json");
    let json = serde_json::to_vec(&report).context("serialising explain.json")?;
    write_atomically(&json_path, &json)?;
    Ok((report, cfg.out.join("index.html"), json_path))
}

/// The row of one explained class: saliency, gradient × input, integrated
/// gradients and occlusion, each over the image (`unit`: pixel / 255 of
/// each of its `channels` planes); a colour image's maps one value per
/// pixel (`per_pixel`: saliency the largest over channels, the others the
/// sum).
fn class_row(
    dir: &Path,
    file: &dyn Fn(&str) -> String,
    unit: &[f32],
    (channels, h, w): (usize, usize, usize),
    maps: &ClassMaps,
    class_name: &dyn Fn(usize) -> String,
    cfg: &ExplainConfig,
) -> Result<Row> {
    let c = maps.class;
    let mut panels = vec![Panel {
        file: file("input.png"),
        alt: "the input image".into(),
        caption: "the input".into(),
    }];
    let gap = match maps.completeness_gap_relative {
        Some(r) => format!("completeness gap {:.3}%", 100.0 * r),
        None => format!(
            "completeness gap {:.2e} (logit(x) = logit(x′))",
            maps.completeness_gap
        ),
    };
    let colour = channels > 1;
    let pixels = |values: &[f32], how| {
        if colour {
            per_pixel(values, channels, h * w, how)
        } else {
            values.to_vec()
        }
    };
    let (saliency, summed) = if colour {
        (
            "saliency max over channels |∂logit/∂x|",
            " summed over channels",
        )
    } else {
        ("saliency |∂logit/∂x|", "")
    };
    let pieces: [(&str, String, Vec<f32>, String); 4] = [
        (
            "saliency",
            saliency.into(),
            pixels(&maps.saliency, PerPixel::Max),
            String::new(),
        ),
        (
            "gradxinput",
            format!("gradient × input{summed}"),
            pixels(&maps.gradient_times_input, PerPixel::Sum),
            String::new(),
        ),
        (
            "ig",
            format!("integrated gradients{summed}"),
            pixels(&maps.integrated_gradients, PerPixel::Sum),
            format!(
                "; Σ = {:.3} vs logit(x) − logit(x′) = {:.3} − {:.3}; {gap}",
                maps.integrated_sum, maps.logit, maps.baseline_logit
            ),
        ),
        (
            "occlusion",
            "occlusion: drop in probability".into(),
            maps.occlusion.clone(),
            format!(
                "; largest drop {:.3} at the patch from row {}, column {}",
                maps.occlusion_max_drop, maps.occlusion_max_at.0, maps.occlusion_max_at.1
            ),
        ),
    ];
    for (key, what, values, extra) in pieces {
        let name = format!("class{c}-{key}.png");
        let scale = page::scale_of(&values);
        page::draw(
            &dir.join(&name),
            (channels, h, w),
            unit,
            Some((&values, scale)),
        )?;
        panels.push(Panel {
            file: file(&name),
            alt: format!("{what} for class {} over the image", class_name(c)),
            caption: format!("{what}, s = {scale:.3}{extra}"),
        });
    }
    let why = if Some(c) == cfg.class {
        "requested with --class"
    } else {
        "predicted"
    };
    Ok(Row {
        title: format!(
            "Class {} ({why}): logit {:.3}, probability {:.2}%",
            class_name(c),
            maps.logit,
            100.0 * maps.probability
        ),
        panels,
    })
}
