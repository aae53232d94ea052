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
use crate::data::Normalization;
use crate::export::{torch, TorchNet};
use crate::graph::{Graph, ParamInfo, Shape};
use crate::ops::gather::Augment;
use crate::schedule::ScheduleKind;
use crate::spec::{LayerSpec, ModelSpec};
use crate::train::EpochReport;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

const MODEL_KEY: &str = "gpunet.model";
const INPUT_KEY: &str = "gpunet.input";
const CLASSES_KEY: &str = "gpunet.classes";
const CLASS_NAMES_KEY: &str = "gpunet.class_names";
const NORMALISATION_KEY: &str = "gpunet.normalisation";
const TRAINING_KEY: &str = "gpunet.training";
const PROGRESS_KEY: &str = "gpunet.progress";
const HISTORY_KEY: &str = "gpunet.history";
const SNAPSHOT_STEPS_KEY: &str = "gpunet.snapshot_steps";
/// The first layer's weights over training: (snapshots, ...weight shape).
const SNAPSHOTS_PREFIX: &str = "snapshots.";

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
    #[serde(default)]
    pub label_smoothing: f32,
    #[serde(default)]
    pub no_bias_decay: bool,
    /// `--augment` (off in files from before it).
    #[serde(default)]
    pub augment: Augment,
}

/// A float as a person writes it: `0.9`, `0.001`, `1e-8`, `1e30`.
pub(crate) fn number(x: f32) -> String {
    if x != 0.0 && !(1e-3..1e6).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// "SGD (momentum 0.9)", "AdamW (β1 0.9, β2 0.999, eps 1e-8, weight decay 0.01)".
impl fmt::Display for Optimizer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Optimizer::Sgd {
                momentum,
                weight_decay,
                nesterov,
            } => {
                let kind = if nesterov {
                    "Nesterov momentum"
                } else {
                    "momentum"
                };
                write!(f, "SGD ({kind} {}", number(momentum))?;
                if weight_decay != 0.0 {
                    write!(f, ", weight decay {}", number(weight_decay))?;
                }
                write!(f, ")")
            }
            Optimizer::Adam(a) => {
                let name = if a.decoupled { "AdamW" } else { "Adam" };
                write!(
                    f,
                    "{name} (β1 {}, β2 {}, eps {}",
                    number(a.beta1),
                    number(a.beta2),
                    number(a.eps)
                )?;
                if a.weight_decay != 0.0 || a.decoupled {
                    write!(f, ", weight decay {}", number(a.weight_decay))?;
                }
                write!(f, ")")
            }
        }
    }
}

/// `--flag: OLD in the checkpoint, NEW now` when the values differ.
fn difference(flag: &str, old: String, new: String) -> Option<String> {
    (old != new).then(|| format!("{flag}: {old} in the checkpoint, {new} now"))
}

/// The flags whose values make `new` differ from `old`, each with both
/// values (e.g. "--momentum: 0.9 in the checkpoint, 0.5 now").
pub fn optimizer_differences(old: &Optimizer, new: &Optimizer) -> Vec<String> {
    let flag_name = |o: &Optimizer| match o {
        Optimizer::Sgd {
            nesterov: false, ..
        } => "sgd",
        Optimizer::Sgd { nesterov: true, .. } => "sgd --nesterov",
        Optimizer::Adam(a) if a.decoupled => "adamw",
        Optimizer::Adam(_) => "adam",
    };
    let fields = |o: &Optimizer| -> Vec<(&'static str, f32)> {
        match *o {
            Optimizer::Sgd {
                momentum,
                weight_decay,
                ..
            } => vec![("--momentum", momentum), ("--weight-decay", weight_decay)],
            Optimizer::Adam(a) => vec![
                ("--beta1", a.beta1),
                ("--beta2", a.beta2),
                ("--eps", a.eps),
                ("--weight-decay", a.weight_decay),
            ],
        }
    };
    if flag_name(old) != flag_name(new) {
        return vec![format!(
            "--optimizer: {} in the checkpoint, {} now",
            flag_name(old),
            flag_name(new)
        )];
    }
    fields(old)
        .into_iter()
        .zip(fields(new))
        .filter_map(|((flag, o), (_, n))| difference(flag, number(o), number(n)))
        .collect()
}

