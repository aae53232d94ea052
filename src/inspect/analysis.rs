//! What a trained network computes, in numbers: per-class statistics of
//! every hidden unit, dead units, the strongest weights into each output,
//! inputs that maximise a unit (gradient ascent through the engine's
//! backward pass), the most confident mistakes, and a hidden layer's
//! activations for PCA. Runs on whichever backend it is given.

use super::nodes;
use crate::backend::Backend;
use crate::data::Dataset;
use crate::graph::{Activation, Graph, Value};
use crate::ops::conv2d::Conv2d;
use crate::ops::dense::Dense;
use crate::ops::softmax_xent::reference as ops;
use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The network's inputs of `images` (u8, C×H×W per image), normalised as
/// in training (the model's `Normalization`: per channel or /255). Every
/// analysis prepares its inputs here.
pub fn normalise(graph: &Graph, images: &[u8]) -> Vec<f32> {
    let input = graph.input;
    graph
        .normalization
        .apply(images, input.c, input.h * input.w)
}

/// Pixels / 255 in [0, 1], the scale pictures are drawn on and activation
/// maximisation climbs on (see [`to_display`] and [`INPUT_RANGE`]).
pub fn unit_pixels(images: &[u8]) -> Vec<f32> {
    images.iter().map(|&p| f32::from(p) / 255.0).collect()
}

/// Images on the [`unit_pixels`] scale as brightness in [0, 1] per
/// channel, for pictures.
pub fn to_display(x: &[f32]) -> Vec<f32> {
    x.iter().map(|v| v.clamp(0.0, 1.0)).collect()
}

/// The range of [`unit_pixels`], which activation maximisation keeps its
/// images inside (it converts them through the model's normalisation for
/// each step): (lowest, highest).
pub const INPUT_RANGE: (f32, f32) = (0.0, 1.0);

/// Examples per forward pass while gathering statistics (bounds memory:
/// a conv layer's outputs are large).
const CHUNK: usize = 500;

/// A node that has units to study: a dense layer (a unit per output) or a
/// conv layer (a unit per channel, its activation averaged over positions).
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    pub node: usize,
    /// Index of the layer in the model spec (its parameters are `layers.<spec_index>.*`).
    pub spec_index: usize,
    /// e.g. "layers.0 (conv16k3p1, relu)".
    pub label: String,
    pub units: usize,
    pub activation: Activation,
}

/// The nodes with units to study (dense and conv layers), with their spec
/// positions.
pub fn layers(graph: &Graph) -> Vec<LayerInfo> {
    (0..graph.nodes.len())
        .filter(|&node| graph.nodes[node].op.units().is_some())
        .map(|node| node_info(graph, node))
        .collect()
}

/// Any node as a layer to study (`inspect --node`): its units are its
/// output's channels (a dense layer's outputs, a conv's or a bn's channels).
pub fn node_info(graph: &Graph, node: usize) -> LayerInfo {
    let n = &graph.nodes[node];
    LayerInfo {
        node,
        spec_index: n.spec_index,
        label: n.label(),
        units: n.op.units().unwrap_or(n.op.output().c),
        activation: n.op.activation(),
    }
}

/// Per-class statistics of one layer's units over a data set.
#[derive(Debug, Clone, Serialize)]
pub struct UnitStats {
    pub layer: LayerInfo,
    /// mean[class][unit] and std[class][unit] of the unit's activation.
    pub mean: Vec<Vec<f32>>,
    pub std: Vec<Vec<f32>>,
    /// Over all examples: the mean, the standard deviation and the largest
    /// activation of each unit.
    pub overall_mean: Vec<f32>,
    pub overall_std: Vec<f32>,
    pub max: Vec<f32>,
    /// Units whose ReLU outputs zero on every example (and, for a conv
    /// channel, at every position), judged at `dead_at`.
    pub dead: Vec<usize>,
    /// The label of the node whose ReLU decides: the layer itself, or the
    /// bn (after a pool, say) that its output goes through first; None when
    /// no ReLU follows (see `nodes::fires_at`), and then no unit is dead.
    pub dead_at: Option<String>,
}

