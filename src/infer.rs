//! Using a trained model: `gpunet eval` (loss, accuracy, per-class accuracy
//! and the confusion matrix over a test set) and `gpunet predict` (the top
//! classes of image files).

use crate::backend::{Backend, Optimizer};
use crate::data::{Dataset, Normalization};
use crate::graph::Graph;
use crate::model_file::SavedModel;
use crate::ops::softmax_xent::reference as ops;
use crate::preprocess;
use crate::train::{open_backend, DeviceChoice};
use anyhow::Result;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Opens `device` with the model's weights and buffers (running
/// statistics), for inference only.
pub fn open_model(
    device: DeviceChoice,
    model: &SavedModel,
    log: &mut dyn Write,
) -> Result<Box<dyn Backend>> {
    open_model_batch(device, model, 256, log)
}

/// `open_model` planned for batches of `batch` rows (the GPU pads every
/// batch to this size, and tunes its kernels for it).
pub fn open_model_batch(
    device: DeviceChoice,
    model: &SavedModel,
    batch: usize,
    log: &mut dyn Write,
) -> Result<Box<dyn Backend>> {
    let input = model.graph.input;
    let empty = Dataset::empty_like(input.c, input.h, input.w, model.graph.class_names());
    // The optimiser is never stepped; SGD needs the least state.
    let sgd = Optimizer::Sgd {
        momentum: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    };
    let mut backend = open_backend(
        device,
        &model.graph,
        batch.max(1),
        sgd,
        &model.params,
        empty.clone(),
        empty,
        log,
    )?;
    backend.load_buffers(&model.buffers)?;
    Ok(backend)
}

/// `gpunet eval`'s figures.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub count: usize,
    pub loss: f64,
    pub accuracy: f64,
    /// Accuracy on the examples of each true class.
    pub per_class_accuracy: Vec<f64>,
    /// confusion[true][predicted] = number of examples.
    pub confusion: Vec<Vec<u64>>,
    /// The name of each class (the confusion matrix's rows and columns).
    pub class_names: Vec<String>,
    pub device: String,
    pub adapter: String,
}

/// Every example's logits, in the data set's order (normalised as the
/// model was trained: `normalization`).
pub fn dataset_logits(
    backend: &mut dyn Backend,
    normalization: &Normalization,
    data: &Dataset,
) -> Result<Vec<f32>> {
    let x = normalization.apply(&data.images, data.channels, data.rows * data.cols);
    backend.infer(&x, data.len())
}

/// Loss, accuracy, per-class accuracy and the confusion matrix over `data`.
pub fn evaluate(
    backend: &mut dyn Backend,
    normalization: &Normalization,
    data: &Dataset,
    classes: usize,
) -> Result<EvalReport> {
    let logits = dataset_logits(backend, normalization, data)?;
    let labels: Vec<u32> = data.labels.iter().map(|&l| u32::from(l)).collect();
    let mut grad = vec![0.0; logits.len()];
    let (loss_sum, correct) = ops::softmax_xent(&logits, &labels, &mut grad, data.len(), classes);
    let mut confusion = vec![vec![0u64; classes]; classes];
    for (row, &label) in logits.chunks(classes).zip(&labels) {
        let (predicted, _) = ops::argmax(row);
        confusion[label as usize][predicted] += 1;
    }
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| row[c] as f64 / row.iter().sum::<u64>().max(1) as f64)
        .collect();
    Ok(EvalReport {
        count: data.len(),
        loss: f64::from(loss_sum) / data.len().max(1) as f64,
        accuracy: f64::from(correct) / data.len().max(1) as f64,
        per_class_accuracy,
        confusion,
        class_names: data.classes.clone(),
        device: backend.device().into(),
        adapter: backend.adapter(),
    })
}

impl EvalReport {
    /// The report as text: totals, per-class accuracy, the confusion matrix.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} test images: loss {:.4}, accuracy {:.2}%\n\nper class:\n",
            self.count,
            self.loss,
            100.0 * self.accuracy
        );
        for (c, acc) in self.per_class_accuracy.iter().enumerate() {
            let n: u64 = self.confusion[c].iter().sum();
            let name = self
                .class_names
                .get(c)
                .cloned()
                .unwrap_or_else(|| c.to_string());
            out += &format!("  {name}: {:6.2}% of {n}\n", 100.0 * acc);
        }
        out += "\nconfusion matrix (rows: true class, columns: predicted):\n      ";
        for c in 0..self.confusion.len() {
            out += &format!("{c:>6}");
        }
        out += "\n";
        for (c, row) in self.confusion.iter().enumerate() {
            out += &format!("  {c:>3} ");
            for v in row {
                out += &format!("{v:>6}");
            }
            out += "\n";
        }
        out
    }
}

/// One file's prediction, or why it could not be made.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub file: PathBuf,
    /// (class, probability), most probable first.
    pub top: Vec<(usize, f64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Preprocesses each file as the model's data was (`preprocess::
/// load_for_model`: MNIST-style for digit models, resized and normalised
/// for colour ones) and predicts its `top` classes. A file that cannot be
/// read (or has no digit) gets its error; the others are still predicted.
pub fn predict_files(
    backend: &mut dyn Backend,
    graph: &Graph,
    files: &[PathBuf],
    top: usize,
) -> Result<Vec<Prediction>> {
    let classes = graph.classes();
    let mut inputs = Vec::new();
    let mut predictions: Vec<Prediction> = files
        .iter()
        .map(|file| {
            let error = match preprocess::load_for_model(Path::new(file), graph) {
                Ok(x) => {
                    inputs.extend(x);
                    None
                }
                Err(e) => Some(format!("{e:#}")),
            };
            Prediction {
                file: file.clone(),
                top: Vec::new(),
                error,
            }
        })
        .collect();
    let good = predictions.iter().filter(|p| p.error.is_none()).count();
    let logits = backend.infer(&inputs, good)?;
    let mut rows = logits.chunks(classes);
    for p in predictions.iter_mut().filter(|p| p.error.is_none()) {
        let row = rows.next().unwrap_or_default();
        let probs = softmax(row);
        let mut ranked: Vec<(usize, f64)> = probs.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(top);
        p.top = ranked;
    }
    Ok(predictions)
}

/// Probabilities from logits, computed with the maximum subtracted.
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&z| f64::from(z - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}
