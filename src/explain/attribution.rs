//! Why a network gave its answer for one input, in numbers: the top
//! classes, and for each explained class c (the predicted one, and the one
//! `--class` names) four maps over the input (x: its values, normalised
//! as in training, channel planes):
//!
//! - **saliency** |∂z_c/∂x| (Simonyan, Vedaldi & Zisserman 2014), z_c the
//!   logit of class c;
//! - **gradient × input** x ⊙ ∂z_c/∂x;
//! - **integrated gradients** (Sundararajan, Taly & Yan 2017) along the
//!   straight path x(α) = x′ + α·(x − x′) from a baseline x′:
//!   IG_i = (x_i − x′_i)·∫₀¹ ∂z_c/∂x_i(x(α)) dα, the integral by the
//!   trapezoid rule over α_k = k/m, k = 0..m (m = `steps`): weights 1/m,
//!   halved at both ends. Completeness says Σ_i IG_i = z_c(x) − z_c(x′);
//!   the gap between the two, relative to |z_c(x) − z_c(x′)|, is reported.
//!   x′ is an image of one pixel value (black 0, grey 127.5, white 255)
//!   normalised as the model's inputs are, so black means black whatever
//!   the normalisation ([`uniform_input`]);
//! - **occlusion** (Zeiler & Fergus 2014): p_c(x) − p_c(x with a square
//!   patch set to grey, pixel value 127.5 in every channel, normalised),
//!   for patches at every `stride` pixels (and one at the far edge, so
//!   every pixel is covered); a pixel's value is the mean over the patches
//!   that cover it.
//!
//! For drawing, a colour input's maps become one value per pixel
//! ([`per_pixel`]): saliency the largest over channels, the others the sum.
//!
//! All of it runs through the [`Backend`] trait, so on either device, in
//! batches: the gradients of every path point of every image and class go
//! through `input_gradient` a planned batch at a time (one forward, one
//! backward from a one-hot d(logits)), and every occluded copy and
//! baseline through one batched forward.

use crate::backend::Backend;
use crate::graph::Graph;
use crate::infer::softmax;
use anyhow::{bail, ensure, Result};
use serde::Serialize;

/// The occlusion patch's pixel value: mid-grey, 127.5 on the 0..255
/// scale in every channel, then normalised as the model's inputs are.
pub const OCCLUSION_PIXEL: f32 = 127.5;

/// Where integrated gradients' path starts: an image whose every pixel
/// has this value in every channel (on the 0..255 scale), normalised as
/// the model's inputs are, so black is black for any normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// Pixel value 0 (no ink on MNIST).
    Black,
    /// Pixel value 127.5.
    Grey,
    /// Pixel value 255 (full ink on MNIST).
    White,
}

impl Baseline {
    /// The baseline's value of every pixel, on the 0..255 scale.
    pub fn pixel(self) -> f32 {
        match self {
            Baseline::Black => 0.0,
            Baseline::Grey => 127.5,
            Baseline::White => 255.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Baseline::Black => "black",
            Baseline::Grey => "grey",
            Baseline::White => "white",
        }
    }
}

/// The model's input for an image whose every pixel is `pixel` (0..255)
/// in every channel: `graph.normalization` applied to pixel / 255.
pub fn uniform_input(graph: &Graph, pixel: f32) -> Vec<f32> {
    let plane = graph.input.h * graph.input.w;
    let unit = vec![pixel / 255.0; graph.input_size()];
    graph.normalization.from_unit(&unit, graph.input.c, plane)
}

/// How a map over the input's values (channel planes) becomes one value
/// per pixel for drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerPixel {
    /// The sum over channels (gradient × input, integrated gradients: the
    /// pixel's share of the logit difference).
    Sum,
    /// The largest over channels (saliency, as Simonyan et al. take
    /// max_c |∂z/∂x_c|).
    Max,
}