impl TrainingSettings {
    /// The flags (besides `--epochs` and the optimiser's) whose values
    /// differ between the checkpoint's settings `self` and `now`, each with
    /// both values.
    pub fn differences(&self, now: &TrainingSettings) -> Vec<String> {
        let limit = |l: Option<usize>| l.map_or("all images".into(), |n| n.to_string());
        let mut out = optimizer_differences(&self.optimizer, &now.optimizer);
        out.extend(
            [
                difference("--lr", number(self.lr), number(now.lr)),
                difference(
                    "--lr-schedule",
                    self.schedule.to_string(),
                    now.schedule.to_string(),
                ),
                difference(
                    "--warmup-steps",
                    self.warmup_steps.to_string(),
                    now.warmup_steps.to_string(),
                ),
                difference(
                    "--lr-step-epochs",
                    self.step_epochs.to_string(),
                    now.step_epochs.to_string(),
                ),
                difference("--lr-gamma", number(self.gamma), number(now.gamma)),
                difference("--batch", self.batch.to_string(), now.batch.to_string()),
                difference("--seed", self.seed.to_string(), now.seed.to_string()),
                difference(
                    "--train-limit",
                    limit(self.train_limit),
                    limit(now.train_limit),
                ),
                difference(
                    "--label-smoothing",
                    number(self.label_smoothing),
                    number(now.label_smoothing),
                ),
                difference(
                    "--no-bias-decay",
                    self.no_bias_decay.to_string(),
                    now.no_bias_decay.to_string(),
                ),
                difference(
                    "--augment",
                    self.augment.to_string(),
                    now.augment.to_string(),
                ),
            ]
            .into_iter()
            .flatten(),
        );
        out
    }
}

/// The first tensor of `params` (laid out as `graph.params`) that holds NaN
/// or infinite values, with how many it holds.
pub fn non_finite_tensor(graph: &Graph, params: &[f32]) -> Option<(String, usize)> {
    graph.params.iter().find_map(|info| {
        let bad = params[info.range()]
            .iter()
            .filter(|v| !v.is_finite())
            .count();
        (bad > 0).then(|| (info.name.clone(), bad))
    })
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

/// Writes the model atomically (see `checkpoint::save`). Refuses, writing
/// nothing, weights or a history that hold NaN or infinity: JSON has no
/// such numbers (they would be written as `null`) and a model file must
/// load again.
pub fn save(path: &Path, model: &SavedModel) -> Result<()> {
    let graph = &model.graph;
    let name = path.display();
    if let Some((tensor, bad)) = non_finite_tensor(graph, &model.params) {
        bail!("not saving {name}: {tensor} holds {bad} NaN or infinite values");
    }
    for r in &model.history {
        let figures = [
            ("training loss", r.train_loss),
            ("training accuracy", r.train_acc),
            ("test loss", r.test_loss),
            ("test accuracy", r.test_acc),
            ("seconds", r.seconds),
            ("images per second", r.images_per_sec),
        ];
        if let Some((what, value)) = figures.iter().find(|(_, v)| !v.is_finite()) {
            bail!(
                "not saving {name}: epoch {}'s {what} is {value}, which a model file cannot hold",
                r.epoch
            );
        }
    }
    if let Some(s) = &model.settings {
        let floats = [s.lr, s.gamma];
        if floats.iter().any(|v| !v.is_finite()) {
            bail!("not saving {name}: its learning rate settings are not finite numbers");
        }
    }
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
    let mut metadata = description(graph);
    if !model.snapshots.is_empty() {
        let steps: Vec<usize> = model.snapshots.iter().map(|(s, _)| *s).collect();
        metadata.insert(SNAPSHOT_STEPS_KEY.into(), serde_json::to_string(&steps)?);
    }
    if let Some(settings) = &model.settings {
        metadata.insert(TRAINING_KEY.into(), serde_json::to_string(settings)?);
    }
    metadata.insert(PROGRESS_KEY.into(), serde_json::to_string(&model.progress)?);
    metadata.insert(HISTORY_KEY.into(), serde_json::to_string(&model.history)?);
    checkpoint::save(path, &Checkpoint { tensors, metadata })
}

/// The metadata that describes the network to anyone who reads the file:
/// its spec, input shape (C×H×W), classes and their names, and how pixels
/// become inputs. Model files and `gpunet export` files carry it.
pub fn description(graph: &Graph) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    metadata.insert(MODEL_KEY.into(), graph.spec.to_string());
    let Shape { c, h, w } = graph.input;
    metadata.insert(INPUT_KEY.into(), format!("{c}x{h}x{w}"));
    metadata.insert(CLASSES_KEY.into(), graph.classes().to_string());
    metadata.insert(
        CLASS_NAMES_KEY.into(),
        serde_json::to_string(&graph.class_names()).expect("strings serialise"),
    );
    metadata.insert(NORMALISATION_KEY.into(), graph.normalization.to_metadata());
    metadata
}