impl UnitStats {
    /// The (at most) k units that fire most for `class` compared with how
    /// they fire on all images: ranked by the z-score of the class's mean,
    /// (mean for the class − the unit's overall mean) / the unit's overall
    /// standard deviation, largest first. Only units above their own mean
    /// are listed (z > 0), and units that never vary (std 0, e.g. dead ones)
    /// never are. Returns (unit, mean for the class, z).
    pub fn top_units(&self, class: usize, k: usize) -> Vec<(usize, f32, f32)> {
        let mut ranked: Vec<(usize, f32, f32)> = (0..self.layer.units)
            .filter(|&u| self.overall_std[u] > 0.0)
            .map(|u| {
                let mean = self.mean[class][u];
                (u, mean, (mean - self.overall_mean[u]) / self.overall_std[u])
            })
            .filter(|&(_, _, z)| z > 0.0)
            .collect();
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2));
        ranked.truncate(k);
        ranked
    }

    pub fn dead_fraction(&self) -> f64 {
        self.dead.len() as f64 / self.layer.units.max(1) as f64
    }
}

/// Statistics of every dense and conv layer but the output over `data`.
pub fn unit_stats(
    backend: &mut dyn Backend,
    graph: &Graph,
    data: &Dataset,
    classes: usize,
) -> Result<Vec<UnitStats>> {
    let hidden: Vec<LayerInfo> = layers(graph)
        .into_iter()
        .filter(|l| l.node + 1 < graph.nodes.len())
        .collect();
    unit_stats_of(backend, graph, data, classes, hidden, &|_| {})
}

/// Per-class statistics of the units of the given layers (any nodes, see
/// [`node_info`]) over `data`, calling `on_chunk` with the number of
/// examples after each forward pass.
pub fn unit_stats_of(
    backend: &mut dyn Backend,
    graph: &Graph,
    data: &Dataset,
    classes: usize,
    hidden: Vec<LayerInfo>,
    on_chunk: &dyn Fn(usize),
) -> Result<Vec<UnitStats>> {
    // Each layer's own output, then the outputs that decide its liveness.
    let judges: Vec<Option<usize>> = hidden
        .iter()
        .map(|l| nodes::fires_at(graph, l.node))
        .collect();
    let mut nodes: Vec<usize> = hidden.iter().map(|l| l.node).collect();
    nodes.extend(judges.iter().flatten());
    let mut fired: Vec<Vec<f32>> = hidden
        .iter()
        .map(|l| vec![f32::NEG_INFINITY; l.units])
        .collect();
    // Sums in f64: Σx and Σx² per class and unit, the count per class, the max.
    let mut sum: Vec<Vec<Vec<f64>>> = hidden
        .iter()
        .map(|l| vec![vec![0.0; l.units]; classes])
        .collect();
    let mut sum_sq = sum.clone();
    let mut max: Vec<Vec<f32>> = hidden
        .iter()
        .map(|l| vec![f32::NEG_INFINITY; l.units])
        .collect();
    let mut count = vec![0usize; classes];
    let size = data.input_size();
    for start in (0..data.len()).step_by(CHUNK) {
        let end = (start + CHUNK).min(data.len());
        let x = normalise(graph, &data.images[start * size..end * size]);
        let outputs = backend.node_outputs(&x, end - start, &nodes)?;
        let mut judged = outputs[hidden.len()..].iter();
        for (l, judge) in judges.iter().enumerate() {
            let Some(judge) = *judge else { continue };
            let out = judged.next().expect("one output per judging node");
            let positions = graph.nodes[judge].output_len() / hidden[l].units;
            for (i, chunk) in out.chunks(positions).enumerate() {
                let u = i % hidden[l].units;
                fired[l][u] = chunk.iter().cloned().fold(fired[l][u], f32::max);
            }
        }
        for (l, (layer, out)) in hidden.iter().zip(&outputs).enumerate() {
            let per_example = graph.nodes[layer.node].output_len();
            let positions = per_example / layer.units;
            for (r, row) in out.chunks(per_example).enumerate() {
                let class = data.labels[start + r] as usize;
                for (u, unit_values) in row.chunks(positions).enumerate() {
                    let mean =
                        unit_values.iter().map(|&v| f64::from(v)).sum::<f64>() / positions as f64;
                    sum[l][class][u] += mean;
                    sum_sq[l][class][u] += mean * mean;
                    let peak = unit_values
                        .iter()
                        .cloned()
                        .fold(f32::NEG_INFINITY, f32::max);
                    max[l][u] = max[l][u].max(peak);
                }
            }
        }
        for &label in &data.labels[start..end] {
            count[label as usize] += 1;
        }
        on_chunk(end - start);
    }
    let total: usize = count.iter().sum();
    Ok(hidden
        .into_iter()
        .enumerate()
        .map(|(l, layer)| {
            let mean: Vec<Vec<f32>> = (0..classes)
                .map(|c| {
                    sum[l][c]
                        .iter()
                        .map(|s| (s / count[c].max(1) as f64) as f32)
                        .collect()
                })
                .collect();
            let std = (0..classes)
                .map(|c| {
                    (0..layer.units)
                        .map(|u| {
                            let n = count[c].max(1) as f64;
                            let m = sum[l][c][u] / n;
                            ((sum_sq[l][c][u] / n - m * m).max(0.0)).sqrt() as f32
                        })
                        .collect()
                })
                .collect();
            let n = total.max(1) as f64;
            let overall = |u: usize| {
                let m = (0..classes).map(|c| sum[l][c][u]).sum::<f64>() / n;
                let sq = (0..classes).map(|c| sum_sq[l][c][u]).sum::<f64>() / n;
                (m, (sq - m * m).max(0.0).sqrt())
            };
            let overall_mean = (0..layer.units).map(|u| overall(u).0 as f32).collect();
            let overall_std = (0..layer.units).map(|u| overall(u).1 as f32).collect();
            let dead = match judges[l] {
                Some(_) => (0..layer.units).filter(|&u| fired[l][u] <= 0.0).collect(),
                None => Vec::new(),
            };
            UnitStats {
                layer,
                mean,
                std,
                overall_mean,
                overall_std,
                max: max[l].clone(),
                dead,
                dead_at: judges[l].map(|j| graph.nodes[j].label()),
            }
        })
        .collect())
}