/// One value per pixel of `values` (`channels` planes of `plane`).
pub fn per_pixel(values: &[f32], channels: usize, plane: usize, how: PerPixel) -> Vec<f32> {
    (0..plane)
        .map(|i| {
            let across = (0..channels).map(|c| values[c * plane + i]);
            match how {
                PerPixel::Sum => across.sum(),
                PerPixel::Max => across.fold(f32::NEG_INFINITY, f32::max),
            }
        })
        .collect()
}

/// How to explain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Intervals of integrated gradients' path (m; m + 1 gradients).
    pub steps: usize,
    pub baseline: Baseline,
    /// Side of the occlusion patch and the step between patches, in pixels.
    pub patch: usize,
    pub stride: usize,
    /// How many classes to list.
    pub top: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            steps: 64,
            baseline: Baseline::Black,
            patch: 4,
            stride: 2,
            top: 3,
        }
    }
}

impl Settings {
    /// Refuses settings that would explain nothing, naming the flag.
    pub fn check(&self, height: usize, width: usize) -> Result<()> {
        if self.steps == 0 {
            bail!("--steps 0: integrated gradients needs at least 1 step along the path (64 is usual)");
        }
        if self.patch == 0 || self.stride == 0 {
            bail!(
                "--patch {} --stride {}: the occlusion patch and its stride must be at least 1 pixel",
                self.patch,
                self.stride
            );
        }
        if self.patch > height.min(width) {
            bail!(
                "--patch {}: the occlusion patch is larger than the {height}×{width} input",
                self.patch
            );
        }
        if self.top == 0 {
            bail!("--top 0 lists no classes; give at least 1");
        }
        Ok(())
    }
}

/// The maps of one explained class: saliency, gradient × input and
/// integrated gradients over the input's values (its layout: channel
/// planes, row-major), occlusion over its pixels.
#[derive(Debug, Clone, Serialize)]
pub struct ClassMaps {
    pub class: usize,
    pub logit: f32,
    pub probability: f64,
    /// |∂z_c/∂x|.
    pub saliency: Vec<f32>,
    /// x ⊙ ∂z_c/∂x.
    pub gradient_times_input: Vec<f32>,
    pub integrated_gradients: Vec<f32>,
    /// z_c at the baseline, Σ IG, and |Σ IG − (z_c(x) − z_c(x′))|, absolute
    /// and relative to |z_c(x) − z_c(x′)| (None when that is 0).
    pub baseline_logit: f32,
    pub integrated_sum: f64,
    pub completeness_gap: f64,
    pub completeness_gap_relative: Option<f64>,
    /// The drop in p_c when a patch covering the pixel is grey, averaged
    /// over the patches that cover it: one value per pixel (h × w; the
    /// patch greys every channel).
    pub occlusion: Vec<f32>,
    /// The largest single-patch drop and the patch's top-left (row, column).
    pub occlusion_max_drop: f32,
    pub occlusion_max_at: (usize, usize),
}

/// One input explained.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// (class, probability), most probable first.
    pub top: Vec<(usize, f64)>,
    pub predicted: usize,
    /// The predicted class first, then the requested one if it differs.
    pub classes: Vec<ClassMaps>,
}

/// Top-left corners, along one side of `len` pixels, of patches of `patch`
/// every `stride` pixels, plus one flush with the far edge when the
/// stride does not land there, so that every pixel is covered.
pub fn patch_starts(len: usize, patch: usize, stride: usize) -> Vec<usize> {
    let last = len - patch;
    let mut starts: Vec<usize> = (0..=last).step_by(stride).collect();
    if starts.last() != Some(&last) {
        starts.push(last);
    }
    starts
}

/// The trapezoid rule's weights for m intervals on [0, 1]: 1/m, halved at
/// both ends (m + 1 weights summing to 1).
pub fn trapezoid_weights(steps: usize) -> Vec<f64> {
    let m = steps as f64;
    (0..=steps)
        .map(|k| {
            if k == 0 || k == steps {
                0.5 / m
            } else {
                1.0 / m
            }
        })
        .collect()
}