/// What to assume of a file that does not describe its network (a
/// weights-only file from PyTorch): `gpunet eval --spec` and the data's
/// image shape.
#[derive(Debug, Clone, Default)]
pub struct Assumed {
    /// The network, when the file has no `gpunet.model`; must equal it
    /// when the file has one.
    pub spec: Option<ModelSpec>,
    /// The input shape, when the file has no `gpunet.input`.
    pub input: Option<Shape>,
}

/// Reads a model file, checking that its spec and its tensors agree.
pub fn load(path: &Path) -> Result<SavedModel> {
    load_with(path, &Assumed::default())
}

/// Reads a model file or a weights-only file: gpunet's own (`layers.0.weight`,
/// optimiser state optional), `gpunet export --format torch`'s, or one a
/// PyTorch user saved from the `nn.Sequential` that export writes (the
/// tensors under its `state_dict()` names, no metadata: `assumed` gives the
/// spec and input shape). Every tensor must be there with its shape, and
/// no other; errors name the tensor and both shapes.
pub fn load_with(path: &Path, assumed: &Assumed) -> Result<SavedModel> {
    let ckpt = checkpoint::load_any(path)?;
    let name = path.display();
    let spec = match (ckpt.metadata.get(MODEL_KEY), &assumed.spec) {
        (Some(text), given) => {
            let spec = ModelSpec::parse(text).with_context(|| format!("{name}: {MODEL_KEY}"))?;
            if let Some(given) = given.as_ref().filter(|g| **g != spec) {
                bail!("--spec {given}: {name} names its own model, {spec}; leave --spec out");
            }
            spec
        }
        (None, Some(given)) => given.clone(),
        (None, None) => bail!(
            "{name} does not say which network its tensors belong to (no {MODEL_KEY} in its \
             metadata): give it with --spec, e.g. --spec cnn or --spec \"dense128,relu,dense10\""
        ),
    };
    let input = match (ckpt.metadata.get(INPUT_KEY), assumed.input) {
        (Some(text), _) => parse_shape(text).with_context(|| format!("{name}: {INPUT_KEY}"))?,
        (None, Some(shape)) => shape,
        (None, None) => bail!(
            "{name}: the metadata has no {INPUT_KEY}: give its inputs' shape with --input CxHxW"
        ),
    };
    let classes: usize = match ckpt.metadata.get(CLASSES_KEY) {
        Some(text) => text
            .parse()
            .map_err(|e| anyhow!("{name}: {CLASSES_KEY}: {e}"))?,
        None => match spec.layers.last() {
            Some(LayerSpec::Dense { outputs }) => *outputs,
            _ => bail!("{name}: the model {spec} must end in a dense layer (its logits)"),
        },
    };
    let mut graph =
        Graph::new(&spec, input, classes).with_context(|| format!("{name}: the model {spec}"))?;
    let names = TensorNames::of(&graph, &ckpt);
    // Files from before class names were kept: the digits' names.
    if let Some(text) = ckpt.metadata.get(CLASS_NAMES_KEY) {
        let names: Vec<String> =
            serde_json::from_str(text).map_err(|e| anyhow!("{name}: {CLASS_NAMES_KEY}: {e}"))?;
        if names.len() != classes {
            bail!(
                "{name}: {CLASS_NAMES_KEY} names {} classes but {CLASSES_KEY} says {classes}",
                names.len()
            );
        }
        graph.names = names;
    }
    // Files from before per-channel normalisation hold a line of text: / 255.
    if let Some(text) = ckpt.metadata.get(NORMALISATION_KEY) {
        graph.normalization = Normalization::from_metadata(text)
            .with_context(|| format!("{name}: {NORMALISATION_KEY}"))?;
        graph
            .normalization
            .check(input.c)
            .with_context(|| format!("{name}: {NORMALISATION_KEY}"))?;
    }

    let mut params = vec![0.0; graph.param_len];
    for info in &graph.params {
        let tensor = names
            .find(&ckpt, info, &spec)
            .with_context(|| name.to_string())?;
        params[info.range()].copy_from_slice(&tensor.data);
    }
    if let Some((tensor, bad)) = non_finite_tensor(&graph, &params) {
        bail!(
            "{name}: tensor {tensor} holds {bad} NaN or infinite values: the run that saved it \
             diverged, and its outputs would mean nothing"
        );
    }
    let mut buffers = vec![0.0; graph.buffer_len];
    for info in &graph.buffers {
        let tensor = names
            .find(&ckpt, info, &spec)
            .with_context(|| name.to_string())?;
        buffers[info.range()].copy_from_slice(&tensor.data);
    }
    names
        .check_extra(&ckpt, &graph)
        .with_context(|| name.to_string())?;
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
            if let Some((tensor, bad)) = non_finite_tensor(&graph, &state) {
                bail!(
                    "{name}: tensor optimizer.{prefix}.{tensor} holds {bad} NaN or infinite values"
                );
            }
            optimizer_state.push(state);
        }
    }
    let progress = match ckpt.metadata.get(PROGRESS_KEY) {
        Some(s) => serde_json::from_str(s).map_err(|e| anyhow!("{name}: {PROGRESS_KEY}: {e}"))?,
        None => Progress::default(),
    };
    let history: Vec<EpochReport> = match ckpt.metadata.get(HISTORY_KEY) {
        Some(s) => serde_json::from_str(s).map_err(|e| anyhow!("{name}: {HISTORY_KEY}: {e}"))?,
        None => Vec::new(),
    };
    check_progress(&progress, &history, settings.as_ref()).with_context(|| {
        let text = ckpt.metadata.get(PROGRESS_KEY).map_or("", String::as_str);
        format!("{name}: {PROGRESS_KEY} {text}")
    })?;
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