/// The k incoming weights of largest magnitude of each output class:
/// (input unit, weight) per class, strongest first.
pub fn top_output_weights(graph: &Graph, params: &[f32], k: usize) -> Vec<Vec<(usize, f32)>> {
    let Some(last) = graph.nodes.last() else {
        return Vec::new();
    };
    let Some(d) = last.op.as_any().downcast_ref::<Dense>() else {
        return Vec::new();
    };
    let w = &params[graph.params[last.params[0]].range()];
    (0..d.outputs)
        .map(|c| {
            let row = &w[c * d.inputs..(c + 1) * d.inputs];
            let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
            ranked.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
            ranked.truncate(k);
            ranked
        })
        .collect()
}

/// A unit's incoming weights as a picture: `channels` planes of
/// `width × height` (C×H×W, as the input).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub values: Vec<f32>,
}

impl Template {
    /// The mean weight of each channel (for a colour template, its mean
    /// colour as signed red, green and blue).
    pub fn channel_means(&self) -> Vec<f32> {
        self.values
            .chunks(self.width * self.height)
            .map(|plane| plane.iter().sum::<f32>() / plane.len() as f32)
            .collect()
    }
}

/// The first layer's weights as images: each dense unit's incoming weights
/// rolled back into the input's C×H×W, or each conv filter's C×k×k (every
/// input channel: three for colour images).
pub fn first_layer_templates(graph: &Graph, weights: &[f32]) -> Vec<Template> {
    let first = graph.nodes[0].op.as_any();
    let input = graph.input;
    if let Some(d) = first.downcast_ref::<Dense>() {
        weights
            .chunks(d.inputs)
            .map(|row| Template {
                width: input.w,
                height: input.h,
                channels: input.c,
                values: row[..input.len()].to_vec(),
            })
            .collect()
    } else if let Some(c) = first.downcast_ref::<Conv2d>() {
        let per_filter = c.input.c * c.kernel * c.kernel;
        weights
            .chunks(per_filter)
            .map(|f| Template {
                width: c.kernel,
                height: c.kernel,
                channels: c.input.c,
                values: f.to_vec(),
            })
            .collect()
    } else {
        Vec::new()
    }
}

