//! The one boundary between the training loop and the devices: the same
//! operations on `Cpu` (the reference) and `Gpu` (wgpu + WGSL).

use crate::ops::optim::AdamConfig;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The optimiser and its fixed hyper-parameters (the learning rate comes
/// per step, from the schedule).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD with momentum, PyTorch's form (Nesterov's when `nesterov`).
    Sgd {
        momentum: f32,
        weight_decay: f32,
        #[serde(default)]
        nesterov: bool,
    },
    /// Adam, or AdamW when `decoupled`.
    Adam(AdamConfig),
}

impl Optimizer {
    /// Number of per-parameter state vectors (velocity; or m and v).
    pub fn state_vectors(&self) -> usize {
        self.state_names().len()
    }

    /// The same optimiser without weight decay.
    pub fn without_weight_decay(&self) -> Optimizer {
        match *self {
            Optimizer::Sgd {
                momentum, nesterov, ..
            } => Optimizer::Sgd {
                momentum,
                weight_decay: 0.0,
                nesterov,
            },
            Optimizer::Adam(cfg) => Optimizer::Adam(crate::ops::optim::AdamConfig {
                weight_decay: 0.0,
                ..cfg
            }),
        }
    }

    /// PyTorch's names for the optimiser's per-parameter state.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd { .. } => &["momentum_buffer"],
            Optimizer::Adam(_) => &["exp_avg", "exp_avg_sq"],
        }
    }
}

/// Loss and accuracy summed over an epoch (or an evaluation pass).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EpochStats {
    pub loss_sum: f64,
    pub correct: u64,
    pub count: u64,
    /// The first step (0-based) whose batch loss was NaN or infinite.
    pub bad_step: Option<usize>,
}

impl EpochStats {
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.count.max(1) as f64
    }
}

/// Where an epoch has got to.
#[derive(Debug, Clone)]
pub struct Update {
    /// Examples processed so far in this pass.
    pub examples: usize,
    /// Steps done so far, and the loss and accuracy summed over them; only
    /// at the report points asked for by `EpochPlan::report_every`.
    pub report: Option<(usize, EpochStats)>,
    /// Steps done so far and the first parameter tensor's values (the
    /// first layer's weights), at the points asked for by
    /// `EpochPlan::snapshot_every`.
    pub snapshot: Option<(usize, Vec<f32>)>,
}

/// Called back as an epoch progresses.
pub type OnUpdate<'a> = &'a mut dyn FnMut(Update);

/// The steps of one training epoch: the order of the training examples (a
/// permutation of their indices, cut into batches of the planned size), the
/// learning rate of each step, and how many steps ran before this epoch
/// (Adam's bias correction counts from there).
#[derive(Debug, Clone, Copy)]
pub struct EpochPlan<'a> {
    pub order: &'a [u32],
    pub lrs: &'a [f32],
    pub first_step: usize,
    /// Report the running loss and accuracy every this many steps (0: only
    /// at the end). On the GPU each report is a read-back, so a small value
    /// costs speed.
    pub report_every: usize,
    /// Snapshot the first layer's weights every this many steps (0: never);
    /// a read-back on the GPU too.
    pub snapshot_every: usize,
}

/// A network planned on a device, with the training and test sets resident.
pub trait Backend {
    /// "gpu" or "cpu".
    fn device(&self) -> &'static str;
    /// What runs the math: the adapter's name and API, or the CPU.
    fn adapter(&self) -> String;
    /// Time to first step and its parts, where the device reports them.
    fn startup(&self) -> Option<crate::gpu::Startup> {
        None
    }
    /// One pass of the optimiser over the training set.
    fn train_epoch(&mut self, plan: EpochPlan, progress: OnUpdate) -> Result<EpochStats>;
    /// Loss and accuracy over the whole test set with the current weights.
    fn evaluate(&mut self, progress: OnUpdate) -> Result<EpochStats>;
    /// The flat parameter vector (layout: `Graph::params`).
    fn params(&self) -> Result<Vec<f32>>;
    /// The optimiser's state vectors (velocity; or Adam's m and v), each
    /// laid out like the parameters.
    fn optimizer_state(&self) -> Result<Vec<Vec<f32>>>;
    /// Replaces the parameters and the optimiser state (to resume a run).
    fn load_state(&mut self, params: &[f32], optimizer_state: &[Vec<f32>]) -> Result<()>;
    /// The non-trainable buffers (running statistics; layout `Graph::buffers`).
    fn buffers(&self) -> Result<Vec<f32>>;
    /// Replaces the non-trainable buffers.
    fn load_buffers(&mut self, buffers: &[f32]) -> Result<()>;
    /// The outputs (after their activation) of the given nodes for `rows`
    /// inputs x (rows × input size, normalised like the training data),
    /// computed in batches of the planned size, in evaluation mode.
    fn node_outputs(&mut self, x: &[f32], rows: usize, nodes: &[usize]) -> Result<Vec<Vec<f32>>>;
    /// ∂/∂x of Σ seed ⊙ z, where z is the pre-activation output of `node`
    /// (rows × its output_len) for at most a batch of inputs x: the engine's
    /// backward pass run to the input, for activation maximisation.
    fn input_gradient(
        &mut self,
        x: &[f32],
        rows: usize,
        node: usize,
        seed: &[f32],
    ) -> Result<Vec<f32>>;
    /// Number of nodes in the planned graph.
    fn node_count(&self) -> usize;
    /// Bytes of buffers kept on a GPU: (the resident datasets' pixels,
    /// everything); None on the CPU.
    fn device_bytes(&self) -> Option<(u64, u64)> {
        None
    }
    /// The planned batch: the most rows `input_gradient` takes at once.
    fn batch_size(&self) -> usize;
    /// The logits of `rows` inputs x.
    fn infer(&mut self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let last = self.node_count() - 1;
        Ok(self.node_outputs(x, rows, &[last])?.remove(0))
    }
}