/// The gradient of class `class`'s logit with respect to the input, for
/// each row of `x` (rows × input size), a planned batch at a time. The
/// logits are the last node's output: when it has an activation of its
/// own, its derivative (from `outputs`, the rows' logits) goes into the
/// seed, as `input_gradient` starts below it.
fn logit_gradients(
    backend: &mut dyn Backend,
    graph: &Graph,
    x: &[f32],
    classes_of_rows: &[usize],
) -> Result<Vec<f32>> {
    let size = graph.input_size();
    let n = graph.classes();
    let last = graph.nodes.len() - 1;
    let activation = graph.nodes[last].op.activation();
    let needs_outputs = activation != crate::graph::Activation::Identity;
    let batch = backend.batch_size().max(1);
    let mut grads = Vec::with_capacity(x.len());
    for (chunk, classes) in x.chunks(batch * size).zip(classes_of_rows.chunks(batch)) {
        let rows = classes.len();
        let outputs = if needs_outputs {
            backend.infer(chunk, rows)?
        } else {
            Vec::new()
        };
        let mut seed = vec![0.0f32; rows * n];
        for (r, &c) in classes.iter().enumerate() {
            seed[r * n + c] = if needs_outputs {
                activation.grad_from_output(outputs[r * n + c])
            } else {
                1.0
            };
        }
        grads.extend(backend.input_gradient(chunk, rows, last, &seed)?);
    }
    Ok(grads)
}