/// A dense layer of a dense→dense chain seen from the image: each unit's
/// effective input template.
#[derive(Debug, Clone, Serialize)]
pub struct EffectiveLayer {
    pub node: usize,
    pub spec_index: usize,
    pub label: String,
    /// `templates[unit]`: the product W_L · … · W_2 · W_1's row for the
    /// unit, one weight per input value (C×H×W).
    pub templates: Vec<Vec<f32>>,
    /// `contributors[unit]`: the previous layer's units with the largest
    /// |weight| into this unit, (unit, weight), strongest first.
    pub contributors: Vec<Vec<(usize, f32)>>,
}

/// For a network that begins with dense layers, each one after the first
/// (while the chain lasts: a dense node reading the previous dense node):
/// the linear part of the map from the image to each unit, ignoring the
/// activations and the biases, T_L = W_L · T_{L−1} with T_1 = W_1. Also each
/// unit's `k` strongest incoming weights from the layer before.
pub fn effective_templates(graph: &Graph, params: &[f32], k: usize) -> Vec<EffectiveLayer> {
    let dense = |node: usize| graph.nodes[node].op.as_any().downcast_ref::<Dense>();
    let weights = |node: usize| &params[graph.params[graph.nodes[node].params[0]].range()];
    let Some(first) = dense(0) else {
        return Vec::new();
    };
    if graph.nodes[0].inputs != [Value::Input] {
        return Vec::new();
    }
    // product: (units of the current layer) × (input size), row-major.
    let mut product = weights(0)[..first.outputs * first.inputs].to_vec();
    let width = first.inputs;
    let mut layers = Vec::new();
    let mut node = 1;
    while node < graph.nodes.len() {
        let Some(d) = dense(node) else { break };
        if graph.nodes[node].inputs != [Value::Node(node - 1)] {
            break;
        }
        let w = weights(node);
        // T_L[o, i] = Σ_j W_L[o, j] · T_{L−1}[j, i]
        let mut next = vec![0.0f32; d.outputs * width];
        for o in 0..d.outputs {
            let row = &mut next[o * width..(o + 1) * width];
            for j in 0..d.inputs {
                let weight = w[o * d.inputs + j];
                for (t, &p) in row.iter_mut().zip(&product[j * width..(j + 1) * width]) {
                    *t += weight * p;
                }
            }
        }
        let contributors = (0..d.outputs)
            .map(|o| {
                let mut ranked: Vec<(usize, f32)> = w[o * d.inputs..(o + 1) * d.inputs]
                    .iter()
                    .copied()
                    .enumerate()
                    .collect();
                ranked.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
                ranked.truncate(k);
                ranked
            })
            .collect();
        layers.push(EffectiveLayer {
            node,
            spec_index: graph.nodes[node].spec_index,
            label: graph.nodes[node].label(),
            templates: next.chunks(width).map(<[f32]>::to_vec).collect(),
            contributors,
        });
        product = next;
        node += 1;
    }
    layers
}

/// Mean image of each class, on the [`unit_pixels`] scale.
pub fn class_means(data: &Dataset, classes: usize) -> Vec<Vec<f32>> {
    let size = data.input_size();
    let mut sums = vec![vec![0.0f64; size]; classes];
    let mut count = vec![0usize; classes];
    for i in 0..data.len() {
        let c = data.labels[i] as usize;
        count[c] += 1;
        for (s, p) in sums[c].iter_mut().zip(unit_pixels(data.image(i))) {
            *s += f64::from(p);
        }
    }
    sums.into_iter()
        .zip(count)
        .map(|(s, n)| {
            s.into_iter()
                .map(|v| (v / n.max(1) as f64) as f32)
                .collect()
        })
        .collect()
}

