//! A trained model as a file: the graph's parameters as safetensors tensors
//! with PyTorch's names and layouts (`layers.0.weight` is [out, in] for a
//! dense layer, [out_c, in_c, k, k] for a conv), its non-trainable buffers
//! likewise (`layers.1.running_mean` and `running_var` [C] f32,
//! `layers.1.num_batches_tracked` an int64 scalar [], as PyTorch's
//! `state_dict()` holds them), the optimiser state beside
//! them (`optimizer.exp_avg.layers.0.weight`, …), and in the metadata the
//! model spec, input shape, data normalisation, training settings and
//! progress, so that `eval`, `predict`, `inspect` and `--resume` need
//! nothing else.

use crate::backend::Optimizer;
use crate::checkpoint::{self, Checkpoint, NamedTensor, Stored};
use crate::graph::{Graph, Shape};
use crate::schedule::ScheduleKind;
use crate::spec::ModelSpec;
use crate::train::EpochReport;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

const MODEL_KEY: &str = "gpunet.model";
const INPUT_KEY: &str = "gpunet.input";
const CLASSES_KEY: &str = "gpunet.classes";
const NORMALISATION_KEY: &str = "gpunet.normalisation";
const TRAINING_KEY: &str = "gpunet.training";
const PROGRESS_KEY: &str = "gpunet.progress";
const HISTORY_KEY: &str = "gpunet.history";
const SNAPSHOT_STEPS_KEY: &str = "gpunet.snapshot_steps";
/// The first layer's weights over training: (snapshots, ...weight shape).
const SNAPSHOTS_PREFIX: &str = "snapshots.";

/// How pixels become inputs (the gather kernel's and `ops::gather`'s formula).
pub const NORMALISATION: &str = "x = u8 pixel / 255";

/// The settings a run was trained with; a resumed run should use the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSettings {
    pub optimizer: Optimizer,
    pub lr: f32,
    pub schedule: ScheduleKind,
    pub warmup_steps: usize,
    pub step_epochs: usize,
    pub gamma: f32,
    pub batch: usize,
    pub seed: u64,
    pub epochs: usize,
    pub train_limit: Option<usize>,
}

/// How far a run got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub epochs_done: usize,
    pub global_step: usize,
}

/// Everything a model file holds.
#[derive(Debug, Clone)]
pub struct SavedModel {
    pub graph: Graph,
    pub params: Vec<f32>,
    /// The non-trainable buffers (running statistics), laid out as
    /// `graph.buffers`.
    pub buffers: Vec<f32>,
    /// Empty when the file has no optimiser state.
    pub optimizer_state: Vec<Vec<f32>>,
    pub settings: Option<TrainingSettings>,
    pub progress: Progress,
    pub history: Vec<EpochReport>,
    /// The first layer's weights at these global steps (`--snapshot-every`).
    pub snapshots: Vec<(usize, Vec<f32>)>,
}

/// Writes the model atomically (see `checkpoint::save`).
pub fn save(path: &Path, model: &SavedModel) -> Result<()> {
    let graph = &model.graph;
    let mut tensors: Vec<NamedTensor> = graph
        .params
        .iter()
        .map(|info| NamedTensor {
            name: info.name.clone(),
            shape: info.shape.clone(),
            data: model.params[info.range()].to_vec(),
            dtype: Stored::F32,
        })
        .collect();
    if model.buffers.len() != graph.buffer_len {
        bail!(
            "the model's buffers hold {} values, its graph lays out {}",
            model.buffers.len(),
            graph.buffer_len
        );
    }
    for info in &graph.buffers {
        tensors.push(NamedTensor {
            name: info.name.clone(),
            shape: info.shape.clone(),
            data: model.buffers[info.range()].to_vec(),
            dtype: buffer_dtype(&info.name),
        });
    }
    if let Some(settings) = &model.settings {
        let names = settings.optimizer.state_names();
        if model.optimizer_state.len() == names.len() {
            for (state, prefix) in model.optimizer_state.iter().zip(names) {
                for info in &graph.params {
                    tensors.push(NamedTensor {
                        name: format!("optimizer.{prefix}.{}", info.name),
                        shape: info.shape.clone(),
                        data: state[info.range()].to_vec(),
                        dtype: Stored::F32,
                    });
                }
            }
        }
    }
    if let (Some(first), false) = (graph.params.first(), model.snapshots.is_empty()) {
        let mut shape = vec![model.snapshots.len()];
        shape.extend_from_slice(&first.shape);
        tensors.push(NamedTensor {
            name: format!("{SNAPSHOTS_PREFIX}{}", first.name),
            shape,
            data: model
                .snapshots
                .iter()
                .flat_map(|(_, w)| w.iter().copied())
                .collect(),
            dtype: Stored::F32,
        });
    }
    let mut metadata = BTreeMap::new();
    if !model.snapshots.is_empty() {
        let steps: Vec<usize> = model.snapshots.iter().map(|(s, _)| *s).collect();
        metadata.insert(SNAPSHOT_STEPS_KEY.into(), serde_json::to_string(&steps)?);
    }
    metadata.insert(MODEL_KEY.into(), graph.spec.to_string());
    let Shape { c, h, w } = graph.input;
    metadata.insert(INPUT_KEY.into(), format!("{c}x{h}x{w}"));
    metadata.insert(CLASSES_KEY.into(), graph.classes().to_string());
    metadata.insert(NORMALISATION_KEY.into(), NORMALISATION.into());
    if let Some(settings) = &model.settings {
        metadata.insert(TRAINING_KEY.into(), serde_json::to_string(settings)?);
    }
    metadata.insert(PROGRESS_KEY.into(), serde_json::to_string(&model.progress)?);
    metadata.insert(HISTORY_KEY.into(), serde_json::to_string(&model.history)?);
    checkpoint::save(path, &Checkpoint { tensors, metadata })
}