/// Which names a file's tensors carry: gpunet's (`layers.6.weight`) or
/// those of the `nn.Sequential` that `gpunet export --format torch` writes
/// (`7.weight`). Files that say (`gpunet.tensor_names`) are taken at their
/// word; others by which names more of their tensors match.
struct TensorNames {
    torch: Option<TorchNet>,
}

impl TensorNames {
    fn of(graph: &Graph, ckpt: &Checkpoint) -> TensorNames {
        let Ok(net) = TorchNet::new(graph) else {
            return TensorNames { torch: None };
        };
        let said = ckpt.metadata.get(torch::NAMES_KEY).map(String::as_str);
        let count = |torch: bool| {
            net.tensors
                .iter()
                .filter(|t| {
                    ckpt.tensor(if torch { &t.torch } else { &t.gpunet })
                        .is_some()
                })
                .count()
        };
        let use_torch = match said {
            Some(names) => names == torch::TORCH_NAMES,
            None => count(true) > count(false),
        };
        TensorNames {
            torch: use_torch.then_some(net),
        }
    }

    /// The file's name for gpunet's tensor `gpunet`.
    fn name<'a>(&'a self, gpunet: &'a str) -> &'a str {
        self.torch
            .as_ref()
            .and_then(|net| net.torch_name(gpunet))
            .unwrap_or(gpunet)
    }

    /// The tensor for `info`, of its shape.
    fn find<'c>(
        &self,
        ckpt: &'c Checkpoint,
        info: &ParamInfo,
        spec: &ModelSpec,
    ) -> Result<&'c NamedTensor> {
        let key = self.name(&info.name);
        let also = if key == info.name {
            String::new()
        } else {
            format!(" (gpunet's {})", info.name)
        };
        match ckpt.tensor(key) {
            Some(t) if t.shape == info.shape => Ok(t),
            Some(t) => bail!(
                "tensor {key}{also} has shape {:?} but the model {spec} needs {:?}",
                t.shape,
                info.shape
            ),
            None => bail!(
                "no tensor {key}{also}: the model {spec} needs one of shape {:?}",
                info.shape
            ),
        }
    }

    /// Refuses tensors the model has no place for (optimiser state and
    /// weight snapshots aside, in gpunet's own files).
    fn check_extra(&self, ckpt: &Checkpoint, graph: &Graph) -> Result<()> {
        let spec = &graph.spec;
        let expected: std::collections::HashSet<&str> = match &self.torch {
            Some(net) => net.tensors.iter().map(|t| t.torch.as_str()).collect(),
            None => graph
                .params
                .iter()
                .chain(&graph.buffers)
                .map(|info| info.name.as_str())
                .collect(),
        };
        let ours = |name: &str| {
            self.torch.is_none()
                && (name.starts_with("optimizer.") || name.starts_with(SNAPSHOTS_PREFIX))
        };
        let extra: Vec<String> = ckpt
            .tensors
            .iter()
            .filter(|t| !expected.contains(t.name.as_str()) && !ours(&t.name))
            .map(|t| format!("{} {:?}", t.name, t.shape))
            .collect();
        if !extra.is_empty() {
            let shown = extra.len().min(6);
            let more = match extra.len() - shown {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            bail!(
                "holds {} tensor(s) the model {spec} has no place for: {}{more}",
                extra.len(),
                extra[..shown].join(", ")
            );
        }
        Ok(())
    }
}