/// Pearson correlation of two equally long vectors.
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().max(1) as f64;
    let (ma, mb) = (
        a.iter().map(|&v| f64::from(v)).sum::<f64>() / n,
        b.iter().map(|&v| f64::from(v)).sum::<f64>() / n,
    );
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        cov += dx * dy;
        va += dx * dx;
        vb += dy * dy;
    }
    cov / (va * vb).sqrt().max(1e-12)
}

/// Settings of activation maximisation.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AscentSettings {
    pub steps: usize,
    /// Step size of each normalised gradient step.
    pub step_size: f32,
    /// L2 penalty pulling the image towards zero (fewer, stronger strokes).
    pub l2: f32,
    /// Blur with a 3×3 Gaussian every this many steps (0: never).
    pub blur_every: usize,
    /// Shift the image by up to this many pixels before each step.
    pub jitter: usize,
    pub seed: u64,
}

impl Default for AscentSettings {
    fn default() -> Self {
        AscentSettings {
            steps: 200,
            step_size: 0.05,
            l2: 0.02,
            blur_every: 4,
            jitter: 1,
            seed: 0,
        }
    }
}

/// One maximised unit: the image found and the unit's activation on it.
#[derive(Debug, Clone, Serialize)]
pub struct Maximised {
    pub node: usize,
    pub unit: usize,
    pub image: Vec<f32>,
    pub activation: f32,
}

/// Finds, for each unit of `node`, an input in [0,1] that makes the unit's
/// pre-activation large: gradient ascent on the input through the
/// backend's backward pass, each step normalised by the gradient's RMS, with
/// an L2 penalty, a light blur and jitter as regularisers. For a conv layer
/// the unit is a channel and the objective its mean over positions.
/// `units` may hold at most the backend's batch; the images are climbed
/// together, one per row.
pub fn maximise(
    backend: &mut dyn Backend,
    graph: &Graph,
    node: usize,
    units: &[usize],
    settings: &AscentSettings,
) -> Result<Vec<Maximised>> {
    maximise_with(backend, graph, node, units, settings, &|_| {})
}

/// [`maximise`], calling `on_step` with 1 after each gradient step.
pub fn maximise_with(
    backend: &mut dyn Backend,
    graph: &Graph,
    node: usize,
    units: &[usize],
    settings: &AscentSettings,
    on_step: &dyn Fn(usize),
) -> Result<Vec<Maximised>> {
    let out_len = graph.nodes[node].output_len();
    let channels = graph.nodes[node].op.output().c;
    let positions = out_len / channels;
    if let Some(&bad) = units.iter().find(|&&u| u >= channels) {
        bail!("unit {bad} does not exist: that layer has {channels} units");
    }
    let (w, h) = (graph.input.w, graph.input.h);
    // The images climb on the pixel / 255 scale; the network sees them normalised.
    let norm = &graph.normalization;
    let size = graph.input_size();
    let rows = units.len();
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let (lowest, highest) = INPUT_RANGE;
    let dim = lowest + 0.1 * (highest - lowest);
    let mut x: Vec<f32> = (0..rows * size)
        .map(|_| dim + rng.random_range(0.0..0.02))
        .collect();
    let mut seed = vec![0.0; rows * out_len];
    for (r, &u) in units.iter().enumerate() {
        for p in 0..positions {
            seed[r * out_len + u * positions + p] = 1.0 / positions as f32;
        }
    }
    for step in 0..settings.steps {
        let (dx, dy) = if settings.jitter > 0 {
            let j = settings.jitter as i32;
            (rng.random_range(-j..=j), rng.random_range(-j..=j))
        } else {
            (0, 0)
        };
        let shifted = shift(&x, rows, w, h, graph.input.c, dx, dy);
        let inputs = norm.from_unit(&shifted, graph.input.c, w * h);
        let grad = backend.input_gradient(&inputs, rows, node, &seed)?;
        let grad = norm.gradient_to_unit(&grad, graph.input.c, w * h);
        let grad = shift(&grad, rows, w, h, graph.input.c, -dx, -dy);
        for r in 0..rows {
            let g = &grad[r * size..(r + 1) * size];
            let rms = (g.iter().map(|v| v * v).sum::<f32>() / size as f32)
                .sqrt()
                .max(1e-8);
            for (xi, gi) in x[r * size..(r + 1) * size].iter_mut().zip(g) {
                *xi += settings.step_size * (gi / rms) - settings.l2 * *xi;
                *xi = xi.clamp(lowest, highest);
            }
        }
        if settings.blur_every > 0 && (step + 1) % settings.blur_every == 0 {
            blur(&mut x, rows * graph.input.c, w, h);
        }
        on_step(1);
    }
    let inputs = norm.from_unit(&x, graph.input.c, w * h);
    let outputs = backend.node_outputs(&inputs, rows, &[node])?.remove(0);
    Ok(units
        .iter()
        .enumerate()
        .map(|(r, &unit)| {
            let values = &outputs[r * out_len + unit * positions..][..positions];
            Maximised {
                node,
                unit,
                image: x[r * size..(r + 1) * size].to_vec(),
                activation: values.iter().sum::<f32>() / positions as f32,
            }
        })
        .collect())
}