/// Reads a model file, checking that its spec and its tensors agree.
pub fn load(path: &Path) -> Result<SavedModel> {
    let ckpt = checkpoint::load(path)?;
    let name = path.display();
    let field = |key: &str| -> Result<&String> {
        ckpt.metadata
            .get(key)
            .ok_or_else(|| anyhow!("{name}: the metadata has no {key}"))
    };
    let spec =
        ModelSpec::parse(field(MODEL_KEY)?).with_context(|| format!("{name}: {MODEL_KEY}"))?;
    let input = parse_shape(field(INPUT_KEY)?).with_context(|| format!("{name}: {INPUT_KEY}"))?;
    let classes: usize = field(CLASSES_KEY)?
        .parse()
        .map_err(|e| anyhow!("{name}: {CLASSES_KEY}: {e}"))?;
    let graph =
        Graph::new(&spec, input, classes).with_context(|| format!("{name}: the model {spec}"))?;

    let mut params = vec![0.0; graph.param_len];
    for info in &graph.params {
        let tensor = ckpt.tensor(&info.name).ok_or_else(|| {
            anyhow!(
                "{name}: no tensor {} (the model {spec} needs one of shape {:?})",
                info.name,
                info.shape
            )
        })?;
        if tensor.shape != info.shape {
            bail!(
                "{name}: tensor {} has shape {:?} but the model {spec} needs {:?}",
                info.name,
                tensor.shape,
                info.shape
            );
        }
        params[info.range()].copy_from_slice(&tensor.data);
    }
    let mut buffers = vec![0.0; graph.buffer_len];
    for info in &graph.buffers {
        match ckpt.tensor(&info.name) {
            Some(t) if t.shape == info.shape => buffers[info.range()].copy_from_slice(&t.data),
            Some(t) => bail!(
                "{name}: tensor {} has shape {:?} but the model {spec} needs {:?}",
                info.name,
                t.shape,
                info.shape
            ),
            None => bail!(
                "{name}: no tensor {} (the model {spec} keeps it beside its parameters)",
                info.name
            ),
        }
    }
    let settings: Option<TrainingSettings> = ckpt
        .metadata
        .get(TRAINING_KEY)
        .map(|s| serde_json::from_str(s))
        .transpose()
        .map_err(|e| anyhow!("{name}: {TRAINING_KEY}: {e}"))?;
    let mut optimizer_state = Vec::new();
    if let Some(settings) = &settings {
        for prefix in settings.optimizer.state_names() {
            let mut state = vec![0.0; graph.param_len];
            for info in &graph.params {
                let key = format!("optimizer.{prefix}.{}", info.name);
                match ckpt.tensor(&key) {
                    Some(t) if t.shape == info.shape => {
                        state[info.range()].copy_from_slice(&t.data)
                    }
                    Some(t) => bail!(
                        "{name}: tensor {key} has shape {:?}, not {:?}",
                        t.shape,
                        info.shape
                    ),
                    None => bail!("{name}: the optimiser state lacks {key}"),
                }
            }
            optimizer_state.push(state);
        }
    }
    let progress = match ckpt.metadata.get(PROGRESS_KEY) {
        Some(s) => serde_json::from_str(s).map_err(|e| anyhow!("{name}: {PROGRESS_KEY}: {e}"))?,
        None => Progress::default(),
    };
    let history = match ckpt.metadata.get(HISTORY_KEY) {
        Some(s) => serde_json::from_str(s).map_err(|e| anyhow!("{name}: {HISTORY_KEY}: {e}"))?,
        None => Vec::new(),
    };
    let mut snapshots = Vec::new();
    if let (Some(steps), Some(first)) =
        (ckpt.metadata.get(SNAPSHOT_STEPS_KEY), graph.params.first())
    {
        let steps: Vec<usize> = serde_json::from_str(steps)
            .map_err(|e| anyhow!("{name}: {SNAPSHOT_STEPS_KEY}: {e}"))?;
        let key = format!("{SNAPSHOTS_PREFIX}{}", first.name);
        let tensor = ckpt.tensor(&key).ok_or_else(|| {
            anyhow!("{name}: {SNAPSHOT_STEPS_KEY} is set but there is no tensor {key}")
        })?;
        if tensor.data.len() != steps.len() * first.len() {
            bail!(
                "{name}: {key} does not hold {} snapshots of {:?}",
                steps.len(),
                first.shape
            );
        }
        snapshots = steps
            .into_iter()
            .zip(tensor.data.chunks(first.len()))
            .map(|(s, w)| (s, w.to_vec()))
            .collect();
    }
    Ok(SavedModel {
        graph,
        params,
        buffers,
        optimizer_state,
        settings,
        progress,
        history,
        snapshots,
    })
}

/// How a buffer is stored: PyTorch keeps counters (batch norm's
/// `num_batches_tracked`) as int64, everything else as f32.
fn buffer_dtype(name: &str) -> Stored {
    if name.ends_with(".num_batches_tracked") {
        Stored::I64
    } else {
        Stored::F32
    }
}

/// "1x28x28" → Shape.
fn parse_shape(text: &str) -> Result<Shape> {
    let dims: Vec<usize> = text
        .split('x')
        .map(|d| d.parse().map_err(|_| anyhow!("{text:?} is not CxHxW")))
        .collect::<Result<_>>()?;
    match dims[..] {
        [c, h, w] if c * h * w > 0 => Ok(Shape { c, h, w }),
        _ => bail!("{text:?} is not CxHxW"),
    }
}