/// Whether a file's progress is possible: one history entry per epoch done,
/// numbered 1, 2, …; at least one step per epoch; no more epochs than its
/// run was asked for.
fn check_progress(
    progress: &Progress,
    history: &[EpochReport],
    settings: Option<&TrainingSettings>,
) -> Result<()> {
    let done = progress.epochs_done;
    if done == 0 {
        return Ok(());
    }
    if history.len() != done {
        bail!(
            "is impossible: {done} epochs done, but the history ({HISTORY_KEY}) holds {}",
            history.len()
        );
    }
    if let Some(i) = history
        .iter()
        .enumerate()
        .position(|(i, r)| r.epoch != i + 1)
    {
        bail!(
            "is impossible: the history's entry {} is for epoch {}",
            i + 1,
            history[i].epoch
        );
    }
    if progress.global_step < done {
        bail!(
            "is impossible: {done} epochs done in {} steps",
            progress.global_step
        );
    }
    if let Some(s) = settings.filter(|s| s.epochs < done) {
        bail!(
            "is impossible: {done} epochs done of a run of {} ({TRAINING_KEY})",
            s.epochs
        );
    }
    Ok(())
}

/// How a buffer is stored: PyTorch keeps counters (batch norm's
/// `num_batches_tracked`) as int64, everything else as f32.
pub(crate) fn buffer_dtype(name: &str) -> Stored {
    if name.ends_with(".num_batches_tracked") {
        Stored::I64
    } else {
        Stored::F32
    }
}

/// "1x28x28" → Shape.
pub fn parse_shape(text: &str) -> Result<Shape> {
    let dims: Vec<usize> = text
        .split('x')
        .map(|d| d.parse().map_err(|_| anyhow!("{text:?} is not CxHxW")))
        .collect::<Result<_>>()?;
    match dims[..] {
        [c, h, w] => match (Shape { c, h, w }).checked_len() {
            Some(0) => bail!("{text:?} has a dimension of 0"),
            Some(_) => Ok(Shape { c, h, w }),
            None => bail!("{text:?}: C×H×W is more values per image than 64 bits count"),
        },
        _ => bail!("{text:?} is not CxHxW"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::optim::AdamConfig;

    #[test]
    fn settings_read_as_flags_not_rust() {
        let sgd = Optimizer::Sgd {
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
        };
        assert_eq!(sgd.to_string(), "SGD (momentum 0.9, weight decay 5e-4)");
        let adamw = Optimizer::Adam(AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            decoupled: true,
        });
        assert_eq!(
            adamw.to_string(),
            "AdamW (β1 0.9, β2 0.999, eps 1e-8, weight decay 0.01)"
        );
        let old = TrainingSettings {
            optimizer: sgd,
            lr: 0.1,
            schedule: ScheduleKind::Constant,
            warmup_steps: 0,
            step_epochs: 2,
            gamma: 0.1,
            batch: 128,
            seed: 0,
            epochs: 5,
            train_limit: None,
            label_smoothing: 0.0,
            no_bias_decay: false,
            augment: Augment::default(),
        };
        let now = TrainingSettings {
            lr: 0.05,
            schedule: ScheduleKind::Cosine,
            epochs: 9,
            train_limit: Some(2000),
            ..old.clone()
        };
        assert_eq!(
            old.differences(&now),
            [
                "--lr: 0.1 in the checkpoint, 0.05 now",
                "--lr-schedule: constant in the checkpoint, cosine now",
                "--train-limit: all images in the checkpoint, 2000 now",
            ]
        );
        assert_eq!(
            optimizer_differences(&sgd, &adamw),
            ["--optimizer: sgd in the checkpoint, adamw now"]
        );
    }
}