/// Images moved by (dx, dy) pixels, zero where nothing moves in.
fn shift(x: &[f32], rows: usize, w: usize, h: usize, c: usize, dx: i32, dy: i32) -> Vec<f32> {
    if dx == 0 && dy == 0 {
        return x.to_vec();
    }
    let mut out = vec![0.0; x.len()];
    for plane in 0..rows * c {
        for i in 0..h as i32 {
            for j in 0..w as i32 {
                let (si, sj) = (i - dy, j - dx);
                if si >= 0 && sj >= 0 && si < h as i32 && sj < w as i32 {
                    out[plane * w * h + (i as usize) * w + j as usize] =
                        x[plane * w * h + (si as usize) * w + sj as usize];
                }
            }
        }
    }
    out
}

/// A 3×3 Gaussian blur ([1 2 1]ᵀ[1 2 1] / 16) of each plane, edges clamped.
fn blur(x: &mut [f32], planes: usize, w: usize, h: usize) {
    const K: [f32; 3] = [0.25, 0.5, 0.25];
    for plane in x.chunks_mut(w * h).take(planes) {
        let src = plane.to_vec();
        for i in 0..h {
            for j in 0..w {
                let mut acc = 0.0;
                for (di, ki) in K.iter().enumerate() {
                    for (dj, kj) in K.iter().enumerate() {
                        let ii = (i + di).saturating_sub(1).min(h - 1);
                        let jj = (j + dj).saturating_sub(1).min(w - 1);
                        acc += ki * kj * src[ii * w + jj];
                    }
                }
                plane[i * w + j] = acc;
            }
        }
    }
}

/// A misclassified example.
#[derive(Debug, Clone, Serialize)]
pub struct Mistake {
    pub index: usize,
    pub label: usize,
    pub predicted: usize,
    pub probability: f64,
}

/// The confusion matrix and every mistake, the most confident first, from
/// the logits of `labels.len()` examples.
pub fn mistakes(logits: &[f32], labels: &[u8], classes: usize) -> (Vec<Vec<u64>>, Vec<Mistake>) {
    let mut confusion = vec![vec![0u64; classes]; classes];
    let mut wrong = Vec::new();
    for (index, (row, &label)) in logits.chunks(classes).zip(labels).enumerate() {
        let label = label as usize;
        let (predicted, _) = ops::argmax(row);
        confusion[label][predicted] += 1;
        if predicted != label {
            wrong.push(Mistake {
                index,
                label,
                predicted,
                probability: crate::infer::softmax(row)[predicted],
            });
        }
    }
    wrong.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    (confusion, wrong)
}

