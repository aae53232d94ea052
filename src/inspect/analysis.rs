//! What a trained network computes, in numbers: per-class statistics of
//! every hidden unit, dead units, the strongest weights into each output,
//! inputs that maximise a unit (gradient ascent through the engine's
//! backward pass), the most confident mistakes, and a hidden layer's
//! activations for PCA. Runs on whichever backend it is given.

use super::nodes;
use crate::backend::Backend;
use crate::data::Dataset;
use crate::graph::{Activation, Graph};
use crate::ops::conv2d::Conv2d;
use crate::ops::dense::Dense;
use crate::ops::softmax_xent::reference as ops;
use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The network's inputs of `images`, normalised as in training (the
/// model's `Normalization`).
pub fn normalise(graph: &Graph, images: &[u8]) -> Vec<f32> {
    let input = graph.input;
    graph
        .normalization
        .apply(images, input.c, input.h * input.w)
}

/// Pixels / 255 in [0, 1], for drawing images.
pub fn unit_pixels(images: &[u8]) -> Vec<f32> {
    images.iter().map(|&p| f32::from(p) / 255.0).collect()
}

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
    /// Over all examples: the mean and the largest activation of each unit.
    pub overall_mean: Vec<f32>,
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
    /// The k units that fire most for `class` relative to their mean over
    /// all classes: (unit, mean for the class, that minus the overall mean).
    pub fn top_units(&self, class: usize, k: usize) -> Vec<(usize, f32, f32)> {
        let mut ranked: Vec<(usize, f32, f32)> = (0..self.layer.units)
            .map(|u| {
                (
                    u,
                    self.mean[class][u],
                    self.mean[class][u] - self.overall_mean[u],
                )
            })
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
    unit_stats_of(backend, graph, data, classes, hidden)
}

/// Per-class statistics of the units of the given layers (any nodes, see
/// [`node_info`]) over `data`.
pub fn unit_stats_of(
    backend: &mut dyn Backend,
    graph: &Graph,
    data: &Dataset,
    classes: usize,
    hidden: Vec<LayerInfo>,
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
            let overall_mean = (0..layer.units)
                .map(|u| {
                    ((0..classes).map(|c| sum[l][c][u]).sum::<f64>() / total.max(1) as f64) as f32
                })
                .collect();
            let dead = match judges[l] {
                Some(_) => (0..layer.units).filter(|&u| fired[l][u] <= 0.0).collect(),
                None => Vec::new(),
            };
            UnitStats {
                layer,
                mean,
                std,
                overall_mean,
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

/// The first layer's weights as images: each dense unit's incoming weights
/// rolled back into the input's h×w, or each conv filter's k×k (first input
/// channel). Returns (width, height, values) per unit.
pub fn first_layer_templates(graph: &Graph, weights: &[f32]) -> Vec<(usize, usize, Vec<f32>)> {
    let first = graph.nodes[0].op.as_any();
    if let Some(d) = first.downcast_ref::<Dense>() {
        weights
            .chunks(d.inputs)
            .map(|row| {
                (
                    graph.input.w,
                    graph.input.h,
                    row[..graph.input.h * graph.input.w].to_vec(),
                )
            })
            .collect()
    } else if let Some(c) = first.downcast_ref::<Conv2d>() {
        let per_filter = c.input.c * c.kernel * c.kernel;
        weights
            .chunks(per_filter)
            .map(|f| (c.kernel, c.kernel, f[..c.kernel * c.kernel].to_vec()))
            .collect()
    } else {
        Vec::new()
    }
}

/// Mean image of each class (pixels / 255).
pub fn class_means(data: &Dataset, classes: usize) -> Vec<Vec<f32>> {
    let size = data.input_size();
    let mut sums = vec![vec![0.0f64; size]; classes];
    let mut count = vec![0usize; classes];
    for i in 0..data.len() {
        let c = data.labels[i] as usize;
        count[c] += 1;
        for (s, &p) in sums[c].iter_mut().zip(data.image(i)) {
            *s += f64::from(p) / 255.0;
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
    let mut x: Vec<f32> = (0..rows * size)
        .map(|_| 0.1 + rng.random_range(0.0..0.02))
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
                *xi = xi.clamp(0.0, 1.0);
            }
        }
        if settings.blur_every > 0 && (step + 1) % settings.blur_every == 0 {
            blur(&mut x, rows * graph.input.c, w, h);
        }
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