/// Explains each input of `inputs` (each `graph.input_size()` values,
/// normalised as in training): for its predicted class and for
/// `requested` when given and different.
pub fn explain(
    backend: &mut dyn Backend,
    graph: &Graph,
    inputs: &[Vec<f32>],
    requested: Option<usize>,
    settings: &Settings,
) -> Result<Vec<Explanation>> {
    let size = graph.input_size();
    let n = graph.classes();
    let (h, w) = (graph.input.h, graph.input.w);
    settings.check(h, w)?;
    if let Some(c) = requested {
        ensure!(
            c < n,
            "--class {c}: the model has {n} classes, 0 to {}",
            n - 1
        );
    }
    for (i, x) in inputs.iter().enumerate() {
        ensure!(
            x.len() == size,
            "input {i} has {} values, the model takes {size}",
            x.len()
        );
    }
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    let channels = graph.input.c;
    let m = settings.steps;
    let plane = h * w;
    let baseline = uniform_input(graph, settings.baseline.pixel());
    let grey = uniform_input(graph, OCCLUSION_PIXEL);

    // 1. The logits of every input.
    let x_all: Vec<f32> = inputs.concat();
    let logits = backend.infer(&x_all, inputs.len())?;
    let per_image: Vec<(Vec<f64>, usize, Vec<usize>)> = logits
        .chunks(n)
        .map(|row| {
            let probs = softmax(row);
            let predicted = crate::ops::softmax_xent::reference::argmax(row).0;
            let mut explained = vec![predicted];
            if let Some(c) = requested.filter(|&c| c != predicted) {
                explained.push(c);
            }
            (probs, predicted, explained)
        })
        .collect();

    // 2. Gradients along each path: m + 1 rows per (input, class); the
    //    last (α = 1) is the gradient at x itself.
    let mut path = Vec::new();
    let mut path_classes = Vec::new();
    for (x, (_, _, explained)) in inputs.iter().zip(&per_image) {
        for &c in explained {
            for k in 0..=m {
                let alpha = k as f32 / m as f32;
                path.extend(
                    x.iter()
                        .zip(&baseline)
                        .map(|(&xi, &bi)| bi + alpha * (xi - bi)),
                );
                path_classes.push(c);
            }
        }
    }
    let grads = logit_gradients(backend, graph, &path, &path_classes)?;

    // 3. One forward over the baseline and every occluded copy.
    let rows_starts = patch_starts(h, settings.patch, settings.stride);
    let col_starts = patch_starts(w, settings.patch, settings.stride);
    let patches: Vec<(usize, usize)> = rows_starts
        .iter()
        .flat_map(|&r| col_starts.iter().map(move |&c| (r, c)))
        .collect();
    let mut occluded = baseline.clone();
    for x in inputs {
        for &(r0, c0) in &patches {
            let mut copy = x.clone();
            for ch in 0..channels {
                for r in r0..r0 + settings.patch {
                    let row = ch * h * w + r * w;
                    copy[row + c0..row + c0 + settings.patch].fill(grey[ch * plane]);
                }
            }
            occluded.extend(copy);
        }
    }
    let occluded_logits = backend.infer(&occluded, occluded.len() / size)?;
    let baseline_logits = &occluded_logits[..n];
    let occluded_probs: Vec<Vec<f64>> = occluded_logits[n..].chunks(n).map(softmax).collect();

    // 4. Put each input's maps together.
    let weights = trapezoid_weights(m);
    let mut grad_rows = grads.chunks(size);
    let mut explanations = Vec::with_capacity(inputs.len());
    for (i, (x, (probs, predicted, explained))) in inputs.iter().zip(per_image).enumerate() {
        let row_logits = &logits[i * n..(i + 1) * n];
        let image_probs = &occluded_probs[i * patches.len()..(i + 1) * patches.len()];
        let mut classes = Vec::new();
        for c in explained {
            let mut integral = vec![0.0f64; size];
            let mut at_x = &[][..];
            for &weight in &weights {
                let g = grad_rows.next().expect("m + 1 gradients per class");
                for (acc, &gi) in integral.iter_mut().zip(g) {
                    *acc += weight * f64::from(gi);
                }
                at_x = g;
            }
            let integrated: Vec<f64> = integral
                .iter()
                .zip(x.iter().zip(&baseline))
                .map(|(&avg, (&xi, &bi))| f64::from(xi - bi) * avg)
                .collect();
            let integrated_sum: f64 = integrated.iter().sum();
            let difference = f64::from(row_logits[c]) - f64::from(baseline_logits[c]);
            let gap = (integrated_sum - difference).abs();
            let (occlusion, max_drop, max_at) =
                occlusion_map(h, w, settings.patch, &patches, probs[c], image_probs, c);
            classes.push(ClassMaps {
                class: c,
                logit: row_logits[c],
                probability: probs[c],
                saliency: at_x.iter().map(|g| g.abs()).collect(),
                gradient_times_input: at_x.iter().zip(x).map(|(g, xi)| g * xi).collect(),
                integrated_gradients: integrated.iter().map(|&v| v as f32).collect(),
                baseline_logit: baseline_logits[c],
                integrated_sum,
                completeness_gap: gap,
                completeness_gap_relative: (difference != 0.0).then(|| gap / difference.abs()),
                occlusion,
                occlusion_max_drop: max_drop,
                occlusion_max_at: max_at,
            });
        }
        let mut top: Vec<(usize, f64)> = probs.iter().cloned().enumerate().collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.truncate(settings.top);
        explanations.push(Explanation {
            top,
            predicted,
            classes,
        });
    }
    Ok(explanations)
}

/// Each pixel's mean drop in p_c over the patches covering it, the
/// largest single-patch drop and where.
fn occlusion_map(
    h: usize,
    w: usize,
    patch: usize,
    patches: &[(usize, usize)],
    p_clean: f64,
    occluded_probs: &[Vec<f64>],
    c: usize,
) -> (Vec<f32>, f32, (usize, usize)) {
    let mut sum = vec![0.0f64; h * w];
    let mut count = vec![0u32; h * w];
    let mut max = (f64::NEG_INFINITY, (0, 0));
    for (&(r0, c0), probs) in patches.iter().zip(occluded_probs) {
        let drop = p_clean - probs[c];
        if drop > max.0 {
            max = (drop, (r0, c0));
        }
        for r in r0..r0 + patch {
            for col in c0..c0 + patch {
                sum[r * w + col] += drop;
                count[r * w + col] += 1;
            }
        }
    }
    let plane: Vec<f32> = sum
        .iter()
        .zip(&count)
        .map(|(&s, &k)| (s / f64::from(k.max(1))) as f32)
        .collect();
    (plane, max.0 as f32, max.1)
}