/// A layer's activations over `data` (examples × its output length), for PCA.
pub fn layer_activations(
    backend: &mut dyn Backend,
    graph: &Graph,
    data: &Dataset,
    node: usize,
) -> Result<Vec<f32>> {
    let size = data.input_size();
    let mut out = Vec::new();
    for start in (0..data.len()).step_by(CHUNK) {
        let end = (start + CHUNK).min(data.len());
        let x = normalise(graph, &data.images[start * size..end * size]);
        out.extend(backend.node_outputs(&x, end - start, &[node])?.remove(0));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Shape;
    use crate::spec::ModelSpec;

    fn stats(mean: Vec<Vec<f32>>, overall_mean: Vec<f32>, overall_std: Vec<f32>) -> UnitStats {
        let units = overall_mean.len();
        UnitStats {
            layer: LayerInfo {
                node: 0,
                spec_index: 0,
                label: "layers.0 (dense3, relu)".into(),
                units,
                activation: Activation::Relu,
            },
            std: mean.clone(),
            mean,
            overall_mean,
            overall_std,
            max: vec![1.0; units],
            dead: Vec::new(),
            dead_at: None,
        }
    }

    #[test]
    fn top_units_rank_by_z_and_list_only_units_above_their_mean() {
        // Class 0: unit 0 is far above its mean in its own spread (z 4),
        // unit 1 is further above in raw terms but noisy (z 1), unit 2 has
        // the largest mean of all but is below its own mean (z −1), unit 3
        // never varies.
        let s = stats(
            vec![vec![2.0, 6.0, 9.0, 5.0], vec![0.0; 4]],
            vec![1.0, 3.0, 10.0, 5.0],
            vec![0.25, 3.0, 1.0, 0.0],
        );
        let top = s.top_units(0, 5);
        let units: Vec<usize> = top.iter().map(|t| t.0).collect();
        assert_eq!(units, [0, 1]);
        assert!((top[0].2 - 4.0).abs() < 1e-6 && (top[1].2 - 1.0).abs() < 1e-6);
        assert_eq!(top[0].1, 2.0);
        assert_eq!(s.top_units(0, 1).len(), 1);
        // Class 1 is below every unit's mean: nothing is listed.
        assert!(s.top_units(1, 5).is_empty());
    }

    #[test]
    fn effective_templates_are_the_products_of_the_weight_matrices() {
        let input = Shape { c: 1, h: 1, w: 2 };
        let spec = ModelSpec::parse("dense3,relu,dense2,tanh,dense2").unwrap();
        let graph = Graph::new(&spec, input, 2).unwrap();
        let mut params = vec![0.0f32; graph.param_len];
        let mut set = |node: usize, values: &[f32]| {
            let range = graph.params[graph.nodes[node].params[0]].range();
            params[range].copy_from_slice(values);
        };
        // W1 (3×2), W2 (2×3), W3 (2×2), row-major [out][in].
        set(0, &[1.0, 2.0, 0.0, -1.0, 3.0, 1.0]);
        set(1, &[1.0, 0.0, 2.0, -1.0, 4.0, 0.5]);
        set(2, &[2.0, 1.0, 0.0, -3.0]);
        let layers = effective_templates(&graph, &params, 2);
        assert_eq!(layers.len(), 2);
        // By hand: W2·W1 = [[1·1 + 0·0 + 2·3, 1·2 + 0·(−1) + 2·1],
        //                   [−1·1 + 4·0 + 0.5·3, −1·2 + 4·(−1) + 0.5·1]]
        //              = [[7, 4], [0.5, −5.5]].
        assert_eq!(layers[0].node, 1);
        assert_eq!(layers[0].templates, [vec![7.0, 4.0], vec![0.5, -5.5]]);
        // W3·W2·W1 = [[2·7 + 1·0.5, 2·4 + 1·(−5.5)], [0·7 − 3·0.5, 0·4 − 3·(−5.5)]]
        //          = [[14.5, 2.5], [−1.5, 16.5]].
        assert_eq!(layers[1].templates, [vec![14.5, 2.5], vec![-1.5, 16.5]]);
        // Unit 1 of layer 2's strongest inputs: W2[1] = [−1, 4, 0.5].
        assert_eq!(layers[0].contributors[1], [(1, 4.0), (0, -1.0)]);
        // A CNN has none.
        let cnn = ModelSpec::parse("conv2k3p1,relu,dense2").unwrap();
        let graph = Graph::new(&cnn, Shape { c: 1, h: 4, w: 4 }, 2).unwrap();
        assert!(effective_templates(&graph, &vec![0.0; graph.param_len], 2).is_empty());
    }
}
